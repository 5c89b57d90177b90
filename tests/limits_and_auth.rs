//! Limits with reasons, and bearer-token authentication bound to tenants, on every endpoint,
//! over HTTP and gRPC, before and after a restart.

mod common;

use common::otlp::{self, encode, hex, kv, SpanSpec};
use common::{get_json, post, Server};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde_json::Value;

const PROTO: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn message(reply: &[u8]) -> String {
    serde_json::from_slice::<Value>(reply)
        .map(|v| {
            v["message"]
                .as_str()
                .or(v["error"]["message"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_else(|_| String::from_utf8_lossy(reply).into_owned())
}

#[test]
fn limits_refuse_with_the_limit_and_the_value() {
    let s = Server::start(&[
        ("WEFT_LIMITS_MAX_ATTRIBUTES", "4"),
        ("WEFT_LIMITS_MAX_ATTRIBUTE_VALUE_BYTES", "64"),
        ("WEFT_LIMITS_MAX_LOG_BODY_BYTES", "100"),
        ("WEFT_LIMITS_LOG_BODY_OVER_LIMIT", "reject"),
        ("WEFT_LIMITS_TENANT_RECORDS_PER_SEC", "50"),
    ]);
    // Resource has 2 attributes (service.name, host.name); the span brings 2 more: at the limit.
    let ok = otlp::span(&SpanSpec {
        trace: 1,
        span: 1,
        parent: None,
        name: "ok",
        start_ms: 0,
        duration_ms: 1,
        error: false,
    });
    let mut crowded = ok.clone();
    crowded.trace_id = otlp::trace_id(2);
    crowded.attributes.push(kv("one.too.many", "x"));
    let mut long = ok.clone();
    long.trace_id = otlp::trace_id(3);
    long.attributes[0] = kv("http.route", &"r".repeat(65));
    let (status, reply) = post(
        &s.url("/v1/traces"),
        JSON,
        &[],
        serde_json::to_vec(&otlp::traces("svc", vec![ok, crowded, long])).unwrap(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    let partial = &reply["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], "2");
    let msg = partial["errorMessage"].as_str().unwrap();
    assert!(
        msg.contains("5 attributes is over limits.max_attributes = 4"),
        "{msg}"
    );
    assert!(
        msg.contains("\"http.route\" is 65 bytes, over limits.max_attribute_value_bytes = 64"),
        "{msg}"
    );

    let long_log = otlp::logs("svc", vec![otlp::log(None, None, &"b".repeat(101), 0)]);
    let (status, reply) = post(
        &s.url("/v1/logs"),
        JSON,
        &[],
        serde_json::to_vec(&long_log).unwrap(),
    );
    assert_eq!(status, 400);
    assert!(
        message(&reply).contains("log body is 101 bytes, over limits.max_log_body_bytes = 100"),
        "{}",
        message(&reply)
    );

    // 50 records/s per tenant: a second burst right away is throttled with a retry hint.
    let burst = |tenant: &str| {
        let logs = otlp::logs(
            "svc",
            (0..40).map(|i| otlp::log(None, None, "tick", i)).collect(),
        );
        reqwest::blocking::Client::new()
            .post(s.url("/v1/logs"))
            .header("content-type", PROTO)
            .header("x-scope-orgid", tenant)
            .body(encode(&logs))
            .send()
            .unwrap()
    };
    assert_eq!(burst("busy").status(), 200);
    let throttled = burst("busy");
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().get("retry-after").is_some());
    let text = message(&throttled.bytes().unwrap());
    assert!(
        text.contains("tenant busy is over its ingestion rate of 50 records/s"),
        "{text}"
    );
    assert_eq!(burst("quiet").status(), 200, "each tenant has its own rate");

    for (reason, n) in [
        ("too_many_attributes", 1.0),
        ("attribute_value_too_long", 1.0),
        ("log_body_too_long", 1.0),
        ("rate_limited", 40.0),
    ] {
        let signal = if reason.starts_with("log") || reason == "rate_limited" {
            "logs"
        } else {
            "spans"
        };
        assert_eq!(
            s.metric(&format!(
                "weft_records_rejected_total{{reason=\"{reason}\",signal=\"{signal}\"}}"
            )),
            n,
            "{reason}"
        );
    }
}

#[test]
fn long_log_bodies_can_be_truncated_instead() {
    let s = Server::start(&[("WEFT_LIMITS_MAX_LOG_BODY_BYTES", "10")]);
    let logs = otlp::logs("svc", vec![otlp::log(Some(4), None, "ééééééé-and-more", 0)]);
    assert_eq!(post(&s.url("/v1/logs"), PROTO, &[], encode(&logs)).0, 200);
    let t = s.wait_for_trace(&hex(&otlp::trace_id(4)), None, 0, 1);
    // Cut at 10 bytes on a character boundary: five two-byte characters.
    assert_eq!(t["logs"][0]["body"], "ééééé");
    assert_eq!(s.metric("weft_log_bodies_truncated_total"), 1.0);
}

const TOKEN_A: &str = "token-for-acme";
const TOKEN_B: &str = "token-for-globex";

fn auth_config(dir: &std::path::Path) -> std::path::PathBuf {
    common::auth_config(dir, &[("acme", TOKEN_A), ("globex", TOKEN_B)])
}

#[test]
fn tokens_bind_requests_to_their_tenant_everywhere() {
    let conf_dir = tempfile::tempdir().unwrap();
    let config = auth_config(conf_dir.path());
    assert!(
        !std::fs::read_to_string(&config).unwrap().contains(TOKEN_A),
        "only hashes are stored"
    );
    let data = tempfile::tempdir().unwrap();
    let config = config.to_str().unwrap().to_string();
    let env = [("WEFT_CONFIG", config.as_str())];
    let mut server = Server::start_in(data.path(), &env);
    let bearer = |t: &str| format!("Bearer {t}");
    let spans = encode(&otlp::one_span_trace("svc", 11, "secret-op"));
    let logs = encode(&otlp::logs(
        "svc",
        vec![otlp::log(Some(11), Some(1), "acme secret", 0)],
    ));
    let metrics = encode(&otlp::histogram_with_exemplar("svc", 11, 1, 1));
    let id = hex(&otlp::trace_id(11));
    let trace_path = format!("/api/v1/traces/{id}");

    // Every ingest path: no token 401, unknown 401, other tenant 403, own token 200.
    for (path, ct, body) in [
        ("/v1/traces", PROTO, spans.clone()),
        ("/v1/logs", PROTO, logs.clone()),
        ("/v1/metrics", PROTO, metrics.clone()),
        ("/api/v1/logs", JSON, b"{\"msg\":\"jl acme\"}".to_vec()),
    ] {
        assert_eq!(
            post(&server.url(path), ct, &[], body.clone()).0,
            401,
            "{path} without a token"
        );
        assert_eq!(
            post(
                &server.url(path),
                ct,
                &[("authorization", "Bearer wrong")],
                body.clone()
            )
            .0,
            401,
            "{path} unknown token"
        );
        let (status, reply) = post(
            &server.url(path),
            ct,
            &[
                ("authorization", &bearer(TOKEN_A)),
                ("x-scope-orgid", "globex"),
            ],
            body.clone(),
        );
        assert_eq!(status, 403, "{path} token for another tenant");
        assert!(
            !String::from_utf8_lossy(&reply).contains("acme"),
            "a 403 does not name the token's tenant"
        );
        assert_eq!(
            post(
                &server.url(path),
                ct,
                &[("authorization", &bearer(TOKEN_A))],
                body
            )
            .0,
            200,
            "{path} own token"
        );
    }
    // Every read path.
    for path in [trace_path.as_str(), "/api/v1/logs?q=secret"] {
        assert_eq!(get_json(&server.url(path), &[]).0, 401, "{path}");
        assert_eq!(
            get_json(
                &server.url(path),
                &[
                    ("authorization", &bearer(TOKEN_A)),
                    ("x-scope-orgid", "globex")
                ]
            )
            .0,
            403,
            "{path}"
        );
    }
    let a = [("authorization", bearer(TOKEN_A))];
    let a: Vec<(&str, &str)> = a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    common::wait_until(std::time::Duration::from_secs(10), "acme's trace", || {
        let (status, t) = get_json(&server.url(&trace_path), &a);
        status == 200
            && t["logs"].as_array().is_some_and(|l| !l.is_empty())
            && t["exemplars"].as_array().is_some_and(|e| !e.is_empty())
    });
    let b = [("authorization", bearer(TOKEN_B))];
    let b: Vec<(&str, &str)> = b.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        get_json(&server.url(&trace_path), &b).0,
        404,
        "globex cannot see acme's trace"
    );
    assert_eq!(
        get_json(&server.url("/api/v1/logs?q=secret"), &b).1["count"],
        0
    );
    // Health and metrics stay open and hold no tenant data.
    assert_eq!(
        reqwest::blocking::get(server.url("/healthz"))
            .unwrap()
            .status(),
        200
    );
    let metrics_text = reqwest::blocking::get(server.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(!metrics_text.contains("acme") && !metrics_text.contains("globex"));

    // gRPC: the same rules through metadata.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut client = TraceServiceClient::connect(server.grpc_url())
            .await
            .unwrap();
        let req = |token: Option<&str>, tenant: Option<&str>| {
            let mut r = tonic::Request::new(otlp::one_span_trace("svc", 12, "g"));
            if let Some(t) = token {
                r.metadata_mut()
                    .insert("authorization", format!("Bearer {t}").parse().unwrap());
            }
            if let Some(t) = tenant {
                r.metadata_mut().insert("x-scope-orgid", t.parse().unwrap());
            }
            r
        };
        assert_eq!(
            client.export(req(None, None)).await.unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            client
                .export(req(Some("nope"), None))
                .await
                .unwrap_err()
                .code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            client
                .export(req(Some(TOKEN_B), Some("acme")))
                .await
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );
        client.export(req(Some(TOKEN_B), None)).await.unwrap();
    });
    server.wait_for_trace_with(&hex(&otlp::trace_id(12)), &b, 1, 0);

    // After a restart the isolation holds.
    assert!(server.terminate().success());
    let server = Server::start_in(data.path(), &env);
    assert_eq!(get_json(&server.url(&trace_path), &b).0, 404);
    assert_eq!(get_json(&server.url(&trace_path), &a).0, 200);
}
