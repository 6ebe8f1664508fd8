//! Gatehouse's Envoy filter (proxy-wasm, wasm32-wasip1).
//!
//! Thin glue between Envoy's callbacks and [`gate::Gate`], which holds every decision and is
//! tested natively. Nothing here unwraps input: a panic would kill the worker's VM.

pub mod config;
pub mod events;
pub mod gate;
pub mod jwks;

use gate::{Gate, HeadStep, Outcome, Pending, RequestHead};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

const EVENTS_QUEUE: &str = "gatehouse_events";

// The SDK's entry point macro exports `_initialize`, which calls the module's static
// constructors (`__wasm_call_ctors`, an `unsafe` extern call inside the macro) and then this
// block. That call is sound: the host calls `_initialize` exactly once, before any other
// export, which is the only time a WASI reactor may run its constructors. The block itself
// only registers our root context.
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Token failure reasons, each with its own counter.
const TOKEN_FAILURES: &[&str] = policy_engine::identity::TokenError::CODES;

/// Counter and histogram ids.
#[derive(Default)]
struct Metrics {
    token_failures: Vec<(&'static str, u32)>,
    jwks_fetch_ok: u32,
    jwks_fetch_failed: u32,
    allow: u32,
    block: u32,
    deny: u32,
    approval: u32,
    unauthenticated: u32,
    events_dropped: u32,
    decision_us: u32,
}

impl Metrics {
    fn define() -> Metrics {
        let c = |n: &str| hostcalls::define_metric(MetricType::Counter, n).unwrap_or(0);
        Metrics {
            token_failures: TOKEN_FAILURES
                .iter()
                .map(|r| (*r, c(&format!("gatehouse.token_failures.{r}"))))
                .collect(),
            jwks_fetch_ok: c("gatehouse.jwks.fetch_ok"),
            jwks_fetch_failed: c("gatehouse.jwks.fetch_failed"),
            allow: c("gatehouse.requests.allow"),
            block: c("gatehouse.requests.block"),
            deny: c("gatehouse.requests.deny"),
            approval: c("gatehouse.requests.require_approval"),
            unauthenticated: c("gatehouse.requests.unauthenticated"),
            events_dropped: c("gatehouse.events.dropped"),
            decision_us: hostcalls::define_metric(MetricType::Histogram, "gatehouse.decision_us")
                .unwrap_or(0),
        }
    }

