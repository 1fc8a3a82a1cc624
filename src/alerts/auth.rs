//! Per-source request authentication: bearer, basic, HMAC signatures (with timestamp window
//! and replay refusal), or an explicit `none`. Secret comparisons are constant-time over
//! SHA-256 digests, so neither content nor length leaks through timing. Several secrets per
//! source allow rotation without downtime. `Debug` never prints a secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, SourceAuth};
pub use crate::config::{HmacAlgorithm, HmacEncoding};

/// What an HMAC source checks (from its settings).
pub struct HmacSpec {
    /// Header carrying the signature.
    pub header: String,
    pub secrets: Vec<SecretString>,
    pub algorithm: HmacAlgorithm,
    pub encoding: HmacEncoding,
    /// Text before the signature, e.g. `sha256=`.
    pub prefix: String,
    /// Header with the Unix time the sender signed at (signed as `<ts>:<body>`).
    pub timestamp_header: Option<String>,
    /// How far the timestamp may be from now.
    pub tolerance: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    /// Deliberately vague to the client; `reason` is for logs and metrics only.
    #[error("authentication failed")]
    Failed { reason: &'static str },
}

fn fail(reason: &'static str) -> AuthError {
    AuthError::Failed { reason }
}

pub enum SourceAuthenticator {
    Bearer {
        digests: Vec<[u8; 32]>,
    },
    Basic {
        username: String,
        digests: Vec<[u8; 32]>,
    },
    Hmac(HmacVerifier),
    None,
}

pub struct HmacVerifier {
    header: String,
    secrets: Vec<SecretString>,
    algorithm: HmacAlgorithm,
    encoding: HmacEncoding,
    prefix: String,
    timestamp_header: Option<String>,
    tolerance: Duration,
}

/// A request whose signature verified: the key under which a replay of it is refused, and
/// for how long the key must be remembered. The key is a digest of the decoded signature
/// that matched, not of the header's text: another spelling of the same signature (case,
/// extra entries) is the same request.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedRequest {
    pub replay_key: String,
    pub remember_for: Duration,
}

impl std::fmt::Debug for SourceAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer { digests } => write!(f, "Bearer({} tokens, [REDACTED])", digests.len()),
            Self::Basic { username, digests } => write!(
                f,
                "Basic({username}, {} passwords, [REDACTED])",
                digests.len()
            ),
            Self::Hmac(h) => write!(
                f,
                "Hmac(header {}, {} secrets, [REDACTED])",
                h.header,
                h.secrets.len()
            ),
            Self::None => write!(f, "None"),
        }
    }
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

fn digests(secrets: &[SecretString]) -> Vec<[u8; 32]> {
    secrets
        .iter()
        .map(|t| digest(t.expose_secret().as_bytes()))
        .collect()
}

