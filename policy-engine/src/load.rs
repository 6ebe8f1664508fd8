//! Loading a bundle: parse, validate every field, and compute the digest of its canonical form.

use crate::bundle::{Bundle, API_VERSION};
use crate::detectors;
use crate::diag::{from_serde, BundleErrors, Diagnostic, Locator};
use crate::identity::{parse_jwks, ALGORITHMS};
use crate::matcher::check_regex;
use crate::tokens::Encoding;
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// Largest `max_match_bytes` a masking rule may declare (the streaming hold-back bound).
pub const MAX_MATCH_CAP: usize = 64 * 1024;

/// Parse and validate a bundle from YAML or JSON source. All validation errors are returned
/// together, each with its line and field.
pub fn parse(src: &str) -> Result<Bundle, BundleErrors> {
    let bundle: Bundle =
        serde_yaml::from_str(src).map_err(|e| BundleErrors(vec![from_serde(&e)]))?;
    let problems = validate(&bundle);
    if problems.is_empty() {
        return Ok(bundle);
    }
    let loc = Locator::new(src);
    let mut diags: Vec<Diagnostic> = problems
        .into_iter()
        .map(|(field, msg)| loc.diagnostic(&field, msg))
        .collect();
    diags.sort_by_key(|d| (d.line, d.column));
    Err(BundleErrors(diags))
}

/// `sha256:<hex>` of the bundle's canonical JSON form (stored tests excluded: they do not
/// change what is enforced).
pub fn digest(b: &Bundle) -> String {
    let mut canon = b.clone();
    canon.tests.clear();
    // serde_json's maps are sorted and struct fields have a fixed order, so this is canonical.
    let bytes = serde_json::to_vec(&canon).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
}

fn dup_check(
    seen: &mut HashSet<String>,
    id: &str,
    field: String,
    what: &str,
    out: &mut Vec<(String, String)>,
) {
    if id.is_empty() {
        out.push((field, format!("{what} must not be empty")));
    } else if !seen.insert(id.to_owned()) {
        out.push((field, format!("duplicate {what} `{id}`")));
    }
}

