//! `gatehouse sessions`: read and verify the session log, straight from its store.

use crate::store::{self, chain, Query};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct StoreArgs {
    /// The session store (`sqlite:PATH`, a directory, or `memory:`).
    #[arg(
        long,
        env = "GATEHOUSE_STORE",
        hide_env_values = true,
        default_value = ".gatehouse/store"
    )]
    store: String,
    /// The checkpoint signing key (default: `checkpoint.key` beside the database).
    #[arg(long, env = "GATEHOUSE_CHECKPOINT_KEY_FILE")]
    checkpoint_key_file: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum SessionsCmd {
    /// Records, newest first, with filters.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        policy: Option<String>,
        /// allow, block, deny, unauthenticated, require_approval, error.
        #[arg(long)]
        decision: Option<String>,
        #[arg(long)]
        rule: Option<String>,
        /// Only records at or after this time (milliseconds since the epoch).
        #[arg(long)]
        since_ms: Option<u64>,
        #[arg(long)]
        until_ms: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One session's timeline (oldest first): a session id, or a request id.
    Show {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Every record, oldest first, as JSON Lines.
    Export {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Check the hash chain and the signed checkpoints; exits non-zero naming the first
    /// record that was modified, deleted, inserted or reordered.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// The checkpoint public key (hex), or a file holding it: what an auditor keeps
        /// apart from the store. Without it, the key file beside the store is read (which
        /// only proves the log consistent with whoever can read that key).
        #[arg(long)]
        public_key: Option<String>,
        /// A `SEQ:HASH` the auditor saw earlier (printed by a previous verify): the log
        /// must still reach it unchanged, so a cut-off or rewritten tail is caught.
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Re-decide every recorded request under another bundle and list the decisions that
    /// would change, and why (the what-if before shipping a stricter bundle). Requests are
    /// replayed as recorded, that is redacted: a value a rule blocked is already `[rule-id]`,
    /// so replay answers "what would the new bundle refuse that the old one let through".
    Replay {
        #[command(flatten)]
        store: StoreArgs,
        /// The bundle to decide under.
        #[arg(long)]
        bundle: PathBuf,
        /// Only records at or after this time (milliseconds since the epoch).
        #[arg(long)]
        since_ms: Option<u64>,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove records older than a time, up to the last signed checkpoint among them (which
    /// is kept, so the rest still verifies). Export first what must be kept elsewhere.
    Prune {
        #[command(flatten)]
        store: StoreArgs,
        /// Remove records made before this time (milliseconds since the epoch).
        #[arg(long)]
        before_ms: u64,
    },
    /// Print the checkpoint public key.
    PublicKey {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Reads never create or change anything.
async fn open(a: &StoreArgs) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
    Ok(store::open_read(&a.store).await?)
}

fn key_path(a: &StoreArgs) -> PathBuf {
    a.checkpoint_key_file
        .clone()
        .unwrap_or_else(|| store::default_key_path(&a.store))
}

pub async fn run(cmd: SessionsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SessionsCmd::List {
            store,
            principal,
            policy,
            decision,
            rule,
            since_ms,
            until_ms,
            limit,
            json,
        } => {
            let q = Query {
                principal,
                policy,
                decision,
                rule,
                since_ms,
                until_ms,
                limit: Some(limit),
                ..Default::default()
            };
            let rows = open(&store).await?.query(q).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:>6}  {:<13}  {:<14}  {:<12}  {:<16}  {:>6}  {:<24}  path",
                "seq", "time_ms", "principal", "policy", "decision", "status", "rules"
            );
            for r in rows {
                let rec = &r.record;
                println!(
                    "{:>6}  {:<13}  {:<14}  {:<12}  {:<16}  {:>6}  {:<24}  {} {}",
                    r.seq,
                    rec.time_ms,
                    rec.identity.as_ref().map_or("-", |i| i.principal.as_str()),
                    rec.policy.as_deref().unwrap_or("-"),
                    rec.decision.verdict,
                    rec.decision.status,
                    rec.decision.rules.join(","),
                    rec.request.method,
                    rec.request.path
                );
            }
        }
        SessionsCmd::Show { id, store } => {
            // A session id is the caller's choice; a request id is the gateway's. Both are
            // shown, each under its own heading, so one cannot pass for the other.
            let s = open(&store).await?;
            let by_request = s
                .query(Query {
                    request_id: Some(id.clone()),
                    oldest_first: true,
                    ..Default::default()
                })
                .await?;
            let by_session = s
                .query(Query {
                    session: Some(id.clone()),
                    oldest_first: true,
                    limit: Some(Query::MAX_LIMIT),
                    ..Default::default()
                })
                .await?;
            if by_request.is_empty() && by_session.is_empty() {
                eprintln!("no session or request `{id}`");
                return Ok(ExitCode::FAILURE);
            }
            if !by_request.is_empty() {
                println!("# request {id}");
                for r in &by_request {
                    println!("{}", serde_json::to_string_pretty(r)?);
                }
            }
            if !by_session.is_empty() {
                let principals: std::collections::BTreeSet<&str> = by_session
                    .iter()
                    .map(|r| {
                        r.record
                            .identity
                            .as_ref()
                            .map_or("-", |i| i.principal.as_str())
                    })
                    .collect();
                println!(
                    "# session {id} ({} records; callers: {})",
                    by_session.len(),
                    principals.into_iter().collect::<Vec<_>>().join(", ")
                );
                for r in &by_session {
                    println!("{}", serde_json::to_string_pretty(r)?);
                }
            }
        }
        SessionsCmd::Export { store } => {
            let s = open(&store).await?;
            let mut after = 0;
            loop {
                let page = s
                    .query(Query {
                        after: Some(after),
                        oldest_first: true,
                        limit: Some(Query::MAX_LIMIT),
                        ..Default::default()
                    })
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for r in &page {
                    println!("{}", serde_json::to_string(r)?);
                }
            }
        }
        SessionsCmd::Verify {
            store,
            public_key,
            anchor,
        } => {
            let hex = match public_key {
                Some(p) if std::path::Path::new(&p).is_file() => std::fs::read_to_string(&p)?,
                Some(p) => p,
                None => {
                    let path = key_path(&store);
                    if !path.is_file() {
                        anyhow::bail!(
                            "no --public-key given and no key file at {}",
                            path.display()
                        );
                    }
                    chain::Signer::load_or_create(&path)?.public_key_hex()
                }
            };
            let pk = chain::public_key(&hex).map_err(anyhow::Error::msg)?;
            let anchor = anchor
                .map(|a| -> anyhow::Result<(u64, String)> {
                    let (seq, hash) = a
                        .split_once(':')
                        .ok_or_else(|| anyhow::anyhow!("--anchor must be SEQ:HASH"))?;
                    Ok((seq.parse()?, hash.to_owned()))
                })
                .transpose()?;
            let dump = open(&store).await?.dump().await?;
            let hash_at = |seq: u64| {
                dump.rows
                    .iter()
                    .find(|r| r.seq == seq)
                    .map(|r| r.hash.clone())
            };
            let anchored = anchor
                .as_ref()
                .map(|(seq, hash)| (*seq, hash_at(*seq), hash.clone()));
            let last = dump.rows.last().map(|r| (r.seq, r.hash.clone()));
            let problems = dump.problems;
            let result = chain::verify(dump.rows, &dump.checkpoints, &pk).and_then(|v| {
                if let Some(p) = problems.first() {
                    return Err(p.clone());
                }
                match anchored {
                    Some((seq, None, _)) => Err(format!(
                        "the log no longer reaches record {seq} of the anchor: records were cut off"
                    )),
                    Some((seq, Some(h), want)) if h != want => Err(format!(
                        "record {seq} no longer has the anchored hash: the log was rewritten"
                    )),
                    _ => Ok(v),
                }
            });
            match result {
                Ok(v) => {
                    println!(
                        "ok: {} records, {} signed checkpoints; {} records after the last checkpoint are chained, not yet signed",
                        v.records, v.checkpoints, v.unsigned_tail
                    );
                    if let Some((seq, hash)) = last {
                        println!("anchor for the next verify: --anchor {seq}:{hash}");
                    }
                }
                Err(e) => {
                    eprintln!("TAMPERED: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        SessionsCmd::Replay {
            store,
            bundle,
            since_ms,
            json,
        } => return replay(&store, &bundle, since_ms, json).await,
        SessionsCmd::Prune { store, before_ms } => {
            let store::Pruned { removed, anchor } = open(&store).await?.prune(before_ms).await?;
            if removed == 0 {
                println!("nothing to prune: no signed checkpoint before that time");
            } else {
                println!("pruned {removed} records; the log now starts after record {anchor}, anchored by its signed checkpoint");
            }
        }
        SessionsCmd::PublicKey { store } => {
            let path = key_path(&store);
            if !path.is_file() {
                anyhow::bail!("no checkpoint key at {}", path.display());
            }
            println!("{}", chain::Signer::load_or_create(&path)?.public_key_hex());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One changed decision found by a replay.
#[derive(serde::Serialize)]
struct Change {
    seq: u64,
    request_id: String,
    principal: String,
    path: String,
    was: String,
    now: String,
    was_rules: Vec<String>,
    now_rules: Vec<String>,
    why: String,
}

async fn replay(
    store: &StoreArgs,
    bundle: &std::path::Path,
    since_ms: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let engine = crate::policy_cmd::load(bundle)?;
    let s = open(store).await?;
    let (mut seen, mut replayed, mut changes) = (0u64, 0u64, Vec::new());
    let mut after = 0;
    loop {
        let page = s
            .query(Query {
                after: Some(after),
                since_ms,
                oldest_first: true,
                limit: Some(Query::MAX_LIMIT),
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page {
            seen += 1;
            let rec = &r.record;
            // The server's records carry the request body; the filter's refusals do not.
            let (Some(id), Some(body)) = (&rec.identity, &rec.request.body) else {
                continue;
            };
            replayed += 1;
            let caller = policy_engine::Caller {
                issuer: id.issuer.clone(),
                principal: id.principal.clone(),
                groups: id.groups.clone(),
                claims: Default::default(),
                expires_at: u64::MAX,
            };
            let path = rec.request.path.split('?').next().unwrap_or("");
            let bytes = serde_json::to_vec(body)?;
            let d = engine.decide(&caller, &rec.request.method, path, &bytes);
            let now = d.verdict.as_str().to_owned();
            let mut now_rules = d.rules.clone();
            now_rules.sort();
            let mut was_rules = rec.decision.rules.clone();
            was_rules.sort();
            if now != rec.decision.verdict || now_rules != was_rules {
                let why = if d.verdict == policy_engine::Verdict::Allow {
                    "no rule of the new bundle refuses it".to_owned()
                } else {
                    let policy = d.policy.clone().unwrap_or_default();
                    format!("{} (policy `{policy}`)", d.message)
                };
                changes.push(Change {
                    seq: r.seq,
                    request_id: rec.request_id.clone(),
                    principal: id.principal.clone(),
                    path: rec.request.path.clone(),
                    was: rec.decision.verdict.clone(),
                    now,
                    was_rules,
                    now_rules,
                    why,
                });
            }
        }
    }
    for c in &changes {
        if json {
            println!("{}", serde_json::to_string(c)?);
        } else {
            println!(
                "record {} ({}, {}): {} [{}] -> {} [{}]: {}",
                c.seq,
                c.principal,
                c.path,
                c.was,
                c.was_rules.join(","),
                c.now,
                c.now_rules.join(","),
                c.why
            );
        }
    }
    eprintln!(
        "replayed {replayed} of {seen} records under {}: {} decisions would change",
        bundle.display(),
        changes.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `gatehouse bench-store`: how fast the session store makes records durable.
#[derive(clap::Args)]
pub struct BenchStoreArgs {
    /// Where to write: a scratch directory (emptied first, left behind), or the URL of a
    /// scratch PostgreSQL database (`scripts/bench-postgres.sh` makes one).
    #[arg(long, default_value = "/tmp/gatehouse-bench-store")]
    store: String,
    /// Records to append.
    #[arg(long, default_value_t = 20_000)]
    records: usize,
    /// Appenders waiting for their acknowledgement at the same time (ext_proc streams).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

/// A typical exchange record (a 4 KiB chat request, redacted, and a masked answer).
fn sample_record(i: usize) -> policy_engine::record::Record {
    use policy_engine::record::*;
    let body = serde_json::from_slice(&policy_engine::profile::chat_request()).unwrap_or_default();
    Record {
        v: RECORD_VERSION,
        kind: Kind::Exchange,
        source: Source::Server,
        time_ms: i as u64,
        session: format!("s{}", i % 100),
        request_id: format!("bench-{i}"),
        client_request_id: None,
        identity: Some(Identity {
            issuer: "bench".into(),
            principal: format!("user{}", i % 50),
            groups: vec!["eng".into()],
        }),
        policy: Some("engineering".into()),
        bundle: "sha256:bench".into(),
        api: Some("chat_completions".into()),
        model: Some("gpt-4o-mini".into()),
        request: RequestPart {
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            body: Some(body),
        },
        decision: DecisionPart::refusal("allow", 200, "policy", "allowed"),
        response: Some(ResponsePart {
            status: Some(200),
            content_type: "application/json".into(),
            body: Some(
                serde_json::json!({"choices": [{"message": {"content": "Sure. Reach [EMAIL] or [PHONE]."}}]}),
            ),
            ..Default::default()
        }),
        duration_ms: Some(3),
        approval: None,
    }
}

/// The bytes PostgreSQL uses for the records table and its indexes.
async fn postgres_size(url: &str) -> anyhow::Result<u64> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let n: i64 = c
        .query_one("SELECT pg_total_relation_size('gatehouse.records')", &[])
        .await?
        .get(0);
    Ok(n as u64)
}

pub async fn bench_store(a: BenchStoreArgs) -> anyhow::Result<()> {
    if !a.store.contains("://") {
        let _ = std::fs::remove_dir_all(&a.store);
    }
    let s = store::open(&a.store, None).await?;
    let started = std::time::Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let (s, next, n) = (s.clone(), next.clone(), a.records);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = std::time::Instant::now();
                s.append(sample_record(i)).await??;
                lat.push(t.elapsed().as_micros() as u64);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let size = if a.store.starts_with("postgres") {
        postgres_size(&a.store).await.unwrap_or(0)
    } else {
        std::fs::metadata(std::path::Path::new(&a.store).join("sessions.db"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    println!(
        "session store {}: {} records, {} appenders: {:.0} records/s; acknowledgement p50 {} us, p99 {} us; {:.0} bytes/record on disk",
        store::redact_url(&a.store),
        lat.len(),
        a.concurrency,
        lat.len() as f64 / secs,
        pct(0.5),
        pct(0.99),
        size as f64 / lat.len().max(1) as f64
    );
    Ok(())
}
