//! The official holiday schedule (节假日安排): which dates are days off and
//! which weekend days are worked (调休), year by year, and which years it
//! covers.
//!
//! The State Council publishes each year's schedule around November of the
//! year before. The schedule shipped in the binary ends with its last
//! published year; a node lays newer files over it (`migrex calendar
//! load`). A year is covered only when a whole year was given: a schedule
//! names every festival that has been a holiday in every year (元旦, 春节,
//! 劳动节, 国庆节), or it is refused. Working-day arithmetic past the last
//! covered year still counts the plain week, and says so (`Calendar::covers`),
//! so that a deadline resting on a guess is marked provisional.

use crate::domain::{format_date, parse_date};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use time::{Date, Month, Weekday};

use super::CalendarError;

/// The schedule shipped with this release (2004 to its last published year).
static BUILTIN_CSV: &str = include_str!("../../data/cn-holidays.csv");

/// How the shipped schedule is named where sources are listed.
pub const BUILTIN_SOURCE: &str = "built in (data/cn-holidays.csv)";

/// The largest schedule file read: the shipped one, 23 years, is 25 KB.
pub const MAX_FILE_BYTES: u64 = 256 << 10;

/// Festivals that have been holidays in every year since 1999, by their
/// English name (as the shipped file writes them) and their Chinese one. A
/// year's schedule without one of them is incomplete. (Qingming, Dragon
/// Boat and Mid-autumn are holidays since 2008, and Mid-autumn is sometimes
/// folded into National Day, so they cannot be required.)
const EVERY_YEAR: [(&str, &str); 4] = [
    ("New Year's Day", "元旦"),
    ("Spring Festival", "春节"),
    ("Labour Day", "劳动节"),
    ("National Day", "国庆节"),
];

/// Whether a listed date is a day off or a worked weekend day (调休).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Holiday,
    Workday,
}

impl Listed {
    fn as_str(self) -> &'static str {
        match self {
            Listed::Holiday => "holiday",
            Listed::Workday => "workday",
        }
    }
}

/// One listed date of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    date: Date,
    day: Listed,
    name: String,
    /// The year whose schedule it belongs to: its own, except a New Year's
    /// holiday that starts in late December (2023-12-30 belongs to 2024).
    year: i32,
}

/// A checked schedule of whole years, as one file or the shipped data gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    source: String,
    rows: Vec<Row>,
}

fn is_festival(name: &str, (english, chinese): (&str, &str)) -> bool {
    let name = name.trim();
    name.eq_ignore_ascii_case(english) || name == chinese
}

