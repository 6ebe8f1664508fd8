//! Approval holds: the approval of one request, its states and the rules of a reviewer's
//! vote, free of I/O so they are tested natively; and the hub through which a decision made
//! on this server reaches the request waiting for it.
//!
//! States: `pending` until enough distinct reviewers approve (`approved`), one rejects
//! (`rejected`), the deadline passes (`expired`), the caller goes away (`cancelled`), or an
//! approved request goes on (`used`). Only `pending` changes by vote; every other state is
//! final except `approved -> used`.

use policy_engine::bundle::{ApprovalMode, ApprovalSpec, Reviewers};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
    Used,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Expired => "expired",
            State::Cancelled => "cancelled",
            State::Used => "used",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Pending,
            State::Approved,
            State::Rejected,
            State::Expired,
            State::Cancelled,
            State::Used,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// Someone identified by a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub issuer: String,
    pub principal: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Person {
    /// Who someone is across issuers: the issuer and the principal.
    pub fn key(&self) -> String {
        format!("{}\n{}", self.issuer, self.principal)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    pub reviewer: Person,
    pub approve: bool,
    pub reason: String,
    pub time_ms: u64,
}

/// What one matched rule asks for: `required` distinct approvals from its reviewers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub rule: String,
    pub reviewers: Reviewers,
    pub required: u32,
}

impl Requirement {
    /// Whether `p` may review for this requirement of a request made by `requester`: named
    /// by principal or group, and vouched for by an issuer the rule trusts for reviews
    /// (by default the requester's own).
    pub fn admits(&self, p: &Person, requester: &Person) -> bool {
        let issuer_ok = if self.reviewers.issuers.is_empty() {
            p.issuer == requester.issuer
        } else {
            self.reviewers.issuers.contains(&p.issuer)
        };
        issuer_ok && self.reviewers.admits(&p.principal, &p.groups)
    }
}

/// One approval, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub id: String,
    pub state: State,
    /// Bumped by every change; stores write a change only over the version it was read at.
    pub version: u64,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub requester: Person,
    pub policy: String,
    /// Every matched rule that asks for approval, each with its reviewers: all must be met.
    pub requirements: Vec<Requirement>,
    pub mode: ApprovalMode,
    pub request_id: String,
    pub session: String,
    /// The held request's method and path (as recorded).
    pub method: String,
    pub path: String,
    /// SHA-256 of the exact request (method, path, body): what the reviewers approve.
    pub digest: String,
    /// What the reviewers see of the request in a list: its text as the session log
    /// records it (blocked values replaced, masking applied), cut to a few hundred characters.
    pub summary: String,
    /// Where the rules matched (`rule at field`), so reviewers look at the right place.
    #[serde(default)]
    pub matched: Vec<String>,
    /// The whole request as the session log records it (absent when it is too large to
    /// keep here; the session log has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    #[serde(default)]
    pub votes: Vec<Vote>,
    /// Why the approval ended, when it did not end by vote (expiry, cancellation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a vote is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    #[error("nobody approves their own request")]
    OwnRequest,
    #[error("`{0}` is not a reviewer of this approval")]
    NotReviewer(String),
    #[error("`{0}` has already decided on this approval")]
    AlreadyVoted(String),
    #[error("the approval is {0}, no longer pending")]
    NotPending(&'static str),
    #[error("the approval expired")]
    Expired,
    #[error("a reason is required (1 to {MAX_REASON} characters)")]
    Reason,
}

/// Longest reason a reviewer may give.
pub const MAX_REASON: usize = 1000;
/// Longest summary shown to reviewers.
pub const MAX_SUMMARY: usize = 600;

/// The largest request body an approval keeps for its reviewers (serialised).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// What a new approval needs to know of its request.
pub struct NewApproval<'a> {
    /// Each matched approval rule with its settings.
    pub specs: Vec<(&'a str, &'a ApprovalSpec)>,
    pub requester: Person,
    pub policy: &'a str,
    pub request_id: &'a str,
    pub session: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub digest: String,
    pub summary: &'a str,
    pub matched: Vec<String>,
    pub request: Option<Value>,
    pub now_ms: u64,
}

