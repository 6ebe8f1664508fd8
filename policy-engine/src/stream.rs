//! Streaming masking: mask a text that arrives in pieces without ever sending part of a value
//! that a masking rule would replace, and without holding back more than needed.
//!
//! After each piece, the masker finds the earliest position in the unsent tail where a match
//! could still begin (an anchored lazy DFA over every masking pattern is run from that position
//! to the end of the text; if it has not died, more input could complete a match there). Text
//! before that position is final: it is masked and sent at once. The held tail is bounded by
//! the policy's longest possible match; past that bound text is released (masked) even if it
//! is still "live", so a pathological stream cannot stall.

use crate::engine::{CompiledPolicy, Engine, MaskHit};
use regex_automata::{
    hybrid::dfa::{Cache, DFA},
    nfa::thompson,
    util::{start, syntax},
    Anchored,
};
use regex_syntax::hir::{Capture, Hir, HirKind, Repetition};

/// An anchored lazy DFA answering "could a masking match start here?".
pub struct LiveDfa {
    dfa: DFA,
}

impl std::fmt::Debug for LiveDfa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveDfa")
    }
}

impl LiveDfa {
    /// Build from the same patterns the masker uses (literals escaped), each relaxed so
    /// that every repetition is unbounded (`X{64}` reads as `X*`): every prefix of a real
    /// match is still a prefix of a relaxed one, so the answer stays safe, and hundreds of
    /// detectors with long counted repetitions make a small automaton instead of one with
    /// tens of thousands of states.
    pub fn build(patterns: &[String]) -> Result<Option<LiveDfa>, String> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut parser = regex_syntax::ParserBuilder::new();
        parser.unicode(false).utf8(false);
        let hirs = patterns
            .iter()
            .map(|p| {
                parser
                    .build()
                    .parse(p)
                    .map(relax)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()?;
        let nfa = thompson::Compiler::new()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .build_many_from_hir(&hirs)
            .map_err(|e| e.to_string())?;
        let dfa = DFA::builder()
            .build_from_nfa(nfa)
            .map_err(|e| e.to_string())?;
        Ok(Some(LiveDfa { dfa }))
    }

    fn cache(&self) -> Cache {
        self.dfa.create_cache()
    }

    /// Whether some pattern could match starting at `text[at..]` given more input.
    fn live_at(&self, cache: &mut Cache, text: &[u8], at: usize) -> bool {
        let before = at.checked_sub(1).map(|i| text[i]);
        let cfg = start::Config::new()
            .anchored(Anchored::Yes)
            .look_behind(before);
        let Ok(mut sid) = self.dfa.start_state(cache, &cfg) else {
            return true; // cannot tell: hold (safe)
        };
        for &b in &text[at..] {
            match self.dfa.next_state(cache, sid, b) {
                Ok(next) => sid = next,
                Err(_) => return true,
            }
            if sid.is_dead() {
                return false;
            }
            if sid.is_quit() {
                return true;
            }
        }
        true
    }
}

/// `h` with every repetition made unbounded and optional (`X{2,64}` becomes `X*`).
fn relax(h: Hir) -> Hir {
    match h.into_kind() {
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            min: 0,
            max: None,
            greedy: true,
            sub: Box::new(relax(*r.sub)),
        }),
        HirKind::Capture(c) => Hir::capture(Capture {
            index: c.index,
            name: c.name,
            sub: Box::new(relax(*c.sub)),
        }),
        HirKind::Concat(hs) => Hir::concat(hs.into_iter().map(relax).collect()),
        HirKind::Alternation(hs) => Hir::alternation(hs.into_iter().map(relax).collect()),
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(l) => Hir::literal(l.0),
        HirKind::Class(c) => Hir::class(c),
        HirKind::Look(l) => Hir::look(l),
    }
}

/// The held text may always grow to this many bytes (see [`StreamMasker::push`]).
const MIN_RAW_HOLD: usize = 64 * 1024;

/// Masks one text stream (one choice, content block or output item).
pub struct StreamMasker {
    pending: String,
    cache: Option<Cache>,
    /// Values masked so far, with their rules.
    pub hits: Vec<MaskHit>,
    /// The rest of the stream is withheld (a possible value outgrew the hold cap).
    withholding: bool,
}

/// The longest escape the reader's views decode (a `\uXXXX\uXXXX` surrogate pair).
const ESCAPE_TAIL: usize = 12;

/// What replaces text withheld because a possible value outgrew the hold cap.
pub const WITHHELD: &str = "[WITHHELD]";

