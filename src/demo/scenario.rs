//! The demo's shop: seven services calling each other, and a database slowdown behind
//! `inventory` that turns into timeouts and errors further up.
//!
//! ```text
//! frontend ─ GET /checkout ─► checkout ─► cart
//!                                     ├─► inventory ─► SELECT stock (postgres)
//!                                     ├─► payment
//!                                     └─► shipping
//! frontend ─ GET /product ──► catalog ─► redis GET
//! ```
//!
//! Logs: frontend access lines carry the trace only in their text (a traceparent); checkout
//! logs carry trace context; payment logs carry the trace ID as an attribute; inventory logs
//! carry none (inferred links are all they can get). Metrics: frontend request duration
//! histogram with exemplars, inventory's database connections in use, checkout's cumulative
//! order counter. Everything is deterministic for a seed.

use crate::bench::gen::kv;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, Exemplar, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

pub const SERVICES: [&str; 7] = [
    "frontend",
    "checkout",
    "cart",
    "inventory",
    "payment",
    "shipping",
    "catalog",
];
/// The service whose database slows down.
pub const FAULTY: &str = "inventory";
const MS: u64 = 1_000_000;
/// Inventory's database statement timeout.
const DB_TIMEOUT_MS: u64 = 1000;
/// Request duration bounds of the frontend histogram, seconds.
const BOUNDS_S: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// When the fault is on, in scenario seconds.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub start_s: u64,
    pub end_s: u64,
}

/// One second of the shop's telemetry.
#[derive(Default)]
pub struct Second {
    pub traces: ExportTraceServiceRequest,
    pub logs: ExportLogsServiceRequest,
    pub metrics: ExportMetricsServiceRequest,
    pub spans: usize,
    pub failed_traces: usize,
}

pub struct Scenario {
    rng: StdRng,
    t0_ns: u64,
    pub fault: Fault,
    orders: i64,
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", service),
            kv("k8s.pod.name", &format!("{service}-6d4f9-x2x1")),
            kv("host.name", "node-1"),
        ],
        ..Default::default()
    })
}

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// Collects spans and logs per service, as SDKs send them.
#[derive(Default)]
struct Batch {
    spans: BTreeMap<&'static str, Vec<Span>>,
    logs: BTreeMap<&'static str, Vec<LogRecord>>,
}

