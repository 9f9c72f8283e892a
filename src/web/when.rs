//! Dates as people read them: "today 14:13", "tomorrow 09:00",
//! "3 Dec 2026 18:40", and spans such as "today 14:13, for 2 hours".
//!
//! Pages render in UTC and say so once in the page; `<time>` elements carry
//! the RFC 3339 instant for assistive technology and copy-paste.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The instant in RFC 3339 (for `<time datetime>`), or empty.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// `unix` relative to `now`: "today 14:13", "yesterday 09:05",
/// "tomorrow 08:00", or "3 Dec 2026 18:40" further away.
pub fn readable(unix: i64, now: i64) -> String {
    let (Ok(at), Ok(today)) = (
        OffsetDateTime::from_unix_timestamp(unix),
        OffsetDateTime::from_unix_timestamp(now),
    ) else {
        return String::new();
    };
    let clock = format!("{:02}:{:02}", at.hour(), at.minute());
    let days = (at.date() - today.date()).whole_days();
    match days {
        0 => format!("today {clock}"),
        1 => format!("tomorrow {clock}"),
        -1 => format!("yesterday {clock}"),
        _ => format!(
            "{} {} {} {clock}",
            at.day(),
            month_abbrev(at.month()),
            at.year()
        ),
    }
}

/// A duration in the largest whole units that read naturally:
/// "45 minutes", "2 hours", "1 hour 30 minutes", "3 days".
pub fn duration(seconds: i64) -> String {
    let minutes = seconds.max(0) / 60;
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if minutes < 60 {
        return plural(minutes, "minute");
    }
    if minutes < 24 * 60 {
        let (h, m) = (minutes / 60, minutes % 60);
        return if m == 0 {
            plural(h, "hour")
        } else {
            format!("{} {}", plural(h, "hour"), plural(m, "minute"))
        };
    }
    let (d, h) = (minutes / (24 * 60), (minutes % (24 * 60)) / 60);
    if h == 0 {
        plural(d, "day")
    } else {
        format!("{} {}", plural(d, "day"), plural(h, "hour"))
    }
}

/// A validity period: "today 14:13, for 2 hours".
pub fn span(start: i64, end: i64, now: i64) -> String {
    format!("{}, for {}", readable(start, now), duration(end - start))
}

fn month_abbrev(m: time::Month) -> &'static str {
    use time::Month::*;
    match m {
        January => "Jan",
        February => "Feb",
        March => "Mar",
        April => "Apr",
        May => "May",
        June => "Jun",
        July => "Jul",
        August => "Aug",
        September => "Sep",
        October => "Oct",
        November => "Nov",
        December => "Dec",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-04T13:13:14Z
    const NOW: i64 = 1_796_389_994;

    #[test]
    fn instants_near_now_read_as_days() {
        assert_eq!(readable(NOW, NOW), "today 13:13");
        assert_eq!(readable(NOW + 86_400, NOW), "tomorrow 13:13");
        assert_eq!(readable(NOW - 86_400, NOW), "yesterday 13:13");
        assert_eq!(readable(NOW + 3 * 86_400, NOW), "7 Dec 2026 13:13");
    }

    #[test]
    fn spans_read_as_start_and_length() {
        assert_eq!(span(NOW, NOW + 7200, NOW), "today 13:13, for 2 hours");
        assert_eq!(duration(60), "1 minute");
        assert_eq!(duration(90 * 60), "1 hour 30 minutes");
        assert_eq!(duration(8 * 3600), "8 hours");
        assert_eq!(duration(30 * 86_400), "30 days");
        assert_eq!(duration(26 * 3600), "1 day 2 hours");
    }
}
