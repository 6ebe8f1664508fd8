//! A compiled bundle and the decisions it makes, behind the [`Engine`] facade:
//! `compile` turns a policy into matchers, `select` picks the policy for a caller,
//! `decide` judges a request; response masking is in `crate::masking`.

mod compile;
mod decide;
mod select;

pub use compile::CompiledPolicy;
use select::admits;
pub use select::glob;

use crate::bundle::{Bundle, Policy};
use crate::diag::BundleErrors;
use crate::extract::{self, Api, ExtractError, Extracted};
use crate::identity::{self, Caller, Jwk, TokenError};
use crate::load;
use crate::matcher::BuildError;
use crate::routes::RouteMatch;
use serde::Serialize;

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Block,
    RequireApproval,
    /// No policy admits the caller.
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Block => "block",
            Verdict::RequireApproval => "require_approval",
            Verdict::Deny => "deny",
        }
    }
}

/// Why a rule fired. Never carries the matched text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Finding {
    pub rule: String,
    /// JSON path of the field where it matched (or the limit's field).
    pub field: String,
    /// `literal`, `regex`, `detector:<name>`, `model`, `limit`.
    pub source: String,
}

/// A decision about one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub policy: Option<String>,
    /// Rule ids that produced the verdict.
    pub rules: Vec<String>,
    pub findings: Vec<Finding>,
    /// Human-readable reason, safe to return to the caller (no matched text).
    pub message: String,
    /// HTTP status for a refusal.
    pub status: u16,
    /// True when the policy is in dry-run mode: decided and recorded, not enforced.
    pub dry_run: bool,
    /// Output-limit fields (JSON pointers) to rewrite, when a limit clamps them or the
    /// request named none.
    pub clamp: Vec<(String, u64)>,
    pub prompt_tokens: Option<u64>,
    pub model: Option<String>,
    pub api: Option<&'static str>,
    /// What this build could not settle and left to the server (which counts tokens
    /// exactly and decodes token ids): `max_prompt_tokens`, `token_ids`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<&'static str>,
}

impl Decision {
    /// What the gateway enforces: the verdict, unless the policy is in dry-run mode.
    pub fn enforced(&self) -> Verdict {
        if self.dry_run && self.verdict != Verdict::Deny {
            Verdict::Allow
        } else {
            self.verdict
        }
    }

    fn refuse(
        verdict: Verdict,
        status: u16,
        rule: &str,
        source: &str,
        field: &str,
        message: String,
    ) -> Self {
        Decision {
            verdict,
            policy: None,
            rules: vec![rule.to_owned()],
            findings: vec![Finding {
                rule: rule.to_owned(),
                field: field.to_owned(),
                source: source.to_owned(),
            }],
            message,
            status,
            dry_run: false,
            clamp: Vec::new(),
            prompt_tokens: None,
            model: None,
            api: None,
            deferred: Vec::new(),
        }
    }
}

/// Errors building an engine from a valid bundle (a pattern set the automata reject).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Bundle(#[from] BundleErrors),
    #[error("policy `{policy}`: {source}")]
    Build {
        policy: String,
        #[source]
        source: BuildError,
    },
}

/// One issuer with its current keys.
pub struct IssuerKeys {
    pub issuer: crate::bundle::Issuer,
    pub keys: Vec<Jwk>,
}

/// A validated, compiled bundle.
pub struct Engine {
    pub bundle: Bundle,
    pub digest: String,
    pub issuers: Vec<IssuerKeys>,
    pub(crate) policies: Vec<CompiledPolicy>,
    pub(crate) mask_key: Vec<u8>,
}

pub use crate::masking::MaskHit;

impl Engine {
    /// Parse, validate and compile a bundle.
    pub fn from_source(src: &str) -> Result<Engine, EngineError> {
        let bundle = load::parse(src)?;
        Engine::new(bundle)
    }

    /// Compile an already validated bundle.
    pub fn new(bundle: Bundle) -> Result<Engine, EngineError> {
        let digest = load::digest(&bundle);
        let mut policies = Vec::with_capacity(bundle.policies.len());
        for p in &bundle.policies {
            policies.push(
                CompiledPolicy::compile(p).map_err(|source| EngineError::Build {
                    policy: p.id.clone(),
                    source,
                })?,
            );
        }
        let issuers = bundle
            .identity
            .issuers
            .iter()
            .map(|i| IssuerKeys {
                issuer: i.clone(),
                keys: i
                    .jwks
                    .as_ref()
                    .and_then(|j| identity::parse_jwks(j, &i.algorithms).ok())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Engine {
            bundle,
            digest,
            issuers,
            policies,
            mask_key: Vec::new(),
        })
    }

    /// Key for the `hash` masking style. Without one, hashes are unkeyed (still stable).
    pub fn with_mask_key(mut self, key: &[u8]) -> Self {
        self.mask_key = key.to_vec();
        self
    }

    /// Replace the keys of issuer `name` (keys fetched from its `jwks_uri`).
    /// Returns false when there is no such issuer.
    pub fn set_issuer_keys(&mut self, name: &str, keys: Vec<Jwk>) -> bool {
        match self.issuers.iter_mut().find(|i| i.issuer.name == name) {
            Some(i) => {
                i.keys = keys;
                true
            }
            None => false,
        }
    }

    /// The trusted issuer whose `iss` is `iss`.
    pub fn issuer_by_url(&self, iss: &str) -> Option<&IssuerKeys> {
        self.issuers.iter().find(|i| i.issuer.issuer == iss)
    }

    pub fn policy(&self, id: &str) -> Option<&CompiledPolicy> {
        self.policies.iter().find(|p| p.policy.id == id)
    }

    /// Verify a bearer token against the trusted issuers.
    pub fn authenticate(&self, token: &str, now: u64) -> Result<Caller, TokenError> {
        let iss = identity::peek_issuer(token)?;
        let ik = self.issuer_by_url(&iss).ok_or(TokenError::UnknownIssuer)?;
        identity::verify(&ik.issuer, &ik.keys, token, now)
    }

    /// The first policy, in bundle order, that admits `caller`.
    pub fn select(&self, caller: &Caller) -> Option<&CompiledPolicy> {
        self.policies.iter().find(|p| admits(&p.policy, caller))
    }

    /// Where `method` `path` goes under this bundle's routes.
    pub fn route(&self, method: &str, path: &str) -> RouteMatch {
        self.bundle.routes.resolve(method, path)
    }

    /// Parse and extract an inference request body for policy `cp`.
    pub fn extract(
        &self,
        cp: &CompiledPolicy,
        api: Api,
        route_model: Option<&str>,
        body: &[u8],
    ) -> Result<(serde_json::Value, Extracted), ExtractError> {
        extract::extract_bytes(api, body, route_model, &self.extract_options(cp))
    }

    /// What extraction needs to know from the bundle and policy `cp`.
    pub(crate) fn extract_options<'a>(&'a self, cp: &CompiledPolicy) -> extract::Options<'a> {
        extract::Options {
            opaque_media: &self.bundle.inspection.opaque_media,
            allow_remote_content: self.bundle.inspection.allow_remote_content,
            encoding: cp.encoding,
        }
    }

    pub fn policies(&self) -> impl Iterator<Item = &CompiledPolicy> {
        self.policies.iter()
    }
}
