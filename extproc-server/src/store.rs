//! The session log. The embedded default store appends JSON lines to a file; every record
//! carries a sequence number and a timestamp so it can be replayed in order.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where session records go.
pub trait Store: Send + Sync {
    fn append(&self, record: Value);
    /// The most recent `limit` records, oldest first.
    fn recent(&self, limit: usize) -> Vec<Value>;
}

/// Errors opening a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open session log {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Append-only JSON-lines file.
pub struct FileStore {
    path: PathBuf,
    inner: Mutex<(std::fs::File, u64)>,
}

impl FileStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("sessions.jsonl");
        let err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let seq = std::fs::read_to_string(&path)
            .map(|s| s.lines().count() as u64)
            .unwrap_or(0);
        use std::os::unix::fs::OpenOptionsExt;
        // The log holds who asked what: readable by the server's user only.
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(err)?;
        Ok(FileStore {
            path,
            inner: Mutex::new((f, seq)),
        })
    }
}

impl Store for FileStore {
    fn append(&self, mut record: Value) {
        let Ok(mut g) = self.inner.lock() else { return };
        g.1 += 1;
        if let Value::Object(o) = &mut record {
            o.insert("seq".into(), Value::from(g.1));
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            o.insert("ts_ms".into(), Value::from(ts));
        }
        let mut line = record.to_string();
        line.push('\n');
        if let Err(e) = g.0.write_all(line.as_bytes()) {
            tracing::error!(error = %e, "session log write failed");
        }
    }

    fn recent(&self, limit: usize) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(limit);
        lines[start..]
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// In-memory store (tests, and a server run without a session log directory).
#[derive(Default)]
pub struct MemoryStore(Mutex<Vec<Value>>);

impl Store for MemoryStore {
    fn append(&self, record: Value) {
        if let Ok(mut v) = self.0.lock() {
            v.push(record);
        }
    }

    fn recent(&self, limit: usize) -> Vec<Value> {
        let v = self.0.lock().map(|v| v.clone()).unwrap_or_default();
        v[v.len().saturating_sub(limit)..].to_vec()
    }
}
