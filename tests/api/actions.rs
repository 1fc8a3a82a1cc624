//! Actions at run time: dry-run, limits (per playbook and global, with concurrent workers),
//! skips, retries through a 429 storm and a token-endpoint outage, delayed steps across a
//! restart, notifications, and the audit chain.

use std::time::{Duration, Instant};

use lockout::store::{ActionState, Store};
use serde_json::{Value, json};

use crate::helpers::*;

const SUSPEND: &str =
    "name: s\non:\n  when: \"alert.title.contains('brute')\"\nsteps:\n  - suspend: {}\n";

async fn alert_for(app: &TestApp, email: &str) -> String {
    let resp: Value = app
        .post_alert("generic", &brute_force_alert(email))
        .await
        .json()
        .await
        .unwrap();
    resp["alert_ids"][0].as_str().unwrap().to_owned()
}

fn suspends(app: &TestApp) -> usize {
    app.fake()
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(":suspend"))
        .count()
}

#[tokio::test]
async fn dry_run_records_and_changes_nothing() {
    let pb = SUSPEND.replace("name: s\n", "name: s\nmode: dry_run\n");
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("dry.yaml", pb)],
        ..AppOptions::default()
    })
    .await;
    let id = alert_for(&app, "alice@example.com").await;
    let records = app.wait_for_audit("action.dry_run", &id).await;
    let dry = records
        .iter()
        .find(|r| r.event.kind == "action.dry_run")
        .unwrap();
    assert_eq!(dry.event.data["would"], "suspend");
    assert_eq!(suspends(&app), 0);
    assert_eq!(
        app.ctx.store.list_actions(Some(&id)).await.unwrap()[0].state,
        ActionState::Skipped
    );
}

#[tokio::test]
async fn an_already_suspended_user_is_skipped() {
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("s.yaml", SUSPEND.into())],
        ..AppOptions::default()
    })
    .await;
    let id = alert_for(&app, "mallory@example.com").await;
    let records = app.wait_for_audit("action.skipped", &id).await;
    assert_eq!(
        records
            .iter()
            .find(|r| r.event.kind == "action.skipped")
            .unwrap()
            .event
            .data["reason"],
        "already suspended"
    );
    assert_eq!(suspends(&app), 0);
}

#[tokio::test]
async fn a_second_alert_for_a_user_being_suspended_attaches() {
    let pb = "name: s\non:\n  when: \"alert.title.contains('brute')\"\nsteps:\n  - suspend: { approval: { approvers: [secops] } }\n";
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("s.yaml", pb.into())],
        ..AppOptions::default()
    })
    .await;
    let first = alert_for(&app, "alice@example.com").await;
    app.wait_for_audit("approval.requested", &first).await;
    let mut second = brute_force_alert("alice@example.com");
    second["title"] = json!("another brute force burst");
    let resp: Value = app
        .post_alert("generic", &second)
        .await
        .json()
        .await
        .unwrap();
    let second = resp["alert_ids"][0].as_str().unwrap();
    app.wait_for_audit("action.attached", second).await;
    assert_eq!(
        app.ctx.store.list_actions(None).await.unwrap().len(),
        1,
        "one open action per user and kind"
    );
}

#[tokio::test]
async fn the_per_playbook_limit_holds_the_excess_for_approval() {
    let pb = SUSPEND.replace("steps:", "guards:\n  limit: { max: 1, per: 1h }\nsteps:");
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("s.yaml", pb)],
        ..AppOptions::default()
    })
    .await;
    let a = alert_for(&app, "alice@example.com").await;
    app.wait_for_audit("action.succeeded", &a).await;
    let b = alert_for(&app, "bob@example.com").await;
    let records = app.wait_for_audit("limit.held", &b).await;
    assert!(
        records
            .iter()
            .any(|r| r.event.kind == "limit.hit" && r.event.data["scope"] == "playbook")
    );
    assert_eq!(suspends(&app), 1);
    // A human can let it through.
    let approval = app.pending_approval_for(&b).await;
    assert_eq!(approval["reason"], "playbook_limit");
    let (s, _) = app
        .post_json(
            &format!("/v1/approvals/{}/approve", approval["id"].as_str().unwrap()),
            &token("lead@example.com", &["secops"]),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    app.wait_for_audit("action.succeeded", &b).await;
    assert_eq!(suspends(&app), 2);
}

