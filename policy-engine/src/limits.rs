//! The completion limit: how many output tokens a request may make the model produce.
//!
//! Every field the upstream reads as an output bound counts (a chat request may carry both
//! `max_tokens` and `max_completion_tokens`; servers differ in which wins), each must be a
//! whole number (`8.0` or `"8"` is refused, not ignored), and the number of choices (`n`,
//! `best_of`) multiplies what is produced, so it shares the limit.

use crate::bundle::OverLimit;
use crate::extract::{Extracted, LimitField};
use serde_json::Value;

fn name(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// Check `x` against a completion limit of `max` tokens. Fields to rewrite (JSON pointer and
/// value) are added to `clamp`; a refusal names the field and says why.
pub fn completion(
    x: &Extracted,
    max: u64,
    over: OverLimit,
    clamp: &mut Vec<(String, u64)>,
) -> Result<(), (String, String)> {
    let fields = x.api.limit_fields();
    let Some(primary) = fields.first() else {
        return Ok(());
    };
    let whole = |f: &LimitField, least: u64| match f.value {
        Some(v) if v >= least => Ok(v),
        _ => Err((
            name(&f.pointer),
            format!(
                "`{}` must be a whole number of at least {least}",
                name(&f.pointer)
            ),
        )),
    };
    let mut choices = 1u64;
    for c in &x.choices {
        choices = choices.max(whole(c, 1)?);
    }
    let per_choice = max / choices;
    if per_choice == 0 {
        return Err((
            name(x.choices.first().map_or("n", |c| c.pointer.as_str())),
            format!("{choices} choices cannot fit in the completion limit of {max} tokens"),
        ));
    }
    if x.limits.is_empty() {
        if fields.len() > 1 && x.api == crate::extract::Api::Generic {
            let names: Vec<String> = fields.iter().map(|f| name(f)).collect();
            return Err((
                name(primary),
                format!(
                    "this route needs an explicit output limit (one of {})",
                    names.join(", ")
                ),
            ));
        }
        clamp.push(((*primary).to_owned(), per_choice));
        return Ok(());
    }
    for f in &x.limits {
        let v = whole(f, 0)?;
        if v > per_choice {
            match over {
                OverLimit::Clamp => clamp.push((f.pointer.clone(), per_choice)),
                OverLimit::Reject if choices > 1 => {
                    return Err((
                        name(&f.pointer),
                        format!(
                            "{} {v} for {choices} choices exceeds the limit of {max} tokens",
                            name(&f.pointer)
                        ),
                    ))
                }
                OverLimit::Reject => {
                    return Err((
                        name(&f.pointer),
                        format!("{} {v} exceeds the limit of {max}", name(&f.pointer)),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Write the clamped values into `body`. False when a field's parent is not an object.
pub fn apply(body: &mut Value, clamp: &[(String, u64)]) -> bool {
    for (pointer, v) in clamp {
        let (parent, key) = match pointer.rsplit_once('/') {
            Some(pk) => pk,
            None => return false,
        };
        let target = if parent.is_empty() {
            Some(&mut *body)
        } else {
            body.pointer_mut(parent)
        };
        match target.and_then(Value::as_object_mut) {
            Some(o) => {
                o.insert(key.to_owned(), Value::from(*v));
            }
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{extract, Api, Options};
    use crate::tokens::Encoding;
    use serde_json::json;

    fn check(api: Api, body: Value, over: OverLimit) -> Result<Vec<(String, u64)>, String> {
        let opts = Options {
            opaque_media: &[],
            allow_remote_content: false,
            encoding: Encoding::O200kBase,
        };
        let x = extract(api, &body, None, &opts).unwrap();
        let mut clamp = Vec::new();
        completion(&x, 100, over, &mut clamp).map_err(|(_, m)| m)?;
        Ok(clamp)
    }

    #[test]
    fn every_limit_field_and_choice_counts() {
        use OverLimit::*;
        let chat = Api::ChatCompletions;
        assert_eq!(
            check(chat, json!({"model": "m"}), Reject).unwrap(),
            vec![("/max_completion_tokens".to_owned(), 100)]
        );
        assert!(check(chat, json!({"max_tokens": 50}), Reject)
            .unwrap()
            .is_empty());
        assert!(check(
            chat,
            json!({"max_tokens": 50, "max_completion_tokens": 500}),
            Reject
        )
        .is_err());
        assert!(check(chat, json!({"max_tokens": 8.0}), Reject).is_err());
        assert!(check(chat, json!({"max_tokens": "8"}), Reject).is_err());
        assert!(check(chat, json!({"max_tokens": -1}), Reject).is_err());
        assert!(check(chat, json!({"max_tokens": 50, "n": 3}), Reject).is_err());
        assert!(
            check(chat, json!({"Max_Tokens": 5000}), Reject).is_err(),
            "any case"
        );
        assert!(check(chat, json!({"max_tokens": 50, "best_of": 3}), Reject).is_err());
        assert!(check(chat, json!({"max_tokens": 50, "n": 2.5}), Reject).is_err());
        assert!(check(chat, json!({"max_tokens": 5, "n": 500}), Reject).is_err());
        assert_eq!(
            check(chat, json!({"max_tokens": 80, "n": 2}), Clamp).unwrap(),
            vec![("/max_tokens".to_owned(), 50)]
        );
        assert!(check(Api::Generic, json!({"inputs": "x"}), Reject).is_err());
        assert!(check(
            Api::Generic,
            json!({"inputs": "x", "parameters": {"max_new_tokens": 400}}),
            Reject
        )
        .is_err());
        assert!(check(Api::Embeddings, json!({"input": "x"}), Reject)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn clamps_are_written_where_the_field_lives() {
        let mut body = json!({"parameters": {"max_new_tokens": 400}});
        assert!(apply(
            &mut body,
            &[
                ("/parameters/max_new_tokens".into(), 100),
                ("/max_tokens".into(), 100)
            ]
        ));
        assert_eq!(
            body,
            json!({"parameters": {"max_new_tokens": 100}, "max_tokens": 100})
        );
    }
}
