//! Domain values that cannot hold bad data: district codes, ID numbers,
//! people, notices and their replies. Everything from outside (gRPC, CSV,
//! CLI flags) is parsed into these types before any logic runs; a parse
//! error names the field and the rule it broke.
//!
//! The small closed enums (kind, category, urgency, reply sort, feedback
//! result, sex, contraception method) are the generated protobuf enums,
//! re-exported here: their `*_UNSPECIFIED` value is refused by every parser,
//! so a parsed value is always a real one.

mod district;
mod id_number;
mod labels;
mod lifecycle;
mod messages;
mod notice;
mod reply;

pub use district::{DistrictCode, RoutePrefix, county_name, district_typed, find_districts};
pub use id_number::IdNumber;
pub use labels::{
    Field, category_zh, field_label, fields_zh, kind_zh, method_zh, operation_zh, reply_zh,
    result_zh, role_zh, sex_zh, status_zh, urgency_zh,
};
pub use lifecycle::{
    CLOCK_SKEW, DUE_SOON_DAYS, DomainError, Lifecycle, Party, REMINDER_INTERVAL, Refused, Verdict,
};
pub use messages::{field_error_zh, label_zh, refusal_zh};
pub use notice::{
    Details, NoticeContent, ParseContext, Person, format_reference, looks_like_reference,
    parse_uuid, ts_from_pb, ts_to_pb,
};
pub use reply::{DeadlineChange, Delivery, FeedbackContent, Reminder, Reply, ReplyBody};

pub use crate::pb::{
    Category, ContraceptionMethod, Direction, FeedbackResult, NoticeKind, NoticeStatus, ReplySort,
    Sex, Urgency,
};

use time::{Date, macros::format_description};

/// A refusal of one input field: which field, and which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The same error one level deeper, e.g. `subject` → `notice.subject`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

/// Parses a calendar date written `YYYY-MM-DD`.
pub fn parse_date(field: &str, s: &str) -> Result<Date, FieldError> {
    if s.is_empty() {
        return Err(FieldError::new(field, "is required (YYYY-MM-DD)"));
    }
    Date::parse(s.trim(), format_description!("[year]-[month]-[day]")).map_err(|_| {
        FieldError::new(
            field,
            format!("{} is not a date of the form YYYY-MM-DD", quoted(s)),
        )
    })
}

/// Formats a date as `YYYY-MM-DD`.
pub fn format_date(d: Date) -> String {
    d.format(format_description!("[year]-[month]-[day]"))
        .expect("a date always formats")
}

/// A required free-text field: trimmed, non-empty, at most `max` characters.
pub fn required_text(field: &str, s: &str, max: usize) -> Result<String, FieldError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    optional_text(field, t, max)
}

/// An optional free-text field: trimmed, at most `max` characters.
pub fn optional_text(field: &str, s: &str, max: usize) -> Result<String, FieldError> {
    let t = s.trim();
    if t.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    if let Some(c) = t.chars().find(|c| hidden_format(*c)) {
        return Err(FieldError::new(
            field,
            format!(
                "must not contain the invisible format character U+{:04X} (direction overrides and zero-width characters change how text reads without showing)",
                u32::from(c)
            ),
        ));
    }
    Ok(t.to_string())
}

/// A value as an error message quotes it: in quotes, at most 32
/// characters (then "…"), what hides escaped (`clipped`). A bad value may
/// be megabytes long, or made to mislead whoever reads the message.
pub fn quoted(s: &str) -> String {
    format!("'{}'", clipped(s, 32))
}

/// Text from elsewhere (a bad value, a peer's error message) made safe to
/// show and log: at most `max` characters (then "…"), control and
/// invisible format characters written as escapes.
pub fn clipped(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() || hidden_format(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that change how text is shown or compared while showing
/// nothing themselves: bidirectional embeddings, overrides and isolates,
/// zero-width spaces and joiners, the byte-order mark.
fn hidden_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Masks an ID number for logs: the first 6 and last 4 characters only.
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 10))
}

