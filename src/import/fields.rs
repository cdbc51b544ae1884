//! A notice from named text fields: one row of a staff spreadsheet, or
//! the flags of `migrex notice send`. Errors name the column.

use crate::domain::{
    Category, ContraceptionMethod, FieldError, NoticeKind, ReplySort, Sex, Urgency, enum_from_name,
};
use crate::pb;

/// The columns a CSV file may have (the header row names them; order is free).
pub const COLUMNS: &[&str] = &[
    "id",
    "destination",
    "kind",
    "category",
    "urgency",
    "reply_required",
    "id_number",
    "name",
    "hukou_district",
    "residence_district",
    "event_date",
    "spouse_id_number",
    "spouse_name",
    "registry_office",
    "gestational_weeks",
    "expected_delivery_on",
    "within_policy",
    "child_sex",
    "birth_order",
    "child_name",
    "place_of_delivery",
    "method",
    "provider",
    "remarks",
];

const KINDS: &[&str] = &["MARRIAGE", "PREGNANCY", "BIRTH", "CONTRACEPTION"];
const METHODS: &[&str] = &[
    "IUD_INSERTION",
    "IUD_REMOVAL",
    "FEMALE_STERILIZATION",
    "MALE_STERILIZATION",
    "IMPLANT",
    "INJECTION",
    "ORAL_PILL",
    "CONDOM",
    "REMEDIAL_MEASURE",
];

fn number(field: &str, v: &str) -> Result<u32, FieldError> {
    v.trim().parse().map_err(|_| {
        FieldError::new(
            field,
            format!("{} is not a whole number", crate::domain::quoted(v)),
        )
    })
}

/// Builds the wire notice; what the node fills in (origin, id, defaults) may be absent.
pub fn notice_from_fields(get: &dyn Fn(&str) -> Option<String>) -> Result<pb::Notice, FieldError> {
    let text = |k: &str| get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let required = |k: &str| {
        let v = text(k);
        if v.is_empty() {
            Err(FieldError::new(k, "is required"))
        } else {
            Ok(v)
        }
    };
    let kind = enum_from_name("kind", &required("kind")?, NoticeKind::from_str_name, KINDS)?;
    let category = enum_from_name(
        "category",
        &required("category")?,
        Category::from_str_name,
        &["NOTIFICATION", "VERIFICATION_REQUEST"],
    )?;
    let urgency = match text("urgency") {
        v if v.is_empty() => 0,
        v => enum_from_name("urgency", &v, Urgency::from_str_name, &["NORMAL", "URGENT"])? as i32,
    };
    let reply_required = match text("reply_required") {
        v if v.is_empty() => 0,
        v => enum_from_name(
            "reply_required",
            &v,
            ReplySort::from_str_name,
            &["RECEIPT", "FEEDBACK"],
        )? as i32,
    };
    let date = required("event_date")?;
    use pb::notice::Details;
    let details = match kind {
        NoticeKind::Marriage => Details::Marriage(pb::MarriageDetails {
            registered_on: date.clone(),
            spouse_id_number: text("spouse_id_number"),
            spouse_name: text("spouse_name"),
            registry_office: text("registry_office"),
        }),
        NoticeKind::Pregnancy => Details::Pregnancy(pb::PregnancyDetails {
            confirmed_on: date.clone(),
            gestational_weeks: number("gestational_weeks", &required("gestational_weeks")?)?,
            expected_delivery_on: text("expected_delivery_on"),
            within_policy: match text("within_policy").to_ascii_lowercase().as_str() {
                "" => None,
                "yes" | "true" | "1" | "是" => Some(true),
                "no" | "false" | "0" | "否" => Some(false),
                other => {
                    return Err(FieldError::new(
                        "within_policy",
                        format!("'{other}' is not yes or no"),
                    ));
                }
            },
        }),
        NoticeKind::Birth => Details::Birth(pb::BirthDetails {
            born_on: date.clone(),
            child_sex: enum_from_name(
                "child_sex",
                &required("child_sex")?,
                Sex::from_str_name,
                &["MALE", "FEMALE"],
            )? as i32,
            birth_order: number("birth_order", &required("birth_order")?)?,
            child_name: text("child_name"),
            place_of_delivery: text("place_of_delivery"),
        }),
        NoticeKind::Contraception => Details::Contraception(pb::ContraceptionDetails {
            method: enum_from_name(
                "method",
                &required("method")?,
                ContraceptionMethod::from_str_name,
                METHODS,
            )? as i32,
            performed_on: date.clone(),
            provider: text("provider"),
        }),
        NoticeKind::Unspecified => unreachable!("enum_from_name refuses UNSPECIFIED"),
    };
    Ok(pb::Notice {
        id: text("id"),
        destination: required("destination")?,
        kind: kind as i32,
        category: category as i32,
        urgency,
        reply_required,
        subject: Some(pb::Person {
            id_number: required("id_number")?,
            name: text("name"),
            hukou_district: text("hukou_district"),
            residence_district: text("residence_district"),
            ..Default::default()
        }),
        event_date: date,
        details: Some(details),
        remarks: text("remarks"),
        ..Default::default()
    })
}
