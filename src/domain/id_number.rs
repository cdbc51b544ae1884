//! National ID numbers (公民身份号码, GB 11643): 18 characters with the
//! ISO 7064 MOD 11-2 check character; the 15-digit first-generation form is
//! converted. Birth date and sex are derived from the number.

use super::{FieldError, Sex};
use std::fmt;
use time::{Date, Month};

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdNumber {
    value: String,
    birth_date: Date,
    sex: Sex,
}

fn check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize]
}

impl IdNumber {
    /// An 18-character number from its first 17 digits, with the check
    /// character computed (for sample data and tests).
    pub fn complete(first17: &str) -> String {
        assert!(
            first17.len() == 17 && first17.bytes().all(|b| b.is_ascii_digit()),
            "17 digits expected"
        );
        format!("{first17}{}", check_char(first17.as_bytes()) as char)
    }

    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let s = s.trim().to_ascii_uppercase();
        let bytes = s.as_bytes();
        let full: Vec<u8> = match bytes.len() {
            18 => {
                if !bytes[..17].iter().all(u8::is_ascii_digit) {
                    return Err(FieldError::new(
                        field,
                        "the first 17 characters must be digits",
                    ));
                }
                let expected = check_char(&bytes[..17]);
                if bytes[17] != expected {
                    return Err(FieldError::new(
                        field,
                        format!(
                            "check character is '{}', expected '{}' (MOD 11-2)",
                            bytes[17] as char, expected as char
                        ),
                    ));
                }
                bytes.to_vec()
            }
            15 => {
                if !bytes.iter().all(u8::is_ascii_digit) {
                    return Err(FieldError::new(
                        field,
                        "a 15-digit ID number must be all digits",
                    ));
                }
                let mut v = Vec::with_capacity(18);
                v.extend_from_slice(&bytes[..6]);
                v.extend_from_slice(b"19");
                v.extend_from_slice(&bytes[6..15]);
                let c = check_char(&v);
                v.push(c);
                v
            }
            0 => return Err(FieldError::new(field, "is required")),
            n => {
                return Err(FieldError::new(
                    field,
                    format!("must be 18 characters (or the old 15 digits), got {n}"),
                ));
            }
        };
        let digits = |r: std::ops::Range<usize>| -> u32 {
            full[r]
                .iter()
                .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let (year, month, day) = (digits(6..10), digits(10..12), digits(12..14));
        let birth_date = Month::try_from(month as u8)
            .ok()
            .and_then(|m| Date::from_calendar_date(year as i32, m, day as u8).ok())
            .filter(|d| d.year() >= 1900)
            .ok_or_else(|| {
                FieldError::new(
                    field,
                    format!("birth date {year:04}-{month:02}-{day:02} is not a valid date"),
                )
            })?;
        let sex = if (full[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        };
        Ok(IdNumber {
            value: String::from_utf8(full).expect("ASCII"),
            birth_date,
            sex,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    pub fn sex(&self) -> Sex {
        self.sex
    }

    /// The form fit for logs: first 6 and last 4 characters.
    pub fn masked(&self) -> String {
        super::mask_id(&self.value)
    }
}

/// Debug never shows the whole number, so a stray `{:?}` cannot leak it.
impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a valid 18-character number from its first 17 digits.
    pub fn with_check(first17: &str) -> String {
        IdNumber::complete(first17)
    }

    #[test]
    fn accepts_a_valid_number_and_derives_birth_date_and_sex() {
        // The GB 11643 example number.
        let id = IdNumber::parse("id", "11010519491231002X").unwrap();
        assert_eq!(id.birth_date().to_string(), "1949-12-31");
        assert_eq!(id.sex(), Sex::Female);
        let id = IdNumber::parse("id", &with_check("44030319900101001")).unwrap();
        assert_eq!(id.sex(), Sex::Male);
    }

    #[test]
    fn lowercase_x_is_normalised() {
        assert_eq!(
            IdNumber::parse("id", "11010519491231002x")
                .unwrap()
                .as_str(),
            "11010519491231002X"
        );
    }

    #[test]
    fn refuses_a_bad_check_character() {
        let e = IdNumber::parse("notice.subject.id_number", "110105194912310021").unwrap_err();
        assert_eq!(e.field, "notice.subject.id_number");
        assert!(e.rule.contains("expected 'X'"), "{}", e.rule);
    }

    #[test]
    fn refuses_impossible_birth_dates_and_lengths() {
        assert!(IdNumber::parse("id", &with_check("44030319900231001")).is_err());
        assert!(IdNumber::parse("id", "4403031990").is_err());
        assert!(IdNumber::parse("id", "").is_err());
    }

    #[test]
    fn converts_the_15_digit_form() {
        // 15-digit 110105491231002 → 18-digit 11010519491231002X.
        let id = IdNumber::parse("id", "110105491231002").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.sex(), Sex::Female);
    }

    #[test]
    fn debug_is_masked() {
        let id = IdNumber::parse("id", "11010519491231002X").unwrap();
        assert_eq!(format!("{id:?}"), "IdNumber(110105********002X)");
    }
}