fn any_matches(digests: &[[u8; 32]], presented: &[u8]) -> bool {
    let presented = digest(presented);
    // Check every configured secret without stopping early.
    bool::from(
        digests
            .iter()
            .fold(subtle::Choice::from(0), |acc, d| acc | d.ct_eq(&presented)),
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl SourceAuthenticator {
    /// The authenticator a source's settings describe (secret files read now).
    pub fn from_settings(auth: &SourceAuth) -> Result<Self, ConfigError> {
        Ok(match auth {
            SourceAuth::Bearer { .. } => Self::bearer(&auth.secrets()?),
            SourceAuth::Basic { username, .. } => Self::basic(username, &auth.secrets()?),
            SourceAuth::Hmac {
                header,
                algorithm,
                encoding,
                prefix,
                timestamp_header,
                tolerance_secs,
                ..
            } => Self::hmac(HmacSpec {
                header: header.clone(),
                secrets: auth.secrets()?,
                algorithm: *algorithm,
                encoding: *encoding,
                prefix: prefix.clone(),
                timestamp_header: timestamp_header.clone(),
                tolerance: Duration::from_secs(*tolerance_secs),
            }),
            SourceAuth::None => Self::none(),
        })
    }
}

impl SourceAuthenticator {
    /// `Authorization: Bearer <token>`, any of `tokens`.
    pub fn bearer(tokens: &[SecretString]) -> Self {
        Self::Bearer {
            digests: digests(tokens),
        }
    }

    /// HTTP Basic with `username` and any of `passwords`.
    pub fn basic(username: &str, passwords: &[SecretString]) -> Self {
        Self::Basic {
            username: username.to_owned(),
            digests: digests(passwords),
        }
    }

    pub fn hmac(spec: HmacSpec) -> Self {
        Self::Hmac(HmacVerifier {
            header: spec.header.to_ascii_lowercase(),
            secrets: spec.secrets,
            algorithm: spec.algorithm,
            encoding: spec.encoding,
            prefix: spec.prefix,
            timestamp_header: spec.timestamp_header.map(|h| h.to_ascii_lowercase()),
            tolerance: spec.tolerance,
        })
    }

    /// No authentication (must be written out in the settings).
    pub fn none() -> Self {
        Self::None
    }

    /// Whether the scheme needs the body to authenticate (HMAC signs it); the others are
    /// decided from the headers before any body is read.
    pub fn needs_body(&self) -> bool {
        matches!(self, Self::Hmac(_))
    }

    /// Checks a request by its headers (bearer, basic, none). `header` looks a header up by
    /// lower-case name. The scheme's name is case-insensitive (RFC 9110).
    pub fn verify_headers(&self, header: &dyn Fn(&str) -> Option<String>) -> Result<(), AuthError> {
        match self {
            Self::None => Ok(()),
            Self::Bearer { digests } => {
                let h = header("authorization").ok_or(fail("missing authorization header"))?;
                let token = strip_scheme(&h, "bearer").ok_or(fail("not a bearer token"))?;
                if any_matches(digests, token.trim().as_bytes()) {
                    Ok(())
                } else {
                    Err(fail("wrong bearer token"))
                }
            }
            Self::Basic { username, digests } => {
                let h = header("authorization").ok_or(fail("missing authorization header"))?;
                let encoded = strip_scheme(&h, "basic").ok_or(fail("not basic auth"))?;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| fail("malformed basic auth"))?;
                let decoded =
                    String::from_utf8(decoded).map_err(|_| fail("malformed basic auth"))?;
                let (user, password) = decoded
                    .split_once(':')
                    .ok_or(fail("malformed basic auth"))?;
                let user_ok =
                    bool::from(digest(user.as_bytes()).ct_eq(&digest(username.as_bytes())));
                let password_ok = any_matches(digests, password.as_bytes());
                if user_ok && password_ok {
                    Ok(())
                } else {
                    Err(fail("wrong basic credentials"))
                }
            }
            Self::Hmac(_) => Err(fail("the signature covers the body")),
        }
    }

    /// Checks a request with its body. For HMAC, the signed request's replay key comes back:
    /// the caller refuses it if any replica has seen it (`Store::remember_signature`).
    pub fn verify(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<Option<SignedRequest>, AuthError> {
        match self {
            Self::Hmac(h) => h.verify(header, body).map(Some),
            other => other.verify_headers(header).map(|()| None),
        }
    }
}

/// `value` without its leading auth scheme, compared case-insensitively.
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = value.trim_start().split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then_some(rest)
}

impl HmacVerifier {
    fn mac(&self, secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self.algorithm {
            HmacAlgorithm::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
                parts.iter().for_each(|p| m.update(p));
                m.finalize().into_bytes().to_vec()
            }
            HmacAlgorithm::Sha1 => {
                let mut m = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("any key length");
                parts.iter().for_each(|p| m.update(p));
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn decode(&self, s: &str) -> Option<Vec<u8>> {
        match self.encoding {
            HmacEncoding::Hex => hex::decode(s.trim()).ok(),
            HmacEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .ok(),
        }
    }

    fn verify(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<SignedRequest, AuthError> {
        let value = header(&self.header).ok_or(fail("missing signature header"))?;
        // Several signatures may be sent during the sender's own rotation (PagerDuty style).
        let presented: Vec<Vec<u8>> = value
            .split(',')
            .filter_map(|part| part.trim().strip_prefix(self.prefix.as_str()))
            .filter_map(|sig| self.decode(sig))
            .collect();
        if presented.is_empty() {
            return Err(fail("malformed signature"));
        }
        let timestamp = match &self.timestamp_header {
            None => None,
            Some(th) => {
                let ts = header(th).ok_or(fail("missing timestamp header"))?;
                let secs: u64 = ts.trim().parse().map_err(|_| fail("malformed timestamp"))?;
                if now_secs().abs_diff(secs) > self.tolerance.as_secs() {
                    return Err(fail("timestamp outside the tolerance window"));
                }
                Some(ts.trim().to_owned())
            }
        };
        let mut matched: Option<Vec<u8>> = None;
        for secret in &self.secrets {
            let expected = match &timestamp {
                Some(ts) => self.mac(
                    secret.expose_secret().as_bytes(),
                    &[ts.as_bytes(), b":", body],
                ),
                None => self.mac(secret.expose_secret().as_bytes(), &[body]),
            };
            for p in &presented {
                if p.len() == expected.len() && bool::from(p.as_slice().ct_eq(&expected)) {
                    matched = Some(expected.clone());
                }
            }
        }
        let Some(signature) = matched else {
            return Err(fail("signature does not match"));
        };
        // With a timestamp, a replay past the tolerance is refused by its age; within it, by
        // its key. Without one, only the key tells a replay: remembered for a day at least.
        let remember_for = match timestamp {
            Some(_) => self.tolerance * 2,
            None => self.tolerance.max(Duration::from_secs(24 * 3600)),
        };
        Ok(SignedRequest {
            replay_key: crate::domain::to_hex(&digest(&signature)),
            remember_for,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_auth(timestamp: bool) -> SourceAuthenticator {
        let yaml = if timestamp {
            "type: hmac\nheader: X-Grafana-Alerting-Signature\nsecret: test-grafana-hmac-secret\ntimestamp_header: X-Grafana-Alerting-Timestamp\n"
        } else {
            "type: hmac\nheader: X-PagerDuty-Signature\nsecrets: [old-secret, test-secret]\nprefix: 'v1='\n"
        };
        let auth: crate::config::SourceAuth = serde_saphyr::from_str(yaml).unwrap();
        SourceAuthenticator::from_settings(&auth).unwrap()
    }

    fn headers(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }
    }

    fn sign(secret: &str, parts: &[&[u8]]) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        parts.iter().for_each(|p| m.update(p));
        crate::domain::to_hex(&m.finalize().into_bytes())
    }

    #[test]
    fn grafana_signatures_cover_timestamp_and_body_and_refuse_replays() {
        let auth = hmac_auth(true);
        let body = br#"{"status":"firing"}"#;
        let ts = now_secs().to_string();
        let sig = sign("test-grafana-hmac-secret", &[ts.as_bytes(), b":", body]);
        let h = headers(vec![
            ("X-Grafana-Alerting-Signature", sig.clone()),
            ("X-Grafana-Alerting-Timestamp", ts.clone()),
        ]);
        let key = auth.verify(&h, body).unwrap().unwrap();
        // Another spelling of the same signature is the same request: the same replay key.
        for spelling in [
            sig.to_uppercase(),
            format!("{sig},x"),
            format!("00,{sig}"),
            format!(" {sig} "),
        ] {
            let h = headers(vec![
                ("X-Grafana-Alerting-Signature", spelling.clone()),
                ("X-Grafana-Alerting-Timestamp", ts.clone()),
            ]);
            assert_eq!(auth.verify(&h, body), Ok(Some(key.clone())), "{spelling}");
        }
        assert_eq!(
            auth.verify(&h, br#"{"status":"resolved"}"#),
            Err(fail("signature does not match"))
        );
        let stale = (now_secs() - 3600).to_string();
        let sig = sign("test-grafana-hmac-secret", &[stale.as_bytes(), b":", body]);
        let h = headers(vec![
            ("X-Grafana-Alerting-Signature", sig),
            ("X-Grafana-Alerting-Timestamp", stale),
        ]);
        assert_eq!(
            auth.verify(&h, body),
            Err(fail("timestamp outside the tolerance window"))
        );
        let sig = sign("wrong-secret", &[ts.as_bytes(), b":", body]);
        let h = headers(vec![
            ("X-Grafana-Alerting-Signature", sig),
            ("X-Grafana-Alerting-Timestamp", ts),
        ]);
        assert_eq!(auth.verify(&h, body), Err(fail("signature does not match")));
    }

    #[test]
    fn pagerduty_style_rotation_accepts_any_listed_signature_and_any_configured_secret() {
        let auth = hmac_auth(false);
        let body = br#"{"event":{}}"#;
        let good = sign("test-secret", &[body]);
        let other = sign("unknown", &[body]);
        let h = headers(vec![(
            "X-PagerDuty-Signature",
            format!("v1={other},v1={good}"),
        )]);
        assert!(auth.verify(&h, body).unwrap().is_some());
        let h = headers(vec![("X-PagerDuty-Signature", format!("v1={other}"))]);
        assert!(auth.verify(&h, body).is_err());
        let h = headers(vec![]);
        assert_eq!(auth.verify(&h, body), Err(fail("missing signature header")));
    }

    #[test]
    fn the_shared_grafana_fixture_verifies() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/alerts/grafana/signed-request.json"
        ))
        .unwrap();
        let body = fixture["raw_body"].as_str().unwrap().as_bytes();
        let sig = fixture["headers"]["X-Grafana-Alerting-Signature"]
            .as_str()
            .unwrap();
        let ts = fixture["headers"]["X-Grafana-Alerting-Timestamp"]
            .as_str()
            .unwrap();
        let expected = sign("test-grafana-hmac-secret", &[ts.as_bytes(), b":", body]);
        assert_eq!(
            expected, sig,
            "our reading of Grafana's scheme matches the fixture"
        );
    }

    #[test]
    fn basic_and_bearer() {
        let auth: crate::config::SourceAuth =
            serde_saphyr::from_str("type: basic\nusername: siem\npasswords: [p1, p2]\n").unwrap();
        let auth = SourceAuthenticator::from_settings(&auth).unwrap();
        let enc = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(
            auth.verify(&headers(vec![("authorization", enc("siem:p2"))]), b"")
                .is_ok()
        );
        assert!(
            auth.verify(&headers(vec![("authorization", enc("siem:p3"))]), b"")
                .is_err()
        );
        assert!(
            auth.verify(&headers(vec![("authorization", enc("other:p1"))]), b"")
                .is_err()
        );
        assert!(!format!("{auth:?}").contains("p1"));
        // The scheme's name in any case (RFC 9110).
        let lower = format!(
            "basic {}",
            base64::engine::general_purpose::STANDARD.encode("siem:p1")
        );
        assert!(
            auth.verify_headers(&headers(vec![("authorization", lower)]))
                .is_ok()
        );
        let upper = format!(
            "BASIC {}",
            base64::engine::general_purpose::STANDARD.encode("siem:p1")
        );
        assert!(
            auth.verify_headers(&headers(vec![("authorization", upper)]))
                .is_ok()
        );
        let auth: crate::config::SourceAuth =
            serde_saphyr::from_str("type: bearer\ntokens: [t1, t2]\n").unwrap();
        let auth = SourceAuthenticator::from_settings(&auth).unwrap();
        assert!(
            auth.verify(&headers(vec![("authorization", "Bearer t2".into())]), b"")
                .is_ok()
        );
        assert!(
            auth.verify_headers(&headers(vec![("authorization", "BEARER t1".into())]))
                .is_ok()
        );
        assert!(
            auth.verify(&headers(vec![("authorization", "Bearer t3".into())]), b"")
                .is_err()
        );
    }
}
