//! Routes, extraction and the whole decision: never panic on any method, path or body.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let e = common::engine();
    let (head, body) = data.split_at(data.iter().position(|b| *b == b'\n').unwrap_or(0));
    let head = String::from_utf8_lossy(head);
    let (method, path) = head.split_once(' ').unwrap_or(("POST", &head));
    let _ = e.route(method, path);
    for group in ["eng", "pilot", "nobody"] {
        let c = common::caller(group);
        let _ = e.decide(&c, method, path, body);
        for p in [
            "/v1/chat/completions",
            "/v1/messages",
            "/v1/completions",
            "/v1/responses",
        ] {
            let _ = e.decide(&c, "POST", p, body);
        }
    }
});
