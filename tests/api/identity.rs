//! One user, one set of requests: the stricter request wins when chains meet on an open
//! action, every alert that asked for an action is kept, and a user named by e-mail and by
//! id is the same user.

use lockout::store::ActionState;
use serde_json::{Value, json};

use crate::helpers::*;

const BOB: &str = "B4L2NQR3YKSWJCLXJ2XMTQV5UF";

const NEEDS_APPROVAL: &str = "name: travel\non:\n  status: firing\n  when: \"alert.title.contains('travel')\"\nsteps:\n  - suspend: { approval: { approvers: [secops], timeout: 30m } }\n";
const AT_ONCE: &str = "name: brute\non:\n  status: firing\n  when: \"alert.title.contains('brute')\"\nsteps:\n  - suspend: {}\n";

async fn post(app: &TestApp, body: Value) -> String {
    app.post_alert_id("generic", &body).await
}

fn alert(id: &str, title: &str, user: Value) -> Value {
    json!({"id": id, "title": title, "severity": "high", "user": user})
}

fn suspends(app: &TestApp, user: &str) -> usize {
    app.fake().requests_to(&format!("{user}:suspend")).len()
}

#[tokio::test]
async fn an_immediate_suspend_supersedes_one_waiting_for_approval() {
    let app = spawn_app_with(AppOptions {
        playbooks: vec![
            ("travel.yaml", NEEDS_APPROVAL.into()),
            ("brute.yaml", AT_ONCE.into()),
        ],
        ..AppOptions::default()
    })
    .await;
    let first = post(
        &app,
        alert(
            "siem-1",
            "impossible travel",
            json!({"email": "bob@example.com"}),
        ),
    )
    .await;
    let approval = app.pending_approval_for(&first).await;
    // The same user by id, in another alert whose playbook suspends at once.
    let second = post(&app, alert("siem-2", "brute force", json!({"id": BOB}))).await;
    let records = app.wait_for_audit("action.succeeded", &second).await;
    assert!(
        records.iter().any(|r| r.event.kind == "action.superseded"),
        "{:?}",
        kinds(&records)
    );
    assert_eq!(suspends(&app, BOB), 1);
    let (_, a) = app
        .get_json(
            &format!("/v1/approvals/{}", approval["id"].as_str().unwrap()),
            &token("viewer@example.com", &["secops"]),
        )
        .await;
    assert_eq!(a["state"], "cancelled", "{a}");
    // Denying the stale approval changes nothing: bob stays suspended.
    assert_eq!(
        app.fake().user(BOB).unwrap().state,
        lockout::users_api::UserState::Suspended
    );
}

#[tokio::test]
async fn every_alert_that_asked_is_shown_and_one_resolving_does_not_cancel_the_others() {
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("travel.yaml", NEEDS_APPROVAL.into())],
        ..AppOptions::default()
    })
    .await;
    let first = post(
        &app,
        alert(
            "siem-1",
            "impossible travel",
            json!({"email": "bob@example.com"}),
        ),
    )
    .await;
    let approval = app.pending_approval_for(&first).await;
    let id = approval["id"].as_str().unwrap().to_owned();
    let second = post(
        &app,
        alert(
            "siem-2",
            "impossible travel again",
            json!({"email": "BOB@example.com"}),
        ),
    )
    .await;
    app.wait_for_audit("action.attached", &second).await;
    let viewer = token("viewer@example.com", &["secops"]);
    let (_, a) = app.get_json(&format!("/v1/approvals/{id}"), &viewer).await;
    let asked: Vec<&str> = a["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(asked.len(), 2, "{a}");
    assert!(asked.contains(&first.as_str()) && asked.contains(&second.as_str()));
    // The first alert resolves: the second still asks, so the approval stays.
    let mut resolved = alert(
        "siem-1",
        "impossible travel",
        json!({"email": "bob@example.com"}),
    );
    resolved["status"] = json!("resolved");
    post(&app, resolved).await;
    app.wait_for_audit("approval.kept", &first).await;
    let (_, a) = app.get_json(&format!("/v1/approvals/{id}"), &viewer).await;
    assert_eq!(a["state"], "pending", "{a}");
    // The second resolves too: nobody asks any more.
    let mut resolved = alert(
        "siem-2",
        "impossible travel again",
        json!({"email": "BOB@example.com"}),
    );
    resolved["status"] = json!("resolved");
    post(&app, resolved).await;
    app.wait_for_audit("approval.cancelled", &first).await;
    let (_, a) = app.get_json(&format!("/v1/approvals/{id}"), &viewer).await;
    assert_eq!(a["state"], "cancelled", "{a}");
}

#[tokio::test]
async fn a_manual_suspend_by_email_cancels_a_reactivation_scheduled_by_id() {
    let pb = "name: s\non:\n  when: \"alert.title.contains('brute')\"\nsteps:\n  - suspend: {}\n  - reactivate: { after: 3s }\n";
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("s.yaml", pb.into())],
        ..AppOptions::default()
    })
    .await;
    let id = post(&app, alert("siem-1", "brute force", json!({"id": BOB}))).await;
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
    assert_eq!(reactivation.target, BOB);
    let (s, body) = app
        .post_json(
            "/v1/users/Bob@Example.com/suspend",
            &token("ana@example.com", &["secops"]),
            &json!({"reason": "keep suspended, INC-9"}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    app.wait_for_action_state(&reactivation.id, ActionState::Cancelled)
        .await;
    // Past the time it would have run: it does not.
    app.settle_after(&reactivation.not_before).await;
    assert_eq!(
        app.fake().requests_to(&format!("{BOB}:reactivate")).len(),
        0
    );
    assert_eq!(
        app.fake().user(BOB).unwrap().state,
        lockout::users_api::UserState::Suspended
    );
}

#[tokio::test]
async fn an_alert_naming_two_users_by_email_and_id_acts_on_neither() {
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("brute.yaml", AT_ONCE.into())],
        ..AppOptions::default()
    })
    .await;
    // bob's id with alice's e-mail.
    let id = post(
        &app,
        alert(
            "siem-1",
            "brute force",
            json!({"id": BOB, "email": "alice@example.com"}),
        ),
    )
    .await;
    let records = app.wait_for_audit("plan.identity_conflict", &id).await;
    let conflict = records
        .iter()
        .find(|r| r.event.kind == "plan.identity_conflict")
        .unwrap();
    assert_eq!(conflict.event.data["email_owner"], ALICE);
    app.settle().await;
    assert_eq!(suspends(&app, BOB), 0);
    assert_eq!(suspends(&app, ALICE), 0);
}
