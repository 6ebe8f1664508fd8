//! Compiled pattern sets: Aho-Corasick for literals, one regex-automata multi-pattern regex for
//! every regex and detector of a set.
//!
//! A scan is one pass of each automaton over the text. The combined regex answers "which
//! patterns match anywhere" (overlapping semantics, so no pattern hides another); only the
//! patterns that did match are then run alone to find their spans and apply validity checks.
//! Clean text, the common case, therefore costs one pass per automaton.

use crate::detectors::Detector;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind as AcMatchKind};
use regex_automata::{
    meta::{self, Regex},
    util::syntax,
    Input, MatchKind, PatternSet as ReSet,
};
use std::sync::Arc;

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
    /// A built-in detector: run around its keywords when it has some, in the shared regex
    /// pass otherwise.
    Detector(&'static Detector),
}

impl Spec {
    /// What produced a hit of this spec, as findings name it (`literal`, `regex`,
    /// `detector:<name>`).
    pub fn source(&self) -> std::borrow::Cow<'static, str> {
        match &self.kind {
            SpecKind::Literal(_) | SpecKind::LiteralCi(_) => "literal".into(),
            SpecKind::Regex { .. } => "regex".into(),
            SpecKind::Detector(d) => format!("detector:{}", d.name).into(),
        }
    }

    /// The validity check a candidate must pass.
    fn validator(&self) -> Option<fn(&[u8]) -> bool> {
        match &self.kind {
            SpecKind::Regex { validate, .. } => *validate,
            SpecKind::Detector(d) => d.check.validator(),
            SpecKind::Literal(_) | SpecKind::LiteralCi(_) => None,
        }
    }
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
        SpecKind::Regex { .. } | SpecKind::Detector(_) => None,
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
    /// spec index -> single regex (for spans); None for literals and detectors (whose
    /// regexes are compiled on first use and shared)
    singles: Vec<Option<Regex>>,
    /// Keywords of the set's detectors, in one case-insensitive Aho-Corasick DFA (shared by
    /// every set with the same keywords), and per keyword the specs it gates.
    keywords: Option<Arc<AhoCorasick>>,
    keyword_specs: Vec<Vec<usize>>,
}

/// One compiled regex per built-in detector, shared by every set that uses it (a bundle's
/// policies and masking rules name the same detectors many times over), compiled the first
/// time a text has one of its keywords (or, for detectors without keywords, a candidate).
fn detector_regex(d: &'static Detector) -> Result<Arc<CompiledDetector>, BuildError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Arc<CompiledDetector>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = map.get(d.name) {
        return Ok(c.clone());
    }
    let c = Arc::new(CompiledDetector {
        regex: build_one(d.pattern, MatchKind::LeftmostFirst)?,
        starts_with_keyword: starts_with_keyword(d),
    });
    map.insert(d.name, c.clone());
    Ok(c)
}

