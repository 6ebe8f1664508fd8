//! The shared session store: PostgreSQL, for several server replicas appending to one chain.
//!
//! Every replica runs one writer task that commits appends in groups. A group's transaction
//! first takes a transaction-scoped advisory lock, then reads the chain's tail, so replicas
//! take turns: the chain never forks, whichever replica a record arrives at. A record is
//! acknowledged once its transaction has committed (PostgreSQL's default
//! `synchronous_commit=on`: the commit is on disk). Reads go through a connection of their
//! own, from any replica.
//!
//! Replicas sign checkpoints with one shared key (give each the same key file): a verifier
//! checks the whole chain against one public key.
//!
//! The tables live in a schema of their own, `gatehouse`, so the store can share a database.

use super::{
    chain, ApprovalWrite, ChainDump, Columns, Pruned, Query, Store, StoreError, StoreFuture, Stored,
};
use crate::approvals::{Approval, State as ApprovalState};
use policy_engine::record::Record;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls};

/// Most records one commit carries.
const GROUP: usize = 256;
/// A checkpoint is signed after this many records, or this long after the last one.
const CHECKPOINT_EVERY: i64 = 100;
const CHECKPOINT_AFTER: Duration = Duration::from_secs(5);
/// Times the writer yields to appenders while it gathers a group.
const LINGER_YIELDS: usize = 3;
/// A write transaction that takes longer than this is abandoned (its connection dropped),
/// and the store reports itself unavailable until a probe succeeds.
const WRITE_TIMEOUT: Duration = Duration::from_secs(8);
/// The advisory lock every chain-changing transaction holds: appends and prunes.
const CHAIN_LOCK: i64 = 0x6761_7465_6863_6831; // "gatehch1"
/// The advisory lock that serialises schema creation between replicas starting together.
const SCHEMA_LOCK: i64 = 0x6761_7465_6873_6331; // "gatehsc1"
/// The layout version kept in `gatehouse.meta`.
const SCHEMA_VERSION: &str = "1";

const SCHEMA: &str = "
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS gatehouse;
CREATE TABLE IF NOT EXISTS gatehouse.meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gatehouse.records (
    seq        BIGINT PRIMARY KEY,
    time_ms    BIGINT NOT NULL,
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
CREATE INDEX IF NOT EXISTS records_time ON gatehouse.records(time_ms);
CREATE INDEX IF NOT EXISTS records_principal ON gatehouse.records(principal, seq);
CREATE INDEX IF NOT EXISTS records_session ON gatehouse.records(session, seq);
CREATE UNIQUE INDEX IF NOT EXISTS records_request ON gatehouse.records(request_id, source, kind);
CREATE TABLE IF NOT EXISTS gatehouse.approvals (
    id         TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    digest     TEXT NOT NULL,
    mode       TEXT NOT NULL,
    requester  TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_state ON gatehouse.approvals(state, created_ms);
CREATE INDEX IF NOT EXISTS approvals_requester ON gatehouse.approvals(requester, digest, created_ms);
CREATE TABLE IF NOT EXISTS gatehouse.checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL,
    time_ms   BIGINT NOT NULL
);
";

/// A record to append, the approval change it records (if any), and who waits for it.
type Job = (
    Record,
    Option<ApprovalWrite>,
    oneshot::Sender<Result<u64, StoreError>>,
);
/// One write of a group.
type Item<'a> = (&'a Record, Option<&'a ApprovalWrite>);

pub struct PgStore {
    config: Config,
    /// Where appends go; `None` for a read-only handle (the CLI).
    tx: Option<mpsc::Sender<Job>>,
    healthy: Arc<AtomicBool>,
    reader: Arc<tokio::sync::Mutex<Option<Arc<Client>>>>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Why a write failed: the database refused some record's data (a value it cannot hold),
/// or the store itself failed (connection, timeout, lock).
enum WriteError {
    Data(StoreError),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        // SQLSTATE classes 22 (data exception), 23 (integrity), 54 (program limit, e.g. an
        // index row too large): the data, not the store.
        let data = e
            .code()
            .is_some_and(|c| matches!(&c.code()[..2], "22" | "23" | "54"));
        if data {
            WriteError::Data(err(e))
        } else {
            WriteError::Store(err(e))
        }
    }
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

impl WriteError {
    fn into_inner(self) -> StoreError {
        match self {
            WriteError::Data(e) | WriteError::Store(e) => e,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Connect, with the connection driven by a task of its own.
async fn connect(config: &Config) -> Result<Client, StoreError> {
    let (client, conn) = config.connect(NoTls).await.map_err(err)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "session store connection ended");
        }
    });
    Ok(client)
}

/// The chain's tail: the last record, or the last checkpoint of a log pruned to nothing.
async fn tail(t: &tokio_postgres::Transaction<'_>) -> Result<(i64, String), tokio_postgres::Error> {
    for sql in [
        "SELECT seq, hash FROM gatehouse.records ORDER BY seq DESC LIMIT 1",
        "SELECT seq, hash FROM gatehouse.checkpoints ORDER BY seq DESC LIMIT 1",
    ] {
        if let Some(r) = t.query_opt(sql, &[]).await? {
            return Ok((r.try_get(0)?, r.try_get(1)?));
        }
    }
    Ok((0, chain::GENESIS.to_owned()))
}

async fn last_signed(t: &tokio_postgres::Transaction<'_>) -> Result<i64, tokio_postgres::Error> {
    t.query_one(
        "SELECT COALESCE(MAX(seq), 0)::BIGINT FROM gatehouse.checkpoints",
        &[],
    )
    .await?
    .try_get(0)
}

/// Begin a READ COMMITTED transaction (whatever the database's default), so each statement
/// after the chain lock sees what was committed before the lock was granted.
async fn begin(c: &mut Client) -> Result<tokio_postgres::Transaction<'_>, tokio_postgres::Error> {
    c.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
}

