//! Notices as the domain sees them, parsed from and written to their wire
//! form (`pb::Notice`).

use super::{
    Category, ContraceptionMethod, DistrictCode, FieldError, IdNumber, NoticeKind, ReplySort, Sex,
    Urgency, enum_from_wire, format_date, optional_text, parse_date, required_text,
};
use crate::pb;
use prost::Message;
use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// What a parse needs to know about the world: today's date where the node is.
#[derive(Debug, Clone, Copy)]
pub struct ParseContext {
    pub today: Date,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id_number: IdNumber,
    pub name: String,
    pub hukou_district: DistrictCode,
    pub residence_district: DistrictCode,
}

/// The kind-specific part of a notice; its date is the notice's event date.
#[derive(Debug, Clone, PartialEq)]
pub enum Details {
    Marriage {
        registered_on: Date,
        spouse_id_number: IdNumber,
        spouse_name: String,
        registry_office: String,
    },
    Pregnancy {
        confirmed_on: Date,
        gestational_weeks: u32,
        expected_delivery_on: Date,
        within_policy: Option<bool>,
    },
    Birth {
        born_on: Date,
        child_sex: Sex,
        birth_order: u32,
        child_name: String,
        place_of_delivery: String,
    },
    Contraception {
        method: ContraceptionMethod,
        performed_on: Date,
        provider: String,
    },
}

impl Details {
    pub fn kind(&self) -> NoticeKind {
        match self {
            Details::Marriage { .. } => NoticeKind::Marriage,
            Details::Pregnancy { .. } => NoticeKind::Pregnancy,
            Details::Birth { .. } => NoticeKind::Birth,
            Details::Contraception { .. } => NoticeKind::Contraception,
        }
    }

    pub fn event_date(&self) -> Date {
        match self {
            Details::Marriage { registered_on, .. } => *registered_on,
            Details::Pregnancy { confirmed_on, .. } => *confirmed_on,
            Details::Birth { born_on, .. } => *born_on,
            Details::Contraception { performed_on, .. } => *performed_on,
        }
    }
}

/// Everything the origin says in a notice: the part both nodes hold
/// identically and that idempotent receipt compares.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeContent {
    pub id: Uuid,
    pub origin: DistrictCode,
    pub destination: DistrictCode,
    pub category: Category,
    pub subject: Person,
    pub urgency: Urgency,
    pub reply_required: ReplySort,
    pub details: Details,
    pub remarks: String,
    pub created_at: OffsetDateTime,
    /// The code the sender addressed, when a division-code change replaced
    /// it by `destination`.
    pub addressed_to: Option<String>,
    /// The short reference (编号) the origin gave it (`reference`).
    pub reference: Option<String>,
}

pub fn ts_to_pb(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    }
}

