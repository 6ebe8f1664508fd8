//! Holding a request for approval inside its ext_proc stream.
//!
//! The request body's decision created a pending approval (`Exchange::hold`). The stream then
//! stores it (and its record), tells Envoy to wait longer than its `message_timeout`
//! (`override_message_timeout`, bounded by the filter's `max_message_timeout`), and waits for
//! the first of: a decision made on this server (the [`Hub`](crate::approvals::Hub)), one made
//! on another replica (the store is read again every second), the deadline, or the caller
//! going away (Envoy ends the stream). Approval lets the original request go on unchanged;
//! anything else answers the caller in the API's own error shape.

use crate::approvals::{Approval, Person, State, Vote};
use crate::extproc::{Exchange, Shared};
use crate::store::StoreError;
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use policy_engine::record;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

/// Envoy's timer runs this much past the approval's deadline, so the expiry answer (ours)
/// arrives before Envoy gives up on the processor.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);
/// How often a held request reads its approval again (decisions made on other replicas).
const POLL: Duration = Duration::from_secs(1);
/// How often the server holding a request says it is alive ...
const HEARTBEAT: Duration = Duration::from_secs(2);
/// ... and after how long without that a pending hold is taken for dead (its server stopped:
/// the caller's stream died with it) and cancelled.
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// How often each server looks for such holds.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Most deferred approvals one caller may have waiting at once.
const MAX_OPEN_DEFERRED: u64 = 20;

