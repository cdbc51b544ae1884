//! Working days and deadlines (时限).
//!
//! The official holiday and make-up workday schedule ships inside the binary
//! (`data/cn-holidays.csv`, 2004–2026); a newer file named in the config is
//! merged over it, so next year's schedule needs no release. A deadline is
//! counted from the day the destination received the notice (that day not
//! counted) and ends at 23:59:59 of its last day in the node's timezone.

use crate::domain::{Category, NoticeKind, ReplySort, Urgency, parse_date};
use std::collections::HashMap;
use std::path::Path;
use time::{Date, Duration, OffsetDateTime, Time, Weekday};
use time_tz::{OffsetDateTimeExt, PrimitiveDateTimeExt, Tz};

static BUILTIN_CSV: &str = include_str!("../data/cn-holidays.csv");

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
    #[error("timezone '{0}' is not a known IANA timezone name")]
    UnknownTimezone(String),
}

/// Whether a listed date is a day off or a worked weekend day (调休).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listed {
    Holiday,
    Workday,
}

#[derive(Debug, Clone)]
pub struct Calendar {
    listed: HashMap<Date, Listed>,
}

impl Calendar {
    /// The schedule shipped with this release.
    pub fn builtin() -> Self {
        let mut c = Calendar {
            listed: HashMap::new(),
        };
        c.merge_csv("builtin", BUILTIN_CSV)
            .expect("the shipped calendar parses");
        c
    }

    /// The shipped schedule with a newer file's dates laid over it.
    pub fn with_file(path: &Path) -> Result<Self, CalendarError> {
        let text = std::fs::read_to_string(path).map_err(|source| CalendarError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut c = Self::builtin();
        c.merge_csv(&path.display().to_string(), &text)?;
        Ok(c)
    }

    fn merge_csv(&mut self, path: &str, text: &str) -> Result<(), CalendarError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if i == 0 && line.starts_with("date") || line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |rule: String| CalendarError::Line {
                path: path.into(),
                line: i + 1,
                rule,
            };
            let mut cols = line.split(',');
            let date =
                parse_date("date", cols.next().unwrap_or("")).map_err(|e| err(e.to_string()))?;
            let day = match cols.next().map(str::trim) {
                Some("holiday") => Listed::Holiday,
                Some("workday") => Listed::Workday,
                other => {
                    return Err(err(format!(
                        "day must be 'holiday' or 'workday', got {other:?}"
                    )));
                }
            };
            self.listed.insert(date, day);
        }
        Ok(())
    }

    pub fn is_working_day(&self, d: Date) -> bool {
        match self.listed.get(&d) {
            Some(Listed::Holiday) => false,
            Some(Listed::Workday) => true,
            None => !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday),
        }
    }

    /// The `n`th working day after `from` (`from` itself not counted).
    pub fn add_working_days(&self, from: Date, n: u32) -> Date {
        let mut d = from;
        let mut left = n;
        while left > 0 {
            d = d.next_day().expect("date in range");
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }
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

/// The node's view of time: its timezone and working-day calendar.
#[derive(Debug, Clone)]
pub struct Deadlines {
    pub tz: &'static Tz,
    pub calendar: Calendar,
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
            calendar,
            policy,
        })
    }

    /// The calendar date of an instant where the node is.
    pub fn local_date(&self, t: OffsetDateTime) -> Date {
        t.to_timezone(self.tz).date()
    }

    /// 23:59:59 local time on the last day of a deadline of `rule` for a
    /// notice received at `received_at`.
    pub fn due_at(&self, received_at: OffsetDateTime, rule: &PolicyRule) -> OffsetDateTime {
        let day0 = self.local_date(received_at);
        let last = match rule.count {
            DayCount::Calendar => day0 + Duration::days(i64::from(rule.days)),
            DayCount::Working => self.calendar.add_working_days(day0, rule.days),
        };
        let end = last
            .with_time(Time::from_hms(23, 59, 59).expect("valid time"))
            .assume_timezone(self.tz)
            .take_first()
            .expect("23:59:59 exists in every supported timezone");
        end.to_offset(time::UtcOffset::UTC)
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
            d.due_at(received, urgent),
            datetime!(2026-11-16 23:59:59 +8)
        );
        assert_eq!(
            d.due_at(received, marriage),
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
            d.due_at(datetime!(2026-10-31 17:00 UTC), rule),
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
            d.due_at(received, &working(3)),
            datetime!(2026-02-25 23:59:59 +8)
        );
        // Sat 02-28 is a make-up workday too: 02-24..02-27 = 2..5, 02-28 = 6.
        assert_eq!(
            d.due_at(received, &working(6)),
            datetime!(2026-02-28 23:59:59 +8)
        );
        assert_eq!(
            d.due_at(received, &working(7)),
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
            d.due_at(received, &working(1)),
            datetime!(2026-09-20 23:59:59 +8)
        );
        assert_eq!(
            d.due_at(received, &working(8)),
            datetime!(2026-09-30 23:59:59 +8)
        );
        assert_eq!(
            d.due_at(received, &working(9)),
            datetime!(2026-10-08 23:59:59 +8)
        );
        assert_eq!(
            d.due_at(received, &working(11)),
            datetime!(2026-10-10 23:59:59 +8)
        );
        assert_eq!(
            d.due_at(received, &working(12)),
            datetime!(2026-10-12 23:59:59 +8)
        );
    }

    #[test]
    fn a_newer_calendar_file_is_laid_over_the_shipped_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cal.csv");
        std::fs::write(
            &path,
            "date,day,name\n2027-01-01,holiday,New Year's Day\n2027-01-02,workday,x\n",
        )
        .unwrap();
        let c = Calendar::with_file(&path).unwrap();
        assert!(!c.is_working_day(date!(2027 - 01 - 01)));
        assert!(c.is_working_day(date!(2027 - 01 - 02)));
        assert!(c.is_working_day(date!(2026 - 02 - 14)));
        std::fs::write(&path, "2027-01-01,maybe,x\n").unwrap();
        let e = Calendar::with_file(&path).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
