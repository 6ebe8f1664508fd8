//! Which policy admits a caller, and which rules apply to a model.

use crate::bundle::{Policy, PromptRule};
use crate::identity::Caller;

/// Glob match with `*` (any run) and `?` (one character).
/// Whether a prompt rule applies to a request for `model` (rules without models apply to all).
pub(super) fn applies_to_model(r: &PromptRule, model: Option<&str>) -> bool {
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

pub(super) fn admits(p: &Policy, c: &Caller) -> bool {
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