impl Schedule {
    /// Parses and checks a schedule (CSV `date,day,name`, a header line and
    /// `#` comments allowed): dates in order and each once, `day` only
    /// `holiday` or `workday`, a workday only on a weekend, every year
    /// complete. `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Self, CalendarError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rows: Vec<Row> = Vec::new();
        let mut lines_of: HashMap<i32, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("date")) {
                continue;
            }
            let err = |rule: String| CalendarError::Line {
                path: source.into(),
                line: i + 1,
                rule,
            };
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            if cols.len() != 3 {
                return Err(err(format!(
                    "has {} columns; a line is date,day,name (e.g. 2027-01-01,holiday,元旦)",
                    cols.len()
                )));
            }
            let date = parse_date("date", cols[0]).map_err(|e| err(e.to_string()))?;
            if !(2000..=2100).contains(&date.year()) {
                return Err(err(format!("date {date} is outside 2000..2100")));
            }
            let day = match cols[1] {
                "holiday" => Listed::Holiday,
                "workday" => Listed::Workday,
                other => {
                    return Err(err(format!(
                        "day must be 'holiday' or 'workday', got {}",
                        crate::domain::quoted(other)
                    )));
                }
            };
            let name = cols[2].trim_matches('"').trim();
            if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
                return Err(err(
                    "name must name the festival (1 to 64 characters, e.g. 春节 or Spring Festival)"
                        .into(),
                ));
            }
            if day == Listed::Workday
                && !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
            {
                return Err(err(format!(
                    "{} is a {}: a make-up workday (调休) is a Saturday or Sunday",
                    format_date(date),
                    date.weekday()
                )));
            }
            if let Some(before) = rows.last()
                && before.date >= date
            {
                return Err(err(format!(
                    "dates must be in order, each once: {} follows {}",
                    format_date(date),
                    format_date(before.date)
                )));
            }
            let year = if date.month() == Month::December
                && is_festival(name, EVERY_YEAR[0])
                && day == Listed::Holiday
            {
                date.year() + 1
            } else {
                date.year()
            };
            lines_of.entry(year).or_insert(i + 1);
            rows.push(Row {
                date,
                day,
                name: name.to_string(),
                year,
            });
        }
        let schedule = Schedule {
            source: source.to_string(),
            rows,
        };
        if schedule.rows.is_empty() {
            return Err(CalendarError::Year {
                path: source.into(),
                year: None,
                rule: "lists no dates; a schedule gives at least one whole year".into(),
            });
        }
        for year in schedule.years() {
            let missing: Vec<String> = EVERY_YEAR
                .iter()
                .filter(|f| {
                    !schedule.rows.iter().any(|r| {
                        r.year == year && r.day == Listed::Holiday && is_festival(&r.name, **f)
                    })
                })
                .map(|(en, zh)| format!("{zh} ({en})"))
                .collect();
            if !missing.is_empty() {
                return Err(CalendarError::Year {
                    path: source.into(),
                    year: Some(year),
                    rule: format!(
                        "is incomplete (from line {}): no holiday named {}; load a whole year's schedule",
                        lines_of[&year],
                        missing.join(", ")
                    ),
                });
            }
        }
        Ok(schedule)
    }

    /// Reads and checks the schedule file at `path` (at most `MAX_FILE_BYTES`).
    pub fn read(path: &Path) -> Result<Self, CalendarError> {
        let read_err = |source| CalendarError::Read {
            path: path.display().to_string(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_FILE_BYTES {
            return Err(CalendarError::Year {
                path: path.display().to_string(),
                year: None,
                rule: format!("is {len} bytes; a schedule file is at most {MAX_FILE_BYTES} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The shipped schedule.
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_SOURCE, BUILTIN_CSV).expect("the shipped schedule is whole")
    }

    /// Where this schedule was read from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The years this schedule covers, each whole.
    pub fn years(&self) -> BTreeSet<i32> {
        self.rows.iter().map(|r| r.year).collect()
    }

    /// How many dates it lists.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it lists nothing (never true of a parsed schedule).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// This schedule's years laid over `older`'s: `older`'s rows of the
    /// years this one does not give, and all of this one's, in date order,
    /// named `source`. (`migrex calendar load` merges a new year into a
    /// node's file this way.)
    pub fn laid_over(&self, older: Option<&Schedule>, source: &str) -> Schedule {
        let years = self.years();
        let mut rows: Vec<Row> = older
            .map_or(&[][..], |o| o.rows.as_slice())
            .iter()
            .filter(|r| !years.contains(&r.year))
            .chain(&self.rows)
            .cloned()
            .collect();
        rows.sort_by_key(|r| r.date);
        rows.dedup_by_key(|r| r.date);
        Schedule {
            source: source.to_string(),
            rows,
        }
    }

    /// The schedule as a file: `date,day,name`, one date a line.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("date,day,name\n");
        for r in &self.rows {
            out.push_str(&format!(
                "{},{},{}\n",
                format_date(r.date),
                r.day.as_str(),
                r.name
            ));
        }
        out
    }
}

/// The working-day calendar a node computes with: schedules laid over one
/// another, and which source gives each year.
#[derive(Debug, Clone)]
pub struct Calendar {
    listed: HashMap<Date, Listed>,
    years: BTreeMap<i32, String>,
}

impl Calendar {
    /// The schedule shipped with this release.
    pub fn builtin() -> Self {
        let mut c = Calendar {
            listed: HashMap::new(),
            years: BTreeMap::new(),
        };
        c.lay(&Schedule::builtin());
        c
    }

    /// The shipped schedule with a newer file's years laid over it.
    pub fn with_file(path: &Path) -> Result<Self, CalendarError> {
        let mut c = Self::builtin();
        c.lay(&Schedule::read(path)?);
        Ok(c)
    }

    /// Lays `s` over this calendar: each of its years replaces what this
    /// calendar held for that year.
    pub fn lay(&mut self, s: &Schedule) {
        let years = s.years();
        self.listed.retain(|d, _| {
            // A date belongs to its own year or (late-December New Year's
            // holidays) to the next; either replaced year drops it.
            !(years.contains(&d.year())
                || d.month() == Month::December && years.contains(&(d.year() + 1)))
        });
        for r in &s.rows {
            self.listed.insert(r.date, r.day);
        }
        for y in years {
            self.years.insert(y, s.source.clone());
        }
    }

    /// Each covered year and the source of its schedule, in order.
    pub fn covered_years(&self) -> impl Iterator<Item = (i32, &str)> {
        self.years.iter().map(|(y, s)| (*y, s.as_str()))
    }

    /// The last year of the unbroken run of covered years from the first:
    /// working days up to its end are official, later ones a guess.
    pub fn last_covered_year(&self) -> i32 {
        let mut years = self.years.keys();
        let mut last = *years.next().expect("the shipped schedule covers a year");
        for y in years {
            if *y != last + 1 {
                break;
            }
            last = *y;
        }
        last
    }

    /// Whether the official schedule of `d`'s year is known.
    pub fn covers(&self, d: Date) -> bool {
        d.year() <= self.last_covered_year()
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

/// A whole year, as the tests' next year: made up, not the official one.
#[cfg(test)]
pub(crate) const YEAR_2027: &str = "date,day,name\n\
    2027-01-01,holiday,元旦\n\
    2027-01-09,workday,元旦\n\
    2027-02-06,holiday,春节\n2027-02-07,holiday,春节\n2027-02-08,holiday,春节\n\
    2027-02-09,holiday,春节\n2027-02-10,holiday,春节\n2027-02-11,holiday,春节\n\
    2027-02-12,holiday,春节\n2027-02-13,holiday,春节\n2027-02-20,workday,春节\n\
    2027-04-05,holiday,清明节\n\
    2027-05-01,holiday,劳动节\n2027-05-02,holiday,劳动节\n2027-05-03,holiday,劳动节\n\
    2027-06-09,holiday,端午节\n2027-09-15,holiday,中秋节\n\
    2027-10-01,holiday,国庆节\n2027-10-02,holiday,国庆节\n2027-10-03,holiday,国庆节\n\
    2027-10-04,holiday,国庆节\n2027-10-05,holiday,国庆节\n2027-10-06,holiday,国庆节\n\
    2027-10-07,holiday,国庆节\n2027-10-09,workday,国庆节\n";

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_shipped_schedule_covers_2004_to_2026_each_year_whole() {
        let c = Calendar::builtin();
        assert_eq!(c.covered_years().next(), Some((2004, BUILTIN_SOURCE)));
        assert_eq!(c.last_covered_year(), 2026);
        assert!(c.covers(date!(2026 - 12 - 31)));
        assert!(!c.covers(date!(2027 - 01 - 01)));
        // A late-December New Year's holiday belongs to the next year's schedule.
        assert!(!c.is_working_day(date!(2023 - 12 - 30)));
        assert_eq!(Schedule::builtin().years().len(), 23);
    }

    #[test]
    fn a_whole_new_year_extends_the_coverage_and_its_make_up_saturday_counts() {
        let mut c = Calendar::builtin();
        let s = Schedule::parse("holidays.csv", YEAR_2027).unwrap();
        assert_eq!(s.years().into_iter().collect::<Vec<_>>(), vec![2027]);
        c.lay(&s);
        assert_eq!(c.last_covered_year(), 2027);
        assert!(!c.is_working_day(date!(2027 - 01 - 01)));
        assert!(c.is_working_day(date!(2027 - 01 - 09)));
        assert_eq!(c.covered_years().last(), Some((2027, "holidays.csv")));
        // A year given again replaces the older rows of that year.
        let mut again = Calendar::builtin();
        again.lay(&s);
        let moved = YEAR_2027.replace("2027-01-09,workday", "2027-01-10,workday");
        again.lay(&Schedule::parse("newer.csv", &moved).unwrap());
        assert!(!again.is_working_day(date!(2027 - 01 - 09)));
        assert!(again.is_working_day(date!(2027 - 01 - 10)));
    }

    #[test]
    fn a_gap_ends_the_coverage() {
        let mut c = Calendar::builtin();
        let y2028 = YEAR_2027
            .replace("2027-", "2028-")
            .replace("2028-01-09,workday", "2028-01-08,workday")
            .replace("2028-02-20,workday", "2028-02-19,workday")
            .replace("2028-10-09,workday", "2028-10-08,workday");
        let s = Schedule::parse("2028.csv", &y2028).unwrap();
        c.lay(&s);
        assert_eq!(c.last_covered_year(), 2026, "2027 is missing");
    }

    fn refusal(text: &str) -> String {
        Schedule::parse("f.csv", text).unwrap_err().to_string()
    }

    #[test]
    fn a_schedule_is_refused_naming_the_line_and_the_rule() {
        let e = refusal(&YEAR_2027.replace("2027-04-05,holiday", "2027-04-05,maybe"));
        assert!(
            e.contains("line 13") && e.contains("'holiday' or 'workday'"),
            "{e}"
        );
        let e = refusal(&YEAR_2027.replace("2027-04-05", "2027-01-05"));
        assert!(e.contains("in order"), "{e}");
        let e = refusal(&YEAR_2027.replace("2027-10-09,workday", "2027-10-08,workday"));
        assert!(e.contains("Saturday or Sunday"), "{e}");
        let e = refusal(&YEAR_2027.replace("劳动节", "五一"));
        assert!(e.contains("year 2027") && e.contains("劳动节"), "{e}");
        let e = refusal("date,day,name\n2027-01-01,holiday,元旦\n");
        assert!(e.contains("incomplete") && e.contains("春节"), "{e}");
        let e = refusal("date,day,name\n");
        assert!(e.contains("no dates"), "{e}");
        let e = refusal("2027-01-01,holiday\n");
        assert!(e.contains("line 1") && e.contains("columns"), "{e}");
    }

    #[test]
    fn a_new_year_is_laid_over_a_nodes_file_keeping_its_other_years() {
        let older =
            Schedule::parse("old.csv", &YEAR_2027.replace("2027-01-09", "2027-01-16")).unwrap();
        let newer = Schedule::parse("new.csv", YEAR_2027).unwrap();
        let merged = newer.laid_over(Some(&older), "holidays.csv");
        assert_eq!(
            merged,
            Schedule {
                source: "holidays.csv".into(),
                rows: newer.rows.clone()
            }
        );
        let round = Schedule::parse("x", &merged.to_csv()).unwrap();
        assert_eq!(round.rows, merged.rows);
    }
}
