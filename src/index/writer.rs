//! The indexer thread: adds acknowledged batches to their partitions in WAL order, commits
//! every `commit_interval_ms`, then advances the checkpoint and lets the WAL truncate.

use super::red::{RedAggregator, RedConfig};
use super::{document, write_checkpoint, IndexError, Partition, PartitionKey, Store};
use crate::config::IndexConfig;
use crate::model::{Batch, Record, Signal, TenantId};
use crate::wal::Wal;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tantivy::IndexWriter;

/// Open partition writers at most; each holds its own memory budget. Partitions past the
/// newest few are rare (late data, replays), so the least recently used writer is closed.
const MAX_OPEN_WRITERS: usize = 6;

pub enum IndexMsg {
    /// A durable WAL entry and its encoded size.
    Entry(u64, Arc<Batch>, usize),
    /// Commit now; replies with the new checkpoint.
    Flush(mpsc::Sender<Result<u64, String>>),
}

/// Handle to the indexer thread; it ends when every sender is dropped, after a last commit.
#[derive(Clone)]
pub struct Indexer {
    tx: Sender<IndexMsg>,
    gate: Arc<ByteGate>,
}

/// Bounds the bytes of batches queued for the indexer: senders wait while it is full, which
/// holds the WAL writer, which holds requests, which fills the in-flight budget: overload turns
/// into 429s at the edge instead of memory growth here.
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
    /// The partition's commit payload: its records up to this sequence number are in.
    committed_seq: u64,
    dirty: bool,
    last_used: Instant,
}

struct Worker {
    gate: Arc<ByteGate>,
    store: Arc<Store>,
    config: IndexConfig,
    writers: HashMap<PartitionKey, OpenWriter>,
    /// Highest sequence number received.
    last_seq: u64,
    checkpoint: u64,
    /// Set when a record could not be added: the checkpoint then stays put so the WAL keeps
    /// the record for the next start.
    failed: bool,
    wal: Arc<OnceLock<Wal>>,
    /// RED metrics of the spans added since the last commit; `None` when disabled.
    red: Option<RedAggregator>,
    /// Per tenant, the newest record time added since the last commit; published to the
    /// store's clock only once committed, so the detector never reads ahead of the index.
    clock: HashMap<TenantId, u64>,
}

