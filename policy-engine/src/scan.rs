//! The text prompt rules run over: every extracted segment, normalised, joined into one buffer
//! so that a request costs one pass of each automaton whatever its number of fields.
//!
//! Segments are separated by a line break, so no word spans two fields, and each hit is traced
//! back to the field it came from. A segment that held invisible characters is added twice
//! (see [`crate::normalize::Normalized`]). Normalisation can grow text (NFKC expands some code
//! points many times over); growth past a per-request budget is refused rather than scanned.

use crate::extract::Segment;
use crate::normalize::{fold, normalize_bounded};

/// The joined, normalised text of a request.
pub struct PromptText {
    /// Normalised text of every segment reading, each followed by `\n`.
    pub text: String,
    /// The same, case-folded, when a rule needs it (offsets are its own).
    pub folded: Option<String>,
    /// (offset in `text`, segment index), ascending.
    starts: Vec<(usize, usize)>,
    folded_starts: Vec<(usize, usize)>,
}

/// Normalised text may be at most this many times the raw text, plus a constant.
pub const GROWTH_FACTOR: usize = 3;
pub const GROWTH_SLACK: usize = 4096;

/// Normalisation grew the request's text past the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request text grows from {raw} to {normalized} bytes when normalised, over the budget")]
pub struct BudgetExceeded {
    pub raw: usize,
    pub normalized: usize,
}

impl PromptText {
    pub fn build(segments: &[Segment], with_folded: bool) -> Result<PromptText, BudgetExceeded> {
        let raw: usize = segments.iter().map(|s| s.text.len() + 1).sum();
        let budget = raw
            .saturating_mul(GROWTH_FACTOR)
            .saturating_add(GROWTH_SLACK);
        let mut p = PromptText {
            text: String::with_capacity(raw),
            folded: with_folded.then(|| String::with_capacity(raw)),
            starts: Vec::with_capacity(segments.len()),
            folded_starts: Vec::new(),
        };
        for (i, seg) in segments.iter().enumerate() {
            // Plain ASCII (the common case) is its own normal form: appended as it is.
            if crate::normalize::plain_ascii(&seg.text) {
                p.starts.push((p.text.len(), i));
                p.text.push_str(&seg.text);
                p.text.push('\n');
                if let Some(f) = p.folded.as_mut() {
                    p.folded_starts.push((f.len(), i));
                    f.extend(seg.text.chars().map(|c| c.to_ascii_lowercase()));
                    f.push('\n');
                }
                continue;
            }
            let left = budget.saturating_sub(p.text.len());
            let n = normalize_bounded(&seg.text, left).ok_or(BudgetExceeded {
                raw,
                normalized: budget.saturating_add(1),
            })?;
            for reading in std::iter::once(&n.text)
                .chain(n.spaced.as_ref())
                .chain(n.tags.as_ref())
            {
                p.starts.push((p.text.len(), i));
                p.text.push_str(reading);
                p.text.push('\n');
                if let Some(f) = p.folded.as_mut() {
                    p.folded_starts.push((f.len(), i));
                    f.push_str(&fold(reading));
                    f.push('\n');
                }
            }
            let grown = p.text.len() + p.folded.as_ref().map_or(0, |f| f.len() / 2);
            if grown > budget {
                return Err(BudgetExceeded {
                    raw,
                    normalized: grown,
                });
            }
        }
        Ok(p)
    }

    /// The segment a hit at `offset` of the exact (`folded == false`) or folded text is in.
    pub fn segment_at(&self, offset: usize, folded: bool) -> usize {
        let starts = if folded {
            &self.folded_starts
        } else {
            &self.starts
        };
        match starts.binary_search_by(|(o, _)| o.cmp(&offset)) {
            Ok(i) => starts[i].1,
            Err(0) => 0,
            Err(i) => starts[i - 1].1,
        }
    }
}

/// Widen a byte span to the nearest character boundaries of `text`, so a byte-oriented match
/// that starts or ends inside a multi-byte character can be sliced and replaced safely.
pub fn widen(text: &str, start: usize, end: usize) -> (usize, usize) {
    let mut s = start.min(text.len());
    while s > 0 && !text.is_char_boundary(s) {
        s -= 1;
    }
    let mut e = end.clamp(s, text.len());
    while e < text.len() && !text.is_char_boundary(e) {
        e += 1;
    }
    (s, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(t: &str) -> Segment {
        Segment {
            path: 0,
            text: t.into(),
        }
    }

    #[test]
    fn hits_trace_back_to_their_segment() {
        let p =
            PromptText::build(&[seg("alpha"), seg("be\u{200B}ta"), seg("gamma")], true).unwrap();
        assert_eq!(p.text, "alpha\nbeta\nbe ta\ngamma\n");
        assert_eq!(p.segment_at(0, false), 0);
        assert_eq!(p.segment_at(7, false), 1);
        assert_eq!(p.segment_at(12, false), 1);
        assert_eq!(p.segment_at(18, false), 2);
        assert_eq!(p.segment_at(18, true), 2);
    }

    #[test]
    fn growth_past_the_budget_is_refused() {
        // U+FDFA expands to 18 code points (33 bytes) under NFKC.
        let big = "\u{FDFA}".repeat(4000);
        assert!(PromptText::build(&[seg(&big)], false).is_err());
        assert!(PromptText::build(&[seg("\u{FDFA}")], false).is_ok());
    }

    #[test]
    fn spans_widen_to_character_boundaries() {
        let t = "aé€b";
        assert_eq!(widen(t, 2, 4), (1, 6));
        assert_eq!(widen(t, 0, 99), (0, t.len()));
        assert_eq!(widen(t, 99, 3), (t.len(), t.len()));
    }
}