impl PgStore {
    /// Connect to the database a `postgres://` URL names and create the schema when missing.
    /// With a signer, this replica appends (a writer task starts); without, the handle only
    /// reads and prunes.
    pub async fn open(url: &str, signer: Option<chain::Signer>) -> Result<Self, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: super::redact_url(url).into(),
            message,
        };
        let mut config: Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| open_err(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        // Server-side bounds, so a replica that hangs or is cut off mid-transaction cannot
        // hold the chain lock (or a backend) for long; commits are durable whatever the
        // database's default; functions resolve in pg_catalog first (no shadowing by objects
        // other roles create in `public`).
        let options = format!(
            "{} -c lock_timeout=5000 -c statement_timeout=30000 -c idle_in_transaction_session_timeout=10000 -c synchronous_commit=on -c search_path=pg_catalog",
            config.get_options().unwrap_or_default()
        );
        config
            .options(options.trim())
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(15))
            .application_name("gatehouse");
        let client = connect(&config)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        migrate(&client, signer.is_some()).await.map_err(open_err)?;
        let healthy = Arc::new(AtomicBool::new(signer.is_some()));
        let tx = signer.map(|signer| {
            let (tx, rx) = mpsc::channel::<Job>(4096);
            let w = Writer {
                config: config.clone(),
                signer,
                healthy: healthy.clone(),
                client: Some(client),
                last_checkpoint: Instant::now(),
            };
            let h = healthy.clone();
            tokio::spawn(async move {
                use futures::FutureExt;
                // Appends fail once the writer is gone; health must say so.
                if std::panic::AssertUnwindSafe(w.run(rx))
                    .catch_unwind()
                    .await
                    .is_err()
                {
                    tracing::error!("session store writer panicked");
                }
                h.store(false, Ordering::Relaxed);
            });
            tx
        });
        Ok(PgStore {
            config,
            tx,
            healthy,
            reader: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// The read connection, reconnected when it was lost.
    fn reader(&self) -> impl std::future::Future<Output = Result<Arc<Client>, StoreError>> {
        let (slot, config) = (self.reader.clone(), self.config.clone());
        async move {
            let mut g = slot.lock().await;
            match g.as_ref() {
                Some(c) if !c.is_closed() => Ok(c.clone()),
                _ => {
                    let c = Arc::new(connect(&config).await?);
                    *g = Some(c.clone());
                    Ok(c)
                }
            }
        }
    }
}

/// Create the schema (once, under a lock, whichever replica starts first) and check that an
/// existing one has the layout this server writes.
async fn migrate(client: &Client, create: bool) -> Result<(), String> {
    let e = |e: tokio_postgres::Error| e.to_string();
    let exists: bool = client
        .query_one("SELECT to_regclass('gatehouse.meta') IS NOT NULL", &[])
        .await
        .map_err(e)?
        .try_get(0)
        .map_err(e)?;
    if !exists && !create {
        return Err("no session store in this database (no `gatehouse` schema)".into());
    }
    if create {
        client
            .execute("SELECT pg_advisory_lock($1::BIGINT)", &[&SCHEMA_LOCK])
            .await
            .map_err(e)?;
        let made = client.batch_execute(SCHEMA).await.map_err(e);
        let unlock = client
            .execute("SELECT pg_advisory_unlock($1::BIGINT)", &[&SCHEMA_LOCK])
            .await
            .map_err(e);
        made?;
        unlock?;
        client
            .execute(
                "INSERT INTO gatehouse.meta (name, value) VALUES ('schema_version', $1) ON CONFLICT (name) DO NOTHING",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(e)?;
    }
    let version: Option<String> = client
        .query_opt(
            "SELECT value FROM gatehouse.meta WHERE name = 'schema_version'",
            &[],
        )
        .await
        .map_err(e)?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(e)?;
    match version.as_deref() {
        Some(SCHEMA_VERSION) => Ok(()),
        other => Err(format!(
            "the store has schema version {}, this server writes {SCHEMA_VERSION}; export it with the matching gatehouse version",
            other.unwrap_or("(none)")
        )),
    }
}

/// This replica's appender.
struct Writer {
    config: Config,
    signer: chain::Signer,
    healthy: Arc<AtomicBool>,
    client: Option<Client>,
    last_checkpoint: Instant,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        loop {
            let first = match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                Ok(Some(j)) => j,
                Ok(None) => break,
                Err(_) => {
                    // Idle: sign a quiet tail, and find out whether a failed store came back.
                    let _ = self.bounded(false, &[]).await;
                    continue;
                }
            };
            let mut jobs = vec![first];
            // Gather a group. Appenders just acknowledged are often about to queue their
            // next record: yielding to them a few times makes groups larger (fewer commits)
            // at the cost of microseconds.
            for _ in 0..LINGER_YIELDS {
                while jobs.len() < GROUP {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                if jobs.len() >= GROUP {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let records: Vec<Item<'_>> = jobs.iter().map(|(r, c, _)| (r, c.as_ref())).collect();
            let results: Vec<Result<u64, StoreError>> = match self.bounded(true, &records).await {
                Ok(seqs) => seqs,
                // A record the database cannot hold fails alone: the rest of its group is
                // written one by one.
                Err(WriteError::Data(_)) if records.len() > 1 => {
                    let mut out = Vec::with_capacity(records.len());
                    for r in &records {
                        out.push(match self.bounded(true, &[*r]).await {
                            Ok(mut s) => s.pop().unwrap_or(Err(StoreError::Conflict)),
                            Err(e) => Err(e.into_inner()),
                        });
                    }
                    out
                }
                Err(e) => {
                    let e = e.into_inner();
                    records.iter().map(|_| Err(e.clone())).collect()
                }
            };
            drop(records);
            for ((_, _, ack), r) in jobs.into_iter().zip(results) {
                let _ = ack.send(r);
            }
        }
    }

    /// One transaction with a deadline. A connection that failed or hung is dropped, so the
    /// next attempt reconnects; the store is reported unavailable until a write succeeds. A
    /// record the database refuses as data says nothing about the store's health.
    async fn bounded(
        &mut self,
        append: bool,
        records: &[Item<'_>],
    ) -> Result<Vec<Result<u64, StoreError>>, WriteError> {
        let r = tokio::time::timeout(WRITE_TIMEOUT, self.transact(append, records))
            .await
            .unwrap_or_else(|_| {
                Err(WriteError::Store(err(
                    "the session store did not answer in time",
                )))
            });
        match &r {
            Ok(_) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("session store available again");
                }
            }
            Err(WriteError::Data(e)) => {
                tracing::warn!(error = %e, "the session store refused a record's data");
            }
            Err(WriteError::Store(e)) => {
                self.client = None;
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %e, "session store unavailable");
                }
            }
        }
        r
    }

    async fn transact(
        &mut self,
        append: bool,
        records: &[Item<'_>],
    ) -> Result<Vec<Result<u64, StoreError>>, WriteError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&self.config).await?);
        }
        let Some(client) = self.client.as_mut() else {
            return Err(WriteError::Store(err("no connection")));
        };
        let t = begin(client).await?;
        t.execute("SELECT pg_advisory_xact_lock($1::BIGINT)", &[&CHAIN_LOCK])
            .await?;
        let (mut seq, mut prev) = tail(&t).await?;
        let mut seqs = Vec::with_capacity(records.len());
        if append {
            let cols: Vec<Columns> = records.iter().map(|(r, _)| Columns::of(r)).collect();
            // A record already stored (a replayed filter event) is not stored twice.
            let ids: Vec<&str> = cols.iter().map(|c| c.request_id.as_str()).collect();
            let mut known: HashMap<(String, String, String), u64> = HashMap::new();
            for row in t
                .query(
                    "SELECT request_id, source, kind, seq FROM gatehouse.records WHERE request_id = ANY($1::TEXT[])",
                    &[&ids],
                )
                .await?
            {
                known.insert(
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?),
                    row.try_get::<_, i64>(3)? as u64,
                );
            }
            let mut rows = Rows::default();
            for ((r, change), c) in records.iter().zip(cols) {
                // An approval change goes in with its record, or neither does.
                if let Some(ch) = change {
                    if !write_approval(&t, ch).await? {
                        seqs.push(Err(StoreError::Conflict));
                        continue;
                    }
                }
                let key = (c.request_id.clone(), c.source.clone(), c.kind.clone());
                if let Some(&s) = known.get(&key) {
                    seqs.push(Ok(s));
                    continue;
                }
                seq += 1;
                let bytes = r.canonical();
                let hash = chain::link(&prev, seq as u64, &bytes);
                let text = String::from_utf8(bytes).map_err(|e| WriteError::Data(err(e)))?;
                rows.push(
                    seq,
                    r.time_ms,
                    c,
                    text,
                    std::mem::replace(&mut prev, hash.clone()),
                    hash,
                );
                known.insert(key, seq as u64);
                seqs.push(Ok(seq as u64));
            }
            if !rows.seq.is_empty() {
                rows.insert(&t).await?;
            }
        }
        let signed = last_signed(&t).await?;
        // The first records are signed at once: a log always has a checkpoint, so one with
        // none had its checkpoints deleted.
        let due = seq > signed
            && (signed == 0
                || seq >= signed + CHECKPOINT_EVERY
                || self.last_checkpoint.elapsed() >= CHECKPOINT_AFTER);
        if due {
            t.execute(
                "INSERT INTO gatehouse.checkpoints (seq, hash, key_id, signature, time_ms) VALUES ($1, $2, $3, $4, $5)",
                &[&seq, &prev, &self.signer.key_id(), &self.signer.sign(seq as u64, &prev), &now_ms()],
            )
            .await?;
        }
        t.commit().await?;
        if due {
            self.last_checkpoint = Instant::now();
        }
        Ok(seqs)
    }
}

