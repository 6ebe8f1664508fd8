//! Caller identity: JWKS parsing, bearer token verification with pinned algorithms, and the
//! mapping of claims to a principal and groups.

use crate::bundle::Issuer;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jwt_simple::prelude::*;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// A verified caller.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Caller {
    /// Issuer name (from the bundle), not the `iss` URL.
    pub issuer: String,
    pub principal: String,
    pub groups: Vec<String>,
    /// Every claim of the token, for `match.claims`.
    pub claims: Map<String, Value>,
    /// Token expiry (seconds since the epoch).
    pub expires_at: u64,
}

/// Why a token was refused. The variant name is the reason reported in stats and logs.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token issuer is not trusted")]
    UnknownIssuer,
    #[error("token algorithm `{0}` is not allowed for this issuer")]
    AlgorithmNotAllowed(String),
    #[error("no key matches the token's key id")]
    UnknownKey,
    #[error("signature or claims invalid: {0}")]
    Invalid(String),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token audience is not accepted")]
    BadAudience,
    #[error("token has no `exp` claim")]
    NoExpiry,
    #[error("token has no principal claim `{0}`")]
    NoPrincipal(String),
}

impl TokenError {
    /// Every reason code [`TokenError::code`] can return.
    pub const CODES: &'static [&'static str] = &[
        "missing",
        "malformed",
        "unknown_issuer",
        "alg_not_allowed",
        "unknown_kid",
        "invalid",
        "expired",
        "not_yet_valid",
        "bad_audience",
        "no_exp",
        "no_principal",
    ];

    /// Short, stable reason code for metrics and headers.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Malformed => "malformed",
            TokenError::UnknownIssuer => "unknown_issuer",
            TokenError::AlgorithmNotAllowed(_) => "alg_not_allowed",
            TokenError::UnknownKey => "unknown_kid",
            TokenError::Invalid(_) => "invalid",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::BadAudience => "bad_audience",
            TokenError::NoExpiry => "no_exp",
            TokenError::NoPrincipal(_) => "no_principal",
        }
    }
}

/// Why a JWKS could not be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    #[error("JWKS is not a JSON object with a `keys` array")]
    Shape,
    #[error("key {index}: {message}")]
    Key { index: usize, message: String },
}

/// The algorithms an issuer may pin.
pub const ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// A public key bound to exactly one algorithm.
#[derive(Clone)]
pub enum VerifyKey {
    RS256(RS256PublicKey),
    RS384(RS384PublicKey),
    RS512(RS512PublicKey),
    PS256(PS256PublicKey),
    PS384(PS384PublicKey),
    PS512(PS512PublicKey),
    ES256(ES256PublicKey),
    ES384(ES384PublicKey),
    EdDSA(Ed25519PublicKey),
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.alg())
    }
}

impl VerifyKey {
    pub fn alg(&self) -> &'static str {
        match self {
            VerifyKey::RS256(_) => "RS256",
            VerifyKey::RS384(_) => "RS384",
            VerifyKey::RS512(_) => "RS512",
            VerifyKey::PS256(_) => "PS256",
            VerifyKey::PS384(_) => "PS384",
            VerifyKey::PS512(_) => "PS512",
            VerifyKey::ES256(_) => "ES256",
            VerifyKey::ES384(_) => "ES384",
            VerifyKey::EdDSA(_) => "EdDSA",
        }
    }

    fn verify(
        &self,
        token: &str,
        opts: VerificationOptions,
    ) -> Result<JWTClaims<Map<String, Value>>, jwt_simple::Error> {
        let o = Some(opts);
        match self {
            VerifyKey::RS256(k) => k.verify_token(token, o),
            VerifyKey::RS384(k) => k.verify_token(token, o),
            VerifyKey::RS512(k) => k.verify_token(token, o),
            VerifyKey::PS256(k) => k.verify_token(token, o),
            VerifyKey::PS384(k) => k.verify_token(token, o),
            VerifyKey::PS512(k) => k.verify_token(token, o),
            VerifyKey::ES256(k) => k.verify_token(token, o),
            VerifyKey::ES384(k) => k.verify_token(token, o),
            VerifyKey::EdDSA(k) => k.verify_token(token, o),
        }
    }
}

