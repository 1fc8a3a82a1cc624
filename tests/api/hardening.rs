//! What an attacker tries at the front door: bodies before authentication, slow bodies,
//! replays in other spellings and after a restart, floods of refusals; and the error shape
//! of the router's own 404 and 405.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

const GRAFANA_SECRET: &str = "grafana-hmac-secret";

fn hmac_source() -> String {
    format!(
        "  grafana:\n    format: grafana\n    auth:\n      type: hmac\n      header: X-Grafana-Alerting-Signature\n      secret: \"{GRAFANA_SECRET}\"\n      timestamp_header: X-Grafana-Alerting-Timestamp\n"
    )
}

async fn app(server: &str) -> TestApp {
    spawn_app_with(AppOptions {
        extra_sources: hmac_source(),
        extra_server: server.into(),
        ..AppOptions::default()
    })
    .await
}

/// Sends a request head (and `body`, which may be shorter than it declares) on a raw
/// connection; returns the status line and how long the answer took, or None if none came
/// within `wait`.
async fn raw(app: &TestApp, head: &str, body: &[u8], wait: Duration) -> Option<(String, Duration)> {
    let addr = app.address.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(wait, conn.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    Some((
        text.lines().next().unwrap_or_default().to_owned(),
        started.elapsed(),
    ))
}

fn head(path: &str, auth: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn an_unauthenticated_body_is_never_read() {
    let app = app("").await;
    // A megabyte announced, none of it sent: the wrong token is refused from the headers.
    let answer = raw(
        &app,
        &head(
            "/v1/alerts/generic",
            "Authorization: Bearer wrong\r\n",
            1_000_000,
        ),
        b"{",
        Duration::from_secs(3),
    )
    .await;
    let (status, _) = answer.expect("answered before the body arrived");
    assert!(status.contains("401"), "{status}");
    // Declared too large: refused before reading, authenticated or not.
    let (status, _) = raw(
        &app,
        &head(
            "/v1/alerts/generic",
            &format!("Authorization: Bearer {SOURCE_TOKEN}\r\n"),
            2_000_000,
        ),
        b"",
        Duration::from_secs(3),
    )
    .await
    .expect("answered");
    assert!(status.contains("413"), "{status}");
}

#[tokio::test]
async fn slow_bodies_time_out() {
    let app = app("  body_timeout_ms: 500\n").await;
    let (status, took) = raw(
        &app,
        &head(
            "/v1/alerts/generic",
            &format!("Authorization: Bearer {SOURCE_TOKEN}\r\n"),
            100,
        ),
        b"{\"t",
        Duration::from_secs(5),
    )
    .await
    .expect("answered");
    assert!(status.contains("408"), "{status}");
    assert!(took < Duration::from_secs(5));
}

#[tokio::test]
async fn unauthenticated_bodies_share_a_bounded_budget() {
    let app = app("  unauthenticated_body_budget_bytes: 1000\n").await;
    // One HMAC request holds 800 bytes of the budget while its body trickles in...
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut holder = tokio::net::TcpStream::connect(&addr).await.unwrap();
    holder
        .write_all(head("/v1/alerts/grafana", "", 800).as_bytes())
        .await
        .unwrap();
    holder.write_all(b"{").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so a second one cannot take 800 more: 503, at once.
    let (status, _) = raw(
        &app,
        &head("/v1/alerts/grafana", "", 800),
        b"{",
        Duration::from_secs(3),
    )
    .await
    .expect("answered at once");
    assert!(status.contains("503"), "{status}");
    // Authenticated sources are not held by it.
    let r = app
        .post_alert(
            "generic",
            &json!({"title": "t", "user": {"email": "x@example.com"}}),
        )
        .await;
    assert_eq!(r.status(), 202);
    drop(holder);
}

fn sign(ts: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(GRAFANA_SECRET.as_bytes()).unwrap();
    m.update(ts.as_bytes());
    m.update(b":");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

async fn post_signed(app: &TestApp, body: &[u8], ts: &str, sig: &str) -> u16 {
    app.http
        .post(format!("{}/v1/alerts/grafana", app.address))
        .header("content-type", "application/json")
        .header("X-Grafana-Alerting-Timestamp", ts)
        .header("X-Grafana-Alerting-Signature", sig)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_signed_request_is_accepted_once_in_any_spelling_and_across_a_restart() {
    let app = app("").await;
    let body = serde_json::to_vec(&json!({"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "x"}, "annotations": {}, "fingerprint": "f1"}]})).unwrap();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sig = sign(&ts, &body);
    assert_eq!(post_signed(&app, &body, &ts, &sig).await, 202);
    for replay in [
        sig.clone(),
        sig.to_uppercase(),
        format!("{sig},x"),
        format!("00,{sig}"),
    ] {
        assert_eq!(
            post_signed(&app, &body, &ts, &replay).await,
            401,
            "{replay}"
        );
    }
    // Another process (a restart, or a replica on the same store) refuses it too.
    let app = app.restart().await;
    assert_eq!(post_signed(&app, &body, &ts, &sig).await, 401);
}

#[tokio::test]
async fn a_flood_of_refusals_is_counted_not_chained_one_by_one() {
    let app = app("").await;
    let before = app.audit("").await.len();
    for _ in 0..200 {
        let r = app
            .http
            .post(format!("{}/v1/alerts/generic", app.address))
            .bearer_auth("wrong-token")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(
        app.audit("").await.len(),
        before,
        "no audit row per refusal"
    );
    app.ctx.flush_refusals().await;
    let rejected = app.audit("kind=alert.rejected").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].event.data["count"], 200);
    assert_eq!(rejected[0].event.data["reason"], "unauthenticated");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "lockout_alerts_rejected_total{reason=\"unauthenticated\",source=\"generic\"} 200"
        ) || metrics.contains(
            "lockout_alerts_rejected_total{source=\"generic\",reason=\"unauthenticated\"} 200"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_routers_own_404_and_405_carry_the_error_body() {
    let app = app("").await;
    let r = app
        .http
        .get(format!("{}/no/such/route", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    let r = app
        .http
        .delete(format!("{}/v1/alerts/generic", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let allow = r.headers()["allow"].to_str().unwrap().to_owned();
    assert!(
        allow.contains("POST") && allow.contains("GET"),
        "the Allow header is kept: {allow}"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed", "{v}");
    // A handler's own 404 keeps its message.
    let (s, v) = app
        .get_json(
            "/v1/approvals/apr_nope",
            &token("v@example.com", &["secops"]),
        )
        .await;
    assert_eq!(s, 404);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("apr_nope"),
        "{v}"
    );
}

#[tokio::test]
async fn an_alert_naming_too_many_users_is_held_for_a_human_not_fanned_out() {
    let receiver = start_receiver();
    let app = spawn_app_with(AppOptions {
        extra_sources: "  sentinel:\n    format: sentinel\n    auth: { type: bearer, token: \"sentinel-token\" }\n".into(),
        extra_yaml: format!(
            "notify:\n  soc: {{ url: \"{}\" }}\nnotifications:\n  alert_held: [soc]\nguards:\n  max_subjects_per_alert: 5\n",
            receiver.url
        ),
        ..AppOptions::default()
    })
    .await;
    let mut body: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/alerts/sentinel/logicapp-1password-anomalous-signin.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let entities: Vec<Value> = (0..30)
        .map(|i| json!({"kind": "Account", "properties": {"accountName": format!("user{i:04}"), "upnSuffix": "example.com"}}))
        .collect();
    body["object"]["properties"]["title"] = json!("brute force against 1Password");
    body["object"]["properties"]["severity"] = json!("High");
    body["object"]["properties"]["relatedEntities"] = json!(entities);
    let r = app
        .http
        .post(format!("{}/v1/alerts/sentinel", app.address))
        .bearer_auth("sentinel-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    let id = v["alert_ids"][0].as_str().unwrap().to_owned();
    let records = app.wait_for_audit("plan.held", &id).await;
    let held = records
        .iter()
        .find(|r| r.event.kind == "plan.held")
        .unwrap();
    assert_eq!(held.event.data["subjects"], 30);
    assert!(
        app.ctx
            .store
            .list_actions(Some(&id))
            .await
            .unwrap()
            .is_empty()
    );
    // One notification for the whole alert.
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.texts().is_empty() {
        assert!(Instant::now() < deadline, "no notification");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let texts = receiver.texts();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("held for a human"), "{texts:?}");
    // A legitimate alert is not held behind it.
    let r = app
        .post_alert("generic", &brute_force_alert("alice@example.com"))
        .await;
    let v: Value = r.json().await.unwrap();
    app.wait_for_audit("action.succeeded", v["alert_ids"][0].as_str().unwrap())
        .await;
}

#[tokio::test]
async fn readyz_does_not_request_a_token_per_probe_nor_echo_the_apis_error() {
    // 1Password's token endpoint is down from the start: no token is ever cached.
    let fake = start_fake(fake_config(lockout::sandbox::sample_users()));
    fake.handle.set_token_endpoint_down(true);
    let dir = tempfile::tempdir().unwrap();
    write_settings(dir.path(), &fake, &AppOptions::default());
    let app = match start_in(dir, fake).await {
        Ok(a) => a,
        Err((e, _, _)) => panic!("{e}"),
    };
    let before = app.fake().token_requests();
    for _ in 0..10 {
        let r = app
            .http
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        let v: Value = r.json().await.unwrap();
        let why = v["error"]["details"]["checks"]["users_api"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(why.starts_with("no token: "), "{why}");
        assert!(why.len() < 40, "a short reason, not the API's text: {why}");
    }
    let asked = app.fake().token_requests() - before;
    assert!(
        asked <= 4,
        "ten probes asked for {asked} tokens (one check, with its retries, at most)"
    );
}

#[tokio::test]
async fn a_nul_in_a_reason_is_a_400_on_every_store() {
    let app = app("").await;
    let (s, v) = app
        .post_json(
            &format!("/v1/users/{ALICE}/suspend"),
            &token("ana@example.com", &["secops"]),
            &json!({"reason": "phished\u{0}"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(app.ctx.store.list_actions(None).await.unwrap().is_empty());
}
