// Handlers return a ready HttpResponse as their error value.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Instant;

use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::state::{
    BasicDecoding, FakeConfig, FakeHandle, FakeState, IssuedToken, Permission, RecordedRequest,
    Role,
};
use crate::users_api::{StateFilter, UserState};

/// A fake running on a loopback port.
pub struct RunningFake {
    pub base_url: String,
    pub handle: FakeHandle,
    server: actix_web::dev::ServerHandle,
}

impl RunningFake {
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

/// Start the fake on `listener` (bind to port 0 for a random port). Runs until stopped.
pub fn start(cfg: FakeConfig, listener: TcpListener) -> std::io::Result<RunningFake> {
    let handle = FakeHandle::new(cfg);
    let port = listener.local_addr()?.port();
    let data = web::Data::new(handle.clone());
    let server = HttpServer::new(move || {
        let counted = data.clone();
        App::new()
            .wrap_fn(move |req, srv| {
                use actix_web::dev::Service;
                // Requests to the Users API routes in flight now, and the most at once.
                let path = req.path().to_owned();
                let users_api = path.contains("/accounts/");
                let h = counted.clone();
                if users_api {
                    let mut s = h.lock();
                    s.in_flight += 1;
                    s.peak_in_flight = s.peak_in_flight.max(s.in_flight);
                }
                let fut = srv.call(req);
                async move {
                    let res = fut.await;
                    if users_api {
                        let mut s = h.lock();
                        s.in_flight -= 1;
                        if path.contains(':') && res.as_ref().is_ok_and(|r| r.status().is_success())
                        {
                            *s.changes_ok.entry(path.clone()).or_default() += 1;
                            s.first_ok_at.entry(path).or_insert_with(Instant::now);
                        }
                    }
                    res
                }
            })
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024))
            .route("/v1/oauth/token", web::post().to(token))
            .route("/v1/oauth/revoke", web::post().to(revoke))
            .route("/v1beta1/users/oauth2/token", web::post().to(token))
            .route("/v1beta1/users/oauth2/revoke", web::post().to(revoke))
            .route(
                "/{version}/accounts/{account}/users",
                web::get().to(list_users),
            )
            .route(
                "/{version}/accounts/{account}/users/{user}",
                web::get().to(get_user),
            )
            .route(
                "/{version}/accounts/{account}/users/{user}",
                web::post().to(change_user),
            )
            .route("/_sandbox/requests", web::get().to(recorded))
            .route("/_sandbox/events", web::post().to(super::events::script))
            .route(
                "/api/v2/auth/introspect",
                web::get().to(super::events::introspect),
            )
            .route("/api/{version}/{feed}", web::post().to(super::events::feed))
            .default_service(web::to(not_found))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    let server_handle = server.handle();
    tokio::spawn(server);
    Ok(RunningFake {
        base_url: format!("http://127.0.0.1:{port}"),
        handle,
        server: server_handle,
    })
}

/// gRPC code → HTTP status, per the gateway convention the API follows.
fn rpc_error(code: i32, message: &str) -> HttpResponse {
    let status = match code {
        3 | 9 => StatusCode::BAD_REQUEST,
        5 => StatusCode::NOT_FOUND,
        7 => StatusCode::FORBIDDEN,
        8 => StatusCode::TOO_MANY_REQUESTS,
        14 => StatusCode::SERVICE_UNAVAILABLE,
        16 => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    HttpResponse::build(status).json(json!({"code": code, "message": message, "details": []}))
}

fn oauth_error(status: StatusCode, error: &str) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        r.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"1Password\""));
    }
    r.json(json!({ "error": error }))
}

fn record(h: &FakeHandle, req: &HttpRequest, body: &[u8]) {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    h.lock().requests.push(RecordedRequest {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        authorization: header(header::AUTHORIZATION),
        content_type: header(header::CONTENT_TYPE),
        body: String::from_utf8_lossy(body).into_owned(),
    });
}

async fn recorded(h: web::Data<FakeHandle>) -> HttpResponse {
    HttpResponse::Ok().json(h.requests())
}

