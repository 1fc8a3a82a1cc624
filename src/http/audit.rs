use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use futures::stream;
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use super::admin::Admin;
use crate::audit::{CSV_HEADER, csv_row};
use crate::context::AppContext;
use crate::store::AuditQuery;

/// `GET /v1/audit`: records in chain order, filtered, with a cursor (`after_seq`).
pub async fn list(
    _: Admin,
    ctx: web::Data<AppContext>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 1000",
        ));
    }
    let records = ctx
        .store
        .query_audit(&AuditQuery {
            limit: Some(limit),
            ..q
        })
        .await?;
    let next = (records.len() as i64 == limit)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({ "records": records, "next_after_seq": next })))
}

/// The export's query: `format` and the same filters as `GET /v1/audit` (spelled out, since
/// query strings cannot be flattened into typed fields).
#[derive(Deserialize)]
pub struct ExportQuery {
    pub format: String,
    pub after_seq: Option<i64>,
    pub kind: Option<String>,
    pub alert_id: Option<String>,
    pub action_id: Option<String>,
    pub subject: Option<String>,
    pub playbook: Option<String>,
    pub actor: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

impl ExportQuery {
    fn filter(&self) -> AuditQuery {
        AuditQuery {
            after_seq: self.after_seq,
            limit: None,
            kind: self.kind.clone(),
            alert_id: self.alert_id.clone(),
            action_id: self.action_id.clone(),
            subject: self.subject.clone(),
            playbook: self.playbook.clone(),
            actor: self.actor.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            newest_first: false,
        }
    }
}

/// `GET /v1/audit/export?format=csv|jsonl`: every matching record, streamed page by page.
pub async fn export(
    _: Admin,
    ctx: web::Data<AppContext>,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let csv = match q.format.as_str() {
        "csv" => true,
        "jsonl" => false,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("format must be csv or jsonl, not {other:?}"),
            ));
        }
    };
    Ok(export_response(ctx.into_inner(), q.filter(), csv))
}

/// Every record matching `filter`, streamed page by page as CSV or JSON lines: the API's
/// export and the console's.
pub(crate) fn export_response(
    ctx: std::sync::Arc<AppContext>,
    filter: AuditQuery,
    csv: bool,
) -> HttpResponse {
    let start = filter.after_seq.unwrap_or(0);
    let body = stream::unfold(Some((start, true)), move |state| {
        let ctx = ctx.clone();
        let filter = filter.clone();
        async move {
            let (after, first) = state?;
            let page = match ctx
                .store
                .query_audit(&AuditQuery {
                    after_seq: Some(after),
                    limit: Some(1000),
                    ..filter
                })
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    return Some((
                        Err(actix_web::error::ErrorInternalServerError(e.to_string())),
                        None,
                    ));
                }
            };
            let mut chunk = String::new();
            if first && csv {
                chunk.push_str(CSV_HEADER);
            }
            for r in &page {
                if csv {
                    chunk.push_str(&csv_row(r));
                } else {
                    chunk.push_str(&serde_json::to_string(r).expect("records serialise"));
                    chunk.push('\n');
                }
            }
            let next = if page.len() == 1000 {
                page.last().map(|r| (r.seq, false))
            } else {
                None
            };
            if chunk.is_empty() && next.is_none() {
                return None;
            }
            Some((
                Ok::<_, actix_web::Error>(web::Bytes::from(chunk)),
                next.or(Some((i64::MAX, false)))
                    .filter(|(s, _)| *s != i64::MAX),
            ))
        }
    });
    HttpResponse::Ok()
        .content_type(if csv {
            "text/csv; charset=utf-8"
        } else {
            "application/x-ndjson"
        })
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"lockout-audit.{}\"",
                if csv { "csv" } else { "jsonl" }
            ),
        ))
        .streaming(body)
}
