//! Humans in the loop: approve, quorum, deny, expiry, four-eyes, decided once, cancellation
//! when the source resolves the alert. Every path asserts its audit records.

use lockout::store::ActionState;
use serde_json::{Value, json};

use crate::helpers::*;

fn playbook(approval: &str) -> String {
    format!(
        r#"
name: suspend-with-approval
on:
  status: firing
  when: "alert.title.contains('brute')"
steps:
  - suspend:
      approval: {approval}
"#
    )
}

async fn app_with(approval: &str) -> TestApp {
    spawn_app_with(AppOptions {
        playbooks: vec![("approval.yaml", playbook(approval))],
        ..AppOptions::default()
    })
    .await
}

async fn alert(app: &TestApp, email: &str, id: Option<&str>) -> String {
    let mut body = brute_force_alert(email);
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    let resp: Value = app.post_alert("generic", &body).await.json().await.unwrap();
    resp["alert_ids"][0].as_str().unwrap().to_owned()
}

fn suspends(app: &TestApp) -> usize {
    app.fake()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(":suspend"))
        .count()
}

#[tokio::test]
async fn approve_then_suspend() {
    let app = app_with("{ approvers: [secops], timeout: 30m }").await;
    let alert_id = alert(&app, "alice@example.com", None).await;
    let pending = app.pending_approval_for(&alert_id).await;
    assert_eq!(pending["action"]["kind"], "suspend");
    assert_eq!(pending["action"]["target"], "alice@example.com");
    assert_eq!(
        pending["alert"]["title"],
        "brute force against 1Password sign-in"
    );
    assert_eq!(pending["quorum"], 1);
    let id = pending["id"].as_str().unwrap();
    // Nothing happens before the approval.
    app.settle().await;
    assert_eq!(suspends(&app), 0);
    let (single_status, single) = app
        .get_json(
            &format!("/v1/approvals/{id}"),
            &token("bob@example.com", &["secops"]),
        )
        .await;
    assert_eq!(single_status, 200);
    assert_eq!(single["action"]["will"], "suspend alice@example.com");

    let (status, body) = app
        .post_json(
            &format!("/v1/approvals/{id}/approve"),
            &token("bob@example.com", &["secops"]),
            &json!({"reason": "confirmed with the SOC"}),
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("approved")),
        "{body}"
    );
    let records = app.wait_for_audit("action.succeeded", &alert_id).await;
    assert_eq!(suspends(&app), 1);
    let decision = records
        .iter()
        .find(|r| r.event.kind == "approval.decision")
        .unwrap();
    assert_eq!(decision.event.actor, "approver:bob@example.com");
    assert_eq!(decision.event.data["reason"], "confirmed with the SOC");
    let k = kinds(&records);
    let pos = |k2: &str| {
        k.iter()
            .position(|x| *x == k2)
            .unwrap_or_else(|| panic!("{k2} missing in {k:?}"))
    };
    assert!(pos("approval.requested") < pos("approval.decision"));
    assert!(pos("approval.decision") < pos("action.claimed"));

    // Decided once: a second decision is a conflict.
    let (status, _) = app
        .post_json(
            &format!("/v1/approvals/{id}/approve"),
            &token("carol@example.com", &["secops"]),
            &json!({}),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_quorum_of_two_needs_two_different_people() {
    let app = app_with("{ approvers: [secops], quorum: 2, timeout: 30m }").await;
    let alert_id = alert(&app, "bob@example.com", None).await;
    let id = app.pending_approval_for(&alert_id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let approve = |who: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            app.post_json(
                &format!("/v1/approvals/{id}/approve"),
                &token(who, &["secops"]),
                &json!({}),
            )
            .await
        }
    };
    let (s, body) = approve("alice@example.com").await;
    assert_eq!(
        (s, body["state"].as_str(), body["approvals"].as_i64()),
        (200, Some("pending"), Some(1))
    );
    let (s, body) = approve("alice@example.com").await;
    assert_eq!(s, 409, "the same person twice does not count: {body}");
    app.settle().await;
    assert_eq!(suspends(&app), 0, "one approval is not enough");
    let (s, body) = approve("carol@example.com").await;
    assert_eq!((s, body["state"].as_str()), (200, Some("approved")));
    app.wait_for_audit("action.succeeded", &alert_id).await;
    assert_eq!(suspends(&app), 1);
}

