//! Approvals from Slack: the interaction callback of an approval message's buttons. Slack
//! signs each request (`v0`: HMAC-SHA256 over `v0:<timestamp>:<body>` with the app's signing
//! secret); lockout checks it in constant time, refuses a timestamp more than 5 minutes away
//! and a signature it has seen (replays, on any replica), maps the Slack user to an approver
//! through configuration, and decides by the same rules as the API and the console. The
//! message is then updated through the interaction's `response_url`.

use actix_web::{HttpRequest, HttpResponse, web};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::approvals::Identity;
use crate::audit::AuditEvent;
use crate::context::AppContext;
use crate::domain::now_rfc3339;
use crate::store::{DecideError, DecisionOutcome};

/// How far Slack's timestamp may be from now.
const WINDOW_SECS: i64 = 300;

#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: SlackUserRef,
    #[serde(default)]
    actions: Vec<ButtonAction>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct SlackUserRef {
    id: String,
}

#[derive(Deserialize)]
struct ButtonAction {
    action_id: String,
    #[serde(default)]
    value: String,
}

fn refused(status: actix_web::http::StatusCode, why: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": "slack_refused", "message": why}}))
}

/// Checks Slack's `v0` signature of `body` at `timestamp` with the signing secret.
pub fn signature_valid(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("v0=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

pub async fn interactions(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Some(slack) = &ctx.slack else {
        return refused(StatusCode::NOT_FOUND, "Slack is not configured");
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (timestamp, signature) = (
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
    );
    let refuse = |reason: &str, detail: &str| {
        ctx.refusals.note("slack", reason, detail);
        refused(StatusCode::UNAUTHORIZED, detail)
    };
    let secret = match slack.signing_secret() {
        Ok(s) => s,
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    if !signature_valid(secret.expose_secret(), &timestamp, &body, &signature) {
        return refuse("bad_signature", "the Slack signature does not verify");
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let Ok(ts) = timestamp.parse::<i64>() else {
        return refuse("bad_timestamp", "the Slack timestamp is not a number");
    };
    if (now - ts).abs() > WINDOW_SECS {
        return refuse(
            "stale",
            "the Slack timestamp is more than 5 minutes from now (a replay or a skewed clock)",
        );
    }
    let expires = time::OffsetDateTime::from_unix_timestamp(ts + WINDOW_SECS + 60)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(now_rfc3339);
    match ctx
        .store
        .remember_signature("slack", &signature, &now_rfc3339(), &expires)
        .await
    {
        Ok(true) => {}
        Ok(false) => return refuse("replayed", "this Slack request was already received"),
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
    let payload = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned());
    let Some(interaction) = payload.and_then(|p| serde_json::from_str::<Interaction>(&p).ok())
    else {
        return refused(
            StatusCode::BAD_REQUEST,
            "the body holds no interaction payload",
        );
    };
    let Some(action) = interaction
        .actions
        .iter()
        .find(|a| a.action_id == "lockout_approve" || a.action_id == "lockout_deny")
        .filter(|_| interaction.kind == "block_actions")
    else {
        return HttpResponse::Ok().json(json!({}));
    };
    let approve = action.action_id == "lockout_approve";
    let approval_id = action.value.clone();
    let Some(mapped) = slack.users.get(&interaction.user.id) else {
        let _ = ctx
            .store
            .append_audit(vec![
                AuditEvent::new("slack.refused", format!("slack:{}", interaction.user.id))
                    .data(json!({"reason": "unmapped Slack user", "approval_id": approval_id})),
            ])
            .await;
        reply(
            &ctx,
            interaction.response_url.as_deref(),
            json!({"response_type": "ephemeral", "replace_original": false, "text": "You are not a lockout approver: your Slack account is not mapped to one. Nothing was decided."}),
        );
        return refused(
            StatusCode::FORBIDDEN,
            "this Slack user is not mapped to an approver",
        );
    };
    let email = crate::domain::normalise_email(&mapped.identity);
    let who = Identity {
        id: email.clone(),
        aliases: vec![email.clone(), format!("slack:{}", interaction.user.id)],
        roles: mapped.roles.clone(),
    };
    let reason = (!approve).then(|| format!("denied from Slack by {email}"));
    let outcome =
        crate::actions::approvals::decide(&ctx, &who, &approval_id, approve, reason).await;
    let text = match &outcome {
        Ok(DecisionOutcome::Recorded { approvals, quorum }) => {
            format!("✅ {email} approved ({approvals} of {quorum}); waiting for another approver.")
        }
        Ok(DecisionOutcome::Approved) => format!("✅ Approved by {email}. The action runs now."),
        Ok(DecisionOutcome::Denied) => format!("⛔ Denied by {email}. The action will not run."),
        Err(e @ (DecideError::AlreadyDecided(_) | DecideError::Expired(_))) => {
            format!("Nothing changed: {e}.")
        }
        Err(e) => format!("{email} could not decide: {e}."),
    };
    let replace = matches!(
        outcome,
        Ok(DecisionOutcome::Approved | DecisionOutcome::Denied)
    );
    reply(
        &ctx,
        interaction.response_url.as_deref(),
        if replace {
            json!({"replace_original": true, "text": text})
        } else {
            json!({"response_type": "ephemeral", "replace_original": false, "text": text})
        },
    );
    HttpResponse::Ok().json(json!({"text": text}))
}

/// Updates the Slack message (or answers the clicker alone) through `response_url`, only if it
/// points where Slack's do: a forged payload cannot make lockout post elsewhere.
fn reply(ctx: &AppContext, response_url: Option<&str>, body: Value) {
    let (Some(url), Some(slack)) = (response_url, &ctx.slack) else {
        return;
    };
    if !url.starts_with(&slack.response_url_prefix) {
        tracing::warn!("a Slack response_url outside slack.response_url_prefix was ignored");
        return;
    }
    let url = url.to_owned();
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build();
        if let Ok(client) = client
            && let Err(e) = client.post(&url).json(&body).send().await
        {
            tracing::warn!(error = %e.without_url(), "could not update the Slack message");
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn slacks_documented_example_signature_verifies() {
        // https://api.slack.com/authentication/verifying-requests-from-slack
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        assert!(super::signature_valid(
            secret,
            "1531420618",
            body,
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        ));
        assert!(!super::signature_valid(
            secret,
            "1531420619",
            body,
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        ));
        assert!(!super::signature_valid(
            secret,
            "1531420618",
            body,
            "a2114d57"
        ));
    }
}
