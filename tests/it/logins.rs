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
