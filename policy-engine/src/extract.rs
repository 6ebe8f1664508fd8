//! Text extraction from inference request bodies.
//!
//! The model server acts on the whole body, so every string value counts, object keys and
//! numbers included, wherever it sits: schemas, stop sequences, metadata, tool definitions,
//! fields no API documents yet. The walk is the same for every API; what differs per API is
//! only which fields name the model, the output limit and the conversation length.
//!
//! Inline content is opened: `data:` URIs and base64 sources are decoded and their text
//! scanned (binary media is skipped only when the bundle calls its type opaque and the bytes
//! prove the type, see `media.rs`); strings holding JSON (tool call arguments) are also scanned
//! as the values they encode, so a `\u0041` escape inside them does not hide a letter; prompts
//! given as token ids are decoded with the model's encoding.

use crate::media::{self, Inline, MediaError};
use crate::tokens::{self, Encoding};
use serde_json::Value;

/// The inference API of a route: which extractor and which error shape it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// OpenAI chat completions (also vLLM, Ollama's and TGI's OpenAI-compatible routes).
    #[serde(rename = "openai_chat")]
    ChatCompletions,
    #[serde(rename = "openai_completions")]
    Completions,
    #[serde(rename = "openai_responses")]
    Responses,
    #[serde(rename = "openai_embeddings")]
    Embeddings,
    AnthropicMessages,
    /// Any other JSON API (Ollama's native routes, TGI `/generate`): every string is scanned;
    /// the model is read from a `model` field or the route's `{model}` segment.
    Generic,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::ChatCompletions => "chat_completions",
            Api::Completions => "completions",
            Api::Responses => "responses",
            Api::Embeddings => "embeddings",
            Api::AnthropicMessages => "anthropic_messages",
            Api::Generic => "generic",
        }
    }

    /// Whether errors use Anthropic's shape rather than OpenAI's.
    pub fn anthropic_errors(self) -> bool {
        self == Api::AnthropicMessages
    }

    /// Fields (JSON pointers) that bound the output length, the first being the one a limit
    /// is written into when a request names none.
    pub fn limit_fields(self) -> &'static [&'static str] {
        match self {
            Api::ChatCompletions => &["/max_completion_tokens", "/max_tokens"],
            Api::Completions | Api::AnthropicMessages => &["/max_tokens"],
            Api::Responses => &["/max_output_tokens"],
            Api::Embeddings => &[],
            Api::Generic => &[
                "/max_tokens",
                "/max_new_tokens",
                "/parameters/max_new_tokens",
                "/options/num_predict",
                "/num_predict",
                "/max_completion_tokens",
                "/max_output_tokens",
            ],
        }
    }

    /// Fields that multiply the output: several choices per request.
    pub fn choice_fields(self) -> &'static [&'static str] {
        match self {
            Api::ChatCompletions => &["/n", "/best_of"],
            Api::Completions => &["/n", "/best_of"],
            Api::Generic => &["/n", "/best_of", "/parameters/best_of"],
            _ => &[],
        }
    }
}

/// One piece of text the model will read.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Where it sits: an index into [`Extracted::paths`]; see [`Extracted::field`].
    pub path: u32,
    pub text: String,
}

/// One step of a JSON path. Paths are kept as a tree of steps and spelled out only for the
/// fields a finding names: building a string per field of a large body costs more than
/// scanning it.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Root,
    Key(u32, String),
    Index(u32, u32),
    /// A reading of the parent: `<keys>`, `<data>`, `<json>`, `<unescaped>`, `<tokens>`...
    Reading(u32, &'static str),
}

/// A limit-relevant numeric field as the request states it.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitField {
    /// JSON pointer, with the keys as the request spells them.
    pub pointer: String,
    /// The value when it is a whole number; `None` when it is anything else.
    pub value: Option<u64>,
}