/// Insert an approval (`expected` none) or replace it if still at `expected`; false when
/// another change came first.
async fn write_approval(
    t: &tokio_postgres::Transaction<'_>,
    ch: &ApprovalWrite,
) -> Result<bool, tokio_postgres::Error> {
    let a = &ch.approval;
    let body = serde_json::to_string(a).unwrap_or_default();
    let (version, created, expires) = (a.version as i64, a.created_ms as i64, a.expires_ms as i64);
    let n = match ch.expected {
        None => {
            t.execute(
                "INSERT INTO gatehouse.approvals (id, state, version, created_ms, expires_ms, heartbeat_ms, digest, mode, requester, body)
                 VALUES ($1, $2, $3, $4, $5, $4, $7, $8, $9, $6) ON CONFLICT (id) DO NOTHING",
                &[&a.id, &a.state.as_str(), &version, &created, &expires, &body, &a.digest, &super::mode_name(a.mode), &a.requester.key()],
            )
            .await?
        }
        Some(v) => {
            t.execute(
                "UPDATE gatehouse.approvals SET state = $2, version = $3, body = $4 WHERE id = $1 AND version = $5",
                &[&a.id, &a.state.as_str(), &version, &body, &(v as i64)],
            )
            .await?
        }
    };
    Ok(n == 1)
}

