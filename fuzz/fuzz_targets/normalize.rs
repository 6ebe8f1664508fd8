//! Normalisation and the joined prompt text: never panic; hits map to a segment.
#![no_main]
use libfuzzer_sys::fuzz_target;
use policy_engine::extract::Segment;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let n = policy_engine::normalize::normalize_variants(&s);
    let _ = policy_engine::normalize::fold(&n.text);
    let segs: Vec<Segment> = s
        .split('|')
        .map(|t| Segment {
            path: 0,
            text: t.to_owned(),
        })
        .collect();
    if let Ok(p) = policy_engine::scan::PromptText::build(&segs, true) {
        for off in [0, p.text.len() / 2, p.text.len()] {
            assert!(p.segment_at(off, false) < segs.len().max(1));
        }
    }
});
