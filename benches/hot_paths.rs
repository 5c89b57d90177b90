//! Micro-benchmarks of the ingest hot paths: protobuf decode, conversion to model records,
//! trace-ID extraction, and tantivy document building. `cargo bench --bench hot_paths`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::hint::black_box;
use weft::bench::gen::Generator;
use weft::config::ExtractConfig;
use weft::index::{build_document, Fields};
use weft::ingest::decode::{decode_otlp, Format};
use weft::ingest::otlp;
use weft::ingest::traceids::Extractor;
use weft::model::TenantId;

const NOW: u64 = 1_795_687_200_000_000_000;

fn spans(c: &mut Criterion) {
    let mut g = Generator::new(1);
    let (req, n, _) = g.spans(1000, NOW);
    let body = req.encode_to_vec();
    let json = serde_json::to_vec(&req).unwrap();
    let mut group = c.benchmark_group("spans");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("decode_protobuf", |b| {
        b.iter(|| {
            decode_otlp::<ExportTraceServiceRequest>(Format::Protobuf, black_box(&body)).unwrap()
        })
    });
    group.bench_function("decode_json", |b| {
        b.iter(|| decode_otlp::<ExportTraceServiceRequest>(Format::Json, black_box(&json)).unwrap())
    });
    group.bench_function("convert", |b| {
        b.iter(|| otlp::spans(black_box(req.clone())))
    });
    let records = otlp::spans(req.clone()).records;
    let fields = Fields::new();
    let tenant = TenantId::default();
    group.bench_function("build_documents", |b| {
        b.iter(|| {
            for r in &records {
                black_box(build_document(&fields, &tenant, r));
            }
        })
    });
    group.finish();
}

fn logs(c: &mut Criterion) {
    let mut g = Generator::new(2);
    let (req, _) = g.logs(1000, NOW);
    let body = req.encode_to_vec();
    let extractor = Extractor::new(&ExtractConfig::default()).unwrap();
    let mut group = c.benchmark_group("logs");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("decode_protobuf", |b| {
        b.iter(|| {
            decode_otlp::<ExportLogsServiceRequest>(Format::Protobuf, black_box(&body)).unwrap()
        })
    });
    group.bench_function("convert_and_link", |b| {
        b.iter(|| otlp::logs(black_box(req.clone()), &extractor))
    });
    let records = otlp::logs(req.clone(), &extractor).records;
    let fields = Fields::new();
    let tenant = TenantId::default();
    group.bench_function("build_documents", |b| {
        b.iter(|| {
            for r in &records {
                black_box(build_document(&fields, &tenant, r));
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("trace_id_extraction");
    let plain = "request completed user order payment declined latency upstream queue backoff session expired inventory reserved shipment created slow request completed user order payment declined latency upstream queue backoff session expired inventory reserved shipment created slow request completed user order payment declined";
    let with_id =
        format!("{plain} traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    group.bench_function("300_bytes_without_id", |b| {
        b.iter(|| extractor.find(black_box(plain)))
    });
    group.bench_function("300_bytes_with_traceparent", |b| {
        b.iter(|| extractor.find(black_box(&with_id)))
    });
    group.finish();
}

criterion_group!(benches, spans, logs);
criterion_main!(benches);
