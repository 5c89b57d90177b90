//! OTLP/gRPC: the three export services over the same ingest path as OTLP/HTTP.

use super::auth::Auth;
use super::errors::grpc_status;
use super::otlp_http::{logs_response, metrics_response, trace_response};
use crate::ingest::admission::{Admission, BYTES_PER_BODY_BYTE};
use crate::ingest::otlp::{self, Converted};
use crate::ingest::{IngestService, Outcome};
use crate::model::Signal;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::Arc;
use std::time::Instant;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct OtlpGrpc {
    ingest: Arc<IngestService>,
    auth: Arc<Auth>,
}

impl OtlpGrpc {
    async fn export<Req, Resp>(
        &self,
        request: Request<Req>,
        signal: Signal,
        convert: impl FnOnce(&IngestService, Req) -> Converted,
        respond: fn(Outcome) -> Resp,
    ) -> Result<Response<Resp>, Status>
    where
        Req: prost::Message,
    {
        let started = Instant::now();
        let result = async {
            let tenant = self
                .auth
                .from_grpc(request.metadata())
                .map_err(|e| grpc_status(&e))?;
            // tonic has decoded the message already (bounded by max_message_bytes); charging
            // it now still keeps the requests in flight, and the WAL queue, bounded.
            let mut charge = Admission::empty_charge();
            let size = request.get_ref().encoded_len() * BYTES_PER_BODY_BYTE;
            if let Err(e) = self.ingest.admission().grow(&mut charge, size) {
                self.ingest.count_refused_request(signal, e.reason());
                return Err(grpc_status(&e));
            }
            let converted = convert(&self.ingest, request.into_inner());
            self.ingest
                .ingest(tenant, signal, converted)
                .await
                .map(|o| Response::new(respond(o)))
                .map_err(|e| grpc_status(&e))
        }
        .await;
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        self.ingest
            .telemetry()
            .grpc_request_seconds
            .with_label_values(&[signal.as_str(), &format!("{code:?}")])
            .observe(started.elapsed().as_secs_f64());
        result
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        OtlpGrpc::export(
            self,
            request,
            Signal::Spans,
            |_, m| otlp::spans(m),
            trace_response,
        )
        .await
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        OtlpGrpc::export(
            self,
            request,
            Signal::Logs,
            |ingest, m| otlp::logs(m, ingest.extractor()),
            logs_response,
        )
        .await
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        OtlpGrpc::export(
            self,
            request,
            Signal::Metrics,
            |_, m| otlp::metrics(m),
            metrics_response,
        )
        .await
    }
}

/// Serves the three services on `listener` until the process ends.
pub async fn serve(
    ingest: Arc<IngestService>,
    auth: Arc<Auth>,
    listener: tokio::net::TcpListener,
    max_message_bytes: usize,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let svc = OtlpGrpc { ingest, auth };
    tonic::transport::Server::builder()
        .add_service(
            TraceServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max_message_bytes),
        )
        .add_service(
            LogsServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max_message_bytes),
        )
        .add_service(
            MetricsServiceServer::new(svc)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max_message_bytes),
        )
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
}
