//! The server's HTTP API: decision records from the filter (signed by it), the session log
//! for auditors named in the bundle, health.
//!
//! - `POST /v1/events`: one [`Record`] the filter made, with `x-gatehouse-event-signature`;
//!   answered once it is durable.
//! - `GET /v1/sessions?principal=&policy=&decision=&rule=&session=&since_ms=&until_ms=&after=&limit=`:
//!   records, newest first (`after` pages by sequence number).
//! - `GET /v1/sessions/{session}`: one session's timeline, oldest first.
//! - `GET /healthz`.

use crate::extproc::Shared;
use crate::store::Query;
use axum::extract::{Path, Query as Q, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use policy_engine::record::{Record, Source};
use policy_engine::wire;
use serde_json::json;
use std::sync::Arc;

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message}}))).into_response()
}

async fn events(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let sig = headers
        .get(wire::H_EVENT_SIGNATURE)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !wire::verify(&s.handoff_key, wire::Domain::Event, &body, sig) {
        return error(StatusCode::UNAUTHORIZED, "event signature does not verify");
    }
    let record = match Record::parse(&body) {
        Ok(r) if r.source == Source::Filter => r,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "events come from the filter"),
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match s.store.append(record).await {
        Ok(Ok(seq)) => Json(json!({"seq": seq})).into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the store writer stopped"),
    }
}

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
}

/// The caller of an API request, from its bearer token (verified with the bundle's issuers).
/// `missing` is the answer when there is no token.
pub fn authenticated(
    s: &Shared,
    headers: &HeaderMap,
    missing: &str,
) -> Result<policy_engine::identity::Caller, (StatusCode, String)> {
    let token = bearer(headers).ok_or((StatusCode::UNAUTHORIZED, missing.to_owned()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX);
    s.keys
        .authenticate(&s.engine, token.trim(), now)
        .map_err(|e| {
            (
                StatusCode::UNAUTHORIZED,
                format!("authentication failed: {e}"),
            )
        })
}

/// The caller must be an auditor named in the bundle's `audit` section.
fn auditor(s: &Shared, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    match authenticated(s, headers, "a bearer token of an auditor is required") {
        Err(e) => Err(e),
        Ok(c) if !s.engine.bundle.audit.admits(&c) => Err((
            StatusCode::FORBIDDEN,
            format!(
                "`{}` is not an auditor of this gateway (bundle `audit`)",
                c.principal
            ),
        )),
        Ok(_) => Ok(()),
    }
}

async fn sessions(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    q: Result<Q<Query>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err((status, message)) = auditor(&s, &headers) {
        return error(status, &message);
    }
    let Ok(Q(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "unknown or malformed query parameter",
        );
    };
    match s.store.query(q).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn session(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err((status, message)) = auditor(&s, &headers) {
        return error(status, &message);
    }
    let q = Query {
        session: Some(id),
        oldest_first: true,
        limit: Some(Query::MAX_LIMIT),
        ..Default::default()
    };
    match s.store.query(q).await {
        Ok(v) if v.is_empty() => error(StatusCode::NOT_FOUND, "no such session"),
        Ok(v) => Json(v).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn health(State(s): State<Arc<Shared>>) -> Response {
    let store = s.store.healthy();
    let status = if store {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let lost = s.records_lost.load(std::sync::atomic::Ordering::Relaxed);
    (
        status,
        Json(json!({
            "status": if store { "ok" } else { "store_unavailable" },
            "bundle": s.engine.digest,
            "records_lost": lost,
            "held_requests": s.approvals.held(),
        })),
    )
        .into_response()
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/events", post(events))
        .route("/v1/sessions", get(sessions))
        .route("/v1/sessions/{session}", get(session))
        .route("/healthz", get(health))
        .with_state(shared.clone())
        .merge(crate::review::router(shared))
}
