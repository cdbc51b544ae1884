//! The console's forms in a real browser against two real nodes: a
//! supervisor at Luohu registers a birth notice through 登记通报 (a wrong
//! check character first: the page names the field, nothing is stored), a
//! clerk at Shuangliu finds it on top of 待办, signs and answers CORRECTED,
//! and Luohu's notice page shows the answer; CSV and `.xlsx` imports with a
//! bad row store nothing, fixed they store every row; a form carrying
//! another session's token, or none, is refused and changes nothing; the
//! admin creates an account on 管理. Every page is captured at 1366×768.

use crate::common::*;
use crate::console::{Browser, browser};
use fantoccini::Locator;
use migrex::auth::Role;
use migrex::auth::accounts::create_user;
use migrex::domain::{Direction, NoticeStatus};

/// `woman(n)` with a wrong check character.
fn bad_check(n: u32) -> String {
    let good = woman(n);
    let last = good.chars().last().unwrap();
    let wrong = if last == '0' { '1' } else { '0' };
    format!("{}{wrong}", &good[..17])
}

impl Browser {
    async fn type_into(&self, css: &str, text: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn set_value(&self, id: &str, value: &str) {
        self.c
            .execute(
                "document.getElementById(arguments[0]).value = arguments[1]",
                vec![id.into(), value.into()],
            )
            .await
            .unwrap();
    }

    /// Uploads `file` on 批量导入 and waits for the rows' results.
    pub(crate) async fn upload(&self, console: &str, file: &std::path::Path) {
        self.c.goto(&format!("{console}/import")).await.unwrap();
        self.c
            .find(Locator::Id("file"))
            .await
            .unwrap()
            .send_keys(file.to_str().unwrap())
            .await
            .unwrap();
        self.click("#check").await;
        self.until("the import's results", |_, page| {
            page.contains("id=\"results\"") || page.contains("id=\"import-error\"")
        })
        .await;
    }
}

const HEADER: &str = "destination,kind,category,id_number,name,hukou_district,residence_district,event_date,child_sex,birth_order,place_of_delivery";

fn row(id_number: &str, name: &str) -> [String; 11] {
    [
        SHUANGLIU,
        "BIRTH",
        "NOTIFICATION",
        id_number,
        name,
        SHUANGLIU,
        LUOHU,
        "2026-10-05",
        "FEMALE",
        "1",
        "罗湖区人民医院",
    ]
    .map(String::from)
}

fn write_csv(path: &std::path::Path, rows: &[[String; 11]]) {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(&r.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn write_xlsx(path: &std::path::Path, rows: &[[String; 11]]) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in HEADER.split(',').enumerate() {
        sheet.write_string(0, c as u16, h).unwrap();
    }
    for (r, cells) in rows.iter().enumerate() {
        for (c, v) in cells.iter().enumerate() {
            // Staff type numbers as numbers where Excel lets them.
            if c == 9 {
                sheet
                    .write_number(r as u32 + 1, c as u16, v.parse::<f64>().unwrap())
                    .unwrap();
            } else {
                sheet.write_string(r as u32 + 1, c as u16, v).unwrap();
            }
        }
    }
    book.save(path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_register_import_and_answer_notices_through_the_console_forms() {
    let Some(b) = browser().await else { return };
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let (luohu, shuangliu) = (
        net.nodes[0].console_url.clone(),
        net.nodes[1].console_url.clone(),
    );
    let now = time::OffsetDateTime::now_utc();
    create_user(
        &net.store(0),
        "chen.jie",
        Role::Supervisor,
        "supervisor-pass-1",
        now,
    )
    .await
    .unwrap();
    create_user(
        &net.store(0),
        "root.admin",
        Role::Admin,
        "admin-pass-0001",
        now,
    )
    .await
    .unwrap();
    create_user(&net.store(1), "li.na", Role::Clerk, "correct-horse-1", now)
        .await
        .unwrap();
    let outbound = || async {
        net.store(0)
            .count_notices(Direction::Outbound)
            .await
            .unwrap()
    };

    // 登记通报 at Luohu: a wrong check character is named, nothing stored.
    b.login(&luohu, "chen.jie", "supervisor-pass-1").await;
    b.c.goto(&format!("{luohu}/notices/new")).await.unwrap();
    b.type_into("#destination", SHUANGLIU).await;
    b.type_into("#id_number", &bad_check(7)).await;
    let hint = b.text_of("#id-check").await;
    assert!(hint.contains("校验码错误"), "checked as typed: {hint}");
    b.type_into("#name", "赵敏").await;
    b.type_into("#hukou_district", SHUANGLIU).await;
    b.type_into("#residence_district", LUOHU).await;
    b.set_value("event_date", "2026-10-04").await;
    b.click("#child_sex option[value=FEMALE]").await;
    b.type_into("#birth_order", "1").await;
    b.type_into("#place_of_delivery", "罗湖区人民医院").await;
    let policy = b.text_of("#policy-shown").await;
    assert!(
        policy.contains("时限"),
        "the reply policy is shown: {policy}"
    );
    b.shot("register").await;
    b.click("#send").await;
    b.until("the refusal", |_, page| page.contains("id=\"form-error\""))
        .await;
    let refusal = b.text_of("#form-error").await;
    assert!(
        refusal.contains("身份证号") && refusal.contains("校验位"),
        "the field and the rule: {refusal}"
    );
    assert_eq!(outbound().await, 0, "nothing stored");
    b.shot("register-refused").await;
    // Fixed, it is registered and its page opens.
    b.type_into("#id_number", &woman(7)).await;
    assert!(b.text_of("#id-check").await.contains("✓"));
    b.click("#send").await;
    b.until("the new notice's page", |path, _| {
        path.starts_with("/notices/") && path != "/notices/new"
    })
    .await;
    let id = b.path().await.trim_start_matches("/notices/").to_string();
    assert_eq!(outbound().await, 1);
    assert!(b.text_of("#done").await.contains("已登记"));
    let luohu_csrf =
        b.c.execute(
            "return document.querySelector('input[name=csrf]').value",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();

    // At Shuangliu the clerk finds it on top of 待办.
    wait_notice(&net, 1, &id, |_| true).await;
    b.login(&shuangliu, "li.na", "correct-horse-1").await;
    let top =
        b.c.find(Locator::Css("#pending tbody tr"))
            .await
            .unwrap()
            .attr("data-id")
            .await
            .unwrap();
    assert_eq!(top.as_deref(), Some(id.as_str()));
    // Another session's form token (Luohu's) is refused; so is none at all.
    b.set_value_css("#pending tbody tr form input[name=csrf]", &luohu_csrf)
        .await;
    b.click("#pending tbody tr button.sign").await;
    b.until("the refusal", |_, page| {
        page.contains("表单已过期或来源不明")
    })
    .await;
    b.c.goto(&format!("{shuangliu}/pending")).await.unwrap();
    b.c.execute(
        "document.querySelector('#pending tbody tr form input[name=csrf]').remove()",
        vec![],
    )
    .await
    .unwrap();
    b.click("#pending tbody tr button.sign").await;
    b.until("the refusal", |_, page| {
        page.contains("表单已过期或来源不明")
    })
    .await;
    let still = get(&net, 1, &id).await.unwrap();
    assert_eq!(
        still.status,
        NoticeStatus::Pending as i32,
        "nothing changed"
    );
    // Signed and answered with its own forms.
    b.c.goto(&format!("{shuangliu}/pending")).await.unwrap();
    b.click("#pending tbody tr button.sign").await;
    b.until("signed", |_, page| page.contains("已签收")).await;
    b.c.goto(&format!("{shuangliu}/notices/{id}"))
        .await
        .unwrap();
    b.click("#feedback input[value=CORRECTED]").await;
    b.type_into("#feedback textarea[name=remarks]", "入户核查：姓名登记有误")
        .await;
    // The session ends while the form is being filled (its cookie gone):
    // the answer goes to the login page, which brings the clerk back to
    // the notice with everything typed still in the form.
    b.c.delete_cookie("migrex_session").await.unwrap();
    b.click("#send-feedback").await;
    b.until("the login page", |path, page| {
        path == "/login" && page.contains("id=\"login-next\"")
    })
    .await;
    for (field, text) in [("#name", "li.na"), ("#password", "correct-horse-1")] {
        b.type_into(field, text).await;
    }
    b.click("#login").await;
    b.until("back at the notice", |path, _| {
        path == format!("/notices/{id}")
    })
    .await;
    let remarks =
        b.c.find(fantoccini::Locator::Css("#feedback textarea[name=remarks]"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap();
    assert_eq!(remarks.as_deref(), Some("入户核查：姓名登记有误"));
    assert!(
        b.c.find(fantoccini::Locator::Css("#feedback input[value=CORRECTED]"))
            .await
            .unwrap()
            .is_selected()
            .await
            .unwrap()
    );
    // 核实有误 without a correction: refused in Chinese, naming the field,
    // with everything typed still there.
    b.click("#send-feedback").await;
    b.until("the refusal", |_, page| {
        page.contains("id=\"feedback-error\"")
    })
    .await;
    assert!(b.text_of("#feedback-error").await.contains("更正"));
    assert_eq!(
        b.c.find(fantoccini::Locator::Css("#feedback textarea[name=remarks]"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("入户核查：姓名登记有误")
    );
    assert!(
        b.c.find(fantoccini::Locator::Css("#feedback input[value=CORRECTED]"))
            .await
            .unwrap()
            .is_selected()
            .await
            .unwrap()
    );
    b.shot("feedback-refused").await;
    b.click("#field1 option[value='subject.name']").await;
    b.type_into("#value1", "赵敏敏").await;
    b.click("#send-feedback").await;
    b.until("answered", |_, page| page.contains("id=\"answer\""))
        .await;
    assert!(b.text_of("#done").await.contains("已提交核查反馈"));
    b.c.goto(&format!("{shuangliu}/notices/{id}/sheet"))
        .await
        .unwrap();
    assert!(b.text_of("#sheet").await.contains(&woman(7)));
    b.shot("sheet").await;

    // Back at Luohu: ANSWERED with the correction in its timeline.
    wait_notice(&net, 0, &id, |n| n.status == NoticeStatus::Answered as i32).await;
    // (Cookies do not tell ports apart: both consoles are on 127.0.0.1.)
    b.login(&luohu, "chen.jie", "supervisor-pass-1").await;
    b.c.goto(&format!("{luohu}/notices/{id}")).await.unwrap();
    assert_eq!(b.text_of("#status").await, "已反馈");
    assert!(b.text_of("#timeline").await.contains("核实有误"));
    // The whole answer on the origin's side too: the corrected field by its
    // label with the old value and the new, and the remarks.
    let answer = b.text_of("#answer").await;
    assert!(
        answer.contains("姓名") && answer.contains("→ 赵敏敏"),
        "{answer}"
    );
    assert!(answer.contains("入户核查：姓名登记有误"), "{answer}");
    b.shot("notice-answered-at-origin").await;
    // 签名核验: every step of the journey verifies at the origin, and the
    // evidence file downloads (audited, below) and verifies on its own.
    let proof = b.text_of("#proof").await;
    assert!(
        proof.contains("已验证") && proof.contains("送达确认") && proof.contains("核查反馈"),
        "{proof}"
    );
    let file =
        b.c.execute_async(
            &format!(
                "const done = arguments[arguments.length - 1];\
                 fetch('/notices/{id}/evidence').then(r => r.text()).then(done)"
            ),
            vec![],
        )
        .await
        .unwrap();
    let file = migrex::proof::evidence::Evidence::from_bytes(file.as_str().unwrap().as_bytes())
        .expect("the evidence file is in its one form");
    let ca = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(net.ca_pem.as_bytes()).unwrap()
    };
    let checked = file.check(&[ca.to_vec()], &Default::default());
    assert!(checked.len() >= 4, "{checked:?}");
    assert!(checked.iter().all(|c| c.failure.is_none()), "{checked:?}");
    b.phone("notice-verified").await;

    // 批量导入: a CSV with one bad row stores nothing; fixed, both rows.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("births.csv");
    write_csv(&csv, &[row(&woman(11), "甲"), row(&bad_check(12), "乙")]);
    b.upload(&luohu, &csv).await;
    let bad = b.text_of("#results tr[data-line='3']").await;
    assert!(bad.contains("拒绝") && bad.contains("身份证号"), "{bad}");
    assert!(
        b.c.find(Locator::Id("commit")).await.is_err(),
        "no commit offered"
    );
    assert_eq!(outbound().await, 1, "nothing stored");
    b.shot("import-refused").await;
    write_csv(&csv, &[row(&woman(11), "甲"), row(&woman(12), "乙")]);
    b.upload(&luohu, &csv).await;
    b.shot("import-preview").await;
    assert_eq!(outbound().await, 1, "the preview stores nothing");
    b.click("#commit").await;
    b.until("the import", |_, page| page.contains("id=\"import-done\""))
        .await;
    assert!(b.text_of("#import-done").await.contains('2'));
    assert_eq!(outbound().await, 3);
    b.shot("import-done").await;
    // The same with an Excel workbook.
    let xlsx = dir.path().join("births.xlsx");
    write_xlsx(&xlsx, &[row(&woman(13), "丙"), row(&bad_check(14), "丁")]);
    b.upload(&luohu, &xlsx).await;
    let bad = b.text_of("#results tr[data-line='3']").await;
    assert!(bad.contains("拒绝") && bad.contains("身份证号"), "{bad}");
    assert_eq!(outbound().await, 3);
    write_xlsx(&xlsx, &[row(&woman(13), "丙"), row(&woman(14), "丁")]);
    b.upload(&luohu, &xlsx).await;
    b.click("#commit").await;
    b.until("the import", |_, page| page.contains("id=\"import-done\""))
        .await;
    assert_eq!(outbound().await, 5);

    // 已发送 lists them with their status; the first one answered.
    b.c.goto(&format!("{luohu}/sent")).await.unwrap();
    let sent = b.text_of("#sent").await;
    assert!(sent.contains("已反馈") && sent.contains("丁"), "{sent}");
    assert!(!sent.contains(&woman(14)), "masked in the list");
    b.shot("sent").await;
    b.c.goto(&format!("{luohu}/stats")).await.unwrap();
    b.shot("stats-supervisor").await;
    // 审计: who looked at the person of the answered notice.
    b.c.goto(&format!("{luohu}/audit")).await.unwrap();
    b.type_into("#audit-subject", &woman(14)).await;
    b.click("#audit-search").await;
    b.until("the audit", |_, page| page.contains("id=\"audit\""))
        .await;
    let trail = b.text_of("#audit").await;
    assert!(
        trail.contains("登记通报") && trail.contains("chen.jie"),
        "{trail}"
    );
    // The evidence file's download is on the answered notice's trail.
    b.c.goto(&format!("{luohu}/audit")).await.unwrap();
    b.type_into("#audit-subject", &woman(7)).await;
    b.click("#audit-search").await;
    b.until("the audit", |_, page| page.contains("id=\"audit\""))
        .await;
    let trail = b.text_of("#audit").await;
    assert!(trail.contains("下载证据文件"), "{trail}");
    assert!(
        !trail.contains(&woman(14)),
        "the ID number is not shown back"
    );
    b.shot("audit").await;

    // 管理: the admin sees accounts and peers and creates an account.
    b.click("#logout").await;
    b.until("logged out", |path, _| path == "/login").await;
    b.login(&luohu, "root.admin", "admin-pass-0001").await;
    b.c.goto(&format!("{luohu}/admin")).await.unwrap();
    assert!(b.text_of("#peers").await.contains(SHUANGLIU));
    b.type_into("#new-name", "wang.wu").await;
    b.click("#new-role option[value=clerk]").await;
    b.type_into("#new-password", "clerk-password-9").await;
    b.click("#create-user").await;
    b.until("the account", |_, page| {
        page.contains("id=\"admin-message\"")
    })
    .await;
    assert!(b.text_of("#users").await.contains("wang.wu"));
    b.shot("admin").await;
    // The account's life cycle on its row: 停用 asks first, then ends it;
    // an administrator cannot disable themselves; 启用 brings it back.
    b.click("tr[data-name='wang.wu'] button[value=disable]")
        .await;
    b.until("the confirmation", |_, page| {
        page.contains("id=\"confirm-question\"")
    })
    .await;
    assert!(
        b.text_of("#confirm-question")
            .await
            .contains("停用账户 wang.wu")
    );
    b.shot("admin-confirm-disable").await;
    b.click("#confirm").await;
    b.until("disabled", |_, page| page.contains("已停用账户 wang.wu"))
        .await;
    assert!(
        b.text_of("tr[data-name='wang.wu']")
            .await
            .contains("已停用")
    );
    b.click("tr[data-name='root.admin'] button[value=disable]")
        .await;
    b.until("the confirmation", |_, page| {
        page.contains("id=\"confirm-question\"")
    })
    .await;
    b.click("#confirm").await;
    b.until("refused", |_, page| page.contains("不能停用"))
        .await;
    b.click("tr[data-name='wang.wu'] button[value=enable]")
        .await;
    b.until("enabled", |_, page| page.contains("已启用账户 wang.wu"))
        .await;
    b.shot("admin-enabled").await;
    b.phone("admin").await;
    b.c.goto(&format!("{luohu}/password")).await.unwrap();
    b.shot("password").await;
    // Nobody else reaches 管理.
    b.click("#logout").await;
    b.until("logged out", |path, _| path == "/login").await;
    b.login(&luohu, "wang.wu", "clerk-password-9").await;
    let landed = b.path().await;
    if landed == "/login" {
        let page = b.c.source().await.unwrap();
        let start = page.find("<main").unwrap_or(0);
        panic!(
            "the clerk's login was refused: {}",
            page[start..].chars().take(600).collect::<String>()
        );
    }
    // Nor 管理, nor 审计 (supervisors and administrators only).
    for refused in ["/admin", "/audit"] {
        b.c.goto(&format!("{luohu}{refused}")).await.unwrap();
        b.until(&format!("{refused} refused to a clerk"), |_, page| {
            page.contains("出错了")
        })
        .await;
    }
}

impl Browser {
    async fn set_value_css(&self, css: &str, value: &str) {
        self.c
            .execute(
                "document.querySelector(arguments[0]).value = arguments[1]",
                vec![css.into(), value.into()],
            )
            .await
            .unwrap();
    }
}
