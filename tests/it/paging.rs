//! The staff lists page by keyset (`store::Cursor`): walked page by page,
//! 待办 (ListPending) and the notice lists (ListNotices, either direction
//! or both) give every notice exactly once, in their order, even when rows
//! share a time (one batch: one creation time, one deadline) and when a
//! notice leaves the list between two pages; a token the node did not
//! issue is refused by name.

use crate::common::*;
use migrex::domain::Direction;
use migrex::pb;
use std::collections::BTreeSet;
use std::time::Duration;
use tonic::Code;

const N: u32 = 23;

async fn pending_pages(
    desk: &mut migrex::client::Desk,
    size: u32,
    mut between: impl FnMut(&[pb::Notice]) -> Option<String>,
) -> Vec<pb::Notice> {
    let mut out: Vec<pb::Notice> = Vec::new();
    let mut token = String::new();
    loop {
        let r = desk
            .list_pending(pb::ListPendingRequest {
                page_size: size,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.notices.len() <= size as usize);
        out.extend(r.notices);
        if r.next_page_token.is_empty() {
            return out;
        }
        if let Some(id) = between(&out) {
            desk.acknowledge_notice(pb::AcknowledgeNoticeRequest { id })
                .await
                .unwrap();
        }
        token = r.next_page_token;
    }
}

fn ids(list: &[pb::Notice]) -> Vec<String> {
    list.iter().map(|n| n.id.clone()).collect()
}

fn micros(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.expect("timestamp");
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lists_page_by_keyset_and_give_every_notice_once_in_order() {
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    // One batch: every notice has the same creation time, and (delivered
    // together) mostly the same deadline, so the id decides the order.
    let notices: Vec<pb::Notice> = (0..N)
        .map(|i| marriage(SHUANGLIU, woman(i), "2026-10-01"))
        .collect();
    let ids_sent = submit_batch(&mut net.desk(0).await.unwrap(), notices).await;
    let sent: BTreeSet<String> = ids_sent.into_iter().collect();
    assert_eq!(sent.len(), N as usize);
    let mut dest = net.desk(1).await.unwrap();
    eventually("every notice at Shuangliu", Duration::from_secs(30), || {
        let mut d = dest.clone();
        async move {
            let got = d
                .list_pending(pb::ListPendingRequest {
                    page_size: 100,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .notices;
            (got.len() == N as usize).then_some(())
        }
    })
    .await;

    // 待办 in pages of 5; after the first page the clerk signs one notice of
    // the next page (a marriage notice needs only the receipt, so it leaves
    // the list): no page repeats or skips a row for it.
    let mut signed = None;
    let walked = pending_pages(&mut dest, 5, |seen| {
        if signed.is_some() {
            return None;
        }
        let all: Vec<String> = seen.iter().map(|n| n.id.clone()).collect();
        let next = sent.iter().find(|id| !all.contains(id))?.clone();
        signed = Some(next.clone());
        Some(next)
    })
    .await;
    let signed = signed.expect("a notice was signed between pages");
    let walked_ids = ids(&walked);
    let unique: BTreeSet<String> = walked_ids.iter().cloned().collect();
    assert_eq!(unique.len(), walked_ids.len(), "no notice twice");
    let mut expected = sent.clone();
    expected.remove(&signed);
    assert_eq!(
        unique, expected,
        "every unsigned notice, the signed one gone"
    );
    let keys: Vec<(i64, String)> = walked
        .iter()
        .map(|n| (micros(&n.due_at), n.id.clone()))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "oldest deadline first, then id: {keys:?}"
    );

    // 已发送 at Luohu, newest first, in pages of 4; and Shuangliu's list of
    // both directions, pages of 7 (the merge of two index walks).
    let mut origin = net.desk(0).await.unwrap();
    let out = list_all(&mut origin, Direction::Outbound as i32, 4).await;
    assert_eq!(ids(&out).into_iter().collect::<BTreeSet<_>>(), sent);
    assert_eq!(out.len(), N as usize);
    let keys: Vec<(i64, String)> = out
        .iter()
        .map(|n| (micros(&n.created_at), n.id.clone()))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] > w[1]),
        "newest first, then id descending: {keys:?}"
    );
    let both = list_all(&mut dest, 0, 7).await;
    assert_eq!(ids(&both).into_iter().collect::<BTreeSet<_>>(), sent);
    assert_eq!(both.len(), N as usize);

    // A token this node did not issue is refused, naming the field.
    for bad in [
        "5",
        "abc",
        "1_2",
        "9223372036854775807_00000000-0000-0000-0000-000000000000",
    ] {
        let e = dest
            .list_pending(pb::ListPendingRequest {
                page_token: bad.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}");
        assert!(e.message().contains("page_token"), "{}", e.message());
    }
}

/// The ids of the rows of list `table` on the browser's page.
async fn row_ids(b: &crate::console::Browser, table: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for row in
        b.c.find_all(fantoccini::Locator::Css(&format!("#{table} tbody tr")))
            .await
            .unwrap()
    {
        ids.push(row.attr("data-id").await.unwrap().expect("data-id"));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_next_page_links_continue_where_the_page_ended() {
    let Some(b) = crate::console::browser().await else {
        return;
    };
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let notices: Vec<pb::Notice> = (0..55)
        .map(|i| marriage(SHUANGLIU, woman(i), "2026-10-01"))
        .collect();
    let sent: BTreeSet<String> = submit_batch(&mut net.desk(0).await.unwrap(), notices)
        .await
        .into_iter()
        .collect();
    let store = net.store(1);
    eventually("every notice at Shuangliu", Duration::from_secs(30), || {
        let store = store.clone();
        async move {
            let n = store.count_notices(Direction::Inbound).await.ok()?;
            (n == 55).then_some(())
        }
    })
    .await;
    let now = time::OffsetDateTime::now_utc();
    for (i, name) in [(1, "li.na"), (0, "wang.wei")] {
        migrex::auth::accounts::create_user(
            &net.store(i),
            name,
            migrex::auth::Role::Clerk,
            "correct-horse-1",
            now,
        )
        .await
        .unwrap();
    }

    // 待办 at Shuangliu and 已发送 at Luohu: 50 rows, then 下一页 the other 5.
    for (i, name, path, table) in [
        (1, "li.na", "/pending", "pending"),
        (0, "wang.wei", "/sent", "sent"),
    ] {
        let console = net.nodes[i].console_url.clone();
        b.login(&console, name, "correct-horse-1").await;
        b.c.goto(&format!("{console}{path}")).await.unwrap();
        let first = row_ids(&b, table).await;
        assert_eq!(first.len(), 50, "{path}: a full first page");
        b.click("#next-page").await;
        let top = first[0].clone();
        b.until("the next page", |_, page| !page.contains(&top))
            .await;
        let second = row_ids(&b, table).await;
        assert_eq!(second.len(), 5, "{path}: the rest on the second page");
        assert!(
            b.c.find(fantoccini::Locator::Id("next-page"))
                .await
                .is_err(),
            "{path}: no link past the last page"
        );
        let all: BTreeSet<String> = first.iter().chain(&second).cloned().collect();
        assert_eq!(all, sent, "{path}: every notice once over the two pages");
        b.shot(&format!("{table}-page-2")).await;
    }
}
