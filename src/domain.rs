//! Domain newtypes, parsed once at the edge and trusted everywhere else.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A 1Password user id: 26 upper-case base-32 characters (not an RFC 4122 UUID).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok = s.len() == 26
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::InvalidUserId(truncate(s)))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<UserId> for String {
    fn from(u: UserId) -> String {
        u.0
    }
}
impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

/// The one rule by which e-mails compare: trimmed, ASCII letters lower-cased. Only ASCII
/// letters change: Unicode case folding would make the Kelvin sign (U+212A) equal to `k`.
pub fn normalise_email(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// An e-mail address, normalised (`normalise_email`) so that look-ups and protected lists
/// compare equal. Non-ASCII addresses are refused: a look-alike letter must not name a
/// different user than it shows (an internationalised domain arrives as `xn--…`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        let valid = match s.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
                    && s.len() <= 320
                    && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                    && s.is_ascii()
            }
            None => false,
        };
        if valid {
            Ok(Self(normalise_email(s)))
        } else {
            Err(DomainError::InvalidEmail(truncate(s)))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}
impl TryFrom<String> for Email {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}
impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

/// How an alert, a playbook or an operator names a user: by 1Password id or by e-mail.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum UserRef {
    Id(UserId),
    Email(Email),
}

impl UserRef {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        if let Ok(id) = UserId::parse(s) {
            return Ok(Self::Id(id));
        }
        Email::parse(s)
            .map(Self::Email)
            .map_err(|_| DomainError::InvalidUserRef(truncate(s)))
    }
}
impl TryFrom<String> for UserRef {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<UserRef> for String {
    fn from(u: UserRef) -> String {
        u.to_string()
    }
}
impl fmt::Display for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Email(e) => e.fmt(f),
        }
    }
}
impl fmt::Debug for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserRef({self})")
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DomainError {
    #[error("not a 1Password user id (26 upper-case base-32 characters): {0:?}")]
    InvalidUserId(String),
    #[error("not an e-mail address: {0:?}")]
    InvalidEmail(String),
    #[error("neither a 1Password user id nor an e-mail address: {0:?}")]
    InvalidUserRef(String),
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A time-sortable id with a type prefix (`alr_`, `act_`, `aud_`, `apr_`), uuid v7 inside.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Lower-case hex, as `hex::encode` writes it, without its character-at-a-time iterator:
/// intake hashes every alert and every audit record.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut out).expect("the output is twice the input");
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// Current time as RFC 3339 with fixed sub-second precision, so text comparison orders times.
pub fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

pub fn format_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return format_time_slowly(t);
    }
    // By hand: intake formats two times per alert, and the time crate's general formatter
    // was ~1.5% of the HTTP workers' time. Same text (unit test).
    let mut out = [0u8; 27];
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, t.year() as u32);
    put(5, 2, u8::from(t.month()).into());
    put(8, 2, t.day().into());
    put(11, 2, t.hour().into());
    put(14, 2, t.minute().into());
    put(17, 2, t.second().into());
    put(20, 6, t.microsecond());
    for (at, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ] {
        out[at] = c;
    }
    String::from_utf8(out.to_vec()).expect("digits and separators are ASCII")
}

fn format_time_slowly(t: time::OffsetDateTime) -> String {
    t.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    ))
    .expect("formatting a UTC time cannot fail")
}

/// Parses a time this service wrote (RFC 3339).
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// `ts` moved by `secs` seconds (negative: earlier), in the same text format.
pub fn shift_time(ts: &str, secs: i64) -> String {
    let t = parse_time(ts).unwrap_or_else(time::OffsetDateTime::now_utc);
    format_time(t + time::Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::{Email, normalise_email};

    #[test]
    fn e_mails_compare_by_one_ascii_rule_and_confusables_are_refused() {
        // U+212A KELVIN SIGN lower-cases to `k` under Unicode rules: refused, not folded.
        assert!(Email::parse("\u{212A}ate@example.com").is_err());
        // A Cyrillic `а` in the domain.
        assert!(Email::parse("kate@ex\u{0430}mple.com").is_err());
        assert_eq!(
            Email::parse(" Kate@Example.COM ").unwrap().as_str(),
            "kate@example.com"
        );
        assert_eq!(normalise_email("K\u{212A}@X"), "k\u{212A}@x");
    }

    #[test]
    fn hex_is_written_as_the_hex_crate_writes_it() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(super::to_hex(&bytes), hex::encode(&bytes));
        assert_eq!(super::to_hex(&[]), "");
    }

    #[test]
    fn times_are_formatted_as_the_time_crate_formats_them() {
        use super::{format_time, format_time_slowly};
        let start = time::OffsetDateTime::from_unix_timestamp(0).unwrap();
        // Every few hours over ~40 years, with varying microseconds, and the edges.
        let mut t = start;
        for i in 0..120_000i64 {
            t += time::Duration::seconds(10_007)
                + time::Duration::microseconds(i * 7919 % 1_000_000);
            assert_eq!(format_time(t), format_time_slowly(t));
        }
        for t in [
            time::macros::datetime!(0000-01-01 00:00:00 UTC),
            time::macros::datetime!(9999-12-31 23:59:59.999999 UTC),
            time::macros::datetime!(2026-11-27 16:27:33.486897 +02:00),
        ] {
            assert_eq!(
                format_time(t),
                format_time_slowly(t.to_offset(time::UtcOffset::UTC))
            );
        }
    }

    use super::*;

    #[test]
    fn user_ids_are_26_upper_case_characters() {
        assert!(UserId::parse("IR7VJHJ36JHINBFAD7V2T5MP3E").is_ok());
        assert!(UserId::parse("ir7vjhj36jhinbfad7v2t5mp3e").is_err());
        assert!(UserId::parse("IR7VJHJ36JHINBFAD7V2T5MP3").is_err());
        assert!(UserId::parse("3f2504e0-4f89-11d3-9a0c-0305e82c3301").is_err());
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            Email::parse(" Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "a b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_ref_prefers_ids() {
        assert!(matches!(
            UserRef::parse("IR7VJHJ36JHINBFAD7V2T5MP3E"),
            Ok(UserRef::Id(_))
        ));
        assert!(matches!(
            UserRef::parse("bob@example.com"),
            Ok(UserRef::Email(_))
        ));
        assert!(UserRef::parse("bob").is_err());
    }

    #[test]
    fn times_sort_as_text() {
        let a = format_time(time::macros::datetime!(2026-01-01 09:00:00 UTC));
        let b = format_time(time::macros::datetime!(2026-01-01 10:00:00.5 UTC));
        assert!(a < b);
        assert_eq!(a, "2026-01-01T09:00:00.000000Z");
    }
}
