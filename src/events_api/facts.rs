//! One Events API item read into the facts lockout decides on, whatever the feed, the API
//! version, or the values a newer API adds.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One of the three feeds. Its name is the path segment and the token feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Feed {
    #[serde(rename = "signinattempts")]
    SignInAttempts,
    #[serde(rename = "itemusages")]
    ItemUsages,
    #[serde(rename = "auditevents")]
    AuditEvents,
}

impl Feed {
    pub const ALL: [Feed; 3] = [Self::SignInAttempts, Self::ItemUsages, Self::AuditEvents];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignInAttempts => "signinattempts",
            Self::ItemUsages => "itemusages",
            Self::AuditEvents => "auditevents",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!("unknown feed {s:?} (one of: signinattempts, itemusages, auditevents)")
            })
    }

    /// The feed an item belongs to, read from its shape (for items that arrive without one,
    /// such as a SIEM forwarding raw events).
    pub fn of_item(item: &Value) -> Option<Self> {
        if item.get("target_user").is_some() || item.get("session_uuid").is_some() {
            Some(Self::SignInAttempts)
        } else if item.get("item_uuid").is_some() || item.get("used_version").is_some() {
            Some(Self::ItemUsages)
        } else if item.get("object_type").is_some()
            || item.get("actor_uuid").is_some()
            || item.get("actor_details").is_some()
        {
            Some(Self::AuditEvents)
        } else {
            None
        }
    }

    /// Fields the contract documents for this feed's items (V2); anything else is new.
    fn known_fields(self) -> &'static [&'static str] {
        match self {
            Self::SignInAttempts => &[
                "uuid",
                "session_uuid",
                "timestamp",
                "category",
                "type",
                "country",
                "details",
                "target_user",
                "client",
                "location",
                "account_uuid",
            ],
            Self::ItemUsages => &[
                "uuid",
                "timestamp",
                "used_version",
                "vault_uuid",
                "item_uuid",
                "action",
                "user",
                "client",
                "location",
                "account_uuid",
            ],
            Self::AuditEvents => &[
                "uuid",
                "timestamp",
                "actor_uuid",
                "actor_details",
                "actor_type",
                "actor_account_uuid",
                "account_uuid",
                "action",
                "object_type",
                "object_uuid",
                "object_details",
                "aux_id",
                "aux_uuid",
                "aux_details",
                "aux_info",
                "session",
                "location",
            ],
        }
    }
}

const SIGNIN_CATEGORIES: &[&str] = &[
    "success",
    "credentials_failed",
    "mfa_failed",
    "sso_failed",
    "modern_version_failed",
    "firewall_failed",
    "firewall_reported_success",
];
const SIGNIN_TYPES: &[&str] = &[
    "credentials_ok",
    "mfa_ok",
    "federated",
    "password_secret_bad",
    "mfa_missing",
    "totp_disabled",
    "totp_bad",
    "totp_timeout",
    "u2f_disabled",
    "u2f_bad",
    "u2f_timeout",
    "u2f_timout",
    "duo_disabled",
    "duo_bad",
    "duo_timeout",
    "duo_native_bad",
    "platform_secret_disabled",
    "platform_secret_bad",
    "platform_secret_proxy",
    "code_disabled",
    "code_bad",
    "code_timeout",
    "ip_blocked",
    "continent_blocked",
    "country_blocked",
    "anonymous_blocked",
    "all_blocked",
    "modern_version_missing",
    "modern_version_old",
    "non_sso_user",
    "sso_user_mismatch",
    "service_account_sso_denied",
];
const ITEM_ACTIONS: &[&str] = &[
    "fill",
    "reveal",
    "secure-copy",
    "export",
    "share",
    "server-create",
    "server-update",
    "server-fetch",
    "select-sso-provider",
    "enter-item-edit-mode",
    "other",
];
const AUDIT_ACTIONS: &[&str] = &[
    "activate", "addgsso", "begin", "beginr", "cancel", "cancelr", "changeks", "changela",
    "changemp", "changenm", "changesk", "chngasso", "chngdsso", "chngpsso", "complete", "completr",
    "convert", "create", "dealldev", "delete", "delgsso", "delshare", "deolddev", "detchild",
    "disblduo", "disblmfa", "disblsso", "dlgsess", "dvrfydmn", "enblduo", "enblmfa", "enblsso",
    "expire", "export", "grant", "hide", "join", "launchi", "leave", "musercom", "muserdec",
    "patch", "propose", "provsn", "prsndall", "purge", "rdmchild", "reactive", "reauth", "replace",
    "resendts", "revoke", "role", "sdvcsso", "sendpkg", "sendts", "share", "ssotknv", "suspend",
    "tdvcsso", "trename", "trevoke", "trvlaway", "trvlback", "tverify", "uisas", "unhide",
    "unknown", "unlink", "updatduo", "update", "updatea", "updatfw", "updatmfa", "upguest",
    "uvrfydmn", "verify", "view", "vrfydmn",
];
const OBJECT_TYPES: &[&str] = &[
    "account", "card", "cred", "device", "dlgdsess", "ec", "famchild", "file", "gm", "group",
    "gva", "invite", "item", "itemhist", "items", "miguser", "mngdacc", "pm", "report", "sa",
    "satoken", "slackapp", "sso", "ssotkn", "sub", "template", "user", "uva", "vault", "vaultkey",
];

