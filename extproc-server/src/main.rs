//! `gatehouse`: the ext_proc server, the demo upstream, and the CLI.

mod api;
mod approvals;
mod approvals_cmd;
mod cli;
mod demo;
mod extproc;
mod hold;
mod jwks;
mod mask;
mod notify;
mod policy_cmd;
mod review;
mod sessions;
mod sse;
mod store;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Gatehouse: policy gateway for LLM inference endpoints"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the ext_proc server and its HTTP API (event ingest, session log).
    Serve(ServeArgs),
    /// Run the built-in demo model upstream (OpenAI and Anthropic compatible).
    DemoUpstream {
        #[arg(long, default_value = "127.0.0.1:18080")]
        listen: SocketAddr,
    },
    /// Print a token signed by the local dev issuer (local profile only).
    Token(cli::TokenArgs),
    /// Policy bundle tools.
    Policy {
        #[command(subcommand)]
        cmd: policy_cmd::PolicyCmd,
    },
    /// List the built-in detectors with their kind, tags, stance and keywords. A bundle's
    /// `detectors:` entry may name a detector, a tag, or `all`.
    Detectors {
        /// Only detectors with this tag (or this name).
        #[arg(long)]
        tag: Option<String>,
        /// Print the tags and how many detectors carry each.
        #[arg(long)]
        tags: bool,
    },
    /// Local profile: dev issuer keys, the dev bundle and the Envoy config.
    Dev {
        #[command(subcommand)]
        cmd: cli::DevCmd,
    },
    /// Measure the engine's matching and masking throughput.
    Bench(cli::BenchArgs),
    /// Measure how fast the session store makes records durable.
    BenchStore(sessions::BenchStoreArgs),
    /// Review approval holds (list, show, approve, deny) through the server's API.
    Approvals {
        #[command(subcommand)]
        cmd: approvals_cmd::ApprovalsCmd,
    },
    /// Read and verify the session log.
    Sessions {
        #[command(subcommand)]
        cmd: sessions::SessionsCmd,
    },
    /// Precision and recall of the built-in detectors on a labeled corpus (JSON lines).
    Eval {
        #[arg(default_value = "tests/eval/corpus.jsonl")]
        corpus: PathBuf,
        /// Also print each false positive and false negative (detector, value, text).
        #[arg(long)]
        errors: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Policy bundle (YAML or JSON).
    #[arg(long, env = "GATEHOUSE_BUNDLE")]
    bundle: PathBuf,
    /// ext_proc gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:18081")]
    grpc: SocketAddr,
    /// HTTP API listen address.
    #[arg(long, default_value = "127.0.0.1:18082")]
    http: SocketAddr,
    /// The session store: `sqlite:PATH` or a directory (the embedded SQLite store),
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (shared by replicas), or `memory:`
    /// (records lost at exit).
    #[arg(
        long,
        env = "GATEHOUSE_STORE",
        hide_env_values = true,
        default_value = ".gatehouse/store"
    )]
    store: String,
    /// The key that signs checkpoints of the session chain (created 0600 when missing;
    /// default: `checkpoint.key` beside an SQLite database, `.gatehouse/checkpoint.key`
    /// for PostgreSQL). Replicas sharing a PostgreSQL store share this key.
    #[arg(long, env = "GATEHOUSE_CHECKPOINT_KEY_FILE")]
    checkpoint_key_file: Option<PathBuf>,
    /// Keep session records this many days; older ones are pruned hourly (up to the last
    /// signed checkpoint among them, so the rest still verifies). Unset: kept forever.
    #[arg(long, env = "GATEHOUSE_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    retention_days: Option<u32>,
    /// File holding the identity hand-off key shared with the filter.
    #[arg(long, env = "GATEHOUSE_HANDOFF_KEY_FILE")]
    handoff_key_file: PathBuf,
    /// File holding the key for the `hash` masking style.
    #[arg(long, env = "GATEHOUSE_MASK_KEY_FILE")]
    mask_key_file: Option<PathBuf>,
    /// Generic webhook told of every new approval (signed JSON; repeatable).
    #[arg(
        long = "webhook",
        env = "GATEHOUSE_WEBHOOKS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    webhooks: Vec<String>,
    /// Slack-compatible incoming webhook told of every new approval (repeatable).
    #[arg(
        long = "slack-webhook",
        env = "GATEHOUSE_SLACK_WEBHOOKS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    slack_webhooks: Vec<String>,
    /// File holding the key that signs generic webhooks (required with `--webhook`).
    #[arg(long, env = "GATEHOUSE_WEBHOOK_KEY_FILE")]
    webhook_key_file: Option<PathBuf>,
    /// This server's API as reviewers reach it, for links in notifications.
    #[arg(long, env = "GATEHOUSE_PUBLIC_URL")]
    public_url: Option<String>,
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let src = std::fs::read_to_string(&a.bundle)
        .with_context(|| format!("reading {}", a.bundle.display()))?;
    let mut engine =
        policy_engine::Engine::from_source(&src).map_err(|e| cli::engine_error(&a.bundle, &e))?;
    if let Some(p) = &a.mask_key_file {
        engine = engine.with_mask_key(std::fs::read_to_string(p)?.trim().as_bytes());
    }
    let key = std::fs::read_to_string(&a.handoff_key_file)
        .with_context(|| format!("reading {}", a.handoff_key_file.display()))?;
    let store = store::open(&a.store, a.checkpoint_key_file.as_deref()).await?;
    for u in a.webhooks.iter().chain(&a.slack_webhooks) {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            anyhow::bail!("webhook `{}` is not an http(s) URL", store::redact_url(u));
        }
    }
    let webhook_key = match (&a.webhook_key_file, a.webhooks.is_empty()) {
        (Some(p), _) => {
            let k = std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .trim()
                .as_bytes()
                .to_vec();
            if k.len() < 32 {
                anyhow::bail!("{}: a webhook key needs at least 32 bytes", p.display());
            }
            k
        }
        (None, false) => {
            anyhow::bail!("--webhook needs --webhook-key-file (the key that signs it)")
        }
        (None, true) => Vec::new(),
    };
    let mut shared = extproc::Shared::new(
        std::sync::Arc::new(engine),
        key.trim().as_bytes().to_vec(),
        store.clone(),
    );
    shared.notifier = notify::Notifier::start(notify::Targets {
        webhooks: a.webhooks.clone(),
        slack: a.slack_webhooks.clone(),
        key: webhook_key,
        public_url: a.public_url.clone(),
    });
    shared.keys.start(shared.engine.clone());
    let shared = std::sync::Arc::new(shared);
    {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(hold::SWEEP_EVERY);
            loop {
                tick.tick().await;
                shared.sweep_dead_holds().await;
            }
        });
    }
    if let Some(days) = a.retention_days {
        tokio::spawn(retention(store.clone(), days));
    }
    tracing::info!(digest = %shared.engine.digest, grpc = %a.grpc, http = %a.http, store = %store::redact_url(&a.store), "gatehouse server starting");
    let grpc = tonic::transport::Server::builder()
        .add_service(
            envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessorServer::new(
                extproc::Service(shared.clone()),
            ),
        )
        .serve_with_shutdown(a.grpc, shutdown());
    let api = api::router(shared.clone());
    let listener = tokio::net::TcpListener::bind(a.http).await?;
    let http = axum::serve(listener, api).with_graceful_shutdown(shutdown());
    let (g, h) = tokio::join!(grpc, http);
    g?;
    h?;
    Ok(())
}

