//! Timeliness (SPEC.md section 4): receipt and feedback rates, how many of
//! them were on time, what is overdue, reply latency and delivery lag, for
//! the notices received within a period, by peer and/or kind; and the
//! `migrex.v1.Stats` service that serves them.
//!
//! `timeliness` assembles the figures from trigger-kept roll-ups (the fast
//! path, ARCHITECTURE.md "Timeliness figures"); `figures` recounts them
//! notice by notice from the raw cohort (the reference). A randomized test
//! holds the two to exact agreement.

use crate::domain::{Direction, FieldError, NoticeKind, ReplySort};
use crate::pb;
use crate::store::{CohortRow, Counts, Metric, Store, StoreError, micros};
use std::collections::BTreeMap;
use time::{Date, Duration, Month, OffsetDateTime};
use time_tz::PrimitiveDateTimeExt;

/// A reporting period: whole local days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub first: Date,
    pub last: Date,
}

impl Period {
    /// `2026-10`, `2026-Q3`, `2026`, or `2026-10-01..2026-10-31`.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let s = s.trim();
        let bad = || {
            FieldError::new(
                field,
                format!(
                    "{} is not a period (2026-10, 2026-Q3, 2026, or 2026-10-01..2026-10-31)",
                    crate::domain::quoted(s)
                ),
            )
        };
        let month_start = |y: i32, m: u8| {
            Month::try_from(m)
                .ok()
                .and_then(|m| Date::from_calendar_date(y, m, 1).ok())
        };
        let period = if let Some((a, b)) = s.split_once("..") {
            let p = Period {
                first: crate::domain::parse_date(field, a)?,
                last: crate::domain::parse_date(field, b)?,
            };
            if p.last < p.first {
                return Err(FieldError::new(field, "the range ends before it starts"));
            }
            p
        } else if let Some((y, q)) = s.split_once("-Q").or_else(|| s.split_once("-q")) {
            let (y, q): (i32, u8) = (y.parse().map_err(|_| bad())?, q.parse().map_err(|_| bad())?);
            if !(1..=4).contains(&q) {
                return Err(bad());
            }
            let first = month_start(y, 3 * q - 2).ok_or_else(bad)?;
            let next = if q == 4 {
                month_start(y + 1, 1)
            } else {
                month_start(y, 3 * q + 1)
            }
            .ok_or_else(bad)?;
            Period {
                first,
                last: next.previous_day().ok_or_else(bad)?,
            }
        } else if let Some((y, m)) = s.split_once('-') {
            let (y, m): (i32, u8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            let first = month_start(y, m).ok_or_else(bad)?;
            let next = if m == 12 {
                month_start(y + 1, 1)
            } else {
                month_start(y, m + 1)
            }
            .ok_or_else(bad)?;
            Period {
                first,
                last: next.previous_day().ok_or_else(bad)?,
            }
        } else {
            let y: i32 = s.parse().map_err(|_| bad())?;
            Period {
                first: month_start(y, 1).ok_or_else(bad)?,
                last: month_start(y, 12)
                    .ok_or_else(bad)?
                    .replace_day(31)
                    .map_err(|_| bad())?,
            }
        };
        if period.first.year() < 2000 || period.last.year() > 9000 {
            return Err(bad());
        }
        Ok(period)
    }

    /// The month that holds `day`.
    pub fn month_of(day: Date) -> Self {
        let first = day.replace_day(1).expect("day 1 exists");
        let next = (first + Duration::days(31))
            .replace_day(1)
            .expect("day 1 exists");
        Period {
            first,
            last: next.previous_day().expect("a month has days"),
        }
    }

    /// The first and last month (YYYYMM) when the period is whole months.
    pub fn months(&self) -> Option<(i64, i64)> {
        let key = |d: Date| i64::from(d.year()) * 100 + i64::from(u8::from(d.month()));
        (self.first.day() == 1 && (self.last + Duration::days(1)).day() == 1)
            .then(|| (key(self.first), key(self.last)))
    }

    /// The instants `[start, end)` the period covers in `tz`.
    pub fn bounds(&self, tz: &'static time_tz::Tz) -> (OffsetDateTime, OffsetDateTime) {
        let midnight = |d: Date| {
            d.midnight()
                .assume_timezone(tz)
                .take_first()
                .expect("midnight exists in every supported timezone")
        };
        (
            midnight(self.first),
            midnight(self.last + Duration::days(1)),
        )
    }
}

