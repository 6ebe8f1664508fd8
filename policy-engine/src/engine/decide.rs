//! The decision about one request: model allow-list, output and prompt limits, prompt rules
//! over the normalised text, approvals.

use super::select::applies_to_model;
use super::*;
use crate::bundle::RuleAction;
use crate::extract::Extracted;
use crate::matcher::{Hit, PatternSet};
use crate::routes::RouteMatch;
use crate::scan::PromptText;
use crate::tokens::{self, Encoding, PromptTokens};

/// Spans of allow-list matches, answering "does one of them cover this hit" in O(log n).
struct AllowSpans {
    /// (start, end) sorted by start.
    spans: Vec<(usize, usize)>,
    /// Largest end among `spans[..=i]`.
    max_end: Vec<usize>,
}

impl AllowSpans {
    fn new(mut spans: Vec<(usize, usize)>) -> Self {
        spans.sort_unstable();
        let mut m = 0;
        let max_end = spans
            .iter()
            .map(|(_, e)| {
                m = m.max(*e);
                m
            })
            .collect();
        AllowSpans { spans, max_end }
    }

    fn covers(&self, h: &Hit) -> bool {
        let n = self.spans.partition_point(|(s, _)| *s <= h.start);
        n > 0 && self.max_end[n - 1] >= h.end
    }
}

/// Most findings one decision lists.
const MAX_FINDINGS: usize = 64;

impl Engine {
    /// Decide a request for `caller`: `method` `path` with raw JSON `body`.
    pub fn decide(&self, caller: &Caller, method: &str, path: &str, body: &[u8]) -> Decision {
        let Some(cp) = self.select(caller) else {
            return Decision::refuse(
                Verdict::Deny,
                403,
                "no_policy",
                "identity",
                "",
                format!("no policy admits principal `{}`", caller.principal),
            );
        };
        let mut d = match self.route(method, path) {
            RouteMatch::Refused(r) => {
                Decision::refuse(Verdict::Block, r.status, r.code, "route", "", r.message)
            }
            RouteMatch::Passthrough => Decision::refuse(
                Verdict::Block,
                400,
                "malformed_request",
                "route",
                "",
                "this route takes no request body".into(),
            ),
            RouteMatch::Inference { api, model } => {
                match self.extract(cp, api, model.as_deref(), body) {
                    // The message may name a field path made of the body's keys: redacted.
                    Err(e) => Decision::refuse(
                        Verdict::Block,
                        e.status(),
                        "malformed_request",
                        "body",
                        "",
                        self.redact_for_record(cp, &e.to_string()),
                    ),
                    Ok((_, x)) => self.decide_extracted(cp, &x),
                }
            }
        };
        d.policy = Some(cp.policy.id.clone());
        d.dry_run = cp.policy.dry_run;
        d
    }

