//! The filter's decisions, free of any proxy-wasm call so they run and are tested natively.
//!
//! `lib.rs` feeds request headers and the buffered body in and carries the outcome out
//! (a local reply, or headers to set and an optional rewritten body). The wire contract with
//! the server (header names, hand-off, error bodies, body coding) is `policy_engine::wire`.

use crate::config::FilterConfig;
use policy_engine::identity::TokenError;
use policy_engine::record;
use policy_engine::routes::RouteMatch;
use policy_engine::wire::{self, Handoff};
use policy_engine::{Caller, Engine, Verdict};
use serde_json::Value;
use std::collections::HashMap;
use std::rc::Rc;

pub use policy_engine::wire::{
    HEADER_PREFIX, H_BUNDLE, H_CLIENT_REQUEST_ID, H_IDENTITY, H_POLICY, H_PRINCIPAL, H_REQUEST_ID,
    H_RULES, H_SIGNATURE, H_VERDICT,
};

/// The request facts the gate needs from the headers. Values were read as bytes and decoded
/// lossily: a header that is not UTF-8 cannot match anything it should not.
#[derive(Debug, Default, Clone)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_encoding: Option<String>,
    pub request_id: Option<String>,
    /// The caller's `x-gatehouse-session` (read before inbound gatehouse headers go).
    pub session: Option<String>,
    /// When the headers arrived, milliseconds since the Unix epoch.
    pub received_ms: u64,
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
    /// Fresh entropy for request ids (from the host at start), and a counter.
    id_seed: [u8; 32],
    id_counter: u64,
}

