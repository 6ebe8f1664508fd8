//! The route allow-list: which paths and methods reach the upstream, and how each is read.
//!
//! Envoy normalises the path before the filter sees it (`normalize_path`, `merge_slashes`,
//! escaped slashes unescaped); this module then matches it *exactly*, segment by segment and
//! case-sensitively, against the bundle's routes. Anything else is refused: an unknown path
//! (404), a known path with another method (405), a query parameter the route does not list
//! (400). Envoy has already decoded `%2F` and escaped unreserved characters (`%6F`); a
//! spelling the upstream might still serve (`;param`, another case, a trailing slash, a
//! reserved escape) is simply not on the list.

use crate::extract::Api;
use serde::{Deserialize, Serialize};

/// HTTP methods a pass-through route may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Head,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// An inference route: `POST` only, its body decided by the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceRoute {
    /// Exact path; a `{model}` segment matches one segment and names the model served.
    pub path: String,
    /// The API the body follows (extractor and error shape).
    pub api: Api,
    /// Query parameters the route accepts (e.g. Azure's `api-version`); any other is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<String>,
}

/// A body-less route that passes with the caller's identity checked (e.g. `GET /v1/models`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassthroughRoute {
    pub path: String,
    #[serde(default = "default_methods")]
    pub methods: Vec<Method>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<String>,
}

fn default_methods() -> Vec<Method> {
    vec![Method::Get]
}

/// The bundle's `routes` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routes {
    #[serde(default)]
    pub inference: Vec<InferenceRoute>,
    #[serde(default)]
    pub passthrough: Vec<PassthroughRoute>,
}

impl Routes {
    /// The routes of a bundle that names none: OpenAI's and Anthropic's public APIs.
    pub fn builtin() -> Routes {
        let inf = |path: &str, api| InferenceRoute {
            path: path.into(),
            api,
            query: vec![],
        };
        Routes {
            inference: vec![
                inf("/v1/chat/completions", Api::ChatCompletions),
                inf("/v1/completions", Api::Completions),
                inf("/v1/responses", Api::Responses),
                inf("/v1/embeddings", Api::Embeddings),
                inf("/v1/messages", Api::AnthropicMessages),
            ],
            passthrough: vec![PassthroughRoute {
                path: "/v1/models".into(),
                methods: vec![Method::Get],
                query: vec![],
            }],
        }
    }
}

impl Default for Routes {
    fn default() -> Self {
        Routes::builtin()
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    Inference { api: Api, model: Option<String> },
    Passthrough,
    Refused(Refusal),
}

/// Why a route is refused, in terms the caller can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Error shape of the refusal (the API of the path, when the path is known).
    pub api: Api,
    /// For 405: the methods the path allows.
    pub allow: Option<String>,
}

/// Match `pattern` against `path` segment by segment; the `{model}` segment's value.
fn match_path(pattern: &str, path: &str) -> Option<Option<String>> {
    let mut model = None;
    let mut ps = pattern.split('/');
    let mut ss = path.split('/');
    loop {
        match (ps.next(), ss.next()) {
            (None, None) => return Some(model),
            (Some("{model}"), Some(s)) if !s.is_empty() => model = Some(s.to_owned()),
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

fn query_ok(query: Option<&str>, allowed: &[String]) -> Result<(), String> {
    let Some(q) = query else { return Ok(()) };
    for pair in q.split('&') {
        let name = pair.split('=').next().unwrap_or("");
        if !allowed.iter().any(|a| a == name) {
            // The name is not echoed: a query string can carry anything.
            return Err(if allowed.is_empty() {
                "this route takes no query parameters".to_owned()
            } else {
                format!(
                    "a query parameter is not allowed on this route (allowed: {})",
                    allowed.join(", ")
                )
            });
        }
    }
    Ok(())
}

impl Routes {
    /// Decide where `method` `path` (with its query string) goes.
    pub fn resolve(&self, method: &str, full_path: &str) -> RouteMatch {
        let (path, query) = match full_path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (full_path, None),
        };
        let refuse = |status, code, message: String, api, allow| {
            RouteMatch::Refused(Refusal {
                status,
                code,
                message,
                api,
                allow,
            })
        };
        let mut allowed: Vec<&'static str> = Vec::new();
        let mut api_of_path = Api::ChatCompletions;
        for r in &self.inference {
            if let Some(model) = match_path(&r.path, path) {
                if method != "POST" {
                    allowed.push("POST");
                    api_of_path = r.api;
                    continue;
                }
                if let Err(m) = query_ok(query, &r.query) {
                    return refuse(400, "invalid_query", m, r.api, None);
                }
                return RouteMatch::Inference { api: r.api, model };
            }
        }
        for r in &self.passthrough {
            if match_path(&r.path, path).is_some() {
                if !r.methods.iter().any(|m| m.as_str() == method) {
                    allowed.extend(r.methods.iter().map(|m| m.as_str()));
                    continue;
                }
                if let Err(m) = query_ok(query, &r.query) {
                    return refuse(400, "invalid_query", m, api_of_path, None);
                }
                return RouteMatch::Passthrough;
            }
        }
        if !allowed.is_empty() {
            allowed.dedup();
            let allow = allowed.join(", ");
            return refuse(
                405,
                "method_not_allowed",
                format!("method {method} is not allowed on this route (allowed: {allow})"),
                api_of_path,
                Some(allow),
            );
        }
        refuse(
            404,
            "unknown_route",
            "this path is not a route the gateway serves".to_owned(),
            api_of_path,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(m: RouteMatch) -> u16 {
        match m {
            RouteMatch::Refused(r) => r.status,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn exact_paths_only() {
        let r = Routes::builtin();
        assert_eq!(
            r.resolve("POST", "/v1/chat/completions"),
            RouteMatch::Inference {
                api: Api::ChatCompletions,
                model: None
            }
        );
        for p in [
            "/v1/chat%2Fcompletions",
            "/v1/chat/c%6Fmpletions",
            "/V1/Chat/Completions",
            "/v1/chat/completions;x=1",
            "/v1/chat/completions/",
            "/openai/v1/chat/completions",
            "/api/generate",
            "/generate",
            "/v1/complete",
            "//v1/chat/completions",
        ] {
            assert_eq!(refused(r.resolve("POST", p)), 404, "{p}");
        }
        assert_eq!(refused(r.resolve("PUT", "/v1/chat/completions")), 405);
        assert_eq!(refused(r.resolve("GET", "/v1/messages")), 405);
        assert_eq!(r.resolve("GET", "/v1/models"), RouteMatch::Passthrough);
        assert_eq!(refused(r.resolve("DELETE", "/v1/models")), 405);
        assert_eq!(refused(r.resolve("POST", "/v1/chat/completions?x=1")), 400);
    }

    #[test]
    fn model_segments_and_query_allow_lists() {
        let r = Routes {
            inference: vec![InferenceRoute {
                path: "/openai/deployments/{model}/chat/completions".into(),
                api: Api::ChatCompletions,
                query: vec!["api-version".into()],
            }],
            passthrough: vec![],
        };
        assert_eq!(
            r.resolve(
                "POST",
                "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
            ),
            RouteMatch::Inference {
                api: Api::ChatCompletions,
                model: Some("gpt-4o".into())
            }
        );
        assert_eq!(
            refused(r.resolve(
                "POST",
                "/openai/deployments//chat/completions?api-version=1"
            )),
            404
        );
        assert_eq!(
            refused(r.resolve(
                "POST",
                "/openai/deployments/gpt-4o/chat/completions?api-version=1&x=2"
            )),
            400
        );
    }
}
