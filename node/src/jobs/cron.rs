//! AWS's cron expressions for job maintenance windows:
//! `cron(Minutes Hours Day-of-month Month Day-of-week Year)`, in UTC. Each field takes
//! `*`, a value, a range `a-b`, a step `*/n`, `a/n` or `a-b/n`, and comma lists of those;
//! months and days of the week also by name (`JAN`, `MON`; Sunday is 1). Day-of-month or
//! day-of-week is `?` (the other decides). AWS's `L`, `W` and `#` are refused with that
//! reason.

/// One field: the ranges (start, end, step) it matches, or any value (`?`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Any,
    Ranges(Vec<(u32, u32, u32)>),
}

impl Field {
    fn matches(&self, v: u32) -> bool {
        match self {
            Field::Any => true,
            Field::Ranges(r) => r.iter().any(|&(a, b, step)| v >= a && v <= b && (v - a).is_multiple_of(step)),
        }
    }
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minute: Field,
    hour: Field,
    day: Field,
    month: Field,
    weekday: Field,
    year: Field,
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(s: &str, names: &[&str], min: u32, max: u32, field: &str) -> Result<u32, String> {
    let v = match names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        Some(i) => i as u32 + 1,
        None => s.parse().map_err(|_| {
            format!("{field} {s:?} is not a number{}", if names.is_empty() { "" } else { " or a name" })
        })?,
    };
    if v < min || v > max {
        return Err(format!("{field} {v} is outside {min}-{max}"));
    }
    Ok(v)
}

fn field(s: &str, names: &[&str], min: u32, max: u32, name: &str, may_be_any: bool) -> Result<Field, String> {
    if s == "?" {
        return if may_be_any { Ok(Field::Any) } else { Err(format!("{name} cannot be '?'")) };
    }
    if s.contains(['L', 'W', '#']) && !names.iter().any(|n| s.to_ascii_uppercase().contains(n)) {
        return Err(format!("{name} {s:?}: L, W and # are not supported"));
    }
    let mut ranges = Vec::new();
    for item in s.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, step)) => {
                let step: u32 = step.parse().map_err(|_| format!("{name} step {step:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{name} step must be at least 1"));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (a, b) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a, names, min, max, name)?, value(b, names, min, max, name)?),
                None => {
                    let a = value(r, names, min, max, name)?;
                    (a, if step > 1 { max } else { a })
                }
            },
        };
        if a > b {
            return Err(format!("{name} range {range:?} runs backwards"));
        }
        ranges.push((a, b, step));
    }
    Ok(Field::Ranges(ranges))
}

impl Cron {
    /// Parses `cron(...)` with its six fields.
    pub fn parse(s: &str) -> Result<Cron, String> {
        let inner = s.trim().strip_prefix("cron(").and_then(|r| r.strip_suffix(')')).ok_or_else(|| {
            format!("{s:?} is not of the form cron(Minutes Hours Day-of-month Month Day-of-week Year)")
        })?;
        let f: Vec<&str> = inner.split_whitespace().collect();
        let [minute, hour, day, month, weekday, year] = f.as_slice() else {
            return Err(format!("{s:?} must have 6 fields, not {}", f.len()));
        };
        let cron = Cron {
            minute: field(minute, &[], 0, 59, "minutes", false)?,
            hour: field(hour, &[], 0, 23, "hours", false)?,
            day: field(day, &[], 1, 31, "day-of-month", true)?,
            month: field(month, &MONTHS, 1, 12, "month", false)?,
            weekday: field(weekday, &WEEKDAYS, 1, 7, "day-of-week", true)?,
            year: field(year, &[], 1970, 2199, "year", false)?,
        };
        if (cron.day == Field::Any) == (cron.weekday == Field::Any) {
            return Err(format!("{s:?}: exactly one of day-of-month and day-of-week must be '?'"));
        }
        Ok(cron)
    }

    /// Whether the minute starting at `epoch_minute` (UTC) matches.
    pub fn matches(&self, epoch_minute: u64) -> bool {
        let days = (epoch_minute / 1440) as i64;
        let (y, m, d) = civil_from_days(days);
        let weekday = ((days + 4).rem_euclid(7) + 1) as u32; // 1970-01-01 was a Thursday (5)
        let in_day = epoch_minute % 1440;
        self.minute.matches((in_day % 60) as u32)
            && self.hour.matches((in_day / 60) as u32)
            && self.day.matches(d)
            && self.month.matches(m)
            && self.weekday.matches(weekday)
            && self.year.matches(y)
    }
}

/// (year, month, day) of a day count from 1970-01-01.
fn civil_from_days(z: i64) -> (u32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as u32;
    (y, m, d)
}

/// Whether `now_ms` lies inside a window that opened at a minute matching `cron` and lasts
/// `duration_minutes`.
pub fn in_window(cron: &Cron, duration_minutes: u32, now_ms: u64) -> bool {
    let now = now_ms / 60_000;
    (0..u64::from(duration_minutes)).any(|back| now >= back && cron.matches(now - back))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch minute of a UTC date and time.
    fn at(s: &str) -> u64 {
        crate::jobs::model::parse_date_time(s).unwrap() / 60_000
    }

    #[test]
    fn fields_match_aws_examples() {
        // Every weekday at 22:00.
        let c = Cron::parse("cron(0 22 ? * MON-FRI *)").unwrap();
        assert!(c.matches(at("2026-12-07T22:00"))); // a Monday
        assert!(!c.matches(at("2026-12-06T22:00"))); // a Sunday
        assert!(!c.matches(at("2026-12-07T22:01")));
        // Every 15 minutes on the first of the month.
        let c = Cron::parse("cron(0/15 * 1 * ? *)").unwrap();
        assert!(c.matches(at("2027-01-01T03:45")));
        assert!(!c.matches(at("2027-01-01T03:50")));
        assert!(!c.matches(at("2027-01-02T03:45")));
        assert!(Cron::parse("cron(0 0 1 JAN ? 2099)").unwrap().matches(at("2099-01-01T00:00")));
    }

    #[test]
    fn windows_last_their_duration() {
        let c = Cron::parse("cron(0 2 * * ? *)").unwrap();
        let open = at("2026-12-06T02:00") * 60_000;
        assert!(in_window(&c, 60, open));
        assert!(in_window(&c, 60, open + 59 * 60_000));
        assert!(!in_window(&c, 60, open + 60 * 60_000));
        assert!(!in_window(&c, 60, open - 1));
    }

    proptest::proptest! {
        /// Whatever a caller sends, parsing answers (never panics), and a parsed expression
        /// can be matched against any minute.
        #[test]
        fn any_input_parses_or_is_refused(fields in "[0-9A-Z*?/,#-]{0,6}( [0-9A-Z*?/,#-]{0,6}){0,6}", minute in 0u64..200_000_000) {
            if let Ok(c) = Cron::parse(&format!("cron({fields})")) {
                let _ = c.matches(minute);
            }
        }
    }

    #[test]
    fn bad_expressions_say_why() {
        for (bad, why) in [
            ("0 2 * * ? *", "form"),
            ("cron(0 2 * *)", "6 fields"),
            ("cron(0 2 * * * *)", "exactly one"),
            ("cron(61 2 * * ? *)", "outside"),
            ("cron(0 2 L * ? *)", "not supported"),
            ("cron(0 2 ? * 2#1 *)", "not supported"),
            ("cron(0 2 5-1 * ? *)", "backwards"),
        ] {
            let e = Cron::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
