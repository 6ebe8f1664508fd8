//! The External Processing service: checks the filter's signed identity hand-off, strips
//! Gatehouse headers before the upstream sees them, masks responses and records the session.

use crate::hold::now_ms;
use crate::store::Store;

use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    processing_mode::BodySendMode, ProcessingMode,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation::Mutation, external_processor_server::ExternalProcessor,
    processing_request::Request, processing_response::Response, BodyMutation, BodyResponse,
    CommonResponse, HeaderMutation, HeadersResponse, HttpHeaders, ImmediateResponse,
    ProcessingRequest, ProcessingResponse,
};
use policy_engine::bundle::StoreFailure;
use policy_engine::extract::Api;
use policy_engine::record;
use policy_engine::routes::RouteMatch;
use policy_engine::wire::{self, Handoff, HandoffError, H_IDENTITY, H_SIGNATURE};
use policy_engine::Engine;
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

/// Shared server state.
pub struct Shared {
    pub engine: Arc<Engine>,
    pub handoff_key: Vec<u8>,
    pub store: Arc<dyn Store>,
    /// Requests held on this server, waiting for their approvals.
    pub approvals: crate::approvals::Hub,
    /// Tells reviewers of new approvals.
    pub notifier: crate::notify::Notifier,
    /// Issuer keys for tokens the server verifies itself (reviewers, auditors).
    pub keys: Arc<crate::jwks::Keys>,
    /// Records not stored because the store was down and the policy chose to continue.
    pub records_lost: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub fn new(engine: Arc<Engine>, handoff_key: Vec<u8>, store: Arc<dyn Store>) -> Shared {
        Shared {
            engine,
            handoff_key,
            store,
            approvals: Default::default(),
            notifier: crate::notify::Notifier::none(),
            keys: Default::default(),
            records_lost: Default::default(),
        }
    }

    /// Whether the exchange's policy lets requests go on unrecorded while the store is down.
    fn continues_unrecorded(&self, x: &Exchange) -> bool {
        x.handoff
            .as_ref()
            .and_then(|h| self.engine.policy(&h.policy))
            .is_some_and(|p| p.policy.record.on_store_failure == StoreFailure::Continue)
    }
}

/// Per-request state of one ext_proc stream.
#[derive(Default)]
pub struct Exchange {
    handoff: Option<Handoff>,
    method: String,
    path: String,
    /// The route's API (error shape) and the model it names, once the route is known.
    api: Option<Api>,
    route_model: Option<String>,
    pub(crate) request_id: String,
    client_request_id: Option<String>,
    session: String,
    started: Option<std::time::Instant>,
    started_ms: u64,
    content_encoding: Option<String>,
    pub(crate) decision: Option<record::DecisionPart>,
    model: Option<String>,
    /// The request body as recorded (redacted), when the policy records prompts.
    prompt: Option<Value>,
    /// The masked JSON answer, when the policy records responses.
    response_body: Option<Value>,
    response_truncated: bool,
    recorded: bool,
    /// The record's kind when the server refused (request phase: a refusal).
    kind: Option<record::Kind>,
    /// Records to make durable before the next answer goes to Envoy.
    pub pending: Vec<record::Record>,
    status: Option<u16>,
    content_type: String,
    tally: crate::mask::Tally,
    response_chunks: usize,
    sse: Option<crate::sse::SseMasker>,
    /// A pending approval this request waits for (created by the body's decision).
    pub(crate) hold: Option<crate::approvals::Approval>,
}

/// A header's value as bytes (Envoy sends `raw_value`; older versions `value`).
fn header_bytes<'a>(h: &'a HttpHeaders, name: &str) -> Option<&'a [u8]> {
    h.headers.as_ref()?.headers.iter().find_map(|hv| {
        let value = if hv.raw_value.is_empty() {
            hv.value.as_bytes()
        } else {
            hv.raw_value.as_slice()
        };
        hv.key.eq_ignore_ascii_case(name).then_some(value)
    })
}

/// A header's value, decoded lossily: bytes that are not UTF-8 match nothing they should not.
fn header(h: &HttpHeaders, name: &str) -> Option<String> {
    header_bytes(h, name).map(|b| String::from_utf8_lossy(b).into_owned())
}

fn set_header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: String::new(),
            raw_value: value.as_bytes().to_vec(),
        }),
        ..Default::default()
    }
}

