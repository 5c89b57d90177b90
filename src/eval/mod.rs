//! `weft eval`: how often the incident detector finds a fault and ranks its service first, on
//! generated, labelled fault cases run end to end through a real server — OTLP/HTTP in, each
//! case as its own tenant, `GET /api/v1/analyze` over the case's window out — plus fault-free
//! hours that count false incidents. Prints AS@1/AS@3/AS@5 (the share of cases whose faulty
//! service is within the top k suspected origins of the incident found over the fault) and
//! MRR per fault type and per topology, the detection delay (incident start less fault
//! start) and false incidents per fault-free hour, as Markdown.
//!
//! The generator (`gen`) draws a new topology per case; nothing in the ranking knows it.
//! Nothing here is used by the server.

pub mod gen;

use crate::api::auth::TENANT_HEADER;
use crate::model::Signal;
use gen::{Fault, FaultKind, Shape, Topology, Traffic};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;

const S: u64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub cases: usize,
    pub seed: u64,
    /// Fault-free hours.
    pub quiet_hours: u64,
    /// Requests per second at the gateway.
    pub rate: f64,
    /// Seconds per case; the fault starts in its second half.
    pub case_secs: u64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            cases: 60,
            seed: 7,
            quiet_hours: 2,
            rate: 3.0,
            case_secs: 480,
        }
    }
}

/// One case's outcome.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub shape: Shape,
    pub kind: FaultKind,
    pub target: String,
    /// 1-based rank of the faulty service among the suspected origins; `None` when no
    /// incident covered the fault or it was not ranked.
    pub rank: Option<usize>,
    pub detected: bool,
    pub delay_s: Option<f64>,
    pub top: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct EvalReport {
    pub cases: Vec<CaseResult>,
    pub quiet_hours: u64,
    pub false_incidents: usize,
}

/// A group's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub n: usize,
    pub as1: f64,
    pub as3: f64,
    pub as5: f64,
    pub mrr: f64,
    pub detected: f64,
    pub median_delay_s: Option<f64>,
}

pub fn figures<'a>(cases: impl Iterator<Item = &'a CaseResult>) -> Figures {
    let cases: Vec<&CaseResult> = cases.collect();
    let n = cases.len();
    if n == 0 {
        return Figures::default();
    }
    let at = |k: usize| {
        cases
            .iter()
            .filter(|c| c.rank.is_some_and(|r| r <= k))
            .count() as f64
            / n as f64
    };
    let mut delays: Vec<f64> = cases.iter().filter_map(|c| c.delay_s).collect();
    Figures {
        n,
        as1: at(1),
        as3: at(3),
        as5: at(5),
        mrr: cases
            .iter()
            .map(|c| c.rank.map_or(0.0, |r| 1.0 / r as f64))
            .sum::<f64>()
            / n as f64,
        detected: cases.iter().filter(|c| c.detected).count() as f64 / n as f64,
        median_delay_s: crate::correlate::stats::median(&mut delays),
    }
}

impl EvalReport {
    /// The Markdown tables.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let row = |name: &str, f: Figures| {
            format!(
                "| {name} | {} | {:.0} % | {:.0} % | {:.0} % | {:.2} | {:.0} % | {} |\n",
                f.n,
                f.as1 * 100.0,
                f.as3 * 100.0,
                f.as5 * 100.0,
                f.mrr,
                f.detected * 100.0,
                f.median_delay_s.map_or("–".into(), |d| format!("{d:.0} s")),
            )
        };
        let head = "| | cases | AS@1 | AS@3 | AS@5 | MRR | detected | median delay |\n|---|---|---|---|---|---|---|---|\n";
        out.push_str(head);
        for k in FaultKind::ALL {
            out.push_str(&row(
                k.name(),
                figures(self.cases.iter().filter(|c| c.kind == k)),
            ));
        }
        for s in Shape::ALL {
            out.push_str(&row(
                s.name(),
                figures(self.cases.iter().filter(|c| c.shape == s)),
            ));
        }
        out.push_str(&row("**all**", figures(self.cases.iter())));
        out.push_str(&format!(
            "\nFalse incidents: {} in {} fault-free hour(s) ({:.2} per hour).\n",
            self.false_incidents,
            self.quiet_hours,
            self.false_incidents as f64 / self.quiet_hours.max(1) as f64
        ));
        let mut misses: BTreeMap<String, usize> = BTreeMap::new();
        for c in self.cases.iter().filter(|c| c.rank != Some(1)) {
            *misses
                .entry(format!(
                    "{} ranked {}",
                    c.kind.name(),
                    c.top.as_deref().unwrap_or("nothing")
                ))
                .or_default() += 1;
        }
        if !misses.is_empty() {
            out.push_str(
                "\nNot first (fault: what ranked first instead, `gateway` is the entry):\n\n",
            );
            for (m, n) in misses {
                let m = m.replace(|c: char| c.is_ascii_digit(), "");
                out.push_str(&format!("- {m} ×{n}\n"));
            }
        }
        out
    }
}

fn get(
    client: &reqwest::blocking::Client,
    base: &str,
    tenant: &str,
    path: &str,
) -> Result<Value, String> {
    client
        .get(format!("{base}{path}"))
        .header(TENANT_HEADER, tenant)
        .send()
        .and_then(|r| r.json())
        .map_err(|e| format!("{path}: {e}"))
}