/// A group's new rows, column by column: one `INSERT ... SELECT FROM UNNEST` writes them all
/// in one round trip.
#[derive(Default)]
struct Rows {
    seq: Vec<i64>,
    time_ms: Vec<i64>,
    session: Vec<String>,
    request_id: Vec<String>,
    source: Vec<String>,
    kind: Vec<String>,
    principal: Vec<Option<String>>,
    policy: Vec<Option<String>>,
    verdict: Vec<String>,
    rules: Vec<String>,
    record: Vec<String>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
}

impl Rows {
    fn push(
        &mut self,
        seq: i64,
        time_ms: u64,
        c: Columns,
        record: String,
        prev: String,
        hash: String,
    ) {
        self.seq.push(seq);
        self.time_ms
            .push(i64::try_from(time_ms).unwrap_or(i64::MAX));
        self.session.push(c.session);
        self.request_id.push(c.request_id);
        self.source.push(c.source);
        self.kind.push(c.kind);
        self.principal.push(c.principal);
        self.policy.push(c.policy);
        self.verdict.push(c.verdict);
        self.rules.push(c.rules);
        self.record.push(record);
        self.prev_hash.push(prev);
        self.hash.push(hash);
    }

    async fn insert(
        &self,
        t: &tokio_postgres::Transaction<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        t.execute(
            "INSERT INTO gatehouse.records (seq, time_ms, session, request_id, source, kind, principal, policy, verdict, rules, record, prev_hash, hash)
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::TEXT[])",
            &[
                &self.seq, &self.time_ms, &self.session, &self.request_id, &self.source, &self.kind,
                &self.principal, &self.policy, &self.verdict, &self.rules, &self.record,
                &self.prev_hash, &self.hash,
            ],
        )
        .await
    }
}