async fn not_found(h: web::Data<FakeHandle>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    record(&h, &req, &body);
    rpc_error(5, "not_found")
}

fn form_decode(s: &str) -> Option<String> {
    let bytes: Vec<u8> = form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())?;
    String::from_utf8(bytes).ok()
}

/// Client authentication: HTTP Basic (as 1Password requires), or the form body when allowed.
/// Returns the client id on success.
fn authenticate_client(
    state: &FakeState,
    req: &HttpRequest,
    form: &HashMap<String, String>,
) -> Result<String, HttpResponse> {
    let invalid = || oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (id_candidates, secret_candidates): (Vec<String>, Vec<String>) = match auth {
        Some(value) => {
            let encoded = value.strip_prefix("Basic ").ok_or_else(invalid)?;
            let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
            let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
            let raw = (id.to_owned(), secret.to_owned());
            let rfc = (
                form_decode(id).unwrap_or_default(),
                form_decode(secret).unwrap_or_default(),
            );
            match state.cfg.basic_decoding {
                BasicDecoding::Raw => (vec![raw.0], vec![raw.1]),
                BasicDecoding::Rfc6749 => (vec![rfc.0], vec![rfc.1]),
                BasicDecoding::Either => (vec![raw.0, rfc.0], vec![raw.1, rfc.1]),
            }
        }
        None => {
            if !state.cfg.allow_client_secret_post {
                return Err(invalid());
            }
            match (form.get("client_id"), form.get("client_secret")) {
                (Some(id), Some(secret)) => (vec![id.clone()], vec![secret.clone()]),
                _ => return Err(invalid()),
            }
        }
    };
    for (id, secret) in id_candidates.iter().zip(&secret_candidates) {
        if let Some(c) = state
            .cfg
            .clients
            .iter()
            .find(|c| &c.client_id == id && &c.client_secret == secret)
        {
            return Ok(c.client_id.clone());
        }
    }
    Err(invalid())
}

fn parse_form(req: &HttpRequest, body: &[u8]) -> Result<HashMap<String, String>, HttpResponse> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(oauth_error(StatusCode::BAD_REQUEST, "invalid_request"));
    }
    Ok(form_urlencoded::parse(body).into_owned().collect())
}

async fn token(h: web::Data<FakeHandle>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    record(&h, &req, &body);
    let latency = h.lock().faults.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut state = h.lock();
    if state.faults.token_endpoint_down {
        return oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    }
    let form = match parse_form(&req, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let client_id = match authenticate_client(&state, &req, &form) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    if let Some(scope) = form.get("scope")
        && !scope.is_empty()
        && scope != "openid"
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    let token: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(token);
    let lifetime = state.cfg.token_lifetime;
    state.tokens.insert(
        token.clone(),
        IssuedToken {
            client_id,
            expires_at: Instant::now() + lifetime,
            revoked: false,
        },
    );
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs().max(1),
        }))
}