pub fn ts_from_pb(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Result<OffsetDateTime, FieldError> {
    let t = t.ok_or_else(|| FieldError::new(field, "is required"))?;
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map_err(|_| FieldError::new(field, "is out of range"))
}

pub fn parse_uuid(field: &str, s: &str) -> Result<Uuid, FieldError> {
    Uuid::parse_str(s.trim())
        .map_err(|_| FieldError::new(field, format!("{} is not a UUID", super::quoted(s))))
}

fn not_future(field: &str, d: Date, ctx: &ParseContext) -> Result<(), FieldError> {
    if d > ctx.today {
        return Err(FieldError::new(
            field,
            format!(
                "{} is in the future (today is {})",
                format_date(d),
                format_date(ctx.today)
            ),
        ));
    }
    Ok(())
}

fn must_be_woman(kind: NoticeKind, id: &IdNumber) -> Result<(), FieldError> {
    if id.sex() != Sex::Female {
        return Err(FieldError::new(
            "subject.id_number",
            format!(
                "a {} notice must be about a woman; this ID number is a man's (17th digit odd)",
                kind.as_str_name()
            ),
        ));
    }
    Ok(())
}

impl Person {
    fn parse(p: &pb::Person) -> Result<Self, FieldError> {
        let id_number = IdNumber::parse("id_number", &p.id_number)?;
        if p.sex != 0 && p.sex != id_number.sex() as i32 {
            return Err(FieldError::new(
                "sex",
                "contradicts the sex given by the ID number",
            ));
        }
        if !p.birth_date.is_empty()
            && parse_date("birth_date", &p.birth_date)? != id_number.birth_date()
        {
            return Err(FieldError::new(
                "birth_date",
                "contradicts the birth date in the ID number",
            ));
        }
        Ok(Person {
            id_number,
            name: required_text("name", &p.name, 50)?,
            hukou_district: DistrictCode::parse("hukou_district", &p.hukou_district)?,
            residence_district: DistrictCode::parse("residence_district", &p.residence_district)?,
        })
    }

    fn to_wire(&self) -> pb::Person {
        pb::Person {
            id_number: self.id_number.as_str().to_string(),
            name: self.name.clone(),
            hukou_district: self.hukou_district.to_string(),
            residence_district: self.residence_district.to_string(),
            sex: self.id_number.sex() as i32,
            birth_date: format_date(self.id_number.birth_date()),
        }
    }
}

impl Details {
    fn parse(
        d: Option<&pb::notice::Details>,
        subject: &Person,
        ctx: &ParseContext,
    ) -> Result<Self, FieldError> {
        use pb::notice::Details as W;
        let details = match d.ok_or_else(|| {
            FieldError::new(
                "details",
                "is required (marriage, pregnancy, birth or contraception)",
            )
        })? {
            W::Marriage(m) => {
                let spouse_id_number =
                    IdNumber::parse("marriage.spouse_id_number", &m.spouse_id_number)?;
                if spouse_id_number == subject.id_number {
                    return Err(FieldError::new(
                        "marriage.spouse_id_number",
                        "must differ from the subject's ID number",
                    ));
                }
                Details::Marriage {
                    registered_on: parse_date("marriage.registered_on", &m.registered_on)?,
                    spouse_id_number,
                    spouse_name: required_text("marriage.spouse_name", &m.spouse_name, 50)?,
                    registry_office: required_text(
                        "marriage.registry_office",
                        &m.registry_office,
                        100,
                    )?,
                }
            }
            W::Pregnancy(p) => {
                let confirmed_on = parse_date("pregnancy.confirmed_on", &p.confirmed_on)?;
                if !(1..=45).contains(&p.gestational_weeks) {
                    return Err(FieldError::new(
                        "pregnancy.gestational_weeks",
                        format!("{} is outside 1..45", p.gestational_weeks),
                    ));
                }
                let expected_delivery_on =
                    parse_date("pregnancy.expected_delivery_on", &p.expected_delivery_on)?;
                if expected_delivery_on <= confirmed_on {
                    return Err(FieldError::new(
                        "pregnancy.expected_delivery_on",
                        "must be after confirmed_on",
                    ));
                }
                Details::Pregnancy {
                    confirmed_on,
                    gestational_weeks: p.gestational_weeks,
                    expected_delivery_on,
                    within_policy: p.within_policy,
                }
            }
            W::Birth(b) => {
                let child_sex: Sex = enum_from_wire("birth.child_sex", b.child_sex)?;
                if !(1..=15).contains(&b.birth_order) {
                    return Err(FieldError::new(
                        "birth.birth_order",
                        format!("{} is outside 1..15", b.birth_order),
                    ));
                }
                Details::Birth {
                    born_on: parse_date("birth.born_on", &b.born_on)?,
                    child_sex,
                    birth_order: b.birth_order,
                    child_name: optional_text("birth.child_name", &b.child_name, 50)?,
                    place_of_delivery: required_text(
                        "birth.place_of_delivery",
                        &b.place_of_delivery,
                        100,
                    )?,
                }
            }
            W::Contraception(c) => {
                let method: ContraceptionMethod = enum_from_wire("contraception.method", c.method)?;
                use ContraceptionMethod as M;
                let needs = match method {
                    M::IudInsertion | M::IudRemoval | M::FemaleSterilization | M::Implant => {
                        Some(Sex::Female)
                    }
                    M::MaleSterilization => Some(Sex::Male),
                    _ => None,
                };
                if needs.is_some_and(|s| s != subject.id_number.sex()) {
                    return Err(FieldError::new(
                        "contraception.method",
                        format!("{} does not fit the subject's sex", method.as_str_name()),
                    ));
                }
                Details::Contraception {
                    method,
                    performed_on: parse_date("contraception.performed_on", &c.performed_on)?,
                    provider: required_text("contraception.provider", &c.provider, 100)?,
                }
            }
        };
        let date_field = match &details {
            Details::Marriage { .. } => "marriage.registered_on",
            Details::Pregnancy { .. } => "pregnancy.confirmed_on",
            Details::Birth { .. } => "birth.born_on",
            Details::Contraception { .. } => "contraception.performed_on",
        };
        not_future(date_field, details.event_date(), ctx)?;
        if details.event_date() < subject.id_number.birth_date() {
            return Err(FieldError::new(
                date_field,
                "is before the subject's birth date",
            ));
        }
        Ok(details)
    }

    fn to_wire(&self) -> pb::notice::Details {
        use pb::notice::Details as W;
        match self {
            Details::Marriage {
                registered_on,
                spouse_id_number,
                spouse_name,
                registry_office,
            } => W::Marriage(pb::MarriageDetails {
                registered_on: format_date(*registered_on),
                spouse_id_number: spouse_id_number.as_str().to_string(),
                spouse_name: spouse_name.clone(),
                registry_office: registry_office.clone(),
            }),
            Details::Pregnancy {
                confirmed_on,
                gestational_weeks,
                expected_delivery_on,
                within_policy,
            } => W::Pregnancy(pb::PregnancyDetails {
                confirmed_on: format_date(*confirmed_on),
                gestational_weeks: *gestational_weeks,
                expected_delivery_on: format_date(*expected_delivery_on),
                within_policy: *within_policy,
            }),
            Details::Birth {
                born_on,
                child_sex,
                birth_order,
                child_name,
                place_of_delivery,
            } => W::Birth(pb::BirthDetails {
                born_on: format_date(*born_on),
                child_sex: *child_sex as i32,
                birth_order: *birth_order,
                child_name: child_name.clone(),
                place_of_delivery: place_of_delivery.clone(),
            }),
            Details::Contraception {
                method,
                performed_on,
                provider,
            } => W::Contraception(pb::ContraceptionDetails {
                method: *method as i32,
                performed_on: format_date(*performed_on),
                provider: provider.clone(),
            }),
        }
    }
}

/// The code a notice was addressed to before a division-code change sent
/// it to `destination`: 6, 9 or 12 digits (an old code need not be in the
/// shipped table), not the destination itself.
fn addressed_to(s: &str, destination: &DistrictCode) -> Result<Option<String>, FieldError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if !matches!(s.len(), 6 | 9 | 12) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(
            "addressed_to",
            format!(
                "{} is not a division code (6, 9 or 12 digits)",
                super::quoted(s)
            ),
        ));
    }
    if s == destination.as_str() {
        return Err(FieldError::new("addressed_to", "is the destination itself"));
    }
    Ok(Some(s.to_string()))
}

