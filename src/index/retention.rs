//! Retention: how long each signal is kept (per tenant, with defaults) and how large the data
//! directory may grow, applied by deleting whole time partitions, oldest first.
//!
//! # Rules
//!
//! - A partition is deleted whole once all of it (its end) is older than the longest age any
//!   tenant keeps its signal for; a tenant that keeps a signal for less has its documents
//!   deleted from the partitions past its own age (a tantivy delete by tenant term, reclaimed
//!   by merges), since partitions are shared by tenants.
//! - Past `max_bytes`, the oldest partitions of any signal go until the directory fits.
//! - Never a partition with records the index checkpoint does not cover (staged, in a dirty
//!   writer, or committed above the checkpoint): a crash would replay them into a new partition
//!   and the WAL would have to keep them anyway. The indexer thread runs retention, so this
//!   check and the deletion cannot race a write; such partitions wait for a later run.
//! - A query whose whole range ends before the *horizon* — the later of "now minus the
//!   tenant's age" and the end of the newest partition deleted for the signal — fails with
//!   `PastRetention` instead of answering with nothing.
//!
//! # Crash safety
//!
//! The horizon is written (atomically) before a partition goes, so after a crash it is never
//! behind what was deleted. A partition is renamed into `index/trash/` (atomic, then the
//! directory is fsynced), taken out of the set queries see, and only then deleted file by
//! file; `Store::open` empties the trash, finishing a deletion a crash interrupted. Queries
//! still holding the partition keep reading its open files until they finish.

use super::{IndexError, PartitionKey, Store};
use crate::config::RetentionConfig;
use crate::model::time::parse_duration;
use crate::model::{Signal, TenantId};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tantivy::collector::Count;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tantivy::Term;

/// Where partitions go to be deleted, under the index root.
pub(super) const TRASH_DIR: &str = "trash";
/// Per signal, the end (ns) of the newest partition deleted: the persisted part of the horizon.
const HORIZON_FILE: &str = "retention.json";

/// Maximum ages in nanoseconds, by signal (`Signal::ALL` order); 0 keeps forever.
type Ages = [u64; 3];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    ages: Ages,
    tenants: BTreeMap<TenantId, [Option<u64>; 3]>,
    pub max_bytes: u64,
    pub interval: Duration,
}

fn slot(signal: Signal) -> usize {
    Signal::ALL
        .iter()
        .position(|s| *s == signal)
        .expect("a signal")
}

impl Policy {
    /// From validated settings (durations and tenants were checked at load).
    pub fn from_config(c: &RetentionConfig) -> Policy {
        let age = |v: &str| parse_duration(v).unwrap_or(0);
        let tenants = c
            .tenants
            .iter()
            .filter_map(|(t, r)| {
                let ages = [&r.spans, &r.logs, &r.metrics].map(|v| v.as_deref().map(age));
                Some((TenantId::new(t).ok()?, ages))
            })
            .collect();
        Policy {
            ages: [age(&c.spans), age(&c.logs), age(&c.metrics)],
            tenants,
            max_bytes: c.max_bytes,
            interval: Duration::from_secs(c.interval_secs.max(1)),
        }
    }

    /// Whether retention ever deletes anything.
    pub fn is_active(&self) -> bool {
        self.max_bytes > 0
            || self.ages.iter().any(|a| *a > 0)
            || self
                .tenants
                .values()
                .flatten()
                .any(|a| a.is_some_and(|a| a > 0))
    }

    /// How long `tenant` keeps `signal` (0: forever).
    pub fn age(&self, signal: Signal, tenant: &TenantId) -> u64 {
        self.tenants
            .get(tenant)
            .and_then(|t| t[slot(signal)])
            .unwrap_or(self.ages[slot(signal)])
    }

    /// The age past which a partition of `signal` goes whole: the longest any tenant keeps it,
    /// `None` when some tenant keeps it forever.
    fn partition_age(&self, signal: Signal) -> Option<u64> {
        let mut ages = std::iter::once(self.ages[slot(signal)])
            .chain(self.tenants.values().filter_map(|t| t[slot(signal)]));
        let longest = ages.try_fold(0u64, |m, a| (a > 0).then_some(m.max(a)))?;
        (longest > 0).then_some(longest)
    }
}

/// Why a partition was deleted, as the metric label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    Age,
    Size,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Age => "age",
            Reason::Size => "size",
        }
    }
}

/// What retention needs from the indexer thread, which owns the partition writers.
pub(super) trait Writers {
    /// Whether `key` may be deleted now, closing its writer if so: false while records of it
    /// are not covered by the index checkpoint.
    fn release(&mut self, key: PartitionKey) -> Result<bool, IndexError>;
    /// Deletes `tenant`'s documents from the partition and commits.
    fn delete_tenant(&mut self, key: PartitionKey, tenant: &TenantId) -> Result<(), IndexError>;
}

