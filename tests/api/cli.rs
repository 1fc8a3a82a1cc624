//! The operator CLI, run as a process against the fake.

use std::process::Command;

use serde_json::Value;

use crate::helpers::*;

fn lockout(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lockout"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("USER", "test-operator")
        .output()
        .unwrap()
}

#[tokio::test]
async fn users_list_json_prints_the_apis_user_objects() {
    let fake = start_fake(fake_config(lockout::sandbox::sample_users()));
    let dir = tempfile::tempdir().unwrap();
    write_settings(dir.path(), &fake, &AppOptions::default());
    let config = dir.path().join("lockout.yaml");
    let out = tokio::task::spawn_blocking(move || lockout(&config, &["users", "list", "--json"]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let users: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users.len(), 8);
    let mut keys: Vec<_> = users[0].as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "create_time",
            "display_name",
            "email",
            "id",
            "path",
            "state"
        ]
    );
    let config = dir.path().join("lockout.yaml");
    let out = tokio::task::spawn_blocking(move || {
        lockout(
            &config,
            &["users", "list", "--state", "suspended", "--json"],
        )
    })
    .await
    .unwrap();
    let users: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["state"], "SUSPENDED");
}

#[tokio::test]
async fn an_operator_suspension_is_made_and_audited() {
    let fake = start_fake(fake_config(lockout::sandbox::sample_users()));
    let dir = tempfile::tempdir().unwrap();
    write_settings(dir.path(), &fake, &AppOptions::default());
    let config = dir.path().join("lockout.yaml");
    let out = tokio::task::spawn_blocking(move || {
        lockout(
            &config,
            &[
                "users",
                "suspend",
                "bob@example.com",
                "--reason",
                "phished, INC-1234",
                "--json",
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
    let user: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(user["state"], "SUSPENDED");
    assert_eq!(
        fake.handle
            .user("B4L2NQR3YKSWJCLXJ2XMTQV5UF")
            .unwrap()
            .state,
        lockout::users_api::UserState::Suspended
    );

    // A refusal is audited too, and the command fails with the API's message.
    let config = dir.path().join("lockout.yaml");
    let out = tokio::task::spawn_blocking(move || {
        lockout(
            &config,
            &["users", "suspend", WENDY_OWNER, "--reason", "test"],
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_owner_remain"));

    let store = store_of(dir.path()).await;
    use lockout::store::Store;
    let records = store.audit_chain(0, 100).await.unwrap();
    let ops: Vec<_> = records
        .iter()
        .filter(|r| r.event.kind == "operator.suspend")
        .collect();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0].event.actor, "operator:test-operator");
    assert_eq!(ops[0].event.data["reason"], "phished, INC-1234");
    assert_eq!(ops[0].event.data["ok"], true);
    assert_eq!(ops[1].event.data["ok"], false);
    assert!(
        records
            .iter()
            .any(|r| r.event.kind == "api.call" && r.event.data["operation"] == "suspend_user")
    );
    let verify = tokio::task::spawn_blocking({
        let config = dir.path().join("lockout.yaml");
        move || lockout(&config, &["audit", "verify"])
    })
    .await
    .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
