//! Properties over arbitrary input: no parser or matcher of the engine panics, whatever bytes,
//! characters or JSON it is given, and masking leaves nothing it should have caught.

use policy_engine::extract::{self, Api, Options};
use policy_engine::normalize::{normalize, normalize_variants};
use policy_engine::routes::Routes;
use policy_engine::scan::widen;
use policy_engine::tokens::Encoding;
use policy_engine::{Caller, Engine};
use proptest::prelude::*;
use serde_json::Value;
use std::sync::OnceLock;

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../policies/default.yaml"
        ))
        .unwrap();
        Engine::from_source(&src).unwrap()
    })
}

fn caller(groups: &[&str]) -> Caller {
    Caller {
        issuer: "i".into(),
        principal: "p".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        claims: Default::default(),
        expires_at: u64::MAX,
    }
}

/// Arbitrary JSON with strings drawn from all of Unicode.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String(
            "data:text/plain;base64,QUtJQVFXRVJUWVVJT1BBU0RGR0g=".into()
        )),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn normalisation_never_panics_and_keeps_plain_ascii(s in "\\PC{0,64}", t in "[ -~]{0,64}") {
        let n = normalize_variants(&s);
        prop_assert!(n.text.len() <= s.len() * 18 + 4);
        prop_assert_eq!(normalize(&t), t);
    }

    #[test]
    fn strict_json_agrees_with_serde_when_it_accepts(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(v) = policy_engine::json::parse_strict(&bytes) {
            let plain: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(v, plain);
        }
    }

    #[test]
    fn extraction_never_panics_and_sees_every_string(v in json_value()) {
        let opts = Options { opaque_media: &[], allow_remote_content: true, encoding: Encoding::O200kBase };
        let body = serde_json::json!({"model": "m", "x": v.clone()});
        for api in [Api::ChatCompletions, Api::Responses, Api::AnthropicMessages, Api::Generic, Api::Completions] {
            if let Ok(x) = extract::extract(api, &body, None, &opts) {
                // Every plain string of the body is among the segments.
                let mut stack = vec![&v];
                while let Some(n) = stack.pop() {
                    match n {
                        Value::String(s) if !s.is_empty() && !s.starts_with("data:") => {
                            prop_assert!(x.segments.iter().any(|g| &g.text == s), "missing {:?}", s);
                        }
                        Value::Array(a) => stack.extend(a),
                        Value::Object(o) => stack.extend(o.values()),
                        _ => {}
                    }
                }
            }
        }
    }

    #[test]
    fn decisions_never_panic(body in prop::collection::vec(any::<u8>(), 0..300),
                             text in "\\PC{0,80}", path in "[/a-zA-Z%;.?=&]{0,30}") {
        let e = engine();
        for g in [&["eng"][..], &["pilot"][..], &[][..]] {
            let _ = e.decide(&caller(g), "POST", &path, &body);
            let chat = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
            let _ = e.decide(&caller(g), "POST", "/v1/chat/completions", chat.to_string().as_bytes());
        }
        let _ = Routes::builtin().resolve("POST", &path);
    }

    #[test]
    fn masking_never_panics_and_leaves_no_match(text in "\\PC{0,120}", email in "[a-z]{1,8}@[a-z]{1,8}\\.com") {
        let e = engine();
        let cp = e.policy("everyone").unwrap();
        for t in [text.clone(), format!("{text}{email}"), format!("{email}\u{0301}{text}")] {
            let (out, _) = e.mask_text(cp, &t);
            prop_assert!(e.mask_spans(cp, &out).is_empty(), "{:?} -> {:?}", t, out);
            let _ = e.redact_for_record(cp, &t);
        }
    }

    #[test]
    fn reader_view_maps_back_to_whole_characters(s in "\\PC{0,60}", a in 0usize..200, b in 0usize..200) {
        let escaped = format!("{s}\\u00e9\\/\\ud83d\\ude00\\u12{s}\\");
        for (src, m) in [
            (&s, policy_engine::normalize::Mapped::new(&s)),
            (&escaped, policy_engine::normalize::Mapped::unescaped(&escaped)),
        ] {
            let (lo, hi) = (a.min(b).min(m.text.len()), a.max(b).min(m.text.len()));
            let (x, y) = m.original(lo, hi, src.len());
            prop_assert!(x <= y && y <= src.len());
            prop_assert!(src.is_char_boundary(x) && src.is_char_boundary(y));
        }
        let m = policy_engine::normalize::Mapped::new(&s);
        // Plain ASCII is its own view.
        if policy_engine::normalize::plain_ascii(&s) {
            prop_assert_eq!(&m.text, &s);
        }
    }

    #[test]
    fn spans_always_widen_to_boundaries(s in "\\PC{0,20}", a in 0usize..80, b in 0usize..80) {
        let (x, y) = widen(&s, a, b);
        prop_assert!(x <= y && y <= s.len());
        prop_assert!(s.is_char_boundary(x) && s.is_char_boundary(y));
    }

    #[test]
    fn bundle_loading_never_panics(src in "\\PC{0,200}") {
        let _ = Engine::from_source(&src);
        let _ = Engine::from_source(&format!("apiVersion: gatehouse.dev/v1\nkind: PolicyBundle\nmetadata: {{name: x}}\n{src}"));
    }
}
