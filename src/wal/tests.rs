use super::*;
use crate::model::{testing, Record, TenantId};
use proptest::prelude::*;
use std::sync::Mutex;

fn batch(n: u64) -> Batch {
    let mut log = testing::log(&format!("entry {n}"));
    log.time_ns = n;
    Batch {
        tenant: TenantId::default(),
        records: vec![Record::Log(log)],
    }
}

fn entry_number(b: &Batch) -> u64 {
    match &b.records[0] {
        Record::Log(l) => l.time_ns,
        _ => unreachable!(),
    }
}

fn config(segment_bytes: u64) -> WalConfig {
    WalConfig {
        segment_bytes,
        ..WalConfig::default()
    }
}

/// Appends `numbers` through a real writer thread, returning the sequence numbers and what
/// the sink saw.
fn append_all(dir: &Path, next_seq: u64, numbers: &[u64], segment_bytes: u64) -> Vec<u64> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink_seen = seen.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seqs = rt.block_on(async {
        let wal = Wal::start(
            dir,
            &config(segment_bytes),
            next_seq,
            Arc::new(crate::health::Health::default()),
            Arc::new(Telemetry::new()),
            Box::new(move |seq, _, _| sink_seen.lock().unwrap().push(seq)),
        )
        .unwrap();
        let mut seqs = Vec::new();
        for &n in numbers {
            seqs.push(wal.append(Arc::new(batch(n))).await.unwrap());
        }
        seqs
    });
    // The sink runs after the acknowledgement; give the writer a moment to pass it on.
    for _ in 0..100 {
        if seen.lock().unwrap().len() == numbers.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        *seen.lock().unwrap(),
        seqs,
        "sink sees every entry in order"
    );
    seqs
}

fn replay_all(dir: &Path, after: u64) -> (Vec<(u64, u64)>, ReplayStats) {
    let mut got = Vec::new();
    let stats = Wal::replay(dir, after, &Telemetry::new(), &mut |seq, b, _| {
        got.push((seq, entry_number(&b)))
    })
    .unwrap();
    (got, stats)
}

fn last_segment(dir: &Path) -> PathBuf {
    list_segments(&wal_dir(dir)).unwrap().pop().unwrap().1
}

#[test]
fn appends_replay_in_order_across_restarts_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let seqs = append_all(dir.path(), 1, &(0..50).collect::<Vec<_>>(), 1024 * 1024);
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    let (got, stats) = replay_all(dir.path(), 0);
    assert_eq!(stats.last_seq, 50);
    assert_eq!(got.len(), 50);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, &(s, n))| s == i as u64 + 1 && n == i as u64));
    // A restart continues the numbering in a new segment; replay skips what is checkpointed.
    append_all(dir.path(), 51, &[100, 101], 1024 * 1024);
    let (got, stats) = replay_all(dir.path(), 49);
    assert_eq!(got, vec![(50, 49), (51, 100), (52, 101)]);
    assert_eq!(stats.corruptions, 0);
}

#[test]
fn truncation_deletes_only_fully_checkpointed_segments() {
    let dir = tempfile::tempdir().unwrap();
    append_all(dir.path(), 1, &[1, 2, 3], 1024 * 1024);
    append_all(dir.path(), 4, &[4, 5], 1024 * 1024);
    assert_eq!(list_segments(&wal_dir(dir.path())).unwrap().len(), 2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let wal = Wal::start(
            dir.path(),
            &config(1024 * 1024),
            6,
            Arc::new(crate::health::Health::default()),
            Arc::new(Telemetry::new()),
            Box::new(|_, _, _| {}),
        )
        .unwrap();
        wal.truncate_through(2); // segment 1 holds 1..=3: kept
        wal.truncate_through(3); // now it can go
        wal.append(Arc::new(batch(6))).await.unwrap(); // a round trip orders the commands
    });
    let firsts: Vec<u64> = list_segments(&wal_dir(dir.path()))
        .unwrap()
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(firsts, vec![4, 6]);
    let (got, _) = replay_all(dir.path(), 3);
    assert_eq!(got, vec![(4, 4), (5, 5), (6, 6)]);
}

#[test]
fn garbage_after_the_last_entry_is_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    append_all(dir.path(), 1, &[1, 2, 3], 1024 * 1024);
    let seg = last_segment(dir.path());
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0xAB; 37]).unwrap();
    let (got, stats) = replay_all(dir.path(), 0);
    assert_eq!(got.len(), 3);
    assert_eq!(stats.corruptions, 1);
    // The damage is gone: a second replay is clean.
    assert_eq!(replay_all(dir.path(), 0).1.corruptions, 0);
}

