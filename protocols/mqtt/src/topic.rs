//! Topic names and topic filters: validation against the MQTT rules and AWS IoT's
//! limits, matching, and `$share/{group}/{filter}` parsing.

use crate::packet::reason;

/// Limits on topics that AWS IoT Core enforces; configurable per node.
#[derive(Debug, Clone, Copy)]
pub struct TopicLimits {
    /// Maximum UTF-8 length of a topic name or filter, in bytes.
    pub max_bytes: usize,
    /// Maximum number of `/` separators (not counting a `$aws/rules/{rule}/` prefix).
    pub max_slashes: usize,
}

impl Default for TopicLimits {
    fn default() -> Self {
        TopicLimits { max_bytes: 256, max_slashes: 7 }
    }
}

/// Why a topic or filter was refused: the reason code to send and a message to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError {
    /// The MQTT 5.0 reason code for SUBACK, PUBACK or DISCONNECT.
    pub reason_code: u8,
    /// What is wrong, for the log.
    pub message: &'static str,
}

fn err(reason_code: u8, message: &'static str) -> TopicError {
    TopicError { reason_code, message }
}

/// Counts the slashes that AWS counts: a Basic Ingest prefix `$aws/rules/{rule}/` is free.
fn counted_slashes(topic: &str) -> usize {
    let all = topic.bytes().filter(|b| *b == b'/').count();
    if topic.starts_with("$aws/rules/") {
        // `$aws/rules/name/` holds three slashes that AWS does not count.
        all.saturating_sub(3)
    } else {
        all
    }
}

fn check_limits(topic: &str, limits: &TopicLimits, code: u8) -> Result<(), TopicError> {
    if topic.len() > limits.max_bytes {
        return Err(err(code, "topic is longer than the configured maximum (default 256 bytes)"));
    }
    if counted_slashes(topic) > limits.max_slashes {
        return Err(err(code, "topic has more forward slashes than allowed (default 7)"));
    }
    Ok(())
}

/// Checks a topic name a client publishes to: non-empty, no wildcards, within limits.
pub fn validate_topic_name(topic: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(err(reason::TOPIC_NAME_INVALID, "topic name is empty"));
    }
    if topic.contains(['+', '#']) {
        return Err(err(reason::TOPIC_NAME_INVALID, "topic name contains a wildcard (+ or #)"));
    }
    // The codec already refuses U+0000 in any MQTT string; topics from HTTP come here only.
    if topic.contains('\0') {
        return Err(err(reason::TOPIC_NAME_INVALID, "topic name contains U+0000"));
    }
    check_limits(topic, limits, reason::TOPIC_NAME_INVALID)
}

/// Checks a topic filter (without a `$share/` prefix): `+` and `#` occupy whole levels,
/// `#` only last.
pub fn validate_filter(filter: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(err(reason::TOPIC_FILTER_INVALID, "topic filter is empty"));
    }
    if filter.contains('\0') {
        return Err(err(reason::TOPIC_FILTER_INVALID, "topic filter contains U+0000"));
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != levels.len() - 1) {
            return Err(err(reason::TOPIC_FILTER_INVALID, "'#' must be a whole level and the last one"));
        }
        if level.contains('+') && *level != "+" {
            return Err(err(reason::TOPIC_FILTER_INVALID, "'+' must occupy a whole level"));
        }
    }
    check_limits(filter, limits, reason::TOPIC_FILTER_INVALID)
}

/// A subscription filter split into its share group (if any) and the filter proper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFilter<'a> {
    /// The group of a `$share/{group}/...` subscription; `None` for an ordinary one.
    pub share_group: Option<&'a str>,
    /// The filter messages are matched against, without the `$share/{group}/` prefix.
    pub filter: &'a str,
}

/// Splits `$share/{group}/{filter}`; validates the group name and the filter.
pub fn parse_subscription<'a>(raw: &'a str, limits: &TopicLimits) -> Result<ParsedFilter<'a>, TopicError> {
    if let Some(rest) = raw.strip_prefix("$share/") {
        let Some((group, filter)) = rest.split_once('/') else {
            return Err(err(reason::TOPIC_FILTER_INVALID, "shared subscription needs $share/{group}/{filter}"));
        };
        if group.is_empty() || group.contains(['+', '#']) {
            return Err(err(reason::TOPIC_FILTER_INVALID, "share group name is empty or has a wildcard"));
        }
        validate_filter(filter, limits)?;
        return Ok(ParsedFilter { share_group: Some(group), filter });
    }
    validate_filter(raw, limits)?;
    Ok(ParsedFilter { share_group: None, filter: raw })
}

/// True when `filter` matches `topic`: `+` is one level, `#` the rest (its parent level
/// included: `a/#` matches `a`), and a filter starting with a wildcard does not match a topic
/// starting with `$`. One implementation serves subscriptions and rule FROM filters
/// (`ferrite_rules::topic_matches` calls it), so a rule sees exactly what a subscriber would.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_levels() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "a/b"));
        assert!(matches("+/+", "/x"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("a/b", "a/b/c"));
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$aws/x"));
        assert!(matches("$aws/#", "$aws/x"));
    }

    #[test]
    fn filters_are_validated() {
        let l = TopicLimits::default();
        assert!(validate_filter("a/#", &l).is_ok());
        assert!(validate_filter("a/#/b", &l).is_err());
        assert!(validate_filter("a+/b", &l).is_err());
        assert!(validate_filter("", &l).is_err());
        assert!(validate_topic_name("a/+", &l).is_err());
        assert!(validate_topic_name("a/\0b", &l).is_err(), "U+0000 is never part of an MQTT string");
        assert!(validate_filter("a/\0/#", &l).is_err());
    }

    #[test]
    fn aws_slash_limit_ignores_basic_ingest_prefix() {
        let l = TopicLimits::default();
        assert!(validate_topic_name("1/2/3/4/5/6/7/8", &l).is_ok());
        assert!(validate_topic_name("1/2/3/4/5/6/7/8/9", &l).is_err());
        assert!(validate_topic_name("$aws/rules/r/1/2/3/4/5/6/7/8", &l).is_ok());
    }

    #[test]
    fn shared_subscriptions_parse() {
        let l = TopicLimits::default();
        let p = parse_subscription("$share/g/a/+", &l).unwrap();
        assert_eq!(p.share_group, Some("g"));
        assert_eq!(p.filter, "a/+");
        assert!(parse_subscription("$share/g", &l).is_err());
        assert!(parse_subscription("$share//a", &l).is_err());
    }
}
