//! Interpreter throughput on the issue's reference rule, with a baseline in the same run:
//! serde_json parsing the same payload into `serde_json::Value` (what a rules engine built on
//! serde_json would pay before evaluating anything).
//!
//! Run: cargo bench -p ferrite-rules --bench interp

use std::hint::black_box;
use std::time::{Duration, Instant};

use ferrite_rules::{compile, evaluate, MessageContext, MqttProperties, NoHost, Payload, SqlVersion};

const PAYLOAD: &str = r#"{"deviceId":"sensor-0042","temp":61.5,"humidity":48.25,"pressure":1013.2,"battery":87,"firmware":"2.4.1","location":{"lat":47.6062,"lon":-122.3321},"status":"ok","ts":1700000000123,"tags":["roof","north"]}"#;

/// `cargo bench` passes `--bench`; under `cargo test` the bench only smoke-runs.
fn measure_for() -> Duration {
    if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(20)
    }
}

fn per_second(label: &str, mut f: impl FnMut()) -> f64 {
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
    for (sql, label) in cases {
        let stmt = compile(sql, SqlVersion::V2016_03_23).expect("compiles");
        let rate = per_second(&format!("interp, parse + evaluate: {label}"), || {
            let payload = Payload::new(black_box(PAYLOAD.as_bytes()));
            let ctx =
                MessageContext { client_id: Some("bench"), ..MessageContext::new("sensors/x/data", &payload, &props) };
            black_box(evaluate(&stmt, &ctx, &NoHost).ok());
        });
        println!("{:<58} {:>12.2}x", "  ratio to the serde_json baseline", rate / baseline);
    }
}
