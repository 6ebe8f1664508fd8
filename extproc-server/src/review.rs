//! The reviewers' HTTP API. Every call carries the caller's own OIDC token, verified with the
//! bundle's issuers.
//!
//! - `GET /v1/approvals?state=pending&limit=`: approvals the caller may decide on (auditors
//!   see all), newest first.
//! - `GET /v1/approvals/{id}`: one approval (its reviewers, its requester, auditors).
//! - `POST /v1/approvals/{id}/approve` and `/deny` with `{"reason": "..."}`: a vote.
//!   403 for the requester or someone outside the reviewers, 409 when the approval is no
//!   longer pending or the reviewer already voted, 400 without a reason.

use crate::approvals::{Approval, Person, State, VoteError};
use crate::extproc::Shared;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message}}))).into_response()
}

/// A store failure: logged in full, answered without internals.
fn unavailable(e: &crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "approval store read or write failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the approval store is unavailable; retry later",
    )
}

/// The caller, from the bearer token.
fn caller(s: &Shared, headers: &HeaderMap) -> Result<Person, (StatusCode, String)> {
    let c = crate::api::authenticated(s, headers, "a bearer token is required")?;
    Ok(Person {
        issuer: c.issuer,
        principal: c.principal,
        groups: c.groups,
    })
}

fn is_auditor(s: &Shared, p: &Person) -> bool {
    s.engine.bundle.audit.admits_parts(&p.principal, &p.groups)
}

/// Whether `p` may see approval `a`.
fn may_see(s: &Shared, p: &Person, a: &Approval) -> bool {
    a.may_review(p)
        || (a.requester.issuer == p.issuer && a.requester.principal == p.principal)
        || is_auditor(s, p)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<usize>,
}

async fn list(
    AxState(s): AxState<Arc<Shared>>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let p = match caller(&s, &headers) {
        Ok(p) => p,
        Err((status, msg)) => return error(status, &msg),
    };
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "unknown or malformed query parameter",
        );
    };
    let state = match q.state.as_deref().map(State::parse) {
        Some(None) => return error(StatusCode::BAD_REQUEST, "unknown approval state"),
        Some(s) => s,
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    // Reviewers see few approvals at a time: read a bounded window of the newest.
    match s.store.approval_list(state, 1_000).await {
        Ok(v) => {
            let now = crate::hold::now_ms();
            let mine: Vec<Approval> = v
                .into_iter()
                .map(|mut a| {
                    // Show a pending approval past its deadline as what it is.
                    a.expire_if_due(now);
                    a
                })
                .filter(|a| state.is_none_or(|st| a.state == st))
                .filter(|a| may_see(&s, &p, a))
                .take(limit)
                .collect();
            Json(mine).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

async fn show(
    AxState(s): AxState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let p = match caller(&s, &headers) {
        Ok(p) => p,
        Err((status, msg)) => return error(status, &msg),
    };
    match s.store.approval_get(id).await {
        Ok(Some(mut a)) if may_see(&s, &p, &a) => {
            a.expire_if_due(crate::hold::now_ms());
            Json(a).into_response()
        }
        // Someone who may not see it learns nothing, not even that it exists.
        Ok(_) => error(StatusCode::NOT_FOUND, "no such approval"),
        Err(e) => unavailable(&e),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteBody {
    reason: String,
}

async fn approve(
    s: AxState<Arc<Shared>>,
    headers: HeaderMap,
    id: Path<String>,
    body: Result<Json<VoteBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    vote(s, headers, id, body, true).await
}

async fn reject(
    s: AxState<Arc<Shared>>,
    headers: HeaderMap,
    id: Path<String>,
    body: Result<Json<VoteBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    vote(s, headers, id, body, false).await
}

async fn vote(
    AxState(s): AxState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<VoteBody>, axum::extract::rejection::JsonRejection>,
    approve: bool,
) -> Response {
    let p = match caller(&s, &headers) {
        Ok(p) => p,
        Err((status, msg)) => return error(status, &msg),
    };
    let Ok(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be JSON: {\"reason\": \"...\"}",
        );
    };
    for _ in 0..5 {
        let mut a = match s.store.approval_get(id.clone()).await {
            Ok(Some(a)) if may_see(&s, &p, &a) => a,
            Ok(_) => return error(StatusCode::NOT_FOUND, "no such approval"),
            Err(e) => return unavailable(&e),
        };
        let read = a.version;
        let now = crate::hold::now_ms();
        let outcome = a.vote(p.clone(), approve, &body.reason, now);
        let (status, message) = match &outcome {
            Ok(_) => (StatusCode::OK, String::new()),
            Err(VoteError::OwnRequest) | Err(VoteError::NotReviewer(_)) => (
                StatusCode::FORBIDDEN,
                outcome.as_ref().unwrap_err().to_string(),
            ),
            Err(VoteError::Reason) => (StatusCode::BAD_REQUEST, VoteError::Reason.to_string()),
            Err(e) => (StatusCode::CONFLICT, e.to_string()),
        };
        // An expiry found by this vote is a change too: store it.
        let changed = a.version != read;
        if changed {
            let v = if outcome.is_ok() {
                a.votes.last().cloned()
            } else {
                None
            };
            match s.save_change(&a, Some(read), &p, v.as_ref()).await {
                Ok(true) => s.approvals.notify(&a.id, a.state),
                // Someone else changed it first: decide again on what is stored now.
                Ok(false) => continue,
                Err(e) => return unavailable(&e),
            }
        }
        if status != StatusCode::OK {
            return error(status, &message);
        }
        tracing::info!(approval = %a.id, reviewer = %p.principal, approve, state = a.state.as_str(), "approval vote");
        return Json(a).into_response();
    }
    error(
        StatusCode::CONFLICT,
        "the approval kept changing; try again",
    )
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/approvals", get(list))
        .route("/v1/approvals/{id}", get(show))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/deny", post(reject))
        .with_state(shared)
}
