//! The indexer thread: adds acknowledged batches to their partitions in WAL order, commits
//! every `commit_interval_ms`, then advances the checkpoint and lets the WAL truncate.
//!
//! # Bounded work per batch
//!
//! At most `MAX_OPEN_WRITERS` partition writers are open, each with its own memory budget. A
//! record goes straight into its partition's writer when that is open or a slot is free;
//! otherwise it is *staged*. Each commit writes staged partitions newest first, each opened
//! once however many requests reached it — while fresh records are arriving, for at most
//! `COLD_BUDGET` (at least one partition), the rest waiting for the next commit. So one request with logs in 600 past hours never opens
//! 600 writers at once nor stops indexing for everyone while they are written, and many small
//! requests into a few past hours cost an open and a commit per partition and interval rather
//! than per request (one tenant's late data no longer holds another's fresh logs back).
//!
//! Two rules keep this exact. A writer is open only if none of its partition's records are
//! staged, so committing an open writer at the last sequence number received is always right.
//! And the checkpoint stays below the oldest entry with a record still staged (for a RED point,
//! the oldest entry of the spans it counts), so a crash replays whatever was not written.
//!
//! # Failures
//!
//! When adding or committing fails (a full disk, say), the checkpoint stays where it was:
//! every writer is dropped with what it held, and the indexer is degraded — ingest answers 503
//! with the reason, `/readyz` too — while it retries with backoff: it re-reads the WAL from the
//! checkpoint (read-only, beside the running writer) and adds what each partition's last
//! commit does not hold, as a restart would, then commits. Nothing acknowledged is dropped,
//! nothing is added twice.

use super::red::{RedAggregator, RedConfig};
use super::retention;
use super::{document, write_checkpoint, IndexError, Partition, PartitionKey, Store};
use crate::config::IndexConfig;
use crate::health::Health;
use crate::model::{Batch, Record, Signal, TenantId};
use crate::wal::Wal;
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tantivy::IndexWriter;

/// Open partition writers at most; each holds its own memory budget and threads. Partitions
/// past the newest few are rare (late data, replays): their records wait for the commit.
const MAX_OPEN_WRITERS: usize = 6;
/// How long one commit spends writing staged (mostly past) partitions beyond the first, while
/// fresh records arrive too.
const COLD_BUDGET: Duration = Duration::from_millis(250);
/// Retries of a failing index start here and double up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub enum IndexMsg {
    /// A durable WAL entry and its encoded size.
    Entry(u64, Arc<Batch>, usize),
    /// Commit now; replies with the new checkpoint.
    Flush(mpsc::Sender<Result<u64, String>>),
    /// Delete whole traces (`index::prune`); visible after the next commit.
    Prune(super::prune::PruneRequest, mpsc::Sender<Result<(), String>>),
}

/// Handle to the indexer thread; it ends when every sender is dropped, after a last commit.
#[derive(Clone)]
pub struct Indexer {
    tx: Sender<IndexMsg>,
    gate: Arc<ByteGate>,
}

/// Bounds the bytes of batches queued for the indexer (and staged in it): senders wait while
/// it is full, which holds the WAL writer, which holds requests, which fills the in-flight
/// budget: overload turns into 429s at the edge instead of memory growth here.
struct ByteGate {
    queued: Mutex<usize>,
    room: Condvar,
    limit: usize,
}

impl ByteGate {
    fn enter(&self, bytes: usize) {
        let mut queued = self.queued.lock();
        // An entry larger than the whole bound still goes through when the queue is empty.
        while *queued > 0 && *queued + bytes > self.limit {
            self.room.wait(&mut queued);
        }
        *queued += bytes;
    }

    fn leave(&self, bytes: usize) {
        *self.queued.lock() -= bytes;
        self.room.notify_all();
    }
}

struct OpenWriter {
    partition: Arc<Partition>,
    writer: IndexWriter,
    dirty: bool,
    last_used: Instant,
}

