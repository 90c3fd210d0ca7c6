//! Rule throughput on one thread, with baselines in the same run: the Cranelift JIT against the
//! reference interpreter (with payload parsing, and over pre-parsed corpus payloads), and
//! serde_json parsing the same payload into `serde_json::Value` (what a rules engine built on
//! serde_json would pay before evaluating anything).
//!
//! Run: cargo bench -p ferrite-rules --bench interp

use std::hint::black_box;
use std::time::{Duration, Instant};

use ferrite_rules::jit::JitModule;
use ferrite_rules::{
    compile, evaluate, parse_json, MessageContext, MqttProperties, NoHost, Payload, SqlVersion, Value,
};

const PAYLOAD: &str = r#"{"deviceId":"sensor-0042","temp":61.5,"humidity":48.25,"pressure":1013.2,"battery":87,"firmware":"2.4.1","location":{"lat":47.6062,"lon":-122.3321},"status":"ok","ts":1700000000123,"tags":["roof","north"]}"#;

/// `cargo bench` passes `--bench`; under `cargo test` the bench only smoke-runs.
fn measure_for() -> Duration {
    if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(20)
    }
}

/// `BENCH_ONLY=text` runs only the measurements whose label contains the text (for profiling).
fn per_second(label: &str, mut f: impl FnMut()) -> f64 {
    if std::env::var("BENCH_ONLY").is_ok_and(|only| !label.contains(&only)) {
        return f64::NAN;
    }
    for _ in 0..1_000 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < measure_for() {
        for _ in 0..1000 {
            f();
        }
        n += 1000;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("{label:<58} {rate:>12.0} msg/s");
    rate
}

/// Deterministic corpus cases whose FROM matches: (statement, payload bytes, topic).
fn corpus_rules() -> Vec<(ferrite_rules::Statement, Vec<u8>, String)> {
    let path = manifest_dir().join("tests/corpus/cases.json");
    let text = std::fs::read_to_string(path).expect("vendored corpus");
    let Ok(Value::Array(cases)) = parse_json(text.as_bytes()) else { panic!("corpus is a JSON array") };
    let field = |c: &Value, k: &str| match c {
        Value::Object(o) => o.get(k).cloned(),
        _ => None,
    };
    let text_of = |v: Option<Value>| match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let mut out = Vec::new();
    for case in &cases {
        if matches!(field(case, "nondeterministic"), Some(Value::Bool(true))) || field(case, "context").is_some() {
            continue;
        }
        let (Some(sql), Some(topic)) = (text_of(field(case, "sql")), text_of(field(case, "topic"))) else { continue };
        if topic.starts_with("$aws/rules/") {
            continue;
        }
        let version =
            text_of(field(case, "sql_version")).and_then(|v| SqlVersion::parse(&v)).unwrap_or(SqlVersion::V2015_10_08);
        let Ok(stmt) = compile(&sql, version) else { continue };
        if !stmt.topic_filter.as_deref().is_some_and(|f| ferrite_rules::topic_matches(f, &topic)) {
            continue;
        }
        let raw = match (text_of(field(case, "payload_raw")), field(case, "payload")) {
            (Some(r), _) => r.into_bytes(),
            (None, Some(p)) => p.to_json(SqlVersion::V2015_10_08).into_bytes(),
            (None, None) => continue,
        };
        out.push((stmt, raw, topic));
        SQL_TEXT.with(|t| t.borrow_mut().push(sql));
    }
    out
}

thread_local! {
    /// The SQL of each corpus rule, for naming the rules in the per-rule report.
    static SQL_TEXT: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn main() {
    assert!((190..=210).contains(&PAYLOAD.len()), "payload is {} bytes", PAYLOAD.len());
    let cases = [
        ("SELECT temp, deviceId FROM 'sensors/+/data' WHERE temp > 50", "reference rule"),
        ("SELECT * FROM 'sensors/+/data'", "SELECT *"),
        (
            "SELECT deviceId, temp * 1.8 + 32 AS f, upper(status) AS s, location.lat AS lat FROM 'sensors/+/data' WHERE temp > 50 AND battery > 20",
            "transform",
        ),
    ];
    println!("payload: {} bytes, 1 thread", PAYLOAD.len());
    let baseline = per_second("baseline: serde_json::from_slice::<Value>", || {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(PAYLOAD.as_bytes())).ok());
    });
    let props = MqttProperties::default();

    println!("\n== parse the payload + evaluate + render the output, per message ==");
    for (sql, label) in cases {
        let stmt = compile(sql, SqlVersion::V2016_03_23).expect("compiles");
        let jit = JitModule::compile(std::iter::once(&stmt));
        let projection = stmt.projection();
        let full_rate = per_second(&format!("interp, full parse (previous design): {label}"), || {
            let payload = Payload::new(black_box(PAYLOAD.as_bytes()));
            let ctx =
                MessageContext { client_id: Some("bench"), ..MessageContext::new("sensors/x/data", &payload, &props) };
            black_box(evaluate(&stmt, &ctx, &NoHost).ok().flatten().map(|o| o.into_bytes(stmt.version)));
        });
        let interp_rate = per_second(&format!("interp, projected parse: {label}"), || {
            let payload = Payload::with_projection(black_box(PAYLOAD.as_bytes()), projection.as_ref());
            let ctx =
                MessageContext { client_id: Some("bench"), ..MessageContext::new("sensors/x/data", &payload, &props) };
            black_box(evaluate(&stmt, &ctx, &NoHost).ok().flatten().map(|o| o.into_bytes(stmt.version)));
        });
        let jit_rate = per_second(&format!("jit, projected parse: {label}"), || {
            let payload = Payload::with_projection(black_box(PAYLOAD.as_bytes()), projection.as_ref());
            let ctx =
                MessageContext { client_id: Some("bench"), ..MessageContext::new("sensors/x/data", &payload, &props) };
            black_box(jit.evaluate(0, &ctx, &NoHost).ok().flatten().map(|o| o.into_bytes(stmt.version)));
        });
        println!("{:<58} {:>12.2}x", "  jit / interp (both projected)", jit_rate / interp_rate);
        println!("{:<58} {:>12.2}x", "  jit projected / interp full parse", jit_rate / full_rate);
        println!("{:<58} {:>12.2}x", "  jit / serde_json parse-only baseline", jit_rate / baseline);
    }

    println!("\n== pre-parsed payloads: evaluate + render the output ==");
    let mut rules = vec![];
    for (sql, _) in cases {
        let stmt = compile(sql, SqlVersion::V2016_03_23).expect("compiles");
        rules.push((stmt, PAYLOAD.as_bytes().to_vec(), "sensors/x/data".to_string()));
    }
    let reference = rules.remove(0);
    let corpus = corpus_rules();
    for (label, set) in [("reference rule", vec![reference]), ("corpus-derived rules (all of them, one each)", corpus)]
    {
        let module = JitModule::compile(set.iter().map(|(s, _, _)| s));
        let payloads: Vec<Payload<'_>> = set.iter().map(|(_, raw, _)| Payload::new(raw)).collect();
        for p in &payloads {
            p.document();
        }
        let contexts: Vec<MessageContext<'_>> = set
            .iter()
            .zip(&payloads)
            .map(|((_, _, topic), p)| MessageContext {
                client_id: Some("bench"),
                ..MessageContext::new(topic, p, &props)
            })
            .collect();
        let n = set.len() as f64;
        let interp_rate = per_second(&format!("interp: {label} ({} rules)", set.len()), || {
            for ((stmt, _, _), ctx) in set.iter().zip(&contexts) {
                black_box(evaluate(stmt, ctx, &NoHost).ok().flatten().map(|o| o.into_bytes(stmt.version)));
            }
        }) * n;
        let jit_rate = per_second(&format!("jit: {label} ({} rules)", set.len()), || {
            for (i, ((stmt, _, _), ctx)) in set.iter().zip(&contexts).enumerate() {
                black_box(module.evaluate(i, ctx, &NoHost).ok().flatten().map(|o| o.into_bytes(stmt.version)));
            }
        }) * n;
        println!("{:<58} {:>12.0} evals/s vs {:.0}", "  jit evaluations/s vs interp", jit_rate, interp_rate);
        println!("{:<58} {:>12.2}x", "  jit / interp (total time)", jit_rate / interp_rate);
        if set.len() > 1 && std::env::var("BENCH_ONLY").is_err() {
            per_rule_ratios(&set, &module, &contexts);
        }
    }
}

