//! The policy bundle model (format v1).
//!
//! Every struct denies unknown fields, so a typo in a bundle is an error with a line number
//! instead of a silently ignored setting. The doc comments here are the reference for each
//! field; `policies/REFERENCE.md` walks through them with examples.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The only bundle format version this engine reads.
pub const API_VERSION: &str = "gatehouse.dev/v1";

/// A complete policy bundle, as the platform team ships it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Must be `gatehouse.dev/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Must be `PolicyBundle`.
    pub kind: String,
    pub metadata: Metadata,
    /// Token issuers the gateway trusts.
    #[serde(default)]
    pub identity: Identity,
    /// Policies, tried in file order; the first whose `match` admits the caller wins.
    /// A caller no policy admits is denied (403).
    #[serde(default)]
    pub policies: Vec<Policy>,
    /// The route allow-list; without it, OpenAI's and Anthropic's public routes.
    #[serde(default)]
    pub routes: crate::routes::Routes,
    /// How request content is inspected.
    #[serde(default)]
    pub inspection: Inspection,
    /// Who may read the session log through the server's HTTP API.
    #[serde(default)]
    pub audit: Audit,
    /// Test cases run by `gatehouse policy test`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestCase>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Bundle name, e.g. `default`.
    pub name: String,
    /// Free-form revision label, e.g. a date or a git sha.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Who may read the session log: a caller with a token from a trusted issuer whose principal
/// or groups are listed. Nobody, when both lists are empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
}

impl Audit {
    pub fn admits(&self, c: &crate::Caller) -> bool {
        self.admits_parts(&c.principal, &c.groups)
    }

    pub fn admits_parts(&self, principal: &str, groups: &[String]) -> bool {
        listed(&self.principals, &self.groups, principal, groups)
    }
}

/// How request content is inspected.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Inspection {
    /// Media types (`image/*`, `audio/wav`) whose inline content is not scanned, provided the
    /// bytes carry that type's file signature. Anything else inline is decoded and scanned as
    /// text, or refused (415) when it is not text.
    #[serde(default = "default_opaque_media")]
    pub opaque_media: Vec<String>,
    /// Let requests refer to content the provider fetches itself (`file_url`, `file_id`),
    /// which the gateway cannot inspect. Off: such requests are refused (400).
    #[serde(default)]
    pub allow_remote_content: bool,
}

fn default_opaque_media() -> Vec<String> {
    vec!["image/*".into(), "audio/*".into()]
}

impl Default for Inspection {
    fn default() -> Self {
        Inspection {
            opaque_media: default_opaque_media(),
            allow_remote_content: false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    #[serde(default)]
    pub issuers: Vec<Issuer>,
}

/// One trusted OIDC issuer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// Short name used in logs and headers.
    pub name: String,
    /// Exact `iss` claim value.
    pub issuer: String,
    /// Accepted `aud` values; a token must carry at least one.
    pub audiences: Vec<String>,
    /// Pinned signature algorithms. A token whose header `alg` is not listed is refused.
    /// Allowed: RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA.
    pub algorithms: Vec<String>,
    /// Inline JWKS (`{"keys": [...]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// JWKS URI, fetched by the filter through `jwks_cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Envoy cluster that reaches `jwks_uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_cluster: Option<String>,
    /// Clock leeway for `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// Claim that names the principal.
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// Claim holding the caller's groups (a string or an array of strings).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
}

fn default_leeway() -> u64 {
    30
}
fn default_principal_claim() -> String {
    "sub".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}

/// A policy: who it applies to and what they may do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Unique id, reported in headers, errors and the session log.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who the policy admits. All given criteria must hold; an empty match admits everyone.
    #[serde(default, rename = "match")]
    pub matcher: Match,
    /// Model globs (`*`, `?`). Empty means no model is allowed.
    pub models: Vec<String>,
    #[serde(default)]
    pub limits: Limits,
    /// Prompt rules, checked against every text field of the request.
    #[serde(default)]
    pub prompt_rules: Vec<PromptRule>,
    /// Masking applied to model output.
    #[serde(default)]
    pub response_masking: Vec<MaskRule>,
    #[serde(default)]
    pub record: Record,
    /// Decide and record, but do not enforce.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Any of these principals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Member of any of these groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Every listed claim equals the value (for array claims: contains it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    /// Only tokens from these issuers (by `name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Maximum prompt tokens, counted exactly with the model's BPE encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prompt_tokens: Option<u64>,
    /// Encoding for models with no known OpenAI encoding: `o200k_base` (default) or `cl100k_base`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Maximum completion tokens a request may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    /// What to do with a request asking for more: `reject` or `clamp`. A request that names
    /// no maximum always gets the limit written into it.
    #[serde(default)]
    pub completion_over_limit: OverLimit,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OverLimit {
    #[default]
    Reject,
    Clamp,
}

/// What a prompt rule does when it matches.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Refuse the request.
    Block,
    /// Hold the request for a reviewer.
    RequireApproval,
    /// Exempt matched text from every block and approval rule (allow-list).
    Allow,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PromptRule {
    pub id: String,
    pub action: RuleAction,
    /// Literal strings (matched with Aho-Corasick).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub literals: Vec<String>,
    /// Regular expressions (regex-automata syntax, byte-oriented, ASCII classes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regexes: Vec<String>,
    /// Named built-in detectors, see `gatehouse detectors`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<String>,
    /// Match literals and regexes ignoring case (text is case-folded first).
    #[serde(default)]
    pub case_insensitive: bool,
    /// Model globs: the rule applies only to requests for these models. A `block` or
    /// `require_approval` rule with models and no patterns matches every such request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Message returned to the caller when the rule blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who approves a request this `require_approval` rule matched, and how. Without it the
    /// request is refused with 403 `approval_required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
}

/// How a `require_approval` rule's requests are reviewed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// Who may decide: a caller of a trusted issuer in one of these groups or with one of
    /// these principals. Never the requester.
    pub reviewers: Reviewers,
    /// Distinct reviewers who must approve (any rejection rejects).
    #[serde(default = "one")]
    pub approvals: u32,
    /// How long the approval stays open, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u64,
    #[serde(default)]
    pub mode: ApprovalMode,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Reviewers {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Issuers (by name) whose tokens may review. Empty: only the requester's own issuer, so
    /// another trusted issuer's groups claim cannot make someone a reviewer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<String>,
}

impl Reviewers {
    pub fn admits(&self, principal: &str, groups: &[String]) -> bool {
        listed(&self.principals, &self.groups, principal, groups)
    }
}

/// Whether a caller is named, by principal or by one of its groups.
fn listed(principals: &[String], groups: &[String], principal: &str, of: &[String]) -> bool {
    principals.iter().any(|p| p == principal) || of.iter().any(|g| groups.contains(g))
}

/// Whether the caller waits for the decision.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// The request waits in the gateway until a decision or the deadline.
    #[default]
    Hold,
    /// The caller is refused at once with the approval's id; after approval, one identical
    /// retry by the same caller passes within the time-to-live.
    Deferred,
}

