//! Text extraction from inference API request bodies.
//!
//! Every field that carries text the model will read is extracted with its JSON path, so a
//! rule cannot be dodged by moving a word into a system prompt, a tool call's arguments, a
//! tool result or an array content part. JSON escapes are already decoded by the parser.

use serde_json::Value;

/// The inference API a request targets, derived from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    ChatCompletions,
    Completions,
    Responses,
    Embeddings,
    AnthropicMessages,
}

impl Api {
    /// Map a request path (query string ignored) to an API. Paths may carry a prefix such as
    /// `/openai/v1/chat/completions`.
    pub fn from_path(path: &str) -> Option<Api> {
        let p = path.split('?').next().unwrap_or("");
        let p = p.trim_end_matches('/');
        if p.ends_with("/chat/completions") {
            Some(Api::ChatCompletions)
        } else if p.ends_with("/completions") {
            Some(Api::Completions)
        } else if p.ends_with("/responses") {
            Some(Api::Responses)
        } else if p.ends_with("/embeddings") {
            Some(Api::Embeddings)
        } else if p.ends_with("/messages") {
            Some(Api::AnthropicMessages)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Api::ChatCompletions => "chat_completions",
            Api::Completions => "completions",
            Api::Responses => "responses",
            Api::Embeddings => "embeddings",
            Api::AnthropicMessages => "anthropic_messages",
        }
    }

    /// The field carrying the requested maximum output tokens, if the API has one.
    pub fn max_output_field(self, body: &Value) -> Option<&'static str> {
        match self {
            Api::ChatCompletions => {
                if body.get("max_completion_tokens").is_some() || body.get("max_tokens").is_none() {
                    Some("max_completion_tokens")
                } else {
                    Some("max_tokens")
                }
            }
            Api::Completions | Api::AnthropicMessages => Some("max_tokens"),
            Api::Responses => Some("max_output_tokens"),
            Api::Embeddings => None,
        }
    }
}

/// One piece of text the model will read.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// JSON path of the field, e.g. `messages[1].content[0].text`.
    pub field: String,
    pub text: String,
}

/// What the engine needs to know about a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub api: Api,
    pub model: Option<String>,
    pub segments: Vec<Segment>,
    /// Number of messages or input items (for the chat token overhead).
    pub items: usize,
    /// Requested maximum output tokens, if present.
    pub max_output_tokens: Option<u64>,
    pub stream: bool,
    /// Token ids given directly (embeddings/completions accept arrays of integers).
    pub raw_token_count: u64,
}

/// Why a body cannot be checked.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExtractError {
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("request body must be a JSON object")]
    NotObject,
    #[error("field `{field}` has an unexpected type (expected {expected})")]
    Shape {
        field: String,
        expected: &'static str,
    },
}

struct Collector {
    segments: Vec<Segment>,
    raw_tokens: u64,
}

impl Collector {
    fn push(&mut self, field: String, text: &str) {
        if !text.is_empty() {
            self.segments.push(Segment {
                field,
                text: text.to_owned(),
            });
        }
    }