    /// Decide an extracted request under a chosen policy.
    pub fn decide_extracted(&self, cp: &CompiledPolicy, x: &Extracted) -> Decision {
        let p = &cp.policy;
        let mut d = Decision {
            verdict: Verdict::Allow,
            policy: Some(p.id.clone()),
            rules: Vec::new(),
            findings: Vec::new(),
            message: "allowed".into(),
            status: 200,
            dry_run: p.dry_run,
            clamp: Vec::new(),
            prompt_tokens: None,
            model: x.model.clone(),
            api: Some(x.api.name()),
            deferred: Vec::new(),
        };
        if x.deferred {
            d.deferred.push("token_ids");
        }
        let block =
            |d: &mut Decision, status: u16, rule: &str, source: &str, field: &str, msg: String| {
                if d.verdict != Verdict::Block {
                    d.message = msg;
                    d.status = status;
                }
                d.verdict = Verdict::Block;
                if !d.rules.iter().any(|r| r == rule) {
                    d.rules.push(rule.to_owned());
                }
                // One finding per rule and field, and a bounded number in all: a body full
                // of matches must not cost more than one that has a few.
                if d.findings.len() < MAX_FINDINGS
                    && !d
                        .findings
                        .iter()
                        .any(|f| f.rule == rule && f.field == field)
                {
                    d.findings.push(Finding {
                        rule: rule.to_owned(),
                        field: field.to_owned(),
                        source: source.to_owned(),
                    });
                }
            };
        // Model allow-list.
        match &x.model {
            Some(m) if p.models.iter().any(|g| glob(g, m)) => {}
            Some(m) => block(
                &mut d,
                403,
                "model_not_allowed",
                "model",
                "model",
                format!("model `{m}` is not allowed by policy `{}`", p.id),
            ),
            None => block(
                &mut d,
                400,
                "model_not_allowed",
                "model",
                "model",
                "request names no model".into(),
            ),
        }
        // Answers the masker cannot read are not asked for on a policy that masks.
        if let (true, Some(what)) = (cp.has_masking(), x.unreadable_output) {
            block(
                &mut d,
                400,
                "unmaskable_output",
                "body",
                "",
                format!(
                    "policy `{}` masks answers, and {what} output cannot be masked",
                    p.id
                ),
            );
        }
        // Completion limit.
        if let Some(max) = p.limits.max_completion_tokens {
            if let Err((field, msg)) =
                crate::limits::completion(x, max, p.limits.completion_over_limit, &mut d.clamp)
            {
                block(&mut d, 400, "max_completion_tokens", "limit", &field, msg);
            }
        }
        // Prompt token limit.
        let enc = Encoding::for_model(x.model.as_deref().unwrap_or(""), cp.encoding);
        let PromptTokens { tokens, .. } = tokens::prompt_tokens(x, enc, p.limits.max_prompt_tokens);
        d.prompt_tokens = Some(tokens);
        if let Some(max) = p.limits.max_prompt_tokens {
            if tokens > max && !tokens::EXACT {
                // Only the byte bound is known here, and it is over: the server counts.
                d.deferred.push("max_prompt_tokens");
            } else if tokens > max {
                block(
                    &mut d,
                    400,
                    "max_prompt_tokens",
                    "limit",
                    "",
                    format!("prompt is {tokens} tokens, over the limit of {max}"),
                );
            }
        }
        // Prompt rules, over the normalised text of every segment in one pass.
        let mut approvals = Vec::new();
        let text = match PromptText::build(&x.segments, !cp.prompt.folded.is_empty()) {
            Ok(t) => t,
            Err(e) => {
                block(
                    &mut d,
                    400,
                    "normalization_budget",
                    "body",
                    "",
                    e.to_string(),
                );
                return d;
            }
        };
        // (folded text?, set, hit)
        let mut hits: Vec<(bool, &PatternSet, Hit)> = Vec::new();
        let mut scratch = Vec::new();
        cp.prompt.exact.scan(text.text.as_bytes(), &mut scratch);
        hits.extend(scratch.iter().map(|h| (false, &cp.prompt.exact, *h)));
        if let Some(folded) = &text.folded {
            scratch.clear();
            cp.prompt.folded.scan(folded.as_bytes(), &mut scratch);
            hits.extend(scratch.iter().map(|h| (true, &cp.prompt.folded, *h)));
        }
        // Allow-list spans exempt the matches they cover (same text variant only).
        let allow_spans = [false, true].map(|variant| {
            AllowSpans::new(
                hits.iter()
                    .filter(|(v, _, a)| {
                        *v == variant && cp.prompt.rules[a.owner].1 == RuleAction::Allow
                    })
                    .map(|(_, _, a)| (a.start, a.end))
                    .collect(),
            )
        });
        let allowed = |variant: bool, h: &Hit| allow_spans[usize::from(variant)].covers(h);
        // Field paths are spelled out once per segment that has a finding.
        let mut fields: Vec<Option<String>> =
            vec![None; if hits.is_empty() { 0 } else { x.segments.len() }];
        for (variant, set, h) in &hits {
            let (id, action) = &cp.prompt.rules[h.owner];
            if *action == RuleAction::Allow || allowed(*variant, h) {
                continue;
            }
            let seg = text.segment_at(h.start, *variant);
            let field: &str = match fields.get_mut(seg) {
                Some(slot) => slot.get_or_insert_with(|| x.field(&x.segments[seg])),
                None => "",
            };
            let source = set.specs()[h.spec].source().into_owned();
            let rule = p.prompt_rules.iter().find(|r| &r.id == id);
            // A rule limited to models applies only to requests for them.
            if !rule.is_none_or(|r| applies_to_model(r, x.model.as_deref())) {
                continue;
            }
            match action {
                RuleAction::Block => {
                    let msg = rule
                        .and_then(|r| r.message.clone())
                        .unwrap_or_else(|| format!("request blocked by rule `{id}`"));
                    block(&mut d, 403, id, &source, field, msg);
                }
                RuleAction::RequireApproval => {
                    if approvals.len() < MAX_FINDINGS
                        && !approvals
                            .iter()
                            .any(|f: &Finding| f.rule == *id && f.field == *field)
                    {
                        approvals.push(Finding {
                            rule: id.clone(),
                            field: field.to_owned(),
                            source,
                        });
                    }
                }
                RuleAction::Allow => {}
            }
        }
        // Rules that name models and no patterns match every request for those models.
        for r in p.prompt_rules.iter().filter(|r| {
            !r.models.is_empty()
                && r.literals.is_empty()
                && r.regexes.is_empty()
                && r.detectors.is_empty()
                && applies_to_model(r, x.model.as_deref())
        }) {
            match r.action {
                RuleAction::Block => {
                    let msg = r
                        .message
                        .clone()
                        .unwrap_or_else(|| format!("request blocked by rule `{}`", r.id));
                    block(&mut d, 403, &r.id, "model", "model", msg);
                }
                RuleAction::RequireApproval if approvals.len() < MAX_FINDINGS => {
                    approvals.push(Finding {
                        rule: r.id.clone(),
                        field: "model".into(),
                        source: "model".into(),
                    });
                }
                _ => {}
            }
        }
        if d.verdict == Verdict::Allow && !approvals.is_empty() {
            d.verdict = Verdict::RequireApproval;
            d.status = 202;
            d.message = format!("request needs approval (rule `{}`)", approvals[0].rule);
            for f in &approvals {
                if !d.rules.contains(&f.rule) {
                    d.rules.push(f.rule.clone());
                }
            }
            d.findings.extend(approvals);
        }
        // Field paths name object keys, and a key may be the very value a rule matched: the
        // paths are redacted like recorded prompts before they reach a reply or the log.
        for f in &mut d.findings {
            f.field = self.redact_for_record(cp, &f.field);
        }
        d
    }
}

