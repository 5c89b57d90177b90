//! One OTLP export request from its body to converted records, with the in-flight budget
//! charged before each step for what that step will allocate (`cost`): the bytes as they
//! arrive (the transport's part), then the decoded structs, then the model records. The same
//! path for OTLP/HTTP and OTLP/gRPC.

use super::admission::{AdmissionError, Charge};
use super::decode::{self, DecodeError, Format};
use super::otlp::{self, Converted};
use super::{cost, IngestService};
use crate::error::{ErrorCode, ServiceError};
use crate::model::Signal;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// Why a request's records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Admission(#[from] AdmissionError),
}

impl ServiceError for RequestError {
    fn code(&self) -> ErrorCode {
        match self {
            RequestError::Decode(e) => e.code(),
            RequestError::Admission(e) => e.code(),
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            RequestError::Decode(e) => e.retry_after(),
            RequestError::Admission(e) => e.retry_after(),
        }
    }
}

impl RequestError {
    /// A short, fixed label for the rejection counter.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::Decode(e) => e.reason(),
            RequestError::Admission(e) => e.reason(),
        }
    }
}

/// The three OTLP export requests.
pub trait ExportRequest: prost::Message + Default + serde::de::DeserializeOwned {
    const SIGNAL: Signal;
    /// What conversion adds to the `decoded` bytes decoding allocated.
    fn conversion_cost(&self, decoded: usize) -> usize;
    fn convert(self, ingest: &IngestService) -> Converted;
}

impl ExportRequest for ExportTraceServiceRequest {
    const SIGNAL: Signal = Signal::Spans;
    fn conversion_cost(&self, decoded: usize) -> usize {
        cost::conversion_spans(self, decoded)
    }
    fn convert(self, _: &IngestService) -> Converted {
        otlp::spans(self)
    }
}

impl ExportRequest for ExportLogsServiceRequest {
    const SIGNAL: Signal = Signal::Logs;
    fn conversion_cost(&self, decoded: usize) -> usize {
        cost::conversion_logs(self, decoded)
    }
    fn convert(self, ingest: &IngestService) -> Converted {
        otlp::logs(self, ingest.extractor())
    }
}

impl ExportRequest for ExportMetricsServiceRequest {
    const SIGNAL: Signal = Signal::Metrics;
    fn conversion_cost(&self, decoded: usize) -> usize {
        cost::conversion_metrics(self, decoded)
    }
    fn convert(self, _: &IngestService) -> Converted {
        otlp::metrics(self)
    }
}

impl IngestService {
    /// Decodes and converts an OTLP request whose (decompressed) body `charge` already holds,
    /// growing `charge` first for the structs decoding makes and then for the records.
    pub fn decode_export<R: ExportRequest>(
        &self,
        format: Format,
        body: &[u8],
        charge: &mut Charge,
    ) -> Result<Converted, RequestError> {
        let decoded = match format {
            Format::Protobuf => {
                cost::protobuf(R::SIGNAL, body).map_err(|error| DecodeError::Protobuf {
                    message: decode::short_type_name::<R>(),
                    error,
                })?
            }
            Format::Json => cost::json(body),
        };
        self.admission().grow(charge, decoded)?;
        let request: R = decode::decode_otlp(format, body)?;
        self.admission()
            .grow(charge, request.conversion_cost(decoded))?;
        Ok(request.convert(self))
    }
}