/// A person an event names (`target_user`, `user`, `actor_details`, `object_details`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventUser {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl EventUser {
    fn read(v: Option<&Value>, uuid_beside: Option<&Value>) -> Option<Self> {
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let u = Self {
            uuid: s(v.and_then(|v| v.get("uuid"))).or_else(|| s(uuid_beside)),
            email: s(v.and_then(|v| v.get("email"))),
            name: s(v.and_then(|v| v.get("name"))),
        };
        (u != Self::default()).then_some(u)
    }

    /// Whether any of `names` (1Password ids, lower-cased e-mails) is this user.
    pub fn is_any_of(&self, names: &[String]) -> bool {
        self.uuid.as_ref().is_some_and(|u| names.contains(u))
            || self
                .email
                .as_ref()
                .is_some_and(|e| names.contains(&crate::domain::normalise_email(e)))
    }
}

/// What lockout reads from one item. `raw` keeps the item whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventFacts {
    pub feed: Feed,
    /// The item's `uuid` (the de-duplication key), or `sha256:<hex>` of its content when it has
    /// none.
    pub uuid: String,
    pub timestamp: String,
    /// Who the event is about: the sign-in's `target_user`, the item usage's `user`, the audit
    /// event's actor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<EventUser>,
    /// Sign-ins: `category` (success, credentials_failed, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Sign-ins: `type` (credentials_ok, password_secret_bad, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Item usages and audit events: `action`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Audit events: `object_type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
    /// Audit events on a user: that user (`object_details`, `object_uuid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<EventUser>,
    /// The sign-in's ISO `country`, else the `location`'s country.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// What this version does not know: `field:<name>` for a new field, `<field>=<value>` for
    /// a new enum value. Shown, never a failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

