//! `migrex demo`: three districts on loopback exchanging sample notices of
//! all four kinds both ways, with receipts and every feedback result, routed
//! by a signed network directory in which 双流区 is reached only through
//! 四川省's relay (中转, a fourth node); then serving until Ctrl-C so that the
//! staff commands can be tried on them.

use super::render::{Local, kind_name, result_name, status_name};
use crate::clock::SystemClock;
use crate::config::Delivery;
use crate::domain::{Category, ContraceptionMethod, FeedbackResult, NoticeKind, NoticeStatus, Sex};
use crate::pb;
use crate::report::place;
use crate::setup::LocalNetwork;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder for the demo's nodes (default: a new temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Exit after the exchange instead of serving until Ctrl-C.
    #[arg(long)]
    no_wait: bool,
}

const LUOHU: usize = 0;
const SHUANGLIU: usize = 1;
const WANCHENG: usize = 2;
/// The relay (中转) of 双流区: 四川省's node, which holds no notice of its own.
const SICHUAN: usize = 3;
const DISTRICTS: [&str; 4] = ["440303", "510116", "411302", "510000"];

/// A valid 18-character ID number from its first 17 digits.
fn id(first17: &str) -> String {
    crate::domain::IdNumber::complete(first17)
}

fn person(id_number: String, name: &str, hukou: &str, residence: &str) -> Option<pb::Person> {
    Some(pb::Person {
        id_number,
        name: name.into(),
        hukou_district: hukou.into(),
        residence_district: residence.into(),
        ..Default::default()
    })
}

fn days_ago(n: i64) -> String {
    crate::domain::format_date((time::OffsetDateTime::now_utc() - time::Duration::days(n)).date())
}

/// The sample notices: (from node, notice).
fn samples() -> Vec<(usize, pb::Notice)> {
    use pb::notice::Details;
    let n = |dest: &str, kind: NoticeKind, category: Category, subject, details| pb::Notice {
        destination: dest.into(),
        kind: kind as i32,
        category: category as i32,
        subject,
        details: Some(details),
        ..Default::default()
    };
    vec![
        (
            LUOHU,
            n(
                "510116",
                NoticeKind::Birth,
                Category::Notification,
                person(id("51011619950312002"), "王芳", "510116", "440303"),
                Details::Birth(pb::BirthDetails {
                    born_on: days_ago(12),
                    child_sex: Sex::Male as i32,
                    birth_order: 1,
                    child_name: "李明".into(),
                    place_of_delivery: "罗湖区人民医院".into(),
                }),
            ),
        ),
        (
            LUOHU,
            n(
                "510116",
                NoticeKind::Pregnancy,
                Category::VerificationRequest,
                person(id("51011619970705004"), "陈静", "510116", "440303"),
                Details::Pregnancy(pb::PregnancyDetails {
                    confirmed_on: days_ago(5),
                    gestational_weeks: 9,
                    expected_delivery_on: crate::domain::format_date(
                        (time::OffsetDateTime::now_utc() + time::Duration::days(215)).date(),
                    ),
                    within_policy: Some(true),
                }),
            ),
        ),
        (
            LUOHU,
            n(
                "411302",
                NoticeKind::Marriage,
                Category::Notification,
                person(id("41130219930101003"), "张伟", "411302", "440303"),
                Details::Marriage(pb::MarriageDetails {
                    registered_on: days_ago(20),
                    spouse_id_number: id("44030319940220002"),
                    spouse_name: "刘丽".into(),
                    registry_office: "深圳市罗湖区民政局婚姻登记处".into(),
                }),
            ),
        ),
        (
            SHUANGLIU,
            n(
                "440303",
                NoticeKind::Contraception,
                Category::Notification,
                person(id("44030319900808002"), "黄敏", "440303", "510116"),
                Details::Contraception(pb::ContraceptionDetails {
                    method: ContraceptionMethod::IudInsertion as i32,
                    performed_on: days_ago(8),
                    provider: "双流区妇幼保健院".into(),
                }),
            ),
        ),
        (
            SHUANGLIU,
            n(
                "440303",
                NoticeKind::Birth,
                Category::VerificationRequest,
                person(id("44030319920115004"), "周燕", "440303", "510116"),
                Details::Birth(pb::BirthDetails {
                    born_on: days_ago(30),
                    child_sex: Sex::Female as i32,
                    birth_order: 2,
                    child_name: String::new(),
                    place_of_delivery: "双流区第一人民医院".into(),
                }),
            ),
        ),
        (
            WANCHENG,
            n(
                "440303",
                NoticeKind::Marriage,
                Category::VerificationRequest,
                person(id("44030319880404001"), "吴强", "440303", "411302"),
                Details::Marriage(pb::MarriageDetails {
                    registered_on: days_ago(40),
                    spouse_id_number: id("41130219900606002"),
                    spouse_name: "赵娜".into(),
                    registry_office: "南阳市宛城区婚姻登记处".into(),
                }),
            ),
        ),
        (
            WANCHENG,
            n(
                "510116",
                NoticeKind::Contraception,
                Category::VerificationRequest,
                person(id("51011619851010003"), "孙涛", "510116", "411302"),
                Details::Contraception(pb::ContraceptionDetails {
                    method: ContraceptionMethod::MaleSterilization as i32,
                    performed_on: days_ago(15),
                    provider: "宛城区计生服务站".into(),
                }),
            ),
        ),
        (
            SHUANGLIU,
            n(
                "411302",
                NoticeKind::Pregnancy,
                Category::Notification,
                person(id("41130219960909006"), "郑洁", "411302", "510116"),
                Details::Pregnancy(pb::PregnancyDetails {
                    confirmed_on: days_ago(3),
                    gestational_weeks: 12,
                    expected_delivery_on: crate::domain::format_date(
                        (time::OffsetDateTime::now_utc() + time::Duration::days(190)).date(),
                    ),
                    within_policy: None,
                }),
            ),
        ),
    ]
}

