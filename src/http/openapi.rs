//! The OpenAPI 3.1 contract of every route, built from the route table in code (`ROUTES`), so
//! a route cannot be served without being documented. `lockout openapi` prints it; the
//! committed `openapi/openapi.json` is checked against it by a test.

use serde_json::{Value, json};

/// Every API route: method, path, summary, security scheme, request body schema, responses.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub security: Option<&'static str>,
    pub body: Option<&'static str>,
    pub responses: &'static [(u16, &'static str)],
}

const E: &str = "Error";

pub const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/healthz",
        summary: "The process is up",
        security: None,
        body: None,
        responses: &[(200, "Health")],
    },
    Route {
        method: "get",
        path: "/readyz",
        summary: "Store reachable, playbooks loaded, a Users API token obtainable (or sandbox)",
        security: None,
        body: None,
        responses: &[(200, "Ready"), (503, E)],
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics",
        security: None,
        body: None,
        responses: &[(200, "text"), (500, E)],
    },
    Route {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        security: None,
        body: None,
        responses: &[(200, "any")],
    },
    Route {
        method: "post",
        path: "/v1/alerts/{source}",
        summary: "Receive SIEM alerts; stored durably before the 202",
        security: Some("source"),
        body: Some("any"),
        responses: &[
            (202, "AlertsAccepted"),
            (400, E),
            (401, E),
            (404, E),
            (408, E),
            (413, E),
            (422, E),
            (500, E),
            (503, E),
        ],
    },
    Route {
        method: "get",
        path: "/v1/audit",
        summary: "Audit records in chain order, filtered, with a cursor",
        security: Some("adminToken"),
        body: None,
        responses: &[(200, "AuditPage"), (400, E), (401, E), (500, E)],
    },
    Route {
        method: "get",
        path: "/v1/audit/export",
        summary: "Every matching audit record, streamed as CSV or JSON lines",
        security: Some("adminToken"),
        body: None,
        responses: &[(200, "export"), (400, E), (401, E)],
    },
    Route {
        method: "get",
        path: "/v1/approvals",
        summary: "Approvals, optionally by state",
        security: Some("approverJwt"),
        body: None,
        responses: &[
            (200, "ApprovalList"),
            (400, E),
            (401, E),
            (403, E),
            (500, E),
        ],
    },
    Route {
        method: "get",
        path: "/v1/approvals/{id}",
        summary: "One approval: the alert, the playbook, the target user and what will happen",
        security: Some("approverJwt"),
        body: None,
        responses: &[(200, "Approval"), (401, E), (403, E), (404, E), (500, E)],
    },
    Route {
        method: "post",
        path: "/v1/approvals/{id}/approve",
        summary: "Approve (counts toward the quorum; four-eyes; decided once)",
        security: Some("approverJwt"),
        body: Some("DecisionBody"),
        responses: &[
            (200, "DecisionResult"),
            (400, E),
            (401, E),
            (403, E),
            (404, E),
            (409, E),
            (422, E),
            (500, E),
        ],
    },
    Route {
        method: "post",
        path: "/v1/approvals/{id}/deny",
        summary: "Deny (a reason is required)",
        security: Some("approverJwt"),
        body: Some("DenyBody"),
        responses: &[
            (200, "DecisionResult"),
            (400, E),
            (401, E),
            (403, E),
            (404, E),
            (409, E),
            (422, E),
            (500, E),
        ],
    },
    Route {
        method: "get",
        path: "/v1/users",
        summary: "1Password users (proxied to the Users API)",
        security: Some("approverJwt"),
        body: None,
        responses: &[
            (200, "UserList"),
            (400, E),
            (401, E),
            (403, E),
            (404, E),
            (502, E),
        ],
    },
    Route {
        method: "get",
        path: "/v1/users/{user}",
        summary: "One 1Password user, by id or e-mail",
        security: Some("approverJwt"),
        body: None,
        responses: &[
            (200, "User"),
            (400, E),
            (401, E),
            (403, E),
            (404, E),
            (502, E),
        ],
    },
    Route {
        method: "post",
        path: "/v1/users/{user}/suspend",
        summary: "Suspend a user by hand, with the same guards, approvals and audit",
        security: Some("approverJwt"),
        body: Some("ManualBody"),
        responses: &[
            (202, "ManualAccepted"),
            (400, E),
            (401, E),
            (403, E),
            (422, E),
            (500, E),
        ],
    },
    Route {
        method: "post",
        path: "/v1/users/{user}/reactivate",
        summary: "Reactivate a user by hand",
        security: Some("approverJwt"),
        body: Some("ManualBody"),
        responses: &[
            (202, "ManualAccepted"),
            (400, E),
            (401, E),
            (403, E),
            (422, E),
            (500, E),
        ],
    },
    Route {
        method: "get",
        path: "/v1/playbooks",
        summary: "The live playbooks with their content hashes",
        security: Some("adminToken"),
        body: None,
        responses: &[(200, "PlaybookList"), (401, E)],
    },
    Route {
        method: "post",
        path: "/v1/playbooks/reload",
        summary: "Reload the playbook folder; on any error the running set stays",
        security: Some("adminToken"),
        body: None,
        responses: &[(200, "ReloadResult"), (401, E), (422, E)],
    },
    Route {
        method: "post",
        path: "/v1/limits/reset",
        summary: "End a global blast-radius limit trip",
        security: Some("adminToken"),
        body: None,
        responses: &[(200, "ResetResult"), (401, E), (500, E)],
    },
    Route {
        method: "post",
        path: "/v1/sandbox/events",
        summary: "Sandbox only: add events to the fake Events API's stream ({feed, items}) or play a scenario ({scenario: brute_force, email})",
        security: Some("adminToken"),
        body: Some("SandboxScript"),
        responses: &[
            (200, "SandboxEvents"),
            (400, E),
            (401, E),
            (404, E),
            (500, E),
        ],
    },
    Route {
        method: "get",
        path: "/v1/alerts",
        summary: "Alerts, newest first: filters source, state, user (e-mail or id, by index), q (text); paging with before",
        security: Some("approverJwt"),
        body: None,
        responses: &[(200, "AlertList"), (400, E), (401, E), (403, E), (500, E)],
    },
    Route {
        method: "get",
        path: "/v1/alerts/{source}",
        summary: "One alert (the path segment is its id): every playbook's verdict and why, the plan, actions, approvals, Users API calls, audit records",
        security: Some("approverJwt"),
        body: None,
        responses: &[(200, "AlertReport"), (401, E), (403, E), (404, E), (500, E)],
    },
    Route {
        method: "get",
        path: "/v1/playbooks/{name}/shadow",
        summary: "A shadow playbook compared with the live one it shadows: agreements, disagreements each way with example alert ids",
        security: Some("approverJwt"),
        body: None,
        responses: &[
            (200, "ShadowComparison"),
            (401, E),
            (403, E),
            (404, E),
            (500, E),
        ],
    },
    Route {
        method: "get",
        path: "/v1/suppressions",
        summary: "The suppressions in force (all=true: every one ever made)",
        security: Some("approverJwt"),
        body: None,
        responses: &[
            (200, "SuppressionList"),
            (400, E),
            (401, E),
            (403, E),
            (500, E),
        ],
    },
    Route {
        method: "post",
        path: "/v1/suppressions",
        summary: "Hold back matches (user, playbook, source, labels) until an expiry, with a reason; audited",
        security: Some("approverJwt"),
        body: Some("NewSuppression"),
        responses: &[
            (201, "Suppression"),
            (400, E),
            (401, E),
            (403, E),
            (422, E),
            (500, E),
        ],
    },
    Route {
        method: "delete",
        path: "/v1/suppressions/{id}",
        summary: "End a suppression now; audited",
        security: Some("approverJwt"),
        body: None,
        responses: &[(204, "none"), (401, E), (403, E), (404, E), (500, E)],
    },
    Route {
        method: "post",
        path: "/v1/integrations/slack/interactions",
        summary: "Slack's interaction callback (an approval message's Approve / Deny buttons), signed with the app's signing secret",
        security: None,
        body: None,
        responses: &[
            (200, "SlackReply"),
            (400, E),
            (401, E),
            (403, E),
            (404, E),
            (500, E),
            (503, E),
        ],
    },
];

