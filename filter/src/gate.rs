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
use std::rc::Rc;

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
/// It is computed once per verified token; the request id travels in its own header.
///
/// It is set in the headers phase: proxy-wasm pauses on request headers stop every later
/// filter until the body is complete, so the filter lets headers go on once the caller is
/// known and decides the body in the body phase (a block is then a local reply).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Handoff {
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
    /// Event for the session log: a dry-run policy's decision that was not enforced.
    pub event: Option<Value>,
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
    /// The token names a key the filter does not have (or the issuer's keys were never
    /// fetched): fetch the issuer's JWKS, then run the headers phase again.
    FetchKeys(FetchTarget, RequestHead),
    Continue {
        headers: Vec<(String, String)>,
        /// Remove `content-length`: the body may be rewritten (a clamped limit).
        drop_content_length: bool,
        body: Option<Pending>,
    },
}

/// Where to fetch an issuer's JWKS: an Envoy cluster, `:authority` and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTarget {
    pub issuer: String,
    pub cluster: String,
    pub authority: String,
    pub path: String,
}

/// Split `http(s)://authority/path?query` into authority and path.
pub fn split_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!auth.is_empty()).then(|| (auth.to_owned(), path.to_owned()))
}

/// State kept between the headers and the body callbacks.
#[derive(Debug, Clone)]
pub struct Pending {
    caller: Rc<Verified>,
    head: RequestHead,
    request_id: String,
}

/// A verified token: the caller, the policy that admits it, and its signed hand-off
/// headers, all computed once per token.
#[derive(Debug)]
pub struct Verified {
    pub caller: Caller,
    /// Selected policy id, and whether it has a completion limit (which may rewrite bodies).
    policy: Option<(String, bool)>,
    handoff: Vec<(String, String)>,
}

/// Verified tokens, keyed by the whole token, kept until they expire.
#[derive(Default)]
pub struct TokenCache {
    map: HashMap<String, Rc<Verified>>,
}

impl TokenCache {
    const MAX: usize = 4096;

    fn get(&self, token: &str, now: u64) -> Option<Rc<Verified>> {
        self.map
            .get(token)
            .filter(|v| v.caller.expires_at > now)
            .cloned()
    }