    fn inc(&self, id: u32) {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

/// Take the right to fetch `issuer`'s JWKS now: at most one fetch per interval across all
/// workers (compare-and-swap on shared data).
fn claim_fetch(issuer: &str, now: u64) -> bool {
    let key = jwks::claim_key(issuer);
    let Ok((val, cas)) = hostcalls::get_shared_data(&key) else {
        return false;
    };
    jwks::may_claim(val.as_deref(), now)
        && hostcalls::set_shared_data(&key, Some(now.to_string().as_bytes()), cas).is_ok()
}

/// Store a fetched JWKS for every worker.
fn publish_jwks(issuer: &str, now: u64, doc: &[u8]) {
    let _ = hostcalls::set_shared_data(
        &jwks::document_key(issuer),
        Some(&jwks::encode(now, doc)),
        None,
    );
}

/// The shared JWKS of `issuer`: (fetched_at, document, cas).
fn shared_jwks(issuer: &str) -> Option<(u64, Vec<u8>, u32)> {
    let (val, cas) = hostcalls::get_shared_data(&jwks::document_key(issuer)).ok()?;
    let val = val?;
    let (at, doc) = jwks::decode(&val)?;
    Some((at, doc.to_vec(), cas.unwrap_or(0)))
}

/// Fetch request headers for a JWKS target.
fn fetch(ctx: &dyn Context, t: &gate::FetchTarget) -> Result<u32, proxy_wasm::types::Status> {
    ctx.dispatch_http_call(
        &t.cluster,
        vec![
            (":method", "GET"),
            (":path", &t.path),
            (":authority", &t.authority),
            ("accept", "application/json"),
        ],
        None,
        vec![],
        Duration::from_secs(5),
    )
}

/// Read a JWKS call's response; the document when it is a 200.
fn jwks_response(ctx: &dyn Context, body_size: usize) -> Option<Vec<u8>> {
    let status = ctx.get_http_call_response_header_bytes(":status");
    if status.as_deref() != Some(b"200".as_slice()) {
        return None;
    }
    ctx.get_http_call_response_body(0, body_size)
}

/// A JWKS fetch has answered (`doc` is its body when it was a 200): install the keys here
/// and publish them for every worker. A failed fetch or a rejected document is counted and
/// logged, and the keys already held keep serving: an IdP outage or a bad document must not
/// lock everyone out. Returns whether new keys were installed.
fn accept_fetch(
    gate: &RefCell<Gate>,
    m: &Metrics,
    issuer: &str,
    now: u64,
    doc: Option<Vec<u8>>,
) -> bool {
    let installed = doc
        .ok_or_else(|| "the JWKS endpoint did not answer 200".to_owned())
        .and_then(|doc| {
            let n = gate.borrow_mut().install_jwks(issuer, &doc)?;
            publish_jwks(issuer, now, &doc);
            Ok(n)
        });
    match installed {
        Ok(n) => {
            m.inc(m.jwks_fetch_ok);
            let msg = format!("gatehouse: {n} key(s) fetched for issuer `{issuer}`");
            hostcalls::log(LogLevel::Info, &msg).ok();
            true
        }
        Err(e) => {
            m.inc(m.jwks_fetch_failed);
            let msg = format!("gatehouse: JWKS for `{issuer}` not installed: {e}");
            hostcalls::log(LogLevel::Warn, &msg).ok();
            false
        }
    }
}

/// Where decision events go, taken from the filter configuration once.
struct EventsTarget {
    cluster: String,
    path: String,
    authority: String,
}

#[derive(Default)]
struct Root {
    /// Issuers whose keys come from a JWKS URI, with their fetch target.
    remote: Vec<gate::FetchTarget>,
    /// cas of the shared JWKS last installed, per issuer.
    seen: std::collections::HashMap<String, u32>,
    /// In-flight JWKS fetches: call token -> issuer.
    fetches: std::collections::HashMap<u32, String>,
    gate: Option<Rc<RefCell<Gate>>>,
    metrics: Rc<Metrics>,
    queue: u32,
    events: Option<EventsTarget>,
    outbox: Option<events::Outbox>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _h: usize, body_size: usize, _t: usize) {
        if let Some(issuer) = self.fetches.remove(&token) {
            let now = self.secs();
            let doc = jwks_response(self, body_size);
            let Some(gate) = &self.gate else { return };
            if accept_fetch(gate, &self.metrics, &issuer, now, doc) {
                // What this worker published needs no re-install on the next tick.
                if let Some((_, _, cas)) = shared_jwks(&issuer) {
                    self.seen.insert(issuer, cas);
                }
            }
            return;
        }
        if let Some(o) = self.outbox.as_mut() {
            o.completed();
        }
        self.drain();
    }
}

impl Root {
    fn secs(&self) -> u64 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Pick up keys another worker fetched, and refresh keys that are getting old.
    fn sync_jwks(&mut self) {
        let now = self.secs();
        for t in self.remote.clone() {
            let shared = shared_jwks(&t.issuer);
            if let Some((_, doc, cas)) = &shared {
                if self.seen.get(&t.issuer) != Some(cas) {
                    if let Some(gate) = &self.gate {
                        if let Err(e) = gate.borrow_mut().install_jwks(&t.issuer, doc) {
                            let msg =
                                format!("gatehouse: shared JWKS for `{}` rejected: {e}", t.issuer);
                            hostcalls::log(LogLevel::Warn, &msg).ok();
                        }
                    }
                    self.seen.insert(t.issuer.clone(), *cas);
                }
            }
            let stale = jwks::is_stale(shared.as_ref().map(|(at, _, _)| *at), now);
            if stale && claim_fetch(&t.issuer, now) {
                if let Ok(token) = fetch(self, &t) {
                    self.fetches.insert(token, t.issuer.clone());
                }
            }
        }
    }

