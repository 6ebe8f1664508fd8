//! The server's own view of the issuers' keys, for tokens it verifies itself (reviewers and
//! auditors on the HTTP API). Issuers with an inline JWKS use the bundle's keys; issuers with
//! a `jwks_uri` are fetched here (the filter fetches through Envoy; the server has no Envoy
//! in front of its outbound calls), at start and every few minutes, and a fetch that fails
//! keeps the keys it had.

use policy_engine::identity::{self, Caller, Jwk, TokenError};
use policy_engine::Engine;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often keys are fetched again ...
const REFRESH: Duration = Duration::from_secs(300);
/// ... and, when a token names a key the server does not hold (a rotation), at most this
/// often on demand.
const REFRESH_ON_DEMAND: Duration = Duration::from_secs(5);
/// The most a JWKS document may weigh.
const MAX_JWKS_BYTES: u64 = 512 * 1024;

#[derive(Default)]
pub struct Keys {
    fetched: RwLock<HashMap<String, Vec<Jwk>>>,
    refresh: tokio::sync::Notify,
}

impl Keys {
    /// Verify a bearer token against the bundle's issuers.
    pub fn authenticate(
        &self,
        engine: &Engine,
        token: &str,
        now: u64,
    ) -> Result<Caller, TokenError> {
        let iss = identity::peek_issuer(token)?;
        let ik = engine
            .issuer_by_url(&iss)
            .ok_or(TokenError::UnknownIssuer)?;
        if ik.issuer.jwks_uri.is_none() {
            return identity::verify(&ik.issuer, &ik.keys, token, now);
        }
        let g = self.fetched.read().unwrap_or_else(|e| e.into_inner());
        let keys = g.get(&ik.issuer.name).map(Vec::as_slice).unwrap_or(&[]);
        let r = identity::verify(&ik.issuer, keys, token, now);
        if matches!(r, Err(TokenError::UnknownKey)) {
            // The issuer may have rotated its keys: fetch again soon.
            self.refresh.notify_one();
        }
        r
    }

    /// Fetch every `jwks_uri` issuer's keys now, then every few minutes.
    pub fn start(self: &Arc<Self>, engine: Arc<Engine>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = me.refresh.notified() => {
                        tokio::time::sleep_until(last + REFRESH_ON_DEMAND).await;
                    }
                }
                last = tokio::time::Instant::now();
                for ik in &engine.issuers {
                    let Some(uri) = ik.issuer.jwks_uri.clone() else {
                        continue;
                    };
                    let algs = ik.issuer.algorithms.clone();
                    let fetched = tokio::task::spawn_blocking(move || fetch(&uri, &algs)).await;
                    match fetched {
                        Ok(Ok(keys)) => {
                            tracing::info!(issuer = %ik.issuer.name, keys = keys.len(), "JWKS fetched");
                            me.fetched
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(ik.issuer.name.clone(), keys);
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(issuer = %ik.issuer.name, error = %e, "JWKS fetch failed; keeping the keys held")
                        }
                        Err(e) => {
                            tracing::warn!(issuer = %ik.issuer.name, error = %e, "JWKS fetch failed")
                        }
                    }
                }
            }
        });
    }
}

fn fetch(uri: &str, algorithms: &[String]) -> Result<Vec<Jwk>, String> {
    use std::io::Read;
    let res = ureq::get(uri)
        .timeout(Duration::from_secs(5))
        .call()
        .map_err(|e| match e {
            ureq::Error::Status(code, _) => format!("the issuer answered {code}"),
            ureq::Error::Transport(t) => format!("{:?}", t.kind()),
        })?;
    let mut body = Vec::new();
    res.into_reader()
        .take(MAX_JWKS_BYTES)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let keys = identity::parse_jwks(&doc, algorithms).map_err(|e| e.to_string())?;
    if keys.is_empty() {
        return Err("no key usable with the pinned algorithms".into());
    }
    Ok(keys)
}