impl Indexer {
    /// Starts the thread. `wal` is filled in once the WAL writer runs, after the replay.
    pub fn start(
        store: Arc<Store>,
        config: &IndexConfig,
        checkpoint: u64,
        wal: Arc<OnceLock<Wal>>,
        red: Option<RedConfig>,
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
            writers: HashMap::new(),
            last_seq: checkpoint,
            checkpoint,
            failed: false,
            wal,
            red: red.map(RedAggregator::new),
            clock: HashMap::new(),
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
}

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<IndexMsg>) {
        let interval = Duration::from_millis(self.config.commit_interval_ms);
        let mut next_commit = Instant::now() + interval;
        loop {
            let wait = next_commit.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(IndexMsg::Entry(seq, batch, bytes)) => {
                    self.add(seq, &batch);
                    self.gate.leave(bytes);
                }
                Ok(IndexMsg::Flush(reply)) => {
                    let _ = reply.send(self.commit().map_err(|e| e.to_string()));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if let Err(e) = self.commit() {
                        tracing::error!(error = %e, "final index commit failed");
                    }
                    for (_, w) in self.writers.drain() {
                        let _ = w.writer.wait_merging_threads();
                    }
                    return;
                }
            }
            if Instant::now() >= next_commit {
                if let Err(e) = self.commit() {
                    tracing::error!(error = %e, "index commit failed; will retry");
                }
                self.close_idle_writers();
                next_commit = Instant::now() + interval;
            }
        }
    }

    fn add(&mut self, seq: u64, batch: &Batch) {
        let mut keys: HashSet<PartitionKey> = batch
            .records
            .iter()
            .map(|r| self.store.key_for(r.signal(), r.time_ns()))
            .collect();
        if let Some(red) = &self.red {
            keys.extend(batch.records.iter().filter_map(|r| match r {
                Record::Span(s) => Some(self.red_key(red, s)),
                _ => None,
            }));
        }
        self.make_room(&keys, seq);
        if let Some(t) = batch.records.iter().map(Record::end_ns).max() {
            let seen = self.clock.entry(batch.tenant.clone()).or_insert(0);
            *seen = (*seen).max(t);
        }
        self.observe_red(seq, batch);
        let store = self.store.clone();
        for record in &batch.records {
            let key = self.store.key_for(record.signal(), record.time_ns());
            let result = self.writer(key).and_then(|w| {
                w.last_used = Instant::now();
                if seq <= w.committed_seq {
                    return Ok(()); // already in this partition's last commit (replay)
                }
                let doc = document::build(&store.fields, &batch.tenant, record);
                w.writer.add_document(doc)?;
                w.dirty = true;
                Ok(())
            });
            if let Err(e) = result {
                tracing::error!(seq, error = %e, "cannot index record; the WAL keeps it");
                self.failed = true;
            }
        }
        self.last_seq = seq;
    }

    fn red_key(&self, red: &RedAggregator, span: &crate::model::Span) -> PartitionKey {
        self.store
            .key_for(Signal::Metrics, red.point_time(red.bucket_of(span)))
    }

    /// Counts the batch's spans into the RED aggregates, except where the metrics partition
    /// the point lands in has already committed this entry (a replay).
    fn observe_red(&mut self, seq: u64, batch: &Batch) {
        let Some(red) = self.red.take() else { return };
        let mut red = red;
        for record in &batch.records {
            let Record::Span(span) = record else { continue };
            let key = self.red_key(&red, span);
            match self.writer(key) {
                Ok(w) if seq <= w.committed_seq => {}
                Ok(_) => {
                    if red.observe(&batch.tenant, span) {
                        self.store.telemetry.red_overflow_spans.inc();
                    }
                }
                Err(e) => {
                    tracing::error!(seq, error = %e, "cannot open a metrics partition for RED");
                    self.failed = true;
                }
            }
        }
        self.red = Some(red);
    }

    /// Adds the aggregated RED points to their partitions; runs before any commit, so a
    /// committed payload always includes the RED share of the entries below it.
    fn flush_red(&mut self) {
        let Some(points) = self.red.as_mut().map(RedAggregator::drain) else {
            return;
        };
        let store = self.store.clone();
        for (tenant, point) in points {
            let key = store.key_for(Signal::Metrics, point.time_ns);
            let record = Record::Metric(point);
            let result = self.writer(key).and_then(|w| {
                w.writer
                    .add_document(document::build(&store.fields, &tenant, &record))?;
                w.dirty = true;
                Ok(())
            });
            if let Err(e) = result {
                tracing::error!(error = %e, "cannot index a RED point; the WAL keeps its spans");
                self.failed = true;
            }
        }
    }

    fn writer(&mut self, key: PartitionKey) -> Result<&mut OpenWriter, IndexError> {
        if !self.writers.contains_key(&key) {
            let partition = self.store.get_or_create(key)?;
            let committed_seq = partition
                .index
                .load_metas()?
                .payload
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0);
            let writer = partition.index.writer_with_num_threads(
                self.config.writer_threads,
                self.config.writer_memory_mb * 1024 * 1024,
            )?;
            self.writers.insert(
                key,
                OpenWriter {
                    partition,
                    writer,
                    committed_seq,
                    dirty: false,
                    last_used: Instant::now(),
                },
            );
        }
        Ok(self.writers.get_mut(&key).expect("inserted above"))
    }

    /// Closes least recently used writers that the coming batch does not need. They hold only
    /// records below `seq`, so committing them at `seq - 1` is exact.
    fn make_room(&mut self, needed: &HashSet<PartitionKey>, seq: u64) {
        let missing = needed
            .iter()
            .filter(|k| !self.writers.contains_key(k))
            .count();
        if self.writers.len() + missing > MAX_OPEN_WRITERS {
            self.flush_red();
        }
        while self.writers.len() + missing > MAX_OPEN_WRITERS {
            let victim = self
                .writers
                .iter()
                .filter(|(k, _)| !needed.contains(k))
                .min_by_key(|(_, w)| w.last_used)
                .map(|(k, _)| *k);
            let Some(victim) = victim else { return };
            let mut w = self.writers.remove(&victim).expect("victim is open");
            if w.dirty {
                if let Err(e) = commit_writer(&mut w, seq - 1) {
                    tracing::error!(error = %e, "cannot commit a partition being closed");
                    self.failed = true;
                }
            }
            let _ = w.writer.wait_merging_threads();
        }
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

    /// Commits every dirty partition, then moves the checkpoint and truncates the WAL.
    fn commit(&mut self) -> Result<u64, IndexError> {
        self.flush_red();
        let seq = self.last_seq;
        let mut any = false;
        for w in self.writers.values_mut().filter(|w| w.dirty) {
            let started = Instant::now();
            commit_writer(w, seq)?;
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
        if !self.failed && seq > self.checkpoint {
            write_checkpoint(&self.store.root, seq)?;
            self.checkpoint = seq;
            if let Some(wal) = self.wal.get() {
                wal.truncate_through(seq);
            }
        }
        Ok(self.checkpoint)
    }
}

fn commit_writer(w: &mut OpenWriter, seq: u64) -> Result<(), IndexError> {
    let mut prepared = w.writer.prepare_commit()?;
    prepared.set_payload(&seq.to_string());
    prepared.commit()?;
    w.committed_seq = seq;
    w.dirty = false;
    w.partition.reader.reload()?;
    Ok(())
}