    fn drain(&mut self) {
        let Some(outbox) = self.outbox.as_mut() else {
            return;
        };
        let Some(t) = &self.events else {
            let n = outbox.clear();
            for _ in 0..n {
                self.metrics.inc(self.metrics.events_dropped);
            }
            return;
        };
        while let Some(ev) = outbox.next_to_send() {
            // Events are signed: the server accepts none it did not get from a filter.
            let sig = self
                .gate
                .as_ref()
                .map(|g| g.borrow().sign_event(&ev))
                .unwrap_or_default();
            let headers = vec![
                (":method", "POST"),
                (":path", t.path.as_str()),
                (":authority", t.authority.as_str()),
                ("content-type", "application/json"),
                (policy_engine::wire::H_EVENT_SIGNATURE, sig.as_str()),
            ];
            match hostcalls::dispatch_http_call(
                &t.cluster,
                headers,
                Some(&ev),
                vec![],
                Duration::from_secs(2),
            ) {
                Ok(_) => outbox.dispatched(),
                Err(_) => {
                    outbox.dispatch_failed();
                    self.metrics.inc(self.metrics.events_dropped);
                }
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(raw) = self.get_plugin_configuration() else {
            proxy_wasm::hostcalls::log(LogLevel::Critical, "gatehouse: no plugin configuration")
                .ok();
            return false;
        };
        let cfg = match config::FilterConfig::parse(&raw) {
            Ok(c) => c,
            Err(e) => {
                hostcalls::log(LogLevel::Critical, &format!("gatehouse: {e}")).ok();
                return false;
            }
        };
        let engine = match policy_engine::Engine::from_source(&cfg.bundle) {
            Ok(e) => e,
            Err(e) => {
                let detail = match &e {
                    policy_engine::engine::EngineError::Bundle(b) => {
                        b.0.iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    }
                    other => other.to_string(),
                };
                hostcalls::log(
                    LogLevel::Critical,
                    &format!("gatehouse: invalid bundle: {detail}"),
                )
                .ok();
                return false;
            }
        };
        hostcalls::log(
            LogLevel::Info,
            &format!(
                "gatehouse: bundle `{}` loaded, digest {}",
                engine.bundle.metadata.name, engine.digest
            ),
        )
        .ok();
        self.remote = engine
            .issuers
            .iter()
            .filter_map(|i| {
                let (authority, path) = gate::split_uri(i.issuer.jwks_uri.as_deref()?)?;
                Some(gate::FetchTarget {
                    issuer: i.issuer.name.clone(),
                    cluster: i.issuer.jwks_cluster.clone()?,
                    authority,
                    path,
                })
            })
            .collect();
        if !self.remote.is_empty() {
            self.set_tick_period(Duration::from_secs(1));
        }
        self.metrics = Rc::new(Metrics::define());
        self.queue = self.register_shared_queue(EVENTS_QUEUE);
        self.events = cfg.events_cluster.clone().map(|cluster| EventsTarget {
            cluster,
            path: cfg.events_path.clone(),
            authority: cfg.events_authority.clone(),
        });
        self.outbox = Some(events::Outbox::new(cfg.max_events_in_flight));
        self.gate = Some(Rc::new(RefCell::new(Gate::new(engine, cfg))));
        // Keys are fetched from the first tick on (calls cannot be made while configuring),
        // or at once by the first request that needs them.
        true
    }

    fn on_tick(&mut self) {
        self.sync_jwks();
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(ev)) = self.dequeue_shared_queue(queue_id) {
            let dropped = self
                .outbox
                .get_or_insert_with(|| events::Outbox::new(1))
                .push(ev);
            for _ in 0..dropped {
                self.metrics.inc(self.metrics.events_dropped);
            }
        }
        self.drain();
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        let gate = self.gate.clone()?;
        Some(Box::new(Http {
            gate,
            metrics: self.metrics.clone(),
            queue: self.queue,
            pending: None,
            buffered: 0,
            body_ended: false,
            awaiting_keys: None,
            response_headers: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    gate: Rc<RefCell<Gate>>,
    metrics: Rc<Metrics>,
    queue: u32,
    pending: Option<Pending>,
    /// Size of the request body buffered so far.
    buffered: usize,
    /// The body ended (end of stream or trailers) while the headers waited for keys.
    body_ended: bool,
    /// Headers paused while the token issuer's JWKS is fetched: (issuer, headers).
    awaiting_keys: Option<(String, RequestHead)>,
    /// Headers echoed to the client on the response (request id, policy, verdict).
    response_headers: Vec<(String, String)>,
}

impl Context for Http {
    fn on_http_call_response(&mut self, _token: u32, _h: usize, body_size: usize, _t: usize) {
        let Some((issuer, head)) = self.awaiting_keys.take() else {
            return;
        };
        let (now, nanos) = self.now();
        let doc = jwks_response(self, body_size);
        accept_fetch(&self.gate, &self.metrics, &issuer, now, doc);
        let step = self.gate.borrow_mut().on_headers(head, now, nanos, false);
        if let Action::Continue = self.head_step(step) {
            // A body that arrived whole while the keys were fetched is decided now, before
            // anything goes on; otherwise the body callbacks decide it as usual.
            if self.body_ended {
                if let Some(p) = self.pending.take() {
                    let size = self.buffered;
                    if let Action::Pause = self.decide_body(p, size) {
                        return;
                    }
                }
            }
            self.resume_http_request();
        }
    }
}

impl Http {
    fn now(&self) -> (u64, u128) {
        let d = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (d.as_secs(), d.as_nanos())
    }

    /// Send a local reply and queue its decision event for the session log.
    fn reply(&mut self, r: gate::Reply) -> Action {
        let m = &self.metrics;
        let verdict = r
            .event
            .pointer("/decision/verdict")
            .and_then(|v| v.as_str());
        if r.status == 401 {
            let reason = r
                .event
                .pointer("/decision/reason")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            if let Some((_, id)) = m.token_failures.iter().find(|(n, _)| *n == reason) {
                m.inc(*id);
            }
        }
        m.inc(match (r.status, verdict) {
            (401, _) => m.unauthenticated,
            (_, Some("deny")) | (403, None) => m.deny,
            _ => m.block,
        });
        if let Ok(ev) = serde_json::to_vec(&r.event) {
            if self.enqueue_shared_queue(self.queue, Some(&ev)).is_err() {
                m.inc(m.events_dropped);
            }
        }
        let headers: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.send_http_response(r.status, headers, Some(&r.body));
        Action::Pause
    }

    /// Carry out the headers phase's outcome.
    fn head_step(&mut self, step: HeadStep) -> Action {
        match step {
            HeadStep::Reply(r) => self.reply(r),
            HeadStep::FetchKeys(t, head) => {
                let (now, nanos) = self.now();
                // Another worker may have fetched the keys already.
                if let Some((_, doc, _)) = shared_jwks(&t.issuer) {
                    let _ = self.gate.borrow_mut().install_jwks(&t.issuer, &doc);
                }
                let still_unknown = self.gate.borrow_mut().key_unknown(&head, now);
                if still_unknown && claim_fetch(&t.issuer, now) {
                    if fetch(self, &t).is_ok() {
                        self.awaiting_keys = Some((t.issuer, head));
                        return Action::Pause;
                    }
                    self.metrics.inc(self.metrics.jwks_fetch_failed);
                }
                // Rate-limited or unreachable: decide with the keys we have.
                let step = self.gate.borrow_mut().on_headers(head, now, nanos, false);
                self.head_step(step)
            }
            HeadStep::Continue {
                headers,
                drop_content_length,
                body,
            } => {
                self.set_request_headers(&headers);
                if drop_content_length {
                    self.set_http_request_header("content-length", None);
                }
                match body {
                    Some(p) => self.pending = Some(p),
                    None => self.metrics.inc(self.metrics.allow),
                }
                // Headers go on now (a pause here would also hold back the body from us);
                // the body is held below until it is decided.
                Action::Continue
            }
        }
    }

    /// A request header's value, read as bytes (the SDK's string getter panics on a value
    /// that is not UTF-8) and decoded lossily.
    fn header(&self, name: &str) -> Option<String> {
        self.get_http_request_header_bytes(name)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Decide the complete body (`size` bytes buffered) and carry the outcome out.
    fn decide_body(&mut self, p: Pending, size: usize) -> Action {
        let max = self.gate.borrow().cfg.max_body_bytes;
        let started = self.now().1;
        // Past the limit the body is not even read: it is refused as soon as it crosses it.
        let body = if size > max {
            Default::default()
        } else {
            self.get_http_request_body(0, size).unwrap_or_default()
        };
        let o = self.gate.borrow_mut().on_body(p, size, &body);
        let took = (self.now().1.saturating_sub(started) / 1000) as u64;
        let _ = hostcalls::record_metric(self.metrics.decision_us, took);
        match o {
            Outcome::Reply(r) => self.reply(r),
            Outcome::Forward(f) => {
                let m = &self.metrics;
                m.inc(match f.verdict {
                    policy_engine::Verdict::RequireApproval => m.approval,
                    _ => m.allow,
                });
                self.response_headers.extend(f.headers);
                if let Some(ev) = f.event.and_then(|e| serde_json::to_vec(&e).ok()) {
                    if self.enqueue_shared_queue(self.queue, Some(&ev)).is_err() {
                        m.inc(m.events_dropped);
                    }
                }
                if let Some(new) = f.body {
                    self.set_http_request_body(0, size, &new);
                }
                Action::Continue
            }
        }
    }

    fn set_request_headers(&mut self, headers: &[(String, String)]) {
        for (k, v) in headers {
            self.set_http_request_header(k, Some(v));
            if k == gate::H_REQUEST_ID || k == gate::H_POLICY {
                self.response_headers.push((k.clone(), v.clone()));
            }
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        // The one gateway header a caller may set: which session a call belongs to.
        let session = self.header(policy_engine::wire::H_SESSION);
        // Never trust an inbound x-gatehouse-* header: they are ours alone.
        for (name, _) in self.get_http_request_headers_bytes() {
            if policy_engine::wire::is_gatehouse_header(name.as_bytes()) {
                self.set_http_request_header(&name, None);
            }
        }
        let head = RequestHead {
            method: self.header(":method").unwrap_or_default(),
            path: self.header(":path").unwrap_or_default(),
            authorization: self.header("authorization"),
            content_encoding: self.header("content-encoding"),
            request_id: self.header("x-request-id"),
            session,
            received_ms: 0,
            has_body: !end_of_stream,
        };
        let (now, nanos) = self.now();
        let head = RequestHead {
            received_ms: (nanos / 1_000_000) as u64,
            ..head
        };
        let step = self.gate.borrow_mut().on_headers(head, now, nanos, true);
        // The caller's credential goes no further than the gateway.
        self.set_http_request_header("authorization", None);
        self.head_step(step)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(p) = self.pending.take() else {
            if self.awaiting_keys.is_some() {
                // The headers wait for the issuer's keys: hold the body until they are known.
                self.buffered = body_size;
                self.body_ended = end_of_stream;
                return Action::Pause;
            }
            return Action::Continue;
        };
        self.buffered = body_size;
        let max = self.gate.borrow().cfg.max_body_bytes;
        if !end_of_stream && body_size <= max {
            self.pending = Some(p);
            return Action::Pause;
        }
        self.decide_body(p, body_size)
    }

    /// Trailers end the body (HTTP/2, gRPC-style clients): the body buffered so far is all
    /// there is, and it is decided now, before anything goes on.
    fn on_http_request_trailers(&mut self, _n: usize) -> Action {
        let Some(p) = self.pending.take() else {
            if self.awaiting_keys.is_some() {
                self.body_ended = true;
                return Action::Pause;
            }
            return Action::Continue;
        };
        let size = self.buffered;
        self.decide_body(p, size)
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        for (k, v) in &self.response_headers {
            self.set_http_response_header(k, Some(v));
        }
        Action::Continue
    }
}
