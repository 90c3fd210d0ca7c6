//! Date and time patterns for AWS IoT SQL: `parse_time` formats with Joda-Time `DateTimeFormat`
//! patterns and `time_to_epoch` parses with java.time `DateTimeFormatter` patterns (JDK 11).
//!
//! The two pattern languages look alike but differ (Joda `Y` is the year of era, java.time `Y` is
//! the week-based year; java.time has optional sections and strict field widths), so each has its
//! own compiler here. Text is English only. Nothing here panics on untrusted patterns, zones or
//! text: every problem comes back as a [`TimeError`].

use std::fmt::{self, Write as _};

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike};
use chrono_tz::{OffsetName, Tz, TZ_VARIANTS};

/// Longest pattern accepted; real patterns are far shorter, and the bound caps the work per call.
const MAX_PATTERN_LEN: usize = 256;
/// Longest zone argument accepted by [`format_epoch_millis`].
const MAX_ZONE_LEN: usize = 64;
/// How much of an offending text an error message quotes.
const MAX_QUOTED_LEN: usize = 64;
/// java.time's offset limit, also used for fixed zones given to `parse_time`.
const MAX_OFFSET_SECS: i32 = 18 * 3600;

const MONTHS_FULL: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_SHORT: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS_FULL: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const DAYS_SHORT: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Common zone abbreviations with their English long names and offsets in seconds. Formatting
/// uses it for `zzzz` (matching abbreviation and offset first); parsing (`z`) maps each name to
/// its fixed offset, the first row winning for an ambiguous abbreviation such as CST or IST.
const ZONE_NAMES: &[(&str, &str, i32)] = &[
    ("UTC", "Coordinated Universal Time", 0),
    ("GMT", "Greenwich Mean Time", 0),
    ("EST", "Eastern Standard Time", -5 * 3600),
    ("EDT", "Eastern Daylight Time", -4 * 3600),
    ("CST", "Central Standard Time", -6 * 3600),
    ("CDT", "Central Daylight Time", -5 * 3600),
    ("MST", "Mountain Standard Time", -7 * 3600),
    ("MDT", "Mountain Daylight Time", -6 * 3600),
    ("PST", "Pacific Standard Time", -8 * 3600),
    ("PDT", "Pacific Daylight Time", -7 * 3600),
    ("AKST", "Alaska Standard Time", -9 * 3600),
    ("AKDT", "Alaska Daylight Time", -8 * 3600),
    ("HST", "Hawaii-Aleutian Standard Time", -10 * 3600),
    ("HDT", "Hawaii-Aleutian Daylight Time", -9 * 3600),
    ("AST", "Atlantic Standard Time", -4 * 3600),
    ("ADT", "Atlantic Daylight Time", -3 * 3600),
    ("NST", "Newfoundland Standard Time", -(3 * 3600 + 1800)),
    ("NDT", "Newfoundland Daylight Time", -(2 * 3600 + 1800)),
    ("BST", "British Summer Time", 3600),
    ("IST", "India Standard Time", 5 * 3600 + 1800),
    ("CET", "Central European Standard Time", 3600),
    ("CEST", "Central European Summer Time", 2 * 3600),
    ("EET", "Eastern European Standard Time", 2 * 3600),
    ("EEST", "Eastern European Summer Time", 3 * 3600),
    ("WET", "Western European Standard Time", 0),
    ("WEST", "Western European Summer Time", 3600),
    ("MSK", "Moscow Standard Time", 3 * 3600),
    ("SAST", "South Africa Standard Time", 2 * 3600),
    ("WAT", "West Africa Standard Time", 3600),
    ("CAT", "Central Africa Time", 2 * 3600),
    ("EAT", "East Africa Time", 3 * 3600),
    ("PKT", "Pakistan Standard Time", 5 * 3600),
    ("HKT", "Hong Kong Standard Time", 8 * 3600),
    ("SGT", "Singapore Standard Time", 8 * 3600),
    ("JST", "Japan Standard Time", 9 * 3600),
    ("KST", "Korean Standard Time", 9 * 3600),
    ("AWST", "Australian Western Standard Time", 8 * 3600),
    ("ACST", "Australian Central Standard Time", 9 * 3600 + 1800),
    ("ACDT", "Australian Central Daylight Time", 10 * 3600 + 1800),
    ("AEST", "Australian Eastern Standard Time", 10 * 3600),
    ("AEDT", "Australian Eastern Daylight Time", 11 * 3600),
    ("NZST", "New Zealand Standard Time", 12 * 3600),
    ("NZDT", "New Zealand Daylight Time", 13 * 3600),
    ("CST", "China Standard Time", 8 * 3600),
    ("CST", "Cuba Standard Time", -5 * 3600),
    ("CDT", "Cuba Daylight Time", -4 * 3600),
    ("IST", "Israel Standard Time", 2 * 3600),
    ("IDT", "Israel Daylight Time", 3 * 3600),
    ("IST", "Irish Standard Time", 3600),
];

/// Error for a bad pattern, unknown zone or unparsable text; the message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeError(pub String);

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TimeError {}

/// Formats epoch milliseconds with a Joda-Time `DateTimeFormat` pattern in a time zone (IANA id such as
/// "America/Belize", or "UTC", or fixed offsets like "+01:00" / "UTC+01:00"); AWS IoT SQL's parse_time.
pub fn format_epoch_millis(pattern: &str, epoch_ms: i64, zone: &str) -> Result<String, TimeError> {
    let items = compile_format(pattern)?;
    let zone = parse_format_zone(zone)?;
    let moment = Moment::new(epoch_ms, zone)?;
    let mut out = String::new();
    for item in &items {
        match item {
            FormatItem::Literal(text) => out.push_str(text),
            FormatItem::Field(letter, count) => write_field(&mut out, *letter, *count, &moment),
        }
    }
    Ok(out)
}

/// Parses text with a java.time `DateTimeFormatter` pattern (JDK 11) into epoch milliseconds, UTC when
/// the text carries no zone or offset; AWS IoT SQL's time_to_epoch.
pub fn parse_to_epoch_millis(text: &str, pattern: &str) -> Result<i64, TimeError> {
    let items = compile_parse(pattern)?;
    let mut parsed = Parsed::default();
    match parse_items(&items, text, 0, &mut parsed) {
        Ok(end) if end == text.len() => {
            resolve(&parsed).map_err(|e| TimeError(format!("text '{}' could not be parsed: {}", quote(text), e.0)))
        }
        Ok(end) => Err(TimeError(format!(
            "text '{}' could not be parsed, unparsed text found at index {}",
            quote(text),
            char_index(text, end)
        ))),
        Err(at) => {
            Err(TimeError(format!("text '{}' could not be parsed at index {}", quote(text), char_index(text, at))))
        }
    }
}

/// Checks a Joda-Time pattern without formatting anything, so a rule checker can reject a constant bad pattern early.
pub fn validate_format_pattern(pattern: &str) -> Result<(), TimeError> {
    compile_format(pattern).map(|_| ())
}

/// Same for java.time parse patterns.
pub fn validate_parse_pattern(pattern: &str) -> Result<(), TimeError> {
    compile_parse(pattern).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

fn check_pattern_len(pattern: &str) -> Result<(), TimeError> {
    if pattern.len() > MAX_PATTERN_LEN {
        Err(TimeError(format!("time pattern is longer than {MAX_PATTERN_LEN} bytes")))
    } else {
        Ok(())
    }
}

/// The start of untrusted text, for error messages.
fn quote(text: &str) -> String {
    if text.chars().count() <= MAX_QUOTED_LEN {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(MAX_QUOTED_LEN).collect();
        short.push_str("...");
        short
    }
}

/// Character index of a byte position, as java.time reports parse positions.
fn char_index(text: &str, byte_pos: usize) -> usize {
    text.get(..byte_pos).map_or(byte_pos, |head| head.chars().count())
}

/// An offset as Joda-Time and java.time print zone ids: `+01:00`, or `+05:43:20` when seconds matter.
fn offset_id(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    if s == 0 {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}:{m:02}:{s:02}")
    }
}

/// An IANA zone by exact name, else by case-insensitive name.
fn find_region(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok().or_else(|| TZ_VARIANTS.iter().copied().find(|tz| tz.name().eq_ignore_ascii_case(name)))
}

// ---------------------------------------------------------------------------------------------
// Joda-Time formatting (parse_time)
// ---------------------------------------------------------------------------------------------

/// The pattern letters Joda-Time's `DateTimeFormat` knows.
const JODA_LETTERS: &str = "GCYxweEyDMdaKhHkmsSzZ";

/// One piece of a compiled Joda-Time pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FormatItem {
    Literal(String),
    /// A pattern letter and how many times it is repeated.
    Field(char, usize),
}

