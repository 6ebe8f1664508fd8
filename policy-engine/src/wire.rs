//! The contract between the filter and the server, in one place: header names, the signed
//! identity hand-off, signed decision events, refusal bodies in each API's error shape, and
//! request body coding. Both halves use this module and nothing else to talk to each other.
//!
//! Signatures are HMAC-SHA256 with the key both halves share, over a domain label and the
//! signed bytes, so a hand-off signature can never be replayed as an event signature.

use crate::extract::Api;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use std::io::Read;

/// Headers the gateway owns. Inbound ones are removed before anything else happens.
pub const HEADER_PREFIX: &str = "x-gatehouse-";
pub const H_IDENTITY: &str = "x-gatehouse-identity";
pub const H_SIGNATURE: &str = "x-gatehouse-signature";
pub const H_PRINCIPAL: &str = "x-gatehouse-principal";
pub const H_POLICY: &str = "x-gatehouse-policy";
pub const H_BUNDLE: &str = "x-gatehouse-bundle";
pub const H_REQUEST_ID: &str = "x-gatehouse-request-id";
/// The caller's own `x-request-id`, kept for correlation, never used as a key.
pub const H_CLIENT_REQUEST_ID: &str = "x-gatehouse-client-request-id";
pub const H_VERDICT: &str = "x-gatehouse-verdict";
/// The session a call belongs to: the caller sets it (any other inbound `x-gatehouse-*`
/// header is removed), the filter passes it on checked.
pub const H_SESSION: &str = "x-gatehouse-session";
pub const H_RULES: &str = "x-gatehouse-rules";
/// On the filter's own replies: its signature over the request id. The server, which sees
/// those replies pass, knows from it that the filter recorded the decision (an upstream
/// cannot forge it), and removes it.
pub const H_LOCAL_REPLY: &str = "x-gatehouse-local-reply";
/// Signature of a decision event posted to the server's `/v1/events`.
pub const H_EVENT_SIGNATURE: &str = "x-gatehouse-event-signature";

/// Whether `name` (any case) is one of the gateway's own headers.
pub fn is_gatehouse_header(name: &[u8]) -> bool {
    name.len() >= HEADER_PREFIX.len()
        && name[..HEADER_PREFIX.len()].eq_ignore_ascii_case(HEADER_PREFIX.as_bytes())
}

/// What the identity header carries to the server (base64url JSON, signed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    pub issuer: String,
    pub principal: String,
    pub groups: Vec<String>,
    pub policy: String,
    pub bundle: String,
    /// Token expiry: the server refuses a hand-off once the token it came from has expired
    /// (with the same leeway the filter allowed).
    pub expires_at: u64,
    /// The issuer's leeway, so both halves agree on when the token expired.
    #[serde(default)]
    pub leeway: u64,
}

/// Signing domains.
#[derive(Debug, Clone, Copy)]
pub enum Domain {
    Handoff,
    Event,
    LocalReply,
    /// Webhooks that tell reviewers of a pending approval (the webhook key).
    Webhook,
}

impl Domain {
    fn label(self) -> &'static [u8] {
        match self {
            Domain::Handoff => b"gatehouse/handoff/v1\n",
            Domain::Event => b"gatehouse/event/v1\n",
            Domain::LocalReply => b"gatehouse/local-reply/v1\n",
            Domain::Webhook => b"gatehouse/webhook/v1\n",
        }
    }
}

/// HMAC-SHA256 of `data` in `domain`, hex.
pub fn sign(key: &[u8], domain: Domain, data: &[u8]) -> String {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(domain.label());
            m.update(data);
            hex::encode(m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Constant-time check of a hex signature.
pub fn verify(key: &[u8], domain: Domain, data: &[u8], sig: &[u8]) -> bool {
    let Ok(raw) = hex::decode(sig) else {
        return false;
    };
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(domain.label());
            m.update(data);
            m.verify_slice(&raw).is_ok()
        }
        Err(_) => false,
    }
}

/// Why a hand-off is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    #[error("missing identity hand-off")]
    Missing,
    #[error("identity signature does not verify")]
    BadSignature,
    #[error("identity hand-off is malformed")]
    Malformed,
    #[error("identity hand-off has expired")]
    Expired,
}

impl Handoff {
    /// The two header values: base64url JSON and its signature.
    pub fn encode(&self, key: &[u8]) -> (String, String) {
        let blob = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        let sig = sign(key, Domain::Handoff, blob.as_bytes());
        (blob, sig)
    }