/// Prune records older than the retention period, shortly after start and then hourly.
async fn retention(store: std::sync::Arc<dyn store::Store>, days: u32) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(3600),
    );
    loop {
        tick.tick().await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let before = now.saturating_sub(u64::from(days) * 86_400_000);
        match store.prune(before).await {
            Ok(p) if p.removed > 0 => {
                tracing::info!(
                    removed = p.removed,
                    starts_after = p.anchor,
                    days,
                    "retention: pruned old session records"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention: prune failed; retried next hour"),
        }
    }
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Serve(a) => serve(a).await,
        Cmd::DemoUpstream { listen } => {
            async {
                let l = tokio::net::TcpListener::bind(listen).await?;
                tracing::info!(%listen, "demo upstream listening");
                // No Nagle delay: streamed deltas leave as soon as they are written.
                use axum::serve::ListenerExt;
                let l = l.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(l, demo::router())
                    .with_graceful_shutdown(shutdown())
                    .await?;
                Ok(())
            }
            .await
        }
        Cmd::Token(a) => cli::token(a),
        Cmd::Policy { cmd } => return policy_cmd::policy(cmd),
        Cmd::Detectors { tag, tags } => {
            if let Err(e) = cli::detectors(tag.as_deref(), tags) {
                eprintln!("error: {e:#}");
                std::process::exit(2);
            }
            Ok(())
        }
        Cmd::Dev { cmd } => cli::dev(cmd),
        Cmd::Bench(a) => cli::bench(a),
        Cmd::BenchStore(a) => sessions::bench_store(a).await,
        Cmd::Eval { corpus, errors } => cli::eval(&corpus, errors),
        Cmd::Approvals { cmd } => match approvals_cmd::run(cmd) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Cmd::Sessions { cmd } => match sessions::run(cmd).await {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
