//! The whole path once: alert in, playbook matches, Users API called, user suspended, audited.

use serde_json::{Value, json};

use crate::helpers::*;

fn alert_id(body: &Value) -> String {
    body["alert_ids"][0]
        .as_str()
        .expect("an alert id")
        .to_owned()
}

#[tokio::test]
async fn an_alert_suspends_the_right_user_and_the_audit_says_so() {
    let app = spawn_app().await;
    let resp = app
        .post_alert("generic", &brute_force_alert("Alice@Example.com"))
        .await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let id = alert_id(&body);
    let records = app.wait_for_audit("action.succeeded", &id).await;

    let suspends = app.fake().requests_to(&format!("/users/{ALICE}:suspend"));
    assert_eq!(suspends.len(), 1, "exactly one :suspend for alice");
    let bearer = suspends[0]
        .authorization
        .as_deref()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    assert!(
        app.fake().issued(bearer),
        "the bearer token came from the token endpoint"
    );
    assert_eq!(
        app.fake()
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(":suspend"))
            .count(),
        1,
        "nobody else"
    );
    assert_eq!(
        app.fake().user(ALICE).unwrap().state,
        lockout::users_api::UserState::Suspended
    );

    let k = kinds(&records);
    for expected in [
        "alert.received",
        "plan.made",
        "action.queued",
        "action.claimed",
        "api.call",
        "action.succeeded",
    ] {
        assert!(k.contains(&expected), "missing {expected} in {k:?}");
    }
    let call = records
        .iter()
        .find(|r| r.event.kind == "api.call" && r.event.data["operation"] == "suspend_user")
        .expect("the suspend call is audited");
    assert_eq!(call.event.data["status"], 200);
    assert_eq!(call.event.data["method"], "POST");
    assert!(call.event.data["latency_ms"].is_u64());
    // No token or secret ever reaches the audit trail.
    let all = serde_json::to_string(&app.audit("").await).unwrap();
    assert!(!all.contains(bearer));
    assert!(!all.contains(CLIENT_SECRET));
    assert!(!all.contains(SOURCE_TOKEN));
}

#[tokio::test]
async fn the_last_owners_refusal_is_a_clear_failure_in_the_audit() {
    let app = spawn_app().await;
    let resp = app
        .post_alert(
            "generic",
            &brute_force_alert("wendy_appleseed@agilebits.com"),
        )
        .await;
    let id = alert_id(&resp.json().await.unwrap());
    let records = app.wait_for_audit("action.failed", &id).await;
    let failed = records
        .iter()
        .find(|r| r.event.kind == "action.failed")
        .unwrap();
    assert!(
        failed.event.data["error"]
            .as_str()
            .unwrap()
            .contains("no_owner_remain"),
        "{:?}",
        failed.event.data
    );
    assert_eq!(failed.event.data["error_kind"], "cannot_act_on_user");
    assert_eq!(
        app.fake()
            .requests_to(&format!("/users/{WENDY_OWNER}:suspend"))
            .len(),
        1,
        "not retried"
    );
    let actions = app.ctx.store.list_actions(Some(&id)).await.unwrap();
    assert_eq!(actions[0].state, lockout::store::ActionState::Failed);
}

#[tokio::test]
async fn a_wrong_client_secret_stops_startup_with_a_clear_error() {
    let opts = AppOptions {
        client_secret: "wrong-secret".into(),
        ..AppOptions::default()
    };
    let Err((err, _fake, _dir)) = try_spawn_app(opts).await else {
        panic!("the app started with a wrong secret");
    };
    let msg = err.to_string();
    assert!(msg.contains("refused the client credentials"), "{msg}");
    assert!(msg.contains("client_secret"), "{msg}");
    assert!(!msg.contains("wrong-secret"), "{msg}");
}

#[tokio::test]
async fn email_lookups_share_one_directory_paging() {
    let app = spawn_app().await;
    let mut ids = vec![];
    for email in ["alice@example.com", "bob@example.com", "dave@example.com"] {
        let resp = app.post_alert("generic", &brute_force_alert(email)).await;
        ids.push(alert_id(&resp.json().await.unwrap()));
    }
    for id in &ids {
        app.wait_for_audit("action.succeeded", id).await;
    }
    let list_calls = app
        .fake()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/users") && r.method == "GET")
        .count();
    assert_eq!(
        list_calls, 1,
        "the directory was paged once for three alerts"
    );
}

