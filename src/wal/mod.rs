//! Write-ahead log: the only thing that makes an acknowledgement true.
//!
//! # On disk
//!
//! `<data_dir>/wal/` holds segment files named `<first_seq as 20 digits>.wal`. A segment is the
//! 8-byte magic `WEFTWAL3` followed by entries:
//!
//! ```text
//! u32 LE  payload length (at most MAX_ENTRY_BYTES)
//! u32 LE  CRC-32 (IEEE) of the 8 sequence bytes followed by the payload
//! u64 LE  sequence number
//! ...     payload: one zstd frame (with its content size) of one `model::Batch` in its
//!         versioned encoding (`model::codec`)
//! ```
//!
//! The magic says how payloads are encoded, so older segments still replay; they are never
//! appended to. `WEFTWAL2` segments hold uncompressed versioned batches, `WEFTWAL1` segments
//! bare ones (format version 0). Compression costs little CPU on the requests' threads (zstd
//! level 1) and makes the WAL a fraction of the bytes it holds (BENCHMARKS.md).
//!
//! # Invariants
//!
//! - Sequence numbers start at 1 and grow by one per entry, in file order and across segments.
//! - An entry is acknowledged only after its bytes were written and, with `fsync = "always"`,
//!   fsynced; one fsync covers every request that arrived while the previous one ran (group
//!   commit).
//! - A failed write is cut off again (the file is truncated to its last good length) before
//!   anything else is appended, so an error never leaves garbage in front of later entries. If
//!   even that fails, or an fsync fails, the log is *broken*: it refuses appends (503) and, at
//!   most once a second when asked to append, tries to mend: cut the segment back to its last
//!   good entry, make that durable, and continue in a new segment. After a failed fsync the
//!   kernel may have dropped the unsynced group; its entries were never acknowledged, and the
//!   cut removes them, so a retry by the client is not a duplicate.
//! - Each start appends to a fresh segment; replayed segments are never written again.
//! - A segment is deleted only when every entry in it is at or below the index checkpoint; when
//!   that holds for the current segment too (everything is indexed, as after a clean stop), it
//!   is closed and deleted, and appends continue in a new one.
//!
//! # Recovery
//!
//! Segments are read in order. A segment ends at the first entry that is short (a torn write),
//! has an impossible length, a checksum mismatch or a sequence number that does not follow its
//! predecessor. Everything before that point is replayed; the damaged rest is truncated away,
//! logged, and counted in `weft_wal_corruptions_total`. Later segments are still read, and the
//! next sequence number is one past the highest one seen anywhere.

use crate::config::{FsyncPolicy, WalConfig};
use crate::error::{ErrorCode, ServiceError};
use crate::health::Health;
use crate::model::{codec, Batch};
use crate::telemetry::Telemetry;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Segments written now: every payload is a zstd-compressed versioned `model::codec` batch.
const MAGIC: &[u8; 8] = b"WEFTWAL3";
/// Segments of releases before compression: uncompressed versioned batches.
const MAGIC_V1: &[u8; 8] = b"WEFTWAL2";
/// Segments of releases before versioned payloads: bare postcard batches (format version 0).
const MAGIC_V0: &[u8; 8] = b"WEFTWAL1";
/// zstd level of WAL payloads: the fastest, already several times smaller than the batch.
const ZSTD_LEVEL: i32 = 1;

/// How a segment's payloads are encoded, from its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payloads {
    /// `WEFTWAL1`: bare postcard batches (format version 0).
    Bare,
    /// `WEFTWAL2`: versioned batches.
    Versioned,
    /// `WEFTWAL3`: zstd frames of versioned batches.
    Compressed,
}

#[derive(Debug, thiserror::Error)]
enum PayloadError {
    #[error("does not decompress: {0}")]
    Zstd(io::Error),
    #[error("decompresses to {0:?} bytes, over the entry limit")]
    Size(Option<u64>),
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
}

