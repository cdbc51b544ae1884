//! Working days and deadlines (时限).
//!
//! The official holiday and make-up workday schedule (`schedule`) ships
//! inside the binary (`data/cn-holidays.csv`, 2004–2026); newer years are
//! laid over it from the node's calendar file (`migrex calendar load`),
//! picked up by a running node without a restart. A deadline is counted
//! from the day the destination received the notice (that day not counted)
//! and ends at 23:59:59 of its last day in the node's timezone. A
//! working-day deadline that runs past the last year the schedule covers is
//! counted by the plain week and marked provisional (`Due::provisional`).

mod schedule;

pub use schedule::{BUILTIN_SOURCE, Calendar, MAX_FILE_BYTES, Schedule};

use crate::domain::{Category, NoticeKind, ReplySort, Urgency};
use std::sync::{Arc, RwLock};
use time::{Date, Duration, OffsetDateTime, Time};
use time_tz::{OffsetDateTimeExt, PrimitiveDateTimeExt, Tz};

#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("calendar file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("calendar file {path}, line {line}: {rule}")]
    Line {
        path: String,
        line: usize,
        rule: String,
    },
    #[error("calendar file {path}{}: {rule}", year.map(|y| format!(", year {y}")).unwrap_or_default())]
    Year {
        path: String,
        year: Option<i32>,
        rule: String,
    },
    #[error("timezone '{0}' is not a known IANA timezone name")]
    UnknownTimezone(String),
}

/// How a deadline's days are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayCount {
    Calendar,
    Working,
}

/// One rule of the reply policy: which notices it covers (absent = any),
/// which reply they need, and within how many days.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRule {
    pub category: Option<Category>,
    pub kind: Option<NoticeKind>,
    pub urgency: Option<Urgency>,
    pub reply: ReplySort,
    pub days: u32,
    pub count: DayCount,
}

/// The reply policy: the first matching rule decides.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyPolicy {
    pub rules: Vec<PolicyRule>,
}

impl Default for ReplyPolicy {
    /// The exchange rules districts worked under: urgent verification
    /// requests 15 days, everything else 30 calendar days; verification
    /// requests and birth notices need feedback, other notifications receipt.
    fn default() -> Self {
        let rule = |category, kind, urgency, reply, days| PolicyRule {
            category,
            kind,
            urgency,
            reply,
            days,
            count: DayCount::Calendar,
        };
        ReplyPolicy {
            rules: vec![
                rule(
                    Some(Category::VerificationRequest),
                    None,
                    Some(Urgency::Urgent),
                    ReplySort::Feedback,
                    15,
                ),
                rule(
                    Some(Category::VerificationRequest),
                    None,
                    None,
                    ReplySort::Feedback,
                    30,
                ),
                rule(None, Some(NoticeKind::Birth), None, ReplySort::Feedback, 30),
                rule(None, None, None, ReplySort::Receipt, 30),
            ],
        }
    }
}

impl ReplyPolicy {
    pub fn rule_for(&self, category: Category, kind: NoticeKind, urgency: Urgency) -> &PolicyRule {
        static FALLBACK: PolicyRule = PolicyRule {
            category: None,
            kind: None,
            urgency: None,
            reply: ReplySort::Receipt,
            days: 30,
            count: DayCount::Calendar,
        };
        self.rules
            .iter()
            .find(|r| {
                r.category.is_none_or(|c| c == category)
                    && r.kind.is_none_or(|k| k == kind)
                    && r.urgency.is_none_or(|u| u == urgency)
            })
            .unwrap_or(&FALLBACK)
    }
}

/// The IANA timezone of that name.
pub fn timezone(name: &str) -> Result<&'static Tz, CalendarError> {
    time_tz::timezones::get_by_name(name)
        .ok_or_else(|| CalendarError::UnknownTimezone(name.to_string()))
}

/// The local month of an instant as `YYYYMM` (the key of the timeliness roll-ups).
pub fn month_key(tz: &'static Tz, t: OffsetDateTime) -> i64 {
    let d = t.to_timezone(tz).date();
    i64::from(d.year()) * 100 + i64::from(u8::from(d.month()))
}

/// The node's calendar file: the years laid over the shipped schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarFile {
    pub path: std::path::PathBuf,
    /// Named in the config: it must exist. Otherwise it is the default
    /// place (`holidays.csv` beside the config), and absent means the
    /// shipped schedule alone.
    pub required: bool,
    /// How often a running node reads it again.
    pub refresh: std::time::Duration,
}

impl CalendarFile {
    /// The default file's name, beside the config.
    pub const DEFAULT_NAME: &'static str = "holidays.csv";

    /// The shipped schedule with the file's years laid over it.
    pub fn calendar(&self) -> Result<Calendar, CalendarError> {
        if !self.required && !self.path.exists() {
            return Ok(Calendar::builtin());
        }
        Calendar::with_file(&self.path)
    }
}

/// A deadline as the destination stamps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// 23:59:59 local time of the deadline's last day.
    pub at: OffsetDateTime,
    /// Counted past the last year the holiday schedule covers (by the
    /// plain week): it moves when that year's schedule is loaded.
    pub provisional: bool,
    /// The working days it counts, for a working-day rule: what a
    /// provisional deadline is counted again from.
    pub working_days: Option<u32>,
}

