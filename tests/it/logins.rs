//! Console logins under attack (issue 20): on the node's real store (SQLite
//! or PostgreSQL), a burst of concurrent wrong passwords locks the account
//! however they interleave, so the right password after them is refused;
//! an unknown name is refused exactly like a known one, attempt by attempt,
//! locked or not (with the same hashing work: the times are printed).

use crate::common::*;
use migrex::auth::Role;
use migrex::auth::accounts::{LoginError, create_user, login};
use migrex::clock::Clock;
use std::time::Duration;
use time::OffsetDateTime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_passwords_locks_the_account_and_names_tell_nothing() {
    let net = network(&[LUOHU], None).await;
    let store = net.store(0);
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    create_user(&store, "wang.fang", Role::Clerk, "correct-horse-1", now)
        .await
        .unwrap();

    // 60 wrong passwords at once: however they interleave, the count holds.
    let attempts = (0..60).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { login(&store, "wang.fang", &format!("wrong-{i}-xx"), now).await })
    });
    for a in attempts {
        assert!(matches!(a.await.unwrap(), Err(LoginError::Refused)));
    }
    let after = login(&store, "wang.fang", "correct-horse-1", now).await;
    assert!(
        matches!(after, Err(LoginError::Refused)),
        "the right password after the burst is refused: the account is locked"
    );
    let user = store.find_user("wang.fang").await.unwrap().unwrap();
    assert_eq!(
        user.locked_until,
        Some(now + time::Duration::minutes(1)),
        "{user:?}"
    );
    // Each wrong password after a lock locks it twice as long.
    let t1 = now + time::Duration::minutes(1);
    let wrong = login(&store, "wang.fang", "still-wrong-1", t1).await;
    assert!(matches!(wrong, Err(LoginError::Refused)));
    let user = store.find_user("wang.fang").await.unwrap().unwrap();
    assert_eq!(user.locked_until, Some(t1 + time::Duration::minutes(2)));
    let t2 = t1 + time::Duration::minutes(2);
    let wrong = login(&store, "wang.fang", "still-wrong-2", t2).await;
    assert!(matches!(wrong, Err(LoginError::Refused)));
    let user = store.find_user("wang.fang").await.unwrap().unwrap();
    assert_eq!(user.locked_until, Some(t2 + time::Duration::minutes(4)));
    let early = login(
        &store,
        "wang.fang",
        "correct-horse-1",
        t2 + time::Duration::minutes(3),
    )
    .await;
    assert!(matches!(early, Err(LoginError::Refused)), "still locked");
    // The lock runs out; then the right password opens a session.
    let later = t2 + time::Duration::minutes(4);
    assert!(
        login(&store, "wang.fang", "correct-horse-1", later)
            .await
            .is_ok()
    );

    // An unknown name and a known one, attempt by attempt: the same answer
    // (also once the known one is locked), and about the same time.
    let mut timings = (Duration::ZERO, Duration::ZERO);
    for _ in 0..7 {
        let t = std::time::Instant::now();
        let known = login(&store, "wang.fang", "not-it-at-all", later).await;
        timings.0 += t.elapsed();
        let t = std::time::Instant::now();
        let unknown = login(&store, "nobody.here", "not-it-at-all", later).await;
        timings.1 += t.elapsed();
        assert_eq!(
            known.map(|_| ()).unwrap_err().to_string(),
            unknown.map(|_| ()).unwrap_err().to_string()
        );
    }
    // Both cost one password hash; the time is shown, not asserted (a
    // loaded machine would make any bound flaky).
    let (k, u) = (timings.0.as_secs_f64(), timings.1.as_secs_f64());
    eprintln!("known {k:.3} s, unknown {u:.3} s for 7 attempts each");
}

