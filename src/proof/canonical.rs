//! The canonical byte form of what a signature covers: a notice's content,
//! a destination's acknowledgement and each reply, independent of how
//! protobuf happens to encode them (field order, default values, map order,
//! unknown fields). `docs/protocol.md` defines it; `docs/proof-vectors.json`
//! holds examples another implementation can check its bytes against.
//!
//! An item is a list of fields in a fixed order, every field always present:
//! one byte giving the name's length, the name (ASCII), four bytes giving the
//! value's length (big-endian), the value. Values are UTF-8 text; integers and
//! enum values in decimal; instants in microseconds since 1970-01-01 UTC in
//! decimal ("" when absent); booleans `0` or `1`. The first field is `type`,
//! naming the item and the version of its form.

use crate::pb;
use prost_types::Timestamp;

/// The form's version; a change to any form below is a new version.
pub const NOTICE: &str = "migrex.notice.v1";
pub const ACK: &str = "migrex.ack.v1";
pub const REPLY: &str = "migrex.reply.v1";
pub const BATCH: &str = "migrex.batch.v1";
pub const AUDIT_HEAD: &str = "migrex.audit-head.v1";

/// Builds one item's canonical bytes.
struct Item(Vec<u8>);

impl Item {
    fn new(kind: &str) -> Item {
        Item::sized(kind, 256)
    }

    /// An item of about `capacity` bytes (a notice's is larger).
    fn sized(kind: &str, capacity: usize) -> Item {
        let mut item = Item(Vec::with_capacity(capacity));
        item.text("type", kind);
        item
    }

    fn text(&mut self, name: &str, value: &str) -> &mut Self {
        debug_assert!(name.len() < 256 && name.is_ascii());
        self.0.push(name.len() as u8);
        self.0.extend_from_slice(name.as_bytes());
        self.0
            .extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.0.extend_from_slice(value.as_bytes());
        self
    }

    fn int(&mut self, name: &str, value: i64) -> &mut Self {
        let mut buf = [0u8; 20];
        self.text(name, decimal(value, &mut buf))
    }

    fn flag(&mut self, name: &str, value: bool) -> &mut Self {
        self.text(name, if value { "1" } else { "0" })
    }

    fn time(&mut self, name: &str, value: Option<&Timestamp>) -> &mut Self {
        let mut buf = [0u8; 20];
        match value {
            Some(t) => self.text(name, decimal(micros(t), &mut buf)),
            None => self.text(name, ""),
        }
    }
}

/// `value` in decimal, as `to_string` writes it, without allocating (the
/// canonical form has many numbers; 20 bytes hold i64::MIN).
fn decimal(value: i64, buf: &mut [u8; 20]) -> &str {
    let mut rest = value.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

/// An instant in whole microseconds (what every store keeps).
pub fn micros(t: &Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(t.nanos) / 1_000)
}

/// A notice's content as its origin sends it: what the origin signs. The
/// state a node keeps beside it (status, times, attempts) is not content.
pub fn notice(n: &pb::Notice) -> Vec<u8> {
    let mut i = Item::sized(NOTICE, 1024);
    i.text("id", &n.id)
        .text("origin", &n.origin)
        .text("destination", &n.destination)
        .text("addressed_to", &n.addressed_to)
        .text("reference", &n.reference)
        .int("kind", n.kind.into())
        .int("category", n.category.into())
        .int("urgency", n.urgency.into())
        .int("reply_required", n.reply_required.into())
        .text("event_date", &n.event_date)
        .time("created_at", n.created_at.as_ref())
        .text("remarks", &n.remarks);
    let s = n.subject.clone().unwrap_or_default();
    i.text("subject.id_number", &s.id_number)
        .text("subject.name", &s.name)
        .text("subject.hukou_district", &s.hukou_district)
        .text("subject.residence_district", &s.residence_district)
        .int("subject.sex", s.sex.into())
        .text("subject.birth_date", &s.birth_date);
    use pb::notice::Details;
    match &n.details {
        None => {
            i.text("details", "");
        }
        Some(Details::Marriage(d)) => {
            i.text("details", "marriage")
                .text("registered_on", &d.registered_on)
                .text("spouse_id_number", &d.spouse_id_number)
                .text("spouse_name", &d.spouse_name)
                .text("registry_office", &d.registry_office);
        }
        Some(Details::Pregnancy(d)) => {
            i.text("details", "pregnancy")
                .text("confirmed_on", &d.confirmed_on)
                .int("gestational_weeks", d.gestational_weeks.into())
                .text("expected_delivery_on", &d.expected_delivery_on)
                .text(
                    "within_policy",
                    match d.within_policy {
                        None => "",
                        Some(true) => "1",
                        Some(false) => "0",
                    },
                );
        }
        Some(Details::Birth(d)) => {
            i.text("details", "birth")
                .text("born_on", &d.born_on)
                .int("child_sex", d.child_sex.into())
                .int("birth_order", d.birth_order.into())
                .text("child_name", &d.child_name)
                .text("place_of_delivery", &d.place_of_delivery);
        }
        Some(Details::Contraception(d)) => {
            i.text("details", "contraception")
                .int("method", d.method.into())
                .text("performed_on", &d.performed_on)
                .text("provider", &d.provider);
        }
    }
    i.0
}