/// What the engine needs to know about a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub api: Api,
    pub model: Option<String>,
    pub segments: Vec<Segment>,
    /// Number of messages or input items (for the chat token overhead).
    pub items: usize,
    /// Output limit fields present in the request.
    pub limits: Vec<LimitField>,
    /// Choice multipliers present (`n`, `best_of`).
    pub choices: Vec<LimitField>,
    pub stream: bool,
    /// Token ids given directly (their decoded text is among the segments too).
    pub raw_token_count: u64,
    /// Parts this build cannot read (token ids without the tokenizer): the decision about
    /// them is the server's.
    pub deferred: bool,
    /// The path tree the segments point into.
    pub paths: Vec<Step>,
    /// The request asks for output the masker cannot read: spoken audio (`modalities`
    /// with `audio`, or an `audio` output setting) or raw token ids (`return_token_ids`).
    pub unreadable_output: Option<&'static str>,
}

impl Extracted {
    /// The JSON path of a segment, e.g. `messages[1].content[0].text`.
    pub fn field(&self, seg: &Segment) -> String {
        self.path_string(seg.path)
    }

    pub fn path_string(&self, at: u32) -> String {
        Self::path_of(&self.paths, at)
    }

    fn path_of(paths: &[Step], mut at: u32) -> String {
        let mut steps = Vec::new();
        while let Some(step) = paths.get(at as usize) {
            match step {
                Step::Root => break,
                Step::Key(p, _) | Step::Index(p, _) | Step::Reading(p, _) => {
                    steps.push(step);
                    at = *p;
                }
            }
        }
        let mut out = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Key(_, k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Step::Index(_, i) => out.push_str(&format!("[{i}]")),
                Step::Reading(_, r) => out.push_str(r),
                Step::Root => {}
            }
        }
        out
    }

    /// Largest requested output length, if every limit field is a whole number.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.limits.iter().filter_map(|l| l.value).max()
    }
}

/// Why a body cannot be checked.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExtractError {
    #[error("request body is not acceptable JSON: {0}")]
    Json(String),
    #[error("request body must be a JSON object")]
    NotObject,
    #[error("field `{field}` has an unexpected type (expected {expected})")]
    Shape {
        field: String,
        expected: &'static str,
    },
    #[error("field `{field}`: {source}")]
    Media {
        field: String,
        #[source]
        source: MediaError,
    },
    #[error("field `{0}` holds token ids this gateway cannot decode")]
    TokenIds(String),
    #[error("field `{0}` refers to content the provider fetches itself, which the gateway cannot inspect (bundle setting inspection.allow_remote_content)")]
    Remote(String),
}

impl ExtractError {
    /// HTTP status for the refusal: unreadable content is 415, the rest 400.
    pub fn status(&self) -> u16 {
        match self {
            ExtractError::Media {
                source: MediaError::Unreadable(_),
                ..
            } => 415,
            _ => 400,
        }
    }
}

/// How deep strings holding JSON are opened (a string of JSON of a string of JSON...).
pub const NESTED_JSON_DEPTH: u8 = 3;

/// Keys naming content the provider fetches itself (OpenAI files and file URLs).
fn is_remote_key(k: &str) -> bool {
    matches!(k, "file_url" | "file_id")
}

/// Keys under which the APIs expect media (image URLs, file and audio data): the only places
/// inline content may be opaque.
fn is_media_key(k: &str) -> bool {
    matches!(
        k,
        "url" | "image_url" | "file_data" | "data" | "image" | "images"
    )
}

/// Options of one extraction.
pub struct Options<'a> {
    /// Media types whose verified binary content is not scanned (`image/*`, ...).
    pub opaque_media: &'a [String],
    /// Whether references to content the provider fetches (`file_url`, `file_id`) pass.
    pub allow_remote_content: bool,
    /// Encoding for models that are not OpenAI's, used to decode prompts given as token ids.
    pub encoding: Encoding,
}

struct Walker<'a> {
    opts: &'a Options<'a>,
    /// Encoding of the request's model, for token-id prompts.
    encoding: Encoding,
    segments: Vec<Segment>,
    paths: Vec<Step>,
    raw_tokens: u64,
    deferred: bool,
}

const ROOT: u32 = 0;

