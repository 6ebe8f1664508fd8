//! What the session log may keep of a request: text, JSON bodies and paths with every
//! block-rule match replaced by its rule id and the masking rules applied.

use crate::bundle::RuleAction;
use crate::engine::{CompiledPolicy, Engine};
use crate::extract;
use crate::matcher::Hit;
use crate::normalize::{fold, normalize};
use crate::scan::widen;

impl Engine {
    /// Prompt text as the session log may keep it: normalised, every match of a block rule
    /// replaced by `[rule-id]` (approval topics stay readable for the audit), then the masking
    /// rules applied. Recording never stores a value the bundle blocks or masks.
    pub fn redact_for_record(&self, cp: &CompiledPolicy, text: &str) -> String {
        let norm = normalize(text);
        let flagged = |h: &Hit| cp.prompt.rules[h.owner].1 == RuleAction::Block;
        if !cp.prompt.folded.is_empty() {
            let mut folded_hits = Vec::new();
            cp.prompt
                .folded
                .scan(fold(&norm).as_bytes(), &mut folded_hits);
            if let Some(h) = folded_hits.iter().find(|h| flagged(h)) {
                // Offsets in folded text do not map back: redact the whole field.
                return format!("[REDACTED:{}]", cp.prompt.rules[h.owner].0);
            }
        }
        let mut hits = Vec::new();
        cp.prompt.exact.scan(norm.as_bytes(), &mut hits);
        hits.retain(|h| flagged(h));
        hits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut out = String::with_capacity(norm.len());
        let mut at = 0;
        for h in hits {
            let (start, end) = widen(&norm, h.start, h.end);
            if start < at {
                at = at.max(end);
                continue;
            }
            out.push_str(&norm[at..start]);
            out.push('[');
            out.push_str(&cp.prompt.rules[h.owner].0);
            out.push(']');
            at = end;
        }
        out.push_str(&norm[at..]);
        self.mask_text(cp, &out).0
    }

    /// A request path as the log may keep it: the path redacted like a prompt (under the
    /// caller's policy, or the bundle's first when the caller has none), the query string
    /// left out. Paths and query strings are caller input like any other.
    pub fn redact_path(&self, policy: Option<&str>, path: &str) -> String {
        let (p, q) = match path.split_once('?') {
            Some((p, _)) => (p, "?[query]"),
            None => (path, ""),
        };
        format!("{}{q}", self.redact_text(policy, p))
    }

    /// Any caller-supplied text the log keeps (a session id, the caller's request id),
    /// redacted under the caller's policy, or the bundle's first when the caller has none.
    pub fn redact_text(&self, policy: Option<&str>, text: &str) -> String {
        let cp = policy
            .and_then(|id| self.policy(id))
            .or_else(|| self.policies.first());
        match cp {
            Some(cp) => self.redact_for_record(cp, text),
            None => text.to_owned(),
        }
    }

    /// The first block rule that matches `text` (normalised), if any.
    fn blocked_by(&self, cp: &CompiledPolicy, text: &str) -> Option<String> {
        let norm = normalize(text);
        let mut hits = Vec::new();
        cp.prompt.exact.scan(norm.as_bytes(), &mut hits);
        if !cp.prompt.folded.is_empty() {
            cp.prompt.folded.scan(fold(&norm).as_bytes(), &mut hits);
        }
        hits.iter()
            .map(|h| &cp.prompt.rules[h.owner])
            .find(|(_, action)| *action == RuleAction::Block)
            .map(|(id, _)| id.clone())
    }

    /// A request body as the session log may keep it: every string and key redacted as
    /// [`Engine::redact_for_record`] does, strings holding JSON redacted inside, and inline
    /// `data:` content reduced to its type and size.
    pub fn redact_json(&self, cp: &CompiledPolicy, v: &serde_json::Value) -> serde_json::Value {
        self.redact_json_at(cp, v, 0)
    }

    fn redact_json_at(
        &self,
        cp: &CompiledPolicy,
        v: &serde_json::Value,
        depth: u8,
    ) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => {
                if let Some(uri) = crate::media::data_uri(s) {
                    return Value::from(format!(
                        "[data: {}, {} bytes]",
                        uri.media_type,
                        uri.payload.len()
                    ));
                }
                let t = s.trim_start();
                if depth < extract::NESTED_JSON_DEPTH && (t.starts_with('{') || t.starts_with('['))
                {
                    if let Ok(inner) = serde_json::from_str::<Value>(t) {
                        let r = self.redact_json_at(cp, &inner, depth + 1);
                        return Value::from(serde_json::to_string(&r).unwrap_or_default());
                    }
                }
                // A blocked value written with escapes (`\u0041KIA...`): the decoded reading
                // matched, so the whole field goes.
                if let Some(rule) =
                    crate::json::decode_escapes(s, true).and_then(|d| self.blocked_by(cp, &d))
                {
                    return Value::from(format!("[REDACTED:{rule}]"));
                }
                Value::from(self.redact_for_record(cp, s))
            }
            // A number is text too (a card number can be one).
            Value::Number(n) => {
                let t = n.to_string();
                let r = self.redact_for_record(cp, &t);
                if r == t {
                    v.clone()
                } else {
                    Value::from(r)
                }
            }
            // Token ids spell text as well as words do: kept as a count.
            Value::Array(a) if a.len() > 1 && a.iter().all(Value::is_u64) => {
                Value::from(format!("[{} token ids]", a.len()))
            }
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.redact_json_at(cp, x, depth))
                    .collect(),
            ),
            // Inline base64 sources: their decoded text was decided on, the bytes are not kept.
            Value::Object(o)
                if o.get("type").and_then(Value::as_str) == Some("base64")
                    && o.get("data").is_some_and(Value::is_string) =>
            {
                let mut r = serde_json::Map::new();
                for (k, x) in o {
                    let v = if k == "data" {
                        Value::from(format!(
                            "[base64, {} bytes]",
                            x.as_str().map_or(0, str::len)
                        ))
                    } else {
                        self.redact_json_at(cp, x, depth)
                    };
                    r.insert(self.redact_for_record(cp, k), v);
                }
                Value::Object(r)
            }
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| {
                        (
                            self.redact_for_record(cp, k),
                            self.redact_json_at(cp, x, depth),
                        )
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Engine;
    use serde_json::json;

    #[test]
    fn escaped_values_numbers_and_token_ids_are_redacted() {
        let e = Engine::from_source(
            r#"
apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata: {name: t}
policies:
  - id: p
    models: ["*"]
    prompt_rules:
      - {id: keys, action: block, detectors: [aws_access_key_id]}
      - {id: cards, action: block, detectors: [payment_card]}
"#,
        )
        .unwrap();
        let cp = e.policy("p").unwrap();
        let body = json!({
            "a": "deploy \\u0041KIAQWERTYUIOPASDFGH now",
            "card": 4111111111111111u64,
            "prompt": [1, 2, 3],
            "n": 2
        });
        let r = e.redact_json(cp, &body);
        let text = r.to_string();
        assert!(!text.contains("KIAQWERTYUIOPASDFGH"), "{text}");
        assert!(!text.contains("4111111111111111"), "{text}");
        assert_eq!(r["prompt"], "[3 token ids]");
        assert_eq!(r["n"], 2, "other numbers stay numbers");
        assert_eq!(
            e.redact_text(Some("p"), "run-AKIAQWERTYUIOPASDFGH"),
            "run-[keys]"
        );
    }
}
