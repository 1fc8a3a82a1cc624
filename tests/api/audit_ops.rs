//! The audit trail beyond the service: forwarding to a SIEM (at least once, in order, with a
//! cursor in the store) and retention that keeps the chain verifiable.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn every_record_is_forwarded_in_order_despite_an_outage() {
    let receiver = start_receiver();
    let extra = format!(
        "audit:\n  forward: {{ url: \"{}\", format: webhook, batch_size: 5, interval_ms: 50 }}\n",
        receiver.url
    );
    let app = spawn_app_with(AppOptions {
        extra_yaml: extra,
        ..AppOptions::default()
    })
    .await;
    let resp: Value = app
        .post_alert("generic", &brute_force_alert("alice@example.com"))
        .await
        .json()
        .await
        .unwrap();
    app.wait_for_audit("action.succeeded", resp["alert_ids"][0].as_str().unwrap())
        .await;
    receiver
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let resp: Value = app
        .post_alert("generic", &brute_force_alert("bob@example.com"))
        .await
        .json()
        .await
        .unwrap();
    app.wait_for_audit("action.succeeded", resp["alert_ids"][0].as_str().unwrap())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    receiver
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let total = app.audit("").await.len();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seqs: Vec<i64> = receiver
            .bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b["records"].as_array().cloned().unwrap_or_default())
            .map(|r| r["seq"].as_i64().unwrap())
            .collect();
        let in_order = seqs.windows(2).all(|w| w[0] < w[1]);
        seqs.dedup();
        if seqs.len() >= total {
            assert!(in_order, "records arrive in chain order");
            assert_eq!(
                seqs[..total],
                (1..=total as i64).collect::<Vec<_>>()[..],
                "no gap"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "forwarded {} of {total}",
            seqs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn lockout(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lockout"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("USER", "auditor")
        .output()
        .unwrap()
}

#[tokio::test]
async fn retention_prunes_on_request_and_the_chain_still_verifies() {
    let app = spawn_app().await;
    let resp: Value = app
        .post_alert("generic", &brute_force_alert("alice@example.com"))
        .await
        .json()
        .await
        .unwrap();
    app.wait_for_audit("action.succeeded", resp["alert_ids"][0].as_str().unwrap())
        .await;
    let (_fake, dir) = app.shutdown().await;
    let config = dir.path().join("lockout.yaml");
    let c = config.clone();
    let refused = tokio::task::spawn_blocking(move || {
        lockout(&c, &["audit", "prune", "--older-than-days", "0"])
    })
    .await
    .unwrap();
    assert!(!refused.status.success(), "pruning needs the explicit flag");
    let c = config.clone();
    let out = tokio::task::spawn_blocking(move || {
        lockout(
            &c,
            &[
                "audit",
                "prune",
                "--older-than-days",
                "0",
                "--yes-i-know-what-im-doing",
            ],
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = store_of(dir.path()).await;
    use lockout::store::Store;
    let left = store.audit_chain(0, 1000).await.unwrap();
    assert_eq!(left.len(), 1, "only the record of the pruning: {left:#?}");
    assert_eq!(left[0].event.kind, "audit.pruned");
    assert_eq!(left[0].event.actor, "admin:auditor");
    let c = config.clone();
    let verify = tokio::task::spawn_blocking(move || lockout(&c, &["audit", "verify"]))
        .await
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("ok: 1 audit records"),
        "the record of the pruning continues the chain"
    );
    // The anchor must match: a forged anchor breaks verification.
    let updated = sqlx::query("UPDATE audit_anchors SET hash = 'forged'")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1);
    let verify = tokio::task::spawn_blocking(move || lockout(&config, &["audit", "verify"]))
        .await
        .unwrap();
    assert!(
        !verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
