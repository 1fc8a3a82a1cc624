//! The console in a real browser (Debian's chromium, driven by playwright-core) against a real
//! OpenID provider (oidc-provider) acting as the company's IdP: two approvers sign in, approve
//! a suspension that needs a quorum of two, and see the user suspended and their decisions in
//! the alert's timeline and the audit page. Screenshots of each page at 1280 and 390 px go to
//! `$LOCKOUT_SCREENSHOTS` (the committed ones, in `docs/console/`, are made that way) or to
//! `target/console-screenshots`. Skipped, with the reason, only outside CI when chromium or
//! the npm packages are missing (`.ci/run` installs them).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::helpers::*;

const CLIENT_SECRET: &str = "console-oidc-client-secret";

struct Idp {
    child: Child,
    port: u16,
    /// Kept open: the provider logs to it, and a closed pipe would end it.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_console_signs_in_approves_with_quorum_two_and_shows_the_timeline() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !dir.join("node_modules/playwright-core").exists() {
        return skip_outside_ci(
            "the browser test",
            "playwright-core is not installed (run `npm ci --prefix tests/browser`)",
        );
    }
    if !std::path::Path::new(&chromium).exists() {
        return skip_outside_ci(
            "the browser test",
            "chromium is not installed (apt-get install chromium)",
        );
    }
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new("node")
        .arg("idp.mjs")
        .current_dir(&dir)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env(
            "REDIRECT_URI",
            format!("{public_url}/console/auth/callback"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs");
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let idp = Idp {
        _stdout: stdout,
        port: line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the IdP did not start: {line:?}")),
        child,
    };
    let app = spawn_app_with(AppOptions {
        listen: format!("127.0.0.1:{port}"),
        playbooks: vec![(
            "approval.yaml",
            r#"
name: suspend-with-two-approvals
description: Brute force seen by the SIEM; two people confirm before the account is suspended.
on:
  status: firing
  when: "alert.title.contains('brute')"
steps:
  - suspend:
      approval: { approvers: [secops], quorum: 2, timeout: 30m }
"#
            .into(),
        )],
        extra_yaml: format!(
            r#"
console:
  public_url: "{public_url}"
  oidc:
    issuer: "http://127.0.0.1:{idp}"
    client_id: lockout-console
    client_secret: "{CLIENT_SECRET}"
events_api:
  base_url: FAKE_BASE_URL
  token: "{events_token}"
  poll_interval_secs: 1
"#,
            idp = idp.port,
            events_token = lockout::sandbox::FakeConfig::SANDBOX_EVENTS_TOKEN,
        ),
        ..AppOptions::default()
    })
    .await;
    // Alice's recent activity in 1Password, read before the alert: the approval shows it.
    let alice =
        serde_json::json!({"uuid": ALICE, "email": "alice@example.com", "name": "Alice Appleseed"});
    let sign_in = |category: &str, kind: &str, country: &str| {
        serde_json::json!({"category": category, "type": kind, "country": country, "target_user": alice,
                           "client": {"ip_address": "203.0.113.66"}})
    };
    app.fake().push_events(
        lockout::events_api::Feed::SignInAttempts,
        vec![
            sign_in("success", "credentials_ok", "CA"),
            sign_in("credentials_failed", "password_secret_bad", "BR"),
            sign_in("credentials_failed", "password_secret_bad", "BR"),
            sign_in("success", "credentials_ok", "BR"),
        ],
    );
    app.fake().push_events(
        lockout::events_api::Feed::ItemUsages,
        vec![serde_json::json!({"used_version": 3, "vault_uuid": "v", "item_uuid": "i", "action": "reveal", "user": alice, "location": {"country": "BR"}})],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app
        .ctx
        .store
        .events_since("2000-01-01T00:00:00Z", 10)
        .await
        .unwrap()
        .len()
        < 5
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the events were not read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let body: Value = app
        .post_alert("generic", &brute_force_alert("alice@example.com"))
        .await
        .json()
        .await
        .unwrap();
    let alert_id = body["alert_ids"][0].as_str().unwrap().to_owned();
    let approval = app.pending_approval_for(&alert_id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shots = std::env::var("LOCKOUT_SCREENSHOTS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/console-screenshots").into()
    });
    let address = app.address.clone();
    let (approval_id, alert) = (approval.clone(), alert_id.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("console.mjs")
            .current_dir(&dir)
            .env("LOCKOUT_URL", address)
            .env("APPROVAL_ID", approval_id)
            .env("ALERT_ID", alert)
            .env("USER_EMAIL", "alice@example.com")
            .env("SHOTS", shots)
            .env("CHROMIUM", chromium)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
    // What the browser saw is what the store holds.
    assert_eq!(
        app.fake().user(ALICE).map(|u| u.state),
        Some(lockout::users_api::UserState::Suspended)
    );
    let decided = app.audit("kind=approval.decision").await;
    let who: Vec<&str> = decided.iter().map(|r| r.event.actor.as_str()).collect();
    assert_eq!(
        who,
        ["approver:ana@example.com", "approver:ben@example.com"]
    );
    let signed_in = app.audit("kind=console.signed_in").await;
    assert!(
        signed_in.iter().all(|r| r.event.data["via"] == "oidc") && signed_in.len() == 2,
        "{signed_in:?}"
    );
    drop(idp);
}
