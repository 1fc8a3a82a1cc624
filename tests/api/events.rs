//! The 1Password Events API against the fake: the direct source (detection with no SIEM),
//! evidence and proof in the audit, recent activity on approvals, cursors across a crash,
//! 429s, a token without a feature, a newer schema, and the feed-health alarm.

use std::time::{Duration, Instant};

use lockout::events_api::Feed;
use lockout::sandbox::FakeConfig;
use serde_json::{Value, json};

use crate::helpers::*;

const BOB: &str = "B4L2NQR3YKSWJCLXJ2XMTQV5UF";

fn events_options(extra: &str) -> AppOptions {
    AppOptions {
        playbooks: vec![(
            "events-brute-force.yaml",
            include_str!("../../playbooks/events-brute-force.yaml").into(),
        )],
        extra_sources: r#"  onepassword:
    format: 1password_events
    auth: { type: bearer, token: "events-source-token" }"#
            .into(),
        extra_yaml: format!(
            r#"events_api:
  base_url: "FAKE"
  token: "{token}"
  source: onepassword
  poll_interval_secs: 1
  retry: {{ max_attempts: 4, base_delay_ms: 10, max_delay_ms: 50, deadline_ms: 10000, max_retry_after_secs: 2 }}
{extra}"#,
            token = FakeConfig::SANDBOX_EVENTS_TOKEN
        ),
        ..AppOptions::default()
    }
}

/// Starts the app with `events_api` pointing at the test's fake.
async fn spawn_events_app(extra: &str) -> TestApp {
    spawn_events_app_with(events_options(extra), |_| {}).await
}

async fn spawn_events_app_with(
    opts: AppOptions,
    prepare: impl FnOnce(&lockout::sandbox::FakeHandle),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let fake = start_fake(fake_config(opts.users.clone()));
    prepare(&fake.handle);
    let mut opts = opts;
    opts.extra_yaml = opts.extra_yaml.replace("FAKE", &fake.base_url);
    write_settings(dir.path(), &fake, &opts);
    match start_in(dir, fake).await {
        Ok(app) => app,
        Err((e, _, _)) => panic!("app did not start: {e}"),
    }
}

async fn wait_for_kind(app: &TestApp, kind: &str, query: &str) -> Vec<lockout::audit::AuditRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = app.audit(query).await;
        if records.iter().any(|r| r.event.kind == kind) {
            return records;
        }
        assert!(Instant::now() < deadline, "no {kind} record within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn readyz(app: &TestApp) -> Value {
    app.http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_brute_force_read_from_the_events_api_suspends_with_evidence_and_proof() {
    let app = spawn_events_app("").await;
    app.fake()
        .play_brute_force("alice@example.com", 4, "CA", "BR");
    let records = wait_for_kind(&app, "action.verified", &format!("subject={ALICE}")).await;
    let k = kinds(&records);
    assert!(k.contains(&"action.succeeded"), "{k:?}");
    assert_eq!(
        app.fake().user(ALICE).unwrap().state,
        lockout::users_api::UserState::Suspended
    );
    // The success that decided it carries its evidence: the windows it was judged on.
    let all = app.audit("kind=alert.received").await;
    let decisive = all
        .iter()
        .find(|r| r.event.data["windows"]["failures_before_success"] == json!(4))
        .unwrap_or_else(|| panic!("no alert.received with the windows: {all:#?}"));
    assert_eq!(decisive.event.data["windows"]["failed_sign_ins"], json!(4));
    // The proof names 1Password's audit event of the suspension, by lockout's integration.
    let verified = records
        .iter()
        .find(|r| r.event.kind == "action.verified")
        .unwrap();
    assert_eq!(verified.event.data["action"], "suspend");
    assert_eq!(
        verified.event.data["actor"]["uuid"],
        FakeConfig::SANDBOX_ACTOR
    );
    // That audit event came back through the feed as an alert, and never remediates.
    let prevented = wait_for_kind(&app, "plan.loop_prevented", "kind=plan.loop_prevented").await;
    assert!(!prevented.is_empty());
    let suspends = app
        .fake()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(":suspend"))
        .count();
    assert_eq!(suspends, 1);
}

