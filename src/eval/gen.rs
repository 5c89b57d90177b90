//! Labelled fault cases: a random topology of services behind a gateway, its traffic as OTLP
//! (traces, logs, per-pod metrics), and one fault injected into one service for a while.
//!
//! The shapes vary on purpose so that a ranking tuned to them would show: topologies are
//! random within their kind, own work times are log-normal per service, some services never
//! set span status (HTTP services then carry only `http.response.status_code`, gRPC ones only
//! `rpc.grpc.status_code`), some export metrics every 10 s and others every 60 s, every pod
//! carries copies of its node's metrics, and a few fault-free error logs and slow requests
//! are noise.

use crate::bench::gen::kv;
use crate::demo::scenario::Second;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    /// 30+ services behind a gateway, fan-out of two or three.
    Wide,
    /// About a dozen services in deep chains.
    Deep,
    /// Services that also publish to queues whose consumers work after the call returned.
    Queued,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::Wide, Shape::Deep, Shape::Queued];
    pub fn name(self) -> &'static str {
        match self {
            Shape::Wide => "wide-35",
            Shape::Deep => "deep-12",
            Shape::Queued => "queued-16",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    Cpu,
    Memory,
    NetworkDelay,
    Exception,
    WrongValue,
    SlowDatabase,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Cpu,
        FaultKind::Memory,
        FaultKind::NetworkDelay,
        FaultKind::Exception,
        FaultKind::WrongValue,
        FaultKind::SlowDatabase,
    ];
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Cpu => "cpu",
            FaultKind::Memory => "memory",
            FaultKind::NetworkDelay => "network-delay",
            FaultKind::Exception => "exception",
            FaultKind::WrongValue => "wrong-value",
            FaultKind::SlowDatabase => "slow-db",
        }
    }
}

#[derive(Debug, Clone)]
struct Service {
    name: String,
    /// Median own work, ms.
    work_ms: f64,
    calls: Vec<usize>,
    /// Published to; consumed by these after the call returns.
    publishes: Vec<usize>,
    db: bool,
    grpc: bool,
    sets_status: bool,
    metrics_every_s: u64,
    node: usize,
}

#[derive(Debug, Clone)]
pub struct Topology {
    services: Vec<Service>,
}

impl Topology {
    pub fn random(shape: Shape, rng: &mut StdRng) -> Topology {
        let n: usize = match shape {
            Shape::Wide => rng.random_range(32..40),
            Shape::Deep => rng.random_range(10..14),
            Shape::Queued => rng.random_range(14..18),
        };
        let words = [
            "cart", "auth", "user", "order", "price", "stock", "ship", "pay", "mail", "search",
            "rank", "ads", "review", "media", "geo", "tax", "promo", "wallet", "ledger", "quote",
        ];
        let mut services: Vec<Service> = (0..n)
            .map(|i| Service {
                name: if i == 0 {
                    "gateway".into()
                } else {
                    format!("{}-{i}", words[rng.random_range(0..words.len())])
                },
                work_ms: (rng.random_range(1.0f64..3.0)).exp(),
                calls: Vec::new(),
                publishes: Vec::new(),
                db: i > 0 && rng.random_bool(0.3),
                grpc: rng.random_bool(0.4),
                sets_status: rng.random_bool(0.5),
                metrics_every_s: if rng.random_bool(0.5) { 10 } else { 60 },
                node: rng.random_range(0..4),
            })
            .collect();
        // Each service after the gateway is called by one earlier service (a tree), plus a
        // few extra edges forward; deep shapes prefer the newest parent.
        for i in 1..n {
            let parent = match shape {
                Shape::Deep => rng.random_range(i.saturating_sub(2)..i),
                _ => rng.random_range(0..i.min(if i < 4 { 1 } else { i })),
            };
            services[parent].calls.push(i);
        }
        for _ in 0..n / 5 {
            let a = rng.random_range(1..n - 1);
            let b = rng.random_range(a + 1..n);
            if !services[a].calls.contains(&b) {
                services[a].calls.push(b);
            }
        }
        if shape == Shape::Queued {
            for _ in 0..4 {
                let a = rng.random_range(1..n - 1);
                let b = rng.random_range(a + 1..n);
                services[a].calls.retain(|&c| c != b);
                if !services[a].publishes.contains(&b) {
                    services[a].publishes.push(b);
                }
            }
        }
        Topology { services }
    }

