//! How the CLI shows what a node answered: local times in the node's
//! timezone, enum names, notices as text and JSON, the timeliness table.

use crate::domain::{
    Category, Direction, FeedbackResult, NoticeKind, NoticeStatus, ReplySort, Urgency, county_name,
    mask_id,
};
use crate::pb;
use crate::report::figure_cells;
use crate::stats::kind_label;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Instants as staff read them: in the node's timezone (the config's
/// `timezone`; Beijing time unless it says otherwise).
#[derive(Debug, Clone, Copy)]
pub struct Local(pub &'static time_tz::Tz);

impl Local {
    /// The network's usual timezone, for when no config says otherwise.
    pub fn shanghai() -> Self {
        Local(time_tz::timezones::db::asia::SHANGHAI)
    }

    /// The timezone named `name` (an IANA name such as Asia/Shanghai).
    pub fn named(name: &str) -> Result<Self, crate::calendar::CalendarError> {
        Ok(Local(crate::calendar::timezone(name)?))
    }

    /// The timezone of the node whose config is at `config`.
    pub fn of_config(config: &std::path::Path) -> anyhow::Result<Self> {
        let (c, _) = crate::config::Config::load(config)?;
        Ok(Self::named(&c.timezone)?)
    }

    fn at(&self, t: &Option<prost_types::Timestamp>) -> Option<OffsetDateTime> {
        Some(self.local(OffsetDateTime::from_unix_timestamp(t.as_ref()?.seconds).ok()?))
    }

    fn local(&self, t: OffsetDateTime) -> OffsetDateTime {
        use time_tz::OffsetDateTimeExt;
        t.to_timezone(self.0)
    }

    /// The one way the CLI prints an instant as text: to the second, in this
    /// timezone, with its whole UTC offset (`2026-12-06 17:16:02+08:00`,
    /// `…+05:45` in Kathmandu). `--json` gives RFC 3339 in UTC instead.
    pub fn time(&self, t: OffsetDateTime) -> String {
        self.local(t)
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
            ))
            .unwrap_or_default()
    }

    /// `time` of an RFC 3339 text (as the CA's ledger keeps them); the text
    /// itself when it is not one.
    pub fn time_text(&self, rfc3339: &str) -> String {
        OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
            .map(|t| self.time(t))
            .unwrap_or_else(|_| rfc3339.to_string())
    }

    /// The local calendar date of an instant, or "" when absent.
    pub fn day(&self, t: &Option<prost_types::Timestamp>) -> String {
        self.at(t)
            .map(|d| crate::domain::format_date(d.date()))
            .unwrap_or_default()
    }

    /// An instant to the second, with its UTC offset (see `time`).
    pub fn instant(&self, t: &Option<prost_types::Timestamp>) -> Option<String> {
        Some(self.time(OffsetDateTime::from_unix_timestamp(t.as_ref()?.seconds).ok()?))
    }
}

fn name_of<E: TryFrom<i32>>(v: i32, f: fn(&E) -> &'static str) -> &'static str {
    E::try_from(v).as_ref().map(f).unwrap_or("?")
}

pub fn kind_name(v: i32) -> &'static str {
    name_of::<NoticeKind>(v, NoticeKind::as_str_name)
}
pub fn status_name(v: i32) -> &'static str {
    name_of::<NoticeStatus>(v, NoticeStatus::as_str_name)
}
pub fn result_name(v: i32) -> &'static str {
    name_of::<FeedbackResult>(v, FeedbackResult::as_str_name)
}

