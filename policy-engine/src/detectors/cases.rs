//! Test cases for every detector: texts it must find (with the value the match must cover)
//! and look-alikes it must not.

mod credentials;
mod pii;

/// The cases of one detector.
pub(super) struct Case {
    pub detector: &'static str,
    /// (text, value): a match of the detector in `text` covers `value`.
    pub hits: &'static [(&'static str, &'static str)],
    /// Texts in which the detector finds nothing.
    pub misses: &'static [&'static str],
}

pub(super) fn all() -> impl Iterator<Item = &'static Case> {
    pii::CASES.iter().chain(credentials::CASES.iter())
}