/// A record waiting for its partition's writer.
enum Staged {
    /// Record `index` of the batch at `seq`.
    Entry {
        seq: u64,
        batch: Arc<Batch>,
        index: usize,
    },
    /// A RED point, made from spans already checked against their partition's commit; `pin`
    /// is the oldest entry whose spans it counts.
    Red {
        pin: u64,
        tenant: TenantId,
        record: Box<Record>,
    },
}

impl Staged {
    /// The oldest entry that must be replayed if this record is lost.
    fn pin(&self) -> u64 {
        match self {
            Staged::Entry { seq, .. } => *seq,
            Staged::Red { pin, .. } => *pin,
        }
    }
}

/// How much staged work a commit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// All of it: a flush, the last commit, a recovery.
    Whole,
    /// The periodic commit: staged partitions share the indexer with fresh records.
    Budgeted,
}

/// Why indexing stopped, and when to try again.
struct Degraded {
    reason: String,
    next_try: Instant,
    backoff: Duration,
}

struct Worker {
    gate: Arc<ByteGate>,
    store: Arc<Store>,
    config: IndexConfig,
    data_dir: PathBuf,
    writers: HashMap<PartitionKey, OpenWriter>,
    /// Each partition's commit payload: its records up to this sequence number are in it.
    committed: HashMap<PartitionKey, u64>,
    staged: BTreeMap<PartitionKey, Vec<Staged>>,
    /// Batches held by staged records, by entry size (what the gate bounds).
    staged_batches: HashMap<u64, usize>,
    /// Highest sequence number received.
    last_seq: u64,
    checkpoint: u64,
    wal: Arc<OnceLock<Wal>>,
    /// RED metrics of the spans added since the last commit; `None` when disabled.
    red: Option<RedAggregator>,
    /// The oldest entry whose spans the RED aggregates count.
    red_pin: Option<u64>,
    /// Records went straight into open writers since the last commit: staged work then
    /// shares the indexer with them (`COLD_BUDGET`) instead of running to the end.
    busy: bool,
    /// Per tenant, the newest record time added since the last commit; published to the
    /// store's clock only once committed, so the detector never reads ahead of the index.
    clock: HashMap<TenantId, u64>,
    degraded: Option<Degraded>,
    /// Partitions whose writers were dropped by a failure: their directories may hold files
    /// of the lost commit, which the recovery deletes first (on a full disk, they are what
    /// keeps it full).
    needs_gc: std::collections::BTreeSet<PartitionKey>,
    health: Arc<Health>,
    /// When retention runs next (`index::retention`); it runs here, between writes.
    next_retention: Instant,
}

impl Indexer {
    /// Starts the thread. `wal` is filled in once the WAL writer runs, after the replay.
    pub fn start(
        store: Arc<Store>,
        config: &IndexConfig,
        data_dir: PathBuf,
        checkpoint: u64,
        wal: Arc<OnceLock<Wal>>,
        red: Option<RedConfig>,
        health: Arc<Health>,
    ) -> std::io::Result<Indexer> {
        let (tx, rx) = mpsc::channel();
        let gate = Arc::new(ByteGate {
            queued: Mutex::new(0),
            room: Condvar::new(),
            limit: config.queue_bytes,
        });
        let mut worker = Worker {
            gate: gate.clone(),
            store,
            config: config.clone(),
            data_dir,
            writers: HashMap::new(),
            committed: HashMap::new(),
            staged: BTreeMap::new(),
            staged_batches: HashMap::new(),
            last_seq: checkpoint,
            checkpoint,
            wal,
            red: red.map(RedAggregator::new),
            red_pin: None,
            busy: false,
            clock: HashMap::new(),
            degraded: None,
            needs_gc: Default::default(),
            health,
            next_retention: Instant::now(),
        };
        std::thread::Builder::new()
            .name("weft-indexer".into())
            .spawn(move || worker.run(rx))?;
        Ok(Indexer { tx, gate })
    }