/// A notice as JSON: enum names, RFC 3339 instants.
pub fn notice_json(n: &pb::Notice) -> Value {
    let rfc = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.seconds).ok())
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    let subject = n.subject.clone().unwrap_or_default();
    let details = match &n.details {
        Some(pb::notice::Details::Marriage(m)) => {
            json!({"registered_on": m.registered_on, "spouse_id_number": m.spouse_id_number, "spouse_name": m.spouse_name, "registry_office": m.registry_office})
        }
        Some(pb::notice::Details::Pregnancy(p)) => {
            json!({"confirmed_on": p.confirmed_on, "gestational_weeks": p.gestational_weeks, "expected_delivery_on": p.expected_delivery_on, "within_policy": p.within_policy})
        }
        Some(pb::notice::Details::Birth(b)) => {
            json!({"born_on": b.born_on, "child_sex": name_of::<crate::domain::Sex>(b.child_sex, crate::domain::Sex::as_str_name), "birth_order": b.birth_order, "child_name": b.child_name, "place_of_delivery": b.place_of_delivery})
        }
        Some(pb::notice::Details::Contraception(c)) => {
            json!({"method": name_of::<crate::domain::ContraceptionMethod>(c.method, crate::domain::ContraceptionMethod::as_str_name), "performed_on": c.performed_on, "provider": c.provider})
        }
        None => Value::Null,
    };
    json!({
        "id": n.id,
        "origin": n.origin,
        "destination": n.destination,
        "kind": kind_name(n.kind),
        "category": name_of::<Category>(n.category, Category::as_str_name),
        "urgency": name_of::<Urgency>(n.urgency, Urgency::as_str_name),
        "reply_required": name_of::<ReplySort>(n.reply_required, ReplySort::as_str_name),
        "subject": {"id_number": subject.id_number, "name": subject.name, "hukou_district": subject.hukou_district, "residence_district": subject.residence_district, "birth_date": subject.birth_date},
        "event_date": n.event_date,
        "details": details,
        "remarks": n.remarks,
        "direction": name_of::<Direction>(n.direction, Direction::as_str_name),
        "status": status_name(n.status),
        "created_at": rfc(&n.created_at),
        "received_at": rfc(&n.received_at),
        "due_at": rfc(&n.due_at),
        "due_provisional": n.due_provisional,
        "deadline_changes": n.deadline_changes.iter().map(|c| json!({
            "changed_at": rfc(&c.changed_at), "previous_due_at": rfc(&c.previous_due_at),
            "due_at": rfc(&c.due_at), "provisional": c.provisional})).collect::<Vec<_>>(),
        "acknowledged_at": rfc(&n.acknowledged_at),
        "acknowledged_by": n.acknowledged_by,
        "feedback": n.feedback.as_ref().map(|f| json!({
            "result": result_name(f.result), "remarks": f.remarks, "corrections": f.corrections,
            "responsible_district": f.responsible_district, "answered_by": f.answered_by, "answered_at": rfc(&f.answered_at)})),
        "timely": n.timely,
        "overdue": n.overdue,
        "withdrawn_at": rfc(&n.withdrawn_at),
        "withdraw_reason": n.withdraw_reason,
        "duplicate_of": (!n.duplicate_of.is_empty()).then_some(&n.duplicate_of),
        "addressed_to": (!n.addressed_to.is_empty()).then_some(&n.addressed_to),
        "reference": (!n.reference.is_empty()).then_some(&n.reference),
        "delivery_attempts": n.delivery_attempts,
        "last_error": (!n.last_error.is_empty()).then_some(&n.last_error),
        "relayed_by": (!n.relayed_by.is_empty()).then_some(&n.relayed_by),
        "relayed_at": rfc(&n.relayed_at),
    })
}

