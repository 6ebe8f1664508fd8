//! Per-stage cost of a decision over the default bundle, for the 4 KiB chat request and the
//! 20 KiB tool-schema request. Runs natively (`cargo run --release -p stage-bench`) and as a
//! WASI program inside V8 (`scripts/stage-bench.sh`), which is the engine Envoy runs the
//! filter in. Prints one JSON object per line.

use policy_engine::engine::Engine;
use policy_engine::identity::Caller;
use policy_engine::profile::{self, Stages};
use std::time::Instant;

const BUNDLE: &str = include_str!("../../../policies/default.yaml");

/// Median microseconds per call of `op` over `rounds` rounds of about `budget_ms` each.
fn time(rounds: usize, budget_ms: f64, mut op: impl FnMut() -> u64) -> f64 {
    let mut per_round = Vec::with_capacity(rounds);
    let mut sink = 0u64;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() * 1e3 < budget_ms {
            for _ in 0..8 {
                sink = sink.wrapping_add(op());
            }
            n += 8;
        }
        per_round.push(start.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    std::hint::black_box(sink);
    per_round.sort_by(f64::total_cmp);
    per_round[per_round.len() / 2]
}

fn main() {
    let engine = Engine::from_source(BUNDLE).expect("default bundle");
    let caller = Caller {
        issuer: "bench".into(),
        principal: "bench".into(),
        groups: vec!["eng".into()],
        claims: Default::default(),
        expires_at: u64::MAX,
    };
    let cp = engine.select(&caller).expect("a policy for group eng");
    let target = if cfg!(target_arch = "wasm32") {
        "wasm32 (V8)"
    } else {
        "native"
    };
    let rounds = 7;
    // Source code is the hard case for the shared regex pass: identifiers, digits,
    // punctuation keep many patterns half-matched at once.
    let code = concat!(
        include_str!("../../../policy-engine/src/matcher.rs"),
        include_str!("../../../policy-engine/src/extract.rs"),
        include_str!("../../../policy-engine/src/normalize.rs"),
    );
    for (name, body) in [
        ("chat_4k", profile::chat_request()),
        ("tools_20k", profile::tools_request()),
        ("code_32k", profile::code_request(code, 32 * 1024)),
    ] {
        // STAGE_BENCH_ONLY=<request> measures one request (for a profiler).
        if std::env::var("STAGE_BENCH_ONLY").is_ok_and(|only| only != name) {
            continue;
        }
        let s = Stages::new(&engine, cp, &body).expect("bench request extracts");
        let us = |op: &mut dyn FnMut() -> u64| time(rounds, 150.0, op);
        let parse = us(&mut || s.parse() as u64);
        let extract = us(&mut || s.extract() as u64);
        let normalize = us(&mut || s.normalize() as u64);
        let scan = us(&mut || s.scan() as u64);
        let tokens = us(&mut || s.count_tokens());
        let decide = us(&mut || {
            let d = engine.decide(&caller, "POST", "/v1/chat/completions", &body);
            // The code sample holds this repository's test data (cards, blocked names): it is
            // measured whatever the verdict; the other requests must be clean.
            if name != "code_32k" {
                assert_eq!(d.verdict, policy_engine::Verdict::Allow, "{:?}", d.rules);
            }
            d.findings.len() as u64
        });
        let mb_s = |bytes: usize, us: f64| bytes as f64 / us;
        println!(
            "{{\"target\":\"{target}\",\"request\":\"{name}\",\"body_bytes\":{},\"text_bytes\":{},\
\"parse_us\":{parse:.2},\"extract_us\":{extract:.2},\"normalize_us\":{normalize:.2},\
\"scan_us\":{scan:.2},\"scan_mb_s\":{:.0},\"exact_tokens_us\":{tokens:.2},\"decide_us\":{decide:.2}}}",
            body.len(),
            s.text_len(),
            mb_s(s.text_len(), scan),
        );
    }
}