/// The destination's acknowledgement of a notice: that it holds it, since
/// when, and the deadline it counts. What the destination signs.
pub fn ack(
    notice_id: &str,
    destination: &str,
    received_at: Option<&Timestamp>,
    due_at: Option<&Timestamp>,
    due_provisional: bool,
) -> Vec<u8> {
    let mut i = Item::new(ACK);
    i.text("notice_id", notice_id)
        .text("destination", destination)
        .time("received_at", received_at)
        .time("due_at", due_at)
        .flag("due_provisional", due_provisional);
    i.0
}

/// A reply as its author sends it: what the author signs.
pub fn reply(r: &pb::Reply) -> Vec<u8> {
    let mut i = Item::new(REPLY);
    i.text("reply_id", &r.reply_id)
        .text("notice_id", &r.notice_id)
        .text("author", &r.author)
        .text("recipient", &r.recipient);
    use pb::reply::Body;
    match &r.body {
        None => {
            i.text("body", "");
        }
        Some(Body::Receipt(b)) => {
            i.text("body", "receipt")
                .time("acknowledged_at", b.acknowledged_at.as_ref())
                .text("acknowledged_by", &b.acknowledged_by);
        }
        Some(Body::Feedback(f)) => {
            i.text("body", "feedback")
                .int("result", f.result.into())
                .text("remarks", &f.remarks)
                .text("responsible_district", &f.responsible_district)
                .text("answered_by", &f.answered_by)
                .time("answered_at", f.answered_at.as_ref());
            // Corrections in the order of their field names (bytes).
            let mut corrections: Vec<(&String, &String)> = f.corrections.iter().collect();
            corrections.sort();
            i.int("corrections", corrections.len() as i64);
            for (field, value) in corrections {
                i.text("field", field).text("value", value);
            }
        }
        Some(Body::Withdrawal(w)) => {
            i.text("body", "withdrawal")
                .time("withdrawn_at", w.withdrawn_at.as_ref())
                .text("reason", &w.reason);
        }
        Some(Body::DeadlineChange(d)) => {
            i.text("body", "deadline_change")
                .time("changed_at", d.changed_at.as_ref())
                .time("previous_due_at", d.previous_due_at.as_ref())
                .time("due_at", d.due_at.as_ref())
                .flag("provisional", d.provisional);
        }
        Some(Body::Delivery(d)) => {
            i.text("body", "delivery")
                .time("received_at", d.received_at.as_ref())
                .time("due_at", d.due_at.as_ref())
                .flag("due_provisional", d.due_provisional);
        }
        Some(Body::Reminder(m)) => {
            i.text("body", "reminder")
                .time("reminded_at", m.reminded_at.as_ref())
                .text("reminded_by", &m.reminded_by)
                .int("number", m.number.into());
        }
    }
    i.0
}

