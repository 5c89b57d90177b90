//! The signals watched for incidents, per service: RED error rate and p95 latency derived
//! from spans, the rate of error logs, and the tenant's own metric series. Each is evaluated
//! on a step grid aligned to whole steps, so an anomaly keeps its start time from one look to
//! the next.

use super::metrics::{self, Anomaly};
use super::series::{Selector, Series, Spec, SERVICE_LABEL};
use super::stats::{Direction, Thresholds};
use crate::config::IncidentSettings;
use crate::index::{
    Filter, IndexError, Store, RED_DURATION, RED_ERRORS, RED_REQUESTS, SEVERITY_ERROR,
};
use crate::model::{Exemplar, Signal, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Requests a step needs for its latency quantile to be judged.
const MIN_LATENCY_REQUESTS: f64 = 10.0;

/// Quantile of the RED duration histogram that is watched.
pub const LATENCY_QUANTILE: f64 = 0.95;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watched {
    /// `errors`, `latency`, `error_logs` or `metric`.
    pub signal: String,
    pub service: String,
    /// The series as a selector (`error_logs{…}` for log counts, which are not stored series).
    pub series: String,
    pub anomaly: Anomaly,
    /// The unit of the series' values (baseline and peak).
    #[serde(default)]
    pub unit: String,
    /// `rise` or `drop`, from the baseline.
    #[serde(default)]
    pub direction: String,
    /// Exemplars of the series within the anomaly, highest value first (at most 5).
    pub exemplars: Vec<Exemplar>,
}

/// The whole steps within `[start_ns, end_ns]`, aligned to multiples of the step. A step
/// still filling at the end is left out: its partial rate or quantile would look like a drop
/// or a spike.
pub fn grid(start_ns: u64, end_ns: u64, step_ns: u64) -> Spec {
    Spec {
        start_ns: start_ns - start_ns % step_ns,
        end_ns: (end_ns - end_ns % step_ns).saturating_sub(1).max(start_ns),
        step_ns,
        quantiles: vec![LATENCY_QUANTILE],
        by: Some(vec![SERVICE_LABEL.to_string()]),
    }
}

fn watched(
    signal: &str,
    series: &Series,
    spec: &Spec,
    t: &Thresholds,
    text: String,
    out: &mut Vec<Watched>,
) {
    let service = series
        .labels
        .get(SERVICE_LABEL)
        .cloned()
        .unwrap_or_default();
    for a in metrics::anomalies(series, spec, t) {
        let mut exemplars: Vec<Exemplar> = series
            .exemplars
            .iter()
            .filter(|e| {
                e.time_ns + spec.step_ns >= a.start_ns && e.time_ns <= a.end_ns + 2 * spec.step_ns
            })
            .cloned()
            .collect();
        exemplars.sort_by(|a, b| {
            b.value
                .total_cmp(&a.value)
                .then(a.trace_id.cmp(&b.trace_id))
                .then(a.span_id.cmp(&b.span_id))
        });
        // The same exemplar is often carried by several points (a histogram and its count).
        let mut seen = std::collections::BTreeSet::new();
        exemplars.retain(|e| e.trace_id.is_none() || seen.insert((e.trace_id, e.span_id)));
        exemplars.truncate(5);
        out.push(Watched {
            signal: signal.to_string(),
            service: service.clone(),
            series: text.clone(),
            unit: series.unit.clone(),
            direction: if a.score < 0.0 { "drop" } else { "rise" }.into(),
            anomaly: a,
            exemplars,
        });
    }
}

/// One watched series, with the thresholds it is judged by.
#[derive(Debug, Clone)]
pub struct Watch {
    pub signal: &'static str,
    /// The series as a selector (`error_logs{…}` for log counts).
    pub text: String,
    pub series: Series,
    pub thresholds: Thresholds,
}

/// What one look found.
#[derive(Debug, Default)]
pub struct Look {
    pub anomalies: Vec<Watched>,
    /// Application metrics not looked at: more points than `incidents.max_points` allowed.
    pub skipped: Vec<String>,
}

/// Mean of a series' values per second over the steps it has, 0 when it has none.
fn mean_rate(points: &[(u64, f64)]) -> f64 {
    if points.is_empty() {
        return 0.0;
    }
    points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64
}

/// The smallest rise of an error rate that counts, for a service handling `volume` per
/// second: the configured floor, lowered for a service with little traffic to a twentieth of
/// its own volume, but never below one event per step. A fixed floor would hide every error
/// of a service at ordinary traffic (half of 0.8 requests a second failing is 0.4/s).
fn error_floor(configured: f64, volume: f64, step_secs: f64) -> f64 {
    configured.min((0.05 * volume).max(1.0 / step_secs))
}

/// Whether a metric describes a node or the whole host rather than the service's own
/// process: per-pod copies of such metrics are watched after the services' own series.
fn node_level(name: &str, labels: &super::series::Labels) -> bool {
    const PREFIXES: [&str; 5] = ["k8s.node.", "node_", "system.", "machine_", "host."];
    PREFIXES.iter().any(|p| name.starts_with(p))
        || (labels.contains_key("k8s.node.name") && !labels.contains_key("k8s.pod.name"))
}

/// The watched series' values in the window, of `services` only when given.
fn collect(
    store: &Store,
    tenant: &TenantId,
    services: Option<&[String]>,
    spec: &Spec,
    settings: &IncidentSettings,
    base: &Thresholds,
    with_app_metrics: bool,
) -> Result<(Vec<Watch>, Vec<String>), IndexError> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let keep = |s: &Series| {
        services.is_none_or(|list| {
            s.labels
                .get(SERVICE_LABEL)
                .is_some_and(|v| list.contains(v))
        })
    };
    let up = |min_absolute_change: f64| Thresholds {
        direction: Direction::Up,
        min_absolute_change,
        ..base.clone()
    };
    let step_secs = spec.step_ns as f64 / 1e9;
    let service_of = |s: &Series| s.labels.get(SERVICE_LABEL).cloned().unwrap_or_default();
    let query = |name: &str| -> Result<Vec<Series>, IndexError> {
        let selector = Selector::exact(name, &Default::default());
        Ok(metrics::query(store, tenant, &selector, spec)?
            .into_iter()
            .filter(keep)
            .collect())
    };
    // Requests per service: the volume error floors are relative to, and the steps at which
    // a service with no error yet has an error rate of zero. (Error points exist only for
    // steps with errors, and a series without a baseline could never rise from zero.)
    let requests: BTreeMap<String, Series> = query(RED_REQUESTS)?
        .into_iter()
        .map(|s| (service_of(&s), s))
        .collect();
    let mut errors: BTreeMap<String, Series> = query(RED_ERRORS)?
        .into_iter()
        .map(|s| (service_of(&s), s))
        .collect();
    for (service, req) in &requests {
        let e = errors.entry(service.clone()).or_insert_with(|| Series {
            points: Vec::new(),
            exemplars: Vec::new(),
            ..req.clone()
        });
        e.name = RED_ERRORS.to_string();
        e.kind = "rate";
        let have: std::collections::BTreeSet<u64> = e.points.iter().map(|p| p.0).collect();
        e.points.extend(
            req.points
                .iter()
                .filter(|p| !have.contains(&p.0))
                .map(|p| (p.0, 0.0)),
        );
        e.points.sort_by_key(|p| p.0);
    }
    for (service, s) in errors {
        let volume = requests.get(&service).map_or(0.0, |r| mean_rate(&r.points));
        out.push(Watch {
            signal: "errors",
            text: Selector::exact(RED_ERRORS, &s.labels).to_text(),
            thresholds: up(error_floor(settings.min_errors_per_sec, volume, step_secs)),
            series: s,
        });
    }
    for mut s in query(RED_DURATION)? {
        // A step's p95 of a handful of requests is one slow request, or a histogram bucket
        // boundary crossed: no verdict on it (a gap, not a value).
        let counts: BTreeMap<u64, f64> = requests
            .get(&service_of(&s))
            .map(|r| r.points.iter().map(|p| (p.0, p.1 * step_secs)).collect())
            .unwrap_or_default();
        s.points
            .retain(|p| counts.get(&p.0).is_some_and(|n| *n >= MIN_LATENCY_REQUESTS));
        out.push(Watch {
            signal: "latency",
            text: Selector::exact(RED_DURATION, &s.labels).to_text(),
            series: s,
            thresholds: up(settings.min_latency_change_ms),
        });
    }
    let logs = Filter {
        services: services.map(<[String]>::to_vec).unwrap_or_default(),
        start_ns: spec.start_ns,
        end_ns: spec.end_ns,
        ..Filter::default()
    };
    let all_logs = store.count_by_service(Signal::Logs, tenant, &logs, spec.step_ns)?;
    let error_logs = Filter {
        min_severity: Some(SEVERITY_ERROR),
        ..logs
    };
    for (service, counts) in
        store.count_by_service(Signal::Logs, tenant, &error_logs, spec.step_ns)?
    {
        let per_sec =
            |c: &[u64]| c.iter().sum::<u64>() as f64 / (c.len().max(1) as f64 * step_secs);
        let volume = all_logs.get(&service).map_or(0.0, |c| per_sec(c));
        let series = Series {
            name: "error_logs".into(),
            kind: "rate",
            unit: "{log}/s".into(),
            labels: [(SERVICE_LABEL.to_string(), service.clone())].into(),
            points: counts
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        spec.start_ns + i as u64 * spec.step_ns,
                        *c as f64 / step_secs,
                    )
                })
                .collect(),
            exemplars: Vec::new(),
        };
        let text = format!("error_logs{{{SERVICE_LABEL}={service:?}}}");
        out.push(Watch {
            signal: "error_logs",
            text,
            series,
            thresholds: up(error_floor(settings.min_errors_per_sec, volume, step_secs)),
        });
    }
    if with_app_metrics {
        let (found, s) = app_metrics(store, tenant, services, spec, settings)?;
        skipped = s;
        out.extend(found.into_iter().map(|s| Watch {
            signal: "metric",
            text: Selector::exact(&s.name, &s.labels).to_text(),
            series: s,
            thresholds: base.clone(),
        }));
    }
    Ok((out, skipped))
}

