//! Time as the licence code sees it: whole seconds since the Unix epoch (UTC).
//!
//! The pure parts of this crate never read the clock; they take `now` as an argument.
//! [`now`] is the one place that does, for the IO layer.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds in a day.
pub const DAY: u64 = 86_400;

/// The current time in seconds since the Unix epoch (0 if the clock is before 1970).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Parse `YYYY-MM-DD` as midnight UTC of that day.
pub fn parse_date(text: &str) -> Option<u64> {
    let mut parts = text.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject 2025-02-30 and the like: the day must round-trip.
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    u64::try_from(days).ok().map(|d| d * DAY)
}

/// `YYYY-MM-DD` (UTC) of a time.
pub fn format_date(t: u64) -> String {
    let (y, m, d) = civil_from_days((t / DAY) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The last day (`YYYY-MM-DD`, UTC) on which a term ending at `end` still runs: what
/// "valid through" means to a person.
pub fn last_day(end: u64) -> String {
    format_date(end.saturating_sub(1))
}

/// `YYYY-MM-DD HH:MM UTC` of a time.
pub fn format_datetime(t: u64) -> String {
    let secs = t % DAY;
    format!(
        "{} {:02}:{:02} UTC",
        format_date(t),
        secs / 3600,
        (secs % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(951_868_800));
        assert_eq!(format_date(951_868_800), "2000-03-01");
        assert_eq!(format_datetime(951_868_800 + 3_723), "2000-03-01 01:02 UTC");
        for days in [0u64, 59, 60, 365, 10_957, 20_000, 2_932_896] {
            let t = days * DAY;
            assert_eq!(parse_date(&format_date(t)), Some(t), "day {days}");
        }
    }

    #[test]
    fn bad_dates_are_refused() {
        for bad in [
            "",
            "2025",
            "2025-13-01",
            "2025-02-30",
            "2025-00-10",
            "1969-12-31",
            "x-1-1",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
    }
}
