//! The front door: formats, authentication schemes, multi-alert requests, resolved alerts,
//! and recovery of alerts stored before a crash.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use lockout::audit::{AuditEvent, PreparedEvent};
use lockout::store::{NewAlert, Store};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;

const GRAFANA_SECRET: &str = "grafana-hmac-secret";

fn sources() -> String {
    format!(
        r#"  grafana:
    format: grafana
    auth:
      type: hmac
      header: X-Grafana-Alerting-Signature
      secrets: ["previous-secret", "{GRAFANA_SECRET}"]
      timestamp_header: X-Grafana-Alerting-Timestamp
      tolerance_secs: 300
  alertmanager:
    format: alertmanager
    auth: {{ type: bearer, tokens: ["am-token-old", "am-token"] }}
  splunk:
    format: splunk
    default_severity: high
    auth: {{ type: basic, username: splunk, password: "splunk-pw" }}
"#
    )
}

async fn app() -> TestApp {
    spawn_app_with(AppOptions {
        extra_sources: sources(),
        ..AppOptions::default()
    })
    .await
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/alerts")
            .join(path),
    )
    .unwrap()
}

fn sign(secret: &str, ts: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(ts.as_bytes());
    m.update(b":");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

async fn post_grafana(app: &TestApp, body: &[u8], ts: &str, sig: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/alerts/grafana", app.address))
        .header("content-type", "application/json")
        .header("X-Grafana-Alerting-Timestamp", ts)
        .header("X-Grafana-Alerting-Signature", sig)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn grafana_hmac_signatures_are_verified_and_replays_refused() {
    let app = app().await;
    let body = fixture("grafana/1password-failed-signins-firing.json");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sig = sign(GRAFANA_SECRET, &now, &body);

    let ok = post_grafana(&app, &body, &now, &sig).await;
    assert_eq!(ok.status(), 202);
    let ok: Value = ok.json().await.unwrap();
    assert_eq!(ok["alert_ids"].as_array().unwrap().len(), 1);

    // The same signed request again is a replay.
    assert_eq!(post_grafana(&app, &body, &now, &sig).await.status(), 401);
    // A tampered body, a wrong secret, a stale timestamp.
    let mut tampered = body.clone();
    let i = tampered.iter().position(|b| *b == b'a').unwrap();
    tampered[i] = b'b';
    assert_eq!(
        post_grafana(&app, &tampered, &now, &sig).await.status(),
        401
    );
    let wrong = sign("not-the-secret", &now, &body);
    assert_eq!(post_grafana(&app, &body, &now, &wrong).await.status(), 401);
    let stale = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600)
        .to_string();
    assert_eq!(
        post_grafana(&app, &body, &stale, &sign(GRAFANA_SECRET, &stale, &body))
            .await
            .status(),
        401
    );
    // The previous secret still works during rotation.
    let later = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    assert_eq!(
        post_grafana(&app, &body, &later, &sign("previous-secret", &later, &body))
            .await
            .status(),
        202
    );

    // Refusals reach the audit aggregated, one record per source and reason per interval.
    app.ctx.flush_refusals().await;
    let rejected = app.audit("kind=alert.rejected").await;
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert_eq!(rejected[0].event.data["reason"], "unauthenticated");
    assert_eq!(rejected[0].event.data["count"], 4);
}

#[tokio::test]
async fn alertmanager_requests_carry_several_alerts_and_resolved_ones_trigger_nothing() {
    let app = app().await;
    let post = |body: Vec<u8>, token: &'static str| {
        app.http
            .post(format!("{}/v1/alerts/alertmanager", app.address))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let resp = post(
        fixture("alertmanager/04-1password-failed-signins.json"),
        "am-token",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["alert_ids"].as_array().unwrap().len(), 2);
    // Rotation: the old token is still accepted; a wrong one is not.
    let again = post(
        fixture("alertmanager/04-1password-failed-signins.json"),
        "am-token-old",
    )
    .await
    .unwrap();
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        again["duplicates"].as_array().unwrap().len(),
        2,
        "Alertmanager re-sends are duplicates"
    );
    assert_eq!(
        post(fixture("alertmanager/01-firing-amtool.json"), "nope")
            .await
            .unwrap()
            .status(),
        401
    );

    let firing: Value = post(fixture("alertmanager/01-firing-amtool.json"), "am-token")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resolved: Value = post(fixture("alertmanager/03-resolved.json"), "am-token")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        resolved["alert_ids"].as_array().unwrap().len(),
        1,
        "resolved is news, not a duplicate of firing"
    );
    let resolved_id = resolved["alert_ids"][0].as_str().unwrap();
    let records = app.wait_for_audit("plan.made", resolved_id).await;
    let plan = records
        .iter()
        .find(|r| r.event.kind == "plan.made")
        .unwrap();
    assert_eq!(
        plan.event.data["chains"],
        json!([]),
        "a resolved alert triggers nothing by default"
    );
    let stored = app.ctx.store.get_alert(resolved_id).await.unwrap().unwrap();
    assert_eq!(stored.status, "resolved");
    assert!(firing["alert_ids"].as_array().unwrap().len() == 1);
}

