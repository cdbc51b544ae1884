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

/// A value typed in Chinese, as the wire name of `field`'s enum: 生育 →
/// BIRTH, 女 → FEMALE, 通报 → NOTIFICATION, 紧急 → URGENT, 放环 →
/// IUD_INSERTION (read from the domain's labels, the one table of them);
/// anything else as typed.
fn from_chinese(field: &str, v: &str) -> String {
    use crate::domain::{category_zh, kind_zh, method_zh, reply_zh, sex_zh, urgency_zh};
    let v = v.trim();
    let found = |zh: fn(i32) -> &'static str, name: fn(i32) -> Option<&'static str>| {
        (1..=20)
            .find(|i| zh(*i) == v)
            .and_then(name)
            .map(str::to_string)
    };
    let named = match field {
        "kind" => found(kind_zh, |i| {
            NoticeKind::try_from(i).ok().map(|k| k.as_str_name())
        }),
        "category" => found(category_zh, |i| {
            Category::try_from(i).ok().map(|c| c.as_str_name())
        }),
        "urgency" => found(urgency_zh, |i| {
            Urgency::try_from(i).ok().map(|u| u.as_str_name())
        }),
        "child_sex" => found(sex_zh, |i| Sex::try_from(i).ok().map(|x| x.as_str_name())),
        "method" => found(method_zh, |i| {
            ContraceptionMethod::try_from(i)
                .ok()
                .map(|m| m.as_str_name())
        }),
        "reply_required" => [ReplySort::Receipt, ReplySort::Feedback]
            .into_iter()
            .find(|r| reply_zh(*r) == v || (v == "反馈" && *r == ReplySort::Feedback))
            .map(|r| r.as_str_name().to_string()),
        _ => None,
    };
    named.unwrap_or_else(|| v.to_string())
}

/// A district typed by name where a code is asked (a name one district
/// has becomes its code); digits and anything else as typed.
fn district(v: String) -> String {
    if v.is_empty() {
        return v;
    }
    crate::domain::district_typed(&v).unwrap_or(v)
}

/// The refusals of one row, gathered as its fields are read.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    /// The value, or its type's default with the refusal kept.
    fn keep<T: Default>(&mut self, r: Result<T, FieldError>) -> T {
        r.unwrap_or_else(|e| {
            self.0.push(e);
            T::default()
        })
    }
}

/// Builds the wire notice; what the node fills in (origin, id, defaults)
/// may be absent. The first refusal only (`notice_from_fields_all` has
/// every one).
pub fn notice_from_fields(get: &dyn Fn(&str) -> Option<String>) -> Result<pb::Notice, FieldError> {
    notice_from_fields_all(get).map_err(|mut e| e.remove(0))
}

