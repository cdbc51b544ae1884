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
use std::time::Duration;

impl Browser {
    /// The page's visible text holds no English word (three letters or
    /// more) but file formats' names and those in `allowed` (account names).
    async fn no_english(&self, page: &str, allowed: &[&str]) {
        let text = self
            .c
            .execute("return document.body.innerText;", vec![])
            .await
            .unwrap();
        let text = text.as_str().unwrap_or_default().to_string();
        let english: Vec<&str> = text
            .split(|c: char| !c.is_ascii_alphabetic())
            // File formats are called by their names: Excel, CSV.
            .filter(|w| w.len() >= 3 && !["Excel", "CSV", "xlsx", "csv"].contains(w))
            .filter(|w| !allowed.iter().any(|a| a.contains(w)))
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
    // The nodes' clock, moved to let a session expire and a deadline pass.
    let clock = migrex::clock::ManualClock::new(time::OffsetDateTime::now_utc());
    let net = network(&[LUOHU, SHUANGLIU], Some(clock.clone())).await;
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

    // One answered CORRECTED with a correction and remarks, a little later.
    clock.advance(time::Duration::minutes(5));
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

    // 批量导入 at Luohu: an .xlsx with Chinese headers and values; row 3
    // has two errors, row 4 an ID number Excel stored as a number: every
    // error of every row is listed, nothing is stored.
    b.login(&luohu, "wang.jun", "correct-horse-2").await;
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("生育通报.xlsx");
    let good = |n: u32| [woman(n), "赵丽".into(), "女".into()];
    let mut wrong_check = woman(43);
    let last = wrong_check.pop().unwrap();
    wrong_check.push(if last == '0' { '1' } else { '0' });
    write_chinese_xlsx(
        &book,
        &[
            good(41),
            [wrong_check, "钱红".into(), "未知".into()],
            good(44),
        ],
        Some(2),
    );
    b.upload(&luohu, &book).await;
    let third = b.text_of("#results tr[data-line='3']").await;
    assert!(
        third.contains("身份证号校验位不对") && third.contains("子女性别不是可选的值"),
        "both errors of row 3: {third}"
    );
    let fourth = b.text_of("#results tr[data-line='4']").await;
    assert!(fourth.contains("存成了数字"), "{fourth}");
    let second = b.text_of("#results tr[data-line='2']").await;
    assert!(second.contains("可以登记"), "{second}");
    b.look("import-refused", &who).await;
    let before = net
        .store(0)
        .count_notices(migrex::domain::Direction::Outbound)
        .await
        .unwrap();
    write_chinese_xlsx(&book, &[good(41), good(42), good(44)], None);
    b.upload(&luohu, &book).await;
    b.click("#commit").await;
    b.until("the import", |_, page| page.contains("id=\"import-done\""))
        .await;
    let after = net
        .store(0)
        .count_notices(migrex::domain::Direction::Outbound)
        .await
        .unwrap();
    assert_eq!(after - before, 3);

    // 待办 exported at Shuangliu and read back: every notice awaiting an
    // answer, with its reference and full ID number (a clerk's export).
    b.login(&shuangliu, "li.na", "correct-horse-1").await;
    let total: usize = b.text_of("#count-total").await.parse().unwrap();
    let bytes = b.download("/pending.xlsx").await;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    use calamine::Reader;
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows[0][0], "编号");
    assert!(rows[0].contains(&"孩次".to_string()), "{:?}", rows[0]);
    assert_eq!(
        rows.len() - 1,
        total,
        "one row per notice awaiting an answer"
    );
    let mine = rows
        .iter()
        .find(|r| r[0] == sent[0].reference)
        .expect("the first notice by its reference");
    assert!(mine.contains(&sent[0].subject.clone().unwrap().id_number));

