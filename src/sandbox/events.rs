// Handlers return a ready HttpResponse as their error value.
#![allow(clippy::result_large_err)]

//! The fake Events API: introspection and the three feeds with the documented cursor
//! semantics (a reset body or a continuing cursor, never both; `limit` 1–1000; `has_more`;
//! polling the last cursor at the end of data brings what was added since), bearer tokens
//! scoped to features (401 otherwise, in the shape seen in the field), injected 429s and 5xxs,
//! a scriptable stream, and an option that serves a newer schema. The users fake records each
//! suspension and reactivation as an audit event by lockout's integration, as 1Password does.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::state::{FakeHandle, FakeState};
use crate::domain::format_time;
use crate::events_api::Feed;

/// The fake's events: one list per feed, in insertion order.
#[derive(Default)]
pub(crate) struct EventLog {
    pub feeds: std::collections::BTreeMap<Feed, Vec<Value>>,
    pub rate_limit_remaining: u32,
    pub rate_limit_retry_after: Option<u64>,
    pub fail_remaining: u32,
    pub fail_status: u16,
    pub requests: usize,
}

fn error(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"Error": {"Message": message}}))
}

/// The features of the request's bearer token, or the 401 to answer.
fn features(state: &FakeState, req: &HttpRequest) -> Result<Vec<Feed>, HttpResponse> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer
        .and_then(|b| state.cfg.events_tokens.iter().find(|(t, _)| t == b))
        .map(|(_, f)| f.clone())
        .ok_or_else(|| error(actix_web::http::StatusCode::UNAUTHORIZED, "Unauthorized"))
}

