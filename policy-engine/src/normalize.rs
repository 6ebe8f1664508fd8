//! Text normalisation applied before prompt rules run, so that text a person reads as a blocked
//! word is matched as that word whatever code points spell it.
//!
//! The steps, in order:
//! 1. compatibility decomposition (NFKD): full-width, ligature and styled letters become plain;
//! 2. every combining mark (Mn, Me) is removed, so accents, variation selectors and stacked
//!    diacritics cannot split or disguise a word;
//! 3. every invisible code point is removed: Default_Ignorable_Code_Point, format (Cf),
//!    control (Cc, except tab and line breaks), private-use (Co), surrogate and unassigned (Cn)
//!    code points: zero-width characters, bidi controls and isolates, tag characters, Hangul
//!    fillers. [`Normalized::spaced`] keeps a second reading where each of them is a space,
//!    because an invisible character between two words must not glue them together either;
//! 4. recomposition (NFC);
//! 5. digits of every script become ASCII digits, other white space becomes a space, and every
//!    other non-ASCII character that Unicode TS #39 says is confusable with ASCII is replaced by
//!    that ASCII character (Cyrillic `а` reads as `a`).
//!
//! ASCII letters are never changed (ASCII look-alikes such as `0`/`O` are out of scope: they
//! would break every digit-based detector). Case folding is a separate step, used only by
//! rules that ask for it.

use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Text as prompt rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// Invisible characters removed.
    pub text: String,
    /// Invisible characters read as spaces; `None` when the input had none.
    pub spaced: Option<String>,
    /// Unicode tag characters (U+E0020-E007E) read as the ASCII they mirror ("ASCII
    /// smuggling": some models read them); `None` when the input had none.
    pub tags: Option<String>,
}

/// The ASCII character a tag character mirrors.
fn tag_ascii(c: char) -> Option<char> {
    let cp = c as u32;
    (0xE0020..=0xE007E)
        .contains(&cp)
        .then(|| char::from_u32(cp - 0xE0000))
        .flatten()
}

/// Letters that neither NFKD nor the TS #39 table turn into ASCII, mapped before both:
/// parenthesised, negative circled and squared letters, regional indicators, small capitals,
/// and a few hooked or barred letters.
fn premap(c: char) -> char {
    let cp = c as u32;
    let from = |base: u32, first: char| char::from_u32(first as u32 + (cp - base)).unwrap_or(c);
    match cp {
        0x249C..=0x24B5 => from(0x249C, 'a'),
        0x1F150..=0x1F169 => from(0x1F150, 'A'),
        0x1F170..=0x1F189 => from(0x1F170, 'A'),
        0x1F1E6..=0x1F1FF => from(0x1F1E6, 'A'),
        _ => match c {
            '\u{1D00}' => 'a',
            '\u{0299}' => 'b',
            '\u{1D04}' => 'c',
            '\u{1D05}' => 'd',
            '\u{1D07}' => 'e',
            '\u{A730}' => 'f',
            '\u{0262}' => 'g',
            '\u{029C}' => 'h',
            '\u{026A}' => 'i',
            '\u{1D0A}' => 'j',
            '\u{1D0B}' | '\u{0199}' | '\u{0138}' | '\u{A741}' => 'k',
            '\u{029F}' | '\u{1D0C}' | '\u{019A}' => 'l',
            '\u{1D0D}' => 'm',
            '\u{0274}' => 'n',
            '\u{1D0F}' => 'o',
            '\u{1D18}' => 'p',
            '\u{0280}' => 'r',
            '\u{A731}' => 's',
            '\u{1D1B}' => 't',
            '\u{1D1C}' => 'u',
            '\u{1D20}' => 'v',
            '\u{1D21}' => 'w',
            '\u{028F}' => 'y',
            '\u{1D22}' => 'z',
            '\u{0247}' | '\u{01DD}' | '\u{0454}' => 'e',
            '\u{0442}' | '\u{03C4}' => 't',
            '\u{0282}' => 's',
            '\u{027E}' => 'r',
            '\u{03F2}' | '\u{03C2}' => 'c',
            '\u{043A}' | '\u{03BA}' => 'k',
            _ => c,
        },
    }
}