/// Splits a Joda-Time pattern. As in Joda, `'` toggles quoting, `''` is a literal quote inside or
/// outside quotes, an unclosed quote runs to the end, and only ASCII letters are pattern letters.
fn compile_format(pattern: &str) -> Result<Vec<FormatItem>, TimeError> {
    check_pattern_len(pattern)?;
    let chars: Vec<char> = pattern.chars().collect();
    let mut items = Vec::new();
    let mut literal = String::new();
    let mut in_quote = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                literal.push('\'');
                i += 2;
            } else {
                in_quote = !in_quote;
                i += 1;
            }
            continue;
        }
        if in_quote || !c.is_ascii_alphabetic() {
            literal.push(c);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i] == c {
            i += 1;
        }
        let count = i - start;
        if !JODA_LETTERS.contains(c) {
            return Err(TimeError(format!(
                "invalid time pattern '{}': illegal pattern component '{}'",
                quote(pattern),
                c.to_string().repeat(count)
            )));
        }
        if !literal.is_empty() {
            items.push(FormatItem::Literal(std::mem::take(&mut literal)));
        }
        items.push(FormatItem::Field(c, count));
    }
    if !literal.is_empty() {
        items.push(FormatItem::Literal(literal));
    }
    Ok(items)
}

/// A zone for formatting: a fixed offset in seconds (0 is UTC) or an IANA region.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FormatZone {
    Fixed(i32),
    Region(Tz),
}

/// Reads the zone argument of parse_time: "UTC" (also "GMT", "UT", "Z"), an offset such as
/// "+01:00", "-0530" or "+01", the same after a "UTC"/"GMT"/"UT" prefix, or an IANA zone id.
fn parse_format_zone(zone: &str) -> Result<FormatZone, TimeError> {
    if zone.is_empty() || zone.len() > MAX_ZONE_LEN {
        return Err(TimeError(format!("unknown time zone '{}'", quote(zone))));
    }
    if matches!(zone, "UTC" | "GMT" | "UT" | "Z") {
        return Ok(FormatZone::Fixed(0));
    }
    let offset_text = if zone.starts_with(['+', '-']) {
        Some(zone)
    } else {
        ["UTC", "GMT", "UT"]
            .iter()
            .find_map(|prefix| zone.strip_prefix(prefix).filter(|rest| rest.starts_with(['+', '-'])))
    };
    if let Some(text) = offset_text {
        return parse_offset_loose(text)
            .map(FormatZone::Fixed)
            .ok_or_else(|| TimeError(format!("invalid time zone offset '{}'", quote(zone))));
    }
    find_region(zone).map(FormatZone::Region).ok_or_else(|| TimeError(format!("unknown time zone '{}'", quote(zone))))
}

/// A whole offset string: sign, then `h`, `hh`, `hhmm`, `hhmmss`, or `h[h]:mm[:ss]`.
fn parse_offset_loose(text: &str) -> Option<i32> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest = text.get(1..)?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    // Only ASCII digits and colons from here on, so byte slicing cannot split a character.
    let parts: Vec<&str> = if rest.contains(':') {
        rest.split(':').collect()
    } else {
        match rest.len() {
            1 | 2 => vec![rest],
            4 => vec![rest.get(..2)?, rest.get(2..)?],
            6 => vec![rest.get(..2)?, rest.get(2..4)?, rest.get(4..)?],
            _ => return None,
        }
    };
    if parts.len() > 3 {
        return None;
    }
    let mut values = [0i32; 3];
    for (i, part) in parts.iter().enumerate() {
        let len_ok = if i == 0 { (1..=2).contains(&part.len()) } else { part.len() == 2 };
        if !len_ok {
            return None;
        }
        let value: i32 = part.parse().ok()?;
        if i > 0 && value > 59 {
            return None;
        }
        values[i] = value;
    }
    let total = values[0] * 3600 + values[1] * 60 + values[2];
    (total <= MAX_OFFSET_SECS).then_some(sign * total)
}

/// The instant being formatted, seen in the requested zone.
struct Moment {
    local: NaiveDateTime,
    offset: i32,
    short_name: String,
    zone_id: String,
}

impl Moment {
    fn new(epoch_ms: i64, zone: FormatZone) -> Result<Moment, TimeError> {
        let out_of_range = || TimeError(format!("timestamp {epoch_ms} is out of the supported range"));
        let utc = DateTime::from_timestamp_millis(epoch_ms).ok_or_else(out_of_range)?;
        // Keep a day of margin on both sides so applying any zone offset stays in range.
        let naive = utc.naive_utc();
        let day = TimeDelta::days(1);
        if naive.checked_add_signed(day).is_none() || naive.checked_sub_signed(day).is_none() {
            return Err(out_of_range());
        }
        match zone {
            FormatZone::Fixed(offset) => {
                let local = naive.checked_add_signed(TimeDelta::seconds(i64::from(offset))).ok_or_else(out_of_range)?;
                let id = if offset == 0 { "UTC".to_string() } else { offset_id(offset) };
                Ok(Moment { local, offset, short_name: id.clone(), zone_id: id })
            }
            FormatZone::Region(tz) => {
                let zoned = utc.with_timezone(&tz);
                let tz_offset = zoned.offset();
                let offset = tz_offset.fix().local_minus_utc();
                let short_name = tz_offset.abbreviation().map_or_else(|| offset_id(offset), str::to_string);
                Ok(Moment { local: zoned.naive_local(), offset, short_name, zone_id: tz.name().to_string() })
            }
        }
    }

    /// English long zone name (`zzzz`), best effort; Joda prints the offset when it has no name.
    fn long_name(&self) -> String {
        ZONE_NAMES
            .iter()
            .find(|(abbr, _, offset)| *abbr == self.short_name && *offset == self.offset)
            .or_else(|| ZONE_NAMES.iter().find(|(abbr, _, _)| *abbr == self.short_name))
            .map_or_else(|| offset_id(self.offset), |(_, long, _)| long.to_string())
    }
}

/// Appends a number zero-padded to `width` digits, a minus sign in front when negative.
fn push_num(out: &mut String, value: i64, width: usize) {
    if value < 0 {
        out.push('-');
    }
    let _ = write!(out, "{:0width$}", value.unsigned_abs());
}

fn push_year(out: &mut String, year: i64, count: usize) {
    if count == 2 {
        push_num(out, year.abs() % 100, 2);
    } else {
        push_num(out, year, count);
    }
}

/// Prints an offset as Joda's `Z` (`-0600`) or `ZZ` (`-06:00`); seconds are dropped.
fn push_offset(out: &mut String, offset: i32, colon: bool) {
    let abs = offset.unsigned_abs();
    let sign = if offset < 0 { '-' } else { '+' };
    let sep = if colon { ":" } else { "" };
    let _ = write!(out, "{sign}{:02}{sep}{:02}", abs / 3600, abs / 60 % 60);
}

fn write_field(out: &mut String, letter: char, count: usize, moment: &Moment) {
    let d = &moment.local;
    let year = i64::from(d.year());
    let year_of_era = if year <= 0 { 1 - year } else { year };
    let hour = i64::from(d.hour());
    let weekday = d.weekday().num_days_from_monday() as usize;
    let month = d.month0() as usize;
    match letter {
        'G' => out.push_str(if year <= 0 { "BC" } else { "AD" }),
        'C' => push_num(out, year_of_era / 100, count),
        'Y' if count == 2 => push_year(out, year, count),
        'Y' => push_num(out, year_of_era, count),
        'y' => push_year(out, year, count),
        'x' => push_year(out, i64::from(d.iso_week().year()), count),
        'w' => push_num(out, i64::from(d.iso_week().week()), count),
        'e' => push_num(out, i64::from(d.weekday().number_from_monday()), count),
        'E' => out.push_str(if count >= 4 { DAYS_FULL[weekday] } else { DAYS_SHORT[weekday] }),
        'D' => push_num(out, i64::from(d.ordinal()), count),
        'M' if count >= 4 => out.push_str(MONTHS_FULL[month]),
        'M' if count == 3 => out.push_str(MONTHS_SHORT[month]),
        'M' => push_num(out, i64::from(d.month()), count),
        'd' => push_num(out, i64::from(d.day()), count),
        'a' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
        'K' => push_num(out, hour % 12, count),
        'h' => push_num(out, (hour + 11) % 12 + 1, count),
        'H' => push_num(out, hour, count),
        'k' => push_num(out, if hour == 0 { 24 } else { hour }, count),
        'm' => push_num(out, i64::from(d.minute()), count),
        's' => push_num(out, i64::from(d.second()), count),
        'S' => {
            // Fraction of second: `count` digits, truncated, zero-filled past milliseconds.
            let millis = format!("{:03}", (d.nanosecond() / 1_000_000).min(999));
            if count <= 3 {
                out.push_str(millis.get(..count).unwrap_or_default());
            } else {
                out.push_str(&millis);
                out.extend(std::iter::repeat_n('0', count - 3));
            }
        }
        'z' if count >= 4 => out.push_str(&moment.long_name()),
        'z' => out.push_str(&moment.short_name),
        'Z' if count <= 2 => push_offset(out, moment.offset, count == 2),
        'Z' => out.push_str(&moment.zone_id),
        // compile_format only lets Joda's letters through.
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// java.time parsing (time_to_epoch)
// ---------------------------------------------------------------------------------------------

/// The fields a parse can fill; each indexes `Parsed::values`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ProlepticYear,
    YearOfEra,
    Era,
    Month,
    DayOfMonth,
    DayOfYear,
    DayOfWeek,
    AmPm,
    HourOfDay,
    ClockHourOfDay,
    HourOfAmPm,
    ClockHourOfAmPm,
    Minute,
    Second,
    Nano,
}

const FIELD_COUNT: usize = Field::Nano as usize + 1;

/// java.time `SignStyle`, as it behaves when parsing strictly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignStyle {
    /// `-` accepted, `+` rejected.
    Normal,
    /// No sign at all.
    NotNegative,
    /// Either sign; `+` only, and then required, when more digits than the minimum width follow.
    ExceedsPad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumKind {
    Plain,
    /// `yy`/`uu`: two digits, years 2000 to 2099.
    TwoDigitYear,
    /// `S..S`: exactly `min` digits of a decimal fraction of a second.
    Fraction,
}

/// A numeric field; widths in digits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NumSpec {
    field: Field,
    min: usize,
    max: usize,
    sign: SignStyle,
    kind: NumKind,
    /// Digits reserved for the fixed-width fields directly after this one ("adjacent value
    /// parsing"), so `yyyyMMdd` can split `20151218`.
    subsequent: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    MonthShort,
    MonthFull,
    DayShort,
    DayFull,
    DayNarrow,
    AmPm,
    EraShort,
    EraFull,
    EraNarrow,
}

