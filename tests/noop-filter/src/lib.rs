//! The floor of the proxy-wasm approach for `make bench`: a filter that reads two request
//! headers and lets everything through, so the benchmark can tell the cost of running any
//! wasm filter apart from the cost of Gatehouse's own work.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

// The SDK's entry point macro exports `_initialize`, which runs the module's static
// constructors (an `unsafe` extern call inside the macro, sound because the host calls it
// exactly once before any other export) and then this block, which only registers the root.
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Noop))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Noop;

impl Context for Noop {}

impl HttpContext for Noop {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let _ = self.get_http_request_header(":path");
        let _ = self.get_http_request_header("authorization");
        Action::Continue
    }
}
