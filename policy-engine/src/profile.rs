//! The stages of a request decision, one by one, for benchmarks (`gatehouse bench`,
//! `tests/stage-bench` natively and inside V8). Not part of the engine's interface: each
//! stage is the same code `Engine::decide` runs, taken apart so its cost can be measured.

use crate::engine::{CompiledPolicy, Engine};
use crate::extract::{self, Api, Extracted};
use crate::scan::PromptText;
use crate::tokens::{self, Encoding};
use serde_json::{json, Value};

/// A clean chat request of about 4 KiB.
pub fn chat_request() -> Vec<u8> {
    let para = "The quarterly report shows steady growth in the northern region, while the \
        logistics team reduced delivery times by eleven percent. Please summarise the main \
        drivers and suggest three follow-up questions for the planning meeting next week. ";
    let mut text = String::new();
    while text.len() < 3800 {
        text.push_str(para);
    }
    serde_json::to_vec(&json!({"model": "gpt-4o-mini", "max_tokens": 256,
        "messages": [{"role": "system", "content": "You are a helpful analyst."},
                     {"role": "user", "content": text}]}))
    .unwrap_or_default()
}

/// A clean request with about 20 KiB of tool schemas (every string of them is scanned).
pub fn tools_request() -> Vec<u8> {
    let tools: Vec<Value> = (0..14)
        .map(|i| {
            let props: serde_json::Map<String, Value> = (0..8)
                .map(|j| {
                    (
                        format!("field_{i}_{j}"),
                        json!({"type": "string", "description": format!(
                            "The {j}th attribute of record kind {i}, as shown on the customer's order page."),
                            "enum": ["north", "south", "east", "west"]}),
                    )
                })
                .collect();
            json!({"type": "function", "function": {"name": format!("lookup_record_{i}"),
                "description": "Look up one record of the warehouse system by its attributes.",
                "parameters": {"type": "object", "properties": props, "required": ["field_0_0"]}}})
        })
        .collect();
    serde_json::to_vec(
        &json!({"model": "gpt-4o-mini", "max_tokens": 256, "tools": tools,
        "messages": [{"role": "user", "content": "Which record matches the order I described?"}]}),
    )
    .unwrap_or_default()
}

/// A chat request whose prompt is `code` (source code pasted into a question), cut to
/// `bytes` on a character boundary.
pub fn code_request(code: &str, bytes: usize) -> Vec<u8> {
    let mut end = bytes.min(code.len());
    while !code.is_char_boundary(end) {
        end -= 1;
    }
    let content = format!("Why does this fail to compile?\n\n{}", &code[..end]);
    serde_json::to_vec(&json!({"model": "gpt-4o-mini", "max_tokens": 256,
        "messages": [{"role": "user", "content": content}]}))
    .unwrap_or_default()
}

/// One request taken through the decision's stages.
pub struct Stages<'a> {
    engine: &'a Engine,
    cp: &'a CompiledPolicy,
    api: Api,
    body: &'a [u8],
    json: Value,
    x: Extracted,
    text: PromptText,
}

impl<'a> Stages<'a> {
    /// Prepare `body` (an OpenAI chat request) under policy `cp`.
    pub fn new(engine: &'a Engine, cp: &'a CompiledPolicy, body: &'a [u8]) -> Option<Self> {
        let api = Api::ChatCompletions;
        let json = crate::json::parse_strict(body).ok()?;
        let (_, x) = engine.extract(cp, api, None, body).ok()?;
        let text = PromptText::build(&x.segments, !cp.prompt.folded.is_empty()).ok()?;
        Some(Stages {
            engine,
            cp,
            api,
            body,
            json,
            x,
            text,
        })
    }

    /// Strict JSON parse of the body.
    pub fn parse(&self) -> usize {
        crate::json::parse_strict(self.body).map_or(0, |v| v.is_object() as usize)
    }

    /// Walk the parsed body for the strings a model reads (no parse).
    pub fn extract(&self) -> usize {
        let opts = self.engine.extract_options(self.cp);
        extract::extract(self.api, &self.json, None, &opts).map_or(0, |x| x.segments.len())
    }

    /// Normalise and join the extracted strings.
    pub fn normalize(&self) -> usize {
        PromptText::build(&self.x.segments, !self.cp.prompt.folded.is_empty())
            .map_or(0, |t| t.text.len())
    }

    /// Run the policy's prompt patterns (detectors included) over the joined text.
    pub fn scan(&self) -> usize {
        let mut hits = Vec::new();
        self.cp
            .prompt
            .exact
            .scan(self.text.text.as_bytes(), &mut hits);
        hits.len()
    }

    /// Exact prompt token count (0 without the tokenizer).
    pub fn count_tokens(&self) -> u64 {
        let enc = Encoding::for_model(self.x.model.as_deref().unwrap_or(""), self.cp.encoding);
        tokens::prompt_tokens(&self.x, enc, Some(0)).tokens
    }

    /// The byte length of the joined prompt text.
    pub fn text_len(&self) -> usize {
        self.text.text.len()
    }
}
