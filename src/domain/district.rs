//! District codes (行政区划代码) and route prefixes, checked against the
//! division table shipped in `data/divisions.csv`.

use super::FieldError;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

static DIVISIONS_CSV: &str = include_str!("../../data/divisions.csv");

fn divisions() -> &'static HashMap<u32, &'static str> {
    static TABLE: OnceLock<HashMap<u32, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        DIVISIONS_CSV
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut cols = line.split(',');
                let code = cols.next()?.parse().ok()?;
                let name = cols.next()?;
                Some((code, name))
            })
            .collect()
    })
}

/// Units of the division table whose code starts with `q` or whose name
/// (or whose parent's name) contains it, as (code, name with its parent's),
/// at most `limit`, county-level units first.
pub fn find_districts(q: &str, limit: usize) -> Vec<(u32, String)> {
    let q = q.trim();
    if q.is_empty() {
        return Vec::new();
    }
    let table = divisions();
    let full = |code: u32, name: &str| {
        let parent = [code / 100 * 100, code / 10_000 * 10_000]
            .into_iter()
            .filter(|p| *p != code)
            .find_map(|p| table.get(&p));
        match parent {
            Some(p) => format!("{p}{name}"),
            None => name.to_string(),
        }
    };
    let mut found: Vec<(u32, String)> = table
        .iter()
        .map(|(code, name)| (*code, full(*code, name)))
        .filter(|(code, name)| code.to_string().starts_with(q) || name.contains(q))
        .collect();
    // County-level units (not ending in 00) first, then by code.
    found.sort_by_key(|(code, _)| (code % 100 == 0, *code));
    found.truncate(limit);
    found
}

/// A district as a clerk types it where a code is asked: digits are taken
/// as typed (the caller checks them as a code), a name is taken when
/// exactly one unit of the table has it; None when a name names none or
/// several (the caller says which, in Chinese).
pub fn district_typed(q: &str) -> Option<String> {
    let q = q.trim();
    if q.chars().all(|c| c.is_ascii_digit()) {
        return Some(q.to_string());
    }
    match find_districts(q, 2).as_slice() {
        [(code, _)] => Some(format!("{code:06}")),
        _ => None,
    }
}

/// The Chinese name of the county-level unit a code belongs to, if known.
pub fn county_name(code: &str) -> Option<&'static str> {
    let six: u32 = code.get(..6)?.parse().ok()?;
    divisions().get(&six).copied()
}

/// A district code of 6, 9 or 12 digits whose first six digits name a unit
/// in the division table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DistrictCode(String);

impl DistrictCode {
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(FieldError::new(
                field,
                "is required (a 6, 9 or 12 digit district code)",
            ));
        }
        if !matches!(s.len(), 6 | 9 | 12) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new(
                field,
                format!(
                    "{} is not a district code (6, 9 or 12 digits)",
                    super::quoted(s)
                ),
            ));
        }
        if county_name(s).is_none() {
            return Err(FieldError::new(
                field,
                format!("'{}' is not a known division code", &s[..6]),
            ));
        }
        Ok(DistrictCode(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `other` is this district or lies inside it (a street of a county).
    pub fn covers(&self, other: &DistrictCode) -> bool {
        other.0.starts_with(&self.0)
    }

    /// True when every destination `route` can carry lies in this district:
    /// the node of this district may be that route's peer.
    pub fn covers_route(&self, route: &RoutePrefix) -> bool {
        route.as_str().starts_with(&self.0)
    }

    /// The Chinese name of the county-level unit.
    pub fn county_name(&self) -> &'static str {
        county_name(&self.0).unwrap_or("?")
    }
}

impl fmt::Display for DistrictCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The code prefix of a route: 2 to 12 digits (a province, a city, a county
/// or a street). The longest prefix matching a destination picks the peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoutePrefix(String);

impl RoutePrefix {
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let s = s.trim();
        if !(2..=12).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new(
                field,
                format!("{} is not a code prefix (2 to 12 digits)", super::quoted(s)),
            ));
        }
        // A route that no division code can match would never be used.
        let known = if s.len() >= 6 {
            county_name(s).is_some()
        } else {
            divisions().keys().any(|c| format!("{c:06}").starts_with(s))
        };
        if !known {
            return Err(FieldError::new(
                field,
                format!(
                    "{} is not the start of any known division code",
                    super::quoted(s)
                ),
            ));
        }
        Ok(RoutePrefix(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, code: &str) -> bool {
        code.starts_with(&self.0)
    }
}

impl fmt::Display for RoutePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn districts_are_found_by_code_or_name() {
        let by_code = find_districts("510116", 5);
        assert_eq!(by_code[0].0, 510116);
        assert!(by_code[0].1.contains("双流"), "{by_code:?}");
        assert_eq!(district_typed("罗湖区").as_deref(), Some("440303"));
        assert_eq!(district_typed(" 440303 ").as_deref(), Some("440303"));
        assert_eq!(district_typed("不存在的地方"), None);
        // 朝阳区 is in Beijing and in Changchun: a name of two is not taken.
        assert_eq!(district_typed("朝阳区"), None);
        let by_name = find_districts("罗湖", 5);
        assert!(by_name.iter().any(|(c, _)| *c == 440303), "{by_name:?}");
        assert!(find_districts("", 5).is_empty());
    }

    #[test]
    fn accepts_known_county_and_street_codes() {
        assert_eq!(
            DistrictCode::parse("d", "440303").unwrap().county_name(),
            "罗湖区"
        );
        assert!(DistrictCode::parse("d", "440303001").is_ok());
        assert!(DistrictCode::parse("d", "440303001002").is_ok());
    }

    #[test]
    fn refuses_malformed_and_unknown_codes() {
        let e = DistrictCode::parse("notice.destination", "44030").unwrap_err();
        assert_eq!(e.field, "notice.destination");
        assert!(e.rule.contains("6, 9 or 12 digits"));
        let e = DistrictCode::parse("d", "999999").unwrap_err();
        assert!(e.rule.contains("not a known division code"));
        assert!(DistrictCode::parse("d", "44030300").is_err());
        assert!(DistrictCode::parse("d", "44030a").is_err());
        assert!(DistrictCode::parse("d", "").is_err());
    }

    #[test]
    fn a_route_prefix_must_start_a_known_code() {
        for ok in ["44", "4403", "440303", "440303001"] {
            assert!(RoutePrefix::parse("p", ok).is_ok(), "{ok}");
        }
        for bad in ["999999", "12345", "449999", "99", "4"] {
            assert_eq!(
                RoutePrefix::parse("--district", bad).unwrap_err().field,
                "--district",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_county_covers_its_streets() {
        let county = DistrictCode::parse("d", "440303").unwrap();
        let street = DistrictCode::parse("d", "440303001").unwrap();
        assert!(county.covers(&street));
        assert!(!street.covers(&county));
        let route = |p| RoutePrefix::parse("p", p).unwrap();
        assert!(county.covers_route(&route(county.as_str())));
        assert!(county.covers_route(&route(street.as_str())));
        assert!(
            !county.covers_route(&route("4403")),
            "a city route reaches other counties"
        );
        assert!(!street.covers_route(&route(county.as_str())));
    }
}