/// Each rule on its own: the geometric mean of the JIT/interpreter speed ratios (every rule
/// counts the same, however slow its functions), and the rules where the JIT gains least.
fn per_rule_ratios(
    set: &[(ferrite_rules::Statement, Vec<u8>, String)],
    module: &JitModule,
    contexts: &[MessageContext<'_>],
) {
    let time = |f: &mut dyn FnMut()| {
        let budget = measure_for() / 100;
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < budget {
            for _ in 0..20 {
                f();
            }
            n += 20;
        }
        start.elapsed().as_secs_f64() / f64::from(n)
    };
    let mut ratios = Vec::new();
    for (i, ((stmt, _, _), ctx)) in set.iter().zip(contexts).enumerate() {
        let interp = time(&mut || {
            black_box(evaluate(stmt, ctx, &NoHost).ok().flatten().map(|o| o.into_bytes(stmt.version)));
        });
        let jit = time(&mut || {
            black_box(module.evaluate(i, ctx, &NoHost).ok().flatten().map(|o| o.into_bytes(stmt.version)));
        });
        ratios.push((interp / jit, interp, i));
    }
    let geomean = (ratios.iter().map(|(r, _, _)| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    let mut sorted: Vec<f64> = ratios.iter().map(|(r, _, _)| *r).collect();
    sorted.sort_by(f64::total_cmp);
    println!("{:<58} {:>12.2}x", "  jit / interp, geometric mean over rules", geomean);
    println!("{:<58} {:>12.2}x", "  jit / interp, median rule", sorted[sorted.len() / 2]);
    ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (r, interp, i) in ratios.iter().take(8) {
        let sql = SQL_TEXT.with(|t| t.borrow().get(*i).cloned().unwrap_or_default());
        println!("    least gain: {r:>5.2}x  interp {:>8.0} ns  {sql}", interp * 1e9);
    }
}

/// The crate directory: cargo's runtime `CARGO_MANIFEST_DIR` (right even when the binary was
/// built from another checkout sharing the target dir), else the compile-time one.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