impl Due {
    /// A deadline that is not provisional (calendar days, or given).
    pub fn fixed(at: OffsetDateTime) -> Self {
        Due {
            at,
            provisional: false,
            working_days: None,
        }
    }
}

/// The node's view of time: its timezone, its working-day calendar (which
/// a newer schedule replaces while the node runs) and its reply policy.
#[derive(Debug)]
pub struct Deadlines {
    pub tz: &'static Tz,
    calendar: RwLock<Arc<Calendar>>,
    pub policy: ReplyPolicy,
}

impl Deadlines {
    pub fn new(
        tz_name: &str,
        calendar: Calendar,
        policy: ReplyPolicy,
    ) -> Result<Self, CalendarError> {
        let tz = timezone(tz_name)?;
        Ok(Deadlines {
            tz,
            calendar: RwLock::new(Arc::new(calendar)),
            policy,
        })
    }

    /// The calendar in force now.
    pub fn calendar(&self) -> Arc<Calendar> {
        self.calendar
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts a newer calendar in force: deadlines computed from now on use it.
    pub fn set_calendar(&self, calendar: Calendar) {
        *self
            .calendar
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(calendar);
    }

    /// The calendar date of an instant where the node is.
    pub fn local_date(&self, t: OffsetDateTime) -> Date {
        t.to_timezone(self.tz).date()
    }

    /// The deadline of `rule` for a notice received at `received_at`.
    pub fn due(&self, received_at: OffsetDateTime, rule: &PolicyRule) -> Due {
        match rule.count {
            DayCount::Calendar => {
                let last = self.local_date(received_at) + Duration::days(i64::from(rule.days));
                Due {
                    at: self.end_of(last),
                    provisional: false,
                    working_days: None,
                }
            }
            DayCount::Working => self.due_in_working_days(received_at, rule.days),
        }
    }

    /// A deadline of `days` working days from `received_at`, with the
    /// calendar in force: provisional when it ends past the schedule's last
    /// covered year.
    pub fn due_in_working_days(&self, received_at: OffsetDateTime, days: u32) -> Due {
        let calendar = self.calendar();
        let last = calendar.add_working_days(self.local_date(received_at), days);
        Due {
            at: self.end_of(last),
            provisional: !calendar.covers(last),
            working_days: Some(days),
        }
    }

    /// 23:59:59 local time on `day`, as a UTC instant.
    /// The first instant of a calendar day where the node is.
    pub fn start_of_day(&self, day: Date) -> OffsetDateTime {
        day.midnight()
            .assume_timezone(self.tz)
            .take_first()
            .expect("midnight exists in every supported timezone")
            .to_offset(time::UtcOffset::UTC)
    }

    fn end_of(&self, day: Date) -> OffsetDateTime {
        day.with_time(Time::from_hms(23, 59, 59).expect("valid time"))
            .assume_timezone(self.tz)
            .take_first()
            .expect("23:59:59 exists in every supported timezone")
            .to_offset(time::UtcOffset::UTC)
    }

    /// The year whose schedule the node should have and does not, at
    /// `now`: this year once it is not covered, and from 1 November next
    /// year too (the State Council publishes it in the autumn).
    pub fn missing_year(&self, now: OffsetDateTime) -> Option<i32> {
        let today = self.local_date(now);
        let last = self.calendar().last_covered_year();
        let needed = if today.month() >= time::Month::November {
            today.year() + 1
        } else {
            today.year()
        };
        (last < needed).then_some(last + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn shanghai(policy: ReplyPolicy) -> Deadlines {
        Deadlines::new("Asia/Shanghai", Calendar::builtin(), policy).unwrap()
    }

    fn working(days: u32) -> PolicyRule {
        PolicyRule {
            category: None,
            kind: None,
            urgency: None,
            reply: ReplySort::Receipt,
            days,
            count: DayCount::Working,
        }
    }

    #[test]
    fn make_up_saturdays_are_working_days() {
        let c = Calendar::builtin();
        assert!(c.is_working_day(date!(2026 - 02 - 14)));
        assert!(c.is_working_day(date!(2026 - 09 - 20)));
        assert!(!c.is_working_day(date!(2026 - 02 - 16)));
        assert!(!c.is_working_day(date!(2026 - 10 - 01)));
        assert!(!c.is_working_day(date!(2026 - 11 - 21)));
        assert!(c.is_working_day(date!(2026 - 11 - 23)));
    }

    #[test]
    fn default_policy_gives_15_and_30_calendar_days() {
        let d = shanghai(ReplyPolicy::default());
        let urgent = d.policy.rule_for(
            Category::VerificationRequest,
            NoticeKind::Pregnancy,
            Urgency::Urgent,
        );
        assert_eq!((urgent.reply, urgent.days), (ReplySort::Feedback, 15));
        let birth = d
            .policy
            .rule_for(Category::Notification, NoticeKind::Birth, Urgency::Normal);
        assert_eq!((birth.reply, birth.days), (ReplySort::Feedback, 30));
        let marriage = d.policy.rule_for(
            Category::Notification,
            NoticeKind::Marriage,
            Urgency::Urgent,
        );
        assert_eq!((marriage.reply, marriage.days), (ReplySort::Receipt, 30));
        // Received 2026-11-01 10:00 Beijing time (02:00 UTC): 15 days → end of 2026-11-16.
        let received = datetime!(2026-11-01 02:00 UTC);
        assert_eq!(
            d.due(received, urgent).at,
            datetime!(2026-11-16 23:59:59 +8)
        );
        assert_eq!(
            d.due(received, marriage).at,
            datetime!(2026-12-01 23:59:59 +8)
        );
    }

    #[test]
    fn the_local_day_decides_not_the_utc_day() {
        let d = shanghai(ReplyPolicy::default());
        let rule = d.policy.rule_for(
            Category::Notification,
            NoticeKind::Marriage,
            Urgency::Normal,
        );
        // 2026-10-31 17:00 UTC is already 2026-11-01 01:00 in Shanghai.
        assert_eq!(
            d.due(datetime!(2026-10-31 17:00 UTC), rule).at,
            datetime!(2026-12-01 23:59:59 +8)
        );
    }

    #[test]
    fn working_days_skip_the_spring_festival_and_count_its_make_up_saturday() {
        let d = shanghai(ReplyPolicy::default());
        // Received Fri 2026-02-13. Working days after it: Sat 02-14 (make-up) = 1,
        // 02-15..02-23 holidays, Tue 02-24 = 2, Wed 02-25 = 3.
        let received = datetime!(2026-02-13 09:00 +8);
        assert_eq!(
            d.due(received, &working(3)).at,
            datetime!(2026-02-25 23:59:59 +8)
        );
        // Sat 02-28 is a make-up workday too: 02-24..02-27 = 2..5, 02-28 = 6.
        assert_eq!(
            d.due(received, &working(6)).at,
            datetime!(2026-02-28 23:59:59 +8)
        );
        assert_eq!(
            d.due(received, &working(7)).at,
            datetime!(2026-03-02 23:59:59 +8)
        );
    }

    #[test]
    fn working_days_across_national_day() {
        let d = shanghai(ReplyPolicy::default());
        // Received Fri 2026-09-18: Sun 09-20 (make-up) = 1, 09-21..09-24 = 2..5,
        // 09-25..27 Mid-autumn, 09-28..30 = 6..8, 10-01..07 holidays,
        // Thu 10-08 = 9, Fri 10-09 = 10, Sat 10-10 (make-up) = 11.
        let received = datetime!(2026-09-18 15:00 +8);
        assert_eq!(
            d.due(received, &working(1)).at,
            datetime!(2026-09-20 23:59:59 +8)
        );
        assert_eq!(
            d.due(received, &working(8)).at,
            datetime!(2026-09-30 23:59:59 +8)
        );
        assert_eq!(
            d.due(received, &working(9)).at,
            datetime!(2026-10-08 23:59:59 +8)
        );
        assert_eq!(
            d.due(received, &working(11)).at,
            datetime!(2026-10-10 23:59:59 +8)
        );
        assert_eq!(
            d.due(received, &working(12)).at,
            datetime!(2026-10-12 23:59:59 +8)
        );
    }

    #[test]
    fn a_working_day_deadline_past_the_covered_years_is_provisional_until_they_are() {
        let d = shanghai(ReplyPolicy::default());
        // Friday 2026-12-11: 14 working days to the end of 2026, then the
        // plain week: Fri 01-01 = 15, 01-04..01-07 = 16..19, Fri 01-08 = 20.
        let received = datetime!(2026-12-11 09:00 +8);
        let guess = d.due(received, &working(20));
        assert_eq!(guess.at, datetime!(2027-01-08 23:59:59 +8));
        assert!(guess.provisional);
        assert_eq!(guess.working_days, Some(20));
        assert!(
            !d.due(received, &working(14)).provisional,
            "ends 2026-12-31"
        );
        let calendar_days = d.policy.rule_for(
            Category::Notification,
            NoticeKind::Marriage,
            Urgency::Normal,
        );
        assert!(!d.due(received, calendar_days).provisional);
        assert_eq!(d.missing_year(received), Some(2027));
        assert_eq!(d.missing_year(datetime!(2026-10-31 12:00 +8)), None);
        assert_eq!(d.missing_year(datetime!(2026-11-01 00:30 +8)), Some(2027));

        // 2027's schedule, from a file: New Year's Day off, Saturday 01-09 worked.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("holidays.csv");
        std::fs::write(&path, schedule::YEAR_2027).unwrap();
        d.set_calendar(Calendar::with_file(&path).unwrap());
        let official = d.due(received, &working(20));
        assert_eq!(official.at, datetime!(2027-01-09 23:59:59 +8));
        assert!(!official.provisional);
        assert_eq!(d.missing_year(received), None);
        assert_eq!(d.missing_year(datetime!(2027-11-01 00:30 +8)), Some(2028));

        std::fs::write(&path, "2027-01-01,maybe,x\n").unwrap();
        let e = Calendar::with_file(&path).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