fn one() -> u32 {
    1
}
fn default_ttl() -> u64 {
    300
}

/// The longest hold: Envoy's ext_proc `max_message_timeout` in the shipped configs is 300 s,
/// and the hold must end (with a decision or an expiry) before it.
pub const MAX_HOLD_SECONDS: u64 = 280;
/// The longest a deferred approval stays usable.
pub const MAX_DEFERRED_SECONDS: u64 = 7 * 24 * 3600;

/// How a masked value is replaced.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MaskStyle {
    /// `[EMAIL]`, `[PAYMENT_CARD]`, ... or the rule's `label`.
    #[default]
    Label,
    /// Keep the last `keep_last` characters, mask the rest with `*`.
    Partial,
    /// `[EMAIL:3f2a9c1e]`: a keyed hash, stable per value, for correlation.
    Hash,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaskRule {
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub literals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regexes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<String>,
    #[serde(default)]
    pub case_insensitive: bool,
    #[serde(default)]
    pub style: MaskStyle,
    /// Label text for `label` and `hash` styles; defaults to the detector name or the rule id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Characters kept by the `partial` style.
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    /// Upper bound, in bytes, on a match of this rule's regexes. Required for streaming:
    /// the masker withholds at most this many trailing bytes.
    #[serde(default = "default_max_match")]
    pub max_match_bytes: usize,
}

fn default_keep_last() -> usize {
    4
}
fn default_max_match() -> usize {
    256
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Record prompt text (after the policy's masking rules are applied to it).
    #[serde(default = "yes")]
    pub prompts: bool,
    /// Record response text (masked).
    #[serde(default = "yes")]
    pub responses: bool,
    /// What happens to this policy's requests while the session store cannot record them.
    #[serde(default)]
    pub on_store_failure: StoreFailure,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            prompts: true,
            responses: true,
            on_store_failure: StoreFailure::default(),
        }
    }
}

/// The choice between an unrecorded request and no request.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailure {
    /// Refuse the request with 503 `session_store_unavailable` (fail closed).
    #[default]
    Refuse,
    /// Let the request go on unrecorded, and count the lost record (the server's
    /// `/healthz` reports `records_lost`; each loss is logged with its request id).
    Continue,
}

fn yes() -> bool {
    true
}

/// A stored test case: an identity and a request, and the decision they must get.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    pub identity: TestIdentity,
    pub request: TestRequest,
    pub expect: TestExpect,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TestIdentity {
    pub principal: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub claims: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_method")]
    pub method: String,
    pub body: serde_json::Value,
}

fn default_method() -> String {
    "POST".into()
}

fn default_path() -> String {
    "/v1/chat/completions".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TestExpect {
    /// `allow`, `block`, `require_approval` or `deny`.
    pub verdict: String,
    /// Rule ids that must all be among the decision's rules.
    #[serde(default)]
    pub rules: Vec<String>,
    #[serde(default)]
    pub policy: Option<String>,
}
