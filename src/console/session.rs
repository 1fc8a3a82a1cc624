//! Console sessions: who is signed in (in an encrypted, HttpOnly, SameSite cookie), the idle
//! and absolute timeouts, the CSRF token every state-changing form carries, and the ways in:
//! the organisation's OpenID Connect provider, or in sandbox mode a sample identity.

use actix_session::Session;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::oidc::Pending;
use super::{Console, SANDBOX_IDENTITIES, pages};
use crate::approvals::Identity;
use crate::audit::AuditEvent;
use crate::context::AppContext;

/// The signed-in person, as the session cookie holds them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedIn {
    pub id: String,
    pub aliases: Vec<String>,
    pub roles: Vec<String>,
    /// `oidc` or `sandbox`.
    pub via: String,
    pub signed_in_at: i64,
    pub last_seen: i64,
    /// The session's CSRF token, for the forms of the page (sign-out on every page).
    #[serde(default)]
    pub csrf: String,
}

impl SignedIn {
    pub fn identity(&self) -> Identity {
        Identity {
            id: self.id.clone(),
            aliases: self.aliases.clone(),
            roles: self.roles.clone(),
        }
    }
    pub fn has_any(&self, roles: &[String]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The session's CSRF token, made on first use.
pub fn csrf_token(session: &Session) -> String {
    if let Ok(Some(t)) = session.get::<String>("csrf") {
        return t;
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let t = crate::domain::to_hex(&bytes);
    let _ = session.insert("csrf", &t);
    t
}

/// A state-changing form must carry the session's token: a page of another site cannot.
pub fn check_csrf(
    console: &Console,
    session: &Session,
    sent: Option<&str>,
) -> Result<(), Box<HttpResponse>> {
    let expected = session.get::<String>("csrf").ok().flatten();
    match (expected, sent) {
        (Some(e), Some(s)) if bool::from(e.as_bytes().ct_eq(s.as_bytes())) => Ok(()),
        _ => Err(Box::new(pages::message(
            console,
            None,
            actix_web::http::StatusCode::FORBIDDEN,
            "Form refused",
            "This form was not sent from a current console page (its CSRF token is missing or wrong). Reload the page and try again.",
        ))),
    }
}

/// The signed-in person, if their session is current and they have a role that may look;
/// otherwise the response to send instead (the sign-in page, or a refusal).
pub fn current(
    console: &Console,
    ctx: &AppContext,
    session: &Session,
) -> Result<SignedIn, Box<HttpResponse>> {
    let Some(mut who) = session.get::<SignedIn>("who").ok().flatten() else {
        return Err(Box::new(to_sign_in(None)));
    };
    let t = now();
    let idle = t - who.last_seen > console.idle.as_secs() as i64;
    let absolute = t - who.signed_in_at > console.absolute.as_secs() as i64;
    if idle || absolute {
        session.purge();
        return Err(Box::new(to_sign_in(Some("expired"))));
    }
    let may_look = who
        .roles
        .iter()
        .any(|r| console.viewer_roles.contains(r) || ctx.reads_approvals(r));
    if !may_look {
        return Err(Box::new(pages::message(
            console,
            Some(&who),
            actix_web::http::StatusCode::FORBIDDEN,
            "No console role",
            "You are signed in, but none of your roles may use the console. Ask for a viewer, analyst or approver role.",
        )));
    }
    who.last_seen = t;
    who.csrf = csrf_token(session);
    let _ = session.insert("who", &who);
    Ok(who)
}

fn to_sign_in(why: Option<&str>) -> HttpResponse {
    let to = match why {
        Some(w) => format!("/console/sign-in?why={w}"),
        None => "/console/sign-in".into(),
    };
    pages::see_other(to)
}

#[derive(Deserialize)]
pub struct SignInQuery {
    why: Option<String>,
    error: Option<String>,
}

pub async fn sign_in_page(
    console: web::Data<Console>,
    session: Session,
    q: web::Query<SignInQuery>,
) -> HttpResponse {
    let notice = match q.why.as_deref() {
        Some("expired") => Some("Your session ended (idle or too old). Sign in again."),
        Some("signed-out") => Some("You are signed out."),
        _ => None,
    };
    let identities: Vec<_> = SANDBOX_IDENTITIES
        .iter()
        .map(|(id, roles, what)| json!({"id": id, "roles": roles.join(", "), "what": what}))
        .collect();
    pages::render(
        &console,
        None,
        "sign_in.html",
        json!({
            "notice": notice,
            "error": q.error,
            "oidc": console.oidc.as_ref().map(|o| o.issuer().to_owned()),
            "sandbox": console.sandbox,
            "identities": identities,
            "csrf": csrf_token(&session),
        }),
    )
}

pub async fn oidc_start(console: web::Data<Console>, session: Session) -> HttpResponse {
    let Some(oidc) = &console.oidc else {
        return pages::not_found(&console, None);
    };
    match oidc.start().await {
        Ok((url, pending)) => {
            let _ = session.insert("oidc", &pending);
            pages::see_other(url)
        }
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in could not start");
            pages::message(
                &console,
                None,
                actix_web::http::StatusCode::BAD_GATEWAY,
                "Sign-in unavailable",
                &format!("The identity provider could not be reached: {e}"),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub async fn oidc_callback(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
    q: web::Query<Callback>,
) -> HttpResponse {
    let Some(oidc) = &console.oidc else {
        return pages::not_found(&console, None);
    };
    let pending = session.remove_as::<Pending>("oidc").and_then(Result::ok);
    let refuse = |why: String| {
        let ctx = ctx.clone();
        async move {
            tracing::warn!(reason = %why, "console sign-in refused");
            let _ = ctx
                .store
                .append_audit(vec![
                    AuditEvent::new("console.sign_in_refused", "console")
                        .data(json!({"reason": why})),
                ])
                .await;
            pages::see_other(format!(
                "/console/sign-in?error={}",
                urlencoding::encode(&why)
            ))
        }
    };
    if let Some(e) = &q.error {
        return refuse(format!("the identity provider said: {e}")).await;
    }
    let (Some(pending), Some(code), Some(state)) = (pending, &q.code, &q.state) else {
        return refuse("the sign-in was not started here, or was already used".into()).await;
    };
    if !bool::from(pending.state.as_bytes().ct_eq(state.as_bytes())) {
        return refuse("the sign-in's state does not match (a forged or replayed answer)".into())
            .await;
    }
    match oidc.finish(pending, code).await {
        Ok(identity) => sign_in(&ctx, &session, identity, "oidc").await,
        Err(e) => refuse(e.to_string()).await,
    }
}

#[derive(Deserialize)]
pub struct SandboxForm {
    identity: String,
    csrf: Option<String>,
}

pub async fn sandbox_sign_in(
    console: web::Data<Console>,
    ctx: web::Data<AppContext>,
    session: Session,
    form: web::Form<SandboxForm>,
) -> HttpResponse {
    if !console.sandbox {
        return pages::not_found(&console, None);
    }
    if let Err(r) = check_csrf(&console, &session, form.csrf.as_deref()) {
        return *r;
    }
    let Some((id, roles, _)) = SANDBOX_IDENTITIES
        .iter()
        .find(|(id, _, _)| *id == form.identity)
    else {
        return pages::not_found(&console, None);
    };
    let identity = Identity {
        id: (*id).to_owned(),
        aliases: vec![(*id).to_owned()],
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    sign_in(&ctx, &session, identity, "sandbox").await
}

async fn sign_in(ctx: &AppContext, session: &Session, who: Identity, via: &str) -> HttpResponse {
    // A new session for a new person: nothing of the one before sign-in carries over.
    session.clear();
    session.renew();
    let t = now();
    let signed = SignedIn {
        id: who.id.clone(),
        aliases: who.aliases,
        roles: who.roles,
        via: via.to_owned(),
        signed_in_at: t,
        last_seen: t,
        csrf: csrf_token(session),
    };
    let _ = session.insert("who", &signed);
    let _ = ctx
        .store
        .append_audit(vec![
            AuditEvent::new("console.signed_in", format!("console:{}", signed.id))
                .data(json!({"via": via, "roles": signed.roles})),
        ])
        .await;
    pages::see_other("/console/approvals")
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn sign_out(
    console: web::Data<Console>,
    session: Session,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    if let Err(r) = check_csrf(&console, &session, form.csrf.as_deref()) {
        return *r;
    }
    session.purge();
    pages::see_other("/console/sign-in?why=signed-out")
}
