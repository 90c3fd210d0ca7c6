//! AWS IoT's v2 logging configuration (Set/GetV2LoggingOptions, Set/List/DeleteV2LoggingLevel):
//! the default level, the switch that silences everything, and levels for targets (a thing
//! group, a client id, a source IP, a principal). Replicated in the `meta` group, so every
//! node logs its devices' events at the same levels.

use std::collections::BTreeMap;

use ferrite_aws::AwsError;
use ferrite_cluster::{Batch, StoreError, Table};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::identity::{key, load};

const OPTIONS: &str = "logoptions";
const LEVEL: &str = "loglevel";

/// AWS's log target types.
pub const TARGET_TYPES: &[&str] = &["DEFAULT", "THING_GROUP", "CLIENT_ID", "SOURCE_IP", "PRINCIPAL_ID"];

/// AWS's log levels, least to most verbose (DISABLED logs nothing).
pub const LEVELS: &[&str] = &["DISABLED", "ERROR", "WARN", "INFO", "DEBUG"];

/// How verbose a level is (DISABLED 0 .. DEBUG 4).
pub fn verbosity(level: &str) -> u8 {
    LEVELS.iter().position(|l| *l == level).unwrap_or(0) as u8
}

/// The account's logging options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// The role AWS would assume; kept and shown.
    pub role_arn: Option<String>,
    /// The level of everything no target names.
    pub default_log_level: String,
    /// Nothing is logged.
    pub disable_all_logs: bool,
}

/// A change to the logging configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// SetV2LoggingOptions.
    SetOptions { options: Options },
    /// SetV2LoggingLevel.
    SetLevel { target_type: String, target_name: String, level: String },
    /// DeleteV2LoggingLevel.
    DeleteLevel { target_type: String, target_name: String },
}

/// Checks a level name.
pub fn check_level(level: &str) -> Result<(), AwsError> {
    if LEVELS.contains(&level) {
        Ok(())
    } else {
        Err(AwsError::invalid_request(format!("Invalid log level {level:?}: one of {}", LEVELS.join(", "))))
    }
}

/// Checks a target type name.
pub fn check_target(target: &str) -> Result<(), AwsError> {
    if TARGET_TYPES.contains(&target) {
        Ok(())
    } else {
        Err(AwsError::invalid_request(format!("Invalid targetType {target:?}: one of {}", TARGET_TYPES.join(", "))))
    }
}

/// The replicated logging configuration.
#[derive(Debug, Default)]
pub struct Logging {
    /// Grows with every applied change: connections keep the level they computed until it
    /// moves.
    generation: std::sync::atomic::AtomicU64,
    options: RwLock<Option<Options>>,
    /// (target type, target name) -> level.
    levels: RwLock<BTreeMap<(String, String), String>>,
}

fn level_key(target_type: &str, target_name: &str) -> String {
    format!("{target_type}\u{1}{target_name}")
}

impl Logging {
    /// Loads the stored configuration.
    pub fn load(store: &impl ferrite_cluster::ReadRows) -> Result<Logging, StoreError> {
        let options = load::<Options>(store, OPTIONS)?.into_iter().next().map(|(_, o)| o);
        let levels = load::<String>(store, LEVEL)?
            .into_iter()
            .filter_map(|(k, level)| {
                let (t, n) = k.split_once('\u{1}')?;
                Some(((t.to_string(), n.to_string()), level))
            })
            .collect();
        Ok(Logging { generation: Default::default(), options: RwLock::new(options), levels: RwLock::new(levels) })
    }

