//! The console's pages: each handler checks the session, reads through the store, the Users
//! API and the same functions the API uses, and renders a template.

use std::collections::BTreeMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Console;
use super::session::{SignedIn, check_csrf, csrf_token, current};
use crate::actions::manual::{self, ManualError, ManualRequest, Requester};
use crate::context::AppContext;
use crate::domain::UserRef;
use crate::playbooks::StepAction;
use crate::store::{AlertQuery, AuditQuery, DecideError, DecisionOutcome};
use crate::users_api::{CallLog, User};

const TEMPLATES: [(&str, &str); 11] = [
    ("base.html", include_str!("templates/base.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("message.html", include_str!("templates/message.html")),
    ("approvals.html", include_str!("templates/approvals.html")),
    ("approval.html", include_str!("templates/approval.html")),
    ("alerts.html", include_str!("templates/alerts.html")),
    ("alert.html", include_str!("templates/alert.html")),
    ("users.html", include_str!("templates/users.html")),
    ("user.html", include_str!("templates/user.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("verify.html", include_str!("templates/verify.html")),
];

pub fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // `.html` templates escape every value: an alert's title cannot become markup.
    for (name, text) in TEMPLATES {
        env.add_template(name, text)
            .unwrap_or_else(|e| panic!("console template {name}: {e}"));
    }
    env.add_filter("json", |v: minijinja::Value| {
        serde_json::to_string_pretty(&v).unwrap_or_default()
    });
    env
}

/// Headers on every console response: no framing, no inline script, no referrer, no caching
/// of pages that show people and decisions.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
}

pub fn render(
    console: &Console,
    who: Option<&SignedIn>,
    name: &str,
    mut data: Value,
) -> HttpResponse {
    render_status(console, who, StatusCode::OK, name, &mut data)
}

fn render_status(
    console: &Console,
    who: Option<&SignedIn>,
    status: StatusCode,
    name: &str,
    data: &mut Value,
) -> HttpResponse {
    if let Value::Object(m) = data {
        m.insert("who".into(), json!(who));
        m.insert("sandbox_mode".into(), json!(console.sandbox));
    }
    match console
        .templates
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&*data))))
    {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, template = name, "console template failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("the page could not be rendered")
        }
    }
}

pub fn message(
    console: &Console,
    who: Option<&SignedIn>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> HttpResponse {
    render_status(
        console,
        who,
        status,
        "message.html",
        &mut json!({"title": title, "text": text}),
    )
}

/// A redirect after a form or to another page (303: the browser follows with a GET).
pub fn see_other(to: impl Into<String>) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", to.into()))
        .finish()
}

pub fn not_found(console: &Console, who: Option<&SignedIn>) -> HttpResponse {
    message(
        console,
        who,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing here.",
    )
}

fn failed(console: &Console, who: &SignedIn, e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "console page failed");
    message(
        console,
        Some(who),
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something failed",
        "The page could not be built; the error is in lockout's log.",
    )
}

/// Runs a page: the session checked first, then the page's body.
macro_rules! signed_in {
    ($console:expr, $ctx:expr, $session:expr) => {
        match current(&$console, &$ctx, &$session) {
            Ok(who) => who,
            Err(response) => return *response,
        }
    };
}

pub async fn home() -> HttpResponse {
    see_other("/console/approvals")
}