#[tokio::test]
async fn an_approval_shows_and_freezes_the_users_recent_activity() {
    let app = spawn_events_app("").await;
    // Five failures and no success: the fifth asks a secops approver.
    let items: Vec<Value> = (0..5)
        .map(|i| {
            json!({"category": "credentials_failed", "type": "password_secret_bad", "country": "CA",
                   "session_uuid": format!("S{i}"),
                   "target_user": {"uuid": BOB, "email": "bob@example.com", "name": "Bob"},
                   "client": {"ip_address": "198.51.100.9"}})
        })
        .collect();
    app.fake().push_events(Feed::SignInAttempts, items);
    app.fake().push_events(
        Feed::ItemUsages,
        vec![
            json!({"used_version": 1, "vault_uuid": "v", "item_uuid": "i", "action": "reveal",
                    "user": {"uuid": BOB, "email": "bob@example.com"}}),
        ],
    );
    let records = wait_for_kind(&app, "approval.requested", &format!("subject={BOB}")).await;
    let approval_id = records
        .iter()
        .find(|r| r.event.kind == "approval.requested")
        .unwrap()
        .event
        .data["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwt = token("ana@example.com", &["secops"]);
    let (status, view) = app
        .get_json(&format!("/v1/approvals/{approval_id}"), &jwt)
        .await;
    assert_eq!(status, 200, "{view}");
    let activity = &view["recent_activity"];
    assert_eq!(activity["available"], true, "{view}");
    let sign_ins = activity["sign_ins"].as_array().unwrap();
    assert_eq!(sign_ins.len(), 5, "{activity}");
    assert_eq!(sign_ins[0]["category"], "credentials_failed");
    assert_eq!(sign_ins[0]["ip"], "198.51.100.9");
    // The item usage may arrive a poll later than the approval; the record is frozen once, so
    // it holds what was known then. The audit holds the same as the view.
    let frozen = wait_for_kind(&app, "action.context", &format!("subject={BOB}")).await;
    let ctx_record = frozen
        .iter()
        .find(|r| r.event.kind == "action.context")
        .unwrap();
    assert_eq!(ctx_record.event.data["recent_activity"], *activity);
}

#[tokio::test]
async fn a_manual_action_carries_the_users_recent_activity() {
    let app = spawn_events_app("").await;
    app.fake().push_events(
        Feed::SignInAttempts,
        vec![
            json!({"category": "success", "type": "credentials_ok", "country": "NL",
                    "target_user": {"uuid": BOB, "email": "bob@example.com"}}),
        ],
    );
    wait_until(|| async { app.fake().events_requests() > 3 }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let jwt = token("ivy@example.com", &["analyst"]);
    let (status, body) = app
        .post_json(
            "/v1/users/bob@example.com/suspend",
            &jwt,
            &json!({"reason": "reported phishing"}),
        )
        .await;
    assert!(status == 202 || status == 200, "{status} {body}");
    let records = wait_for_kind(&app, "action.context", "kind=action.context").await;
    let r = records
        .iter()
        .find(|r| r.event.kind == "action.context")
        .unwrap();
    assert_eq!(
        r.event.data["recent_activity"]["sign_ins"][0]["country"], "NL",
        "{r:#?}"
    );
}

async fn wait_until<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "condition not met within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_suspension_1password_never_logged_is_recorded_unverified_and_announced() {
    let hook = start_receiver();
    let app = spawn_events_app_with(
        events_options(&format!(
            "  verify_window_secs: 1\nnotify:\n  ops: {{ url: \"{}\" }}\nnotifications:\n  action_unverified: [ops]",
            hook.url
        )),
        |f| f.set_events_record_changes(false),
    )
    .await;
    app.fake()
        .play_brute_force("alice@example.com", 3, "CA", "BR");
    let records = wait_for_kind(&app, "action.unverified", &format!("subject={ALICE}")).await;
    assert!(!kinds(&records).contains(&"action.verified"));
    wait_until(|| async { hook.texts().iter().any(|t| t.contains("shows no suspend")) }).await;
}

#[tokio::test]
async fn rate_limits_with_and_without_retry_after_lose_nothing() {
    let app = spawn_events_app("").await;
    wait_until(|| async { app.fake().events_requests() > 3 }).await;
    app.fake().events_rate_limit_next(2, Some(1));
    app.fake()
        .play_brute_force("alice@example.com", 3, "CA", "BR");
    wait_for_kind(&app, "action.succeeded", &format!("subject={ALICE}")).await;
    app.fake().events_rate_limit_next(3, None);
    app.fake()
        .play_brute_force("bob@example.com", 3, "CA", "BR");
    wait_for_kind(&app, "action.succeeded", &format!("subject={BOB}")).await;
    // Every event was kept once.
    let kept = app
        .ctx
        .store
        .events_since("2000-01-01T00:00:00Z", 1000)
        .await
        .unwrap();
    let sign_ins = kept
        .iter()
        .filter(|e| e.facts.feed == Feed::SignInAttempts)
        .count();
    assert_eq!(sign_ins, 8);
    let h = readyz(&app).await;
    assert_eq!(
        h["checks"]["events_api"]["feeds"]["signinattempts"]["status"], "ok",
        "{h}"
    );
}

#[tokio::test]
async fn a_token_without_a_feature_is_shown_and_the_other_feeds_go_on() {
    let hook = start_receiver();
    let app = spawn_events_app_with(
        events_options(&format!(
            "notify:\n  ops: {{ url: \"{}\" }}\nnotifications:\n  feed_unhealthy: [ops]",
            hook.url
        )),
        |f| {
            f.set_events_tokens(vec![(
                FakeConfig::SANDBOX_EVENTS_TOKEN.into(),
                vec![Feed::SignInAttempts, Feed::AuditEvents],
            )])
        },
    )
    .await;
    wait_for_kind(&app, "feed.unhealthy", "kind=feed.unhealthy").await;
    let h = readyz(&app).await;
    let e = &h["checks"]["events_api"];
    assert_eq!(
        e["token"]["features"],
        json!(["signinattempts", "auditevents"]),
        "{h}"
    );
    assert!(
        e["feeds"]["itemusages"]["status"]
            .as_str()
            .unwrap()
            .contains("unauthorized"),
        "{h}"
    );
    assert_eq!(e["feeds"]["signinattempts"]["status"], "ok", "{h}");
    wait_until(|| async {
        hook.texts()
            .iter()
            .any(|t| t.contains("itemusages feed is unhealthy"))
    })
    .await;
    app.fake()
        .play_brute_force("alice@example.com", 3, "CA", "BR");
    wait_for_kind(&app, "action.succeeded", &format!("subject={ALICE}")).await;
}

#[tokio::test]
async fn a_newer_schema_fails_nothing_and_its_unknown_values_are_visible() {
    let app = spawn_events_app_with(events_options(""), |f| f.set_events_newer_schema(true)).await;
    app.fake()
        .play_brute_force("alice@example.com", 3, "CA", "BR");
    wait_for_kind(&app, "action.succeeded", &format!("subject={ALICE}")).await;
    let (_, alerts) = app
        .get_json(
            "/v1/alerts?source=onepassword",
            &token("ana@example.com", &["secops"]),
        )
        .await;
    let success = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("passkey_ok"))
        .unwrap_or_else(|| panic!("the new value is shown in the title: {alerts}"));
    let (_, report) = app
        .get_json(
            &format!("/v1/alerts/{}", success["id"].as_str().unwrap()),
            &token("ana@example.com", &["secops"]),
        )
        .await;
    let unknown = report["alert"]["alert"]["labels"]["unknown"]
        .as_str()
        .unwrap_or_default();
    assert!(unknown.contains("field:risk"), "{report}");
    assert!(unknown.contains("type=passkey_ok"), "{report}");
    let h = readyz(&app).await;
    assert_eq!(
        h["checks"]["events_api"]["feeds"]["signinattempts"]["errors_total"],
        0
    );
}