#[tokio::test]
async fn a_redelivered_alert_is_a_duplicate_and_plans_nothing_new() {
    let app = spawn_app().await;
    let mut alert = brute_force_alert("bob@example.com");
    alert["id"] = json!("siem-alert-42");
    let first: Value = app
        .post_alert("generic", &alert)
        .await
        .json()
        .await
        .unwrap();
    let id = alert_id(&first);
    let second = app.post_alert("generic", &alert).await;
    assert_eq!(second.status(), 202);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["alert_ids"], json!([]));
    assert_eq!(second["duplicates"][0]["duplicate_of"], json!(id));
    app.wait_for_audit("action.succeeded", &id).await;
    let plans = app.audit("kind=plan.made").await;
    assert_eq!(plans.len(), 1);
    assert_eq!(
        app.fake()
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(":suspend"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_protected_user_is_never_suspended() {
    let app = spawn_app().await;
    let resp = app
        .post_alert("generic", &brute_force_alert("breakglass@example.com"))
        .await;
    let id = alert_id(&resp.json().await.unwrap());
    let records = app.wait_for_audit("guard.protected", &id).await;
    assert!(records.iter().any(|r| r.event.kind == "guard.protected"
        && r.event.subject.as_deref() == Some("breakglass@example.com")));
    assert!(
        app.ctx
            .store
            .list_actions(Some(&id))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        app.fake()
            .requests()
            .iter()
            .all(|r| !r.path.ends_with(":suspend"))
    );
}

#[tokio::test]
async fn bad_requests_get_precise_errors_and_an_audit_record() {
    let app = spawn_app().await;
    let url = format!("{}/v1/alerts/generic", app.address);
    let unauth = app
        .http
        .post(&url)
        .bearer_auth("nope")
        .json(&brute_force_alert("alice@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    let body: Value = unauth.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(body["error"]["message"], "authentication failed");

    let not_json = app
        .http
        .post(&url)
        .bearer_auth(SOURCE_TOKEN)
        .body("{\"title\": \n oops}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2, column 2"),
        "{body}"
    );

    let shape = app
        .http
        .post(&url)
        .bearer_auth(SOURCE_TOKEN)
        .json(&json!({"user": {"email": "a@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(shape.status(), 422);
    let body: Value = shape.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/title"),
        "{body}"
    );

    let unknown = app
        .http
        .post(format!("{}/v1/alerts/nosuch", app.address))
        .bearer_auth(SOURCE_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let big = "x".repeat(1024 * 1024 + 1);
    let too_large = app
        .http
        .post(&url)
        .bearer_auth(SOURCE_TOKEN)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);

    app.ctx.flush_refusals().await;
    let rejected = app.audit("kind=alert.rejected").await;
    let reasons: Vec<_> = rejected
        .iter()
        .map(|r| r.event.data["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        [
            "unauthenticated",
            "invalid_json",
            "invalid_alert",
            "too_large"
        ]
    );
    assert!(
        app.ctx
            .store
            .unevaluated_alerts(10)
            .await
            .unwrap()
            .is_empty()
    );
    let stored_alerts = app.audit("kind=alert.received").await;
    assert!(stored_alerts.is_empty(), "nothing half-written");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let h = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    let r: Value = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "ready");
    assert_eq!(r["sandbox"], false);
    let unauth = app
        .http
        .get(format!("{}/v1/audit", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
}

#[tokio::test]
async fn shutdown_revokes_the_access_token() {
    let app = spawn_app().await;
    let (fake, _dir) = app.shutdown().await;
    assert_eq!(fake.handle.requests_to("/v1/oauth/revoke").len(), 1);
    let token_body = &fake.handle.requests_to("/v1/oauth/token")[0];
    assert!(token_body.authorization.is_some());
}

/// Protected means "never changed", not "never mentioned": a protected target's notify steps
/// run, its suspension does not, and the `protected_subject` channel is told — for the
/// playbook's own guard and for the global one alike.
#[tokio::test]
async fn a_protected_targets_notify_step_runs_and_the_channel_is_told() {
    let soc = start_receiver();
    let watch = start_receiver();
    let app = spawn_app_with(AppOptions {
        playbooks: vec![(
            "notify-then-suspend.yaml",
            r#"
name: notify-then-suspend
on:
  status: firing
  when: "alert.title.contains('brute')"
guards:
  protected: ["carol@example.com"]
steps:
  - notify: { to: soc, message: "brute force against {{ user.email }}" }
  - suspend: {}
"#
            .into(),
        )],
        extra_yaml: format!(
            "notify:\n  soc: {{ url: \"{}\" }}\n  watch: {{ url: \"{}\" }}\nnotifications:\n  protected_subject: [watch]\nguards:\n  protected: [\"breakglass@example.com\"]\n",
            soc.url, watch.url
        ),
        ..AppOptions::default()
    })
    .await;
    for email in ["carol@example.com", "breakglass@example.com"] {
        let id = app
            .post_alert_id("generic", &brute_force_alert(email))
            .await;
        app.settle().await;
        let actions = app.ctx.store.list_actions(Some(&id)).await.unwrap();
        let kinds: Vec<_> = actions
            .iter()
            .map(|a| (a.kind.as_str(), a.state.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [("notify", "succeeded")],
            "{email}: {kinds:?} {:?}",
            actions.iter().map(|a| &a.result).collect::<Vec<_>>()
        );
        assert_eq!(
            app.audit(&format!("kind=guard.protected&alert_id={id}"))
                .await
                .len(),
            1
        );
    }
    assert!(
        app.fake()
            .requests()
            .iter()
            .all(|r| !r.path.ends_with(":suspend"))
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while soc.texts().len() < 2 || watch.texts().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?} {:?}",
            soc.texts(),
            watch.texts()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        soc.texts()
            .iter()
            .any(|t| t.contains("brute force against carol@example.com"))
    );
    let told = watch.texts();
    assert!(
        told.iter()
            .any(|t| t.contains("protected account carol@example.com")),
        "{told:?}"
    );
    assert!(
        told.iter()
            .any(|t| t.contains("protected account breakglass@example.com")),
        "{told:?}"
    );
}