#[cfg(test)]
mod prompt_rule_tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            issuer: "i".into(),
            principal: "p".into(),
            groups: vec![],
            claims: Default::default(),
            expires_at: u64::MAX,
        }
    }

    #[test]
    fn rules_limited_to_models_apply_only_to_them() {
        let e = Engine::from_source(
            r#"
apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata: {name: t}
policies:
  - id: p
    models: ["*"]
    prompt_rules:
      - {id: big-model, action: require_approval, models: ["gpt-4.1*"]}
      - {id: no-o1, action: block, models: ["o1*"]}
      - {id: secrets-on-small, action: block, models: ["*-mini"], literals: [topsecret]}
"#,
        )
        .unwrap();
        let ask = |model: &str, text: &str| {
            let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]});
            e.decide(
                &caller(),
                "POST",
                "/v1/chat/completions",
                &serde_json::to_vec(&body).unwrap(),
            )
        };
        let d = ask("gpt-4.1", "hello");
        assert_eq!(
            (d.verdict, d.rules.clone()),
            (Verdict::RequireApproval, vec!["big-model".to_owned()])
        );
        assert_eq!(d.findings[0].field, "model");
        assert_eq!(ask("gpt-4o", "hello").verdict, Verdict::Allow);
        assert_eq!(ask("o1-preview", "hello").verdict, Verdict::Block);
        assert_eq!(
            ask("gpt-4o-mini", "the topsecret plan").verdict,
            Verdict::Block
        );
        assert_eq!(ask("gpt-4o", "the topsecret plan").verdict, Verdict::Allow);
        // Without patterns, a rule needs models; an allow rule cannot be limited to them.
        let bad = Engine::from_source(
            r#"
apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata: {name: t}
policies:
  - id: p
    models: ["*"]
    prompt_rules:
      - {id: empty, action: block}
      - {id: odd, action: allow, models: ["x"], literals: [y]}
"#,
        );
        let msg = format!("{:?}", bad.err().unwrap());
        assert!(
            msg.contains("prompt_rules[0]") && msg.contains("prompt_rules[1].models"),
            "{msg}"
        );
    }

    #[test]
    fn case_insensitive_ascii_and_non_ascii_rules() {
        let e = Engine::from_source(
            r#"
apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata: {name: t}
policies:
  - id: p
    models: ["*"]
    prompt_rules:
      - {id: nordic, action: block, case_insensitive: true, literals: ["Æsir"]}
      - {id: topic, action: require_approval, case_insensitive: true, regexes: ['\bmerger\b']}
      - {id: exact, action: block, literals: [Kestrel]}
      - {id: fine, action: allow, case_insensitive: true, literals: ["merger example"]}
"#,
        )
        .unwrap();
        let ask = |text: &str| {
            let body =
                serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}]});
            e.decide(
                &caller(),
                "POST",
                "/v1/chat/completions",
                &serde_json::to_vec(&body).unwrap(),
            )
        };
        assert_eq!(ask("the ÆSIR saga").rules, vec!["nordic"]);
        assert_eq!(ask("the æsir saga").verdict, Verdict::Block);
        assert_eq!(ask("a MERGER plan").verdict, Verdict::RequireApproval);
        assert_eq!(ask("a MERGER EXAMPLE only").verdict, Verdict::Allow);
        assert_eq!(
            ask("kestrel").verdict,
            Verdict::Allow,
            "case-sensitive rule"
        );
        assert_eq!(ask("Kestrel").verdict, Verdict::Block);
        let cp = e.policy("p").unwrap();
        assert_eq!(
            e.redact_for_record(cp, "Kestrel and a merger"),
            "[exact] and a merger"
        );
        assert_eq!(
            e.redact_for_record(cp, "the ÆSIR saga"),
            "the [nordic] saga"
        );
        assert_eq!(
            e.redact_for_record(cp, "a merger example"),
            "a merger example"
        );
    }
}
