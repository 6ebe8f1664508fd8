//! Response masking for buffered JSON bodies: every string value of the response is masked
//! (keys are left alone), whatever the API, so no output field is missed. Streamed (SSE)
//! responses are masked by `sse.rs`.

use policy_engine::engine::{CompiledPolicy, MaskHit};
use policy_engine::Engine;
use serde_json::Value;

/// What masking replaced in one response: how many values, by which rules.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub masked: usize,
    pub rules: Vec<String>,
}

impl Tally {
    pub fn note(&mut self, hits: &[MaskHit]) {
        self.masked += hits.len();
        for h in hits {
            if !self.rules.contains(&h.rule) {
                self.rules.push(h.rule.clone());
            }
        }
    }
}

/// Mask every string inside `v` (object keys are left alone).
pub fn mask_value(engine: &Engine, p: &CompiledPolicy, v: &mut Value, tally: &mut Tally) {
    match v {
        Value::String(s) => {
            let (masked, hits) = engine.mask_text(p, s);
            if !hits.is_empty() {
                tally.note(&hits);
                *s = masked;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask_value(engine, p, x, tally)),
        Value::Object(o) => o.values_mut().for_each(|x| mask_value(engine, p, x, tally)),
        _ => {}
    }
}

/// Mask a complete JSON body. `None` when it is not JSON (the caller fails closed).
pub fn mask_json(
    engine: &Engine,
    p: &CompiledPolicy,
    body: &[u8],
    tally: &mut Tally,
) -> Option<Vec<u8>> {
    if body.is_empty() {
        return Some(Vec::new());
    }
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let before = tally.masked;
    mask_value(engine, p, &mut v, tally);
    if tally.masked == before {
        return Some(body.to_vec());
    }
    serde_json::to_vec(&v).ok()
}
