//! Dates as CRMs want them, without a date library: ISO 8601 with an offset, and reading
//! the script's `date`/`datetime` values.

use callhelper_script::Timestamp;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2024-05-17T14:03:00+03:00` for a time, shown at `utc_offset_min`.
pub fn iso8601(t: Timestamp, utc_offset_min: i32) -> String {
    let secs = t.0.div_euclid(1000) + i64::from(utc_offset_min) * 60;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let sign = if utc_offset_min < 0 { '-' } else { '+' };
    let off = utc_offset_min.unsigned_abs();
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        off / 60,
        off % 60
    )
}

/// `2024-05-17` for a time, at `utc_offset_min`.
pub fn date(t: Timestamp, utc_offset_min: i32) -> String {
    iso8601(t, utc_offset_min)[..10].to_owned()
}

/// Read `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]]` and the same with `Z` or `±HH:MM`.
/// A date alone means `default_minute` minutes after midnight; no offset means
/// `utc_offset_min`.
pub fn parse_iso(s: &str, utc_offset_min: i32, default_minute: u32) -> Option<Timestamp> {
    let s = s.trim();
    let num = |a: usize, b: usize| -> Option<i64> {
        s.get(a..b)
            .filter(|x| x.bytes().all(|c| c.is_ascii_digit()))?
            .parse()
            .ok()
    };
    let y = num(0, 4)?;
    if s.as_bytes().get(4) != Some(&b'-') || s.as_bytes().get(7) != Some(&b'-') {
        return None;
    }
    let m = u32::try_from(num(5, 7)?)
        .ok()
        .filter(|m| (1..=12).contains(m))?;
    let d = u32::try_from(num(8, 10)?)
        .ok()
        .filter(|d| (1..=31).contains(d))?;
    let mut minutes = i64::from(default_minute);
    let mut seconds = 0;
    let mut offset = i64::from(utc_offset_min);
    if s.len() > 10 {
        if !matches!(s.as_bytes()[10], b'T' | b' ') || s.as_bytes().get(13) != Some(&b':') {
            return None;
        }
        let h = num(11, 13).filter(|h| *h < 24)?;
        let mi = num(14, 16).filter(|m| *m < 60)?;
        minutes = h * 60 + mi;
        let mut rest = &s[16..];
        if let Some(r) = rest.strip_prefix(':') {
            seconds = r.get(..2)?.parse::<i64>().ok().filter(|x| *x < 61)?;
            rest = &r[2..];
            if let Some(frac) = rest.strip_prefix('.') {
                let n = frac.bytes().take_while(u8::is_ascii_digit).count();
                rest = &frac[n..];
            }
        }
        match rest {
            "" => {}
            "Z" | "z" => offset = 0,
            _ => {
                let sign = match rest.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let r = rest[1..].replace(':', "");
                if r.len() != 4 || !r.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                let oh: i64 = r[..2].parse().ok()?;
                let om: i64 = r[2..].parse().ok()?;
                offset = sign * (oh * 60 + om);
            }
        }
    }
    let days = days_from_civil(y, m, d);
    let secs = days * 86_400 + minutes * 60 + seconds - offset * 60;
    Some(Timestamp(secs * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = Timestamp(1_715_943_780_000);
        assert_eq!(iso8601(t, 180), "2024-05-17T14:03:00+03:00");
        assert_eq!(iso8601(t, 0), "2024-05-17T11:03:00+00:00");
        assert_eq!(parse_iso("2024-05-17T14:03:00+03:00", 0, 0), Some(t));
        assert_eq!(parse_iso("2024-05-17T11:03Z", 600, 0), Some(t));
        assert_eq!(parse_iso("2024-05-17T14:03", 180, 0), Some(t));
        assert_eq!(
            parse_iso("2024-05-17", 0, 0),
            Some(Timestamp(1_715_904_000_000))
        );
        assert_eq!(parse_iso("17.05.2024", 0, 0), None);
        assert_eq!(iso8601(Timestamp(-1000), 0), "1969-12-31T23:59:59+00:00");
    }
}