/// `migrex user …` with `stdin` on standard input.
fn user_cli(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_migrex"))
        .arg("user")
        .args(args)
        .env("MIGREX_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_disabled_changed_reset_and_deleted_and_their_sessions_end() {
    use migrex::auth::accounts::{change_password, session};
    let net = network(&[LUOHU], None).await;
    let store = net.store(0);
    let config = net.nodes[0].config_path.to_str().unwrap().to_string();
    let now = OffsetDateTime::now_utc();
    create_user(&store, "wang.fang", Role::Clerk, "correct-horse-1", now)
        .await
        .unwrap();
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let who = ["--config", config.as_str(), "--name", "wang.fang"];
    let with = |cmd: &str, extra: &[&str]| {
        let mut a = vec![cmd];
        a.extend(who);
        a.extend(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>, stdin: &str| {
        user_cli(&a.iter().map(String::as_str).collect::<Vec<_>>(), stdin)
    };

    // Disabled: the open session is refused at its next click, no login.
    let s = login(&store, "wang.fang", "correct-horse-1", now)
        .await
        .unwrap();
    assert!(session(&store, &s.token, now).await.unwrap().is_some());
    ok(run(with("disable", &[]), ""));
    assert!(session(&store, &s.token, now).await.unwrap().is_none());
    assert!(
        login(&store, "wang.fang", "correct-horse-1", now)
            .await
            .is_err()
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(run(
        vec![
            "list".into(),
            "--config".into(),
            config.clone(),
            "--json".into(),
        ],
        "",
    )))
    .unwrap();
    assert_eq!(listed[0]["disabled"], true, "{listed}");
    ok(run(with("enable", &[]), ""));

    // Another role: sessions end, the next login has it.
    let s = login(&store, "wang.fang", "correct-horse-1", now)
        .await
        .unwrap();
    ok(run(with("set-role", &["--role", "supervisor"]), ""));
    assert!(session(&store, &s.token, now).await.unwrap().is_none());
    let s = login(&store, "wang.fang", "correct-horse-1", now)
        .await
        .unwrap();
    assert_eq!(s.caller.role, Role::Supervisor);

    // A reset password: the old sessions end, the new one must be changed.
    let weak = run(
        with("reset-password", &["--password-stdin"]),
        "1234567890\n",
    );
    assert!(!weak.status.success());
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("common"),
        "{weak:?}"
    );
    ok(run(
        with("reset-password", &["--password-stdin"]),
        "temporary-pass-7\n",
    ));
    assert!(session(&store, &s.token, now).await.unwrap().is_none());
    let s = login(&store, "wang.fang", "temporary-pass-7", now)
        .await
        .unwrap();
    assert!(
        session(&store, &s.token, now)
            .await
            .unwrap()
            .unwrap()
            .must_change_password
    );
    change_password(&store, "wang.fang", "temporary-pass-7", "her-own-pass-42")
        .await
        .unwrap();
    let s = login(&store, "wang.fang", "her-own-pass-42", now)
        .await
        .unwrap();
    assert!(
        !session(&store, &s.token, now)
            .await
            .unwrap()
            .unwrap()
            .must_change_password
    );

    // Deleted: gone, its session with it; an unknown name is named.
    ok(run(with("delete", &[]), ""));
    assert!(session(&store, &s.token, now).await.unwrap().is_none());
    let gone = run(with("unlock", &[]), "");
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("no account is named"),
        "{gone:?}"
    );

    // Names and passwords that are refused at creation.
    for (name, password, why) in [
        ("<script>x", "correct-horse-1", "name"),
        ("li.na", "abcdefghij", "run of characters"),
        ("li.na", "aaaaaaaaaaaa", "repeated"),
    ] {
        let e = create_user(&store, name, Role::Clerk, password, now)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(why), "{name} {password}: {e}");
    }
    create_user(&store, "李娜.2", Role::Clerk, "correct-horse-1", now)
        .await
        .unwrap();
}

