//! The session store: append-only, hash-chained records of [`Record`], with signed
//! checkpoints (`chain.rs`). One trait, chosen by one URL setting: the embedded SQLite store
//! (`sqlite:PATH`, the default), or `memory:` for tests and throwaway runs.
//!
//! An append resolves only once its record is durable; a caller that needs the record (the
//! ext_proc stream before it releases the answer) waits for it.

pub mod chain;
pub mod sqlite;

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
    #[error("unknown store URL `{0}` (use sqlite:PATH or memory:)")]
    Url(String),
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
    fn query(&self, q: &Query) -> Result<Vec<Stored>, StoreError>;
    fn dump(&self) -> Result<ChainDump, StoreError>;
    /// False once the store failed to write: requests are then refused (fail closed).
    fn healthy(&self) -> bool;
}

/// Open the store a URL names: `sqlite:PATH` (a file; a path without an extension is a
/// directory that gets `sessions.db`), a bare path (the same), or `memory:`. Checkpoints are
/// signed with the key in `key_path` (created `0600` when missing), by default
/// `checkpoint.key` beside the database; `memory:` without a key file uses a throwaway key.
pub fn open(url: &str, key_path: Option<&std::path::Path>) -> Result<Arc<dyn Store>, StoreError> {
    let memory = url == "memory:" || url == "memory";
    if url.contains("://") && !url.starts_with("sqlite:") {
        return Err(StoreError::Url(url.to_owned()));
    }
    let db = store_path(url);
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
    Ok(Arc::new(sqlite::SqliteStore::open(db, signer)?))
}

/// The filesystem path of a `sqlite:` (or bare) store URL.
pub fn store_path(url: &str) -> &std::path::Path {
    std::path::Path::new(url.strip_prefix("sqlite:").unwrap_or(url))
}

/// Where the checkpoint key of a store lives unless configured: beside its database.
pub fn default_key_path(url: &str) -> PathBuf {
    sqlite::db_file(store_path(url)).with_file_name("checkpoint.key")
}

/// Open an existing store for reading (the CLI): nothing is created.
pub fn open_read(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.contains("://") && !url.starts_with("sqlite:") || url.starts_with("memory") {
        return Err(StoreError::Url(url.to_owned()));
    }
    Ok(Arc::new(sqlite::SqliteStore::open_read_only(store_path(
        url,
    ))?))
}

/// Records kept in memory (tests, throwaway runs), chained like any store.
pub struct MemoryStore {
    inner: Mutex<(Vec<chain::Row>, Vec<chain::Checkpoint>)>,
    signer: chain::Signer,
}

impl MemoryStore {
    pub fn new(signer: chain::Signer) -> Self {
        MemoryStore {
            inner: Mutex::new((Vec::new(), Vec::new())),
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
            .query(&Query {
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

    fn query(&self, q: &Query) -> Result<Vec<Stored>, StoreError> {
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

    fn dump(&self) -> Result<ChainDump, StoreError> {
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

    fn healthy(&self) -> bool {
        true
    }
}
