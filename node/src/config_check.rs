//! Checks of a configuration beyond its syntax: keys that do not exist (every one, with its
//! line and the key it was probably meant to be) and `[limits]` values out of range. Both
//! `ferrite serve` and `ferrite serve --check` run them, so a node never starts on a value
//! that would make it refuse every publish.

use crate::config::LimitsFile;

const TOP: &[&str] = &[
    "data_dir",
    "mqtt_addr",
    "ws_addr",
    "http_addr",
    "mqtts_addr",
    "wss_addr",
    "https_addr",
    "region",
    "account_id",
    "log_level",
    "log_json",
    "workers",
    "rules_dir",
    "shutdown_drain_secs",
    "limits",
    "tls",
    "auth",
    "cluster",
    "jobs",
    "provisioning",
];
const LIMITS: &[&str] = &[
    "max_payload_bytes",
    "max_client_id_bytes",
    "max_topic_bytes",
    "max_topic_slashes",
    "max_subscriptions_per_connection",
    "max_inflight",
    "max_queued_messages",
    "receive_maximum",
    "topic_alias_maximum",
    "default_session_expiry_secs",
    "max_session_expiry_secs",
    "max_keep_alive_secs",
    "min_keep_alive_secs",
    "max_outbound_bytes",
    "stalled_client_timeout_secs",
    "shadow_requests_per_second_per_thing",
    "thing_type_deletion_wait_secs",
    "max_connections",
];
const LISTENERS: &[&str] = &["mqtt", "ws", "mqtts", "wss", "https"];
const AUTH: &[&str] = &["allow_anonymous", "mqtt", "ws", "mqtts", "wss", "https", "jwt"];
const JWT: &[&str] =
    &["jwks_file", "issuer", "audience", "client_id_claim", "policies", "policies_claim", "leeway_secs"];
const TLS: &[&str] = &["server_cert", "server_key", "ca_cert", "ca_key"];
const CLUSTER: &[&str] =
    &["node_id", "addr", "peers", "ca_cert", "ca_key", "join", "log_compaction_entries", "replicate_sessions"];
const JOBS: &[&str] = &["minute_ms"];
const PROVISIONING: &[&str] = &["ownership_token_secs"];

/// Every table of the file (dotted path, `""` for the top level) and its keys.
const TABLES: &[(&str, &[&str])] = &[
    ("", TOP),
    ("limits", LIMITS),
    ("limits.max_connections", LISTENERS),
    ("auth", AUTH),
    ("auth.jwt", JWT),
    ("tls", TLS),
    ("cluster", CLUSTER),
    ("jobs", JOBS),
    ("provisioning", PROVISIONING),
];

fn known_keys(table: &str) -> Option<&'static [&'static str]> {
    TABLES.iter().find(|(name, _)| *name == table).map(|(_, keys)| *keys)
}

/// Every key of `text` (TOML) that the configuration does not have, as one line each:
/// `line 4: unknown key `mqt_addr` at the top level; did you mean `mqtt_addr`?`. Empty when
/// all are known, or when `text` is not TOML at all (the parser says why).
pub fn unknown_keys(text: &str) -> Vec<String> {
    let Ok(root) = text.parse::<toml::Table>() else { return Vec::new() };
    let mut out = Vec::new();
    walk(&root, "", text, &mut out);
    out.sort_by_key(|(line, _)| line.unwrap_or(usize::MAX));
    out.into_iter().map(|(_, problem)| problem).collect()
}

fn walk(table: &toml::Table, path: &str, text: &str, out: &mut Vec<(Option<usize>, String)>) {
    let Some(known) = known_keys(path) else { return };
    for (key, value) in table {
        let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        if known.contains(&key.as_str()) {
            if let toml::Value::Table(t) = value {
                walk(t, &child, text, out);
            }
            continue;
        }
        let line = line_of(text, path, key);
        let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
        let place = if path.is_empty() { "at the top level".to_string() } else { format!("in [{path}]") };
        out.push((line, format!("{at}unknown key `{key}` {place}{}", suggestion(path, key))));
    }
}

/// The 1-based line where `key` is set in table `path`, when it is written as `key = ...`
/// under a `[path]` header (or before any header, for the top level).
fn line_of(text: &str, path: &str, key: &str) -> Option<usize> {
    let mut table = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            table = line.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            continue;
        }
        let Some(rest) = line.strip_prefix(key) else { continue };
        if table == path && rest.trim_start().starts_with('=') {
            return Some(n + 1);
        }
    }
    None
}