/// One usable key of a JWKS.
#[derive(Debug, Clone)]
pub struct Jwk {
    pub kid: Option<String>,
    pub key: VerifyKey,
}

fn b64(v: &Value, field: &str, index: usize) -> Result<Vec<u8>, JwksError> {
    let s = v
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| JwksError::Key {
            index,
            message: format!("missing `{field}`"),
        })?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| JwksError::Key {
            index,
            message: format!("`{field}` is not base64url"),
        })
}

/// Parse a JWKS, keeping the keys usable with the pinned `algorithms`. An RSA key without an
/// `alg` is offered for every pinned RSA algorithm; a key whose `alg` is not pinned is skipped.
pub fn parse_jwks(jwks: &Value, algorithms: &[String]) -> Result<Vec<Jwk>, JwksError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::Shape)?;
    let mut out = Vec::new();
    for (index, k) in keys.iter().enumerate() {
        if k.get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let kid = k.get("kid").and_then(Value::as_str).map(str::to_owned);
        let kty = k.get("kty").and_then(Value::as_str).unwrap_or("");
        let key_alg = k.get("alg").and_then(Value::as_str);
        let wanted: Vec<&str> = algorithms
            .iter()
            .map(String::as_str)
            .filter(|a| key_alg.is_none_or(|ka| ka == *a))
            .collect();
        let err = |e: jwt_simple::Error| JwksError::Key {
            index,
            message: e.to_string(),
        };
        for alg in wanted {
            let key = match (kty, alg) {
                ("RSA", a) if a.starts_with("RS") || a.starts_with("PS") => {
                    let n = b64(k, "n", index)?;
                    let e = b64(k, "e", index)?;
                    match a {
                        "RS256" => {
                            VerifyKey::RS256(RS256PublicKey::from_components(&n, &e).map_err(err)?)
                        }
                        "RS384" => {
                            VerifyKey::RS384(RS384PublicKey::from_components(&n, &e).map_err(err)?)
                        }
                        "RS512" => {
                            VerifyKey::RS512(RS512PublicKey::from_components(&n, &e).map_err(err)?)
                        }
                        "PS256" => {
                            VerifyKey::PS256(PS256PublicKey::from_components(&n, &e).map_err(err)?)
                        }
                        "PS384" => {
                            VerifyKey::PS384(PS384PublicKey::from_components(&n, &e).map_err(err)?)
                        }
                        "PS512" => {
                            VerifyKey::PS512(PS512PublicKey::from_components(&n, &e).map_err(err)?)
                        }
                        _ => continue,
                    }
                }
                ("EC", "ES256") | ("EC", "ES384") => {
                    let crv = k.get("crv").and_then(Value::as_str).unwrap_or("");
                    let mut point = vec![0x04];
                    point.extend(b64(k, "x", index)?);
                    point.extend(b64(k, "y", index)?);
                    match (alg, crv) {
                        ("ES256", "P-256") => {
                            VerifyKey::ES256(ES256PublicKey::from_bytes(&point).map_err(err)?)
                        }
                        ("ES384", "P-384") => {
                            VerifyKey::ES384(ES384PublicKey::from_bytes(&point).map_err(err)?)
                        }
                        _ => continue,
                    }
                }
                ("OKP", "EdDSA") => {
                    if k.get("crv").and_then(Value::as_str) != Some("Ed25519") {
                        continue;
                    }
                    let x = b64(k, "x", index)?;
                    VerifyKey::EdDSA(Ed25519PublicKey::from_bytes(&x).map_err(err)?)
                }
                _ => continue,
            };
            out.push(Jwk {
                kid: kid.clone(),
                key,
            });
        }
    }
    Ok(out)
}

/// The unverified `iss` claim of a token, used only to pick the issuer whose keys verify it.
pub fn peek_issuer(token: &str) -> Result<String, TokenError> {
    let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    v.get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(TokenError::UnknownIssuer)
}

