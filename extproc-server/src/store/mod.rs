//! The session store: append-only, hash-chained records of [`Record`], with signed
//! checkpoints (`chain.rs`). One trait, chosen by one URL setting: the embedded SQLite store
//! (`sqlite:PATH` or a bare path, the default), PostgreSQL (`postgres://...`, shared by
//! several server replicas appending to one chain), or `memory:` for tests and throwaway
//! runs.
//!
//! An append resolves only once its record is durable; a caller that needs the record (the
//! ext_proc stream before it releases the answer) waits for it. Reads are futures, so no
//! store blocks an async worker.

pub mod chain;
pub mod postgres;
pub mod sqlite;

use crate::approvals::{Approval, State as ApprovalState};
use policy_engine::record::Record;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A record with its place in the chain.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stored {
    pub seq: u64,
    pub hash: String,
    #[serde(flatten)]
    pub record: Record,
}

/// Errors of the session store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the session store {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("the session store is unavailable: {0}")]
    Unavailable(String),
    #[error("unknown store URL `{0}` (use sqlite:PATH, postgres://USER@HOST/DB or memory:)")]
    Url(String),
    #[error("the session store is read-only here")]
    ReadOnly,
    /// An approval change lost to another change made first (read it again).
    #[error("the approval changed in the meantime")]
    Conflict,
}

/// An approval change, stored in the same transaction as the record that tells of it.
#[derive(Debug, Clone)]
pub struct ApprovalWrite {
    pub approval: Approval,
    /// `None`: insert a new approval; `Some(v)`: replace the stored one only if it is still
    /// at version `v`.
    pub expected: Option<u64>,
}

/// A read or maintenance operation of a store.
pub type StoreFuture<T> = futures::future::BoxFuture<'static, Result<T, StoreError>>;

/// What a prune removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Records removed.
    pub removed: u64,
    /// The log now starts after this record, anchored by its signed checkpoint (0: nothing
    /// was pruned).
    pub anchor: u64,
}

/// Which records a read wants. Empty fields do not filter.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub principal: Option<String>,
    pub policy: Option<String>,
    /// `allow`, `block`, `deny`, `unauthenticated`, ...
    pub decision: Option<String>,
    /// A rule id among the decision's rules.
    pub rule: Option<String>,
    pub session: Option<String>,
    pub request_id: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    /// Paging oldest-first: records with a sequence number above this one.
    pub after: Option<u64>,
    /// Paging newest-first: records with a sequence number below this one.
    pub before: Option<u64>,
    /// Newest first (the default for listings) or oldest first (exports, timelines).
    #[serde(default)]
    pub oldest_first: bool,
    pub limit: Option<usize>,
}

impl Query {
    pub const MAX_LIMIT: usize = 10_000;

    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, Self::MAX_LIMIT)
    }

    fn matches(&self, seq: u64, r: &Record) -> bool {
        let principal = r.identity.as_ref().map(|i| i.principal.as_str());
        self.principal
            .as_deref()
            .is_none_or(|p| principal == Some(p))
            && self
                .policy
                .as_deref()
                .is_none_or(|p| r.policy.as_deref() == Some(p))
            && self
                .decision
                .as_deref()
                .is_none_or(|d| r.decision.verdict == d)
            && self
                .rule
                .as_ref()
                .is_none_or(|x| r.decision.rules.contains(x))
            && self.session.as_deref().is_none_or(|s| r.session == s)
            && self.request_id.as_deref().is_none_or(|s| r.request_id == s)
            && self.since_ms.is_none_or(|t| r.time_ms >= t)
            && self.until_ms.is_none_or(|t| r.time_ms <= t)
            && self.after.is_none_or(|a| seq > a)
            && self.before.is_none_or(|b| seq < b)
    }
}

