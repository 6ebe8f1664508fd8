//! The embedded session store: one SQLite file (WAL, `synchronous=FULL`), written by one
//! thread that commits appends in groups and acknowledges each only after its group is on
//! disk. Reads use their own connections and indexed queries, so they stay fast as the log
//! grows.

use super::{
    chain, ApprovalWrite, ChainDump, Columns, Pruned, Query, Store, StoreError, StoreFuture, Stored,
};
use crate::approvals::{Approval, State as ApprovalState};
use policy_engine::record::Record;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most records one commit carries.
const GROUP: usize = 256;
/// A checkpoint is signed after this many records, or this long after the last one.
const CHECKPOINT_EVERY: u64 = 100;
const CHECKPOINT_AFTER: Duration = Duration::from_secs(5);

/// A record to append, the approval change it records (if any), and who waits for it.
type Job = (
    Record,
    Option<ApprovalWrite>,
    oneshot::Sender<Result<u64, StoreError>>,
);

pub struct SqliteStore {
    path: PathBuf,
    tx: mpsc::SyncSender<Job>,
    healthy: Arc<AtomicBool>,
}

/// The database layout version (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq        INTEGER PRIMARY KEY,
    time_ms    INTEGER NOT NULL,
    session    TEXT NOT NULL,
    request_id TEXT NOT NULL,
    source     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    principal  TEXT,
    policy     TEXT,
    verdict    TEXT NOT NULL,
    rules      TEXT NOT NULL,
    record     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_time ON records(time_ms);
CREATE INDEX IF NOT EXISTS records_principal ON records(principal, seq);
CREATE INDEX IF NOT EXISTS records_session ON records(session, seq);
CREATE INDEX IF NOT EXISTS records_request ON records(request_id, source, kind);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq       INTEGER PRIMARY KEY,
    hash      TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL,
    time_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    id         TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    digest     TEXT NOT NULL,
    mode       TEXT NOT NULL,
    requester  TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_state ON approvals(state, created_ms);
CREATE INDEX IF NOT EXISTS approvals_requester ON approvals(requester, digest, created_ms);
";

/// A record column as bytes, whether SQLite holds it as text or as a blob.
fn bytes(r: &rusqlite::Row, i: usize) -> rusqlite::Result<Vec<u8>> {
    use rusqlite::types::ValueRef;
    match r.get_ref(i)? {
        ValueRef::Text(t) | ValueRef::Blob(t) => Ok(t.to_vec()),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            "record".into(),
            other.data_type(),
        )),
    }
}