/// What one code point becomes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Keep,
    /// Combining mark: removed in both readings.
    Mark,
    /// Invisible: removed, or a space in the second reading.
    Invisible,
}

/// Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt) that are not already Cf,
/// Mn, Cn or Co: Hangul fillers, Khmer inherent vowels and the like render as nothing.
const IGNORABLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

/// The zero of every run of decimal digits (general category Nd, Unicode 15).
const DIGIT_ZEROS: &[u32] = &[
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
    // Unicode 15: Kawi, Nag Mundari.
    0x11F50, 0x1E4F0,
];

fn classify(c: char) -> Class {
    if c.is_ascii() {
        return match c {
            '\t' | '\n' | '\r' => Class::Keep,
            c if c.is_ascii_control() => Class::Invisible,
            _ => Class::Keep,
        };
    }
    let cp = c as u32;
    if IGNORABLE.iter().any(|(lo, hi)| (*lo..=*hi).contains(&cp)) {
        // Variation selectors are marks in spirit: they never separate words.
        return if (0xFE00..=0xFE0F).contains(&cp) || (0x180B..=0x180D).contains(&cp) {
            Class::Mark
        } else {
            Class::Invisible
        };
    }
    match c.general_category() {
        GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark => Class::Mark,
        GeneralCategory::Format
        | GeneralCategory::Control
        | GeneralCategory::PrivateUse
        | GeneralCategory::Surrogate
        | GeneralCategory::Unassigned => Class::Invisible,
        _ => Class::Keep,
    }
}

/// A non-ASCII decimal digit's ASCII form.
fn ascii_digit(c: char) -> Option<char> {
    if c.general_category() != GeneralCategory::DecimalNumber {
        return None;
    }
    let cp = c as u32;
    let zero = DIGIT_ZEROS
        .iter()
        .rev()
        .find(|z| **z <= cp && cp < **z + 10)?;
    char::from_digit(cp - zero, 10)
}

/// TS #39 skeletons of the printable ASCII characters, to pick the ASCII character a
/// confusable stands for (several ASCII characters can share one skeleton: `I`, `l`, `1`).
fn ascii_skeletons() -> &'static [(char, String)] {
    static TABLE: OnceLock<Vec<(char, String)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0x21u8..0x7f)
            .map(|b| {
                let c = b as char;
                let s: String =
                    unicode_security::confusable_detection::skeleton(&c.to_string()).collect();
                (c, s)
            })
            .collect()
    })
}

/// The ASCII text a non-ASCII character is confusable with, if any.
fn confusable_ascii(c: char, out: &mut String) -> bool {
    let mut buf = [0u8; 4];
    let skel: String =
        unicode_security::confusable_detection::skeleton(c.encode_utf8(&mut buf)).collect();
    // Some skeletons are themselves letters the table below knows (к, κ -> ĸ -> k).
    let skel: String = if skel.is_ascii() {
        skel
    } else {
        skel.chars().map(premap).collect()
    };
    if skel.is_empty() || !skel.is_ascii() {
        return false;
    }
    let candidates: Vec<char> = ascii_skeletons()
        .iter()
        .filter(|(_, s)| *s == skel)
        .map(|(a, _)| *a)
        .collect();
    // Prefer the candidate of the same kind: an uppercase look-alike stands for an uppercase
    // letter, a lowercase one for a lowercase letter.
    let pick = if c.is_uppercase() {
        candidates.iter().find(|a| a.is_ascii_uppercase())
    } else if c.is_lowercase() {
        candidates.iter().find(|a| a.is_ascii_lowercase())
    } else {
        None
    }
    .or_else(|| candidates.iter().find(|a| a.is_ascii_alphabetic()))
    .or(candidates.first());
    match pick {
        Some(a) => out.push(*a),
        None => out.push_str(&skel),
    }
    true
}