/// Approvals from rows whose first column is the stored JSON body.
fn approvals_of(rows: &[tokio_postgres::Row]) -> Result<Vec<Approval>, StoreError> {
    rows.iter()
        .map(|r| {
            let b: String = r.try_get(0).map_err(err)?;
            serde_json::from_str(&b).map_err(err)
        })
        .collect()
}

/// A query parameter.
enum Param {
    Text(String),
    Int(i64),
}

impl Param {
    fn sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(s) => s,
            Param::Int(n) => n,
        }
    }
}

/// The whole chain as a verifier reads it.
async fn read_chain(
    t: &tokio_postgres::Transaction<'_>,
) -> Result<ChainDump, tokio_postgres::Error> {
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    for r in t
        .query(
            "SELECT seq, prev_hash, hash, record, session, request_id, source, kind, principal, policy, verdict, rules
             FROM gatehouse.records ORDER BY seq",
            &[],
        )
        .await?
    {
        let row = chain::Row {
            seq: r.try_get::<_, i64>(0)? as u64,
            prev_hash: r.try_get(1)?,
            hash: r.try_get(2)?,
            record: r.try_get::<_, String>(3)?.into_bytes(),
        };
        let cols = Columns {
            session: r.try_get(4)?,
            request_id: r.try_get(5)?,
            source: r.try_get(6)?,
            kind: r.try_get(7)?,
            principal: r.try_get(8)?,
            policy: r.try_get(9)?,
            verdict: r.try_get(10)?,
            rules: r.try_get(11)?,
        };
        cols.check(row.seq, &row.record, &mut problems);
        rows.push(row);
    }
    let mut checkpoints = Vec::new();
    for r in t
        .query(
            "SELECT seq, hash, key_id, signature FROM gatehouse.checkpoints ORDER BY seq",
            &[],
        )
        .await?
    {
        checkpoints.push(chain::Checkpoint {
            seq: r.try_get::<_, i64>(0)? as u64,
            hash: r.try_get(1)?,
            key_id: r.try_get(2)?,
            signature: r.try_get(3)?,
        });
    }
    Ok(ChainDump {
        rows,
        checkpoints,
        problems,
    })
}

/// The SQL and parameters of a read.
fn select(q: &Query) -> (String, Vec<Param>) {
    let mut sql = String::from("SELECT seq, hash, record FROM gatehouse.records WHERE TRUE");
    let mut args = Vec::new();
    let int = |n: u64| Param::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let text = |s: &Option<String>| s.clone().map(Param::Text);
    let filters: [(&str, Option<Param>); 10] = [
        ("principal = $", text(&q.principal)),
        ("policy = $", text(&q.policy)),
        ("verdict = $", text(&q.decision)),
        ("strpos(rules, ',' || $::TEXT || ',') > 0", text(&q.rule)),
        ("session = $", text(&q.session)),
        ("request_id = $", text(&q.request_id)),
        ("time_ms >= $", q.since_ms.map(int)),
        ("time_ms <= $", q.until_ms.map(int)),
        ("seq > $", q.after.map(int)),
        ("seq < $", q.before.map(int)),
    ];
    for (clause, v) in filters {
        if let Some(v) = v {
            args.push(v);
            sql.push_str(" AND ");
            sql.push_str(&clause.replace('$', &format!("${}", args.len())));
        }
    }
    sql.push_str(if q.oldest_first {
        " ORDER BY seq ASC"
    } else {
        " ORDER BY seq DESC"
    });
    sql.push_str(&format!(" LIMIT {}", q.limit()));
    (sql, args)
}

