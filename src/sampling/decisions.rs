//! Every tail-sampling decision, kept so that a dropped trace answers with what happened to it.
//!
//! # On disk
//!
//! `<data_dir>/sampling/decisions.jsonl`: a first line `{"format":"weft-sampling-decisions",
//! "version":1}`, then one JSON `Decision` per line, appended and fsynced each time decisions
//! are written. A later line for the same trace replaces an earlier one (a drop later kept by
//! an exemplar, a drop whose spans were since pruned). A torn last line (a crash mid-write) is
//! skipped and counted; a file of a newer version is refused rather than misread. The file is
//! rewritten with the latest line per trace when it holds twice as many lines as traces.

use crate::model::{TenantId, TraceId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "weft-sampling-decisions";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub tenant: String,
    pub trace_id: String,
    pub keep: bool,
    pub policy: String,
    pub reason: String,
    pub decided_ns: u64,
    pub spans: u64,
    pub services: Vec<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// When the trace's spans were deleted from the index (dropped traces, past the
    /// full-fidelity horizon).
    pub pruned_ns: Option<u64>,
}

impl Decision {
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "decision": if self.keep { "kept" } else { "dropped" },
            "policy": self.policy,
            "reason": self.reason,
            "decided_at": crate::model::rfc3339(self.decided_ns),
            "decided_unix_nano": self.decided_ns.to_string(),
            "spans": self.spans,
            "services": self.services,
            "start_unix_nano": self.start_ns.to_string(),
            "duration_ns": self.duration_ns(),
            "pruned_at": self.pruned_ns.map(crate::model::rfc3339),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
}

type Key = (TenantId, TraceId);

struct Inner {
    file: std::fs::File,
    lines: usize,
    all: HashMap<Key, Decision>,
}

pub struct Decisions {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Lines skipped at start-up because they did not parse (a torn tail).
    pub skipped: usize,
}

fn key_of(d: &Decision) -> Option<Key> {
    Some((
        TenantId::new(&d.tenant).ok()?,
        TraceId::from_hex(&d.trace_id).ok()?,
    ))
}

fn header_line() -> String {
    serde_json::to_string(&Header {
        format: FORMAT.into(),
        version: VERSION,
    })
    .expect("header encodes")
}

impl Decisions {
    pub fn open(data_dir: &Path) -> std::io::Result<Decisions> {
        let dir = data_dir.join("sampling");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("decisions.jsonl");
        let mut all = HashMap::new();
        let mut lines = 0;
        let mut skipped = 0;
        if path.exists() {
            let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
            for (n, line) in reader.lines().enumerate() {
                let line = line?;
                if n == 0 {
                    let header: Header = serde_json::from_str(&line).map_err(|e| {
                        std::io::Error::other(format!(
                            "{}: not a decisions file: {e}",
                            path.display()
                        ))
                    })?;
                    if header.format != FORMAT || header.version > VERSION {
                        return Err(std::io::Error::other(format!(
                            "{}: format {} version {} is not one this weft reads (version {VERSION})",
                            path.display(),
                            header.format,
                            header.version
                        )));
                    }
                    continue;
                }
                match serde_json::from_str::<Decision>(&line)
                    .ok()
                    .and_then(|d| Some((key_of(&d)?, d)))
                {
                    Some((k, d)) => {
                        all.insert(k, d);
                        lines += 1;
                    }
                    None => skipped += 1,
                }
            }
        }
        if skipped > 0 {
            tracing::warn!(skipped, path = %path.display(), "unreadable decision lines skipped");
        }
        // Rewritten at start: drops a torn tail so later appends start on a fresh line.
        let file = rewrite(&path, &all)?;
        lines = lines.min(all.len());
        Ok(Decisions {
            path,
            inner: Mutex::new(Inner { file, lines, all }),
            skipped,
        })
    }

    pub fn get(&self, tenant: &TenantId, trace_id: TraceId) -> Option<Decision> {
        self.inner
            .lock()
            .all
            .get(&(tenant.clone(), trace_id))
            .cloned()
    }

    /// Records decisions durably (one fsync for all of them).
    pub fn record(&self, decisions: Vec<Decision>) -> std::io::Result<()> {
        if decisions.is_empty() {
            return Ok(());
        }
        let mut inner = self.inner.lock();
        let mut buf = Vec::new();
        for d in &decisions {
            serde_json::to_writer(&mut buf, d).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        inner.file.write_all(&buf)?;
        inner.file.sync_data()?;
        inner.lines += decisions.len();
        for d in decisions {
            if let Some(k) = key_of(&d) {
                inner.all.insert(k, d);
            }
        }
        if inner.lines > 2 * inner.all.len() + 1024 {
            inner.file = rewrite(&self.path, &inner.all)?;
            inner.lines = inner.all.len();
        }
        Ok(())
    }

    /// Dropped traces whose spans are still stored and ended before `before_ns`.
    pub fn due_for_pruning(&self, before_ns: u64, limit: usize) -> Vec<Decision> {
        let inner = self.inner.lock();
        let mut due: Vec<Decision> = inner
            .all
            .values()
            .filter(|d| !d.keep && d.pruned_ns.is_none() && d.end_ns < before_ns)
            .cloned()
            .collect();
        due.sort_by_key(|d| d.end_ns);
        due.truncate(limit);
        due
    }

    /// (kept, dropped) counts.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        let kept = inner.all.values().filter(|d| d.keep).count();
        (kept, inner.all.len() - kept)
    }
}

/// Writes the header and the latest decision of every trace to a new file, replacing `path`.
fn rewrite(path: &Path, all: &HashMap<Key, Decision>) -> std::io::Result<std::fs::File> {
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        writeln!(w, "{}", header_line())?;
        for d in all.values() {
            serde_json::to_writer(&mut w, d).map_err(std::io::Error::other)?;
            w.write_all(b"\n")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    std::fs::OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(trace: u8, keep: bool) -> Decision {
        Decision {
            tenant: "default".into(),
            trace_id: TraceId([trace; 16]).to_hex(),
            keep,
            policy: "p".into(),
            reason: "r".into(),
            decided_ns: 5,
            spans: 3,
            services: vec!["a".into()],
            start_ns: 1,
            end_ns: 4,
            pruned_ns: None,
        }
    }

    #[test]
    fn survives_reopen_latest_wins_and_a_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let t = TenantId::default();
        {
            let d = Decisions::open(dir.path()).unwrap();
            d.record(vec![decision(1, false), decision(2, true)])
                .unwrap();
            d.record(vec![decision(1, true)]).unwrap();
        }
        let path = dir.path().join("sampling/decisions.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"tenant\":\"default\",\"tra").unwrap();
        drop(f);
        let d = Decisions::open(dir.path()).unwrap();
        assert_eq!(d.skipped, 1);
        assert!(d.get(&t, TraceId([1; 16])).unwrap().keep);
        assert!(d.get(&t, TraceId([2; 16])).unwrap().keep);
        d.record(vec![decision(3, false)]).unwrap();
        drop(d);
        let d = Decisions::open(dir.path()).unwrap();
        assert_eq!(d.skipped, 0);
        assert_eq!(d.counts(), (2, 1));
        assert_eq!(d.due_for_pruning(10, 10).len(), 1);
    }

    #[test]
    fn a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sampling")).unwrap();
        std::fs::write(
            dir.path().join("sampling/decisions.jsonl"),
            format!("{{\"format\":\"{FORMAT}\",\"version\":{}}}\n", VERSION + 1),
        )
        .unwrap();
        assert!(Decisions::open(dir.path()).is_err());
    }
}
