//! The birth notice the throughput examples send, as a desk takes it (no
//! id, origin or time: callers add what their path needs). Included by
//! path (`#[path = "common/birth.rs"] mod birth;`).

use migrex::pb;

/// Birth notice number `i`, for a Luohu (440303) resident registered in
/// Shuangliu (510116): a distinct valid ID number per `i` (birth dates from
/// 1950 on, 500 women's sequence numbers, even, per day, and the check
/// character).
pub fn birth(i: usize) -> pb::Notice {
    let born = time::macros::date!(1950 - 01 - 01) + time::Duration::days((i / 500) as i64);
    let first17 = format!(
        "440303{:04}{:02}{:02}{:03}",
        born.year(),
        u8::from(born.month()),
        born.day(),
        (i % 500) * 2
    );
    pb::Notice {
        destination: "510116".into(),
        kind: pb::NoticeKind::Birth as i32,
        category: pb::Category::Notification as i32,
        urgency: pb::Urgency::Normal as i32,
        reply_required: pb::ReplySort::Feedback as i32,
        subject: Some(pb::Person {
            id_number: migrex::domain::IdNumber::complete(&first17),
            name: "王芳".into(),
            hukou_district: "510116".into(),
            residence_district: "440303".into(),
            ..Default::default()
        }),
        details: Some(pb::notice::Details::Birth(pb::BirthDetails {
            born_on: "2026-10-03".into(),
            child_sex: 2,
            birth_order: 1,
            child_name: String::new(),
            place_of_delivery: "罗湖区人民医院".into(),
        })),
        ..Default::default()
    }
}

/// Birth notices `from..to` as the CSV file `migrex notice send --file`
/// reads (the same content as `birth(i)`). Only `bench_e2e` writes CSV
/// files; the other examples that include this file do not.
#[allow(dead_code)]
pub fn csv(from: usize, to: usize) -> String {
    let mut out = String::from(
        "destination,kind,category,urgency,reply_required,id_number,name,hukou_district,\
         residence_district,event_date,child_sex,birth_order,place_of_delivery\n",
    );
    for i in from..to {
        let n = birth(i);
        let p = n.subject.expect("subject");
        out.push_str(&format!(
            "510116,BIRTH,NOTIFICATION,NORMAL,FEEDBACK,{},{},{},{},2026-10-03,FEMALE,1,罗湖区人民医院\n",
            p.id_number, p.name, p.hukou_district, p.residence_district
        ));
    }
    out
}
