//! Compiled pattern sets: Aho-Corasick for literals, one regex-automata multi-pattern regex for
//! every regex and detector of a set.
//!
//! A scan is one pass of each automaton over the text. The combined regex answers "which
//! patterns match anywhere" (overlapping semantics, so no pattern hides another); only the
//! patterns that did match are then run alone to find their spans and apply validity checks.
//! Clean text, the common case, therefore costs one pass per automaton.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind as AcMatchKind};
use regex_automata::{
    meta::{self, Regex},
    util::syntax,
    Input, MatchKind, PatternSet as ReSet,
};

/// One pattern to compile, owned by a rule (`owner` is the caller's index).
#[derive(Debug, Clone)]
pub struct Spec {
    pub owner: usize,
    pub kind: SpecKind,
}

#[derive(Debug, Clone)]
pub enum SpecKind {
    Literal(String),
    /// A literal matched ignoring ASCII case.
    LiteralCi(String),
    Regex {
        pattern: String,
        validate: Option<fn(&[u8]) -> bool>,
    },
}

/// A match: which spec's owner, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub owner: usize,
    /// Index of the spec among the set's specs.
    pub spec: usize,
    pub start: usize,
    pub end: usize,
}

/// Why a pattern set cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid regex `{pattern}`: {message}")]
    Regex { pattern: String, message: String },
    #[error("literal automaton: {0}")]
    Literals(String),
}

fn syntax_config() -> syntax::Config {
    // Byte-oriented, ASCII classes: large credential sets build in milliseconds, also on wasm32.
    syntax::Config::new().unicode(false).utf8(false)
}

fn build_one(pattern: &str, kind: MatchKind) -> Result<Regex, BuildError> {
    Regex::builder()
        .syntax(syntax_config())
        .configure(meta::Config::new().match_kind(kind).utf8_empty(false))
        .build(pattern)
        .map_err(|e| BuildError::Regex {
            pattern: pattern.to_owned(),
            message: e.to_string(),
        })
}

/// A literal as a regex matching exactly it: every meta character escaped, none of the
/// escapes that mean something else (`\<` is a word boundary, not `<`).
pub fn escape(lit: &str) -> String {
    regex_syntax::escape(lit)
}

/// A literal as a regex where each run of white space matches any run of white space
/// (`project kestrel` also matches `project\tkestrel` and `project  kestrel`).
fn spaced_literal(lit: &str) -> String {
    let words: Vec<String> = lit.split_whitespace().map(escape).collect();
    if words.is_empty() {
        return escape(lit);
    }
    let lead = if lit.starts_with(char::is_whitespace) {
        r"\s+"
    } else {
        ""
    };
    let tail = if lit.ends_with(char::is_whitespace) {
        r"\s+"
    } else {
        ""
    };
    format!("{lead}{}{tail}", words.join(r"\s+"))
}

/// The regex a literal spec compiles to when literals share the regex pass.
pub fn literal_regex(kind: &SpecKind) -> Option<String> {
    match kind {
        SpecKind::Literal(l) => Some(spaced_literal(l)),
        SpecKind::LiteralCi(l) => Some(format!("(?i:{})", spaced_literal(l))),
        SpecKind::Regex { .. } => None,
    }
}

/// Check one regex the way a set will compile it (used by bundle validation).
pub fn check_regex(pattern: &str) -> Result<(), BuildError> {
    build_one(pattern, MatchKind::LeftmostFirst).map(|_| ())
}

/// A compiled set of literal and regex specs.
#[derive(Debug)]
pub struct PatternSet {
    specs: Vec<Spec>,
    literals: Option<AhoCorasick>,
    /// literal pattern index -> spec index
    literal_spec: Vec<usize>,
    combined: Option<Regex>,
    /// combined pattern index -> spec index
    regex_spec: Vec<usize>,
    /// spec index -> single regex (for spans), None for literals
    singles: Vec<Option<Regex>>,
}

impl PatternSet {
    /// Compile `specs`. With `ascii_case_insensitive`, literals ignore ASCII case; literals
    /// go to an Aho-Corasick automaton.
    pub fn build(specs: Vec<Spec>, ascii_case_insensitive: bool) -> Result<Self, BuildError> {
        Self::build_inner(specs, ascii_case_insensitive, false)
    }

    /// Compile `specs` so that one regex pass finds every pattern, literals included (best
    /// where there is no SIMD literal search, as on wasm32, and literal lists are short).
    pub fn build_one_pass(specs: Vec<Spec>) -> Result<Self, BuildError> {
        Self::build_inner(specs, false, true)
    }