impl Approval {
    pub fn new(n: NewApproval<'_>) -> Approval {
        // The strictest deadline of the matched rules applies.
        let ttl = n
            .specs
            .iter()
            .map(|(_, s)| s.ttl_seconds)
            .min()
            .unwrap_or(0);
        let request = n
            .request
            .filter(|v| serde_json::to_vec(v).map_or(0, |b| b.len()) <= MAX_REQUEST_BYTES);
        Approval {
            id: format!("apr-{}", hex::encode(rand::random::<[u8; 12]>())),
            state: State::Pending,
            version: 1,
            created_ms: n.now_ms,
            expires_ms: n.now_ms.saturating_add(ttl.saturating_mul(1000)),
            requester: n.requester,
            policy: n.policy.to_owned(),
            requirements: n
                .specs
                .iter()
                .map(|(rule, s)| Requirement {
                    rule: (*rule).to_owned(),
                    reviewers: s.reviewers.clone(),
                    required: s.approvals.max(1),
                })
                .collect(),
            // A request any rule wants held waits; only all-deferred rules defer.
            mode: if n
                .specs
                .iter()
                .all(|(_, s)| s.mode == ApprovalMode::Deferred)
            {
                ApprovalMode::Deferred
            } else {
                ApprovalMode::Hold
            },
            request_id: n.request_id.to_owned(),
            session: n.session.to_owned(),
            method: n.method.to_owned(),
            path: n.path.to_owned(),
            digest: n.digest,
            summary: cut(n.summary, MAX_SUMMARY),
            matched: n.matched,
            request,
            votes: Vec::new(),
            note: None,
        }
    }

    /// A reviewer's decision. Changes the state when it settles the approval.
    pub fn vote(
        &mut self,
        reviewer: Person,
        approve: bool,
        reason: &str,
        now_ms: u64,
    ) -> Result<State, VoteError> {
        if self.expire_if_due(now_ms) {
            return Err(VoteError::Expired);
        }
        if self.state != State::Pending {
            return Err(VoteError::NotPending(self.state.as_str()));
        }
        // The same principal is the same person, whichever trusted issuer vouches for them.
        if reviewer.principal == self.requester.principal {
            return Err(VoteError::OwnRequest);
        }
        if !self.may_review(&reviewer) {
            return Err(VoteError::NotReviewer(reviewer.principal));
        }
        if self
            .votes
            .iter()
            .any(|v| v.reviewer.principal == reviewer.principal)
        {
            return Err(VoteError::AlreadyVoted(reviewer.principal));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON {
            return Err(VoteError::Reason);
        }
        self.votes.push(Vote {
            reviewer,
            approve,
            reason: reason.to_owned(),
            time_ms: now_ms,
        });
        if !approve {
            self.state = State::Rejected;
        } else if self.requirements.iter().all(|req| {
            self.votes
                .iter()
                .filter(|v| v.approve && req.admits(&v.reviewer, &self.requester))
                .count() as u32
                >= req.required
        }) {
            self.state = State::Approved;
        }
        self.version += 1;
        Ok(self.state)
    }

    /// Whether `p` reviews for at least one of the matched rules.
    pub fn may_review(&self, p: &Person) -> bool {
        self.requirements
            .iter()
            .any(|r| r.admits(p, &self.requester))
    }

    /// The rules this approval is for.
    pub fn rules(&self) -> Vec<String> {
        self.requirements.iter().map(|r| r.rule.clone()).collect()
    }

    /// A pending approval past its deadline becomes `expired`; true when it did now or was.
    pub fn expire_if_due(&mut self, now_ms: u64) -> bool {
        if self.state == State::Pending && now_ms >= self.expires_ms {
            self.state = State::Expired;
            self.note = Some("no decision before the deadline".into());
            self.version += 1;
        }
        self.state == State::Expired
    }

    /// Whether this approval lets the identical request of `requester` go on now (deferred
    /// approvals: approved, unused, within the time-to-live).
    pub fn usable_by(&self, requester: &Person, now_ms: u64) -> bool {
        self.mode == ApprovalMode::Deferred
            && self.state == State::Approved
            && now_ms < self.expires_ms
            && self.requester.issuer == requester.issuer
            && self.requester.principal == requester.principal
    }

    /// The caller went away while its request was held.
    pub fn cancel(&mut self, why: &str) -> bool {
        if self.state != State::Pending {
            return false;
        }
        self.state = State::Cancelled;
        self.note = Some(why.to_owned());
        self.version += 1;
        true
    }

    /// An approved request went on.
    pub fn mark_used(&mut self) -> bool {
        if self.state != State::Approved {
            return false;
        }
        self.state = State::Used;
        self.version += 1;
        true
    }

    /// The reason the caller gets when the approval did not let the request go on.
    pub fn refusal(&self) -> (u16, &'static str, String) {
        match self.state {
            State::Rejected => {
                let v = self.votes.iter().rev().find(|v| !v.approve);
                (
                    403,
                    "approval_rejected",
                    format!(
                        "a reviewer rejected this request (approval {}): {}",
                        self.id,
                        v.map_or("", |v| v.reason.as_str())
                    ),
                )
            }
            State::Expired => (
                403,
                "approval_expired",
                format!(
                    "no reviewer decided on this request before its deadline (approval {})",
                    self.id
                ),
            ),
            _ => (
                403,
                "approval_not_granted",
                format!("approval {} is {}", self.id, self.state.as_str()),
            ),
        }
    }
}

/// The digest of the exact request an approval is for.
pub fn request_digest(method: &str, path: &str, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"gatehouse/approval-request/v1\n");
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// A string cut to at most `max` characters, marked when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// Most requests one principal may have held on one server at once ...
pub const MAX_HOLDS_PER_PRINCIPAL: usize = 20;
/// ... and most held on one server in all.
pub const MAX_HOLDS: usize = 2000;

/// Where requests held on this server wait for their approval's state to change.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<HubInner>,
}

