//! Sampling over real OTLP traffic through the real server: head sampling measured in RED,
//! tail policies, cross-signal keeps, pruning past the horizon, decisions across restarts,
//! adaptive probabilities and the Jaeger remote-sampling endpoint.

mod common;

use common::otlp::{self, hex, kv, SpanSpec, T0};
use common::{post, wait_until, Server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;
use std::time::Duration;

/// splitmix64: a fixed stream, so the sampled set (and the error it gives) is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
}

fn send(server: &Server, req: &ExportTraceServiceRequest) {
    let (status, body) = post(
        &server.url("/v1/traces"),
        "application/x-protobuf",
        &[],
        otlp::encode(req),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// The sum of a derived RED counter of `service` over the day around T0.
fn red_sum(server: &Server, metric: &str, service: &str) -> f64 {
    let t0 = T0 / 1_000_000_000;
    let (status, body) = server.get_json(&format!(
        "/api/v1/metrics/query?query={metric}{{service.name=%22{service}%22}}&by=service.name&step=60s&start={}&end={}",
        t0 - 43_200,
        t0 + 43_200
    ));
    assert_eq!(status, 200, "{body}");
    body["series"][0]["points"]
        .as_array()
        .map_or(0.0, |p| {
            p.iter()
                .map(|p| p["value"].as_f64().unwrap() * 60.0)
                .sum::<f64>()
        })
        .round()
}

fn root(trace: u64, name: &str, start_ms: u64, duration_ms: u64, error: bool) -> Span {
    otlp::span(&SpanSpec {
        trace,
        span: 1,
        parent: None,
        name,
        start_ms,
        duration_ms,
        error,
    })
}

/// The W3C-random low 56 bits of the fixture trace ID of `n` (`otlp::trace_id` puts `n` in
/// the low 8 bytes), which is what OTel's consistent sampling compares with the threshold.
fn randomness(trace: u64) -> u64 {
    trace & ((1 << 56) - 1)
}

/// The not-sampled W3C flags as current SDKs write them (HAS_IS_REMOTE set, sampled clear).
const UNSAMPLED_FLAGS: u32 = 0x100;

#[test]
fn head_sampled_streams_give_unbiased_red_counts_and_unsampled_spans_are_counted_not_stored() {
    let server = Server::start(&[("WEFT_SAMPLING_STORE_UNSAMPLED", "false")]);
    let mut rng = Rng(7);
    // "shop": an OTel SDK sampling 1 in 10 by threshold (th = 0.9 × 2^56), which also exports
    // the spans it did not sample (flag clear, same threshold): those count 0.
    const N: u64 = 5000;
    let threshold: u64 = 0xe6666666666666;
    let (mut true_errors, mut kept) = (0u64, 0u64);
    let (mut spans, mut unsampled_trace, mut kept_trace) = (Vec::new(), None, None);
    for i in 0..N {
        let trace = rng.next() >> 1 | 1;
        let error = rng.next().is_multiple_of(10);
        true_errors += error as u64;
        let mut s = root(trace, "GET /cart", i * 100, 5 + rng.next() % 50, error);
        let rv = randomness(trace);
        s.trace_state = format!("ot=th:e6666666666666;rv:{rv:014x}");
        if rv >= threshold {
            kept += 1;
            s.flags = 0x101;
            kept_trace.get_or_insert(trace);
        } else {
            s.flags = UNSAMPLED_FLAGS;
            unsampled_trace.get_or_insert(trace);
        }
        spans.push(s);
        if spans.len() == 500 {
            send(&server, &otlp::traces("shop", std::mem::take(&mut spans)));
        }
    }
    // "legacy": 300 spans marked not sampled and nothing else: each is all we know, counts 1.
    let legacy: Vec<Span> = (0..300)
        .map(|i| {
            let mut s = root(1_000_000 + i, "GET /old", i * 10, 3, false);
            s.flags = UNSAMPLED_FLAGS;
            s
        })
        .collect();
    send(&server, &otlp::traces("legacy", legacy));
    // "jaeger": a Jaeger SDK at 1 in 4, saying so with sampler.type/sampler.param.
    let (mut jaeger_truth, mut jaeger) = (0u64, Vec::new());
    for i in 0..2000u64 {
        jaeger_truth += 1;
        if !rng.next().is_multiple_of(4) {
            continue;
        }
        let mut s = root(2_000_000 + i, "GET /j", i * 100, 4, false);
        s.attributes.push(kv("sampler.type", "probabilistic"));
        s.attributes
            .push(common::otlp::kv_double("sampler.param", 0.25));
        jaeger.push(s);
    }
    send(&server, &otlp::traces("jaeger", jaeger));

    wait_until(
        Duration::from_secs(30),
        "the RED points of all three",
        || {
            red_sum(&server, "weft.span.requests", "legacy") == 300.0
                && red_sum(&server, "weft.span.requests", "jaeger") > 0.0
                && red_sum(&server, "weft.span.requests", "shop") > 0.0
        },
    );
    let shop = red_sum(&server, "weft.span.requests", "shop");
    let shop_errors = red_sum(&server, "weft.span.errors", "shop");
    let jaeger_est = red_sum(&server, "weft.span.requests", "jaeger");
    let rel = |est: f64, truth: f64| (est - truth).abs() / truth;
    println!(
        "shop: {kept} of {N} sampled; RED requests {shop} (error {:.1}%), errors {shop_errors} of {true_errors} (error {:.1}%); jaeger: {jaeger_est} of {jaeger_truth} (error {:.1}%)",
        100.0 * rel(shop, N as f64),
        100.0 * rel(shop_errors, true_errors as f64),
        100.0 * rel(jaeger_est, jaeger_truth as f64),
    );
    // Stated error: three standard deviations of the binomial sample (requests: ~4% at 1 in
    // 10 of 5000; errors: ~13% of 500 at 1 in 10; jaeger: ~4% of 2000 at 1 in 4).
    assert!(rel(shop, N as f64) < 0.13, "shop requests {shop} vs {N}");
    assert!(
        rel(shop_errors, true_errors as f64) < 0.40,
        "shop errors {shop_errors} vs {true_errors}"
    );
    assert!(
        rel(jaeger_est, jaeger_truth as f64) < 0.12,
        "jaeger {jaeger_est} vs {jaeger_truth}"
    );
    // Unweighted, the shop would count only what it kept: the weighting is what makes it right.
    assert!(shop > 5.0 * kept as f64);

    // Not stored: an unsampled span is not in the index, a sampled one is.
    let unsampled = hex(&otlp::trace_id(unsampled_trace.unwrap()));
    let (status, _) = server.get_json(&format!("/api/v1/traces/{unsampled}"));
    assert_eq!(status, 404);
    let (status, body) = server.get_json(&format!(
        "/api/v1/traces/{}",
        hex(&otlp::trace_id(1_000_000))
    ));
    assert_eq!(status, 404, "{body}");
    server.wait_for_trace(&hex(&otlp::trace_id(kept_trace.unwrap())), None, 1, 0);
}

/// A config file enabling tail sampling with `extra` settings and `policies` (TOML tables).
fn sampling_config(dir: &std::path::Path, extra: &str, policies: &str) -> String {
    let path = dir.join("sampling.toml");
    std::fs::write(
        &path,
        format!("[sampling]\ntail = true\ndecision_wait_secs = 1\n{extra}\n{policies}"),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

fn policy(name: &str, kind: &str, rest: &str) -> String {
    format!("[[sampling.policies]]\nname = {name:?}\ntype = {kind:?}\n{rest}\n")
}

/// A trace number whose randomness (its low 56 bits) is at least one half: a probabilistic
/// policy at 0.5 never keeps it, so only the policy under test can.
fn unlucky(k: u64) -> u64 {
    0x80 << 48 | k
}

fn decision(server: &Server, trace: u64) -> Value {
    let path = format!("/api/v1/sampling/traces/{}", hex(&otlp::trace_id(trace)));
    let mut last = Value::Null;
    let decided = common::poll(Duration::from_secs(20), || {
        let (status, body) = server.get_json(&path);
        let done = status == 200
            && matches!(
                body["sampling"]["decision"].as_str(),
                Some("kept" | "dropped")
            );
        last = body;
        done
    });
    assert!(decided, "trace {trace} was not decided: {last}");
    last["sampling"].clone()
}

fn with_attr(mut s: Span, key: &str, value: &str) -> Span {
    s.attributes.retain(|kv| kv.key != key);
    s.attributes.push(kv(key, value));
    s
}

fn child(trace: u64, span: u64, start_ms: u64) -> Span {
    otlp::span(&SpanSpec {
        trace,
        span,
        parent: Some(1),
        name: "child",
        start_ms,
        duration_ms: 1,
        error: false,
    })
}

/// An open incident naming `trace`, written where the incident store keeps its incidents
/// (the store reads them at start), since opening one takes minutes of anomalous traffic.
fn open_incident(data_dir: &std::path::Path, trace: u64) {
    let dir = data_dir.join("incidents");
    std::fs::create_dir_all(&dir).unwrap();
    let incident = serde_json::json!({
        "id": "inc-test", "tenant": "default", "status": "open",
        "detected_ns": T0, "start_ns": T0, "last_activity_ns": T0, "closed_ns": null,
        "services": ["checkout"], "anomalies": [], "origins": [],
        "exemplar_traces": [{"trace_id": hex(&otlp::trace_id(trace)), "root": null,
            "origin_span": null, "services": ["checkout"], "failed": true}],
    });
    std::fs::write(dir.join("inc-test.json"), incident.to_string()).unwrap();
}

#[test]
fn tail_policies_keep_and_drop_what_they_say_in_order_and_decisions_survive_a_crash() {
    let conf = tempfile::tempdir().unwrap();
    let policies = [
        policy("opened-by-user", "user", ""),
        policy("named-by-exemplar", "exemplar", ""),
        policy("named-by-log", "log", ""),
        policy("named-by-incident", "incident", ""),
        policy("errors", "error", ""),
        policy(
            "slow-checkout",
            "latency",
            "threshold_ms = 500\nservice = \"checkout\"",
        ),
        policy("gold", "attribute", "key = \"user.tier\"\nvalue = \"gold\""),
        policy("big", "span_count", "min_spans = 5"),
        policy(
            "limited",
            "attribute",
            "key = \"http.route\"\nvalue = \"/limited\"\nmax_traces_per_sec = 1",
        ),
        policy("half", "probabilistic", "probability = 0.5"),
    ]
    .concat();
    // Far horizon: nothing is pruned here, decisions only.
    let config = sampling_config(conf.path(), "full_fidelity_secs = 3153600000", &policies);
    let data = tempfile::tempdir().unwrap();
    let (error, slow, slow_elsewhere, gold, big, exemplar, log, plain, incident, forced, lucky) = (
        unlucky(1),
        unlucky(2),
        unlucky(3),
        unlucky(4),
        unlucky(5),
        unlucky(6),
        unlucky(7),
        unlucky(8),
        unlucky(9),
        unlucky(10),
        12, // randomness ~0: the 0.5 policy keeps it
    );
    let limited = [unlucky(20), unlucky(21), unlucky(22)];
    let (later_bookmarked, later_named) = (unlucky(30), unlucky(31));
    open_incident(data.path(), incident);
    let env = [
        ("WEFT_CONFIG", config.as_str()),
        ("WEFT_INCIDENTS_ENABLED", "false"),
    ];
    let mut server = Server::start_in(data.path(), &env);

    let mut spans = vec![
        root(error, "pay", 0, 10, true),
        root(slow, "pay", 0, 800, false),
        otlp::span(&SpanSpec {
            trace: slow_elsewhere,
            span: 1,
            parent: None,
            name: "pay",
            start_ms: 0,
            duration_ms: 800,
            error: false,
        }),
        with_attr(root(gold, "pay", 0, 5, false), "user.tier", "gold"),
        root(exemplar, "pay", 0, 5, false),
        root(log, "pay", 0, 5, false),
        root(plain, "pay", 0, 5, false),
        root(incident, "pay", 0, 5, false),
        with_attr(root(forced, "pay", 0, 5, false), "sampling.priority", "1"),
        root(lucky, "pay", 0, 5, false),
        root(later_bookmarked, "pay", 0, 5, false),
        root(later_named, "pay", 0, 5, false),
        root(big, "pay", 0, 5, false),
    ];
    spans.extend((2..=5).map(|i| child(big, i, 1)));
    spans.extend(
        limited
            .iter()
            .map(|t| with_attr(root(*t, "pay", 0, 5, false), "http.route", "/limited")),
    );
    let checkout: Vec<Span> = spans.drain(..2).collect();
    send(&server, &otlp::traces("checkout", checkout));
    send(&server, &otlp::traces("other", spans));
    let post_ok = |path: &str, body: Vec<u8>| {
        let (status, _) = post(&server.url(path), "application/x-protobuf", &[], body);
        assert_eq!(status, 200);
    };
    post_ok(
        "/v1/metrics",
        otlp::encode(&otlp::histogram_with_exemplar("other", exemplar, 1, 3)),
    );
    let mut warn = otlp::log(Some(log), Some(1), "retrying payment", 2);
    warn.severity_number = 13;
    let mut info = otlp::log(Some(plain), Some(1), "fine", 2);
    info.severity_number = 9;
    post_ok(
        "/v1/logs",
        otlp::encode(&otlp::logs("other", vec![warn, info])),
    );

    let expect =
        |trace: u64, keep: bool, policy: &str| expect_decision(&server, trace, keep, policy);
    expect(error, true, "errors");
    expect(slow, true, "slow-checkout");
    expect(slow_elsewhere, false, "no-policy-matched");
    expect(gold, true, "gold");
    let d = expect(big, true, "big");
    assert_eq!(d["spans"], 5);
    expect(exemplar, true, "named-by-exemplar");
    expect(log, true, "named-by-log");
    expect(incident, true, "named-by-incident");
    expect(forced, true, "sampling.priority");
    expect(lucky, true, "half");
    let d = expect(plain, false, "no-policy-matched");
    assert_eq!(d["services"], serde_json::json!(["other"]));
    let limited_kept: Vec<bool> = limited
        .iter()
        .map(|t| decision(&server, *t)["decision"] == "kept")
        .collect();
    assert_eq!(
        limited_kept.iter().filter(|k| **k).count(),
        1,
        "one per second: {limited_kept:?}"
    );
    for (t, kept) in limited.iter().zip(&limited_kept) {
        if !kept {
            let d = expect(*t, false, "limited");
            assert!(d["reason"].as_str().unwrap().contains("rate limit"), "{d}");
        }
    }

    // Hindsight: a bookmark and a later exemplar turn drops into keeps.
    expect(later_bookmarked, false, "no-policy-matched");
    expect(later_named, false, "no-policy-matched");
    let (status, body) = bookmark(
        &server,
        &format!(
            "/api/v1/traces/{}/bookmark",
            hex(&otlp::trace_id(later_bookmarked))
        ),
    );
    assert_eq!(status, 200, "{body}");
    post_ok(
        "/v1/metrics",
        otlp::encode(&otlp::histogram_with_exemplar("other", later_named, 1, 3)),
    );
    let d = expect(later_bookmarked, true, "opened-by-user");
    assert!(d["reason"].as_str().unwrap().contains("hindsight"), "{d}");
    wait_until(
        Duration::from_secs(10),
        "the exemplar to keep its trace",
        || decision(&server, later_named)["decision"] == "kept",
    );
    // Opening the trace view keeps it too, and the view carries the decision.
    let (status, view) =
        server.get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(plain))));
    assert_eq!(status, 200);
    assert_eq!(view["sampling"]["policy"], "opened-by-user", "{view}");

    // A crash: every decision is still there after a restart.
    server.kill();
    let server = Server::start_in(data.path(), &env);
    let expect =
        |trace: u64, keep: bool, policy: &str| expect_decision(&server, trace, keep, policy);
    expect(slow_elsewhere, false, "no-policy-matched");
    expect(later_named, true, "named-by-exemplar");
    expect(error, true, "errors");
    let (status, body) = server.get_json(&format!(
        "/api/v1/sampling/traces/{}",
        hex(&otlp::trace_id(999))
    ));
    assert_eq!(status, 200);
    assert_eq!(body["sampling"]["decision"], "none", "{body}");
}

fn expect_decision(server: &Server, trace: u64, keep: bool, policy: &str) -> Value {
    let d = decision(server, trace);
    assert_eq!(
        d["decision"],
        if keep { "kept" } else { "dropped" },
        "trace {trace}: {d}"
    );
    assert_eq!(d["policy"], policy, "trace {trace}: {d}");
    d
}

fn bookmark(server: &Server, path: &str) -> (u16, Value) {
    let resp = reqwest::blocking::Client::new()
        .post(server.url(path))
        .send()
        .expect("POST");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn past_the_horizon_dropped_traces_are_pruned_their_logs_follow_and_lookups_say_what_happened() {
    let conf = tempfile::tempdir().unwrap();
    // The fixtures are days old: past a one-hour horizon at once.
    let config = sampling_config(
        conf.path(),
        "full_fidelity_secs = 3600\nprune_interval_secs = 1\nlogs = \"kept_traces_and_warn\"",
        &policy("errors", "error", ""),
    );
    let env = [
        ("WEFT_CONFIG", config.as_str()),
        ("WEFT_INCIDENTS_ENABLED", "false"),
    ];
    let mut server = Server::start(&env);
    let (kept, dropped) = (401, 402);
    send(
        &server,
        &otlp::traces(
            "front",
            vec![
                root(kept, "GET /", 0, 20, true),
                root(dropped, "GET /", 0, 30, false),
            ],
        ),
    );
    send(
        &server,
        &otlp::traces("back", vec![child(kept, 2, 1), child(dropped, 2, 5)]),
    );
    let mut info = otlp::log(Some(dropped), Some(1), "dropped-info", 3);
    info.severity_number = 9;
    let mut warn = otlp::log(Some(dropped), Some(1), "dropped-warn", 4);
    warn.severity_number = 13;
    let untraced = otlp::log(None, None, "no-trace-here", 5);
    let (status, _) = post(
        &server.url("/v1/logs"),
        "application/x-protobuf",
        &[],
        otlp::encode(&otlp::logs("front", vec![info, warn, untraced])),
    );
    assert_eq!(status, 200);
    let (status, _) = post(
        &server.url("/v1/metrics"),
        "application/x-protobuf",
        &[],
        otlp::encode(&otlp::histogram_with_exemplar("front", dropped, 1, 3)),
    );
    assert_eq!(status, 200);

    let id = hex(&otlp::trace_id(dropped));
    wait_until(
        Duration::from_secs(30),
        "the dropped trace to be pruned",
        || decision(&server, dropped)["pruned_at"].is_string(),
    );
    let d = decision(&server, dropped);
    assert_eq!(d["decision"], "dropped");
    assert_eq!(d["spans"], 2);
    assert_eq!(d["services"], serde_json::json!(["back", "front"]));
    assert_eq!(d["duration_ns"], 30 * 1_000_000);
    let mut view = Value::Null;
    wait_until(Duration::from_secs(10), "its spans to be gone", || {
        let (status, body) = server.get_json(&format!("/api/v1/traces/{id}"));
        view = body;
        status == 200 && view["spans"].as_array().is_some_and(Vec::is_empty)
    });
    assert_eq!(
        view["sampling"]["decision"], "dropped",
        "never a bare 404: {view}"
    );
    assert_eq!(view["sampling"]["policy"], "no-policy-matched");
    // Its WARN log stays and says its trace was dropped; the INFO log went with the trace;
    // a log without a trace is untouched.
    let t0 = T0 / 1_000_000_000;
    let (status, logs) = server.get_json(&format!(
        "/api/v1/logs?start={}&end={}&limit=100",
        t0 - 60,
        t0 + 60
    ));
    assert_eq!(status, 200, "{logs}");
    let bodies: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["body"].as_str())
        .collect();
    assert!(
        bodies.contains(&"dropped-warn") && bodies.contains(&"no-trace-here"),
        "{bodies:?}"
    );
    assert!(!bodies.contains(&"dropped-info"), "{bodies:?}");
    let warn = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["body"] == "dropped-warn")
        .unwrap();
    assert_eq!(warn["trace_sampling"]["decision"], "dropped", "{warn}");
    // The kept trace is whole, and the exemplar point naming the dropped one is still there.
    let (_, kept_view) = server.get_json(&format!("/api/v1/traces/{}", hex(&otlp::trace_id(kept))));
    assert_eq!(
        kept_view["spans"].as_array().unwrap().len(),
        2,
        "{kept_view}"
    );
    assert_eq!(
        view["exemplars"].as_array().map(Vec::len),
        Some(1),
        "the exemplar still names it: {view}"
    );
    assert_eq!(
        view["logs"].as_array().map(Vec::len),
        Some(1),
        "its WARN log: {view}"
    );

    // After a clean restart the answer is the same.
    server.terminate();
    let dir = server.take_dir();
    let server = Server::start_in(dir.path(), &env);
    let (status, view) = server.get_json(&format!("/api/v1/traces/{id}"));
    assert_eq!(status, 200);
    assert_eq!(view["sampling"]["decision"], "dropped", "{view}");
    assert!(view["spans"].as_array().unwrap().is_empty());
}

