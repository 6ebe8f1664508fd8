//! `gatehouse sessions`: read and verify the session log, straight from its store.

use crate::store::{self, chain, Query};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct StoreArgs {
    /// The session store (`sqlite:PATH`, a directory, or `memory:`).
    #[arg(long, env = "GATEHOUSE_STORE", default_value = ".gatehouse/store")]
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
        /// The checkpoint public key (hex), or a file holding it (what an auditor needs).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Print the checkpoint public key.
    PublicKey {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn open(a: &StoreArgs) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
    Ok(store::open(&a.store, a.checkpoint_key_file.as_deref())?)
}

fn key_path(a: &StoreArgs) -> PathBuf {
    a.checkpoint_key_file.clone().unwrap_or_else(|| {
        let db = std::path::Path::new(a.store.strip_prefix("sqlite:").unwrap_or(&a.store));
        if db.extension().is_none() {
            db.join("checkpoint.key")
        } else {
            db.with_file_name("checkpoint.key")
        }
    })
}

pub fn run(cmd: SessionsCmd) -> anyhow::Result<ExitCode> {
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
            let rows = open(&store)?.query(&q)?;
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
            let s = open(&store)?;
            let mut rows = s.query(&Query {
                session: Some(id.clone()),
                oldest_first: true,
                limit: Some(Query::MAX_LIMIT),
                ..Default::default()
            })?;
            if rows.is_empty() {
                rows = s.query(&Query {
                    request_id: Some(id.clone()),
                    oldest_first: true,
                    ..Default::default()
                })?;
            }
            if rows.is_empty() {
                eprintln!("no session or request `{id}`");
                return Ok(ExitCode::FAILURE);
            }
            for r in rows {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
        }
        SessionsCmd::Export { store } => {
            let s = open(&store)?;
            let mut after = 0;
            loop {
                let page = s.query(&Query {
                    after: Some(after),
                    oldest_first: true,
                    limit: Some(Query::MAX_LIMIT),
                    ..Default::default()
                })?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for r in &page {
                    println!("{}", serde_json::to_string(r)?);
                }
            }
        }
        SessionsCmd::Verify { store, public_key } => {
            let hex = match public_key {
                Some(p) if std::path::Path::new(&p).is_file() => std::fs::read_to_string(&p)?,
                Some(p) => p,
                None => chain::Signer::load_or_create(&key_path(&store))?.public_key_hex(),
            };
            let pk = chain::public_key(&hex).map_err(anyhow::Error::msg)?;
            let dump = open(&store)?.dump()?;
            match chain::verify(dump.rows, &dump.checkpoints, &pk) {
                Ok(v) => println!(
                    "ok: {} records, {} signed checkpoints; {} records after the last checkpoint are chained, not yet signed",
                    v.records, v.checkpoints, v.unsigned_tail
                ),
                Err(e) => {
                    eprintln!("TAMPERED: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        SessionsCmd::PublicKey { store } => {
            println!(
                "{}",
                chain::Signer::load_or_create(&key_path(&store))?.public_key_hex()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