    /// Gives service `i` a database (for a slow-database fault behind it).
    pub fn give_database(&mut self, i: usize) {
        self.services[i].db = true;
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.services[i].name
    }

    /// Services a request can reach (the gateway excluded), the candidates for a fault.
    pub fn reachable(&self) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        let mut stack = vec![0];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let s = &self.services[i];
            stack.extend(s.calls.iter().chain(&s.publishes));
        }
        (1..self.len()).filter(|&i| seen[i]).collect()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub kind: FaultKind,
    pub target: usize,
    pub start_s: u64,
    pub end_s: u64,
}

/// One case's traffic, second by second.
pub struct Traffic {
    rng: StdRng,
    pub topo: Topology,
    pub fault: Option<Fault>,
    t0_ns: u64,
    /// Requests per second at the gateway.
    rate: f64,
}

#[derive(Default)]
struct Batch {
    spans: BTreeMap<usize, Vec<Span>>,
    logs: BTreeMap<usize, Vec<LogRecord>>,
    failed: bool,
}

/// What a visit of a service returned to its caller.
struct Reply {
    end_ns: u64,
    failed: bool,
    wrong: bool,
}

impl Traffic {
    pub fn new(seed: u64, topo: Topology, fault: Option<Fault>, t0_ns: u64, rate: f64) -> Self {
        Traffic {
            rng: StdRng::seed_from_u64(seed),
            topo,
            fault,
            t0_ns,
            rate,
        }
    }

    fn id<const N: usize>(&mut self) -> Vec<u8> {
        let mut b = [0u8; N];
        self.rng.fill(&mut b[..]);
        b[0] |= 1;
        b.to_vec()
    }

    fn faulty(&self, i: usize, second: u64, kind: FaultKind) -> bool {
        self.fault.is_some_and(|f| {
            f.target == i && f.kind == kind && (f.start_s..f.end_s).contains(&second)
        })
    }

    fn lognormal(&mut self, median: f64) -> f64 {
        let z: f64 = (0..4)
            .map(|_| self.rng.random_range(-1.0..1.0))
            .sum::<f64>()
            * 0.3;
        median * z.exp()
    }

    fn resource(&self, i: usize) -> Option<Resource> {
        let s = &self.topo.services[i];
        Some(Resource {
            attributes: vec![
                kv("service.name", &s.name),
                kv("k8s.pod.name", &format!("{}-7c9d-{i:02}", s.name)),
                kv("k8s.node.name", &format!("node-{}", s.node)),
                kv("host.name", &format!("node-{}", s.node)),
            ],
            ..Default::default()
        })
    }

    fn status_attrs(&self, i: usize, failed: bool) -> (Vec<KeyValue>, Option<Status>) {
        let s = &self.topo.services[i];
        let attrs = if s.grpc {
            vec![int("rpc.grpc.status_code", if failed { 13 } else { 0 })]
        } else {
            vec![int(
                "http.response.status_code",
                if failed { 500 } else { 200 },
            )]
        };
        let status = (s.sets_status && failed).then(|| Status {
            code: 2,
            message: "internal error".into(),
        });
        (attrs, status)
    }