/// One of java.time's `+HH...` offset layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OffsetStyle {
    colon: bool,
    minutes_required: bool,
    seconds_allowed: bool,
    /// `Z` stands for a zero offset.
    zero_z: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZoneKind {
    /// `VV`
    Id,
    /// `z`, `v`
    Name,
    /// `X`, `x`, `Z`
    Offset(OffsetStyle),
    /// `O`, `ZZZZ`: "GMT+1", "GMT-05:00", "GMT".
    Localized,
}

/// One piece of a compiled java.time pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ParseItem {
    Literal(String),
    Number(NumSpec),
    Text(TextKind),
    Zone(ZoneKind),
    Optional(Vec<ParseItem>),
}

/// The offset layouts of `X`/`x` by letter count: `+HHmm`, `+HHMM`, `+HH:MM`, `+HHMMss`, `+HH:MM:ss`.
fn offset_style(count: usize, zero_z: bool) -> Option<OffsetStyle> {
    let (colon, minutes_required, seconds_allowed) = match count {
        1 => (false, false, false),
        2 => (false, true, false),
        3 => (true, true, false),
        4 => (false, true, true),
        5 => (true, true, true),
        _ => return None,
    };
    Some(OffsetStyle { colon, minutes_required, seconds_allowed, zero_z })
}

fn number(field: Field, min: usize, max: usize, sign: SignStyle) -> ParseItem {
    ParseItem::Number(NumSpec { field, min, max, sign, kind: NumKind::Plain, subsequent: 0 })
}

/// Compiles a java.time pattern the way `DateTimeFormatter.ofPattern` reads it.
fn compile_parse(pattern: &str) -> Result<Vec<ParseItem>, TimeError> {
    check_pattern_len(pattern)?;
    compile_parse_items(pattern).map_err(|e| TimeError(format!("invalid time pattern '{}': {}", quote(pattern), e.0)))
}

fn compile_parse_items(pattern: &str) -> Result<Vec<ParseItem>, TimeError> {
    let chars: Vec<char> = pattern.chars().collect();
    // The innermost open optional section is last; the first entry is the pattern itself.
    let mut stack: Vec<Vec<ParseItem>> = vec![Vec::new()];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let item = if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i] == c {
                i += 1;
            }
            parse_letter(c, i - start)?
        } else if c == '\'' {
            i += 1;
            let mut literal = String::new();
            let mut closed = false;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        literal.push('\'');
                        i += 2;
                        continue;
                    }
                    closed = true;
                    i += 1;
                    break;
                }
                literal.push(chars[i]);
                i += 1;
            }
            if !closed {
                return Err(TimeError("pattern ends with an incomplete string literal".into()));
            }
            if literal.is_empty() {
                literal.push('\'');
            }
            ParseItem::Literal(literal)
        } else if c == '[' {
            i += 1;
            stack.push(Vec::new());
            continue;
        } else if c == ']' {
            i += 1;
            if stack.len() < 2 {
                return Err(TimeError("pattern contains ] without previous [".into()));
            }
            match stack.pop() {
                Some(section) => ParseItem::Optional(section),
                None => return Err(TimeError("pattern contains ] without previous [".into())),
            }
        } else if matches!(c, '{' | '}' | '#') {
            return Err(TimeError(format!("pattern includes reserved character '{c}'")));
        } else {
            i += 1;
            ParseItem::Literal(c.to_string())
        };
        match stack.last_mut() {
            Some(top) => top.push(item),
            None => return Err(TimeError("unbalanced optional section".into())),
        }
    }
    // Like java.time, sections left open end with the pattern.
    while stack.len() > 1 {
        if let Some(section) = stack.pop() {
            if let Some(top) = stack.last_mut() {
                top.push(ParseItem::Optional(section));
            }
        }
    }
    let mut items = stack.pop().unwrap_or_default();
    reserve_adjacent_widths(&mut items);
    Ok(items)
}

/// java.time's rules for one run of a pattern letter (`DateTimeFormatterBuilder.parseField`).
fn parse_letter(c: char, count: usize) -> Result<ParseItem, TimeError> {
    use Field::*;
    use SignStyle::*;
    let too_many = || Err(TimeError(format!("too many pattern letters: {c}")));
    let unsupported = || Err(TimeError(format!("pattern letter '{c}' is not supported")));
    let one_or_two = |field| match count {
        1 => Ok(number(field, 1, 19, Normal)),
        2 => Ok(number(field, 2, 2, NotNegative)),
        _ => too_many(),
    };
    let item = match c {
        'G' => ParseItem::Text(match count {
            1..=3 => TextKind::EraShort,
            4 => TextKind::EraFull,
            5 => TextKind::EraNarrow,
            _ => return too_many(),
        }),
        'u' | 'y' => {
            let field = if c == 'u' { ProlepticYear } else { YearOfEra };
            match count {
                2 => ParseItem::Number(NumSpec {
                    field,
                    min: 2,
                    max: 2,
                    sign: NotNegative,
                    kind: NumKind::TwoDigitYear,
                    subsequent: 0,
                }),
                1 | 3 => number(field, count, 19, Normal),
                4..=19 => number(field, count, 19, ExceedsPad),
                _ => return Err(TimeError(format!("too many pattern letters: {c} (at most 19)"))),
            }
        }
        'M' | 'L' => match count {
            1 => number(Month, 1, 19, Normal),
            2 => number(Month, 2, 2, NotNegative),
            3 => ParseItem::Text(TextKind::MonthShort),
            4 => ParseItem::Text(TextKind::MonthFull),
            5 => return Err(TimeError(format!("narrow month names ({c}{c}{c}{c}{c}) are not supported"))),
            _ => return too_many(),
        },
        'd' => one_or_two(DayOfMonth)?,
        'h' => one_or_two(ClockHourOfAmPm)?,
        'H' => one_or_two(HourOfDay)?,
        'k' => one_or_two(ClockHourOfDay)?,
        'K' => one_or_two(HourOfAmPm)?,
        'm' => one_or_two(Minute)?,
        's' => one_or_two(Second)?,
        'D' => match count {
            1 => number(DayOfYear, 1, 19, Normal),
            2 | 3 => number(DayOfYear, count, 3, NotNegative),
            _ => return too_many(),
        },
        'a' if count == 1 => ParseItem::Text(TextKind::AmPm),
        'a' => return too_many(),
        'E' => ParseItem::Text(match count {
            1..=3 => TextKind::DayShort,
            4 => TextKind::DayFull,
            5 => TextKind::DayNarrow,
            _ => return too_many(),
        }),
        'S' if count <= 9 => ParseItem::Number(NumSpec {
            field: Nano,
            min: count,
            max: count,
            sign: NotNegative,
            kind: NumKind::Fraction,
            subsequent: 0,
        }),
        'S' => return Err(TimeError("fraction width must be from 1 to 9 (S to SSSSSSSSS)".into())),
        'n' => match count {
            1 => number(Nano, 1, 19, Normal),
            2..=19 => number(Nano, count, count, NotNegative),
            _ => return too_many(),
        },
        'V' if count == 2 => ParseItem::Zone(ZoneKind::Id),
        'V' => return Err(TimeError("pattern letter count must be 2: V".into())),
        'z' if count <= 4 => ParseItem::Zone(ZoneKind::Name),
        'z' => return too_many(),
        'v' if count == 1 || count == 4 => ParseItem::Zone(ZoneKind::Name),
        'v' => return Err(TimeError("wrong number of pattern letters: v".into())),
        'Z' => match count {
            1..=3 => ParseItem::Zone(ZoneKind::Offset(OffsetStyle {
                colon: false,
                minutes_required: true,
                seconds_allowed: false,
                zero_z: false,
            })),
            4 => ParseItem::Zone(ZoneKind::Localized),
            5 => ParseItem::Zone(ZoneKind::Offset(OffsetStyle {
                colon: true,
                minutes_required: true,
                seconds_allowed: true,
                zero_z: true,
            })),
            _ => return too_many(),
        },
        'O' if count == 1 || count == 4 => ParseItem::Zone(ZoneKind::Localized),
        'O' => return Err(TimeError("pattern letter count must be 1 or 4: O".into())),
        'X' | 'x' => match offset_style(count, c == 'X') {
            Some(style) => ParseItem::Zone(ZoneKind::Offset(style)),
            None => return too_many(),
        },
        'p' => return Err(TimeError("the pad modifier 'p' is not supported".into())),
        'Q' | 'q' | 'e' | 'c' | 'F' | 'w' | 'W' | 'Y' | 'A' | 'N' | 'g' => return unsupported(),
        _ => return Err(TimeError(format!("unknown pattern letter: {c}"))),
    };
    Ok(item)
}

