//! `ferrite rules ...`: check rule files, evaluate one statement against one message, and run
//! IoT SQL case files, without starting a node.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::rules::files::read_rule_sources;
use ferrite_rules::cases::Engine;
use ferrite_rules::jit::JitModule;
use ferrite_rules::{compile, evaluate, MessageContext, MqttProperties, NoHost, Output, Payload, SqlVersion};

/// The `rules` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Validate rule files and directories (every `*.sql` below a directory).
    ///
    /// Exit status 0 when every file is valid; 1 with the errors (file:line:col, the line, a
    /// caret and what to do) otherwise. A file with any error would load nothing.
    ///
    /// Example: ferrite rules check rules/ extra/alerts.sql
    ///
    /// With --explain, also say for each rule how it runs: `fully compiled` (Cranelift native
    /// code), `compiled; falls back to the interpreter for ...` (naming the parts), or
    /// `interpreted: <why>`.
    Check {
        /// Files or directories.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Print how each rule is compiled.
        #[arg(long)]
        explain: bool,
    },
    /// Evaluate one SQL statement against one message and print the output document as one
    /// line of JSON, or `null` when WHERE filters the message out (or FROM does not match).
    ///
    /// Example: ferrite rules eval --sql "SELECT temp * 1.8 + 32 AS f FROM 'd/+'" --topic d/1 --payload '{"temp":21}'
    Eval(EvalArgs),
    /// Measure one statement on one thread: messages per second, parsing the payload each time
    /// (as the node does for every message, reading only the members the statement uses).
    ///
    /// Example: ferrite rules bench --sql "SELECT temp, deviceId FROM 'sensors/+/data' WHERE temp > 50" --payload '{"temp":60,"deviceId":"d1"}' --engine jit
    Bench(BenchArgs),
    /// Run a case file in the format of the IoT SQL corpus (a JSON array of cases with sql,
    /// sql_version, topic, payload and expected) and end with `N passed, M failed`.
    ///
    /// With --engine both (the default) every case runs on the Cranelift JIT and on the
    /// interpreter, and any difference between them (output bytes, Undefined, error) fails it.
    ///
    /// Example: ferrite rules test ../shared/iot-sql/cases.json --engine both
    Test {
        /// The case file.
        #[arg(value_name = "CASES.json")]
        file: PathBuf,
        /// Print every case, not only failures.
        #[arg(long, short)]
        verbose: bool,
        /// Engine: `jit`, `interp`, or `both` (run both and compare).
        #[arg(long, value_name = "ENGINE", default_value = "both", value_parser = ["jit", "interp", "both"])]
        engine: String,
    },
}

/// Flags of `ferrite rules eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The statement, e.g. "SELECT * FROM 'a/#' WHERE temp > 30".
    #[arg(long, value_name = "SQL")]
    pub sql: String,
    /// Topic the message was published to.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// Payload text (usually JSON; anything else is a binary payload).
    #[arg(long, value_name = "JSON", conflicts_with = "payload_file")]
    pub payload: Option<String>,
    /// Read the payload bytes from a file instead.
    #[arg(long, value_name = "FILE")]
    pub payload_file: Option<PathBuf>,
    /// Client id of the publisher, for clientid().
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// SQL version: 2016-03-23 (default), 2015-10-08 or beta.
    #[arg(long, value_name = "VERSION", default_value = "2016-03-23")]
    pub sql_version: String,
}

/// Flags of `ferrite rules bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The statement.
    #[arg(long, value_name = "SQL")]
    pub sql: String,
    /// Payload text.
    #[arg(long, value_name = "JSON")]
    pub payload: String,
    /// Topic of the messages [default: a topic that matches FROM with `+` and `#` filled in].
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Engine: `jit` (Cranelift native code, what the node runs) or `interp` (the reference
    /// interpreter).
    #[arg(long, value_name = "ENGINE", default_value = "jit", value_parser = ["jit", "interp"])]
    pub engine: String,
    /// How long to run.
    #[arg(long, value_name = "N", default_value_t = 3.0)]
    pub seconds: f64,
    /// SQL version.
    #[arg(long, value_name = "VERSION", default_value = "2016-03-23")]
    pub sql_version: String,
}

/// Runs a `rules` subcommand and returns the process exit code.
pub fn run(command: RulesCommand) -> anyhow::Result<ExitCode> {
    match command {
        RulesCommand::Check { paths, explain } => check(&paths, explain),
        RulesCommand::Eval(args) => eval(args),
        RulesCommand::Test { file, verbose, engine } => {
            test(&file, verbose, Engine::parse(&engine).unwrap_or_default())
        }
        RulesCommand::Bench(args) => bench(args),
    }
}

fn check(paths: &[PathBuf], explain: bool) -> anyhow::Result<ExitCode> {
    let sources = read_rule_sources(paths)?;
    match ferrite_rules::load_rule_files(&sources) {
        Ok(rules) => {
            if explain {
                let module = JitModule::compile(rules.iter().map(|r| &r.statement));
                for (i, r) in rules.iter().enumerate() {
                    println!("{} ({}): {}", r.name, r.origin, module.explanation(i));
                }
            }
            let files = sources.len();
            println!("{} rule{} in {files} file{}: ok", rules.len(), s(rules.len()), s(files));
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            let count: usize = errors.iter().map(|e| e.diagnostics.len()).sum();
            for e in &errors {
                eprintln!("{}", e.render());
            }
            eprintln!("{count} error{} in {} file{}; nothing would be loaded", s(count), errors.len(), s(errors.len()));
            Ok(ExitCode::FAILURE)
        }
    }
}

