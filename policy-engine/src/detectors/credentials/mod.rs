//! Credentials: API keys, tokens, private keys and passwords, by provider.
//!
//! Every pattern here is written from the provider's documented token format (a literal
//! prefix and a fixed shape) or, where a format has no prefix, from the variable names it is
//! usually stored under (a context word next to the value). Stances:
//!
//! - `Prefix`: a literal prefix and a fixed shape; safe to block on.
//! - `Context`: a provider word (`heroku`, `DD_`, ...) next to a value of the right shape and
//!   entropy. The match covers the variable name as well as the value.
//! - `Generic`: passwords in URLs, `Authorization` headers, `password = ...` assignments.

mod ai;
mod checks;
mod cloud;
mod keys;
mod messaging;
mod payment;
mod saas;
mod source;

use super::Detector;

/// Every credential detector, family by family.
pub(super) fn all() -> impl Iterator<Item = &'static Detector> {
    [
        cloud::DETECTORS,
        source::DETECTORS,
        ai::DETECTORS,
        payment::DETECTORS,
        messaging::DETECTORS,
        saas::DETECTORS,
        keys::DETECTORS,
    ]
    .into_iter()
    .flatten()
}
