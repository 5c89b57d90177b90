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