    /// Queues an entry, waiting while the queue is full (back-pressure onto the WAL).
    pub fn add(&self, seq: u64, batch: Arc<Batch>, bytes: usize) {
        self.gate.enter(bytes);
        if self.tx.send(IndexMsg::Entry(seq, batch, bytes)).is_err() {
            // The thread is gone; the WAL still holds the entry for the next start.
            self.gate.leave(bytes);
        }
    }

    /// Commits everything received so far and returns the checkpoint. Blocking.
    pub fn flush(&self) -> Result<u64, String> {
        let (reply, wait) = mpsc::channel();
        self.tx
            .send(IndexMsg::Flush(reply))
            .map_err(|_| "indexer has stopped".to_string())?;
        wait.recv().map_err(|_| "indexer has stopped".to_string())?
    }

    /// Deletes the request's traces; they are gone from queries after the next commit.
    pub fn prune(&self, req: super::prune::PruneRequest) -> Result<(), String> {
        let (reply, wait) = mpsc::channel();
        self.tx
            .send(IndexMsg::Prune(req, reply))
            .map_err(|_| "indexer has stopped".to_string())?;
        wait.recv().map_err(|_| "indexer has stopped".to_string())?
    }
}

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<IndexMsg>) {
        let interval = Duration::from_millis(self.config.commit_interval_ms);
        let mut next_commit = Instant::now() + interval;
        loop {
            let due = match &self.degraded {
                Some(d) => d.next_try.min(next_commit),
                None => next_commit,
            };
            match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(IndexMsg::Entry(seq, batch, bytes)) => {
                    let staged = self.add(seq, &batch, bytes);
                    if !staged {
                        self.gate.leave(bytes);
                    }
                    // Staged batches hold the gate: write them before they fill it.
                    let held: usize = self.staged_batches.values().sum();
                    if held > self.gate.limit / 2 {
                        let _ = self.commit(Scope::Budgeted);
                    }
                }
                Ok(IndexMsg::Flush(reply)) => {
                    let result = match self.degraded.is_some() {
                        true => self.recover(),
                        false => self.commit(Scope::Whole),
                    };
                    let _ = reply.send(result.map_err(|e| e.to_string()));
                }
                Ok(IndexMsg::Prune(req, reply)) => {
                    let _ = reply.send(self.prune(&req).map_err(|e| e.to_string()));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let last = match self.degraded.is_some() {
                        true => self.recover(),
                        false => self.commit(Scope::Whole),
                    };
                    if let Err(e) = last {
                        tracing::error!(error = %e, "final index commit failed; the WAL keeps it");
                    }
                    for (_, w) in self.writers.drain() {
                        let _ = w.writer.wait_merging_threads();
                    }
                    return;
                }
            }
            if self
                .degraded
                .as_ref()
                .is_some_and(|d| Instant::now() >= d.next_try)
            {
                let _ = self.recover();
            }
            if Instant::now() >= next_commit {
                if self.degraded.is_none() {
                    let _ = self.commit(Scope::Budgeted);
                    self.close_idle_writers();
                }
                next_commit = Instant::now() + interval;
            }
            if self.degraded.is_none() && Instant::now() >= self.next_retention {
                self.apply_retention();
            }
        }
    }

    /// Adds one entry; returns whether its batch stays held by staged records (the gate is
    /// then left when they are written).
    fn add(&mut self, seq: u64, batch: &Arc<Batch>, bytes: usize) -> bool {
        self.last_seq = self.last_seq.max(seq);
        self.lag_gauge();
        if self.degraded.is_some() {
            return false; // the recovery re-reads it from the WAL
        }
        match self.add_entry(seq, batch, bytes) {
            Ok(staged) => staged,
            Err(e) => {
                self.fail(&e);
                false
            }
        }
    }

    fn add_entry(
        &mut self,
        seq: u64,
        batch: &Arc<Batch>,
        bytes: usize,
    ) -> Result<bool, IndexError> {
        if let Some(t) = batch.records.iter().map(Record::end_ns).max() {
            let seen = self.clock.entry(batch.tenant.clone()).or_insert(0);
            *seen = (*seen).max(t);
        }
        self.observe_red(seq, batch)?;
        let mut staged = false;
        for (index, record) in batch.records.iter().enumerate() {
            if let (Record::Span(span), Some(red)) = (record, &self.red) {
                if !red.stores(span) {
                    continue; // counted in RED above; not kept
                }
            }
            let key = self.store.key_for(record.signal(), record.time_ns());
            if seq <= self.committed_seq(key)? {
                continue; // already in this partition's last commit (replay)
            }
            let item = Staged::Entry {
                seq,
                batch: batch.clone(),
                index,
            };
            staged |= self.place(key, item)?;
        }
        if staged {
            self.staged_batches.insert(seq, bytes);
        }
        Ok(staged)
    }

    /// Writes `item` into its partition if a writer is open or a slot is free, else stages it.
    /// Returns whether it was staged.
    fn place(&mut self, key: PartitionKey, item: Staged) -> Result<bool, IndexError> {
        if !self.writers.contains_key(&key) && self.writers.len() >= MAX_OPEN_WRITERS {
            self.staged.entry(key).or_default().push(item);
            return Ok(true);
        }
        self.open(key)?;
        self.write(key, item)?;
        self.busy = true;
        Ok(false)
    }

    fn write(&mut self, key: PartitionKey, item: Staged) -> Result<(), IndexError> {
        let fields = &self.store.fields;
        let w = self.writers.get_mut(&key).expect("opened before writing");
        let doc = match &item {
            Staged::Entry { batch, index, .. } => {
                document::build(fields, &batch.tenant, &batch.records[*index])
            }
            Staged::Red { tenant, record, .. } => document::build(fields, tenant, record),
        };
        w.writer.add_document(doc)?;
        w.dirty = true;
        w.last_used = Instant::now();
        Ok(())
    }

    /// The partition's commit payload, from its last commit (read from disk once).
    fn committed_seq(&mut self, key: PartitionKey) -> Result<u64, IndexError> {
        if let Some(seq) = self.committed.get(&key) {
            return Ok(*seq);
        }
        let seq = match self.store.existing(key) {
            Some(p) => payload_of(&p)?,
            None => 0,
        };
        self.committed.insert(key, seq);
        Ok(seq)
    }

    /// Opens the partition's writer (creating the partition when new), first closing the
    /// least recently used writers past `MAX_OPEN_WRITERS` — committed at the last sequence
    /// number, which is exact for an open writer — and then writing its staged records.
    fn open(&mut self, key: PartitionKey) -> Result<(), IndexError> {
        if let Some(w) = self.writers.get_mut(&key) {
            w.last_used = Instant::now();
            return Ok(());
        }
        // Past partitions go first, then the least recently used: the current and the
        // previous partition stay open while late data comes and goes.
        let recent = crate::now_ns().saturating_sub(self.config.partition_secs * 2_000_000_000);
        while self.writers.len() >= MAX_OPEN_WRITERS {
            let victim = self
                .writers
                .iter()
                .min_by_key(|(_, w)| (w.partition.end_ns > recent, w.last_used))
                .map(|(k, _)| *k)
                .expect("writers are open");
            let mut w = self.writers.remove(&victim).expect("victim is open");
            if w.dirty {
                let seq = self.last_seq;
                commit_writer(&mut w, seq)?;
                self.committed.insert(victim, seq);
            }
            let _ = w.writer.wait_merging_threads();
        }
        let partition = self.store.get_or_create(key)?;
        let committed = payload_of(&partition)?;
        self.committed.insert(key, committed);
        let writer = partition.index.writer_with_num_threads(
            self.config.writer_threads,
            self.config.writer_memory_mb * 1024 * 1024,
        )?;
        self.writers.insert(
            key,
            OpenWriter {
                partition,
                writer,
                dirty: false,
                last_used: Instant::now(),
            },
        );
        for item in self.staged.remove(&key).unwrap_or_default() {
            self.write(key, item)?;
        }
        Ok(())
    }

    /// Queues the deletes of a prune request in every partition it touches (spans and logs;
    /// metric points are never pruned).
    fn prune(&mut self, req: &super::prune::PruneRequest) -> Result<(), IndexError> {
        if self.degraded.is_some() {
            return Err(IndexError::Degraded(
                "indexing is recovering; prune later".into(),
            ));
        }
        for signal in [Signal::Spans, Signal::Logs] {
            for key in self.store.prune_partitions(signal, req) {
                self.open(key)?;
                let w = self.writers.get_mut(&key).expect("opened above");
                super::prune::delete(&mut w.writer, &self.store, signal, req)?;
                // Committed now (at the last sequence number, exact for an open writer, as
                // when a writer is evicted) so the merge below can drop what was deleted.
                let seq = self.last_seq;
                commit_writer(w, seq)?;
                w.dirty = false;
                self.committed.insert(key, seq);
                super::prune::compact(&mut w.writer, &w.partition.index)?;
            }
        }
        Ok(())
    }

    fn red_key(&self, red: &RedAggregator, span: &crate::model::Span) -> PartitionKey {
        self.store
            .key_for(Signal::Metrics, red.point_time(red.bucket_of(span)))
    }

    /// Counts the batch's spans into the RED aggregates, except where the metrics partition
    /// the point lands in has already committed this entry (a replay).
    fn observe_red(&mut self, seq: u64, batch: &Batch) -> Result<(), IndexError> {
        let Some(mut red) = self.red.take() else {
            return Ok(());
        };
        let mut result = Ok(());
        for record in &batch.records {
            let Record::Span(span) = record else { continue };
            let key = self.red_key(&red, span);
            match self.committed_seq(key) {
                Ok(committed) if seq <= committed => {}
                Ok(_) => {
                    self.red_pin = Some(self.red_pin.map_or(seq, |p| p.min(seq)));
                    if red.observe(&batch.tenant, span) {
                        self.store.telemetry.red_overflow_spans.inc();
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.red = Some(red);
        result
    }

    /// Adds the aggregated RED points to their partitions; runs before any commit, so a
    /// committed payload always includes the RED share of the entries below it.
    fn flush_red(&mut self) -> Result<(), IndexError> {
        let Some(points) = self.red.as_mut().map(RedAggregator::drain) else {
            return Ok(());
        };
        let pin = self.red_pin.take().unwrap_or(self.last_seq);
        for (tenant, point) in points {
            let key = self.store.key_for(Signal::Metrics, point.time_ns);
            let record = Box::new(Record::Metric(point));
            self.place(
                key,
                Staged::Red {
                    pin,
                    tenant,
                    record,
                },
            )?;
        }
        Ok(())
    }

    fn close_idle_writers(&mut self) {
        let idle = Duration::from_secs(self.config.idle_writer_secs);
        let stale: Vec<PartitionKey> = self
            .writers
            .iter()
            .filter(|(_, w)| !w.dirty && w.last_used.elapsed() >= idle)
            .map(|(k, _)| *k)
            .collect();
        for key in stale {
            if let Some(w) = self.writers.remove(&key) {
                let _ = w.writer.wait_merging_threads();
            }
        }
    }

    /// Commits what was received: RED points, staged records partition by partition (all of
    /// them when `Whole`, else within the budget), every dirty writer; then moves the
    /// checkpoint and truncates the WAL. A failure degrades.
    fn commit(&mut self, scope: Scope) -> Result<u64, IndexError> {
        if let Some(d) = &self.degraded {
            // Only a recovery may move the checkpoint past what failed.
            return Err(IndexError::Degraded(d.reason.clone()));
        }
        let result = self.try_commit(scope);
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    fn try_commit(&mut self, scope: Scope) -> Result<u64, IndexError> {
        self.flush_red()?;
        self.write_staged(scope)?;
        let seq = self.last_seq;
        let mut any = false;
        for (key, w) in self.writers.iter_mut().filter(|(_, w)| w.dirty) {
            let started = Instant::now();
            commit_writer(w, seq)?;
            self.committed.insert(*key, seq);
            any = true;
            self.store
                .telemetry
                .index_commit_seconds
                .with_label_values(&[w.partition.key.signal.as_str()])
                .observe(started.elapsed().as_secs_f64());
        }
        if any {
            self.store.update_document_gauges();
        }
        for (tenant, t) in self.clock.drain() {
            self.store.saw(&tenant, t);
        }
        // Every partition holds its records up to `seq`, except what is still staged.
        let through = self
            .staged
            .values()
            .flatten()
            .map(|i| i.pin() - 1)
            .min()
            .map_or(seq, |p| p.min(seq));
        if through > self.checkpoint {
            write_checkpoint(&self.store.root, through)?;
            self.checkpoint = through;
            if let Some(wal) = self.wal.get() {
                wal.truncate_through(through);
            }
        }
        self.lag_gauge();
        Ok(self.checkpoint)
    }

    /// Writes staged partitions, newest first (while busy and `Budgeted`, for `COLD_BUDGET`
    /// after the first); releases
    /// the gate for batches no longer held by any staged record.
    fn write_staged(&mut self, scope: Scope) -> Result<(), IndexError> {
        let started = Instant::now();
        let mut keys: Vec<PartitionKey> = self.staged.keys().copied().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.start_secs));
        let budgeted = std::mem::take(&mut self.busy) && scope == Scope::Budgeted;
        for (n, key) in keys.into_iter().enumerate() {
            if budgeted && n > 0 && started.elapsed() >= COLD_BUDGET {
                break;
            }
            // Opening writes the partition's staged records.
            self.open(key)?;
        }
        let pinned: std::collections::HashSet<u64> = self
            .staged
            .values()
            .flatten()
            .filter_map(|i| match i {
                Staged::Entry { seq, .. } => Some(*seq),
                Staged::Red { .. } => None,
            })
            .collect();
        let mut released = 0;
        self.staged_batches.retain(|seq, bytes| {
            let keep = pinned.contains(seq);
            if !keep {
                released += *bytes;
            }
            keep
        });
        if released > 0 {
            self.gate.leave(released);
        }
        Ok(())
    }

    /// Drops everything not committed and degrades: the WAL holds it all above the
    /// checkpoint, and `recover` adds it again.
    fn fail(&mut self, e: &IndexError) {
        let backoff = self
            .degraded
            .as_ref()
            .map_or(FIRST_BACKOFF, |d| (d.backoff * 2).min(MAX_BACKOFF));
        let reason = format!("{e}; retrying from the write-ahead log");
        tracing::error!(error = %e, retry_in_s = backoff.as_secs(), "indexing failed; the checkpoint stays and the WAL keeps every record");
        self.store.telemetry.index_commit_failures.inc();
        // Dropping a writer discards what it held; the partition keeps its last commit.
        self.needs_gc.extend(self.writers.keys().copied());
        self.writers.clear();
        self.staged.clear();
        let held: usize = self.staged_batches.drain().map(|(_, bytes)| bytes).sum();
        if held > 0 {
            self.gate.leave(held);
        }
        self.committed.clear();
        self.clock.clear();
        if let Some(red) = self.red.as_mut() {
            red.drain();
        }
        self.red_pin = None;
        self.health.set_index(Some(reason.clone()));
        self.degraded = Some(Degraded {
            reason,
            next_try: Instant::now() + backoff,
            backoff,
        });
    }

    /// Re-reads the WAL above the checkpoint and commits it, as a restart would.
    fn recover(&mut self) -> Result<u64, IndexError> {
        let Some(d) = self.degraded.take() else {
            return self.commit(Scope::Whole);
        };
        tracing::info!(reason = %d.reason, from = self.checkpoint, through = self.last_seq, "re-indexing from the write-ahead log");
        let (from, through) = (self.checkpoint, self.last_seq);
        let data_dir = self.data_dir.clone();
        let mut failure = self.collect_garbage().err();
        let read = Wal::read_range(&data_dir, from, through, &mut |seq, batch, bytes| {
            if failure.is_none() {
                // Staged batches count against the gate like queued ones.
                let batch = Arc::new(batch);
                match self.add_entry(seq, &batch, bytes) {
                    Ok(true) => self.gate.enter_held(bytes),
                    Ok(false) => {}
                    Err(e) => failure = Some(e),
                }
            }
        });
        let result = match (read, failure) {
            (Err(e), _) => Err(IndexError::Io(e)),
            (_, Some(e)) => Err(e),
            (Ok(_), None) => self.try_commit(Scope::Whole),
        };
        match result {
            Ok(seq) => {
                self.health.set_index(None);
                tracing::warn!(checkpoint = seq, "indexing works again");
                Ok(seq)
            }
            Err(e) => {
                self.degraded = Some(d);
                self.fail(&e);
                Err(e)
            }
        }
    }

    /// Deletes the files a failed commit left in each partition it touched: whatever the
    /// partition's last commit does not name.
    fn collect_garbage(&mut self) -> Result<(), IndexError> {
        while let Some(key) = self.needs_gc.pop_first() {
            self.open(key)?;
            let w = self.writers.get_mut(&key).expect("just opened");
            if let Err(e) = w.writer.garbage_collect_files().wait() {
                self.needs_gc.insert(key);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// One retention pass; a failure is logged and the next pass tries again (deletion only
    /// ever removes committed, checkpointed partitions, so a failed pass loses nothing).
    fn apply_retention(&mut self) {
        let store = self.store.clone();
        self.next_retention = Instant::now() + store.retention().interval;
        let data_dir = self.data_dir.clone();
        if let Err(e) = retention::run(&store, &data_dir, crate::now_ns(), self) {
            tracing::error!(error = %e, "retention pass failed; retrying at the next one");
        }
    }

    fn lag_gauge(&self) {
        self.store
            .telemetry
            .index_checkpoint_lag
            .set(self.last_seq.saturating_sub(self.checkpoint) as i64);
    }
}

impl retention::Writers for Worker {
    fn release(&mut self, key: PartitionKey) -> Result<bool, IndexError> {
        if self.staged.contains_key(&key) || self.writers.get(&key).is_some_and(|w| w.dirty) {
            return Ok(false);
        }
        if self.committed_seq(key)? > self.checkpoint {
            return Ok(false); // a crash would replay records of it from the WAL
        }
        if let Some(w) = self.writers.remove(&key) {
            let _ = w.writer.wait_merging_threads();
        }
        self.committed.remove(&key);
        Ok(true)
    }

    fn delete_tenant(&mut self, key: PartitionKey, tenant: &TenantId) -> Result<(), IndexError> {
        self.open(key)?;
        let seq = self.last_seq;
        let term = tantivy::Term::from_field_text(self.store.fields.tenant, tenant.as_str());
        let w = self.writers.get_mut(&key).expect("just opened");
        w.writer.delete_term(term);
        // An open writer has nothing of its partition staged: committing at the last
        // sequence number received is exact.
        if let Err(e) = commit_writer(w, seq) {
            self.fail(&e);
            return Err(e);
        }
        self.committed.insert(key, seq);
        Ok(())
    }
}

impl ByteGate {
    /// Counts bytes that are already in memory (re-read during a recovery) without waiting.
    fn enter_held(&self, bytes: usize) {
        *self.queued.lock() += bytes;
    }
}

/// A partition's commit payload: the WAL sequence number its last commit holds up to.
fn payload_of(p: &Partition) -> Result<u64, IndexError> {
    Ok(p.index
        .load_metas()?
        .payload
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0))
}

fn commit_writer(w: &mut OpenWriter, seq: u64) -> Result<(), IndexError> {
    let mut prepared = w.writer.prepare_commit()?;
    prepared.set_payload(&seq.to_string());
    prepared.commit()?;
    w.dirty = false;
    w.partition.reader.reload()?;
    Ok(())
}
