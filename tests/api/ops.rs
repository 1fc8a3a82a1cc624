//! What an SRE touches: the OpenAPI contract (no drift, no missing route), Swagger UI, metrics
//! after an end-to-end run, the Dockerfile, `config check`.

use std::collections::BTreeSet;

use lockout::http::openapi::{ROUTES, document};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn the_served_openapi_matches_the_committed_file_and_covers_every_route() {
    let app = spawn_app().await;
    let served: Value = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        served == committed,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
    assert_eq!(served, document());
    let documented: BTreeSet<(String, String)> = served["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, routed);
    // Every documented path is served: an undeclared method on it answers 405, not 404.
    for r in ROUTES {
        let path = r
            .path
            .replace("{source}", "generic")
            .replace("{id}", "apr_x")
            .replace("{user}", ALICE);
        let status = app
            .http
            .put(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 405, "PUT {path}");
    }
    let unknown = app
        .http
        .get(format!("{}/v1/nothing-here", app.address))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(unknown, 404);
    let docs = app
        .http
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("cdn") && !html.contains("unpkg"), "no CDN");
}

#[tokio::test]
async fn metrics_count_an_end_to_end_run() {
    let app = spawn_app().await;
    let resp: Value = app
        .post_alert("generic", &brute_force_alert("alice@example.com"))
        .await
        .json()
        .await
        .unwrap();
    let id = resp["alert_ids"][0].as_str().unwrap().to_owned();
    app.post_alert("generic", &serde_json::json!({"title": "brute force", "severity": "high", "user": {"email": "alice@example.com"}, "id": "d1"})).await;
    app.post_alert("generic", &serde_json::json!({"title": "brute force", "severity": "high", "user": {"email": "alice@example.com"}, "id": "d1"})).await;
    app.http
        .post(format!("{}/v1/alerts/generic", app.address))
        .bearer_auth("wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    app.wait_for_audit("action.succeeded", &id).await;
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "lockout_alerts_received_total{source=\"generic\"} 2",
        "lockout_alerts_duplicate_total{source=\"generic\"} 1",
        "lockout_alerts_rejected_total{source=\"generic\",reason=\"unauthenticated\"} 1",
        "lockout_actions_total{kind=\"suspend\",outcome=\"succeeded\"} 1",
        "lockout_users_api_calls_total{operation=\"suspend_user\",status=\"200\"} 1",
        "lockout_token_requests_total 1",
        "lockout_dedup_forgotten_total 0",
        "lockout_queue_depth{state=\"pending_approval\"} 0",
        "lockout_oldest_pending_approval_age_seconds 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.contains(
            "lockout_users_api_call_duration_seconds_count{operation=\"suspend_user\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("lockout_plans_total"), "{text}");
}

#[test]
fn the_dockerfile_copies_only_what_exists_and_runs_unprivileged() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("FROM rust:1.95"), "a Rust 1.95 builder");
    assert!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count()
            >= 2,
        "multi-stage"
    );
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(dockerfile.contains("VOLUME"));
    assert!(dockerfile.contains("ca-certificates"));
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root"), "{user}");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
    {
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &parts[..parts.len() - 1] {
            assert!(
                root.join(src).exists(),
                "Dockerfile copies {src}, which does not exist"
            );
        }
    }
    assert!(root.join(".dockerignore").exists());
}

#[test]
fn config_check_prints_the_effective_config_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "users_api:\n  base_url: https://api.1password.com\n  account_id: ACC\n  client_id: cid\n  client_secret: very-secret-value\nsources:\n  s:\n    auth: { type: bearer, token: source-secret-value }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lockout"))
        .arg("--config")
        .arg(dir.path().join("c.yaml"))
        .args(["config", "check"])
        .env("LOCKOUT__SERVER__LISTEN", "0.0.0.0:9999")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("0.0.0.0:9999"),
        "env overrides apply: {stdout}"
    );
    assert!(
        !stdout.contains("very-secret-value") && !stdout.contains("source-secret-value"),
        "{stdout}"
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_lockout"))
        .arg("--config")
        .arg(dir.path().join("c.yaml"))
        .args(["config", "check"])
        .env("LOCKOUT__STORE__URL", "mysql://nope")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("store.url"));
}
