//! Bundle loading and validation: never panic on any text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = policy_engine::Engine::from_source(&s);
});