impl PgStore {
    fn enqueue(
        &self,
        record: Record,
        change: Option<ApprovalWrite>,
    ) -> oneshot::Receiver<Result<u64, StoreError>> {
        let (tx, rx) = oneshot::channel();
        let Some(queue) = &self.tx else {
            let _ = tx.send(Err(StoreError::ReadOnly));
            return rx;
        };
        // Never wait for room: a full queue is a store that cannot keep up.
        match queue.try_send((record, change, tx)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full((_, _, ack))) => {
                let _ = ack.send(Err(err("the store's write queue is full")));
            }
            Err(mpsc::error::TrySendError::Closed((_, _, ack))) => {
                let _ = ack.send(Err(err("the store writer stopped")));
            }
        }
        rx
    }
}

impl Store for PgStore {
    fn approval_change(
        &self,
        record: Record,
        change: ApprovalWrite,
    ) -> oneshot::Receiver<Result<u64, StoreError>> {
        self.enqueue(record, Some(change))
    }

    fn approval_get(&self, id: String) -> StoreFuture<Option<Approval>> {
        let reader = self.reader();
        Box::pin(async move {
            let c = reader.await?;
            let row = c
                .query_opt("SELECT body FROM gatehouse.approvals WHERE id = $1", &[&id])
                .await
                .map_err(err)?;
            row.map(|r| {
                let b: String = r.try_get(0).map_err(err)?;
                serde_json::from_str(&b).map_err(err)
            })
            .transpose()
        })
    }

    fn approval_list(
        &self,
        state: Option<ApprovalState>,
        limit: usize,
    ) -> StoreFuture<Vec<Approval>> {
        let reader = self.reader();
        Box::pin(async move {
            let c = reader.await?;
            let state = state.map(|s| s.as_str());
            let limit = limit.min(Query::MAX_LIMIT) as i64;
            let rows = c
                .query(
                    "SELECT body FROM gatehouse.approvals WHERE ($1::TEXT IS NULL OR state = $1) ORDER BY created_ms DESC LIMIT $2",
                    &[&state, &limit],
                )
                .await
                .map_err(err)?;
            approvals_of(&rows)
        })
    }

    fn append(&self, record: Record) -> oneshot::Receiver<Result<u64, StoreError>> {
        self.enqueue(record, None)
    }

    fn approval_by_digest(&self, digest: String, requester: String) -> StoreFuture<Vec<Approval>> {
        let reader = self.reader();
        Box::pin(async move {
            let c = reader.await?;
            let rows = c
                .query(
                    "SELECT body FROM gatehouse.approvals WHERE requester = $1 AND digest = $2 ORDER BY created_ms DESC LIMIT 20",
                    &[&requester, &digest],
                )
                .await
                .map_err(err)?;
            approvals_of(&rows)
        })
    }