/// Semantic checks that the type system cannot express. Returns (field path, message) pairs.
pub fn validate(b: &Bundle) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if b.api_version != API_VERSION {
        out.push((
            "apiVersion".into(),
            format!(
                "unsupported version `{}` (expected `{API_VERSION}`)",
                b.api_version
            ),
        ));
    }
    if b.kind != "PolicyBundle" {
        out.push((
            "kind".into(),
            format!("must be `PolicyBundle`, not `{}`", b.kind),
        ));
    }
    let mut issuer_names = HashSet::new();
    for (i, iss) in b.identity.issuers.iter().enumerate() {
        let f = format!("identity.issuers[{i}]");
        dup_check(
            &mut issuer_names,
            &iss.name,
            format!("{f}.name"),
            "issuer name",
            &mut out,
        );
        if iss.issuer.is_empty() {
            out.push((format!("{f}.issuer"), "must not be empty".into()));
        }
        if iss.audiences.is_empty() {
            out.push((
                format!("{f}.audiences"),
                "at least one audience is required".into(),
            ));
        }
        if iss.algorithms.is_empty() {
            out.push((
                format!("{f}.algorithms"),
                "pin at least one algorithm".into(),
            ));
        }
        for (j, a) in iss.algorithms.iter().enumerate() {
            if !ALGORITHMS.contains(&a.as_str()) {
                out.push((
                    format!("{f}.algorithms[{j}]"),
                    format!(
                        "algorithm `{a}` is not allowed (allowed: {})",
                        ALGORITHMS.join(", ")
                    ),
                ));
            }
        }
        match (&iss.jwks, &iss.jwks_uri) {
            (Some(_), Some(_)) => out.push((
                format!("{f}.jwks_uri"),
                "give either `jwks` or `jwks_uri`, not both".into(),
            )),
            (None, None) => out.push((f.clone(), "one of `jwks` or `jwks_uri` is required".into())),
            (Some(jwks), None) => match parse_jwks(jwks, &iss.algorithms) {
                Ok(keys) if keys.is_empty() => out.push((
                    format!("{f}.jwks"),
                    "no key in the JWKS is usable with the pinned algorithms".into(),
                )),
                Ok(_) => {}
                Err(e) => out.push((format!("{f}.jwks"), e.to_string())),
            },
            (None, Some(uri)) => {
                if !(uri.starts_with("https://") || uri.starts_with("http://")) {
                    out.push((format!("{f}.jwks_uri"), "must be an http(s) URL".into()));
                }
                if iss.jwks_cluster.as_deref().unwrap_or("").is_empty() {
                    out.push((
                        format!("{f}.jwks_cluster"),
                        "required with `jwks_uri`: the Envoy cluster that reaches it".into(),
                    ));
                }
            }
        }
    }
    let mut policy_ids = HashSet::new();
    for (i, p) in b.policies.iter().enumerate() {
        let f = format!("policies[{i}]");
        dup_check(
            &mut policy_ids,
            &p.id,
            format!("{f}.id"),
            "policy id",
            &mut out,
        );
        for (j, name) in p.matcher.issuers.iter().enumerate() {
            if !issuer_names.contains(name) {
                out.push((
                    format!("{f}.match.issuers[{j}]"),
                    format!("unknown issuer `{name}`"),
                ));
            }
        }
        for (j, m) in p.models.iter().enumerate() {
            if m.trim().is_empty() {
                out.push((format!("{f}.models[{j}]"), "empty model pattern".into()));
            }
        }
        if let Some(e) = &p.limits.encoding {
            if Encoding::parse(e).is_none() {
                out.push((
                    format!("{f}.limits.encoding"),
                    format!("unknown encoding `{e}` (use o200k_base or cl100k_base)"),
                ));
            }
        }
        if p.limits.max_prompt_tokens == Some(0) {
            out.push((
                format!("{f}.limits.max_prompt_tokens"),
                "must be at least 1".into(),
            ));
        }
        if p.limits.max_completion_tokens == Some(0) {
            out.push((
                format!("{f}.limits.max_completion_tokens"),
                "must be at least 1".into(),
            ));
        }
        let mut rule_ids = HashSet::new();
        for (j, r) in p.prompt_rules.iter().enumerate() {
            let rf = format!("{f}.prompt_rules[{j}]");
            dup_check(
                &mut rule_ids,
                &r.id,
                format!("{rf}.id"),
                "rule id",
                &mut out,
            );
            let patterns =
                !(r.literals.is_empty() && r.regexes.is_empty() && r.detectors.is_empty());
            if patterns || r.models.is_empty() {
                check_patterns(&rf, &r.literals, &r.regexes, &r.detectors, &mut out);
            }
            if !r.models.is_empty() && r.action == crate::bundle::RuleAction::Allow {
                out.push((
                    format!("{rf}.models"),
                    "an `allow` rule cannot be limited to models".into(),
                ));
            }
            check_approval(&rf, r, &mut out);
        }
        for (j, r) in p.response_masking.iter().enumerate() {
            let rf = format!("{f}.response_masking[{j}]");
            dup_check(
                &mut rule_ids,
                &r.id,
                format!("{rf}.id"),
                "rule id",
                &mut out,
            );
            check_patterns(&rf, &r.literals, &r.regexes, &r.detectors, &mut out);
            if r.max_match_bytes == 0 || r.max_match_bytes > MAX_MATCH_CAP {
                out.push((
                    format!("{rf}.max_match_bytes"),
                    format!("must be between 1 and {MAX_MATCH_CAP}"),
                ));
            }
            for (k, l) in r.literals.iter().enumerate() {
                if l.len() > r.max_match_bytes {
                    out.push((
                        format!("{rf}.literals[{k}]"),
                        "longer than the rule's max_match_bytes".into(),
                    ));
                }
            }
        }
    }
    let mut test_names = HashSet::new();
    for (i, t) in b.tests.iter().enumerate() {
        let f = format!("tests[{i}]");
        dup_check(
            &mut test_names,
            &t.name,
            format!("{f}.name"),
            "test name",
            &mut out,
        );
        if !["allow", "block", "require_approval", "deny"].contains(&t.expect.verdict.as_str()) {
            out.push((
                format!("{f}.expect.verdict"),
                format!(
                    "unknown verdict `{}` (allow, block, require_approval, deny)",
                    t.expect.verdict
                ),
            ));
        }
        if let Some(p) = &t.expect.policy {
            if !policy_ids.contains(p) {
                out.push((
                    format!("{f}.expect.policy"),
                    format!("unknown policy `{p}`"),
                ));
            }
        }
        if !t.request.path.starts_with('/') {
            out.push((format!("{f}.request.path"), "must start with `/`".into()));
        }
    }
    validate_routes(b, &mut out);
    out
}

/// Route paths are exact: absolute, no query, no escapes, `{model}` only as a whole segment.
fn check_approval(rf: &str, r: &crate::bundle::PromptRule, out: &mut Vec<(String, String)>) {
    use crate::bundle::{ApprovalMode, RuleAction, MAX_DEFERRED_SECONDS, MAX_HOLD_SECONDS};
    let Some(a) = &r.approval else { return };
    let f = format!("{rf}.approval");
    if r.action != RuleAction::RequireApproval {
        out.push((
            f.clone(),
            "only a `require_approval` rule takes an approval".into(),
        ));
    }
    if a.reviewers.groups.is_empty() && a.reviewers.principals.is_empty() {
        out.push((
            format!("{f}.reviewers"),
            "name at least one reviewer group or principal".into(),
        ));
    }
    if a.approvals == 0 || a.approvals > 10 {
        out.push((format!("{f}.approvals"), "must be between 1 and 10".into()));
    }
    let max = match a.mode {
        ApprovalMode::Hold => MAX_HOLD_SECONDS,
        ApprovalMode::Deferred => MAX_DEFERRED_SECONDS,
    };
    if a.ttl_seconds == 0 || a.ttl_seconds > max {
        out.push((
            format!("{f}.ttl_seconds"),
            format!(
                "must be between 1 and {max} for mode `{}`{}",
                serde_json::to_value(a.mode)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                if a.mode == ApprovalMode::Hold {
                    " (a held request must end before Envoy's max_message_timeout, 300 s)"
                } else {
                    ""
                }
            ),
        ));
    }
}

