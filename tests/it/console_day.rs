//! Issue 22's "Done when": a clerk's day in the console, in a real browser
//! against real nodes, every page captured at 1366×768 and 390×844 (no
//! sideways scrolling) and read for English words a clerk would see.
//! Luohu sends; a clerk at Shuangliu signs three notices at once, answers
//! one with a correction and remarks (Luohu sees both), and finds it again
//! by ID number, by name and by its short reference; 已办 lists the day's
//! work.

use crate::common::*;
use crate::console::{Browser, browser};
use fantoccini::Locator;
use migrex::auth::Role;
use migrex::auth::accounts::create_user;
use migrex::domain::NoticeStatus;

impl Browser {
    /// The page's visible text holds no English word (three letters or
    /// more) but those in `allowed` (account names).
    async fn no_english(&self, page: &str, allowed: &[&str]) {
        let text = self
            .c
            .execute("return document.body.innerText;", vec![])
            .await
            .unwrap();
        let text = text.as_str().unwrap_or_default().to_string();
        let english: Vec<&str> = text
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| w.len() >= 3 && !allowed.iter().any(|a| a.contains(w)))
            .collect();
        assert!(english.is_empty(), "{page} shows English: {english:?}");
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Both sizes, and no English.
    async fn look(&self, name: &str, allowed: &[&str]) {
        self.no_english(name, allowed).await;
        self.shot(&format!("day-{name}")).await;
        self.phone(&format!("day-{name}")).await;
    }

    /// The ids of the rows of the table `css`.
    async fn row_ids(&self, css: &str) -> Vec<String> {
        let v = self
            .c
            .execute(
                "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr')).map(r => r.dataset.id);",
                vec![css.into()],
            )
            .await
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_s_day_in_the_console() {
    let Some(b) = browser().await else { return };
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let (luohu, shuangliu) = (
        net.nodes[0].console_url.clone(),
        net.nodes[1].console_url.clone(),
    );
    let now = time::OffsetDateTime::now_utc();
    create_user(&net.store(1), "li.na", Role::Clerk, "correct-horse-1", now)
        .await
        .unwrap();
    create_user(
        &net.store(0),
        "wang.jun",
        Role::Supervisor,
        "correct-horse-2",
        now,
    )
    .await
    .unwrap();
    let names = ["李娟", "张敏", "刘芳", "陈静"];
    let mut sent = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut n = birth(SHUANGLIU, woman(30 + i as u32), "2026-10-03");
        n.subject.as_mut().unwrap().name = name.to_string();
        n.remarks = "请核实孩次".into();
        sent.push(submit(&net, 0, n).await);
    }
    for n in &sent {
        wait_notice(&net, 1, &n.id, |x| x.received_at.is_some()).await;
    }
    let who = ["li.na", "wang.jun"];

    // 待办 with its count in the menu; three ticked and signed at once.
    b.login(&shuangliu, "li.na", "correct-horse-1").await;
    assert_eq!(b.path().await, "/pending");
    assert_eq!(b.text_of("#menu-pending-count").await, "(4)");
    b.look("pending", &who).await;
    for n in &sent[..3] {
        b.click(&format!("#pending tr[data-id='{}'] td.pick input", n.id))
            .await;
    }
    b.click("#sign-selected").await;
    b.until("the batch signed", |path, page| {
        path == "/pending" && page.contains("id=\"done\"")
    })
    .await;
    assert_eq!(b.text_of("#done").await, "已签收 3 条。");
    for n in &sent[..3] {
        let got = get(&net, 1, &n.id).await.unwrap();
        assert_eq!(got.status, NoticeStatus::Acknowledged as i32);
        assert_eq!(got.acknowledged_by, "li.na");
    }
    assert_eq!(
        get(&net, 1, &sent[3].id).await.unwrap().status,
        NoticeStatus::Pending as i32,
        "the one not ticked is left"
    );
    b.look("pending-signed", &who).await;

    // One answered CORRECTED with a correction and remarks.
    let ours = &sent[1];
    b.c.goto(&format!("{shuangliu}/notices/{}", ours.id))
        .await
        .unwrap();
    assert_eq!(b.text_of("#reference").await, ours.reference);
    b.click("#feedback input[value=CORRECTED]").await;
    b.click("#field1 option[value='birth.birth_order']").await;
    b.fill("#value1", "1").await;
    b.fill("#feedback textarea[name=remarks]", "入户核实：系第一孩")
        .await;
    b.click("#send-feedback").await;
    b.until("the answered notice", |_, page| {
        page.contains("id=\"answer\"")
    })
    .await;
    b.look("notice-answered", &who).await;
    // Luohu sees the result, the correction and the remarks.
    wait_notice(&net, 0, &ours.id, |x| {
        x.status == NoticeStatus::Answered as i32
    })
    .await;
    b.login(&luohu, "wang.jun", "correct-horse-2").await;
    b.c.goto(&format!("{luohu}/notices/{}", ours.id))
        .await
        .unwrap();
    let answer = b.text_of("#answer").await;
    for part in ["核实有误", "孩次", "2 → 1", "入户核实：系第一孩", "li.na"] {
        assert!(answer.contains(part), "{part} in {answer}");
    }
    b.look("sent-answer", &who).await;

    // Found again at Shuangliu: by ID number, by name, by reference.
    b.login(&shuangliu, "li.na", "correct-horse-1").await;
    let id_number = ours.subject.clone().unwrap().id_number;
    for q in [id_number.as_str(), "张敏", ours.reference.as_str()] {
        b.c.goto(&format!("{shuangliu}/search")).await.unwrap();
        b.fill("#q", q).await;
        b.click("#search-form button[type=submit]").await;
        b.until("the results", |_, page| {
            page.contains("id=\"found\"") || page.contains("id=\"nothing-found\"")
        })
        .await;
        assert_eq!(
            b.row_ids("#found").await,
            std::slice::from_ref(&ours.id),
            "by {q}"
        );
    }
    b.look("search", &who).await;
    // A wrong check character is said in Chinese, naming the box.
    let mut wrong = id_number.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    b.c.goto(&format!("{shuangliu}/search?q={wrong}"))
        .await
        .unwrap();
    let error = b.text_of("#search-error").await;
    assert!(
        error.contains("查询内容") && error.contains("身份证号"),
        "{error}"
    );
    b.look("search-refused", &who).await;

    // 已办: the answered one first (the latest act), then the two signed.
    b.c.goto(&format!("{shuangliu}/handled")).await.unwrap();
    let ids = b.row_ids("#handled").await;
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[0], ours.id);
    b.look("handled", &who).await;
}