#[tokio::test]
async fn feed_silence_raises_the_alarm_and_an_event_clears_it() {
    let hook = start_receiver();
    let app = spawn_events_app(&format!(
        "  silence_alarm_secs: 2\n  feeds: [signinattempts]\nnotify:\n  ops: {{ url: \"{}\" }}\nnotifications:\n  feed_unhealthy: [ops]",
        hook.url
    ))
    .await;
    let raised = wait_for_kind(&app, "feed.unhealthy", "kind=feed.unhealthy").await;
    assert!(
        raised[0].event.data["problem"]
            .as_str()
            .unwrap()
            .starts_with("no event for")
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lockout_events_feed_healthy{feed=\"signinattempts\"} 0"),
        "{metrics}"
    );
    app.fake().push_events(
        Feed::SignInAttempts,
        vec![
            json!({"category": "success", "type": "credentials_ok", "target_user": {"uuid": BOB}}),
        ],
    );
    wait_for_kind(&app, "feed.recovered", "kind=feed.recovered").await;
    wait_until(|| async { hook.texts().iter().any(|t| t.contains("recovered")) }).await;
}

#[tokio::test]
async fn the_fake_keeps_the_contract_of_cursors_limits_and_tokens() {
    let fake = start_fake(fake_config(lockout::sandbox::sample_users()));
    let http = reqwest::Client::new();
    let post = |body: Value, token: &'static str| {
        let http = http.clone();
        let url = format!("{}/api/v2/signinattempts", fake.base_url);
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let t = FakeConfig::SANDBOX_EVENTS_TOKEN;
    assert_eq!(post(json!({"limit": 0}), t).await.0, 400);
    assert_eq!(post(json!({"limit": 1001}), t).await.0, 400);
    assert_eq!(post(json!({"limit": 5, "cursor": "x"}), t).await.0, 400);
    assert_eq!(post(json!({"cursor": "forged"}), t).await.0, 400);
    let (s, e) = post(json!({}), "wrong").await;
    assert_eq!((s, e), (401, json!({"Error": {"Message": "Unauthorized"}})));
    fake.handle.push_events(
        Feed::SignInAttempts,
        (0..3).map(|i| json!({"category": "success", "session_uuid": i.to_string(), "target_user": {"uuid": ALICE}})).collect(),
    );
    let (s, p1) = post(json!({"limit": 2}), t).await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            p1["items"].as_array().unwrap().len(),
            p1["has_more"].clone()
        ),
        (2, json!(true))
    );
    let (_, p2) = post(json!({"cursor": p1["cursor"]}), t).await;
    assert_eq!(
        (
            p2["items"].as_array().unwrap().len(),
            p2["has_more"].clone()
        ),
        (1, json!(false))
    );
    // End of data: the same cursor brings nothing, then what was added since.
    let (_, p3) = post(json!({"cursor": p2["cursor"]}), t).await;
    assert!(p3["items"].as_array().unwrap().is_empty());
    fake.handle.push_events(
        Feed::SignInAttempts,
        vec![json!({"category": "success", "target_user": {"uuid": ALICE}})],
    );
    let (_, p4) = post(json!({"cursor": p3["cursor"]}), t).await;
    assert_eq!(p4["items"].as_array().unwrap().len(), 1);
    // A cursor of one feed is refused by another.
    let r = http
        .post(format!("{}/api/v2/itemusages", fake.base_url))
        .bearer_auth(t)
        .json(&json!({"cursor": p4["cursor"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// kill -9 after a page's alerts are committed and before its events and cursor are: the new
/// process reads the page again, loses no event, and plans none twice.
#[tokio::test]
async fn a_crash_mid_page_loses_no_event_and_plans_none_twice() {
    use crate::crash::{configure, free_port, serve, wait_ready};
    let fake = start_fake(fake_config(lockout::sandbox::sample_users()));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = events_options("");
    opts.extra_yaml = opts.extra_yaml.replace("FAKE", &fake.base_url);
    write_settings(dir.path(), &fake, &opts);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let config = configure(dir.path(), &fake, port, Some("events_after_alerts"), 1);
    fake.handle
        .play_brute_force("alice@example.com", 3, "CA", "BR");
    let mut first = serve(&config);
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the failpoint was not reached");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = store_of(dir.path()).await;
    use lockout::store::Store;
    assert!(
        store
            .event_cursor("signinattempts")
            .await
            .unwrap()
            .is_none(),
        "the cursor did not move past what was not committed"
    );
    let config = configure(dir.path(), &fake, port, None, 1);
    let _second = serve(&config);
    wait_ready(&http, &base).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let kept = store
            .events_since("2000-01-01T00:00:00Z", 100)
            .await
            .unwrap();
        let suspended =
            fake.handle.user(ALICE).unwrap().state == lockout::users_api::UserState::Suspended;
        if suspended
            && kept
                .iter()
                .filter(|e| e.facts.feed == Feed::SignInAttempts)
                .count()
                == 4
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recovered: {} events kept",
            kept.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        store
            .event_cursor("signinattempts")
            .await
            .unwrap()
            .is_some()
    );
    let alerts = store
        .list_alerts(&lockout::store::AlertQuery {
            source: Some("onepassword".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let sign_ins: Vec<_> = alerts
        .iter()
        .filter(|a| a.alert["labels"]["feed"] == "signinattempts")
        .collect();
    let originals = sign_ins.iter().filter(|a| a.duplicate_of.is_none()).count();
    assert_eq!(
        originals, 4,
        "each event is one alert; the re-read ones are duplicates"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.handle
            .requests_to(&format!("/users/{ALICE}:suspend"))
            .len(),
        1
    );
}

#[tokio::test]
async fn the_stream_is_scripted_in_the_sandbox_only_and_scripts_are_checked() {
    let app = spawn_app().await;
    let (status, _) = app
        .post_json(
            "/v1/sandbox/events",
            ADMIN_TOKEN,
            &json!({"scenario": "brute_force", "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(status, 404, "live mode has no fake to script");
    let play = |body: Value| lockout::sandbox::play_events(app.fake(), &body);
    assert_eq!(
        play(json!({"scenario": "brute_force", "email": "a@example.com", "failures": 2}))
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        play(json!({"feed": "itemusages", "items": [{"action": "reveal"}]}))
            .unwrap()
            .len(),
        1
    );
    for bad in [
        json!({}),
        json!({"scenario": "brute_force"}),
        json!({"scenario": "phishing", "email": "a@example.com"}),
        json!({"feed": "signins", "items": []}),
        json!({"feed": "itemusages", "items": [1]}),
        json!({"feed": "itemusages", "items": [], "extra": true}),
        json!({"scenario": "brute_force", "email": "a@example.com", "failures": 5000}),
    ] {
        assert!(play(bad.clone()).is_err(), "{bad}");
    }
}