/// Verify `token` against `issuer` and its `keys`, at time `now` (seconds since the epoch).
pub fn verify(issuer: &Issuer, keys: &[Jwk], token: &str, now: u64) -> Result<Caller, TokenError> {
    if token.split('.').count() != 3 {
        return Err(TokenError::Malformed);
    }
    let meta = Token::decode_metadata(token).map_err(|_| TokenError::Malformed)?;
    let alg = meta.algorithm();
    if !issuer.algorithms.iter().any(|a| a == alg) {
        return Err(TokenError::AlgorithmNotAllowed(alg.to_owned()));
    }
    let kid = meta.key_id();
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| k.key.alg() == alg && (kid.is_none() || k.kid.as_deref() == kid))
        .collect();
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey);
    }
    let opts = || VerificationOptions {
        allowed_issuers: Some(HashSet::from([issuer.issuer.clone()])),
        allowed_audiences: Some(issuer.audiences.iter().cloned().collect()),
        time_tolerance: Some(Duration::from_secs(issuer.leeway_seconds)),
        artificial_time: Some(UnixTimeStamp::from_secs(now)),
        ..Default::default()
    };
    let mut last = TokenError::UnknownKey;
    for k in candidates {
        match k.key.verify(token, opts()) {
            Ok(claims) => return caller_from(issuer, claims, now),
            Err(e) => last = classify(&e, token, issuer, now),
        }
    }
    Err(last)
}

/// Turn a jwt-simple error into a reason a caller and an operator can act on.
fn classify(e: &jwt_simple::Error, token: &str, issuer: &Issuer, now: u64) -> TokenError {
    let msg = e.to_string();
    // Look at the claims (unverified) only to explain the failure.
    let claims: Option<Value> = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(c) = claims {
        let leeway = issuer.leeway_seconds;
        if c.get("exp")
            .and_then(Value::as_u64)
            .is_some_and(|exp| exp + leeway < now)
        {
            return TokenError::Expired;
        }
        if c.get("nbf")
            .and_then(Value::as_u64)
            .is_some_and(|nbf| nbf > now + leeway)
        {
            return TokenError::NotYetValid;
        }
        let aud_ok = match c.get("aud") {
            Some(Value::String(a)) => issuer.audiences.contains(a),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .any(|x| issuer.audiences.iter().any(|y| y == x)),
            _ => false,
        };
        if !aud_ok {
            return TokenError::BadAudience;
        }
    }
    TokenError::Invalid(msg)
}

fn caller_from(
    issuer: &Issuer,
    claims: JWTClaims<Map<String, Value>>,
    now: u64,
) -> Result<Caller, TokenError> {
    let exp = claims.expires_at.ok_or(TokenError::NoExpiry)?.as_secs();
    if exp + issuer.leeway_seconds < now {
        return Err(TokenError::Expired);
    }
    if claims.audiences.is_none() {
        return Err(TokenError::BadAudience);
    }
    let mut all = claims.custom;
    if let Some(s) = &claims.subject {
        all.insert("sub".into(), Value::from(s.clone()));
    }
    if let Some(i) = &claims.issuer {
        all.insert("iss".into(), Value::from(i.clone()));
    }
    let principal = all
        .get(&issuer.principal_claim)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| TokenError::NoPrincipal(issuer.principal_claim.clone()))?;
    let groups = match all.get(&issuer.groups_claim) {
        Some(Value::String(g)) => g.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Ok(Caller {
        issuer: issuer.name.clone(),
        principal,
        groups,
        claims: all,
        expires_at: exp,
    })
}

