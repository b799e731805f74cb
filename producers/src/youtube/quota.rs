//! When YouTube quotas reset: midnight Pacific Time (UTC-8, or UTC-7 while US daylight saving time
//! is on: from the second Sunday of March to the first Sunday of November).

use time::{Date, Duration, Month, OffsetDateTime, Time};

/// The `n`-th Sunday (1-based) of `month` in `year`.
fn nth_sunday(year: i32, month: Month, n: u8) -> Date {
    let first = Date::from_calendar_date(year, month, 1).expect("valid date");
    let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
    first + Duration::days(i64::from(to_sunday) + 7 * i64::from(n - 1))
}

/// Whether Pacific local midnight starting `day` is in daylight saving time (the switches happen
/// at 02:00, so midnight of the start day is still standard time and of the end day still DST).
fn dst_at_local_midnight(day: Date) -> bool {
    let start = nth_sunday(day.year(), Month::March, 2);
    let end = nth_sunday(day.year(), Month::November, 1);
    day > start && day <= end
}

/// The UTC offset (hours) in effect at `utc`.
fn offset_hours(utc: OffsetDateTime) -> i64 {
    let year = utc.year();
    // DST starts at 02:00 PST = 10:00 UTC and ends at 02:00 PDT = 09:00 UTC.
    let start = nth_sunday(year, Month::March, 2).with_time(Time::from_hms(10, 0, 0).unwrap());
    let end = nth_sunday(year, Month::November, 1).with_time(Time::from_hms(9, 0, 0).unwrap());
    let t = time::PrimitiveDateTime::new(utc.date(), utc.time());
    if t >= start && t < end {
        -7
    } else {
        -8
    }
}

/// The next quota reset after `now_ms` (epoch ms), as epoch ms.
pub fn next_reset_ms(now_ms: i64) -> i64 {
    let utc = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let local = utc + Duration::hours(offset_hours(utc));
    let next_day = local.date().next_day().expect("not the end of time");
    let offset = if dst_at_local_midnight(next_day) {
        -7
    } else {
        -8
    };
    let midnight_utc = next_day.midnight().assume_utc() - Duration::hours(offset);
    (midnight_utc.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::next_reset_ms;
    use time::macros::datetime;

    fn ms(t: time::OffsetDateTime) -> i64 {
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn midnight_pacific_in_winter_and_summer() {
        // Winter (PST, UTC-8): 2026-01-15 12:00 UTC = 04:00 PST -> 2026-01-16 08:00 UTC.
        assert_eq!(
            next_reset_ms(ms(datetime!(2026-01-15 12:00 UTC))),
            ms(datetime!(2026-01-16 08:00 UTC))
        );
        // 2026-01-15 07:59 UTC = 23:59 PST on the 14th -> 2026-01-15 08:00 UTC.
        assert_eq!(
            next_reset_ms(ms(datetime!(2026-01-15 07:59 UTC))),
            ms(datetime!(2026-01-15 08:00 UTC))
        );
        // Summer (PDT, UTC-7): 2026-07-01 12:00 UTC -> 2026-07-02 07:00 UTC.
        assert_eq!(
            next_reset_ms(ms(datetime!(2026-07-01 12:00 UTC))),
            ms(datetime!(2026-07-02 07:00 UTC))
        );
    }

    #[test]
    fn across_the_switches() {
        // 2026: DST from Sunday 8 March to Sunday 1 November.
        // Saturday 7 March 12:00 UTC (04:00 PST) -> midnight starting 8 March is PST: 08:00 UTC.
        assert_eq!(
            next_reset_ms(ms(datetime!(2026-03-07 12:00 UTC))),
            ms(datetime!(2026-03-08 08:00 UTC))
        );
        // Sunday 8 March 12:00 UTC (05:00 PDT) -> midnight starting 9 March is PDT: 07:00 UTC.
        assert_eq!(
            next_reset_ms(ms(datetime!(2026-03-08 12:00 UTC))),
            ms(datetime!(2026-03-09 07:00 UTC))
        );
        // Saturday 31 October 12:00 UTC (05:00 PDT) -> midnight starting 1 November is PDT: 07:00 UTC.
        assert_eq!(
            next_reset_ms(ms(datetime!(2026-10-31 12:00 UTC))),
            ms(datetime!(2026-11-01 07:00 UTC))
        );
        // Sunday 1 November 12:00 UTC (04:00 PST) -> 2 November 08:00 UTC.
        assert_eq!(
            next_reset_ms(ms(datetime!(2026-11-01 12:00 UTC))),
            ms(datetime!(2026-11-02 08:00 UTC))
        );
    }
}