/// An entry's batch and the size of its uncompressed encoding (what the indexer's queue
/// bound counts: the memory a batch stands for, not its bytes on disk).
fn decode_payload(payload: &[u8], format: Payloads) -> Result<(Batch, usize), PayloadError> {
    match format {
        Payloads::Bare => Ok((codec::decode_batch(payload, true)?, payload.len())),
        Payloads::Versioned => Ok((codec::decode_batch(payload, false)?, payload.len())),
        Payloads::Compressed => {
            let size = zstd::stream::decompressed_size(payload);
            let capacity = match size {
                Some(n) if n as usize <= MAX_ENTRY_BYTES => n as usize,
                _ => return Err(PayloadError::Size(size)),
            };
            let encoded = zstd::bulk::decompress(payload, capacity).map_err(PayloadError::Zstd)?;
            Ok((codec::decode_batch(&encoded, false)?, encoded.len()))
        }
    }
}
const HEADER_BYTES: usize = 16;
/// Larger than any request weft accepts; a length beyond it can only be damage.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024 * 1024;
/// How long a failed write keeps the log reported as failing when nothing else is written.
const FAILED_WRITE_MEMORY: Duration = Duration::from_secs(5);
/// Upper bound of bytes written per group commit, so one fsync never waits on a huge group.
const MAX_GROUP_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("write-ahead log is unavailable after an earlier write failure; restart weft")]
    Broken,
    #[error("write-ahead log is shut down")]
    Closed,
    #[error("the batch is {bytes} bytes once encoded, over the write-ahead log's entry limit of {MAX_ENTRY_BYTES}; send fewer records per request")]
    TooLarge { bytes: usize },
}

impl ServiceError for WalError {
    fn code(&self) -> ErrorCode {
        match self {
            WalError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            _ => ErrorCode::Unavailable,
        }
    }
}

/// Where an entry goes once it is durable: the indexer's queue. Gets the sequence number, the
/// batch and its encoded size (what the queue's byte bound counts).
pub type Sink = Box<dyn FnMut(u64, Arc<Batch>, usize) + Send>;

enum Command {
    Append {
        payload: Vec<u8>,
        /// Size of the uncompressed encoding.
        bytes: usize,
        batch: Arc<Batch>,
        done: oneshot::Sender<Result<u64, WalError>>,
    },
    /// The periodic tick: fsync for `fsync = "interval"`, mending a broken log, forgetting a
    /// failed write once writes could succeed again.
    Tick,
    /// Delete segments whose entries are all at or below this sequence number.
    TruncateThrough(u64),
    /// Finish what is queued, sync, and stop; replies with the last sequence number written.
    Shutdown(oneshot::Sender<u64>),
}

/// A handle to the WAL writer thread. Cloning is cheap; the thread ends when all handles drop.
#[derive(Clone)]
pub struct Wal {
    tx: mpsc::Sender<Command>,
}

/// What a replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Highest sequence number on disk (0 when empty).
    pub last_seq: u64,
    /// Entries handed to the callback.
    pub replayed: u64,
    /// Damaged regions cut off.
    pub corruptions: u64,
}

pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("wal")
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

