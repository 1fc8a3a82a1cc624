//! Playbooks: load errors with positions, the offline CLI, reload that keeps the last good set.

use std::process::Command;

use lockout::playbooks::{LoadContext, load_str};
use serde_json::Value;

use crate::helpers::*;

fn ctx() -> LoadContext {
    LoadContext {
        notify_targets: ["secops-webhook".to_string()].into_iter().collect(),
    }
}

const HEAD: &str = "name: t\non:\n  status: firing\n";

/// (playbook text, expected line, expected column or 0 for "any", a phrase of the message)
fn broken() -> Vec<(String, u64, u64, &'static str)> {
    vec![
        (
            "nmae: t\non: {}\nsteps:\n  - suspend: {}\n".into(),
            1,
            1,
            "nmae",
        ),
        (
            format!("{HEAD}enabled: \"yes please\"\nsteps:\n  - suspend: {{}}\n"),
            4,
            10,
            "bool",
        ),
        (format!("{HEAD}steps:\n  - delete: {{}}\n"), 5, 0, "delete"),
        (
            format!("{HEAD}steps:\n  - notify: {{ to: pager, message: \"x\" }}\n"),
            5,
            0,
            "unknown notify target \"pager\"",
        ),
        (
            format!("{HEAD}  when: \"alert.title ==\"\nsteps:\n  - suspend: {{}}\n"),
            4,
            9,
            "CEL does not compile",
        ),
        (
            format!("{HEAD}  when: \"size(alert.subjetcs) > 0\"\nsteps:\n  - suspend: {{}}\n"),
            4,
            9,
            "subjetcs",
        ),
        (
            format!(
                "{HEAD}steps:\n  - notify:\n      to: secops-webhook\n      message: \"{{{{ usr.email }}}}\"\n"
            ),
            7,
            16,
            "usr",
        ),
        (
            format!("{HEAD}steps:\n  - reactivate: {{ after: 4 hours }}\n"),
            5,
            0,
            "not a duration",
        ),
        (
            format!("{HEAD}guards:\n  protected: [not-an-email]\nsteps:\n  - suspend: {{}}\n"),
            5,
            15,
            "protected",
        ),
        (
            format!("{HEAD}steps:\n  - suspend: {{}}\n  - approval: {{ approvers: [secops] }}\n"),
            6,
            0,
            "must be followed",
        ),
        (
            format!("{HEAD}target: \"alert.subjects[0].mail\"\nsteps:\n  - suspend: {{}}\n"),
            4,
            9,
            "mail",
        ),
        (format!("{HEAD}steps: []\n"), 1, 1, "at least one step"),
    ]
}

#[test]
fn broken_playbooks_name_file_line_column_and_cause() {
    for (text, line, column, phrase) in broken() {
        let errors = load_str("pb.yaml", &text, &ctx()).expect_err(&text);
        let e = &errors[0];
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("pb.yaml:{line}:")),
            "{text}\n=> {shown}"
        );
        if column > 0 {
            assert_eq!(e.column, column, "{text}\n=> {shown}");
        }
        assert!(
            shown.contains(phrase),
            "{text}\n=> {shown} (wanted {phrase:?})"
        );
    }
}

#[test]
fn a_good_playbook_with_every_step_kind_loads() {
    let text = r#"
name: full
mode: dry_run
on:
  sources: [generic]
  status: any
  when: "alert.severity == 'high'"
target: "alert.subjects.map(s, s.email)"
guards:
  protected: ["*@breakglass.example.com", IR7VJHJ36JHINBFAD7V2T5MP3E]
  require_state: ACTIVE
  limit: { max: 2, per: 1h }
steps:
  - get_user: {}
  - list_users: { state: suspended }
  - approval: { approvers: [secops], quorum: 2, timeout: 30m, on_timeout: deny, escalate: { after: 10m, to: secops-webhook } }
  - suspend: { when: "alert.source == 'generic'" }
  - notify: { to: secops-webhook, message: "Suspended {{ user.email }}: {{ alert.title }}" }
  - wait: 2h
  - reactivate: { after: 2h }
"#;
    let pb = load_str("full.yaml", text, &ctx()).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(pb.steps.len(), 5);
    let suspend = &pb.steps[2];
    assert_eq!(suspend.approval.as_ref().unwrap().quorum, 2);
    assert_eq!(pb.steps[4].after.as_secs(), 4 * 3600, "wait + after");
}