/// The tenant's own metric series, at most `incidents.max_series` of them, chosen by
/// priority rather than name order: each service's own series before per-pod copies of node
/// metrics, series without a service last, and within each class round-robin across services
/// (every service's first series, then every service's second, …).
fn app_metrics(
    store: &Store,
    tenant: &TenantId,
    services: Option<&[String]>,
    spec: &Spec,
    settings: &IncidentSettings,
) -> Result<(Vec<Series>, Vec<String>), IndexError> {
    let mut skipped = Vec::new();
    let mut points = settings.max_points;
    let mut names: Vec<String> = store
        .metric_names(tenant, spec.start_ns, spec.end_ns)?
        .into_iter()
        .filter(|n| !n.starts_with("weft."))
        .collect();
    // Node-level names are read last, so they cannot spend the point budget first.
    names.sort_by_key(|n| (node_level(n, &Default::default()), n.clone()));
    let mut found = Vec::new();
    for name in &names {
        // One service asked for: let the index filter by it.
        let selector = match services {
            Some([one]) => {
                Selector::exact(name, &[(SERVICE_LABEL.to_string(), one.clone())].into())
            }
            _ => Selector::exact(name, &Default::default()),
        };
        let per_series = Spec {
            by: None,
            ..spec.clone()
        };
        // A metric with more points than the look has left is skipped, not an error: one
        // huge metric must not blind the detector to everything else.
        match metrics::query_within(store, tenant, &selector, &per_series, points) {
            Ok((series, read)) => {
                points -= read;
                found.extend(series);
            }
            Err(IndexError::TooManyPoints { .. }) => skipped.push(name.clone()),
            Err(e) => return Err(e),
        }
    }
    found.retain(|s| {
        services.is_none_or(|list| {
            s.labels
                .get(SERVICE_LABEL)
                .is_some_and(|v| list.contains(v))
        })
    });
    let class = |s: &Series| match s.labels.get(SERVICE_LABEL).filter(|v| !v.is_empty()) {
        Some(_) if !node_level(&s.name, &s.labels) => 0,
        Some(_) => 1,
        None => 2,
    };
    let mut keyed: Vec<((u8, usize, String, String), Series)> = Vec::with_capacity(found.len());
    let mut nth: BTreeMap<(u8, String), usize> = BTreeMap::new();
    found.sort_by_cached_key(|s| Selector::exact(&s.name, &s.labels).to_text());
    for s in found {
        let c = class(&s);
        let service = s.labels.get(SERVICE_LABEL).cloned().unwrap_or_default();
        let n = nth.entry((c, service.clone())).or_default();
        keyed.push((
            (
                c,
                *n,
                service,
                Selector::exact(&s.name, &s.labels).to_text(),
            ),
            s,
        ));
        *n += 1;
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((
        keyed
            .into_iter()
            .take(settings.max_series)
            .map(|(_, s)| s)
            .collect(),
        skipped,
    ))
}

fn detect<'a>(watches: impl Iterator<Item = (&'a Watch, Spec)>) -> Vec<Watched> {
    let mut out = Vec::new();
    for (w, spec) in watches {
        watched(
            w.signal,
            &w.series,
            &spec,
            &w.thresholds,
            w.text.clone(),
            &mut out,
        );
    }
    out
}

