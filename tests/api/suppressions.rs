//! Suppressions: a match held back is recorded as suppressed with the suppression's id, never
//! dropped silently; creation, removal and expiry are audited; expiry takes effect without a
//! restart and the next alert acts again. Runs on both stores (the suite's two passes).

use lockout::store::ActionState;
use serde_json::{Value, json};

use crate::helpers::*;

async fn create(app: &TestApp, bearer: &str, body: Value) -> (u16, Value) {
    app.post_json("/v1/suppressions", bearer, &body).await
}

#[tokio::test]
async fn a_suppression_holds_back_a_match_until_it_expires() {
    let app = spawn_app().await;
    let analyst = token("ana@example.com", &["secops"]);
    let (status, s) = create(
        &app,
        &analyst,
        json!({"user": "*@example.com", "playbook": "suspend-on-brute-force", "reason": "red team exercise RT-3", "expires_in_secs": 2}),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    assert_eq!(s["author"], "ana@example.com");
    let id = s["id"].as_str().unwrap().to_owned();

    let alert = app
        .post_alert_id("generic", &brute_force_alert("alice@example.com"))
        .await;
    app.settle().await;
    assert!(
        app.ctx
            .store
            .list_actions(Some(&alert))
            .await
            .unwrap()
            .is_empty()
    );
    let held = app
        .audit(&format!("kind=guard.suppressed&alert_id={alert}"))
        .await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].event.data["suppression_id"], id.as_str());
    assert_eq!(held[0].event.subject.as_deref(), Some("alice@example.com"));
    assert!(
        app.fake()
            .requests()
            .iter()
            .all(|r| !r.path.ends_with(":suspend"))
    );

    // It expires by itself: recorded once, and the next alert acts.
    app.settle_after(s["expires_at"].as_str().unwrap()).await;
    lockout::actions::tick(&app.ctx, &mut Default::default())
        .await
        .unwrap();
    let expired = app.audit("kind=suppression.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].event.data["suppression_id"], id.as_str());
    let next = app
        .post_alert_id("generic", &json!({"id": "again", "title": "brute force against 1Password sign-in", "severity": "high", "user": {"email": "alice@example.com"}}))
        .await;
    app.wait_for_audit("action.succeeded", &next).await;
    let (_, list) = app.get_json("/v1/suppressions", &analyst).await;
    assert_eq!(list["suppressions"].as_array().unwrap().len(), 0);
    let (_, all) = app.get_json("/v1/suppressions?all=true", &analyst).await;
    assert_eq!(all["suppressions"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.audit("kind=suppression.created").await[0].event.actor,
        "ana@example.com"
    );
}

#[tokio::test]
async fn a_removed_suppression_stops_at_once_and_only_matching_alerts_are_held() {
    let app = spawn_app().await;
    let analyst = token("ana@example.com", &["secops"]);
    let (_, s) = create(
        &app,
        &analyst,
        json!({"user": "bob@example.com", "labels": {"rule": "1password-failed-signins"}, "reason": "known noisy rule", "expires_in_secs": 3600}),
    )
    .await;
    let id = s["id"].as_str().unwrap();
    // Another user is not held back.
    let carol = app
        .post_alert_id("generic", &brute_force_alert("carol@example.com"))
        .await;
    app.wait_for_audit("action.succeeded", &carol).await;
    let bob = app
        .post_alert_id("generic", &brute_force_alert("bob@example.com"))
        .await;
    app.settle().await;
    assert_eq!(
        app.audit(&format!("kind=guard.suppressed&alert_id={bob}"))
            .await
            .len(),
        1
    );
    let r = app
        .http
        .delete(format!("{}/v1/suppressions/{id}", app.address))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let removed = app.audit("kind=suppression.removed").await;
    assert_eq!(removed[0].event.actor, "ana@example.com");
    let again = app
        .post_alert_id("generic", &json!({"id": "bob-2", "title": "brute force against 1Password sign-in", "severity": "high", "user": {"email": "bob@example.com"}, "labels": {"rule": "1password-failed-signins"}}))
        .await;
    let actions = {
        app.wait_for_audit("action.succeeded", &again).await;
        app.ctx.store.list_actions(Some(&again)).await.unwrap()
    };
    assert_eq!(actions[0].state, ActionState::Succeeded);
    // Removing it twice: 404.
    let r = app
        .http
        .delete(format!("{}/v1/suppressions/{id}", app.address))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn suppressions_need_an_analyst_a_matcher_a_reason_and_a_bounded_expiry() {
    let app = spawn_app().await;
    let analyst = token("ana@example.com", &["secops"]);
    let viewer = token("vic@example.com", &["viewer"]);
    let ok = json!({"user": "bob@example.com", "reason": "r", "expires_in_secs": 60});
    assert_eq!(create(&app, &viewer, ok.clone()).await.0, 403);
    assert_eq!(create(&app, "not-a-token", ok.clone()).await.0, 401);
    for (body, why) in [
        (
            json!({"reason": "r", "expires_in_secs": 60}),
            "at least one of",
        ),
        (
            json!({"user": "bob@example.com", "reason": " ", "expires_in_secs": 60}),
            "a reason",
        ),
        (
            json!({"user": "bob@example.com", "reason": "r"}),
            "an expiry is required",
        ),
        (
            json!({"user": "bob@example.com", "reason": "r", "expires_in_secs": 8 * 86400}),
            "max_suppression_secs",
        ),
    ] {
        let (status, body) = create(&app, &analyst, body).await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{body}"
        );
    }
    assert_eq!(
        create(
            &app,
            &analyst,
            json!({"user": "x", "reason": "r", "expires_in_secs": 60, "color": "red"})
        )
        .await
        .0,
        422
    );
    assert!(app.audit("kind=suppression.created").await.is_empty());
}
