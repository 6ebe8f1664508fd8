//! Strict JSON: never panics; whatever it accepts, serde_json reads the same way.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = policy_engine::json::parse_strict(data) {
        let plain: serde_json::Value = serde_json::from_slice(data).expect("accepted by serde");
        assert_eq!(v, plain);
    }
});
