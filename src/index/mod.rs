//! Indexes: one tantivy index per signal and time partition, the writer thread that fills them
//! from the WAL's acknowledged batches, and the readers that answer queries.
//! May depend on `model`, `wal`, `config`, `error` and `telemetry`.
//!
//! # Layout and recovery
//!
//! `<data_dir>/index/<signal>/<partition start, Unix seconds>/` is a tantivy index. Each commit
//! of a partition carries, as its payload, the highest WAL sequence number whose records for
//! that partition it contains. `<data_dir>/index/checkpoint` holds the sequence number up to
//! which *every* partition has committed; the WAL may drop what lies below it. At start-up the
//! WAL is replayed from the checkpoint, and a record is re-added to its partition only if its
//! sequence number is above that partition's own payload: replay neither loses nor doubles.

mod document;
mod prune;
mod query;
mod red;
pub mod retention;
mod schema;
mod search;
mod select;
mod writer;

pub use document::build as build_document;
pub use prune::{LogsToDelete, PruneRequest, MAX_TRACES_PER_PRUNE};
pub use query::{parse_text_query, LogQuery, TraceRecords};
pub use red::{RedConfig, RED_DURATION, RED_ERRORS, RED_REQUESTS, RED_SCOPE};
pub use schema::Fields;
pub use search::{Matches, SpanTextField, TermList, TraceShape};
pub use select::{Filter, Pick, SEVERITY_ERROR, STATUS_ERROR};
pub use writer::{IndexMsg, Indexer};

use crate::config::IndexConfig;
use crate::error::{ErrorCode, ServiceError};
use crate::model::{Signal, TenantId};
use crate::telemetry::Telemetry;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tantivy::{Index, IndexReader, ReloadPolicy};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("index i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid query: {0}")]
    Query(String),
    #[error("more than {limit} points match; narrow the time range or the selector")]
    TooManyPoints { limit: usize },
    /// The query would cost more than a bound allows; the message names the bound and how
    /// to narrow the query.
    #[error("query too costly: {0}")]
    TooCostly(String),
    #[error("indexing is failing: {0}")]
    Degraded(String),
    #[error("index data is damaged: {0}")]
    Damaged(String),
    /// The whole range lies before what retention keeps.
    #[error("{signal} from {} to {} are past retention: records before {} were deleted", crate::model::time::rfc3339(*start_ns), crate::model::time::rfc3339(*end_ns), crate::model::time::rfc3339(*retained_from_ns))]
    PastRetention {
        signal: &'static str,
        start_ns: u64,
        end_ns: u64,
        retained_from_ns: u64,
    },
}