fn lockout(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lockout"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_shipped_playbooks_check_and_pass_their_cases() {
    let out = lockout(&["playbooks", "check", "playbooks"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = lockout(&["playbooks", "test", "playbooks"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("0 failed"), "{stdout}");
    let out = lockout(&[
        "playbooks",
        "test",
        "playbooks",
        "--alert",
        "playbooks/tests/alerts/brute-force-alice.json",
        "--users",
        "playbooks/tests/users.json",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["verdicts"][0]["outcome"], "would suspend");
    assert_eq!(v[0]["verdicts"][0]["user_id"], ALICE);
}

#[test]
fn a_failing_case_or_a_broken_folder_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &str, to: &str| {
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(from),
            dir.path().join(to),
        )
        .unwrap()
    };
    std::fs::create_dir_all(dir.path().join("tests/alerts")).unwrap();
    copy("playbooks/brute-force.yaml", "brute-force.yaml");
    copy(
        "playbooks/tests/alerts/brute-force-alice.json",
        "tests/alerts/a.json",
    );
    std::fs::write(
        dir.path().join("tests/case.yaml"),
        "name: wrong\nalert: alerts/a.json\nexpect:\n  actions: []\n",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let out = lockout(&["playbooks", "test", d]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 failed"));
    std::fs::write(
        dir.path().join("broken.yaml"),
        "name: x\non: {}\nsteps:\n  - explode: {}\n",
    )
    .unwrap();
    let out = lockout(&["playbooks", "check", d]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("broken.yaml:4:"), "{stdout}");
}

#[tokio::test]
async fn reload_keeps_the_last_good_set_on_error() {
    let app = spawn_app().await;
    let list = || async {
        let v: Value = app
            .http
            .get(format!("{}/v1/playbooks", app.address))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["playbooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(list().await, ["suspend-on-brute-force"]);
    let dir = app.dir.path().join("playbooks");
    std::fs::write(
        dir.join("zz-broken.yaml"),
        "name: broken\non:\n  when: \"alert.nope\"\nsteps:\n  - suspend: {}\n",
    )
    .unwrap();
    let reload = app
        .http
        .post(format!("{}/v1/playbooks/reload", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 422);
    let body: Value = reload.json().await.unwrap();
    assert!(
        body["error"]["details"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("zz-broken.yaml:3:"),
        "{body}"
    );
    assert_eq!(
        list().await,
        ["suspend-on-brute-force"],
        "the running set is untouched"
    );
    // It still acts.
    let resp: Value = app
        .post_alert("generic", &brute_force_alert("bob@example.com"))
        .await
        .json()
        .await
        .unwrap();
    app.wait_for_audit("action.succeeded", resp["alert_ids"][0].as_str().unwrap())
        .await;
    // Fixed: the reload goes through.
    std::fs::write(
        dir.join("zz-broken.yaml"),
        "name: fixed\non:\n  when: \"alert.title == 'x'\"\nsteps:\n  - suspend: {}\n",
    )
    .unwrap();
    let reload = app
        .http
        .post(format!("{}/v1/playbooks/reload", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    assert_eq!(list().await, ["suspend-on-brute-force", "fixed"]);
    let kinds: Vec<String> = app
        .audit("kind=playbooks")
        .await
        .iter()
        .map(|r| r.event.kind.clone())
        .collect();
    assert_eq!(kinds, ["playbooks.reload_failed", "playbooks.reloaded"]);
    let unauth = app
        .http
        .post(format!("{}/v1/playbooks/reload", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
}