impl EventFacts {
    /// Reads an item of `feed`. Never fails: a missing field is `None`, an item that is not an
    /// object has only a content-hash uuid.
    pub fn read(feed: Feed, item: &Value) -> Self {
        let s = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
        let uuid = s("uuid").filter(|u| !u.is_empty()).unwrap_or_else(|| {
            let mut h = Sha256::new();
            h.update(item.to_string().as_bytes());
            format!("sha256:{}", crate::domain::to_hex(&h.finalize()[..16]))
        });
        let at = |pointer: &str| {
            item.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let location_country = at("/location/country");
        let mut unknown = vec![];
        if let Some(obj) = item.as_object() {
            for k in obj.keys() {
                if !feed.known_fields().contains(&k.as_str()) {
                    unknown.push(format!("field:{k}"));
                }
            }
        }
        let mut known = |field: &str, value: &Option<String>, set: &[&str]| {
            if let Some(v) = value
                && !set.contains(&v.as_str())
            {
                unknown.push(format!("{field}={v}"));
            }
        };
        let mut facts = Self {
            feed,
            uuid,
            timestamp: s("timestamp").unwrap_or_default(),
            user: None,
            category: None,
            r#type: None,
            action: None,
            object_type: None,
            object: None,
            country: None,
            ip: None,
            unknown: vec![],
        };
        match feed {
            Feed::SignInAttempts => {
                facts.user = EventUser::read(item.get("target_user"), None);
                facts.category = s("category");
                facts.r#type = s("type");
                facts.country = s("country").or(location_country);
                facts.ip = at("/client/ip_address");
                known("category", &facts.category, SIGNIN_CATEGORIES);
                known("type", &facts.r#type, SIGNIN_TYPES);
            }
            Feed::ItemUsages => {
                facts.user = EventUser::read(item.get("user"), None);
                facts.action = s("action");
                facts.country = location_country;
                facts.ip = at("/client/ip_address");
                known("action", &facts.action, ITEM_ACTIONS);
            }
            Feed::AuditEvents => {
                facts.user = EventUser::read(item.get("actor_details"), item.get("actor_uuid"));
                facts.action = s("action");
                facts.object_type = s("object_type");
                if facts.object_type.as_deref() == Some("user") {
                    facts.object =
                        EventUser::read(item.get("object_details"), item.get("object_uuid"));
                }
                facts.country = location_country;
                facts.ip = at("/session/ip");
                known("action", &facts.action, AUDIT_ACTIONS);
                known("object_type", &facts.object_type, OBJECT_TYPES);
            }
        }
        facts.unknown = unknown;
        facts
    }

    pub fn at(&self) -> Option<time::OffsetDateTime> {
        crate::domain::parse_time(&self.timestamp)
    }

    /// A sign-in that failed (any category but the two successes).
    pub fn is_failed_sign_in(&self) -> bool {
        self.feed == Feed::SignInAttempts
            && !matches!(
                self.category.as_deref(),
                Some("success") | Some("firewall_reported_success") | None
            )
    }

    pub fn is_successful_sign_in(&self) -> bool {
        self.feed == Feed::SignInAttempts && self.category.as_deref() == Some("success")
    }

    /// The value of a filterable field, by its name in playbooks.
    pub fn field(&self, name: &str) -> Option<&str> {
        match name {
            "feed" => Some(self.feed.as_str()),
            "category" => self.category.as_deref(),
            "type" => self.r#type.as_deref(),
            "action" => self.action.as_deref(),
            "object_type" => self.object_type.as_deref(),
            "country" => self.country.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sign_in_is_read_and_unknown_values_are_listed_not_refused() {
        let item = json!({"uuid":"FAKESIGNINAAAAAAAAAAAAAAA2","session_uuid":"S","timestamp":"2021-08-11T14:28:03Z","country":"AR","category":"passkey_failed","type":"credentials_ok","details":null,"target_user":{"uuid":"FAKEUSERAAAAAAAAAAAAAAAAA2","name":"Test User","email":"user@example.invalid"},"client":{"ip_address":"192.0.2.10"},"risk_score":7});
        let f = EventFacts::read(Feed::SignInAttempts, &item);
        assert_eq!(f.uuid, "FAKESIGNINAAAAAAAAAAAAAAA2");
        assert_eq!(f.country.as_deref(), Some("AR"));
        assert_eq!(f.ip.as_deref(), Some("192.0.2.10"));
        assert_eq!(
            f.user.as_ref().unwrap().email.as_deref(),
            Some("user@example.invalid")
        );
        assert_eq!(
            f.unknown,
            vec!["field:risk_score", "category=passkey_failed"]
        );
        assert!(
            f.is_failed_sign_in(),
            "an unknown category is not a success"
        );
    }

    #[test]
    fn an_audit_event_names_its_actor_and_the_user_it_acted_on() {
        let item = json!({"uuid":"U1","timestamp":"2024-12-02T11:54:21.27229198Z","actor_uuid":"ACTOR","actor_details":{"email":"admin@example.com"},"action":"suspend","object_type":"user","object_uuid":"TARGET"});
        let f = EventFacts::read(Feed::AuditEvents, &item);
        assert_eq!(f.user.as_ref().unwrap().uuid.as_deref(), Some("ACTOR"));
        assert_eq!(f.object.as_ref().unwrap().uuid.as_deref(), Some("TARGET"));
        assert!(f.unknown.is_empty());
        assert!(f.at().is_some());
    }

    #[test]
    fn an_item_without_uuid_or_shape_is_still_read() {
        let f = EventFacts::read(Feed::ItemUsages, &json!("not an object"));
        assert!(f.uuid.starts_with("sha256:"));
        assert_eq!(
            Feed::of_item(&json!({"item_uuid": "x"})),
            Some(Feed::ItemUsages)
        );
    }
}
