//! Response masking for buffered JSON bodies: every string value and every key of the
//! response is masked, whatever the API, so no output field is missed, and token-level
//! detail that could rebuild a masked value (`logprobs`, token ids) is withheld. Streamed
//! (SSE) responses are masked by `sse.rs`.

use policy_engine::engine::{CompiledPolicy, MaskHit};
use policy_engine::Engine;
use serde_json::Value;

/// What masking replaced in one response: how many values, by which rules.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub masked: usize,
    /// Values masked, per masking rule.
    pub per_rule: std::collections::BTreeMap<String, u64>,
    /// Token-level fields withheld.
    pub withheld: usize,
}

impl Tally {
    pub fn note(&mut self, hits: &[MaskHit]) {
        self.masked += hits.len();
        for h in hits {
            *self.per_rule.entry(h.rule.clone()).or_default() += 1;
        }
    }
}

/// Mask every string and key inside `v`; withhold token-level detail.
pub fn mask_value(engine: &Engine, p: &CompiledPolicy, v: &mut Value, tally: &mut Tally) {
    match v {
        Value::String(s) => {
            let (masked, hits) = engine.mask_text(p, s);
            if !hits.is_empty() {
                tally.note(&hits);
                *s = masked;
            }
        }
        Value::Number(n) => {
            // A card number can be a JSON number too.
            let (masked, hits) = engine.mask_text(p, &n.to_string());
            if !hits.is_empty() {
                tally.note(&hits);
                *v = Value::String(masked);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask_value(engine, p, x, tally)),
        Value::Object(o) => {
            let entries = std::mem::take(o);
            for (k, mut x) in entries {
                if crate::sse::WITHHELD_KEYS.contains(&k.as_str()) && !x.is_null() {
                    tally.withheld += 1;
                    x = Value::Null;
                }
                mask_value(engine, p, &mut x, tally);
                let (key, hits) = engine.mask_text(p, &k);
                tally.note(&hits);
                // Two keys masked to the same label keep both values.
                let mut key = key;
                while o.contains_key(&key) {
                    key.push('_');
                }
                o.insert(key, x);
            }
        }
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
    // Strict: an answer with duplicate keys could be read two ways by clients.
    let mut v: Value = policy_engine::json::parse_strict(body).ok()?;
    let before = (tally.masked, tally.withheld);
    mask_value(engine, p, &mut v, tally);
    if (tally.masked, tally.withheld) == before {
        return Some(body.to_vec());
    }
    serde_json::to_vec(&v).ok()
}
