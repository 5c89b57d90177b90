//! Ingest: decode requests, validate them into model records, find trace IDs, and make each
//! batch durable in the WAL before anyone is told it was accepted.
//! May depend on `model`, `wal`, `config`, `error` and `telemetry`.

pub mod admission;
pub mod cost;
pub mod decode;
pub mod jsonlines;
pub mod limits;
pub mod otlp;
pub mod request;
pub mod traceids;

use crate::config::LimitsConfig;
use crate::error::{ErrorCode, ServiceError};
use crate::health::Health;
use crate::model::{Batch, Signal, TenantId};
use crate::telemetry::Telemetry;
use crate::wal::{Wal, WalError};
use admission::{Admission, AdmissionError};
use otlp::Converted;
use std::sync::{Arc, OnceLock};
use traceids::Extractor;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("weft is replaying its write-ahead log and not ready for writes yet")]
    NotReady,
    /// Indexing fails (a full disk): accepting more would only grow the WAL past what can be
    /// indexed; weft retries and takes writes again once it commits.
    #[error("weft cannot index now ({0}); retry later")]
    Degraded(String),
    #[error("{0}")]
    AllRejected(String),
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Admission(#[from] AdmissionError),
}

impl ServiceError for IngestError {
    fn code(&self) -> ErrorCode {
        match self {
            IngestError::NotReady | IngestError::Degraded(_) => ErrorCode::Unavailable,
            IngestError::AllRejected(_) => ErrorCode::InvalidArgument,
            IngestError::Wal(e) => e.code(),
            IngestError::Admission(e) => e.code(),
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            IngestError::Admission(e) => e.retry_after(),
            IngestError::Wal(e) => e.retry_after(),
            IngestError::AllRejected(_) => None,
            IngestError::NotReady => Some(std::time::Duration::from_secs(1)),
            IngestError::Degraded(_) => Some(std::time::Duration::from_secs(5)),
        }
    }
}

/// What a successful request reports back: OTLP's partial success, in numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: u64,
    pub rejected: u64,
    /// Empty when nothing was rejected.
    pub message: String,
}

/// Where accepted batches go.
pub enum Sink {
    /// The write-ahead log, set once its replay is done; until then writes get 503.
    Wal(Arc<OnceLock<Wal>>),
    /// Nowhere: requests are received, decoded, validated and acknowledged, and nothing is
    /// stored. The benchmark's ceiling, never for real data.
    Null,
}

pub struct IngestService {
    sink: Sink,
    extractor: Extractor,
    health: Arc<Health>,
    telemetry: Arc<Telemetry>,
    limits: LimitsConfig,
    admission: Admission,
}

impl IngestService {
    pub fn new(
        sink: Sink,
        extractor: Extractor,
        health: Arc<Health>,
        telemetry: Arc<Telemetry>,
        limits: LimitsConfig,
    ) -> Self {
        Self {
            sink,
            extractor,
            health,
            telemetry,
            admission: Admission::new(
                limits.max_inflight_bytes,
                limits.max_request_memory_bytes,
                limits.tenant_records_per_sec,
            ),
            limits,
        }
    }

    /// The in-flight memory budget that request handlers charge before reading bodies.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Why writes cannot be taken now: the replay is not done, or the WAL or the indexer
    /// fails (`health`).
    pub fn not_ready(&self) -> Option<String> {
        match &self.sink {
            Sink::Wal(wal) if wal.get().is_none() => {
                Some("replaying the write-ahead log".to_string())
            }
            Sink::Wal(_) => self.health.problem(),
            Sink::Null => None,
        }
    }

    pub fn extractor(&self) -> &Extractor {
        &self.extractor
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Counts a request refused before its records could be read.
    pub fn count_refused_request(&self, signal: Signal, reason: &str) {
        self.telemetry
            .requests_rejected
            .with_label_values(&[signal.as_str(), reason])
            .inc();
    }

    /// Makes the valid records of one request durable. Success means they are in the WAL;
    /// a request whose every record is invalid is an error, so nothing pretends to succeed.
    pub async fn ingest(
        &self,
        tenant: TenantId,
        signal: Signal,
        mut converted: Converted,
    ) -> Result<Outcome, IngestError> {
        let noun = signal.as_str();
        let truncated = limits::enforce(&mut converted, &self.limits, crate::now_ns());
        if truncated > 0 {
            self.telemetry.log_bodies_truncated.inc_by(truncated);
        }
        for (reason, count) in &converted.reasons {
            self.telemetry
                .records_rejected
                .with_label_values(&[noun, reason])
                .inc_by(*count);
        }
        let message = converted.summary(signal.record_noun());
        let accepted = converted.records.len() as u64;
        if accepted == 0 {
            return if converted.rejected > 0 {
                Err(IngestError::AllRejected(message))
            } else {
                Ok(Outcome {
                    accepted: 0,
                    rejected: 0,
                    message,
                })
            };
        }
        let wal = match &self.sink {
            Sink::Wal(cell) => match cell.get() {
                Some(wal) => Some(wal),
                None => {
                    self.count_refused_request(signal, "not_ready");
                    return Err(IngestError::NotReady);
                }
            },
            Sink::Null => None,
        };
        if let Some(problem) = self.health.index_problem() {
            self.count_refused_request(signal, "index_failing");
            return Err(IngestError::Degraded(problem));
        }
        if let Err(e) = self.admission.take_records(&tenant, accepted) {
            self.count_refused_request(signal, e.reason());
            self.telemetry
                .records_rejected
                .with_label_values(&[noun, e.reason()])
                .inc_by(accepted);
            return Err(e.into());
        }
        let batch = Arc::new(Batch {
            tenant,
            records: converted.records,
        });
        let appended = match wal {
            Some(wal) => wal.append(batch).await.map(|_| ()),
            None => Ok(()),
        };
        if let Err(e) = appended {
            let reason = match e {
                WalError::TooLarge { .. } => "too_large",
                _ => "wal_unavailable",
            };
            self.telemetry
                .records_rejected
                .with_label_values(&[noun, reason])
                .inc_by(accepted);
            return Err(e.into());
        }
        self.telemetry
            .records_accepted
            .with_label_values(&[noun])
            .inc_by(accepted);
        Ok(Outcome {
            accepted,
            rejected: converted.rejected,
            message,
        })
    }
}