    /// Every string anywhere inside `v` (object keys included): used for free-form JSON such
    /// as tool arguments and tool inputs, where any string may reach the model.
    fn all_strings(&mut self, field: &str, v: &Value) {
        match v {
            Value::String(s) => self.push(field.to_owned(), s),
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    self.all_strings(&format!("{field}[{i}]"), x);
                }
            }
            Value::Object(o) => {
                for (k, x) in o {
                    self.push(format!("{field}.<key>"), k);
                    self.all_strings(&format!("{field}.{k}"), x);
                }
            }
            _ => {}
        }
    }

    /// A "content" value: a string, or an array of parts/blocks.
    fn content(&mut self, field: &str, v: &Value) -> Result<(), ExtractError> {
        match v {
            Value::Null => Ok(()),
            Value::String(s) => {
                self.push(field.to_owned(), s);
                Ok(())
            }
            Value::Array(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    self.part(&format!("{field}[{i}]"), part)?;
                }
                Ok(())
            }
            _ => Err(ExtractError::Shape {
                field: field.to_owned(),
                expected: "string or array",
            }),
        }
    }

    /// One content part or block of any of the supported APIs.
    fn part(&mut self, field: &str, part: &Value) -> Result<(), ExtractError> {
        let Value::Object(o) = part else {
            if let Value::String(s) = part {
                self.push(field.to_owned(), s);
                return Ok(());
            }
            return Err(ExtractError::Shape {
                field: field.to_owned(),
                expected: "object",
            });
        };
        for key in [
            "text",
            "refusal",
            "thinking",
            "output",
            "arguments",
            "content",
        ] {
            match o.get(key) {
                Some(Value::String(s)) => self.push(format!("{field}.{key}"), s),
                Some(v @ Value::Array(_)) if key == "content" || key == "output" => {
                    self.content(&format!("{field}.{key}"), v)?
                }
                _ => {}
            }
        }
        // Anthropic tool_use input / any structured input: every string counts.
        if let Some(input) = o.get("input") {
            self.all_strings(&format!("{field}.input"), input);
        }
        if let Some(src) = o.get("source").and_then(|s| s.get("data")) {
            // Text documents may be inlined as plain text sources.
            if o.get("source").and_then(|s| s.get("type")) == Some(&Value::from("text")) {
                if let Value::String(s) = src {
                    self.push(format!("{field}.source.data"), s);
                }
            }
        }
        Ok(())
    }

    fn tool_calls(&mut self, field: &str, v: &Value) {
        if let Value::Array(calls) = v {
            for (i, call) in calls.iter().enumerate() {
                let f = format!("{field}[{i}].function");
                if let Some(func) = call.get("function") {
                    if let Some(Value::String(name)) = func.get("name") {
                        self.push(format!("{f}.name"), name);
                    }
                    match func.get("arguments") {
                        Some(Value::String(args)) => {
                            self.push(format!("{f}.arguments"), args);
                        }
                        Some(other) => self.all_strings(&format!("{f}.arguments"), other),
                        None => {}
                    }
                }
            }
        }
    }

    fn tools(&mut self, v: Option<&Value>) {
        if let Some(Value::Array(tools)) = v {
            for (i, t) in tools.iter().enumerate() {
                let f = t.get("function").unwrap_or(t);
                if let Some(Value::String(d)) = f.get("description") {
                    self.push(format!("tools[{i}].description"), d);
                }
            }
        }
    }

    /// A prompt given as a string, array of strings, or array(s) of token ids.
    fn prompt(&mut self, field: &str, v: &Value) -> Result<(), ExtractError> {
        match v {
            Value::String(s) => self.push(field.to_owned(), s),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => self.push(format!("{field}[{i}]"), s),
                        Value::Number(_) => self.raw_tokens += 1,
                        Value::Array(ids) => self.raw_tokens += ids.len() as u64,
                        _ => {
                            return Err(ExtractError::Shape {
                                field: format!("{field}[{i}]"),
                                expected: "string or token ids",
                            })
                        }
                    }
                }
            }
            Value::Null => {}
            _ => {
                return Err(ExtractError::Shape {
                    field: field.to_owned(),
                    expected: "string or array",
                })
            }
        }
        Ok(())
    }
}

fn array<'a>(body: &'a Value, key: &str) -> Result<&'a [Value], ExtractError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ExtractError::Shape {
            field: key.to_owned(),
            expected: "array",
        }),
    }
}

/// Parse and extract a request body for `api`.
pub fn extract_bytes(api: Api, body: &[u8]) -> Result<(Value, Extracted), ExtractError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ExtractError::Json(e.to_string()))?;
    let x = extract(api, &v)?;
    Ok((v, x))
}

/// Extract the text segments and limits-relevant fields of a parsed body.
pub fn extract(api: Api, body: &Value) -> Result<Extracted, ExtractError> {
    if !body.is_object() {
        return Err(ExtractError::NotObject);
    }
    let mut c = Collector {
        segments: Vec::new(),
        raw_tokens: 0,
    };
    let mut items = 0;
    match api {
        Api::ChatCompletions => {
            let msgs = array(body, "messages")?;
            items = msgs.len();
            for (i, m) in msgs.iter().enumerate() {
                let f = format!("messages[{i}]");
                if let Some(content) = m.get("content") {
                    c.content(&format!("{f}.content"), content)?;
                }
                if let Some(Value::String(r)) = m.get("refusal") {
                    c.push(format!("{f}.refusal"), r);
                }
                if let Some(Value::String(n)) = m.get("name") {
                    c.push(format!("{f}.name"), n);
                }
                if let Some(tc) = m.get("tool_calls") {
                    c.tool_calls(&format!("{f}.tool_calls"), tc);
                }
                if let Some(fc) = m.get("function_call") {
                    c.all_strings(&format!("{f}.function_call"), fc);
                }
            }
            c.tools(body.get("tools"));
        }
        Api::Completions => {
            if let Some(p) = body.get("prompt") {
                c.prompt("prompt", p)?;
            }
            if let Some(Value::String(s)) = body.get("suffix") {
                c.push("suffix".into(), s);
            }
            items = 1;
        }
        Api::Embeddings => {
            if let Some(p) = body.get("input") {
                c.prompt("input", p)?;
            }
        }
        Api::Responses => {
            if let Some(Value::String(s)) = body.get("instructions") {
                c.push("instructions".into(), s);
            }
            match body.get("input") {
                Some(Value::String(s)) => {
                    c.push("input".into(), s);
                    items = 1;
                }
                Some(Value::Array(list)) => {
                    items = list.len();
                    for (i, item) in list.iter().enumerate() {
                        let f = format!("input[{i}]");
                        match item {
                            Value::Object(_) => {
                                if let Some(content) = item.get("content") {
                                    c.content(&format!("{f}.content"), content)?;
                                }
                                c.part(&f, &strip_content(item))?;
                            }
                            Value::String(s) => c.push(f, s),
                            _ => {
                                return Err(ExtractError::Shape {
                                    field: f,
                                    expected: "object or string",
                                })
                            }
                        }
                    }
                }
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(ExtractError::Shape {
                        field: "input".into(),
                        expected: "string or array",
                    })
                }
            }
            c.tools(body.get("tools"));
        }
        Api::AnthropicMessages => {
            match body.get("system") {
                Some(Value::String(s)) => c.push("system".into(), s),
                Some(v @ Value::Array(_)) => c.content("system", v)?,
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(ExtractError::Shape {
                        field: "system".into(),
                        expected: "string or array",
                    })
                }
            }
            let msgs = array(body, "messages")?;
            items = msgs.len();
            for (i, m) in msgs.iter().enumerate() {
                if let Some(content) = m.get("content") {
                    c.content(&format!("messages[{i}].content"), content)?;
                }
            }
            c.tools(body.get("tools"));
        }
    }
    let max_output_tokens = api
        .max_output_field(body)
        .and_then(|f| body.get(f))
        .and_then(Value::as_u64);
    Ok(Extracted {
        api,
        model: body.get("model").and_then(Value::as_str).map(str::to_owned),
        segments: c.segments,
        items,
        max_output_tokens,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        raw_token_count: c.raw_tokens,
    })
}