fn schemas() -> Value {
    let s = |v: Value| v;
    json!({
        "Error": s(json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}})),
        "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
        "SlackReply": {"type": "object", "properties": {"text": {"type": "string"}}},
        "ShadowComparison": {"type": "object", "required": ["shadow", "compared"], "properties": {
            "shadow": {"type": "string"}, "shadows": {"type": ["string", "null"]}, "compared": {"type": "integer"},
            "agree_both_matched": {"type": "integer"}, "shadow_only": {"type": "object"}, "live_only": {"type": "object"}, "note": {"type": "string"}}},
        "AlertList": {"type": "object", "required": ["alerts"], "properties": {"alerts": {"type": "array", "items": {"type": "object"}}, "next_before": {"type": ["string", "null"]}}},
        "AlertReport": {"type": "object", "required": ["alert", "verdicts", "actions", "approvals", "api_calls", "audit"], "properties": {
            "alert": {"type": "object"}, "plan": {}, "actions": {"type": "array"}, "approvals": {"type": "array"}, "api_calls": {"type": "array"},
            "audit": {"type": "array", "items": {"$ref": "#/components/schemas/AuditRecord"}},
            "verdicts": {"type": "array", "items": {"type": "object", "required": ["playbook", "verdict", "because"], "properties": {
                "playbook": {"type": "string"}, "verdict": {"type": "string", "enum": ["matched", "not_matched", "disabled", "error", "suppressed", "protected"]},
                "because": {}, "failed": {"type": "string"}, "saw": {"type": "array"}, "detail": {}}}}}},
        "NewSuppression": {"type": "object", "required": ["reason", "expires_in_secs"], "additionalProperties": false,
            "description": "At least one of user, playbook, source, labels.",
            "properties": {
                "user": {"type": ["string", "null"], "pattern": "^[^\\x00]*$", "description": "an e-mail, an e-mail glob (*@contractor.example.com) or a 1Password id"},
                "playbook": {"type": ["string", "null"], "pattern": "^[^\\x00]*$"}, "source": {"type": ["string", "null"], "pattern": "^[^\\x00]*$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "reason": {"type": "string", "pattern": "^[^\\x00]*\\S[^\\x00]*$"},
                "expires_in_secs": {"type": "integer", "minimum": 1, "maximum": 604800, "description": "at most guards.max_suppression_secs (default 604800)"}},
            "anyOf": [
                {"required": ["user"], "properties": {"user": {"type": "string", "pattern": "^[^\\x00]*\\S[^\\x00]*$"}}},
                {"required": ["playbook"], "properties": {"playbook": {"type": "string", "pattern": "^[^\\x00]*\\S[^\\x00]*$"}}},
                {"required": ["source"], "properties": {"source": {"type": "string", "pattern": "^[^\\x00]*\\S[^\\x00]*$"}}},
                {"required": ["labels"], "properties": {"labels": {"type": "object", "minProperties": 1}}}]},
        "Suppression": {"type": "object", "required": ["id", "reason", "author", "created_at", "expires_at"], "properties": {
            "id": {"type": "string"}, "user": {"type": ["string", "null"]}, "playbook": {"type": ["string", "null"]}, "source": {"type": ["string", "null"]},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}}, "reason": {"type": "string"}, "author": {"type": "string"},
            "created_at": {"type": "string"}, "expires_at": {"type": "string"}, "removed_at": {"type": ["string", "null"]}, "removed_by": {"type": ["string", "null"]}}},
        "SuppressionList": {"type": "object", "required": ["suppressions"], "properties": {"suppressions": {"type": "array", "items": {"$ref": "#/components/schemas/Suppression"}}}},
        "Ready": {"type": "object", "properties": {"status": {"type": "string"}, "sandbox": {"type": "boolean"}, "mode": {"type": "string"}, "checks": {"type": "object"}}},
        "AlertsAccepted": {"type": "object", "required": ["alert_ids", "duplicates"], "properties": {
            "alert_ids": {"type": "array", "items": {"type": "string"}},
            "duplicates": {"type": "array", "items": {"type": "object", "properties": {"alert_id": {"type": "string"}, "duplicate_of": {"type": "string"}}}}}},
        "AuditRecord": {"type": "object", "required": ["seq", "id", "at", "kind", "actor", "prev_hash", "hash"], "properties": {
            "seq": {"type": "integer"}, "id": {"type": "string"}, "at": {"type": "string"}, "kind": {"type": "string"}, "actor": {"type": "string"},
            "alert_id": {"type": ["string", "null"]}, "action_id": {"type": ["string", "null"]}, "playbook": {"type": ["string", "null"]},
            "subject": {"type": ["string", "null"]}, "data": {}, "prev_hash": {"type": "string"}, "hash": {"type": "string"}}},
        "AuditPage": {"type": "object", "required": ["records"], "properties": {"records": {"type": "array", "items": {"$ref": "#/components/schemas/AuditRecord"}}, "next_after_seq": {"type": ["integer", "null"]}}},
        "Approval": {"type": "object", "required": ["id", "state"], "properties": {"id": {"type": "string"}, "state": {"type": "string", "enum": ["pending", "approved", "denied", "expired", "cancelled"]},
            "reason": {"type": "string"}, "approvers": {"type": "array", "items": {"type": "string"}}, "quorum": {"type": "integer"}, "approvals": {"type": "integer"},
            "decisions": {"type": "array"}, "requested_by": {"type": ["string", "null"]}, "created_at": {"type": "string"}, "expires_at": {"type": "string"},
            "on_timeout": {"type": "string"}, "binding_hash": {"type": "string"}, "action": {}, "alert": {}}},
        "ApprovalList": {"type": "object", "required": ["approvals"], "properties": {"approvals": {"type": "array", "items": {"$ref": "#/components/schemas/Approval"}}}},
        "DecisionBody": {"type": "object", "additionalProperties": false, "properties": {"reason": {"type": ["string", "null"]}}},
        "DenyBody": {"type": "object", "required": ["reason"], "additionalProperties": false, "properties": {"reason": {"type": "string", "pattern": "^[^\\x00]*\\S[^\\x00]*$"}}},
        "DecisionResult": {"type": "object", "required": ["id", "state"], "properties": {"id": {"type": "string"}, "state": {"type": "string"}, "approvals": {"type": "integer"}, "quorum": {"type": "integer"}}},
        "User": {"type": "object", "required": ["id", "email", "state"], "properties": {"id": {"type": "string"}, "email": {"type": "string"}, "display_name": {"type": "string"},
            "state": {"type": "string", "enum": ["STATE_UNSPECIFIED", "ACTIVE", "SUSPENDED"]}, "create_time": {"type": "string"}, "path": {"type": "string"}}},
        "UserList": {"type": "object", "required": ["users"], "properties": {"users": {"type": "array", "items": {"$ref": "#/components/schemas/User"}}}},
        "ManualBody": {"type": "object", "required": ["reason"], "additionalProperties": false, "properties": {"reason": {"type": "string", "pattern": "^[^\\x00]*\\S[^\\x00]*$"}, "approval_required": {"type": "boolean"}}},
        "ManualAccepted": {"type": "object", "properties": {"action_id": {"type": ["string", "null"]}, "state": {"type": ["string", "null"]}, "approval_id": {"type": ["string", "null"]}, "attached": {"type": "boolean"}}},
        "PlaybookList": {"type": "object", "required": ["playbooks"], "properties": {"playbooks": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "description": {"type": "string"}, "enabled": {"type": "boolean"}, "mode": {"type": "string"}, "file": {"type": "string"}, "hash": {"type": "string"}, "steps": {"type": "integer"}}}}}},
        "ReloadResult": {"type": "object", "properties": {"reloaded": {"type": "boolean"}, "playbooks": {"type": "integer"}}},
        "ResetResult": {"type": "object", "properties": {"reset": {"type": "boolean"}}},
        "SandboxScript": {"oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["scenario", "email"], "properties": {
                "scenario": {"type": "string", "enum": ["brute_force"]},
                "email": {"type": "string"},
                "failures": {"type": "integer", "minimum": 0, "maximum": 1000},
                "home": {"type": "string"},
                "away": {"type": "string"}}},
            {"type": "object", "additionalProperties": false, "required": ["feed", "items"], "properties": {
                "feed": {"type": "string", "enum": ["signinattempts", "itemusages", "auditevents"]},
                "items": {"type": "array", "maxItems": 1000, "items": {"type": "object"}}}}
        ]},
        "SandboxEvents": {"type": "object", "required": ["added", "items"], "properties": {"added": {"type": "integer"}, "items": {"type": "array", "items": {"type": "object"}}}},
    })
}

