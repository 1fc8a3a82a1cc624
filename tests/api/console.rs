//! The console's rules, through its pages: CSRF, "already decided", roles, four-eyes, session
//! expiry; and approvals from Slack's signed interaction callback. Sessions are minted here
//! with the configured key, as the session middleware would write them (the sign-in itself,
//! through a real OpenID provider in a real browser, is `tests/browser`, run by
//! `browser::the_console_signs_in_approves_with_quorum_two_and_shows_the_timeline`).

use std::collections::HashMap;

use actix_web::cookie::{Cookie, CookieJar, Key};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;

const KEY: &str = "console-test-session-key-0123456789abcdef-0123456789abcdef-0123456789";
const SLACK_SECRET: &str = "slack-test-signing-secret";

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

pub struct Console {
    pub app: TestApp,
    pub receiver: Receiver,
    http: reqwest::Client,
}

async fn console(approval: &str) -> Console {
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), KEY).unwrap();
    let (_, key_path) = key_file.keep().unwrap();
    let receiver = start_receiver();
    let prefix = receiver.url.trim_end_matches("/hook");
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("approval.yaml", playbook(approval))],
        extra_yaml: format!(
            r#"
console:
  session_key_file: "{}"
  idle_timeout_secs: 60
  absolute_timeout_secs: 120
slack:
  signing_secret: "{SLACK_SECRET}"
  response_url_prefix: "{prefix}/"
  users:
    UANA: {{ identity: Ana@Example.com, roles: [secops] }}
    UBEN: {{ identity: ben@example.com, roles: [secops] }}
    UVIC: {{ identity: vic@example.com, roles: [viewer] }}
"#,
            key_path.display()
        ),
        ..AppOptions::default()
    })
    .await;
    Console {
        app,
        receiver,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

/// A session cookie for `who` with `roles`, signed in `age` seconds ago and last seen `idle`
/// seconds ago; and its CSRF token.
fn session(who: &str, roles: &[&str], age: i64, idle: i64) -> (String, String) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let csrf = format!("csrf-{who}");
    let signed_in = json!({
        "id": who, "aliases": [who], "roles": roles, "via": "test",
        "signed_in_at": now - age, "last_seen": now - idle, "csrf": csrf,
    });
    let state: HashMap<String, String> = [
        ("who".to_owned(), signed_in.to_string()),
        ("csrf".to_owned(), Value::String(csrf.clone()).to_string()),
    ]
    .into();
    let mut jar = CookieJar::new();
    jar.private_mut(&Key::derive_from(KEY.as_bytes()))
        .add(Cookie::new(
            "lockout_console",
            serde_json::to_string(&state).unwrap(),
        ));
    let value = jar.get("lockout_console").unwrap().value().to_owned();
    (format!("lockout_console={value}"), csrf)
}

impl Console {
    async fn get(&self, path: &str, cookie: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let r = self
            .http
            .get(format!("{}{path}", self.app.address))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, r.text().await.unwrap(), headers)
    }

    async fn post(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.app.address))
            .header("Cookie", cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn pending(&self, email: &str) -> String {
        let body: Value = self
            .app
            .post_alert("generic", &brute_force_alert(email))
            .await
            .json()
            .await
            .unwrap();
        let alert_id = body["alert_ids"][0].as_str().unwrap();
        self.app.pending_approval_for(alert_id).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn approval_state(&self, id: &str) -> String {
        let a = self.app.ctx.store.get_approval(id).await.unwrap().unwrap();
        a.state.as_str().to_owned()
    }

    /// Posts a Slack interaction signed with `secret` at `ts`.
    async fn slack(
        &self,
        secret: &str,
        ts: i64,
        user: &str,
        action: &str,
        approval: &str,
    ) -> (u16, Value, String) {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user},
            "actions": [{"action_id": action, "value": approval}],
            "response_url": self.receiver.url,
        });
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let signature = sign(secret, ts, &body);
        self.slack_raw(ts, &signature, body).await
    }

    async fn slack_raw(&self, ts: i64, signature: &str, body: String) -> (u16, Value, String) {
        let r = self
            .http
            .post(format!(
                "{}/v1/integrations/slack/interactions",
                self.app.address
            ))
            .header("X-Slack-Request-Timestamp", ts.to_string())
            .header("X-Slack-Signature", signature)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json().await.unwrap_or(Value::Null),
            body,
        )
    }
}

