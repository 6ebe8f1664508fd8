//! The session record: one typed, versioned schema for every decision the gateway makes,
//! written by the server for exchanges and by the filter for its own refusals (sent signed to
//! the server, which checks the schema before storing it). `docs/RECORDS.md` documents every
//! field.
//!
//! A record never holds a value the bundle blocks or masks: request bodies are stored as the
//! engine redacts them (`Engine::redact_json`), paths without their query, responses after
//! masking.

use crate::engine::{Decision, Finding};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The schema version this engine writes and reads.
pub const RECORD_VERSION: u32 = 1;

/// One session record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Schema version ([`RECORD_VERSION`]).
    pub v: u32,
    pub kind: Kind,
    /// Which half of the gateway decided.
    pub source: Source,
    /// When the record was made, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The caller's `x-gatehouse-session` (calls that belong together), else the request id.
    pub session: String,
    /// The gateway's own request id.
    pub request_id: String,
    /// The caller's `x-request-id`, for correlation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// Who asked; absent when the token did not verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The policy that admitted the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Digest of the bundle that decided.
    pub bundle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub request: RequestPart,
    pub decision: DecisionPart,
    /// What the client received (exchanges that reached the upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponsePart>,
    /// From the request's arrival at the server to the end of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// A change of an approval (kind `approval`): which one, its new state, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPart>,
}

/// One state change of an approval. The record's `identity` is who made the change (the
/// requester when the request was held or given up, the reviewer for a vote); its
/// `request_id` is `{held request id}/{approval id}/{version}`, so every change is its own
/// record and the held request's own record stays unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPart {
    pub id: String,
    /// `pending`, `approved`, `rejected`, `expired`, `cancelled` or `used`.
    pub state: String,
    /// The held request.
    pub request_id: String,
    /// SHA-256 of the exact request the approval is for.
    pub digest: String,
    /// A reviewer's vote, when this change is one: `approve` or `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote: Option<String>,
    /// The reviewer's reason, or why the approval ended otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub expires_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A request that was decided and forwarded (or held back by the server).
    Exchange,
    /// A request refused before it reached the upstream.
    Refusal,
    /// A state change of an approval hold.
    Approval,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Filter,
    Server,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub issuer: String,
    pub principal: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestPart {
    pub method: String,
    /// The path, redacted, without its query string.
    pub path: String,
    /// The body as recorded (redacted); absent when the policy does not record prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionPart {
    /// `allow`, `block`, `require_approval`, `deny`, `unauthenticated` or `error`.
    pub verdict: String,
    /// What was enforced (differs from `verdict` under a dry-run policy).
    pub enforced: String,
    /// HTTP status the decision gave (200 when forwarded).
    pub status: u16,
    /// Rule ids that produced the verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Machine-readable reason: `policy`, `route`, a token failure code, `identity_handoff`...
    pub reason: String,
    /// The message the caller got (never a matched value).
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub dry_run: bool,
}

impl DecisionPart {
    /// The record of an engine decision.
    pub fn from_decision(d: &Decision, reason: &str) -> Self {
        DecisionPart {
            verdict: d.verdict.as_str().to_owned(),
            enforced: d.enforced().as_str().to_owned(),
            status: d.status,
            rules: d.rules.clone(),
            reason: reason.to_owned(),
            message: d.message.clone(),
            findings: d.findings.clone(),
            dry_run: d.dry_run,
        }
    }

    /// A refusal that is not a policy decision (a bad token, a route, a body that cannot
    /// be read).
    pub fn refusal(verdict: &str, status: u16, reason: &str, message: &str) -> Self {
        DecisionPart {
            verdict: verdict.to_owned(),
            enforced: verdict.to_owned(),
            status,
            rules: Vec::new(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            findings: Vec::new(),
            dry_run: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsePart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_type: String,
    /// The answer as the client received it, after masking: a JSON answer as JSON, a stream
    /// as the text of each of its streams; absent when the policy does not record responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// True when the recorded body was cut at the record size bound.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Values masked, per masking rule.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub masked: BTreeMap<String, u64>,
    /// Token-level fields withheld (logprobs, token ids).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub withheld: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a record is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record is not valid: {0}")]
    Schema(#[from] serde_json::Error),
    #[error("record version {0} is not supported (this gateway writes {RECORD_VERSION})")]
    Version(u32),
}

impl Record {
    /// Parse a record (from the filter or a store), checking schema and version.
    pub fn parse(bytes: &[u8]) -> Result<Record, RecordError> {
        let r: Record = serde_json::from_slice(bytes)?;
        if r.v != RECORD_VERSION {
            return Err(RecordError::Version(r.v));
        }
        Ok(r)
    }

    /// The canonical bytes of a record (what the chain hashes): struct fields in declaration
    /// order, object keys sorted.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The session a request belongs to: the caller's `x-gatehouse-session` when it is a short
/// printable token, else the request id.
pub fn session_of(header: Option<&str>, request_id: &str) -> String {
    header
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or(request_id)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            v: RECORD_VERSION,
            kind: Kind::Refusal,
            source: Source::Filter,
            time_ms: 1,
            session: "s".into(),
            request_id: "r".into(),
            client_request_id: None,
            identity: None,
            policy: None,
            bundle: "sha256:x".into(),
            api: None,
            model: None,
            request: RequestPart {
                method: "POST".into(),
                path: "/v1/chat/completions".into(),
                body: None,
            },
            decision: DecisionPart::refusal("unauthenticated", 401, "missing", "no token"),
            response: None,
            duration_ms: None,
            approval: None,
        }
    }

    #[test]
    fn round_trip_and_strict_schema() {
        let r = record();
        let bytes = r.canonical();
        assert_eq!(Record::parse(&bytes).unwrap(), r);
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v["extra"] = Value::from(1);
        assert!(Record::parse(v.to_string().as_bytes()).is_err());
        v.as_object_mut().unwrap().remove("extra");
        v["v"] = Value::from(99);
        assert!(matches!(
            Record::parse(v.to_string().as_bytes()),
            Err(RecordError::Version(99))
        ));
    }

    #[test]
    fn sessions_come_from_a_sane_header_or_the_request_id() {
        assert_eq!(session_of(Some("run-42"), "rid"), "run-42");
        assert_eq!(session_of(Some("has space"), "rid"), "rid");
        assert_eq!(session_of(Some(""), "rid"), "rid");
        assert_eq!(session_of(None, "rid"), "rid");
    }
}