impl Walker<'_> {
    fn step(&mut self, s: Step) -> u32 {
        self.paths.push(s);
        (self.paths.len() - 1) as u32
    }

    fn key(&mut self, parent: u32, k: &str) -> u32 {
        self.step(Step::Key(parent, k.to_owned()))
    }

    fn reading(&mut self, parent: u32, r: &'static str) -> u32 {
        self.step(Step::Reading(parent, r))
    }

    fn push(&mut self, path: u32, text: &str) {
        if !text.is_empty() {
            self.segments.push(Segment {
                path,
                text: text.to_owned(),
            });
        }
    }

    /// The keys of an object, one per line, as one segment.
    fn push_keys<'k>(&mut self, parent: u32, keys: impl Iterator<Item = &'k String>) {
        let mut text = String::new();
        for k in keys {
            text.push_str(k);
            text.push('\n');
        }
        if !text.is_empty() {
            let at = self.reading(parent, ".<keys>");
            self.segments.push(Segment { path: at, text });
        }
    }

    /// Every string, key and number inside `v`; `key` is the object key `v` sits under.
    fn walk(
        &mut self,
        path: u32,
        key: Option<&str>,
        v: &Value,
        depth: u8,
    ) -> Result<(), ExtractError> {
        match v {
            Value::String(s) => self.string(path, key.is_some_and(is_media_key), s, depth),
            Value::Number(n) => {
                self.push(path, &n.to_string());
                Ok(())
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let at = self.step(Step::Index(path, i as u32));
                    self.walk(at, key, x, depth)?;
                }
                Ok(())
            }
            Value::Object(o) => {
                if self.base64_source(path, o)? {
                    return Ok(());
                }
                // Anthropic documents by URL: fetched by the provider, never seen here.
                let url_document = o.get("type").and_then(Value::as_str) != Some("image")
                    && o.get("source")
                        .and_then(|s| s.get("type"))
                        .and_then(Value::as_str)
                        == Some("url");
                if url_document && !self.opts.allow_remote_content {
                    let at = self.key(path, "source");
                    return Err(ExtractError::Remote(self.path_string(at)));
                }
                self.push_keys(path, o.keys());
                for (k, x) in o {
                    let at = self.key(path, k);
                    if is_remote_key(k) && x.is_string() && !self.opts.allow_remote_content {
                        return Err(ExtractError::Remote(self.path_string(at)));
                    }
                    self.walk(at, Some(k), x, depth)?;
                }
                Ok(())
            }
            Value::Bool(_) | Value::Null => Ok(()),
        }
    }

    fn path_string(&self, at: u32) -> String {
        Extracted::path_of(&self.paths, at)
    }

    fn string(
        &mut self,
        path: u32,
        media_field: bool,
        s: &str,
        depth: u8,
    ) -> Result<(), ExtractError> {
        if let Some(inline) = media::inline_data_uri(s, self.opts.opaque_media, media_field) {
            return match inline {
                Ok(Inline::Text(t)) => {
                    // The string as written, and the text it carries.
                    self.push(path, s);
                    let at = self.reading(path, "<data>");
                    self.push(at, &t);
                    Ok(())
                }
                Ok(Inline::Opaque) => {
                    // The payload is a verified file; its header is text like any other.
                    if let Some(c) = s.find(',') {
                        let at = self.reading(path, "<data-header>");
                        self.push(at, &s[..c]);
                    }
                    Ok(())
                }
                Err(source) => Err(ExtractError::Media {
                    field: self.path_string(path),
                    source,
                }),
            };
        }
        self.push(path, s);
        // A string holding JSON (tool call arguments): its decoded values count too.
        let t = s.trim_start();
        let mut opened = false;
        if depth < NESTED_JSON_DEPTH
            && (t.starts_with('{') || t.starts_with('[') || t.starts_with('"'))
        {
            if let Ok(inner) = crate::json::parse_strict(t.as_bytes()) {
                let at = self.reading(path, "<json>");
                self.walk(at, None, &inner, depth + 1)?;
                opened = true;
            }
        }
        // Escapes a lenient reader would decode (JSON that serde refuses: NaN, duplicate
        // keys; escaped text the model is asked to read): read decoded as well.
        if !opened {
            if let Some(d) = crate::json::decode_escapes(s, true) {
                let at = self.reading(path, "<unescaped>");
                self.push(at, &d);
            }
        }
        Ok(())
    }

    /// Objects carrying base64 content with a declared type: Anthropic's
    /// `{"type": "base64", "media_type": ..., "data": ...}` sources and OpenAI's
    /// `input_audio` `{"data": ..., "format": ...}`. Their other keys are walked as usual.
    fn base64_source(
        &mut self,
        path: u32,
        o: &serde_json::Map<String, Value>,
    ) -> Result<bool, ExtractError> {
        let Some(Value::String(data)) = o.get("data") else {
            return Ok(false);
        };
        let media_type = match (o.get("type"), o.get("media_type"), o.get("format")) {
            (Some(Value::String(t)), Some(Value::String(m)), _) if t == "base64" => m.clone(),
            (_, None, Some(Value::String(f))) if o.len() == 2 => format!("audio/{f}"),
            _ => return Ok(false),
        };
        let at = self.key(path, "data");
        match media::inline_base64(&media_type, data, self.opts.opaque_media) {
            Ok(Inline::Text(t)) => {
                let r = self.reading(at, "<base64>");
                self.push(r, &t);
            }
            Ok(Inline::Opaque) => {}
            Err(source) => {
                return Err(ExtractError::Media {
                    field: self.path_string(at),
                    source,
                })
            }
        }
        self.push_keys(path, o.keys());
        for (k, x) in o.iter().filter(|(k, _)| k.as_str() != "data") {
            let kat = self.key(path, k);
            self.walk(kat, Some(k), x, NESTED_JSON_DEPTH)?;
        }
        Ok(true)
    }

    /// Prompts given as token ids (`[1, 2]` or `[[1, 2], [3]]`): decoded and scanned.
    fn token_ids(&mut self, field: &str, v: &Value) -> Result<(), ExtractError> {
        let Value::Array(items) = v else {
            return Ok(());
        };
        let ids = |a: &[Value]| -> Option<Vec<u32>> {
            a.iter()
                .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect()
        };
        let base = self.key(ROOT, field);
        let mut lists: Vec<(u32, Vec<u32>)> = Vec::new();
        if !items.is_empty() && items.iter().all(Value::is_number) {
            let l = ids(items).ok_or_else(|| ExtractError::TokenIds(field.to_owned()))?;
            lists.push((base, l));
        } else {
            for (i, x) in items.iter().enumerate() {
                if let Value::Array(inner) = x {
                    if inner.iter().any(Value::is_number) {
                        let at = self.step(Step::Index(base, i as u32));
                        let l = ids(inner)
                            .ok_or_else(|| ExtractError::TokenIds(self.path_string(at)))?;
                        lists.push((at, l));
                    }
                }
            }
        }
        for (at, l) in lists {
            self.raw_tokens += l.len() as u64;
            if !tokens::EXACT {
                // This build has no vocabulary: the server decodes and decides them.
                self.deferred = true;
                continue;
            }
            let text = tokens::decode(self.encoding, &l)
                .ok_or_else(|| ExtractError::TokenIds(self.path_string(at)))?;
            let r = self.reading(at, "<tokens>");
            self.push(r, &text);
        }
        Ok(())
    }
}

