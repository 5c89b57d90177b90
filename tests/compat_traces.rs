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

/// Three traces of one root span each: checkout failing slowly, checkout fine and fast, cart
/// failing slowly; `ok` spans carry a string status code, as Zipkin sends them.
fn send_searchable(server: &Server) -> [String; 3] {
    let ids = [
        "1000000000000000000000000000000a".to_string(),
        "1000000000000000000000000000000b".to_string(),
        "1000000000000000000000000000000c".to_string(),
    ];
    let root = |trace: &str, service: &str, name: &str, status: Value, ms: u64, offset: u64| {
        json!({"resource": {"attributes": [attr("service.name", json!({"stringValue": service}))]},
               "scopeSpans": [{"spans": [{"traceId": trace, "spanId": "a000000000000001", "name": name, "kind": 2,
                  "startTimeUnixNano": (T0 + offset * 1_000_000_000).to_string(),
                  "endTimeUnixNano": (T0 + offset * 1_000_000_000 + ms * 1_000_000).to_string(),
                  "attributes": [attr("http.status_code", status)],
                  "status": {"code": if ms > 1000 { 2 } else { 0 }}}]}]})
    };
    let body = json!({"resourceSpans": [
        root(&ids[0], "checkout", "POST /pay", json!({"intValue": "502"}), 1500, 1),
        root(&ids[1], "checkout", "POST /pay", json!({"stringValue": "200"}), 20, 2),
        root(&ids[2], "cart", "GET /cart", json!({"intValue": "503"}), 2500, 3),
    ]});
    let (status, _) = post(
        &server.url("/v1/traces"),
        "application/json",
        &[],
        body.to_string().into_bytes(),
    );
    assert_eq!(status, 200);
    for id in &ids {
        server.wait_for_trace(id, None, 1, 0);
    }
    ids
}

fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn trace_ids(b: &Value, list: &str, id: &str) -> Vec<String> {
    b[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[id].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tempo_and_jaeger_search() {
    let server = Server::start(&[]);
    let ids = send_searchable(&server);
    let window = format!(
        "start={}&end={}",
        T0 / 1_000_000_000 - 10,
        T0 / 1_000_000_000 + 10
    );
    let tempo = |params: &str| server.get_json(&format!("/tempo/api/search?{window}&{params}"));

    // The issue's TraceQL example, and the common operators.
    let q = r#"{ resource.service.name = "checkout" && span.http.status_code >= 500 && duration > 1s }"#;
    let (status, b) = tempo(&format!("q={}", enc(q)));
    assert_eq!(status, 200, "{b}");
    assert_eq!(trace_ids(&b, "traces", "traceID"), [ids[0].clone()]);
    let t = &b["traces"][0];
    assert_eq!(
        (t["rootServiceName"].as_str(), t["rootTraceName"].as_str()),
        (Some("checkout"), Some("POST /pay"))
    );
    assert_eq!(t["durationMs"], 1500);
    assert_eq!(t["startTimeUnixNano"], (T0 + 1_000_000_000).to_string());
    assert_eq!(t["spanSet"]["matched"], 1);
    let span = &t["spanSet"]["spans"][0];
    assert_eq!(span["spanID"], "a000000000000001");
    assert_eq!(span["durationNanos"], "1500000000");
    assert!(span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["key"] == "http.status_code"));
    assert_eq!(t["spanSets"][0]["matched"], 1);
    assert_eq!(b["metrics"]["inspectedTraces"], 1);
    for (q, want) in [
        (r#"{ span.http.status_code >= 500 }"#, vec![2, 0]),
        (r#"{ status = error && duration > 2s }"#, vec![2]),
        (
            r#"{ resource.service.name =~ "check.*" && span.http.status_code < 500 }"#,
            vec![1],
        ),
        (r#"{ name = "GET /cart" || duration < 100ms }"#, vec![2, 1]),
        (r#"{ .service.name != "checkout" }"#, vec![2]),
        (
            "{ traceDuration > 1s && rootServiceName = \"checkout\" }",
            vec![0],
        ),
        ("{}", vec![2, 1, 0]),
    ] {
        let (status, b) = tempo(&format!("q={}", enc(q)));
        assert_eq!(status, 200, "{q}: {b}");
        let want: Vec<String> = want.iter().map(|&i| ids[i].clone()).collect();
        assert_eq!(trace_ids(&b, "traces", "traceID"), want, "{q}");
    }
    // Tags, durations and the limit, as Grafana's search form sends them.
    let (_, b) = tempo(&format!(
        "tags={}&minDuration=1s",
        enc("service.name=checkout http.status_code=502")
    ));
    assert_eq!(trace_ids(&b, "traces", "traceID"), [ids[0].clone()]);
    let (_, b) = tempo("maxDuration=100ms");
    assert_eq!(trace_ids(&b, "traces", "traceID"), [ids[1].clone()]);
    let (_, b) = tempo("limit=1");
    assert_eq!(b["traces"].as_array().unwrap().len(), 1);
    // What is not supported is a 400 that names it.
    for (params, says) in [
        (
            format!("q={}", enc(r#"{ .a = "b" } | count() > 1"#)),
            "pipelines",
        ),
        (
            format!("q={}", enc(r#"{ .a = "b" } && { .c = "d" }"#)),
            "spansets",
        ),
        (format!("q={}", enc(&"(".repeat(3000))), "levels"),
        ("limit=100000".into(), "limit"),
        ("minDuration=soon".into(), "minDuration"),
        (format!("tags={}", enc("novalue")), "key=value"),
    ] {
        let resp =
            reqwest::blocking::get(server.url(&format!("/tempo/api/search?{window}&{params}")))
                .unwrap();
        assert_eq!(resp.status(), 400, "{params}");
        let text = resp.text().unwrap();
        assert!(text.contains(says), "{params}: {text}");
    }

    // Jaeger: whole traces for the UI's search form.
    let jaeger = |params: &str| {
        let (status, b) = server.get_json(&format!(
            "/jaeger/api/traces?start={}&end={}&{params}",
            T0 / 1000 - 10_000_000,
            T0 / 1000 + 10_000_000
        ));
        assert_eq!(status, 200, "{params}: {b}");
        b["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(jaeger("service=checkout"), [ids[1].clone(), ids[0].clone()]);
    assert_eq!(jaeger("service=checkout&minDuration=1s"), [ids[0].clone()]);
    assert_eq!(
        jaeger(&format!(
            "service=checkout&tags={}",
            enc(r#"{"http.status_code":"200"}"#)
        )),
        [ids[1].clone()]
    );
    assert_eq!(
        jaeger(&format!("service=cart&tags={}", enc("error=true"))),
        [ids[2].clone()]
    );
    assert_eq!(
        jaeger("service=checkout&operation=POST%20/pay&maxDuration=100ms&limit=5"),
        [ids[1].clone()]
    );
    assert_eq!(
        jaeger(&format!("traceID={}&traceID={}", ids[2], ids[0])),
        [ids[2].clone(), ids[0].clone()]
    );
    let (status, b) = server.get_json("/api/traces?limit=5");
    assert_eq!(status, 400);
    assert!(b["errors"][0]["msg"].as_str().unwrap().contains("service"));
    let (status, _) = server.get_json(&format!(
        "/api/traces?service=checkout&tags={}",
        enc("{broken")
    ));
    assert_eq!(status, 400);
}