/// The columns a store indexes a record by. Filters read them, so `verify` checks them
/// against the chained record they were derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub session: String,
    pub request_id: String,
    pub source: String,
    pub kind: String,
    pub principal: Option<String>,
    pub policy: Option<String>,
    pub verdict: String,
    /// The decision's rule ids as `,a,b,` (a rule filter looks for `,id,`).
    pub rules: String,
}

/// Longest value an index column holds (the record keeps the whole value).
pub const MAX_COLUMN_BYTES: usize = 512;

/// A value as an index column holds it: without NUL (which PostgreSQL text refuses) and at
/// most [`MAX_COLUMN_BYTES`] (a token's claim can be any size; an index entry cannot).
fn column(v: &str) -> String {
    let mut s: String = v.chars().filter(|&c| c != '\0').collect();
    if s.len() > MAX_COLUMN_BYTES {
        let mut end = MAX_COLUMN_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl Columns {
    pub fn of(r: &Record) -> Columns {
        let name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        Columns {
            session: column(&r.session),
            request_id: column(&r.request_id),
            source: name(serde_json::to_value(r.source).unwrap_or_default()),
            kind: name(serde_json::to_value(r.kind).unwrap_or_default()),
            principal: r.identity.as_ref().map(|i| column(&i.principal)),
            policy: r.policy.as_deref().map(column),
            verdict: column(&r.decision.verdict),
            rules: column(&format!(",{},", r.decision.rules.join(","))),
        }
    }

    /// The problem a verifier reports when stored columns disagree with the record.
    pub fn check(&self, seq: u64, record: &[u8], problems: &mut Vec<String>) {
        if let Ok(rec) = Record::parse(record) {
            if Columns::of(&rec) != *self {
                problems.push(format!(
                    "record {seq}: its index columns were altered (filters would misread it)"
                ));
            }
        }
    }
}

/// The whole chain, for verification.
pub struct ChainDump {
    pub rows: Vec<chain::Row>,
    pub checkpoints: Vec<chain::Checkpoint>,
    /// Store-specific inconsistencies (e.g. index columns that disagree with the record).
    pub problems: Vec<String>,
}

pub trait Store: Send + Sync {
    /// Append a record; the receiver resolves with its sequence number once it is durable.
    fn append(&self, record: Record) -> oneshot::Receiver<Result<u64, StoreError>>;
    fn query(&self, q: Query) -> StoreFuture<Vec<Stored>>;
    fn dump(&self) -> StoreFuture<ChainDump>;
    /// Remove records made before `before_ms`, up to the last signed checkpoint among them:
    /// that checkpoint stays, so what remains still verifies and the chain goes on.
    fn prune(&self, before_ms: u64) -> StoreFuture<Pruned>;
    /// False once the store failed to write: requests are then refused (fail closed).
    fn healthy(&self) -> bool;

    /// Change an approval and append the record of the change, in one transaction: both
    /// are stored or neither. Resolves with the record's sequence number, or
    /// [`StoreError::Conflict`] when another change came first (nothing was written).
    fn approval_change(
        &self,
        record: Record,
        change: ApprovalWrite,
    ) -> oneshot::Receiver<Result<u64, StoreError>>;
    fn approval_get(&self, id: String) -> StoreFuture<Option<Approval>>;
    /// Approvals, newest first, optionally in one state.
    fn approval_list(
        &self,
        state: Option<ApprovalState>,
        limit: usize,
    ) -> StoreFuture<Vec<Approval>>;
    /// Approvals by `requester` (a [`Person::key`](crate::approvals::Person::key)) of the
    /// exact request with this digest, newest first.
    fn approval_by_digest(&self, digest: String, requester: String) -> StoreFuture<Vec<Approval>>;
    /// How many deferred approvals `requester` has pending.
    fn approval_open_deferred(&self, requester: String) -> StoreFuture<u64>;
    /// The server holding a request for approval `id` is alive (not a change: no version).
    fn approval_touch(&self, id: String, now_ms: u64) -> StoreFuture<()>;
    /// Pending approvals to settle: holds whose holder last said it was alive before
    /// `heartbeat_before`, and any past its deadline at `now_ms` (oldest first, bounded).
    fn approval_to_settle(&self, heartbeat_before: u64, now_ms: u64) -> StoreFuture<Vec<Approval>>;
}

/// Most approvals one sweep settles.
pub const SETTLE_BATCH: usize = 200;

/// An approval's mode as its column holds it.
pub fn mode_name(m: policy_engine::bundle::ApprovalMode) -> &'static str {
    match m {
        policy_engine::bundle::ApprovalMode::Hold => "hold",
        policy_engine::bundle::ApprovalMode::Deferred => "deferred",
    }
}

/// Whether a URL names a PostgreSQL store.
fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Open the store a URL names: `sqlite:PATH` (a file; a path without an extension is a
/// directory that gets `sessions.db`), a bare path (the same), or `memory:`. Checkpoints are
/// signed with the key in `key_path` (created `0600` when missing), by default
/// `checkpoint.key` beside the database; `memory:` without a key file uses a throwaway key.
pub async fn open(
    url: &str,
    key_path: Option<&std::path::Path>,
) -> Result<Arc<dyn Store>, StoreError> {
    let memory = url == "memory:" || url == "memory";
    if url.contains("://") && !url.starts_with("sqlite:") && !is_postgres(url) {
        return Err(StoreError::Url(redact_url(url)));
    }
    let signer = match (key_path, memory) {
        (None, true) => chain::Signer::throwaway(),
        (key, _) => {
            let path = key.map_or_else(|| default_key_path(url), std::path::Path::to_path_buf);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            chain::Signer::load_or_create(&path).map_err(|e| StoreError::Open {
                path: path.clone(),
                message: e.to_string(),
            })?
        }
    };
    if memory {
        return Ok(Arc::new(MemoryStore::new(signer)));
    }
    if is_postgres(url) {
        return Ok(Arc::new(postgres::PgStore::open(url, Some(signer)).await?));
    }
    Ok(Arc::new(sqlite::SqliteStore::open(
        store_path(url),
        signer,
    )?))
}

/// The filesystem path of a `sqlite:` (or bare) store URL.
pub fn store_path(url: &str) -> &std::path::Path {
    std::path::Path::new(url.strip_prefix("sqlite:").unwrap_or(url))
}

/// Where the checkpoint key of a store lives unless configured: beside an SQLite database;
/// for PostgreSQL, `.gatehouse/checkpoint.key` (replicas sharing a chain must be given one
/// shared key file).
pub fn default_key_path(url: &str) -> PathBuf {
    if is_postgres(url) {
        return PathBuf::from(".gatehouse/checkpoint.key");
    }
    sqlite::db_file(store_path(url)).with_file_name("checkpoint.key")
}

/// Open an existing store for reading and maintenance (the CLI): nothing is created, and
/// appends fail.
pub async fn open_read(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if is_postgres(url) {
        return Ok(Arc::new(postgres::PgStore::open(url, None).await?));
    }
    if url.contains("://") && !url.starts_with("sqlite:") || url.starts_with("memory") {
        return Err(StoreError::Url(redact_url(url)));
    }
    Ok(Arc::new(sqlite::SqliteStore::open_read_only(store_path(
        url,
    ))?))
}

/// A store URL fit for messages and logs: a password in the authority or in a `password`
/// parameter is replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    };
    if let Some(q) = out.find('?') {
        let params: Vec<String> = out[q + 1..]
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out = format!("{}?{}", &out[..q], params.join("&"));
    }
    out
}
/// Records kept in memory (tests, throwaway runs), chained like any store.
pub struct MemoryStore {
    inner: Mutex<(Vec<chain::Row>, Vec<chain::Checkpoint>)>,
    /// Approvals with the time their holder last said it was alive.
    approvals: Mutex<Vec<(Approval, u64)>>,
    signer: chain::Signer,
}

impl MemoryStore {
    pub fn new(signer: chain::Signer) -> Self {
        MemoryStore {
            inner: Mutex::new((Vec::new(), Vec::new())),
            approvals: Mutex::new(Vec::new()),
            signer,
        }
    }

    /// A store with a throwaway key (tests).
    #[cfg(test)]
    pub fn for_tests() -> Self {
        MemoryStore::new(chain::Signer::throwaway())
    }

    /// The most recent `limit` records, oldest first (tests).
    #[cfg(test)]
    pub fn recent(&self, limit: usize) -> Vec<Record> {
        let mut v = self
            .query_now(&Query {
                limit: Some(limit),
                ..Default::default()
            })
            .unwrap_or_default();
        v.reverse();
        v.into_iter().map(|s| s.record).collect()
    }
}

impl Store for MemoryStore {
    fn append(&self, record: Record) -> oneshot::Receiver<Result<u64, StoreError>> {
        let (tx, rx) = oneshot::channel();
        let res = self
            .inner
            .lock()
            .map_err(|_| StoreError::Unavailable("store lock poisoned".into()))
            .map(|mut g| {
                let seq = g.0.len() as u64 + 1;
                let prev =
                    g.0.last()
                        .map_or(chain::GENESIS.to_owned(), |r| r.hash.clone());
                let bytes = record.canonical();
                let hash = chain::link(&prev, seq, &bytes);
                g.1.push(chain::Checkpoint {
                    seq,
                    signature: self.signer.sign(seq, &hash),
                    hash: hash.clone(),
                    key_id: self.signer.key_id(),
                });
                g.0.push(chain::Row {
                    seq,
                    prev_hash: prev,
                    hash,
                    record: bytes,
                });
                seq
            });
        let _ = tx.send(res);
        rx
    }

    fn query(&self, q: Query) -> StoreFuture<Vec<Stored>> {
        let r = self.query_now(&q);
        Box::pin(async move { r })
    }

    fn dump(&self) -> StoreFuture<ChainDump> {
        let r = self.dump_now();
        Box::pin(async move { r })
    }

    fn prune(&self, _before_ms: u64) -> StoreFuture<Pruned> {
        Box::pin(async {
            Err(StoreError::Unavailable(
                "the memory store does not prune".into(),
            ))
        })
    }

    fn healthy(&self) -> bool {
        true
    }

    fn approval_change(
        &self,
        record: Record,
        change: ApprovalWrite,
    ) -> oneshot::Receiver<Result<u64, StoreError>> {
        // The approvals lock is held across both writes: nobody sees one without the other.
        let mut g = self.approvals.lock().unwrap_or_else(|e| e.into_inner());
        let a = change.approval;
        let pos = g.iter().position(|x| x.0.id == a.id);
        let applied = match (pos, change.expected) {
            (None, None) => {
                let t = a.created_ms;
                g.push((a, t));
                true
            }
            (Some(i), Some(v)) if g[i].0.version == v => {
                g[i].0 = a;
                true
            }
            _ => false,
        };
        if !applied {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(StoreError::Conflict));
            return rx;
        }
        self.append(record)
    }

    fn approval_get(&self, id: String) -> StoreFuture<Option<Approval>> {
        let g = self.approvals.lock().unwrap_or_else(|e| e.into_inner());
        let a = g.iter().find(|x| x.0.id == id).map(|x| x.0.clone());
        Box::pin(async move { Ok(a) })
    }

    fn approval_list(
        &self,
        state: Option<ApprovalState>,
        limit: usize,
    ) -> StoreFuture<Vec<Approval>> {
        let g = self.approvals.lock().unwrap_or_else(|e| e.into_inner());
        let v: Vec<Approval> = g
            .iter()
            .rev()
            .map(|x| &x.0)
            .filter(|a| state.is_none_or(|s| a.state == s))
            .take(limit)
            .cloned()
            .collect();
        Box::pin(async move { Ok(v) })
    }

    fn approval_by_digest(&self, digest: String, requester: String) -> StoreFuture<Vec<Approval>> {
        let g = self.approvals.lock().unwrap_or_else(|e| e.into_inner());
        let v: Vec<Approval> = g
            .iter()
            .rev()
            .filter(|x| x.0.digest == digest && x.0.requester.key() == requester)
            .take(20)
            .map(|x| x.0.clone())
            .collect();
        Box::pin(async move { Ok(v) })
    }

    fn approval_open_deferred(&self, requester: String) -> StoreFuture<u64> {
        let g = self.approvals.lock().unwrap_or_else(|e| e.into_inner());
        let n = g
            .iter()
            .filter(|x| {
                x.0.state == ApprovalState::Pending
                    && x.0.mode == policy_engine::bundle::ApprovalMode::Deferred
                    && x.0.requester.key() == requester
            })
            .count() as u64;
        Box::pin(async move { Ok(n) })
    }

    fn approval_touch(&self, id: String, now_ms: u64) -> StoreFuture<()> {
        let mut g = self.approvals.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(x) = g.iter_mut().find(|x| x.0.id == id) {
            x.1 = now_ms;
        }
        Box::pin(async { Ok(()) })
    }

    fn approval_to_settle(&self, heartbeat_before: u64, now_ms: u64) -> StoreFuture<Vec<Approval>> {
        let g = self.approvals.lock().unwrap_or_else(|e| e.into_inner());
        let v: Vec<Approval> = g
            .iter()
            .filter(|x| {
                x.0.state == ApprovalState::Pending
                    && ((x.0.mode == policy_engine::bundle::ApprovalMode::Hold
                        && x.1 < heartbeat_before)
                        || x.0.expires_ms <= now_ms)
            })
            .take(SETTLE_BATCH)
            .map(|x| x.0.clone())
            .collect();
        Box::pin(async move { Ok(v) })
    }
}