/// The public JWKS of an RS256 key pair (used by the local dev issuer).
pub fn rs256_jwks(kp: &RS256KeyPair, kid: &str) -> Value {
    let c = kp.public_key().to_components();
    serde_json::json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(c.n), "e": URL_SAFE_NO_PAD.encode(c.e),
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn kp() -> &'static RS256KeyPair {
        static KP: OnceLock<RS256KeyPair> = OnceLock::new();
        KP.get_or_init(|| RS256KeyPair::generate(2048).unwrap().with_key_id("k1"))
    }

    fn issuer() -> Issuer {
        Issuer {
            name: "test".into(),
            issuer: "https://issuer.test".into(),
            audiences: vec!["gatehouse".into()],
            algorithms: vec!["RS256".into()],
            jwks: Some(rs256_jwks(kp(), "k1")),
            jwks_uri: None,
            jwks_cluster: None,
            leeway_seconds: 5,
            principal_claim: "sub".into(),
            groups_claim: "groups".into(),
        }
    }

    fn token(aud: &str, iss: &str, valid_for: u64, nbf_offset: Option<i64>) -> (String, u64) {
        let custom: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"groups": ["eng", "ml"]})).unwrap();
        let mut claims = Claims::with_custom_claims(custom, Duration::from_secs(valid_for))
            .with_issuer(iss)
            .with_audience(aud)
            .with_subject("alice");
        let now = claims.issued_at.unwrap().as_secs();
        if let Some(off) = nbf_offset {
            claims.invalid_before = Some(UnixTimeStamp::from_secs((now as i64 + off) as u64));
        }
        (kp().sign(claims).unwrap(), now)
    }

    fn keys() -> Vec<Jwk> {
        let i = issuer();
        parse_jwks(i.jwks.as_ref().unwrap(), &i.algorithms).unwrap()
    }

    #[test]
    fn valid_token_maps_principal_and_groups() {
        let (t, now) = token("gatehouse", "https://issuer.test", 300, None);
        let c = verify(&issuer(), &keys(), &t, now).unwrap();
        assert_eq!(c.principal, "alice");
        assert_eq!(c.groups, vec!["eng", "ml"]);
        assert_eq!(c.issuer, "test");
    }

    #[test]
    fn expired_wrong_aud_wrong_iss_and_nbf_are_refused() {
        let (t, now) = token("gatehouse", "https://issuer.test", 60, None);
        assert_eq!(
            verify(&issuer(), &keys(), &t, now + 120).unwrap_err(),
            TokenError::Expired
        );
        let (t, now) = token("other", "https://issuer.test", 60, None);
        assert_eq!(
            verify(&issuer(), &keys(), &t, now).unwrap_err(),
            TokenError::BadAudience
        );
        let (t, now) = token("gatehouse", "https://evil.test", 60, None);
        assert!(matches!(
            verify(&issuer(), &keys(), &t, now).unwrap_err(),
            TokenError::Invalid(_)
        ));
        let (t, now) = token("gatehouse", "https://issuer.test", 600, Some(300));
        assert_eq!(
            verify(&issuer(), &keys(), &t, now).unwrap_err(),
            TokenError::NotYetValid
        );
    }

    #[test]
    fn alg_none_and_hs256_with_public_key_are_refused() {
        let (t, now) = token("gatehouse", "https://issuer.test", 60, None);
        let payload = t.split('.').nth(1).unwrap();
        let none_hdr = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let forged = format!("{none_hdr}.{payload}.");
        assert_eq!(
            verify(&issuer(), &keys(), &forged, now).unwrap_err(),
            TokenError::AlgorithmNotAllowed("none".into())
        );
        // HS256 keyed with the RSA public key's bytes: the classic confusion attack.
        let pem = kp().public_key().to_pem().unwrap();
        let hs = HS256Key::from_bytes(pem.as_bytes());
        let claims = Claims::create(Duration::from_secs(60))
            .with_issuer("https://issuer.test")
            .with_audience("gatehouse")
            .with_subject("mallory");
        let forged = hs.authenticate(claims).unwrap();
        assert_eq!(
            verify(&issuer(), &keys(), &forged, now).unwrap_err(),
            TokenError::AlgorithmNotAllowed("HS256".into())
        );
    }

    #[test]
    fn every_code_is_listed() {
        let all = [
            TokenError::Missing,
            TokenError::Malformed,
            TokenError::UnknownIssuer,
            TokenError::AlgorithmNotAllowed(String::new()),
            TokenError::UnknownKey,
            TokenError::Invalid(String::new()),
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::BadAudience,
            TokenError::NoExpiry,
            TokenError::NoPrincipal(String::new()),
        ];
        let codes: Vec<_> = all.iter().map(TokenError::code).collect();
        assert_eq!(codes, TokenError::CODES);
    }

    #[test]
    fn tampered_signature_and_garbage_are_refused() {
        let (t, now) = token("gatehouse", "https://issuer.test", 60, None);
        let mut bad = t.clone();
        bad.pop();
        bad.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(verify(&issuer(), &keys(), &bad, now).is_err());
        assert_eq!(
            verify(&issuer(), &keys(), "not-a-token", now).unwrap_err(),
            TokenError::Malformed
        );
    }
}
