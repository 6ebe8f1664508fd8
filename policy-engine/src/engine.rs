//! A compiled bundle and the decisions it makes.

use crate::bundle::{Bundle, MaskStyle, Policy, RuleAction};
use crate::detectors;
use crate::diag::BundleErrors;
use crate::extract::{self, Api, ExtractError, Extracted};
use crate::identity::{self, Caller, Jwk, TokenError};
use crate::load;
use crate::matcher::{BuildError, Hit, PatternSet, Spec, SpecKind};
use crate::normalize::{fold, normalize};
use crate::routes::RouteMatch;
use crate::scan::PromptText;
use crate::tokens::{self, Encoding, PromptTokens};
use serde::Serialize;

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Block,
    RequireApproval,
    /// No policy admits the caller.
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Block => "block",
            Verdict::RequireApproval => "require_approval",
            Verdict::Deny => "deny",
        }
    }
}

/// Why a rule fired. Never carries the matched text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Finding {
    pub rule: String,
    /// JSON path of the field where it matched (or the limit's field).
    pub field: String,
    /// `literal`, `regex`, `detector:<name>`, `model`, `limit`.
    pub source: String,
}

/// A decision about one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub policy: Option<String>,
    /// Rule ids that produced the verdict.
    pub rules: Vec<String>,
    pub findings: Vec<Finding>,
    /// Human-readable reason, safe to return to the caller (no matched text).
    pub message: String,
    /// HTTP status for a refusal.
    pub status: u16,
    /// True when the policy is in dry-run mode: decided and recorded, not enforced.
    pub dry_run: bool,
    /// Output-limit fields (JSON pointers) to rewrite, when a limit clamps them or the
    /// request named none.
    pub clamp: Vec<(String, u64)>,
    pub prompt_tokens: Option<u64>,
    pub model: Option<String>,
    pub api: Option<&'static str>,
}

impl Decision {
    /// What the gateway enforces: the verdict, unless the policy is in dry-run mode.
    pub fn enforced(&self) -> Verdict {
        if self.dry_run && self.verdict != Verdict::Deny {
            Verdict::Allow
        } else {
            self.verdict
        }
    }

    fn refuse(
        verdict: Verdict,
        status: u16,
        rule: &str,
        source: &str,
        field: &str,
        message: String,
    ) -> Self {
        Decision {
            verdict,
            policy: None,
            rules: vec![rule.to_owned()],
            findings: vec![Finding {
                rule: rule.to_owned(),
                field: field.to_owned(),
                source: source.to_owned(),
            }],
            message,
            status,
            dry_run: false,
            clamp: Vec::new(),
            prompt_tokens: None,
            model: None,
            api: None,
        }
    }
}

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

/// Errors building an engine from a valid bundle (a pattern set the automata reject).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Bundle(#[from] BundleErrors),
    #[error("policy `{policy}`: {source}")]
    Build {
        policy: String,
        #[source]
        source: BuildError,
    },
}

pub(crate) struct Rules {
    /// Matched against normalised text in one regex pass: every literal (case-insensitive
    /// ASCII ones as `(?i:...)`), every ASCII regex, and the detectors.
    pub(crate) exact: PatternSet,
    /// Case-insensitive patterns with non-ASCII letters, matched against case-folded text
    /// (so they cost a folded copy and a second pass only when a bundle has them).
    pub(crate) folded: PatternSet,
    /// (rule id, action) by owner index.
    pub(crate) rules: Vec<(String, RuleAction)>,
}

pub(crate) struct Masker {
    pub(crate) exact: PatternSet,
    pub(crate) ci: PatternSet,
    /// Per owner: rule id, style, keep_last, label for literal/regex hits.
    pub(crate) rules: Vec<MaskMeta>,
    /// Longest possible match over all patterns (bytes): the streaming hold-back bound.
    pub(crate) max_match: usize,
    /// "Could a match start here?" for the streaming masker.
    pub(crate) live: Option<crate::stream::LiveDfa>,
}

fn live_patterns(sets: [&PatternSet; 2]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        for s in set.specs() {
            out.push(match &s.kind {
                SpecKind::Literal(l) if i == 1 => format!("(?i:{})", crate::matcher::escape(l)),
                SpecKind::Regex { pattern, .. } => pattern.clone(),
                k => crate::matcher::literal_regex(k).unwrap_or_default(),
            });
        }
    }
    out
}

pub(crate) struct MaskMeta {
    pub(crate) id: String,
    pub(crate) style: MaskStyle,
    pub(crate) keep_last: usize,
    pub(crate) label: String,
}

/// A policy compiled into matchers.
pub struct CompiledPolicy {
    pub policy: Policy,
    pub(crate) encoding: Encoding,
    pub(crate) prompt: Rules,
    pub(crate) mask: Masker,
}

/// One issuer with its current keys.
pub struct IssuerKeys {
    pub issuer: crate::bundle::Issuer,
    pub keys: Vec<Jwk>,
}