fn immediate(api: Api, status: u16, code: &str, message: &str) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(Response::ImmediateResponse(ImmediateResponse {
            status: Some(HttpStatus {
                code: i32::from(status),
            }),
            headers: Some(HeaderMutation {
                set_headers: vec![set_header("content-type", "application/json")],
                ..Default::default()
            }),
            body: wire::error_body(api, status, code, message),
            details: format!("gatehouse_{code}"),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX)
}

impl Exchange {
    fn api(&self) -> Api {
        self.api.unwrap_or(Api::ChatCompletions)
    }

    /// The request ends refused, before the upstream: its decision says what was enforced.
    pub(crate) fn finish_refused(&mut self, status: u16, code: &str, message: &str) {
        if let Some(d) = self.decision.as_mut() {
            d.enforced = "block".into();
            d.status = status;
            d.reason = code.to_owned();
            d.message = message.to_owned();
        }
        self.status = Some(status);
        self.kind = Some(record::Kind::Refusal);
    }

    /// A refusal in the API's shape, naming the request id.
    pub(crate) fn refuse(&self, status: u16, code: &str, message: &str) -> ProcessingResponse {
        let msg = if self.request_id.is_empty() {
            message.to_owned()
        } else {
            format!("{message} (request id {})", self.request_id)
        };
        immediate(self.api(), status, code, &msg)
    }
}

impl Shared {
    /// A refusal by the server, recorded: the decision goes into the exchange's record
    /// (queued, and durable before the refusal goes back to Envoy).
    fn refuse_recorded(
        &self,
        x: &mut Exchange,
        kind: record::Kind,
        status: u16,
        code: &str,
        message: &str,
    ) -> ProcessingResponse {
        let verdict = if status >= 500 { "error" } else { "block" };
        let mut d = record::DecisionPart::refusal(verdict, status, code, message);
        if code != "malformed_request" {
            d.rules.push(code.to_owned());
        }
        x.decision = Some(d);
        x.kind = Some(kind);
        x.status = Some(status);
        self.record(x);
        x.refuse(status, code, message)
    }

    /// Verify the identity hand-off the filter signed.
    fn verify_handoff(&self, h: &HttpHeaders) -> Result<Handoff, HandoffError> {
        Handoff::decode(
            &self.handoff_key,
            header_bytes(h, H_IDENTITY),
            header_bytes(h, H_SIGNATURE),
            now_secs(),
        )
    }

    /// Handle one message of the stream; returns the response to send.
    pub fn handle(&self, x: &mut Exchange, req: ProcessingRequest) -> Option<ProcessingResponse> {
        match req.request? {
            Request::RequestHeaders(h) => Some(self.request_headers(x, &h)),
            Request::ResponseHeaders(h) => Some(self.response_headers(x, &h)),
            Request::ResponseBody(b) => Some(self.response_body(x, b.body, b.end_of_stream)),
            Request::RequestBody(b) => Some(self.request_body(x, &b.body)),
            Request::RequestTrailers(_) | Request::ResponseTrailers(_) => None,
        }
    }

    /// A record of a refusal by the server itself.
    fn refusal_record(
        &self,
        x: &Exchange,
        h: Option<&Handoff>,
        d: record::DecisionPart,
    ) -> record::Record {
        record::Record {
            v: record::RECORD_VERSION,
            kind: record::Kind::Refusal,
            source: record::Source::Server,
            time_ms: x.started_ms,
            session: self
                .engine
                .redact_text(h.map(|h| h.policy.as_str()), &x.session),
            request_id: x.request_id.clone(),
            client_request_id: x
                .client_request_id
                .as_ref()
                .map(|c| self.engine.redact_text(h.map(|h| h.policy.as_str()), c)),
            identity: h.map(identity),
            policy: h.map(|h| h.policy.clone()),
            bundle: h.map_or_else(|| self.engine.digest.clone(), |h| h.bundle.clone()),
            api: x.api.map(|a| a.name().to_owned()),
            model: None,
            request: record::RequestPart {
                method: x.method.clone(),
                path: self
                    .engine
                    .redact_path(h.map(|h| h.policy.as_str()), &x.path),
                body: None,
            },
            decision: d,
            response: None,
            duration_ms: None,
            approval: None,
        }
    }

    fn request_headers(&self, x: &mut Exchange, h: &HttpHeaders) -> ProcessingResponse {
        x.started = Some(std::time::Instant::now());
        x.started_ms = now_ms();
        x.method = header(h, ":method").unwrap_or_default();
        x.path = header(h, ":path").unwrap_or_default();
        x.api = Some(wire::api_for_errors(&self.engine, &x.method, &x.path));
        x.request_id = header(h, wire::H_REQUEST_ID).unwrap_or_default();
        x.client_request_id = header(h, wire::H_CLIENT_REQUEST_ID);
        x.content_encoding = header(h, "content-encoding");
        x.session = record::session_of(header(h, wire::H_SESSION).as_deref(), &x.request_id);
        let handoff = match self.verify_handoff(h) {
            Ok(v) => v,
            Err(why) => {
                // Reached without the filter (or forged): fail closed.
                let msg = format!("gateway refused the request: {why}");
                let d = record::DecisionPart::refusal("deny", 403, "identity_handoff", &msg);
                x.pending.push(self.refusal_record(x, None, d));
                return x.refuse(403, "identity_handoff", &msg);
            }
        };
        // The two halves must run the same bundle: a hand-off for another digest or an
        // unknown policy is refused, never decided under rules the filter did not apply.
        if handoff.bundle != self.engine.digest || self.engine.policy(&handoff.policy).is_none() {
            tracing::warn!(filter = %handoff.bundle, server = %self.engine.digest, policy = %handoff.policy, "hand-off for a bundle or policy this server does not run");
            let msg = "the gateway's filter and server run different policy bundles; retry shortly";
            let d = record::DecisionPart::refusal("error", 503, "bundle_mismatch", msg);
            x.pending.push(self.refusal_record(x, Some(&handoff), d));
            return x.refuse(503, "bundle_mismatch", msg);
        }
        // Nothing goes on unrecorded: with the store down, requests are refused, unless
        // their policy chose availability (`record.on_store_failure: continue`).
        x.handoff = Some(handoff.clone());
        if !self.store.healthy() && !self.continues_unrecorded(x) {
            return x.refuse(503, STORE_UNAVAILABLE, STORE_UNAVAILABLE_MESSAGE);
        }
        // The server enforces the route allow-list as well: it is reachable only through the
        // filter, but decides nothing on a route the filter would not have passed.
        match self.engine.route(&x.method, &x.path) {
            RouteMatch::Refused(r) => {
                x.handoff = Some(handoff);
                return self.refuse_recorded(
                    x,
                    record::Kind::Refusal,
                    r.status,
                    r.code,
                    &r.message,
                );
            }
            RouteMatch::Passthrough if !h.end_of_stream => {
                x.handoff = Some(handoff);
                return self.refuse_recorded(
                    x,
                    record::Kind::Refusal,
                    400,
                    "malformed_request",
                    "this route takes no request body",
                );
            }
            RouteMatch::Passthrough => {}
            RouteMatch::Inference { model, .. } => x.route_model = model,
        }
        // Strip every Gatehouse header: the upstream sees none of them.
        let remove: Vec<String> = h
            .headers
            .iter()
            .flat_map(|m| m.headers.iter())
            .filter(|hv| wire::is_gatehouse_header(hv.key.as_bytes()))
            .map(|hv| hv.key.clone())
            .collect();
        // Every inference body is read here too: to hold it for approval, to record the
        // prompt, and because the server is where token limits are counted exactly and token
        // ids decoded (the filter has no vocabulary, D20). Only inference routes get here
        // with a body: pass-through ones with one were refused.
        let needs_body = !h.end_of_stream && self.engine.policy(&handoff.policy).is_some();
        // A masked response must be readable: ask the upstream for no content encoding.
        let set = if self
            .engine
            .policy(&handoff.policy)
            .is_some_and(|p| p.has_masking())
        {
            vec![set_header("accept-encoding", "identity")]
        } else {
            Vec::new()
        };
        x.handoff = Some(handoff);
        ProcessingResponse {
            response: Some(Response::RequestHeaders(HeadersResponse {
                response: Some(CommonResponse {
                    header_mutation: Some(HeaderMutation {
                        remove_headers: remove,
                        set_headers: set,
                    }),
                    ..Default::default()
                }),
            })),
            mode_override: needs_body.then(|| ProcessingMode {
                request_body_mode: BodySendMode::Buffered as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The buffered request body: decide it with the same engine as the filter (for holds)
    /// and keep the masked prompt for the session record.
    fn request_body(&self, x: &mut Exchange, body: &[u8]) -> ProcessingResponse {
        let pass = ProcessingResponse {
            response: Some(Response::RequestBody(BodyResponse::default())),
            ..Default::default()
        };
        let Some(h) = x.handoff.clone() else {
            return pass;
        };
        let Some(cp) = self.engine.policy(&h.policy) else {
            return pass;
        };
        let RouteMatch::Inference { api, model } = self.engine.route(&x.method, &x.path) else {
            return self.refuse_recorded(
                x,
                record::Kind::Refusal,
                400,
                "malformed_request",
                "this route takes no request body",
            );
        };
        let decoded = match wire::decode_body(x.content_encoding.as_deref(), body, 8 << 20) {
            Ok(d) => d,
            Err(e) => {
                return self.refuse_recorded(x, record::Kind::Refusal, 400, "malformed_request", &e)
            }
        };
        let (json, ex) = match self.engine.extract(cp, api, model.as_deref(), &decoded) {
            Ok(v) => v,
            Err(e) => {
                let msg = self.engine.redact_for_record(cp, &e.to_string());
                return self.refuse_recorded(
                    x,
                    record::Kind::Refusal,
                    e.status(),
                    "malformed_request",
                    &msg,
                );
            }
        };
        let d = self.engine.decide_extracted(cp, &ex);
        if cp.policy.record.prompts {
            x.prompt = Some(self.engine.redact_json(cp, &json));
        }
        x.model = ex.model.clone();
        x.decision = Some(record::DecisionPart::from_decision(&d, "policy"));
        match d.enforced() {
            policy_engine::Verdict::RequireApproval if approval_specs(cp, &d).is_some() => {
                let Some(specs) = approval_specs(cp, &d) else {
                    return pass;
                };
                let recorded = self.engine.redact_json(cp, &json);
                let summary = serde_json::to_string(&recorded).unwrap_or_default();
                let matched = d
                    .findings
                    .iter()
                    .map(|f| format!("{} at {}", f.rule, f.field))
                    .collect();
                x.hold = Some(crate::approvals::Approval::new(
                    crate::approvals::NewApproval {
                        specs,
                        requester: crate::approvals::Person {
                            issuer: h.issuer.clone(),
                            principal: h.principal.clone(),
                            groups: h.groups.clone(),
                        },
                        policy: &h.policy,
                        request_id: &x.request_id,
                        session: &self.engine.redact_text(Some(&h.policy), &x.session),
                        method: &x.method,
                        path: &self.engine.redact_path(Some(&h.policy), &x.path),
                        digest: crate::approvals::request_digest(&x.method, &x.path, &decoded),
                        summary: &summary,
                        matched,
                        request: Some(recorded),
                        now_ms: now_ms(),
                    },
                ));
                // Sent once the approval is granted (see `hold.rs`).
                pass
            }
            policy_engine::Verdict::RequireApproval => {
                let msg = format!(
                    "request needs a reviewer's approval (rule `{}`), and approvals are not enabled on this gateway (request id {})",
                    d.rules.first().map(String::as_str).unwrap_or("?"),
                    x.request_id
                );
                x.status = Some(403);
                self.record(x);
                immediate(x.api(), 403, "approval_required", &msg)
            }
            policy_engine::Verdict::Block | policy_engine::Verdict::Deny => {
                x.status = Some(d.status);
                self.record(x);
                x.refuse(
                    d.status,
                    d.rules.first().map(String::as_str).unwrap_or("blocked"),
                    &d.message,
                )
            }
            policy_engine::Verdict::Allow => pass,
        }
    }

    fn masks(&self, x: &Exchange) -> bool {
        x.handoff
            .as_ref()
            .and_then(|h| self.engine.policy(&h.policy))
            .is_some_and(|p| p.has_masking())
    }

    fn response_headers(&self, x: &mut Exchange, h: &HttpHeaders) -> ProcessingResponse {
        // The filter's own reply (a refusal it already recorded): not recorded twice.
        let local = header_bytes(h, wire::H_LOCAL_REPLY).is_some_and(|sig| {
            wire::verify(
                &self.handoff_key,
                wire::Domain::LocalReply,
                x.request_id.as_bytes(),
                sig,
            )
        });
        if local {
            x.recorded = true;
        }
        x.status = header(h, ":status").and_then(|s| s.parse().ok());
        x.content_type = header(h, "content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        // Only an exchange whose hand-off verified has a session.
        let mut set = Vec::new();
        if x.handoff.is_some() {
            set.push(set_header(wire::H_SESSION, &x.session));
        }
        set.push(set_header("x-gatehouse-processed-by", "ext_proc"));
        let mut remove = vec![wire::H_LOCAL_REPLY.to_owned()];
        let mut mode = None;
        if self.masks(x) && !h.end_of_stream {
            let encoding = header(h, "content-encoding").unwrap_or_default();
            if !encoding.is_empty() && encoding != "identity" {
                // Never pass a response through unscanned.
                let msg = format!("upstream response uses content-encoding `{encoding}`, which the masker cannot read");
                return self.refuse_recorded(
                    x,
                    record::Kind::Exchange,
                    502,
                    "unmaskable_response",
                    &msg,
                );
            }
            let streamed = x.content_type.starts_with("text/event-stream");
            let readable = x.content_type.contains("json") || x.content_type.starts_with("text/");
            if !streamed && !readable {
                return self.refuse_recorded(
                    x,
                    record::Kind::Exchange,
                    502,
                    "unmaskable_response",
                    "upstream response has a content type the masker cannot read",
                );
            }
            remove.push("content-length".to_owned());
            set.push(set_header("x-gatehouse-masking", "on"));
            mode = Some(ProcessingMode {
                response_body_mode: if streamed {
                    BodySendMode::Streamed
                } else {
                    BodySendMode::Buffered
                } as i32,
                ..Default::default()
            });
        }
        // When the answer's body is not processed here, the exchange is complete as far as
        // the record goes: it is made durable before these headers go on.
        if mode.is_none() {
            self.record(x);
        }
        ProcessingResponse {
            response: Some(Response::ResponseHeaders(HeadersResponse {
                response: Some(CommonResponse {
                    header_mutation: Some(HeaderMutation {
                        set_headers: set,
                        remove_headers: remove,
                    }),
                    ..Default::default()
                }),
            })),
            mode_override: mode,
            ..Default::default()
        }
    }

    fn response_body(&self, x: &mut Exchange, body: Vec<u8>, end: bool) -> ProcessingResponse {
        x.response_chunks += 1;
        let policy = x
            .handoff
            .as_ref()
            .and_then(|h| self.engine.policy(&h.policy));
        // Dry run: find what would be masked (counted in the session record), send it as is.
        let dry_run = policy.is_some_and(|p| p.policy.dry_run);
        let original = if dry_run { Some(body.clone()) } else { None };
        let new_body = match policy {
            None => body,
            Some(p) => {
                if x.content_type.starts_with("text/event-stream") {
                    let sse = x.sse.get_or_insert_with(Default::default);
                    let out = sse.chunk(&self.engine, p, &body, end);
                    x.tally.clone_from(&sse.tally);
                    out
                } else if !x.content_type.contains("json") {
                    // Plain text (error pages and the like). Text that is JSON is masked as
                    // JSON whatever its label says (its escapes could hide a value).
                    match crate::mask::mask_json(&self.engine, p, &body, &mut x.tally) {
                        Some(b)
                            if body
                                .iter()
                                .find(|c| !c.is_ascii_whitespace())
                                .is_some_and(|c| matches!(c, b'{' | b'[')) =>
                        {
                            b
                        }
                        _ => {
                            // `\u0040` read as `@` by whoever parses it later.
                            let text = String::from_utf8_lossy(&body);
                            let text = policy_engine::json::decode_escapes(&text, false)
                                .unwrap_or_else(|| text.into_owned());
                            let (m, hits) = self.engine.mask_text(p, &text);
                            x.tally.note(&hits);
                            m.into_bytes()
                        }
                    }
                } else {
                    match crate::mask::mask_json(&self.engine, p, &body, &mut x.tally) {
                        Some(b) => {
                            if end && p.policy.record.responses {
                                if b.len() <= crate::sse::TRANSCRIPT_MAX {
                                    x.response_body = serde_json::from_slice(&b).ok();
                                } else {
                                    x.response_truncated = true;
                                }
                            }
                            b
                        }
                        None if dry_run => Vec::new(),
                        None => {
                            return self.refuse_recorded(
                                x,
                                record::Kind::Exchange,
                                502,
                                "unmaskable_response",
                                "upstream response is not valid JSON and cannot be masked",
                            );
                        }
                    }
                }
            }
        };
        let new_body = original.unwrap_or(new_body);
        if end {
            self.record(x);
        }
        ProcessingResponse {
            response: Some(Response::ResponseBody(BodyResponse {
                response: Some(CommonResponse {
                    body_mutation: Some(BodyMutation {
                        mutation: Some(Mutation::Body(new_body)),
                    }),
                    ..Default::default()
                }),
            })),
            ..Default::default()
        }
    }

    /// Queue the session record of a finished exchange (once); it is made durable before
    /// the answer's last part goes back to Envoy.
    pub fn record(&self, x: &mut Exchange) {
        if x.recorded {
            return;
        }
        let Some(h) = &x.handoff else { return };
        x.recorded = true;
        let cp = self.engine.policy(&h.policy);
        let dry_run = cp.is_some_and(|p| p.policy.dry_run);
        let record_responses = cp.is_some_and(|p| p.policy.record.responses);
        let status = x.status.unwrap_or(0);
        let decision = x.decision.clone().unwrap_or_else(|| record::DecisionPart {
            verdict: "allow".into(),
            enforced: "allow".into(),
            status: 200,
            rules: Vec::new(),
            reason: "forwarded".into(),
            message: "allowed".into(),
            findings: Vec::new(),
            dry_run,
        });
        let (body, truncated) = if !record_responses {
            (None, false)
        } else if let Some(sse) = &x.sse {
            (
                Some(serde_json::to_value(&sse.transcript).unwrap_or_default()),
                sse.transcript_truncated,
            )
        } else {
            (x.response_body.clone(), x.response_truncated)
        };
        // What the answer echoes of a blocked value is redacted like the prompt.
        let body = match (body, cp) {
            (Some(b), Some(cp)) => Some(self.engine.redact_json(cp, &b)),
            (b, _) => b,
        };
        let r = record::Record {
            v: record::RECORD_VERSION,
            kind: x.kind.unwrap_or(record::Kind::Exchange),
            source: record::Source::Server,
            time_ms: x.started_ms,
            session: self.engine.redact_text(Some(&h.policy), &x.session),
            request_id: x.request_id.clone(),
            client_request_id: x
                .client_request_id
                .as_ref()
                .map(|c| self.engine.redact_text(Some(&h.policy), c)),
            identity: Some(identity(h)),
            policy: Some(h.policy.clone()),
            bundle: h.bundle.clone(),
            api: x.api.map(|a| a.name().to_owned()),
            model: x.model.clone(),
            request: record::RequestPart {
                method: x.method.clone(),
                path: self.engine.redact_path(Some(&h.policy), &x.path),
                body: x.prompt.clone(),
            },
            decision,
            response: Some(record::ResponsePart {
                status: (status != 0).then_some(status),
                content_type: x.content_type.clone(),
                body,
                truncated,
                masked: x.tally.per_rule.clone(),
                withheld: x.tally.withheld as u64,
            }),
            duration_ms: x.started.map(|t| t.elapsed().as_millis() as u64),
            approval: None,
        };
        x.pending.push(r);
    }
}

impl Shared {
    /// Make the exchange's queued records durable. Under a policy that continues while
    /// the store is down, a record that cannot be stored is counted and logged instead.
    pub async fn persist(&self, x: &mut Exchange) -> Result<(), crate::store::StoreError> {
        let pending = std::mem::take(&mut x.pending);
        let n = pending.len() as u64;
        match self.persist_all(pending).await {
            Err(e) if self.continues_unrecorded(x) => {
                self.records_lost
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                let (principal, policy) = x
                    .handoff
                    .as_ref()
                    .map_or(("", ""), |h| (h.principal.as_str(), h.policy.as_str()));
                tracing::warn!(request_id = %x.request_id, principal, policy, records = n, error = %e, "session record lost (policy continues while the store is down)");
                Ok(())
            }
            r => r,
        }
    }

    async fn persist_all(
        &self,
        pending: Vec<record::Record>,
    ) -> Result<(), crate::store::StoreError> {
        use crate::store::StoreError;
        for r in pending {
            let ack = tokio::time::timeout(PERSIST_TIMEOUT, self.store.append(r)).await;
            match ack {
                Ok(Ok(res)) => {
                    res?;
                }
                Ok(Err(_)) => {
                    return Err(StoreError::Unavailable("the store writer stopped".into()))
                }
                Err(_) => {
                    return Err(StoreError::Unavailable(
                        "the store did not answer in time".into(),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// The approval settings of every matched rule that asks for approval, when each has them
/// (a matched approval rule without reviewers refuses the request: no other rule's reviewers
/// may stand in for it).
fn approval_specs<'a>(
    cp: &'a policy_engine::engine::CompiledPolicy,
    d: &'a policy_engine::Decision,
) -> Option<Vec<(&'a str, &'a policy_engine::bundle::ApprovalSpec)>> {
    use policy_engine::bundle::RuleAction;
    let mut out = Vec::new();
    for id in &d.rules {
        let rule = cp.policy.prompt_rules.iter().find(|r| &r.id == id)?;
        if rule.action != RuleAction::RequireApproval {
            continue;
        }
        out.push((id.as_str(), rule.approval.as_ref()?));
    }
    (!out.is_empty()).then_some(out)
}

/// The refusal while the session store cannot record.
const STORE_UNAVAILABLE: &str = "session_store_unavailable";
const STORE_UNAVAILABLE_MESSAGE: &str =
    "the gateway cannot record this request (session store unavailable); retry later";

/// Longest wait for a record to become durable before the request fails closed.
const PERSIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn identity(h: &Handoff) -> record::Identity {
    record::Identity {
        issuer: h.issuer.clone(),
        principal: h.principal.clone(),
        groups: h.groups.clone(),
    }
}

/// The tonic service.
pub struct Service(pub Arc<Shared>);

type Out = Pin<Box<dyn futures::Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for Service {
    type ProcessStream = Out;

    async fn process(
        &self,
        request: tonic::Request<Streaming<ProcessingRequest>>,
    ) -> Result<tonic::Response<Self::ProcessStream>, Status> {
        let mut inbound = request.into_inner();
        let shared = self.0.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut x = Exchange::default();
            while let Ok(Some(msg)) = inbound.message().await {
                // A panic must fail this request closed, never let Envoy carry on without
                // the processor (a stream that just ends could be taken as done): the stream
                // is ended with an error status, which Envoy turns into a 500.
                let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    shared.handle(&mut x, msg)
                }));
                let resp = match handled {
                    Ok(Some(resp)) => Ok(resp),
                    Ok(None) => {
                        if let Err(e) = shared.persist(&mut x).await {
                            tracing::error!(error = %e, "session record lost");
                        }
                        continue;
                    }
                    Err(_) => {
                        tracing::error!(request_id = %x.request_id, "processing panicked; request failed closed");
                        let _ = tx
                            .send(Err(Status::internal("gatehouse: internal error")))
                            .await;
                        break;
                    }
                };
                // A record is durable before the answer it belongs to goes on; if it cannot
                // be written, the request fails closed with a clear error.
                let mut resp = match shared.persist(&mut x).await {
                    Ok(()) => resp,
                    Err(e) => {
                        x.hold = None;
                        tracing::error!(error = %e, request_id = %x.request_id, "session record not stored; request refused");
                        Ok(x.refuse(503, STORE_UNAVAILABLE, STORE_UNAVAILABLE_MESSAGE))
                    }
                };
                // A request that needs approval waits here for it.
                if let (Some(a), Ok(granted)) = (x.hold.take(), &resp) {
                    resp = if a.mode == policy_engine::bundle::ApprovalMode::Deferred {
                        Ok(shared.deferred(&mut x, a, granted.clone()).await)
                    } else {
                        shared
                            .hold(&mut x, a, granted.clone(), &tx, &mut inbound)
                            .await
                    };
                    if resp.is_err() {
                        break;
                    }
                    if let Err(e) = shared.persist(&mut x).await {
                        tracing::error!(error = %e, request_id = %x.request_id, "session record not stored; request refused");
                        resp = Ok(x.refuse(503, STORE_UNAVAILABLE, STORE_UNAVAILABLE_MESSAGE));
                    }
                }
                if tx.send(resp).await.is_err() {
                    break;
                }
            }
            // Exchanges whose response body was not processed are recorded when the stream ends.
            shared.record(&mut x);
            if let Err(e) = shared.persist(&mut x).await {
                tracing::error!(error = %e, request_id = %x.request_id, "session record lost");
            }
        });
        Ok(tonic::Response::new(
            Box::pin(ReceiverStream::new(rx)) as Out
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use envoy_types::pb::envoy::config::core::v3::HeaderMap;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn shared() -> (Shared, Arc<MemoryStore>) {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../policies/default.yaml"
        ))
        .unwrap();
        let store = Arc::new(MemoryStore::for_tests());
        (
            Shared::new(
                Arc::new(Engine::from_source(&src).unwrap()),
                KEY.to_vec(),
                store.clone(),
            ),
            store,
        )
    }

    fn headers(pairs: &[(&str, &str)], end: bool) -> ProcessingRequest {
        ProcessingRequest {
            request: Some(Request::RequestHeaders(HttpHeaders {
                headers: Some(HeaderMap {
                    headers: pairs
                        .iter()
                        .map(|(k, v)| HeaderValue {
                            key: (*k).into(),
                            value: String::new(),
                            raw_value: v.as_bytes().to_vec(),
                        })
                        .collect(),
                }),
                end_of_stream: end,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn digest() -> &'static str {
        static D: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        D.get_or_init(|| shared().0.engine.digest.clone())
    }

    fn handoff_for(key: &[u8], expires_at: u64, bundle: &str) -> (String, String) {
        Handoff {
            issuer: "idp".into(),
            principal: "alice".into(),
            groups: vec!["eng".into()],
            policy: "engineering".into(),
            bundle: bundle.into(),
            expires_at,
            leeway: 0,
        }
        .encode(key)
    }

    fn handoff(key: &[u8], expires_at: u64) -> (String, String) {
        handoff_for(key, expires_at, digest())
    }

    #[test]
    fn unknown_bundle_and_routes_are_refused_by_the_server_too() {
        let (s, _) = shared();
        let (blob, sig) = handoff_for(KEY, u64::MAX, "sha256:another-bundle");
        let mut x = Exchange::default();
        let h = |m: &str, p: &str, b: &str, sg: &str| {
            let pairs = [
                (":method", m),
                (":path", p),
                (H_IDENTITY, b),
                (H_SIGNATURE, sg),
            ];
            headers(&pairs, false)
        };
        let r = s
            .handle(&mut x, h("POST", "/v1/chat/completions", &blob, &sig))
            .unwrap();
        assert_eq!(status_of(&r), Some(503), "digest mismatch");
        let (blob, sig) = handoff(KEY, u64::MAX);
        for (m, p, want) in [
            ("PUT", "/v1/chat/completions", 405),
            ("POST", "/api/generate", 404),
            ("GET", "/v1/models", 400),
        ] {
            let mut x = Exchange::default();
            let r = s.handle(&mut x, h(m, p, &blob, &sig)).unwrap();
            assert_eq!(status_of(&r), Some(want), "{m} {p}");
        }
    }

    /// Make an exchange's queued records durable (what the stream loop does).
    pub(super) fn flush(s: &Shared, x: &mut Exchange) {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(s.persist(x))
            .unwrap();
    }

    pub(super) fn status_of(r: &ProcessingResponse) -> Option<i32> {
        match &r.response {
            Some(Response::ImmediateResponse(i)) => i.status.as_ref().map(|s| s.code),
            _ => None,
        }
    }

    #[test]
    fn request_without_or_with_forged_handoff_is_refused() {
        let (s, store) = shared();
        let mut x = Exchange::default();
        let r = s
            .handle(
                &mut x,
                headers(
                    &[(":method", "POST"), (":path", "/v1/chat/completions")],
                    false,
                ),
            )
            .unwrap();
        assert_eq!(status_of(&r), Some(403));
        let (blob, _) = handoff(KEY, u64::MAX);
        let (_, forged_sig) = handoff(b"some-other-key-entirely-0000000", u64::MAX);
        let mut x = Exchange::default();
        let r = s
            .handle(
                &mut x,
                headers(
                    &[
                        (":method", "POST"),
                        (":path", "/v1/chat/completions"),
                        (H_IDENTITY, &blob),
                        (H_SIGNATURE, &forged_sig),
                    ],
                    false,
                ),
            )
            .unwrap();
        assert_eq!(status_of(&r), Some(403));
        let (blob, sig) = handoff(KEY, 1);
        let mut x = Exchange::default();
        let r = s
            .handle(
                &mut x,
                headers(
                    &[
                        (":method", "POST"),
                        (":path", "/v1/chat/completions"),
                        (H_IDENTITY, &blob),
                        (H_SIGNATURE, &sig),
                    ],
                    false,
                ),
            )
            .unwrap();
        assert_eq!(status_of(&r), Some(403), "an expired hand-off is refused");
        flush(&s, &mut x);
        let recs = store.recent(10);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].decision.reason, "identity_handoff");
        assert_eq!(recs[0].kind, record::Kind::Refusal);
    }

    #[test]
    fn valid_handoff_strips_gatehouse_headers_and_asks_for_the_body() {
        let (s, _) = shared();
        let (blob, sig) = handoff(KEY, u64::MAX);
        let mut x = Exchange::default();
        let r = s
            .handle(
                &mut x,
                headers(
                    &[
                        (":method", "POST"),
                        (":path", "/v1/chat/completions"),
                        (H_IDENTITY, &blob),
                        (H_SIGNATURE, &sig),
                        ("x-gatehouse-policy", "engineering"),
                        ("accept", "*/*"),
                    ],
                    false,
                ),
            )
            .unwrap();
        let Some(Response::RequestHeaders(h)) = &r.response else {
            panic!("{r:?}")
        };
        let removed = &h
            .response
            .as_ref()
            .unwrap()
            .header_mutation
            .as_ref()
            .unwrap()
            .remove_headers;
        assert_eq!(removed.len(), 3);
        assert!(removed.iter().all(|k| k.starts_with("x-gatehouse-")));
        // The engineering policy records prompts and has an approval rule: it needs the body.
        assert_eq!(
            r.mode_override.unwrap().request_body_mode,
            BodySendMode::Buffered as i32
        );
    }

    /// The approval rule's body: a hold is created (the request waits in `hold.rs`); the
    /// reviewers' summary and the record hold the prompt masked.
    fn approval_body(s: &Shared) -> (Exchange, Option<ProcessingResponse>) {
        let (blob, sig) = handoff_for(KEY, u64::MAX, &s.engine.digest);
        let mut x = Exchange::default();
        s.handle(
            &mut x,
            headers(
                &[
                    (":method", "POST"),
                    (":path", "/v1/chat/completions"),
                    (H_IDENTITY, &blob),
                    (H_SIGNATURE, &sig),
                ],
                false,
            ),
        );
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"merger memo for bob@example.com"}]}"#;
        let r = s.handle(
            &mut x,
            ProcessingRequest {
                request: Some(Request::RequestBody(
                    envoy_types::pb::envoy::service::ext_proc::v3::HttpBody {
                        body: body.to_vec(),
                        end_of_stream: true,
                        ..Default::default()
                    },
                )),
                ..Default::default()
            },
        );
        (x, r)
    }

    #[test]
    fn an_approval_rule_holds_the_request_and_shows_reviewers_a_masked_summary() {
        let (s, _) = shared();
        let (x, r) = approval_body(&s);
        assert_eq!(status_of(&r.unwrap()), None, "nothing answered yet: held");
        let a = x.hold.expect("a pending approval");
        assert_eq!(a.state, crate::approvals::State::Pending);
        assert_eq!(a.rules(), vec!["legal-review"]);
        assert_eq!(a.matched, vec!["legal-review at messages[0].content"]);
        assert!(!a.request.unwrap().to_string().contains("bob@example.com"));
        assert!(
            a.summary.contains("merger memo for [EMAIL]"),
            "{}",
            a.summary
        );
        assert!(!a.summary.contains("bob@example.com"));
        assert!(a.expires_ms > a.created_ms);
    }

    #[test]
    fn an_approval_rule_without_reviewers_refuses_and_records_the_prompt_masked() {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../policies/default.yaml"
        ))
        .unwrap();
        let start = src.find("        approval:\n").unwrap();
        let end = src[start..].find("          mode: hold\n").unwrap()
            + start
            + "          mode: hold\n".len();
        let src = format!("{}{}", &src[..start], &src[end..]);
        let store = Arc::new(MemoryStore::for_tests());
        let s = Shared::new(
            Arc::new(Engine::from_source(&src).unwrap()),
            KEY.to_vec(),
            store.clone(),
        );
        let (mut x, r) = approval_body(&s);
        assert_eq!(status_of(&r.unwrap()), Some(403));
        assert!(x.hold.is_none());
        flush(&s, &mut x);
        let rec = store.recent(1).pop().unwrap();
        assert_eq!(rec.decision.verdict, "require_approval");
        let body = rec.request.body.unwrap();
        let text = body["messages"][0]["content"].as_str().unwrap();
        assert_eq!(text, "merger memo for [EMAIL]");
    }
}

#[cfg(test)]
mod dry_run_tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn dry_run_counts_what_it_would_mask_and_sends_the_original() {
        let src = r#"
apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata: {name: t}
policies:
  - id: watch
    models: ["*"]
    dry_run: true
    response_masking: [{id: pii, detectors: [email]}]
"#;
        let store = Arc::new(MemoryStore::for_tests());
        let s = Shared::new(
            Arc::new(Engine::from_source(src).unwrap()),
            b"k".to_vec(),
            store.clone(),
        );
        let mut x = Exchange {
            handoff: Some(Handoff {
                issuer: "i".into(),
                principal: "p".into(),
                groups: vec![],
                policy: "watch".into(),
                bundle: "b".into(),
                expires_at: u64::MAX,
                leeway: 0,
            }),
            content_type: "application/json".into(),
            ..Default::default()
        };
        let body = br#"{"text":"write to a@example.com"}"#.to_vec();
        let r = s.response_body(&mut x, body.clone(), true);
        let Some(Response::ResponseBody(b)) = r.response else {
            panic!()
        };
        let Some(Mutation::Body(sent)) = b.response.unwrap().body_mutation.unwrap().mutation else {
            panic!()
        };
        assert_eq!(sent, body);
        super::tests::flush(&s, &mut x);
        let rec = store.recent(1).pop().unwrap();
        assert_eq!(rec.response.unwrap().masked.values().sum::<u64>(), 1);
        assert!(rec.decision.dry_run);
    }
}

#[cfg(test)]
mod fail_closed_tests {
    use super::tests::status_of;
    use super::*;
    use crate::store::MemoryStore;
    use envoy_types::pb::envoy::config::core::v3::HeaderMap;

    fn exchange() -> (Shared, Exchange) {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../policies/default.yaml"
        ))
        .unwrap();
        let s = Shared::new(
            Arc::new(Engine::from_source(&src).unwrap()),
            b"k".to_vec(),
            Arc::new(MemoryStore::for_tests()),
        );
        let x = Exchange {
            handoff: Some(Handoff {
                issuer: "i".into(),
                principal: "alice".into(),
                groups: vec!["eng".into()],
                policy: "engineering".into(),
                bundle: "b".into(),
                expires_at: u64::MAX,
                leeway: 0,
            }),
            ..Default::default()
        };
        (s, x)
    }

    fn response_headers(pairs: &[(&str, &str)]) -> HttpHeaders {
        HttpHeaders {
            headers: Some(HeaderMap {
                headers: pairs
                    .iter()
                    .map(|(k, v)| HeaderValue {
                        key: (*k).into(),
                        value: String::new(),
                        raw_value: v.as_bytes().to_vec(),
                    })
                    .collect(),
            }),
            end_of_stream: false,
            ..Default::default()
        }
    }

    #[test]
    fn compressed_or_unreadable_responses_are_refused_on_masked_routes() {
        let (s, mut x) = exchange();
        let r = s.response_headers(
            &mut x,
            &response_headers(&[
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ]),
        );
        assert_eq!(status_of(&r), Some(502));
        let (s, mut x) = exchange();
        let r = s.response_headers(
            &mut x,
            &response_headers(&[
                (":status", "200"),
                ("content-type", "application/octet-stream"),
            ]),
        );
        assert_eq!(status_of(&r), Some(502));
        let (s, mut x) = exchange();
        let r = s.response_headers(
            &mut x,
            &response_headers(&[(":status", "200"), ("content-type", "application/json")]),
        );
        assert_eq!(status_of(&r), None);
        let r = s.response_body(&mut x, b"{not json".to_vec(), true);
        assert_eq!(
            status_of(&r),
            Some(502),
            "a masked JSON route never passes unparseable bodies"
        );
    }

    #[test]
    fn sse_responses_are_streamed_not_buffered() {
        let (s, mut x) = exchange();
        let r = s.response_headers(
            &mut x,
            &response_headers(&[(":status", "200"), ("content-type", "text/event-stream")]),
        );
        assert_eq!(
            r.mode_override.unwrap().response_body_mode,
            BodySendMode::Streamed as i32
        );
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;
    use crate::store::MemoryStore;

    fn exchange(policy: &str) -> Exchange {
        Exchange {
            handoff: Some(Handoff {
                issuer: "i".into(),
                principal: "p".into(),
                groups: vec![],
                policy: policy.into(),
                bundle: "b".into(),
                expires_at: u64::MAX,
                leeway: 0,
            }),
            content_type: "application/json".into(),
            ..Default::default()
        }
    }

    #[test]
    fn answers_are_recorded_masked_or_not_at_all() {
        let src = r#"
apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata: {name: t}
policies:
  - id: keep
    match: {groups: [keep]}
    models: ["*"]
    prompt_rules: [{id: keys, action: block, detectors: [aws_access_key_id]}]
    response_masking: [{id: pii, detectors: [email]}]
  - id: quiet
    models: ["*"]
    response_masking: [{id: pii, detectors: [email]}]
    record: {responses: false}
"#;
        let store = Arc::new(MemoryStore::for_tests());
        let s = Shared::new(
            Arc::new(Engine::from_source(src).unwrap()),
            b"k".to_vec(),
            store.clone(),
        );
        let body = br#"{"text":"write to a@example.com, key AKIAQWERTYUIOPASDFGHJ"}"#.to_vec();
        for policy in ["keep", "quiet"] {
            let mut x = exchange(policy);
            s.response_body(&mut x, body.clone(), true);
            super::tests::flush(&s, &mut x);
        }
        let recs = store.recent(2);
        let kept = recs[0].response.as_ref().unwrap();
        let text = kept.body.as_ref().unwrap().to_string();
        assert!(
            text.contains("[EMAIL]") && !text.contains("a@example.com"),
            "{text}"
        );
        assert!(
            !text.contains("AKIAQWERTYUIOPASDFGH"),
            "block-rule matches redacted: {text}"
        );
        assert_eq!(kept.masked.get("pii"), Some(&1));
        let quiet = recs[1].response.as_ref().unwrap();
        assert!(
            quiet.body.is_none(),
            "record.responses: false leaves the answer out"
        );
        assert_eq!(quiet.masked.get("pii"), Some(&1), "counts are still kept");
    }
}
