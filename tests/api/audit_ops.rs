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

/// An app whose audit trail is checkpointed with a key kept outside the database.
async fn checkpointed_app() -> (TestApp, std::path::PathBuf) {
    let keys = tempfile::tempdir().unwrap().keep();
    let key = keys.join("checkpoint.key");
    std::fs::write(&key, "checkpoint-signing-key-0123456789\n").unwrap();
    let app = spawn_app_with(AppOptions {
        extra_yaml: format!(
            "audit:\n  checkpoint: {{ key_file: \"{}\", interval_secs: 3600 }}\n",
            key.display()
        ),
        ..AppOptions::default()
    })
    .await;
    for email in ["alice@example.com", "bob@example.com"] {
        let resp: Value = app
            .post_alert("generic", &brute_force_alert(email))
            .await
            .json()
            .await
            .unwrap();
        app.wait_for_audit("action.succeeded", resp["alert_ids"][0].as_str().unwrap())
            .await;
    }
    (app, keys)
}

/// Runs `lockout` against the app's config in a blocking task.
async fn run(app: &TestApp, args: &'static [&'static str]) -> std::process::Output {
    let config = app.dir.path().join("lockout.yaml");
    tokio::task::spawn_blocking(move || lockout(&config, args))
        .await
        .unwrap()
}

/// Deletes the last `n` audit records as someone with write access to the database would.
async fn cut_tail(store: &lockout::store::SqlStore, n: i64) {
    let lift = if store.is_postgres() {
        "ALTER TABLE audit DISABLE TRIGGER audit_no_delete"
    } else {
        "DROP TRIGGER audit_no_delete"
    };
    sqlx::query(lift).execute(store.pool()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM audit WHERE seq > (SELECT MAX(seq) FROM audit) - {n}"
    )))
    .execute(store.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_signed_checkpoint_reveals_a_cut_or_rewritten_tail() {
    let (app, keys) = checkpointed_app().await;
    let checkpoint = run(&app, &["audit", "checkpoint"]).await;
    assert!(
        checkpoint.status.success(),
        "{}",
        String::from_utf8_lossy(&checkpoint.stderr)
    );
    let file = keys.join("checkpoints.jsonl");
    std::fs::write(&file, &checkpoint.stdout).unwrap();
    let file_arg: &'static str = Box::leak(file.display().to_string().into_boxed_str());
    let args: &'static [&'static str] =
        Box::leak(vec!["audit", "verify", "--checkpoint", file_arg].into_boxed_slice());
    let ok = run(&app, args).await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let (fake, dir) = app.shutdown().await;
    let app = match start_in(dir, fake).await {
        Ok(a) => a,
        Err((e, _, _)) => panic!("{e}"),
    };
    // Cut the tail: the chain that is left is consistent, and only the checkpoint tells.
    let store = store_of(app.dir.path()).await;
    cut_tail(&store, 3).await;
    let plain = run(&app, &["audit", "verify"]).await;
    assert!(plain.status.success(), "what a chain alone cannot see");
    let checked = run(&app, args).await;
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(!checked.status.success(), "{stdout}");
    assert!(
        stdout.contains("BROKEN") && stdout.contains("truncated"),
        "{stdout}"
    );
    // Rewrite it consistently (new records chained onto the cut): still caught.
    use lockout::store::Store;
    for _ in 0..5 {
        store
            .append_audit(vec![lockout::audit::AuditEvent::new(
                "forged.record",
                "system",
            )])
            .await
            .unwrap();
    }
    let plain = run(&app, &["audit", "verify"]).await;
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stdout)
    );
    let checked = run(&app, args).await;
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(!checked.status.success(), "{stdout}");
    assert!(stdout.contains("BROKEN"), "{stdout}");
    // A forged checkpoint is refused.
    std::fs::write(
        &file,
        String::from_utf8_lossy(&checkpoint.stdout).replace("\"sig\":\"", "\"sig\":\"0"),
    )
    .unwrap();
    let forged = run(&app, args).await;
    assert!(
        String::from_utf8_lossy(&forged.stdout).contains("not signed"),
        "{}",
        String::from_utf8_lossy(&forged.stdout)
    );
}

#[tokio::test]
async fn retention_anchors_are_signed_and_an_inserted_one_is_refused() {
    let (app, _keys) = checkpointed_app().await;
    let pruned = run(
        &app,
        &[
            "audit",
            "prune",
            "--older-than-days",
            "0",
            "--yes-i-know-what-im-doing",
        ],
    )
    .await;
    assert!(
        pruned.status.success(),
        "{}",
        String::from_utf8_lossy(&pruned.stderr)
    );
    let ok = run(&app, &["audit", "verify"]).await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    // An anchor row inserted by someone who can write the database (to hide a cut head).
    let store = store_of(app.dir.path()).await;
    sqlx::query("INSERT INTO audit_anchors (seq, hash, pruned_at, pruned_by) VALUES (999999, 'x', '2099-01-01T00:00:00.000000Z', 'mallory')")
        .execute(store.pool())
        .await
        .unwrap();
    let forged = run(&app, &["audit", "verify"]).await;
    let stdout = String::from_utf8_lossy(&forged.stdout);
    assert!(!forged.status.success(), "{stdout}");
    assert!(
        stdout.contains("not signed by the checkpoint key"),
        "{stdout}"
    );
}
