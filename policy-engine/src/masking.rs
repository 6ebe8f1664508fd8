//! Response masking: the spans a policy's masking rules replace, and their replacements.

use crate::bundle::MaskStyle;
use crate::engine::{CompiledPolicy, Engine};
use crate::normalize::{plain_ascii, Mapped};
use crate::scan::widen;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

/// The ways a reader may read `text` besides as written: without invisible characters and
/// with full-width forms and other scripts' digits made ASCII; with tag characters (invisible
/// to a person, read as ASCII by models and agents downstream) as ASCII; with JSON-style
/// escapes decoded (`https:\/\/…`, `\u0041KIA…`). Plain ASCII without a backslash has none.
pub(crate) fn reader_views(text: &str) -> Vec<Mapped> {
    let mut views = Vec::new();
    if !plain_ascii(text) {
        views.push(Mapped::new(text));
        if Mapped::has_tags(text) {
            views.push(Mapped::with_tags(text));
        }
    }
    if text.contains('\\') {
        views.push(Mapped::unescaped(text));
    }
    views
}

/// A span of text a masking rule replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaskHit {
    pub rule: String,
    pub label: String,
    pub start: usize,
    pub end: usize,
}

impl Engine {
    /// Find the spans of `text` that `policy`'s masking rules replace (non-overlapping,
    /// leftmost, longest first among overlaps).
    ///
    /// The text is also scanned the ways a reader reads it ([`reader_views`]): a value in
    /// full-width digits, with zero-width characters inside, in tag characters or behind JSON
    /// escapes is masked in full, the characters that spell it included.
    pub fn mask_spans(&self, cp: &CompiledPolicy, text: &str) -> Vec<MaskHit> {
        let mut hits = Vec::new();
        cp.mask.exact.scan(text.as_bytes(), &mut hits);
        cp.mask.ci.scan(text.as_bytes(), &mut hits);
        for mapped in reader_views(text) {
            if mapped.text == text {
                continue;
            }
            let mut seen = Vec::new();
            cp.mask.exact.scan(mapped.text.as_bytes(), &mut seen);
            cp.mask.ci.scan(mapped.text.as_bytes(), &mut seen);
            hits.extend(seen.into_iter().map(|mut h| {
                (h.start, h.end) = mapped.original(h.start, h.end, text.len());
                h
            }));
        }
        hits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut out: Vec<MaskHit> = Vec::new();
        for h in hits {
            // Byte-oriented patterns may match part of a character: mask the whole of it.
            let (start, end) = widen(text, h.start, h.end);
            if let Some(last) = out.last_mut() {
                if start < last.end {
                    // Overlap: extend to cover both so no part of either value leaks.
                    last.end = last.end.max(end);
                    continue;
                }
            }
            let m = &cp.mask.rules[h.owner];
            out.push(MaskHit {
                rule: m.id.clone(),
                label: m.label.clone(),
                start,
                end,
            });
        }
        out
    }

    /// Replace every masked span of `text`.
    pub fn mask_text(&self, cp: &CompiledPolicy, text: &str) -> (String, Vec<MaskHit>) {
        let spans = self.mask_spans(cp, text);
        if spans.is_empty() {
            return (text.to_owned(), spans);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for s in &spans {
            out.push_str(&text[at..s.start]);
            out.push_str(&self.replacement(cp, s, &text[s.start..s.end]));
            at = s.end;
        }
        out.push_str(&text[at..]);
        (out, spans)
    }

    fn replacement(&self, cp: &CompiledPolicy, s: &MaskHit, value: &str) -> String {
        let meta = cp
            .mask
            .rules
            .iter()
            .find(|m| m.id == s.rule && m.label == s.label);
        let (style, keep) = meta
            .map(|m| (m.style, m.keep_last))
            .unwrap_or((MaskStyle::Label, 0));
        match style {
            MaskStyle::Label => format!("[{}]", s.label),
            MaskStyle::Partial => {
                let chars: Vec<char> = value.chars().collect();
                let keep = keep.min(chars.len() / 2);
                let mut r: String = chars[..chars.len() - keep]
                    .iter()
                    .map(|c| if c.is_alphanumeric() { '*' } else { *c })
                    .collect();
                r.extend(&chars[chars.len() - keep..]);
                r
            }
            MaskStyle::Hash => {
                // HMAC takes keys of any length, so this cannot fail; an empty key still
                // gives a stable (unkeyed) tag.
                let tag = <Hmac<Sha256> as Mac>::new_from_slice(&self.mask_key)
                    .map(|mut mac| {
                        mac.update(value.as_bytes());
                        hex::encode(&mac.finalize().into_bytes()[..4])
                    })
                    .unwrap_or_default();
                format!("[{}:{}]", s.label, tag)
            }
        }
    }
}

#[cfg(test)]
mod mask_style_tests {
    use crate::engine::Engine;