#[derive(Default)]
struct HubInner {
    waiting: HashMap<String, watch::Sender<State>>,
    per_principal: HashMap<String, usize>,
}

/// A place in the hub; leaving it (however the hold ends) frees it.
pub struct Place<'a> {
    hub: &'a Hub,
    id: String,
    principal: String,
    pub rx: watch::Receiver<State>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut g = self.hub.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.waiting.remove(&self.id);
        if let Some(n) = g.per_principal.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                g.per_principal.remove(&self.principal);
            }
        }
    }
}

impl Hub {
    /// Wait here for changes of approval `id`; `None` when `principal` already has
    /// [`MAX_HOLDS_PER_PRINCIPAL`] requests held, or the server [`MAX_HOLDS`].
    pub fn enter(&self, id: &str, principal: &str) -> Option<Place<'_>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mine = g.per_principal.get(principal).copied().unwrap_or(0);
        if mine >= MAX_HOLDS_PER_PRINCIPAL || g.waiting.len() >= MAX_HOLDS {
            return None;
        }
        g.per_principal.insert(principal.to_owned(), mine + 1);
        let (tx, rx) = watch::channel(State::Pending);
        g.waiting.insert(id.to_owned(), tx);
        Some(Place {
            hub: self,
            id: id.to_owned(),
            principal: principal.to_owned(),
            rx,
        })
    }

    /// Tell a waiting request that its approval changed.
    pub fn notify(&self, id: &str, state: State) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = g.waiting.get(id) {
            let _ = tx.send(state);
        }
    }

    /// Requests held here now.
    pub fn held(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .waiting
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(p: &str, groups: &[&str]) -> Person {
        Person {
            issuer: "idp".into(),
            principal: p.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn spec(groups: &[&str], principals: &[&str], required: u32, ttl: u64) -> ApprovalSpec {
        ApprovalSpec {
            reviewers: Reviewers {
                groups: groups.iter().map(|g| g.to_string()).collect(),
                principals: principals.iter().map(|g| g.to_string()).collect(),
                issuers: vec![],
            },
            approvals: required,
            ttl_seconds: ttl,
            mode: ApprovalMode::Hold,
        }
    }

    fn approval(required: u32, ttl: u64) -> Approval {
        let spec = spec(&["legal"], &["carol"], required, ttl);
        approval_for(vec![("legal-review", &spec)])
    }

    fn approval_for(specs: Vec<(&str, &ApprovalSpec)>) -> Approval {
        Approval::new(NewApproval {
            specs,
            requester: person("alice", &["eng", "legal"]),
            policy: "engineering",
            request_id: "r1",
            session: "s1",
            method: "POST",
            path: "/v1/chat/completions",
            digest: "d".into(),
            summary: &"x".repeat(2000),
            matched: vec!["legal-review at messages[0].content".into()],
            request: Some(serde_json::json!({"messages": [{"content": "x"}]})),
            now_ms: 1_000,
        })
    }

    #[test]
    fn every_matched_rule_must_be_met_by_its_own_reviewers_and_the_shortest_ttl_applies() {
        let weak = spec(&["friends"], &[], 1, 200);
        let strict = spec(&["legal"], &[], 2, 60);
        let mut a = approval_for(vec![("weak", &weak), ("strict", &strict)]);
        assert_eq!(a.expires_ms, 1_000 + 60_000);
        assert_eq!(a.rules(), vec!["weak", "strict"]);
        // A friend's approval meets the weak rule only.
        assert_eq!(
            a.vote(person("pal", &["friends"]), true, "ok", 2_000),
            Ok(State::Pending)
        );
        assert_eq!(
            a.vote(person("bob", &["legal"]), true, "ok", 2_100),
            Ok(State::Pending)
        );
        assert_eq!(
            a.vote(person("dave", &["legal"]), true, "ok", 2_200),
            Ok(State::Approved)
        );
    }

    #[test]
    fn reviewers_come_from_the_requesters_issuer_unless_the_rule_names_others() {
        let mut a = approval(1, 60);
        let mut outsider = person("bob", &["legal"]);
        outsider.issuer = "partner-idp".into();
        assert_eq!(
            a.vote(outsider.clone(), true, "ok", 2_000),
            Err(VoteError::NotReviewer("bob".into()))
        );
        let mut s = spec(&["legal"], &[], 1, 60);
        s.reviewers.issuers = vec!["partner-idp".into()];
        let mut b = approval_for(vec![("legal-review", &s)]);
        assert_eq!(b.vote(outsider, true, "ok", 2_000), Ok(State::Approved));
        assert_eq!(a.state, State::Pending);
    }

    #[test]
    fn one_reviewer_approves_and_the_state_settles() {
        let mut a = approval(1, 60);
        assert!(a.id.starts_with("apr-") && a.summary.chars().count() == MAX_SUMMARY + 1);
        assert_eq!(
            a.vote(person("bob", &["legal"]), true, "fine", 2_000),
            Ok(State::Approved)
        );
        assert_eq!(
            a.vote(person("carol", &[]), false, "late", 3_000),
            Err(VoteError::NotPending("approved"))
        );
        assert!(a.mark_used() && !a.mark_used());
        assert_eq!(a.version, 3);
    }

    #[test]
    fn the_requester_and_outsiders_cannot_decide() {
        let mut a = approval(1, 60);
        // alice is in `legal` herself: still her own request.
        assert_eq!(
            a.vote(person("alice", &["legal"]), true, "me", 2_000),
            Err(VoteError::OwnRequest)
        );
        // Another issuer vouching for the same principal changes nothing.
        let mut other = person("alice", &["legal"]);
        other.issuer = "other-idp".into();
        assert_eq!(a.vote(other, true, "me", 2_000), Err(VoteError::OwnRequest));
        assert_eq!(
            a.vote(person("mallory", &["eng"]), true, "ok", 2_000),
            Err(VoteError::NotReviewer("mallory".into()))
        );
        assert_eq!(
            a.vote(person("bob", &["legal"]), true, "  ", 2_000),
            Err(VoteError::Reason)
        );
        assert_eq!(a.state, State::Pending);
        assert_eq!(a.version, 1, "refused votes change nothing");
        // A principal named as reviewer needs no group.
        assert_eq!(
            a.vote(person("carol", &[]), true, "ok", 2_000),
            Ok(State::Approved)
        );
    }

    #[test]
    fn two_approvals_need_two_distinct_reviewers_and_one_rejection_rejects() {
        let mut a = approval(2, 60);
        assert_eq!(
            a.vote(person("bob", &["legal"]), true, "ok", 2_000),
            Ok(State::Pending)
        );
        assert_eq!(
            a.vote(person("bob", &["legal"]), true, "again", 2_100),
            Err(VoteError::AlreadyVoted("bob".into()))
        );
        assert_eq!(
            a.vote(person("dave", &["legal"]), true, "ok", 2_200),
            Ok(State::Approved)
        );
        let mut b = approval(2, 60);
        b.vote(person("bob", &["legal"]), true, "ok", 2_000)
            .unwrap();
        assert_eq!(
            b.vote(person("dave", &["legal"]), false, "not this one", 2_100),
            Ok(State::Rejected)
        );
        let (status, code, msg) = b.refusal();
        assert_eq!((status, code), (403, "approval_rejected"));
        assert!(msg.contains("not this one") && msg.contains(&b.id));
    }

    #[test]
    fn deadlines_and_cancellation_end_only_pending_approvals() {
        let mut a = approval(1, 5);
        assert_eq!(
            a.vote(person("bob", &["legal"]), true, "ok", 6_000),
            Err(VoteError::Expired)
        );
        assert_eq!(a.state, State::Expired);
        assert_eq!(a.refusal().1, "approval_expired");
        assert!(!a.cancel("gone"));
        let mut b = approval(1, 5);
        assert!(b.cancel("the caller disconnected"));
        assert_eq!(b.state, State::Cancelled);
        assert!(!b.expire_if_due(10_000));
    }

    #[tokio::test]
    async fn the_hub_wakes_the_waiting_request_and_bounds_holds_per_principal() {
        let hub = Hub::default();
        let mut place = hub.enter("apr-1", "alice").unwrap();
        hub.notify("apr-2", State::Rejected); // someone else's
        hub.notify("apr-1", State::Approved);
        place.rx.changed().await.unwrap();
        assert_eq!(*place.rx.borrow(), State::Approved);
        let more: Vec<_> = (0..MAX_HOLDS_PER_PRINCIPAL - 1)
            .map(|i| hub.enter(&format!("a{i}"), "alice").unwrap())
            .collect();
        assert!(hub.enter("one-too-many", "alice").is_none());
        assert!(hub.enter("b", "bob").is_some(), "others are not affected");
        drop(place);
        assert!(
            hub.enter("again", "alice").is_some(),
            "a finished hold frees its place"
        );
        drop(more);
        assert_eq!(hub.held(), 0);
    }
}