/// Step 5 for one character of recomposed text.
fn push_mapped(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c);
    } else if c.is_whitespace() {
        out.push(' ');
    } else if let Some(d) = ascii_digit(c) {
        out.push(d);
    } else if !confusable_ascii(c, out) {
        out.push(c);
    }
}

/// Printable ASCII, tab and line breaks only: text normalisation leaves unchanged.
pub fn plain_ascii(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r'))
}

/// Normalise `s`, with every reading of invisible characters.
pub fn normalize_variants(s: &str) -> Normalized {
    normalize_bounded(s, usize::MAX).unwrap_or_else(|| Normalized {
        text: String::new(),
        spaced: None,
        tags: None,
    })
}

/// Normalise `s`, giving up (`None`) as soon as a reading grows past `limit` bytes: some code
/// points expand many times over, and the work must stop at the budget, not after it.
pub fn normalize_bounded(s: &str, limit: usize) -> Option<Normalized> {
    if plain_ascii(s) {
        return (s.len() <= limit).then(|| Normalized {
            text: s.to_owned(),
            spaced: None,
            tags: None,
        });
    }
    let mut removed = String::with_capacity(s.len());
    let mut spaced = String::with_capacity(s.len());
    let mut tagged = String::new();
    let mut any_invisible = false;
    let mut any_tag = false;
    for c in s.chars().map(premap).nfkd() {
        if let Some(a) = tag_ascii(c) {
            if !any_tag {
                any_tag = true;
                // Invisible characters before the first tag read as spaces here too.
                tagged.push_str(&spaced);
            }
            tagged.push(a);
            any_invisible = true;
            spaced.push(' ');
            continue;
        }
        match classify(c) {
            Class::Keep => {
                removed.push(c);
                spaced.push(c);
                if any_tag {
                    tagged.push(c);
                }
            }
            Class::Mark => {}
            Class::Invisible => {
                any_invisible = true;
                spaced.push(' ');
                if any_tag {
                    tagged.push(' ');
                }
            }
        }
        if spaced.len() > limit {
            return None;
        }
    }
    let finish = |t: &str| {
        let mut out = String::with_capacity(t.len());
        for c in t.nfc() {
            push_mapped(c, &mut out);
        }
        out
    };
    Some(Normalized {
        text: finish(&removed),
        spaced: any_invisible.then(|| finish(&spaced)),
        tags: any_tag.then(|| finish(&tagged)),
    })
}

/// Text as a reader sees it, with the span of the original text each byte came from: what
/// the response masker scans, so that a value written in full-width forms, in another
/// script's digits or with invisible characters inside is found, and the characters the
/// client would have seen are the ones masked.
///
/// Each character is mapped on its own: compatibility decomposition, marks and invisible
/// characters (tag characters included) removed, digits of every script and TS #39
/// confusables made ASCII. No recomposition: the detectors are ASCII, and a mark is removed
/// either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub text: String,
    /// Per byte of `text`: (start, end) of the original character it came from.
    origin: Vec<(u32, u32)>,
}

impl Mapped {
    pub fn new(s: &str) -> Mapped {
        Mapped::reading(s, false)
    }

    /// Whether `s` holds Unicode tag characters (invisible, but read as ASCII by some
    /// models and agents).
    pub fn has_tags(s: &str) -> bool {
        s.chars().any(|c| tag_ascii(c).is_some())
    }

    /// The view with tag characters read as the ASCII they mirror, instead of removed.
    pub fn with_tags(s: &str) -> Mapped {
        Mapped::reading(s, true)
    }

    fn reading(s: &str, tags_as_ascii: bool) -> Mapped {
        let mut text = String::with_capacity(s.len());
        let mut origin = Vec::with_capacity(s.len());
        for (o, c) in s.char_indices() {
            let before = text.len();
            read_char(c, tags_as_ascii, &mut text);
            let span = (o as u32, (o + c.len_utf8()) as u32);
            origin.resize(origin.len() + (text.len() - before), span);
        }
        Mapped { text, origin }
    }