/// java.time's adjacent value parsing: a numeric field followed directly (no literal or text in
/// between) by fixed-width unsigned numeric fields leaves their digits to them.
fn reserve_adjacent_widths(items: &mut [ParseItem]) {
    // For each item: whether it is a fixed-width unsigned number, and its width; None if not a number.
    let shapes: Vec<Option<(bool, usize)>> = items
        .iter()
        .map(|item| match item {
            ParseItem::Number(spec) => Some((spec.min == spec.max && spec.sign == SignStyle::NotNegative, spec.max)),
            _ => None,
        })
        .collect();
    let mut active: Option<usize> = None;
    for (i, shape) in shapes.iter().enumerate() {
        match (shape, active) {
            (Some((true, width)), Some(a)) => {
                if let Some(ParseItem::Number(base)) = items.get_mut(a) {
                    base.subsequent += width;
                }
            }
            (Some(_), _) => active = Some(i),
            (None, _) => active = None,
        }
    }
    for item in items.iter_mut() {
        if let ParseItem::Optional(section) = item {
            reserve_adjacent_widths(section);
        }
    }
}

/// A zone read from text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ParsedZone {
    Fixed(i32),
    Region(Tz),
}

/// What a parse has found so far.
#[derive(Debug, Clone, Default)]
struct Parsed {
    values: [Option<i64>; FIELD_COUNT],
    offset: Option<i32>,
    zone: Option<ParsedZone>,
}

impl Parsed {
    fn get(&self, field: Field) -> Option<i64> {
        self.values[field as usize]
    }

    /// Records a value; false when the field already holds a different one.
    fn set(&mut self, field: Field, value: i64) -> bool {
        let slot = &mut self.values[field as usize];
        match *slot {
            Some(old) if old != value => false,
            _ => {
                *slot = Some(value);
                true
            }
        }
    }

    fn set_offset(&mut self, offset: i32) -> bool {
        match self.offset {
            Some(old) if old != offset => false,
            _ => {
                self.offset = Some(offset);
                true
            }
        }
    }
}

/// Parses `items` from byte `pos`; the end position, or the position where parsing failed.
fn parse_items(items: &[ParseItem], text: &str, mut pos: usize, parsed: &mut Parsed) -> Result<usize, usize> {
    for item in items {
        pos = match item {
            ParseItem::Literal(literal) => {
                if text.get(pos..).is_some_and(|rest| rest.starts_with(literal.as_str())) {
                    pos + literal.len()
                } else {
                    return Err(pos);
                }
            }
            ParseItem::Number(spec) => parse_number(text, pos, spec, parsed)?,
            ParseItem::Text(kind) => {
                let (field, candidates) = text_candidates(*kind);
                let (value, end) = match_text(text, pos, &candidates).ok_or(pos)?;
                if !parsed.set(field, value) {
                    return Err(pos);
                }
                end
            }
            ParseItem::Zone(kind) => parse_zone(text, pos, *kind, parsed)?,
            ParseItem::Optional(section) => {
                let saved = parsed.clone();
                match parse_items(section, text, pos, parsed) {
                    Ok(end) => end,
                    Err(_) => {
                        *parsed = saved;
                        pos
                    }
                }
            }
        };
    }
    Ok(pos)
}

/// How many ASCII digits follow `from`, counting at most `max`.
fn count_digits(bytes: &[u8], from: usize, max: usize) -> usize {
    bytes.get(from..).map_or(0, |rest| rest.iter().take(max).take_while(|b| b.is_ascii_digit()).count())
}

fn digits_value(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |acc, b| acc.checked_mul(10)?.checked_add(i64::from(b.wrapping_sub(b'0'))))
}

/// java.time's strict `NumberPrinterParser`/`FractionPrinterParser`/`ReducedPrinterParser`.
fn parse_number(text: &str, pos: usize, spec: &NumSpec, parsed: &mut Parsed) -> Result<usize, usize> {
    let bytes = text.as_bytes();
    if spec.kind == NumKind::Fraction {
        let width = count_digits(bytes, pos, spec.max);
        if width < spec.min {
            return Err(pos);
        }
        let value = bytes.get(pos..pos + width).and_then(digits_value).ok_or(pos)?;
        let scale = 10i64.pow(9u32.saturating_sub(width as u32));
        return if parsed.set(Field::Nano, value * scale) { Ok(pos + width) } else { Err(pos) };
    }
    let mut start = pos;
    let (mut negative, mut positive) = (false, false);
    match bytes.get(pos) {
        Some(b'+') if spec.sign == SignStyle::ExceedsPad => positive = true,
        Some(b'-') if spec.sign != SignStyle::NotNegative => negative = true,
        Some(b'+' | b'-') => return Err(pos),
        _ => {}
    }
    if negative || positive {
        start += 1;
    }
    let available = count_digits(bytes, start, spec.max + spec.subsequent);
    if available < spec.min {
        return Err(start);
    }
    let width = if spec.subsequent > 0 { spec.min.max(available.saturating_sub(spec.subsequent)) } else { available };
    let mut value = bytes.get(start..start + width).and_then(digits_value).ok_or(start)?;
    if spec.sign == SignStyle::ExceedsPad && (if positive { width <= spec.min } else { width > spec.min }) {
        return Err(pos);
    }
    if negative {
        if value == 0 {
            return Err(pos);
        }
        value = -value;
    }
    if spec.kind == NumKind::TwoDigitYear {
        value += 2000;
    }
    if parsed.set(spec.field, value) {
        Ok(start + width)
    } else {
        Err(pos)
    }
}

