//! The filter's decisions, free of any proxy-wasm call so they run and are tested natively.
//!
//! `lib.rs` feeds request headers and the buffered body in and carries the outcome out
//! (a local reply, or headers to set and an optional rewritten body).

use crate::config::FilterConfig;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use policy_engine::extract::Api;
use policy_engine::identity::TokenError;
use policy_engine::{Caller, Decision, Engine, Verdict};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;

/// Headers the filter owns. Inbound ones are removed before anything else happens.
pub const HEADER_PREFIX: &str = "x-gatehouse-";
pub const H_IDENTITY: &str = "x-gatehouse-identity";
pub const H_SIGNATURE: &str = "x-gatehouse-signature";
pub const H_PRINCIPAL: &str = "x-gatehouse-principal";
pub const H_POLICY: &str = "x-gatehouse-policy";
pub const H_BUNDLE: &str = "x-gatehouse-bundle";
pub const H_REQUEST_ID: &str = "x-gatehouse-request-id";
pub const H_VERDICT: &str = "x-gatehouse-verdict";
pub const H_RULES: &str = "x-gatehouse-rules";

/// What the identity header carries to the ext_proc server (base64url JSON, HMAC-signed).
///
/// It is set in the headers phase: proxy-wasm pauses on request headers stop every later
/// filter until the body is complete, so the filter lets headers go on once the caller is
/// known and decides the body in the body phase (a block is then a local reply).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Handoff {
    pub request_id: String,
    pub issuer: String,
    pub principal: String,
    pub groups: Vec<String>,
    pub policy: String,
    pub bundle: String,
    /// Token expiry: the server refuses a hand-off older than the token it came from.
    pub expires_at: u64,
}

/// The request facts the gate needs from the headers.
#[derive(Debug, Default, Clone)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_encoding: Option<String>,
    pub request_id: Option<String>,
    pub has_body: bool,
}

/// A reply the filter sends itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Event for the session log.
    pub event: Value,
}

/// Request may go on with these headers (and, when a limit clamps it, this body).
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Reply(Reply),
    Forward(Forward),
}

/// After the headers: refuse now, or go on (with headers to set), perhaps waiting for the
/// body before the request may reach the upstream.
#[derive(Debug)]
pub enum HeadStep {
    Reply(Reply),
    Continue {
        headers: Vec<(String, String)>,
        /// Remove `content-length`: the body may be rewritten (a clamped limit).
        drop_content_length: bool,
        body: Option<Pending>,
    },
}

/// State kept between the headers and the body callbacks.
#[derive(Debug, Clone)]
pub struct Pending {
    caller: Caller,
    head: RequestHead,
    request_id: String,
}

/// Verified tokens, keyed by the SHA-256 of the token, kept until they expire.
#[derive(Default)]
pub struct TokenCache {
    map: HashMap<[u8; 32], Caller>,
}

impl TokenCache {
    const MAX: usize = 10_000;

    fn get(&self, key: &[u8; 32], now: u64) -> Option<&Caller> {
        self.map.get(key).filter(|c| c.expires_at > now)
    }