/// Parse (strictly: duplicate and case-colliding keys are refused) and extract a body.
pub fn extract_bytes(
    api: Api,
    body: &[u8],
    route_model: Option<&str>,
    opts: &Options,
) -> Result<(Value, Extracted), ExtractError> {
    let v = crate::json::parse_strict(body).map_err(|e| ExtractError::Json(e.0))?;
    let x = extract(api, &v, route_model, opts)?;
    Ok((v, x))
}

/// Look a pointer up ignoring ASCII case (servers decoding with Go's `encoding/json` match
/// field names that way; strict parsing has refused keys that collide under case folding,
/// so at most one key matches). Returns the pointer as the body spells it, and the value.
fn pointer_ci<'a>(body: &'a Value, pointer: &str) -> Option<(String, &'a Value)> {
    let mut v = body;
    let mut spelled = String::new();
    for part in pointer.split('/').skip(1) {
        let (k, x) = v
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(part))?;
        spelled.push('/');
        spelled.push_str(&k.replace('~', "~0").replace('/', "~1"));
        v = x;
    }
    Some((spelled, v))
}

fn limit_fields(body: &Value, pointers: &'static [&'static str]) -> Vec<LimitField> {
    pointers
        .iter()
        .filter_map(|p| {
            let (pointer, v) = pointer_ci(body, p)?;
            (!v.is_null()).then(|| LimitField {
                pointer,
                value: v.as_u64(),
            })
        })
        .collect()
}