/// Segments on disk, oldest first.
fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Encodes one entry (header and payload) onto `buf`.
fn encode_entry(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(payload);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Reads every intact entry of one segment, calling `f` for those above `after_seq` with
/// how the segment's payloads are encoded. Returns the highest sequence number read and
/// the length of the intact prefix, or `None` for the length when the whole file is intact.
fn read_segment(
    path: &Path,
    after_seq: u64,
    f: &mut dyn FnMut(u64, &[u8], Payloads),
) -> io::Result<(u64, Option<u64>, u64)> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let format = match data.get(..MAGIC.len()) {
        Some(m) if m == MAGIC => Payloads::Compressed,
        Some(m) if m == MAGIC_V1 => Payloads::Versioned,
        Some(m) if m == MAGIC_V0 => Payloads::Bare,
        // A crash right after creating the file can leave it without its magic.
        _ => return Ok((0, Some(0), 0)),
    };
    let mut pos = MAGIC.len();
    let mut last_seq = 0u64;
    let mut replayed = 0u64;
    while pos < data.len() {
        let Some(header) = data.get(pos..pos + HEADER_BYTES) else {
            return Ok((last_seq, Some(pos as u64), replayed));
        };
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let body_start = pos + HEADER_BYTES;
        let intact = len <= MAX_ENTRY_BYTES
            && (last_seq == 0 || seq == last_seq + 1)
            && data.len() >= body_start + len
            && {
                let mut h = crc32fast::Hasher::new();
                h.update(&header[8..16]);
                h.update(&data[body_start..body_start + len]);
                h.finalize() == crc
            };
        if !intact {
            return Ok((last_seq, Some(pos as u64), replayed));
        }
        if seq > after_seq {
            f(seq, &data[body_start..body_start + len], format);
            replayed += 1;
        }
        last_seq = seq;
        pos = body_start + len;
    }
    Ok((last_seq, None, replayed))
}

impl Wal {
    /// Reads every entry with a sequence number above `after_seq`, in order, cutting off damage
    /// as the module doc describes. An entry whose payload does not decode is counted as damage
    /// and skipped (its checksum matched, so only a format change could cause it).
    pub fn replay(
        data_dir: &Path,
        after_seq: u64,
        telemetry: &Telemetry,
        f: &mut dyn FnMut(u64, Batch, usize),
    ) -> io::Result<ReplayStats> {
        let dir = wal_dir(data_dir);
        let mut stats = ReplayStats::default();
        for (_, path) in list_segments(&dir)? {
            let mut undecodable = 0u64;
            let (last, damaged_at, replayed) = read_segment(
                &path,
                after_seq,
                &mut |seq, payload, format| match decode_payload(payload, format) {
                    Ok((batch, bytes)) => f(seq, batch, bytes),
                    Err(e) => {
                        undecodable += 1;
                        tracing::error!(seq, error = %e, "WAL entry does not decode; skipped");
                    }
                },
            )?;
            stats.last_seq = stats.last_seq.max(last);
            stats.replayed += replayed - undecodable;
            stats.corruptions += undecodable;
            telemetry
                .records_undecodable
                .with_label_values(&["wal"])
                .inc_by(undecodable);
            if let Some(at) = damaged_at {
                let len = fs::metadata(&path)?.len();
                tracing::error!(
                    segment = %path.display(),
                    offset = at,
                    cut_bytes = len - at,
                    "WAL segment is damaged; keeping the intact prefix"
                );
                stats.corruptions += 1;
                OpenOptions::new().write(true).open(&path)?.set_len(at)?;
            }
        }
        telemetry.wal_corruptions.inc_by(stats.corruptions);
        telemetry.wal_replayed_batches.inc_by(stats.replayed);
        Ok(stats)
    }

