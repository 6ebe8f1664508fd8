//! Strict JSON parsing for request bodies.
//!
//! `serde_json::Value` keeps the last of two equal keys, and servers disagree on which one
//! wins (first, last, or a case-insensitive match in Go's `encoding/json`). A body whose keys
//! could be read two ways is refused, so the gateway never decides on a different reading
//! than the one the model server acts on: duplicate keys, and keys of one object that differ
//! only in letter case, are errors. Nesting is bounded by serde_json's recursion limit.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::collections::HashSet;
use std::fmt;

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub String);

/// Parse `bytes` as one JSON value, refusing duplicate and case-colliding keys.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = StrictValue
        .deserialize(&mut de)
        .map_err(|e| JsonError(e.to_string()))?;
    de.end().map_err(|e| JsonError(e.to_string()))?;
    Ok(v)
}

/// Decode JSON string escapes found in text that is not (or not only) parsed as JSON: a
/// model, a lenient parser or a client may read `\u0041` as `A` where the gateway would see
/// six characters. `all`: every escape (`\n`, `\"`, ...); otherwise only `\uXXXX` escapes of
/// characters that cannot change the text's structure (not quotes, backslashes or
/// controls), so the result stays valid wherever the input was. `None` when nothing changes.
pub fn decode_escapes(s: &str, all: bool) -> Option<String> {
    if !s.contains('\\') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    let mut changed = false;
    let hex4 = |at: usize| -> Option<u32> {
        let h = s.get(at..at + 4)?;
        h.bytes()
            .all(|b| b.is_ascii_hexdigit())
            .then(|| u32::from_str_radix(h, 16).ok())
            .flatten()
    };
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&(_, e)) = chars.peek() else {
            out.push(c);
            break;
        };
        let simple = match e {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            '/' => Some('/'),
            _ => None,
        };
        if let (true, Some(d)) = (all, simple) {
            chars.next();
            out.push(d);
            changed = true;
            continue;
        }
        if e == 'u' {
            if let Some(hi) = hex4(i + 2) {
                // A surrogate pair spells one character.
                let (cp, len) = if (0xD800..0xDC00).contains(&hi) {
                    match (s.get(i + 6..i + 8), hex4(i + 8)) {
                        (Some("\\u"), Some(lo)) if (0xDC00..0xE000).contains(&lo) => {
                            (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12)
                        }
                        _ => (0xFFFD, 6),
                    }
                } else {
                    (hi, 6)
                };
                let d = char::from_u32(cp).unwrap_or('\u{FFFD}');
                if all || !(d == '"' || d == '\\' || d.is_control()) {
                    out.push(d);
                    changed = true;
                    for _ in 1..len {
                        chars.next();
                    }
                    continue;
                }
            }
        }
        out.push(c);
    }
    changed.then_some(out)
}

/// Objects up to this many keys check case collisions by comparison, larger ones by a set.
const SMALL_OBJECT: usize = 16;

fn fold_key(k: &str) -> String {
    if k.is_ascii() {
        k.to_ascii_lowercase()
    } else {
        k.to_lowercase()
    }
}

/// Whether two keys are equal under case folding.
fn same_folded(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        // Case-folded keys, kept only once an object is large: small objects (nearly all of
        // them) compare against the keys already read, without allocating.
        let mut folded: Option<HashSet<String>> = None;
        while let Some(k) = map.next_key::<String>()? {
            // The key itself is never echoed: it may be the value a rule would block.
            if out.contains_key(&k) {
                return Err(de::Error::custom("duplicate key in an object"));
            }
            if (!k.is_ascii() && k.to_lowercase().is_ascii())
                || k.contains(['\u{017F}', '\u{212A}'])
            {
                // U+212A KELVIN SIGN folds to `k`, U+017F LONG S to `s`: case-insensitive
                // decoders (Go's encoding/json) read such a key as an ASCII field name.
                return Err(de::Error::custom(
                    "an object key folds to a different ASCII key under Unicode case folding",
                ));
            }
            let clash = match folded.as_mut() {
                None if out.len() < SMALL_OBJECT => out.keys().any(|x| same_folded(x, &k)),
                None => {
                    let mut set: HashSet<String> = out.keys().map(|x| fold_key(x)).collect();
                    let clash = !set.insert(fold_key(&k));
                    folded = Some(set);
                    clash
                }
                Some(set) => !set.insert(fold_key(&k)),
            };
            if clash {
                return Err(de::Error::custom(
                    "two keys of one object differ only in letter case",
                ));
            }
            let v = map.next_value_seed(StrictValue)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_and_case_colliding_keys_are_refused() {
        let e = parse_strict(br#"{"a": 1, "b": {"x": 1, "x": 2}}"#).unwrap_err();
        assert!(e.0.contains("duplicate key"), "{e}");
        assert!(!e.0.contains("`x`"), "keys are not echoed: {e}");
        let e = parse_strict("{\"max_to\u{212A}ens\": 1}".as_bytes()).unwrap_err();
        assert!(e.0.contains("folds"), "{e}");
        let e = parse_strict(br#"{"messages": [], "Messages": []}"#).unwrap_err();
        assert!(e.0.contains("letter case"), "{e}");
        // The same key in two different objects is fine.
        assert!(parse_strict(br#"[{"a": 1}, {"a": 2}]"#).is_ok());
        // Large objects (checked by a set) and non-ASCII keys collide the same way.
        let mut big: Vec<String> = (0..40).map(|i| format!("\"key{i}\": {i}")).collect();
        assert!(parse_strict(format!("{{{}}}", big.join(",")).as_bytes()).is_ok());
        big.push("\"KEY7\": 0".into());
        let e = parse_strict(format!("{{{}}}", big.join(",")).as_bytes()).unwrap_err();
        assert!(e.0.contains("letter case"), "{e}");
        let e =
            parse_strict("{\"\u{c9}t\u{e9}\": 1, \"\u{e9}T\u{c9}\": 2}".as_bytes()).unwrap_err();
        assert!(e.0.contains("letter case"), "{e}");
    }

    #[test]
    fn escapes_are_decoded_for_a_second_reading() {
        assert_eq!(decode_escapes(r"\u0041KIA", false).as_deref(), Some("AKIA"));
        assert_eq!(
            decode_escapes(r"a\u0022b\nc", false),
            None,
            "structure kept"
        );
        assert_eq!(
            decode_escapes(r"a\u0022b\nc", true).as_deref(),
            Some("a\"b\nc")
        );
        assert_eq!(
            decode_escapes(r"\ud83d\ude00", false).as_deref(),
            Some("\u{1F600}")
        );
        for s in [r"\", r"\u", r"\u12", r"\ud800", r"\ud800\u0041", "plain"] {
            let _ = decode_escapes(s, true);
            let _ = decode_escapes(s, false);
        }
    }

    #[test]
    fn values_match_serde_json() {
        let src = br#"{"s": "\u0041b", "n": -3, "f": 1.5, "t": true, "z": null, "a": [1, "x"]}"#;
        let want: Value = serde_json::from_slice(src).unwrap();
        assert_eq!(parse_strict(src).unwrap(), want);
        assert!(parse_strict(b"{} trailing").is_err());
        assert!(parse_strict(br#""\ud800""#).is_err(), "lone surrogate");
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert!(parse_strict(deep.as_bytes()).is_err(), "recursion limit");
    }
}
