//! A policy compiled into matchers: the prompt rules' pattern sets, the masking sets and the
//! streaming masker's "could a match start here" automaton. Each pattern's source (literal,
//! regex, detector) is fixed here, when it is compiled.

use super::*;
use crate::bundle::{MaskStyle, RuleAction};
use crate::detectors;
use crate::matcher::{BuildError, PatternSet, Spec, SpecKind};
use crate::normalize::{fold, normalize};
use crate::tokens::Encoding;

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
                SpecKind::Detector(d) => d.pattern.to_owned(),
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

fn detector_spec(owner: usize, d: &'static detectors::Detector) -> Spec {
    Spec {
        owner,
        kind: SpecKind::Detector(d),
    }
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
    pub(super) fn compile(p: &Policy) -> Result<Self, BuildError> {
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
            for d in detectors::resolve_all(&r.detectors) {
                exact.push(detector_spec(owner, d));
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
            for det in detectors::resolve_all(&r.detectors) {
                let owner = meta.len();
                let s = detector_spec(owner, det);
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
