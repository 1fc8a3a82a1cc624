//! Crash safety with real processes: `lockout serve` aborts at a failure point (as a power cut
//! or SIGKILL would), then a new process on the same store finishes the work exactly once.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lockout::store::{ActionState, Store};
use serde_json::Value;

use crate::helpers::*;

pub(crate) struct Serve(pub(crate) Child);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn serve(config: &std::path::Path) -> Serve {
    Serve(
        Command::new(env!("CARGO_BIN_EXE_lockout"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

pub(crate) async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "lockout serve did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes the config with `failpoint` (or none) on a fixed port.
pub(crate) fn configure(
    dir: &std::path::Path,
    fake: &lockout::sandbox::RunningFake,
    port: u16,
    failpoint: Option<&str>,
    lease_secs: u64,
) -> std::path::PathBuf {
    let path = dir.join("lockout.yaml");
    if !path.exists() {
        // Written once: the restart must find the same store.
        write_settings(dir, fake, &AppOptions::default());
    }
    let mut yaml = std::fs::read_to_string(&path).unwrap();
    yaml = yaml
        .lines()
        .filter(|l| !l.contains("danger_failpoint") && !l.contains("claim_ttl_secs"))
        .collect::<Vec<_>>()
        .join("\n");
    yaml = yaml.replace(
        "listen: \"127.0.0.1:0\"",
        &format!("listen: \"127.0.0.1:{port}\""),
    );
    yaml = yaml.replace(
        "  scheduler_interval_ms: 100",
        &format!("  scheduler_interval_ms: 100\n  claim_ttl_secs: {lease_secs}"),
    );
    if let Some(f) = failpoint {
        yaml = yaml.replace(
            &format!("  claim_ttl_secs: {lease_secs}"),
            &format!("  claim_ttl_secs: {lease_secs}\n  danger_failpoint: {f}"),
        );
    }
    std::fs::write(&path, yaml).unwrap();
    path
}

async fn crash_then_recover(failpoint: &str, suspends_before_restart: usize, lease_secs: u64) {
    let fake = start_fake(fake_config(lockout::sandbox::sample_users()));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let config = configure(dir.path(), &fake, port, Some(failpoint), lease_secs);
    let mut first = serve(&config);
    wait_ready(&http, &base).await;
    // The worker may reach the failure point (and the process die) before the 202 is written:
    // the alert is committed by then, so its id is read from the store if the answer is lost.
    let answered: Option<Value> = match http
        .post(format!("{base}/v1/alerts/generic"))
        .bearer_auth(SOURCE_TOKEN)
        .json(&brute_force_alert("alice@example.com"))
        .send()
        .await
    {
        Ok(r) => r.json().await.ok(),
        Err(_) => None,
    };
    // The process dies at the failure point.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = first.0.try_wait().unwrap() {
            assert!(!status.success(), "it aborted");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failpoint {failpoint} was not reached"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let suspend_path = format!("/users/{ALICE}:suspend");
    assert_eq!(
        fake.handle.requests_to(&suspend_path).len(),
        suspends_before_restart
    );

    // A new process, same store: the expired claim is taken again and finished.
    let config = configure(dir.path(), &fake, port, None, lease_secs);
    let _second = serve(&config);
    wait_ready(&http, &base).await;
    let store = store_of(dir.path()).await;
    let alert_id = match answered {
        Some(resp) => resp["alert_ids"][0].as_str().unwrap().to_owned(),
        None => {
            let all = store
                .list_alerts(&lockout::store::AlertQuery {
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(all.len(), 1, "the one alert was committed before the crash");
            all[0].id.clone()
        }
    };
    // Within 20 s, whatever the lease: the new process takes the dead one's claim at once.
    let deadline = Instant::now() + Duration::from_secs(20);
    let action = loop {
        let actions = store.list_actions(Some(&alert_id)).await.unwrap();
        if let Some(a) = actions.first().filter(|a| !a.state.is_open()) {
            break a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the action was not finished after restart: {actions:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        fake.handle.requests_to(&suspend_path).len(),
        1,
        "exactly one :suspend in effect"
    );
    assert_eq!(
        fake.handle.user(ALICE).unwrap().state,
        lockout::users_api::UserState::Suspended
    );
    let records = store.audit_chain(0, 1000).await.unwrap();
    let kinds: Vec<&str> = records
        .iter()
        .filter(|r| r.event.action_id.as_deref() == Some(action.id.as_str()))
        .map(|r| r.event.kind.as_str())
        .collect();
    assert!(
        kinds.contains(&"action.claimed") && kinds.contains(&"action.reclaimed"),
        "both attempts are audited: {kinds:?}"
    );
    assert!(
        matches!(action.state, ActionState::Succeeded | ActionState::Skipped),
        "{action:?}"
    );
}

#[tokio::test]
async fn a_crash_between_claim_and_call_completes_once_after_restart() {
    crash_then_recover("after_claim", 0, 1).await;
}

#[tokio::test]
async fn a_crash_after_the_call_does_not_suspend_twice() {
    crash_then_recover("after_call", 1, 1).await;
}

#[tokio::test]
async fn a_restarted_instance_takes_its_predecessors_claims_without_waiting_for_the_lease() {
    // A two-minute lease: the restart must not wait it out.
    crash_then_recover("after_claim", 0, 120).await;
}

#[tokio::test]
async fn a_live_worker_keeps_its_claim_however_long_the_api_takes() {
    let fake = start_fake(fake_config(lockout::sandbox::sample_users()));
    let dir = tempfile::tempdir().unwrap();
    write_settings(dir.path(), &fake, &AppOptions::default());
    let path = dir.path().join("lockout.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap().replace(
        "  scheduler_interval_ms: 100",
        "  scheduler_interval_ms: 100\n  claim_ttl_secs: 1",
    );
    std::fs::write(&path, yaml).unwrap();
    // Each call takes three leases; the other worker must not take the action meanwhile.
    fake.handle.set_latency(Duration::from_millis(3000));
    let app = match start_in(dir, fake).await {
        Ok(app) => app,
        Err((e, _, _)) => panic!("{e}"),
    };
    let id = app
        .post_alert_id("generic", &brute_force_alert("alice@example.com"))
        .await;
    let records = app.wait_for_audit("action.succeeded", &id).await;
    assert!(
        !records.iter().any(|r| r.event.kind == "action.reclaimed"),
        "{:?}",
        kinds(&records)
    );
    assert_eq!(
        app.fake()
            .requests_to(&format!("/users/{ALICE}:suspend"))
            .len(),
        1
    );
}