/// `; did you mean `x`?` for a close key of the same table, `; it belongs in [t]` for a key
/// of another table, or the table's keys.
fn suggestion(path: &str, key: &str) -> String {
    let known = known_keys(path).unwrap_or(&[]);
    let lower = key.to_ascii_lowercase().replace('-', "_");
    let best = known.iter().map(|k| (edit_distance(&lower, k), *k)).min_by_key(|(d, _)| *d);
    if let Some((distance, k)) = best {
        if distance <= (k.len() / 3).max(2) {
            return format!("; did you mean `{k}`?");
        }
    }
    if let Some((table, _)) = TABLES.iter().find(|(t, keys)| *t != path && keys.contains(&lower.as_str())) {
        return match *table {
            "" => format!("; `{lower}` is a top-level key (put it before any [table])"),
            t => format!("; `{lower}` belongs in [{t}]"),
        };
    }
    format!("; the keys here are {}", known.join(", "))
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Each `[limits]` value out of its range, as one line naming the key, the value and the range.
pub fn limit_problems(l: &LimitsFile) -> Vec<String> {
    const MQTT_MAX_PACKET: u64 = 268_435_455;
    let u = |v: Option<usize>| v.map(|v| v as u64);
    let ranges: [(&str, Option<u64>, u64, u64); 17] = [
        ("max_payload_bytes", u(l.max_payload_bytes), 1, MQTT_MAX_PACKET),
        ("max_client_id_bytes", u(l.max_client_id_bytes), 1, 65_535),
        ("max_topic_bytes", u(l.max_topic_bytes), 1, 65_535),
        ("max_topic_slashes", u(l.max_topic_slashes), 1, 65_535),
        ("max_subscriptions_per_connection", u(l.max_subscriptions_per_connection), 1, u32::MAX as u64),
        ("max_inflight", u(l.max_inflight), 1, 65_535),
        ("max_queued_messages", u(l.max_queued_messages), 1, u32::MAX as u64),
        ("receive_maximum", l.receive_maximum.map(u64::from), 1, 65_535),
        ("max_keep_alive_secs", l.max_keep_alive_secs.map(u64::from), 1, 65_535),
        ("max_outbound_bytes", u(l.max_outbound_bytes), 1024, u32::MAX as u64),
        ("stalled_client_timeout_secs", l.stalled_client_timeout_secs, 1, 86_400),
        ("shadow_requests_per_second_per_thing", l.shadow_requests_per_second_per_thing.map(u64::from), 0, 1_000_000),
        ("max_connections.mqtt", u(l.max_connections.mqtt), 1, u32::MAX as u64),
        ("max_connections.ws", u(l.max_connections.ws), 1, u32::MAX as u64),
        ("max_connections.mqtts", u(l.max_connections.mqtts), 1, u32::MAX as u64),
        ("max_connections.wss", u(l.max_connections.wss), 1, u32::MAX as u64),
        ("max_connections.https", u(l.max_connections.https), 1, u32::MAX as u64),
    ];
    let mut out: Vec<String> = ranges
        .iter()
        .filter_map(|(key, value, min, max)| {
            let v = (*value)?;
            (v < *min || v > *max).then(|| format!("[limits] {key} = {v}: must be from {min} to {max}"))
        })
        .collect();
    let defaults = crate::broker::BrokerConfig::default();
    let min_keep = l.min_keep_alive_secs.unwrap_or(defaults.min_keep_alive);
    let max_keep = l.max_keep_alive_secs.unwrap_or(defaults.max_keep_alive);
    if min_keep > max_keep {
        out.push(format!("[limits] min_keep_alive_secs = {min_keep} is above max_keep_alive_secs = {max_keep}"));
    }
    let default_expiry = l.default_session_expiry_secs.unwrap_or(defaults.default_session_expiry);
    let max_expiry = l.max_session_expiry_secs.unwrap_or(defaults.max_session_expiry);
    if default_expiry > max_expiry {
        out.push(format!(
            "[limits] default_session_expiry_secs = {default_expiry} is above max_session_expiry_secs = {max_expiry}"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys serde names for a table when it meets an unknown one.
    fn serde_keys(table: &str) -> Vec<String> {
        let doc =
            if table.is_empty() { "zzz_unknown = 1\n".to_string() } else { format!("[{table}]\nzzz_unknown = 1\n") };
        let e = toml::from_str::<crate::config::ConfigFile>(&doc).unwrap_err().to_string();
        let expected = e.split("expected").nth(1).unwrap_or_else(|| panic!("{table}: {e}"));
        let mut keys: Vec<String> = expected.split('`').skip(1).step_by(2).map(str::to_string).collect();
        keys.sort();
        keys
    }

    #[test]
    fn the_known_keys_are_exactly_the_keys_the_file_has() {
        for (table, keys) in TABLES {
            let mut ours: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            ours.sort();
            assert_eq!(ours, serde_keys(table), "table [{table}]");
        }
    }

    #[test]
    fn every_unknown_key_is_named_with_its_line_and_a_suggestion() {
        let text = "mqt_addr = \"0.0.0.0:1883\"\nlog_level = \"info\"\nmax_payload_bytes = 5\n\n[limits]\nmax_payload_byte = 10\n";
        let found = unknown_keys(text);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0], "line 1: unknown key `mqt_addr` at the top level; did you mean `mqtt_addr`?");
        assert_eq!(
            found[1],
            "line 3: unknown key `max_payload_bytes` at the top level; `max_payload_bytes` belongs in [limits]"
        );
        assert_eq!(found[2], "line 6: unknown key `max_payload_byte` in [limits]; did you mean `max_payload_bytes`?");
        assert!(unknown_keys("[limits]\nbanana = 1\n")[0].contains("the keys here are max_payload_bytes"));
        assert!(unknown_keys("not = [toml").is_empty(), "the parser reports syntax errors");
    }

    #[test]
    fn limits_out_of_range_are_named_with_their_range() {
        let l = LimitsFile {
            max_payload_bytes: Some(0),
            receive_maximum: Some(0),
            min_keep_alive_secs: Some(100),
            max_keep_alive_secs: Some(60),
            ..LimitsFile::default()
        };
        let found = limit_problems(&l);
        assert!(
            found.contains(&"[limits] max_payload_bytes = 0: must be from 1 to 268435455".to_string()),
            "{found:?}"
        );
        assert!(found.iter().any(|p| p.starts_with("[limits] receive_maximum = 0")), "{found:?}");
        assert!(found.iter().any(|p| p.contains("min_keep_alive_secs = 100 is above max_keep_alive_secs = 60")));
        assert!(limit_problems(&LimitsFile::default()).is_empty());
    }
}
