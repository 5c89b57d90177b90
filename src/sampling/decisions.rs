//! Every tail-sampling decision, kept so that a dropped trace answers with what happened to it.
//!
//! # On disk
//!
//! `<data_dir>/sampling/decisions`: the magic `WEFTDEC` and a format version byte
//! (`VERSION`), then records of `u32` length (little-endian), `u32` CRC-32 of the payload and
//! the payload, a postcard-encoded `Decision`. Appended and fsynced each time decisions are
//! written. A later record for the same trace replaces an earlier one (a drop later kept by an
//! exemplar, a drop whose spans were since pruned). A torn or damaged tail (a crash
//! mid-write) ends the reading and is counted; the file is then rewritten without it, and
//! whenever it holds a quarter more records than traces. A newer version is refused rather
//! than misread.

use crate::model::{TenantId, TraceId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 7] = b"WEFTDEC";
pub const VERSION: u8 = 1;

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

type Key = (TenantId, TraceId);

struct Inner {
    file: std::fs::File,
    lines: usize,
    all: HashMap<Key, Decision>,
}

pub struct Decisions {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// 1 when start-up found a torn or damaged tail (and dropped it), else 0.
    pub skipped: usize,
}

fn key_of(d: &Decision) -> Option<Key> {
    Some((
        TenantId::new(&d.tenant).ok()?,
        TraceId::from_hex(&d.trace_id).ok()?,
    ))
}

/// One record: length, CRC-32 and the postcard payload.
fn frame(d: &Decision, out: &mut Vec<u8>) {
    let payload = postcard::to_allocvec(d).expect("decisions always encode");
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// The records of a file's body, up to the first torn or damaged one; and whether one was.
fn unframe(mut body: &[u8]) -> (Vec<Decision>, bool) {
    let mut out = Vec::new();
    while !body.is_empty() {
        let Some((head, rest)) = body.split_first_chunk::<8>() else {
            return (out, true);
        };
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        let Some(payload) = rest.get(..len) else {
            return (out, true);
        };
        match postcard::from_bytes::<Decision>(payload) {
            Ok(d) if crc32fast::hash(payload) == crc => out.push(d),
            _ => return (out, true),
        }
        body = &rest[len..];
    }
    (out, false)
}

impl Decisions {
    pub fn open(data_dir: &Path) -> std::io::Result<Decisions> {
        let dir = data_dir.join("sampling");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("decisions");
        let mut all = HashMap::new();
        let mut damaged = false;
        if path.exists() {
            let bytes = std::fs::read(&path)?;
            let body = match bytes.split_first_chunk::<8>() {
                Some((head, body)) if &head[..7] == MAGIC => {
                    if head[7] > VERSION {
                        return Err(std::io::Error::other(format!(
                            "{}: format version {} is newer than this weft reads ({VERSION})",
                            path.display(),
                            head[7]
                        )));
                    }
                    body
                }
                _ if bytes.is_empty() => &[][..],
                _ => {
                    return Err(std::io::Error::other(format!(
                        "{}: not a decisions file",
                        path.display()
                    )))
                }
            };
            let (decisions, torn) = unframe(body);
            damaged = torn;
            for d in decisions {
                if let Some(k) = key_of(&d) {
                    all.insert(k, d);
                }
            }
        }
        if damaged {
            tracing::warn!(path = %path.display(), "damaged decisions tail skipped");
        }
        // Rewritten at start: a damaged tail goes, so appends follow whole records.
        let file = rewrite(&path, &all)?;
        let lines = all.len();
        Ok(Decisions {
            path,
            inner: Mutex::new(Inner { file, lines, all }),
            skipped: damaged as usize,
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
            frame(d, &mut buf);
        }
        inner.file.write_all(&buf)?;
        inner.file.sync_data()?;
        inner.lines += decisions.len();
        for d in decisions {
            if let Some(k) = key_of(&d) {
                inner.all.insert(k, d);
            }
        }
        if inner.lines > inner.all.len() + inner.all.len() / 4 + 1024 {
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

/// Writes the magic, the version and the latest decision of every trace to a new file,
/// replacing `path`.
fn rewrite(path: &Path, all: &HashMap<Key, Decision>) -> std::io::Result<std::fs::File> {
    let tmp = path.with_extension("tmp");
    let mut buf = MAGIC.to_vec();
    buf.push(VERSION);
    for d in all.values() {
        frame(d, &mut buf);
    }
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&buf)?;
    f.sync_all()?;
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
        let path = dir.path().join("sampling/decisions");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 9]).unwrap();
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
        let mut newer = MAGIC.to_vec();
        newer.push(VERSION + 1);
        std::fs::write(dir.path().join("sampling/decisions"), newer).unwrap();
        assert!(Decisions::open(dir.path()).is_err());
    }
}
