//! The node's own log output (`tracing`): which levels are accepted, what is quiet by default,
//! colour only on a terminal, text or JSON lines, and the first line naming the build.

use std::io::IsTerminal as _;

/// The level names a filter directive may use.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Libraries whose INFO is for their own developers (raft-rs's elections in Rust debug
/// syntax, Cranelift's generated code): warn unless the filter names them.
const QUIET_TARGETS: [&str; 2] = ["raft", "cranelift"];

/// Checks a `--log-level` / `log_level` value and gives the filter the node runs with.
/// A value is a comma-separated list of `LEVEL` or `TARGET=LEVEL` directives; anything else
/// (`verbose`, `ferrite=loud`) is refused naming what is accepted, because tracing would read
/// a bare word as a target and silence every log.
pub fn filter_directives(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("the log level is empty; use one of error, warn, info, debug, trace, off".into());
    }
    for directive in value.split(',').map(str::trim) {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.is_empty() => level,
            _ => directive,
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "unknown log level {directive:?} in {value:?}: use one of error, warn, info, debug, trace, off, \
                 or TARGET=LEVEL directives such as `info,ferrite::rules=debug`"
            ));
        }
    }
    let mut directives = value.to_string();
    for target in QUIET_TARGETS {
        if !value.split(',').any(|d| d.trim().starts_with(target)) {
            directives.push_str(&format!(",{target}=warn"));
        }
    }
    Ok(directives)
}

/// What the first log line says the binary is: version, profile and platform.
pub fn build_description() -> String {
    format!("{} ({} build, {})", env!("CARGO_PKG_VERSION"), build_profile(), build_platform())
}

/// The platform the binary runs on, e.g. `x86_64-linux`.
pub fn build_platform() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// `release` or `debug`: benchmarks and bug reports need to know.
pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Installs the node's subscriber on stderr: JSON lines with every field when `json`, text
/// otherwise, coloured only when stderr is a terminal (and `NO_COLOR` is unset). Records of
/// the `log` crate (Cranelift) go through the same subscriber, so they obey the filter and the
/// format too.
pub fn init(level: &str, json: bool) -> anyhow::Result<()> {
    let directives = filter_directives(level).map_err(anyhow::Error::msg)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .map_err(|e| anyhow::anyhow!("invalid log level {level:?}: {e}"))?;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.with_ansi(colour).init();
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        profile = build_profile(),
        platform = %build_platform(),
        "ferrite {}",
        build_description()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_target_directives_are_accepted_and_quiet_libraries_default_to_warn() {
        assert_eq!(filter_directives("info").unwrap(), "info,raft=warn,cranelift=warn");
        assert_eq!(filter_directives("DEBUG").unwrap(), "DEBUG,raft=warn,cranelift=warn");
        assert_eq!(filter_directives("info,raft=debug").unwrap(), "info,raft=debug,cranelift=warn");
        assert_eq!(filter_directives("ferrite::rules=trace").unwrap(), "ferrite::rules=trace,raft=warn,cranelift=warn");
    }

    #[test]
    fn unknown_levels_are_refused_naming_what_is_accepted() {
        for bad in ["verbose", "", "info,loud", "ferrite=loud", "=info"] {
            let e = filter_directives(bad).unwrap_err();
            assert!(e.contains("error, warn, info, debug, trace"), "{bad}: {e}");
        }
    }
}
