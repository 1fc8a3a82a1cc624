//! Small readers shared by the formats: values at JSON pointers, subjects, labels.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{ParseError, Subject};
use crate::domain::{Email, UserId};

/// A non-empty string (or a number, as text) at a JSON pointer.
pub fn str_at(v: &Value, pointer: &str) -> Option<String> {
    text(at(v, pointer)?)
}

/// A value as `str_at` reads it: a non-empty string, trimmed, or a number as text.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `Value::pointer` (RFC 6901) without its allocation per token: formats try a dozen
/// pointers per alert, and serde_json unescapes every token into a new `String` (~2% of
/// intake CPU in perf). Tokens are unescaped only when they hold a `~`.
pub fn at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(v);
    }
    pointer
        .strip_prefix('/')?
        .split('/')
        .try_fold(v, |target, token| {
            let token: std::borrow::Cow<str> = if token.contains('~') {
                token.replace("~1", "/").replace("~0", "~").into()
            } else {
                token.into()
            };
            match target {
                Value::Object(map) => map.get(token.as_ref()),
                Value::Array(list) => array_index(&token).and_then(|i| list.get(i)),
                _ => None,
            }
        })
}

/// An array index as RFC 6901 writes it: digits, no sign, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// The first of several pointers that holds a value.
pub fn first_str(v: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| str_at(v, p))
}

/// One subject from the first e-mail / id / name found, or none. Values that are not a valid
/// e-mail or 1Password id are ignored rather than guessed at.
pub fn subject(v: &Value, emails: &[&str], ids: &[&str], names: &[&str]) -> Vec<Subject> {
    subject_of(
        emails.iter().map(|p| str_at(v, p)),
        ids.iter().map(|p| str_at(v, p)),
        first_str(v, names),
    )
}

/// The same from candidate values, in order of preference (read lazily: the first valid
/// e-mail or id ends the search).
pub fn subject_of(
    emails: impl IntoIterator<Item = Option<String>>,
    ids: impl IntoIterator<Item = Option<String>>,
    name: Option<String>,
) -> Vec<Subject> {
    let email = emails
        .into_iter()
        .flatten()
        .find_map(|s| Email::parse(&s).ok());
    let user_id = ids
        .into_iter()
        .flatten()
        .find_map(|s| UserId::parse(&s).ok());
    if email.is_none() && user_id.is_none() {
        return vec![];
    }
    vec![Subject {
        email,
        user_id,
        name,
    }]
}

/// Scalar members of an object as string labels.
pub fn labels(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, val)| match val {
                    Value::String(s) => Some((k.clone(), s.clone())),
                    Value::Number(n) => Some((k.clone(), n.to_string())),
                    Value::Bool(b) => Some((k.clone(), b.to_string())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn shape(format: &'static str, message: impl Into<String>) -> ParseError {
    ParseError::Shape {
        format,
        message: message.into(),
    }
}

/// The member `field` of `v`, which must be an object.
pub fn object<'a>(
    v: &'a Value,
    field: &str,
    format: &'static str,
) -> Result<&'a Value, ParseError> {
    match v.get(field) {
        Some(o @ Value::Object(_)) => Ok(o),
        Some(_) => Err(shape(format, format!("field {field:?} must be an object"))),
        None => Err(shape(format, format!("missing field {field:?}"))),
    }
}

pub fn array<'a>(
    v: &'a Value,
    field: &str,
    format: &'static str,
) -> Result<&'a Vec<Value>, ParseError> {
    match v.get(field) {
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(shape(format, format!("field {field:?} must be an array"))),
        None => Err(shape(format, format!("missing field {field:?}"))),
    }
}

pub fn must_be_object(v: &Value, format: &'static str) -> Result<(), ParseError> {
    if v.is_object() {
        Ok(())
    } else {
        Err(shape(format, "expected a JSON object"))
    }
}

/// Where the affected user sits in 1Password events as SIEMs forward them (Events API field
/// names, flattened Splunk-style keys, and ECS).
pub const ONEPASSWORD_EMAILS: &[&str] = &[
    "/target_user/email",
    "/target_user.email",
    "/target_user_email",
    "/user/email",
    "/user.email",
    "/user_email",
    "/usr/email",
    "/usr.email",
    "/email",
    "/user",
];
pub const ONEPASSWORD_IDS: &[&str] = &[
    "/target_user/uuid",
    "/target_user.uuid",
    "/target_user_uuid",
    "/user/uuid",
    "/user.uuid",
    "/user/id",
    "/user.id",
    "/user_uuid",
    "/user_id",
    "/usr/id",
    "/usr.id",
];
pub const ONEPASSWORD_NAMES: &[&str] = &[
    "/target_user/name",
    "/target_user.name",
    "/user/name",
    "/user/full_name",
    "/user_name",
];

/// Pointers built at run time, as the `&[&str]` the readers take.
pub fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `base` prefixed to every pointer in `pointers`.
pub fn under(base: &str, pointers: &[&str]) -> Vec<String> {
    pointers.iter().map(|p| format!("{base}{p}")).collect()
}

#[cfg(test)]
mod pointer_tests {
    use super::at;
    use serde_json::json;

    #[test]
    fn reads_what_serde_json_pointer_reads() {
        let v = json!({"a": {"b/c": [10, {"d~e": "x"}], "": 1, "0": "zero"}, "list": [1, 2]});
        for p in [
            "",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/d~0e",
            "/a/",
            "/a/0",
            "/list/1",
            "/list/01",
            "/list/+1",
            "/list/-1",
            "/list/2",
            "/missing",
            "a",
            "/a/b~1c/1/d~0e/x",
            "/list/18446744073709551616",
        ] {
            assert_eq!(at(&v, p), v.pointer(p), "{p}");
        }
    }
}