/// Latencies are reported at the resolution the roll-ups keep them:
/// reply latency truncated to tenths of a day, delivery lag truncated to two
/// significant digits of milliseconds. The same buckets are used by the raw
/// recount, so both paths give the same percentiles.
pub mod buckets {
    /// A tenth of a day in microseconds.
    pub const TENTH_US: i64 = 8_640_000_000;

    /// Reply latency (µs) → tenths of a day, truncated toward zero (SQL `/`).
    pub fn reply(us: i64) -> i64 {
        us / TENTH_US
    }

    /// Delivery lag (µs) → milliseconds truncated to two significant digits.
    pub fn lag(us: i64) -> i64 {
        let ms = us / 1000;
        let mut step = 1i64;
        while step < 10_000_000_000 && ms.abs() >= 100 * step {
            step *= 10;
        }
        ms / step * step
    }

    /// A bucket of `metric` back in microseconds.
    pub fn micros(metric: super::Metric, bucket: i64) -> i64 {
        match metric {
            super::Metric::ReplyLatency => bucket * TENTH_US,
            super::Metric::DeliveryLag => bucket * 1000,
        }
    }
}

/// The figures of one group (peer and/or kind) of a cohort: the counts of
/// SPEC.md section 4 and the nearest-rank percentiles (50th, 90th) of reply
/// latency and delivery lag in microseconds, at the resolution of
/// `buckets`. Assembled from the roll-ups by `timeliness` and counted
/// notice by notice by `Figures`; the two agree exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupCounts {
    /// The peer's district, or "" when not grouped by peer.
    pub peer: String,
    /// None when not grouped by kind.
    pub kind: Option<NoticeKind>,
    pub counts: Counts,
    pub reply_latency_us: [Option<i64>; 2],
    pub delivery_lag_us: [Option<i64>; 2],
}

/// The counts as numbers in a fixed order, for sums and differences.
fn cells(c: &mut Counts) -> [&mut u64; 9] {
    [
        &mut c.received,
        &mut c.receipt_expected,
        &mut c.acknowledged,
        &mut c.acknowledged_timely,
        &mut c.feedback_expected,
        &mut c.answered,
        &mut c.answered_timely,
        &mut c.overdue_open,
        &mut c.not_yet_due,
    ]
}

impl GroupCounts {
    /// Adds the counts of `more` (latencies are not added).
    pub fn absorb(&mut self, mut more: Counts) {
        for (mine, v) in cells(&mut self.counts).into_iter().zip(cells(&mut more)) {
            *mine += *v;
        }
    }

    /// Replaces the `assumed` contribution of some notices by their `truth`.
    pub fn swap(&mut self, mut truth: Counts, mut assumed: Counts) {
        let pairs = cells(&mut truth).into_iter().zip(cells(&mut assumed));
        for (mine, (plus, minus)) in cells(&mut self.counts).into_iter().zip(pairs) {
            *mine = *mine + *plus - *minus;
        }
    }
}

/// The figures of one group, as SPEC.md section 4 defines them, counted
/// notice by notice: the reference that the roll-up fast path must agree
/// with exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    counts: Counts,
    /// Reply latency buckets (tenths of a day) of the notices replied.
    reply_latency: Vec<i64>,
    /// Delivery lag buckets (milliseconds, two significant digits).
    delivery_lag: Vec<i64>,
}

