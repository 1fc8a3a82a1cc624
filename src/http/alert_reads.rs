//! `GET /v1/alerts` and `GET /v1/alerts/{id}`: what happened to an alert and why — its
//! verdicts (every playbook: matched, not matched and the part of `on.when` that was false with
//! the values it saw, suppressed, protected), its plan, actions, approvals, Users API calls and
//! audit records. The console's alert page shows the same report.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::approvals::require_reader;
use super::auth::Authenticated;
use crate::alerts::Alert;
use crate::context::AppContext;
use crate::domain::UserRef;
use crate::store::{AlertQuery, AuditQuery, StoreError};

/// What the store holds about one alert: the alert, its actions, and its audit records with
/// those of its actions, in order. Read once for the API's report and the console's page.
pub(crate) struct AlertRecords {
    pub stored: crate::store::StoredAlert,
    pub actions: Vec<crate::store::Action>,
    pub records: Vec<crate::audit::AuditRecord>,
}

pub(crate) async fn alert_records(
    ctx: &AppContext,
    id: &str,
) -> Result<Option<AlertRecords>, StoreError> {
    let Some(stored) = ctx.store.get_alert(id).await? else {
        return Ok(None);
    };
    let actions = ctx.store.list_actions(Some(id)).await?;
    let mut records: BTreeMap<i64, crate::audit::AuditRecord> = ctx
        .store
        .query_audit(&AuditQuery {
            alert_id: Some(id.to_owned()),
            limit: Some(1000),
            ..Default::default()
        })
        .await?
        .into_iter()
        .map(|r| (r.seq, r))
        .collect();
    // An action's own records (its calls, its approval's decisions) carry the action.
    for a in &actions {
        for r in ctx
            .store
            .query_audit(&AuditQuery {
                action_id: Some(a.id.clone()),
                limit: Some(500),
                ..Default::default()
            })
            .await?
        {
            records.entry(r.seq).or_insert(r);
        }
    }
    Ok(Some(AlertRecords {
        stored,
        actions,
        records: records.into_values().collect(),
    }))
}

/// Every playbook's verdict on the alert, with the planner's own decisions (suppressed,
/// protected) laid over the playbooks' explanations.
pub(crate) fn verdicts(ctx: &AppContext, r: &AlertRecords) -> Vec<Value> {
    let mut held: BTreeMap<String, (&str, Value)> = BTreeMap::new();
    for r in &r.records {
        let verdict = match r.event.kind.as_str() {
            "guard.suppressed" => "suppressed",
            "guard.protected" => "protected",
            _ => continue,
        };
        if let Some(p) = &r.event.playbook {
            held.insert(p.clone(), (verdict, json!({"target": r.event.subject, "reason": r.event.data["reason"], "suppression_id": r.event.data.get("suppression_id")})));
        }
    }
    match serde_json::from_value::<Alert>(r.stored.alert.clone()) {
        Ok(alert) => crate::playbooks::explain(&ctx.playbooks(), &alert)
            .into_iter()
            .map(|v| {
                let mut out = serde_json::to_value(&v).expect("verdicts serialise");
                if let Some((verdict, detail)) = held.get(&v.playbook) {
                    out["verdict"] = json!(verdict);
                    out["because"] = detail["reason"].clone();
                    out["detail"] = detail.clone();
                }
                out
            })
            .collect(),
        Err(_) => vec![],
    }
}

/// The report on one alert; none if there is no such alert.
pub(crate) async fn report(ctx: &AppContext, id: &str) -> Result<Option<Value>, StoreError> {
    let Some(found) = alert_records(ctx, id).await? else {
        return Ok(None);
    };
    let verdicts = verdicts(ctx, &found);
    let AlertRecords {
        stored,
        actions,
        records,
    } = found;
    let plan = records
        .iter()
        .find(|r| r.event.kind == "plan.made")
        .map(|r| r.event.data.clone());
    let approvals: Vec<Value> = if actions.is_empty() {
        vec![]
    } else {
        ctx.store
            .list_approvals(None)
            .await?
            .into_iter()
            .filter(|ap| actions.iter().any(|a| a.id == ap.action_id))
            .map(|ap| json!({"id": ap.id, "action_id": ap.action_id, "state": ap.state, "decisions": ap.decisions, "expires_at": ap.expires_at}))
            .collect()
    };
    let api_calls: Vec<Value> = records
        .iter()
        .filter(|r| r.event.kind == "api.call")
        .map(|r| json!({"at": r.at, "action_id": r.event.action_id, "call": r.event.data}))
        .collect();
    Ok(Some(json!({
        "alert": {
            "id": stored.id, "source": stored.source, "received_at": stored.received_at,
            "state": stored.state, "status": stored.status, "duplicate_of": stored.duplicate_of,
            "alert": stored.alert,
        },
        "verdicts": verdicts,
        "plan": plan,
        "actions": actions.iter().map(|x| json!({
            "id": x.id, "chain_id": x.chain_id, "kind": x.kind, "target": x.target, "user_id": x.user_id,
            "state": x.state, "playbook": x.playbook, "mode": x.mode, "not_before": x.not_before, "result": x.result,
        })).collect::<Vec<_>>(),
        "approvals": approvals,
        "api_calls": api_calls,
        "audit": records,
    })))
}

pub async fn get(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_reader(&ctx, &who)?;
    match report(&ctx, &id).await? {
        Some(r) => Ok(HttpResponse::Ok().json(r)),
        None => Err(ApiError::not_found(format!("no alert {id}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub source: Option<String>,
    pub state: Option<String>,
    /// An e-mail or a 1Password id: the alerts about that person.
    pub user: Option<String>,
    /// Text in the alert (a scan).
    pub q: Option<String>,
    /// The next page: alerts received before this alert id.
    pub before: Option<String>,
    pub limit: Option<i64>,
}

pub async fn list(
    who: Authenticated,
    ctx: web::Data<AppContext>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    require_reader(&ctx, &who)?;
    let user = match &q.user {
        Some(u) => Some(
            UserRef::parse(u)
                .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?
                .to_string(),
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 500",
        ));
    }
    let alerts = ctx
        .store
        .list_alerts(&AlertQuery {
            before_id: q.before.clone(),
            source: q.source.clone(),
            state: q.state.clone(),
            text: q.q.clone(),
            subject: user,
            limit,
        })
        .await?;
    let next = (alerts.len() as i64 == limit)
        .then(|| alerts.last().map(|a| a.id.clone()))
        .flatten();
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|a| {
            json!({
                "id": a.id, "source": a.source, "received_at": a.received_at, "state": a.state,
                "status": a.status, "title": a.alert["title"], "severity": a.alert["severity"],
                "subjects": a.alert["subjects"],
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"alerts": alerts, "next_before": next})))
}
