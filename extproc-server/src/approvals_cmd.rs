//! `gatehouse approvals`: reviewers list, read and decide approvals through the server's HTTP
//! API, with their own token (`--token` or `GATEHOUSE_TOKEN`).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Conn {
    /// The Gatehouse server's HTTP API.
    #[arg(
        long,
        env = "GATEHOUSE_SERVER",
        default_value = "http://127.0.0.1:18082"
    )]
    server: String,
    /// The reviewer's OIDC access token.
    #[arg(long, env = "GATEHOUSE_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(clap::Subcommand)]
pub enum ApprovalsCmd {
    /// Approvals you may decide on, newest first.
    List {
        #[command(flatten)]
        conn: Conn,
        /// pending, approved, rejected, expired, cancelled, used (default: pending).
        #[arg(long, default_value = "pending")]
        state: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One approval: the request's summary, the rule, the reviewers and their decisions.
    Show {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Approve a request.
    Approve {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Reject a request; the caller gets the reason.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// An approval id as the server makes them (`apr-` and hex), so it is safe in a URL path.
fn approval_id(id: &str) -> anyhow::Result<&str> {
    let hex = id.strip_prefix("apr-").unwrap_or("");
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || hex.len() > 64 {
        anyhow::bail!("`{id}` is not an approval id (apr-...)");
    }
    Ok(id)
}

/// One call to the API: the JSON answer, or the API's error message.
fn call(
    conn: &Conn,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}{path}", conn.server.trim_end_matches('/'));
    let req = ureq::request(method, &url)
        .set("authorization", &format!("Bearer {}", conn.token.trim()))
        .timeout(std::time::Duration::from_secs(15));
    let res = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match res {
        Ok(r) => Ok(r.into_json()?),
        Err(ureq::Error::Status(code, r)) => {
            let v: serde_json::Value = r.into_json().unwrap_or_default();
            let msg = v["error"]["message"]
                .as_str()
                .unwrap_or("(no message)")
                .to_owned();
            anyhow::bail!("{code}: {msg}")
        }
        Err(e) => anyhow::bail!("cannot reach {url}: {e}"),
    }
}

fn when(ms: u64) -> String {
    let now = crate::hold::now_ms();
    if ms > now {
        format!("in {}s", (ms - now) / 1000)
    } else {
        format!("{}s ago", (now - ms) / 1000)
    }
}

pub fn run(cmd: ApprovalsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ApprovalsCmd::List { conn, state, json } => {
            if crate::approvals::State::parse(&state).is_none() {
                anyhow::bail!("unknown state `{state}` (pending, approved, rejected, expired, cancelled, used)");
            }
            let v = call(&conn, "GET", &format!("/v1/approvals?state={state}"), None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<28} {:<9} {:<16} {:<16} {:<10} summary",
                "id", "state", "requester", "rule", "expires"
            );
            for a in v.as_array().into_iter().flatten() {
                let summary: String = a["summary"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(60)
                    .collect();
                println!(
                    "{:<28} {:<9} {:<16} {:<16} {:<10} {summary}",
                    a["id"].as_str().unwrap_or(""),
                    a["state"].as_str().unwrap_or(""),
                    a["requester"]["principal"].as_str().unwrap_or(""),
                    a["requirements"][0]["rule"].as_str().unwrap_or(""),
                    when(a["expires_ms"].as_u64().unwrap_or(0)),
                );
            }
        }
        ApprovalsCmd::Show { id, conn } => {
            let v = call(
                &conn,
                "GET",
                &format!("/v1/approvals/{}", approval_id(&id)?),
                None,
            )?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        ApprovalsCmd::Approve { id, reason, conn } => {
            let v = call(
                &conn,
                "POST",
                &format!("/v1/approvals/{}/approve", approval_id(&id)?),
                Some(serde_json::json!({"reason": reason})),
            )?;
            println!("{id}: {}", v["state"].as_str().unwrap_or("?"));
        }
        ApprovalsCmd::Deny { id, reason, conn } => {
            let v = call(
                &conn,
                "POST",
                &format!("/v1/approvals/{}/deny", approval_id(&id)?),
                Some(serde_json::json!({"reason": reason})),
            )?;
            println!("{id}: {}", v["state"].as_str().unwrap_or("?"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
