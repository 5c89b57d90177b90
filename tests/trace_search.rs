//! Trace search over a real server: every filter alone and combined, both orders, the
//! summaries, the lists a search form reads, every bad parameter named, and tenants kept
//! apart (another tenant's matching trace, service, key and value never show).

mod common;

use common::otlp::{self, encode, hex, kv, SpanSpec, MS, T0};
use common::{post, Server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;
use std::time::Duration;

const PROTO: &str = "application/x-protobuf";
const ACME: &str = "acme";
const OTHER: &str = "other";

fn int_kv(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

/// A span of `trace`, `start_ms` after T0 (each trace gets its own second).
struct S<'a> {
    trace: u64,
    span: u64,
    parent: Option<u64>,
    name: &'a str,
    start_ms: u64,
    duration_ms: u64,
    status: i32,
    attrs: Vec<KeyValue>,
}

fn build(s: S) -> Span {
    let mut span = otlp::span(&SpanSpec {
        trace: s.trace,
        span: s.span,
        parent: s.parent,
        name: s.name,
        start_ms: s.trace * 1000 + s.start_ms,
        duration_ms: s.duration_ms,
        error: s.status == 2,
    });
    span.status.as_mut().unwrap().code = s.status;
    span.attributes = s.attrs;
    span
}

/// One service's spans with an extra resource attribute.
fn batch(service: &str, env: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    let mut req = otlp::traces(service, spans);
    let resource = req.resource_spans[0].resource.as_mut().unwrap();
    resource.attributes.push(kv("deployment.environment", env));
    req
}

fn send(s: &Server, tenant: &str, req: &ExportTraceServiceRequest) {
    let (status, body) = post(
        &s.url("/v1/traces"),
        PROTO,
        &[("x-scope-orgid", tenant)],
        encode(req),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

fn tid(n: u64) -> String {
    hex(&otlp::trace_id(n))
}

/// Acme's shop:
/// 1. frontend GET /checkout 1200 ms (user u-4242, prod) → checkout POST 1100 ms error →
///    inventory SELECT stock 900 ms error
/// 2. frontend GET /checkout 80 ms ok (user u-1, prod) → checkout POST 60 ms ok
/// 3. frontend GET /product 20 ms unset (user u-4242, staging) → catalog GetProduct 10 ms unset
/// 4. frontend GET /checkout 300 ms ok (user u-4242, http.response.status_code 200 as an int,
///    staging) → checkout POST 250 ms ok
/// 5. checkout POST 40 ms ok whose parent never arrived
fn load_acme(s: &Server) {
    let fe = |trace, name, dur, status, attrs| S {
        trace,
        span: 1,
        parent: None,
        name,
        start_ms: 0,
        duration_ms: dur,
        status,
        attrs,
    };
    let child = |trace, span, parent, name, start, dur, status| S {
        trace,
        span,
        parent: Some(parent),
        name,
        start_ms: start,
        duration_ms: dur,
        status,
        attrs: vec![kv("order.id", &format!("o-{trace}"))],
    };
    let user = |u: &str| kv("user.id", u);
    send(
        s,
        ACME,
        &batch(
            "frontend",
            "prod",
            vec![
                build(fe(1, "GET /checkout", 1200, 1, vec![user("u-4242")])),
                build(fe(2, "GET /checkout", 80, 1, vec![user("u-1")])),
            ],
        ),
    );
    send(
        s,
        ACME,
        &batch(
            "frontend",
            "staging",
            vec![
                build(fe(3, "GET /product", 20, 0, vec![user("u-4242")])),
                build(fe(
                    4,
                    "GET /checkout",
                    300,
                    1,
                    vec![user("u-4242"), int_kv("http.response.status_code", 200)],
                )),
            ],
        ),
    );
    send(
        s,
        ACME,
        &batch(
            "checkout",
            "prod",
            vec![
                build(child(1, 2, 1, "POST /api/checkout", 50, 1100, 2)),
                build(child(2, 2, 1, "POST /api/checkout", 10, 60, 1)),
                build(child(4, 2, 1, "POST /api/checkout", 20, 250, 1)),
                build(child(5, 2, 99, "POST /api/checkout", 0, 40, 1)),
            ],
        ),
    );
    send(
        s,
        ACME,
        &batch(
            "inventory",
            "prod",
            vec![build(child(1, 3, 2, "SELECT stock", 100, 900, 2))],
        ),
    );
    send(
        s,
        ACME,
        &batch(
            "catalog",
            "staging",
            vec![build(child(3, 2, 1, "GetProduct", 5, 10, 0))],
        ),
    );
}

/// Another tenant: a trace that matches acme's searches, a service, a key and a value of
/// its own.
fn load_other(s: &Server) {
    let secret = build(S {
        trace: 6,
        span: 1,
        parent: None,
        name: "GET /checkout",
        start_ms: 0,
        duration_ms: 5000,
        status: 2,
        attrs: vec![kv("user.id", "u-4242"), kv("secret.key", "x")],
    });
    send(s, OTHER, &batch("frontend", "prod", vec![secret]));
    let mut hidden = otlp::one_span_trace("secret-svc", 7, "hidden-op");
    let span = &mut hidden.resource_spans[0].scope_spans[0].spans[0];
    span.attributes.push(kv("user.id", "u-9999"));
    send(s, OTHER, &hidden);
}

/// The window around the data; every search passes it.
fn window() -> String {
    let t0 = T0 / 1_000_000_000;
    format!("start={}&end={}", t0 - 60, t0 + 60)
}

fn get(s: &Server, tenant: &str, path_and_query: &str) -> (u16, Value) {
    common::get_json(&s.url(path_and_query), &[("x-scope-orgid", tenant)])
}

fn search(s: &Server, tenant: &str, query: &str) -> Value {
    let (status, body) = get(s, tenant, &format!("/api/v1/traces?{}&{query}", window()));
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// The trace numbers a search finds, in its order.
fn found(s: &Server, query: &str) -> Vec<u64> {
    let body = search(s, ACME, query);
    body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let id = t["trace_id"].as_str().unwrap();
            u64::from_str_radix(&id[16..], 16).unwrap()
        })
        .collect()
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn loaded() -> Server {
    let s = Server::start(&[]);
    load_acme(&s);
    load_other(&s);
    common::wait_until(Duration::from_secs(15), "all spans indexed", || {
        s.metric("weft_index_documents{signal=\"spans\"}") >= 12.0
    });
    s
}

#[test]
fn each_filter_alone_and_combined() {
    let s = loaded();
    // Newest first by trace start: the traces are a second apart.
    assert_eq!(found(&s, ""), vec![5, 4, 3, 2, 1]);
    assert_eq!(sorted(found(&s, "service=inventory")), vec![1]);
    assert_eq!(sorted(found(&s, "service=checkout")), vec![1, 2, 4, 5]);
    assert_eq!(sorted(found(&s, "operation=GET%20/product")), vec![3]);
    assert_eq!(
        sorted(found(&s, "operation=POST%20/api/checkout")),
        vec![1, 2, 4, 5]
    );
    assert_eq!(sorted(found(&s, "min_duration=1s")), vec![1]);
    assert_eq!(sorted(found(&s, "min_duration=250ms")), vec![1, 4]);
    assert_eq!(sorted(found(&s, "max_duration=15ms")), vec![3]);
    assert_eq!(
        sorted(found(&s, "min_duration=250ms&max_duration=300ms")),
        vec![4]
    );
    assert_eq!(sorted(found(&s, "status=error")), vec![1]);
    assert_eq!(sorted(found(&s, "status=unset")), vec![3]);
    assert_eq!(sorted(found(&s, "status=ok")), vec![1, 2, 4, 5]);
    // A span attribute, a resource attribute, an integer attribute given as text.
    assert_eq!(sorted(found(&s, "attr=user.id=u-4242")), vec![1, 3, 4]);
    assert_eq!(
        sorted(found(&s, "attr=deployment.environment=staging")),
        vec![3, 4]
    );
    assert_eq!(
        sorted(found(&s, "attr=http.response.status_code=200")),
        vec![4]
    );
    assert_eq!(found(&s, "attr=user.id=u-0"), Vec::<u64>::new());
    // Several attributes are ANDed, on one span.
    assert_eq!(
        sorted(found(
            &s,
            "attr=user.id=u-4242&attr=deployment.environment=staging"
        )),
        vec![3, 4]
    );
    assert_eq!(
        found(&s, "attr=user.id=u-1&attr=deployment.environment=staging"),
        Vec::<u64>::new()
    );
    // "The slow checkouts of user u-4242."
    assert_eq!(
        found(
            &s,
            "service=frontend&operation=GET%20/checkout&attr=user.id=u-4242&min_duration=500ms"
        ),
        vec![1]
    );
    assert_eq!(
        sorted(found(
            &s,
            "service=frontend&operation=GET%20/checkout&attr=user.id=u-4242"
        )),
        vec![1, 4]
    );
    // All conditions hold on one span: frontend spans never fail here, checkout's do.
    assert_eq!(
        found(&s, "service=frontend&status=error"),
        Vec::<u64>::new()
    );
    assert_eq!(found(&s, "service=checkout&status=error"), vec![1]);
    // Time range: the spans that start in it.
    let t0 = T0 / MS;
    let (status, body) = get(
        &s,
        ACME,
        &format!("/api/v1/traces?start={}&end={}", t0 + 2000, t0 + 3999),
    );
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![tid(3), tid(2)]);
}

#[test]
fn orders_limits_and_summaries() {
    let s = loaded();
    assert_eq!(found(&s, "order=slowest"), vec![1, 4, 2, 5, 3]);
    assert_eq!(found(&s, "order=slowest&limit=2"), vec![1, 4]);
    assert_eq!(found(&s, "limit=2"), vec![5, 4]);
    // Found from checkout's spans, ranked by the whole trace's duration.
    assert_eq!(
        found(&s, "service=checkout&order=slowest"),
        vec![1, 4, 2, 5]
    );

    let body = search(&s, ACME, "attr=user.id=u-4242&order=slowest&limit=1");
    assert_eq!(body["order"], "slowest");
    assert_eq!(body["complete"], true);
    assert_eq!(body["spans_matched"], 3, "{body}");
    let t = &body["traces"][0];
    assert_eq!(t["trace_id"], tid(1));
    assert_eq!(t["root_service"], "frontend");
    assert_eq!(t["root_operation"], "GET /checkout");
    assert_eq!(t["root_span_missing"], false);
    assert_eq!(t["duration_ns"], 1200 * MS);
    assert_eq!(t["start_time_unix_nano"], (T0 + 1000 * MS).to_string());
    assert_eq!(t["start"], "2026-11-26T10:00:01.000000000Z");
    assert_eq!(t["span_count"], 3);
    assert_eq!(t["error_count"], 2);
    let services: Vec<(&str, u64, u64)> = t["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap(),
                s["spans"].as_u64().unwrap(),
                s["errors"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        services,
        vec![("checkout", 1, 1), ("frontend", 1, 0), ("inventory", 1, 1)]
    );
    assert_eq!(t["matched_span"]["service"], "frontend");
    assert_eq!(t["matched_span"]["duration_ns"], 1200 * MS);
    assert_eq!(t["matched_span"]["status"], "ok");

    // A trace whose root never arrived says so and names its earliest span.
    let body = search(&s, ACME, "service=checkout&limit=1");
    let t = &body["traces"][0];
    assert_eq!(t["trace_id"], tid(5));
    assert_eq!(t["root_span_missing"], true);
    assert_eq!(t["root_service"], "checkout");
    assert_eq!(t["span_count"], 1);
}

#[test]
fn bad_values_are_400_naming_the_parameter() {
    let s = Server::start(&[]);
    for (query, name) in [
        ("attr=user.id", "attr"),
        ("attr==u-1", "attr"),
        ("min_duration=slow", "min_duration"),
        ("max_duration=3y", "max_duration"),
        ("min_duration=2s&max_duration=1s", "min_duration"),
        ("status=failed", "status"),
        ("order=fastest", "order"),
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("limit=many", "limit"),
        ("start=yesterday", "start"),
        ("start=now&end=now-1h", "start"),
        ("service=a&service=b", "service"),
        ("user.id=u-1", "user.id"),
    ] {
        let (status, body) = s.get_json(&format!("/api/v1/traces?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{query}: {message}");
    }
    for path in [
        "/api/v1/services?limit=0",
        "/api/v1/services?colour=red",
        "/api/v1/services/frontend/operations?start=soon",
        "/api/v1/spans/attributes?limit=5000",
        "/api/v1/spans/attributes/user.id/values?end=later",
    ] {
        let (status, body) = s.get_json(path);
        assert_eq!(status, 400, "{path}: {body}");
    }
}

fn values(v: &Value) -> Vec<Value> {
    v["values"].as_array().unwrap().clone()
}

#[test]
fn lists_for_the_search_form() {
    let s = loaded();
    let w = window();
    let (status, body) = get(&s, ACME, &format!("/api/v1/services?{w}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        values(&body),
        ["catalog", "checkout", "frontend", "inventory"].map(Value::from)
    );
    assert_eq!(body["complete"], true);
    let (_, body) = get(&s, ACME, &format!("/api/v1/services?{w}&prefix=c"));
    assert_eq!(values(&body), ["catalog", "checkout"].map(Value::from));
    let (_, body) = get(&s, ACME, &format!("/api/v1/services?{w}&limit=1"));
    assert_eq!(values(&body), ["catalog"].map(Value::from));
    assert_eq!(body["complete"], false);

    let (_, body) = get(
        &s,
        ACME,
        &format!("/api/v1/services/frontend/operations?{w}"),
    );
    assert_eq!(
        values(&body),
        ["GET /checkout", "GET /product"].map(Value::from)
    );
    let (_, body) = get(&s, ACME, &format!("/api/v1/services/nobody/operations?{w}"));
    assert_eq!(values(&body), Vec::<Value>::new());

    let (status, body) = get(&s, ACME, &format!("/api/v1/spans/attributes?{w}"));
    assert_eq!(status, 200, "{body}");
    let keys: Vec<(String, String)> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_string(),
                k["scope"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for k in [
        ("user.id", "span"),
        ("order.id", "span"),
        ("http.response.status_code", "span"),
        ("deployment.environment", "resource"),
        ("service.name", "resource"),
    ] {
        assert!(
            keys.contains(&(k.0.to_string(), k.1.to_string())),
            "{k:?} in {keys:?}"
        );
    }
    assert!(!keys.iter().any(|(k, _)| k == "secret.key"), "{keys:?}");
    assert_eq!(body["sampled_spans"], 10);
    assert_eq!(body["complete"], true);
    let (_, body) = get(
        &s,
        ACME,
        &format!("/api/v1/spans/attributes?{w}&service=catalog"),
    );
    let keys: Vec<&str> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert!(
        !keys.contains(&"user.id"),
        "catalog spans carry no user: {keys:?}"
    );

    let (status, body) = get(
        &s,
        ACME,
        &format!("/api/v1/spans/attributes/user.id/values?{w}"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(values(&body), ["u-1", "u-4242"].map(Value::from));
    let (_, body) = get(
        &s,
        ACME,
        &format!("/api/v1/spans/attributes/user.id/values?{w}&prefix=u-4"),
    );
    assert_eq!(values(&body), ["u-4242"].map(Value::from));
    let (_, body) = get(
        &s,
        ACME,
        &format!("/api/v1/spans/attributes/deployment.environment/values?{w}&service=catalog"),
    );
    assert_eq!(values(&body), ["staging"].map(Value::from));
    // Typed values come back typed.
    let (_, body) = get(
        &s,
        ACME,
        &format!("/api/v1/spans/attributes/http.response.status_code/values?{w}"),
    );
    assert_eq!(values(&body), vec![Value::from(200)]);
}

#[test]
fn tenants_see_only_their_own() {
    let s = loaded();
    let w = window();
    // Acme's searches never find the other tenant's 5-second failed checkout of u-4242.
    for q in [
        "",
        "attr=user.id=u-4242",
        "min_duration=2s",
        "status=error&service=frontend",
    ] {
        let body = search(&s, ACME, q);
        for t in body["traces"].as_array().unwrap() {
            assert_ne!(t["trace_id"], tid(6), "{q}: {body}");
        }
    }
    assert_eq!(found(&s, "min_duration=2s"), Vec::<u64>::new());
    // The other tenant finds it, and only its own.
    let body = search(&s, OTHER, "attr=user.id=u-4242");
    let ids: Vec<&Value> = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["trace_id"])
        .collect();
    assert_eq!(ids, vec![&Value::from(tid(6))]);
    // Nothing at all for a tenant without data.
    let body = search(&s, "default", "");
    assert_eq!(body["traces"], serde_json::json!([]));
    assert_eq!(body["spans_matched"], 0);

    let (_, body) = get(&s, ACME, &format!("/api/v1/services?{w}"));
    assert!(
        !values(&body).contains(&Value::from("secret-svc")),
        "{body}"
    );
    let (_, body) = get(&s, OTHER, &format!("/api/v1/services?{w}"));
    assert_eq!(values(&body), ["frontend", "secret-svc"].map(Value::from));
    let (_, body) = get(
        &s,
        ACME,
        &format!("/api/v1/services/secret-svc/operations?{w}"),
    );
    assert_eq!(values(&body), Vec::<Value>::new());
    let (_, body) = get(
        &s,
        ACME,
        &format!("/api/v1/spans/attributes/user.id/values?{w}"),
    );
    assert!(!values(&body).contains(&Value::from("u-9999")), "{body}");
    let (_, body) = get(
        &s,
        ACME,
        &format!("/api/v1/spans/attributes/secret.key/values?{w}"),
    );
    assert_eq!(values(&body), Vec::<Value>::new());
    let (_, body) = get(&s, "default", &format!("/api/v1/spans/attributes?{w}"));
    assert_eq!(body["keys"], serde_json::json!([]));
}

#[test]
fn latency_percentiles_comparison_and_service_map() {
    let s = loaded();
    // Trace 4's spans against their operations' latest spans up to its end.
    let (status, l) = get(&s, ACME, &format!("/api/v1/traces/{}/latency", tid(4)));
    assert_eq!(status, 200, "{l}");
    let op = l["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["service"] == "frontend" && o["operation"] == "GET /checkout")
        .unwrap();
    // Checkouts of 80, 300 and 1200 ms: nearest-rank p50 300 ms, p95 1200 ms.
    assert_eq!(op["spans"], 3, "{l}");
    assert_eq!(
        op["since_unix_nano"], l["window_start_unix_nano"],
        "three spans are all the window holds"
    );
    assert_eq!(op["p50_ns"], 300 * MS);
    assert_eq!(op["p95_ns"], 1200 * MS);
    let root = &l["spans"][0];
    assert_eq!(root["duration_ns"], 300 * MS);
    assert_eq!(root["percentile"], 66.7);
    assert_eq!(
        root["above_p95"], false,
        "three spans are too few to call one slow"
    );
    assert_eq!(l["complete"], true);
    for (path, code) in [
        (format!("/api/v1/traces/{}/latency?window=0s", tid(1)), 400),
        (format!("/api/v1/traces/{}/latency?window=30d", tid(1)), 400),
        ("/api/v1/traces/nothex/latency".to_string(), 400),
        (format!("/api/v1/traces/{}/latency", tid(77)), 404),
        (format!("/api/v1/traces/{}/latency", tid(6)), 404),
    ] {
        let (status, body) = get(&s, ACME, &path);
        assert_eq!(status, code, "{path}: {body}");
    }

    // The failed checkout against the quick one: inventory's query is added, checkout slower.
    let (status, c) = get(
        &s,
        ACME,
        &format!("/api/v1/traces/{}/compare/{}", tid(2), tid(1)),
    );
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        (c["added"].as_u64(), c["missing"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(c["duration_delta_ns"], (1200 - 80) * MS);
    let rows = c["rows"].as_array().unwrap();
    let last = |r: &Value| r["path"].as_array().unwrap().last().unwrap()["service"].clone();
    let added: Vec<Value> = rows
        .iter()
        .filter(|r| r["change"] == "added")
        .map(last)
        .collect();
    assert_eq!(added, vec![Value::from("inventory")]);
    let checkout = rows.iter().find(|r| last(r) == "checkout").unwrap();
    assert_eq!(checkout["change"], "slower");
    assert_eq!(checkout["path"].as_array().unwrap().len(), 2);
    let (status, _) = get(
        &s,
        ACME,
        &format!("/api/v1/traces/{}/compare/{}", tid(2), tid(6)),
    );
    assert_eq!(status, 404, "another tenant's trace is not found");
    let (status, _) = get(&s, ACME, &format!("/api/v1/traces/{}/compare/zz", tid(2)));
    assert_eq!(status, 400);

    // The map: frontend calls checkout (three times, once failing) and catalog; checkout
    // calls inventory; trace 5's orphan checkout span is an entry of checkout.
    let (status, m) = get(&s, ACME, &format!("/api/v1/service-map?{}", window()));
    assert_eq!(status, 200, "{m}");
    let edges: Vec<(String, String, u64, u64)> = m["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
                e["requests"].as_u64().unwrap(),
                e["errors"].as_u64().unwrap(),
            )
        })
        .collect();
    let edge = |a: &str, b: &str, n: u64, e: u64| (a.to_string(), b.to_string(), n, e);
    assert_eq!(
        edges,
        vec![
            edge("checkout", "inventory", 1, 1),
            edge("frontend", "catalog", 1, 0),
            edge("frontend", "checkout", 3, 1),
        ]
    );
    let checkout = m["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["service"] == "checkout")
        .unwrap();
    assert_eq!(
        (checkout["requests"].as_u64(), checkout["errors"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(m["complete"], true);
    assert_eq!(m["spans_read"], 10);
    let services: Vec<&str> = m["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["service"].as_str().unwrap())
        .collect();
    assert!(!services.contains(&"secret-svc"), "{services:?}");
    let (status, _) = get(&s, ACME, "/api/v1/service-map?start=later");
    assert_eq!(status, 400);
}

/// A service that never sets span status fails by its HTTP and gRPC codes and exceptions:
/// `status=error` finds it, summaries and the service map count it, the Jaeger API marks it,
/// and the trace itself still shows the status the sender set.
#[test]
fn a_failure_without_span_status_is_an_error_everywhere() {
    let s = Server::start(&[]);
    const PLAIN: &str = "plain";
    let root = |trace| S {
        trace,
        span: 1,
        parent: None,
        name: "GET /pay",
        start_ms: 0,
        duration_ms: 100,
        status: 0,
        attrs: vec![int_kv("http.response.status_code", 200)],
    };
    let call = |trace, code| S {
        trace,
        span: 2,
        parent: Some(1),
        name: "Charge",
        start_ms: 10,
        duration_ms: 50,
        status: 0,
        attrs: vec![int_kv("rpc.grpc.status_code", code)],
    };
    send(
        &s,
        PLAIN,
        &batch("gateway", "prod", vec![build(root(11)), build(root(12))]),
    );
    send(
        &s,
        PLAIN,
        &batch(
            "payments",
            "prod",
            vec![build(call(11, 14)), build(call(12, 0))],
        ),
    );
    common::wait_until(Duration::from_secs(15), "four spans indexed", || {
        s.metric("weft_index_documents{signal=\"spans\"}") >= 4.0
    });
    let traces =
        |q: &str| -> Vec<Value> { search(&s, PLAIN, q)["traces"].as_array().unwrap().clone() };
    let failed = traces("status=error");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["trace_id"], tid(11));
    assert_eq!(failed[0]["error_count"], 1);
    assert_eq!(failed[0]["matched_span"]["status"], "error");
    assert_eq!(failed[0]["matched_span"]["service"], "payments");
    // Unset and not failed: both roots and the healthy call.
    assert_eq!(traces("status=unset").len(), 2);
    assert_eq!(traces("service=payments&status=unset").len(), 1);
    let (status, trace) = get(&s, PLAIN, &format!("/api/v1/traces/{}", tid(11)));
    assert_eq!(status, 200, "{trace}");
    let charge = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sp| sp["name"] == "Charge")
        .unwrap()
        .clone();
    assert_eq!(charge["status"]["code"], 0, "the sender's status: {charge}");
    let (status, map) = get(&s, PLAIN, &format!("/api/v1/service-map?{}", window()));
    assert_eq!(status, 200, "{map}");
    let payments = map["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["service"] == "payments")
        .unwrap_or_else(|| panic!("{map}"))
        .clone();
    assert_eq!(payments["errors"], 1, "{payments}");
    let (status, jaeger) = get(&s, PLAIN, &format!("/jaeger/api/traces/{}", tid(11)));
    assert_eq!(status, 200, "{jaeger}");
    let tags = jaeger.to_string();
    assert!(
        tags.contains(r#"{"key":"error","type":"bool","value":true}"#),
        "{tags}"
    );
    assert!(!tags.contains("otel.status_code"), "{tags}");
    // And Jaeger's error tag searches what it marks.
    let jaeger_search = |error: &str| -> Vec<String> {
        let (status, b) = get(
            &s,
            PLAIN,
            &format!(
                "/jaeger/api/traces?service=payments&start={}&end={}&tags=%7B%22error%22%3A%22{error}%22%7D",
                T0 / 1000 - 60_000_000,
                T0 / 1000 + 60_000_000
            ),
        );
        assert_eq!(status, 200, "{b}");
        b["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(jaeger_search("true"), vec![tid(11)]);
    assert_eq!(jaeger_search("false"), vec![tid(12)]);
}