    fn log(b: &mut Batch, i: usize, t: u64, severity: i32, body: String, ctx: (&[u8], &[u8])) {
        b.logs.entry(i).or_default().push(LogRecord {
            time_unix_nano: t,
            observed_time_unix_nano: t,
            severity_number: severity,
            severity_text: match severity {
                17.. => "ERROR",
                13.. => "WARN",
                _ => "INFO",
            }
            .into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body)),
            }),
            trace_id: ctx.0.to_vec(),
            span_id: ctx.1.to_vec(),
            ..Default::default()
        });
    }

    /// Service `i` serving a call that reaches it at `start`, as a child of `parent`.
    #[allow(clippy::too_many_arguments)]
    fn visit(
        &mut self,
        b: &mut Batch,
        second: u64,
        i: usize,
        trace: &[u8],
        parent: &[u8],
        start: u64,
        kind: i32,
        depth: usize,
    ) -> Reply {
        let id = self.id::<8>();
        let svc = self.topo.services[i].clone();
        let mut work = self.lognormal(svc.work_ms);
        if self.faulty(i, second, FaultKind::Cpu) {
            work *= 5.0;
        }
        if self.faulty(i, second, FaultKind::Memory) {
            // GC pauses: some requests stall.
            if self.rng.random_bool(0.5) {
                work += self.rng.random_range(80.0..300.0);
            }
        }
        let mut t = start + (work * 0.4 * MS as f64) as u64;
        let mut failed = false;
        let mut wrong = false;
        let mut children: Vec<usize> = Vec::new();
        for &c in &svc.calls {
            // Fan-out: each call is made by part of the requests, fewer further down.
            if depth < 6 && self.rng.random_bool(if depth == 0 { 0.5 } else { 0.6 }) {
                children.push(c);
            }
        }
        for c in children {
            let call = self.id::<8>();
            let mut net = self.rng.random_range(0.2..1.0) * MS as f64;
            if self.faulty(c, second, FaultKind::NetworkDelay) {
                net += self.rng.random_range(150.0..250.0) * MS as f64;
            }
            let call_start = t;
            let served = self.visit(
                b,
                second,
                c,
                trace,
                &call,
                call_start + net as u64 / 2,
                2,
                depth + 1,
            );
            let call_end = served.end_ns + net as u64 / 2;
            let mut call_attrs = vec![kv("peer.service", &self.topo.services[c].name)];
            let mut events = Vec::new();
            let call_failed = served.failed || served.wrong;
            if served.wrong {
                events.push(span::Event {
                    time_unix_nano: call_end,
                    name: "exception".into(),
                    attributes: vec![
                        kv("exception.type", "ValueError"),
                        kv("exception.message", "response failed validation"),
                    ],
                    ..Default::default()
                });
            }
            let (attrs, status) = self.status_attrs(i, call_failed);
            call_attrs.extend(attrs);
            b.spans.entry(i).or_default().push(Span {
                trace_id: trace.to_vec(),
                span_id: call.clone(),
                parent_span_id: id.clone(),
                name: format!("call {}", self.topo.services[c].name),
                kind: 3,
                start_time_unix_nano: call_start,
                end_time_unix_nano: call_end,
                attributes: call_attrs,
                events,
                status,
                ..Default::default()
            });
            if call_failed {
                Self::log(
                    b,
                    i,
                    call_end,
                    13,
                    format!(
                        "call to {} failed; answering with an error",
                        self.topo.services[c].name
                    ),
                    (trace, &id),
                );
                failed = true;
            }
            t = call_end;
        }
        for &c in &svc.publishes {
            // Publish and return; the consumer works later in the same trace.
            let msg = self.id::<8>();
            b.spans.entry(i).or_default().push(Span {
                trace_id: trace.to_vec(),
                span_id: msg.clone(),
                parent_span_id: id.clone(),
                name: format!("publish {}", self.topo.services[c].name),
                kind: 4,
                start_time_unix_nano: t,
                end_time_unix_nano: t + MS,
                ..Default::default()
            });
            let mut lag = self.rng.random_range(5.0..40.0) * MS as f64;
            if self.faulty(c, second, FaultKind::NetworkDelay) {
                lag += 200.0 * MS as f64;
            }
            self.visit(b, second, c, trace, &msg, t + MS + lag as u64, 5, depth + 1);
            t += MS;
        }
        if svc.db {
            let mut q = self.lognormal(3.0);
            if self.faulty(i, second, FaultKind::SlowDatabase) {
                q *= 40.0;
            }
            let dbs = self.id::<8>();
            b.spans.entry(i).or_default().push(Span {
                trace_id: trace.to_vec(),
                span_id: dbs,
                parent_span_id: id.clone(),
                name: "SELECT".into(),
                kind: 3,
                start_time_unix_nano: t,
                end_time_unix_nano: t + (q * MS as f64) as u64,
                attributes: vec![kv("db.system", "postgresql")],
                ..Default::default()
            });
            t += (q * MS as f64) as u64;
        }
        t += (work * 0.6 * MS as f64) as u64;
        if self.faulty(i, second, FaultKind::Exception) && self.rng.random_bool(0.5) {
            failed = true;
            Self::log(
                b,
                i,
                t,
                17,
                "unhandled IllegalStateException in handler\n  at Handler.run(Handler.java:42)"
                    .into(),
                (trace, &id),
            );
        }
        if self.faulty(i, second, FaultKind::WrongValue) && self.rng.random_bool(0.5) {
            wrong = true;
        }
        // Noise: rare errors anywhere.
        if self.rng.random_bool(0.0005) {
            failed = true;
            Self::log(b, i, t, 17, "timeout talking to cache".into(), (trace, &id));
        }
        let (attrs, status) = self.status_attrs(i, failed);
        let mut events = Vec::new();
        if failed && self.faulty(i, second, FaultKind::Exception) {
            events.push(span::Event {
                time_unix_nano: t,
                name: "exception".into(),
                attributes: vec![kv("exception.type", "IllegalStateException")],
                ..Default::default()
            });
        }
        b.spans.entry(i).or_default().push(Span {
            trace_id: trace.to_vec(),
            span_id: id.clone(),
            parent_span_id: parent.to_vec(),
            name: format!(
                "{} /{}",
                if kind == 5 { "consume" } else { "GET" },
                svc.name
            ),
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: t,
            attributes: attrs,
            events,
            status,
            ..Default::default()
        });
        if self.rng.random_bool(0.2) {
            Self::log(
                b,
                i,
                t,
                9,
                format!("handled request in {:.0} ms", (t - start) as f64 / 1e6),
                (trace, &id),
            );
        }
        Reply {
            end_ns: t,
            failed,
            wrong,
        }
    }

    fn gauge(name: &str, unit: &str, t: u64, v: f64) -> Metric {
        Metric {
            name: name.into(),
            unit: unit.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: t,
                    value: Some(number_data_point::Value::AsDouble(v)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        }
    }

    /// Second `s` of the case.
    pub fn second(&mut self, s: u64) -> Second {
        let mut b = Batch::default();
        let base = self.t0_ns + s * S;
        let n = {
            let whole = self.rate.floor() as usize;
            whole + usize::from(self.rng.random_bool(self.rate - whole as f64))
        };
        let mut failed = 0;
        for _ in 0..n {
            let trace = self.id::<16>();
            let start = base + self.rng.random_range(0..S);
            let r = self.visit(&mut b, s, 0, &trace, &[], start, 2, 0);
            b.failed |= r.failed;
            failed += usize::from(r.failed || r.wrong);
        }
        let mut out = Second {
            failed_traces: failed,
            ..Second::default()
        };
        for (i, spans) in std::mem::take(&mut b.spans) {
            out.spans += spans.len();
            out.traces.resource_spans.push(ResourceSpans {
                resource: self.resource(i),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        for (i, logs) in std::mem::take(&mut b.logs) {
            out.logs.resource_logs.push(ResourceLogs {
                resource: self.resource(i),
                scope_logs: vec![ScopeLogs {
                    log_records: logs,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        for i in 0..self.topo.len() {
            let every = self.topo.services[i].metrics_every_s;
            if !s.is_multiple_of(every) {
                continue;
            }
            let t = base;
            let mut cpu = 0.2 + self.rng.random_range(-0.03..0.03);
            let mut mem = 300e6 + self.rng.random_range(-5e6..5e6);
            let mut gc = 2.0 + self.rng.random_range(-0.5..0.5);
            if self.faulty(i, s, FaultKind::Cpu) {
                cpu = 0.95;
            }
            if self.faulty(i, s, FaultKind::Memory) {
                let f = self.fault.expect("faulty");
                mem += (s - f.start_s) as f64 * 4e6 + 200e6;
                gc = 60.0 + self.rng.random_range(-10.0..10.0);
            }
            let node = self.topo.services[i].node;
            let metrics = vec![
                Self::gauge("process.cpu.utilization", "1", t, cpu),
                Self::gauge("process.memory.usage", "By", t, mem),
                Self::gauge("jvm.gc.pause", "ms", t, gc),
                // Copies of the node's metrics on every pod of it.
                Self::gauge(
                    "k8s.node.cpu.utilization",
                    "1",
                    t,
                    0.4 + node as f64 * 0.05 + self.rng.random_range(-0.05..0.05),
                ),
                Self::gauge(
                    "k8s.node.memory.usage",
                    "By",
                    t,
                    8e9 + self.rng.random_range(-1e8..1e8),
                ),
            ];
            out.metrics.resource_metrics.push(ResourceMetrics {
                resource: self.resource(i),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        out
    }
}

fn int(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}