    fn put(&mut self, key: [u8; 32], c: Caller, now: u64) {
        if self.map.len() >= Self::MAX {
            self.map.retain(|_, v| v.expires_at > now);
            if self.map.len() >= Self::MAX {
                self.map.clear();
            }
        }
        self.map.insert(key, c);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The filter's compiled state: engine, settings and the per-worker token cache.
pub struct Gate {
    pub engine: Engine,
    pub cfg: FilterConfig,
    pub cache: TokenCache,
}

/// Which error format the caller's SDK expects.
fn is_anthropic(path: &str) -> bool {
    Api::from_path(path) == Some(Api::AnthropicMessages)
}

/// An error body in the API's own shape, so SDKs raise a normal API error.
pub fn error_body(path: &str, status: u32, code: &str, message: &str) -> Vec<u8> {
    let v = if is_anthropic(path) {
        let t = match status {
            401 => "authentication_error",
            403 => "permission_error",
            413 => "request_too_large",
            404 => "not_found_error",
            500..=599 => "api_error",
            _ => "invalid_request_error",
        };
        json!({"type": "error", "error": {"type": t, "message": message}})
    } else {
        let t = match status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            500..=599 => "server_error",
            _ => "invalid_request_error",
        };
        json!({"error": {"message": message, "type": t, "param": null, "code": code}})
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

fn new_request_id(seed: &str, now_nanos: u128) -> String {
    let h = Sha256::digest(format!("{seed}:{now_nanos}").as_bytes());
    hex::encode(&h[..12])
}

impl Gate {
    pub fn new(engine: Engine, cfg: FilterConfig) -> Self {
        Gate {
            engine,
            cfg,
            cache: TokenCache::default(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reply(
        &self,
        head: &RequestHead,
        request_id: &str,
        status: u32,
        code: &str,
        message: &str,
        extra: Vec<(String, String)>,
        event: Value,
    ) -> Reply {
        let msg = format!("{message} (request id {request_id})");
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (H_REQUEST_ID.to_owned(), request_id.to_owned()),
        ];
        headers.extend(extra);
        Reply {
            status,
            headers,
            body: error_body(&head.path, status, code, &msg),
            event,
        }
    }

    fn authenticate(&mut self, head: &RequestHead, now: u64) -> Result<Caller, TokenError> {
        let auth = head.authorization.as_deref().ok_or(TokenError::Missing)?;
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Missing)?;
        if token.len() > self.cfg.max_token_bytes {
            return Err(TokenError::Malformed);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(c) = self.cache.get(&key, now) {
            return Ok(c.clone());
        }
        let c = self.engine.authenticate(token, now)?;
        self.cache.put(key, c.clone(), now);
        Ok(c)
    }

    fn event(
        &self,
        request_id: &str,
        head: &RequestHead,
        caller: Option<&Caller>,
        status: u32,
        d: Option<&Decision>,
        reason: &str,
    ) -> Value {
        json!({
            "kind": "filter_decision",
            "request_id": request_id,
            "method": head.method,
            "path": head.path,
            "status": status,
            "reason": reason,
            "bundle": self.engine.digest,
            "identity": caller.map(|c| json!({"issuer": c.issuer, "principal": c.principal, "groups": c.groups})),
            "decision": d,
        })
    }

    /// Headers phase: identity, policy selection, and what the body phase must do.
    pub fn on_headers(&mut self, head: RequestHead, now: u64, now_nanos: u128) -> HeadStep {
        let request_id = head
            .request_id
            .clone()
            .filter(|r| !r.is_empty() && r.len() <= 128)
            .unwrap_or_else(|| new_request_id(&head.path, now_nanos));
        let caller = match self.authenticate(&head, now) {
            Ok(c) => c,
            Err(e) => {
                let ev = self.event(&request_id, &head, None, 401, None, e.code());
                let www = format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    e.to_string().replace('"', "'")
                );
                return HeadStep::Reply(self.reply(
                    &head,
                    &request_id,
                    401,
                    "invalid_token",
                    &format!("authentication failed: {e}"),
                    vec![("www-authenticate".into(), www)],
                    ev,
                ));
            }
        };
        let Some(policy) = self.engine.select(&caller) else {
            let ev = self.event(&request_id, &head, Some(&caller), 403, None, "no_policy");
            let msg = format!("no policy admits principal `{}`", caller.principal);
            return HeadStep::Reply(self.reply(
                &head,
                &request_id,
                403,
                "no_policy",
                &msg,
                vec![],
                ev,
            ));
        };
        let policy_id = policy.policy.id.clone();
        // A completion limit may rewrite the body, so its length is not known yet.
        let clamps = policy.policy.limits.max_completion_tokens.is_some();
        let headers = self.handoff_headers(&request_id, &caller, &policy_id);
        if Api::from_path(&head.path).is_none() || head.method != "POST" {
            // Not an inference call (e.g. GET /v1/models): identity checked, no body rules.
            return HeadStep::Continue {
                headers,
                drop_content_length: false,
                body: None,
            };
        }
        if !head.has_body {
            let ev = self.event(&request_id, &head, Some(&caller), 400, None, "empty_body");
            return HeadStep::Reply(self.reply(
                &head,
                &request_id,
                400,
                "malformed_request",
                "inference request has no body",
                vec![],
                ev,
            ));
        }
        if let Some(enc) = head.content_encoding.as_deref() {
            if !matches!(
                enc.trim().to_ascii_lowercase().as_str(),
                "gzip" | "deflate" | "identity" | "x-gzip"
            ) {
                let ev = self.event(
                    &request_id,
                    &head,
                    Some(&caller),
                    415,
                    None,
                    "content_encoding",
                );
                return HeadStep::Reply(self.reply(
                    &head,
                    &request_id,
                    415,
                    "unsupported_content_encoding",
                    &format!(
                        "content-encoding `{enc}` is not supported (use gzip, deflate or identity)"
                    ),
                    vec![],
                    ev,
                ));
            }
        }
        HeadStep::Continue {
            headers,
            drop_content_length: clamps,
            body: Some(Pending {
                caller,
                head,
                request_id,
            }),
        }
    }

    /// Body phase. `total` is the body's size so far; past `max_body_bytes` it is refused
    /// unread (`body` may then be empty).
    pub fn on_body(&mut self, p: Pending, total: usize, body: &[u8]) -> Outcome {
        let head = &p.head;
        if total > self.cfg.max_body_bytes || body.len() > self.cfg.max_body_bytes {
            let ev = self.event(
                &p.request_id,
                head,
                Some(&p.caller),
                413,
                None,
                "body_too_large",
            );
            return Outcome::Reply(self.reply(
                head,
                &p.request_id,
                413,
                "request_too_large",
                &format!("request body exceeds {} bytes", self.cfg.max_body_bytes),
                vec![],
                ev,
            ));
        }
        let decoded = match decode(
            head.content_encoding.as_deref(),
            body,
            self.cfg.max_decoded_bytes,
        ) {
            Ok(d) => d,
            Err(msg) => {
                let ev = self.event(
                    &p.request_id,
                    head,
                    Some(&p.caller),
                    400,
                    None,
                    "bad_encoding",
                );
                return Outcome::Reply(self.reply(
                    head,
                    &p.request_id,
                    400,
                    "malformed_request",
                    &msg,
                    vec![],
                    ev,
                ));
            }
        };
        let d = self.engine.decide(&p.caller, &head.path, &decoded);
        let enforced = d.enforced();
        if matches!(enforced, Verdict::Block | Verdict::Deny) {
            let ev = self.event(
                &p.request_id,
                head,
                Some(&p.caller),
                u32::from(d.status),
                Some(&d),
                "policy",
            );
            let code = d.rules.first().cloned().unwrap_or_else(|| "blocked".into());
            let extra = vec![
                (H_VERDICT.to_owned(), d.verdict.as_str().to_owned()),
                (H_RULES.to_owned(), d.rules.join(",")),
            ];
            return Outcome::Reply(self.reply(
                head,
                &p.request_id,
                u32::from(d.status),
                &code,
                &d.message,
                extra,
                ev,
            ));
        }
        let body = d.clamp.as_ref().and_then(|(field, max)| {
            let mut v: Value = serde_json::from_slice(&decoded).ok()?;
            v.as_object_mut()?.insert(field.clone(), Value::from(*max));
            let plain = serde_json::to_vec(&v).ok()?;
            encode(head.content_encoding.as_deref(), &plain).ok()
        });
        Outcome::Forward(Forward {
            headers: vec![(H_VERDICT.to_owned(), d.verdict.as_str().to_owned())],
            body,
            verdict: enforced,
        })
    }

    /// Headers handed to the ext_proc server: readable ones and the signed identity.
    fn handoff_headers(&self, request_id: &str, c: &Caller, policy: &str) -> Vec<(String, String)> {
        let h = Handoff {
            request_id: request_id.to_owned(),
            issuer: c.issuer.clone(),
            principal: c.principal.clone(),
            groups: c.groups.clone(),
            policy: policy.to_owned(),
            bundle: self.engine.digest.clone(),
            expires_at: c.expires_at,
        };
        let blob = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap_or_default());
        let sig = sign(self.cfg.handoff_key.as_bytes(), &blob);
        vec![
            (H_IDENTITY.to_owned(), blob),
            (H_SIGNATURE.to_owned(), sig),
            (H_PRINCIPAL.to_owned(), c.principal.clone()),
            (H_POLICY.to_owned(), policy.to_owned()),
            (H_BUNDLE.to_owned(), self.engine.digest.clone()),
            (H_REQUEST_ID.to_owned(), request_id.to_owned()),
        ]
    }
}

/// HMAC-SHA256 of the identity blob, hex. Shared by the filter and the server.
pub fn sign(key: &[u8], blob: &str) -> String {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(blob.as_bytes());
            hex::encode(m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Re-encode a rewritten body with the request's content-encoding.
pub fn encode(enc: Option<&str>, body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let enc = enc.map(|e| e.trim().to_ascii_lowercase());
    let err = |e: std::io::Error| e.to_string();
    match enc.as_deref() {
        None | Some("identity") | Some("") => Ok(body.to_vec()),
        Some("gzip") | Some("x-gzip") => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            w.write_all(body).map_err(err)?;
            w.finish().map_err(err)
        }
        Some("deflate") => {
            let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            w.write_all(body).map_err(err)?;
            w.finish().map_err(err)
        }
        Some(other) => Err(format!("content-encoding `{other}` is not supported")),
    }
}

/// Decode a request body per its content-encoding, bounded by `max` decoded bytes.
pub fn decode(enc: Option<&str>, body: &[u8], max: usize) -> Result<Vec<u8>, String> {
    let enc = enc.map(|e| e.trim().to_ascii_lowercase());
    let mut out = Vec::new();
    let limit = max as u64 + 1;
    let res = match enc.as_deref() {
        None | Some("identity") | Some("") => return Ok(body.to_vec()),
        Some("gzip") | Some("x-gzip") => flate2::read::GzDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out),
        Some("deflate") => flate2::read::ZlibDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out),
        Some(other) => return Err(format!("content-encoding `{other}` is not supported")),
    };
    match res {
        Ok(_) if out.len() > max => Err(format!("decoded request body exceeds {max} bytes")),
        Ok(_) => Ok(out),
        Err(e) => Err(format!("request body could not be decoded: {e}")),
    }
}
