//! What the read benchmarks share: one node (Shuangliu, 510116) whose
//! SQLite store holds N notices of three years' history, filled through
//! the store's bulk insert (triggers and all), kept in a folder so that a
//! second run skips the fill (a file `filled` holds N once the fill is
//! complete; a folder without it, or of another N, is filled again).

use migrex::config::Delivery;
use migrex::domain::{Direction, IdNumber, NoticeContent, NoticeStatus, ParseContext};
use migrex::pb;
use migrex::setup::LocalNetwork;
use migrex::store::{NewNotice, Store};
use std::path::Path;
use std::time::Instant;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

fn template(i: usize) -> NoticeContent {
    let peers = [
        "440303", "411302", "110101", "310104", "440106", "320102", "330106", "420102",
    ];
    let peer = peers[i % peers.len()];
    let n = pb::Notice {
        id: uuid::Uuid::new_v4().to_string(),
        origin: peer.into(),
        destination: "510116".into(),
        kind: (1 + (i / 8) % 4) as i32,
        category: (1 + i % 2) as i32,
        subject: Some(pb::Person {
            id_number: IdNumber::complete(&format!("51011619900101{:02}{}", i % 100, 2 * (i % 5))),
            name: "王芳".into(),
            hukou_district: "510116".into(),
            residence_district: peer.into(),
            ..Default::default()
        }),
        urgency: 1,
        reply_required: (1 + i % 2) as i32,
        details: Some(match (i / 8) % 4 {
            0 => pb::notice::Details::Marriage(pb::MarriageDetails {
                registered_on: "2023-06-01".into(),
                spouse_id_number: IdNumber::complete("51011619880202001"),
                spouse_name: "李强".into(),
                registry_office: "登记处".into(),
            }),
            1 => pb::notice::Details::Pregnancy(pb::PregnancyDetails {
                confirmed_on: "2023-06-01".into(),
                gestational_weeks: 8,
                expected_delivery_on: "2024-01-10".into(),
                within_policy: None,
            }),
            2 => pb::notice::Details::Birth(pb::BirthDetails {
                born_on: "2023-06-01".into(),
                child_sex: 1,
                birth_order: 1,
                child_name: String::new(),
                place_of_delivery: "医院".into(),
            }),
            _ => pb::notice::Details::Contraception(pb::ContraceptionDetails {
                method: 1,
                performed_on: "2023-06-01".into(),
                provider: "站".into(),
            }),
        }),
        created_at: Some(migrex::domain::ts_to_pb(datetime!(2023-06-02 00:00 UTC))),
        ..Default::default()
    };
    NoticeContent::parse(
        &n,
        &ParseContext {
            today: date!(2030 - 01 - 01),
        },
    )
    .expect("valid template")
}