fn sign(secret: &str, ts: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn pages_need_a_session_and_carry_protective_headers() {
    let c = console("{ approvers: [secops], timeout: 30m }").await;
    let (status, _, headers) = c.get("/console/approvals", "").await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/console/sign-in");
    let (status, page, headers) = c.get("/console/sign-in", "").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    // Live mode: no sandbox sign-in is offered, and its endpoint does not exist.
    assert!(!page.contains("Sandbox sign-in"), "{page}");
    let (status, _) = c
        .post(
            "/console/auth/sandbox",
            "",
            &[("identity", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 404);
    // A forged cookie (not encrypted with the key) is no session.
    let (status, _, _) = c.get("/console/approvals", "lockout_console=forged").await;
    assert_eq!(status, 303);
    // Every page renders for a viewer.
    let id = c.pending("alice@example.com").await;
    let (cookie, _) = session("vic@example.com", &["viewer"], 0, 0);
    for path in [
        "/console/approvals".to_owned(),
        format!("/console/approvals/{id}"),
        "/console/alerts".into(),
        "/console/alerts?q=alice".into(),
        "/console/users?q=alice".into(),
        "/console/users/alice@example.com".into(),
        "/console/audit".into(),
        "/console/audit?kind=approval".into(),
        "/console/audit/verify".into(),
    ] {
        let (status, page, _) = c.get(&path, &cookie).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert!(page.contains("vic@example.com"), "{path}");
    }
    // A user's alerts are found by any spelling of their e-mail; a stranger has none.
    let (_, page, _) = c
        .get("/console/alerts?q=Alice%40Example.com", &cookie)
        .await;
    assert!(
        page.contains("brute force against 1Password sign-in"),
        "{page}"
    );
    let (_, page, _) = c
        .get("/console/alerts?q=nobody%40example.com", &cookie)
        .await;
    assert!(page.contains("No alerts match"), "{page}");
    let (_, page, _) = c.get("/console/audit/verify", &cookie).await;
    assert!(page.contains("Intact"), "{page}");
    let (status, csv, headers) = c
        .get("/console/audit/export?format=csv&kind=approval", &cookie)
        .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(csv.contains("approval.requested"), "{csv}");
    // A person with no console role sees nothing.
    let (cookie, _) = session("nobody@example.com", &["sales"], 0, 0);
    let (status, page, _) = c.get("/console/approvals", &cookie).await;
    assert_eq!(status, 403, "{page}");
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused() {
    let c = console("{ approvers: [secops], timeout: 30m }").await;
    let id = c.pending("alice@example.com").await;
    let (cookie, csrf) = session("ana@example.com", &["secops"], 0, 0);
    let path = format!("/console/approvals/{id}");
    let (status, page) = c.post(&path, &cookie, &[("decision", "approve")]).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("CSRF"), "{page}");
    let (status, _) = c
        .post(
            &path,
            &cookie,
            &[("decision", "approve"), ("csrf", "another-sessions-token")],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(c.approval_state(&id).await, "pending");
    // With it, the decision is made, by the API's rules.
    let (status, page) = c
        .post(&path, &cookie, &[("decision", "approve"), ("csrf", &csrf)])
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Approved"), "{page}");
    assert_eq!(c.approval_state(&id).await, "approved");
    let decided = c.app.audit("kind=approval.decision").await;
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].event.actor, "approver:ana@example.com");
    // Sign-out needs the token too.
    let (status, _) = c.post("/console/sign-out", &cookie, &[]).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_stale_page_posting_after_the_decision_is_told_who_decided() {
    let c = console("{ approvers: [secops], timeout: 30m }").await;
    let id = c.pending("alice@example.com").await;
    let path = format!("/console/approvals/{id}");
    let (ana, ana_csrf) = session("ana@example.com", &["secops"], 0, 0);
    let (ben, ben_csrf) = session("ben@example.com", &["secops"], 0, 0);
    // Both opened the page while it was pending.
    assert!(c.get(&path, &ana).await.1.contains("id=\"approve\""));
    assert!(c.get(&path, &ben).await.1.contains("id=\"approve\""));
    let (status, _) = c
        .post(
            &path,
            &ana,
            &[
                ("decision", "deny"),
                ("reason", "a false positive"),
                ("csrf", &ana_csrf),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let (status, page) = c
        .post(&path, &ben, &[("decision", "approve"), ("csrf", &ben_csrf)])
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("Already decided"), "{page}");
    assert!(page.contains("deny by ana@example.com at 20"), "{page}");
    assert_eq!(c.approval_state(&id).await, "denied");
    // A deny needs a reason, as in the API.
    let id = c.pending("bob@example.com").await;
    let (status, _) = c
        .post(
            &format!("/console/approvals/{id}"),
            &ana,
            &[("decision", "deny"), ("csrf", &ana_csrf)],
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(c.approval_state(&id).await, "pending");
}

#[tokio::test]
async fn a_viewer_cannot_approve_and_the_requester_cannot_approve_their_own_request() {
    let c = console("{ approvers: [secops], timeout: 30m, quorum: 2 }").await;
    let id = c.pending("alice@example.com").await;
    let path = format!("/console/approvals/{id}");
    let (vic, vic_csrf) = session("vic@example.com", &["viewer"], 0, 0);
    let (_, page, _) = c.get(&path, &vic).await;
    assert!(
        !page.contains("id=\"approve\""),
        "a viewer is shown no buttons"
    );
    let (status, page) = c
        .post(&path, &vic, &[("decision", "approve"), ("csrf", &vic_csrf)])
        .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Not an approver"), "{page}");
    assert_eq!(c.approval_state(&id).await, "pending");
    // A viewer cannot suspend by hand either.
    let (status, _) = c
        .post(
            "/console/users/bob@example.com",
            &vic,
            &[("action", "suspend"), ("reason", "x"), ("csrf", &vic_csrf)],
        )
        .await;
    assert_eq!(status, 403);

    // An analyst who is also an approver asks for a suspension that needs approval...
    let (ana, ana_csrf) = session("ana@example.com", &["secops"], 0, 0);
    let (status, page) = c
        .post(
            "/console/users/bob@example.com",
            &ana,
            &[
                ("action", "suspend"),
                ("reason", "INC-7 leaked session"),
                ("approval_required", "1"),
                ("csrf", &ana_csrf),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let approval = page
        .split("waits for approval ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .expect("the approval's id")
        .to_owned();
    // ...and cannot approve it (four-eyes), under another spelling of her e-mail too.
    let (ana2, ana2_csrf) = session("Ana@Example.com", &["secops"], 0, 0);
    let (status, page) = c
        .post(
            &format!("/console/approvals/{approval}"),
            &ana2,
            &[("decision", "approve"), ("csrf", &ana2_csrf)],
        )
        .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Four-eyes"), "{page}");
    // Someone else can.
    let (ben, ben_csrf) = session("ben@example.com", &["secops"], 0, 0);
    let (status, page) = c
        .post(
            &format!("/console/approvals/{approval}"),
            &ben,
            &[("decision", "approve"), ("csrf", &ben_csrf)],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    // The manual request went through the same path as the API: its audit names the analyst.
    let requested = c.app.audit("kind=manual.suspend").await;
    assert!(
        requested
            .iter()
            .any(|r| r.event.actor == "analyst:ana@example.com"),
        "{requested:?}"
    );
}

#[tokio::test]
async fn sessions_end_when_idle_or_too_old() {
    let c = console("{ approvers: [secops], timeout: 30m }").await;
    let (fresh, _) = session("ana@example.com", &["secops"], 100, 5);
    assert_eq!(c.get("/console/approvals", &fresh).await.0, 200);
    let (idle, _) = session("ana@example.com", &["secops"], 90, 61);
    let (status, _, headers) = c.get("/console/approvals", &idle).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/console/sign-in?why=expired");
    // Active a second ago, but signed in longer ago than the absolute timeout.
    let (old, _) = session("ana@example.com", &["secops"], 121, 1);
    let (status, _, headers) = c.get("/console/approvals", &old).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/console/sign-in?why=expired");
}

#[tokio::test]
async fn slack_buttons_decide_by_the_same_rules_and_refuse_forgeries() {
    let c = console("{ approvers: [secops], timeout: 30m, quorum: 2 }").await;
    let id = c.pending("alice@example.com").await;
    // A bad signature, a stale timestamp: refused, nothing decided.
    let (status, _, _) = c
        .slack("not-the-secret", now(), "UANA", "lockout_approve", &id)
        .await;
    assert_eq!(status, 401);
    let (status, _, _) = c
        .slack(SLACK_SECRET, now() - 301, "UANA", "lockout_approve", &id)
        .await;
    assert_eq!(status, 401);
    // An unmapped Slack user, and one mapped without an approver role.
    let (status, _, _) = c
        .slack(SLACK_SECRET, now(), "UEVE", "lockout_approve", &id)
        .await;
    assert_eq!(status, 403);
    let (status, body, _) = c
        .slack(SLACK_SECRET, now(), "UVIC", "lockout_approve", &id)
        .await;
    assert_eq!(status, 200);
    assert!(
        body["text"].as_str().unwrap().contains("could not decide"),
        "{body}"
    );
    assert_eq!(c.approval_state(&id).await, "pending");
    // Ana approves: 1 of 2.
    let ts = now();
    let (status, body, raw) = c
        .slack(SLACK_SECRET, ts, "UANA", "lockout_approve", &id)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["text"].as_str().unwrap().contains("1 of 2"), "{body}");
    // The same request again (a replay, even with its valid signature): refused.
    let (status, _, _) = c.slack_raw(ts, &sign(SLACK_SECRET, ts, &raw), raw).await;
    assert_eq!(status, 401);
    // Ana again, in a new request: one person counts once.
    let (_, body, _) = c
        .slack(SLACK_SECRET, now() + 1, "UANA", "lockout_approve", &id)
        .await;
    assert!(
        body["text"].as_str().unwrap().contains("already decided"),
        "{body}"
    );
    // Ben approves: the quorum is met, the user is suspended, the message updated.
    let (_, body, _) = c
        .slack(SLACK_SECRET, now(), "UBEN", "lockout_approve", &id)
        .await;
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("Approved by ben@example.com"),
        "{body}"
    );
    assert_eq!(c.approval_state(&id).await, "approved");
    let decided = c.app.audit("kind=approval.decision").await;
    let approvers: Vec<&str> = decided.iter().map(|r| r.event.actor.as_str()).collect();
    assert_eq!(
        approvers,
        ["approver:ana@example.com", "approver:ben@example.com"]
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !c
        .receiver
        .texts()
        .iter()
        .any(|t| t.contains("Approved by ben"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            c.receiver.texts()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let update = c
        .receiver
        .bodies
        .lock()
        .unwrap()
        .iter()
        .find(|b| {
            b["text"]
                .as_str()
                .unwrap_or_default()
                .contains("Approved by ben")
        })
        .cloned()
        .unwrap();
    assert_eq!(update["replace_original"], true);
    // Refusals are audited: the unmapped user at once, forgeries aggregated.
    assert_eq!(c.app.audit("kind=slack.refused").await.len(), 1);
    c.app.ctx.flush_refusals().await;
    let rejected = c.app.audit("kind=alert.rejected").await;
    let reasons: Vec<&str> = rejected
        .iter()
        .filter(|r| r.event.actor == "source:slack")
        .map(|r| r.event.data["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"bad_signature")
            && reasons.contains(&"stale")
            && reasons.contains(&"replayed"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn the_slack_approval_message_names_the_user_and_carries_buttons() {
    let receiver = start_receiver();
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("approval.yaml", playbook("{ approvers: [secops], timeout: 30m }"))],
        extra_yaml: format!(
            "console:\n  public_url: \"https://lockout.example.com\"\nnotify:\n  soc: {{ url: \"{}\", format: slack }}\nnotifications:\n  approval_pending: [soc]\n",
            receiver.url
        ),
        ..AppOptions::default()
    })
    .await;
    let body: Value = app
        .post_alert("generic", &brute_force_alert("alice@example.com"))
        .await
        .json()
        .await
        .unwrap();
    let id = app
        .pending_approval_for(body["alert_ids"][0].as_str().unwrap())
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let message = loop {
        if let Some(m) = receiver
            .bodies
            .lock()
            .unwrap()
            .iter()
            .find(|b| b.get("blocks").is_some())
            .cloned()
        {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no Slack message");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let text = message["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(text.contains("suspend alice@example.com"), "{text}");
    assert!(
        text.contains(&format!(
            "https://lockout.example.com/console/approvals/{id}"
        )),
        "{text}"
    );
    let buttons = message["blocks"][1]["elements"].as_array().unwrap();
    assert_eq!(buttons[0]["action_id"], "lockout_approve");
    assert_eq!(buttons[0]["value"], id.as_str());
    assert_eq!(buttons[1]["action_id"], "lockout_deny");
}