/// The English names a text field accepts, with their values.
fn text_candidates(kind: TextKind) -> (Field, Vec<(&'static str, i64)>) {
    let numbered = |names: &[&'static str]| names.iter().zip(1..).map(|(name, n)| (*name, n)).collect::<Vec<_>>();
    match kind {
        TextKind::MonthShort => (Field::Month, numbered(&MONTHS_SHORT)),
        TextKind::MonthFull => (Field::Month, numbered(&MONTHS_FULL)),
        TextKind::DayShort => (Field::DayOfWeek, numbered(&DAYS_SHORT)),
        TextKind::DayFull => (Field::DayOfWeek, numbered(&DAYS_FULL)),
        TextKind::DayNarrow => (
            Field::DayOfWeek,
            DAYS_FULL.iter().copied().zip(1..).map(|(name, n)| (name.get(..1).unwrap_or(name), n)).collect(),
        ),
        TextKind::AmPm => (Field::AmPm, vec![("AM", 0), ("PM", 1)]),
        TextKind::EraShort => (Field::Era, vec![("BC", 0), ("AD", 1)]),
        TextKind::EraFull => (Field::Era, vec![("Before Christ", 0), ("Anno Domini", 1)]),
        TextKind::EraNarrow => (Field::Era, vec![("B", 0), ("A", 1)]),
    }
}

/// The longest candidate found at `pos`, ignoring ASCII case; its value and end position.
fn match_text(text: &str, pos: usize, candidates: &[(&str, i64)]) -> Option<(i64, usize)> {
    let mut best: Option<(i64, usize)> = None;
    for (name, value) in candidates {
        let longer = best.is_none_or(|(_, len)| name.len() > len);
        if longer && text.get(pos..pos + name.len()).is_some_and(|s| s.eq_ignore_ascii_case(name)) {
            best = Some((*value, name.len()));
        }
    }
    best.map(|(value, len)| (value, pos + len))
}

fn parse_zone(text: &str, pos: usize, kind: ZoneKind, parsed: &mut Parsed) -> Result<usize, usize> {
    let (offset, end) = match kind {
        ZoneKind::Id | ZoneKind::Name => {
            let found = if kind == ZoneKind::Id { parse_zone_id(text, pos) } else { parse_zone_name(text, pos) };
            let (zone, end) = found.ok_or(pos)?;
            parsed.zone = Some(zone);
            return Ok(end);
        }
        ZoneKind::Offset(style) => parse_offset(text, pos, style).ok_or(pos)?,
        ZoneKind::Localized => parse_localized_offset(text, pos).ok_or(pos)?,
    };
    if parsed.set_offset(offset) {
        Ok(end)
    } else {
        Err(pos)
    }
}

fn two_digits(bytes: &[u8], at: usize) -> Option<i32> {
    match (bytes.get(at), bytes.get(at + 1)) {
        (Some(a), Some(b)) if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(i32::from(a - b'0') * 10 + i32::from(b - b'0'))
        }
        _ => None,
    }
}

/// Two digits at `at`, after a colon when `colon`; the value and the end position.
fn offset_part(bytes: &[u8], at: usize, colon: bool) -> Option<(i32, usize)> {
    if colon {
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        two_digits(bytes, at + 1).map(|v| (v, at + 3))
    } else {
        two_digits(bytes, at).map(|v| (v, at + 2))
    }
}

/// java.time's `OffsetIdPrinterParser`: a signed `HH`, then minutes and seconds as the style allows.
fn parse_offset(text: &str, pos: usize, style: OffsetStyle) -> Option<(i32, usize)> {
    let bytes = text.as_bytes();
    if style.zero_z && bytes.get(pos) == Some(&b'Z') {
        return Some((0, pos + 1));
    }
    let sign = match bytes.get(pos)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = two_digits(bytes, pos + 1)?;
    let mut end = pos + 3;
    let (mut minutes, mut seconds) = (0, 0);
    match offset_part(bytes, end, style.colon) {
        Some((m, next)) => {
            minutes = m;
            end = next;
            if style.seconds_allowed {
                if let Some((s, next)) = offset_part(bytes, end, style.colon) {
                    seconds = s;
                    end = next;
                }
            }
        }
        None if style.minutes_required => return None,
        None => {}
    }
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    let total = hours * 3600 + minutes * 60 + seconds;
    (total <= MAX_OFFSET_SECS).then_some((sign * total, end))
}

/// `O`/`ZZZZ`: "GMT", or "GMT" with a sign, a one- or two-digit hour and optional `:mm[:ss]`.
fn parse_localized_offset(text: &str, pos: usize) -> Option<(i32, usize)> {
    if !text.get(pos..)?.starts_with("GMT") {
        return None;
    }
    let bytes = text.as_bytes();
    let mut end = pos + 3;
    let sign = match bytes.get(end) {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Some((0, end)),
    };
    end += 1;
    let hour_digits = count_digits(bytes, end, 2);
    if hour_digits == 0 {
        return None;
    }
    let hours = i32::try_from(bytes.get(end..end + hour_digits).and_then(digits_value)?).ok()?;
    end += hour_digits;
    let (mut minutes, mut seconds) = (0, 0);
    if let Some((m, next)) = offset_part(bytes, end, true) {
        minutes = m;
        end = next;
        if let Some((s, next)) = offset_part(bytes, end, true) {
            seconds = s;
            end = next;
        }
    }
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    let total = hours * 3600 + minutes * 60 + seconds;
    (total <= MAX_OFFSET_SECS).then_some((sign * total, end))
}

/// The `+HH:MM:ss` layout java.time uses for offsets inside zone ids.
const ZONE_ID_OFFSET: OffsetStyle =
    OffsetStyle { colon: true, minutes_required: true, seconds_allowed: true, zero_z: false };

/// java.time's `ZoneIdPrinterParser` (`VV`): an offset, "UTC"/"GMT"/"UT" with an optional offset
/// ("UTC+01:00"), the longest IANA id found at `pos`, or "Z".
fn parse_zone_id(text: &str, pos: usize) -> Option<(ParsedZone, usize)> {
    let rest = text.get(pos..)?;
    let first = *rest.as_bytes().first()?;
    if first == b'+' || first == b'-' {
        return parse_offset(text, pos, ZONE_ID_OFFSET).map(|(offset, end)| (ParsedZone::Fixed(offset), end));
    }
    for prefix in ["UTC", "GMT", "UT"] {
        if rest.starts_with(prefix) {
            let after = pos + prefix.len();
            return Some(match parse_offset(text, after, ZONE_ID_OFFSET) {
                Some((offset, end)) => (ParsedZone::Fixed(offset), end),
                None => (ParsedZone::Fixed(0), after),
            });
        }
    }
    let mut best: Option<(Tz, usize)> = None;
    for tz in TZ_VARIANTS.iter() {
        let name = tz.name();
        let longer = best.is_none_or(|(_, len)| name.len() > len);
        if longer && rest.get(..name.len()).is_some_and(|s| s.eq_ignore_ascii_case(name)) {
            best = Some((*tz, name.len()));
        }
    }
    match best {
        Some((tz, len)) => Some((ParsedZone::Region(tz), pos + len)),
        None if first == b'Z' => Some((ParsedZone::Fixed(0), pos + 1)),
        None => None,
    }
}

/// `z`: a zone id as `VV` reads it, or a name or abbreviation from [`ZONE_NAMES`] (as its fixed
/// offset), whichever match is longer.
fn parse_zone_name(text: &str, pos: usize) -> Option<(ParsedZone, usize)> {
    let rest = text.get(pos..)?;
    let mut best = parse_zone_id(text, pos);
    for (abbr, long, offset) in ZONE_NAMES {
        for name in [abbr, long] {
            let longer = best.is_none_or(|(_, end)| pos + name.len() > end);
            if longer && rest.get(..name.len()).is_some_and(|s| s.eq_ignore_ascii_case(name)) {
                best = Some((ParsedZone::Fixed(*offset), pos + name.len()));
            }
        }
    }
    best
}

fn checked(value: i64, low: i64, high: i64, what: &str) -> Result<i64, TimeError> {
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(TimeError(format!("invalid value for {what} (valid values {low} - {high}): {value}")))
    }
}

/// Two sources of one value must agree.
fn merge(current: Option<i64>, value: i64, what: &str) -> Result<Option<i64>, TimeError> {
    match current {
        Some(old) if old != value => Err(TimeError(format!("conflict found: {what} {old} differs from {value}"))),
        _ => Ok(Some(value)),
    }
}

/// Turns parsed fields into epoch milliseconds with java.time's smart resolution; fields the
/// text lacks default to 1970-01-01T00:00:00 in UTC.
fn resolve(parsed: &Parsed) -> Result<i64, TimeError> {
    let year = resolve_year(parsed)?;
    let date = resolve_date(parsed, year)?;
    let hour = resolve_hour(parsed)?;
    let minute = checked(parsed.get(Field::Minute).unwrap_or(0), 0, 59, "MinuteOfHour")?;
    let second = checked(parsed.get(Field::Second).unwrap_or(0), 0, 59, "SecondOfMinute")?;
    let nano = checked(parsed.get(Field::Nano).unwrap_or(0), 0, 999_999_999, "NanoOfSecond")?;
    let out_of_range = || TimeError("date is out of the supported range".into());
    // Smart resolution reads 24:00 as midnight at the end of the day.
    let (hour, date) = if hour == 24 {
        if minute != 0 || second != 0 || nano != 0 {
            return Err(TimeError(format!("invalid value for HourOfDay (valid values 0 - 23): {hour}")));
        }
        (0, date.succ_opt().ok_or_else(out_of_range)?)
    } else {
        (hour, date)
    };
    let local = date.and_hms_opt(hour as u32, minute as u32, second as u32).ok_or_else(out_of_range)?;
    let offset = match (parsed.offset, parsed.zone) {
        (Some(offset), _) | (None, Some(ParsedZone::Fixed(offset))) => offset,
        (None, Some(ParsedZone::Region(tz))) => region_offset(tz, &local)?,
        (None, None) => 0,
    };
    let seconds = local.and_utc().timestamp() - i64::from(offset);
    seconds.checked_mul(1000).and_then(|ms| ms.checked_add(nano / 1_000_000)).ok_or_else(out_of_range)
}

fn resolve_year(parsed: &Parsed) -> Result<i32, TimeError> {
    let from_era = match parsed.get(Field::YearOfEra) {
        Some(year_of_era) => {
            let year_of_era = checked(year_of_era, 1, 999_999_999, "YearOfEra")?;
            Some(if parsed.get(Field::Era) == Some(0) { 1 - year_of_era } else { year_of_era })
        }
        None => None,
    };
    let year = match (parsed.get(Field::ProlepticYear), from_era) {
        (Some(year), Some(other)) if year != other => {
            return Err(TimeError(format!("conflict found: Year {year} differs from Year {other}")))
        }
        (Some(year), _) | (None, Some(year)) => year,
        (None, None) => 1970,
    };
    i32::try_from(year).map_err(|_| TimeError(format!("year {year} is out of the supported range")))
}