fn validate_routes(b: &Bundle, out: &mut Vec<(String, String)>) {
    let paths = b
        .routes
        .inference
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("routes.inference[{i}]"), &r.path, &r.query))
        .chain(
            b.routes
                .passthrough
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("routes.passthrough[{i}]"), &r.path, &r.query)),
        );
    let mut seen = HashSet::new();
    for (f, path, query) in paths {
        let bad_char = path.chars().find(|c| {
            matches!(c, '?' | '#' | '%' | ';' | '\\') || c.is_whitespace() || c.is_control()
        });
        if !path.starts_with('/') {
            out.push((format!("{f}.path"), "must start with `/`".into()));
        } else if let Some(c) = bad_char {
            out.push((format!("{f}.path"), format!("must not contain `{c}`")));
        } else if path.split('/').skip(1).any(|s| s.is_empty()) {
            out.push((format!("{f}.path"), "empty path segment".into()));
        } else if path
            .split('/')
            .any(|s| s != "{model}" && (s.contains('{') || s.contains('}')))
        {
            out.push((
                format!("{f}.path"),
                "`{model}` is the only placeholder, and must be a whole segment".into(),
            ));
        }
        if !seen.insert((
            f.split('[').next().unwrap_or_default().to_owned(),
            path.clone(),
        )) {
            out.push((format!("{f}.path"), format!("duplicate route `{path}`")));
        }
        for (j, q) in query.iter().enumerate() {
            if q.is_empty() || q.contains(['&', '=', '%', '#']) {
                out.push((
                    format!("{f}.query[{j}]"),
                    "not a query parameter name".into(),
                ));
            }
        }
    }
}

fn check_patterns(
    f: &str,
    literals: &[String],
    regexes: &[String],
    dets: &[String],
    out: &mut Vec<(String, String)>,
) {
    if literals.is_empty() && regexes.is_empty() && dets.is_empty() {
        out.push((
            f.to_owned(),
            "a rule needs at least one of `literals`, `regexes`, `detectors`".into(),
        ));
    }
    for (k, l) in literals.iter().enumerate() {
        if l.is_empty() {
            out.push((format!("{f}.literals[{k}]"), "empty literal".into()));
        }
    }
    for (k, r) in regexes.iter().enumerate() {
        if r.is_empty() {
            out.push((format!("{f}.regexes[{k}]"), "empty regex".into()));
        } else if let Err(e) = check_regex(r) {
            out.push((format!("{f}.regexes[{k}]"), e.to_string()));
        }
    }
    for (k, d) in dets.iter().enumerate() {
        if detectors::resolve(d).is_none() {
            out.push((
                format!("{f}.detectors[{k}]"),
                format!("unknown detector or tag `{d}` (see `gatehouse detectors`)"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROKEN: &str = r#"apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata:
  name: broken
policies:
  - id: p
    models: ["gpt-*"]
    prompt_rules:
      - id: r1
        action: block
        regexes: ["(unclosed"]
      - id: r1
        action: block
        detectors: [no_such_detector]
"#;

    #[test]
    fn semantic_errors_name_line_and_field() {
        let errs = parse(BROKEN).unwrap_err().0;
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(errs[0].field, "policies[0].prompt_rules[0].regexes[0]");
        assert_eq!(errs[0].line, 11);
        assert_eq!(errs[1].field, "policies[0].prompt_rules[1].id");
        assert_eq!(errs[1].line, 12);
        assert!(errs[1].message.contains("duplicate"));
        assert_eq!(errs[2].line, 14);
        assert!(errs[2].message.contains("no_such_detector"));
    }

    #[test]
    fn unknown_field_names_line_and_path() {
        let src = "apiVersion: gatehouse.dev/v1\nkind: PolicyBundle\nmetadata:\n  name: x\npolicies:\n  - id: p\n    models: []\n    limitz: {}\n";
        let errs = parse(src).unwrap_err().0;
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 8);
        assert_eq!(errs[0].field, "policies[0]");
        assert!(errs[0].message.contains("limitz"), "{}", errs[0].message);
    }

    #[test]
    fn digest_ignores_tests_and_formatting() {
        let a =
            "apiVersion: gatehouse.dev/v1\nkind: PolicyBundle\nmetadata: {name: x}\npolicies: []\n";
        let b = "{\"apiVersion\": \"gatehouse.dev/v1\", \"kind\": \"PolicyBundle\", \"metadata\": {\"name\": \"x\"}}";
        assert_eq!(digest(&parse(a).unwrap()), digest(&parse(b).unwrap()));
        let c = "apiVersion: gatehouse.dev/v1\nkind: PolicyBundle\nmetadata: {name: y}\n";
        assert_ne!(digest(&parse(a).unwrap()), digest(&parse(c).unwrap()));
    }
}