#[tokio::test]
async fn the_global_limit_holds_across_concurrent_workers_and_resets() {
    let receiver = start_receiver();
    let extra = format!(
        "guards:\n  global_limit: {{ max: 2, per_secs: 3600 }}\nnotify:\n  ops: {{ url: \"{}\" }}\nnotifications:\n  limit_tripped: [ops]\n",
        receiver.url
    );
    let mut users = lockout::sandbox::sample_users();
    users.extend(lockout::sandbox::SeedUser::generated(8));
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("s.yaml", SUSPEND.into())],
        extra_yaml: extra,
        users,
        ..AppOptions::default()
    })
    .await;
    // Eight alerts at once: two workers race for the two slots.
    let mut ids = vec![];
    for i in 0..8 {
        ids.push(alert_for(&app, &format!("user{i:04}@example.com")).await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let actions = app.ctx.store.list_actions(None).await.unwrap();
        let settled = actions
            .iter()
            .filter(|a| {
                matches!(
                    a.state,
                    ActionState::Succeeded | ActionState::PendingApproval
                )
            })
            .count();
        if actions.len() == 8 && settled == 8 {
            assert_eq!(
                actions
                    .iter()
                    .filter(|a| a.state == ActionState::Succeeded)
                    .count(),
                2
            );
            break;
        }
        assert!(Instant::now() < deadline, "{actions:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(suspends(&app), 2, "never more than the limit");
    let trips = app.audit("kind=limit.tripped").await;
    assert_eq!(trips.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !receiver
        .texts()
        .iter()
        .any(|t| t.contains("blast-radius limit tripped"))
    {
        assert!(
            Instant::now() < deadline,
            "no limit notification: {:?}",
            receiver.texts()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // While tripped, even a new alert waits; an admin reset ends the trip.
    let (s, body) = app
        .post_json("/v1/limits/reset", ADMIN_TOKEN, &json!({}))
        .await;
    assert_eq!((s, body["reset"].as_bool()), (200, Some(true)));
    assert_eq!(app.audit("kind=limit.reset").await.len(), 1);
}

#[tokio::test]
async fn a_429_storm_is_waited_out() {
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("s.yaml", SUSPEND.into())],
        ..AppOptions::default()
    })
    .await;
    app.fake().rate_limit_next(3, Some(1));
    let started = Instant::now();
    let id = alert_for(&app, "alice@example.com").await;
    let records = app.wait_for_audit("action.succeeded", &id).await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "Retry-After: 1 three times"
    );
    let statuses: Vec<u64> = records
        .iter()
        .filter(|r| r.event.kind == "api.call")
        .filter_map(|r| r.event.data["status"].as_u64())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(suspends(&app), 1);
}

#[tokio::test]
async fn the_token_endpoint_down_then_back() {
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("s.yaml", SUSPEND.into())],
        ..AppOptions::default()
    })
    .await;
    app.fake().set_token_endpoint_down(true);
    app.fake().expire_tokens();
    let id = alert_for(&app, "bob@example.com").await;
    let records = app.wait_for_audit("action.retry", &id).await;
    let retry = records
        .iter()
        .find(|r| r.event.kind == "action.retry")
        .unwrap();
    assert_eq!(retry.event.data["error_kind"], "token_endpoint");
    app.fake().set_token_endpoint_down(false);
    app.wait_for_audit("action.succeeded", &id).await;
    assert_eq!(suspends(&app), 1);
}

#[tokio::test]
async fn a_delayed_reactivation_survives_a_restart_and_an_analyst_can_cancel_it() {
    let pb = "name: s\non:\n  when: \"alert.title.contains('brute')\"\nsteps:\n  - suspend: {}\n  - reactivate: { after: 2s }\n";
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("s.yaml", pb.into())],
        ..AppOptions::default()
    })
    .await;
    let id = alert_for(&app, "alice@example.com").await;
    app.wait_for_audit("action.succeeded", &id).await;
    let reactivation = app
        .ctx
        .store
        .list_actions(Some(&id))
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.kind == lockout::store::ActionKind::Reactivate)
        .unwrap();
    assert_eq!(reactivation.state, ActionState::Scheduled);
    let app = app.restart().await;
    app.wait_for_action_state(&reactivation.id, ActionState::Succeeded)
        .await;
    assert_eq!(
        app.fake().user(ALICE).unwrap().state,
        lockout::users_api::UserState::Active
    );

    // Again, but an analyst suspends the user by hand in between: the reactivation is cancelled.
    let id = alert_for(&app, "bob@example.com").await;
    let mut records = app.wait_for_audit("action.succeeded", &id).await;
    records.retain(|r| r.event.kind == "action.scheduled");
    let reactivation = app
        .ctx
        .store
        .list_actions(Some(&id))
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.kind == lockout::store::ActionKind::Reactivate)
        .unwrap();
    let (s, _) = app
        .post_json(
            "/v1/users/bob@example.com/suspend",
            &token("ana@example.com", &["secops"]),
            &json!({"reason": "keep suspended, INC-9"}),
        )
        .await;
    assert_eq!(s, 202);
    app.wait_for_action_state(&reactivation.id, ActionState::Cancelled)
        .await;
    // Past the time it would have run: it does not.
    app.settle_after(&reactivation.not_before).await;
    assert_eq!(
        app.fake().user("B4L2NQR3YKSWJCLXJ2XMTQV5UF").unwrap().state,
        lockout::users_api::UserState::Suspended
    );
    assert_eq!(
        app.fake()
            .requests_to("B4L2NQR3YKSWJCLXJ2XMTQV5UF:reactivate")
            .len(),
        0
    );
}