/// Three years of history ending now, filled in the order of time: 70% inbound; deadlines of 15 or 30
/// calendar days ending 23:59:59 Beijing time; nine in ten receipts within
/// 20 days, most feedback within 40 days after that; nothing stamped after now.
pub async fn fill(store: &Store, total: usize, now: OffsetDateTime) {
    let templates: Vec<NoticeContent> = (0..64).map(template).collect();
    let mut rng = fastrand::Rng::with_seed(7);
    let span = 3 * 365 * 86_400_000_000i64;
    let start = now - Duration::microseconds(span);
    let beijing = time::UtcOffset::from_hms(8, 0, 0).expect("offset");
    let t0 = Instant::now();
    let batch = 50_000;
    let feedback = pb::Feedback {
        result: 1,
        answered_by: "clerk".into(),
        ..Default::default()
    };
    for b in 0..total.div_ceil(batch) {
        let mut contents = Vec::new();
        let mut lives = Vec::new();
        for _ in 0..batch.min(total - b * batch) {
            let mut c = templates[rng.usize(0..templates.len())].clone();
            c.id = uuid::Uuid::from_u128(rng.u128(..));
            // In the order of time, as a node receives them: batch b
            // holds the b-th slice of the three years (random within it).
            let slice = span / total.div_ceil(batch) as i64;
            let received = start + Duration::microseconds(b as i64 * slice + rng.i64(0..slice));
            c.created_at = received - Duration::milliseconds(rng.i64(20..600_000));
            let last_day = received.to_offset(beijing).date()
                + Duration::days(if rng.u8(0..10) < 2 { 15 } else { 30 });
            let due = last_day
                .with_hms(23, 59, 59)
                .expect("time")
                .assume_offset(beijing);
            let direction = if rng.u8(0..10) < 7 {
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            let acked = received + Duration::minutes(rng.i64(5..20 * 24 * 60));
            let acked = (rng.u8(0..10) < 9 && acked <= now).then_some(acked);
            let answered = acked
                .map(|a| a + Duration::minutes(rng.i64(30..40 * 24 * 60)))
                .filter(|a| {
                    c.reply_required == migrex::domain::ReplySort::Feedback
                        && rng.u8(0..100) < 85
                        && *a <= now
                });
            let status = match (direction, acked, answered) {
                (_, _, Some(_)) => NoticeStatus::Answered,
                (_, Some(_), None) => NoticeStatus::Acknowledged,
                (Direction::Inbound, None, None) => NoticeStatus::Pending,
                _ => NoticeStatus::Delivered,
            };
            lives.push((direction, status, received, due, acked, answered));
            contents.push(c);
        }
        let rows: Vec<NewNotice> = contents
            .iter()
            .zip(&lives)
            .map(
                |(c, &(direction, status, received, due, acked, answered))| NewNotice {
                    content: c,
                    direction,
                    status,
                    received: Some((received, migrex::calendar::Due::fixed(due))),
                    duplicate_of: None,
                    acknowledged: acked.map(|a| (a, "clerk")),
                    answered: answered.map(|a| (a, &feedback)),
                    proofs: (None, None),
                },
            )
            .collect();
        let mut tx = store.begin().await.expect("begin");
        tx.insert_notices(&rows).await.expect("insert");
        tx.commit().await.expect("commit");
        let done = ((b + 1) * batch).min(total);
        eprintln!(
            "filled {done} of {total} notices ({:.0}/s)",
            done as f64 / t0.elapsed().as_secs_f64()
        );
    }
}

/// The command line `[NOTICES] [FOLDER] …`: how many notices, the folder
/// (defaults given), and the arguments after them.
pub fn args(notices: usize, folder: &str) -> (usize, std::path::PathBuf, Vec<String>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let total = args
        .first()
        .map(|s| s.parse().expect("NOTICES is a number"))
        .unwrap_or(notices);
    let folder = args.get(1).map_or(folder, String::as_str).into();
    (total, folder, args.into_iter().skip(2).collect())
}

/// The node of `folder` (created and filled with `total` notices on the
/// first run), not yet started; its `admin_token` reads the figures.
pub async fn node_with_notices(total: usize, folder: &Path) -> LocalNetwork {
    let tz = migrex::calendar::timezone("Asia/Shanghai").expect("tz");
    let marker = folder.join("filled");
    let filled = std::fs::read_to_string(&marker).ok();
    if filled.as_deref().map(str::trim) == Some(total.to_string().as_str()) {
        eprintln!("re-using {} ({total} notices)", folder.display());
        let (c, _) =
            migrex::config::Config::load(&folder.join("510116/migrex.toml")).expect("config");
        let store = Store::open(folder.join("510116/migrex.db").to_str().expect("path"), tz)
            .await
            .expect("store");
        let token = migrex::setup::create_token(&store, "bench", migrex::auth::Role::Monitor)
            .await
            .expect("token");
        store.close().await;
        LocalNetwork {
            dir: folder.to_path_buf(),
            ca_pem: std::fs::read_to_string(folder.join("ca/ca.crt")).expect("ca"),
            nodes: vec![migrex::setup::LocalNode {
                district: migrex::domain::DistrictCode::parse("d", "510116").expect("code"),
                config_path: folder.join("510116/migrex.toml"),
                admin_token: token,
                exchange_url: format!("https://{}", c.listen),
                desk_url: format!("https://{}", c.desk_listen),
                ops_url: format!("http://{}", c.ops_listen),
                console_url: c
                    .console
                    .as_ref()
                    .map(|k| format!("https://{}", k.listen))
                    .unwrap_or_default(),
                running: None,
            }],
        }
    } else {
        // A fill that was cut off, or of another size, starts again.
        if folder.exists() {
            std::fs::remove_dir_all(folder).expect("remove the old folder");
        }
        std::fs::create_dir_all(folder).expect("folder");
        let net = LocalNetwork::create(folder, &["510116"], Delivery::default())
            .await
            .expect("node");
        let store = Store::open(folder.join("510116/migrex.db").to_str().expect("path"), tz)
            .await
            .expect("store");
        fill(&store, total, OffsetDateTime::now_utc()).await;
        store.close().await;
        std::fs::write(&marker, total.to_string()).expect("marker");
        net
    }
}