/// The database file a store path names: a directory (or a path without an extension)
/// holds `sessions.db`; anything else is the file itself.
pub fn db_file(path: &Path) -> PathBuf {
    if path.is_dir() || path.extension().is_none() {
        path.join("sessions.db")
    } else {
        path.to_owned()
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SqliteStore {
    /// Open (creating `0600`) the database at `path`, or `sessions.db` in `path` when it is
    /// a directory.
    pub fn open(path: &Path, signer: chain::Signer) -> Result<Self, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: path.to_owned(),
            message,
        };
        let file = db_file(path);
        if file != path {
            // A directory store: created when missing.
            std::fs::create_dir_all(path).map_err(|e| open_err(e.to_string()))?;
        }
        let path = file;
        if !path.exists() {
            // SQLite gives its -wal and -shm files the database file's mode.
            crate::cli::write_private(&path, b"").map_err(|e| open_err(e.to_string()))?;
        }
        let conn = Connection::open(&path).map_err(|e| open_err(e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
        )
        .map_err(|e| open_err(e.to_string()))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| open_err(e.to_string()))?;
        let has_records: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'records'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| open_err(e.to_string()))?;
        if has_records && version != SCHEMA_VERSION {
            return Err(open_err(format!(
                "the store has schema version {version}, this server writes {SCHEMA_VERSION}; move it aside or export it with the matching gatehouse version"
            )));
        }
        conn.execute_batch(SCHEMA)
            .and_then(|_| conn.pragma_update(None, "user_version", SCHEMA_VERSION))
            .map_err(|e| open_err(e.to_string()))?;
        let (tx, rx) = mpsc::sync_channel::<Job>(4096);
        let healthy = Arc::new(AtomicBool::new(true));
        let h = healthy.clone();
        std::thread::Builder::new()
            .name("gatehouse-store".into())
            .spawn(move || writer(conn, signer, rx, h))
            .map_err(|e| open_err(e.to_string()))?;
        Ok(SqliteStore { path, tx, healthy })
    }

    /// Open an existing database for reading only (the CLI): nothing is created, and
    /// appends fail.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let path = db_file(path);
        if !path.is_file() {
            return Err(StoreError::Open {
                path,
                message: "no session store there".into(),
            });
        }
        let (tx, _) = mpsc::sync_channel::<Job>(1);
        Ok(SqliteStore {
            path,
            tx,
            healthy: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// The writer: takes what is queued (up to a group), commits it in one transaction, then
/// acknowledges every record of the group.
fn writer(
    mut conn: Connection,
    signer: chain::Signer,
    rx: mpsc::Receiver<Job>,
    healthy: Arc<AtomicBool>,
) {
    // The chain goes on from the last record, or from the last checkpoint of a log pruned
    // to nothing.
    let tail = |c: &Connection| -> rusqlite::Result<(u64, String)> {
        let last = |sql: &str| {
            c.query_row(sql, [], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
                .optional()
        };
        Ok(
            last("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1")?
                .or(last(
                    "SELECT seq, hash FROM checkpoints ORDER BY seq DESC LIMIT 1",
                )?)
                .unwrap_or((0, chain::GENESIS.to_owned())),
        )
    };
    let signed = |c: &Connection| -> rusqlite::Result<u64> {
        c.query_row("SELECT COALESCE(MAX(seq), 0) FROM checkpoints", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|s| s as u64)
    };
    let mut last_checkpoint = Instant::now();
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(j) => j,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Idle: sign a quiet tail, and find out whether a failed store came back.
                let idle = (|| -> rusqlite::Result<()> {
                    let t = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let (seq, hash) = tail(&t)?;
                    if seq > signed(&t)? && last_checkpoint.elapsed() >= CHECKPOINT_AFTER {
                        t.execute(
                            "INSERT INTO checkpoints (seq, hash, key_id, signature, time_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![seq as i64, hash, signer.key_id(), signer.sign(seq, &hash), now_ms() as i64],
                        )?;
                        last_checkpoint = Instant::now();
                    }
                    t.commit()
                })();
                match idle {
                    Ok(()) => healthy.store(true, Ordering::Relaxed),
                    Err(e) => {
                        if healthy.swap(false, Ordering::Relaxed) {
                            tracing::error!(error = %e, "session store unavailable");
                        }
                    }
                }
                continue;
            }
        };
        let mut jobs = vec![first];
        while jobs.len() < GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let result = (|| -> rusqlite::Result<Vec<Result<u64, StoreError>>> {
            // Immediate: take the write lock up front (waiting out the busy timeout) rather
            // than fail when a read transaction cannot be upgraded.
            let t = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (mut seq, mut prev) = tail(&t)?;
            let mut seqs = Vec::with_capacity(jobs.len());
            {
                let mut ins = t.prepare_cached(
                    "INSERT INTO records (seq, time_ms, session, request_id, source, kind, principal, policy, verdict, rules, record, prev_hash, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )?;
                let mut existing = t.prepare_cached(
                    "SELECT seq FROM records WHERE request_id = ?1 AND source = ?2 AND kind = ?3",
                )?;
                for (r, change, _) in &jobs {
                    // An approval change goes in with its record, or neither does.
                    if let Some(ch) = change {
                        if !write_approval(&t, ch)? {
                            seqs.push(Err(StoreError::Conflict));
                            continue;
                        }
                    }
                    // A record already stored (a replayed filter event) is not stored twice.
                    let c = Columns::of(r);
                    let dup: Option<i64> = existing
                        .query_row(params![c.request_id, c.source, c.kind], |row| row.get(0))
                        .optional()?;
                    if let Some(d) = dup {
                        seqs.push(Ok(d as u64));
                        continue;
                    }
                    seq += 1;
                    let bytes = r.canonical();
                    let hash = chain::link(&prev, seq, &bytes);
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    ins.execute(params![
                        seq as i64,
                        r.time_ms as i64,
                        c.session,
                        c.request_id,
                        c.source,
                        c.kind,
                        c.principal,
                        c.policy,
                        c.verdict,
                        c.rules,
                        text,
                        prev,
                        hash,
                    ])?;
                    prev = hash;
                    seqs.push(Ok(seq));
                }
            }
            let last_signed = signed(&t)?;
            // The first records are signed at once: a log always has a checkpoint, so one
            // with none had its checkpoints deleted.
            if last_signed == 0
                || seq >= last_signed + CHECKPOINT_EVERY
                || (seq > last_signed && last_checkpoint.elapsed() >= CHECKPOINT_AFTER)
            {
                t.execute(
                    "INSERT INTO checkpoints (seq, hash, key_id, signature, time_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![seq as i64, prev, signer.key_id(), signer.sign(seq, &prev), now_ms() as i64],
                )?;
                last_checkpoint = Instant::now();
            }
            t.commit()?;
            Ok(seqs)
        })();
        match result {
            Ok(seqs) => {
                healthy.store(true, Ordering::Relaxed);
                for ((_, _, ack), seq) in jobs.into_iter().zip(seqs) {
                    let _ = ack.send(seq);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "session store write failed");
                healthy.store(false, Ordering::Relaxed);
                for (_, _, ack) in jobs {
                    let _ = ack.send(Err(err(&e)));
                }
            }
        }
    }
}

/// Insert an approval (`expected` none) or replace it if still at `expected`; false when
/// another change came first.
fn write_approval(t: &rusqlite::Transaction<'_>, ch: &ApprovalWrite) -> rusqlite::Result<bool> {
    let a = &ch.approval;
    let body = serde_json::to_string(a).unwrap_or_default();
    let n = match ch.expected {
        None => t.execute(
            "INSERT OR IGNORE INTO approvals (id, state, version, created_ms, expires_ms, heartbeat_ms, digest, mode, requester, body) VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?7, ?8, ?9, ?6)",
            params![a.id, a.state.as_str(), a.version as i64, a.created_ms as i64, a.expires_ms as i64, body, a.digest, super::mode_name(a.mode), a.requester.key()],
        )?,
        Some(v) => t.execute(
            "UPDATE approvals SET state = ?2, version = ?3, body = ?4 WHERE id = ?1 AND version = ?5",
            params![a.id, a.state.as_str(), a.version as i64, body, v as i64],
        )?,
    };
    Ok(n == 1)
}

/// Remove records older than `before_ms`, up to the last checkpoint among them: the
/// checkpoint is kept, so what remains still verifies (its first record follows a signed
/// hash).
fn prune(path: &Path, before_ms: u64) -> Result<Pruned, StoreError> {
    let path = db_file(path);
    if !path.is_file() {
        return Err(StoreError::Open {
            path,
            message: "no session store there".into(),
        });
    }
    let mut c = Connection::open(&path).map_err(err)?;
    c.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    let t = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let before = i64::try_from(before_ms).unwrap_or(i64::MAX);
    // Up to the last checkpoint before the first record made at or after the cutoff: a
    // record with a later time (a long answer, another clock) never goes because an older
    // one follows it.
    let anchor: i64 = t
        .query_row(
            "SELECT COALESCE(MAX(c.seq), 0) FROM checkpoints c JOIN records r ON r.seq = c.seq
             WHERE c.seq < COALESCE((SELECT MIN(seq) FROM records WHERE time_ms >= ?1), 9223372036854775807)",
            [before],
            |r| r.get(0),
        )
        .map_err(err)?;
    if anchor == 0 {
        return Ok(Pruned {
            removed: 0,
            anchor: 0,
        });
    }
    let removed = t
        .execute("DELETE FROM records WHERE seq <= ?1", [anchor])
        .map_err(err)?;
    t.execute("DELETE FROM checkpoints WHERE seq < ?1", [anchor])
        .map_err(err)?;
    // Settled approvals older than the cutoff go with their records (pending ones stay).
    t.execute(
        "DELETE FROM approvals WHERE state != 'pending' AND created_ms < ?1",
        [before],
    )
    .map_err(err)?;
    t.commit().map_err(err)?;
    Ok(Pruned {
        removed: removed as u64,
        anchor: anchor as u64,
    })
}

/// A connection that writes approvals (records have the writer thread; approvals are few
/// and written one at a time).
fn writer_conn(path: &Path) -> Result<Connection, StoreError> {
    let c = Connection::open(path).map_err(err)?;
    c.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    c.execute_batch("PRAGMA synchronous=FULL;").map_err(err)?;
    Ok(c)
}

/// Approvals from a query of stored JSON bodies.
fn approvals_of(
    rows: impl Iterator<Item = rusqlite::Result<String>>,
) -> Result<Vec<Approval>, StoreError> {
    rows.map(|b| serde_json::from_str(&b.map_err(err)?).map_err(err))
        .collect()
}

/// Run a blocking read off the async workers.
fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> StoreFuture<T> {
    Box::pin(async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| StoreError::Unavailable(format!("store read failed: {e}")))?
    })
}