impl MemoryStore {
    fn query_now(&self, q: &Query) -> Result<Vec<Stored>, StoreError> {
        let g = self
            .inner
            .lock()
            .map_err(|_| StoreError::Unavailable("store lock poisoned".into()))?;
        let all = g.0.iter().filter_map(|r| {
            let rec = Record::parse(&r.record).ok()?;
            q.matches(r.seq, &rec).then(|| Stored {
                seq: r.seq,
                hash: r.hash.clone(),
                record: rec,
            })
        });
        Ok(if q.oldest_first {
            all.take(q.limit()).collect()
        } else {
            let mut v: Vec<Stored> = all.collect();
            v.reverse();
            v.truncate(q.limit());
            v
        })
    }

    fn dump_now(&self) -> Result<ChainDump, StoreError> {
        let g = self
            .inner
            .lock()
            .map_err(|_| StoreError::Unavailable("store lock poisoned".into()))?;
        let rows =
            g.0.iter()
                .map(|r| chain::Row {
                    seq: r.seq,
                    prev_hash: r.prev_hash.clone(),
                    hash: r.hash.clone(),
                    record: r.record.clone(),
                })
                .collect();
        let checkpoints =
            g.1.iter()
                .map(|c| chain::Checkpoint {
                    seq: c.seq,
                    hash: c.hash.clone(),
                    key_id: c.key_id.clone(),
                    signature: c.signature.clone(),
                })
                .collect();
        Ok(ChainDump {
            rows,
            checkpoints,
            problems: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        use super::redact_url as r;
        assert_eq!(
            r("postgres://u:s3cret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            r("postgres://u@h/db?password=s3cret&sslmode=disable"),
            "postgres://u@h/db?password=***&sslmode=disable"
        );
        assert_eq!(r("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(r("sqlite:.gatehouse/store"), "sqlite:.gatehouse/store");
    }

    #[test]
    fn index_columns_hold_no_nul_and_stay_bounded() {
        let long = "é".repeat(400);
        let c = super::column(&long);
        assert!(c.len() <= super::MAX_COLUMN_BYTES && long.starts_with(&c));
        assert_eq!(super::column("a\0b"), "ab");
    }
}