/// A caller-supplied `x-request-id` worth keeping for correlation: short, printable ASCII.
fn client_request_id(id: Option<&str>) -> Option<String> {
    id.filter(|r| !r.is_empty() && r.len() <= 128 && r.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

impl Gate {
    pub fn new(engine: Engine, cfg: FilterConfig) -> Self {
        let mut id_seed = [0u8; 32];
        // Without host entropy the ids are still unique per VM (clock and counter), only
        // guessable; they are never used as credentials.
        let _ = getrandom::getrandom(&mut id_seed);
        Gate {
            engine,
            cfg,
            cache: TokenCache::default(),
            id_seed,
            id_counter: 0,
        }
    }

    /// A new random request id: the caller's `x-request-id` is never used as one.
    fn new_request_id(&mut self, now_nanos: u128) -> String {
        self.id_counter += 1;
        let mut seed = self.id_seed.to_vec();
        seed.extend_from_slice(&self.id_counter.to_le_bytes());
        seed.extend_from_slice(&now_nanos.to_le_bytes());
        wire::request_id(&seed)
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
            (
                wire::H_LOCAL_REPLY.to_owned(),
                wire::sign(
                    self.cfg.handoff_key.as_bytes(),
                    wire::Domain::LocalReply,
                    request_id.as_bytes(),
                ),
            ),
        ];
        headers.extend(extra);
        let api = wire::api_for_errors(&self.engine, &head.method, &head.path);
        Reply {
            status,
            headers,
            body: wire::error_body(api, status as u16, code, &msg),
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

    /// The session record of a decision the filter made (sent to the server's log).
    fn event(
        &self,
        request_id: &str,
        head: &RequestHead,
        caller: Option<&Caller>,
        kind: record::Kind,
        decision: record::DecisionPart,
    ) -> Value {
        let policy = caller
            .and_then(|c| self.engine.select(c))
            .map(|p| p.policy.id.clone());
        let r = record::Record {
            v: record::RECORD_VERSION,
            kind,
            source: record::Source::Filter,
            time_ms: head.received_ms,
            session: self.engine.redact_text(
                policy.as_deref(),
                &record::session_of(head.session.as_deref(), request_id),
            ),
            request_id: request_id.to_owned(),
            client_request_id: client_request_id(head.request_id.as_deref())
                .map(|c| self.engine.redact_text(policy.as_deref(), &c)),
            identity: caller.map(|c| record::Identity {
                issuer: c.issuer.clone(),
                principal: c.principal.clone(),
                groups: c.groups.clone(),
            }),
            bundle: self.engine.digest.clone(),
            api: None,
            model: None,
            request: record::RequestPart {
                method: head.method.clone(),
                path: self.engine.redact_path(policy.as_deref(), &head.path),
                body: None,
            },
            policy,
            decision,
            response: None,
            duration_ms: None,
            approval: None,
        };
        serde_json::to_value(&r).unwrap_or_default()
    }

    /// A refusal with its decision event.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &self,
        head: &RequestHead,
        request_id: &str,
        caller: Option<&Caller>,
        status: u32,
        (code, reason): (&str, &str),
        message: &str,
        extra: Vec<(String, String)>,
    ) -> Reply {
        let verdict = if caller.is_some() && code == "no_policy" {
            "deny"
        } else {
            "block"
        };
        let mut decision = record::DecisionPart::refusal(verdict, status as u16, reason, message);
        if code != "malformed_request" {
            decision.rules.push(code.to_owned());
        }
        let ev = self.event(request_id, head, caller, record::Kind::Refusal, decision);
        self.reply(head, request_id, status, code, message, extra, ev)
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

    /// Headers phase: identity, policy selection, the route, and what the body phase must do.
    /// `may_fetch`: an unknown key id may trigger a JWKS fetch (false on the retry after it).
    pub fn on_headers(
        &mut self,
        head: RequestHead,
        now: u64,
        now_nanos: u128,
        may_fetch: bool,
    ) -> HeadStep {
        let request_id = self.new_request_id(now_nanos);
        let auth = self.authenticate(&head, now);
        if may_fetch && matches!(auth, Err(TokenError::UnknownKey)) {
            if let Some(t) = self.fetch_target(&head) {
                return HeadStep::FetchKeys(t, head);
            }
        }
        let verified = match auth {
            Ok(v) => v,
            Err(e) => {
                let ev = self.event(
                    &request_id,
                    &head,
                    None,
                    record::Kind::Refusal,
                    record::DecisionPart::refusal(
                        "unauthenticated",
                        401,
                        e.code(),
                        &format!("authentication failed: {e}"),
                    ),
                );
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
            let msg = format!("no policy admits principal `{}`", caller.principal);
            return HeadStep::Reply(self.refuse(
                &head,
                &request_id,
                Some(caller),
                403,
                ("no_policy", "no_policy"),
                &msg,
                vec![],
            ));
        };
        // A completion limit may rewrite the body, so its length is not known yet.
        let clamps = *clamps;
        let mut headers = verified.handoff.clone();
        headers.push((H_REQUEST_ID.to_owned(), request_id.clone()));
        if let Some(id) = client_request_id(head.request_id.as_deref()) {
            headers.push((H_CLIENT_REQUEST_ID.to_owned(), id));
        }
        headers.push((
            wire::H_SESSION.to_owned(),
            record::session_of(head.session.as_deref(), &request_id),
        ));
        match self.engine.route(&head.method, &head.path) {
            RouteMatch::Refused(r) => {
                let extra = r
                    .allow
                    .map(|a| ("allow".to_owned(), a))
                    .into_iter()
                    .collect();
                return HeadStep::Reply(self.refuse(
                    &head,
                    &request_id,
                    Some(caller),
                    u32::from(r.status),
                    (r.code, "route"),
                    &r.message,
                    extra,
                ));
            }
            RouteMatch::Passthrough if head.has_body => {
                return HeadStep::Reply(self.refuse(
                    &head,
                    &request_id,
                    Some(caller),
                    400,
                    ("malformed_request", "body_on_passthrough"),
                    "this route takes no request body",
                    vec![],
                ));
            }
            RouteMatch::Passthrough => {
                // Identity checked; no body, nothing else to decide.
                return HeadStep::Continue {
                    headers,
                    drop_content_length: false,
                    body: None,
                };
            }
            RouteMatch::Inference { .. } => {}
        }
        if !head.has_body {
            return HeadStep::Reply(self.refuse(
                &head,
                &request_id,
                Some(caller),
                400,
                ("malformed_request", "empty_body"),
                "inference request has no body",
                vec![],
            ));
        }
        if let Some(enc) = head.content_encoding.as_deref() {
            if !wire::encoding_supported(enc.as_bytes()) {
                let msg = format!(
                    "content-encoding `{enc}` is not supported (use gzip, deflate or identity)"
                );
                return HeadStep::Reply(self.refuse(
                    &head,
                    &request_id,
                    Some(caller),
                    415,
                    ("unsupported_content_encoding", "content_encoding"),
                    &msg,
                    vec![],
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
        let caller = Some(&p.caller.caller);
        if total > self.cfg.max_body_bytes || body.len() > self.cfg.max_body_bytes {
            let msg = format!("request body exceeds {} bytes", self.cfg.max_body_bytes);
            return Outcome::Reply(self.refuse(
                head,
                &p.request_id,
                caller,
                413,
                ("request_too_large", "body_too_large"),
                &msg,
                vec![],
            ));
        }
        let decoded = match wire::decode_body(
            head.content_encoding.as_deref(),
            body,
            self.cfg.max_decoded_bytes,
        ) {
            Ok(d) => d,
            Err(msg) => {
                return Outcome::Reply(self.refuse(
                    head,
                    &p.request_id,
                    caller,
                    400,
                    ("malformed_request", "bad_encoding"),
                    &msg,
                    vec![],
                ))
            }
        };
        let d = self
            .engine
            .decide(&p.caller.caller, &head.method, &head.path, &decoded);
        let enforced = d.enforced();
        if matches!(enforced, Verdict::Block | Verdict::Deny) {
            let ev = self.event(
                &p.request_id,
                head,
                caller,
                record::Kind::Refusal,
                record::DecisionPart::from_decision(&d, "policy"),
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
        let body = if d.clamp.is_empty() {
            None
        } else {
            let rewritten = policy_engine::json::parse_strict(&decoded)
                .ok()
                .and_then(|mut v| policy_engine::limits::apply(&mut v, &d.clamp).then_some(v))
                .and_then(|v| serde_json::to_vec(&v).ok())
                .and_then(|plain| wire::encode_body(head.content_encoding.as_deref(), &plain).ok());
            match rewritten {
                Some(b) => Some(b),
                None => {
                    return Outcome::Reply(self.refuse(
                        head,
                        &p.request_id,
                        caller,
                        400,
                        ("malformed_request", "limit_rewrite"),
                        "the output limit could not be written into the request",
                        vec![],
                    ))
                }
            }
        };
        // Dry run: what would have been refused is recorded, not enforced.
        let event = (d.verdict != enforced).then(|| {
            self.event(
                &p.request_id,
                head,
                caller,
                record::Kind::Exchange,
                record::DecisionPart::from_decision(&d, "dry_run"),
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
        let leeway = self
            .engine
            .issuers
            .iter()
            .find(|i| i.issuer.name == c.issuer || i.issuer.issuer == c.issuer)
            .map_or(0, |i| i.issuer.leeway_seconds);
        let h = Handoff {
            issuer: c.issuer.clone(),
            principal: c.principal.clone(),
            groups: c.groups.clone(),
            policy: policy.to_owned(),
            bundle: self.engine.digest.clone(),
            expires_at: c.expires_at,
            leeway,
        };
        let (blob, sig) = h.encode(self.cfg.handoff_key.as_bytes());
        vec![
            (H_IDENTITY.to_owned(), blob),
            (H_SIGNATURE.to_owned(), sig),
            (H_PRINCIPAL.to_owned(), c.principal.clone()),
            (H_POLICY.to_owned(), policy.to_owned()),
            (H_BUNDLE.to_owned(), self.engine.digest.clone()),
        ]
    }

    /// Sign an event for the server's `/v1/events`.
    pub fn sign_event(&self, body: &[u8]) -> String {
        wire::sign(self.cfg.handoff_key.as_bytes(), wire::Domain::Event, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_simple::prelude::*;
    use serde_json::json;
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
            session: None,
            received_ms: 0,
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
        let h = Handoff::decode(
            b"0123456789abcdef0123",
            Some(blob.as_bytes()),
            Some(sig.as_bytes()),
            now(),
        )
        .unwrap();
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
        let gz = wire::encode_body(Some("gzip"), plain).unwrap();
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
        let gz = wire::encode_body(Some("gzip"), plain).unwrap();
        let Outcome::Forward(f) = g.on_body(p, gz.len(), &gz) else {
            panic!()
        };
        let new = wire::decode_body(Some("gzip"), &f.body.unwrap(), 1 << 20).unwrap();
        let v: Value = serde_json::from_slice(&new).unwrap();
        assert_eq!(v["max_tokens"], 100);
    }

    fn reply_of(step: HeadStep) -> Reply {
        match step {
            HeadStep::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn only_listed_routes_and_methods_pass() {
        let mut g = gate();
        let t = Some(token(&["eng"]));
        for (method, path, status) in [
            ("PUT", "/v1/chat/completions", 405),
            ("GET", "/v1/chat/completions", 405),
            ("POST", "/v1/chat%2Fcompletions", 404),
            ("POST", "/V1/chat/completions", 404),
            ("POST", "/v1/chat/completions;x", 404),
            ("POST", "/api/generate", 404),
            ("POST", "/v1/chat/completions?stream=true", 400),
        ] {
            let mut h = head(t.clone(), path);
            h.method = method.into();
            let r = reply_of(g.on_headers(h, now(), 0, false));
            assert_eq!(r.status, status, "{method} {path}");
            assert_eq!(r.event["decision"]["reason"], "route");
            assert_eq!(r.event["kind"], "refusal");
            if status == 405 {
                assert!(r.headers.iter().any(|(k, v)| k == "allow" && v == "POST"));
            }
        }
        // A body-less metadata route passes with identity checked, without a body phase.
        let mut h = head(t.clone(), "/v1/models");
        h.method = "GET".into();
        h.has_body = false;
        assert!(matches!(
            g.on_headers(h.clone(), now(), 0, false),
            HeadStep::Continue { body: None, .. }
        ));
        h.has_body = true;
        assert_eq!(reply_of(g.on_headers(h, now(), 0, false)).status, 400);
    }

    #[test]
    fn request_ids_are_fresh_and_the_callers_is_kept_apart() {
        let mut g = gate();
        let ids: Vec<String> = (0..3)
            .map(|_| {
                let HeadStep::Continue { headers, .. } = g.on_headers(
                    head(Some(token(&["eng"])), "/v1/chat/completions"),
                    now(),
                    0,
                    false,
                ) else {
                    panic!()
                };
                assert!(headers
                    .iter()
                    .any(|(k, v)| k == H_CLIENT_REQUEST_ID && v == "rid-1"));
                headers
                    .iter()
                    .find(|(k, _)| k == H_REQUEST_ID)
                    .unwrap()
                    .1
                    .clone()
            })
            .collect();
        assert!(ids.iter().all(|i| i != "rid-1" && i.len() == 24));
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
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