    // A monitor's day: 统计 for last month through the picker, this
    // month's figures, and the monthly report to print.
    create_user(
        &net.store(1),
        "zhou.jian",
        Role::Monitor,
        "correct-horse-3",
        now,
    )
    .await
    .unwrap();
    b.login(&shuangliu, "zhou.jian", "correct-horse-3").await;
    assert_eq!(b.path().await, "/stats");
    let who = ["zhou.jian"];
    b.look("stats", &who).await;
    b.click("#last-month").await;
    let today = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+8));
    let first = today.date().replace_day(1).unwrap().previous_day().unwrap();
    let last_month = format!("{}-{:02}", first.year(), u8::from(first.month()));
    b.until("last month", |_, page| {
        page.contains(&format!("value=\"{last_month}\" selected"))
    })
    .await;
    b.look("stats-last-month", &who).await;
    // A period typed as staff write it is read; a wrong one is said.
    b.c.goto(&format!(
        "{shuangliu}/stats?period={}年{}月",
        first.year(),
        u8::from(first.month())
    ))
    .await
    .unwrap();
    let selected =
        b.c.find(Locator::Css("#period option:checked"))
            .await
            .unwrap()
            .attr("value")
            .await
            .unwrap();
    assert_eq!(selected.as_deref(), Some(last_month.as_str()));
    b.c.goto(&format!("{shuangliu}/stats?period=上个月"))
        .await
        .unwrap();
    assert!(b.text_of("#period-error").await.contains("统计期间"));
    // This month's figures name the notices received (4 + 3 imported).
    b.c.goto(&format!("{shuangliu}/stats")).await.unwrap();
    let figures = b.text_of("#figures").await;
    assert!(
        figures.contains("合计") && figures.contains('7'),
        "{figures}"
    );
    b.c.goto(&format!("{shuangliu}/stats/report?format=print"))
        .await
        .unwrap();
    let report = b.text_of("body").await;
    assert!(
        report.contains("制表单位") && report.contains("双流区"),
        "{report}"
    );
    // An A4 document: looked at as printed, not at phone width.
    b.no_english("report", &who).await;
    b.shot("day-report").await;

    // The session expires in the middle of an answer: the clerk leaves the
    // form for half an hour, sends it, logs in again and sends it with
    // nothing retyped.
    let who = ["li.na", "wang.jun"];
    b.login(&shuangliu, "li.na", "correct-horse-1").await;
    let left = &sent[3];
    b.c.goto(&format!("{shuangliu}/notices/{}", left.id))
        .await
        .unwrap();
    assert!(
        b.c.find(Locator::Css("[data-idle-seconds]")).await.is_ok(),
        "the page knows when the session idles out (a warning before)"
    );
    b.click("#feedback input[value=CONFIRMED]").await;
    b.fill("#feedback textarea[name=remarks]", "已电话核实，情况属实")
        .await;
    clock.advance(time::Duration::minutes(31));
    b.click("#send-feedback").await;
    b.until("the login page", |path, page| {
        path == "/login" && page.contains("id=\"login-next\"")
    })
    .await;
    b.look("login-again", &who).await;
    b.fill("#name", "li.na").await;
    b.fill("#password", "correct-horse-1").await;
    b.click("#login").await;
    b.until("back at the notice", |path, _| {
        path == format!("/notices/{}", left.id)
    })
    .await;
    b.click("#send-feedback").await;
    b.until("answered", |_, page| page.contains("id=\"answer\""))
        .await;
    let answered = get(&net, 1, &left.id).await.unwrap();
    let f = answered.feedback.unwrap();
    assert_eq!(f.remarks, "已电话核实，情况属实", "nothing retyped");
    assert_eq!(f.result, migrex::domain::FeedbackResult::Confirmed as i32);

    // 催办: forty days on, Luohu reminds Shuangliu of one still unanswered;
    // it arrives on Shuangliu's 待办 with its count.
    clock.advance(time::Duration::days(40));
    b.login(&luohu, "wang.jun", "correct-horse-2").await;
    b.c.goto(&format!("{luohu}/sent")).await.unwrap();
    // The page asks first (window.confirm); the clerk says yes.
    b.c.execute(
        "window.confirmed = []; window.confirm = q => { window.confirmed.push(q); return true; };",
        vec![],
    )
    .await
    .unwrap();
    b.click(&format!("#sent tr[data-id='{}'] button.remind", sent[0].id))
        .await;
    b.until("reminded", |path, page| {
        path == "/sent" && page.contains("id=\"done\"")
    })
    .await;
    assert!(b.text_of("#done").await.contains("已催办"));
    b.look("sent-reminded", &who).await;
    // The access audit says what wang.jun did in Chinese, one line per
    // page view with its notices (已发送 showed all seven).
    b.c.goto(&format!("{luohu}/audit")).await.unwrap();
    b.fill("#audit-actor", "wang.jun").await;
    b.click("#audit-search").await;
    b.until("the audit", |_, page| page.contains("id=\"audit\""))
        .await;
    let trail = b.text_of("#audit").await;
    for said in ["浏览已发送", "催办", "登记通报", "查看通报"] {
        assert!(trail.contains(said), "{said} in {trail}");
    }
    let views: Vec<String> = b
        .c
        .execute(
            "return Array.from(document.querySelectorAll('#audit tbody tr')).map(r => r.innerText);",
            vec![],
        )
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        views
            .iter()
            .any(|l| l.contains("浏览已发送") && l.contains("7 条")),
        "one line for a page of seven: {views:?}"
    );
    b.look("audit", &who).await;
    let reminded = &sent[0].id;
    eventually("the reminder at Shuangliu", Duration::from_secs(15), || {
        let store = net.store(1);
        let id = reminded.clone();
        async move {
            let got = store.get_notice(&id).await.unwrap().unwrap();
            (got.life.reminders == 1).then_some(())
        }
    })
    .await;
    b.login(&shuangliu, "li.na", "correct-horse-1").await;
    let row = b
        .text_of(&format!("#pending tr[data-id='{reminded}']"))
        .await;
    assert!(row.contains("被催办 1 次"), "{row}");
    assert!(
        b.c.find(Locator::Id("menu-overdue")).await.is_ok(),
        "超期 in the menu"
    );
    b.look("pending-reminded", &who).await;

    // Answered after Luohu last looked at 已发送: marked 新 there.
    net.desk(1)
        .await
        .unwrap()
        .submit_feedback(migrex::pb::SubmitFeedbackRequest {
            id: reminded.clone(),
            feedback: Some(migrex::pb::Feedback {
                result: migrex::domain::FeedbackResult::Confirmed as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    wait_notice(&net, 0, reminded, |x| x.feedback.is_some()).await;
    clock.advance(time::Duration::minutes(1));
    b.login(&luohu, "wang.jun", "correct-horse-2").await;
    b.c.goto(&format!("{luohu}/sent")).await.unwrap();
    let marked = b
        .c
        .execute(
            "return Array.from(document.querySelectorAll('#sent tr.new-answer')).map(r => r.dataset.id);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        marked,
        serde_json::json!([reminded]),
        "only the answer that came since the last look"
    );
    b.look("sent-new-answer", &["li.na", "wang.jun", "admin"])
        .await;

    // 管理: a token made in the page, shown once, works; revoked after a
    // confirmation, it is refused at once.
    create_user(&net.store(1), "sun.li", Role::Admin, "correct-horse-4", now)
        .await
        .unwrap();
    b.login(&shuangliu, "sun.li", "correct-horse-4").await;
    b.c.goto(&format!("{shuangliu}/admin")).await.unwrap();
    b.fill("#token-name", "市级统计程序").await;
    b.click("#token-role option[value='monitor']").await;
    b.fill("#token-days", "30").await;
    b.click("#create-token").await;
    b.until("the token", |_, page| page.contains("令牌只显示这一次"))
        .await;
    let said = b.text_of("#admin-message").await;
    let token = said.rsplit('：').next().unwrap().trim().to_string();
    assert!(said.contains("监测") && token.len() >= 32, "{said}");
    assert!(b.text_of("#tokens").await.contains("市级统计程序"));
    // An administrator's page, with commands, addresses and the token:
    // looked at, not read for English.
    b.shot("day-admin-token").await;
    b.phone("day-admin-token").await;
    let url = &net.nodes[1].desk_url;
    let mut stats = migrex::client::connect_stats(url, &net.ca_pem, &token)
        .await
        .unwrap();
    stats
        .list_overdue(migrex::pb::ListOverdueRequest::default())
        .await
        .expect("the new token works");
    let id = net
        .store(1)
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "市级统计程序")
        .unwrap()
        .id;
    b.c.goto(&format!("{shuangliu}/admin")).await.unwrap();
    b.c.execute("window.confirm = () => true;", vec![])
        .await
        .unwrap();
    b.click(&format!("#revoke-token-{id}")).await;
    b.until("revoked", |_, page| page.contains("已吊销令牌"))
        .await;
    let e = stats
        .list_overdue(migrex::pb::ListOverdueRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "refused at once");

    // 登记通报 at Luohu: the required fields marked, a wrong check
    // character refused in Chinese naming the field (nothing stored), then
    // the right one registered with its reference.
    b.login(&luohu, "wang.jun", "correct-horse-2").await;
    b.c.goto(&format!("{luohu}/notices/new")).await.unwrap();
    let marked =
        b.c.execute(
            "return Array.from(document.querySelectorAll('#register :required')).map(e => e.name);",
            vec![],
        )
        .await
        .unwrap();
    for name in [
        "destination",
        "id_number",
        "name",
        "event_date",
        "child_sex",
        "birth_order",
    ] {
        assert!(
            marked.as_array().unwrap().iter().any(|m| m == name),
            "{name} is marked required: {marked:?}"
        );
    }
    assert!(
        !marked
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "spouse_name"),
        "another kind's fields are not: {marked:?}"
    );
    let mut wrong = woman(51);
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    let fill_in = |id_number: String| {
        let values = serde_json::json!({
            "destination": "双流区", "id_number": id_number, "name": "孙萍",
            "hukou_district": "510116", "residence_district": "440303",
            "event_date": "2026-10-05", "child_sex": "FEMALE", "birth_order": "1",
            "place_of_delivery": "罗湖区人民医院",
        });
        b.c.execute(
            "const v = arguments[0]; document.getElementById('kind').value = 'BIRTH';
             document.getElementById('kind').dispatchEvent(new Event('change'));
             for (const k in v) { document.querySelector('#register [name=' + k + ']').value = v[k]; }",
            vec![values],
        )
    };
    fill_in(wrong).await.unwrap();
    let before = net
        .store(0)
        .count_notices(migrex::domain::Direction::Outbound)
        .await
        .unwrap();
    b.click("#send").await;
    b.until("the refusal", |_, page| page.contains("id=\"form-error\""))
        .await;
    let refusal = b.text_of("#form-error").await;
    assert!(
        refusal.contains("身份证号") && refusal.contains("校验位"),
        "{refusal}"
    );
    b.look("register-refused", &who).await;
    assert_eq!(
        net.store(0)
            .count_notices(migrex::domain::Direction::Outbound)
            .await
            .unwrap(),
        before,
        "nothing stored"
    );
    fill_in(woman(51)).await.unwrap();
    b.click("#send").await;
    b.until("registered", |_, page| page.contains("id=\"done\""))
        .await;
    assert!(b.text_of("#done").await.contains("已登记"));
    assert!(b.text_of("#reference").await.starts_with("440303-"));
    b.look("registered", &who).await;
}

/// An .xlsx as a clerk fills the Chinese template: headers by label,
/// values in Chinese; row `as_number` (0-based) has its ID number typed
/// as a number.
fn write_chinese_xlsx(path: &std::path::Path, rows: &[[String; 3]], as_number: Option<usize>) {
    let header = [
        "发往地区*",
        "类别*",
        "性质*",
        "身份证号*",
        "姓名",
        "事件日期*",
        "子女性别",
        "孩次",
        "户籍地",
        "现居住地",
        "分娩地点",
    ];
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in header.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for (r, [id, name, sex]) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        let cells = [
            "双流区",
            "生育",
            "通报",
            id,
            name,
            "2026-10-05",
            sex,
            "1",
            "双流区",
            "罗湖区",
            "罗湖区人民医院",
        ];
        for (c, v) in cells.iter().enumerate() {
            if c == 3 && as_number == Some(r as usize - 1) {
                sheet.write_number(r, 3, v.parse::<f64>().unwrap()).unwrap();
            } else {
                sheet.write_string(r, c as u16, *v).unwrap();
            }
        }
    }
    book.save(path).unwrap();
}

impl Browser {
    /// What the console serves at `path`, fetched by the page with its
    /// session (as a download link does).
    async fn download(&self, path: &str) -> Vec<u8> {
        let v = self
            .c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 fetch(arguments[0], {credentials: 'same-origin'})
                   .then(r => r.arrayBuffer())
                   .then(b => done(Array.from(new Uint8Array(b))));",
                vec![path.into()],
            )
            .await
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u8)
            .collect()
    }
}