/// Reads the persisted horizons; a missing file is none, an unreadable one is logged and
/// treated as none (it only words answers, it deletes nothing).
pub(super) fn read_horizons(root: &Path) -> Ages {
    let path = root.join(HORIZON_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return [0; 3],
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "retention horizons unreadable");
            return [0; 3];
        }
    };
    let parsed: Result<BTreeMap<String, u64>, _> = serde_json::from_str(&text);
    match parsed {
        Ok(map) => Signal::ALL.map(|s| map.get(s.as_str()).copied().unwrap_or(0)),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "retention horizons unreadable");
            [0; 3]
        }
    }
}

fn write_horizons(root: &Path, horizons: &Ages) -> std::io::Result<()> {
    use std::io::Write;
    let map: BTreeMap<&str, u64> = Signal::ALL
        .iter()
        .map(|s| (s.as_str(), horizons[slot(*s)]))
        .collect();
    let tmp = root.join("retention.json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(&map).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, root.join(HORIZON_FILE))?;
    std::fs::File::open(root)?.sync_all()
}

/// Finishes deletions a crash interrupted: whatever is in the trash goes.
pub(super) fn empty_trash(root: &Path) -> std::io::Result<()> {
    let trash = root.join(TRASH_DIR);
    if !trash.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(&trash)? {
        let entry = entry?;
        tracing::warn!(partition = %entry.file_name().to_string_lossy(), "finishing a retention deletion interrupted by a stop");
        std::fs::remove_dir_all(entry.path())?;
    }
    Ok(())
}

/// Bytes of the files under `dir` (0 when it does not exist).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

impl Store {
    /// Sets the retention policy (at start-up, before the indexer runs it).
    pub fn set_retention(&self, policy: Policy) {
        *self.retention.write() = policy;
    }

    pub fn retention(&self) -> Policy {
        self.retention.read().clone()
    }

    /// The earliest time `tenant`'s `signal` records are kept from (0: all are).
    pub fn retained_from(&self, signal: Signal, tenant: &TenantId) -> u64 {
        let age = self.retention.read().age(signal, tenant);
        let by_age = match age {
            0 => 0,
            a => crate::now_ns().saturating_sub(a),
        };
        by_age.max(self.horizons.read()[slot(signal)])
    }

    /// Fails with `PastRetention` when all of `[start_ns, end_ns]` lies before what is kept.
    pub fn check_retained(
        &self,
        signal: Signal,
        tenant: &TenantId,
        start_ns: u64,
        end_ns: u64,
    ) -> Result<(), IndexError> {
        let from = self.retained_from(signal, tenant);
        if end_ns < from {
            return Err(IndexError::PastRetention {
                signal: signal.as_str(),
                start_ns,
                end_ns,
                retained_from_ns: from,
            });
        }
        Ok(())
    }

    /// Deletes a partition: horizon first, then rename into the trash, then the files.
    /// Returns its size.
    fn drop_partition(&self, key: PartitionKey, reason: Reason) -> Result<u64, IndexError> {
        let dir = self.dir_of(key);
        let bytes = dir_bytes(&dir);
        let end_ns = self
            .existing(key)
            .map_or(key.start_secs * 1_000_000_000, |p| p.end_ns);
        {
            let mut horizons = self.horizons.write();
            let h = &mut horizons[slot(key.signal)];
            if end_ns > *h {
                *h = end_ns;
                write_horizons(&self.root, &horizons)?;
            }
        }
        let trash = self.root.join(TRASH_DIR);
        std::fs::create_dir_all(&trash)?;
        let to = trash.join(format!("{}-{}", key.signal.as_str(), key.start_secs));
        std::fs::rename(&dir, &to)?;
        std::fs::File::open(self.root.join(key.signal.as_str()))?.sync_all()?;
        self.partitions.write().remove(&key);
        std::fs::remove_dir_all(&to)?;
        let labels = [key.signal.as_str(), reason.as_str()];
        let t = &self.telemetry;
        t.retention_partitions_dropped
            .with_label_values(&labels)
            .inc();
        t.retention_bytes_dropped
            .with_label_values(&labels)
            .inc_by(bytes);
        tracing::info!(
            signal = key.signal.as_str(),
            partition = key.start_secs,
            reason = reason.as_str(),
            bytes,
            "retention deleted a partition"
        );
        Ok(bytes)
    }

    /// Every partition, oldest end first.
    fn all_partitions(&self) -> Vec<(u64, PartitionKey)> {
        let mut all: Vec<(u64, PartitionKey)> = self
            .partitions
            .read()
            .values()
            .map(|p| (p.end_ns, p.key))
            .collect();
        all.sort();
        all
    }

    /// Whether `tenant` has documents in the partition (deleted ones not counted).
    fn holds_tenant(&self, key: PartitionKey, tenant: &TenantId) -> Result<bool, IndexError> {
        let Some(p) = self.existing(key) else {
            return Ok(false);
        };
        let query = TermQuery::new(
            Term::from_field_text(self.fields.tenant, tenant.as_str()),
            IndexRecordOption::Basic,
        );
        Ok(p.reader.searcher().search(&query, &Count)? > 0)
    }
}

/// One retention pass at `now_ns`: ages (whole partitions, then single tenants), then size.
pub(super) fn run(
    store: &Store,
    data_dir: &Path,
    now_ns: u64,
    writers: &mut impl Writers,
) -> Result<(), IndexError> {
    let policy = store.retention();
    if !policy.is_active() {
        return Ok(());
    }
    let mut deferred = 0u64;
    let horizons = *store.horizons.read();
    for (end_ns, key) in store.all_partitions() {
        let age_cut = policy
            .partition_age(key.signal)
            .map_or(0, |a| now_ns.saturating_sub(a));
        // A partition wholly older than the horizon was re-created by late records or a
        // replay after its range was deleted: it goes again, for the same reason.
        let reason = if end_ns <= age_cut {
            Reason::Age
        } else if end_ns <= horizons[slot(key.signal)] {
            Reason::Size
        } else {
            continue;
        };
        delete(store, key, reason, writers, &mut deferred)?;
    }
    for (tenant, _) in store.tenants() {
        for signal in Signal::ALL {
            let age = policy.age(signal, &tenant);
            if age == 0 || policy.partition_age(signal) == Some(age) {
                continue;
            }
            let cut = now_ns.saturating_sub(age);
            for (end_ns, key) in store.all_partitions() {
                if key.signal != signal || end_ns > cut {
                    continue;
                }
                if store.holds_tenant(key, &tenant)? {
                    writers.delete_tenant(key, &tenant)?;
                    store
                        .telemetry
                        .retention_tenant_deletions
                        .with_label_values(&[signal.as_str()])
                        .inc();
                    tracing::info!(
                        signal = signal.as_str(),
                        partition = key.start_secs,
                        tenant = tenant.as_str(),
                        "retention deleted a tenant's records past its age"
                    );
                }
            }
        }
    }
    let mut total = dir_bytes(data_dir);
    if policy.max_bytes > 0 && total > policy.max_bytes {
        for (_, key) in store.all_partitions() {
            if total <= policy.max_bytes {
                break;
            }
            if let Some(bytes) = delete(store, key, Reason::Size, writers, &mut deferred)? {
                total = total.saturating_sub(bytes);
            }
        }
        if total > policy.max_bytes {
            tracing::warn!(
                bytes = total,
                max_bytes = policy.max_bytes,
                "data directory over retention.max_bytes: what is left is not yet indexed or is the WAL"
            );
        }
    }
    store.telemetry.data_dir_bytes.set(total as i64);
    store.telemetry.retention_deferred.inc_by(deferred);
    Ok(())
}

/// Deletes the partition if the indexer releases it; counts it as deferred if not.
fn delete(
    store: &Store,
    key: PartitionKey,
    reason: Reason,
    writers: &mut impl Writers,
    deferred: &mut u64,
) -> Result<Option<u64>, IndexError> {
    if !writers.release(key)? {
        *deferred += 1;
        return Ok(None);
    }
    store.drop_partition(key, reason).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TenantRetention;

    const DAY: u64 = 86_400_000_000_000;

    #[test]
    fn tenant_ages_override_and_widen_the_partition_age() {
        let mut c = RetentionConfig {
            spans: "2d".into(),
            logs: "0".into(),
            ..Default::default()
        };
        c.tenants.insert(
            "long".into(),
            TenantRetention {
                spans: Some("5d".into()),
                ..Default::default()
            },
        );
        let p = Policy::from_config(&c);
        let long = TenantId::new("long").unwrap();
        assert_eq!(p.age(Signal::Spans, &TenantId::default()), 2 * DAY);
        assert_eq!(p.age(Signal::Spans, &long), 5 * DAY);
        assert_eq!(p.partition_age(Signal::Spans), Some(5 * DAY));
        assert_eq!(p.partition_age(Signal::Logs), None);
        c.tenants.get_mut("long").unwrap().spans = Some("0".into());
        let p = Policy::from_config(&c);
        assert_eq!(
            p.partition_age(Signal::Spans),
            None,
            "one tenant keeps forever"
        );
        assert!(p.is_active());
        assert!(!Policy::from_config(&RetentionConfig::default()).is_active());
    }
}