/// A notice's short reference (编号): `<origin>-<YYYYMMDD>-<NNNN>`, the
/// origin's own code, a day, and a count of four to six digits.
pub fn format_reference(origin: &DistrictCode, day: Date, n: u64) -> String {
    format!(
        "{origin}-{:04}{:02}{:02}-{n:04}",
        day.year(),
        day.month() as u8,
        day.day()
    )
}

/// Whether `s` has the form of a reference (any origin): what 综合查询
/// takes as one.
pub fn looks_like_reference(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(code), Some(day), Some(n), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    matches!(code.len(), 6 | 9 | 12)
        && digits(code)
        && day.len() == 8
        && digits(day)
        && (4..=6).contains(&n.len())
        && digits(n)
}

fn reference(s: &str, origin: &DistrictCode) -> Result<Option<String>, FieldError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let ours = s
        .strip_prefix(origin.as_str())
        .is_some_and(|rest| rest.starts_with('-'));
    if !looks_like_reference(s) || !ours {
        return Err(FieldError::new(
            "reference",
            format!(
                "{} is not a reference of {origin} (<origin>-<YYYYMMDD>-<NNNN>)",
                super::quoted(s)
            ),
        ));
    }
    Ok(Some(s.to_string()))
}

impl NoticeContent {
    /// Parses a complete notice as it travels between nodes. Fields a node
    /// fills in (direction, status, received_at ...) are ignored; defaults
    /// (id, origin, urgency, reply sort, created_at) must already be set.
    pub fn parse(n: &pb::Notice, ctx: &ParseContext) -> Result<Self, FieldError> {
        Self::parse_inner(n, ctx).map_err(|e| e.within("notice"))
    }