/// What a node signs for a batch: its district, the number of items and
/// the root of their hash tree (hex).
pub fn batch(signer: &str, size: u64, root: &[u8; 32]) -> Vec<u8> {
    let mut i = Item::new(BATCH);
    i.text("signer", signer)
        .int("size", i64::try_from(size).unwrap_or(i64::MAX))
        .text("root", &hex::encode(root));
    i.0
}

/// The head of a node's access audit chain, as its checkpoint signs it.
pub fn audit_head(
    district: &str,
    seq: i64,
    hash: &str,
    keyed_from: Option<i64>,
    at_micros: i64,
) -> Vec<u8> {
    let mut i = Item::new(AUDIT_HEAD);
    i.text("district", district)
        .int("seq", seq)
        .text("hash", hash)
        .text(
            "keyed_from",
            &keyed_from.map(|k| k.to_string()).unwrap_or_default(),
        )
        .int("at", at_micros);
    i.0
}

/// The fields of canonical bytes, in order (for reading an evidence file
/// and for the tests); `None` when the bytes are not a canonical item.
pub fn fields(mut bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let n = usize::from(*bytes.first()?);
        let name = std::str::from_utf8(bytes.get(1..1 + n)?).ok()?.to_string();
        bytes = &bytes[1 + n..];
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let value = std::str::from_utf8(bytes.get(4..4 + len)?)
            .ok()?
            .to_string();
        bytes = &bytes[4 + len..];
        out.push((name, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_written_as_to_string_writes_them() {
        for v in [0, 7, -7, 10, 1_234_567, i64::MAX, i64::MIN, -1_000_000] {
            let mut buf = [0u8; 20];
            assert_eq!(super::decimal(v, &mut buf), v.to_string());
        }
    }

    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos })
    }

    #[test]
    fn the_form_ignores_protobuf_map_order_and_sub_microsecond_digits() {
        let mut f = pb::Feedback {
            result: 2,
            answered_at: ts(1_790_000_000, 123_456_789),
            ..Default::default()
        };
        f.corrections.insert("subject.name".into(), "赵敏".into());
        f.corrections
            .insert("event_date".into(), "2026-10-01".into());
        let r = pb::Reply {
            reply_id: "r".into(),
            notice_id: "n".into(),
            author: "510116".into(),
            recipient: "440303".into(),
            body: Some(pb::reply::Body::Feedback(f.clone())),
            proof: None,
        };
        let mut g = f;
        g.answered_at = ts(1_790_000_000, 123_456_000);
        let again = pb::Reply {
            body: Some(pb::reply::Body::Feedback(g)),
            ..r.clone()
        };
        assert_eq!(reply(&r), reply(&again));
        let fields = fields(&reply(&r)).unwrap();
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names[names.len() - 5..],
            ["corrections", "field", "value", "field", "value"]
        );
        assert_eq!(fields[fields.len() - 4].1, "event_date", "sorted by name");
        assert_eq!(fields[0], ("type".into(), REPLY.into()));
    }

    #[test]
    fn every_content_field_of_a_notice_changes_its_bytes() {
        let n = pb::Notice {
            id: "id".into(),
            origin: "440303".into(),
            destination: "510116".into(),
            kind: 3,
            details: Some(pb::notice::Details::Birth(pb::BirthDetails {
                birth_order: 1,
                ..Default::default()
            })),
            ..Default::default()
        };
        let base = notice(&n);
        let mut m = n.clone();
        m.details = Some(pb::notice::Details::Birth(pb::BirthDetails {
            birth_order: 2,
            ..Default::default()
        }));
        assert_ne!(base, notice(&m));
        let mut m = n.clone();
        m.remarks = "x".into();
        assert_ne!(base, notice(&m));
        // A node's own state beside the content is not signed.
        let mut m = n;
        m.status = 3;
        m.delivery_attempts = 9;
        assert_eq!(base, notice(&m));
        assert!(fields(&base).is_some());
    }

    #[test]
    fn a_value_cannot_run_into_the_next_field() {
        let a = ack("n", "510116", ts(1, 0).as_ref(), None, false);
        let b = ack("n", "5101", ts(1, 0).as_ref(), None, false);
        assert_ne!(a, b);
        assert!(fields(&a[..a.len() - 1]).is_none(), "cut bytes do not read");
    }
}