/// A rate, absent when its denominator is empty (never 0% or 100% then).
pub fn rate(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The nearest-rank percentile `num/den` of `values` (rank ⌈n·num/den⌉,
/// in integers so that the histogram walk picks the very same rank); None when empty.
pub fn percentile(values: &[i64], num: i64, den: i64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len() as i64;
    Some(v[(rank(n, num, den) - 1) as usize])
}

fn rank(n: i64, num: i64, den: i64) -> i64 {
    ((n * num + den - 1) / den).clamp(1, n)
}

/// The nearest-rank percentile of a histogram (bucket → count, ascending).
fn histogram_percentile(h: &BTreeMap<i64, i64>, num: i64, den: i64) -> Option<i64> {
    let n: i64 = h.values().sum();
    if n <= 0 {
        return None;
    }
    let want = rank(n, num, den);
    let mut seen = 0;
    h.iter().find_map(|(b, c)| {
        seen += c;
        (seen >= want).then_some(*b)
    })
}

impl Figures {
    /// Adds one cohort notice, as things stand at report time `t`.
    pub fn add(&mut self, n: &CohortRow, t: OffsetDateTime) {
        self.add_at(n, t, t)
    }

    /// Adds one cohort notice with deadlines judged at `t_due` and replies
    /// counted when made by `t_reply`.
    fn add_at(&mut self, n: &CohortRow, t_due: OffsetDateTime, t_reply: OffsetDateTime) {
        let c = &mut self.counts;
        let upto = |x: Option<OffsetDateTime>| x.filter(|x| *x <= t_reply);
        let answered = upto(n.answered_at);
        // Feedback counts as receipt.
        let acknowledged = upto(n.acknowledged_at).or(answered);
        let due = n.due_at <= t_due;
        c.received += 1;
        if acknowledged.is_some() || due {
            c.receipt_expected += 1;
        }
        if let Some(a) = acknowledged {
            c.acknowledged += 1;
            if a <= n.due_at {
                c.acknowledged_timely += 1;
            }
        }
        let needs_feedback = n.reply_required == ReplySort::Feedback;
        if needs_feedback && (answered.is_some() || due) {
            c.feedback_expected += 1;
        }
        if let Some(a) = answered {
            c.answered += 1;
            if a <= n.due_at {
                c.answered_timely += 1;
            }
        }
        let reply = if needs_feedback {
            answered
        } else {
            acknowledged
        };
        match reply {
            Some(r) => self
                .reply_latency
                .push(buckets::reply(micros(r) - micros(n.received_at))),
            None if due => c.overdue_open += 1,
            None => c.not_yet_due += 1,
        }
        self.delivery_lag
            .push(buckets::lag(micros(n.received_at) - micros(n.created_at)));
    }

    pub fn finish(self, peer: String, kind: Option<NoticeKind>) -> GroupCounts {
        let p = |v: &[i64], metric| {
            [
                percentile(v, 1, 2).map(|b| buckets::micros(metric, b)),
                percentile(v, 9, 10).map(|b| buckets::micros(metric, b)),
            ]
        };
        GroupCounts {
            peer,
            kind,
            counts: self.counts,
            reply_latency_us: p(&self.reply_latency, Metric::ReplyLatency),
            delivery_lag_us: p(&self.delivery_lag, Metric::DeliveryLag),
        }
    }
}

/// The figures of `direction` for `period` at report time `t`: from the
/// roll-ups when the period is made of whole months of the store's timezone
/// (the fast path), else recounted from the cohort's notices.
///
/// The roll-ups count every stored reply; the notices with a reply stamped
/// after `t` (none when `t` is now) are read one by one and their
/// contribution swapped for the one they have at `t`.
pub async fn timeliness(
    store: &Store,
    period: Period,
    direction: Direction,
    t: OffsetDateTime,
    by_peer: bool,
    by_kind: bool,
) -> Result<Vec<GroupCounts>, StoreError> {
    let (from, to) = period.bounds(store.timezone());
    let Some((first, last)) = period.months() else {
        let cohort = store.cohort(direction, from, to).await?;
        return Ok(figures(&cohort, t, by_peer, by_kind));
    };
    let mut merged: BTreeMap<GroupKey, GroupCounts> = BTreeMap::new();
    for c in store.rollup_counts(direction, first, last, t).await? {
        let key = group_key(c.peer.clone(), c.kind, by_peer, by_kind);
        merged
            .entry(key.clone())
            .or_insert_with(|| GroupCounts {
                peer: key.0,
                kind: key.1,
                ..Default::default()
            })
            .absorb(c.counts);
    }
    let mut groups: Vec<GroupCounts> = merged
        .into_values()
        .filter(|g| g.counts.received > 0)
        .collect();
    let mut hist: BTreeMap<GroupKey, [BTreeMap<i64, i64>; 2]> = BTreeMap::new();
    for h in store.rollup_latency(direction, first, last).await? {
        let key = group_key(h.peer, h.kind, by_peer, by_kind);
        let into = &mut hist.entry(key).or_default()[h.metric as usize - 1];
        for (bucket, n) in h.buckets {
            *into.entry(bucket).or_default() += n;
        }
    }
    for n in store.replied_after(direction, from, to, t).await? {
        let key = group_key(n.peer.clone(), n.kind, by_peer, by_kind);
        let (truth, assumed) = as_of(&n, t);
        let Some(g) = groups
            .iter_mut()
            .find(|g| (g.peer.as_str(), g.kind) == (key.0.as_str(), key.1))
        else {
            return Err(StoreError::Corrupt(format!(
                "timeliness roll-up lacks the group of peer '{}' kind {:?}",
                n.peer, n.kind
            )));
        };
        g.swap(truth.counts, assumed.counts);
        let h = &mut hist.entry(key).or_default()[0];
        for b in truth.reply_latency {
            *h.entry(b).or_default() += 1;
        }
        for b in assumed.reply_latency {
            *h.entry(b).or_default() -= 1;
        }
    }
    for g in &mut groups {
        if let Some([reply, lag]) = hist.get(&(g.peer.clone(), g.kind)) {
            let p = |h, metric| {
                [
                    histogram_percentile(h, 1, 2).map(|b| buckets::micros(metric, b)),
                    histogram_percentile(h, 9, 10).map(|b| buckets::micros(metric, b)),
                ]
            };
            g.reply_latency_us = p(reply, Metric::ReplyLatency);
            g.delivery_lag_us = p(lag, Metric::DeliveryLag);
        }
    }
    Ok(groups)
}

/// A notice replied after report time `t`: what it counts at `t`, and what
/// the roll-ups count for it (every stored reply made).
fn as_of(n: &CohortRow, t: OffsetDateTime) -> (Figures, Figures) {
    let end_of_time = time::macros::datetime!(9999-12-31 23:59:59 UTC);
    let (mut truth, mut assumed) = (Figures::default(), Figures::default());
    truth.add_at(n, t, t);
    assumed.add_at(n, t, end_of_time);
    (truth, assumed)
}

/// The totals of `direction` for each month of `period` (whole months) at
/// report time `t`, keyed YYYYMM: each what `timeliness` gives for that
/// month alone, without grouping or latencies, from one read of the
/// roll-ups (the twelve months' chart). Months without notices are absent.
pub async fn month_totals(
    store: &Store,
    period: Period,
    direction: Direction,
    t: OffsetDateTime,
) -> Result<BTreeMap<i64, GroupCounts>, StoreError> {
    let Some((first, last)) = period.months() else {
        return Err(StoreError::Unsupported("month totals are of whole months"));
    };
    let mut months: BTreeMap<i64, GroupCounts> = BTreeMap::new();
    for c in store.rollup_counts(direction, first, last, t).await? {
        months.entry(c.month).or_default().absorb(c.counts);
    }
    let (from, to) = period.bounds(store.timezone());
    for n in store.replied_after(direction, from, to, t).await? {
        let (truth, assumed) = as_of(&n, t);
        months
            .entry(crate::calendar::month_key(store.timezone(), n.received_at))
            .or_default()
            .swap(truth.counts, assumed.counts);
    }
    months.retain(|_, g| g.counts.received > 0);
    Ok(months)
}

/// A group of a report: the peer ("" for all) and the kind (None for all).
type GroupKey = (String, Option<NoticeKind>);

fn group_key(peer: String, kind: NoticeKind, by_peer: bool, by_kind: bool) -> GroupKey {
    (
        if by_peer { peer } else { String::new() },
        by_kind.then_some(kind),
    )
}

/// The groups of a report counted notice by notice from a cohort (the raw
/// recount), in order of peer then kind.
pub fn figures(
    cohort: &[CohortRow],
    t: OffsetDateTime,
    by_peer: bool,
    by_kind: bool,
) -> Vec<GroupCounts> {
    let mut groups: BTreeMap<GroupKey, Figures> = BTreeMap::new();
    for n in cohort {
        groups
            .entry(group_key(n.peer.clone(), n.kind, by_peer, by_kind))
            .or_default()
            .add(n, t);
    }
    groups
        .into_iter()
        .map(|((peer, kind), f)| f.finish(peer, kind))
        .collect()
}

/// The wire rows of a report; a single empty row when not grouped and nothing was received.
pub fn rows(groups: &[GroupCounts], by_peer: bool, by_kind: bool) -> Vec<pb::TimelinessRow> {
    if groups.is_empty() && !by_peer && !by_kind {
        return vec![row(&GroupCounts::default())];
    }
    groups.iter().map(row).collect()
}

fn row(g: &GroupCounts) -> pb::TimelinessRow {
    let days = |us: Option<i64>| us.map(|v| v as f64 / 86_400_000_000.0);
    let seconds = |us: Option<i64>| us.map(|v| v as f64 / 1_000_000.0);
    let c = &g.counts;
    pb::TimelinessRow {
        peer: g.peer.clone(),
        kind: g.kind.map_or(0, |k| k as i32),
        received: c.received,
        receipt_expected: c.receipt_expected,
        acknowledged: c.acknowledged,
        acknowledged_timely: c.acknowledged_timely,
        receipt_rate: rate(c.acknowledged, c.receipt_expected),
        timely_receipt_rate: rate(c.acknowledged_timely, c.receipt_expected),
        feedback_expected: c.feedback_expected,
        answered: c.answered,
        answered_timely: c.answered_timely,
        feedback_rate: rate(c.answered, c.feedback_expected),
        timely_feedback_rate: rate(c.answered_timely, c.feedback_expected),
        overdue_open: c.overdue_open,
        not_yet_due: c.not_yet_due,
        reply_latency_median_days: days(g.reply_latency_us[0]),
        reply_latency_p90_days: days(g.reply_latency_us[1]),
        delivery_lag_median_seconds: seconds(g.delivery_lag_us[0]),
        delivery_lag_p90_seconds: seconds(g.delivery_lag_us[1]),
        // Named by the node, which knows the division-code changes
        // (`service::reports::Report::rows`).
        successor: String::new(),
        successor_since: String::new(),
    }
}

/// The kind's name in a report, or "all".
pub fn kind_label(kind: i32) -> &'static str {
    if kind == 0 {
        "all"
    } else {
        NoticeKind::try_from(kind)
            .map(|k| k.as_str_name())
            .unwrap_or("?")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn periods_parse_to_whole_days() {
        let cases = [
            ("2026-10", date!(2026 - 10 - 01), date!(2026 - 10 - 31)),
            ("2026-02", date!(2026 - 02 - 01), date!(2026 - 02 - 28)),
            ("2026-12", date!(2026 - 12 - 01), date!(2026 - 12 - 31)),
            ("2026-Q3", date!(2026 - 07 - 01), date!(2026 - 09 - 30)),
            ("2026-Q4", date!(2026 - 10 - 01), date!(2026 - 12 - 31)),
            ("2026", date!(2026 - 01 - 01), date!(2026 - 12 - 31)),
            (
                "2026-10-05..2026-10-09",
                date!(2026 - 10 - 05),
                date!(2026 - 10 - 09),
            ),
        ];
        for (input, first, last) in cases {
            assert_eq!(
                Period::parse("period", input).unwrap(),
                Period { first, last },
                "{input}"
            );
        }
        for bad in [
            "2026-13",
            "2026-Q5",
            "10/2026",
            "2026-10-09..2026-10-01",
            "",
        ] {
            assert_eq!(
                Period::parse("period", bad).unwrap_err().field,
                "period",
                "{bad}"
            );
        }
        let tz = time_tz::timezones::get_by_name("Asia/Shanghai").unwrap();
        let (from, to) = Period::parse("period", "2026-10").unwrap().bounds(tz);
        assert_eq!(
            (from, to),
            (
                datetime!(2026-10-01 00:00 +8),
                datetime!(2026-11-01 00:00 +8)
            )
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v = [5, 1, 3, 2, 4, 6, 7, 8, 9, 10];
        assert_eq!(percentile(&v, 1, 2), Some(5));
        assert_eq!(percentile(&v, 9, 10), Some(9));
        assert_eq!(percentile(&v[..9], 1, 2), Some(5), "rank ⌈4.5⌉ = 5");
        assert_eq!(percentile(&v[..9], 9, 10), Some(9), "rank ⌈8.1⌉ = 9");
        assert_eq!(percentile(&[25], 9, 10), Some(25));
        assert_eq!(percentile(&[], 1, 2), None);
    }

    #[test]
    fn an_empty_denominator_gives_no_rate() {
        let rows = rows(
            &figures(&[], datetime!(2026-11-01 00:00 UTC), false, false),
            false,
            false,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].received, 0);
        assert_eq!(
            (
                rows[0].receipt_rate,
                rows[0].feedback_rate,
                rows[0].timely_feedback_rate
            ),
            (None, None, None)
        );
        assert_eq!(rows[0].reply_latency_median_days, None);
    }
}