impl Store for SqliteStore {
    fn approval_change(
        &self,
        record: Record,
        change: ApprovalWrite,
    ) -> oneshot::Receiver<Result<u64, StoreError>> {
        self.enqueue(record, Some(change))
    }

    fn approval_get(&self, id: String) -> StoreFuture<Option<Approval>> {
        let me = self.read_handle();
        blocking(move || {
            let c = me.reader()?;
            let body: Option<String> = c
                .query_row("SELECT body FROM approvals WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(err)?;
            body.map(|b| serde_json::from_str(&b).map_err(err))
                .transpose()
        })
    }

    fn approval_list(
        &self,
        state: Option<ApprovalState>,
        limit: usize,
    ) -> StoreFuture<Vec<Approval>> {
        let me = self.read_handle();
        blocking(move || {
            let c = me.reader()?;
            let mut stmt = c
                .prepare(
                    "SELECT body FROM approvals WHERE (?1 IS NULL OR state = ?1) ORDER BY created_ms DESC LIMIT ?2",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map(
                    params![
                        state.map(|s| s.as_str()),
                        limit.min(Query::MAX_LIMIT) as i64
                    ],
                    |r| r.get::<_, String>(0),
                )
                .map_err(err)?;
            approvals_of(rows)
        })
    }

    fn approval_by_digest(&self, digest: String, requester: String) -> StoreFuture<Vec<Approval>> {
        let me = self.read_handle();
        blocking(move || {
            let c = me.reader()?;
            let mut stmt = c
                .prepare("SELECT body FROM approvals WHERE requester = ?1 AND digest = ?2 ORDER BY created_ms DESC LIMIT 20")
                .map_err(err)?;
            let rows = stmt
                .query_map([requester, digest], |r| r.get::<_, String>(0))
                .map_err(err)?;
            approvals_of(rows)
        })
    }

    fn approval_open_deferred(&self, requester: String) -> StoreFuture<u64> {
        let me = self.read_handle();
        blocking(move || {
            let c = me.reader()?;
            c.query_row(
                "SELECT COUNT(*) FROM approvals WHERE requester = ?1 AND state = 'pending' AND mode = 'deferred'",
                [requester],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(err)
        })
    }

    fn approval_touch(&self, id: String, now_ms: u64) -> StoreFuture<()> {
        let path = self.path.clone();
        blocking(move || {
            writer_conn(&path)?
                .execute(
                    "UPDATE approvals SET heartbeat_ms = ?2 WHERE id = ?1",
                    params![id, now_ms as i64],
                )
                .map_err(err)?;
            Ok(())
        })
    }

    fn approval_to_settle(&self, heartbeat_before: u64, now_ms: u64) -> StoreFuture<Vec<Approval>> {
        let me = self.read_handle();
        blocking(move || {
            let c = me.reader()?;
            let mut stmt = c
                .prepare(
                    "SELECT body FROM approvals WHERE state = 'pending'
                     AND ((mode = 'hold' AND heartbeat_ms < ?1) OR expires_ms <= ?2)
                     ORDER BY created_ms LIMIT ?3",
                )
                .map_err(err)?;
            let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(
                    params![
                        int(heartbeat_before),
                        int(now_ms),
                        super::SETTLE_BATCH as i64
                    ],
                    |r| r.get::<_, String>(0),
                )
                .map_err(err)?;
            approvals_of(rows)
        })
    }

    fn query(&self, q: Query) -> StoreFuture<Vec<Stored>> {
        let me = self.read_handle();
        blocking(move || me.query_blocking(&q))
    }

    fn dump(&self) -> StoreFuture<ChainDump> {
        let me = self.read_handle();
        blocking(move || me.dump_blocking())
    }

    fn prune(&self, before_ms: u64) -> StoreFuture<Pruned> {
        let path = self.path.clone();
        blocking(move || prune(&path, before_ms))
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn append(&self, record: Record) -> oneshot::Receiver<Result<u64, StoreError>> {
        self.enqueue(record, None)
    }
}

impl SqliteStore {
    fn enqueue(
        &self,
        record: Record,
        change: Option<ApprovalWrite>,
    ) -> oneshot::Receiver<Result<u64, StoreError>> {
        let (tx, rx) = oneshot::channel();
        // Never block the caller (an async worker): a full queue is a store that cannot keep up.
        match self.tx.try_send((record, change, tx)) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full((_, _, ack))) => {
                let _ = ack.send(Err(StoreError::Unavailable(
                    "the store's write queue is full".into(),
                )));
            }
            Err(mpsc::TrySendError::Disconnected((_, _, ack))) => {
                let _ = ack.send(Err(StoreError::Unavailable(
                    "the store writer stopped".into(),
                )));
            }
        }
        rx
    }
}

/// What reads need of a store: its file.
struct ReadHandle {
    path: PathBuf,
}

impl SqliteStore {
    fn read_handle(&self) -> ReadHandle {
        ReadHandle {
            path: self.path.clone(),
        }
    }

    /// Reads, blocking (tests).
    #[cfg(test)]
    pub fn query_blocking(&self, q: &Query) -> Result<Vec<Stored>, StoreError> {
        self.read_handle().query_blocking(q)
    }

    #[cfg(test)]
    pub fn dump_blocking(&self) -> Result<ChainDump, StoreError> {
        self.read_handle().dump_blocking()
    }
}

impl ReadHandle {
    fn reader(&self) -> Result<Connection, StoreError> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        c.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        Ok(c)
    }

    fn query_blocking(&self, q: &Query) -> Result<Vec<Stored>, StoreError> {
        let c = self.reader()?;
        let mut sql = String::from("SELECT seq, hash, record FROM records WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        use rusqlite::types::Value as V;
        let mut filters: Vec<(&str, V)> = Vec::new();
        if let Some(p) = &q.principal {
            filters.push(("principal = ?", V::Text(p.clone())));
        }
        if let Some(p) = &q.policy {
            filters.push(("policy = ?", V::Text(p.clone())));
        }
        if let Some(d) = &q.decision {
            filters.push(("verdict = ?", V::Text(d.clone())));
        }
        if let Some(r) = &q.rule {
            filters.push(("instr(rules, ',' || ? || ',') > 0", V::Text(r.clone())));
        }
        if let Some(s) = &q.session {
            filters.push(("session = ?", V::Text(s.clone())));
        }
        if let Some(s) = &q.request_id {
            filters.push(("request_id = ?", V::Text(s.clone())));
        }
        // Values past SQLite's integer range saturate (they would wrap to negatives).
        let int = |n: u64| V::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        if let Some(t) = q.since_ms {
            filters.push(("time_ms >= ?", int(t)));
        }
        if let Some(t) = q.until_ms {
            filters.push(("time_ms <= ?", int(t)));
        }
        if let Some(a) = q.after {
            filters.push(("seq > ?", int(a)));
        }
        if let Some(b) = q.before {
            filters.push(("seq < ?", int(b)));
        }
        for (clause, v) in filters {
            args.push(v);
            sql.push_str(" AND ");
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        }
        sql.push_str(if q.oldest_first {
            " ORDER BY seq ASC"
        } else {
            " ORDER BY seq DESC"
        });
        sql.push_str(&format!(" LIMIT {}", q.limit()));
        let mut stmt = c.prepare(&sql).map_err(err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, bytes(r, 2)?))
            })
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, hash, bytes) = row.map_err(err)?;
            let record = Record::parse(&bytes).map_err(err)?;
            out.push(Stored {
                seq: seq as u64,
                hash,
                record,
            });
        }
        Ok(out)
    }

    fn dump_blocking(&self) -> Result<ChainDump, StoreError> {
        let mut c = self.reader()?;
        // Records and checkpoints from one snapshot: a checkpoint committed between two
        // reads would look like deleted records.
        let c = c.transaction().map_err(err)?;
        let mut stmt = c
            .prepare(
                "SELECT seq, prev_hash, hash, record, session, request_id, source, kind, principal, policy, verdict, rules
                 FROM records ORDER BY seq",
            )
            .map_err(err)?;
        let mut problems = Vec::new();
        let rows = stmt
            .query_map([], |r| {
                let row = chain::Row {
                    seq: r.get::<_, i64>(0)? as u64,
                    prev_hash: r.get(1)?,
                    hash: r.get(2)?,
                    record: bytes(r, 3)?,
                };
                let cols = Columns {
                    session: r.get(4)?,
                    request_id: r.get(5)?,
                    source: r.get(6)?,
                    kind: r.get(7)?,
                    principal: r.get(8)?,
                    policy: r.get(9)?,
                    verdict: r.get(10)?,
                    rules: r.get(11)?,
                };
                Ok((row, cols))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?
            .into_iter()
            .map(|(row, cols)| {
                cols.check(row.seq, &row.record, &mut problems);
                row
            })
            .collect();
        let mut stmt = c
            .prepare("SELECT seq, hash, key_id, signature FROM checkpoints ORDER BY seq")
            .map_err(err)?;
        let checkpoints = stmt
            .query_map([], |r| {
                Ok(chain::Checkpoint {
                    seq: r.get::<_, i64>(0)? as u64,
                    hash: r.get(1)?,
                    key_id: r.get(2)?,
                    signature: r.get(3)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(ChainDump {
            rows,
            checkpoints,
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_engine::record::{
        DecisionPart, Identity, Kind, RequestPart, Source, RECORD_VERSION,
    };

    fn record(i: u64, principal: &str, verdict: &str) -> Record {
        Record {
            v: RECORD_VERSION,
            kind: Kind::Exchange,
            source: Source::Server,
            time_ms: 1000 + i,
            session: format!("s{}", i % 3),
            request_id: format!("r{i}"),
            client_request_id: None,
            identity: Some(Identity {
                issuer: "i".into(),
                principal: principal.into(),
                groups: vec![],
            }),
            policy: Some("p".into()),
            bundle: "sha256:x".into(),
            api: None,
            model: None,
            request: RequestPart {
                method: "POST".into(),
                path: "/v1/chat/completions".into(),
                body: None,
            },
            decision: DecisionPart {
                rules: if verdict == "block" {
                    vec!["no-credentials".into()]
                } else {
                    vec![]
                },
                ..DecisionPart::refusal(verdict, 200, "policy", "m")
            },
            response: None,
            duration_ms: None,
            approval: None,
        }
    }

    fn temp_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("gatehouse-sqlite-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn appends_are_chained_queried_and_verified_and_tampering_is_caught() {
        let dir = temp_dir();
        let key = dir.join("checkpoint.key");
        let signer = chain::Signer::load_or_create(&key).unwrap();
        let pk = chain::public_key(&signer.public_key_hex()).unwrap();
        let store = SqliteStore::open(&dir, signer).unwrap();
        let acks: Vec<_> = (1..=250)
            .map(|i| {
                store.append(record(
                    i,
                    if i % 2 == 0 { "alice" } else { "bob" },
                    if i % 5 == 0 { "block" } else { "allow" },
                ))
            })
            .collect();
        let seqs: Vec<u64> = acks
            .into_iter()
            .map(|rx| futures::executor::block_on(rx).unwrap().unwrap())
            .collect();
        assert_eq!(seqs, (1..=250).collect::<Vec<_>>());
        // Files are private.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("sessions.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Filters and paging.
        let q = |q: Query| store.query_blocking(&q).unwrap();
        let alice = q(Query {
            principal: Some("alice".into()),
            limit: Some(1000),
            ..Default::default()
        });
        assert_eq!(alice.len(), 125);
        assert!(
            alice.windows(2).all(|w| w[0].seq > w[1].seq),
            "newest first"
        );
        let blocked = q(Query {
            rule: Some("no-credentials".into()),
            limit: Some(1000),
            ..Default::default()
        });
        assert_eq!(blocked.len(), 50);
        let page = q(Query {
            after: Some(240),
            oldest_first: true,
            ..Default::default()
        });
        assert_eq!(
            page.iter().map(|s| s.seq).collect::<Vec<_>>(),
            (241..=250).collect::<Vec<_>>()
        );
        let window = q(Query {
            since_ms: Some(1010),
            until_ms: Some(1019),
            limit: Some(100),
            ..Default::default()
        });
        assert_eq!(window.len(), 10);
        // The chain and its checkpoints verify.
        let d = store.dump_blocking().unwrap();
        assert!(!d.checkpoints.is_empty());
        assert_eq!(
            chain::verify(d.rows, &d.checkpoints, &pk).unwrap().records,
            250
        );
        // Someone edits a record in the database.
        let c = Connection::open(dir.join("sessions.db")).unwrap();
        c.execute(
            "UPDATE records SET record = replace(record, 'alice', 'mallory') WHERE seq = 42",
            [],
        )
        .unwrap();
        let d = store.dump_blocking().unwrap();
        assert_eq!(
            chain::verify(d.rows, &d.checkpoints, &pk).unwrap_err(),
            "record 42 was modified"
        );
        // ... or deletes one.
        c.execute("UPDATE records SET record = (SELECT record FROM records WHERE seq = 41) WHERE seq = 42", []).unwrap();
        c.execute("DELETE FROM records WHERE seq = 100", [])
            .unwrap();
        let d = store.dump_blocking().unwrap();
        assert!(chain::verify(d.rows, &d.checkpoints, &pk).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pruning_keeps_the_rest_verifiable_and_the_chain_going() {
        let dir = temp_dir();
        let signer = chain::Signer::load_or_create(&dir.join("k")).unwrap();
        let pk = chain::public_key(&signer.public_key_hex()).unwrap();
        let store = SqliteStore::open(&dir, signer).unwrap();
        let append = |range: std::ops::RangeInclusive<u64>| {
            let acks: Vec<_> = range
                .map(|i| store.append(record(i, "a", "allow")))
                .collect();
            for rx in acks {
                futures::executor::block_on(rx).unwrap().unwrap();
            }
        };
        // Two rounds of appends: the first group is signed at once, so records before
        // time 1200 include a checkpoint (where groups end depends on timing).
        append(1..=100);
        append(101..=250);
        let Pruned { removed, anchor } = prune(&dir, 1200).unwrap();
        assert!(
            anchor > 0 && anchor < 200 && removed == anchor,
            "{removed} {anchor}"
        );
        let d = store.dump_blocking().unwrap();
        assert_eq!(d.rows.first().unwrap().seq, anchor + 1);
        assert!(chain::verify(d.rows, &d.checkpoints, &pk).is_ok());
        // Appends go on from where the chain is.
        append(251..=260);
        let d = store.dump_blocking().unwrap();
        assert_eq!(d.rows.last().unwrap().seq, 260);
        assert!(chain::verify(d.rows, &d.checkpoints, &pk).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_store_that_cannot_write_reports_it_and_refuses_appends() {
        let dir = temp_dir();
        let signer = chain::Signer::load_or_create(&dir.join("k")).unwrap();
        let store = SqliteStore::open(&dir, signer).unwrap();
        // The table goes away under the writer (a broken or replaced database).
        let c = Connection::open(dir.join("sessions.db")).unwrap();
        c.execute("DROP TABLE records", []).unwrap();
        let r = futures::executor::block_on(store.append(record(1, "a", "allow"))).unwrap();
        assert!(r.is_err());
        assert!(!store.healthy());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
