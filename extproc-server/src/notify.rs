//! Telling reviewers that a request waits for them: webhooks, sent in the background with
//! retries, never holding up the request itself.
//!
//! - A generic webhook gets the approval as JSON (`type: approval.pending`), signed:
//!   `x-gatehouse-timestamp: T` and `x-gatehouse-signature: sha256=HEX`, the HMAC-SHA256
//!   (`policy_engine::wire`, domain `webhook`) of `T`, a newline and the body, with the
//!   webhook key. A receiver checks the signature and that `T` is recent.
//! - A Slack-compatible webhook gets `{"text": ...}`: who asks, which rules, the masked
//!   summary, the deadline and the commands (or links) to decide.

use crate::approvals::Approval;
use policy_engine::wire;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;

/// Where notifications go.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Generic JSON webhooks (signed with `key`).
    pub webhooks: Vec<String>,
    /// Slack-compatible incoming webhooks.
    pub slack: Vec<String>,
    pub key: Vec<u8>,
    /// The server's API as reviewers reach it, for links in messages.
    pub public_url: Option<String>,
}

/// Attempts per notification, and the first wait between them (doubling).
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Notifications waiting to be sent; beyond this they are dropped (and logged).
const QUEUE: usize = 1000;
/// Deliveries in flight at once (each may hold a blocking thread for its timeout); a
/// notification that finds none free is dropped and logged, never queued without bound.
const IN_FLIGHT: usize = 16;

/// The sending side: `notify` never waits.
#[derive(Clone)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Approval>>,
}

impl Notifier {
    /// No targets: nothing is sent.
    pub fn none() -> Notifier {
        Notifier { tx: None }
    }

    /// Start the sender for `targets` (none when there are no targets).
    pub fn start(targets: Targets) -> Notifier {
        if targets.webhooks.is_empty() && targets.slack.is_empty() {
            return Notifier::none();
        }
        let (tx, mut rx) = mpsc::channel::<Approval>(QUEUE);
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        tokio::spawn(async move {
            while let Some(a) = rx.recv().await {
                for (url, body, signed) in messages(&targets, &a) {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(approval = %a.id, "reviewer notification dropped (too many deliveries in flight)");
                        continue;
                    };
                    let key = targets.key.clone();
                    // Each delivery retries on its own, so a slow receiver holds up no other.
                    let id = a.id.clone();
                    tokio::spawn(async move {
                        deliver(url, body, signed.then_some(key), id).await;
                        drop(permit);
                    });
                }
            }
        });
        Notifier { tx: Some(tx) }
    }

    /// Tell reviewers about a new pending approval.
    pub fn notify(&self, a: &Approval) {
        if let Some(tx) = &self.tx {
            if tx.try_send(a.clone()).is_err() {
                tracing::warn!(approval = %a.id, "reviewer notification dropped (queue full)");
            }
        }
    }
}

/// The messages for one approval: (url, body, signed).
fn messages(t: &Targets, a: &Approval) -> Vec<(String, Vec<u8>, bool)> {
    let mut out = Vec::new();
    let generic = serde_json::to_vec(&payload(t, a)).unwrap_or_default();
    for u in &t.webhooks {
        out.push((u.clone(), generic.clone(), true));
    }
    let slack = serde_json::to_vec(&json!({ "text": slack_text(t, a) })).unwrap_or_default();
    for u in &t.slack {
        out.push((u.clone(), slack.clone(), false));
    }
    out
}

/// The generic payload.
pub fn payload(t: &Targets, a: &Approval) -> Value {
    let base = t.public_url.as_deref().map(|u| u.trim_end_matches('/'));
    json!({
        "type": "approval.pending",
        "approval": {
            "id": a.id,
            "requester": a.requester,
            "policy": a.policy,
            "requirements": a.requirements,
            "summary": a.summary,
            "matched": a.matched,
            "digest": a.digest,
            "created_ms": a.created_ms,
            "expires_ms": a.expires_ms,
            "request_id": a.request_id,
        },
        "decide": {
            "approve": base.map(|b| format!("{b}/v1/approvals/{}/approve", a.id)),
            "deny": base.map(|b| format!("{b}/v1/approvals/{}/deny", a.id)),
            "cli": format!("gatehouse approvals approve {} --reason '...'  (or: deny)", a.id),
        },
    })
}

fn slack_text(t: &Targets, a: &Approval) -> String {
    let rules: Vec<String> = a.requirements.iter().map(|r| r.rule.clone()).collect();
    let secs = a.expires_ms.saturating_sub(a.created_ms) / 1000;
    // The summary is the caller's text: escaped as Slack asks (no mentions, no links of
    // the caller's making) and without backticks, inside a code block.
    let summary: String = a
        .summary
        .chars()
        .take(300)
        .filter(|c| *c != '`')
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let mut text = format!(
        "*Approval needed* for a request by `{}` (rules: {}), decide within {secs}s.\n```{}```\nApprove: `gatehouse approvals approve {} --reason \"...\"`\nDeny: `gatehouse approvals deny {} --reason \"...\"`",
        a.requester.principal.replace('`', ""),
        rules.join(", "),
        summary.replace('\n', " "),
        a.id,
        a.id,
    );
    if let Some(b) = &t.public_url {
        text.push_str(&format!(
            "\nAPI: {}/v1/approvals/{}",
            b.trim_end_matches('/'),
            a.id
        ));
    }
    text
}

/// The signature headers of a generic webhook body.
pub fn signature(key: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut data = format!("{timestamp}\n").into_bytes();
    data.extend_from_slice(body);
    format!("sha256={}", wire::sign(key, wire::Domain::Webhook, &data))
}

async fn deliver(url: String, body: Vec<u8>, key: Option<Vec<u8>>, id: String) {
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let (u, b, k) = (url.clone(), body.clone(), key.clone());
        let sent = tokio::task::spawn_blocking(move || post(&u, &b, k.as_deref())).await;
        match sent {
            Ok(Ok(())) => {
                tracing::info!(approval = %id, attempt, "reviewers notified");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(approval = %id, attempt, error = %e, "reviewer notification failed")
            }
            Err(e) => {
                tracing::warn!(approval = %id, attempt, error = %e, "reviewer notification failed")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::error!(approval = %id, "reviewer notification given up after {ATTEMPTS} attempts");
}

fn post(url: &str, body: &[u8], key: Option<&[u8]>) -> Result<(), String> {
    let mut req = ureq::post(url)
        .set("content-type", "application/json")
        .timeout(Duration::from_secs(5));
    if let Some(k) = key {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        req = req
            .set("x-gatehouse-timestamp", &ts.to_string())
            .set("x-gatehouse-signature", &signature(k, ts, body));
    }
    // Errors name the host and the kind only: a webhook URL's path or query is a secret
    // (Slack's is the credential itself).
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', '?']).next())
        .unwrap_or("?");
    match req.send_bytes(body) {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, _)) => Err(format!("{host} answered {code}")),
        Err(ureq::Error::Transport(t)) => Err(format!("{host}: {:?}", t.kind())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_timestamp_and_the_body() {
        let a = signature(b"k", 100, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, signature(b"k", 101, b"{}"));
        assert_ne!(a, signature(b"k", 100, b"{ }"));
        assert_ne!(a, signature(b"other", 100, b"{}"));
    }
}