    fn approval_open_deferred(&self, requester: String) -> StoreFuture<u64> {
        let reader = self.reader();
        Box::pin(async move {
            let c = reader.await?;
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*)::BIGINT FROM gatehouse.approvals WHERE requester = $1 AND state = 'pending' AND mode = 'deferred'",
                    &[&requester],
                )
                .await
                .map_err(err)?
                .try_get(0)
                .map_err(err)?;
            Ok(n as u64)
        })
    }

    fn approval_touch(&self, id: String, now_ms: u64) -> StoreFuture<()> {
        let reader = self.reader();
        Box::pin(async move {
            let c = reader.await?;
            c.execute(
                "UPDATE gatehouse.approvals SET heartbeat_ms = $2 WHERE id = $1",
                &[&id, &(now_ms as i64)],
            )
            .await
            .map_err(err)?;
            Ok(())
        })
    }

    fn approval_to_settle(&self, heartbeat_before: u64, now_ms: u64) -> StoreFuture<Vec<Approval>> {
        let reader = self.reader();
        Box::pin(async move {
            let c = reader.await?;
            let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let rows = c
                .query(
                    "SELECT body FROM gatehouse.approvals WHERE state = 'pending'
                     AND ((mode = 'hold' AND heartbeat_ms < $1) OR expires_ms <= $2)
                     ORDER BY created_ms LIMIT $3",
                    &[
                        &int(heartbeat_before),
                        &int(now_ms),
                        &(super::SETTLE_BATCH as i64),
                    ],
                )
                .await
                .map_err(err)?;
            approvals_of(&rows)
        })
    }

    fn query(&self, q: Query) -> StoreFuture<Vec<Stored>> {
        let reader = self.reader();
        Box::pin(async move {
            let c = reader.await?;
            let (sql, args) = select(&q);
            let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(Param::sql).collect();
            let rows = c.query(&sql, &params).await.map_err(err)?;
            rows.iter()
                .map(|r| {
                    let text: &str = r.try_get(2).map_err(err)?;
                    Ok(Stored {
                        seq: r.try_get::<_, i64>(0).map_err(err)? as u64,
                        hash: r.try_get(1).map_err(err)?,
                        record: Record::parse(text.as_bytes()).map_err(err)?,
                    })
                })
                .collect()
        })
    }

    fn dump(&self) -> StoreFuture<ChainDump> {
        let config = self.config.clone();
        Box::pin(async move {
            // Records and checkpoints from one snapshot: a checkpoint committed between two
            // reads would look like deleted records.
            let mut c = connect(&config).await?;
            let t = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(err)?;
            let dump = read_chain(&t).await.map_err(err);
            let _ = t.rollback().await;
            dump
        })
    }

    fn prune(&self, before_ms: u64) -> StoreFuture<Pruned> {
        let config = self.config.clone();
        Box::pin(async move {
            // A connection of its own: the prune's lock waits for appends in flight.
            let mut c = connect(&config).await?;
            let t = begin(&mut c).await.map_err(err)?;
            t.execute("SELECT pg_advisory_xact_lock($1::BIGINT)", &[&CHAIN_LOCK])
                .await
                .map_err(err)?;
            let before = i64::try_from(before_ms).unwrap_or(i64::MAX);
            // Up to the last checkpoint before the first record made at or after the cutoff:
            // a record with a later time (another clock, a long answer) never goes because an
            // older one follows it.
            let anchor: i64 = t
                .query_one(
                    "SELECT COALESCE(MAX(c.seq), 0)::BIGINT FROM gatehouse.checkpoints c
                     JOIN gatehouse.records r ON r.seq = c.seq
                     WHERE c.seq < COALESCE((SELECT MIN(seq) FROM gatehouse.records WHERE time_ms >= $1), 9223372036854775807)",
                    &[&before],
                )
                .await
                .map_err(err)?
                .try_get(0)
                .map_err(err)?;
            if anchor == 0 {
                return Ok(Pruned {
                    removed: 0,
                    anchor: 0,
                });
            }
            let removed = t
                .execute("DELETE FROM gatehouse.records WHERE seq <= $1", &[&anchor])
                .await
                .map_err(err)?;
            t.execute(
                "DELETE FROM gatehouse.checkpoints WHERE seq < $1",
                &[&anchor],
            )
            .await
            .map_err(err)?;
            // Settled approvals older than the cutoff go with their records.
            t.execute(
                "DELETE FROM gatehouse.approvals WHERE state <> 'pending' AND created_ms < $1",
                &[&before],
            )
            .await
            .map_err(err)?;
            t.commit().await.map_err(err)?;
            Ok(Pruned {
                removed,
                anchor: anchor as u64,
            })
        })
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_parameterised_and_filters_combine() {
        let (sql, args) = select(&Query {
            principal: Some("alice' OR TRUE --".into()),
            rule: Some("no-credentials".into()),
            after: Some(u64::MAX),
            oldest_first: true,
            limit: Some(7),
            ..Default::default()
        });
        assert_eq!(
            sql,
            "SELECT seq, hash, record FROM gatehouse.records WHERE TRUE AND principal = $1 AND strpos(rules, ',' || $2::TEXT || ',') > 0 AND seq > $3 ORDER BY seq ASC LIMIT 7"
        );
        assert_eq!(args.len(), 3);
        assert!(matches!(args[2], Param::Int(i64::MAX)));
    }
}