pub fn print_one(n: &pb::Notice, as_json: bool, local: Local) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&notice_json(n)).expect("json")
        );
        return;
    }
    let s = n.subject.clone().unwrap_or_default();
    let place = |c: &str| format!("{c} {}", county_name(c).unwrap_or(""));
    println!("notice      {}", n.id);
    if !n.reference.is_empty() {
        println!("reference   {} (编号)", n.reference);
    }
    println!(
        "kind        {} / {} / {}  reply: {}",
        kind_name(n.kind),
        name_of::<Category>(n.category, Category::as_str_name),
        name_of::<Urgency>(n.urgency, Urgency::as_str_name),
        name_of::<ReplySort>(n.reply_required, ReplySort::as_str_name)
    );
    println!(
        "route       {} → {}",
        place(&n.origin),
        place(&n.destination)
    );
    if !n.addressed_to.is_empty() {
        println!(
            "addressed   {}: a division code replaced by {} (区划变更)",
            place(&n.addressed_to),
            place(&n.destination)
        );
    }
    println!(
        "subject     {} {} (户籍 {}, 现居 {})",
        s.name, s.id_number, s.hukou_district, s.residence_district
    );
    println!("event date  {}", n.event_date);
    println!(
        "status      {}{}{}",
        status_name(n.status),
        if n.overdue { "  OVERDUE 超时" } else { "" },
        if n.duplicate_of.is_empty() {
            String::new()
        } else {
            format!("  DUPLICATE of {}", n.duplicate_of)
        }
    );
    for (label, t) in [
        ("created", &n.created_at),
        ("received", &n.received_at),
        ("due", &n.due_at),
        ("signed for", &n.acknowledged_at),
        ("withdrawn", &n.withdrawn_at),
    ] {
        if let Some(t) = local.instant(t) {
            let mark = if label == "due" && n.due_provisional {
                "  provisional 暂定: past the holiday schedule the destination has"
            } else {
                ""
            };
            println!("{label:<12}{t}{mark}");
        }
    }
    for c in &n.deadline_changes {
        println!(
            "due moved   at {}: {} → {}{}",
            local.instant(&c.changed_at).unwrap_or_default(),
            local.instant(&c.previous_due_at).unwrap_or_default(),
            local.instant(&c.due_at).unwrap_or_default(),
            if c.provisional {
                " (still provisional 暂定)"
            } else {
                " (newer holiday schedule 时限更新)"
            }
        );
    }
    if !n.acknowledged_by.is_empty() {
        println!("signed by   {}", n.acknowledged_by);
    }
    if let Some(f) = &n.feedback {
        println!(
            "feedback    {} by {} at {}  {}",
            result_name(f.result),
            f.answered_by,
            local.instant(&f.answered_at).unwrap_or_default(),
            f.remarks
        );
        for (k, v) in &f.corrections {
            println!("  corrected {k} = {v}");
        }
        if !f.responsible_district.is_empty() {
            println!("  responsible district {}", place(&f.responsible_district));
        }
    }
    if let Some(t) = n.timely {
        println!(
            "timely      {}",
            if t { "yes 及时" } else { "no (late) 超时" }
        );
    }
    if !n.last_error.is_empty() {
        println!(
            "delivery    {} attempts, last error: {}",
            n.delivery_attempts, n.last_error
        );
    }
    if !n.relayed_by.is_empty() {
        println!(
            "relay       {} took it {} (中转){}",
            crate::report::place(&n.relayed_by),
            local.instant(&n.relayed_at).unwrap_or_default(),
            if n.received_at.is_none() {
                "; waiting for the destination's word"
            } else {
                ""
            }
        );
    }
}

pub fn print_list(r: &pb::ListNoticesResponse, as_json: bool, local: Local) {
    if as_json {
        println!(
            "{}",
            json!({"notices": r.notices.iter().map(notice_json).collect::<Vec<_>>(), "next_page_token": r.next_page_token})
        );
        return;
    }
    println!(
        "{:<36}  {:<3}  {:<13}  {:<6}  {:<12}  {:<10}  {:<20}  {:<12}  flags",
        "id", "dir", "kind", "cat", "peer", "subject", "id number", "status"
    );
    for n in &r.notices {
        let s = n.subject.clone().unwrap_or_default();
        let dir = if n.direction == Direction::Inbound as i32 {
            "in"
        } else {
            "out"
        };
        let peer = if dir == "in" {
            &n.origin
        } else {
            &n.destination
        };
        let flags = list_flags(n, local);
        println!(
            "{:<36}  {:<3}  {:<13}  {}  {:<12}  {}  {:<20}  {:<12}  {}",
            n.id,
            dir,
            kind_name(n.kind),
            pad(
                if n.category == Category::VerificationRequest as i32 {
                    "协查"
                } else {
                    "通报"
                },
                6
            ),
            peer,
            pad(&s.name, 10),
            mask_id(&s.id_number),
            status_name(n.status),
            flags
        );
    }
    if r.notices.is_empty() {
        println!("(none)");
    }
    if !r.next_page_token.is_empty() {
        println!("more: --page-token {}", r.next_page_token);
    }
}

/// How wide a string shows in a terminal: CJK characters take two columns.
/// The last column of a list row: the deadline (with its provisional
/// mark), overdue, duplicate, and why delivery is retrying.
fn list_flags(n: &pb::Notice, local: Local) -> String {
    let mut flags = vec![];
    if n.overdue {
        flags.push("OVERDUE".to_string());
    }
    if !n.duplicate_of.is_empty() {
        flags.push(format!(
            "DUP-OF {}",
            &n.duplicate_of[n.duplicate_of.len().saturating_sub(8)..]
        ));
    }
    if !n.last_error.is_empty() {
        // Why it waits, in the table too (whole in `notice show`, --json).
        flags.push(format!(
            "RETRYING({}): {}",
            n.delivery_attempts,
            crate::domain::clipped(&n.last_error, 120)
        ));
    }
    if !n.relayed_by.is_empty() && n.received_at.is_none() {
        flags.push(format!("AT-RELAY {}", n.relayed_by));
    }
    let due = local
        .instant(&n.due_at)
        .map(|d| {
            let provisional = if n.due_provisional {
                " PROVISIONAL(暂定)"
            } else {
                ""
            };
            format!("due {}{provisional}", &d[..10])
        })
        .unwrap_or_default();
    flags.insert(0, due);
    flags.retain(|f| !f.is_empty());
    flags.join(" ")
}

