//! What is wrong right now, if anything: the write-ahead log refusing writes, or indexing
//! failing (a full disk). The parts that find a problem report it here and clear it when it
//! is mended; `/readyz` and ingest read it, so writes get 503 with a reason meanwhile instead
//! of an acknowledgement weft could not keep. Depends on nothing in the crate.

use parking_lot::Mutex;

#[derive(Debug, Default)]
pub struct Health {
    wal: Mutex<Option<String>>,
    index: Mutex<Option<String>>,
}

impl Health {
    /// The WAL's problem, or `None` once it writes again.
    pub fn set_wal(&self, problem: Option<String>) {
        *self.wal.lock() = problem;
    }

    /// The indexer's problem, or `None` once it commits again.
    pub fn set_index(&self, problem: Option<String>) {
        *self.index.lock() = problem;
    }

    /// Why weft cannot take writes now, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let wal = self.wal.lock().clone();
        let index = self.index.lock().clone();
        match (wal, index) {
            (None, None) => None,
            (Some(w), None) => Some(format!("write-ahead log: {w}")),
            (None, Some(i)) => Some(format!("indexing: {i}")),
            (Some(w), Some(i)) => Some(format!("write-ahead log: {w}; indexing: {i}")),
        }
    }

    /// Why indexing fails now, if it does.
    pub fn index_problem(&self) -> Option<String> {
        self.index.lock().clone()
    }
}
