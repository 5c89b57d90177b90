//! OTLP/gRPC: the three export services over the same ingest path as OTLP/HTTP.
//!
//! Served by a small hand-written service rather than tonic's generated servers, because
//! those decode the message before any handler runs: an unauthenticated 14 MiB export took
//! 1.3 GB before it was refused. Here the token is checked from the headers first, the body's
//! bytes are charged to the in-flight budget as they arrive (within `http.body_timeout_secs`),
//! tonic then only unframes and decompresses (a codec that yields the message's bytes), and
//! `IngestService::decode_export` charges for what decoding and conversion will allocate
//! before doing either.

use super::auth::Auth;
use super::errors::grpc_status;
use super::otlp_http::{logs_response, metrics_response, trace_response};
use crate::ingest::admission::{Admission, Charge};
use crate::ingest::decode::{DecodeError, Format};
use crate::ingest::request::{ExportRequest, RequestError};
use crate::ingest::{IngestService, Outcome};
use crate::model::TenantId;
use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

/// One OTLP export method: its gRPC names and its reply.
pub trait Method: ExportRequest + Send + 'static {
    const SERVICE: &'static str;
    const PATH: &'static str;
    type Reply: prost::Message + Default + Send + 'static;
    fn reply(o: Outcome) -> Self::Reply;
}

impl Method for ExportTraceServiceRequest {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    type Reply = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    fn reply(o: Outcome) -> Self::Reply {
        trace_response(o)
    }
}

impl Method for ExportLogsServiceRequest {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    type Reply = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
    fn reply(o: Outcome) -> Self::Reply {
        logs_response(o)
    }
}

impl Method for ExportMetricsServiceRequest {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    type Reply = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    fn reply(o: Outcome) -> Self::Reply {
        metrics_response(o)
    }
}

/// Encodes replies with prost; decodes requests into their message bytes only.
struct RawCodec<T>(PhantomData<T>);

struct ReplyEncoder<T>(PhantomData<T>);

struct BytesDecoder;

impl<T: prost::Message + Send + 'static> Codec for RawCodec<T> {
    type Encode = T;
    type Decode = Bytes;
    type Encoder = ReplyEncoder<T>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ReplyEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

impl<T: prost::Message> Encoder for ReplyEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("cannot encode the reply: {e}")))
    }
}

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// The export service of one signal.
pub struct OtlpGrpc<R> {
    ingest: Arc<IngestService>,
    auth: Arc<Auth>,
    max_message_bytes: usize,
    body_timeout: Duration,
    _method: PhantomData<fn() -> R>,
}

impl<R> Clone for OtlpGrpc<R> {
    fn clone(&self) -> Self {
        Self {
            ingest: self.ingest.clone(),
            auth: self.auth.clone(),
            max_message_bytes: self.max_message_bytes,
            body_timeout: self.body_timeout,
            _method: PhantomData,
        }
    }
}

impl<R: Method> NamedService for OtlpGrpc<R> {
    const NAME: &'static str = R::SERVICE;
}

impl<R: Method> Service<http::Request<Body>> for OtlpGrpc<R> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

impl<R: Method> OtlpGrpc<R> {
    async fn handle(self, req: http::Request<Body>) -> http::Response<Body> {
        if req.uri().path() != R::PATH {
            return Status::unimplemented(format!("no method {}", req.uri().path())).into_http();
        }
        let started = Instant::now();
        let meta = tonic::metadata::MetadataMap::from_headers(req.headers().clone());
        let tenant = match self.auth.from_grpc(&meta) {
            Ok(t) => t,
            Err(e) => return self.answered(started, grpc_status(&e)),
        };
        let (parts, body) = req.into_parts();
        let mut charge = Admission::empty_charge();
        let bytes = match self.read_charged(body, &mut charge).await {
            Ok(b) => b,
            Err(e) => {
                self.ingest.count_refused_request(R::SIGNAL, e.reason());
                return self.answered(started, grpc_status(&e));
            }
        };
        let mut grpc = Grpc::new(RawCodec::<R::Reply>(PhantomData))
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(self.max_message_bytes);
        let unary = Unary::<R> {
            service: self.clone(),
            tenant: Some(tenant),
            charge: Some(charge),
            started,
        };
        let body = http_body_util::Full::new(bytes);
        grpc.unary(unary, http::Request::from_parts(parts, body))
            .await
    }