/// Anomalies of every watched signal in the window, of `services` only when given.
pub fn anomalies(
    store: &Store,
    tenant: &TenantId,
    services: Option<&[String]>,
    spec: &Spec,
    settings: &IncidentSettings,
    base: &Thresholds,
    with_app_metrics: bool,
) -> Result<Look, IndexError> {
    let (watches, skipped) = collect(
        store,
        tenant,
        services,
        spec,
        settings,
        base,
        with_app_metrics,
    )?;
    Ok(Look {
        anomalies: detect(watches.iter().map(|w| (w, spec.clone()))),
        skipped,
    })
}

/// The watched series of one tenant kept between looks: each look reads only the steps that
/// completed since the last one, and again the last `max_lateness` of them (a record may
/// arrive that late and still count), so its cost follows new data, not the look-back.
#[derive(Debug, Default)]
pub struct Cache {
    /// Steps before this are read.
    until_ns: u64,
    watches: BTreeMap<String, Watch>,
}

impl Cache {
    /// Reads the new (and the late) steps of `spec` into the cache, forgets those before it
    /// unless pinned, and judges every watched series.
    pub fn look(
        &mut self,
        store: &Store,
        tenant: &TenantId,
        spec: &Spec,
        settings: &IncidentSettings,
        base: &Thresholds,
    ) -> Result<Look, IndexError> {
        let contiguous = self.until_ns > spec.start_ns && self.until_ns <= spec.end_ns + 1;
        if !contiguous {
            self.watches.clear();
            self.until_ns = spec.start_ns;
        }
        let late = settings.max_lateness_secs * 1_000_000_000;
        let from = self.until_ns.saturating_sub(late);
        let from = (from - from % spec.step_ns).max(spec.start_ns);
        let fresh = Spec {
            start_ns: from,
            ..spec.clone()
        };
        let (watches, skipped) = collect(store, tenant, None, &fresh, settings, base, true)?;
        for w in self.watches.values_mut() {
            w.series
                .points
                .retain(|p| p.0 >= spec.start_ns && p.0 < from);
            w.series
                .exemplars
                .retain(|e| e.time_ns >= spec.start_ns && e.time_ns < from);
        }
        for w in watches {
            match self.watches.get_mut(&w.text) {
                Some(known) => {
                    known.series.points.extend(w.series.points);
                    known.series.exemplars.extend(w.series.exemplars);
                    known.thresholds = w.thresholds;
                }
                None => {
                    self.watches.insert(w.text.clone(), w);
                }
            }
        }
        self.until_ns = spec.end_ns + 1;
        self.watches.retain(|_, w| !w.series.points.is_empty());
        Ok(Look {
            anomalies: detect(self.watches.values().map(|w| (w, spec.clone()))),
            skipped,
        })
    }
}