pub async fn asset(file: web::Path<String>) -> HttpResponse {
    let (body, kind) = match file.as_str() {
        "console.css" => (
            include_str!("static/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("static/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(body)
}

/// The roles that may decide this approval, from its request.
fn may_decide(who: &SignedIn, approvers: &Value) -> bool {
    approvers.as_array().is_some_and(|a| {
        a.iter()
            .any(|r| r.as_str().is_some_and(|r| who.roles.iter().any(|x| x == r)))
    })
}

pub async fn approvals(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
) -> HttpResponse {
    let who = signed_in!(console, ctx, session);
    let result = async {
        let mut pending = vec![];
        let mut recent = vec![];
        let mut all = ctx
            .store
            .list_approvals(None)
            .await
            .map_err(|e| e.to_string())?;
        all.reverse();
        for a in all.iter().take(200) {
            let v = crate::http::approvals::view(&ctx, a)
                .await
                .map_err(|e| e.to_string())?;
            if a.state == crate::store::ApprovalState::Pending {
                pending.push(v);
            } else if recent.len() < 20 {
                recent.push(v);
            }
        }
        Ok::<_, String>(json!({"pending": pending, "recent": recent, "csrf": csrf_token(&session)}))
    }
    .await;
    match result {
        Ok(data) => render(&console, Some(&who), "approvals.html", data),
        Err(e) => failed(&console, &who, e),
    }
}

/// The target as 1Password has them now (none if the look-up fails: the page says so).
async fn user_now(
    ctx: &AppContext,
    target: &str,
    user_id: Option<&str>,
) -> Result<Option<User>, String> {
    let log = CallLog::default();
    let reference = match user_id {
        Some(id) => UserRef::parse(id),
        None => UserRef::parse(target),
    }
    .map_err(|e| e.to_string())?;
    let found = match reference {
        UserRef::Id(id) => ctx.users.get_user(&id, &log).await.map(Some),
        UserRef::Email(e) => ctx.directory.find_by_email(&e, &log).await,
    };
    Ok(found.ok().flatten())
}

pub async fn approval(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
    id: web::Path<String>,
) -> HttpResponse {
    let who = signed_in!(console, ctx, session);
    match approval_page(&ctx, &who, &id, &session).await {
        Ok(Some(data)) => render(&console, Some(&who), "approval.html", data),
        Ok(None) => not_found(&console, Some(&who)),
        Err(e) => failed(&console, &who, e),
    }
}

async fn approval_page(
    ctx: &AppContext,
    who: &SignedIn,
    id: &str,
    session: &Session,
) -> Result<Option<Value>, String> {
    let Some(a) = ctx
        .store
        .get_approval(id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    if let Some(x) = ctx
        .store
        .get_action(&a.action_id)
        .await
        .map_err(|e| e.to_string())?
    {
        crate::actions::feeds::freeze_context(ctx, &x)
            .await
            .map_err(|e| e.to_string())?;
    }
    let view = crate::http::approvals::view(ctx, &a)
        .await
        .map_err(|e| e.to_string())?;
    let action = ctx
        .store
        .get_action(&a.action_id)
        .await
        .map_err(|e| e.to_string())?;
    let (user, others, playbook) = match &action {
        Some(x) => {
            let user = user_now(ctx, &x.target, x.user_id.as_deref()).await?;
            let mut names = vec![x.target.clone()];
            names.extend(x.user_id.clone());
            names.extend(user.as_ref().map(|u| u.id.to_string()));
            names.extend(user.as_ref().map(|u| u.email.clone()));
            let others: Vec<Value> = ctx
                .store
                .actions_for_user(&names, 20)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|o| o.id != x.id)
                .map(|o| json!({"id": o.id, "kind": o.kind, "state": o.state, "playbook": o.playbook, "created_at": o.created_at, "alert_id": o.alert_id}))
                .collect();
            let playbook = ctx
                .playbooks()
                .playbooks
                .iter()
                .find(|p| Some(&p.name) == x.playbook.as_ref())
                .map(|p| json!({"name": p.name, "description": p.description, "when": p.when.as_ref().map(|w| w.display.clone()), "limit": p.limit.as_ref().map(|l| format!("at most {} per {} s", l.max, l.per.as_secs()))}));
            (user, others, playbook)
        }
        None => (None, vec![], None),
    };
    let global_limit = ctx.limits.global.map(|(max, per)| {
        format!(
            "at most {max} suspensions per {} s across the service",
            per.as_secs()
        )
    });
    let decided_by_me = a.decisions.iter().any(|d| {
        d.identities
            .iter()
            .chain([&d.approver])
            .any(|n| who.aliases.contains(n) || *n == who.id)
    });
    Ok(Some(json!({
        "a": view,
        "user": user,
        "others": others,
        "playbook": playbook,
        "global_limit": global_limit,
        "pending": a.state == crate::store::ApprovalState::Pending,
        "may_decide": may_decide(who, &view["approvers"]) && !decided_by_me,
        "decided_by_me": decided_by_me,
        "requested_by_me": a.requested_by.as_deref().is_some_and(|r| r == who.id || who.aliases.iter().any(|x| x == r)),
        "csrf": csrf_token(session),
    })))
}

#[derive(Deserialize)]
pub struct DecideForm {
    csrf: Option<String>,
    decision: String,
    #[serde(default)]
    reason: String,
}

pub async fn decide(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
    id: web::Path<String>,
    form: web::Form<DecideForm>,
) -> HttpResponse {
    let who = signed_in!(console, ctx, session);
    if let Err(r) = check_csrf(&console, &session, form.csrf.as_deref()) {
        return *r;
    }
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return message(
                &console,
                Some(&who),
                StatusCode::BAD_REQUEST,
                "Unknown decision",
                "Choose approve or deny.",
            );
        }
    };
    let reason = Some(form.reason.trim().to_owned()).filter(|r| !r.is_empty());
    if !approve && reason.is_none() {
        return message(
            &console,
            Some(&who),
            StatusCode::UNPROCESSABLE_ENTITY,
            "A reason is required",
            "Say why you deny: the requester and the audit will read it. Go back and add a reason.",
        );
    }
    if reason.as_deref().is_some_and(|r| r.contains('\0')) {
        return message(
            &console,
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Invalid reason",
            "The reason holds a NUL character.",
        );
    }
    let back = format!("/console/approvals/{id}");
    match crate::actions::approvals::decide(&ctx, &who.identity(), &id, approve, reason).await {
        Ok(outcome) => {
            let text = match outcome {
                DecisionOutcome::Recorded { approvals, quorum } => format!(
                    "Your approval is recorded: {approvals} of {quorum}. It waits for another approver."
                ),
                DecisionOutcome::Approved => "Approved. The action runs now.".to_owned(),
                DecisionOutcome::Denied => "Denied. The action will not run.".to_owned(),
            };
            render(
                &console,
                Some(&who),
                "message.html",
                json!({"title": "Decision recorded", "text": text, "back": back}),
            )
        }
        Err(e) => {
            let (status, title, text) = match &e {
                DecideError::NotFound => return not_found(&console, Some(&who)),
                DecideError::AlreadyDecided(_) | DecideError::Expired(_) => {
                    let a = ctx.store.get_approval(&id).await.ok().flatten();
                    let last = a.as_ref().and_then(|a| a.decisions.last());
                    let text = match (a.as_ref(), last) {
                        (Some(a), Some(d)) => format!(
                            "This approval was already {} — last decision: {} by {} at {}.",
                            a.state.as_str(),
                            d.decision,
                            d.approver,
                            d.at
                        ),
                        (Some(a), None) => format!(
                            "This approval is already {} (at {}).",
                            a.state.as_str(),
                            a.decided_at.clone().unwrap_or_else(|| a.expires_at.clone())
                        ),
                        _ => e.to_string(),
                    };
                    (StatusCode::CONFLICT, "Already decided", text)
                }
                DecideError::DuplicateApprover => (
                    StatusCode::CONFLICT,
                    "Already decided by you",
                    "You already decided on this approval; another approver must add theirs."
                        .to_owned(),
                ),
                DecideError::SelfApproval => (
                    StatusCode::FORBIDDEN,
                    "Four-eyes",
                    "You requested this action: someone else must approve it.".to_owned(),
                ),
                DecideError::NotAnApprover(roles) => (
                    StatusCode::FORBIDDEN,
                    "Not an approver",
                    format!("Deciding this approval needs one of the roles: {roles}."),
                ),
                DecideError::BindingMismatch => (
                    StatusCode::CONFLICT,
                    "The action changed",
                    "The action no longer matches what this approval shows; it cannot be decided."
                        .to_owned(),
                ),
                DecideError::Store(s) => return failed(&console, &who, s),
            };
            render_status(
                &console,
                Some(&who),
                status,
                "message.html",
                &mut json!({"title": title, "text": text, "back": back}),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct AlertsQuery {
    q: Option<String>,
    source: Option<String>,
    state: Option<String>,
    before: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub async fn alerts(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
    q: web::Query<AlertsQuery>,
) -> HttpResponse {
    let who = signed_in!(console, ctx, session);
    // A person (an e-mail or a 1Password id) is found by index; other text by a scan.
    let text = nonempty(&q.q);
    let subject = text
        .as_deref()
        .and_then(|t| UserRef::parse(t).ok())
        .map(|r| r.to_string());
    let query = AlertQuery {
        before_id: nonempty(&q.before),
        source: nonempty(&q.source),
        state: nonempty(&q.state),
        text: if subject.is_some() { None } else { text },
        subject,
        limit: 50,
    };
    match ctx.store.list_alerts(&query).await {
        Ok(list) => {
            let next = (list.len() == 50)
                .then(|| list.last().map(|a| a.id.clone()))
                .flatten();
            let rows: Vec<Value> = list
                .iter()
                .map(|a| json!({"id": a.id, "source": a.source, "received_at": a.received_at, "state": a.state, "status": a.status, "title": a.alert["title"], "severity": a.alert["severity"], "subjects": subjects(&a.alert)}))
                .collect();
            let mut sources: Vec<&String> = ctx.sources.keys().collect();
            sources.sort();
            render(
                &console,
                Some(&who),
                "alerts.html",
                json!({"alerts": rows, "next": next, "q": q.q, "source": q.source, "state": q.state, "sources": sources}),
            )
        }
        Err(e) => failed(&console, &who, e),
    }
}

fn subjects(alert: &Value) -> String {
    alert["subjects"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|x| {
                    x["email"]
                        .as_str()
                        .or(x["user_id"].as_str())
                        .or(x["name"].as_str())
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// An audit record as a timeline row: time, what, who, and what it says in one line.
fn timeline_row(r: &crate::audit::AuditRecord) -> Value {
    let data = &r.event.data;
    let text = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    // A Users API call reads as the request and its answer; anything else by its reason.
    let summary = match (text("method"), text("path")) {
        (Some(method), Some(path)) => format!(
            "{method} {path} → {} ({} ms)",
            data.get("status")
                .and_then(Value::as_u64)
                .map(|s| s.to_string())
                .unwrap_or_else(|| text("error").unwrap_or_default()),
            data.get("latency_ms")
                .and_then(Value::as_u64)
                .unwrap_or_default()
        ),
        _ => ["reason", "error", "verdict", "why", "outcome", "state"]
            .iter()
            .find_map(|k| text(k))
            .unwrap_or_default(),
    };
    json!({"seq": r.seq, "at": r.at, "kind": r.event.kind, "actor": r.event.actor, "action_id": r.event.action_id, "playbook": r.event.playbook, "subject": r.event.subject, "summary": summary, "data": data})
}

pub async fn alert(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
    id: web::Path<String>,
) -> HttpResponse {
    let who = signed_in!(console, ctx, session);
    let result = async {
        let Some(found) = crate::http::alert_reads::alert_records(&ctx, &id).await? else {
            return Ok(None);
        };
        let verdicts = crate::http::alert_reads::verdicts(&ctx, &found);
        let (a, actions) = (&found.stored, &found.actions);
        let plan: Option<Value> = a.plan.as_deref().and_then(|p| serde_json::from_str(p).ok());
        let timeline: Vec<Value> = found.records.iter().map(timeline_row).collect();
        let actions: Vec<Value> = actions
            .iter()
            .map(|x| json!({"id": x.id, "kind": x.kind, "target": x.target, "state": x.state, "playbook": x.playbook, "mode": x.mode, "not_before": x.not_before, "result": x.result}))
            .collect();
        Ok::<_, crate::store::StoreError>(Some(json!({
            "a": {"id": a.id, "source": a.source, "received_at": a.received_at, "state": a.state, "status": a.status, "duplicate_of": a.duplicate_of},
            "alert": a.alert,
            "subjects": subjects(&a.alert),
            "plan": plan,
            "verdicts": verdicts,
            "actions": actions,
            "timeline": timeline,
        })))
    }
    .await;
    match result {
        Ok(Some(data)) => render(&console, Some(&who), "alert.html", data),
        Ok(None) => not_found(&console, Some(&who)),
        Err(e) => failed(&console, &who, e),
    }
}

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
}

pub async fn users(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
    q: web::Query<UsersQuery>,
) -> HttpResponse {
    let who = signed_in!(console, ctx, session);
    let text = nonempty(&q.q);
    if let Some(t) = &text
        && UserRef::parse(t).is_ok()
    {
        return see_other(format!("/console/users/{}", urlencoding::encode(t)));
    }
    let found = match &text {
        None => vec![],
        Some(t) => {
            let needle = t.to_lowercase();
            match ctx.users.list_all_users(None, &CallLog::default()).await {
                Ok(all) => all
                    .into_iter()
                    .filter(|u| {
                        u.email.to_lowercase().contains(&needle)
                            || u.display_name.to_lowercase().contains(&needle)
                    })
                    .take(50)
                    .collect(),
                Err(e) => return failed(&console, &who, e),
            }
        }
    };
    render(
        &console,
        Some(&who),
        "users.html",
        json!({"q": text, "users": found, "searched": text.is_some()}),
    )
}

pub async fn user(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
    user: web::Path<String>,
) -> HttpResponse {
    let who = signed_in!(console, ctx, session);
    let Ok(reference) = UserRef::parse(&user) else {
        return message(
            &console,
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Not a user",
            "Give a 1Password user id or an e-mail.",
        );
    };
    let result = async {
        let found = user_now(&ctx, &user, None).await?;
        let mut names = vec![reference.to_string()];
        if let Some(u) = &found {
            names.push(u.id.to_string());
            names.push(u.email.to_lowercase());
        }
        names.sort();
        names.dedup();
        let actions = ctx.store.actions_for_user(&names, 50).await.map_err(|e| e.to_string())?;
        let mut by_seq = BTreeMap::new();
        for n in &names {
            for r in ctx
                .store
                .query_audit(&AuditQuery { subject: Some(n.clone()), limit: Some(200), newest_first: true, ..Default::default() })
                .await
                .map_err(|e| e.to_string())?
            {
                by_seq.insert(std::cmp::Reverse(r.seq), timeline_row(&r));
            }
        }
        let actions: Vec<Value> = actions
            .iter()
            .map(|x| json!({"id": x.id, "kind": x.kind, "state": x.state, "playbook": x.playbook, "created_at": x.created_at, "alert_id": x.alert_id, "origin": x.origin}))
            .collect();
        Ok::<_, String>(json!({
            "reference": reference.to_string(),
            "user": found,
            "actions": actions,
            "history": by_seq.into_values().take(200).collect::<Vec<_>>(),
            "may_act": who.has_any(&ctx.analyst_roles),
            "csrf": csrf_token(&session),
        }))
    }
    .await;
    match result {
        Ok(data) => render(&console, Some(&who), "user.html", data),
        Err(e) => failed(&console, &who, e),
    }
}

#[derive(Deserialize)]
pub struct UserActionForm {
    csrf: Option<String>,
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    approval_required: Option<String>,
}

pub async fn user_action(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
    user: web::Path<String>,
    form: web::Form<UserActionForm>,
) -> HttpResponse {
    let who = signed_in!(console, ctx, session);
    if let Err(r) = check_csrf(&console, &session, form.csrf.as_deref()) {
        return *r;
    }
    if !who.has_any(&ctx.analyst_roles) {
        return message(
            &console,
            Some(&who),
            StatusCode::FORBIDDEN,
            "Not an analyst",
            &format!(
                "Suspending or reactivating by hand needs one of the roles: {}.",
                ctx.analyst_roles.join(", ")
            ),
        );
    }
    let step = match form.action.as_str() {
        "suspend" => StepAction::Suspend,
        "reactivate" => StepAction::Reactivate,
        _ => {
            return message(
                &console,
                Some(&who),
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "Choose suspend or reactivate.",
            );
        }
    };
    let Ok(target) = UserRef::parse(&user) else {
        return message(
            &console,
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Not a user",
            "Give a 1Password user id or an e-mail.",
        );
    };
    let requester = Requester {
        actor: format!("analyst:{}", who.id),
        id: who.id.clone(),
        roles: who.roles.clone(),
    };
    let back = format!("/console/users/{}", urlencoding::encode(&user));
    let request = ManualRequest {
        target,
        step,
        reason: form.reason.trim().to_owned(),
        approval_required: form.approval_required.is_some(),
    };
    match manual::request(&ctx, &requester, request).await {
        Ok(queued) => {
            let text = match (&queued.approval_id, &queued.action_id) {
                (Some(a), _) => format!("Queued; it waits for approval {a} by someone else."),
                (None, Some(id)) => format!("Queued as action {id}; it runs now."),
                (None, None) => "An open action of this kind on this user exists already; it was not queued twice.".to_owned(),
            };
            let link = queued
                .approval_id
                .as_ref()
                .map(|a| format!("/console/approvals/{a}"));
            render(
                &console,
                Some(&who),
                "message.html",
                json!({"title": "Requested", "text": text, "back": link.unwrap_or(back)}),
            )
        }
        Err(e) => {
            let status = match e {
                ManualError::Protected { .. } => StatusCode::FORBIDDEN,
                ManualError::ReasonRequired => StatusCode::UNPROCESSABLE_ENTITY,
                ManualError::NulInReason => StatusCode::BAD_REQUEST,
                ManualError::Store(s) => return failed(&console, &who, s),
            };
            render_status(
                &console,
                Some(&who),
                status,
                "message.html",
                &mut json!({"title": "Refused", "text": e.to_string(), "back": back}),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct AuditPageQuery {
    kind: Option<String>,
    subject: Option<String>,
    alert: Option<String>,
    actor: Option<String>,
    before: Option<i64>,
}

impl AuditPageQuery {
    fn filter(&self) -> AuditQuery {
        AuditQuery {
            kind: nonempty(&self.kind),
            subject: nonempty(&self.subject),
            alert_id: nonempty(&self.alert),
            actor: nonempty(&self.actor),
            ..Default::default()
        }
    }
}

pub async fn audit(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
    q: web::Query<AuditPageQuery>,
) -> HttpResponse {
    let who = signed_in!(console, ctx, session);
    let filter = AuditQuery {
        after_seq: q.before,
        limit: Some(100),
        newest_first: true,
        ..q.filter()
    };
    let records = match ctx.store.query_audit(&filter).await {
        Ok(r) => r,
        Err(e) => return failed(&console, &who, e),
    };
    let head = ctx.store.audit_head().await.ok().flatten();
    let next = (records.len() == 100)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    let export_query = serde_urlencoded_pairs(&q);
    render(
        &console,
        Some(&who),
        "audit.html",
        json!({
            "records": records.iter().map(timeline_row).collect::<Vec<_>>(),
            "next": next,
            "kind": q.kind, "subject": q.subject, "alert": q.alert, "actor": q.actor,
            "head": head.map(|(seq, hash)| json!({"seq": seq, "hash": hash})),
            "export_query": export_query,
        }),
    )
}

/// The page's filters as a query string (for the export links).
fn serde_urlencoded_pairs(q: &AuditPageQuery) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("kind", &q.kind),
        ("subject", &q.subject),
        ("alert", &q.alert),
        ("actor", &q.actor),
    ] {
        if let Some(v) = nonempty(v) {
            s.append_pair(k, &v);
        }
    }
    s.finish()
}

pub async fn audit_verify(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
) -> HttpResponse {
    let who = signed_in!(console, ctx, session);
    let started = std::time::Instant::now();
    let report = crate::store::verify_chain(ctx.store.as_ref(), ctx.checkpoint_key.as_ref()).await;
    render(
        &console,
        Some(&who),
        "verify.html",
        json!({
            "ok": report.is_ok(),
            "report": report.as_ref().ok(),
            "error": report.as_ref().err(),
            "took_ms": started.elapsed().as_millis() as u64,
        }),
    )
}

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    #[serde(flatten)]
    filter: AuditPageQuery,
}

pub async fn audit_export(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
    q: web::Query<ExportQuery>,
) -> HttpResponse {
    let who = signed_in!(console, ctx, session);
    let csv = match q.format.as_deref() {
        None | Some("csv") => true,
        Some("jsonl") => false,
        Some(_) => {
            return message(
                &console,
                Some(&who),
                StatusCode::BAD_REQUEST,
                "Unknown format",
                "Export as csv or jsonl.",
            );
        }
    };
    crate::http::audit::export_response(ctx.into_inner(), q.filter.filter(), csv)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        let env = super::templates();
        for (name, _) in super::TEMPLATES {
            env.get_template(name).unwrap();
        }
        assert_eq!(super::super::SANDBOX_IDENTITIES.len(), 4);
    }
}