/// A validated, compiled bundle.
pub struct Engine {
    pub bundle: Bundle,
    pub digest: String,
    pub issuers: Vec<IssuerKeys>,
    pub(crate) policies: Vec<CompiledPolicy>,
    pub(crate) mask_key: Vec<u8>,
}

fn detector_spec(owner: usize, name: &str) -> Option<(Spec, &'static detectors::Detector)> {
    let d = detectors::find(name)?;
    Some((
        Spec {
            owner,
            kind: SpecKind::Regex {
                pattern: d.pattern.to_owned(),
                validate: d.validate,
            },
        },
        d,
    ))
}

/// A bundle regex as a spec; case-insensitive rules wrap it in `(?i:...)`.
fn regex_spec(owner: usize, re: &str, case_insensitive: bool) -> Spec {
    let pattern = if case_insensitive {
        format!("(?i:{re})")
    } else {
        re.to_owned()
    };
    Spec {
        owner,
        kind: SpecKind::Regex {
            pattern,
            validate: None,
        },
    }
}

impl CompiledPolicy {
    fn compile(p: &Policy) -> Result<Self, BuildError> {
        let mut exact = Vec::new();
        let mut folded = Vec::new();
        let mut rules = Vec::new();
        for (owner, r) in p.prompt_rules.iter().enumerate() {
            rules.push((r.id.clone(), r.action));
            let ci = r.case_insensitive;
            for l in &r.literals {
                let l = normalize(l);
                let (target, kind) = match (ci, l.is_ascii()) {
                    (false, _) => (&mut exact, SpecKind::Literal(l)),
                    (true, true) => (&mut exact, SpecKind::LiteralCi(l)),
                    (true, false) => (&mut folded, SpecKind::Literal(fold(&l))),
                };
                target.push(Spec { owner, kind });
            }
            for re in &r.regexes {
                let target = if ci && !re.is_ascii() {
                    &mut folded
                } else {
                    &mut exact
                };
                target.push(regex_spec(owner, re, ci));
            }
            for d in &r.detectors {
                if let Some((s, _)) = detector_spec(owner, d) {
                    exact.push(s);
                }
            }
        }
        let mut m_exact = Vec::new();
        let mut m_ci = Vec::new();
        let mut meta = Vec::new();
        let mut max_match = 0usize;
        for r in &p.response_masking {
            // One owner per (rule, label): detectors keep their own labels.
            let base_label = r.label.clone().unwrap_or_else(|| r.id.to_uppercase());
            let owner = meta.len();
            meta.push(MaskMeta {
                id: r.id.clone(),
                style: r.style,
                keep_last: r.keep_last,
                label: base_label,
            });
            let target = if r.case_insensitive {
                &mut m_ci
            } else {
                &mut m_exact
            };
            for l in &r.literals {
                max_match = max_match.max(l.len());
                target.push(Spec {
                    owner,
                    kind: SpecKind::Literal(l.clone()),
                });
            }
            for re in &r.regexes {
                max_match = max_match.max(r.max_match_bytes);
                target.push(regex_spec(owner, re, r.case_insensitive));
            }
            for d in &r.detectors {
                let owner = meta.len();
                let Some((s, det)) = detector_spec(owner, d) else {
                    continue;
                };
                max_match = max_match.max(det.max_len);
                meta.push(MaskMeta {
                    id: r.id.clone(),
                    style: r.style,
                    keep_last: r.keep_last,
                    label: r.label.clone().unwrap_or_else(|| det.label.to_owned()),
                });
                m_exact.push(s);
            }
        }
        let fallback = p
            .limits
            .encoding
            .as_deref()
            .and_then(Encoding::parse)
            .unwrap_or(Encoding::O200kBase);
        Ok(CompiledPolicy {
            policy: p.clone(),
            encoding: fallback,
            prompt: Rules {
                exact: PatternSet::build_one_pass(exact)?,
                folded: PatternSet::build(folded, false)?,
                rules,
            },
            mask: {
                let exact = PatternSet::build(m_exact, false)?;
                let ci = PatternSet::build(m_ci, true)?;
                let live = crate::stream::LiveDfa::build(&live_patterns([&exact, &ci])).map_err(
                    |message| BuildError::Regex {
                        pattern: "<masking set>".into(),
                        message,
                    },
                )?;
                Masker {
                    exact,
                    ci,
                    rules: meta,
                    max_match,
                    live,
                }
            },
        })
    }

    /// Longest match any masking pattern of this policy can produce, in bytes.
    pub fn max_mask_match(&self) -> usize {
        self.mask.max_match
    }

    pub fn live_dfa(&self) -> Option<&crate::stream::LiveDfa> {
        self.mask.live.as_ref()
    }

    pub fn has_masking(&self) -> bool {
        !self.mask.exact.is_empty() || !self.mask.ci.is_empty()
    }
}

/// Glob match with `*` (any run) and `?` (one character).
/// Whether a prompt rule applies to a request for `model` (rules without models apply to all).
fn applies_to_model(r: &crate::bundle::PromptRule, model: Option<&str>) -> bool {
    r.models.is_empty() || model.is_some_and(|m| r.models.iter().any(|g| glob(g, m)))
}