#[tokio::test]
async fn deny_needs_a_reason_and_nothing_happens() {
    let app = app_with("{ approvers: [secops], timeout: 30m }").await;
    let alert_id = alert(&app, "dave@example.com", None).await;
    let id = app.pending_approval_for(&alert_id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, body) = app
        .post_json(
            &format!("/v1/approvals/{id}/deny"),
            &token("bob@example.com", &["secops"]),
            &json!({}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["code"], "reason_required");
    // Without the role, no decision at all.
    let (s, _) = app
        .post_json(
            &format!("/v1/approvals/{id}/deny"),
            &token("eve@example.com", &["helpdesk"]),
            &json!({"reason": "x"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .post_json(
            &format!("/v1/approvals/{id}/deny"),
            "not-a-jwt",
            &json!({"reason": "x"}),
        )
        .await;
    assert_eq!(s, 401);
    let (s, body) = app
        .post_json(
            &format!("/v1/approvals/{id}/deny"),
            &token("bob@example.com", &["secops"]),
            &json!({"reason": "known pentest"}),
        )
        .await;
    assert_eq!((s, body["state"].as_str()), (200, Some("denied")));
    let records = app.wait_for_audit("action.denied", &alert_id).await;
    assert!(
        records
            .iter()
            .any(|r| r.event.kind == "approval.decision"
                && r.event.data["reason"] == "known pentest")
    );
    let actions = app.ctx.store.list_actions(Some(&alert_id)).await.unwrap();
    assert_eq!(actions[0].state, ActionState::Denied);
    assert_eq!(suspends(&app), 0);
}

#[tokio::test]
async fn a_resolved_alert_cancels_its_pending_approval() {
    let app = app_with("{ approvers: [secops], timeout: 30m }").await;
    let alert_id = alert(&app, "alice@example.com", Some("siem-77")).await;
    let id = app.pending_approval_for(&alert_id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut resolved = brute_force_alert("alice@example.com");
    resolved["id"] = json!("siem-77");
    resolved["status"] = json!("resolved");
    let r: Value = app
        .post_alert("generic", &resolved)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["alert_ids"].as_array().unwrap().len(), 1);
    let records = app.wait_for_audit("approval.cancelled", &alert_id).await;
    assert!(records.iter().any(|r| r.event.kind == "action.cancelled"));
    let (_, a) = app
        .get_json(
            &format!("/v1/approvals/{id}"),
            &token("bob@example.com", &["secops"]),
        )
        .await;
    assert_eq!(a["state"], "cancelled");
    let (s, _) = app
        .post_json(
            &format!("/v1/approvals/{id}/approve"),
            &token("bob@example.com", &["secops"]),
            &json!({}),
        )
        .await;
    assert_eq!(s, 409);
    assert_eq!(suspends(&app), 0);
}

#[tokio::test]
async fn expiry_resolves_to_the_playbooks_default() {
    let app = app_with("{ approvers: [secops], timeout: 1s, on_timeout: deny }").await;
    let alert_id = alert(&app, "alice@example.com", None).await;
    app.pending_approval_for(&alert_id).await;
    let records = app.wait_for_audit("action.expired", &alert_id).await;
    assert!(
        records
            .iter()
            .any(|r| r.event.kind == "approval.expired" && r.event.data["on_timeout"] == "deny")
    );
    assert_eq!(suspends(&app), 0);

    let app = app_with("{ approvers: [secops], timeout: 1s, on_timeout: approve }").await;
    let alert_id = alert(&app, "bob@example.com", None).await;
    let records = app.wait_for_audit("action.succeeded", &alert_id).await;
    assert!(
        records
            .iter()
            .any(|r| r.event.kind == "approval.expired" && r.event.data["on_timeout"] == "approve")
    );
    assert_eq!(suspends(&app), 1);
}

#[tokio::test]
async fn four_eyes_the_requester_cannot_approve_a_manual_action() {
    let app = spawn_app().await;
    let analyst = token("ana@example.com", &["secops"]);
    let (s, body) = app
        .post_json(
            &format!("/v1/users/{ALICE}/suspend"),
            &analyst,
            &json!({"reason": "INC-42 phished", "approval_required": true}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["state"], "pending_approval");
    let approval = body["approval_id"].as_str().unwrap().to_owned();
    let (s, body) = app
        .post_json(
            &format!("/v1/approvals/{approval}/approve"),
            &analyst,
            &json!({}),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("four-eyes")
    );
    let (s, _) = app
        .post_json(
            &format!("/v1/approvals/{approval}/approve"),
            &token("olga@example.com", &["secops"]),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let action = body_action(&app, &approval).await;
    let done = app
        .wait_for_action_state(&action, ActionState::Succeeded)
        .await;
    assert_eq!(done.requested_by.as_deref(), Some("ana@example.com"));
    let records = app.audit(&format!("action_id={action}")).await;
    assert!(records.iter().any(|r| r.event.kind == "manual.suspend" && r.event.actor == "analyst:ana@example.com"));
    assert!(
        records
            .iter()
            .any(|r| r.event.kind == "api.call" && r.event.actor == "analyst:ana@example.com")
    );
}

async fn body_action(app: &TestApp, approval: &str) -> String {
    app.ctx
        .store
        .get_approval(approval)
        .await
        .unwrap()
        .unwrap()
        .action_id
}

#[tokio::test]
async fn manual_actions_need_an_analyst_and_respect_global_guards() {
    let app = spawn_app_with(AppOptions {
        extra_yaml: "guards:\n  protected: [\"*@agilebits.com\"]\n".into(),
        ..AppOptions::default()
    })
    .await;
    let (s, _) = app
        .post_json(
            &format!("/v1/users/{ALICE}/suspend"),
            &token("x@example.com", &["helpdesk"]),
            &json!({"reason": "r"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, body) = app
        .post_json(
            "/v1/users/wendy_appleseed@agilebits.com/suspend",
            &token("ana@example.com", &["secops"]),
            &json!({"reason": "r"}),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["error"]["code"], "protected");
    let (s, body) = app
        .post_json(
            &format!("/v1/users/{ALICE}/suspend"),
            &token("ana@example.com", &["secops"]),
            &json!({"reason": ""}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = app
        .post_json(
            &format!("/v1/users/{ALICE}/suspend"),
            &token("ana@example.com", &["secops"]),
            &json!({"reason": "INC-1"}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    app.wait_for_action_state(body["action_id"].as_str().unwrap(), ActionState::Succeeded)
        .await;
    let (s, user) = app
        .get_json(
            &format!("/v1/users/{ALICE}"),
            &token("ana@example.com", &["analyst"]),
        )
        .await;
    assert_eq!((s, user["state"].as_str()), (200, Some("SUSPENDED")));
    let (s, list) = app
        .get_json(
            "/v1/users?state=suspended",
            &token("ana@example.com", &["analyst"]),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(list["users"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_pending_approval_escalates_after_its_delay() {
    let receiver = start_receiver();
    let pb = "name: e\non:\n  when: \"alert.title.contains('brute')\"\nsteps:\n  - suspend:\n      approval: { approvers: [secops], timeout: 30m, escalate: { after: 1s, to: oncall } }\n";
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("e.yaml", pb.into())],
        extra_yaml: format!("notify:\n  oncall: {{ url: \"{}\" }}\n", receiver.url),
        ..AppOptions::default()
    })
    .await;
    let alert_id = alert(&app, "alice@example.com", None).await;
    let id = app.pending_approval_for(&alert_id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let records = app.wait_for_audit("approval.escalated", &alert_id).await;
    assert_eq!(
        records
            .iter()
            .filter(|r| r.event.kind == "approval.escalated")
            .count(),
        1
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !receiver
        .texts()
        .iter()
        .any(|t| t.contains(&id) && t.contains("still pending"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            receiver.texts()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Escalated once, however long it stays pending.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.audit("kind=approval.escalated").await.len(), 1);
    assert_eq!(suspends(&app), 0);
}

/// An HS256 token with exactly these claims (`exp` added), signed with the test secret.
fn raw_token(mut claims: Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if claims.get("exp").is_none() {
        claims["exp"] = json!(now + 600);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn one_person_counts_once_whichever_claim_or_case_names_them() {
    let app = app_with("{ approvers: [secops], quorum: 2, timeout: 30m }").await;
    let alert_id = alert(&app, "bob@example.com", None).await;
    let id = app.pending_approval_for(&alert_id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/approvals/{id}/approve");
    let claims = |extra: Value| {
        let mut c = json!({"iss": "lockout-tests", "aud": "lockout", "roles": ["secops"]});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        raw_token(c)
    };
    let first = claims(json!({"sub": "okta|00u1", "email": "Alice@Example.com"}));
    let (s, body) = app.post_json(&path, &first, &json!({})).await;
    assert_eq!((s, body["approvals"].as_i64()), (200, Some(1)), "{body}");
    // The same person by `sub` alone, and by the e-mail in another case: not a second approver.
    for again in [
        claims(json!({"sub": "okta|00u1"})),
        claims(json!({"email": "alice@example.com"})),
        claims(json!({"email": "ALICE@EXAMPLE.COM", "sub": "other"})),
    ] {
        let (s, body) = app.post_json(&path, &again, &json!({})).await;
        assert_eq!(s, 409, "{body}");
    }
    assert_eq!(suspends(&app), 0);
}

#[tokio::test]
async fn the_requester_in_another_case_is_still_the_requester() {
    let app = spawn_app().await;
    let (s, body) = app
        .post_json(
            &format!("/v1/users/{ALICE}/suspend"),
            &token("ana@example.com", &["secops"]),
            &json!({"reason": "INC-42", "approval_required": true}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let approval = body["approval_id"].as_str().unwrap().to_owned();
    let (s, body) = app
        .post_json(
            &format!("/v1/approvals/{approval}/approve"),
            &token("ANA@Example.com", &["secops"]),
            &json!({}),
        )
        .await;
    assert_eq!(s, 403, "{body}");
}

#[tokio::test]
async fn tokens_must_carry_the_configured_issuer_and_audience_and_honour_nbf() {
    let app = spawn_app().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cases = [
        (
            "no iss",
            json!({"sub": "a@example.com", "aud": "lockout", "roles": ["secops"]}),
        ),
        (
            "no aud",
            json!({"sub": "a@example.com", "iss": "lockout-tests", "roles": ["secops"]}),
        ),
        (
            "nbf in an hour",
            json!({"sub": "a@example.com", "iss": "lockout-tests", "aud": "lockout", "roles": ["secops"], "nbf": now + 3600}),
        ),
    ];
    for (what, claims) in cases {
        let (s, body) = app.get_json("/v1/approvals", &raw_token(claims)).await;
        assert_eq!(s, 401, "{what}: {body}");
    }
    // A valid token without a role that may read approvals.
    let (s, body) = app
        .get_json("/v1/approvals", &token("nobody@example.com", &[]))
        .await;
    assert_eq!(s, 403, "{body}");
    let (s, _) = app
        .get_json("/v1/approvals", &token("viewer@example.com", &["secops"]))
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_malformed_or_nul_decision_body_is_a_400() {
    let app = app_with("{ approvers: [secops], timeout: 30m }").await;
    let alert_id = alert(&app, "alice@example.com", None).await;
    let id = app.pending_approval_for(&alert_id).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (verb, body) in [
        ("approve", "{\"reason\": "),
        ("approve", "[1,2]"),
        ("approve", "{\"reason\": \"ok\", \"extra\": 1}"),
        ("deny", "not json"),
        ("deny", "{\"reason\": \"a\\u0000b\"}"),
    ] {
        let r = app
            .http
            .post(format!("{}/v1/approvals/{id}/{verb}", app.address))
            .bearer_auth(token("bob@example.com", &["secops"]))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{verb} {body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    let (_, a) = app
        .get_json(
            &format!("/v1/approvals/{id}"),
            &token("bob@example.com", &["secops"]),
        )
        .await;
    assert_eq!(a["state"], "pending");
    assert_eq!(suspends(&app), 0);
}