/// One HTTPS request to the console from `from`: the status code and the
/// Set-Cookie values and body of the answer.
async fn console_request(
    ca_pem: &str,
    console: &str,
    from: [u8; 4],
    request: String,
) -> (u16, Vec<String>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = console.trim_start_matches("https://");
    let tcp = connect_from(from, addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tls_client(ca_pem, &[b"http/1.1"])
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.ok();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text[9..12].parse().unwrap();
    let cookies = text
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .map(|c| c.split(';').next().unwrap().to_string())
        .collect();
    (status, cookies, text)
}

/// The form token a console page carries.
fn form_token(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string()
}

/// Logs in through the console's form from `from`: the answer's status
/// and body.
async fn console_login(
    ca: &str,
    console: &str,
    from: [u8; 4],
    name: &str,
    password: &str,
) -> (u16, String) {
    let host = console.trim_start_matches("https://");
    let get = format!("GET /login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (_, cookies, page) = console_request(ca, console, from, get).await;
    let csrf = form_token(&page);
    let body = format!("name={name}&password={password}&csrf={csrf}");
    let post = format!(
        "POST /login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nCookie: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        cookies.join("; "),
        body.len()
    );
    let (status, _, text) = console_request(ca, console, from, post).await;
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_guesses_waits_longer_each_time_and_every_failure_is_audited() {
    let clock = migrex::clock::ManualClock::new(time::macros::datetime!(2026-12-07 09:00 +8));
    let net = network(&[LUOHU], Some(clock.clone())).await;
    let store = net.store(0);
    create_user(
        &store,
        "wang.fang",
        Role::Clerk,
        "correct-horse-1",
        clock.now(),
    )
    .await
    .unwrap();
    let (ca, console) = (net.ca_pem.clone(), net.nodes[0].console_url.clone());
    let guesser = [127, 0, 0, 5];

    // Ten free guesses (two at the account, under its lock's five), each
    // refused alike and audited.
    let names: Vec<&str> = (0..10)
        .map(|i| if i % 5 == 0 { "wang.fang" } else { "nobody" })
        .collect();
    for (i, name) in names.iter().enumerate() {
        let (status, _) =
            console_login(&ca, &console, guesser, name, &format!("guess-{i}-xx")).await;
        assert_eq!(status, 401, "guess {i}");
    }
    // The next waits a second: refused without a look at the password,
    // even the right one, and nothing recorded.
    let (status, page) =
        console_login(&ca, &console, guesser, "wang.fang", "correct-horse-1").await;
    assert_eq!(status, 429);
    assert!(page.contains("请 1 秒后再试"), "{page}");
    // Another address is not slowed: the owner logs in.
    let (status, _) = console_login(
        &ca,
        &console,
        [127, 0, 0, 6],
        "wang.fang",
        "correct-horse-1",
    )
    .await;
    assert_eq!(status, 303, "the owner from elsewhere");
    // Once waited, the guesser's next failure doubles the wait.
    clock.advance(time::Duration::seconds(1));
    let (status, _) = console_login(&ca, &console, guesser, "wang.fang", "guess-10-xx").await;
    assert_eq!(status, 401);
    let (status, page) = console_login(&ca, &console, guesser, "nobody", "guess-11-xx").await;
    assert_eq!(status, 429);
    assert!(page.contains("请 2 秒后再试"), "{page}");

    // The access audit holds the eleven checked failures, with the address.
    let cfg = net.nodes[0].config_path.to_str().unwrap().to_string();
    let mut entries: Vec<serde_json::Value> = Vec::new();
    for actor in ["wang.fang", "nobody"] {
        let out = migrex_cli(&[
            "audit", "show", "--config", &cfg, "--token", actor, "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        entries.extend(serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap());
    }
    entries.sort_by_key(|e| e["seq"].as_i64());
    let refused: Vec<_> = entries
        .iter()
        .filter(|e| e["operation"] == "console:login refused")
        .collect();
    assert_eq!(refused.len(), 11, "{entries:?}");
    assert!(refused.iter().all(|e| e["address"] == "127.0.0.5"));
    assert_eq!(
        refused
            .iter()
            .map(|e| e["actor"].as_str().unwrap())
            .collect::<Vec<_>>(),
        names
            .iter()
            .chain(&["wang.fang"])
            .copied()
            .collect::<Vec<_>>()
    );
    let verify = migrex_cli(&["audit", "verify", "--config", &cfg]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_login_form_the_node_showed_logs_in_and_only_once() {
    let net = network(&[LUOHU], None).await;
    let store = net.store(0);
    create_user(
        &store,
        "wang.fang",
        Role::Clerk,
        "correct-horse-1",
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let (ca, console) = (net.ca_pem.clone(), net.nodes[0].console_url.clone());
    let host = console.trim_start_matches("https://").to_string();
    let post = |cookie: &str, csrf: &str| {
        let body = format!("name=wang.fang&password=correct-horse-1&csrf={csrf}");
        format!(
            "POST /login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nCookie: {cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let from = [127, 0, 0, 1];
    // A cookie and a field that merely agree (what a stateless
    // double-submit token accepted): the node never showed that form.
    let forged = "0123456789abcdef0123456789abcdef";
    let (status, _, page) = console_request(
        &ca,
        &console,
        from,
        post(&format!("migrex_login={forged}"), forged),
    )
    .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("登录表单已过期"), "{page}");

    // A form the node showed logs in once; the same form again is refused.
    let get = format!("GET /login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (_, cookies, page) = console_request(&ca, &console, from, get).await;
    let csrf = form_token(&page);
    let form_cookie = cookies
        .iter()
        .find(|c| c.starts_with("migrex_login="))
        .unwrap()
        .clone();
    let (status, set, _) = console_request(&ca, &console, from, post(&form_cookie, &csrf)).await;
    assert_eq!(status, 303);
    assert!(set.iter().any(|c| c.starts_with("migrex_session=")));
    let (status, _, _) = console_request(&ca, &console, from, post(&form_cookie, &csrf)).await;
    assert_eq!(status, 403, "a form is used once");
    // Its token with another form's cookie is refused as well.
    let get = format!("GET /login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (_, other, _) = console_request(&ca, &console, from, get).await;
    let (status, _, _) = console_request(&ca, &console, from, post(&other[0], &csrf)).await;
    assert_eq!(status, 403, "a form token belongs to its own form");

    // An address is shown 30 login forms a minute; the next gets 429 and
    // no form (nothing written for it).
    let get = format!("GET /login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    for i in 0..30 {
        let (status, _, _) = console_request(&ca, &console, [127, 0, 0, 7], get.clone()).await;
        assert_eq!(status, 200, "form {i}");
    }
    let (status, set, page) = console_request(&ca, &console, [127, 0, 0, 7], get).await;
    assert_eq!(status, 429);
    assert!(page.contains("登录页面请求过于频繁"), "{page}");
    assert!(set.is_empty(), "no form cookie: {set:?}");

    // One address holds at most 20 forms (the oldest go first), and a
    // form lives 30 minutes.
    use migrex::auth::accounts::{open_login_form, take_login_form};
    let t0 = OffsetDateTime::now_utc();
    let mut forms = Vec::new();
    for i in 0..25 {
        let at = t0 + time::Duration::seconds(i);
        forms.push(open_login_form(&store, "10.0.0.9", at).await.unwrap());
    }
    let later = t0 + time::Duration::seconds(30);
    for (i, f) in forms.iter().enumerate() {
        let kept = take_login_form(&store, &f.token, later).await.unwrap();
        assert_eq!(kept.is_some(), i >= 5, "form {i}");
    }
    let old = open_login_form(&store, "10.0.0.9", t0).await.unwrap();
    let expired = t0 + time::Duration::minutes(30) + time::Duration::seconds(1);
    assert_eq!(
        take_login_form(&store, &old.token, expired).await.unwrap(),
        None
    );
}
