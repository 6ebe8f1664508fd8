//! Command-line tools: dev tokens, the local profile, detectors, benchmarks, detector evaluation
//! (`policy_cmd.rs` has the `policy` group, `sessions.rs` the `sessions` group).

use crate::policy_cmd::{caller_of, load};
use anyhow::{bail, Context as _};
use jwt_simple::prelude::*;
use policy_engine::bundle::{Bundle, Issuer};
use policy_engine::engine::EngineError;
use policy_engine::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Issuer URL and audience of the local dev issuer.
pub const DEV_ISSUER: &str = "https://dev-issuer.gatehouse.local";
pub const DEV_AUDIENCE: &str = "gatehouse";
const DEV_KID: &str = "gatehouse-dev-1";

/// Format an engine error with file, line and field.
pub fn engine_error(file: &Path, e: &EngineError) -> anyhow::Error {
    match e {
        EngineError::Bundle(b) => anyhow::anyhow!(
            "{}",
            b.0.iter()
                .map(|d| format!(
                    "{}:{}:{}: {}: {}",
                    file.display(),
                    d.line,
                    d.column,
                    d.field,
                    d.message
                ))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        other => anyhow::anyhow!("{}: {other}", file.display()),
    }
}

#[derive(clap::Args)]
pub struct TokenArgs {
    /// Subject (the principal).
    #[arg(long)]
    sub: String,
    /// Group claim values (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Lifetime in seconds (negative makes an already expired token, for tests).
    #[arg(long, default_value_t = 3600, allow_hyphen_values = true)]
    ttl: i64,
    /// Audience.
    #[arg(long, default_value = DEV_AUDIENCE)]
    aud: String,
    /// Issuer URL.
    #[arg(long, default_value = DEV_ISSUER)]
    iss: String,
    /// Directory of the local profile.
    #[arg(long, default_value = ".gatehouse", env = "GATEHOUSE_DEV_DIR")]
    dir: PathBuf,
}

fn dev_key(dir: &Path) -> anyhow::Result<RS256KeyPair> {
    let pem = std::fs::read_to_string(dir.join("dev-issuer.pem")).with_context(|| {
        format!(
            "no dev issuer key in {} (run `make run` or `gatehouse dev init` first)",
            dir.display()
        )
    })?;
    Ok(RS256KeyPair::from_pem(&pem)?.with_key_id(DEV_KID))
}

pub fn token(a: TokenArgs) -> anyhow::Result<()> {
    let kp = dev_key(&a.dir)?;
    let custom = json!({"groups": a.groups});
    let now = Clock::now_since_epoch();
    let mut claims = Claims::with_custom_claims(custom, Duration::from_secs(a.ttl.unsigned_abs()))
        .with_issuer(&a.iss)
        .with_audience(&a.aud)
        .with_subject(&a.sub);
    if a.ttl <= 0 {
        let past = now.as_secs().saturating_sub(a.ttl.unsigned_abs());
        claims.expires_at = Some(Duration::from_secs(past));
        claims.issued_at = Some(Duration::from_secs(past.saturating_sub(60)));
        claims.invalid_before = claims.issued_at;
    }
    println!("{}", kp.sign(claims)?);
    Ok(())
}

pub fn detectors(tag: Option<&str>, list_tags: bool) -> anyhow::Result<()> {
    use policy_engine::detectors;
    if list_tags {
        for t in detectors::tags() {
            let n = detectors::all().filter(|d| d.has_tag(t)).count();
            println!("{t:<16} {n:>4}");
        }
        return Ok(());
    }
    let picked = match tag {
        Some(t) => detectors::resolve(t)
            .ok_or_else(|| anyhow::anyhow!("no detector or tag `{t}` (see --tags)"))?,
        None => detectors::all().collect(),
    };
    println!(
        "{:<30} {:<11} {:<10} {:<24} {:<36} keywords",
        "name", "kind", "stance", "provider", "tags"
    );
    for d in &picked {
        let tags: Vec<&str> = d.all_tags().collect();
        println!(
            "{:<30} {:<11} {:<10} {:<24} {:<36} {}",
            d.name,
            d.kind.tag(),
            d.stance.as_str(),
            d.provider,
            tags.join(","),
            d.keywords.join(",")
        );
    }
    println!("{} detectors", picked.len());
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum DevCmd {
    /// Create (once) the dev issuer key and hand-off key, and write the dev bundle and the
    /// Envoy config for the local stack.
    Init(InitArgs),
    /// Print the dev issuer's public key (PEM).
    PublicKey {
        #[arg(long, default_value = ".gatehouse")]
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct InitArgs {
    #[arg(long, default_value = "policies/default.yaml")]
    bundle: PathBuf,
    #[arg(long, default_value = ".gatehouse")]
    dir: PathBuf,
    #[arg(long, default_value = "target-wasm/gatehouse_filter.wasm")]
    wasm: PathBuf,
    #[arg(long, default_value = "envoy/local.yaml.tmpl")]
    template: PathBuf,
    /// Upstream model server, host:port.
    #[arg(long, default_value = "127.0.0.1:18080")]
    upstream: String,
    /// The OpenID provider behind the `idp` cluster (issuers with `jwks_cluster: idp`).
    #[arg(long, default_value = "127.0.0.1:9")]
    idp: String,
    #[arg(long, default_value_t = 10000)]
    listen_port: u16,
    #[arg(long, default_value_t = 9901)]
    admin_port: u16,
    #[arg(long, default_value_t = 18081)]
    grpc_port: u16,
    #[arg(long, default_value_t = 18082)]
    http_port: u16,
}

fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Write a secret: created readable and writable by its owner only.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// The dev bundle: the given bundle plus the dev issuer, trusted only by the local stack.
pub fn dev_bundle(mut b: Bundle, kp: &RS256KeyPair) -> Bundle {
    let c = kp.public_key().to_components();
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    let jwks = json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": DEV_KID,
        "n": URL_SAFE_NO_PAD.encode(c.n), "e": URL_SAFE_NO_PAD.encode(c.e)}]});
    b.identity.issuers.retain(|i| i.name != "gatehouse-dev");
    b.identity.issuers.push(Issuer {
        name: "gatehouse-dev".into(),
        issuer: DEV_ISSUER.into(),
        audiences: vec![DEV_AUDIENCE.into()],
        algorithms: vec!["RS256".into()],
        jwks: Some(jwks),
        jwks_uri: None,
        jwks_cluster: None,
        leeway_seconds: 30,
        principal_claim: "sub".into(),
        groups_claim: "groups".into(),
    });
    b
}