    fn build_inner(
        specs: Vec<Spec>,
        ascii_case_insensitive: bool,
        literals_in_regex: bool,
    ) -> Result<Self, BuildError> {
        let mut lits = Vec::new();
        let mut literal_spec = Vec::new();
        let mut regexes: Vec<String> = Vec::new();
        let mut regex_spec = Vec::new();
        let mut singles = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            let as_regex = match &s.kind {
                SpecKind::Regex { pattern, .. } => Some(pattern.clone()),
                k if literals_in_regex || matches!(k, SpecKind::LiteralCi(_)) => literal_regex(k),
                _ => None,
            };
            match (as_regex, &s.kind) {
                (Some(pattern), _) => {
                    singles.push(Some(build_one(&pattern, MatchKind::LeftmostFirst)?));
                    regexes.push(pattern);
                    regex_spec.push(i);
                }
                (None, SpecKind::Literal(l)) => {
                    lits.push(l.as_str());
                    literal_spec.push(i);
                    singles.push(None);
                }
                (None, _) => singles.push(None),
            }
        }
        let literals = if lits.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(AcMatchKind::Standard)
                    .ascii_case_insensitive(ascii_case_insensitive)
                    .build(&lits)
                    .map_err(|e| BuildError::Literals(e.to_string()))?,
            )
        };
        let combined = if regexes.is_empty() {
            None
        } else {
            Some(
                Regex::builder()
                    .syntax(syntax_config())
                    .configure(
                        meta::Config::new()
                            .match_kind(MatchKind::All)
                            .utf8_empty(false),
                    )
                    .build_many(&regexes)
                    .map_err(|e| BuildError::Regex {
                        pattern: "<combined set>".into(),
                        message: e.to_string(),
                    })?,
            )
        };
        Ok(PatternSet {
            specs,
            literals,
            literal_spec,
            combined,
            regex_spec,
            singles,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    pub fn specs(&self) -> &[Spec] {
        &self.specs
    }

    /// Every hit in `text`. Literal hits may overlap; regex hits are leftmost-first per spec.
    pub fn scan(&self, text: &[u8], out: &mut Vec<Hit>) {
        if let Some(ac) = &self.literals {
            for m in ac.find_overlapping_iter(text) {
                let spec = self.literal_spec[m.pattern().as_usize()];
                out.push(Hit {
                    owner: self.specs[spec].owner,
                    spec,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
        if let Some(re) = &self.combined {
            let mut budget = RETRY_BUDGET;
            let mut set = ReSet::new(re.pattern_len());
            re.which_overlapping_matches(&Input::new(text), &mut set);
            for pid in set.iter() {
                let spec = self.regex_spec[pid.as_usize()];
                let Some(single) = &self.singles[spec] else {
                    continue;
                };
                let validate = match &self.specs[spec].kind {
                    SpecKind::Regex { validate, .. } => *validate,
                    SpecKind::Literal(_) | SpecKind::LiteralCi(_) => None,
                };
                let owner = self.specs[spec].owner;
                let Some(validate) = validate else {
                    out.extend(single.find_iter(text).map(|m| Hit {
                        owner,
                        spec,
                        start: m.start(),
                        end: m.end(),
                    }));
                    continue;
                };
                validated_hits(single, validate, text, &mut budget, |start, end| {
                    out.push(Hit {
                        owner,
                        spec,
                        start,
                        end,
                    })
                });
            }
        }
    }

    /// Whether anything matches (validators applied).
    pub fn any(&self, text: &[u8]) -> bool {
        let mut v = Vec::new();
        self.scan(text, &mut v);
        !v.is_empty()
    }
}

/// Failed validations a scan may retry with other spans before it counts candidates as
/// matches (fail closed): keeps a text full of near-misses linear.
const RETRY_BUDGET: usize = 65_536;

/// Matches of `re` that pass `validate`. A candidate that fails is not the end of it: a valid
/// value may be a shorter match at the same start (a card number followed by its CVV) or
/// start inside it (a quantity before a card number), so shorter ends are tried, then the
/// search goes on one byte later rather than after the failed candidate.
fn validated_hits(
    re: &Regex,
    validate: fn(&[u8]) -> bool,
    text: &[u8],
    budget: &mut usize,
    mut emit: impl FnMut(usize, usize),
) {
    use regex_automata::Anchored;
    let mut at = 0;
    while at <= text.len() {
        let Some(m) = re.find(Input::new(text).range(at..)) else {
            return;
        };
        let (start, mut end) = (m.start(), m.end());
        let mut found = None;
        loop {
            if validate(&text[start..end]) || *budget == 0 {
                found = Some(end);
                break;
            }
            *budget -= 1;
            // The longest match from `start` that ends before `end`.
            let shorter = (start < end)
                .then(|| {
                    re.find(
                        Input::new(text)
                            .range(start..end - 1)
                            .anchored(Anchored::Yes),
                    )
                })
                .flatten();
            match shorter {
                Some(s) if s.end() < end && s.start() == start => end = s.end(),
                _ => break,
            }
        }
        match found {
            Some(end) => {
                emit(start, end);
                at = end.max(start + 1);
            }
            None => at = start + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(owner: usize, s: &str) -> Spec {
        Spec {
            owner,
            kind: SpecKind::Literal(s.into()),
        }
    }
    fn re(owner: usize, s: &str) -> Spec {
        Spec {
            owner,
            kind: SpecKind::Regex {
                pattern: s.into(),
                validate: None,
            },
        }
    }

    #[test]
    fn overlapping_patterns_all_reported() {
        let set = PatternSet::build(
            vec![re(0, "[a-z]+@x"), re(1, "b@x\\.com"), lit(2, "ab")],
            false,
        )
        .unwrap();
        let mut hits = Vec::new();
        set.scan(b"mail ab@x.com now", &mut hits);
        let owners: std::collections::BTreeSet<_> = hits.iter().map(|h| h.owner).collect();
        assert_eq!(owners.into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn validator_filters_lookalikes() {
        let set = PatternSet::build(
            vec![Spec {
                owner: 7,
                kind: SpecKind::Regex {
                    pattern: "[0-9]{4}".into(),
                    validate: Some(|b| b == b"1234"),
                },
            }],
            false,
        )
        .unwrap();
        assert!(set.any(b"x 1234 y"));
        assert!(!set.any(b"x 9999 y"));
    }

    #[test]
    fn a_failing_candidate_does_not_hide_a_valid_one() {
        let det = crate::detectors::find("payment_card").unwrap();
        let set = PatternSet::build(
            vec![Spec {
                owner: 0,
                kind: SpecKind::Regex {
                    pattern: det.pattern.into(),
                    validate: det.validate,
                },
            }],
            false,
        )
        .unwrap();
        for t in [
            "card 4111 1111 1111 1111 123",
            "qty 3 4111 1111 1111 1111",
            "4111111111111111",
        ] {
            let mut hits = Vec::new();
            set.scan(t.as_bytes(), &mut hits);
            assert_eq!(hits.len(), 1, "{t}");
            assert_eq!(
                &t[hits[0].start..hits[0].end].replace(' ', ""),
                "4111111111111111"
            );
        }
        assert!(!set.any(b"order 4111 1111 1111 1112"));
    }

    #[test]
    fn bad_regex_is_reported() {
        assert!(check_regex("(unclosed").is_err());
        assert!(check_regex("caf\u{e9}").is_ok());
    }

    #[test]
    fn literals_with_meta_characters_match_literally() {
        for l in [
            "<script>",
            r"C:\secret",
            "a.b*c",
            "(x)",
            "[y]",
            "{z}",
            "^$|?+",
            "#~&-",
        ] {
            let set = PatternSet::build_one_pass(vec![lit(0, l)]).unwrap();
            assert!(set.any(format!("xx {l} yy").as_bytes()), "{l}");
        }
        let set = PatternSet::build_one_pass(vec![lit(0, "<script>")]).unwrap();
        assert!(!set.any(b"script"));
        let set = PatternSet::build_one_pass(vec![lit(0, "project kestrel")]).unwrap();
        for t in ["project\tkestrel", "project  kestrel", "project\n kestrel"] {
            assert!(set.any(t.as_bytes()), "{t:?}");
        }
        assert!(!set.any(b"projectkestrel"));
    }

    #[test]
    fn ascii_case_insensitive_literals() {
        let set = PatternSet::build(vec![lit(0, "secret")], true).unwrap();
        assert!(set.any(b"my SeCrEt"));
    }
}

#[cfg(test)]
mod one_pass_tests {
    use super::*;

    #[test]
    fn literals_in_the_regex_pass_match_like_the_automaton() {
        let specs = vec![
            Spec {
                owner: 0,
                kind: SpecKind::Literal("a.b (c)".into()),
            },
            Spec {
                owner: 1,
                kind: SpecKind::LiteralCi("Kestrel".into()),
            },
            Spec {
                owner: 2,
                kind: SpecKind::Regex {
                    pattern: "[0-9]{3}".into(),
                    validate: None,
                },
            },
        ];
        let set = PatternSet::build_one_pass(specs).unwrap();
        let mut hits = Vec::new();
        set.scan(b"x a.b (c) KESTREL 123 axb (c)", &mut hits);
        let mut owners: Vec<_> = hits.iter().map(|h| (h.owner, h.start, h.end)).collect();
        owners.sort();
        assert_eq!(owners, vec![(0, 2, 9), (1, 10, 17), (2, 18, 21)]);
    }
}
