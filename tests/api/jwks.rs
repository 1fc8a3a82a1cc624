//! Approvers authenticated by an identity provider's JWKS (RS256): issuer and audience
//! checked, keys cached, refreshed when a token names an unknown key id (rotation).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::*;

struct Key {
    pem: Vec<u8>,
    jwk: Value,
}

fn rsa_key(dir: &std::path::Path, kid: &str) -> Key {
    let path = dir.join(format!("{kid}.pem"));
    let ok = std::process::Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&path)
        .arg("2048")
        .output()
        .unwrap();
    assert!(ok.status.success());
    let out = std::process::Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    let modulus = String::from_utf8(out.stdout).unwrap();
    let n = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    Key {
        pem: std::fs::read(&path).unwrap(),
        jwk: json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64.encode(n), "e": "AQAB"}),
    }
}

fn sign(key: &Key, kid: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(&key.pem).unwrap(),
    )
    .unwrap()
}

fn claims(sub: &str, roles: &[&str], iss: &str, exp_offset: i64) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({"sub": sub, "email": sub, "roles": roles, "iss": iss, "aud": "lockout", "iat": now, "exp": now + exp_offset})
}

#[tokio::test]
async fn rs256_tokens_verify_against_the_idps_jwks_with_rotation() {
    let keys_dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (
        rsa_key(keys_dir.path(), "k1"),
        rsa_key(keys_dir.path(), "k2"),
    );
    let published = Arc::new(Mutex::new(json!({"keys": [k1.jwk.clone()]})));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks_url = format!(
        "http://127.0.0.1:{}/jwks",
        listener.local_addr().unwrap().port()
    );
    let p = published.clone();
    let server = HttpServer::new(move || {
        let p = p.clone();
        App::new().route(
            "/jwks",
            web::get().to(move || {
                let body = p.lock().unwrap().clone();
                async move { HttpResponse::Ok().json(body) }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let app = spawn_app_with(AppOptions {
        extra_approvals: format!("  jwks_url: \"{jwks_url}\"\n"),
        ..AppOptions::default()
    })
    .await;
    let get = |t: String| {
        let app = &app;
        async move { app.get_json("/v1/approvals", &t).await.0 }
    };
    assert_eq!(
        get(sign(
            &k1,
            "k1",
            claims("idp-user@example.com", &["secops"], "lockout-tests", 300)
        ))
        .await,
        200
    );
    assert_eq!(
        get(sign(
            &k1,
            "k1",
            claims("idp-user@example.com", &["secops"], "someone-else", 300)
        ))
        .await,
        401,
        "wrong issuer"
    );
    assert_eq!(
        get(sign(
            &k1,
            "k1",
            claims("idp-user@example.com", &["secops"], "lockout-tests", -600)
        ))
        .await,
        401,
        "expired"
    );
    assert_eq!(
        get(sign(
            &k2,
            "k1",
            claims("idp-user@example.com", &["secops"], "lockout-tests", 300)
        ))
        .await,
        401,
        "signed by another key"
    );
    // The IdP rotates to k2: a token naming k2 makes lockout fetch the set again.
    *published.lock().unwrap() = json!({"keys": [k1.jwk.clone(), k2.jwk.clone()]});
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        get(sign(
            &k2,
            "k2",
            claims("idp-user@example.com", &["secops"], "lockout-tests", 300)
        ))
        .await,
        200,
        "rotated key"
    );
    // Roles come from the token: a token without the role cannot decide.
    let (s, body) = app
        .post_json(
            "/v1/users/bob@example.com/suspend",
            &sign(
                &k2,
                "k2",
                claims("idp-user@example.com", &["helpdesk"], "lockout-tests", 300),
            ),
            &json!({"reason": "x"}),
        )
        .await;
    assert_eq!(s, 403, "{body}");
}