    fn parse_inner(n: &pb::Notice, ctx: &ParseContext) -> Result<Self, FieldError> {
        let id = parse_uuid("id", &n.id)?;
        let origin = DistrictCode::parse("origin", &n.origin)?;
        let destination = DistrictCode::parse("destination", &n.destination)?;
        if origin == destination {
            return Err(FieldError::new(
                "destination",
                "must differ from the origin",
            ));
        }
        let kind: NoticeKind = enum_from_wire("kind", n.kind)?;
        let category: Category = enum_from_wire("category", n.category)?;
        let urgency: Urgency = enum_from_wire("urgency", n.urgency)?;
        let reply_required: ReplySort = enum_from_wire("reply_required", n.reply_required)?;
        let subject = Person::parse(
            n.subject
                .as_ref()
                .ok_or_else(|| FieldError::new("subject", "is required"))?,
        )
        .map_err(|e| e.within("subject"))?;
        if matches!(kind, NoticeKind::Pregnancy | NoticeKind::Birth) {
            must_be_woman(kind, &subject.id_number)?;
        }
        let details = Details::parse(n.details.as_ref(), &subject, ctx)?;
        if details.kind() != kind {
            return Err(FieldError::new(
                "details",
                format!(
                    "kind is {} but the details are {}",
                    kind.as_str_name(),
                    details.kind().as_str_name()
                ),
            ));
        }
        if !n.event_date.is_empty()
            && parse_date("event_date", &n.event_date)? != details.event_date()
        {
            return Err(FieldError::new(
                "event_date",
                "differs from the date in the details",
            ));
        }
        let addressed_to = addressed_to(&n.addressed_to, &destination)?;
        let reference = reference(&n.reference, &origin)?;
        Ok(NoticeContent {
            id,
            origin,
            destination,
            category,
            subject,
            urgency,
            reply_required,
            details,
            remarks: optional_text("remarks", &n.remarks, 2000)?,
            created_at: ts_from_pb("created_at", n.created_at.as_ref())?,
            addressed_to,
            reference,
        })
    }

    pub fn kind(&self) -> NoticeKind {
        self.details.kind()
    }

    pub fn event_date(&self) -> Date {
        self.details.event_date()
    }

    /// The origin's part of the wire form; node-set fields are left empty.
    pub fn to_wire(&self) -> pb::Notice {
        pb::Notice {
            id: self.id.to_string(),
            origin: self.origin.to_string(),
            destination: self.destination.to_string(),
            kind: self.kind() as i32,
            category: self.category as i32,
            subject: Some(self.subject.to_wire()),
            urgency: self.urgency as i32,
            reply_required: self.reply_required as i32,
            event_date: format_date(self.event_date()),
            details: Some(self.details.to_wire()),
            remarks: self.remarks.clone(),
            created_at: Some(ts_to_pb(self.created_at)),
            addressed_to: self.addressed_to.clone().unwrap_or_default(),
            reference: self.reference.clone().unwrap_or_default(),
            ..Default::default()
        }
    }

