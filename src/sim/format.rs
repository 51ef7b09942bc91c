//! Fast writers for the scalar formats of the event contract: RFC 3339 UTC times, quantities
//! in thousandths and prices in cents.
//!
//! The simulator formats every record, so these avoid `chrono` and `format!` on the hot path.

/// Milliseconds in one hour.
pub(crate) const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in one day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// The civil date `(year, month, day)` of a count of days since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both fit in u32 by construction: day in 1..=31, month in 1..=12.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Day of the week of a time, 0 = Monday … 6 = Sunday.
pub(crate) fn weekday(ms: i64) -> usize {
    // 1970-01-01 was a Thursday (3 when Monday is 0).
    (ms.div_euclid(DAY_MS) + 3).rem_euclid(7) as usize
}

/// Hour of the day (UTC) of a time, 0..=23.
pub(crate) fn hour_of_day(ms: i64) -> usize {
    (ms.rem_euclid(DAY_MS) / HOUR_MS) as usize
}

fn push_digits(out: &mut Vec<u8>, value: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut v = value;
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// Appends `ms` as an RFC 3339 UTC time with a `Z`, to the second (`2026-01-05T10:15:00Z`)
/// or, with `millis`, to the millisecond (`2026-01-05T10:15:00.250Z`).
///
/// Years outside 0..=9999 are clamped to four digits; the simulator never produces them.
pub(crate) fn write_time(out: &mut Vec<u8>, ms: i64, millis: bool) {
    let (year, month, day) = civil_from_days(ms.div_euclid(DAY_MS));
    let in_day = ms.rem_euclid(DAY_MS);
    let secs = (in_day / 1_000) as u32;
    push_digits(out, year.clamp(0, 9_999) as u32, 4);
    out.push(b'-');
    push_digits(out, month, 2);
    out.push(b'-');
    push_digits(out, day, 2);
    out.push(b'T');
    push_digits(out, secs / 3_600, 2);
    out.push(b':');
    push_digits(out, secs / 60 % 60, 2);
    out.push(b':');
    push_digits(out, secs % 60, 2);
    if millis {
        out.push(b'.');
        push_digits(out, (in_day % 1_000) as u32, 3);
    }
    out.push(b'Z');
}

/// Appends an unsigned integer in decimal.
pub(crate) fn write_u64(out: &mut Vec<u8>, value: u64) {
    let mut buf = [0u8; 20];
    let mut v = value;
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

/// Appends an unsigned integer zero-padded to at least `width` digits.
pub(crate) fn write_u64_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = 1;
    let mut v = value;
    while v >= 10 {
        v /= 10;
        digits += 1;
    }
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(digits)));
    write_u64(out, value);
}

/// Appends a quantity held in thousandths as the shortest exact JSON number:
/// `2000` → `2`, `1250` → `1.25`, `-3000` → `-3`.
pub(crate) fn write_qty(out: &mut Vec<u8>, milli: i64) {
    if milli < 0 {
        out.push(b'-');
    }
    let abs = milli.unsigned_abs();
    write_u64(out, abs / 1_000);
    let mut frac = abs % 1_000;
    if frac != 0 {
        out.push(b'.');
        let mut width = 3;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        push_digits(out, frac as u32, width);
    }
}

/// Appends a price held in cents with two decimals: `1999` → `19.99`.
pub(crate) fn write_price(out: &mut Vec<u8>, cents: u32) {
    write_u64(out, u64::from(cents / 100));
    out.push(b'.');
    push_digits(out, cents % 100, 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days since 1970-01-01 of a civil date (proleptic Gregorian), after H. Hinnant's algorithm.
    fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(month);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn time(ms: i64, millis: bool) -> String {
        let mut out = Vec::new();
        write_time(&mut out, ms, millis);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn times_match_chrono() {
        for ms in [
            0,
            1_767_571_200_000,
            1_767_571_200_000 + 10 * HOUR_MS + 15 * 60_000 + 7_250,
            951_782_400_000, // 2000-02-29
            4_102_444_799_999,
            253_402_300_799_000, // 9999-12-31T23:59:59Z
            -62_135_596_800_000, // 0001-01-01
        ] {
            let dt = chrono::DateTime::from_timestamp_millis(ms).unwrap();
            let secs = dt.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let millis = dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            assert_eq!(time(ms - ms.rem_euclid(1000), false), secs);
            assert_eq!(time(ms, true), millis);
            let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
            assert_eq!(days_from_civil(y, m, d), ms.div_euclid(DAY_MS));
        }
    }

    #[test]
    fn calendar_helpers() {
        let monday = 1_767_571_200_000;
        assert_eq!(weekday(monday), 0);
        assert_eq!(weekday(monday + 6 * DAY_MS + 5), 6);
        assert_eq!(hour_of_day(monday + 13 * HOUR_MS + 59 * 60_000), 13);
        assert_eq!(days_from_civil(2026, 1, 5) * DAY_MS, monday);
    }

    #[test]
    fn numbers() {
        let show = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            f(&mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(show(&|o| write_qty(o, 2_000)), "2");
        assert_eq!(show(&|o| write_qty(o, 1_250)), "1.25");
        assert_eq!(show(&|o| write_qty(o, 485)), "0.485");
        assert_eq!(show(&|o| write_qty(o, 10_050)), "10.05");
        assert_eq!(show(&|o| write_qty(o, -3_000)), "-3");
        assert_eq!(show(&|o| write_qty(o, 0)), "0");
        assert_eq!(show(&|o| write_price(o, 1_999)), "19.99");
        assert_eq!(show(&|o| write_price(o, 5)), "0.05");
        assert_eq!(show(&|o| write_u64(o, 0)), "0");
        assert_eq!(show(&|o| write_u64(o, u64::MAX)), u64::MAX.to_string());
        assert_eq!(show(&|o| write_u64_padded(o, 42, 4)), "0042");
        assert_eq!(show(&|o| write_u64_padded(o, 123_456, 4)), "123456");
    }
}
