//! Gatehouse's Envoy filter (proxy-wasm, wasm32-wasip1).
//!
//! Thin glue between Envoy's callbacks and [`gate::Gate`], which holds every decision and is
//! tested natively. Nothing here unwraps input: a panic would kill the worker's VM.

pub mod config;
pub mod gate;

use gate::{Gate, HeadStep, Outcome, Pending, RequestHead, HEADER_PREFIX};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

const EVENTS_QUEUE: &str = "gatehouse_events";

// The SDK's entry point macro declares the module's exported `_initialize`/`_start`
// functions (it contains an `extern` block, hence the allowance below); the body only
// registers our root context.
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Counter and histogram ids.
#[derive(Default)]
struct Metrics {
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

#[derive(Default)]
struct Root {
    gate: Option<Rc<RefCell<Gate>>>,
    metrics: Rc<Metrics>,
    queue: u32,
    in_flight: Rc<Cell<usize>>,
    backlog: VecDeque<Vec<u8>>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, _token: u32, _h: usize, _b: usize, _t: usize) {
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        self.drain();
    }
}

impl Root {
    fn drain(&mut self) {
        let Some(gate) = &self.gate else { return };
        let cfg = gate.borrow().cfg.clone();
        let Some(cluster) = cfg.events_cluster.as_deref() else {
            self.backlog.clear();
            return;
        };
        while self.in_flight.get() < cfg.max_events_in_flight {
            let Some(ev) = self.backlog.pop_front() else {
                break;
            };
            let headers = vec![
                (":method", "POST"),
                (":path", cfg.events_path.as_str()),
                (":authority", cfg.events_authority.as_str()),
                ("content-type", "application/json"),
            ];
            match self.dispatch_http_call(
                cluster,
                headers,
                Some(&ev),
                vec![],
                Duration::from_secs(2),
            ) {
                Ok(_) => self.in_flight.set(self.in_flight.get() + 1),
                Err(_) => self.metrics.inc(self.metrics.events_dropped),
            }
        }
        // Bounded backlog: beyond it events are dropped and counted.
        while self.backlog.len() > cfg.max_events_in_flight * 4 {
            self.backlog.pop_front();
            self.metrics.inc(self.metrics.events_dropped);
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
        self.metrics = Rc::new(Metrics::define());
        self.queue = self.register_shared_queue(EVENTS_QUEUE);
        self.gate = Some(Rc::new(RefCell::new(Gate::new(engine, cfg))));
        true
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(ev)) = self.dequeue_shared_queue(queue_id) {
            self.backlog.push_back(ev);
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
    /// Headers echoed to the client on the response (request id, policy, verdict).
    response_headers: Vec<(String, String)>,
}

impl Context for Http {}

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
        // Never trust an inbound x-gatehouse-* header: they are ours alone.
        for (name, _) in self.get_http_request_headers_bytes() {
            if name.len() >= HEADER_PREFIX.len()
                && name[..HEADER_PREFIX.len()].eq_ignore_ascii_case(HEADER_PREFIX)
            {
                self.set_http_request_header(&name, None);
            }
        }
        let head = RequestHead {
            method: self.get_http_request_header(":method").unwrap_or_default(),
            path: self.get_http_request_header(":path").unwrap_or_default(),
            authorization: self.get_http_request_header("authorization"),
            content_encoding: self.get_http_request_header("content-encoding"),
            request_id: self.get_http_request_header("x-request-id"),
            has_body: !end_of_stream,
        };
        let (now, nanos) = self.now();
        let step = self.gate.borrow_mut().on_headers(head, now, nanos);
        // The caller's credential goes no further than the gateway.
        self.set_http_request_header("authorization", None);
        match step {
            HeadStep::Reply(r) => self.reply(r),
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

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(p) = self.pending.take() else {
            return Action::Continue;
        };
        let max = self.gate.borrow().cfg.max_body_bytes;
        if !end_of_stream && body_size <= max {
            self.pending = Some(p);
            return Action::Pause;
        }
        let started = self.now().1;
        // Past the limit the body is not even read: it is refused as soon as it crosses it.
        let body = if body_size > max {
            Default::default()
        } else {
            self.get_http_request_body(0, body_size).unwrap_or_default()
        };
        let o = self.gate.borrow_mut().on_body(p, body_size, &body);
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
                if let Some(new) = f.body {
                    self.set_http_request_body(0, body_size, &new);
                }
                Action::Continue
            }
        }
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        for (k, v) in &self.response_headers {
            self.set_http_response_header(k, Some(v));
        }
        Action::Continue
    }
}