/// Polls `get` until `done` holds or `limit` passes.
async fn wait_for(
    net: &LocalNetwork,
    node: usize,
    id: &str,
    done: impl Fn(&pb::Notice) -> bool,
    limit: Duration,
) -> Result<pb::Notice> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut desk = net.desk(node).await?;
    loop {
        if let Ok(r) = desk
            .get_notice(pb::GetNoticeRequest { id: id.into() })
            .await
        {
            let n = r.into_inner();
            if done(&n) {
                return Ok(n);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("notice {id} did not reach the expected state within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(a: DemoArgs) -> Result<()> {
    super::init_tracing("warn");
    let (dir, _keep) = match a.dir {
        Some(d) => (d, None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("migrex-demo-")
                .tempdir()
                .context("creating a temporary folder")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let delivery = Delivery {
        backoff_initial_ms: 100,
        backoff_max_ms: 2000,
        idle_poll_ms: 1000,
        ..Delivery::default()
    };
    let mut net = LocalNetwork::create(&dir, &DISTRICTS, delivery).await?;
    // The nodes find each other through the signed network directory, as a
    // national network does, not through routes added by hand.
    let directory = net.publish_directory(&net.network_toml(1, &[(SHUANGLIU, SICHUAN)]))?;
    net.route_by_directory(5)?;
    for i in 0..DISTRICTS.len() {
        net.start_node(i, Arc::new(SystemClock)).await?;
    }
    println!(
        "migrex demo: three district nodes and a provincial relay on loopback, folder {}\n",
        dir.display()
    );
    for n in &net.nodes {
        println!(
            "  {}  exchange {}  desk {}  ops {}",
            place(n.district.as_str()),
            n.exchange_url,
            n.desk_url,
            n.ops_url
        );
    }
    println!(
        "\n  Routes: the signed network directory (通讯录) {}, serial {}, {} districts,\n  each node's certificate pinned; no route added by hand. {} is reached only\n  through the relay (中转) of {}: everything to and from it passes there.\n  Print the directory with\n  migrex directory show {} --ca-cert {}",
        net.directory_path().display(),
        directory.serial,
        directory.districts.len(),
        place(DISTRICTS[SHUANGLIU]),
        place(DISTRICTS[SICHUAN]),
        net.directory_path().display(),
        dir.join("ca").join("ca.crt").display()
    );

    println!("\n1. Staff register notices (登记通报/协查); each is committed, then delivered:");
    let mut sent = Vec::new();
    for (from, notice) in samples() {
        let n = net
            .desk(from)
            .await?
            .submit_notice(pb::SubmitNoticeRequest {
                notice: Some(notice),
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner();
        println!(
            "  {} → {}  {:<13} {:<20} {}",
            place(&n.origin),
            place(&n.destination),
            kind_name(n.kind),
            Category::try_from(n.category)
                .map(|c| c.as_str_name())
                .unwrap_or("?"),
            n.id
        );
        sent.push((from, n));
    }
    let index_of = |code: &str| {
        DISTRICTS
            .iter()
            .position(|d| *d == code)
            .expect("demo district")
    };
    for (from, n) in &sent {
        wait_for(
            &net,
            *from,
            &n.id,
            |x| x.received_at.is_some(),
            Duration::from_secs(20),
        )
        .await?;
    }
    println!(
        "  all {} delivered: each destination stamped received_at and due_at (时限);\n  those to and from {} went through the relay, which tells each origin\n  when its notice arrived (送达回执)",
        sent.len(),
        place(DISTRICTS[SHUANGLIU])
    );

    println!(
        "\n2. Destination clerks sign for notices (签收) and answer verification requests (核查反馈):"
    );
    let results = [
        FeedbackResult::Confirmed,
        FeedbackResult::Corrected,
        FeedbackResult::NotFound,
        FeedbackResult::NotResponsible,
    ];
    let mut next_result = 0;
    let mut withdrawn = None;
    // What each notice's origin will see once the replies arrived (None: left pending).
    let mut expected = vec![None; sent.len()];
    for (i, (_, n)) in sent.iter().enumerate() {
        let dest = index_of(&n.destination);
        let mut desk = net.desk(dest).await?;
        if n.reply_required == pb::ReplySort::Feedback as i32 {
            if i == sent.len() - 2 && withdrawn.is_none() {
                withdrawn = Some(n.id.clone());
                continue;
            }
            let result = results[next_result % results.len()];
            next_result += 1;
            let mut fb = pb::Feedback {
                result: result as i32,
                remarks: "入户核查".into(),
                ..Default::default()
            };
            match result {
                FeedbackResult::Corrected => {
                    fb.corrections
                        .insert("subject.name".into(), "王芳芳".into());
                }
                FeedbackResult::NotResponsible => fb.responsible_district = "510104".into(),
                _ => {}
            }
            desk.submit_feedback(pb::SubmitFeedbackRequest {
                id: n.id.clone(),
                feedback: Some(fb),
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
            expected[i] = Some(NoticeStatus::Answered);
            println!(
                "  {} answers …{} with {}",
                place(&n.destination),
                short(&n.id),
                result.as_str_name()
            );
        } else if i % 4 != 3 {
            desk.acknowledge_notice(pb::AcknowledgeNoticeRequest { id: n.id.clone() })
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
            expected[i] = Some(NoticeStatus::Acknowledged);
            println!("  {} signs for …{}", place(&n.destination), short(&n.id));
        } else {
            println!(
                "  {} leaves …{} pending for now",
                place(&n.destination),
                short(&n.id)
            );
        }
    }
    if let Some(id) = &withdrawn {
        let i = sent.iter().position(|(_, n)| &n.id == id).expect("sent");
        let from = &sent[i].0;
        expected[i] = Some(NoticeStatus::Withdrawn);
        net.desk(*from)
            .await?
            .withdraw_notice(pb::WithdrawNoticeRequest {
                id: id.clone(),
                reason: "登记有误".into(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        println!(
            "  the origin withdraws …{} (撤回) before it is answered",
            short(id)
        );
    }

    println!("\n3. Each notice's journey, as its origin sees it once the replies came back:");
    // One bound for all: a busy machine may take a while to carry every reply back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for ((from, n), want) in sent.iter().zip(&expected) {
        // A withdrawal is waited for at the destination, the replies at the origin.
        let (node, want) = match want {
            Some(NoticeStatus::Withdrawn) => (index_of(&n.destination), NoticeStatus::Withdrawn),
            Some(w) => (*from, *w),
            None => (*from, NoticeStatus::Unspecified),
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let arrived = want == NoticeStatus::Unspecified
            || wait_for(&net, node, &n.id, |x| x.status == want as i32, left)
                .await
                .is_ok();
        let fin = net
            .desk(*from)
            .await?
            .get_notice(pb::GetNoticeRequest { id: n.id.clone() })
            .await?
            .into_inner();
        if !arrived {
            println!("  (the reply to …{} is still on its way)", short(&n.id));
        }
        // The demo's nodes keep Beijing time.
        let fmt = |t: &Option<prost_types::Timestamp>| {
            Local::shanghai().instant(t).unwrap_or_else(|| "-".into())
        };
        println!(
            "  …{} {:<13} {} → {}: queued {} | received {} | due {} | signed {} | {}",
            short(&fin.id),
            kind_name(fin.kind),
            fin.origin,
            fin.destination,
            fmt(&fin.created_at),
            fmt(&fin.received_at),
            Local::shanghai().day(&fin.due_at),
            fmt(&fin.acknowledged_at),
            match &fin.feedback {
                Some(f) => format!(
                    "feedback {} ({})",
                    result_name(f.result),
                    status_name(fin.status)
                ),
                None => status_name(fin.status).to_string(),
            }
        );
    }

    println!("\n4. Pending lists (待办) now:");
    for (i, n) in net.nodes.iter().enumerate().take(SICHUAN) {
        let p = net
            .desk(i)
            .await?
            .list_pending(pb::ListPendingRequest::default())
            .await?
            .into_inner();
        println!(
            "  {}: {} pending",
            place(n.district.as_str()),
            p.notices.len()
        );
    }

    let month = {
        let today = time::OffsetDateTime::now_utc()
            .to_offset(time::macros::offset!(+8))
            .date();
        format!("{}-{:02}", today.year(), today.month() as u8)
    };
    println!(
        "\n5. Timeliness this month ({month}), as each district is assessed (INBOUND: how it answers its peers):"
    );
    for (i, n) in net.nodes.iter().enumerate().take(SICHUAN) {
        let r = net
            .stats(i)
            .await?
            .get_timeliness(pb::GetTimelinessRequest {
                period: month.clone(),
                direction: crate::domain::Direction::Inbound as i32,
                by_peer: true,
                by_kind: false,
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner();
        println!("\n  {}", place(n.district.as_str()));
        super::render::print_table(&r.rows);
    }

    if a.no_wait {
        net.stop_all().await;
        return Ok(());
    }
    // A console account per role and district, passwords made for this run.
    println!(
        "\nThe web console (网页控制台) of each district, in a browser (development certificate: accept it once);\n  one login per role: clerk 办事员 (待办, 登记, 反馈), supervisor 主管 (also 撤回, 审计),\n  monitor 监测 (统计 only, no names), admin 管理员 (also 管理):"
    );
    let roles = [
        ("clerk", crate::auth::Role::Clerk),
        ("supervisor", crate::auth::Role::Supervisor),
        ("monitor", crate::auth::Role::Monitor),
        ("admin", crate::auth::Role::Admin),
    ];
    for (i, n) in net.nodes.iter().enumerate() {
        println!("  {}  {}", place(n.district.as_str()), n.console_url);
        for (name, role) in roles {
            let password = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
            crate::auth::accounts::create_user(
                &net.store(i),
                name,
                role,
                &password,
                time::OffsetDateTime::now_utc(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("      user {name:<10}  password {password}");
        }
    }

    println!("\nThe nodes keep serving. Try, in another terminal:");
    let n0 = &net.nodes[LUOHU];
    println!("  export MIGREX_TOKEN={}", n0.admin_token);
    println!("  migrex pending --config {}", n0.config_path.display());
    println!("  migrex notices --config {}", n0.config_path.display());
    println!(
        "  migrex stats --config {} --period {month} --by peer,kind",
        n0.config_path.display()
    );
    println!("  migrex overdue --config {}", n0.config_path.display());
    println!("  curl {}/readyz", n0.ops_url);
    println!(
        "  curl -s {}/metrics | grep migrex_relay    (the relay's queues, 中转)",
        net.nodes[SICHUAN].ops_url
    );
    for n in &net.nodes[1..] {
        println!(
            "  ({}: config {}, token {})",
            n.district,
            n.config_path.display(),
            n.admin_token
        );
    }
    println!("\nCtrl-C stops the demo.");
    super::wait_for_signal().await;
    println!("stopping …");
    net.stop_all().await;
    Ok(())
}

/// The last 8 characters of an id: enough to tell the demo's notices apart.
fn short(id: &str) -> &str {
    &id[id.len().saturating_sub(8)..]
}
