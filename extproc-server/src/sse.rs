//! Masking of streamed (SSE) responses without leaking a value split across chunks.
//!
//! Bytes are parsed into complete SSE events (an incomplete event at the end of a chunk waits
//! for the next chunk). Text deltas are fed to one [`StreamMasker`] per stream (choice,
//! content block, output item, tool call), and each delta is rewritten inside its JSON with the
//! text that is safe to send now. What a masker still holds is sent, masked, in the event that
//! closes its stream (a finish reason, `content_block_stop`, `*.done`), or in an extra event
//! of the same kind just before it, or at the end of the stream. Events with whole texts
//! (`message_start`, `response.completed`, ...) have every string masked.

use crate::mask::{mask_value, Tally};
use policy_engine::engine::CompiledPolicy;
use policy_engine::stream::StreamMasker;
use policy_engine::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What kind of delta a stream carries, to rebuild a flush event for it.
#[derive(Clone, Debug)]
enum Kind {
    /// OpenAI chat: choice index, delta field (`content`, `refusal`, `reasoning_content`...).
    Chat(u64, String),
    /// OpenAI chat legacy `function_call` arguments: choice index.
    ChatFunction(u64),
    /// OpenAI chat tool call arguments: choice, tool call index.
    ChatTool(u64, u64, &'static str),
    /// Completions: choice index.
    Completion(u64),
    /// Anthropic content block: index, delta type, field.
    Block(u64, &'static str, &'static str),
    /// Responses API delta event: its `type` and the fields that identify the stream.
    Responses(String, Value),
}

struct Stream {
    kind: Kind,
    masker: StreamMasker,
}

/// Masks one SSE response.
#[derive(Default)]
pub struct SseMasker {
    buf: Vec<u8>,
    /// Lines of the event being read, and their size.
    lines: Vec<String>,
    event_size: usize,
    streams: BTreeMap<String, Stream>,
    /// Last OpenAI chunk, as the template of a flush chunk.
    chat_template: Option<Value>,
    pub tally: Tally,
    /// The text sent on each stream, as the client reassembles it (for the session record),
    /// up to [`TRANSCRIPT_MAX`] bytes in all.
    pub transcript: BTreeMap<String, String>,
    transcript_bytes: usize,
    pub transcript_truncated: bool,
    /// Set once the stream was cut (an event over the size bound): nothing more is sent.
    cut: bool,
}

/// Most bytes of streamed text kept for the session record.
pub const TRANSCRIPT_MAX: usize = 256 << 10;

/// Largest SSE event the masker buffers; a stream with a bigger one is ended with an error
/// event rather than buffered without limit.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Keys whose values could rebuild a masked value token by token (OpenAI logprobs, vLLM token
/// ids): withheld (null) on a policy that masks.
pub const WITHHELD_KEYS: &[&str] = &["logprobs", "top_logprobs", "token_ids", "prompt_token_ids"];

fn event_bytes(name: Option<&str>, data: &str) -> String {
    match name {
        Some(n) => format!("event: {n}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

impl SseMasker {
    /// Feed a delta to its stream; returns the text to send now.
    fn push(
        &mut self,
        engine: &Engine,
        cp: &CompiledPolicy,
        key: String,
        kind: Kind,
        piece: &str,
    ) -> String {
        let s = self.streams.entry(key.clone()).or_insert_with(|| Stream {
            kind,
            masker: StreamMasker::new(cp),
        });
        let sent = s.masker.push(engine, cp, piece);
        self.capture(&key, &sent);
        sent
    }

    fn capture(&mut self, key: &str, sent: &str) {
        if sent.is_empty() {
            return;
        }
        if self.transcript_bytes + sent.len() > TRANSCRIPT_MAX {
            self.transcript_truncated = true;
            return;
        }
        self.transcript_bytes += sent.len();
        self.transcript
            .entry(key.to_owned())
            .or_default()
            .push_str(sent);
    }

    /// Flush one stream: the rest of its text, masked.
    fn flush(&mut self, engine: &Engine, cp: &CompiledPolicy, key: &str) -> Option<(Kind, String)> {
        let mut s = self.streams.remove(key)?;
        let rest = s.masker.finish(engine, cp);
        let hits = std::mem::take(&mut s.masker.hits);
        self.tally.note(&hits);
        self.capture(key, &rest);
        Some((s.kind, rest))
    }

    fn flush_matching(
        &mut self,
        engine: &Engine,
        cp: &CompiledPolicy,
        prefix: &str,
    ) -> Vec<(Kind, String)> {
        let keys: Vec<String> = self
            .streams
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.iter()
            .filter_map(|k| self.flush(engine, cp, k))
            .filter(|(_, rest)| !rest.is_empty())
            .collect()
    }

    /// An event carrying held text for a stream that is about to close.
    fn flush_event(&self, kind: &Kind, rest: &str) -> String {
        match kind {
            Kind::Chat(i, field) => {
                let mut c = self
                    .chat_template
                    .clone()
                    .unwrap_or_else(|| json!({"object": "chat.completion.chunk"}));
                c["choices"] =
                    json!([{"index": i, "delta": {field.as_str(): rest}, "finish_reason": null}]);
                event_bytes(None, &c.to_string())
            }
            Kind::ChatFunction(i) => {
                let mut c = self
                    .chat_template
                    .clone()
                    .unwrap_or_else(|| json!({"object": "chat.completion.chunk"}));
                c["choices"] = json!([{"index": i, "delta": {"function_call": {"arguments": rest}}, "finish_reason": null}]);
                event_bytes(None, &c.to_string())
            }
            Kind::ChatTool(i, t, field) => {
                let mut c = self
                    .chat_template
                    .clone()
                    .unwrap_or_else(|| json!({"object": "chat.completion.chunk"}));
                c["choices"] = json!([{"index": i, "delta": {"tool_calls": [{"index": t, "function": {*field: rest}}]}, "finish_reason": null}]);
                event_bytes(None, &c.to_string())
            }
            Kind::Completion(i) => {
                let mut c = self
                    .chat_template
                    .clone()
                    .unwrap_or_else(|| json!({"object": "text_completion"}));
                c["choices"] = json!([{"index": i, "text": rest, "finish_reason": null}]);
                event_bytes(None, &c.to_string())
            }
            Kind::Block(i, ty, field) => {
                let e = json!({"type": "content_block_delta", "index": i, "delta": {"type": ty, *field: rest}});
                event_bytes(Some("content_block_delta"), &e.to_string())
            }
            Kind::Responses(ty, ids) => {
                let mut e = ids.clone();
                e["type"] = Value::from(ty.clone());
                e["delta"] = Value::from(rest);
                event_bytes(Some(ty), &e.to_string())
            }
        }
    }

    /// Rewrite one parsed event; returns the bytes to send in its place.
    fn event(
        &mut self,
        engine: &Engine,
        cp: &CompiledPolicy,
        name: Option<&str>,
        data: &str,
    ) -> String {
        if data.trim() == "[DONE]" {
            let mut out = self.flush_all(engine, cp);
            out.push_str(&event_bytes(name, data.trim()));
            return out;
        }
        if data.trim().is_empty() {
            return event_bytes(name, data);
        }
        // Strict, like the request side: data a client could read another way (duplicate
        // keys, escapes serde rejects but other parsers take) is not passed on.
        let Ok(mut v) = policy_engine::json::parse_strict(data.as_bytes()) else {
            self.cut = true;
            self.streams.clear();
            let e = json!({"type": "error", "error": {"type": "api_error",
                "message": "the gateway ended the stream: the upstream sent an event it cannot read"}});
            return event_bytes(Some("error"), &e.to_string());
        };
        let mut before = String::new();
        // Whether a branch below already masked the whole event.
        let mut whole = false;
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if v.get("choices").is_some_and(Value::is_array) {
            self.openai_chunk(engine, cp, &mut v);
        } else if ty == "content_block_delta" {
            let i = v.get("index").and_then(Value::as_u64).unwrap_or(0);
            let d = v.get("delta").cloned().unwrap_or_default();
            let dty = d.get("type").and_then(Value::as_str).unwrap_or("");
            let field = match dty {
                "text_delta" => Some(("text_delta", "text")),
                "input_json_delta" => Some(("input_json_delta", "partial_json")),
                "thinking_delta" => Some(("thinking_delta", "thinking")),
                _ => None,
            };
            match field {
                Some((t, f)) => {
                    let piece = d.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
                    let sent = self.push(
                        engine,
                        cp,
                        format!("b{i}.{f}"),
                        Kind::Block(i, t, f),
                        &piece,
                    );
                    if let Some(d) = v.get_mut("delta").and_then(Value::as_object_mut) {
                        d.insert(f.to_owned(), Value::from(sent));
                    }
                }
                None => {
                    mask_value(engine, cp, &mut v, &mut self.tally);
                    whole = true;
                }
            }
        } else if ty == "content_block_start" {
            // A block may start with text that its deltas continue: one stream for both.
            let i = v.get("index").and_then(Value::as_u64).unwrap_or(0);
            for (f, t) in [("text", "text_delta"), ("thinking", "thinking_delta")] {
                let piece = v
                    .pointer(&format!("/content_block/{f}"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let Some(piece) = piece {
                    let sent = self.push(
                        engine,
                        cp,
                        format!("b{i}.{f}"),
                        Kind::Block(i, t, f),
                        &piece,
                    );
                    if let Some(cb) = v.get_mut("content_block").and_then(Value::as_object_mut) {
                        cb.insert(f.into(), Value::from(sent));
                    }
                }
            }
        } else if ty == "content_block_stop" {
            let i = v.get("index").and_then(Value::as_u64).unwrap_or(0);
            for (kind, rest) in self.flush_matching(engine, cp, &format!("b{i}.")) {
                before.push_str(&self.flush_event(&kind, &rest));
            }
        } else if ty.starts_with("response.") && ty.ends_with(".delta") {
            let mut ids = json!({});
            for k in ["item_id", "output_index", "content_index", "summary_index"] {
                if let Some(x) = v.get(k) {
                    ids[k] = x.clone();
                }
            }
            let stream_id = ty.trim_end_matches(".delta");
            // Keyed by where the text lands for the client (output, content, summary index),
            // not by item ids an upstream could vary from event to event.
            let key = format!(
                "{stream_id}|{}|{}|{}",
                ids.get("output_index").unwrap_or(&Value::Null),
                ids.get("content_index").unwrap_or(&Value::Null),
                ids.get("summary_index").unwrap_or(&Value::Null)
            );
            let piece = v
                .get("delta")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let sent = self.push(engine, cp, key, Kind::Responses(ty.clone(), ids), &piece);
            v["delta"] = Value::from(sent);
        } else if ty.starts_with("response.") && ty.ends_with(".done") {
            let stream_id = ty.trim_end_matches(".done");
            for (kind, rest) in self.flush_matching(engine, cp, &format!("{stream_id}|")) {
                before.push_str(&self.flush_event(&kind, &rest));
            }
            mask_value(engine, cp, &mut v, &mut self.tally);
            whole = true;
        } else {
            // Whole texts (message_start, response.completed, errors, ...): mask every string.
            mask_value(engine, cp, &mut v, &mut self.tally);
            whole = true;
        }
        if !whole {
            // Keys, ids and any field not streamed above, whole; token-level detail withheld.
            // (Streamed fields now hold only text that is safe to send.)
            mask_value(engine, cp, &mut v, &mut self.tally);
        }
        before.push_str(&event_bytes(name, &v.to_string()));
        before
    }

    fn openai_chunk(&mut self, engine: &Engine, cp: &CompiledPolicy, v: &mut Value) {
        // The template of flush chunks: its fields are sent again, so they are masked too.
        let mut template = v.clone();
        template["choices"] = json!([]);
        mask_value(engine, cp, &mut template, &mut Tally::default());
        self.chat_template = Some(template);
        let completion = v.get("object").and_then(Value::as_str) == Some("text_completion");
        let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) else {
            return;
        };
        for c in choices.iter_mut() {
            let i = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let finished = c.get("finish_reason").is_some_and(|f| !f.is_null());
            // Completions choices carry `text`; some servers omit `object`.
            if completion
                || (c.get("text").is_some_and(Value::is_string) && c.get("delta").is_none())
            {
                let piece = c
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let mut sent = self.push(engine, cp, format!("x{i}"), Kind::Completion(i), &piece);
                if finished {
                    if let Some((_, rest)) = self.flush(engine, cp, &format!("x{i}")) {
                        sent.push_str(&rest);
                    }
                }
                if let Some(o) = c.as_object_mut() {
                    o.insert("text".into(), Value::from(sent));
                }
                continue;
            }
            // Token-level detail could spell out what the text masks.
            if let Some(o) = c.as_object_mut() {
                for k in WITHHELD_KEYS {
                    if o.contains_key(*k) {
                        o.insert((*k).to_owned(), Value::Null);
                    }
                }
            }
            let Some(delta) = c.get_mut("delta").and_then(Value::as_object_mut) else {
                continue;
            };
            // Every text field of the delta is a stream of its own: content, refusal, and
            // whatever reasoning fields a server adds (`reasoning_content`, `reasoning`).
            let fields: Vec<String> = delta
                .iter()
                .filter(|(k, v)| v.is_string() && k.as_str() != "role")
                .map(|(k, _)| k.clone())
                .collect();
            for field in fields {
                if let Some(Value::String(piece)) = delta.get(&field).cloned() {
                    let key = format!("c{i}.{field}");
                    let sent = self.push(engine, cp, key, Kind::Chat(i, field.clone()), &piece);
                    delta.insert(field, Value::from(sent));
                }
            }
            if let Some(Value::String(piece)) = delta
                .get("audio")
                .and_then(|a| a.get("transcript"))
                .cloned()
            {
                let sent = self.push(
                    engine,
                    cp,
                    format!("c{i}.audio"),
                    Kind::Chat(i, "audio".into()),
                    &piece,
                );
                delta.insert("audio".into(), json!({"transcript": sent}));
            }
            if let Some(Value::String(piece)) = delta
                .get("function_call")
                .and_then(|f| f.get("arguments"))
                .cloned()
            {
                let sent = self.push(
                    engine,
                    cp,
                    format!("c{i}.fn"),
                    Kind::ChatFunction(i),
                    &piece,
                );
                delta["function_call"]["arguments"] = Value::from(sent);
            }
            if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
                for (pos, call) in calls.iter_mut().enumerate() {
                    let t = call
                        .get("index")
                        .and_then(Value::as_u64)
                        .unwrap_or(pos as u64);
                    // Names and arguments both arrive in pieces that clients join.
                    for field in ["name", "arguments"] {
                        let Some(Value::String(piece)) =
                            call.pointer(&format!("/function/{field}")).cloned()
                        else {
                            continue;
                        };
                        let sent = self.push(
                            engine,
                            cp,
                            format!("c{i}.tool{t}.{field}"),
                            Kind::ChatTool(i, t, field),
                            &piece,
                        );
                        if let Some(f) = call.get_mut("function").and_then(Value::as_object_mut) {
                            f.insert(field.into(), Value::from(sent));
                        }
                    }
                }
            }
            if finished {
                // The choice ends here: what is held goes into this very delta.
                let text_keys: Vec<String> = self
                    .streams
                    .iter()
                    .filter(|(k, s)| {
                        k.starts_with(&format!("c{i}."))
                            && matches!(s.kind, Kind::Chat(..) | Kind::ChatFunction(_))
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in text_keys {
                    match self.flush(engine, cp, &k) {
                        Some((Kind::Chat(_, f), rest)) if !rest.is_empty() && f == "audio" => {
                            delta.insert(f, json!({"transcript": rest}));
                        }
                        Some((Kind::Chat(_, f), rest)) if !rest.is_empty() => {
                            let prev = delta
                                .get(&f)
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned();
                            delta.insert(f, Value::from(prev + &rest));
                        }
                        Some((Kind::ChatFunction(_), rest)) if !rest.is_empty() => {
                            let prev = delta
                                .get("function_call")
                                .and_then(|f| f.get("arguments"))
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned();
                            delta
                                .insert("function_call".into(), json!({"arguments": prev + &rest}));
                        }
                        _ => {}
                    }
                }
                let tool_keys: Vec<String> = self
                    .streams
                    .keys()
                    .filter(|k| k.starts_with(&format!("c{i}.tool")))
                    .cloned()
                    .collect();
                for k in tool_keys {
                    if let Some((Kind::ChatTool(_, t, field), rest)) = self.flush(engine, cp, &k) {
                        if !rest.is_empty() {
                            let calls = delta.entry("tool_calls").or_insert_with(|| json!([]));
                            if let Some(a) = calls.as_array_mut() {
                                a.push(json!({"index": t, "function": {field: rest}}));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Flush every stream (end of the response or `[DONE]`).
    pub fn flush_all(&mut self, engine: &Engine, cp: &CompiledPolicy) -> String {
        let mut out = String::new();
        for (kind, rest) in self.flush_matching(engine, cp, "") {
            out.push_str(&self.flush_event(&kind, &rest));
        }
        out
    }

    /// Feed a chunk of the response body; returns the bytes to send for it.
    ///
    /// Lines end with CRLF, LF or CR alone (as the SSE specification and clients split them),
    /// an empty line ends an event. The buffer is scanned once from where the last scan
    /// stopped and drained once per chunk, so many tiny events cost linear time.
    pub fn chunk(
        &mut self,
        engine: &Engine,
        cp: &CompiledPolicy,
        bytes: &[u8],
        end: bool,
    ) -> Vec<u8> {
        if self.cut {
            return Vec::new();
        }
        self.buf.extend_from_slice(bytes);
        let mut out = String::new();
        let mut i = 0;
        while let Some(rel) = self.buf[i..]
            .iter()
            .position(|c| *c == b'\n' || *c == b'\r')
        {
            let at = i + rel;
            let term = match (self.buf[at], self.buf.get(at + 1)) {
                (b'\r', Some(b'\n')) => 2,
                // A CR at the end of the data may be the first half of a CRLF.
                (b'\r', None) if !end => break,
                _ => 1,
            };
            let line = String::from_utf8_lossy(&self.buf[i..at]).into_owned();
            i = at + term;
            if line.is_empty() {
                let lines = std::mem::take(&mut self.lines);
                self.event_size = 0;
                out.push_str(&self.raw_event(engine, cp, &lines));
                if self.cut {
                    self.buf.clear();
                    return out.into_bytes();
                }
            } else {
                self.event_size += line.len();
                self.lines.push(line);
            }
        }
        self.buf.drain(..i);
        if self.event_size + self.buf.len() > MAX_EVENT_BYTES {
            // Never buffer without bound, never pass the event unscanned: end the stream.
            return self.cut_stream(out, &format!("an event exceeded {MAX_EVENT_BYTES} bytes"));
        }
        if end {
            if !self.buf.is_empty() {
                let last = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                self.lines.push(last);
            }
            if !self.lines.is_empty() {
                let lines = std::mem::take(&mut self.lines);
                out.push_str(&self.raw_event(engine, cp, &lines));
            }
            if !self.cut {
                out.push_str(&self.flush_all(engine, cp));
            }
        }
        out.into_bytes()
    }

    /// End the stream with an error event: what is held is dropped, nothing more is sent.
    fn cut_stream(&mut self, mut out: String, why: &str) -> Vec<u8> {
        self.cut = true;
        self.buf.clear();
        self.lines.clear();
        self.streams.clear();
        let e = json!({"type": "error", "error": {"type": "api_error",
            "message": format!("the gateway ended the stream: {why}")}});
        out.push_str(&event_bytes(Some("error"), &e.to_string()));
        out.into_bytes()
    }

    fn raw_event(&mut self, engine: &Engine, cp: &CompiledPolicy, lines: &[String]) -> String {
        let mut name = None;
        let mut data: Vec<&str> = Vec::new();
        let mut other = String::new();
        for line in lines {
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                "data" => data.push(value),
                // A comment is not delivered to clients' handlers; it is dropped.
                "" => {}
                _ => {
                    // `event`, `id`, `retry` and unknown fields: masked like any text.
                    let (m, hits) = engine.mask_text(cp, value);
                    self.tally.note(&hits);
                    if field == "event" {
                        name = Some(m);
                    } else if matches!(field, "id" | "retry") {
                        other.push_str(&format!("{field}: {m}\n"));
                    }
                }
            }
        }
        if data.is_empty() {
            return if other.is_empty() {
                String::new()
            } else {
                format!("{other}\n")
            };
        }
        let ev = self.event(engine, cp, name.as_deref(), &data.join("\n"));
        format!("{other}{ev}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../policies/default.yaml"
        ))
        .unwrap();
        Engine::from_source(&src).unwrap()
    }

    fn chat_stream(text: &str, split: usize) -> Vec<u8> {
        let mut s = String::new();
        for piece in [&text[..split], &text[split..]] {
            let c = json!({"id": "x", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
            s.push_str(&format!("data: {c}\n\n"));
        }
        let end = json!({"id": "x", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        s.push_str(&format!("data: {end}\n\ndata: [DONE]\n\n"));
        s.into_bytes()
    }

    fn collect_chat(out: &[u8]) -> String {
        String::from_utf8_lossy(out)
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    #[test]
    fn secret_split_at_every_byte_and_every_chunk_boundary_is_masked() {
        let e = engine();
        let cp = e.policy("engineering").unwrap();
        let text = "Write to jane.doe@example.com today.";
        let body = chat_stream(text, 0);
        for split in 1..text.len() {
            let body_split = chat_stream(text, split);
            // Also cut the raw bytes anywhere: events themselves arrive in pieces.
            for cut in [
                1,
                body_split.len() / 3,
                body_split.len() / 2,
                body_split.len() - 1,
            ] {
                let mut m = SseMasker::default();
                let mut out = m.chunk(&e, cp, &body_split[..cut], false);
                out.extend(m.chunk(&e, cp, &body_split[cut..], true));
                let s = String::from_utf8_lossy(&out);
                assert!(!s.contains("jane"), "leak at split {split} cut {cut}: {s}");
                assert!(
                    !s.contains("example.com"),
                    "leak at split {split} cut {cut}: {s}"
                );
                assert_eq!(collect_chat(&out), "Write to [EMAIL] today.");
            }
        }
        assert!(!body.is_empty());
    }

    #[test]
    fn anthropic_blocks_flush_before_stop() {
        let e = engine();
        let cp = e.policy("engineering").unwrap();
        let mut m = SseMasker::default();
        let mut input = String::new();
        for piece in ["call +1 415 ", "555 0134 or jane", "@example.com"] {
            let d = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}});
            input.push_str(&format!("event: content_block_delta\ndata: {d}\n\n"));
        }
        input.push_str(
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        );
        let out = String::from_utf8(m.chunk(&e, cp, input.as_bytes(), true)).unwrap();
        let text: String = out
            .split("\n\n")
            .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(text, "call [PHONE] or [EMAIL]");
        let last = out.trim_end().rsplit("\n\n").next().unwrap();
        assert!(last.starts_with("event: content_block_stop\n"), "{out}");
    }

    fn run(input: &str, cut: usize) -> String {
        let e = engine();
        let cp = e.policy("engineering").unwrap();
        let mut m = SseMasker::default();
        let mut out = m.chunk(&e, cp, &input.as_bytes()[..cut], false);
        out.extend(m.chunk(&e, cp, &input.as_bytes()[cut..], true));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn responses_api_deltas_and_done_events() {
        let mut input = String::new();
        for piece in ["mail jane.d", "oe@example.com now"] {
            let d = json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": piece});
            input.push_str(&format!("event: response.output_text.delta\ndata: {d}\n\n"));
        }
        let done = json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0,
            "text": "mail jane.doe@example.com now"});
        input.push_str(&format!(
            "event: response.output_text.done\ndata: {done}\n\n"
        ));
        for cut in [5, input.len() / 2, input.len() - 3] {
            let out = run(&input, cut);
            assert!(!out.contains("jane"), "{out}");
            let mut deltas = String::new();
            for ev in out.split("\n\n") {
                if let Some(d) = ev.lines().find_map(|l| l.strip_prefix("data: ")) {
                    let v: Value = serde_json::from_str(d).unwrap();
                    if v["type"] == "response.output_text.delta" {
                        deltas.push_str(v["delta"].as_str().unwrap());
                    }
                    if v["type"] == "response.output_text.done" {
                        assert_eq!(v["text"], "mail [EMAIL] now");
                    }
                }
            }
            assert_eq!(deltas, "mail [EMAIL] now");
        }
    }

    #[test]
    fn completions_stream_and_tool_call_arguments() {
        let mut input = String::new();
        for (piece, fin) in [
            ("call +1 41", Value::Null),
            ("5 555 0134", Value::from("stop")),
        ] {
            let c = json!({"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": piece, "finish_reason": fin}]});
            input.push_str(&format!("data: {c}\n\n"));
        }
        let out = run(&input, 7);
        let text: String = out
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| {
                serde_json::from_str::<Value>(d).unwrap()["choices"][0]["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        assert_eq!(text, "call [PHONE]");

        let mut input = String::new();
        for (piece, fin) in [
            ("{\"to\":\"jane.doe@exa", Value::Null),
            ("mple.com\"}", Value::Null),
        ] {
            let c = json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, "finish_reason": fin}]});
            input.push_str(&format!("data: {c}\n\n"));
        }
        let end = json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]});
        input.push_str(&format!("data: {end}\n\ndata: [DONE]\n\n"));
        let out = run(&input, 3);
        assert!(!out.contains("jane"), "{out}");
        let args: String = out
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .filter_map(|d| {
                let v: Value = serde_json::from_str(d).unwrap();
                v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(args, "{\"to\":\"[EMAIL]\"}");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
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

    /// SSE-ish input: real event shapes mixed with arbitrary bytes.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"jane.doe@exa".to_vec()),
            Just(b"mple.com\"},\"finish_reason\":null}]}\n\n".to_vec()),
            Just(b"event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\r\n\r\n".to_vec()),
            Just(b"data: [DONE]\n\n".to_vec()),
            Just(b": comment\nid: 7\nretry: 10\n".to_vec()),
            prop::collection::vec(any::<u8>(), 0..64),
        ];
        prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn any_stream_cut_anywhere_never_panics_and_never_leaks(s in stream(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            let e = engine();
            let cp = e.policy("engineering").unwrap();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(s.len() + 1)).collect();
            points.push(0);
            points.push(s.len());
            points.sort_unstable();
            let mut m = SseMasker::default();
            let mut out = Vec::new();
            for w in points.windows(2) {
                let end = w[1] == s.len();
                out.extend(m.chunk(e, cp, &s[w[0]..w[1]], end));
            }
            let text = String::from_utf8_lossy(&out);
            prop_assert!(!text.contains("jane.doe@example.com"), "{}", text);
        }
    }

    #[test]
    fn an_event_over_the_bound_ends_the_stream_with_an_error() {
        let e = engine();
        let cp = e.policy("engineering").unwrap();
        let mut m = SseMasker::default();
        let big = vec![b'a'; MAX_EVENT_BYTES + 10];
        let out = String::from_utf8(m.chunk(e, cp, &big, false)).unwrap();
        assert!(out.starts_with("event: error\n"), "{out}");
        assert!(m.chunk(e, cp, b"data: {}\n\n", true).is_empty());
    }
}