fn resolve_date(parsed: &Parsed, year: i32) -> Result<NaiveDate, TimeError> {
    let out_of_range = || TimeError(format!("year {year} is out of the supported range"));
    let month = parsed.get(Field::Month).map(|m| checked(m, 1, 12, "MonthOfYear")).transpose()?;
    let day = parsed.get(Field::DayOfMonth).map(|d| checked(d, 1, 31, "DayOfMonth")).transpose()?;
    if let Some(day_of_year) = parsed.get(Field::DayOfYear) {
        let day_of_year = checked(day_of_year, 1, 366, "DayOfYear")?;
        let date = NaiveDate::from_yo_opt(year, day_of_year as u32)
            .ok_or_else(|| TimeError(format!("invalid date 'DayOfYear 366' as '{year}' is not a leap year")))?;
        if month.is_some_and(|m| m != i64::from(date.month())) || day.is_some_and(|d| d != i64::from(date.day())) {
            return Err(TimeError("conflict found: month or day differs from the day of year".into()));
        }
        return Ok(date);
    }
    let month = month.unwrap_or(1) as u32;
    let mut day = day.unwrap_or(1) as u32;
    // Smart resolution moves the 29th to 31st back to the last day of a shorter month.
    loop {
        if let Some(date) = NaiveDate::from_ymd_opt(year, month, day) {
            return Ok(date);
        }
        if day <= 28 {
            return Err(out_of_range());
        }
        day -= 1;
    }
}

fn resolve_hour(parsed: &Parsed) -> Result<i64, TimeError> {
    let mut hour = parsed.get(Field::HourOfDay).map(|h| checked(h, 0, 24, "HourOfDay")).transpose()?;
    if let Some(clock) = parsed.get(Field::ClockHourOfDay) {
        let clock = checked(clock, 0, 24, "ClockHourOfDay")?;
        hour = merge(hour, if clock == 24 { 0 } else { clock }, "HourOfDay")?;
    }
    let mut hour_of_am_pm = parsed.get(Field::HourOfAmPm).map(|h| checked(h, 0, 11, "HourOfAmPm")).transpose()?;
    if let Some(clock) = parsed.get(Field::ClockHourOfAmPm) {
        let clock = checked(clock, 0, 12, "ClockHourOfAmPm")?;
        hour_of_am_pm = merge(hour_of_am_pm, if clock == 12 { 0 } else { clock }, "HourOfAmPm")?;
    }
    let am_pm = parsed.get(Field::AmPm);
    match (hour_of_am_pm, am_pm, hour) {
        // Without AM/PM a 12-hour clock value is taken as AM.
        (Some(h), _, _) => hour = merge(hour, am_pm.unwrap_or(0) * 12 + h, "HourOfDay")?,
        (None, Some(am_pm), Some(h)) if h < 24 && h / 12 != am_pm => {
            return Err(TimeError(format!("conflict found: AmPmOfDay {am_pm} differs from HourOfDay {h}")))
        }
        _ => {}
    }
    Ok(hour.unwrap_or(0))
}