    /// Takes over a restored snapshot's configuration.
    pub fn replace(&self, other: Logging) {
        *self.options.write() = other.options.into_inner();
        *self.levels.write() = other.levels.into_inner();
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Changes with every applied change.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Some level is set for a thing group (only then are a client's groups looked up).
    pub fn has_group_levels(&self) -> bool {
        self.levels.read().keys().any(|(t, _)| t == "THING_GROUP")
    }

    /// Applies a committed command.
    pub fn apply(&self, command: Command, writes: &mut Batch) -> Result<(), AwsError> {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        match command {
            Command::SetOptions { options } => {
                check_level(&options.default_log_level)?;
                writes.put(Table::Registry, key(OPTIONS, ""), serde_json::to_vec(&options).unwrap_or_default());
                *self.options.write() = Some(options);
            }
            Command::SetLevel { target_type, target_name, level } => {
                check_target(&target_type)?;
                check_level(&level)?;
                let k = level_key(&target_type, &target_name);
                writes.put(Table::Registry, key(LEVEL, &k), serde_json::to_vec(&level).unwrap_or_default());
                self.levels.write().insert((target_type, target_name), level);
            }
            Command::DeleteLevel { target_type, target_name } => {
                check_target(&target_type)?;
                if self.levels.write().remove(&(target_type.clone(), target_name.clone())).is_none() {
                    return Err(AwsError::new(
                        404,
                        "ResourceNotFoundException",
                        format!("No log level is set for {target_type} {target_name}"),
                    ));
                }
                writes.delete(Table::Registry, key(LEVEL, &level_key(&target_type, &target_name)));
            }
        }
        Ok(())
    }

    /// The options, once set.
    pub fn options(&self) -> Option<Options> {
        self.options.read().clone()
    }

    /// Every target's level, in target order.
    pub fn levels(&self) -> Vec<(String, String, String)> {
        self.levels.read().iter().map(|((t, n), l)| (t.clone(), n.clone(), l.clone())).collect()
    }

    /// The level that applies to an event of a client, from the most specific target that
    /// names it: CLIENT_ID, SOURCE_IP, PRINCIPAL_ID, THING_GROUP (the thing's groups), then
    /// DEFAULT. `None`: nothing is logged (no options set, or every log disabled).
    pub fn level_for(&self, client_id: &str, source_ip: &str, principal: &str, groups: &[String]) -> Option<u8> {
        let options = self.options.read();
        let options = options.as_ref().filter(|o| !o.disable_all_logs)?;
        let levels = self.levels.read();
        let get = |t: &str, n: &str| levels.get(&(t.to_string(), n.to_string()));
        let specific = get("CLIENT_ID", client_id)
            .or_else(|| get("SOURCE_IP", source_ip))
            .or_else(|| get("PRINCIPAL_ID", principal))
            .or_else(|| groups.iter().find_map(|g| get("THING_GROUP", g)));
        Some(verbosity(specific.unwrap_or(&options.default_log_level)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_target_wins() {
        let l = Logging::default();
        let mut w = Batch::new();
        assert_eq!(l.level_for("c", "1.2.3.4", "p", &[]), None, "nothing before options are set");
        let options = Options { role_arn: None, default_log_level: "ERROR".into(), disable_all_logs: false };
        l.apply(Command::SetOptions { options: options.clone() }, &mut w).unwrap();
        let set = |t: &str, n: &str, level: &str| Command::SetLevel {
            target_type: t.into(),
            target_name: n.into(),
            level: level.into(),
        };
        l.apply(set("THING_GROUP", "lab", "WARN"), &mut w).unwrap();
        l.apply(set("CLIENT_ID", "noisy", "DEBUG"), &mut w).unwrap();
        assert_eq!(l.level_for("other", "ip", "p", &[]), Some(verbosity("ERROR")));
        assert_eq!(l.level_for("other", "ip", "p", &["lab".into()]), Some(verbosity("WARN")));
        assert_eq!(l.level_for("noisy", "ip", "p", &["lab".into()]), Some(verbosity("DEBUG")));
        assert!(l.apply(set("NOPE", "x", "INFO"), &mut w).is_err());
        assert!(l.apply(set("CLIENT_ID", "x", "LOUD"), &mut w).is_err());
        let off = Options { disable_all_logs: true, ..options };
        l.apply(Command::SetOptions { options: off }, &mut w).unwrap();
        assert_eq!(l.level_for("noisy", "ip", "p", &[]), None);
    }
}