/// One `weft_sampling_decisions_total` sample from /metrics.
fn decisions_total(server: &Server, decision: &str) -> f64 {
    server.metric_or_zero(&format!(
        "weft_sampling_decisions_total{{decision=\"{decision}\"}}"
    ))
}

#[test]
fn adaptive_probabilities_hold_the_budget_keep_rare_operations_and_are_served_to_jaeger_sdks() {
    let conf = tempfile::tempdir().unwrap();
    // 10 spans/s over 2 s intervals: 20 spans per interval; rare operations keep 2 traces.
    let config = sampling_config(
        conf.path(),
        "full_fidelity_secs = 3153600000\nbudget_spans_per_sec = 10.0\nadaptive_interval_secs = 2\nmin_traces_per_interval = 2",
        &[policy("errors", "error", ""), policy("budget", "probabilistic", "")].concat(),
    );
    let server = Server::start(&[
        ("WEFT_CONFIG", config.as_str()),
        ("WEFT_INCIDENTS_ENABLED", "false"),
    ]);
    let mut rng = Rng(11);
    // First interval: 400 traces of 3 spans on "GET /hot", 2 one-span traces on "GET /rare".
    let wave = |rng: &mut Rng, n: u64| -> Vec<Span> {
        let mut spans = Vec::new();
        for _ in 0..n {
            let t = rng.next() | 1;
            spans.push(root(t, "GET /hot", 0, 5, false));
            spans.extend((2..=3).map(|i| child(t, i, 1)));
        }
        spans
    };
    // One request, so both are decided in the same interval.
    let mut first = wave(&mut rng, 400);
    first.extend((0..2).map(|_| root(rng.next() | 1, "GET /rare", 0, 5, false)));
    send(&server, &otlp::traces("svc", first));
    let mut probabilities = Value::Null;
    wait_until(
        Duration::from_secs(20),
        "the adaptive probabilities",
        || {
            let (_, body) = server.get_json("/api/v1/sampling/probabilities");
            probabilities = body;
            probabilities["operations"]
                .as_array()
                .is_some_and(|o| o.len() == 2)
        },
    );
    let p = |op: &str| {
        probabilities["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["operation"] == op)
            .unwrap()["probability"]
            .as_f64()
            .unwrap()
    };
    // 20 spans: the rare operation's 2 traces (2 spans) at its floor of 1, the rest for 1200
    // hot spans.
    let hot = p("GET /hot");
    assert_eq!(p("GET /rare"), 1.0, "{probabilities}");
    assert!((hot - 18.0 / 1200.0).abs() < 1e-3, "{probabilities}");
    println!("adaptive: hot {hot:.4}, rare 1.0 (budget 20 spans per 2 s interval)");

    // Served to SDKs in Jaeger's response shape.
    let (status, strategy) = server.get_json("/api/sampling?service=svc");
    assert_eq!(status, 200, "{strategy}");
    assert_eq!(strategy["strategyType"], "PROBABILISTIC");
    let ops = &strategy["operationSampling"];
    assert_eq!(ops["defaultLowerBoundTracesPerSecond"], 1.0);
    let rate = |op: &str| {
        ops["perOperationStrategies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["operation"] == op)
            .unwrap()["probabilisticSampling"]["samplingRate"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(rate("GET /hot"), hot);
    assert_eq!(rate("GET /rare"), 1.0);
    let (status, other) = server.get_json("/api/sampling?service=nobody");
    assert_eq!(status, 200);
    assert_eq!(
        other["operationSampling"]["perOperationStrategies"],
        serde_json::json!([])
    );
    let (status, _) = server.get_json("/api/sampling");
    assert_eq!(status, 400);
    // And in /metrics, without tenant-chosen labels.
    assert_eq!(
        server.metric("weft_sampling_probability{stat=\"max\"}"),
        1.0
    );
    assert!((server.metric("weft_sampling_probability{stat=\"min\"}") - hot).abs() < 1e-9);

    // The next 1000 hot traces are kept at about that probability: the budget holds.
    let (kept0, dropped0) = (
        decisions_total(&server, "kept"),
        decisions_total(&server, "dropped"),
    );
    send(&server, &otlp::traces("svc", wave(&mut rng, 1000)));
    wait_until(
        Duration::from_secs(20),
        "the second wave's decisions",
        || {
            decisions_total(&server, "kept") + decisions_total(&server, "dropped")
                - kept0
                - dropped0
                >= 1000.0
        },
    );
    let kept = decisions_total(&server, "kept") - kept0;
    println!(
        "adaptive: kept {kept} of 1000 hot traces at p = {hot:.4} (expected {:.1})",
        1000.0 * hot
    );
    // Binomial(1000, 0.015): mean 15, sd 3.8; a fixed stream, bounds at about 3 sd.
    assert!((3.0..=27.0).contains(&kept), "kept {kept}");
}