pub fn width(s: &str) -> usize {
    s.chars().map(|c| if c >= '\u{2E80}' { 2 } else { 1 }).sum()
}

/// Pads to `w` display columns (left-aligned).
pub fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// One row as JSON, with the SPEC's names.
pub fn row_json(r: &pb::TimelinessRow) -> Value {
    json!({
        "peer": (!r.peer.is_empty()).then_some(&r.peer),
        "kind": (r.kind != 0).then(|| kind_name(r.kind)),
        "received": r.received,
        "receipt_expected": r.receipt_expected,
        "acknowledged": r.acknowledged,
        "acknowledged_timely": r.acknowledged_timely,
        "receipt_rate": r.receipt_rate,
        "timely_receipt_rate": r.timely_receipt_rate,
        "feedback_expected": r.feedback_expected,
        "answered": r.answered,
        "answered_timely": r.answered_timely,
        "feedback_rate": r.feedback_rate,
        "timely_feedback_rate": r.timely_feedback_rate,
        "overdue_open": r.overdue_open,
        "not_yet_due": r.not_yet_due,
        "reply_latency_days": {"median": r.reply_latency_median_days, "p90": r.reply_latency_p90_days},
        "delivery_lag_seconds": {"median": r.delivery_lag_median_seconds, "p90": r.delivery_lag_p90_seconds},
    })
}

/// The timeliness table, with Chinese and English column names.
pub fn print_table(rows: &[pb::TimelinessRow]) {
    let headers: [(&str, &str); 15] = [
        ("对方", "peer"),
        ("类别", "kind"),
        ("收到", "received"),
        ("应接收", "rcpt exp"),
        ("已接收", "ack'd"),
        ("接收率", "rcpt rate"),
        ("接收及时率", "timely rcpt"),
        ("应反馈", "fb exp"),
        ("已反馈", "answered"),
        ("反馈率", "fb rate"),
        ("反馈及时率", "timely fb"),
        ("超时未复", "overdue"),
        ("未到期", "not due"),
        ("回复天数", "reply d med/p90"),
        ("传输秒数", "lag s med/p90"),
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                if r.peer.is_empty() {
                    "all".into()
                } else {
                    crate::report::peer_name(r)
                },
                kind_label(r.kind).to_string(),
            ]
            .into_iter()
            .chain(figure_cells(r))
            .chain([
                format!(
                    "{}/{}",
                    num(r.reply_latency_median_days, 1),
                    num(r.reply_latency_p90_days, 1)
                ),
                format!(
                    "{}/{}",
                    num(r.delivery_lag_median_seconds, 3),
                    num(r.delivery_lag_p90_seconds, 3)
                ),
            ])
            .collect::<Vec<String>>()
        })
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| width(&c[i]))
                .chain([width(headers[i].0), width(headers[i].1)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |vals: Vec<&str>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| pad(v, *w))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(headers.iter().map(|h| h.0).collect()));
    println!("{}", line(headers.iter().map(|h| h.1).collect()));
    for c in &cells {
        println!("{}", line(c.iter().map(String::as_str).collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_print_in_the_zone_with_its_whole_offset() {
        let t = time::macros::datetime!(2026-12-06 09:30:05 UTC);
        assert_eq!(Local::shanghai().time(t), "2026-12-06 17:30:05+08:00");
        let kathmandu = Local::named("Asia/Kathmandu").unwrap();
        assert_eq!(kathmandu.time(t), "2026-12-06 15:15:05+05:45");
        assert_eq!(
            kathmandu.time_text("2026-12-06T09:30:05Z"),
            "2026-12-06 15:15:05+05:45"
        );
        assert_eq!(kathmandu.time_text("soon"), "soon");
    }

    #[test]
    fn a_retrying_row_says_why_in_the_table() {
        let n = pb::Notice {
            last_error: "the peer's certificate is for district 411302 (宛城区), which does not cover route 510116; nothing was sent".into(),
            delivery_attempts: 4,
            ..Default::default()
        };
        assert_eq!(
            list_flags(&n, Local::shanghai()),
            "RETRYING(4): the peer's certificate is for district 411302 (宛城区), which does not cover route 510116; nothing was sent"
        );
    }
}
