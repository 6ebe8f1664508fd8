//! Gatehouse's shared policy engine: the bundle model and its validation, compiled matchers,
//! request extraction for each inference API, detectors, identity and masking.
//!
//! It is target-neutral: the same code runs inside the Envoy wasm filter (wasm32-wasip1) and
//! natively in the ext_proc server and the CLI, so both halves enforce the very same rules.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod detectors;
pub mod diag;
pub mod engine;
pub mod extract;
pub mod identity;
pub mod json;
pub mod limits;
pub mod load;
pub mod masking;
pub mod matcher;
pub mod media;
pub mod normalize;
#[doc(hidden)]
pub mod profile;
pub mod record;
pub mod redact;
pub mod routes;
pub mod scan;
pub mod stream;
pub mod tokens;
pub mod wire;

pub use engine::{Decision, Engine, Verdict};
pub use identity::Caller;