fn s(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let version = SqlVersion::parse(&args.sql_version)
        .with_context(|| format!("unknown --sql-version {:?}: use 2016-03-23, 2015-10-08 or beta", args.sql_version))?;
    let payload: Vec<u8> = match (&args.payload, &args.payload_file) {
        (Some(p), _) => p.clone().into_bytes(),
        (None, Some(f)) => std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
        (None, None) => Vec::new(),
    };
    let stmt = match compile(&args.sql, version) {
        Ok(s) => s,
        Err(diags) => {
            eprint!("{}", ferrite_rules::diag::render_all(&diags, "--sql", &args.sql));
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(filter) = &stmt.topic_filter {
        if !ferrite_rules::topic_matches(filter, &args.topic) {
            println!("null");
            return Ok(ExitCode::SUCCESS);
        }
    }
    if let Some(refusal) = malformed_json(&payload) {
        eprintln!("error: {refusal}");
        return Ok(ExitCode::FAILURE);
    }
    let payload = Payload::new(&payload);
    let properties = MqttProperties::default();
    let ctx = MessageContext {
        client_id: args.client_id.as_deref(),
        timestamp_ms: crate::broker::message::now_ms() as i64,
        ..MessageContext::new(&args.topic, &payload, &properties)
    };
    match evaluate(&stmt, &ctx, &NoHost) {
        Ok(None) => println!("null"),
        Ok(Some(Output::Json(v))) => println!("{}", v.to_json(version)),
        Ok(Some(Output::Text(t))) => println!("{t}"),
        Ok(Some(Output::Raw(bytes))) => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.write_all(b"\n")?;
        }
        Err(e) => {
            eprintln!("error: evaluation failed: {e}");
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a payload that is meant as JSON (it starts with `{` or `[`) is not: the broker would
/// see a binary payload whose fields are all undefined, and `eval` would print `{}`, which
/// reads as a result. Other non-JSON payloads are binary on purpose (`SELECT *`, `encode`).
fn malformed_json(payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?.trim_start();
    if !(text.starts_with('{') || text.starts_with('[')) {
        return None;
    }
    let e = serde_json::from_str::<serde_json::Value>(text).err()?;
    Some(format!(
        "the payload is not valid JSON: {e} (line {}, column {}); a rule would see a binary payload with no fields",
        e.line(),
        e.column()
    ))
}

fn test(file: &Path, verbose: bool, engine: Engine) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let results = ferrite_rules::cases::run_case_file_with(&text, engine)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut failed = 0;
    for r in &results {
        match &r.outcome {
            Ok(note) => {
                if verbose || note.is_some() {
                    println!("ok    {}{}", r.id, note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default());
                }
            }
            Err(why) => {
                failed += 1;
                println!("FAIL  {}: {why}", r.id);
            }
        }
    }
    println!("{} passed, {failed} failed", results.len() - failed);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let version = SqlVersion::parse(&args.sql_version)
        .with_context(|| format!("unknown --sql-version {:?}: use 2016-03-23, 2015-10-08 or beta", args.sql_version))?;
    let stmt = match compile(&args.sql, version) {
        Ok(s) => s,
        Err(diags) => {
            eprint!("{}", ferrite_rules::diag::render_all(&diags, "--sql", &args.sql));
            return Ok(ExitCode::FAILURE);
        }
    };
    let topic = args.topic.clone().unwrap_or_else(|| {
        stmt.topic_filter.as_deref().unwrap_or("bench").replace('+', "x").replace("/#", "/x").replace('#', "x")
    });
    let raw = args.payload.as_bytes();
    let properties = MqttProperties::default();
    let jit = (args.engine == "jit").then(|| JitModule::compile(std::iter::once(&stmt)));
    // As the node does: parse only the members the statement reads (validating all the text).
    let projection = stmt.projection();
    let run_one = || {
        let payload = Payload::with_projection(raw, projection.as_ref());
        let ctx = MessageContext { client_id: Some("bench"), ..MessageContext::new(&topic, &payload, &properties) };
        match &jit {
            Some(m) => m.evaluate(0, &ctx, &NoHost).map(|o| o.is_some()),
            None => evaluate(&stmt, &ctx, &NoHost).map(|o| o.is_some()),
        }
    };
    let passes = run_one().map_err(|e| anyhow::anyhow!("evaluation failed: {e}"))?;
    let start = std::time::Instant::now();
    let deadline = std::time::Duration::from_secs_f64(args.seconds.max(0.1));
    let mut n: u64 = 0;
    while start.elapsed() < deadline {
        for _ in 0..1000 {
            let _ = std::hint::black_box(run_one());
        }
        n += 1000;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.0} messages/s (engine {}, 1 thread, payload of {} bytes parsed per message, WHERE {})",
        n as f64 / secs,
        args.engine,
        raw.len(),
        if passes { "passes" } else { "filters out" }
    );
    Ok(ExitCode::SUCCESS)
}