async fn revoke(h: web::Data<FakeHandle>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    record(&h, &req, &body);
    let mut state = h.lock();
    let form = match parse_form(&req, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = authenticate_client(&state, &req, &form) {
        return r;
    }
    // 200 with no body, also for unknown or already invalid tokens.
    if let Some(t) = form.get("token").and_then(|t| state.tokens.get_mut(t)) {
        t.revoked = true;
    }
    HttpResponse::Ok().finish()
}

/// Checks shared by every Users API route: version, bearer token, permission, injected faults,
/// account. Returns the state lock on success so the handler continues atomically.
async fn guard<'a>(
    h: &'a FakeHandle,
    req: &HttpRequest,
    permission: Permission,
) -> Result<std::sync::MutexGuard<'a, FakeState>, HttpResponse> {
    let (latency, jitter) = {
        let s = h.lock();
        (s.faults.latency, s.faults.jitter)
    };
    let latency = if jitter.is_zero() {
        latency
    } else {
        latency + jitter.mul_f64(rand::random::<f64>())
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut state = h.lock();
    let version = req.match_info().get("version").unwrap_or("");
    if version != "v1" && version != "v1beta1" {
        return Err(rpc_error(5, "not_found"));
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(bearer) = bearer else {
        return Err(rpc_error(16, "missing bearer token"));
    };
    let client_id = match state.tokens.get(bearer) {
        None => return Err(rpc_error(16, "invalid token")),
        Some(t) if t.revoked => return Err(rpc_error(16, "token revoked")),
        Some(t) if Instant::now() >= t.expires_at => return Err(rpc_error(16, "token expired")),
        Some(t) => t.client_id.clone(),
    };
    let allowed = state
        .cfg
        .clients
        .iter()
        .find(|c| c.client_id == client_id)
        .is_some_and(|c| c.permissions.contains(&permission));
    if !allowed {
        return Err(rpc_error(
            7,
            &format!(
                "permission_denied: the OAuth application lacks the {permission:?} permission"
            ),
        ));
    }
    let faults = &mut state.faults;
    if let Some(per_sec) = faults.rate_per_sec {
        let now = Instant::now();
        let (start, count) = match faults.rate_window {
            Some((start, count)) if now.duration_since(start).as_secs_f64() < 1.0 => (start, count),
            _ => (now, 0),
        };
        if count >= per_sec {
            faults.rate_window = Some((start, count));
            return Err(HttpResponse::TooManyRequests()
                .insert_header((header::RETRY_AFTER, "1"))
                .json(json!({"code": 8, "message": "rate_limited", "details": []})));
        }
        faults.rate_window = Some((start, count + 1));
    }
    if faults.rate_limit_remaining > 0 {
        faults.rate_limit_remaining -= 1;
        let mut r = HttpResponse::TooManyRequests();
        if let Some(s) = faults.rate_limit_retry_after {
            r.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        return Err(r.json(json!({"code": 8, "message": "rate_limited", "details": []})));
    }
    if faults.fail_remaining > 0 {
        faults.fail_remaining -= 1;
        let status = faults.fail_status;
        return Err(rpc_error(if status == 503 { 14 } else { 13 }, "internal"));
    }
    if faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate {
        return Err(rpc_error(13, "internal"));
    }
    if req.match_info().get("account") != Some(state.cfg.account_id.as_str()) {
        return Err(rpc_error(5, "account not found"));
    }
    Ok(state)
}

/// Page tokens are opaque to clients: base64 of `offset:filter` plus an HMAC, so a tampered
/// or forged token is refused as the real API refuses it.
fn page_token(key: &[u8; 32], offset: usize, filter: &str) -> String {
    let payload = format!("{offset}:{filter}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(payload.as_bytes());
    let tag = hex::encode(&mac.finalize().into_bytes()[..8]);
    STANDARD.encode(format!("{payload}:{tag}"))
}

fn read_page_token(key: &[u8; 32], token: &str, filter: &str) -> Option<usize> {
    let decoded = String::from_utf8(STANDARD.decode(token).ok()?).ok()?;
    let (offset, _) = decoded.split_once(':')?;
    let offset: usize = offset.parse().ok()?;
    (page_token(key, offset, filter) == token).then_some(offset)
}

async fn list_users(h: web::Data<FakeHandle>, req: HttpRequest) -> HttpResponse {
    record(&h, &req, &[]);
    let state = match guard(&h, &req, Permission::ListUsers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let query: HashMap<String, String> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    // gRPC-gateway accepts both the proto names and their JSON (camelCase) spellings.
    let param = |a: &str, b: &str| query.get(a).or_else(|| query.get(b)).cloned();
    let filter_expr = param("filter", "filter").unwrap_or_default();
    let filter = if filter_expr.is_empty() {
        None
    } else {
        match StateFilter::from_expression(&filter_expr) {
            Some(f) => Some(f),
            None => return rpc_error(3, "invalid filter"),
        }
    };
    let size = match param("max_page_size", "maxPageSize") {
        None => 25,
        Some(s) => match s.parse::<i64>() {
            Ok(0) => 25,
            Ok(n) if (1..=1000).contains(&n) => n as usize,
            _ => return rpc_error(3, "invalid max_page_size: must be between 1 and 1000"),
        },
    };
    let offset = match param("page_token", "pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match read_page_token(&state.page_key, &t, &filter_expr) {
            Some(o) => o,
            None => return rpc_error(3, "invalid page_token"),
        },
    };
    let matching: Vec<_> = state
        .users
        .iter()
        .filter(|u| filter.is_none_or(|f| f.matches(&u.state)))
        .collect();
    let page: Vec<_> = matching
        .iter()
        .skip(offset)
        .take(size)
        .map(|u| state.view(u))
        .collect();
    let next = if offset + size < matching.len() {
        page_token(&state.page_key, offset + size, &filter_expr)
    } else {
        String::new()
    };
    HttpResponse::Ok().json(json!({ "results": page, "next_page_token": next }))
}

async fn get_user(h: web::Data<FakeHandle>, req: HttpRequest) -> HttpResponse {
    record(&h, &req, &[]);
    let state = match guard(&h, &req, Permission::GetUser).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = req.match_info().get("user").unwrap_or("");
    if id.contains(':') {
        // Custom methods are POST only.
        return rpc_error(5, "not_found");
    }
    match state.users.iter().find(|u| u.id.as_str() == id) {
        Some(u) => HttpResponse::Ok().json(state.view(u)),
        None => rpc_error(5, "user not found"),
    }
}

async fn change_user(h: web::Data<FakeHandle>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    record(&h, &req, &body);
    let segment = req.match_info().get("user").unwrap_or("").to_owned();
    let (id, to, permission) = match segment.split_once(':') {
        Some((id, "suspend")) => (id.to_owned(), UserState::Suspended, Permission::SuspendUser),
        Some((id, "reactivate")) => (id.to_owned(), UserState::Active, Permission::ReactivateUser),
        _ => return rpc_error(5, "not_found"),
    };
    let state = match guard(&h, &req, permission).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (response, kept) = apply_change(state, &id, to);
    // Kept before the answer: whoever sees the change can read it back.
    if let Some((keep, changed)) = kept {
        keep(changed).await;
    }
    response
}

/// The state change itself, under the fake's lock; what to keep, if anything changed.
fn apply_change(
    mut state: std::sync::MutexGuard<'_, super::state::FakeState>,
    id: &str,
    to: UserState,
) -> (HttpResponse, Option<(super::Keeper, super::SeedUser)>) {
    let Some(index) = state.users.iter().position(|u| u.id.as_str() == id) else {
        return (rpc_error(5, "user not found"), None);
    };
    if state.users[index].state == to {
        // Idempotent: the user is returned unchanged.
        return (
            HttpResponse::Ok().json(state.view(&state.users[index])),
            None,
        );
    }
    if state.faults.provisioning_managed {
        return (
            rpc_error(
                9,
                "provisioning_managed: users are managed by automated provisioning",
            ),
            None,
        );
    }
    if to == UserState::Suspended {
        let user = &state.users[index];
        if user.externally_managed {
            return (rpc_error(7, "externally_managed_admin"), None);
        }
        let active_owners = state
            .users
            .iter()
            .filter(|u| u.role == Role::Owner && u.state == UserState::Active)
            .count();
        if user.role == Role::Owner && active_owners <= 1 {
            return (rpc_error(7, "no_owner_remain"), None);
        }
    }
    let action = if to == UserState::Suspended {
        "suspend"
    } else {
        "reactive"
    };
    state.users[index].state = to;
    if state.cfg.events_record_changes {
        let audit = super::events::state_change_event(&state, &state.users[index], action);
        state
            .events
            .feeds
            .entry(crate::events_api::Feed::AuditEvents)
            .or_default()
            .push(audit);
    }
    let response = HttpResponse::Ok().json(state.view(&state.users[index]));
    let kept = state
        .cfg
        .keeper
        .clone()
        .map(|keep| (keep, state.users[index].clone()));
    (response, kept)
}