impl StreamMasker {
    pub fn new(cp: &CompiledPolicy) -> Self {
        StreamMasker {
            pending: String::new(),
            cache: cp.live_dfa().map(LiveDfa::cache),
            hits: Vec::new(),
            withholding: false,
        }
    }

    /// Bytes currently held back.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Add a piece of text; returns the (masked) text that may be sent now.
    pub fn push(&mut self, engine: &Engine, cp: &CompiledPolicy, piece: &str) -> String {
        if self.withholding {
            return String::new();
        }
        self.pending.push_str(piece);
        let len = self.pending.len();
        let bound = cp.max_mask_match();
        // Earliest position where a match could still begin, judged on the text as a reader
        // sees it (a value with invisible characters inside is still one value).
        let mut hold_from = len;
        if let (Some(live), Some(cache)) = (cp.live_dfa(), self.cache.as_mut()) {
            // The text as written and every reading `mask_spans` makes of it.
            let views = crate::masking::reader_views(&self.pending);
            for m in std::iter::once(None).chain(views.iter().map(Some)) {
                let view = m.map_or(self.pending.as_str(), |m| &m.text);
                let n = view.len();
                for at in n.saturating_sub(bound + 1)..n {
                    if view.is_char_boundary(at) && live.live_at(cache, view.as_bytes(), at) {
                        hold_from = hold_from.min(m.map_or(at, |m| m.start_of(at, len)));
                        break;
                    }
                }
            }
        }
        // An escape that may not be complete yet (`\u00` of `\u0041`, half a surrogate
        // pair) is held too: once sent, the rest of it could not be read back into a value.
        let tail = len.saturating_sub(ESCAPE_TAIL);
        if let Some(i) = self.pending.as_bytes()[tail..]
            .iter()
            .position(|&b| b == b'\\')
        {
            hold_from = hold_from.min(tail + i);
        }
        // A complete match that straddles the boundary is held whole.
        let spans = engine.mask_spans(cp, &self.pending);
        for s in &spans {
            if s.start < hold_from && s.end > hold_from {
                hold_from = s.start;
            }
        }
        // Invisible characters add to the held text without adding to what a match can be:
        // past a fixed multiple of the bound, the held text cannot grow. Text that could
        // still be part of a value is never sent as it is: when the cap would push such text
        // out, the stream is withheld from there to its end (one marker), since what follows
        // could complete a value whose start is no longer here to recognise it.
        let cap = bound.saturating_mul(8).max(MIN_RAW_HOLD);
        let mut forced = len.saturating_sub(cap);
        while !self.pending.is_char_boundary(forced) {
            forced += 1;
        }
        while !self.pending.is_char_boundary(hold_from) {
            hold_from -= 1;
        }
        if hold_from < forced {
            let mut out = self.emit(engine, cp, hold_from);
            self.pending.clear();
            self.withholding = true;
            out.push_str(WITHHELD);
            return out;
        }
        self.emit(engine, cp, hold_from)
    }

    /// End of the stream: everything held is masked and returned.
    pub fn finish(&mut self, engine: &Engine, cp: &CompiledPolicy) -> String {
        let len = self.pending.len();
        self.emit(engine, cp, len)
    }