impl ServiceError for IndexError {
    fn code(&self) -> ErrorCode {
        match self {
            IndexError::Query(_) => ErrorCode::InvalidArgument,
            IndexError::TooManyPoints { .. } | IndexError::TooCostly(_) => ErrorCode::TooCostly,
            IndexError::Degraded(_) => ErrorCode::Unavailable,
            IndexError::PastRetention { .. } => ErrorCode::PastRetention,
            _ => ErrorCode::Internal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub signal: Signal,
    /// Start of the partition's time range, Unix seconds.
    pub start_secs: u64,
}

pub struct Partition {
    pub key: PartitionKey,
    pub index: Index,
    pub reader: IndexReader,
    /// Covered time range `[start_ns, end_ns)`.
    pub start_ns: u64,
    pub end_ns: u64,
}

/// The set of partitions, shared by the writer thread and every query.
pub struct Store {
    root: PathBuf,
    fields: Fields,
    partition_secs: u64,
    partitions: RwLock<BTreeMap<PartitionKey, Arc<Partition>>>,
    /// Tenants with data, each with the latest record time indexed: the incident detector's
    /// clock, so replayed or back-filled data is judged by its own time.
    tenants: RwLock<BTreeMap<TenantId, u64>>,
    telemetry: Arc<Telemetry>,
    retention: RwLock<retention::Policy>,
    /// Per signal, the end of the newest partition retention deleted (`retention`).
    horizons: RwLock<[u64; 3]>,
}

pub fn index_root(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

impl Store {
    /// Opens every partition on disk.
    pub fn open(
        data_dir: &Path,
        config: &IndexConfig,
        telemetry: Arc<Telemetry>,
    ) -> Result<Arc<Store>, IndexError> {
        let root = index_root(data_dir);
        std::fs::create_dir_all(&root)?;
        retention::empty_trash(&root)?;
        let store = Store {
            horizons: RwLock::new(retention::read_horizons(&root)),
            retention: RwLock::new(retention::Policy::default()),
            root,
            fields: Fields::new(),
            partition_secs: config.partition_secs,
            partitions: RwLock::new(BTreeMap::new()),
            tenants: RwLock::new(BTreeMap::new()),
            telemetry,
        };
        for signal in Signal::ALL {
            let dir = store.root.join(signal.as_str());
            if !dir.exists() {
                continue;
            }
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let Some(start_secs) = entry.file_name().to_str().and_then(|n| n.parse().ok())
                else {
                    continue;
                };
                // A partition created just before a crash may have no meta.json yet: it holds
                // nothing committed, so the replay recreates it.
                if !entry.path().join("meta.json").exists() {
                    std::fs::remove_dir_all(entry.path())?;
                    continue;
                }
                let key = PartitionKey { signal, start_secs };
                let opened = store
                    .open_partition(key)
                    .and_then(|p| store.learn_tenants(&p));
                if let Err(e) = opened {
                    store.partitions.write().remove(&key);
                    store.set_aside(key, &e)?;
                }
            }
        }
        store.update_document_gauges();
        Ok(Arc::new(store))
    }

    /// Moves a partition that cannot be opened to `index/damaged/`, so the others serve: its
    /// records are out of every answer until someone repairs it (they are not deleted).
    fn set_aside(&self, key: PartitionKey, e: &IndexError) -> Result<(), IndexError> {
        let damaged = self.root.join(DAMAGED_DIR);
        std::fs::create_dir_all(&damaged)?;
        let to = damaged.join(format!(
            "{}-{}-{}",
            key.signal.as_str(),
            key.start_secs,
            crate::now_ns()
        ));
        std::fs::rename(self.dir_of(key), &to)?;
        self.telemetry.partitions_damaged.inc();
        tracing::error!(
            signal = key.signal.as_str(),
            partition = key.start_secs,
            error = %e,
            moved_to = %to.display(),
            "index partition cannot be opened; set aside, the others serve"
        );
        Ok(())
    }

    /// Tenants found in a partition's term dictionary at start-up; their clock starts at the
    /// time of their newest partition's end or now, whichever is earlier.
    fn learn_tenants(&self, p: &Partition) -> Result<(), IndexError> {
        let now = crate::now_ns();
        let mut tenants = self.tenants.write();
        for seg in p.reader.searcher().segment_readers() {
            let inverted = seg.inverted_index(self.fields.tenant)?;
            let mut terms = inverted.terms().stream()?;
            while terms.advance() {
                let Ok(t) = TenantId::new(&String::from_utf8_lossy(terms.key())) else {
                    continue;
                };
                let seen = tenants.entry(t).or_insert(0);
                *seen = (*seen).max(p.end_ns.min(now));
            }
        }
        Ok(())
    }

    /// Records that `tenant`'s data up to `latest_ns` is committed (capped a minute past the
    /// wall clock, so one record from a skewed clock cannot move the detector's clock far
    /// ahead).
    pub(crate) fn saw(&self, tenant: &TenantId, latest_ns: u64) {
        let t = latest_ns.min(crate::now_ns() + 60_000_000_000);
        let mut tenants = self.tenants.write();
        match tenants.get_mut(tenant) {
            Some(seen) => *seen = (*seen).max(t),
            None => {
                tenants.insert(tenant.clone(), t);
            }
        }
    }

    /// Every tenant with data and the latest record time indexed for it.
    pub fn tenants(&self) -> Vec<(TenantId, u64)> {
        self.tenants
            .read()
            .iter()
            .map(|(t, s)| (t.clone(), *s))
            .collect()
    }

    pub fn key_for(&self, signal: Signal, time_ns: u64) -> PartitionKey {
        let secs = time_ns / 1_000_000_000;
        PartitionKey {
            signal,
            start_secs: secs - secs % self.partition_secs,
        }
    }

    fn dir_of(&self, key: PartitionKey) -> PathBuf {
        self.root
            .join(key.signal.as_str())
            .join(key.start_secs.to_string())
    }

    fn open_partition(&self, key: PartitionKey) -> Result<Arc<Partition>, IndexError> {
        let dir = self.dir_of(key);
        let index = if dir.join("meta.json").exists() {
            Index::open_in_dir(&dir)?
        } else {
            std::fs::create_dir_all(&dir)?;
            Index::builder()
                .schema(self.fields.schema.clone())
                .settings(index_settings())
                .create_in_dir(&dir)?
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let start_ns = key.start_secs.saturating_mul(1_000_000_000);
        let partition = Arc::new(Partition {
            key,
            index,
            reader,
            start_ns,
            end_ns: start_ns.saturating_add(self.partition_secs * 1_000_000_000),
        });
        self.partitions.write().insert(key, partition.clone());
        Ok(partition)
    }

    /// The partition for `key` if it exists.
    pub(crate) fn existing(&self, key: PartitionKey) -> Option<Arc<Partition>> {
        self.partitions.read().get(&key).cloned()
    }

    /// The partition for `key`, created empty if it does not exist yet.
    pub(crate) fn get_or_create(&self, key: PartitionKey) -> Result<Arc<Partition>, IndexError> {
        if let Some(p) = self.partitions.read().get(&key) {
            return Ok(p.clone());
        }
        self.open_partition(key)
    }

    /// A signal's partitions overlapping `[start_ns, end_ns]`, newest first.
    pub fn partitions(&self, signal: Signal, start_ns: u64, end_ns: u64) -> Vec<Arc<Partition>> {
        let map = self.partitions.read();
        map.range(
            PartitionKey {
                signal,
                start_secs: 0,
            }..=PartitionKey {
                signal,
                start_secs: u64::MAX,
            },
        )
        .rev()
        .map(|(_, p)| p)
        .filter(|p| p.start_ns <= end_ns && p.end_ns > start_ns)
        .cloned()
        .collect()
    }

    pub(crate) fn update_document_gauges(&self) {
        let map = self.partitions.read();
        for signal in Signal::ALL {
            let docs: u64 = map
                .values()
                .filter(|p| p.key.signal == signal)
                .map(|p| p.reader.searcher().num_docs())
                .sum();
            self.telemetry
                .index_documents
                .with_label_values(&[signal.as_str()])
                .set(docs as i64);
        }
    }
}

/// The doc store holds every record once (the `raw` blob) and is most of the bytes on disk:
/// zstd over 64 KiB blocks stores spans and logs in well under half of what lz4 over 16 KiB
/// does (BENCHMARKS.md), and a trace's dozen documents still load in well under a millisecond.
fn index_settings() -> tantivy::IndexSettings {
    tantivy::IndexSettings {
        docstore_compression: tantivy::store::Compressor::Zstd(tantivy::store::ZstdCompressor {
            compression_level: Some(3),
        }),
        docstore_blocksize: 64 * 1024,
        ..Default::default()
    }
}

const CHECKPOINT_FILE: &str = "checkpoint";
/// Where partitions that cannot be opened are moved, under the index root.
const DAMAGED_DIR: &str = "damaged";

/// The WAL sequence number that every partition has committed (0 when none).
pub fn read_checkpoint(data_dir: &Path) -> std::io::Result<u64> {
    match std::fs::read_to_string(index_root(data_dir).join(CHECKPOINT_FILE)) {
        Ok(s) => s.trim().parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("index checkpoint {s:?} is not a number: {e}"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Replaces the checkpoint atomically: write a temporary file, fsync it, rename, fsync the dir.
fn write_checkpoint(root: &Path, seq: u64) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = root.join("checkpoint.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{seq}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, root.join(CHECKPOINT_FILE))?;
    std::fs::File::open(root)?.sync_all()
}