    fn put(&mut self, token: &str, v: Rc<Verified>, now: u64) {
        if self.map.len() >= Self::MAX {
            self.map.retain(|_, v| v.caller.expires_at > now);
            if self.map.len() >= Self::MAX {
                self.map.clear();
            }
        }
        self.map.insert(token.to_owned(), v);
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

    fn authenticate(&mut self, head: &RequestHead, now: u64) -> Result<Rc<Verified>, TokenError> {
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
        if let Some(v) = self.cache.get(token, now) {
            return Ok(v);
        }
        let caller = self.engine.authenticate(token, now)?;
        let policy = self.engine.select(&caller).map(|p| {
            (
                p.policy.id.clone(),
                p.policy.limits.max_completion_tokens.is_some(),
            )
        });
        let handoff = match &policy {
            Some((id, _)) => self.handoff_headers(&caller, id),
            None => Vec::new(),
        };
        let v = Rc::new(Verified {
            caller,
            policy,
            handoff,
        });
        self.cache.put(token, v.clone(), now);
        Ok(v)
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

    /// The JWKS endpoint of the issuer of `head`'s token, if it has one.
    fn fetch_target(&self, head: &RequestHead) -> Option<FetchTarget> {
        let token = head.authorization.as_deref()?.get(7..)?.trim();
        let iss = policy_engine::identity::peek_issuer(token).ok()?;
        let ik = self.engine.issuer_by_url(&iss)?;
        let (authority, path) = split_uri(ik.issuer.jwks_uri.as_deref()?)?;
        Some(FetchTarget {
            issuer: ik.issuer.name.clone(),
            cluster: ik.issuer.jwks_cluster.clone()?,
            authority,
            path,
        })
    }

    /// Whether `head`'s token names a key the filter does not have.
    pub fn key_unknown(&mut self, head: &RequestHead, now: u64) -> bool {
        matches!(self.authenticate(head, now), Err(TokenError::UnknownKey))
    }

    /// Install a JWKS document fetched for `issuer`; returns how many keys are usable.
    pub fn install_jwks(&mut self, issuer: &str, doc: &[u8]) -> Result<usize, String> {
        let algs = self
            .engine
            .issuers
            .iter()
            .find(|i| i.issuer.name == issuer)
            .map(|i| i.issuer.algorithms.clone())
            .ok_or_else(|| format!("unknown issuer `{issuer}`"))?;
        let v: Value = serde_json::from_slice(doc).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let keys = policy_engine::identity::parse_jwks(&v, &algs).map_err(|e| e.to_string())?;
        if keys.is_empty() {
            return Err("JWKS has no key usable with the pinned algorithms".into());
        }
        let n = keys.len();
        self.engine.set_issuer_keys(issuer, keys);
        Ok(n)
    }

    /// Headers phase: identity, policy selection, and what the body phase must do.
    /// `may_fetch`: an unknown key id may trigger a JWKS fetch (false on the retry after it).
    pub fn on_headers(
        &mut self,
        head: RequestHead,
        now: u64,
        now_nanos: u128,
        may_fetch: bool,
    ) -> HeadStep {
        let request_id = head
            .request_id
            .clone()
            .filter(|r| !r.is_empty() && r.len() <= 128)
            .unwrap_or_else(|| new_request_id(&head.path, now_nanos));
        let auth = self.authenticate(&head, now);
        if may_fetch && matches!(auth, Err(TokenError::UnknownKey)) {
            if let Some(t) = self.fetch_target(&head) {
                return HeadStep::FetchKeys(t, head);
            }
        }
        let verified = match auth {
            Ok(v) => v,
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
        let caller = &verified.caller;
        let Some((_, clamps)) = &verified.policy else {
            let ev = self.event(&request_id, &head, Some(caller), 403, None, "no_policy");
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
        // A completion limit may rewrite the body, so its length is not known yet.
        let clamps = *clamps;
        let mut headers = verified.handoff.clone();
        headers.push((H_REQUEST_ID.to_owned(), request_id.clone()));
        if Api::from_path(&head.path).is_none() || head.method != "POST" {
            // Not an inference call (e.g. GET /v1/models): identity checked, no body rules.
            return HeadStep::Continue {
                headers,
                drop_content_length: false,
                body: None,
            };
        }
        if !head.has_body {
            let ev = self.event(&request_id, &head, Some(caller), 400, None, "empty_body");
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
                    Some(caller),
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
                caller: verified.clone(),
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
                Some(&p.caller.caller),
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
                    Some(&p.caller.caller),
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
        let d = self.engine.decide(&p.caller.caller, &head.path, &decoded);
        let enforced = d.enforced();
        if matches!(enforced, Verdict::Block | Verdict::Deny) {
            let ev = self.event(
                &p.request_id,
                head,
                Some(&p.caller.caller),
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
        // Dry run: what would have been refused is recorded, not enforced.
        let event = (d.verdict != enforced).then(|| {
            self.event(
                &p.request_id,
                head,
                Some(&p.caller.caller),
                200,
                Some(&d),
                "dry_run",
            )
        });
        Outcome::Forward(Forward {
            headers: vec![(H_VERDICT.to_owned(), d.verdict.as_str().to_owned())],
            body,
            verdict: enforced,
            event,
        })
    }

    /// Headers handed to the ext_proc server: readable ones and the signed identity.
    fn handoff_headers(&self, c: &Caller, policy: &str) -> Vec<(String, String)> {
        let h = Handoff {
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

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_simple::prelude::*;
    use std::sync::OnceLock;

    fn kp() -> &'static RS256KeyPair {
        static KP: OnceLock<RS256KeyPair> = OnceLock::new();
        KP.get_or_init(|| RS256KeyPair::generate(2048).unwrap().with_key_id("k"))
    }

    fn gate() -> Gate {
        let jwks = policy_engine::identity::rs256_jwks(kp(), "k");
        let bundle = format!(
            r#"
apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata: {{name: t}}
identity:
  issuers:
    - {{name: idp, issuer: "https://idp.test", audiences: [gh], algorithms: [RS256], jwks: {jwks}}}
policies:
  - id: eng
    match: {{groups: [eng]}}
    models: ["gpt-*"]
    limits: {{max_completion_tokens: 100, completion_over_limit: clamp}}
    prompt_rules:
      - {{id: secret-word, action: block, literals: [swordfish]}}
"#
        );
        let engine = Engine::from_source(&bundle).unwrap();
        let cfg = FilterConfig::parse(
            br#"{"bundle": "", "handoff_key": "0123456789abcdef0123", "max_body_bytes": 2048}"#,
        )
        .unwrap();
        Gate::new(engine, cfg)
    }

    fn token(groups: &[&str]) -> String {
        let claims =
            Claims::with_custom_claims(json!({"groups": groups}), Duration::from_secs(600))
                .with_issuer("https://idp.test")
                .with_audience("gh")
                .with_subject("alice");
        kp().sign(claims).unwrap()
    }

    fn head(auth: Option<String>, path: &str) -> RequestHead {
        RequestHead {
            method: "POST".into(),
            path: path.into(),
            authorization: auth.map(|t| format!("Bearer {t}")),
            content_encoding: None,
            request_id: Some("rid-1".into()),
            has_body: true,
        }
    }

    fn now() -> u64 {
        Clock::now_since_epoch().as_secs()
    }

    fn pending(g: &mut Gate, h: RequestHead) -> Pending {
        match g.on_headers(h, now(), 0, false) {
            HeadStep::Continue { body: Some(p), .. } => p,
            other => panic!("expected to wait for the body, got {other:?}"),
        }
    }

    #[test]
    fn missing_token_gets_401_with_challenge() {
        let mut g = gate();
        let HeadStep::Reply(r) = g.on_headers(head(None, "/v1/chat/completions"), now(), 0, false)
        else {
            panic!("expected a reply")
        };
        assert_eq!(r.status, 401);
        assert!(r.headers.iter().any(
            |(k, v)| k == "www-authenticate" && v.starts_with("Bearer error=\"invalid_token\"")
        ));
    }

    #[test]
    fn valid_token_is_cached_and_handoff_is_signed() {
        let mut g = gate();
        let t = token(&["eng"]);
        let HeadStep::Continue {
            headers,
            drop_content_length,
            ..
        } = g.on_headers(
            head(Some(t.clone()), "/v1/chat/completions"),
            now(),
            0,
            false,
        )
        else {
            panic!()
        };
        assert!(
            drop_content_length,
            "a completion limit may rewrite the body"
        );
        assert_eq!(g.cache.len(), 1);
        let blob = &headers.iter().find(|(k, _)| k == H_IDENTITY).unwrap().1;
        let sig = &headers.iter().find(|(k, _)| k == H_SIGNATURE).unwrap().1;
        assert_eq!(sign(b"0123456789abcdef0123", blob), *sig);
        let h: Handoff = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(blob).unwrap()).unwrap();
        assert_eq!((h.principal.as_str(), h.policy.as_str()), ("alice", "eng"));
        // A second request with the same token is served from the cache.
        let _ = g.on_headers(head(Some(t), "/v1/chat/completions"), now(), 0, false);
        assert_eq!(g.cache.len(), 1);
    }

    #[test]
    fn caller_without_policy_gets_403() {
        let mut g = gate();
        let HeadStep::Reply(r) = g.on_headers(
            head(Some(token(&["sales"])), "/v1/chat/completions"),
            now(),
            0,
            false,
        ) else {
            panic!()
        };
        assert_eq!(r.status, 403);
    }

    #[test]
    fn block_reply_uses_api_error_shape_and_hides_the_match() {
        let mut g = gate();
        let p = pending(&mut g, head(Some(token(&["eng"])), "/v1/messages"));
        let body = br#"{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"the swordfish"}]}"#;
        let Outcome::Reply(r) = g.on_body(p, body.len(), body) else {
            panic!()
        };
        assert_eq!(r.status, 403);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "permission_error");
        assert!(!String::from_utf8_lossy(&r.body).contains("swordfish"));
        assert!(!r.event.to_string().contains("swordfish"));
    }

    #[test]
    fn oversized_gzip_and_unknown_encodings() {
        let mut g = gate();
        let p = pending(&mut g, head(Some(token(&["eng"])), "/v1/chat/completions"));
        let Outcome::Reply(r) = g.on_body(p, 4096, &[]) else {
            panic!()
        };
        assert_eq!(r.status, 413);

        let mut h = head(Some(token(&["eng"])), "/v1/chat/completions");
        h.content_encoding = Some("br".into());
        let HeadStep::Reply(r) = g.on_headers(h, now(), 0, false) else {
            panic!()
        };
        assert_eq!(r.status, 415);

        let mut h = head(Some(token(&["eng"])), "/v1/chat/completions");
        h.content_encoding = Some("gzip".into());
        let p = pending(&mut g, h);
        let plain = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"SWORDFISH? no: swordfish"}]}"#;
        let gz = encode(Some("gzip"), plain).unwrap();
        let Outcome::Reply(r) = g.on_body(p, gz.len(), &gz) else {
            panic!()
        };
        assert_eq!(r.status, 403);
    }

    #[test]
    fn clamp_rewrites_the_body_in_its_encoding() {
        let mut g = gate();
        let mut h = head(Some(token(&["eng"])), "/v1/chat/completions");
        h.content_encoding = Some("gzip".into());
        let p = pending(&mut g, h);
        let plain =
            br#"{"model":"gpt-4o","max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}"#;
        let gz = encode(Some("gzip"), plain).unwrap();
        let Outcome::Forward(f) = g.on_body(p, gz.len(), &gz) else {
            panic!()
        };
        let new = decode(Some("gzip"), &f.body.unwrap(), 1 << 20).unwrap();
        let v: Value = serde_json::from_slice(&new).unwrap();
        assert_eq!(v["max_tokens"], 100);
    }

    #[test]
    fn malformed_json_is_refused() {
        let mut g = gate();
        let p = pending(&mut g, head(Some(token(&["eng"])), "/v1/chat/completions"));
        let Outcome::Reply(r) = g.on_body(p, 5, b"{nope") else {
            panic!()
        };
        assert_eq!(r.status, 400);
    }

    #[test]
    fn dry_run_forwards_and_reports_what_it_would_have_blocked() {
        let jwks = policy_engine::identity::rs256_jwks(kp(), "k");
        let bundle = format!(
            r#"
apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata: {{name: t}}
identity:
  issuers:
    - {{name: idp, issuer: "https://idp.test", audiences: [gh], algorithms: [RS256], jwks: {jwks}}}
policies:
  - id: trial
    models: ["*"]
    dry_run: true
    prompt_rules:
      - {{id: secret-word, action: block, literals: [swordfish]}}
"#
        );
        let cfg = FilterConfig::parse(br#"{"bundle": "", "handoff_key": "0123456789abcdef0123"}"#)
            .unwrap();
        let mut g = Gate::new(Engine::from_source(&bundle).unwrap(), cfg);
        let p = pending(&mut g, head(Some(token(&[])), "/v1/chat/completions"));
        let body = br#"{"model":"m","messages":[{"role":"user","content":"swordfish"}]}"#;
        let Outcome::Forward(f) = g.on_body(p, body.len(), body) else {
            panic!("dry run must not block")
        };
        let ev = f.event.expect("the would-be block is recorded");
        assert_eq!(ev["decision"]["verdict"], "block");
        assert_eq!(ev["decision"]["dry_run"], true);
        let p = pending(&mut g, head(Some(token(&[])), "/v1/chat/completions"));
        let body = br#"{"model":"m","messages":[{"role":"user","content":"fine"}]}"#;
        let Outcome::Forward(f) = g.on_body(p, body.len(), body) else {
            panic!()
        };
        assert!(f.event.is_none());
    }
}