pub fn dev(cmd: DevCmd) -> anyhow::Result<()> {
    let a = match cmd {
        DevCmd::PublicKey { dir } => {
            print!("{}", dev_key(&dir)?.public_key().to_pem()?);
            return Ok(());
        }
        DevCmd::Init(a) => a,
    };
    let InitArgs {
        bundle,
        dir,
        wasm,
        template,
        upstream,
        idp,
        listen_port,
        admin_port,
        grpc_port,
        http_port,
    } = a;
    std::fs::create_dir_all(&dir)?;
    let key_path = dir.join("dev-issuer.pem");
    if !key_path.exists() {
        let kp = RS256KeyPair::generate(2048)?;
        write_private(&key_path, kp.to_pem()?.as_bytes())?;
    }
    let handoff = dir.join("handoff.key");
    if !handoff.exists() {
        write_private(&handoff, random_hex(32).as_bytes())?;
    }
    let mask_key = dir.join("mask.key");
    if !mask_key.exists() {
        write_private(&mask_key, random_hex(32).as_bytes())?;
    }
    let kp = dev_key(&dir)?;
    let src = std::fs::read_to_string(&bundle)
        .with_context(|| format!("reading {}", bundle.display()))?;
    let b = policy_engine::load::parse(&src)
        .map_err(|e| engine_error(&bundle, &EngineError::Bundle(e)))?;
    let b = dev_bundle(b, &kp);
    let yaml = serde_yaml::to_string(&b)?;
    let engine = Engine::from_source(&yaml).map_err(|e| engine_error(&bundle, &e))?;
    std::fs::write(dir.join("bundle.yaml"), &yaml)?;
    let (uh, up) = upstream
        .rsplit_once(':')
        .context("--upstream must be host:port")?;
    let (ih, ip) = idp.rsplit_once(':').context("--idp must be host:port")?;
    let filter_cfg = json!({
        "bundle": yaml,
        // The key reaches the Wasm VM through Envoy's environment (the template's
        // `host_env_keys`), so it never shows in the config dump.
        "handoff_key_env": "GATEHOUSE_HANDOFF_KEY",
        "events_cluster": "gatehouse_http",
        "max_body_bytes": 1048576,
    });
    let tmpl = std::fs::read_to_string(&template)
        .with_context(|| format!("reading {}", template.display()))?;
    let wasm_abs = std::fs::canonicalize(&wasm).unwrap_or(wasm.clone());
    let out = tmpl
        .replace("{{WASM}}", &wasm_abs.display().to_string())
        .replace(
            "{{FILTER_CONFIG}}",
            &serde_json::to_string(&filter_cfg.to_string())?,
        )
        .replace("{{UPSTREAM_HOST}}", uh)
        .replace("{{UPSTREAM_PORT}}", up)
        .replace("{{IDP_HOST}}", ih)
        .replace("{{IDP_PORT}}", ip)
        .replace("{{LISTEN_PORT}}", &listen_port.to_string())
        .replace("{{ADMIN_PORT}}", &admin_port.to_string())
        .replace("{{GRPC_PORT}}", &grpc_port.to_string())
        .replace("{{HTTP_PORT}}", &http_port.to_string());
    std::fs::write(dir.join("envoy.yaml"), out)?;
    eprintln!(
        "local profile ready in {}: bundle digest {}, upstream {upstream}",
        dir.display(),
        engine.digest
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Bundles to measure.
    #[arg(long = "bundle", default_values = ["policies/default.yaml", "policies/examples/credentials-large.yaml"])]
    bundles: Vec<PathBuf>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Print the benchmark request body and exit (used by the Envoy benchmarks).
    #[arg(long)]
    print_request: bool,
    /// With --print-request: the request with 20 KiB of tool schemas instead of the chat.
    #[arg(long)]
    tools: bool,
}

/// A ~4 KiB chat request of ordinary prose with no findings.
pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let body = policy_engine::profile::chat_request();
    let tools_body = policy_engine::profile::tools_request();
    if a.print_request {
        use std::io::Write;
        std::io::stdout().write_all(if a.tools { &tools_body } else { &body })?;
        return Ok(());
    }
    let caller = caller_of(
        "bench",
        &["eng".to_string()],
        Some("bench"),
        Default::default(),
    );
    println!(
        "engine benchmark: {} byte chat request, {:.1}s per figure, 1 thread",
        body.len(),
        a.seconds
    );
    println!(
        "{:<48} {:>10} {:>12} {:>12}",
        "bundle / measure", "prompt patterns", "MB/s", "us/op"
    );
    for f in &a.bundles {
        let engine = load(f)?;
        let Some(policy) = engine.select(&caller) else {
            bail!(
                "{}: no policy admits the bench caller (principal `bench`, group `eng`)",
                f.display()
            );
        };
        let patterns: usize = policy
            .policy
            .prompt_rules
            .iter()
            .map(|r| r.literals.len() + r.regexes.len() + r.detectors.len())
            .sum();
        let run = |label: &str, bytes: usize, op: &mut dyn FnMut()| {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed().as_secs_f64() < a.seconds {
                for _ in 0..16 {
                    op();
                }
                n += 16;
            }
            let secs = start.elapsed().as_secs_f64();
            let mbps = (bytes as f64 * n as f64) / secs / 1e6;
            let us = secs * 1e6 / n as f64;
            println!(
                "{:<48} {:>10} {:>12.1} {:>12.2}",
                format!("{} / {label}", f.display()),
                patterns,
                mbps,
                us
            );
        };
        let mut decide = || {
            let d = engine.decide(&caller, "POST", "/v1/chat/completions", &body);
            assert_eq!(
                d.verdict,
                policy_engine::Verdict::Allow,
                "bench request must be clean"
            );
        };
        run("decide (parse+extract+match)", body.len(), &mut decide);
        let mut decide_tools = || {
            let d = engine.decide(&caller, "POST", "/v1/chat/completions", &tools_body);
            assert_eq!(d.verdict, policy_engine::Verdict::Allow, "{:?}", d.rules);
        };
        run(
            &format!("decide, {} KiB of tool schemas", tools_body.len() / 1024),
            tools_body.len(),
            &mut decide_tools,
        );
        let text: String = serde_json::from_slice::<Value>(&body)?["messages"][1]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut mask = || {
            let _ = engine.mask_text(policy, &text);
        };
        run("mask_text (response masking)", text.len(), &mut mask);
    }
    Ok(())
}