#[tokio::test]
async fn splunk_with_basic_auth_and_a_default_severity_suspends() {
    let app = app().await;
    let resp = app
        .http
        .post(format!("{}/v1/alerts/splunk", app.address))
        .basic_auth("splunk", Some("splunk-pw"))
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&json!({
                "sid": "scheduler__admin__search__RMD5_at_1_1",
                "search_name": "1Password brute force per user",
                "result": {"target_user.email": "bob@example.com", "count": "22"}
            }))
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let id = body["alert_ids"][0].as_str().unwrap().to_owned();
    app.wait_for_audit("action.succeeded", &id).await;
    let wrong = app
        .http
        .post(format!("{}/v1/alerts/splunk", app.address))
        .basic_auth("splunk", Some("guess"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn alerts_stored_before_a_crash_are_evaluated_on_restart() {
    let app = spawn_app().await;
    let (fake, dir) = app.shutdown().await;
    // An alert committed (202 answered) but never evaluated, as a crash would leave it.
    let store = store_of(dir.path()).await;
    let parsed = lockout::alerts::parse(
        lockout::alerts::SourceFormat::Generic,
        &Default::default(),
        None,
        brute_force_alert("dave@example.com").to_string().as_bytes(),
    )
    .unwrap()
    .remove(0);
    let alert = parsed.into_alert(
        "alr_crashed".into(),
        "generic",
        lockout::alerts::SourceFormat::Generic,
        lockout::domain::now_rfc3339(),
    );
    let stored = NewAlert {
        id: alert.id.clone(),
        source: "generic".into(),
        fingerprint: alert.fingerprint.clone(),
        received_at: alert.received_at.clone(),
        status: "firing".into(),
        correlation: "crash-test".into(),
        alert: serde_json::to_string(&alert).unwrap(),
        settled: None,
        plan: None,
        subjects: vec![],
    };
    store
        .insert_alert(
            stored,
            "2000-01-01T00:00:00Z",
            PreparedEvent::new(
                AuditEvent::new("alert.received", "source:generic")
                    .alert("alr_crashed")
                    .data(json!({})),
            ),
        )
        .await
        .unwrap();
    drop(store);
    let app = match start_in(dir, fake).await {
        Ok(a) => a,
        Err((e, _, _)) => panic!("{e}"),
    };
    app.wait_for_audit("action.succeeded", "alr_crashed").await;
    assert_eq!(
        app.fake()
            .requests_to("/users/D6N4QST5AMUYLENZL4ZOVSX7WH:suspend")
            .len(),
        1
    );
}

#[tokio::test]
async fn an_alert_that_calls_for_nothing_is_stored_evaluated_with_its_plan_at_once() {
    let app = spawn_app().await;
    let alert = json!({"id": "noise-1", "title": "disk almost full", "severity": "low",
                       "user": {"email": "someone@example.com"}});
    let response = app.post_alert("generic", &alert).await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["alert_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    // No waiting: the 202 came after the commit that holds the alert and its plan.
    let stored = app.ctx.store.get_alert(&id).await.unwrap().unwrap();
    assert_eq!(stored.state, lockout::store::AlertState::Evaluated);
    let records = app.audit(&format!("alert_id={id}")).await;
    let kinds: Vec<&str> = records.iter().map(|r| r.event.kind.as_str()).collect();
    // One record: the plan that found nothing to do is in the receipt.
    assert_eq!(kinds, ["alert.received"]);
    let plan = &records[0].event.data["plan"];
    assert!(
        plan["not_matched"]
            .as_array()
            .is_some_and(|names| !names.is_empty()),
        "{plan:?}"
    );
    assert_eq!(plan["chains"], json!([]));

    // The re-delivery is a duplicate and gets no plan of its own.
    let again = app.post_alert("generic", &alert).await;
    let body = again.json::<Value>().await.unwrap();
    let duplicate = body["duplicates"][0]["alert_id"].as_str().unwrap();
    let records = app.audit(&format!("alert_id={duplicate}")).await;
    let kinds: Vec<&str> = records.iter().map(|r| r.event.kind.as_str()).collect();
    assert_eq!(kinds, ["alert.duplicate"]);
    let record = &records[0];
    assert_eq!(record.event.data["duplicate_of"], json!(id));
    assert!(record.event.data.get("plan").is_none(), "{record:?}");
}

#[tokio::test]
async fn the_alerts_of_one_request_commit_together_and_a_repeat_inside_it_is_a_duplicate() {
    let app = spawn_app().await;
    let one = |id: &str| json!({"id": id, "title": "noise", "severity": "low"});
    let body = json!([one("r-1"), one("r-2"), one("r-1"), one("r-3")]);
    let response = app.post_alert("generic", &body).await;
    assert_eq!(response.status(), 202);
    let body = response.json::<Value>().await.unwrap();
    assert_eq!(body["alert_ids"].as_array().unwrap().len(), 3, "{body}");
    let duplicate = &body["duplicates"][0];
    assert_eq!(
        duplicate["duplicate_of"], body["alert_ids"][0],
        "the third alert repeats the first: {body}"
    );
}

#[tokio::test]
async fn the_planner_carries_out_the_plan_intake_stored_and_does_not_evaluate_again() {
    let app = spawn_app().await;
    // Through HTTP: an alert that starts an action is stored with its plan.
    let id = app
        .post_alert_id("generic", &brute_force_alert("alice@example.com"))
        .await;
    app.wait_for_audit("action.succeeded", &id).await;
    let stored = app.ctx.store.get_alert(&id).await.unwrap().unwrap();
    let plan =
        lockout::store::PlanRecord::from_json(stored.plan.as_deref().expect("a stored plan"))
            .unwrap();
    assert_eq!(plan.chains.len(), 1);
    assert_eq!(plan.chains[0].target, "alice@example.com");
    let (fake, dir) = app.shutdown().await;
    // An alert whose stored plan says "suspend dave" although no playbook matches its
    // content: the planner does what intake decided, it does not decide again.
    let store = store_of(dir.path()).await;
    let parsed = lockout::alerts::parse(
        lockout::alerts::SourceFormat::Generic,
        &Default::default(),
        None,
        json!({"title": "nothing any playbook matches", "user": {"email": "dave@example.com"}})
            .to_string()
            .as_bytes(),
    )
    .unwrap()
    .remove(0);
    let alert = parsed.into_alert(
        "alr_planned".into(),
        "generic",
        lockout::alerts::SourceFormat::Generic,
        lockout::domain::now_rfc3339(),
    );
    let mut decided = plan;
    decided.chains[0].target = "dave@example.com".into();
    decided.chains[0].alert_id = Some("alr_planned".into());
    decided.chains[0].id = lockout::domain::new_id("chn");
    decided.chains[0].steps[0].id = lockout::domain::new_id("act");
    decided.audit.clear();
    store
        .insert_alert(
            NewAlert {
                id: alert.id.clone(),
                source: "generic".into(),
                fingerprint: alert.fingerprint.clone(),
                received_at: alert.received_at.clone(),
                status: "firing".into(),
                correlation: "planned-test".into(),
                alert: serde_json::to_string(&alert).unwrap(),
                settled: None,
                plan: Some(decided.to_json()),
                subjects: vec![],
            },
            "2000-01-01T00:00:00Z",
            PreparedEvent::new(
                AuditEvent::new("alert.received", "source:generic")
                    .alert("alr_planned")
                    .data(json!({})),
            ),
        )
        .await
        .unwrap();
    drop(store);
    let app = match start_in(dir, fake).await {
        Ok(a) => a,
        Err((e, _, _)) => panic!("{e}"),
    };
    app.wait_for_audit("action.succeeded", "alr_planned").await;
    assert_eq!(
        app.fake()
            .requests_to("/users/D6N4QST5AMUYLENZL4ZOVSX7WH:suspend")
            .len(),
        1
    );
}
