//! Ramp schedules: RFC 3339 timestamps and the weight in effect at a time.
//!
//! A schedule is a list of steps in time order; the weight in effect is the
//! last step whose time has passed, 0 before the first. Every proxy reads the
//! same wall clock, so all of them agree without a config push.

/// One step of a ramp: from `at` (Unix seconds) on, the target has `weight`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at: i64,
    pub weight: u16,
}

/// The weight in effect at `now` (Unix seconds) for steps in time order.
pub fn weight_at(steps: &[Step], now: i64) -> u16 {
    steps
        .iter()
        .take_while(|s| s.at <= now)
        .last()
        .map_or(0, |s| s.weight)
}

/// The first step still to come after `now`, if any.
pub fn next_step(steps: &[Step], now: i64) -> Option<&Step> {
    steps.iter().find(|s| s.at > now)
}

/// Parses an RFC 3339 date-time (`2026-12-01T09:00:00Z`, `…T09:00:00.5+01:00`)
/// into Unix seconds; fractions of a second are dropped.
pub fn parse_rfc3339(text: &str) -> Result<i64, &'static str> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err("is not an RFC 3339 date-time such as 2026-12-01T09:00:00Z");
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, &'static str> {
        let digits = &b[range];
        if digits.iter().all(u8::is_ascii_digit) {
            Ok(digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
        } else {
            Err("is not an RFC 3339 date-time such as 2026-12-01T09:00:00Z")
        }
    };
    let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| b[i] != c) || !matches!(b[10], b'T' | b't' | b' ') {
        return Err("is not an RFC 3339 date-time such as 2026-12-01T09:00:00Z");
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err("has a date that does not exist");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("has a time of day that does not exist");
    }
    let mut rest = &b[19..];
    if let [b'.', tail @ ..] = rest {
        let digits = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err("has an empty fraction of a second");
        }
        rest = &tail[digits..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| -> Result<i64, &'static str> {
                if a.is_ascii_digit() && b.is_ascii_digit() {
                    Ok(i64::from(a - b'0') * 10 + i64::from(b - b'0'))
                } else {
                    Err("has a malformed UTC offset")
                }
            };
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return Err("has a malformed UTC offset");
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return Err("needs a UTC offset: Z or ±HH:MM"),
    };
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset)
}

/// Unix seconds as an RFC 3339 UTC date-time (`2026-12-01T09:00:00Z`): the
/// form schedules are written in, for tools and messages. The inverse of
/// [`parse_rfc3339`] on whole seconds.
pub fn format_rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H.
/// Hinnant's algorithm, the inverse of `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2026-12-01T09:00:00Z"), Ok(1_796_115_600));
        assert_eq!(
            parse_rfc3339("2026-12-01T10:00:00+01:00"),
            Ok(1_796_115_600)
        );
        assert_eq!(
            parse_rfc3339("2026-12-01T08:30:00.999-00:30"),
            Ok(1_796_115_600)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00z"), Ok(1_709_164_800));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Ok(-1));
    }

    #[test]
    fn refuses_what_is_not_a_date_time() {
        for bad in [
            "",
            "2026-12-01",
            "2026-12-01T09:00:00",
            "2026-13-01T09:00:00Z",
            "2025-02-29T09:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T09:00:00.Z",
            "2026-12-01T09:00:00+1:00",
            "2026-12-01T09:00:00Zjunk",
            "２026-12-01T09:00:00Z",
            "yyyy-12-01T09:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn formatting_round_trips() {
        assert_eq!(format_rfc3339(1_796_115_600), "2026-12-01T09:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        for secs in [0, 951_782_400, 1_709_164_800, 4_102_444_799, -86_400 * 366] {
            assert_eq!(parse_rfc3339(&format_rfc3339(secs)), Ok(secs), "{secs}");
        }
    }

    #[test]
    fn weight_in_effect_is_the_last_passed_step() {
        let steps = [
            Step {
                at: 100,
                weight: 500,
            },
            Step {
                at: 200,
                weight: 2500,
            },
        ];
        assert_eq!(weight_at(&steps, 99), 0);
        assert_eq!(weight_at(&steps, 100), 500);
        assert_eq!(weight_at(&steps, 199), 500);
        assert_eq!(weight_at(&steps, 200), 2500);
        assert_eq!(weight_at(&steps, i64::MAX), 2500);
        assert_eq!(next_step(&steps, 150), Some(&steps[1]));
        assert_eq!(next_step(&steps, 200), None);
    }
}
