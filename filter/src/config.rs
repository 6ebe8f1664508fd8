//! The filter's plugin configuration (Envoy `configuration`, or Istio `pluginConfig`).

use serde::Deserialize;

/// Filter settings. Unknown fields are refused so a typo never silently disables a check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The policy bundle, as YAML or JSON text.
    pub bundle: String,
    /// Largest request body accepted on inference routes (413 beyond it).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest decoded size of a compressed request body.
    #[serde(default = "default_max_decoded")]
    pub max_decoded_bytes: usize,
    /// Longest bearer token considered.
    #[serde(default = "default_max_token")]
    pub max_token_bytes: usize,
    /// Key for the HMAC over the identity header and events; the server holds the same key.
    /// Prefer `handoff_key_env`: a key given here shows in Envoy's `/config_dump`.
    #[serde(default)]
    pub handoff_key: String,
    /// Name of an environment variable of the Wasm VM holding the key (Envoy's
    /// `vm_config.environment_variables.host_env_keys` passes it from Envoy's environment).
    #[serde(default)]
    pub handoff_key_env: Option<String>,
    /// Envoy cluster of the Gatehouse server, for decision events.
    #[serde(default)]
    pub events_cluster: Option<String>,
    /// `:authority` used for event calls.
    #[serde(default = "default_events_authority")]
    pub events_authority: String,
    #[serde(default = "default_events_path")]
    pub events_path: String,
    /// Most event calls in flight per worker; more are dropped and counted.
    #[serde(default = "default_events_inflight")]
    pub max_events_in_flight: usize,
}

fn default_max_body() -> usize {
    1024 * 1024
}
fn default_max_decoded() -> usize {
    4 * 1024 * 1024
}
fn default_max_token() -> usize {
    16 * 1024
}
fn default_events_authority() -> String {
    "gatehouse-server".into()
}
fn default_events_path() -> String {
    "/v1/events".into()
}
fn default_events_inflight() -> usize {
    64
}

impl FilterConfig {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let mut c: FilterConfig =
            serde_json::from_slice(bytes).map_err(|e| format!("filter configuration: {e}"))?;
        if let Some(var) = &c.handoff_key_env {
            c.handoff_key = std::env::var(var).map_err(|_| {
                format!("filter configuration: environment variable `{var}` (handoff_key_env) is not set in the Wasm VM")
            })?;
        }
        if c.handoff_key.len() < 16 {
            return Err("filter configuration: handoff_key must be at least 16 bytes".into());
        }
        Ok(c)
    }
}