/// Builds the wire notice, or every refusal of its fields at once (one
/// spreadsheet row's errors all listed): required fields, values of the
/// enums (Chinese or the codes), numbers, dates, ID numbers and district
/// codes are checked field by field; what needs several fields together
/// is left to the node (`domain::NoticeContent::parse`).
pub fn notice_from_fields_all(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<pb::Notice, Vec<FieldError>> {
    let mut errors = Errors::default();
    let text = |k: &str| get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let required = |k: &str| {
        let v = text(k);
        if v.is_empty() {
            Err(FieldError::new(k, "is required"))
        } else {
            Ok(v)
        }
    };
    let one_of = |k: &str, v: String, from: fn(&str) -> bool, names: &[&str]| {
        let named = from_chinese(k, &v);
        if from(&named.to_ascii_uppercase().replace(['-', ' '], "_")) {
            Ok(named)
        } else {
            enum_from_name(k, &v, |_| None::<()>, names).map(|_| String::new())
        }
    };
    let kind_text =
        errors
            .keep(required("kind").and_then(|v| {
                one_of("kind", v, |s| NoticeKind::from_str_name(s).is_some(), KINDS)
            }));
    let category_text = errors.keep(required("category").and_then(|v| {
        one_of(
            "category",
            v,
            |s| Category::from_str_name(s).is_some(),
            &["NOTIFICATION", "VERIFICATION_REQUEST"],
        )
    }));
    let urgency_text = match text("urgency") {
        v if v.is_empty() => v,
        v => errors.keep(one_of(
            "urgency",
            v,
            |s| Urgency::from_str_name(s).is_some(),
            &["NORMAL", "URGENT"],
        )),
    };
    let reply_text = match text("reply_required") {
        v if v.is_empty() => v,
        v => errors.keep(one_of(
            "reply_required",
            v,
            |s| ReplySort::from_str_name(s).is_some(),
            &["RECEIPT", "FEEDBACK"],
        )),
    };
    let destination = district(errors.keep(required("destination")));
    let id_number = errors.keep(
        required("id_number")
            .and_then(|v| crate::domain::IdNumber::parse("id_number", &v).map(|_| v)),
    );
    let date = errors.keep(
        required("event_date").and_then(|v| crate::domain::parse_date("event_date", &v).map(|_| v)),
    );
    let name = errors.keep(required("name"));
    let hukou = district(errors.keep(required("hukou_district")));
    let residence = district(errors.keep(required("residence_district")));
    let kind = enum_from_name("kind", &kind_text, NoticeKind::from_str_name, KINDS).ok();
    use pb::notice::Details;
    let details = match kind {
        Some(NoticeKind::Marriage) => Some(Details::Marriage(pb::MarriageDetails {
            registered_on: date.clone(),
            spouse_id_number: text("spouse_id_number"),
            spouse_name: errors.keep(required("spouse_name")),
            registry_office: errors.keep(required("registry_office")),
        })),
        Some(NoticeKind::Pregnancy) => Some(Details::Pregnancy(pb::PregnancyDetails {
            confirmed_on: date.clone(),
            gestational_weeks: errors
                .keep(required("gestational_weeks").and_then(|v| number("gestational_weeks", &v))),
            expected_delivery_on: text("expected_delivery_on"),
            within_policy: match text("within_policy").to_ascii_lowercase().as_str() {
                "" => None,
                "yes" | "true" | "1" | "是" => Some(true),
                "no" | "false" | "0" | "否" => Some(false),
                other => {
                    errors.0.push(FieldError::new(
                        "within_policy",
                        format!("'{other}' is not yes or no"),
                    ));
                    None
                }
            },
        })),
        Some(NoticeKind::Birth) => {
            let sex = match required("child_sex").and_then(|v| {
                enum_from_name(
                    "child_sex",
                    &from_chinese("child_sex", &v),
                    Sex::from_str_name,
                    &["MALE", "FEMALE"],
                )
            }) {
                Ok(s) => s as i32,
                Err(e) => {
                    errors.0.push(e);
                    0
                }
            };
            Some(Details::Birth(pb::BirthDetails {
                born_on: date.clone(),
                child_sex: sex,
                birth_order: errors
                    .keep(required("birth_order").and_then(|v| number("birth_order", &v))),
                child_name: text("child_name"),
                place_of_delivery: errors.keep(required("place_of_delivery")),
            }))
        }
        Some(NoticeKind::Contraception) => {
            let method = match required("method").and_then(|v| {
                enum_from_name(
                    "method",
                    &from_chinese("method", &v),
                    ContraceptionMethod::from_str_name,
                    METHODS,
                )
            }) {
                Ok(m) => m as i32,
                Err(e) => {
                    errors.0.push(e);
                    0
                }
            };
            Some(Details::Contraception(pb::ContraceptionDetails {
                method,
                performed_on: date.clone(),
                provider: errors.keep(required("provider")),
            }))
        }
        _ => None,
    };
    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    Ok(pb::Notice {
        id: text("id"),
        destination,
        kind: kind.map_or(0, |k| k as i32),
        category: Category::from_str_name(
            &category_text.to_ascii_uppercase().replace(['-', ' '], "_"),
        )
        .map_or(0, |c| c as i32),
        urgency: Urgency::from_str_name(&urgency_text.to_ascii_uppercase()).map_or(0, |u| u as i32),
        reply_required: ReplySort::from_str_name(&reply_text.to_ascii_uppercase())
            .map_or(0, |r| r as i32),
        subject: Some(pb::Person {
            id_number,
            name,
            hukou_district: hukou,
            residence_district: residence,
            ..Default::default()
        }),
        event_date: date,
        details,
        remarks: text("remarks"),
        ..Default::default()
    })
}