fn unreadable_output(body: &Value) -> Option<&'static str> {
    let audio = body.get("audio").is_some_and(|a| !a.is_null())
        || body
            .get("modalities")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio")));
    if audio {
        Some("audio")
    } else if body
        .get("return_token_ids")
        .is_some_and(|v| v != &Value::Bool(false) && !v.is_null())
    {
        Some("token ids")
    } else {
        None
    }
}

/// Extract the text segments and limit-relevant fields of a parsed body. `route_model` is the
/// model named by the route (`{model}` segment), which the upstream serves whatever the body
/// says.
pub fn extract(
    api: Api,
    body: &Value,
    route_model: Option<&str>,
    opts: &Options,
) -> Result<Extracted, ExtractError> {
    if !body.is_object() {
        return Err(ExtractError::NotObject);
    }
    let body_model = body.get("model").and_then(Value::as_str);
    let model = route_model.or(body_model).map(str::to_owned);
    let mut w = Walker {
        opts,
        encoding: Encoding::for_model(model.as_deref().unwrap_or(""), opts.encoding),
        segments: Vec::new(),
        paths: vec![Step::Root],
        raw_tokens: 0,
        deferred: false,
    };
    w.walk(ROOT, None, body, 0)?;
    let items = match api {
        Api::ChatCompletions | Api::AnthropicMessages => match body.get("messages") {
            Some(Value::Array(a)) => a.len(),
            None | Some(Value::Null) => 0,
            Some(_) => {
                return Err(ExtractError::Shape {
                    field: "messages".into(),
                    expected: "array",
                })
            }
        },
        Api::Responses => match body.get("input") {
            Some(Value::Array(a)) => a.len(),
            Some(Value::String(_)) => 1,
            _ => 0,
        },
        Api::Completions => 1,
        Api::Embeddings | Api::Generic => 0,
    };
    match api {
        Api::Completions => {
            if let Some(p) = body.get("prompt") {
                w.token_ids("prompt", p)?;
            }
        }
        Api::Embeddings => {
            if let Some(p) = body.get("input") {
                w.token_ids("input", p)?;
            }
        }
        _ => {}
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ExtractError::Shape {
                field: "stream".into(),
                expected: "boolean",
            })
        }
    };
    Ok(Extracted {
        api,
        model,
        segments: w.segments,
        items,
        limits: limit_fields(body, api.limit_fields()),
        choices: limit_fields(body, api.choice_fields()),
        stream,
        raw_token_count: w.raw_tokens,
        deferred: w.deferred,
        paths: w.paths,
        unreadable_output: unreadable_output(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts() -> Options<'static> {
        static OPAQUE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        Options {
            opaque_media: OPAQUE.get_or_init(|| vec!["image/*".into(), "audio/*".into()]),
            allow_remote_content: false,
            encoding: Encoding::O200kBase,
        }
    }

    fn texts(x: &Extracted) -> Vec<&str> {
        x.segments.iter().map(|s| s.text.as_str()).collect()
    }

    fn has(x: &Extracted, want: &str) -> bool {
        x.segments.iter().any(|s| s.text.contains(want))
    }

    #[test]
    fn every_string_key_and_number_is_extracted() {
        let body = json!({
            "model": "gpt-4o-mini",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters":
                {"type": "object", "properties": {"k-in-key": {"type": "string", "description": "in-schema"}}}}}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": {"enum": ["in-format"]}}},
            "stop": ["in-stop"],
            "metadata": {"note": "in-metadata"},
            "functions": [{"name": "legacy", "description": "in-functions"}],
            "seed": 4111111111111111u64,
        });
        let x = extract(Api::ChatCompletions, &body, None, &opts()).unwrap();
        for want in [
            "hi",
            "k-in-key",
            "in-schema",
            "in-format",
            "in-stop",
            "in-metadata",
            "in-functions",
            "4111111111111111",
        ] {
            assert!(has(&x, want), "missing {want}: {:?}", texts(&x));
        }
        assert_eq!(x.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(x.max_output_tokens(), Some(50));
        assert_eq!(x.items, 1);
        let field_of = |text: &str| {
            let seg = x.segments.iter().find(|s| s.text == text).unwrap();
            x.field(seg)
        };
        assert_eq!(field_of("hi"), "messages[0].content");
        assert_eq!(field_of("in-stop"), "stop[0]");
        assert_eq!(
            field_of("in-schema"),
            "tools[0].function.parameters.properties.k-in-key.description"
        );
    }

    #[test]
    fn inline_documents_and_json_strings_are_opened() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_data": "data:text/plain;base64,c2VjcmV0LWZpbGU="}},
            {"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": "c2VjcmV0LWRvYw=="}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}}
        ]}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{\"q\": \"\\u0073ecret-arg\"}"}}]}]});
        let x = extract(Api::ChatCompletions, &body, None, &opts()).unwrap();
        for want in ["secret-file", "secret-doc", "secret-arg"] {
            assert!(has(&x, want), "missing {want}: {:?}", texts(&x));
        }
        assert!(!has(&x, "iVBORw0KGgo"), "a verified image is opaque");
    }

    #[test]
    fn remote_content_is_refused_unless_allowed() {
        let body = json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_file", "file_url": "https://attacker.example/notes.pdf"}]}]});
        assert!(matches!(
            extract(Api::Responses, &body, None, &opts()),
            Err(ExtractError::Remote(_))
        ));
        let allow = Options {
            allow_remote_content: true,
            ..opts()
        };
        assert!(extract(Api::Responses, &body, None, &allow).is_ok());
    }

    #[test]
    fn unreadable_inline_content_is_refused() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/octet-stream", "data": "/wD+AQ=="}}]}]});
        let e = extract(Api::AnthropicMessages, &body, None, &opts()).unwrap_err();
        assert_eq!(e.status(), 415, "{e}");
    }

    #[test]
    fn token_id_prompts_are_decoded() {
        #[cfg(feature = "tokenizer")]
        {
            let ids = tokens::encode(Encoding::O200kBase, "the swordfish");
            let x = extract(
                Api::Completions,
                &json!({"model": "m", "prompt": [ids]}),
                None,
                &opts(),
            )
            .unwrap();
            assert!(has(&x, "the swordfish"), "{:?}", texts(&x));
            assert!(x.raw_token_count > 0);
        }
        let e = extract(
            Api::Embeddings,
            &json!({"model": "m", "input": [1, -2]}),
            None,
            &opts(),
        );
        assert!(e.is_err());
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert_eq!(
            extract(Api::ChatCompletions, &json!([]), None, &opts()).unwrap_err(),
            ExtractError::NotObject
        );
        assert!(extract(
            Api::ChatCompletions,
            &json!({"messages": "x"}),
            None,
            &opts()
        )
        .is_err());
        assert!(extract_bytes(Api::ChatCompletions, b"{not json", None, &opts()).is_err());
        assert!(extract_bytes(
            Api::ChatCompletions,
            br#"{"model": "a", "model": "b"}"#,
            None,
            &opts()
        )
        .is_err());
    }

    #[test]
    fn limit_fields_keep_non_integers_visible() {
        let x = extract(
            Api::ChatCompletions,
            &json!({"model": "m", "max_tokens": 8.0, "n": 3}),
            None,
            &opts(),
        )
        .unwrap();
        assert_eq!(x.limits[0].value, None);
        assert_eq!(x.choices[0].value, Some(3));
        let x = extract(
            Api::Generic,
            &json!({"inputs": "x", "parameters": {"max_new_tokens": 9}}),
            Some("llama"),
            &opts(),
        )
        .unwrap();
        assert_eq!(x.max_output_tokens(), Some(9));
        assert_eq!(x.model.as_deref(), Some("llama"));
    }
}
