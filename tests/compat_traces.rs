//! Tempo's and Jaeger's read APIs over OTLP spans: traces by ID in each one's shape and
//! encoding, tag and service listings, dependencies, and their errors. Contract tests: no
//! Tempo, Grafana or Jaeger client runs here, so the shapes are checked against Tempo's
//! `tempo.proto` and API document and jaeger-query's JSON model.

mod common;

use common::otlp::T0;
use common::{get_json, post, Server};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use serde_json::{json, Value};
use weft::compat::tempo::TraceByIdResponse;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn attr(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

/// A frontend server span calling a cart client span calling a cart server span that fails.
fn send(server: &Server) {
    let span = |id: &str, parent: &str, name: &str, kind: i32, start: u64, ms: u64, status: i32| {
        json!({"traceId": TRACE, "spanId": id, "parentSpanId": parent, "name": name, "kind": kind,
               "startTimeUnixNano": (T0 + start * 1_000_000).to_string(),
               "endTimeUnixNano": (T0 + (start + ms) * 1_000_000).to_string(),
               "attributes": [attr("http.route", json!({"stringValue": "/cart"})), attr("http.status_code", json!({"intValue": "500"}))],
               "status": {"code": status, "message": if status == 2 { "boom" } else { "" }},
               "events": [{"timeUnixNano": (T0 + start * 1_000_000).to_string(), "name": "retry"}]})
    };
    let body = json!({"resourceSpans": [
        {"resource": {"attributes": [attr("service.name", json!({"stringValue": "frontend"})), attr("host.name", json!({"stringValue": "web-1"}))]},
         "scopeSpans": [{"scope": {"name": "shop"}, "spans": [
            span("b7ad6b7169203331", "", "GET /cart", 2, 0, 100, 0),
            span("b7ad6b7169203332", "b7ad6b7169203331", "call cart", 3, 10, 80, 0)]}]},
        {"resource": {"attributes": [attr("service.name", json!({"stringValue": "cart"}))]},
         "scopeSpans": [{"spans": [span("b7ad6b7169203333", "b7ad6b7169203332", "load cart", 2, 20, 60, 2)]}]}
    ]});
    let (status, reply) = post(
        &server.url("/v1/traces"),
        "application/json",
        &[],
        body.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    server.wait_for_trace(TRACE, None, 3, 0);
}

fn get_bytes(url: &str, accept: &str) -> (u16, Vec<u8>) {
    let resp = reqwest::blocking::Client::new()
        .get(url)
        .header("accept", accept)
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.bytes().unwrap().to_vec())
}

fn window() -> String {
    format!(
        "start={}&end={}",
        T0 / 1_000_000_000 - 60,
        T0 / 1_000_000_000 + 60
    )
}

#[test]
fn tempo_traces_tags_and_errors() {
    let server = Server::start(&[]);
    send(&server);
    // v1 JSON: OTLP resource spans under "batches", hex IDs.
    for prefix in ["/tempo", ""] {
        let (status, b) = server.get_json(&format!("{prefix}/api/traces/{TRACE}"));
        assert_eq!(status, 200, "{prefix}: {b}");
        let batches = b["batches"].as_array().unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(
            batches[0]["resource"]["attributes"][0]["value"]["stringValue"],
            "frontend"
        );
        let spans = batches[0]["scopeSpans"][0]["spans"].as_array().unwrap();
        assert_eq!(spans[0]["traceId"], TRACE);
        assert_eq!(spans[1]["parentSpanId"], "b7ad6b7169203331");
        assert_eq!(batches[0]["scopeSpans"][0]["scope"]["name"], "shop");
    }
    // Protobuf as Grafana asks for it: tempopb.Trace (= TracesData) and TraceByIDResponse.
    let (status, body) = get_bytes(
        &server.url(&format!("/tempo/api/traces/{TRACE}")),
        "application/protobuf",
    );
    assert_eq!(status, 200);
    let data: TracesData = prost::Message::decode(&body[..]).unwrap();
    let spans: usize = data
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(spans, 3);
    let (status, body) = get_bytes(
        &server.url(&format!("/tempo/api/v2/traces/{TRACE}")),
        "application/protobuf",
    );
    assert_eq!(status, 200);
    let v2: TraceByIdResponse = prost::Message::decode(&body[..]).unwrap();
    let cart = &v2.trace.unwrap().resource_spans[1].scope_spans[0].spans[0];
    assert_eq!(
        (cart.name.as_str(), cart.status.as_ref().unwrap().code),
        ("load cart", 2)
    );
    let (_, b) = server.get_json(&format!("/api/v2/traces/{TRACE}"));
    assert_eq!(b["status"], "COMPLETE");
    assert_eq!(b["trace"]["resourceSpans"].as_array().unwrap().len(), 2);
    // Not found is Tempo's 404; a bad ID a 400; both as text.
    let (status, body) = get_bytes(
        &server.url("/tempo/api/traces/0000000000000000000000000000abcd"),
        "*/*",
    );
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("not found"));
    let (status, body) = get_bytes(&server.url("/tempo/api/traces/xyz"), "*/*");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("trace id"));

    // Tags and values, v1 and v2.
    let (_, b) = server.get_json(&format!("/tempo/api/search/tags?{}", window()));
    let names = b["tagNames"].as_array().unwrap();
    for n in [
        "http.route",
        "host.name",
        "service.name",
        "http.status_code",
    ] {
        assert!(names.contains(&json!(n)), "{n}: {b}");
    }
    let (_, b) = server.get_json(&format!("/api/v2/search/tags?{}", window()));
    let scopes: Vec<&str> = b["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["resource", "span", "intrinsic"]);
    assert!(b["scopes"][1]["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("http.route")));
    let (_, b) = server.get_json(&format!(
        "/tempo/api/v2/search/tags?scope=resource&{}",
        window()
    ));
    assert_eq!(b["scopes"].as_array().unwrap().len(), 1);
    let (_, b) = server.get_json(&format!(
        "/tempo/api/search/tag/service.name/values?{}",
        window()
    ));
    assert_eq!(b["tagValues"], json!(["cart", "frontend"]));
    let (_, b) = server.get_json(&format!(
        "/tempo/api/v2/search/tag/resource.service.name/values?{}",
        window()
    ));
    assert_eq!(
        b["tagValues"],
        json!([{"type": "string", "value": "cart"}, {"type": "string", "value": "frontend"}])
    );
    let (_, b) = server.get_json(&format!(
        "/tempo/api/v2/search/tag/span.http.status_code/values?{}",
        window()
    ));
    assert_eq!(b["tagValues"], json!([{"type": "int", "value": "500"}]));
    let (_, b) = server.get_json(&format!(
        "/tempo/api/v2/search/tag/name/values?{}",
        window()
    ));
    assert_eq!(b["tagValues"].as_array().unwrap().len(), 3);
    let (_, b) = server.get_json("/tempo/api/v2/search/tag/status/values");
    assert_eq!(
        b["tagValues"][0],
        json!({"type": "keyword", "value": "error"})
    );
    let (status, _) = server.get_json("/tempo/api/v2/search/tags?scope=nope");
    assert_eq!(status, 400);

    let (status, body) = get_bytes(&server.url("/tempo/api/echo"), "*/*");
    assert_eq!((status, body.as_slice()), (200, &b"echo"[..]));
    let (_, b) = server.get_json("/api/status/buildinfo");
    assert!(b["version"].as_str().unwrap().starts_with("2."));
    // Another tenant sees none of it.
    let (status, _) = get_json(
        &server.url(&format!("/tempo/api/traces/{TRACE}")),
        &[("x-scope-orgid", "other")],
    );
    assert_eq!(status, 404);
}

#[test]
fn jaeger_services_operations_traces_and_dependencies() {
    let server = Server::start(&[("WEFT_COMPAT_ROOT_TRACES", "jaeger")]);
    send(&server);
    for prefix in ["/jaeger", ""] {
        let (status, b) = server.get_json(&format!("{prefix}/api/services"));
        assert_eq!(status, 200, "{b}");
        assert_eq!(b["data"], json!(["cart", "frontend"]));
        assert_eq!(
            (b["total"].as_u64(), b["errors"].is_null()),
            (Some(2), true)
        );
    }
    let (_, b) = server.get_json("/jaeger/api/services/frontend/operations");
    assert_eq!(b["data"], json!(["GET /cart", "call cart"]));
    let (_, b) = server.get_json("/api/operations?service=frontend&spanKind=server");
    assert_eq!(
        b["data"],
        json!([{"name": "GET /cart", "spanKind": "server"}])
    );
    let (status, b) = server.get_json("/api/operations");
    assert_eq!(status, 400);
    assert!(b["errors"][0]["msg"].as_str().unwrap().contains("service"));

    // The root answers in Jaeger's shape here (compat.root_traces = "jaeger").
    for prefix in ["/jaeger", ""] {
        let (status, b) = server.get_json(&format!("{prefix}/api/traces/{TRACE}"));
        assert_eq!(status, 200, "{b}");
        let t = &b["data"][0];
        assert_eq!(t["traceID"], TRACE);
        let spans = t["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 3);
        let cart = spans
            .iter()
            .find(|s| s["operationName"] == "load cart")
            .unwrap();
        assert_eq!(
            cart["references"][0],
            json!({"refType": "CHILD_OF", "traceID": TRACE, "spanID": "b7ad6b7169203332"})
        );
        assert_eq!(cart["duration"], 60_000);
        assert_eq!(cart["startTime"], (T0 / 1000 + 20_000));
        let tags = cart["tags"].as_array().unwrap();
        assert!(tags.contains(&json!({"key": "error", "type": "bool", "value": true})));
        assert!(tags.contains(&json!({"key": "http.status_code", "type": "int64", "value": 500})));
        assert_eq!(
            cart["logs"][0]["fields"][0],
            json!({"key": "event", "type": "string", "value": "retry"})
        );
        let process = &t["processes"][cart["processID"].as_str().unwrap()];
        assert_eq!(process["serviceName"], "cart");
        let front = &t["processes"]["p1"];
        assert_eq!(
            front["tags"],
            json!([{"key": "host.name", "type": "string", "value": "web-1"}])
        );
    }
    let (status, b) = server.get_json("/jaeger/api/traces/0000000000000000000000000000abcd");
    assert_eq!(status, 404);
    assert_eq!(b["data"], Value::Null);
    assert_eq!(b["errors"][0]["code"], 404);
    let (status, _) = server.get_json("/jaeger/api/traces/nothex");
    assert_eq!(status, 400);

    let end_ms = T0 / 1_000_000 + 60_000;
    let (_, b) = server.get_json(&format!(
        "/jaeger/api/dependencies?endTs={end_ms}&lookback=120000"
    ));
    assert_eq!(
        b["data"],
        json!([{"parent": "frontend", "child": "cart", "callCount": 1}])
    );
    let (status, b) = server.get_json("/jaeger/api/dependencies?endTs=soon");
    assert_eq!(status, 400, "{b}");
}
