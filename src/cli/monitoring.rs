//! `migrex stats`, `migrex overdue` and `migrex reconcile`: the figures
//! monitors read, and whether a peer's records agree with ours.

use super::args::{Conn, direction, status};
use super::render::{kind_name, notice_json, pad, print_table, row_json};
use crate::domain::Direction;
use crate::pb;
use anyhow::{Result, bail};
use clap::Args;
use serde_json::{Value, json};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  migrex stats --config n/migrex.toml --period 2026-10\n  migrex stats --config n/migrex.toml --period 2026-Q3 --direction outbound --by peer,kind --json\n\nINBOUND: how this district answers its peers (what it is assessed on); OUTBOUND: how peers answer it.\nRates are absent (-) when nothing was expected yet, never shown as 0% or 100%."
)]
pub struct StatsArgs {
    /// 2026-10 (month), 2026-Q3 (quarter), 2026 (year), or 2026-10-01..2026-10-31.
    #[arg(long)]
    period: String,
    /// inbound (default) or outbound.
    #[arg(long, default_value = "inbound")]
    direction: String,
    /// Group by peer, kind, or peer,kind.
    #[arg(long, default_value = "")]
    by: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args, Debug)]
pub struct OverdueArgs {
    /// inbound, outbound, or both (default).
    #[arg(long, default_value = "both")]
    direction: String,
    /// How many to list (one page).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Continue a listing: the next-page token the previous page printed.
    #[arg(long, default_value = "")]
    page_token: String,
    #[command(flatten)]
    conn: Conn,
}

pub async fn stats(a: StatsArgs) -> Result<()> {
    let by: Vec<String> =
        a.by.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
    if let Some(bad) = by.iter().find(|b| *b != "peer" && *b != "kind") {
        bail!("--by: '{bad}' is not peer, kind or peer,kind");
    }
    let req = pb::GetTimelinessRequest {
        period: a.period.clone(),
        direction: direction("--direction", &a.direction, false)?,
        by_peer: by.iter().any(|b| b == "peer"),
        by_kind: by.iter().any(|b| b == "kind"),
    };
    let r = a
        .conn
        .stats()
        .await?
        .get_timeliness(req)
        .await
        .map_err(status)?
        .into_inner();
    if a.conn.json {
        println!(
            "{}",
            json!({
                "first_day": r.first_day, "last_day": r.last_day,
                "direction": if r.direction == Direction::Outbound as i32 { "OUTBOUND" } else { "INBOUND" },
                "as_of": r.as_of.map(|t| t.seconds),
                "rows": r.rows.iter().map(row_json).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    let dir = if r.direction == Direction::Outbound as i32 {
        "OUTBOUND: how peers answer us"
    } else {
        "INBOUND: how we answer peers"
    };
    println!("timeliness 时效 {}..{}, {dir}", r.first_day, r.last_day);
    print_table(&r.rows);
    Ok(())
}

pub async fn overdue(a: OverdueArgs) -> Result<()> {
    let req = pb::ListOverdueRequest {
        direction: direction("--direction", &a.direction, true)?,
        page_size: a.limit,
        page_token: a.page_token,
    };
    let r = a
        .conn
        .stats()
        .await?
        .list_overdue(req)
        .await
        .map_err(status)?
        .into_inner();
    if a.conn.json {
        let items: Vec<Value> = r
            .notices
            .iter()
            .map(|o| {
                let mut v = notice_json(o.notice.as_ref().expect("notice"));
                v["days_late"] = json!(o.days_late);
                v
            })
            .collect();
        println!(
            "{}",
            json!({"notices": items, "next_page_token": r.next_page_token})
        );
        return Ok(());
    }
    println!(
        "{}  {}  {}  {}  {}  days late 超时天数",
        pad("id", 36),
        pad("dir", 3),
        pad("kind", 13),
        pad("peer", 14),
        pad("due", 10)
    );
    let local = a.conn.local()?;
    for o in &r.notices {
        let n = o.notice.as_ref().expect("notice");
        let inbound = n.direction == Direction::Inbound as i32;
        let peer = if inbound { &n.origin } else { &n.destination };
        let due = local.day(&n.due_at);
        println!(
            "{}  {}  {}  {}  {}  {}",
            pad(&n.id, 36),
            pad(if inbound { "in" } else { "out" }, 3),
            pad(kind_name(n.kind), 13),
            pad(peer, 14),
            pad(&due, 10),
            o.days_late
        );
    }
    if r.notices.is_empty() {
        println!("(none overdue)");
    }
    if !r.next_page_token.is_empty() {
        println!("more: --page-token {}", r.next_page_token);
    }
    Ok(())
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  migrex reconcile --config ./luohu/migrex.toml --peer 510116 --period 2026-10\n  migrex reconcile --config ./luohu/migrex.toml --peer 510116 --period 2026-10 --json\n\nExit status 0: both sides agree; 1: the notices and facts on which they differ are listed (nothing is overwritten)."
)]
pub struct ReconcileArgs {
    /// The peer's district code.
    #[arg(long)]
    peer: String,
    /// The month the notices were received in, YYYY-MM (Beijing time).
    #[arg(long)]
    period: String,
    #[command(flatten)]
    conn: Conn,
}

/// `migrex reconcile`: this node's records of a month compared with the
/// peer's (对账), by the node itself.
pub async fn reconcile(a: ReconcileArgs) -> Result<()> {
    let r = a
        .conn
        .stats()
        .await?
        .reconcile(pb::ReconcileWithRequest {
            peer: a.peer.clone(),
            period: a.period.clone(),
        })
        .await
        .map_err(status)?
        .into_inner();
    if a.conn.json {
        println!(
            "{}",
            json!({
                "peer": r.peer, "period": r.period, "notices": r.notices,
                "round_trips": r.round_trips, "agreed": r.divergent.is_empty(),
                "divergent": r.divergent.iter().map(|d| json!({"notice_id": d.notice_id, "facts": d.facts, "resent": d.resent})).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "reconciliation 对账 with {} for {}: {} notices here, {} round trip(s)",
            r.peer, r.period, r.notices, r.round_trips
        );
        if r.divergent.is_empty() {
            println!("both sides agree (一致)");
        } else {
            println!("{:<38} FACTS THAT DIFFER", "NOTICE");
            for d in &r.divergent {
                let resent = if d.resent.is_empty() {
                    String::new()
                } else {
                    format!(
                        " — {} own reply(ies) the peer lacks sent again (已重发)",
                        d.resent.len()
                    )
                };
                println!("{:<38} {}{resent}", d.notice_id, d.facts.join(", "));
            }
        }
    }
    if !r.divergent.is_empty() {
        bail!(
            "peer {}: {} notice(s) of {} differ; see the list above",
            r.peer,
            r.divergent.len(),
            r.period
        );
    }
    Ok(())
}
