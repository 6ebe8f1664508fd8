//! Response masking for buffered JSON bodies: every string value of the response is masked
//! (keys are left alone), whatever the API, so no output field is missed. Streamed (SSE)
//! responses are masked by `sse.rs`.

use policy_engine::engine::CompiledPolicy;
use policy_engine::Engine;
use serde_json::Value;

fn walk(
    engine: &Engine,
    p: &CompiledPolicy,
    v: &mut Value,
    count: &mut usize,
    rules: &mut Vec<String>,
) {
    match v {
        Value::String(s) => {
            let (masked, hits) = engine.mask_text(p, s);
            if !hits.is_empty() {
                *count += hits.len();
                for h in hits {
                    if !rules.contains(&h.rule) {
                        rules.push(h.rule);
                    }
                }
                *s = masked;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| walk(engine, p, x, count, rules)),
        Value::Object(o) => o
            .values_mut()
            .for_each(|x| walk(engine, p, x, count, rules)),
        _ => {}
    }
}

/// Mask a complete JSON body. `None` when it is not JSON (the caller fails closed).
pub fn mask_json(
    engine: &Engine,
    p: &CompiledPolicy,
    body: &[u8],
    count: &mut usize,
    rules: &mut Vec<String>,
) -> Option<Vec<u8>> {
    if body.is_empty() {
        return Some(Vec::new());
    }
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let before = *count;
    walk(engine, p, &mut v, count, rules);
    if *count == before {
        return Some(body.to_vec());
    }
    serde_json::to_vec(&v).ok()
}
