//! A built-in demo model upstream for the local stack and the tests: OpenAI- and
//! Anthropic-compatible, streaming and non-streaming. It answers with a fixed sentence that
//! contains personal data (so masking has something to do) followed by an echo of the prompt.
//!
//! Response headers report what the upstream saw, so tests can prove the gateway stripped
//! its own headers and the caller's token before forwarding. Like a real model server behind
//! a permissive framework, it answers every path and method; it also remembers every request
//! it received (`GET /__demo/received`, on its own port only), so tests can prove that a
//! refused request never reached it. With `x-demo-extras: 1` its answers also carry the canned
//! personal data in `logprobs`, in reasoning fields and as an object key.

use axum::{
    body::Body,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Requests received, newest last (bounded).
static RECEIVED: Mutex<VecDeque<Value>> = Mutex::new(VecDeque::new());
const RECEIVED_MAX: usize = 2000;

/// Remember a request: method, path, and its body as text (decoded when gzip/deflate).
async fn record(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    if parts.uri.path() != "/__demo/received" {
        let enc = parts
            .headers
            .get("content-encoding")
            .and_then(|v| v.to_str().ok());
        let plain = policy_engine::wire::decode_body(enc, &bytes, 64 << 20)
            .unwrap_or_else(|_| bytes.to_vec());
        if let Ok(mut r) = RECEIVED.lock() {
            r.push_back(json!({
                "method": parts.method.as_str(),
                "path": parts.uri.to_string(),
                "body": String::from_utf8_lossy(&plain),
            }));
            while r.len() > RECEIVED_MAX {
                r.pop_front();
            }
        }
    }
    next.run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn received() -> Json<Value> {
    let list = RECEIVED
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    Json(Value::Array(list))
}

/// Any other path or method: served, as a permissive server would.
async fn anything(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    json_response(
        json!({"object": "demo.echo", "method": method.as_str(), "path": uri.to_string()}),
        seen_headers(&headers, None),
    )
}

/// The canned part of every answer.
pub const CANNED: &str =
    "Sure. You can reach our support lead at jane.doe@example.com or call +1 415 555 0134.";

fn last_user_text(body: &Value) -> String {
    let from_content = |c: &Value| -> String {
        match c {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    };
    if let Some(msgs) = body.get("messages").and_then(Value::as_array) {
        if let Some(m) = msgs
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        {
            return m.get("content").map(from_content).unwrap_or_default();
        }
    }
    match body.get("input").or_else(|| body.get("prompt")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.get("content").map(from_content).unwrap_or_default(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn answer(body: &Value) -> String {
    let echo = last_user_text(body);
    let echo: String = echo.chars().take(2000).collect();
    format!("{CANNED} You said: {echo}")
}

fn seen_headers(h: &HeaderMap, body: Option<&Value>) -> Vec<(&'static str, HeaderValue)> {
    let gh = h.keys().any(|k| k.as_str().starts_with("x-gatehouse-"));
    let auth = h.contains_key("authorization");
    let max = body
        .and_then(|b| {
            ["max_tokens", "max_completion_tokens", "max_output_tokens"]
                .iter()
                .find_map(|k| b.get(*k))
        })
        .and_then(Value::as_u64)
        .map(|m| m.to_string())
        .unwrap_or_default();
    vec![
        (
            "x-demo-max-tokens",
            HeaderValue::from_str(&max).unwrap_or(HeaderValue::from_static("")),
        ),
        ("x-demo-upstream", HeaderValue::from_static("1")),
        (
            "x-demo-saw-gatehouse-headers",
            HeaderValue::from_static(if gh { "true" } else { "false" }),
        ),
        (
            "x-demo-saw-authorization",
            HeaderValue::from_static(if auth { "true" } else { "false" }),
        ),
    ]
}

/// Split text into small deltas (a few characters each) as real models stream, or, when the
/// request has `x-demo-split-at: N`, into exactly two deltas cut at byte N (tests use it to
/// split a secret at every offset).
fn deltas(text: &str, split_at: Option<usize>) -> Vec<String> {
    if let Some(n) = split_at.filter(|n| *n <= text.len() && text.is_char_boundary(*n)) {
        return vec![text[..n].to_owned(), text[n..].to_owned()];
    }
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(7).map(|c| c.iter().collect()).collect()
}

fn sse(events: Vec<String>, seen: Vec<(&'static str, HeaderValue)>) -> Response {
    let stream = futures::stream::unfold(events.into_iter(), |mut it| async move {
        let ev = it.next()?;
        tokio::time::sleep(Duration::from_millis(2)).await;
        Some((Ok::<_, std::convert::Infallible>(ev), it))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    for (k, v) in seen {
        r.headers_mut().insert(k, v);
    }
    r
}

fn json_response(v: Value, seen: Vec<(&'static str, HeaderValue)>) -> Response {
    let mut r = Json(v).into_response();
    for (k, v) in seen {
        r.headers_mut().insert(k, v);
    }
    r
}

fn model(body: &Value) -> String {
    body.get("model")
        .and_then(Value::as_str)
        .unwrap_or("demo")
        .to_owned()
}

async fn openai(Path(api): Path<String>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let enc = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok());
    let body = policy_engine::wire::decode_body(enc, &body, 16 << 20).unwrap_or_default();
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "invalid JSON", "type": "invalid_request_error"}})),
        )
            .into_response();
    };
    let seen = seen_headers(&headers, Some(&body));
    let text = answer(&body);
    let model = model(&body);
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let split_at = headers
        .get("x-demo-split-at")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let created = 1_764_000_000u64;
    if let Some(mode) = headers.get("x-demo-raw").and_then(|v| v.to_str().ok()) {
        return raw_answer(mode);
    }
    let extras = headers.get("x-demo-extras").is_some();
    if extras {
        return with_extras(&api, stream, &model, &text, seen);
    }
    match api.as_str() {
        "chat/completions" if stream => {
            let mut ev = Vec::new();
            let first = json!({"id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]});
            ev.push(format!("data: {first}\n\n"));
            for d in deltas(&text, split_at) {
                let c = json!({"id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": {"content": d}, "finish_reason": null}]});
                ev.push(format!("data: {c}\n\n"));
            }
            let last = json!({"id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
            ev.push(format!("data: {last}\n\n"));
            ev.push("data: [DONE]\n\n".into());
            sse(ev, seen)
        }
        "chat/completions" => json_response(
            json!({"id": "chatcmpl-demo", "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}),
            seen,
        ),
        "completions" => json_response(
            json!({"id": "cmpl-demo", "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": null}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}),
            seen,
        ),
        "responses" => json_response(
            json!({"id": "resp_demo", "object": "response", "created_at": created, "model": model, "status": "completed",
                "output": [{"type": "message", "id": "msg_demo", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                "usage": {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}}),
            seen,
        ),
        "embeddings" => json_response(
            json!({"object": "list", "model": model,
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "usage": {"prompt_tokens": 3, "total_tokens": 3}}),
            seen,
        ),
        "messages" if stream => {
            let mut ev = Vec::new();
            let start = json!({"type": "message_start", "message": {"id": "msg_demo", "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 1}}});
            ev.push(format!("event: message_start\ndata: {start}\n\n"));
            let cbs = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}});
            ev.push(format!("event: content_block_start\ndata: {cbs}\n\n"));
            for d in deltas(&text, split_at) {
                let c = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}});
                ev.push(format!("event: content_block_delta\ndata: {c}\n\n"));
            }
            ev.push(format!(
                "event: content_block_stop\ndata: {}\n\n",
                json!({"type": "content_block_stop", "index": 0})
            ));
            let md = json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 20}});
            ev.push(format!("event: message_delta\ndata: {md}\n\n"));
            ev.push(format!(
                "event: message_stop\ndata: {}\n\n",
                json!({"type": "message_stop"})
            ));
            sse(ev, seen)
        }
        "messages" => json_response(
            json!({"id": "msg_demo", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 20}}),
            seen,
        ),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "unknown route", "type": "not_found_error"}})),
        )
            .into_response(),
    }
}

