//! Response masking for buffered JSON bodies and SSE chunks.
//!
//! JSON: every string value of the response is masked (keys are left alone), whatever the
//! API, so no output field is missed. SSE: each complete `data:` line is masked the same
//! way; a line that is not complete JSON is masked as plain text.
//! Values split across two SSE chunks are the streaming masker's job (issue #4).

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

/// Mask one chunk of an SSE stream, line by line.
pub fn mask_sse_chunk(
    engine: &Engine,
    p: &CompiledPolicy,
    chunk: &[u8],
    count: &mut usize,
    rules: &mut Vec<String>,
) -> Vec<u8> {
    let text = String::from_utf8_lossy(chunk);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (content, nl) = match line.strip_suffix('\n') {
            Some(c) => (c, "\n"),
            None => (line, ""),
        };
        let (content, cr) = match content.strip_suffix('\r') {
            Some(c) => (c, "\r"),
            None => (content, ""),
        };
        if let Some(data) = content.strip_prefix("data:") {
            let data_trim = data.trim_start();
            let masked = mask_json(engine, p, data_trim.as_bytes(), count, rules)
                .and_then(|b| String::from_utf8(b).ok());
            out.push_str("data: ");
            match masked {
                Some(m) => out.push_str(&m),
                None => {
                    let (m, hits) = engine.mask_text(p, data_trim);
                    *count += hits.len();
                    out.push_str(&m);
                }
            }
        } else {
            out.push_str(content);
        }
        out.push_str(cr);
        out.push_str(nl);
    }
    out.into_bytes()
}
