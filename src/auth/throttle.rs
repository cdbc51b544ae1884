//! Login guesses per source address: after `FREE` failures in a row an
//! address waits before its next try, 1 s doubling to `LONGEST`; a login
//! that succeeds clears its count, and an address quiet for an hour is
//! forgotten. A try made while the address waits is refused without its
//! password being looked at and changes nothing. In memory, per process:
//! at most `KEPT` addresses (the one quiet longest is forgotten first).
//! The accounts' own lock (`accounts::MAX_FAILURES`) stays the limit for a
//! guesser who spreads over many addresses. It also counts the login forms
//! shown to an address (each one a pre-session written to the store): at
//! most `FORMS_PER_MINUTE` a minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use time::{Duration, OffsetDateTime};

/// Failures in a row an address may make before it waits: more than an
/// account's `MAX_FAILURES`, so that an office behind one address is not
/// slowed by a clerk who mistypes, and an account's owner meets its lock
/// first.
pub const FREE: u32 = 10;
/// The longest wait.
pub const LONGEST: Duration = Duration::minutes(5);
const FORGET_AFTER: Duration = Duration::hours(1);
const KEPT: usize = 65_536;

#[derive(Default)]
pub struct LoginThrottle {
    addresses: Mutex<HashMap<IpAddr, Guesses>>,
    /// Login forms shown per address in the current minute: each is a
    /// write to the store, which a stranger must not be able to repeat
    /// at will.
    forms: Mutex<HashMap<IpAddr, (OffsetDateTime, u32)>>,
}

/// Login forms one address may be shown per minute.
pub const FORMS_PER_MINUTE: u32 = 30;

#[derive(Clone, Copy)]
struct Guesses {
    failures: u32,
    last: OffsetDateTime,
}

impl Guesses {
    fn next_try(&self) -> OffsetDateTime {
        if self.failures < FREE {
            return self.last;
        }
        let doublings = (self.failures - FREE).min(16);
        self.last + Duration::seconds(1i64 << doublings).min(LONGEST)
    }
}

impl LoginThrottle {
    /// How long `address` must still wait before it may try at `now`.
    pub fn wait(&self, address: IpAddr, now: OffsetDateTime) -> Option<Duration> {
        let map = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        let next = map.get(&address.to_canonical())?.next_try();
        (next > now).then(|| next - now)
    }

    /// Counts a refused login from `address`.
    pub fn failed(&self, address: IpAddr, now: OffsetDateTime) {
        let mut map = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= KEPT {
            map.retain(|_, g| now - g.last < FORGET_AFTER);
            if map.len() >= KEPT
                && let Some(oldest) = map.iter().min_by_key(|(_, g)| g.last).map(|(a, _)| *a)
            {
                map.remove(&oldest);
            }
        }
        let g = map.entry(address.to_canonical()).or_insert(Guesses {
            failures: 0,
            last: now,
        });
        if now - g.last >= FORGET_AFTER {
            g.failures = 0;
        }
        g.failures = g.failures.saturating_add(1);
        g.last = now;
    }

    /// Whether `address` may be shown one more login form at `now` (at
    /// most `FORMS_PER_MINUTE` a minute); counts it when so.
    pub fn form_allowed(&self, address: IpAddr, now: OffsetDateTime) -> bool {
        let mut map = self.forms.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= KEPT {
            map.retain(|_, (start, _)| now - *start < Duration::minutes(1));
        }
        if map.len() >= KEPT {
            return false;
        }
        let (start, n) = map.entry(address.to_canonical()).or_insert((now, 0));
        if now - *start >= Duration::minutes(1) {
            (*start, *n) = (now, 0);
        }
        *n += 1;
        *n <= FORMS_PER_MINUTE
    }

    /// A login from `address` succeeded: its count starts again.
    pub fn succeeded(&self, address: IpAddr) {
        let mut map = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&address.to_canonical());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_address_is_shown_thirty_login_forms_a_minute() {
        let t = LoginThrottle::default();
        let a = IpAddr::from([10, 0, 0, 7]);
        let now = datetime!(2026-12-07 09:00 +8);
        let shown = (0..40).filter(|_| t.form_allowed(a, now)).count();
        assert_eq!(shown, FORMS_PER_MINUTE as usize);
        assert!(
            t.form_allowed(IpAddr::from([10, 0, 0, 8]), now),
            "another address"
        );
        assert!(
            t.form_allowed(a, now + Duration::minutes(1)),
            "the next minute"
        );
    }

    #[test]
    fn waits_grow_after_the_free_failures_and_a_success_clears_them() {
        let t = LoginThrottle::default();
        let a = IpAddr::from([10, 0, 0, 7]);
        let b = IpAddr::from([10, 0, 0, 8]);
        let mut now = datetime!(2026-12-07 09:00 +8);
        for _ in 0..FREE {
            assert_eq!(t.wait(a, now), None, "the first tries are free");
            t.failed(a, now);
        }
        let mut waits = Vec::new();
        for _ in 0..12 {
            let w = t.wait(a, now).expect("a wait after the free failures");
            waits.push(w.whole_seconds());
            now += w;
            assert_eq!(t.wait(a, now), None, "free again once waited");
            t.failed(a, now);
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(t.wait(b, now), None, "another address is not slowed");
        t.succeeded(a);
        assert_eq!(t.wait(a, now), None);
        // An address quiet for an hour starts again.
        for _ in 0..FREE + 2 {
            t.failed(b, now);
        }
        now += Duration::hours(1);
        t.failed(b, now);
        assert_eq!(t.wait(b, now), None);
    }
}
