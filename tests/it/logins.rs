//! Console logins under attack (issue 20): on the node's real store (SQLite
//! or PostgreSQL), a burst of concurrent wrong passwords locks the account
//! however they interleave, so the right password after them is refused;
//! an unknown name is refused exactly like a known one, attempt by attempt,
//! locked or not (with the same hashing work: the times are printed).

use crate::common::*;
use migrex::auth::Role;
use migrex::auth::accounts::{LoginError, create_user, login};
use std::time::Duration;
use time::OffsetDateTime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_passwords_locks_the_account_and_names_tell_nothing() {
    let net = network(&[LUOHU], None).await;
    let store = net.store(0);
    let now = OffsetDateTime::now_utc();
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
    assert!(user.locked_until.is_some_and(|u| u > now), "{user:?}");
    // The lock runs out; then the right password opens a session.
    let later = now + time::Duration::minutes(16);
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