/// A peer's text (an error message) as this node keeps, shows and logs
/// it: each of `known` (the names and corrected values of the items the
/// text is about, two characters or more) replaced by as many `*`, anything
/// that looks like an ID number (15 to 18 digits, the last perhaps X)
/// masked as `mask_id` does, then `clipped` to `max`. A peer may quote the
/// notice it refused; its people are not to be spread by that.
pub fn peer_text(s: &str, max: usize, known: &[&str]) -> String {
    let mut text = s.to_string();
    for k in known
        .iter()
        .map(|k| k.trim())
        .filter(|k| k.chars().count() >= 2)
    {
        if text.contains(k) {
            text = text.replace(k, &"*".repeat(k.chars().count()));
        }
    }
    let s = text.as_str();
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if (15..=18).contains(&run.len()) {
            out.push_str(&mask_id(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() || ((c == 'X' || c == 'x') && run.len() == 17) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    clipped(&out, max)
}

/// An ID number as monitors see it: the district (first six characters)
/// and the check character, nothing between (`510116***********9`).
/// Unlike `mask_id` it hides the sequence digits too, so that nothing
/// shown beside it narrows the hidden birth date down to one person.
pub fn mask_id_to_district(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    format!(
        "{head}{}{}",
        "*".repeat(chars.len() - 7),
        chars[chars.len() - 1]
    )
}

/// Parses a generated enum from its proto name, case-insensitively; the
/// `UNSPECIFIED` value is refused.
pub fn enum_from_name<E>(
    field: &str,
    s: &str,
    from: fn(&str) -> Option<E>,
    names: &[&str],
) -> Result<E, FieldError> {
    let upper = s.trim().to_ascii_uppercase().replace(['-', ' '], "_");
    if !upper.ends_with("UNSPECIFIED")
        && let Some(v) = from(&upper)
    {
        return Ok(v);
    }
    Err(FieldError::new(
        field,
        format!("{} is not one of {}", quoted(s), names.join(", ")),
    ))
}

/// Checks that a raw enum number from the wire is a known, specified value.
pub fn enum_from_wire<E: TryFrom<i32>>(field: &str, v: i32) -> Result<E, FieldError> {
    if v == 0 {
        return Err(FieldError::new(field, "is required"));
    }
    E::try_from(v).map_err(|_| FieldError::new(field, format!("{v} is not a known value")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_s_text_keeps_no_id_number() {
        assert_eq!(
            peer_text(
                "subject 51011619900101002X refused; notice 123 of 2026",
                300,
                &[]
            ),
            "subject 510116********002X refused; notice 123 of 2026"
        );
        assert_eq!(
            peer_text("id 440303199001010063.", 300, &[]),
            "id 440303********0063."
        );
        assert_eq!(
            peer_text("a 1234567890123456789 long number", 300, &[]),
            "a 1234567890123456789 long number"
        );
        // The names of the items it is about, however the peer quotes them.
        assert_eq!(
            peer_text(
                "王芳 (spouse 李强) already registered; 李强 twice; 王 alone",
                300,
                &["王芳", "李强", "王", " "]
            ),
            "** (spouse **) already registered; ** twice; 王 alone"
        );
    }

    #[test]
    fn masks_all_but_first_six_and_last_four() {
        assert_eq!(mask_id("11010519491231002X"), "110105********002X");
        assert_eq!(mask_id("12345"), "*****");
    }

    #[test]
    fn dates_need_the_iso_form() {
        assert_eq!(
            format_date(parse_date("d", "2026-02-14").unwrap()),
            "2026-02-14"
        );
        let e = parse_date("notice.event_date", "2026/02/14").unwrap_err();
        assert_eq!(e.field, "notice.event_date");
        assert!(parse_date("d", "2026-02-30").is_err());
    }

    #[test]
    fn enum_names_parse_case_insensitively_but_not_unspecified() {
        let k = enum_from_name("kind", "birth", NoticeKind::from_str_name, &["BIRTH"]).unwrap();
        assert_eq!(k, NoticeKind::Birth);
        assert!(
            enum_from_name(
                "kind",
                "NOTICE_KIND_UNSPECIFIED",
                NoticeKind::from_str_name,
                &["BIRTH"]
            )
            .is_err()
        );
    }

    #[test]
    fn text_refuses_direction_overrides_and_zero_width_characters() {
        assert_eq!(required_text("subject.name", " 王芳 ", 50).unwrap(), "王芳");
        for bad in [
            "王\u{202E}芳",
            "王\u{200B}芳",
            "\u{2067}王芳",
            "王芳\u{FEFF}x",
        ] {
            let e = required_text("subject.name", bad, 50).unwrap_err();
            assert_eq!(e.field, "subject.name");
            assert!(e.rule.contains("U+"), "{}", e.rule);
        }
        assert!(optional_text("remarks", "第一行\n第二行", 100).is_ok());
    }

    #[test]
    fn a_quoted_value_is_short_and_shows_what_hides() {
        assert_eq!(quoted("2026-13-01"), "'2026-13-01'");
        let long = "x".repeat(1_000_000);
        assert_eq!(quoted(&long), format!("'{}…'", "x".repeat(32)));
        assert_eq!(quoted("a\u{202E}b\n"), "'a\\u{202e}b\\u{a}'");
    }
}
