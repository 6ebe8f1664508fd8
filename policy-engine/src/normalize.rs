//! Text normalisation applied before prompt rules run: Unicode NFKC (so full-width and
//! compatibility forms match their plain spelling) and removal of invisible characters that
//! would otherwise split a blocked word. Case folding is a separate step, used only by rules
//! that ask for it.

use unicode_normalization::UnicodeNormalization;

/// Characters that render as nothing and are dropped before matching.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' // soft hyphen
            | '\u{180E}' // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM/RLM
            | '\u{202A}'..='\u{202E}' // bidi embedding controls
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{FEFF}' // zero-width no-break space
    )
}

/// NFKC-normalise `s` and drop invisible characters.
pub fn normalize(s: &str) -> String {
    // Fast path: pure ASCII is already NFKC and has no invisible characters.
    if s.is_ascii() {
        return s.to_owned();
    }
    s.chars().filter(|c| !is_invisible(*c)).nfkc().collect()
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
}
