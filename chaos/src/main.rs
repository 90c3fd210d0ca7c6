//! `ferrite-chaos`: runs a cluster under faults and checks what it did (`run`), or checks a
//! recorded history again (`check`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ferrite_chaos::checkers::shadow::{ShadowConfig, DEFAULT_MAX_STATES};
use ferrite_chaos::{history, CheckConfig, History, Verdict};

/// Jepsen-style testing of a Ferrite cluster.
#[derive(Parser)]
#[command(name = "ferrite-chaos", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a cluster of `ferrite` nodes, each in its own network namespace (needs root),
    /// run the workloads while faults are injected on a seeded schedule, heal, let the
    /// cluster converge, take the final reads, and check the history. Prints a summary;
    /// writes DIR/history.jsonl and DIR/report.json. Exits 0 when valid, 1 on a violation.
    ///
    /// Example: ferrite-chaos run --nodes 5 --duration 60s --faults partition,kill,pause,restart
    /// --workloads qos1,shadow,retained,takeover --seed 7
    Run(ferrite_chaos::harness::run::RunArgs),
    /// Run every checker over a history file and print the summary. Exits 0 when valid,
    /// 1 on a violation, 2 when a check could not finish, 3 when the history cannot be read.
    Check(CheckArgs),
}

#[derive(Args)]
struct CheckArgs {
    /// The history file (JSON lines).
    #[arg(long, value_name = "FILE")]
    history: PathBuf,
    /// Also write the full report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Search budget of the shadow checker, in explored states per key.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_STATES)]
    max_states: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check(&args),
        Command::Run(args) => ferrite_chaos::harness::run::run(args),
    };
    match result {
        Ok(Verdict::Valid) => ExitCode::SUCCESS,
        Ok(Verdict::Invalid) => ExitCode::from(1),
        Ok(Verdict::Unknown) => ExitCode::from(2),
        Err(err) => {
            eprintln!("ferrite-chaos: {err:#}");
            ExitCode::from(3)
        }
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<Verdict> {
    let ops = history::load(&args.history)?;
    let history = History::from_ops(&ops).with_context(|| format!("pairing {}", args.history.display()))?;
    let config = CheckConfig { shadow: ShadowConfig { max_states: args.max_states } };
    let report =
        ferrite_chaos::check(&history, &config).with_context(|| format!("checking {}", args.history.display()))?;
    print!("{}", ferrite_chaos::summary(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("serializing the report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report.verdict)
}