fn injected_fault(state: &mut FakeState) -> Option<HttpResponse> {
    let log = &mut state.events;
    log.requests += 1;
    if log.rate_limit_remaining > 0 {
        log.rate_limit_remaining -= 1;
        let mut r = HttpResponse::TooManyRequests();
        if let Some(s) = log.rate_limit_retry_after {
            r.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        return Some(r.json(json!({"Error": {"Message": "Too Many Requests"}})));
    }
    if log.fail_remaining > 0 {
        log.fail_remaining -= 1;
        let status = actix_web::http::StatusCode::from_u16(log.fail_status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
        return Some(error(status, "Internal Server Error"));
    }
    None
}

pub(crate) async fn introspect(h: web::Data<FakeHandle>, req: HttpRequest) -> HttpResponse {
    let mut state = h.lock();
    if let Some(r) = injected_fault(&mut state) {
        return r;
    }
    match features(&state, &req) {
        Err(r) => r,
        Ok(f) => HttpResponse::Ok().json(json!({
            "uuid": "SANDBOXEVENTSINTEGRATION2",
            "issued_at": "2026-01-01T00:00:00Z",
            "features": f.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
            "account_uuid": state.cfg.account_id,
        })),
    }
}

/// A cursor: where the next page starts, the reset's limit and end, signed so a tampered or
/// forged one is refused.
struct Cursor {
    feed: Feed,
    pos: usize,
    limit: usize,
    end: Option<String>,
}

impl Cursor {
    fn encode(&self, key: &[u8; 32]) -> String {
        let payload = format!(
            "{}|{}|{}|{}",
            self.feed.as_str(),
            self.pos,
            self.limit,
            self.end.as_deref().unwrap_or("")
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(payload.as_bytes());
        let tag = hex::encode(&mac.finalize().into_bytes()[..12]);
        URL_SAFE_NO_PAD.encode(format!("{payload}|{tag}"))
    }

    fn decode(key: &[u8; 32], text: &str) -> Option<Self> {
        let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let mut parts = decoded.split('|');
        let c = Cursor {
            feed: Feed::parse(parts.next()?).ok()?,
            pos: parts.next()?.parse().ok()?,
            limit: parts.next()?.parse().ok()?,
            end: Some(parts.next()?.to_owned()).filter(|e| !e.is_empty()),
        };
        (c.encode(key) == text).then_some(c)
    }
}

fn time_of(item: &Value) -> Option<time::OffsetDateTime> {
    item.get("timestamp")
        .and_then(Value::as_str)
        .and_then(crate::domain::parse_time)
}

pub(crate) async fn feed(
    h: web::Data<FakeHandle>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let (version, name) = path.into_inner();
    let Ok(feed) = Feed::parse(&name) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if version != "v1" && version != "v2" {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let latency = h.lock().faults.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut state = h.lock();
    if let Some(r) = injected_fault(&mut state) {
        return r;
    }
    match features(&state, &req) {
        Err(r) => return r,
        // A token without the feature: 401, as the status-codes page folds it in.
        Ok(f) if !f.contains(&feed) => {
            return error(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        Ok(_) => {}
    }
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "request body must be a JSON object",
        );
    };
    let has_cursor = b.contains_key("cursor");
    let has_reset = ["limit", "start_time", "end_time"]
        .iter()
        .any(|k| b.contains_key(*k));
    if has_cursor && has_reset {
        return error(
            StatusCode::BAD_REQUEST,
            "give a cursor or a reset cursor, not both",
        );
    }
    let page_key = state.page_key;
    let items: &Vec<Value> = state.events.feeds.entry(feed).or_default();
    let cursor = if has_cursor {
        let Some(c) = b
            .get("cursor")
            .and_then(Value::as_str)
            .and_then(|t| Cursor::decode(&page_key, t))
            .filter(|c| c.feed == feed)
        else {
            return error(StatusCode::BAD_REQUEST, "invalid cursor");
        };
        c
    } else {
        let limit = match b.get("limit") {
            None => 100,
            Some(v) => match v.as_u64() {
                Some(l @ 1..=1000) => l as usize,
                _ => return error(StatusCode::BAD_REQUEST, "limit must be between 1 and 1000"),
            },
        };
        let parse = |k: &str| -> Result<Option<time::OffsetDateTime>, HttpResponse> {
            match b.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_str()
                    .and_then(crate::domain::parse_time)
                    .map(Some)
                    .ok_or_else(|| error(StatusCode::BAD_REQUEST, &format!("{k} is not RFC 3339"))),
            }
        };
        let (start, end) = match (parse("start_time"), parse("end_time")) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        let end_or_now = end.unwrap_or_else(time::OffsetDateTime::now_utc);
        let start = start.unwrap_or(end_or_now - time::Duration::hours(1));
        let pos = items
            .iter()
            .position(|i| time_of(i).is_none_or(|t| t >= start))
            .unwrap_or(items.len());
        Cursor {
            feed,
            pos,
            limit,
            end: end.map(format_time),
        }
    };
    let end = cursor.end.as_deref().and_then(crate::domain::parse_time);
    let within = |i: &Value| end.is_none_or(|e| time_of(i).is_none_or(|t| t <= e));
    let page: Vec<Value> = items[cursor.pos.min(items.len())..]
        .iter()
        .take(cursor.limit)
        .take_while(|i| within(i))
        .cloned()
        .collect();
    let next = cursor.pos + page.len();
    let has_more = items.get(next).is_some_and(within);
    let newer = state.cfg.events_newer_schema;
    let page: Vec<Value> = page
        .into_iter()
        .map(|i| if newer { newer_schema(i) } else { i })
        .collect();
    let next_cursor = Cursor {
        pos: next,
        ..cursor
    }
    .encode(&page_key);
    HttpResponse::Ok().json(json!({"cursor": next_cursor, "has_more": has_more, "items": page}))
}

/// What a later API version might send: fields this contract does not name, and values of
/// its enums it does not list.
fn newer_schema(mut item: Value) -> Value {
    if let Some(o) = item.as_object_mut() {
        o.insert(
            "risk".into(),
            json!({"score": 42, "signals": ["new_device"]}),
        );
        if o.get("category").and_then(Value::as_str) == Some("success") {
            o.insert("type".into(), "passkey_ok".into());
        }
        if o.get("object_type").and_then(Value::as_str) == Some("user") {
            o.insert("aux_info".into(), json!({"structured": true}));
        }
    }
    item
}

/// A new 26-character base-32 id, as the API's uuids are.
pub(crate) fn new_uuid() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..26)
        .map(|_| ALPHABET[rand::random_range(0..32)] as char)
        .collect()
}

impl FakeHandle {
    /// Appends items to a feed's stream (each given a uuid and a timestamp if it has none).
    pub fn push_events(&self, feed: Feed, items: Vec<Value>) {
        let mut state = self.lock();
        let list = state.events.feeds.entry(feed).or_default();
        for mut i in items {
            if let Some(o) = i.as_object_mut() {
                o.entry("uuid").or_insert_with(|| new_uuid().into());
                o.entry("timestamp")
                    .or_insert_with(|| format_time(time::OffsetDateTime::now_utc()).into());
            }
            list.push(i);
        }
    }

    /// The next `n` Events API requests answer 429 (with `Retry-After` if given).
    pub fn events_rate_limit_next(&self, n: u32, retry_after_secs: Option<u64>) {
        let mut s = self.lock();
        s.events.rate_limit_remaining = n;
        s.events.rate_limit_retry_after = retry_after_secs;
    }

    /// The next `n` Events API requests answer `status`.
    pub fn events_fail_next(&self, n: u32, status: u16) {
        let mut s = self.lock();
        s.events.fail_remaining = n;
        s.events.fail_status = status;
    }

    /// Whether suspensions and reactivations show in the audit-event feed.
    pub fn set_events_record_changes(&self, on: bool) {
        self.lock().cfg.events_record_changes = on;
    }

    /// Serve a newer schema (extra fields, unknown enum values) from now on.
    pub fn set_events_newer_schema(&self, on: bool) {
        self.lock().cfg.events_newer_schema = on;
    }

    /// Replaces the Events API tokens and their features.
    pub fn set_events_tokens(&self, tokens: Vec<(String, Vec<Feed>)>) {
        self.lock().cfg.events_tokens = tokens;
    }

    /// Events API requests answered so far.
    pub fn events_requests(&self) -> usize {
        self.lock().events.requests
    }

    pub fn events_of(&self, feed: Feed) -> Vec<Value> {
        self.lock()
            .events
            .feeds
            .get(&feed)
            .cloned()
            .unwrap_or_default()
    }

    /// A scripted brute force: `failures` failed sign-ins of `email` from `home`, then a
    /// success from `away` (a new country). Returns the items added.
    pub fn play_brute_force(
        &self,
        email: &str,
        failures: usize,
        home: &str,
        away: &str,
    ) -> Vec<Value> {
        let user = self
            .lock()
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
            .map(|u| json!({"uuid": u.id.as_str(), "name": u.display_name, "email": u.email}))
            .unwrap_or_else(|| json!({"email": email}));
        let now = time::OffsetDateTime::now_utc();
        let mut items: Vec<Value> = (0..failures)
            .map(|i| {
                json!({
                    "uuid": new_uuid(), "session_uuid": new_uuid(),
                    "timestamp": format_time(now - time::Duration::seconds((failures - i) as i64 * 5)),
                    "category": "credentials_failed", "type": "password_secret_bad", "country": home,
                    "details": null, "target_user": user,
                    "client": {"app_name": "1Password Browser Extension", "app_version": "20240", "platform_name": "Chrome", "os_name": "Linux", "ip_address": "198.51.100.7"},
                    "location": {"country": home}
                })
            })
            .collect();
        items.push(json!({
            "uuid": new_uuid(), "session_uuid": new_uuid(), "timestamp": format_time(now),
            "category": "success", "type": "credentials_ok", "country": away, "details": null,
            "target_user": user,
            "client": {"app_name": "1Password CLI", "app_version": "2300", "platform_name": "curl", "os_name": "Linux", "ip_address": "203.0.113.66"},
            "location": {"country": away}
        }));
        self.push_events(Feed::SignInAttempts, items.clone());
        items
    }
}

/// The audit event 1Password records when lockout's integration changes a user's state.
pub(crate) fn state_change_event(state: &FakeState, user: &super::SeedUser, action: &str) -> Value {
    json!({
        "uuid": new_uuid(),
        "timestamp": format_time(time::OffsetDateTime::now_utc()),
        "actor_uuid": state.cfg.events_actor,
        "actor_details": {"uuid": state.cfg.events_actor, "name": "lockout (OAuth integration)", "email": ""},
        "actor_type": "user",
        "account_uuid": state.cfg.account_id,
        "action": action,
        "object_type": "user",
        "object_uuid": user.id.as_str(),
        "object_details": {"uuid": user.id.as_str(), "name": user.display_name, "email": user.email},
        "session": {"uuid": new_uuid(), "login_time": format_time(time::OffsetDateTime::now_utc()), "ip": "192.0.2.200"},
    })
}

/// `POST /_sandbox/events`: `{"feed": "...", "items": [...]}` appends items;
/// `{"scenario": "brute_force", "email": "...", "failures": 6, "home": "CA", "away": "BR"}`
/// plays one.
pub(crate) async fn script(h: web::Data<FakeHandle>, body: web::Json<Value>) -> HttpResponse {
    match play(&h, &body) {
        Ok(items) => HttpResponse::Ok().json(json!({"added": items.len(), "items": items})),
        Err(m) => error(actix_web::http::StatusCode::BAD_REQUEST, &m),
    }
}

/// Plays a script body (the fake's own route and the service's sandbox route share it).
pub fn play(h: &FakeHandle, body: &Value) -> Result<Vec<Value>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Scenario {
        scenario: ScenarioName,
        email: String,
        #[serde(default = "six")]
        failures: u16,
        #[serde(default = "canada")]
        home: String,
        #[serde(default = "brazil")]
        away: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum ScenarioName {
        BruteForce,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Items {
        feed: Feed,
        items: Vec<serde_json::Map<String, Value>>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Script {
        Scenario(Scenario),
        Items(Items),
    }
    fn six() -> u16 {
        6
    }
    fn canada() -> String {
        "CA".into()
    }
    fn brazil() -> String {
        "BR".into()
    }
    let script: Script = serde_json::from_value(body.clone()).map_err(|_| {
        "give {\"scenario\": \"brute_force\", \"email\": …} (failures ≤ 1000, home, away) or {\"feed\": …, \"items\": [objects]}".to_owned()
    })?;
    match script {
        Script::Scenario(s) => {
            let ScenarioName::BruteForce = s.scenario;
            if s.failures > 1000 {
                return Err("failures is at most 1000".into());
            }
            Ok(h.play_brute_force(&s.email, s.failures.into(), &s.home, &s.away))
        }
        Script::Items(i) => {
            if i.items.len() > 1000 {
                return Err("at most 1000 items at a time".into());
            }
            let n = i.items.len();
            h.push_events(i.feed, i.items.into_iter().map(Value::Object).collect());
            let all = h.events_of(i.feed);
            Ok(all[all.len() - n..].to_vec())
        }
    }
}