/// Precision and recall per detector over a labeled corpus: a detection is a true positive
/// when its text equals a labeled value of that detector.
pub fn eval(corpus: &Path, show_errors: bool) -> anyhow::Result<()> {
    use policy_engine::detectors;
    use policy_engine::matcher::{PatternSet, Spec, SpecKind};
    let text =
        std::fs::read_to_string(corpus).with_context(|| format!("reading {}", corpus.display()))?;
    let samples: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    println!("{} samples from {}", samples.len(), corpus.display());
    println!(
        "{:<20} {:>5} {:>5} {:>5} {:>10} {:>8}",
        "detector", "TP", "FP", "FN", "precision", "recall"
    );
    for d in detectors::all() {
        let labeled = samples.iter().any(|s| {
            s["labels"]
                .as_array()
                .is_some_and(|ls| ls.iter().any(|l| l["detector"] == d.name))
        });
        if !labeled {
            continue;
        }
        let set = PatternSet::build(
            vec![Spec {
                owner: 0,
                kind: SpecKind::Detector(d),
            }],
            false,
        )?;
        let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
        for s in &samples {
            let t = s["text"].as_str().unwrap_or("");
            let want: Vec<&str> = s["labels"]
                .as_array()
                .map(|ls| {
                    ls.iter()
                        .filter(|l| l["detector"] == d.name)
                        .filter_map(|l| l["value"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            let mut hits = Vec::new();
            set.scan(t.as_bytes(), &mut hits);
            let found: Vec<&str> = hits.iter().map(|h| &t[h.start..h.end]).collect();
            for f in &found {
                if want.contains(f) {
                    tp += 1;
                } else {
                    fp += 1;
                    if show_errors {
                        println!("  FP {}: {f:?} in {t:?}", d.name);
                    }
                }
            }
            for w in want.iter().filter(|w| !found.contains(w)) {
                fn_ += 1;
                if show_errors {
                    println!("  FN {}: {w:?} in {t:?}", d.name);
                }
            }
        }
        let precision = f64::from(tp) / f64::from((tp + fp).max(1));
        let recall = f64::from(tp) / f64::from((tp + fn_).max(1));
        println!(
            "{:<20} {:>5} {:>5} {:>5} {:>10.3} {:>8.3}",
            d.name, tp, fp, fn_, precision, recall
        );
    }
    Ok(())
}