/// Sends one case (or a quiet hour) as `tenant`; returns the spans sent.
fn send(
    client: &reqwest::blocking::Client,
    base: &str,
    tenant: &str,
    traffic: &mut Traffic,
    secs: u64,
) -> Result<u64, String> {
    let mut spans = 0;
    for s in 0..secs {
        let second = traffic.second(s);
        spans += second.spans as u64;
        crate::demo::send(client, base, Some(tenant), &second)?;
    }
    Ok(spans)
}

fn analyze(
    client: &reqwest::blocking::Client,
    base: &str,
    tenant: &str,
    start_ns: u64,
    end_ns: u64,
) -> Result<Vec<Value>, String> {
    let v = get(
        client,
        base,
        tenant,
        &format!("/api/v1/analyze?start={start_ns}&end={end_ns}"),
    )?;
    v["incidents"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("analyze: unexpected answer {v}"))
}

fn ns(v: &Value) -> u64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Runs the suite against the weft at `base` (with the live detector off, so only
/// `analyze` judges). Case `k` has fault kind `k mod 6` and shape `(k + k / 6) mod 3`, so any
/// six consecutive cases cover every kind and eighteen every pair.
pub fn run(
    base: &str,
    opts: &EvalOptions,
    mut progress: impl FnMut(&str),
) -> Result<EvalReport, String> {
    // An analysis of a fault-free hour reads every watched series of the hour.
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .map_err(|e| e.to_string())?;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut report = EvalReport {
        quiet_hours: opts.quiet_hours,
        ..EvalReport::default()
    };
    let mut spans_sent = 0;
    let mut pending = Vec::new();
    for k in 0..opts.cases {
        let kind = FaultKind::ALL[k % 6];
        let shape = Shape::ALL[(k + k / 6) % 3];
        let mut topo = Topology::random(shape, &mut rng);
        let candidates = topo.reachable();
        let target = candidates[rng.random_range(0..candidates.len())];
        if kind == FaultKind::SlowDatabase {
            topo.give_database(target);
        }
        let start_s = opts.case_secs / 2 + rng.random_range(0..opts.case_secs / 8);
        let fault = Fault {
            kind,
            target,
            start_s,
            end_s: start_s + rng.random_range(60..opts.case_secs / 3),
        };
        let t0 = crate::now_ns() - (opts.case_secs + 60) * S;
        let tenant = format!("eval-{}-{k}", opts.seed);
        let name = topo.name(target).to_string();
        let mut traffic = Traffic::new(
            opts.seed * 1000 + k as u64,
            topo,
            Some(fault),
            t0,
            opts.rate,
        );
        spans_sent += send(&client, base, &tenant, &mut traffic, opts.case_secs)?;
        pending.push((shape, kind, name, tenant, t0, fault));
    }
    let mut quiet = Vec::new();
    for h in 0..opts.quiet_hours {
        let topo = Topology::random(Shape::ALL[h as usize % 3], &mut rng);
        let t0 = crate::now_ns() - 3660 * S;
        let tenant = format!("quiet-{}-{h}", opts.seed);
        let mut traffic = Traffic::new(opts.seed * 1000 + 900 + h, topo, None, t0, opts.rate);
        spans_sent += send(&client, base, &tenant, &mut traffic, 3600)?;
        quiet.push((tenant, t0));
    }
    progress(&format!(
        "sent {spans_sent} spans; waiting until they are searchable"
    ));
    crate::bench::wait_indexed(base, Signal::Spans, spans_sent);
    for (shape, kind, target, tenant, t0, fault) in pending {
        let found = analyze(&client, base, &tenant, t0, t0 + opts.case_secs * S)?;
        let (fs, fe) = (t0 + fault.start_s * S, t0 + fault.end_s * S);
        // The incident over the fault: the first whose window overlaps it.
        let hit = found
            .iter()
            .filter(|i| {
                ns(&i["start_time_unix_nano"]) <= fe && ns(&i["end_time_unix_nano"]) + 30 * S >= fs
            })
            .min_by_key(|i| ns(&i["start_time_unix_nano"]));
        let origins: Vec<String> = hit
            .and_then(|i| i["suspected_origins"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|o| o["service"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let r = CaseResult {
            shape,
            kind,
            rank: origins.iter().position(|o| *o == target).map(|p| p + 1),
            detected: hit.is_some(),
            delay_s: hit.map(|i| (ns(&i["start_time_unix_nano"]) as f64 - fs as f64) / 1e9),
            top: origins.first().cloned(),
            target,
        };
        progress(&format!(
            "{} {} {}: rank {:?}, first {:?}",
            shape.name(),
            kind.name(),
            r.target,
            r.rank,
            r.top
        ));
        report.cases.push(r);
    }
    for (tenant, t0) in quiet {
        report.false_incidents += analyze(&client, base, &tenant, t0, t0 + 3600 * S)?.len();
    }
    Ok(report)
}

/// `weft eval`: starts a server from this binary (live detector off) and runs the suite.
pub fn run_served(opts: &EvalOptions) -> Result<EvalReport, String> {
    let served = crate::bench::Served::start_with("wal", &[("WEFT_INCIDENTS_ENABLED", "false")])?;
    run(&served.http, opts, |line| eprintln!("{line}"))
}