impl Scenario {
    pub fn new(seed: u64, t0_ns: u64, fault: Fault) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            t0_ns,
            fault,
            orders: 0,
        }
    }

    fn id<const N: usize>(&mut self) -> Vec<u8> {
        let mut b = [0u8; N];
        self.rng.fill(&mut b[..]);
        b[0] |= 1;
        b.to_vec()
    }

    fn span(
        &mut self,
        b: &mut Batch,
        service: &'static str,
        name: &str,
        trace: &[u8],
        parent: &[u8],
        start: u64,
        dur: u64,
        error: Option<&str>,
        attrs: Vec<KeyValue>,
    ) -> Vec<u8> {
        let id = self.id::<8>();
        b.spans.entry(service).or_default().push(Span {
            trace_id: trace.to_vec(),
            span_id: id.clone(),
            parent_span_id: parent.to_vec(),
            name: name.into(),
            kind: if parent.is_empty() { 2 } else { 3 },
            start_time_unix_nano: start,
            end_time_unix_nano: start + dur,
            attributes: attrs,
            status: Some(Status {
                code: if error.is_some() { 2 } else { 0 },
                message: error.unwrap_or_default().into(),
            }),
            ..Default::default()
        });
        id
    }

    fn log(
        b: &mut Batch,
        service: &'static str,
        t: u64,
        severity: i32,
        body: String,
        context: Option<(&[u8], &[u8])>,
        attrs: Vec<KeyValue>,
    ) {
        let text = match severity {
            17.. => "ERROR",
            13.. => "WARN",
            _ => "INFO",
        };
        let (trace_id, span_id) = context
            .map(|(t, s)| (t.to_vec(), s.to_vec()))
            .unwrap_or_default();
        b.logs.entry(service).or_default().push(LogRecord {
            time_unix_nano: t,
            observed_time_unix_nano: t,
            severity_number: severity,
            severity_text: text.into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body)),
            }),
            attributes: attrs,
            trace_id,
            span_id,
            ..Default::default()
        });
    }

    fn in_fault(&self, s: u64) -> bool {
        (self.fault.start_s..self.fault.end_s).contains(&s)
    }

    /// A checkout: frontend → checkout → cart, inventory (→ database), payment, shipping.
    /// Returns the frontend span's (trace, span, duration, failed).
    fn checkout(
        &mut self,
        b: &mut Batch,
        second: u64,
        start: u64,
    ) -> (Vec<u8>, Vec<u8>, u64, bool) {
        let trace = self.id::<16>();
        let faulty = self.in_fault(second);
        let db_ms = if faulty {
            self.rng.random_range(600..1400)
        } else {
            self.rng.random_range(3..12)
        };
        let timeout = db_ms > DB_TIMEOUT_MS;
        let db_ms = db_ms.min(DB_TIMEOUT_MS);
        let cart_ms = self.rng.random_range(3..8);
        let pay_ms = self.rng.random_range(20..45);
        let ship_ms = self.rng.random_range(6..15);
        let inv_ms = db_ms + 2;
        let mut checkout_ms = 3 + cart_ms + 1 + inv_ms + 1;
        if !timeout {
            checkout_ms += pay_ms + 1 + ship_ms + 1;
        }
        let front_ms = checkout_ms + 4;
        let order = self.rng.random_range(10_000..99_999);
        let err = |e: &'static str| timeout.then_some(e);
        let fe = self.span(
            b,
            "frontend",
            "GET /checkout",
            &trace,
            &[],
            start,
            front_ms * MS,
            err("HTTP 503"),
            vec![
                kv("http.route", "/checkout"),
                kv(
                    "http.response.status_code",
                    if timeout { "503" } else { "200" },
                ),
            ],
        );
        let co_start = start + 2 * MS;
        let co = self.span(
            b,
            "checkout",
            "POST /api/checkout",
            &trace,
            &fe,
            co_start,
            checkout_ms * MS,
            err("inventory unavailable"),
            vec![kv("order.id", &order.to_string())],
        );
        let mut t = co_start + 3 * MS;
        let cart = self.span(
            b,
            "cart",
            "GetCart",
            &trace,
            &co,
            t,
            cart_ms * MS,
            None,
            vec![kv("cart.items", "3")],
        );
        let _ = cart;
        t += (cart_ms + 1) * MS;
        let inv = self.span(
            b,
            "inventory",
            "ReserveStock",
            &trace,
            &co,
            t,
            inv_ms * MS,
            err("db timeout"),
            vec![kv("stock.warehouse", "eu-1")],
        );
        let db_t = t + MS;
        self.span(
            b,
            "inventory",
            "SELECT stock",
            &trace,
            &inv,
            db_t,
            db_ms * MS,
            err("canceling statement due to statement timeout"),
            vec![
                kv("db.system", "postgresql"),
                kv(
                    "db.statement",
                    "SELECT qty FROM stock WHERE sku = $1 FOR UPDATE",
                ),
            ],
        );
        // Inventory logs carry no trace ID.
        if timeout {
            Self::log(
                b,
                "inventory",
                db_t + db_ms * MS,
                17,
                format!(
                    "query timeout after {DB_TIMEOUT_MS} ms on table stock (sku {})",
                    order % 977
                ),
                None,
                vec![],
            );
        } else if db_ms > 200 {
            Self::log(
                b,
                "inventory",
                db_t + db_ms * MS,
                13,
                format!("slow query: SELECT stock took {db_ms} ms"),
                None,
                vec![],
            );
        } else {
            Self::log(
                b,
                "inventory",
                db_t + db_ms * MS,
                9,
                format!(
                    "reserved {} items for order {order}",
                    self.rng.random_range(1..5)
                ),
                None,
                vec![],
            );
        }
        t += (inv_ms + 1) * MS;
        if !timeout {
            let pay = self.span(
                b,
                "payment",
                "Charge",
                &trace,
                &co,
                t,
                pay_ms * MS,
                None,
                vec![kv("payment.method", "card")],
            );
            Self::log(
                b,
                "payment",
                t + pay_ms * MS,
                9,
                format!(
                    "charged card amount={}.{:02} EUR",
                    self.rng.random_range(5..300),
                    self.rng.random_range(0..100)
                ),
                None,
                vec![kv("trace_id", &hex(&trace)), kv("span_id", &hex(&pay))],
            );
            t += (pay_ms + 1) * MS;
            self.span(
                b,
                "shipping",
                "GetQuote",
                &trace,
                &co,
                t,
                ship_ms * MS,
                None,
                vec![kv("shipping.zone", "eu")],
            );
            Self::log(
                b,
                "checkout",
                co_start + checkout_ms * MS,
                9,
                format!("order placed order_id={order}"),
                Some((&trace, &co)),
                vec![],
            );
            self.orders += 1;
        } else {
            Self::log(
                b,
                "checkout",
                co_start + checkout_ms * MS,
                17,
                format!("checkout failed: inventory unavailable order_id={order}"),
                Some((&trace, &co)),
                vec![],
            );
        }
        let status = if timeout { 503 } else { 200 };
        Self::log(
            b,
            "frontend",
            start + front_ms * MS,
            if timeout { 17 } else { 9 },
            format!(
                "GET /checkout {status} {front_ms}ms traceparent=00-{}-{}-01",
                hex(&trace),
                hex(&fe)
            ),
            None,
            vec![],
        );
        (trace, fe, front_ms, timeout)
    }

    /// A product page: frontend → catalog → cache.
    fn product(&mut self, b: &mut Batch, start: u64) -> (Vec<u8>, Vec<u8>, u64, bool) {
        let trace = self.id::<16>();
        let cache_ms = self.rng.random_range(1..3);
        let cat_ms = cache_ms + self.rng.random_range(4..10);
        let front_ms = cat_ms + 3;
        let fe = self.span(
            b,
            "frontend",
            "GET /product",
            &trace,
            &[],
            start,
            front_ms * MS,
            None,
            vec![
                kv("http.route", "/product"),
                kv("http.response.status_code", "200"),
            ],
        );
        let cat = self.span(
            b,
            "catalog",
            "GetProduct",
            &trace,
            &fe,
            start + MS,
            cat_ms * MS,
            None,
            vec![kv("product.id", "p-17")],
        );
        self.span(
            b,
            "catalog",
            "redis GET",
            &trace,
            &cat,
            start + 2 * MS,
            cache_ms * MS,
            None,
            vec![kv("db.system", "redis")],
        );
        Self::log(
            b,
            "frontend",
            start + front_ms * MS,
            9,
            format!(
                "GET /product 200 {front_ms}ms traceparent=00-{}-{}-01",
                hex(&trace),
                hex(&fe)
            ),
            None,
            vec![],
        );
        (trace, fe, front_ms, false)
    }

    /// Everything that happens in scenario second `s`.
    pub fn second(&mut self, s: u64) -> Second {
        let base = self.t0_ns + s * 1_000_000_000;
        let mut b = Batch::default();
        let mut out = Second::default();
        // Per route: bucket counts and the exemplars (slowest, and failed) of the second.
        let mut routes: BTreeMap<&str, (Vec<u64>, f64, Vec<Exemplar>)> = BTreeMap::new();
        let n = self.rng.random_range(6..=10);
        for i in 0..n {
            let start = base + i * (1_000_000_000 / n) + self.rng.random_range(0..20) * MS;
            let checkout = self.rng.random_range(0..10) < 7;
            let (trace, span, ms, failed) = if checkout {
                self.checkout(&mut b, s, start)
            } else {
                self.product(&mut b, start)
            };
            out.failed_traces += failed as usize;
            let route = if checkout { "/checkout" } else { "/product" };
            let secs = ms as f64 / 1000.0;
            let entry = routes
                .entry(route)
                .or_insert_with(|| (vec![0; BOUNDS_S.len() + 1], 0.0, Vec::new()));
            let i = BOUNDS_S
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(BOUNDS_S.len());
            entry.0[i] += 1;
            entry.1 += secs;
            let ex = Exemplar {
                time_unix_nano: start + ms * MS,
                value: Some(exemplar::Value::AsDouble(secs)),
                trace_id: trace,
                span_id: span,
                ..Default::default()
            };
            let slowest = entry.2.first().map_or(-1.0, |e| match e.value {
                Some(exemplar::Value::AsDouble(v)) => v,
                _ => -1.0,
            });
            if secs > slowest {
                entry.2.insert(0, ex);
            } else if failed && entry.2.len() < 3 {
                entry.2.push(ex);
            }
            entry.2.truncate(3);
        }
        let end = base + 1_000_000_000;
        out.spans = b.spans.values().map(Vec::len).sum();
        out.traces.resource_spans = b
            .spans
            .into_iter()
            .map(|(svc, spans)| ResourceSpans {
                resource: resource(svc),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        out.logs.resource_logs = b
            .logs
            .into_iter()
            .map(|(svc, log_records)| ResourceLogs {
                resource: resource(svc),
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        let histogram = routes
            .into_iter()
            .map(|(route, (counts, sum, exemplars))| HistogramDataPoint {
                attributes: vec![kv("http.route", route)],
                start_time_unix_nano: base,
                time_unix_nano: end,
                count: counts.iter().sum(),
                sum: Some(sum),
                bucket_counts: counts,
                explicit_bounds: BOUNDS_S.to_vec(),
                exemplars,
                ..Default::default()
            })
            .collect();
        let in_use = if self.in_fault(s) {
            self.rng.random_range(18..=20)
        } else {
            self.rng.random_range(2..=4)
        };
        let metric = |name: &str, unit: &str, data| Metric {
            name: name.into(),
            unit: unit.into(),
            data: Some(data),
            ..Default::default()
        };
        let scope = |metrics| {
            vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }]
        };
        out.metrics.resource_metrics = vec![
            ResourceMetrics {
                resource: resource("frontend"),
                scope_metrics: scope(vec![metric(
                    "http.server.request.duration",
                    "s",
                    metric::Data::Histogram(Histogram {
                        data_points: histogram,
                        aggregation_temporality: 1,
                    }),
                )]),
                ..Default::default()
            },
            ResourceMetrics {
                resource: resource("inventory"),
                scope_metrics: scope(vec![metric(
                    "db.client.connection.count",
                    "{connection}",
                    metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![kv("db.client.connection.state", "used")],
                            time_unix_nano: end,
                            value: Some(number_data_point::Value::AsInt(in_use)),
                            ..Default::default()
                        }],
                    }),
                )]),
                ..Default::default()
            },
            ResourceMetrics {
                resource: resource("checkout"),
                scope_metrics: scope(vec![metric(
                    "app.orders.placed",
                    "{order}",
                    metric::Data::Sum(Sum {
                        data_points: vec![NumberDataPoint {
                            start_time_unix_nano: self.t0_ns,
                            time_unix_nano: end,
                            value: Some(number_data_point::Value::AsInt(self.orders)),
                            ..Default::default()
                        }],
                        aggregation_temporality: 2,
                        is_monotonic: true,
                    }),
                )]),
                ..Default::default()
            },
        ];
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_slows_and_fails_checkouts_only_while_it_lasts() {
        let mut s = Scenario::new(
            7,
            0,
            Fault {
                start_s: 5,
                end_s: 10,
            },
        );
        let before: usize = (0..5).map(|i| s.second(i).failed_traces).sum();
        let during: usize = (5..10).map(|i| s.second(i).failed_traces).sum();
        let after: usize = (10..15).map(|i| s.second(i).failed_traces).sum();
        assert_eq!(before, 0);
        assert!(during > 5, "{during}");
        assert_eq!(after, 0);
        let one = s.second(20);
        let services: Vec<String> = one
            .traces
            .resource_spans
            .iter()
            .map(|r| {
                let attrs = &r.resource.as_ref().unwrap().attributes;
                match &attrs[0].value.as_ref().unwrap().value {
                    Some(any_value::Value::StringValue(v)) => v.clone(),
                    _ => String::new(),
                }
            })
            .collect();
        assert!(services.len() >= 6, "{services:?}");
        // Same seed, same telemetry.
        let a = Scenario::new(
            7,
            0,
            Fault {
                start_s: 5,
                end_s: 10,
            },
        )
        .second(3)
        .traces;
        let b = Scenario::new(
            7,
            0,
            Fault {
                start_s: 5,
                end_s: 10,
            },
        )
        .second(3)
        .traces;
        assert_eq!(a, b);
    }
}
