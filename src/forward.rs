//! Forwards every audit record, at least once and in order, to a webhook or a Splunk HTTP
//! Event Collector. The cursor lives in the store, so a restart or another replica carries on
//! where the last batch was acknowledged.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{AuditForwardFormat, AuditForwardSettings, ConfigError};
use crate::store::Store;

pub struct Forwarder {
    http: reqwest::Client,
    url: SecretString,
    token: Option<SecretString>,
    format: AuditForwardFormat,
    batch: i64,
    interval: Duration,
    /// Signs the head of each batch sent: the receiver holds checkpoints the database cannot
    /// rewrite.
    key: Option<crate::audit::checkpoint::CheckpointKey>,
}

const CURSOR: &str = "audit-forward";

impl Forwarder {
    pub fn new(
        s: &AuditForwardSettings,
        key: Option<crate::audit::checkpoint::CheckpointKey>,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client builds"),
            url: s.url.clone(),
            token: s.token.clone(),
            format: s.format,
            batch: s.batch_size.clamp(1, 1000) as i64,
            interval: Duration::from_millis(s.interval_ms),
            key,
        })
    }

    /// Sends the next batch. Returns how many records were delivered.
    pub async fn step(&self, store: &dyn Store) -> Result<usize, String> {
        let from = store
            .forward_cursor(CURSOR)
            .await
            .map_err(|e| e.to_string())?;
        let records = store
            .audit_chain(from, self.batch)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = records.last().map(|r| r.seq) else {
            return Ok(0);
        };
        let checkpoint = self.key.as_ref().and_then(|k| {
            records
                .last()
                .map(|r| k.checkpoint(r.seq, &r.hash, &crate::domain::now_rfc3339()))
        });
        let mut req = self.http.post(self.url.expose_secret());
        req = match self.format {
            AuditForwardFormat::Webhook => req.json(
                &json!({ "source": "lockout", "records": records, "checkpoint": checkpoint }),
            ),
            AuditForwardFormat::SplunkHec => {
                // HEC takes concatenated event objects in one request.
                let mut events: Vec<String> = records
                    .iter()
                    .map(|r| {
                        let time = crate::domain::parse_time(&r.at).map(|t| t.unix_timestamp_nanos() as f64 / 1e9).unwrap_or_default();
                        json!({"time": time, "source": "lockout", "sourcetype": "lockout:audit", "event": r}).to_string()
                    })
                    .collect();
                if let Some(c) = &checkpoint {
                    events.push(json!({"source": "lockout", "sourcetype": "lockout:checkpoint", "event": c}).to_string());
                }
                let body = events.join("\n");
                req.header("content-type", "application/json").body(body)
            }
        };
        if let Some(t) = &self.token {
            let scheme = if self.format == AuditForwardFormat::SplunkHec {
                "Splunk"
            } else {
                "Bearer"
            };
            req = req.header("authorization", format!("{scheme} {}", t.expose_secret()));
        }
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!(
                "the audit forward target answered {}",
                resp.status().as_u16()
            ));
        }
        // If another replica moved the cursor meanwhile, both sent the batch: at least once.
        store
            .advance_forward_cursor(CURSOR, from, last)
            .await
            .map_err(|e| e.to_string())?;
        Ok(records.len())
    }
}

pub async fn run_forwarder(f: Forwarder, store: Arc<dyn Store>, shutdown: CancellationToken) {
    loop {
        match f.step(store.as_ref()).await {
            Ok(n) if n as i64 == f.batch => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "audit forwarding failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(f.interval) => {}
        }
    }
}