/// The offset java.time picks for a local time in a region: the earlier offset in an overlap,
/// and in a gap the offset from before it (which moves the time forward by the gap's length).
fn region_offset(tz: Tz, local: &NaiveDateTime) -> Result<i32, TimeError> {
    match tz.offset_from_local_datetime(local) {
        LocalResult::Single(offset) => Ok(offset.fix().local_minus_utc()),
        LocalResult::Ambiguous(a, b) => Ok(a.fix().local_minus_utc().max(b.fix().local_minus_utc())),
        LocalResult::None => {
            let before = local
                .checked_sub_signed(TimeDelta::days(1))
                .ok_or_else(|| TimeError("date is out of the supported range".into()))?;
            Ok(tz.offset_from_utc_datetime(&before).fix().local_minus_utc())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(pattern: &str, ms: i64, zone: &str) -> String {
        match format_epoch_millis(pattern, ms, zone) {
            Ok(s) => s,
            Err(e) => panic!("format {pattern:?} failed: {e}"),
        }
    }

    fn parse(text: &str, pattern: &str) -> i64 {
        match parse_to_epoch_millis(text, pattern) {
            Ok(ms) => ms,
            Err(e) => panic!("parse {text:?} with {pattern:?} failed: {e}"),
        }
    }

    fn parse_err(text: &str, pattern: &str) -> String {
        match parse_to_epoch_millis(text, pattern) {
            Ok(ms) => panic!("parse {text:?} with {pattern:?} unexpectedly gave {ms}"),
            Err(e) => e.0,
        }
    }

    // 2016-04-15T01:56:29.123Z, a Friday in ISO week 15.
    const APRIL_2016: i64 = 1_460_685_389_123;

    #[test]
    fn format_matches_aws_documentation_examples() {
        assert_eq!(fmt("yyyy.MM.dd G 'at' HH:mm:ss z", 100_000_000, "America/Belize"), "1970.01.01 AD at 21:46:40 CST");
        assert_eq!(fmt("yyyy", 1_460_685_389_000, "UTC"), "2016");
    }

    #[test]
    fn format_prints_every_date_field() {
        assert_eq!(
            fmt("G C Y YY x xx w e E EEEE y yy yyyyy D M MM MMM MMMM d", APRIL_2016, "UTC"),
            "AD 20 2016 16 2016 16 15 5 Fri Friday 2016 16 02016 106 4 04 Apr April 15"
        );
    }

    #[test]
    fn format_prints_every_time_field() {
        assert_eq!(fmt("a K h H k m s S SS SSS SSSSSS", APRIL_2016, "UTC"), "AM 1 1 1 1 56 29 1 12 123 123000");
        assert_eq!(fmt("hh kk KK HH a", 1_460_678_400_000, "UTC"), "12 24 00 00 AM");
        assert_eq!(fmt("hh kk KK HH a", 1_460_728_800_000, "UTC"), "02 14 02 14 PM");
    }

    #[test]
    fn format_pads_numbers_to_letter_count() {
        assert_eq!(fmt("dddd-MMM-HHH", APRIL_2016, "UTC"), "0015-Apr-001");
    }

    #[test]
    fn format_prints_zone_names_and_offsets() {
        assert_eq!(
            fmt("z|zzzz|Z|ZZ|ZZZ", APRIL_2016, "America/Chicago"),
            "CDT|Central Daylight Time|-0500|-05:00|America/Chicago"
        );
        assert_eq!(fmt("z|zzzz|Z|ZZ|ZZZ", APRIL_2016, "UTC"), "UTC|Coordinated Universal Time|+0000|+00:00|UTC");
        assert_eq!(fmt("zzzz", APRIL_2016, "Asia/Shanghai"), "China Standard Time");
        assert_eq!(fmt("zzzz", APRIL_2016, "Asia/Kolkata"), "India Standard Time");
        // tzdb has no letters for Nepal, so like Joda the short name falls back to the offset.
        assert_eq!(fmt("HH:mm z Z ZZ ZZZ", APRIL_2016, "Asia/Kathmandu"), "07:41 +05:45 +0545 +05:45 Asia/Kathmandu");
    }

    #[test]
    fn format_accepts_fixed_offset_zones() {
        assert_eq!(fmt("HH:mm z Z ZZZ", APRIL_2016, "+01:00"), "02:56 +01:00 +0100 +01:00");
        assert_eq!(fmt("HH:mm ZZ", APRIL_2016, "UTC+01:00"), "02:56 +01:00");
        assert_eq!(fmt("dd HH:mm ZZ", APRIL_2016, "-0530"), "14 20:26 -05:30");
        assert_eq!(fmt("HH:mm ZZ", APRIL_2016, "GMT-03"), "22:56 -03:00");
        assert_eq!(fmt("HH:mm z", APRIL_2016, "+00:00"), "01:56 UTC");
        assert_eq!(fmt("HH z", APRIL_2016, "europe/london"), "02 BST");
    }

    #[test]
    fn format_rejects_unknown_or_invalid_zones() {
        for zone in ["", "Mars/Olympus", "+25:00", "+01:60", "UTC+", "+1:2", "+１", "UTC+01:00:00:00", &"A".repeat(100)]
        {
            assert!(format_epoch_millis("yyyy", 0, zone).is_err(), "zone {zone:?} should fail");
        }
    }

    #[test]
    fn format_handles_quotes_like_joda() {
        assert_eq!(fmt("h 'o''clock' a", 1_460_728_800_000, "UTC"), "2 o'clock PM");
        assert_eq!(fmt("''yy''", APRIL_2016, "UTC"), "'16'");
        assert_eq!(fmt("yyyy 'unterminated T", APRIL_2016, "UTC"), "2016 unterminated T");
        assert_eq!(fmt("yyyy/MM/dd, ß→é", APRIL_2016, "UTC"), "2016/04/15, ß→é");
    }

    #[test]
    fn format_handles_dates_before_the_epoch_and_before_year_one() {
        assert_eq!(fmt("yyyy-MM-dd HH:mm:ss.SSS", -1, "UTC"), "1969-12-31 23:59:59.999");
        // 1 BC is year 0; 2 BC is year -1.
        let two_bc = -62_198_755_200_000; // -0001-01-01T00:00:00Z
        assert_eq!(fmt("yyyy G YYYY C", two_bc, "UTC"), "-0001 BC 0002 0");
    }

    #[test]
    fn format_rejects_unknown_pattern_letters() {
        for pattern in ["yyyy-MM-dd q", "b", "yyyy T", "uuuu", "VV", "X"] {
            let err = format_epoch_millis(pattern, 0, "UTC").unwrap_err();
            assert!(err.0.contains("illegal pattern component"), "{pattern}: {err}");
        }
    }

    #[test]
    fn format_rejects_out_of_range_timestamps() {
        assert!(format_epoch_millis("yyyy", i64::MAX, "UTC").is_err());
        assert!(format_epoch_millis("yyyy", i64::MIN, "America/Belize").is_err());
    }

    #[test]
    fn validate_format_pattern_checks_letters_and_length() {
        assert_eq!(validate_format_pattern("yyyy-MM-dd'T'HH:mm:ss.SSSZZ"), Ok(()));
        assert!(validate_format_pattern("yyyy-MM-dd j").is_err());
        assert!(validate_format_pattern(&"y".repeat(300)).is_err());
        assert_eq!(validate_format_pattern(&"y".repeat(256)), Ok(()));
    }

    #[test]
    fn parse_matches_aws_documentation_examples() {
        assert_eq!(parse("2020-04-03 09:45:18 UTC+01:00", "yyyy-MM-dd HH:mm:ss VV"), 1_585_903_518_000);
        assert_eq!(parse("18 December 2015", "dd MMMM yyyy"), 1_450_396_800_000);
    }

    #[test]
    fn parse_reads_numeric_offsets() {
        let base = 1_450_440_000_000; // 2015-12-18T12:00:00Z
        assert_eq!(parse("2015-12-18T12:00:00Z", "yyyy-MM-dd'T'HH:mm:ssX"), base);
        assert_eq!(parse("2015-12-18T13:00:00+01", "yyyy-MM-dd'T'HH:mm:ssX"), base);
        assert_eq!(parse("2015-12-18T17:30:00+0530", "yyyy-MM-dd'T'HH:mm:ssXX"), base);
        assert_eq!(parse("2015-12-18T17:30:00+05:30", "yyyy-MM-dd'T'HH:mm:ssXXX"), base);
        assert_eq!(parse("2015-12-18T04:00:00-08:00", "yyyy-MM-dd'T'HH:mm:ssxxx"), base);
        assert_eq!(parse("2015-12-18T12:00:00+00:00", "yyyy-MM-dd'T'HH:mm:ssxxx"), base);
        assert_eq!(parse("2015-12-18T04:00:00-0800", "yyyy-MM-dd'T'HH:mm:ssZ"), base);
        assert_eq!(parse("2015-12-18T12:00:00Z", "yyyy-MM-dd'T'HH:mm:ssZZZZZ"), base);
        assert_eq!(parse("2015-12-18T13:00:00 GMT+1", "yyyy-MM-dd'T'HH:mm:ss O"), base);
        assert_eq!(parse("2015-12-18T07:00:00 GMT-05:00", "yyyy-MM-dd'T'HH:mm:ss OOOO"), base);
        assert_eq!(parse("2015-12-18T12:00:00 GMT", "yyyy-MM-dd'T'HH:mm:ss O"), base);
    }

    #[test]
    fn parse_rejects_malformed_offsets() {
        parse_err("2015-12-18T12:00:00+05:30", "yyyy-MM-dd'T'HH:mm:ssXX");
        parse_err("2015-12-18T12:00:00+0530", "yyyy-MM-dd'T'HH:mm:ssXXX");
        parse_err("2015-12-18T12:00:00Z", "yyyy-MM-dd'T'HH:mm:ssx");
        parse_err("2015-12-18T12:00:00+19:00", "yyyy-MM-dd'T'HH:mm:ssXXX");
        parse_err("2015-12-18T12:00:00+01:61", "yyyy-MM-dd'T'HH:mm:ssXXX");
        parse_err("2015-12-18T12:00:00 GMT+", "yyyy-MM-dd'T'HH:mm:ss O");
    }

    #[test]
    fn parse_reads_zone_ids() {
        let base = 1_450_440_000_000; // 2015-12-18T12:00:00Z
        assert_eq!(parse("2015-12-18 12:00 UTC", "yyyy-MM-dd HH:mm VV"), base);
        assert_eq!(parse("2015-12-18 12:00 Z", "yyyy-MM-dd HH:mm VV"), base);
        assert_eq!(parse("2015-12-18 07:00 GMT-05:00", "yyyy-MM-dd HH:mm VV"), base);
        assert_eq!(parse("2015-12-18 13:00 +01:00", "yyyy-MM-dd HH:mm VV"), base);
        assert_eq!(parse("2015-12-18 06:00 America/Chicago", "yyyy-MM-dd HH:mm VV"), base);
        assert_eq!(parse("2015-12-18 06:00 America/Chicago!", "yyyy-MM-dd HH:mm VV!"), base);
        // Summer time applies to a region.
        assert_eq!(parse("2020-07-01 12:00 America/New_York", "yyyy-MM-dd HH:mm VV"), 1_593_619_200_000);
        parse_err("2015-12-18 12:00 Mars/Olympus", "yyyy-MM-dd HH:mm VV");
        parse_err("2015-12-18 12:00 UTC+1", "yyyy-MM-dd HH:mm VV");
    }

    #[test]
    fn parse_resolves_gaps_and_overlaps_like_java() {
        // 02:30 does not exist on 2020-03-08 in New York: java.time moves it to 03:30 EDT.
        assert_eq!(parse("2020-03-08 02:30 America/New_York", "yyyy-MM-dd HH:mm VV"), 1_583_652_600_000);
        // 01:30 happens twice on 2020-11-01: java.time takes the earlier offset (EDT).
        assert_eq!(parse("2020-11-01 01:30 America/New_York", "yyyy-MM-dd HH:mm VV"), 1_604_208_600_000);
    }

    #[test]
    fn parse_reads_zone_names_and_abbreviations() {
        let base = 1_450_440_000_000; // 2015-12-18T12:00:00Z
        assert_eq!(parse("2015-12-18 04:00 PST", "yyyy-MM-dd HH:mm z"), base);
        assert_eq!(parse("2015-12-18 06:00 CST", "yyyy-MM-dd HH:mm z"), base);
        assert_eq!(parse("2015-12-18 07:00 EST", "yyyy-MM-dd HH:mm z"), base);
        assert_eq!(parse("2015-12-18 12:00 GMT", "yyyy-MM-dd HH:mm z"), base);
        assert_eq!(parse("2015-12-18 12:00 UTC", "yyyy-MM-dd HH:mm z"), base);
        assert_eq!(parse("2015-12-18 04:00 Pacific Standard Time", "yyyy-MM-dd HH:mm zzzz"), base);
        assert_eq!(parse("2015-12-18 06:00 America/Chicago", "yyyy-MM-dd HH:mm z"), base);
        assert_eq!(
            parse("Fri, 18 Dec 2015 12:00:00 GMT", "EEE, dd MMM yyyy HH:mm:ss z"),
            base,
            "RFC 1123 dates parse, the day name is ignored"
        );
    }

    #[test]
    fn parse_reads_fractions() {
        let base = 1_450_440_000_000;
        assert_eq!(parse("2015-12-18 12:00:00.1", "yyyy-MM-dd HH:mm:ss.S"), base + 100);
        assert_eq!(parse("2015-12-18 12:00:00.123", "yyyy-MM-dd HH:mm:ss.SSS"), base + 123);
        assert_eq!(parse("2015-12-18 12:00:00.123999", "yyyy-MM-dd HH:mm:ss.SSSSSS"), base + 123);
        assert_eq!(parse("2015-12-18 12:00:00.123456789", "yyyy-MM-dd HH:mm:ss.SSSSSSSSS"), base + 123);
        assert_eq!(parse("2015-12-18 12:00:00 5000000", "yyyy-MM-dd HH:mm:ss n"), base + 5);
        // S counts exact digits.
        parse_err("2015-12-18 12:00:00.12", "yyyy-MM-dd HH:mm:ss.SSS");
        parse_err("2015-12-18 12:00:00.1234", "yyyy-MM-dd HH:mm:ss.SSS");
    }

    #[test]
    fn parse_splits_adjacent_numbers_like_java() {
        let base = 1_450_440_000_000;
        assert_eq!(parse("20151218120000", "yyyyMMddHHmmss"), base);
        assert_eq!(parse("20151218120000042", "yyyyMMddHHmmssSSS"), base + 42);
        assert_eq!(parse("151218", "yyMMdd"), 1_450_396_800_000);
        assert_eq!(parse("1218", "MMdd") - parse("1970-12-18", "yyyy-MM-dd"), 0);
        parse_err("2015121812000", "yyyyMMddHHmmss");
    }

    #[test]
    fn parse_reads_optional_sections() {
        let day = 1_450_396_800_000; // 2015-12-18T00:00:00Z
        let pattern = "yyyy-MM-dd[ HH:mm[:ss][.SSS]][XXX]";
        assert_eq!(parse("2015-12-18", pattern), day);
        assert_eq!(parse("2015-12-18 12:30", pattern), day + 45_000_000);
        assert_eq!(parse("2015-12-18 12:30:15", pattern), day + 45_015_000);
        assert_eq!(parse("2015-12-18 12:30:15.250+01:00", pattern), day + 45_015_250 - 3_600_000);
        assert_eq!(parse("2015-12-18+01:00", pattern), day - 3_600_000);
        // An unclosed section ends with the pattern.
        assert_eq!(parse("2015-12-18", "yyyy-MM-dd[ HH:mm"), day);
        parse_err("2015-12-18 12", pattern);
    }

    #[test]
    fn parse_defaults_missing_fields() {
        assert_eq!(parse("2015", "yyyy"), 1_420_070_400_000);
        assert_eq!(parse("2015-12", "yyyy-MM"), 1_448_928_000_000);
        assert_eq!(parse("01:02:03", "HH:mm:ss"), 3_723_000);
        assert_eq!(parse("", ""), 0);
    }

    #[test]
    fn parse_reads_text_fields_without_regard_to_case() {
        assert_eq!(parse("18 december 2015", "dd MMMM yyyy"), 1_450_396_800_000);
        assert_eq!(parse("18-DEC-2015", "dd-MMM-yyyy"), 1_450_396_800_000);
        assert_eq!(parse("Friday 18 Dec 2015", "EEEE d LLL uuuu"), 1_450_396_800_000);
        parse_err("18 Dec 2015", "dd MMMM yyyy");
        parse_err("18 Decembre 2015", "dd MMMM yyyy");
    }

    #[test]
    fn parse_reads_twelve_hour_clocks() {
        let day = 1_450_396_800_000;
        assert_eq!(parse("2015-12-18 03:15 PM", "yyyy-MM-dd hh:mm a"), day + 15 * 3_600_000 + 15 * 60_000);
        assert_eq!(parse("2015-12-18 12:05 AM", "yyyy-MM-dd hh:mm a"), day + 5 * 60_000);
        assert_eq!(parse("2015-12-18 12:05 pm", "yyyy-MM-dd h:mm a"), day + 12 * 3_600_000 + 5 * 60_000);
        assert_eq!(parse("2015-12-18 11 PM", "yyyy-MM-dd K a"), day + 23 * 3_600_000);
        assert_eq!(parse("2015-12-18 24", "yyyy-MM-dd k"), day);
        parse_err("2015-12-18 13:00 AM", "yyyy-MM-dd HH:mm a");
        parse_err("2015-12-18 13:00 PM", "yyyy-MM-dd hh:mm a");
    }

    #[test]
    fn parse_resolves_like_java_smart_mode() {
        // Day 29-31 past the month's end moves back to its last day.
        assert_eq!(parse("2015-02-30", "yyyy-MM-dd"), parse("2015-02-28", "yyyy-MM-dd"));
        assert_eq!(parse("2016-02-31", "yyyy-MM-dd"), parse("2016-02-29", "yyyy-MM-dd"));
        // 24:00 is the end of the day.
        assert_eq!(parse("2015-12-18 24:00", "yyyy-MM-dd HH:mm"), parse("2015-12-19", "yyyy-MM-dd"));
        assert_eq!(parse("2015-352", "yyyy-DDD"), 1_450_396_800_000);
        assert_eq!(parse("0001 BC-01-01", "yyyy G-MM-dd"), parse("0000-01-01", "uuuu-MM-dd"));
        assert_eq!(parse("-0001-01-01", "uuuu-MM-dd"), -62_198_755_200_000);
        assert!(parse_err("2015-12-18 24:01", "yyyy-MM-dd HH:mm").contains("HourOfDay"));
        assert!(parse_err("2015-13-01", "yyyy-MM-dd").contains("MonthOfYear"));
        assert!(parse_err("2015-12-32", "yyyy-MM-dd").contains("DayOfMonth"));
        assert!(parse_err("2015-12-18 12:60", "yyyy-MM-dd HH:mm").contains("MinuteOfHour"));
        parse_err("2015-366", "yyyy-DDD");
        parse_err("2015-12-18 2015-12-19", "yyyy-MM-dd yyyy-MM-dd");
    }

    #[test]
    fn parse_is_strict_about_widths_and_signs() {
        parse_err("5 December 2015", "dd MMMM yyyy");
        assert_eq!(parse("5 December 2015", "d MMMM yyyy"), 1_449_273_600_000);
        parse_err("20150 12 18", "yyyy MM dd");
        assert!(parse("+20150 12 18", "yyyy MM dd") > 0);
        parse_err("+2015 12 18", "yyyy MM dd");
        parse_err("2015 -1 18", "yyyy MM dd");
        parse_err("99999999999999999999", "n");
    }

    #[test]
    fn parse_reports_where_text_fails() {
        assert!(parse_err("2015-12-18x", "yyyy-MM-dd").contains("unparsed text found at index 10"));
        assert!(parse_err("2015/12/18", "yyyy-MM-dd").contains("at index 4"));
        assert!(parse_err("é2015", "yyyy").contains("at index 0"));
        let long_text = "x".repeat(10_000);
        assert!(parse_err(&long_text, "yyyy").len() < 200);
    }

    #[test]
    fn parse_rejects_bad_patterns() {
        for pattern in [
            "yyyy-MM-dd qq",
            "yyyy-MM-dd 'open",
            "yyyy]",
            "yyyy #",
            "ddd",
            "HHH",
            "aa",
            "MMMMMM",
            "V",
            "VVV",
            "zzzzz",
            "OO",
            "XXXXXX",
            "SSSSSSSSSS",
            "YYYY",
            "ww",
            "ppH",
            "bb",
            "yyyyyyyyyyyyyyyyyyyy",
        ] {
            assert!(parse_to_epoch_millis("2015", pattern).is_err(), "{pattern} should be rejected");
            assert!(validate_parse_pattern(pattern).is_err(), "{pattern} should be rejected");
        }
        assert!(validate_parse_pattern(&"'x".repeat(200)).is_err());
    }

    #[test]
    fn validate_parse_pattern_accepts_java_patterns() {
        for pattern in [
            "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
            "dd MMMM yyyy",
            "EEE, dd MMM yyyy HH:mm:ss z",
            "uuuu-MM-dd[ HH:mm[:ss]] VV",
            "h:mm a O",
            "'quote''s' yy",
            "''",
            "",
        ] {
            assert_eq!(validate_parse_pattern(pattern), Ok(()), "{pattern}");
        }
    }

    #[test]
    fn quoted_literals_parse_exactly() {
        assert_eq!(parse("2015 o'clock", "yyyy 'o''clock'"), 1_420_070_400_000);
        assert_eq!(parse("'2015'", "''yyyy''"), 1_420_070_400_000);
        parse_err("2015 O'CLOCK", "yyyy 'o''clock'");
    }

    /// A tiny deterministic generator, so the no-panic test needs no extra crates.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> usize {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as usize
        }

        fn string(&mut self, alphabet: &[char], max_len: usize) -> String {
            let len = self.next() % (max_len + 1);
            (0..len).map(|_| alphabet[self.next() % alphabet.len()]).collect()
        }
    }

    #[test]
    fn random_patterns_texts_and_zones_never_panic() {
        let pattern_chars: Vec<char> = "GCYxweEyuDMLdaKhHkmsSnzZVvOXxQpq[]'' -:.T+0123é{#".chars().collect();
        let text_chars: Vec<char> = "0123456789 -+:.TZUTCGMTAPMDecJanFriday/America_Chicago'é本".chars().collect();
        let mut rng = Lcg(42);
        for _ in 0..20_000 {
            let pattern = rng.string(&pattern_chars, 24);
            let text = rng.string(&text_chars, 32);
            let zone = rng.string(&text_chars, 12);
            let ms = (rng.next() as i64).wrapping_mul(rng.next() as i64 + 1).wrapping_sub(1 << 40);
            let _ = validate_format_pattern(&pattern);
            let _ = validate_parse_pattern(&pattern);
            let _ = format_epoch_millis(&pattern, ms, &zone);
            let _ = format_epoch_millis(&pattern, ms, "Europe/Dublin");
            let _ = parse_to_epoch_millis(&text, &pattern);
        }
        for ms in [i64::MIN, i64::MIN + 1, -8_334_632_851_200_001, 8_210_298_412_799_999, i64::MAX] {
            let _ = format_epoch_millis("GCYxweEyDMdaKhHkmsSzzzzZZZ", ms, "Pacific/Kiritimati");
        }
    }

    #[test]
    fn formatting_then_parsing_round_trips() {
        for ms in [0, 1, -1, APRIL_2016, 1_583_652_600_000, 253_402_300_799_999] {
            let text = fmt("yyyy-MM-dd'T'HH:mm:ss.SSSZZ", ms, "America/Belize");
            assert_eq!(parse(&text, "uuuu-MM-dd'T'HH:mm:ss.SSSXXX"), ms, "{text}");
        }
    }
}
