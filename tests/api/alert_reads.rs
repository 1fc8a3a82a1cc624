//! `GET /v1/alerts/{id}` and `GET /v1/alerts`: what happened to an alert and why.

use serde_json::{Value, json};

use crate::helpers::*;

async fn report(app: &TestApp, id: &str) -> Value {
    let (status, body) = app
        .get_json(
            &format!("/v1/alerts/{id}"),
            &token("ana@example.com", &["secops"]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn verdict<'a>(report: &'a Value, playbook: &str) -> &'a Value {
    report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["playbook"] == playbook)
        .unwrap_or_else(|| panic!("no verdict for {playbook}: {report}"))
}

#[tokio::test]
async fn a_no_op_alert_says_which_part_of_the_condition_was_false_and_what_it_saw() {
    let app = spawn_app().await;
    let id = app
        .post_alert_id(
            "generic",
            &json!({"title": "brute force against 1Password sign-in", "severity": "medium", "user": {"email": "alice@example.com"}}),
        )
        .await;
    app.settle().await;
    let r = report(&app, &id).await;
    let v = verdict(&r, "suspend-on-brute-force");
    assert_eq!(v["verdict"], "not_matched", "{v}");
    assert_eq!(v["failed"], "alert.severity in ['high', 'critical']");
    assert_eq!(v["saw"], json!([["alert.severity", "medium"]]));
    assert!(
        v["because"]
            .as_str()
            .unwrap()
            .contains("saw alert.severity = \"medium\""),
        "{v}"
    );
    assert_eq!(r["actions"], json!([]));
    assert_eq!(r["api_calls"], json!([]));
    assert_eq!(r["alert"]["state"], "evaluated");
    // The list finds it by its user, in any spelling; a viewer without an analyst role cannot.
    let (_, list) = app
        .get_json(
            "/v1/alerts?user=Alice%40Example.com",
            &token("ana@example.com", &["secops"]),
        )
        .await;
    assert_eq!(list["alerts"][0]["id"], id.as_str());
    let (status, _) = app
        .get_json(
            &format!("/v1/alerts/{id}"),
            &token("vic@example.com", &["viewer"]),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .get_json(
            "/v1/alerts/alr_nope",
            &token("ana@example.com", &["secops"]),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_acted_alert_shows_its_action_and_every_users_api_call() {
    let app = spawn_app().await;
    let id = app
        .post_alert_id("generic", &brute_force_alert("alice@example.com"))
        .await;
    app.wait_for_audit("action.succeeded", &id).await;
    let r = report(&app, &id).await;
    assert_eq!(verdict(&r, "suspend-on-brute-force")["verdict"], "matched");
    assert_eq!(r["actions"][0]["kind"], "suspend");
    assert_eq!(r["actions"][0]["state"], "succeeded");
    let calls: Vec<&str> = r["api_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call"]["path"].as_str().unwrap())
        .collect();
    assert!(calls.iter().any(|p| p.ends_with(":suspend")), "{calls:?}");
    assert!(
        r["plan"]["matched"]
            .as_array()
            .unwrap()
            .contains(&json!("suspend-on-brute-force"))
    );
    // Paging: newest first, `next_before` continues.
    let other = app
        .post_alert_id("generic", &json!({"title": "noise", "severity": "low"}))
        .await;
    let analyst = token("ana@example.com", &["secops"]);
    let (_, page) = app.get_json("/v1/alerts?limit=1", &analyst).await;
    assert_eq!(page["alerts"][0]["id"], other.as_str());
    let next = page["next_before"].as_str().unwrap();
    let (_, page) = app
        .get_json(&format!("/v1/alerts?limit=1&before={next}"), &analyst)
        .await;
    assert_eq!(page["alerts"][0]["id"], id.as_str());
}

#[tokio::test]
async fn a_suppressed_alert_names_its_suppression() {
    let app = spawn_app().await;
    let analyst = token("ana@example.com", &["secops"]);
    let (_, s) = app
        .post_json(
            "/v1/suppressions",
            &analyst,
            &json!({"user": "alice@example.com", "reason": "pentest", "expires_in_secs": 600}),
        )
        .await;
    let id = app
        .post_alert_id("generic", &brute_force_alert("alice@example.com"))
        .await;
    app.settle().await;
    let r = report(&app, &id).await;
    let v = verdict(&r, "suspend-on-brute-force");
    assert_eq!(v["verdict"], "suppressed", "{v}");
    assert_eq!(v["detail"]["suppression_id"], s["id"]);
    assert!(v["because"].as_str().unwrap().contains("pentest"), "{v}");
    assert_eq!(r["actions"], json!([]));
}

/// A shadow playbook is evaluated on every alert beside the live one it shadows, never acts
/// (no action, no Users API call), and its comparison counts each case.
#[tokio::test]
async fn a_shadow_playbook_never_acts_and_its_comparison_counts_right() {
    let shadow = r#"
name: brute-force-v2
mode: shadow
shadows: suspend-on-brute-force
on:
  status: firing
  when: "alert.severity == 'critical' || alert.title.contains('stuffing')"
steps:
  - suspend: {}
"#;
    let app = spawn_app_with(AppOptions {
        playbooks: vec![
            ("brute-force.yaml", BRUTE_FORCE_PLAYBOOK.into()),
            ("brute-force-v2.yaml", shadow.into()),
        ],
        ..AppOptions::default()
    })
    .await;
    let post = |title: &'static str, severity: &'static str, email: &'static str| {
        let app = &app;
        async move {
            app.post_alert_id(
                "generic",
                &json!({"title": title, "severity": severity, "user": {"email": email}}),
            )
            .await
        }
    };
    // Both match; only the live one matches (twice); only the shadow matches; neither.
    let both = post(
        "brute force against 1Password sign-in",
        "critical",
        "alice@example.com",
    )
    .await;
    post(
        "brute force against 1Password sign-in",
        "high",
        "bob@example.com",
    )
    .await;
    post(
        "brute force against 1Password sign-in",
        "high",
        "carol@example.com",
    )
    .await;
    let shadow_only = post("credential stuffing", "low", "dave@example.com").await;
    post("noise", "low", "dave@example.com").await;
    app.settle().await;
    // The shadow acted on nobody: dave has no action and the Users API never heard of him.
    assert!(
        app.ctx
            .store
            .list_actions(Some(&shadow_only))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        app.fake()
            .requests()
            .iter()
            .all(|r| !r.path.contains("D6N4QST5AMUYLENZL4ZOVSX7WH")),
        "{:?}",
        app.fake().requests()
    );
    let suspended: usize = app
        .fake()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(":suspend"))
        .count();
    assert_eq!(suspended, 3, "only the live playbook's three matches");
    let (status, cmp) = app
        .get_json(
            "/v1/playbooks/brute-force-v2/shadow",
            &token("ana@example.com", &["secops"]),
        )
        .await;
    assert_eq!(status, 200, "{cmp}");
    assert_eq!(cmp["shadows"], "suspend-on-brute-force");
    assert_eq!(cmp["agree_both_matched"], 1);
    assert_eq!(cmp["live_only"]["count"], 2);
    assert_eq!(cmp["shadow_only"]["count"], 1);
    assert_eq!(cmp["shadow_only"]["examples"], json!([shadow_only]));
    let r = app
        .audit(&format!("kind=shadow.verdict&alert_id={both}"))
        .await;
    assert_eq!(r[0].event.data["would"][0]["target"], "alice@example.com");
    let (status, _) = app
        .get_json(
            "/v1/playbooks/suspend-on-brute-force/shadow",
            &token("ana@example.com", &["secops"]),
        )
        .await;
    assert_eq!(status, 404, "a live playbook has no shadow comparison");
}