    /// Starts the writer thread, appending from `next_seq` into a new segment.
    pub fn start(
        data_dir: &Path,
        config: &WalConfig,
        next_seq: u64,
        health: Arc<Health>,
        telemetry: Arc<Telemetry>,
        sink: Sink,
    ) -> io::Result<Wal> {
        let dir = wal_dir(data_dir);
        fs::create_dir_all(&dir)?;
        // Segments named at or past `next_seq` hold no intact entry (else `next_seq` would be past
        // them): they are leftovers of damage and would collide with the new segment's name.
        let mut closed = Vec::new();
        for (first, path) in list_segments(&dir)? {
            if first >= next_seq {
                fs::remove_file(&path)?;
            } else {
                closed.push((first, path));
            }
        }
        let (tx, rx) = mpsc::channel(config.queue_requests);
        let mut writer = Writer {
            closed,
            current: None,
            dir,
            next_seq,
            segment_bytes: config.segment_bytes,
            policy: config.fsync,
            unsynced: false,
            broken: false,
            failing: None,
            last_repair: None,
            health,
            telemetry,
            sink,
        };
        writer.open_segment()?;
        std::thread::Builder::new()
            .name("weft-wal".into())
            .spawn(move || writer.run(rx))?;
        // The periodic fsync of `interval`, and (whatever the policy) a tick at least once a
        // second, so a log that failed mends itself and says so without waiting for traffic:
        // a readiness probe must not wait for writes that only come once it is ready.
        let weak = tx.downgrade();
        let period = match config.fsync {
            FsyncPolicy::Interval => Duration::from_millis(config.fsync_interval_ms),
            _ => Duration::from_secs(1),
        }
        .min(Duration::from_secs(1));
        std::thread::Builder::new()
            .name("weft-wal-tick".into())
            .spawn(move || loop {
                std::thread::sleep(period);
                match weak.upgrade() {
                    Some(tx) if tx.blocking_send(Command::Tick).is_ok() => {}
                    _ => return,
                }
            })?;
        Ok(Wal { tx })
    }

    /// Appends one batch; resolves once it is durable per the fsync policy, with its sequence
    /// number.
    pub async fn append(&self, batch: Arc<Batch>) -> Result<u64, WalError> {
        let encoded = codec::encode_batch(&batch);
        if encoded.len() > MAX_ENTRY_BYTES {
            return Err(WalError::TooLarge {
                bytes: encoded.len(),
            });
        }
        let payload = zstd::bulk::compress(&encoded, ZSTD_LEVEL)?;
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Append {
                payload,
                bytes: encoded.len(),
                batch,
                done,
            })
            .await
            .map_err(|_| WalError::Closed)?;
        wait.await.map_err(|_| WalError::Closed)?
    }

    /// Lets the WAL drop segments the index has made redundant.
    pub fn truncate_through(&self, seq: u64) {
        // A full queue only delays truncation to the next checkpoint.
        let _ = self.tx.try_send(Command::TruncateThrough(seq));
    }

    /// Writes what is queued (handing every entry to the sink), syncs and stops the writer;
    /// returns the last sequence number written. For a clean stop: once the indexer has then
    /// committed, `remove_through` drops what it holds.
    pub fn shutdown(&self) -> Option<u64> {
        let (done, wait) = oneshot::channel();
        self.tx.blocking_send(Command::Shutdown(done)).ok()?;
        wait.blocking_recv().ok()
    }

    /// Deletes the segments of a stopped log whose entries are all at or below `checkpoint`;
    /// `last_seq` is the last entry written (what `shutdown` returned).
    pub fn remove_through(data_dir: &Path, checkpoint: u64, last_seq: u64) -> io::Result<()> {
        let segments = list_segments(&wal_dir(data_dir))?;
        let ends = segments
            .iter()
            .skip(1)
            .map(|(first, _)| first - 1)
            .chain(std::iter::once(last_seq));
        for ((_, path), last) in segments.iter().zip(ends) {
            if last <= checkpoint {
                fs::remove_file(path)?;
            }
        }
        sync_dir(&wal_dir(data_dir))
    }

    /// Reads the entries in `(after_seq, through_seq]` without changing any file: safe beside
    /// the running writer (a torn tail being written is where reading stops). For the indexer
    /// to re-add what a failed commit lost.
    pub fn read_range(
        data_dir: &Path,
        after_seq: u64,
        through_seq: u64,
        f: &mut dyn FnMut(u64, Batch, usize),
    ) -> io::Result<u64> {
        let mut read = 0;
        for (_, path) in list_segments(&wal_dir(data_dir))? {
            read_segment(&path, after_seq, &mut |seq, payload, format| {
                if seq > through_seq {
                    return;
                }
                match decode_payload(payload, format) {
                    Ok((batch, bytes)) => {
                        read += 1;
                        f(seq, batch, bytes);
                    }
                    Err(e) => tracing::error!(seq, error = %e, "WAL entry does not decode"),
                }
            })?;
        }
        Ok(read)
    }
}