pub fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn admits(p: &Policy, c: &Caller) -> bool {
    let m = &p.matcher;
    (m.issuers.is_empty() || m.issuers.contains(&c.issuer))
        && (m.principals.is_empty() || m.principals.contains(&c.principal))
        && (m.groups.is_empty() || m.groups.iter().any(|g| c.groups.contains(g)))
        && m.claims.iter().all(|(k, want)| match c.claims.get(k) {
            Some(serde_json::Value::String(s)) => s == want,
            Some(serde_json::Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(want)),
            Some(serde_json::Value::Bool(b)) => b.to_string() == *want,
            Some(serde_json::Value::Number(n)) => n.to_string() == *want,
            _ => false,
        })
}

pub use crate::masking::MaskHit;

impl Engine {
    /// Parse, validate and compile a bundle.
    pub fn from_source(src: &str) -> Result<Engine, EngineError> {
        let bundle = load::parse(src)?;
        Engine::new(bundle)
    }

    /// Compile an already validated bundle.
    pub fn new(bundle: Bundle) -> Result<Engine, EngineError> {
        let digest = load::digest(&bundle);
        let mut policies = Vec::with_capacity(bundle.policies.len());
        for p in &bundle.policies {
            policies.push(
                CompiledPolicy::compile(p).map_err(|source| EngineError::Build {
                    policy: p.id.clone(),
                    source,
                })?,
            );
        }
        let issuers = bundle
            .identity
            .issuers
            .iter()
            .map(|i| IssuerKeys {
                issuer: i.clone(),
                keys: i
                    .jwks
                    .as_ref()
                    .and_then(|j| identity::parse_jwks(j, &i.algorithms).ok())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Engine {
            bundle,
            digest,
            issuers,
            policies,
            mask_key: Vec::new(),
        })
    }

    /// Key for the `hash` masking style. Without one, hashes are unkeyed (still stable).
    pub fn with_mask_key(mut self, key: &[u8]) -> Self {
        self.mask_key = key.to_vec();
        self
    }

    /// Replace the keys of issuer `name` (keys fetched from its `jwks_uri`).
    /// Returns false when there is no such issuer.
    pub fn set_issuer_keys(&mut self, name: &str, keys: Vec<Jwk>) -> bool {
        match self.issuers.iter_mut().find(|i| i.issuer.name == name) {
            Some(i) => {
                i.keys = keys;
                true
            }
            None => false,
        }
    }

    /// The trusted issuer whose `iss` is `iss`.
    pub fn issuer_by_url(&self, iss: &str) -> Option<&IssuerKeys> {
        self.issuers.iter().find(|i| i.issuer.issuer == iss)
    }

    pub fn policy(&self, id: &str) -> Option<&CompiledPolicy> {
        self.policies.iter().find(|p| p.policy.id == id)
    }

    /// Verify a bearer token against the trusted issuers.
    pub fn authenticate(&self, token: &str, now: u64) -> Result<Caller, TokenError> {
        let iss = identity::peek_issuer(token)?;
        let ik = self.issuer_by_url(&iss).ok_or(TokenError::UnknownIssuer)?;
        identity::verify(&ik.issuer, &ik.keys, token, now)
    }

    /// The first policy, in bundle order, that admits `caller`.
    pub fn select(&self, caller: &Caller) -> Option<&CompiledPolicy> {
        self.policies.iter().find(|p| admits(&p.policy, caller))
    }

    /// Where `method` `path` goes under this bundle's routes.
    pub fn route(&self, method: &str, path: &str) -> RouteMatch {
        self.bundle.routes.resolve(method, path)
    }

    /// Parse and extract an inference request body for policy `cp`.
    pub fn extract(
        &self,
        cp: &CompiledPolicy,
        api: Api,
        route_model: Option<&str>,
        body: &[u8],
    ) -> Result<(serde_json::Value, Extracted), ExtractError> {
        let opts = extract::Options {
            opaque_media: &self.bundle.inspection.opaque_media,
            allow_remote_content: self.bundle.inspection.allow_remote_content,
            encoding: cp.encoding,
        };
        extract::extract_bytes(api, body, route_model, &opts)
    }

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
        };
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
            if tokens > max {
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
            let source = match &set.specs()[h.spec].kind {
                SpecKind::Literal(_) | SpecKind::LiteralCi(_) => "literal".to_owned(),
                SpecKind::Regex { pattern, .. } => detectors::DETECTORS
                    .iter()
                    .find(|det| det.pattern == pattern)
                    .map(|det| format!("detector:{}", det.name))
                    .unwrap_or_else(|| "regex".into()),
            };
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

    pub fn policies(&self) -> impl Iterator<Item = &CompiledPolicy> {
        self.policies.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("gpt-4o*", "gpt-4o-mini"));
        assert!(glob("claude-?-*", "claude-3-haiku"));
        assert!(!glob("gpt-4o*", "gpt-4"));
        assert!(glob("*", "anything"));
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