    /// The view with JSON-style escapes decoded (`\/`, `\"`, `\n`, `\uXXXX` and surrogate
    /// pairs): text a model writes escaped is read, by a client's JSON parser or a person,
    /// as what the escapes spell. Each decoded character maps back to its whole escape.
    pub fn unescaped(s: &str) -> Mapped {
        let b = s.as_bytes();
        let mut text = String::with_capacity(s.len());
        let mut origin = Vec::with_capacity(s.len());
        let hex4 = |at: usize| -> Option<u32> {
            let h = s.get(at..at + 4)?;
            h.bytes()
                .all(|x| x.is_ascii_hexdigit())
                .then(|| u32::from_str_radix(h, 16).ok())
                .flatten()
        };
        let mut i = 0;
        while i < b.len() {
            let (c, len) = match (b[i], b.get(i + 1)) {
                (b'\\', Some(b'/' | b'"' | b'\\' | b'\'')) => (char::from(b[i + 1]), 2),
                (b'\\', Some(b'n')) => ('\n', 2),
                (b'\\', Some(b't')) => ('\t', 2),
                (b'\\', Some(b'r')) => ('\r', 2),
                (b'\\', Some(b'u')) => match hex4(i + 2) {
                    Some(hi @ 0xD800..=0xDBFF) => match (s.get(i + 6..i + 8), hex4(i + 8)) {
                        (Some("\\u"), Some(lo @ 0xDC00..=0xDFFF)) => (
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                .unwrap_or('\u{FFFD}'),
                            12,
                        ),
                        _ => ('\u{FFFD}', 6),
                    },
                    Some(cp) => (char::from_u32(cp).unwrap_or('\u{FFFD}'), 6),
                    None => ('\\', 1),
                },
                _ => {
                    let c = s[i..].chars().next().unwrap_or('\u{FFFD}');
                    (c, c.len_utf8().max(1))
                }
            };
            let before = text.len();
            read_char(c, false, &mut text);
            let end = (i + len).min(b.len());
            origin.resize(origin.len() + (text.len() - before), (i as u32, end as u32));
            i = end;
        }
        Mapped { text, origin }
    }

    /// Where the original character that produced byte `at` of `text` starts (`len` maps
    /// to `original_len`).
    pub fn start_of(&self, at: usize, original_len: usize) -> usize {
        self.origin
            .get(at)
            .map_or(original_len, |(s, _)| *s as usize)
    }

    /// The original span of `text[start..end]` (whole characters).
    pub fn original(&self, start: usize, end: usize, original_len: usize) -> (usize, usize) {
        let s = self.start_of(start, original_len);
        let e = match end.checked_sub(1).and_then(|i| self.origin.get(i)) {
            Some((_, e)) => *e as usize,
            None => s,
        };
        (s, e.max(s))
    }
}

/// One character as a reader sees it (see [`Mapped`]).
fn read_char(c: char, tags_as_ascii: bool, text: &mut String) {
    if c.is_ascii() {
        if classify(c) == Class::Keep {
            text.push(c);
        }
        return;
    }
    for d in std::iter::once(premap(c)).nfkd() {
        match tag_ascii(d) {
            Some(a) if tags_as_ascii => text.push(a),
            Some(_) => {}
            None if classify(d) == Class::Keep => push_mapped(d, text),
            None => {}
        }
    }
}

/// Normalise `s` (invisible characters removed).
pub fn normalize(s: &str) -> String {
    if plain_ascii(s) {
        return s.to_owned();
    }
    normalize_variants(s).text
}