/// The gateway itself, as the actor of changes no person made (a dead hold cancelled).
fn gateway() -> Person {
    Person {
        issuer: "gatehouse".into(),
        principal: "gatehouse-server".into(),
        groups: Vec::new(),
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Shared {
    /// The record of one change of an approval, made by `actor`.
    pub fn approval_record(
        &self,
        a: &Approval,
        actor: &Person,
        vote: Option<&Vote>,
    ) -> record::Record {
        let reason = vote.map(|v| v.reason.clone()).or_else(|| a.note.clone());
        record::Record {
            v: record::RECORD_VERSION,
            kind: record::Kind::Approval,
            source: record::Source::Server,
            time_ms: now_ms(),
            session: a.session.clone(),
            request_id: format!("{}/{}/{}", a.request_id, a.id, a.version),
            client_request_id: None,
            identity: Some(record::Identity {
                issuer: actor.issuer.clone(),
                principal: actor.principal.clone(),
                groups: actor.groups.clone(),
            }),
            policy: Some(a.policy.clone()),
            bundle: self.engine.digest.clone(),
            api: None,
            model: None,
            request: record::RequestPart {
                method: a.method.clone(),
                path: a.path.clone(),
                body: None,
            },
            decision: record::DecisionPart {
                rules: a.rules(),
                ..record::DecisionPart::refusal(
                    "require_approval",
                    0,
                    "approval",
                    &format!("approval {} is {}", a.id, a.state.as_str()),
                )
            },
            response: None,
            duration_ms: None,
            approval: Some(record::ApprovalPart {
                id: a.id.clone(),
                state: a.state.as_str().to_owned(),
                request_id: a.request_id.clone(),
                digest: a.digest.clone(),
                vote: vote.map(|v| if v.approve { "approve" } else { "reject" }.to_owned()),
                reason,
                expires_ms: a.expires_ms,
            }),
        }
    }

    /// Store a change of an approval read at `expected` together with its record (one
    /// transaction: a change nobody can read in the session log never takes effect).
    /// `Ok(false)`: someone else changed it first.
    pub async fn save_change(
        &self,
        a: &Approval,
        expected: Option<u64>,
        actor: &Person,
        vote: Option<&Vote>,
    ) -> Result<bool, StoreError> {
        let r = self.approval_record(a, actor, vote);
        let change = crate::store::ApprovalWrite {
            approval: a.clone(),
            expected,
        };
        match tokio::time::timeout(
            Duration::from_secs(10),
            self.store.approval_change(r, change),
        )
        .await
        {
            Ok(Ok(Ok(_))) => Ok(true),
            Ok(Ok(Err(StoreError::Conflict))) => Ok(false),
            Ok(Ok(Err(e))) => Err(e),
            _ => Err(StoreError::Unavailable(
                "the approval change was not stored in time".into(),
            )),
        }
    }

    /// Apply `change` to the stored approval until it sticks (or no longer applies).
    /// Returns the approval as stored afterwards, and whether this call's change is what
    /// was stored (false: `change` did not apply to what was read).
    pub async fn change_approval(
        &self,
        id: &str,
        actor: &Person,
        change: impl Fn(&mut Approval) -> bool,
    ) -> Result<Option<(Approval, bool)>, StoreError> {
        for _ in 0..5 {
            let Some(mut a) = self.store.approval_get(id.to_owned()).await? else {
                return Ok(None);
            };
            let read = a.version;
            if !change(&mut a) {
                return Ok(Some((a, false)));
            }
            if self.save_change(&a, Some(read), actor, None).await? {
                self.approvals.notify(id, a.state);
                return Ok(Some((a, true)));
            }
        }
        Err(StoreError::Unavailable(
            "the approval kept changing under this update".into(),
        ))
    }

    /// Hold the request of `x` until `a` is decided. `granted` is what lets the request go on.
    pub async fn hold(
        &self,
        x: &mut Exchange,
        a: Approval,
        granted: ProcessingResponse,
        tx: &mpsc::Sender<Result<ProcessingResponse, Status>>,
        inbound: &mut Streaming<ProcessingRequest>,
    ) -> Result<ProcessingResponse, Status> {
        let requester = a.requester.clone();
        let id = a.id.clone();
        let Some(mut place) = self.approvals.enter(&id, &requester.principal) else {
            return Ok(self.end_hold(
                x,
                429,
                "too_many_held_requests",
                "too many of your requests are waiting for approval; wait for a decision and retry",
            ));
        };
        let stored = self.save_change(&a, None, &requester, None).await;
        if !matches!(stored, Ok(true)) {
            tracing::error!(request_id = %x.request_id, "approval not stored; request refused");
            return Ok(self.end_hold(
                x,
                503,
                "session_store_unavailable",
                "the gateway cannot record this approval (session store unavailable); retry later",
            ));
        }
        tracing::info!(request_id = %x.request_id, approval = %id, rules = ?a.rules(), "request held for approval");
        self.notifier.notify(&a);
        let remaining = Duration::from_millis(a.expires_ms.saturating_sub(now_ms()));
        let extend = ProcessingResponse {
            override_message_timeout: prost_duration(remaining + DEADLINE_MARGIN),
            ..Default::default()
        };
        if tx.send(Ok(extend)).await.is_err() {
            self.give_up(&id, &requester, "the caller went away").await;
            return Err(Status::cancelled("caller went away"));
        }
        let deadline = tokio::time::Instant::now() + remaining;
        let mut poll = tokio::time::interval(POLL);
        let mut hub_open = true;
        let mut touched = tokio::time::Instant::now();
        let outcome = loop {
            tokio::select! {
                r = place.rx.changed(), if hub_open => hub_open = r.is_ok(),
                _ = poll.tick() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                m = inbound.message() => match m {
                    Ok(Some(_)) => {
                        // Nothing else comes while the body is unanswered; ignore it.
                        tracing::warn!(request_id = %x.request_id, "unexpected message during a hold");
                    }
                    _ => {
                        self.give_up(&id, &requester, "the caller went away").await;
                        x.finish_refused(
                            499,
                            "approval_cancelled",
                            "the caller went away while the request was held",
                        );
                        return Err(Status::cancelled("caller went away"));
                    }
                },
            }
            // Past the deadline by this server's steady clock, the approval expires even if
            // the wall clock says otherwise (a clock stepped back must not stretch a hold).
            let now = if tokio::time::Instant::now() >= deadline {
                u64::MAX
            } else {
                now_ms()
            };
            if touched.elapsed() >= HEARTBEAT {
                touched = tokio::time::Instant::now();
                if let Err(e) = self.store.approval_touch(id.clone(), now_ms()).await {
                    tracing::warn!(error = %e, approval = %id, "approval heartbeat failed");
                }
            }
            let current = self
                .change_approval(&id, &requester, |a| {
                    let read = a.version;
                    a.expire_if_due(now);
                    a.version != read
                })
                .await;
            match current {
                Ok(Some((a, _))) if a.state == State::Pending => continue,
                Ok(Some((a, _))) => break Ok(a),
                Ok(None) => break Err("the approval disappeared from the store"),
                Err(e) => {
                    tracing::warn!(error = %e, approval = %id, "reading a held approval failed");
                    if tokio::time::Instant::now() >= deadline + DEADLINE_MARGIN / 2 {
                        break Err("the session store is unavailable");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        drop(place);
        let a = match outcome {
            Ok(a) => a,
            Err(why) => return Ok(self.end_hold(x, 503, "session_store_unavailable", why)),
        };
        if a.state == State::Approved {
            let used = self
                .change_approval(&id, &requester, Approval::mark_used)
                .await;
            // Released only when this hold's own change marked the approval used (an
            // approval is used once).
            if matches!(&used, Ok(Some((u, true))) if u.state == State::Used) {
                approved(x, &id);
                tracing::info!(request_id = %x.request_id, approval = %id, "approved; request goes on");
                return Ok(granted);
            }
            return Ok(self.end_hold(
                x,
                503,
                "session_store_unavailable",
                "the approval could not be recorded as used; retry",
            ));
        }
        let (status, code, msg) = a.refusal();
        Ok(self.end_hold(x, status, code, &msg))
    }

    /// A deferred approval: the caller is answered at once. An identical request (same
    /// caller, same digest) that a reviewer approved goes on, once; one still pending is
    /// refused again with the same approval id; otherwise a new approval is asked for.
    pub async fn deferred(
        &self,
        x: &mut Exchange,
        a: Approval,
        granted: ProcessingResponse,
    ) -> ProcessingResponse {
        let requester = a.requester.clone();
        let now = now_ms();
        let earlier = match self
            .store
            .approval_by_digest(a.digest.clone(), requester.key())
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "reading approvals failed; request refused");
                return self.end_hold(
                    x,
                    503,
                    "session_store_unavailable",
                    "the gateway cannot read approvals (session store unavailable); retry later",
                );
            }
        };
        // Granted under the same policy and the same requirements: an approval given under
        // rules a newer bundle made stricter does not stand in for the new ones.
        let mine = |e: &&Approval| {
            e.requester.key() == requester.key()
                && e.policy == a.policy
                && e.requirements == a.requirements
        };
        for e in earlier
            .iter()
            .filter(mine)
            .filter(|e| e.usable_by(&requester, now))
        {
            let used = self
                .change_approval(&e.id, &requester, Approval::mark_used)
                .await;
            // Only the request whose own change marked it used goes on: of two identical
            // retries at once, one wins the compare-and-set, the other reads `used`.
            if matches!(&used, Ok(Some((u, true))) if u.state == State::Used) {
                approved(x, &e.id);
                tracing::info!(request_id = %x.request_id, approval = %e.id, "deferred approval used");
                return granted;
            }
        }
        let pending = earlier
            .iter()
            .filter(mine)
            .find(|e| e.state == State::Pending && now < e.expires_ms);
        let id = match pending {
            Some(p) => p.id.clone(),
            None => {
                // Each open approval is a reviewer's time: callers get a bounded number.
                match self.store.approval_open_deferred(requester.key()).await {
                    Ok(n) if n < MAX_OPEN_DEFERRED => {}
                    Ok(_) => {
                        return self.end_hold(x, 429, "too_many_open_approvals", "too many of your requests are waiting for approval; wait for a decision and retry")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reading approvals failed; request refused");
                        return self.end_hold(x, 503, "session_store_unavailable", "the gateway cannot read approvals (session store unavailable); retry later");
                    }
                }
                match self.save_change(&a, None, &requester, None).await {
                Ok(true) => {
                    self.notifier.notify(&a);
                    a.id.clone()
                }
                    _ => {
                        return self.end_hold(x, 503, "session_store_unavailable", "the gateway cannot record this approval (session store unavailable); retry later")
                    }
                }
            }
        };
        let msg = format!(
            "this request needs a reviewer's approval ({id}); once approved, send the identical request again (it then passes once)"
        );
        self.end_hold(x, 403, "approval_pending", &msg)
    }

    /// Settle pending approvals nobody will settle otherwise: those past their deadline
    /// expire, and holds whose server stopped saying it is alive (it stopped, and the
    /// caller's stream with it) are cancelled. Each change gets its record.
    pub async fn sweep_dead_holds(&self) {
        let now = now_ms();
        let before = now.saturating_sub(STALE_AFTER.as_millis() as u64);
        let stale = match self.store.approval_to_settle(before, now).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "looking for approvals to settle failed");
                return;
            }
        };
        for a in stale {
            let r = self
                .change_approval(&a.id, &gateway(), |a| {
                    let read = a.version;
                    if !a.expire_if_due(now) && a.mode == policy_engine::bundle::ApprovalMode::Hold
                    {
                        a.cancel("the server holding the request stopped");
                    }
                    a.version != read
                })
                .await;
            match r {
                Ok(Some((x, true))) => {
                    tracing::info!(approval = %a.id, request_id = %a.request_id, state = x.state.as_str(), "approval settled by the gateway")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, approval = %a.id, "cancelling a dead hold failed")
                }
            }
        }
    }

    /// The caller left: a pending approval is cancelled (recorded).
    async fn give_up(&self, id: &str, requester: &Person, why: &str) {
        let r = self.change_approval(id, requester, |a| a.cancel(why)).await;
        if let Err(e) = r {
            tracing::warn!(error = %e, approval = %id, "cancelling an approval failed");
        }
    }

    /// End a hold with a refusal: the exchange's record says so.
    fn end_hold(&self, x: &mut Exchange, status: u16, code: &str, msg: &str) -> ProcessingResponse {
        x.finish_refused(status, code, msg);
        self.record(x);
        x.refuse(status, code, msg)
    }
}

/// The exchange's decision once its approval let it go on.
fn approved(x: &mut Exchange, id: &str) {
    if let Some(d) = x.decision.as_mut() {
        d.enforced = "allow".into();
        d.status = 200;
        d.reason = "approved".into();
        d.message = format!("approved (approval {id})");
    }
}

fn prost_duration(d: Duration) -> Option<envoy_types::pb::google::protobuf::Duration> {
    Some(envoy_types::pb::google::protobuf::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    })
}
