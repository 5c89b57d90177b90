//! Sampling over real OTLP traffic through the real server: head sampling measured in RED,
//! tail policies, cross-signal keeps, pruning past the horizon, decisions across restarts,
//! adaptive probabilities and the Jaeger remote-sampling endpoint.

mod common;

use common::otlp::{self, hex, kv, SpanSpec, T0};
use common::{post, wait_until, Server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
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