    const SRC: &str = r#"
apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata: {name: t}
policies:
  - id: p
    models: ["*"]
    response_masking:
      - {id: cards, detectors: [payment_card], style: partial, keep_last: 4}
      - {id: keys, detectors: [aws_access_key_id], style: hash}
      - {id: mail, detectors: [email], style: label, label: CONTACT}
"#;

    #[test]
    fn label_partial_and_keyed_hash_styles() {
        let e = Engine::from_source(SRC).unwrap().with_mask_key(b"k1");
        let cp = e.policy("p").unwrap();
        let (out, hits) = e.mask_text(
            cp,
            "card 4111 1111 1111 1111, key AKIAQWERTYUIOPASDFGH, mail a@example.com",
        );
        assert_eq!(hits.len(), 3);
        assert!(out.contains("card **** **** **** 1111,"), "{out}");
        assert!(out.contains("mail [CONTACT]"), "{out}");
        let tag = out.split("[AWS_ACCESS_KEY:").nth(1).unwrap()[..8].to_owned();
        // Stable per value and key; another key gives another tag.
        let (again, _) = e.mask_text(cp, "AKIAQWERTYUIOPASDFGH");
        assert_eq!(again, format!("[AWS_ACCESS_KEY:{tag}]"));
        let other = Engine::from_source(SRC).unwrap().with_mask_key(b"k2");
        let (o, _) = other.mask_text(other.policy("p").unwrap(), "AKIAQWERTYUIOPASDFGH");
        assert_ne!(o, again);
    }
}

#[cfg(test)]
mod reader_view_tests {
    use crate::engine::Engine;

    const SRC: &str = r#"
apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata: {name: t}
policies:
  - id: p
    models: ["*"]
    response_masking:
      - {id: cards, detectors: [payment_card]}
      - {id: keys, detectors: [aws_access_key_id, email, slack_webhook_url]}
"#;

    #[test]
    fn values_in_other_forms_are_masked_whole() {
        let e = Engine::from_source(SRC).unwrap();
        let cp = e.policy("p").unwrap();
        for (text, want) in [
            // Full-width digits.
            (
                "card \u{FF14}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11} end",
                "card [PAYMENT_CARD] end",
            ),
            // A zero-width space inside a key, and a soft hyphen inside a card number.
            ("key AKIAQWERTY\u{200B}UIOPASDFGH.", "key [AWS_ACCESS_KEY]."),
            ("4111 1111\u{AD} 1111 1111", "[PAYMENT_CARD]"),
            // Full-width letters in a key; Arabic-Indic digits.
            (
                "\u{FF21}\u{FF2B}\u{FF29}\u{FF21}QWERTYUIOPASDFGH",
                "[AWS_ACCESS_KEY]",
            ),
            (
                "\u{0664}\u{0661}\u{0661}\u{0661}111111111111",
                "[PAYMENT_CARD]",
            ),
            // A key spelled in tag characters (invisible, read as ASCII by models).
            (
                &format!(
                    "ok {} end",
                    "AKIAQWERTYUIOPASDFGH"
                        .chars()
                        .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
                        .collect::<String>()
                ),
                "ok [AWS_ACCESS_KEY] end",
            ),
            // JSON escapes a client decodes: an escaped webhook URL and a \u-escaped key.
            (
                "hook https:\\/\\/hooks.slack.com\\/services\\/T0ABCDEFG\\/B0ABCDEFG\\/abcdefghijklmnopqrstuvwx end",
                "hook [SLACK_WEBHOOK] end",
            ),
            ("key \\u0041KIAQWERTYUIOPASDFGH.", "key [AWS_ACCESS_KEY]."),
            // Mail with a full-width at sign.
            ("to jane\u{FF20}example.com now", "to [EMAIL] now"),
            // Text around is kept as written.
            ("caf\u{e9} 4111111111111111 \u{2014} ok", "caf\u{e9} [PAYMENT_CARD] \u{2014} ok"),
        ] {
            assert_eq!(e.mask_text(cp, text).0, want, "{text:?}");
        }
    }
}