    /// A digest of the normalised content: equal for a faithful redelivery,
    /// different when the same id comes back with other content.
    pub fn content_hash(&self) -> Vec<u8> {
        Self::hash_of(&self.to_wire())
    }

    /// The content hash of the wire form `to_wire` gave (for a caller that
    /// has built it already).
    pub fn hash_of(wire: &pb::Notice) -> Vec<u8> {
        Sha256::digest(wire.encode_to_vec()).to_vec()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::id_number::tests::with_check;
    use time::macros::{date, datetime};

    pub fn woman() -> String {
        with_check("51011619900101002")
    }
    pub fn man() -> String {
        with_check("51011619880202001")
    }

    pub fn birth_notice() -> pb::Notice {
        pb::Notice {
            id: Uuid::new_v4().to_string(),
            origin: "440303".into(),
            destination: "510116".into(),
            kind: NoticeKind::Birth as i32,
            category: Category::Notification as i32,
            subject: Some(pb::Person {
                id_number: woman(),
                name: "王芳".into(),
                hukou_district: "510116".into(),
                residence_district: "440303".into(),
                ..Default::default()
            }),
            urgency: Urgency::Normal as i32,
            reply_required: ReplySort::Feedback as i32,
            details: Some(pb::notice::Details::Birth(pb::BirthDetails {
                born_on: "2026-10-03".into(),
                child_sex: Sex::Male as i32,
                birth_order: 1,
                child_name: String::new(),
                place_of_delivery: "罗湖区人民医院".into(),
            })),
            created_at: Some(ts_to_pb(datetime!(2026-10-05 09:00 UTC))),
            ..Default::default()
        }
    }

    fn ctx() -> ParseContext {
        ParseContext {
            today: date!(2026 - 11 - 22),
        }
    }

    fn field_of(n: &pb::Notice) -> String {
        NoticeContent::parse(n, &ctx()).unwrap_err().field
    }

    #[test]
    fn a_valid_notice_round_trips_through_the_wire_form() {
        let n = birth_notice();
        let c = NoticeContent::parse(&n, &ctx()).unwrap();
        assert_eq!(c.event_date(), date!(2026 - 10 - 03));
        let again = NoticeContent::parse(&c.to_wire(), &ctx()).unwrap();
        assert_eq!(again, c);
        assert_eq!(again.content_hash(), c.content_hash());
    }

    #[test]
    fn names_the_field_of_each_refusal() {
        let mut n = birth_notice();
        n.subject.as_mut().unwrap().id_number = man();
        assert_eq!(field_of(&n), "notice.subject.id_number");

        let mut n = birth_notice();
        n.destination = "440303".into();
        assert_eq!(field_of(&n), "notice.destination");

        let mut n = birth_notice();
        if let Some(pb::notice::Details::Birth(b)) = n.details.as_mut() {
            b.born_on = "2026-12-01".into();
        }
        assert_eq!(field_of(&n), "notice.birth.born_on");

        let mut n = birth_notice();
        n.kind = NoticeKind::Marriage as i32;
        assert_eq!(field_of(&n), "notice.details");

        let mut n = birth_notice();
        n.subject.as_mut().unwrap().sex = Sex::Male as i32;
        assert_eq!(field_of(&n), "notice.subject.sex");

        let mut n = birth_notice();
        n.destination = "000000".into();
        assert_eq!(field_of(&n), "notice.destination");
    }

    #[test]
    fn a_changed_field_changes_the_content_hash() {
        let a = NoticeContent::parse(&birth_notice(), &ctx()).unwrap();
        let mut b = a.clone();
        b.remarks = "changed".into();
        assert_ne!(a.content_hash(), b.content_hash());
    }
}
