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
    // The same manual path as the HTTP API: a manual.suspend request, then the action's
    // records, under the operator's name.
    let ops: Vec<_> = records
        .iter()
        .filter(|r| r.event.kind == "manual.suspend")
        .collect();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0].event.actor, "operator:test-operator");
    assert_eq!(ops[0].event.data["reason"], "phished, INC-1234");
    let outcome = |action: &Option<String>, kind: &str| {
        records
            .iter()
            .any(|r| &r.event.action_id == action && r.event.kind == kind)
    };
    assert!(outcome(&ops[0].event.action_id, "action.succeeded"));
    assert!(
        records
            .iter()
            .filter(|r| r.event.action_id == ops[0].event.action_id
                && ["action.succeeded", "api.call"].contains(&r.event.kind.as_str()))
            .all(|r| r.event.actor == "operator:test-operator"),
        "the action's records name the operator"
    );
    assert!(outcome(&ops[1].event.action_id, "action.failed"));
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

#[tokio::test]
async fn serve_that_cannot_start_leaves_no_database_and_no_audit_record() {
    let fake = start_fake(fake_config(lockout::sandbox::sample_users()));
    let dir = tempfile::tempdir().unwrap();
    write_settings(dir.path(), &fake, &AppOptions::default());
    let config = dir.path().join("lockout.yaml");
    let db = dir.path().join("lockout.db");
    let sqlite = std::env::var("LOCKOUT_TEST_STORE").as_deref() != Ok("postgres");
    // A missing playbooks folder: refused before the store is touched.
    let yaml = std::fs::read_to_string(&config).unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        yaml.replace(
            &format!("dir: \"{}\"", dir.path().join("playbooks").display()),
            "dir: \"/nonexistent/playbooks\"",
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || lockout(&broken, &["serve"]))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("playbook"));
    if sqlite {
        assert!(!db.exists(), "a failed start created the database");
    }
    // A busy port: refused before the store is touched.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let on_busy = dir.path().join("busy.yaml");
    std::fs::write(
        &on_busy,
        yaml.replace(
            "listen: \"127.0.0.1:0\"",
            &format!("listen: \"127.0.0.1:{port}\""),
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || lockout(&on_busy, &["serve"]))
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen"), "{stderr}");
    assert!(
        stderr.contains("configuration loaded"),
        "the log ran: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes off a terminal: {stderr:?}"
    );
    if sqlite {
        assert!(!db.exists(), "a failed start created the database");
    } else {
        let store = store_of(dir.path()).await;
        use lockout::store::Store;
        assert!(store.audit_chain(0, 10).await.unwrap().is_empty());
    }
    drop(busy);
}

#[tokio::test]
async fn cli_output_survives_a_closed_pipe_and_has_no_colour_off_a_terminal() {
    let fake = start_fake(fake_config(lockout::sandbox::SeedUser::generated(2000)));
    let dir = tempfile::tempdir().unwrap();
    write_settings(dir.path(), &fake, &AppOptions::default());
    let config = dir.path().join("lockout.yaml");
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lockout"))
            .arg("--config")
            .arg(&config)
            .args(["users", "list", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -c 10`: read a little, then close the pipe.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 10];
        std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
        drop(stdout);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success(),
        "a closed pipe ends the output quietly: {stderr}"
    );
    // A format typo names the valid ones.
    let out = Command::new(env!("CARGO_BIN_EXE_lockout"))
        .args([
            "playbooks",
            "test",
            "--format",
            "splnk",
            "--alert",
            "/dev/null",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("splunk") && stderr.contains("alertmanager"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_cli_refuses_a_protected_user_as_the_api_does() {
    let fake = start_fake(fake_config(lockout::sandbox::sample_users()));
    let dir = tempfile::tempdir().unwrap();
    write_settings(
        dir.path(),
        &fake,
        &AppOptions {
            extra_yaml: "guards:\n  protected: [\"bob@example.com\"]\n".into(),
            ..AppOptions::default()
        },
    );
    let config = dir.path().join("lockout.yaml");
    // By id: the guard names the e-mail, and the user's every name is checked.
    let out = tokio::task::spawn_blocking(move || {
        lockout(
            &config,
            &[
                "users",
                "suspend",
                "B4L2NQR3YKSWJCLXJ2XMTQV5UF",
                "--reason",
                "test",
            ],
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("protected by guard bob@example.com"),
        "{stderr}"
    );
    assert_eq!(fake.handle.requests_to(":suspend").len(), 0);
    let store = store_of(dir.path()).await;
    use lockout::store::Store;
    let records = store.audit_chain(0, 100).await.unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.event.kind == "guard.protected" && r.event.actor == "operator:test-operator")
    );
}

#[tokio::test]
async fn after_the_walkthrough_the_cli_sees_what_the_sandbox_service_did() {
    let dir = tempfile::tempdir().unwrap();
    let copy = Command::new("cp")
        .arg("-r")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sandbox = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockout"));
        cmd.current_dir(dir.path()).args(args);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LOCKOUT")) {
            cmd.env_remove(k);
        }
        cmd.env("LOCKOUT__SERVER__LISTEN", format!("127.0.0.1:{port}"));
        cmd
    };
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _serve = Kill(
        sandbox(&["serve"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Step 1 of the README's walkthrough.
    let r = http
        .post(format!("{base}/v1/alerts/generic"))
        .bearer_auth("sandbox-token")
        .json(&serde_json::json!({"id": "siem-1", "title": "brute force against 1Password", "severity": "high", "user": {"email": "alice@example.com"}, "labels": {"outcome": "success_after_failures"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // The CLI, a separate process, sees alice suspended (polling: the service keeps the
    // sandbox's users as it changes them).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = sandbox(&["users", "get", "alice@example.com", "--json"])
            .output()
            .unwrap();
        let user: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if user["state"] == "SUSPENDED" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the CLI still sees {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