#[tokio::test]
async fn notifications_are_sent_for_pending_approvals_failures_and_notify_steps() {
    let receiver = start_receiver();
    let extra = format!(
        "notify:\n  secops: {{ url: \"{}\" }}\n  slack: {{ url: \"{}\", format: slack }}\nnotifications:\n  approval_pending: [secops]\n  action_failed: [slack]\n",
        receiver.url, receiver.url
    );
    let pb = "name: n\non:\n  when: \"alert.title.contains('brute')\"\nsteps:\n  - suspend: {}\n  - notify: { to: secops, message: \"Suspended {{ user.email }} after {{ alert.title }}\" }\n";
    let pb2 = "name: m\non:\n  when: \"alert.title.contains('offboarding')\"\nsteps:\n  - suspend: { approval: { approvers: [it] } }\n";
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("n.yaml", pb.into()), ("m.yaml", pb2.into())],
        extra_yaml: extra,
        ..AppOptions::default()
    })
    .await;
    let id = alert_for(&app, "alice@example.com").await;
    app.wait_for_audit("notify.sent", &id).await;
    let mut offboarding = brute_force_alert("dave@example.com");
    offboarding["title"] = json!("offboarding: dave");
    app.post_alert("generic", &offboarding).await;
    // Wendy is the last owner: the suspension fails, which is notified.
    app.post_alert(
        "generic",
        &brute_force_alert("wendy_appleseed@agilebits.com"),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let texts = receiver.texts();
        let sent = texts.iter().any(|t| {
            t == "Suspended alice@example.com after brute force against 1Password sign-in"
        }) && texts.iter().any(|t| t.contains("needs 1 of [it]"))
            && texts
                .iter()
                .any(|t| t.contains("failed") && t.contains("no_owner_remain"));
        if sent {
            break;
        }
        assert!(Instant::now() < deadline, "{texts:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A target that is down: the notify step is retried, and the failure audited.
    receiver
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let id = alert_for(&app, "bob@example.com").await;
    let records = app.wait_for_audit("notify.failed", &id).await;
    assert!(
        records
            .iter()
            .any(|r| r.event.kind == "notify.failed" && r.event.data["will_retry"] == true)
    );
    receiver
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    app.wait_for_audit("notify.sent", &id).await;
}

#[tokio::test]
async fn alerts_about_lockouts_own_actions_never_trigger_a_remediation() {
    let extra = "guards:\n  self_actors: [\"LOCKOUTAPPSERVICEACCOUNT01\"]\n".to_owned();
    let app = spawn_app_with(AppOptions {
        extra_yaml: extra,
        ..AppOptions::default()
    })
    .await;
    let mut alert = brute_force_alert("alice@example.com");
    alert["event"] = json!({"action": "suspend", "object_type": "user", "actor_uuid": "LOCKOUTAPPSERVICEACCOUNT01"});
    let resp: Value = app
        .post_alert("generic", &alert)
        .await
        .json()
        .await
        .unwrap();
    let id = resp["alert_ids"][0].as_str().unwrap();
    let records = app.wait_for_audit("plan.loop_prevented", id).await;
    assert!(records.iter().all(|r| r.event.kind != "plan.made"));
    assert_eq!(suspends(&app), 0);
}

#[tokio::test]
async fn the_audit_chain_verifies_exports_and_catches_tampering() {
    let app = spawn_app().await;
    let id = alert_for(&app, "alice@example.com").await;
    app.wait_for_audit("action.succeeded", &id).await;
    let jsonl = app
        .http
        .get(format!("{}/v1/audit/export?format=jsonl", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let records: Vec<lockout::audit::AuditRecord> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.len() > 5);
    lockout::audit::verify(lockout::audit::GENESIS_HASH, &records).unwrap();
    let csv = app
        .http
        .get(format!(
            "{}/v1/audit/export?format=csv&kind=api.call",
            app.address
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("seq,id,at,kind"));
    assert!(
        csv.lines().skip(1).all(|l| l.contains(",api.call,")),
        "{csv}"
    );
    let bad = app
        .http
        .get(format!("{}/v1/audit/export?format=xml", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let (fake, dir) = app.shutdown().await;
    let config = dir.path().join("lockout.yaml");
    let verify = |config: std::path::PathBuf| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lockout"))
            .arg("--config")
            .arg(config)
            .args(["audit", "verify"])
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking({
        let c = config.clone();
        move || verify(c)
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Someone with database access edits a record.
    let store = store_of(dir.path()).await;
    // The service itself cannot: the schema refuses updates of audit rows.
    let refused = sqlx::query("UPDATE audit SET actor = 'nobody' WHERE seq = 3")
        .execute(store.pool())
        .await;
    assert!(refused.is_err());
    let drop_trigger = if store.is_postgres() {
        "DROP TRIGGER audit_no_update ON audit"
    } else {
        "DROP TRIGGER audit_no_update"
    };
    sqlx::query(drop_trigger)
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET data = '{\"edited\":true}' WHERE seq = 4")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store.audit_chain(0, 10).await.unwrap().len() >= 4);
    let out = tokio::task::spawn_blocking(move || verify(config))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("seq 4"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(fake);
}