fn parameters(method: &str, path: &str) -> Vec<Value> {
    let mut out = vec![];
    for name in ["source", "id", "user", "name"] {
        if path.contains(&format!("{{{name}}}")) {
            let schema = match name {
                // A 1Password user id (26 upper-case base-32 characters) or an e-mail address.
                "user" => {
                    json!({"type": "string", "pattern": "^([A-Z0-9]{26}|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+)$"})
                }
                _ => json!({"type": "string"}),
            };
            out.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
        }
    }
    let q = |name: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "schema": schema});
    match path {
        "/v1/audit" | "/v1/audit/export" => {
            out.push(q("after_seq", json!({"type": "integer"})));
            // The export streams every matching record: no page size.
            if path == "/v1/audit" {
                out.push(q("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000})));
            }
            for f in ["kind", "alert_id", "action_id", "subject", "playbook", "actor", "since", "until"] {
                out.push(q(f, json!({"type": "string"})));
            }
            if path.ends_with("export") {
                out.push(json!({"name": "format", "in": "query", "required": true, "schema": {"type": "string", "enum": ["csv", "jsonl"]}}));
            }
        }
        "/v1/approvals" => out.push(q("state", json!({"type": "string", "enum": ["pending", "approved", "denied", "expired", "cancelled"]}))),
        "/v1/users" => out.push(q("state", json!({"type": "string", "enum": ["active", "suspended"]}))),
        "/v1/alerts" => {
            for f in ["source", "state", "q", "before"] {
                out.push(q(f, json!({"type": "string"})));
            }
            out.push(q("user", json!({"type": "string", "description": "an e-mail or a 1Password id", "pattern": "^([A-Z0-9]{26}|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+)$"})));
            out.push(q("limit", json!({"type": "integer", "minimum": 1, "maximum": 500})));
        }
        "/v1/suppressions" if method == "get" => out.push(q("all", json!({"type": "boolean"}))),
        _ => {}
    }
    out
}

fn response(kind: &str) -> Value {
    match kind {
        "any" => json!({"description": "OK", "content": {"application/json": {"schema": {}}}}),
        "none" => json!({"description": "Done; no body"}),
        "text" => {
            json!({"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}})
        }
        "export" => {
            json!({"description": "The records", "content": {"text/csv": {"schema": {"type": "string"}}, "application/x-ndjson": {"schema": {"type": "string"}}}})
        }
        schema => {
            json!({"description": schema, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
        }
    }
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": parameters(r.method, r.path),
            "responses": r.responses.iter().map(|(code, kind)| (code.to_string(), response(kind))).collect::<serde_json::Map<_, _>>(),
        });
        match r.security {
            None => op["security"] = json!([]),
            Some("source") => {
                op["security"] =
                    json!([{"sourceBearer": []}, {"sourceBasic": []}, {"sourceHmac": []}, {}])
            }
            Some(s) => op["security"] = json!([{ s: [] }]),
        }
        if let Some(body) = r.body {
            let schema = if body == "any" {
                json!({})
            } else {
                json!({"$ref": format!("#/components/schemas/{body}")})
            };
            op["requestBody"] = json!({"required": body != "DecisionBody", "content": {"application/json": {"schema": schema}}});
        }
        paths.entry(r.path.to_owned()).or_insert_with(|| json!({}))[r.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "lockout",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "SIEM alerts in, safe and audited 1Password account remediation out. Every error has the body {\"error\": {\"code\", \"message\", \"details\"}}.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "sourceBearer": {"type": "http", "scheme": "bearer", "description": "A source's shared token"},
                "sourceBasic": {"type": "http", "scheme": "basic"},
                "sourceHmac": {"type": "apiKey", "in": "header", "name": "X-Signature", "description": "HMAC of the body (header name per source)"},
                "adminToken": {"type": "http", "scheme": "bearer", "description": "a named admin token (server.named_admin_tokens, server.admin_token), or an approver-style JWT with a role in approvals.admin_roles"},
                "approverJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "HS256 or RS256/ES256 via JWKS; roles from a configurable claim"},
            },
        },
    })
}
