//! The official OpenTelemetry Rust SDK and OTLP exporters, over HTTP (protobuf, gzip) and gRPC
//! (gzip, tenant in metadata), send spans, logs and metrics; everything is read back by trace
//! ID through the query API.

mod common;

use common::Server;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{
    Compression, LogExporter, MetricExporter, Protocol, SpanExporter, WithExportConfig,
    WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

struct Exporters {
    spans: SpanExporter,
    logs: LogExporter,
    metrics: MetricExporter,
}

/// What the SDK produced: the trace and span IDs to look for.
struct Sent {
    trace_id: String,
    root_span: String,
    child_span: String,
}

/// One request through a parent and a child span, an error log inside the child, a counter
/// and a histogram; all flushed before returning.
fn emit(exporters: Exporters, service: &str) -> Sent {
    let resource = Resource::builder()
        .with_service_name(service.to_string())
        .build();
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_simple_exporter(exporters.spans)
        .build();
    let logger_provider = SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_simple_exporter(exporters.logs)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_periodic_exporter(exporters.metrics)
        .build();
    let tracer = tracer_provider.tracer("weft-test");
    let logger = logger_provider.logger("weft-test");
    let meter = meter_provider.meter("weft-test");
    let orders = meter.u64_counter("orders").build();
    let latency = meter.f64_histogram("http.server.duration").build();

    let mut sent = None;
    tracer.in_span("POST /checkout", |cx| {
        let root = cx.span().span_context().clone();
        cx.span()
            .set_attribute(KeyValue::new("http.route", "/checkout"));
        let mut child = tracer
            .span_builder("SELECT orders")
            .with_kind(SpanKind::Client)
            .with_attributes(vec![KeyValue::new("db.system", "postgresql")])
            .start_with_context(&tracer, &cx);
        let child_ctx = child.span_context().clone();
        let mut record = logger.create_log_record();
        record.set_body(AnyValue::from("order insert failed: deadlock detected"));
        record.set_severity_number(Severity::Error);
        record.set_severity_text("ERROR");
        record.add_attribute("db.statement", "INSERT INTO orders");
        record.set_trace_context(
            child_ctx.trace_id(),
            child_ctx.span_id(),
            Some(child_ctx.trace_flags()),
        );
        logger.emit(record);
        child.set_status(opentelemetry::trace::Status::error("deadlock"));
        child.end();
        orders.add(1, &[KeyValue::new("route", "/checkout")]);
        latency.record(0.25, &[KeyValue::new("route", "/checkout")]);
        sent = Some(Sent {
            trace_id: root.trace_id().to_string(),
            root_span: root.span_id().to_string(),
            child_span: child_ctx.span_id().to_string(),
        });
    });
    tracer_provider.force_flush().expect("spans flushed");
    logger_provider.force_flush().expect("logs flushed");
    meter_provider.force_flush().expect("metrics flushed");
    sent.expect("span ran")
}

fn check(s: &Server, sent: &Sent, tenant: Option<&str>, service: &str) {
    let t = s.wait_for_trace(&sent.trace_id, tenant, 2, 1);
    let spans = t["spans"].as_array().unwrap();
    let root = spans
        .iter()
        .find(|sp| sp["span_id"] == sent.root_span.as_str())
        .expect("root span");
    let child = spans
        .iter()
        .find(|sp| sp["span_id"] == sent.child_span.as_str())
        .expect("child span");
    assert_eq!(root["name"], "POST /checkout");
    assert_eq!(root["service"], service);
    assert_eq!(root["attributes"]["http.route"], "/checkout");
    assert_eq!(root["parent_span_id"], serde_json::Value::Null);
    assert_eq!(child["name"], "SELECT orders");
    assert_eq!(child["kind"], 3, "client");
    assert_eq!(child["parent_span_id"], sent.root_span.as_str());
    assert_eq!(child["status"]["code"], 2);
    assert_eq!(child["status"]["message"], "deadlock");
    assert_eq!(child["attributes"]["db.system"], "postgresql");
    assert_eq!(child["scope"]["name"], "weft-test");
    let log = &t["logs"][0];
    assert_eq!(log["body"], "order insert failed: deadlock detected");
    assert_eq!(log["severity_number"], 17);
    assert_eq!(log["severity_text"], "ERROR");
    assert_eq!(log["span_id"], sent.child_span.as_str());
    assert_eq!(log["attributes"]["db.statement"], "INSERT INTO orders");
    assert_eq!(log["service"], service);
    assert_eq!(log["link"]["method"], "structured");
    common::wait_until(std::time::Duration::from_secs(10), "metric points", || {
        s.metric("weft_records_accepted_total{signal=\"metrics\"}") >= 2.0
    });
}

#[test]
fn official_exporter_over_http() {
    let s = Server::start(&[]);
    let exporters = Exporters {
        spans: SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(s.url("/v1/traces"))
            .with_compression(Compression::Gzip)
            .build()
            .unwrap(),
        logs: LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(s.url("/v1/logs"))
            .build()
            .unwrap(),
        metrics: MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(s.url("/v1/metrics"))
            .build()
            .unwrap(),
    };
    let sent = emit(exporters, "shop-http");
    check(&s, &sent, None, "shop-http");
}

#[test]
fn official_exporter_over_grpc_with_tenant_metadata() {
    let s = Server::start(&[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sent = {
        let _entered = runtime.enter();
        let mut meta = tonic::metadata::MetadataMap::new();
        meta.insert("x-scope-orgid", "grpc-tenant".parse().unwrap());
        let exporters = Exporters {
            spans: SpanExporter::builder()
                .with_tonic()
                .with_endpoint(s.grpc_url())
                .with_compression(Compression::Gzip)
                .with_metadata(meta.clone())
                .build()
                .unwrap(),
            logs: LogExporter::builder()
                .with_tonic()
                .with_endpoint(s.grpc_url())
                .with_compression(Compression::Gzip)
                .with_metadata(meta.clone())
                .build()
                .unwrap(),
            metrics: MetricExporter::builder()
                .with_tonic()
                .with_endpoint(s.grpc_url())
                .with_metadata(meta)
                .build()
                .unwrap(),
        };
        emit(exporters, "shop-grpc")
    };
    check(&s, &sent, Some("grpc-tenant"), "shop-grpc");
    // Written under the tenant from the metadata, so the default tenant sees nothing.
    let (status, _) = s.get_json(&format!("/api/v1/traces/{}", sent.trace_id));
    assert_eq!(status, 404);
}