/// Hostile answer shapes (tests of the masker, `x-demo-raw: MODE`): each carries the canned
/// e-mail address or a card number in a way a careless masker would pass on.
fn raw_answer(mode: &str) -> Response {
    let sse = |body: String| {
        let mut r = Response::new(Body::from(body));
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("text/event-stream"),
        );
        r
    };
    let chunk = |delta: Value| json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
    let done = "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    match mode {
        "choices-not-object" => sse(format!(
            "data: {}\n\ndata: {}\n\n{done}",
            json!({"object": "text_completion", "choices": [1]}),
            chunk(json!({"content": "write to jane.doe@example.com or 4111 1111 1111 1111"}))
        )),
        "cr-only" => sse(format!(
            "data: {}\r\rdata: {}\r\r{}",
            chunk(json!({"content": "write to jane.doe@exa"})),
            chunk(json!({"content": "mple.com now"})),
            done.replace('\n', "\r")
        )),
        "typed-chunk" => sse(format!(
            "data: {}\n\ndata: {}\n\n{done}",
            json!({"type": "chunk", "choices": [{"index": 0, "delta": {"content": "write to jane.doe@exa"}}]}),
            json!({"type": "chunk", "choices": [{"index": 0, "delta": {"content": "mple.com now"}}]})
        )),
        "tool-name-split" => sse(format!(
            "data: {}\n\ndata: {}\n\n{done}",
            chunk(json!({"tool_calls": [{"index": 0, "function": {"name": "jane.doe@exa", "arguments": ""}}]})),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"name": "mple.com"}}]}))
        )),
        "responses-item-ids" => sse(format!(
            "event: response.output_text.delta\ndata: {}\n\nevent: response.output_text.delta\ndata: {}\n\nevent: response.output_text.done\ndata: {}\n\n",
            json!({"type": "response.output_text.delta", "item_id": "a", "output_index": 0, "content_index": 0, "delta": "jane.doe@exa"}),
            json!({"type": "response.output_text.delta", "item_id": "b", "output_index": 0, "content_index": 0, "delta": "mple.com"}),
            json!({"type": "response.output_text.done", "item_id": "b", "output_index": 0, "content_index": 0, "text": ""})
        )),
        "anthropic-start" => sse(format!(
            "event: content_block_start\ndata: {}\n\nevent: content_block_delta\ndata: {}\n\nevent: content_block_stop\ndata: {}\n\n",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "jane.doe@exa"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "mple.com"}}),
            json!({"type": "content_block_stop", "index": 0})
        )),
        "nan-data" => sse(format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"jane.doe\\u0040example.com\"}}}}],\"n\":NaN}}\n\n{done}"
        )),
        "escaped-text" => {
            let mut r = Response::new(Body::from("{\"answer\": \"jane.doe\\u0040example.com\", \"n\": NaN}"));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/plain"));
            r
        }
        "number-card" => Json(json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "card:"}}],
            "card": 4111111111111111u64})).into_response(),
        "dup-key" => {
            let mut r = Response::new(Body::from(
                "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"jane.doe@example.com\",\"content\":\"hi\"}}]}",
            ));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        _ => (StatusCode::BAD_REQUEST, "unknown x-demo-raw mode").into_response(),
    }
}