/// The case-insensitive keyword DFA of a keyword list, built once per distinct list (the
/// policies and masking rules of a bundle mostly name the same detectors).
fn keyword_automaton(keywords: &[&'static str]) -> Result<Arc<AhoCorasick>, BuildError> {
    use std::sync::{Mutex, OnceLock};
    type Cache = Vec<(Vec<&'static str>, Arc<AhoCorasick>)>;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((_, ac)) = cache.iter().find(|(k, _)| k == keywords) {
        return Ok(ac.clone());
    }
    let ac = Arc::new(
        AhoCorasickBuilder::new()
            .match_kind(AcMatchKind::Standard)
            .ascii_case_insensitive(true)
            .kind(Some(AhoCorasickKind::DFA))
            .build(keywords)
            .map_err(|e| BuildError::Literals(e.to_string()))?,
    );
    cache.push((keywords.to_vec(), ac.clone()));
    Ok(ac)
}

/// A built-in detector's compiled regex.
#[derive(Debug)]
struct CompiledDetector {
    regex: Regex,
    /// Every match begins with one of the keywords (a prefix format, or a context word
    /// first): the regex need only look forward from each keyword.
    starts_with_keyword: bool,
}

/// Whether every match of `d` begins with one of its keywords, read from the finite set of
/// literal prefixes of its pattern (`false` when the set is not finite or a prefix is
/// shorter than every keyword it could start).
fn starts_with_keyword(d: &Detector) -> bool {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let Ok(hir) = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(d.pattern)
    else {
        return false;
    };
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let Some(lits) = seq.literals() else {
        return false;
    };
    !lits.is_empty()
        && lits.iter().all(|l| {
            let lower = l.as_bytes().to_ascii_lowercase();
            d.keywords.iter().any(|k| lower.starts_with(k.as_bytes()))
        })
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
        let mut keywords: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            if let SpecKind::Detector(d) = &s.kind {
                let d: &'static Detector = d;
                if d.keywords.is_empty() {
                    regexes.push(d.pattern.to_owned());
                    regex_spec.push(i);
                }
                for k in d.keywords {
                    match keywords.iter_mut().find(|(x, _)| x == k) {
                        Some((_, gated)) => gated.push(i),
                        None => keywords.push((k, vec![i])),
                    }
                }
                // Compiled on first use (see `detector_regex`): a VM pays only for the
                // detectors whose keywords it has seen.
                singles.push(None);
                continue;
            }
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
        // Keywords get their own pass, a fully built DFA: it runs at the same speed on any
        // text (a lazy DFA over hundreds of case-insensitive literals slows down several
        // times on source code), and its hits say where the gated detectors must look.
        let (keyword_list, keyword_specs): (Vec<&'static str>, Vec<Vec<usize>>) =
            keywords.into_iter().unzip();
        let keywords = if keyword_list.is_empty() {
            None
        } else {
            Some(keyword_automaton(&keyword_list)?)
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
            keywords,
            keyword_specs,
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
            let mut budget = work_budget(text);
            let mut set = ReSet::new(re.pattern_len());
            re.which_overlapping_matches(&Input::new(text), &mut set);
            for pid in set.iter() {
                let spec = self.regex_spec[pid.as_usize()];
                self.spec_hits(spec, text, 0..text.len(), &mut budget, out);
            }
        }
        if let Some(ac) = &self.keywords {
            self.gated_hits(ac, text, out);
        }
    }

    /// Keyword-gated detectors: a match contains one of its detector's keywords and is at
    /// most `max_len` long, so the detector's regex runs only in the merged windows around
    /// its keywords' hits (from the keyword itself onwards when every match starts with a
    /// keyword, `max_len` either side otherwise). Text without a keyword costs nothing more.
    fn gated_hits(&self, ac: &AhoCorasick, text: &[u8], out: &mut Vec<Hit>) {
        // (spec, keyword start, keyword end)
        let mut found: Vec<(usize, usize, usize)> = Vec::new();
        for m in ac.find_overlapping_iter(text) {
            for &spec in &self.keyword_specs[m.pattern().as_usize()] {
                found.push((spec, m.start(), m.end()));
            }
        }
        found.sort_unstable();
        let mut budget = work_budget(text);
        let mut windows: Vec<(usize, usize)> = Vec::new();
        // One group per detector: its compiled regex is looked up once, its windows merged.
        for group in found.chunk_by(|a, b| a.0 == b.0) {
            let spec = group[0].0;
            let SpecKind::Detector(d) = &self.specs[spec].kind else {
                continue;
            };
            let c = match detector_regex(d) {
                Ok(c) => c,
                Err(_) => {
                    self.fail_closed(spec, 0..text.len(), out);
                    continue;
                }
            };
            // Sorted by start: keywords that overlap (`sk-`, `sk-ant-`) can end out of order.
            windows.clear();
            windows.extend(group.iter().map(|&(_, ks, ke)| {
                let start = if c.starts_with_keyword {
                    ks
                } else {
                    ke.saturating_sub(d.max_len)
                };
                (start, ks.saturating_add(d.max_len).min(text.len()))
            }));
            windows.sort_unstable();
            let mut window: Option<(usize, usize)> = None;
            for &(start, end) in &windows {
                window = match window {
                    Some((ws, we)) if start <= we => Some((ws, we.max(end))),
                    Some((ws, we)) => {
                        self.regex_hits(&c.regex, spec, text, ws..we, &mut budget, out);
                        Some((start, end))
                    }
                    None => Some((start, end)),
                };
            }
            if let Some((ws, we)) = window {
                self.regex_hits(&c.regex, spec, text, ws..we, &mut budget, out);
            }
        }
    }

    /// A spec whose regex cannot be compiled: every built-in pattern compiles (tested); if one
    /// did not, its candidates would count as matches, not pass unread.
    fn fail_closed(&self, spec: usize, range: std::ops::Range<usize>, out: &mut Vec<Hit>) {
        out.push(Hit {
            owner: self.specs[spec].owner,
            spec,
            start: range.start,
            end: range.end,
        });
    }

    /// Hits of one spec's own regex within `range` of `text` (look-around sees the whole
    /// text).
    fn spec_hits(
        &self,
        spec: usize,
        text: &[u8],
        range: std::ops::Range<usize>,
        budget: &mut usize,
        out: &mut Vec<Hit>,
    ) {
        match (&self.specs[spec].kind, &self.singles[spec]) {
            (_, Some(re)) => self.regex_hits(re, spec, text, range, budget, out),
            (SpecKind::Detector(d), None) => match detector_regex(d) {
                Ok(c) => self.regex_hits(&c.regex, spec, text, range, budget, out),
                Err(_) => self.fail_closed(spec, range, out),
            },
            (_, None) => {}
        }
    }

    /// Hits of `single`, the regex of spec `spec`, within `range` of `text`.
    fn regex_hits(
        &self,
        single: &Regex,
        spec: usize,
        text: &[u8],
        range: std::ops::Range<usize>,
        budget: &mut usize,
        out: &mut Vec<Hit>,
    ) {
        let owner = self.specs[spec].owner;
        let Some(validate) = self.specs[spec].validator() else {
            out.extend(
                single
                    .find_iter(Input::new(text).range(range))
                    .map(|m| Hit {
                        owner,
                        spec,
                        start: m.start(),
                        end: m.end(),
                    }),
            );
            return;
        };
        // Shorter ends are for structured values (a card before its CVV); credentials and
        // entropy floors are judged on the candidate as found.
        let shorter_ends = match &self.specs[spec].kind {
            SpecKind::Detector(d) => d.stance == crate::detectors::Stance::Structured,
            _ => true,
        };
        validated_hits(
            single,
            validate,
            shorter_ends,
            text,
            range,
            budget,
            |start, end| {
                out.push(Hit {
                    owner,
                    spec,
                    start,
                    end,
                })
            },
        );
    }

    /// Whether anything matches (validators applied).
    pub fn any(&self, text: &[u8]) -> bool {
        let mut v = Vec::new();
        self.scan(text, &mut v);
        !v.is_empty()
    }
}

/// Work (bytes searched or checked) the validated detectors of one scan may spend on
/// candidates before the rest count as matches (fail closed): a text full of near-misses
/// stays linear. Per byte of text, plus a constant for short texts.
const WORK_PER_BYTE: usize = 32;
const WORK_MIN: usize = 1 << 20;

/// The work budget of one scan of `text`.
fn work_budget(text: &[u8]) -> usize {
    text.len().saturating_mul(WORK_PER_BYTE).max(WORK_MIN)
}

/// Shorter ends tried for one failed candidate.
const SHORTER_TRIES: usize = 32;

/// Matches of `re` that pass `validate`. With `shorter_ends` (structured values), a candidate
/// that fails is not the end of it: a valid value may be a shorter match at the same start
/// (a card number followed by its CVV), so a few shorter ends are tried, or start inside it
/// (a quantity before a card number), so the search goes on one byte later. Every search and check is charged to `budget` by the
/// bytes it covers; once it is spent, candidates count as matches.
fn validated_hits(
    re: &Regex,
    validate: fn(&[u8]) -> bool,
    shorter_ends: bool,
    text: &[u8],
    range: std::ops::Range<usize>,
    budget: &mut usize,
    mut emit: impl FnMut(usize, usize),
) {
    use regex_automata::Anchored;
    let mut at = range.start;
    while at <= range.end {
        let Some(m) = re.find(Input::new(text).range(at..range.end)) else {
            return;
        };
        let (start, mut end) = (m.start(), m.end());
        *budget = budget.saturating_sub(end - at + 1);
        let mut found = None;
        let mut tries = 0;
        loop {
            if *budget == 0 || validate(&text[start..end]) {
                found = Some(end);
                break;
            }
            *budget = budget.saturating_sub(end - start + 1);
            tries += 1;
            if !shorter_ends || tries > SHORTER_TRIES || *budget == 0 {
                break;
            }
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
            *budget = budget.saturating_sub(end - start);
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
            // A structured value may start inside a failed candidate; a credential's
            // candidate is judged as a whole, and the search goes on after it (so a long run
            // that fails its entropy floor costs one check, not one per byte).
            None if shorter_ends => at = start + 1,
            None => at = end.max(start + 1),
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
                kind: SpecKind::Detector(det),
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
