//! Dates without a date library: milliseconds since 1970 (UTC) to and from the ISO 8601
//! forms that exports and filters use. Howard Hinnant's civil-calendar algorithms.

use callhelper_script::Timestamp;

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `2026-03-31T14:30:05Z`.
pub fn iso(t: Timestamp) -> String {
    let mut s = String::with_capacity(20);
    iso_into(t, &mut s);
    s
}

/// [`iso`], appended to `out` (exports format two of these per row: no allocation).
pub fn iso_into(t: Timestamp, out: &mut String) {
    let days = t.0.div_euclid(DAY_MS);
    let secs = t.0.rem_euclid(DAY_MS) / 1000;
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        return;
    }
    let mut b = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, i64::from(m));
    put(8, 2, i64::from(d));
    put(11, 2, secs / 3600);
    put(14, 2, secs / 60 % 60);
    put(17, 2, secs % 60);
    // Only ASCII digits and separators were written.
    out.extend(b.iter().map(|&c| char::from(c)));
}

/// Read `YYYY-MM-DD` (the start of that day, UTC) or `YYYY-MM-DDTHH:MM[:SS]` (UTC).
pub fn parse(s: &str) -> Option<Timestamp> {
    let s = s.trim().trim_end_matches('Z');
    let (date, clock) = match s.split_once(['T', ' ']) {
        Some((d, c)) => (d, Some(c)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None; // 31 April and the like
    }
    let mut ms = days * DAY_MS;
    if let Some(c) = clock {
        let mut parts = c.split(':');
        let h: i64 = parts.next()?.parse().ok()?;
        let min: i64 = parts.next()?.parse().ok()?;
        let sec: i64 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
        if h > 23 || min > 59 || sec > 59 {
            return None;
        }
        ms += (h * 3600 + min * 60 + sec) * 1000;
    }
    Some(Timestamp(ms))
}

/// Now, from the system clock.
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `days` whole days, in milliseconds.
pub fn days(days: i64) -> i64 {
    days.saturating_mul(DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(iso(Timestamp(0)), "1970-01-01T00:00:00Z");
        assert_eq!(iso(Timestamp(-1)), "1969-12-31T23:59:59Z");
        assert_eq!(iso(Timestamp(253_402_300_800_000)), "10000-01-01T00:00:00Z");
        let t = parse("2026-03-31T14:30").unwrap();
        assert_eq!(iso(t), "2026-03-31T14:30:00Z");
        assert_eq!(
            parse("2024-02-29").map(iso).as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
        assert_eq!(parse("2023-02-29"), None);
        assert_eq!(parse("2026-13-01"), None);
        assert_eq!(parse("yesterday"), None);
        for d in [-800_000, -1, 0, 1, 19_000, 3_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
