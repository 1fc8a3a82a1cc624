//! The client against a real OAuth 2.0 server: oidc-provider (npm), started on loopback.
//! Skipped, with the reason printed, only when `node` or the npm package is absent
//! (`.ci/run` installs both).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lockout::users_api::{
    ApiVersion, CallLog, ClientAuth, ClientConfig, UsersApiClient, UsersApiError,
};
use secrecy::SecretString;

use crate::helpers::skip_outside_ci;

const SECRET: &str = "s3cr+t/with=chars";

struct OidcServer {
    child: Child,
    port: u16,
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_oidc() -> Option<OidcServer> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    if !dir.join("node_modules/oidc-provider").exists() {
        skip_outside_ci(
            "the OAuth server test",
            "oidc-provider is not installed (run `npm ci --prefix tests/oidc`)",
        );
        return None;
    }
    let mut child = match Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("OIDC_CLIENT_SECRET", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            skip_outside_ci(
                "the OAuth server test",
                &format!("node is not available: {e}"),
            );
            return None;
        }
    };
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .expect("oidc-provider printed READY <port>");
    Some(OidcServer { child, port })
}

fn client(port: u16, client_id: &str, auth: ClientAuth) -> UsersApiClient {
    let base = format!("http://127.0.0.1:{port}");
    UsersApiClient::new(ClientConfig {
        base_url: base.clone(),
        api_version: ApiVersion::V1,
        token_url: format!("{base}/token"),
        revoke_url: format!("{base}/token/revocation"),
        account_id: "UNUSED".into(),
        client_id: client_id.into(),
        client_secret: SecretString::from(SECRET),
        client_auth: auth,
        timeout: Duration::from_secs(5),
        retry: crate::helpers::fast_retry(),
        token_refresh_margin: Duration::from_secs(60),
        max_in_flight: 32,
    })
    .unwrap()
}

#[tokio::test]
async fn client_credentials_against_a_real_oauth_server_for_each_auth_mode() {
    let Some(server) = start_oidc() else { return };
    // RFC 6749 form-encoding: accepted by a standards-conformant server.
    let c = client(server.port, "lockout-basic", ClientAuth::BasicRfc6749);
    c.check_credentials(&CallLog::default())
        .await
        .expect("basic_rfc6749");
    c.revoke_token(&CallLog::default())
        .await
        .expect("revocation");

    let c = client(server.port, "lockout-post", ClientAuth::Post);
    c.check_credentials(&CallLog::default())
        .await
        .expect("post");

    // Plain Base64 (1Password's documented form) differs for `+`: an RFC server reads it as a
    // space and refuses the client. This is why `client_auth` is configurable.
    let c = client(server.port, "lockout-basic", ClientAuth::Basic);
    let err = c.check_credentials(&CallLog::default()).await.unwrap_err();
    assert!(
        matches!(err, UsersApiError::InvalidClient { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(c.token_requests(), 1);
}
