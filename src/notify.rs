//! Outbound notifications to named webhooks from config (never to URLs found in alerts).
//! Generic JSON or Slack incoming-webhook format; retried with backoff; the caller audits.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::config::{ConfigError, NotifyFormat, NotifyTarget};

struct Target {
    url: SecretString,
    format: NotifyFormat,
    headers: Vec<(String, SecretString)>,
}

pub struct Notifier {
    http: reqwest::Client,
    targets: BTreeMap<String, Target>,
    attempts: u32,
    base_delay: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no notify target named {0:?}")]
    UnknownTarget(String),
    #[error("notify target {target} answered {status}")]
    Status { target: String, status: u16 },
    #[error("notify target {target}: {message}")]
    Transport { target: String, message: String },
}

/// The Slack message announcing a pending approval: who, what, why, a link to the console's
/// page and Approve / Deny buttons (answered at `/v1/integrations/slack/interactions`).
pub fn slack_approval_blocks(
    approval_id: &str,
    will: &str,
    reason: &str,
    quorum: i64,
    link: Option<&str>,
) -> Value {
    let mut text = format!(
        "*Approval needed:* {}\n*Reason:* {}\nNeeds {} approval{}.",
        slack_escape(will),
        slack_escape(reason),
        quorum,
        if quorum == 1 { "" } else { "s" }
    );
    if let Some(link) = link {
        text.push_str(&format!(
            "\n<{}|Open in the lockout console>",
            slack_escape(link)
        ));
    }
    json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "block_id": "lockout_decision", "elements": [
            {"type": "button", "action_id": "lockout_approve", "value": approval_id, "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": "lockout_deny", "value": approval_id, "style": "danger",
             "text": {"type": "plain_text", "text": "Deny"},
             "confirm": {"title": {"type": "plain_text", "text": "Deny?"},
                         "text": {"type": "plain_text", "text": "The action will not run."},
                         "confirm": {"type": "plain_text", "text": "Deny"},
                         "deny": {"type": "plain_text", "text": "Cancel"}}}
        ]}
    ])
}

/// Slack reads `<…>` as links and mentions (`<!channel>`, `<@U123>`, `<https://x|text>`) and
/// `&` as the start of an entity: text from alerts is escaped so that it shows as written and
/// cannot ping a channel or disguise a link (Slack's own escaping rule: `&`, `<`, `>`).
pub fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[test]
fn slack_control_sequences_are_escaped() {
    assert_eq!(
        slack_escape("<!channel> see <https://evil.example|your bank> & <@U123>"),
        "&lt;!channel&gt; see &lt;https://evil.example|your bank&gt; &amp; &lt;@U123&gt;"
    );
}

impl Notifier {
    pub fn new(config: &BTreeMap<String, NotifyTarget>) -> Result<Self, ConfigError> {
        let mut targets = BTreeMap::new();
        for (name, t) in config {
            targets.insert(
                name.clone(),
                Target {
                    url: t.url()?,
                    format: t.format,
                    headers: t
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                },
            );
        }
        Ok(Self {
            http: reqwest::Client::builder()
                .user_agent(concat!("lockout/", env!("CARGO_PKG_VERSION")))
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client with a timeout builds"),
            targets,
            attempts: 3,
            base_delay: Duration::from_millis(200),
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.targets.keys()
    }

    /// Sends `text` (and structured `data` for generic targets), retrying transient failures.
    pub async fn send(
        &self,
        target: &str,
        event: &str,
        text: &str,
        data: &Value,
    ) -> Result<u32, NotifyError> {
        let t = self
            .targets
            .get(target)
            .ok_or_else(|| NotifyError::UnknownTarget(target.into()))?;
        let body = match t.format {
            // Blocks (an approval's buttons) when the event brings them; the text is the
            // notification's fallback and what a phone's lock screen shows.
            NotifyFormat::Slack => match data.get("slack_blocks") {
                Some(blocks) => json!({ "text": slack_escape(text), "blocks": blocks }),
                None => json!({ "text": slack_escape(text) }),
            },
            NotifyFormat::Generic => {
                let mut data = data.clone();
                if let Some(m) = data.as_object_mut() {
                    m.remove("slack_blocks");
                }
                json!({ "event": event, "text": text, "data": data, "source": "lockout" })
            }
        };
        let mut last = None;
        for attempt in 1..=self.attempts {
            let mut req = self.http.post(t.url.expose_secret()).json(&body);
            for (k, v) in &t.headers {
                req = req.header(k, v.expose_secret());
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => return Ok(attempt),
                Ok(r) => {
                    let status = r.status().as_u16();
                    last = Some(NotifyError::Status {
                        target: target.into(),
                        status,
                    });
                    if status < 500 && status != 429 {
                        break;
                    }
                }
                // reqwest names the URL in its errors; a Slack URL holds a token, so drop it.
                Err(e) => {
                    last = Some(NotifyError::Transport {
                        target: target.into(),
                        message: e.without_url().to_string(),
                    })
                }
            }
            tokio::time::sleep(self.base_delay * 2u32.pow(attempt - 1)).await;
        }
        Err(last.expect("at least one attempt"))
    }
}
