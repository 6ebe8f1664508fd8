//! Normalisation, the reader's view and the joined prompt text: never panic; hits map to a
//! segment; view bytes map to whole original characters.
#![no_main]
use libfuzzer_sys::fuzz_target;
use policy_engine::extract::Segment;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let n = policy_engine::normalize::normalize_variants(&s);
    let _ = policy_engine::normalize::fold(&n.text);
    // The reader's views map every byte back to a whole original character, in order.
    let unescaped = policy_engine::normalize::Mapped::unescaped(&s);
    for at in 0..=unescaped.text.len() {
        let (a, b) = unescaped.original(at, unescaped.text.len(), s.len());
        assert!(a <= b && b <= s.len() && s.is_char_boundary(a) && s.is_char_boundary(b));
    }
    let m = policy_engine::normalize::Mapped::new(&s);
    let mut last = 0;
    for at in 0..=m.text.len() {
        let (a, b) = m.original(at, m.text.len(), s.len());
        assert!(a <= b && b <= s.len() && s.is_char_boundary(a) && s.is_char_boundary(b));
        let start = m.start_of(at, s.len());
        assert!(start >= last && s.is_char_boundary(start));
        last = start;
    }
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