/// Case-fold already normalised text.
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fullwidth_and_zero_width_are_normalised() {
        assert_eq!(normalize("ｐａｓｓｗｏｒｄ"), "password");
        assert_eq!(normalize("pass\u{200B}word"), "password");
        assert_eq!(normalize("se\u{00AD}cret"), "secret");
        assert_eq!(fold("PassWORD"), "password");
        assert_eq!(fold("ÆSIR"), "æsir");
    }

    #[test]
    fn every_invisible_class_is_removed() {
        // variation selector, bidi isolate, tag characters, combining marks, Hangul filler,
        // word joiner, an ASCII control, a private-use character.
        for s in [
            "swo\u{FE0F}rdfish",
            "swo\u{2066}rd\u{2069}fish",
            "swo\u{E0072}\u{E0064}rdfish",
            "s\u{0301}w\u{0336}o\u{20DD}rdfish",
            "swo\u{3164}rdfish",
            "swo\u{2060}rdfish",
            "swo\u{0007}rdfish",
            "swo\u{E000}rdfish",
        ] {
            assert_eq!(normalize(s), "swordfish", "{s:?}");
        }
    }

    #[test]
    fn invisible_characters_also_read_as_spaces() {
        let n = normalize_variants("the\u{200B}secret");
        assert_eq!(n.text, "thesecret");
        assert_eq!(n.spaced.as_deref(), Some("the secret"));
        assert_eq!(normalize_variants("plain").spaced, None);
    }

    #[test]
    fn confusables_digits_and_spaces_become_ascii() {
        // Cyrillic а, е, о, р, с; Greek Ο; mathematical bold letters; Arabic-Indic digits.
        assert_eq!(normalize("\u{0430}pple"), "apple");
        assert_eq!(normalize("s\u{0435}cr\u{0435}t"), "secret");
        assert_eq!(normalize("\u{0440}\u{0430}ssw\u{043E}rd"), "password");
        assert_eq!(normalize("\u{039F}K"), "OK");
        assert_eq!(normalize("\u{1D42C}\u{1D41E}\u{1D41C}"), "sec");
        assert_eq!(normalize("\u{0664}\u{0661}\u{0661}"), "411");
        assert_eq!(normalize("a\u{00A0}b\u{3000}c"), "a b c");
        // Accented letters lose their accents; other scripts stay as they are.
        assert_eq!(normalize("café"), "cafe");
        assert_eq!(normalize("日本語"), "日本語");
        assert_eq!(normalize("한국어"), "한국어");
    }

    #[test]
    fn tag_characters_are_also_read_as_ascii() {
        let hidden: String = "kestrel"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect();
        let n = normalize_variants(&format!("project {hidden}"));
        assert_eq!(n.text, "project ");
        assert_eq!(n.tags.as_deref(), Some("project kestrel"));
        let n = normalize_variants(&format!("project\u{200B}{hidden}"));
        assert_eq!(n.tags.as_deref(), Some("project kestrel"));
    }

    #[test]
    fn letters_outside_nfkd_and_ts39() {
        assert_eq!(
            normalize("pro\u{0458}ect \u{043A}estrel"),
            "project kestrel"
        );
        assert_eq!(normalize("\u{03BA}\u{0454}\u{0455}\u{0442}"), "kest");
        assert_eq!(normalize("\u{1F13A}\u{1F174}"), "KE"); // squared K, negative squared E
        assert_eq!(normalize("\u{1F1F0}\u{1F1EA}"), "KE"); // regional indicators
        assert_eq!(normalize("\u{1D0B}\u{1D07}\u{A731}"), "kes"); // small capitals
        assert_eq!(normalize("\u{24A6}\u{24A0}"), "ke"); // parenthesised
        assert_eq!(normalize("\u{0199}\u{0247}"), "ke");
    }

    #[test]
    fn expansion_stops_at_the_limit() {
        let big = "\u{FDFA}".repeat(1000);
        assert!(normalize_bounded(&big, 4096).is_none());
        assert!(normalize_bounded("\u{FDFA}", 4096).is_some());
    }

    #[test]
    fn uppercase_lookalike_stays_uppercase() {
        // Cyrillic І (U+0406) shares the skeleton of `l`, `I` and `1`.
        assert_eq!(normalize("SECRET_\u{0406}D"), "SECRET_ID");
        assert_eq!(normalize("\u{0399}D"), "ID");
    }
}