    /// Verify and decode the header values at time `now`.
    pub fn decode(
        key: &[u8],
        blob: Option<&[u8]>,
        sig: Option<&[u8]>,
        now: u64,
    ) -> Result<Handoff, HandoffError> {
        let (Some(blob), Some(sig)) = (blob, sig) else {
            return Err(HandoffError::Missing);
        };
        if !verify(key, Domain::Handoff, blob, sig) {
            return Err(HandoffError::BadSignature);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| HandoffError::Malformed)?;
        let h: Handoff = serde_json::from_slice(&raw).map_err(|_| HandoffError::Malformed)?;
        if h.expires_at.saturating_add(h.leeway) < now {
            return Err(HandoffError::Expired);
        }
        Ok(h)
    }
}

/// A refusal body in the API's own error shape, so SDKs raise a normal API error. The
/// message names the rule and the request id, never a matched value.
pub fn error_body(api: Api, status: u16, code: &str, message: &str) -> Vec<u8> {
    let v = if api.anthropic_errors() {
        let t = match status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
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

/// The error shape to use for a request path, when the route is not known yet.
pub fn api_for_errors(engine: &crate::Engine, method: &str, path: &str) -> Api {
    match engine.route(method, path) {
        crate::routes::RouteMatch::Inference { api, .. } => api,
        crate::routes::RouteMatch::Refused(r) => r.api,
        crate::routes::RouteMatch::Passthrough => Api::ChatCompletions,
    }
}

/// Content encodings a request body may use.
pub fn encoding_supported(enc: &[u8]) -> bool {
    let e = String::from_utf8_lossy(enc).trim().to_ascii_lowercase();
    matches!(e.as_str(), "" | "identity" | "gzip" | "x-gzip" | "deflate")
}

/// Re-encode a rewritten body with the request's content-encoding.
pub fn encode_body(enc: Option<&str>, body: &[u8]) -> Result<Vec<u8>, String> {
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
pub fn decode_body(enc: Option<&str>, body: &[u8], max: usize) -> Result<Vec<u8>, String> {
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

/// A fresh request id: 96 random bits, hex. `seed` must hold fresh entropy (the filter mixes
/// the host clock with a per-VM random state).
pub fn request_id(seed: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&Sha256::digest(seed)[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn handoff(expires_at: u64) -> Handoff {
        Handoff {
            issuer: "i".into(),
            principal: "alice".into(),
            groups: vec![],
            policy: "p".into(),
            bundle: "sha256:x".into(),
            expires_at,
            leeway: 30,
        }
    }

    #[test]
    fn handoff_round_trip_and_refusals() {
        let (blob, sig) = handoff(1000).encode(KEY);
        let d = |b: &str, s: &str, now| {
            Handoff::decode(KEY, Some(b.as_bytes()), Some(s.as_bytes()), now)
        };
        assert_eq!(d(&blob, &sig, 1000).unwrap(), handoff(1000));
        // Within the leeway the filter allowed, the server agrees.
        assert!(d(&blob, &sig, 1029).is_ok());
        assert_eq!(d(&blob, &sig, 1031), Err(HandoffError::Expired));
        assert_eq!(d(&blob, "00", 0), Err(HandoffError::BadSignature));
        assert_eq!(d(&blob, "zz", 0), Err(HandoffError::BadSignature));
        assert_eq!(
            Handoff::decode(KEY, None, Some(b"x"), 0),
            Err(HandoffError::Missing)
        );
        // A hand-off signature is not an event signature.
        assert!(!verify(KEY, Domain::Event, blob.as_bytes(), sig.as_bytes()));
    }

    #[test]
    fn error_shapes() {
        let v: serde_json::Value =
            serde_json::from_slice(&error_body(Api::AnthropicMessages, 403, "x", "m")).unwrap();
        assert_eq!(v["error"]["type"], "permission_error");
        let v: serde_json::Value =
            serde_json::from_slice(&error_body(Api::ChatCompletions, 405, "x", "m")).unwrap();
        assert_eq!(v["error"]["code"], "x");
    }

    #[test]
    fn gatehouse_headers_in_any_case() {
        assert!(is_gatehouse_header(b"X-GateHouse-Identity"));
        assert!(!is_gatehouse_header(b"x-gate"));
    }
}
