//! OTLP/gRPC with the generated tonic clients: exemplars, gzip, partial success, bad input and
//! tenant metadata.

mod common;

use common::otlp::{self, hex, SpanSpec};
use common::Server;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic::codec::CompressionEncoding;

fn with_tenant<T>(msg: T, tenant: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("x-scope-orgid", tenant.parse().unwrap());
    req
}

#[test]
fn grpc_export_paths() {
    let s = Server::start(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut traces = TraceServiceClient::connect(s.grpc_url())
            .await
            .unwrap()
            .send_compressed(CompressionEncoding::Gzip);
        let mut metrics = MetricsServiceClient::connect(s.grpc_url()).await.unwrap();

        let good = otlp::traces(
            "inventory",
            vec![otlp::span(&SpanSpec {
                trace: 5,
                span: 1,
                parent: None,
                name: "reserve",
                start_ms: 0,
                duration_ms: 30,
                error: false,
            })],
        );
        let reply = traces
            .export(with_tenant(good.clone(), "team-a"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.partial_success, None);

        let reply = metrics
            .export(with_tenant(
                otlp::histogram_with_exemplar("inventory", 5, 1, 20),
                "team-a",
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.partial_success, None);

        // One bad span among good ones: OK with an exact partial success.
        let mut mixed = good.clone();
        let mut bad = otlp::span(&SpanSpec {
            trace: 6,
            span: 1,
            parent: None,
            name: "bad",
            start_ms: 0,
            duration_ms: 1,
            error: false,
        });
        bad.trace_id.truncate(15);
        mixed.resource_spans[0].scope_spans[0]
            .spans
            .push(bad.clone());
        let partial = traces
            .export(with_tenant(mixed, "team-a"))
            .await
            .unwrap()
            .into_inner()
            .partial_success
            .unwrap();
        assert_eq!(partial.rejected_spans, 1);
        assert!(
            partial.error_message.contains("got 15"),
            "{}",
            partial.error_message
        );

        // Only bad spans: INVALID_ARGUMENT naming the field.
        let only_bad = otlp::traces("inventory", vec![bad]);
        let err = traces
            .export(with_tenant(only_bad, "team-a"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("traceId"), "{}", err.message());

        // A tenant ID with path tricks is refused.
        let err = traces.export(with_tenant(good, "../x")).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    });
    let id = hex(&otlp::trace_id(5));
    let t = s.wait_for_trace(&id, Some("team-a"), 1, 0);
    assert_eq!(t["spans"][0]["name"], "reserve");
    common::wait_until(
        std::time::Duration::from_secs(10),
        "exemplar over gRPC",
        || {
            common::get_json(
                &s.url(&format!("/api/v1/traces/{id}")),
                &[("x-scope-orgid", "team-a")],
            )
            .1["exemplars"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
        },
    );
    let t = common::get_json(
        &s.url(&format!("/api/v1/traces/{id}")),
        &[("x-scope-orgid", "team-a")],
    )
    .1;
    assert_eq!(t["exemplars"][0]["metric"], "http.server.duration");
    assert_eq!(t["exemplars"][0]["exemplars"][0]["trace_id"], id);
    assert_eq!(
        s.metric("weft_records_rejected_total{reason=\"invalid\",signal=\"spans\"}"),
        2.0
    );
}
