//! Approver tokens. HS256 with a configured secret, or RS256/ES256 verified against a JWKS
//! that is cached and refreshed when a token names an unknown `kid`. Issuer and audience are
//! checked when configured; the identity is `email` (or `sub`), the roles come from a
//! configurable claim.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::{ApprovalSettings, ConfigError, read_secret_file};

#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The e-mail (lower-cased), or `sub` for a token without one.
    pub id: String,
    /// Every name the token gives this person (`email` lower-cased and `sub`): one person
    /// counts once in a quorum whichever claim a later token carries.
    pub aliases: Vec<String>,
    pub roles: Vec<String>,
}

impl Identity {
    /// The person verified claims name (a JWT's, or an OpenID Connect ID token's): one rule for
    /// every way a person signs in, so four-eyes and quorum compare the same names.
    pub fn from_claims(
        claims: &serde_json::Map<String, Value>,
        roles_claim: &str,
    ) -> Result<Self, AuthError> {
        let claim = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let email = claim("email").map(crate::domain::normalise_email);
        let sub = claim("sub").map(str::to_owned);
        if email.iter().chain(&sub).any(|s| s.contains('\0')) {
            return Err(AuthError::Invalid("token identity holds a NUL".into()));
        }
        let id = email
            .clone()
            .or_else(|| sub.clone())
            .ok_or_else(|| AuthError::Invalid("token names no subject".into()))?;
        let mut aliases: Vec<String> = email.into_iter().chain(sub).collect();
        aliases.dedup();
        let roles = match claims.get(roles_claim) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => vec![],
        };
        Ok(Identity { id, aliases, roles })
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("no approver authentication is configured")]
    NotConfigured,
}

/// Keys by `kid`, and when the set was last fetched.
type KeyCache = (HashMap<String, (DecodingKey, Algorithm)>, Option<Instant>);

pub struct JwtVerifier {
    hs256: Option<SecretString>,
    jwks_url: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    roles_claim: String,
    http: reqwest::Client,
    jwks: tokio::sync::Mutex<KeyCache>,
}

impl JwtVerifier {
    pub fn new(s: &ApprovalSettings) -> Result<Self, ConfigError> {
        let hs256 = match (&s.hs256_secret, &s.hs256_secret_file) {
            (Some(x), _) => Some(x.clone()),
            (None, Some(p)) => Some(SecretString::from(read_secret_file(p)?)),
            _ => None,
        };
        Ok(Self {
            hs256,
            jwks_url: s.jwks_url.clone(),
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
            roles_claim: s.roles_claim.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client builds"),
            jwks: tokio::sync::Mutex::new((HashMap::new(), None)),
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        if let Some(i) = &self.issuer {
            v.set_issuer(&[i]);
        }
        match &self.audience {
            Some(a) => v.set_audience(&[a]),
            None => v.validate_aud = false,
        }
        // A configured issuer or audience is a required claim, not one checked when present.
        let mut required = vec!["exp"];
        if self.issuer.is_some() {
            required.push("iss");
        }
        if self.audience.is_some() {
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        v.validate_nbf = true;
        v.leeway = 30;
        v
    }

    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims: Value = match header.alg {
            Algorithm::HS256 => {
                let secret = self.hs256.as_ref().ok_or(AuthError::NotConfigured)?;
                decode::<Value>(
                    token,
                    &DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                    &self.validation(Algorithm::HS256),
                )
                .map_err(|e| AuthError::Invalid(e.to_string()))?
                .claims
            }
            Algorithm::RS256
            | Algorithm::ES256
            | Algorithm::PS256
            | Algorithm::RS384
            | Algorithm::ES384 => {
                let kid = header
                    .kid
                    .clone()
                    .ok_or_else(|| AuthError::Invalid("token has no kid".into()))?;
                let (key, alg) = self.key_for(&kid).await?;
                if alg != header.alg {
                    return Err(AuthError::Invalid(
                        "algorithm does not match the key".into(),
                    ));
                }
                decode::<Value>(token, &key, &self.validation(alg))
                    .map_err(|e| AuthError::Invalid(e.to_string()))?
                    .claims
            }
            other => {
                return Err(AuthError::Invalid(format!(
                    "algorithm {other:?} is not accepted"
                )));
            }
        };
        let Value::Object(claims) = claims else {
            return Err(AuthError::Invalid("the claims are not an object".into()));
        };
        Identity::from_claims(&claims, &self.roles_claim)
    }

    async fn key_for(&self, kid: &str) -> Result<(DecodingKey, Algorithm), AuthError> {
        let url = self.jwks_url.as_ref().ok_or(AuthError::NotConfigured)?;
        let mut cache = self.jwks.lock().await;
        if let Some(k) = cache.0.get(kid) {
            return Ok(k.clone());
        }
        // Unknown kid: the IdP may have rotated keys. Refresh, but not more than every 2 s.
        if cache
            .1
            .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
        {
            return Err(AuthError::Invalid(format!("unknown key id {kid:?}")));
        }
        let set: JwkSet = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| AuthError::Invalid(format!("cannot fetch JWKS: {}", e.without_url())))?
            .json()
            .await
            .map_err(|e| AuthError::Invalid(format!("bad JWKS: {e}")))?;
        cache.0.clear();
        for jwk in &set.keys {
            let Some(id) = jwk.common.key_id.clone() else {
                continue;
            };
            let alg = match &jwk.common.key_algorithm {
                Some(a) => match Algorithm::from_str_opt(&a.to_string()) {
                    Some(alg) => alg,
                    None => continue,
                },
                None => match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => continue,
                },
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                cache.0.insert(id, (key, alg));
            }
        }
        cache.1 = Some(Instant::now());
        cache
            .0
            .get(kid)
            .cloned()
            .ok_or_else(|| AuthError::Invalid(format!("unknown key id {kid:?}")))
    }
}

trait AlgorithmExt {
    fn from_str_opt(s: &str) -> Option<Algorithm>;
}
impl AlgorithmExt for Algorithm {
    fn from_str_opt(s: &str) -> Option<Algorithm> {
        s.parse().ok()
    }
}

/// Issues an HS256 approver token (sandbox `lockout token`, tests).
pub fn issue_hs256(
    secret: &str,
    subject: &str,
    roles: &[String],
    ttl: Duration,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut claims = serde_json::json!({
        "sub": subject,
        "email": subject,
        "roles": roles,
        "iat": now,
        "exp": now + ttl.as_secs(),
    });
    if let Some(i) = issuer {
        claims["iss"] = i.into();
    }
    if let Some(a) = audience {
        claims["aud"] = a.into();
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 encoding cannot fail")
}