#[test]
fn a_flipped_byte_keeps_every_entry_before_it() {
    let dir = tempfile::tempdir().unwrap();
    append_all(dir.path(), 1, &(0..10).collect::<Vec<_>>(), 1024 * 1024);
    let seg = last_segment(dir.path());
    let mut data = fs::read(&seg).unwrap();
    let mut offsets = Vec::new();
    read_segment(&seg, 0, &mut |_, _, _| {}).unwrap();
    // Find the start of entry 6 by walking the headers.
    let mut pos = MAGIC.len();
    while pos < data.len() {
        offsets.push(pos);
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        pos += HEADER_BYTES + len;
    }
    data[offsets[5] + HEADER_BYTES + 2] ^= 0x40;
    fs::write(&seg, &data).unwrap();
    let (got, stats) = replay_all(dir.path(), 0);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(stats.corruptions, 1);
    // New appends continue after the highest intact entry and replay after the old ones.
    append_all(dir.path(), stats.last_seq + 1, &[77], 1024 * 1024);
    let (got, _) = replay_all(dir.path(), 0);
    assert_eq!(got.last(), Some(&(6, 77)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Cutting the log anywhere (a torn write) keeps exactly the entries wholly before the cut.
    #[test]
    fn torn_tail_keeps_the_intact_prefix(count in 1usize..20, cut_fraction in 0.0f64..1.0) {
        let dir = tempfile::tempdir().unwrap();
        append_all(dir.path(), 1, &(0..count as u64).collect::<Vec<_>>(), 1024 * 1024);
        let seg = last_segment(dir.path());
        let full = fs::read(&seg).unwrap();
        let cut = (full.len() as f64 * cut_fraction) as usize;
        fs::write(&seg, &full[..cut]).unwrap();
        // The model: entries whose last byte is before the cut survive.
        let mut expected = Vec::new();
        let mut boundaries = vec![MAGIC.len()];
        let mut pos = MAGIC.len();
        let mut seq = 1u64;
        while pos < full.len() {
            let len = u32::from_le_bytes(full[pos..pos + 4].try_into().unwrap()) as usize;
            pos += HEADER_BYTES + len;
            boundaries.push(pos);
            if pos <= cut { expected.push(seq); }
            seq += 1;
        }
        let (got, stats) = replay_all(dir.path(), 0);
        prop_assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), expected);
        let clean_cut = boundaries.contains(&cut);
        prop_assert_eq!(stats.corruptions, if clean_cut { 0 } else { 1 });
    }
}

#[test]
fn segments_of_older_formats_replay_beside_compressed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_dir(dir.path());
    fs::create_dir_all(&wal).unwrap();
    let write = |first: u64, magic: &[u8; 8], payloads: &[Vec<u8>]| {
        let mut buf = magic.to_vec();
        for (i, p) in payloads.iter().enumerate() {
            encode_entry(&mut buf, first + i as u64, p);
        }
        fs::write(segment_path(&wal, first), buf).unwrap();
    };
    write(1, MAGIC_V0, &[postcard::to_allocvec(&batch(10)).unwrap()]);
    write(
        2,
        MAGIC_V1,
        &[
            codec::encode_batch(&batch(20)),
            codec::encode_batch(&batch(21)),
        ],
    );
    append_all(dir.path(), 4, &[30], 1024 * 1024);
    assert_eq!(&fs::read(last_segment(dir.path())).unwrap()[..8], MAGIC);
    let (got, stats) = replay_all(dir.path(), 0);
    assert_eq!(got, vec![(1, 10), (2, 20), (3, 21), (4, 30)]);
    assert_eq!(stats.corruptions, 0);
}

#[test]
fn entries_are_stored_compressed_and_counted_at_their_uncompressed_size() {
    let dir = tempfile::tempdir().unwrap();
    let records = (0..200)
        .map(|i| {
            let mut log = testing::log(&format!("GET /cart/{i} answered 200 in {} ms", i % 17));
            log.time_ns = i;
            Record::Log(log)
        })
        .collect();
    let big = Batch {
        tenant: TenantId::default(),
        records,
    };
    let encoded = codec::encode_batch(&big).len();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = sizes.clone();
    rt.block_on(async {
        let wal = Wal::start(
            dir.path(),
            &config(1024 * 1024),
            1,
            Arc::new(crate::health::Health::default()),
            Arc::new(Telemetry::new()),
            Box::new(move |_, _, bytes| seen.lock().unwrap().push(bytes)),
        )
        .unwrap();
        wal.append(Arc::new(big.clone())).await.unwrap();
    });
    let on_disk = fs::metadata(last_segment(dir.path())).unwrap().len() as usize;
    assert!(
        on_disk - MAGIC.len() - HEADER_BYTES < encoded / 3,
        "{on_disk} bytes on disk for a {encoded}-byte batch"
    );
    let mut replayed = Vec::new();
    Wal::replay(dir.path(), 0, &Telemetry::new(), &mut |_, b, bytes| {
        replayed.push((b, bytes))
    })
    .unwrap();
    assert_eq!(replayed, vec![(big, encoded)]);
    for _ in 0..100 {
        if !sizes.lock().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*sizes.lock().unwrap(), vec![encoded]);
}
