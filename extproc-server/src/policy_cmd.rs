//! `gatehouse policy`: check, test and explain bundles.

use crate::cli::engine_error;
use anyhow::Context as _;
use policy_engine::bundle::TestCase;
use policy_engine::{Caller, Engine};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum PolicyCmd {
    /// Validate a bundle; print every error with file, line and field, or its digest.
    Check { files: Vec<PathBuf> },
    /// Run the test cases stored in a bundle.
    Test { files: Vec<PathBuf> },
    /// Show which policy a caller gets and why a request gets its decision.
    Explain {
        file: PathBuf,
        #[arg(long)]
        principal: String,
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long)]
        issuer: Option<String>,
        #[arg(long, default_value = "/v1/chat/completions")]
        path: String,
        /// Request body (JSON), or @FILE.
        #[arg(long)]
        body: String,
    },
}

pub fn load(file: &Path) -> anyhow::Result<Engine> {
    let src =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Engine::from_source(&src).map_err(|e| engine_error(file, &e))
}

pub fn caller_of(
    principal: &str,
    groups: &[String],
    issuer: Option<&str>,
    claims: serde_json::Map<String, Value>,
) -> Caller {
    Caller {
        issuer: issuer.unwrap_or("test").to_owned(),
        principal: principal.to_owned(),
        groups: groups.to_vec(),
        claims,
        expires_at: u64::MAX,
    }
}

fn run_case(engine: &Engine, t: &TestCase) -> Result<(), String> {
    let caller = caller_of(
        &t.identity.principal,
        &t.identity.groups,
        t.identity.issuer.as_deref(),
        t.identity.claims.clone().into_iter().collect(),
    );
    let body = serde_json::to_vec(&t.request.body).unwrap_or_default();
    let d = engine.decide(&caller, &t.request.method, &t.request.path, &body);
    let mut problems = Vec::new();
    if d.verdict.as_str() != t.expect.verdict {
        problems.push(format!(
            "verdict {} (expected {})",
            d.verdict.as_str(),
            t.expect.verdict
        ));
    }
    for r in &t.expect.rules {
        if !d.rules.contains(r) {
            problems.push(format!("rule `{r}` did not fire (fired: {:?})", d.rules));
        }
    }
    if let Some(p) = &t.expect.policy {
        if d.policy.as_deref() != Some(p) {
            problems.push(format!("policy {:?} (expected `{p}`)", d.policy));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

pub fn policy(cmd: PolicyCmd) -> ExitCode {
    match cmd {
        PolicyCmd::Check { files } => {
            let mut ok = true;
            for f in &files {
                match load(f) {
                    Ok(e) => println!(
                        "ok: {}: bundle `{}`, {} issuer(s), {} polic(ies), {} test(s), digest {}",
                        f.display(),
                        e.bundle.metadata.name,
                        e.bundle.identity.issuers.len(),
                        e.bundle.policies.len(),
                        e.bundle.tests.len(),
                        e.digest
                    ),
                    Err(e) => {
                        ok = false;
                        eprintln!("{e}");
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        PolicyCmd::Test { files } => {
            let (mut passed, mut failed) = (0, 0);
            for f in &files {
                let engine = match load(f) {
                    Ok(e) => e,
                    Err(e) => {
                        eprintln!("{e}");
                        failed += 1;
                        continue;
                    }
                };
                for t in &engine.bundle.tests {
                    match run_case(&engine, t) {
                        Ok(()) => {
                            passed += 1;
                            println!("PASS {}: {}", f.display(), t.name);
                        }
                        Err(why) => {
                            failed += 1;
                            println!("FAIL {}: {}: {why}", f.display(), t.name);
                        }
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        PolicyCmd::Explain {
            file,
            principal,
            groups,
            issuer,
            path,
            body,
        } => {
            let r = (|| -> anyhow::Result<()> {
                let engine = load(&file)?;
                let body = match body.strip_prefix('@') {
                    Some(p) => std::fs::read(p)?,
                    None => body.into_bytes(),
                };
                let caller = caller_of(&principal, &groups, issuer.as_deref(), Default::default());
                let mut considered = Vec::new();
                for p in engine.bundle.policies.iter() {
                    let admitted = engine.select(&caller).is_some_and(|s| s.policy.id == p.id);
                    considered
                        .push(json!({"policy": p.id, "selected": admitted, "match": p.matcher}));
                    if admitted {
                        break;
                    }
                }
                let d = engine.decide(&caller, "POST", &path, &body);
                let out = json!({
                    "bundle": {"name": engine.bundle.metadata.name, "digest": engine.digest},
                    "caller": {"principal": principal, "groups": groups},
                    "policies_in_order": considered,
                    "decision": d,
                    "enforced": d.enforced().as_str(),
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
                Ok(())
            })();
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
