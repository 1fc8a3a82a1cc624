//! Sign-in with the organisation's OpenID Connect provider: authorization code flow with PKCE
//! and a nonce (`openidconnect`), the provider found by its discovery document. The ID token's
//! signature, issuer, audience, expiry and nonce are checked by the library; the person and
//! their roles are read from the verified claims by the same rule as approval JWTs
//! (`Identity::from_claims`).

use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IdToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::approvals::Identity;
use crate::config::{ConfigError, OidcSettings};

/// Claims beyond the standard ones (the roles claim among them).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExtraClaims {
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}
impl AdditionalClaims for ExtraClaims {}

type RolesIdToken = IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// What the browser's session holds between the redirect to the provider and its return.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OidcError(pub String);

fn err(what: &str, e: impl std::fmt::Display) -> OidcError {
    OidcError(format!("{what}: {e}"))
}

pub struct Oidc {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: SecretString,
    scopes: Vec<String>,
    roles_claim: String,
    redirect: RedirectUrl,
    http: reqwest::Client,
    /// The discovery document and when it was fetched (kept an hour: keys rotate).
    metadata: tokio::sync::Mutex<Option<(CoreProviderMetadata, Instant)>>,
}

impl Oidc {
    pub fn from_settings(
        s: &OidcSettings,
        public_url: &str,
        default_roles_claim: &str,
    ) -> Result<Self, ConfigError> {
        let invalid = |e: String| ConfigError::Invalid(format!("console.oidc: {e}"));
        Ok(Self {
            issuer: IssuerUrl::new(s.issuer.clone()).map_err(|e| invalid(e.to_string()))?,
            client_id: ClientId::new(s.client_id.clone()),
            client_secret: s.client_secret()?,
            scopes: s.scopes.clone(),
            roles_claim: s
                .roles_claim
                .clone()
                .unwrap_or_else(|| default_roles_claim.to_owned()),
            redirect: RedirectUrl::new(format!(
                "{}/console/auth/callback",
                public_url.trim_end_matches('/')
            ))
            .map_err(|e| invalid(e.to_string()))?,
            // Following redirects would let a provider's response send lockout elsewhere.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| invalid(e.to_string()))?,
            metadata: Default::default(),
        })
    }

    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    async fn metadata(&self) -> Result<CoreProviderMetadata, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some((m, at)) = cached.as_ref()
            && at.elapsed() < Duration::from_secs(3600)
        {
            return Ok(m.clone());
        }
        let http = self.http.clone();
        let m = CoreProviderMetadata::discover_async(self.issuer.clone(), &move |r| {
            send(http.clone(), r)
        })
        .await
        .map_err(|e| err("the provider's discovery document", e))?;
        *cached = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    /// The provider's client, from its (cached) discovery document.
    async fn client(
        &self,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        Ok(CoreClient::from_provider_metadata(
            self.metadata().await?,
            self.client_id.clone(),
            Some(ClientSecret::new(
                self.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(self.redirect.clone()))
    }

    /// Where to send the browser, and what its session must remember until it returns.
    pub async fn start(&self) -> Result<(String, Pending), OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for s in &self.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok((
            url.to_string(),
            Pending {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
            },
        ))
    }

    /// The provider's answer: the code exchanged (with the PKCE verifier), the ID token
    /// verified (signature, issuer, audience, expiry, nonce), the person it names.
    pub async fn finish(&self, pending: Pending, code: &str) -> Result<Identity, OidcError> {
        let client = self.client().await?;
        let http = self.http.clone();
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| err("the provider", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&move |r| send(http.clone(), r))
            .await
            .map_err(|e| err("the code exchange", e))?;
        let _ = token.access_token();
        let raw = token
            .id_token()
            .ok_or_else(|| OidcError("the provider returned no ID token".into()))?
            .to_string();
        let id_token: RolesIdToken = raw.parse().map_err(|e| err("the ID token", e))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(pending.nonce))
            .map_err(|e| err("the ID token", e))?;
        let mut named = claims.additional_claims().rest.clone();
        named.insert("sub".into(), Value::String(claims.subject().to_string()));
        // An e-mail the provider has not verified names nobody: it could be anyone's.
        match (claims.email(), claims.email_verified()) {
            (Some(email), Some(true) | None) => {
                named.insert("email".into(), Value::String(email.to_string()));
            }
            _ => {
                named.remove("email");
            }
        }
        Identity::from_claims(&named, &self.roles_claim).map_err(|e| err("the ID token", e))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// `openidconnect`'s requests, sent with lockout's own HTTP client (reqwest 0.13).
async fn send(
    http: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    let request = reqwest::Request::try_from(request).map_err(|e| HttpError(e.to_string()))?;
    let response = http
        .execute(request)
        .await
        .map_err(|e| HttpError(e.without_url().to_string()))?;
    let mut builder = http_response_builder(response.status().as_u16());
    for (k, v) in response.headers() {
        builder = builder.header(k.as_str(), v.as_bytes());
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    builder
        .body(body.to_vec())
        .map_err(|e| HttpError(e.to_string()))
}

fn http_response_builder(status: u16) -> openidconnect::http::response::Builder {
    openidconnect::http::Response::builder().status(status)
}
