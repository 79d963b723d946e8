//! HTTP dates (RFC 9110, 5.6.7): written as IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`),
//! read in any of the three forms a client may send, to the second.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `time` as an IMF-fixdate, to the second (a time before 1970 is written as 1970's start).
pub(crate) fn http_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[month as usize - 1],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Seconds since 1970 of an HTTP date in any of its three forms: IMF-fixdate (`Sun, 06 Nov 1994
/// 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37
/// 1994`); `None` for anything else, which a server ignores (RFC 9110, 13.1.3).
pub(crate) fn parse_http_date(text: &str) -> Option<u64> {
    let tokens: Vec<&str> = text
        .split([' ', ',', '-'])
        .filter(|t| !t.is_empty())
        .collect();
    let month = tokens
        .iter()
        .position(|t| MONTHS.contains(t))
        .map(|i| (i, MONTHS.iter().position(|m| *m == tokens[i])))?;
    let time = tokens.iter().find(|t| t.contains(':'))?;
    // In all three forms the day comes before the year.
    let mut numbers = tokens
        .iter()
        .enumerate()
        .filter(|(i, t)| *i != month.0 && t.bytes().all(|b| b.is_ascii_digit()))
        .map(|(_, t)| t.parse::<u64>().ok());
    let (day, year) = (numbers.next()??, numbers.next()??);
    // RFC 850's two-digit years: 70-99 are the 1900s, the rest the 2000s.
    let year = match year {
        0..=69 => 2000 + year,
        70..=99 => 1900 + year,
        _ => year,
    };
    let mut hms = time.split(':').map(|t| t.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year as i64, month.1? as u32 + 1, day as u32);
    Some(days as u64 * 86_400 + h * 3600 + m * 60 + s)
}

/// The date (year, month 1-12, day 1-31) `days` days after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The days from 1970-01-01 to a date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_EXAMPLE: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn dates_are_written_as_imf_fixdate() {
        let time = UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE);
        assert_eq!(http_date(time), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(http_date(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn the_three_forms_are_read() {
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(text), Some(RFC_EXAMPLE), "{text}");
        }
    }

    #[test]
    fn what_is_written_reads_back_every_day_for_sixty_years() {
        for day in 0..(60 * 366) {
            let secs = day * 86_400 + 12 * 3600 + 34 * 60 + 56;
            let text = http_date(UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(parse_http_date(&text), Some(secs), "{text}");
        }
    }

    #[test]
    fn garbage_is_no_date() {
        for text in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(text), None, "{text}");
        }
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:00:00 GMT"), None);
    }
}