    /// The request's bytes, charged to the in-flight budget frame by frame, within the body
    /// timeout and the message size limit (plus gRPC's 5-byte frame header).
    async fn read_charged(
        &self,
        mut body: Body,
        charge: &mut Charge,
    ) -> Result<Bytes, RequestError> {
        let limit = self.max_message_bytes + 5;
        let deadline = tokio::time::Instant::now() + self.body_timeout;
        let mut out = bytes::BytesMut::new();
        loop {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .map_err(|_| DecodeError::Timeout {
                    secs: self.body_timeout.as_secs(),
                })?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| DecodeError::Protobuf {
                message: "gRPC request body",
                error: e.to_string(),
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if out.len() + data.len() > limit {
                return Err(DecodeError::TooLarge {
                    limit: self.max_message_bytes,
                    inflated: false,
                }
                .into());
            }
            self.ingest.admission().grow(charge, data.len())?;
            out.extend_from_slice(&data);
        }
        Ok(out.freeze())
    }

    /// Records the latency and code of a call answered before tonic took it.
    fn answered(&self, started: Instant, status: Status) -> http::Response<Body> {
        self.observe(started, status.code());
        status.into_http()
    }

    fn observe(&self, started: Instant, code: tonic::Code) {
        self.ingest
            .telemetry()
            .grpc_request_seconds
            .with_label_values(&[R::SIGNAL.as_str(), &format!("{code:?}")])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// The call itself, once tonic has unframed (and inflated) the message.
struct Unary<R> {
    service: OtlpGrpc<R>,
    tenant: Option<TenantId>,
    charge: Option<Charge>,
    started: Instant,
}

impl<R: Method> UnaryService<Bytes> for Unary<R> {
    type Response = R::Reply;
    type Future = BoxFuture<Response<R::Reply>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let service = self.service.clone();
        let (tenant, charge, started) = (self.tenant.take(), self.charge.take(), self.started);
        Box::pin(async move {
            let (Some(tenant), Some(mut charge)) = (tenant, charge) else {
                return Err(Status::internal("a unary call is made once"));
            };
            let ingest = &service.ingest;
            let result = async {
                let message = request.into_inner();
                // The inflated message is held beside the frames already charged.
                ingest
                    .admission()
                    .grow(&mut charge, message.len())
                    .map_err(RequestError::from)
                    .and_then(|_| {
                        ingest.decode_export::<R>(Format::Protobuf, &message, &mut charge)
                    })
                    .map_err(|e| {
                        ingest.count_refused_request(R::SIGNAL, e.reason());
                        grpc_status(&e)
                    })
            }
            .await;
            let result = match result {
                Ok(converted) => ingest
                    .ingest(tenant, R::SIGNAL, converted)
                    .await
                    .map(|o| Response::new(R::reply(o)))
                    .map_err(|e| grpc_status(&e)),
                Err(status) => Err(status),
            };
            drop(charge);
            let code = result
                .as_ref()
                .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
            service.observe(started, code);
            result
        })
    }
}

/// Serves the three services on `listener` until `shutdown` resolves.
pub async fn serve(
    ingest: Arc<IngestService>,
    auth: Arc<Auth>,
    listener: tokio::net::TcpListener,
    max_message_bytes: usize,
    body_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    fn service<R: Method>(
        ingest: &Arc<IngestService>,
        auth: &Arc<Auth>,
        max_message_bytes: usize,
        body_timeout: Duration,
    ) -> OtlpGrpc<R> {
        OtlpGrpc {
            ingest: ingest.clone(),
            auth: auth.clone(),
            max_message_bytes,
            body_timeout,
            _method: PhantomData,
        }
    }
    tonic::transport::Server::builder()
        .add_service(service::<ExportTraceServiceRequest>(
            &ingest,
            &auth,
            max_message_bytes,
            body_timeout,
        ))
        .add_service(service::<ExportLogsServiceRequest>(
            &ingest,
            &auth,
            max_message_bytes,
            body_timeout,
        ))
        .add_service(service::<ExportMetricsServiceRequest>(
            &ingest,
            &auth,
            max_message_bytes,
            body_timeout,
        ))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
}
