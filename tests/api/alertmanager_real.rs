//! A real sender: Prometheus Alertmanager (Debian package `prometheus-alertmanager`) started
//! on loopback, pointed at lockout with a bearer-token webhook. Alertmanager re-sends the
//! group on every repeat interval; lockout must store the alert exactly once.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

struct Alertmanager(Child);
impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_real_alertmanager_delivers_one_stored_alert_despite_resends() {
    if !std::path::Path::new(BINARY).exists() {
        skip_outside_ci(
            "the real Alertmanager test",
            &format!("{BINARY} is not installed (apt-get install prometheus-alertmanager)"),
        );
        return;
    }
    let app = spawn_app_with(AppOptions {
        extra_sources: "  alertmanager:\n    format: alertmanager\n    auth: { type: bearer, token: \"am-token\" }\n".into(),
        ..AppOptions::default()
    })
    .await;
    let config = app.dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            r#"route:
  receiver: lockout
  group_by: [alertname, user]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: lockout
    webhook_configs:
      - url: "{}/v1/alerts/alertmanager"
        send_resolved: true
        http_config:
          authorization: {{ type: Bearer, credentials: am-token }}
"#,
            app.address
        ),
    )
    .unwrap();
    let port = free_port();
    let storage = app.dir.path().join("am-data");
    let _am = Alertmanager(
        Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let am = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while app
        .http
        .get(format!("{am}/-/ready"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "Alertmanager did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let posted = app
        .http
        .post(format!("{am}/api/v2/alerts"))
        .json(&json!([{
            "labels": {"alertname": "onepassword-brute-force", "user": "alice@example.com", "severity": "critical"},
            "annotations": {"summary": "brute force against alice's 1Password sign-in"}
        }]))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);

    // Wait (bounded) until Alertmanager has delivered at least twice.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let received = app.audit("kind=alert.received").await;
        let duplicates = app.audit("kind=alert.duplicate").await;
        if !received.is_empty() && !duplicates.is_empty() {
            assert_eq!(received.len(), 1, "stored exactly once: {received:#?}");
            let subjects = &received[0].event.data["subjects"];
            assert_eq!(subjects[0]["email"], "alice@example.com");
            assert_eq!(received[0].event.actor, "source:alertmanager");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager did not deliver and re-send within 40 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let alert_id = app.audit("kind=alert.received").await[0]
        .event
        .alert_id
        .clone()
        .unwrap();
    app.wait_for_audit("action.succeeded", &alert_id).await;
    assert_eq!(
        app.fake()
            .requests_to(&format!("/users/{ALICE}:suspend"))
            .len(),
        1
    );
}
