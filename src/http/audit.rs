use actix_web::{HttpResponse, web};
use serde_json::json;

use super::ApiError;
use super::admin::Admin;
use crate::context::AppContext;
use crate::store::AuditQuery;

/// `GET /v1/audit`: records in chain order, filtered, with a cursor (`after_seq`).
pub async fn list(
    _: Admin,
    ctx: web::Data<AppContext>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
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