/// Answers that carry the canned e-mail address outside the message text: as logprobs
/// tokens, in reasoning fields, and as an object key.
fn with_extras(
    api: &str,
    stream: bool,
    model: &str,
    text: &str,
    seen: Vec<(&'static str, HeaderValue)>,
) -> Response {
    let email = "jane.doe@example.com";
    let pieces = ["jane", ".doe", "@", "example", ".com"];
    let logprobs = json!({"content": pieces.iter().map(|t| json!({
        "token": t, "logprob": -0.1, "bytes": t.as_bytes(),
        "top_logprobs": [{"token": t, "logprob": -0.1, "bytes": t.as_bytes()}]})).collect::<Vec<_>>()});
    match (api, stream) {
        ("chat/completions", true) => {
            let mut ev = Vec::new();
            for (i, p) in pieces.iter().enumerate() {
                let lp = json!({"content": [{"token": p, "logprob": -0.1, "bytes": p.as_bytes(), "top_logprobs": []}]});
                let c = json!({"id": "chatcmpl-demo", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": {"reasoning_content": p, "content": if i == 0 { text } else { "" }},
                        "logprobs": lp, "finish_reason": null}]});
                ev.push(format!("data: {c}\n\n"));
            }
            let last = json!({"id": "chatcmpl-demo", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
            ev.push(format!("data: {last}\n\n"));
            ev.push("data: [DONE]\n\n".into());
            sse(ev, seen)
        }
        _ => json_response(
            json!({"id": "chatcmpl-demo", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                    "reasoning_content": format!("the address is {email}")},
                    "logprobs": logprobs, "finish_reason": "stop"}],
                "metadata": {email: "contact"}}),
            seen,
        ),
    }
}

async fn models(headers: HeaderMap) -> Response {
    json_response(
        json!({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "demo"},
            {"id": "claude-sonnet-4", "object": "model", "created": 0, "owned_by": "demo"}]}),
        seen_headers(&headers, None),
    )
}

/// The demo upstream's routes.
pub fn router() -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/{*api}", post(openai))
        .route("/__demo/received", get(received))
        .fallback(anything)
        .layer(axum::middleware::from_fn(record))
}