    fn emit(&mut self, engine: &Engine, cp: &CompiledPolicy, upto: usize) -> String {
        if upto == 0 {
            return String::new();
        }
        let head: String = self.pending.drain(..upto).collect();
        let (masked, hits) = engine.mask_text(cp, &head);
        self.hits.extend(hits);
        masked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str = r#"
apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata: {name: t}
policies:
  - id: p
    models: ["*"]
    response_masking:
      - {id: pii, detectors: [email, payment_card, aws_access_key_id, private_key]}
      - {id: word, literals: [swordfish], case_insensitive: true}
"#;

    fn engine() -> Engine {
        Engine::from_source(BUNDLE).unwrap()
    }

    /// Feed `text` split at every pair of offsets; the output must equal whole-text masking
    /// and no prefix of a secret may be emitted before its mask.
    #[test]
    fn split_at_every_offset_never_leaks() {
        let e = engine();
        let cp = e.policy("p").unwrap();
        let text = "Mail jane.doe@example.com, card 4111 1111 1111 1111, key AKIAQWERTYUIOPASDFGH and SwordFish. Done.";
        let (expected, _) = e.mask_text(cp, text);
        let secrets = [
            "jane.doe@example.com",
            "4111 1111 1111 1111",
            "AKIAQWERTYUIOPASDFGH",
            "SwordFish",
        ];
        for i in 1..text.len() {
            for j in (i + 1)..text.len().min(i + 40) {
                if !text.is_char_boundary(i) || !text.is_char_boundary(j) {
                    continue;
                }
                let mut m = StreamMasker::new(cp);
                let mut out = String::new();
                for piece in [&text[..i], &text[i..j], &text[j..]] {
                    out.push_str(&m.push(&e, cp, piece));
                    for s in secrets {
                        // No emitted text ends with a proper prefix (>= 4 bytes) of a secret.
                        for k in 4..s.len() {
                            assert!(
                                !out.contains(&s[..k]) || expected.contains(&s[..k]),
                                "leaked {:?} at split {i},{j}: {out:?}",
                                &s[..k]
                            );
                        }
                    }
                }
                out.push_str(&m.finish(&e, cp));
                assert_eq!(out, expected, "split at {i},{j}");
            }
        }
    }

    /// A card number in full-width digits and a key with zero-width spaces inside, split at
    /// every offset: no digit of the card and no part of the key gets out unmasked.
    #[test]
    fn values_in_other_forms_never_leak_when_split() {
        let e = engine();
        let cp = e.policy("p").unwrap();
        let card: String = "4111111111111111"
            .chars()
            .map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap())
            .collect();
        let key = "AKIA\u{200B}QWERTY\u{200B}UIOP\u{200B}ASDFGH";
        let tagged: String = "AKIAZXCVBNMASDFGHJKL"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect();
        let text = format!("pay {card} with {key} or{tagged}now, \\u0041KIAPOIUYTREWQLKJHGF ok");
        let (expected, _) = e.mask_text(cp, &text);
        assert_eq!(
            expected,
            "pay [PAYMENT_CARD] with [AWS_ACCESS_KEY] or[AWS_ACCESS_KEY]now, [AWS_ACCESS_KEY] ok"
        );
        let bounds: Vec<usize> = (0..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .collect();
        for &i in &bounds {
            let mut m = StreamMasker::new(cp);
            let mut out = m.push(&e, cp, &text[..i]);
            assert!(
                !out.contains('\u{FF11}')
                    && !out.contains("QWERTY")
                    && !out.contains("AKIA")
                    && !out.contains("POIUYT")
                    && !out.contains(char::from_u32(0xE0000 + 'Z' as u32).unwrap()),
                "leaked at {i}: {out:?}"
            );
            out.push_str(&m.push(&e, cp, &text[i..]));
            out.push_str(&m.finish(&e, cp));
            assert_eq!(out, expected, "split at {i}");
        }
    }

    /// A key padded with more invisible characters than the hold cap, streamed in small
    /// pieces: no part of it is ever sent as it is.
    #[test]
    fn padding_past_the_hold_cap_withholds_rather_than_leaks() {
        let e = engine();
        let cp = e.policy("p").unwrap();
        let pad = "\u{200B}".repeat(40_000);
        let text = format!("key AKIA{pad}QWERTYUIOPASDFGH done");
        let mut m = StreamMasker::new(cp);
        let mut out = String::new();
        let mut at = 0;
        while at < text.len() {
            let mut end = (at + 997).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            out.push_str(&m.push(&e, cp, &text[at..end]));
            at = end;
        }
        out.push_str(&m.finish(&e, cp));
        assert!(!out.contains("AKIA") && !out.contains("QWERTY"), "{out:?}");
        assert_eq!(out, format!("key {WITHHELD}"));
        assert!(m.held() == 0);
    }

    #[test]
    fn plain_prose_is_not_held_long() {
        let e = engine();
        let cp = e.policy("p").unwrap();
        let mut m = StreamMasker::new(cp);
        let sent = m.push(&e, cp, "The weather is fine today and ");
        // Only the possible start of a match (the last word could begin an e-mail) is held.
        assert!(sent.starts_with("The weather is fine today"), "{sent:?}");
        assert!(m.held() <= 1, "held {}", m.held());
    }

    #[test]
    fn private_key_block_is_held_until_complete() {
        let e = engine();
        let cp = e.policy("p").unwrap();
        let mut m = StreamMasker::new(cp);
        let mut out = m.push(&e, cp, "here: -----BEGIN RSA PRIVATE KEY-----\nMIIEow");
        assert_eq!(out, "here: ");
        out.push_str(&m.push(&e, cp, "IBAAKCAQEA\n-----END RSA PRIVATE KEY----- ok"));
        out.push_str(&m.finish(&e, cp));
        assert_eq!(out, "here: [PRIVATE_KEY] ok");
    }
}