struct Segment {
    file: File,
    first_seq: u64,
    len: u64,
}

struct Writer {
    closed: Vec<(u64, PathBuf)>,
    current: Option<Segment>,
    dir: PathBuf,
    next_seq: u64,
    segment_bytes: u64,
    policy: FsyncPolicy,
    unsynced: bool,
    broken: bool,
    /// When the last write failed (the file was cut back, so the next may succeed): reported
    /// as a problem until one does, or for `FAILED_WRITE_MEMORY`.
    failing: Option<Instant>,
    /// When mending a broken log was last tried.
    last_repair: Option<Instant>,
    health: Arc<Health>,
    telemetry: Arc<Telemetry>,
    sink: Sink,
}

struct Pending {
    seq: u64,
    bytes: usize,
    batch: Arc<Batch>,
    done: oneshot::Sender<Result<u64, WalError>>,
}

impl Writer {
    fn open_segment(&mut self) -> io::Result<()> {
        if let Some(old) = self.current.take() {
            old.file.sync_all()?;
            self.closed
                .push((old.first_seq, segment_path(&self.dir, old.first_seq)));
        }
        let path = segment_path(&self.dir, self.next_seq);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        file.write_all(MAGIC)?;
        file.sync_all()?;
        sync_dir(&self.dir)?;
        self.current = Some(Segment {
            file,
            first_seq: self.next_seq,
            len: MAGIC.len() as u64,
        });
        Ok(())
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut group: Vec<Pending> = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            // Gather everything already waiting: one write and one fsync for all of it.
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append {
                        payload,
                        bytes,
                        batch,
                        done,
                    } => {
                        if self.broken {
                            self.try_repair();
                        }
                        if self.broken {
                            let _ = done.send(Err(WalError::Broken));
                        } else {
                            let seq = self.next_seq + group.len() as u64;
                            encode_entry(&mut buf, seq, &payload);
                            group.push(Pending {
                                seq,
                                bytes,
                                batch,
                                done,
                            });
                        }
                    }
                    Command::Tick => self.tick(),
                    Command::TruncateThrough(seq) => self.truncate_through(seq),
                    Command::Shutdown(done) => {
                        if !group.is_empty() {
                            self.commit_group(&mut group, &buf);
                        }
                        self.sync_if_needed();
                        let _ = done.send(self.next_seq - 1);
                        return;
                    }
                }
                if buf.len() < MAX_GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit_group(&mut group, &buf);
            }
            buf.clear();
        }
        self.sync_if_needed();
    }

    fn commit_group(&mut self, group: &mut Vec<Pending>, buf: &[u8]) {
        match self.write_durably(buf) {
            Ok(()) => {
                if self.failing.take().is_some() && !self.broken {
                    self.health.set_wal(None);
                }
                self.next_seq += group.len() as u64;
                self.telemetry.wal_bytes.inc_by(buf.len() as u64);
                for p in group.drain(..) {
                    let _ = p.done.send(Ok(p.seq));
                    (self.sink)(p.seq, p.batch, p.bytes);
                }
                if self
                    .current
                    .as_ref()
                    .is_some_and(|s| s.len >= self.segment_bytes)
                {
                    if let Err(e) = self.open_segment() {
                        tracing::error!(error = %e, "cannot start a new WAL segment");
                        self.mark_broken(&e);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "WAL write failed; the batch was not acknowledged");
                if !self.broken {
                    self.failing = Some(Instant::now());
                    self.health
                        .set_wal(Some(format!("the last write failed ({e})")));
                }
                for p in group.drain(..) {
                    let _ = p
                        .done
                        .send(Err(WalError::Io(io::Error::new(e.kind(), e.to_string()))));
                }
            }
        }
    }

    fn write_durably(&mut self, buf: &[u8]) -> io::Result<()> {
        let seg = self
            .current
            .as_mut()
            .ok_or_else(|| io::Error::other("no segment"))?;
        let before = seg.len;
        if let Err(e) = seg.file.write_all(buf) {
            // Cut the partial write off so later entries do not sit behind garbage.
            let restored = seg
                .file
                .set_len(seg.len)
                .and_then(|_| seg.file.seek(SeekFrom::Start(seg.len)).map(|_| ()));
            if restored.is_err() {
                self.mark_broken(&e);
            }
            return Err(e);
        }
        seg.len += buf.len() as u64;
        self.unsynced = true;
        if self.policy == FsyncPolicy::Always {
            if let Err(e) = self.sync_now() {
                // The group was not acknowledged: mending cuts it off.
                if let Some(seg) = self.current.as_mut() {
                    seg.len = before;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn tick(&mut self) {
        if self.policy == FsyncPolicy::Interval {
            self.sync_if_needed();
        }
        if self.broken {
            self.try_repair();
        } else if self
            .failing
            .is_some_and(|at| at.elapsed() >= FAILED_WRITE_MEMORY)
        {
            // The file was cut back after the failure; nothing is known to be wrong now.
            self.failing = None;
            self.health.set_wal(None);
        }
    }

    fn mark_broken(&mut self, e: &io::Error) {
        self.broken = true;
        self.health
            .set_wal(Some(format!("writes fail ({e}); retrying")));
    }

    /// Mends a broken log, at most once a second: cut the current segment to its last good
    /// entry, make that durable, continue in a new segment.
    fn try_repair(&mut self) {
        if self
            .last_repair
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_repair = Some(Instant::now());
        let cut = match self.current.as_mut() {
            Some(seg) => seg.file.set_len(seg.len).and_then(|_| seg.file.sync_all()),
            None => Ok(()),
        };
        match cut.and_then(|_| self.open_segment()) {
            Ok(()) => {
                self.broken = false;
                self.unsynced = false;
                self.health.set_wal(None);
                tracing::warn!(next_seq = self.next_seq, "WAL writes again");
            }
            Err(e) => tracing::error!(error = %e, "WAL still cannot write"),
        }
    }

    fn sync_now(&mut self) -> io::Result<()> {
        let Some(seg) = self.current.as_mut() else {
            return Ok(());
        };
        let started = Instant::now();
        let result = seg.file.sync_data();
        self.telemetry
            .wal_fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.mark_broken(e);
        }
        self.unsynced = false;
        result
    }

    fn sync_if_needed(&mut self) {
        if self.unsynced {
            if let Err(e) = self.sync_now() {
                tracing::error!(error = %e, "WAL fsync failed; refusing further writes");
            }
        }
    }

    fn truncate_through(&mut self, seq: u64) {
        // Everything in the current segment is indexed too: close it, so it can go.
        let current_done = self
            .current
            .as_ref()
            .is_some_and(|s| s.len > MAGIC.len() as u64 && self.next_seq - 1 <= seq);
        if current_done && !self.broken {
            if let Err(e) = self.open_segment() {
                tracing::error!(error = %e, "cannot start a new WAL segment");
                self.mark_broken(&e);
            }
        }
        // A closed segment's entries end just before the next segment's first sequence number.
        let current_first = self.current.as_ref().map_or(u64::MAX, |s| s.first_seq);
        let mut keep = Vec::new();
        let firsts: Vec<u64> = self
            .closed
            .iter()
            .map(|(f, _)| *f)
            .chain(std::iter::once(current_first))
            .collect();
        for (i, (first, path)) in self.closed.drain(..).enumerate() {
            let last_in_segment = firsts[i + 1].saturating_sub(1);
            if last_in_segment <= seq {
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(segment = %path.display(), error = %e, "cannot delete WAL segment");
                }
            } else {
                keep.push((first, path));
            }
        }
        self.closed = keep;
    }
}

#[cfg(test)]
mod tests;
