//! Built-in named detectors for personal data and credentials.
//!
//! Each detector is a byte-oriented regex (ASCII classes, compiled with Unicode mode off so
//! large sets build quickly, also on wasm32), an optional check that removes look-alikes
//! (Luhn for cards, mod-97 for IBANs, an entropy floor for generic shapes, ...), and a hard
//! upper bound on the length of a match. The bound is what lets the streaming masker withhold
//! only a short tail, and what lets a keyword hit stand for a short window of text.
//!
//! Credential formats with a literal prefix or a context word name it as a **keyword**: every
//! match contains one of the detector's keywords (ignoring ASCII case). The scanner finds
//! keywords in one pass and runs a detector's regex only in the window around its keyword
//! hits, so text without any candidate costs one automaton pass however large the library.
//! Detectors without keywords (personal data) run in the shared regex pass.
//!
//! Bundles name detectors one by one, by tag (`credentials`, `pii`, `cloud`, ...), or `all`.

mod checks;
mod credentials;
mod pii;
mod pii_checks;

#[cfg(test)]
mod cases;
#[cfg(test)]
mod tests;

pub use checks::{luhn, shannon_entropy, valid_iban};

/// A named built-in detector.
#[derive(Debug, Clone, Copy)]
pub struct Detector {
    pub name: &'static str,
    /// What a masked value is replaced with (`[LABEL]`).
    pub label: &'static str,
    pub kind: DetectorKind,
    /// Who issues the credential or defines the format.
    pub provider: &'static str,
    /// Extra tags beyond the kind's (`credentials` or `pii`), e.g. `cloud`, `vcs`.
    pub tags: &'static [&'static str],
    pub description: &'static str,
    /// Lower-case ASCII literals, one of which every match contains (compared ignoring ASCII
    /// case). Empty: the regex is run over all text.
    pub keywords: &'static [&'static str],
    pub pattern: &'static str,
    /// Longest possible match, in bytes.
    pub max_len: usize,
    pub check: Check,
    /// How far a match can be trusted (the false-positive stance).
    pub stance: Stance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorKind {
    PersonalData,
    Credential,
}

impl DetectorKind {
    /// The tag every detector of this kind carries.
    pub fn tag(self) -> &'static str {
        match self {
            DetectorKind::PersonalData => "pii",
            DetectorKind::Credential => "credentials",
        }
    }
}

/// A check a regex match must pass to count.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    None,
    /// The longest run of value characters in the match (visible ASCII except quotes and
    /// `:=,;`) must carry at least this many bits of Shannon entropy per character.
    Entropy(f32),
    /// A format rule (checksum, registry, ...).
    Valid(fn(&[u8]) -> bool),
}

impl Check {
    /// The validity function a scanner applies, if any.
    pub fn validator(self) -> Option<fn(&[u8]) -> bool> {
        match self {
            Check::None => None,
            Check::Valid(f) => Some(f),
            Check::Entropy(bits) => Some(entropy_floor(bits)),
        }
    }
}

/// Entropy floors as plain functions (the scanner stores `fn` pointers). Floors are in
/// quarter bits so each one is a distinct monomorphic function.
fn entropy_floor(bits: f32) -> fn(&[u8]) -> bool {
    fn at<const Q: u32>(m: &[u8]) -> bool {
        checks::token_entropy(m) * 4.0 >= Q as f32
    }
    match (bits * 4.0).round() as u32 {
        0..=8 => at::<8>,
        9 => at::<9>,
        10 => at::<10>,
        11 => at::<11>,
        12 => at::<12>,
        13 => at::<13>,
        14 => at::<14>,
        15 => at::<15>,
        16 => at::<16>,
        17 => at::<17>,
        18 => at::<18>,
        19 => at::<19>,
        _ => at::<20>,
    }
}

/// The false-positive stance of a detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stance {
    /// A documented literal prefix plus a fixed shape (and a checksum where the format has
    /// one): a match is a credential of that provider. Safe to block on.
    Prefix,
    /// No prefix of its own; the value must stand next to a context word (the provider's
    /// name, a variable name) and pass an entropy floor. Rare false positives on prose that
    /// names the provider next to a random-looking word.
    Context,
    /// A generic shape (`password = ...`, a URL with a password): catches credentials of
    /// providers no detector knows, at the price of some false positives on examples.
    Generic,
    /// Personal data with a structural check (Luhn, mod-97, registry rules) where there is one.
    Structured,
}

impl Stance {
    pub fn as_str(self) -> &'static str {
        match self {
            Stance::Prefix => "prefix",
            Stance::Context => "context",
            Stance::Generic => "generic",
            Stance::Structured => "structured",
        }
    }
}

impl Detector {
    /// Every tag of this detector: its kind's tag first.
    pub fn all_tags(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.kind.tag()).chain(self.tags.iter().copied())
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.all_tags().any(|t| t == tag)
    }
}

/// Every built-in detector: personal data first, then credentials.
pub fn all() -> impl Iterator<Item = &'static Detector> {
    pii::PII.iter().chain(credentials::all())
}

/// Look up a built-in detector by name.
pub fn find(name: &str) -> Option<&'static Detector> {
    all().find(|d| d.name == name)
}

/// Every tag some detector carries, sorted.
pub fn tags() -> Vec<&'static str> {
    let mut t: Vec<&'static str> = all().flat_map(|d| d.all_tags()).collect();
    t.sort_unstable();
    t.dedup();
    t
}

/// What a bundle's `detectors:` entry names: one detector, every detector with a tag, or
/// `all`. `None` when the entry names nothing.
pub fn resolve(entry: &str) -> Option<Vec<&'static Detector>> {
    if entry == "all" {
        return Some(all().collect());
    }
    if let Some(d) = find(entry) {
        return Some(vec![d]);
    }
    let tagged: Vec<_> = all().filter(|d| d.has_tag(entry)).collect();
    (!tagged.is_empty()).then_some(tagged)
}

/// The detectors a list of entries names, each once, in library order.
pub fn resolve_all<'a>(entries: impl IntoIterator<Item = &'a String>) -> Vec<&'static Detector> {
    let mut picked: Vec<&'static Detector> = Vec::new();
    for e in entries {
        for d in resolve(e).unwrap_or_default() {
            if !picked.iter().any(|p| p.name == d.name) {
                picked.push(d);
            }
        }
    }
    let order = |d: &&Detector| all().position(|x| x.name == d.name);
    picked.sort_by_key(order);
    picked
}