/// A Responses API input item without its `content`, which is extracted separately.
fn strip_content(item: &Value) -> Value {
    let mut o = item.as_object().cloned().unwrap_or_default();
    o.remove("content");
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(x: &Extracted) -> Vec<&str> {
        x.segments.iter().map(|s| s.text.as_str()).collect()
    }

    #[test]
    fn chat_fields_including_tools_and_parts() {
        let body = json!({
            "model": "gpt-4o-mini",
            "max_tokens": 50,
            "messages": [
                {"role": "system", "content": "sys-text"},
                {"role": "user", "content": [{"type": "text", "text": "part-text"}, {"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"arg-text\"}"}}]},
                {"role": "tool", "tool_call_id": "1", "content": "tool-result"}
            ]
        });
        let x = extract(Api::ChatCompletions, &body).unwrap();
        let t = texts(&x);
        for want in [
            "sys-text",
            "part-text",
            "{\"q\":\"arg-text\"}",
            "tool-result",
            "lookup",
        ] {
            assert!(t.contains(&want), "missing {want}: {t:?}");
        }
        assert_eq!(x.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(x.max_output_tokens, Some(50));
        assert_eq!(x.items, 4);
    }

    #[test]
    fn responses_input_array_and_instructions() {
        let body = json!({
            "model": "gpt-4.1",
            "instructions": "be brief",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hello there"}]},
                {"type": "function_call_output", "call_id": "c", "output": "tool said hi"}
            ]
        });
        let x = extract(Api::Responses, &body).unwrap();
        let t = texts(&x);
        assert!(t.contains(&"be brief"));
        assert!(t.contains(&"hello there"));
        assert!(t.contains(&"tool said hi"));
    }

    #[test]
    fn anthropic_system_blocks_and_tool_use() {
        let body = json!({
            "model": "claude-sonnet-4",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "system-block"}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"query": "tool-input"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "result-block"}]}]}
            ]
        });
        let x = extract(Api::AnthropicMessages, &body).unwrap();
        let t = texts(&x);
        for want in ["system-block", "hi", "tool-input", "result-block"] {
            assert!(t.contains(&want), "missing {want}: {t:?}");
        }
    }

    #[test]
    fn embeddings_and_completions_prompts() {
        let x = extract(Api::Embeddings, &json!({"model": "m", "input": ["a", "b"]})).unwrap();
        assert_eq!(texts(&x), vec!["a", "b"]);
        let x = extract(
            Api::Completions,
            &json!({"model": "m", "prompt": [[1, 2, 3]]}),
        )
        .unwrap();
        assert_eq!(x.raw_token_count, 3);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert_eq!(
            extract(Api::ChatCompletions, &json!([])).unwrap_err(),
            ExtractError::NotObject
        );
        assert!(extract(Api::ChatCompletions, &json!({"messages": "x"})).is_err());
        assert!(extract(Api::ChatCompletions, &json!({"messages": [{"content": 5}]})).is_err());
        assert!(extract_bytes(Api::ChatCompletions, b"{not json").is_err());
    }

    #[test]
    fn paths_map_to_apis() {
        assert_eq!(
            Api::from_path("/v1/chat/completions?x=1"),
            Some(Api::ChatCompletions)
        );
        assert_eq!(Api::from_path("/v1/completions"), Some(Api::Completions));
        assert_eq!(Api::from_path("/v1/messages"), Some(Api::AnthropicMessages));
        assert_eq!(Api::from_path("/v1/responses"), Some(Api::Responses));
        assert_eq!(Api::from_path("/healthz"), None);
    }
}
