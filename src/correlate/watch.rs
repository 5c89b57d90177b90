//! The signals watched for incidents, per service: RED error rate and p95 latency derived
//! from spans, the rate of error logs, and the tenant's own metric series. Each is evaluated
//! on a step grid aligned to whole steps, so an anomaly keeps its start time from one look to
//! the next.

use super::metrics::{self, Anomaly};
use super::series::{Selector, Series, Spec, SERVICE_LABEL};
use super::stats::{Direction, Thresholds};
use crate::config::IncidentSettings;
use crate::index::{Filter, IndexError, Store, RED_DURATION, RED_ERRORS, SEVERITY_ERROR};
use crate::model::{Exemplar, Signal, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    for (name, signal, floor) in [
        (RED_ERRORS, "errors", settings.min_errors_per_sec),
        (RED_DURATION, "latency", settings.min_latency_change_ms),
    ] {
        let selector = Selector::exact(name, &Default::default());
        for s in metrics::query(store, tenant, &selector, spec)?
            .into_iter()
            .filter(keep)
        {
            out.push(Watch {
                signal,
                text: Selector::exact(name, &s.labels).to_text(),
                series: s,
                thresholds: up(floor),
            });
        }
    }
    let logs = Filter {
        services: services.map(<[String]>::to_vec).unwrap_or_default(),
        start_ns: spec.start_ns,
        end_ns: spec.end_ns,
        min_severity: Some(SEVERITY_ERROR),
        ..Filter::default()
    };
    let step_secs = spec.step_ns as f64 / 1e9;
    for (service, counts) in store.count_by_service(Signal::Logs, tenant, &logs, spec.step_ns)? {
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
            thresholds: up(settings.min_errors_per_sec),
        });
    }
    if with_app_metrics {
        let mut budget = settings.max_series;
        let mut points = settings.max_points;
        let names = store.metric_names(tenant, spec.start_ns, spec.end_ns)?;
        for name in names.iter().filter(|n| !n.starts_with("weft.")) {
            if budget == 0 {
                break;
            }
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
            // A metric with more points than the look has left is skipped, not an error:
            // one huge metric must not blind the detector to everything else.
            let found = match metrics::query_within(store, tenant, &selector, &per_series, points) {
                Ok((found, read)) => {
                    points -= read;
                    found
                }
                Err(IndexError::TooManyPoints { .. }) => {
                    skipped.push(name.clone());
                    continue;
                }
                Err(e) => return Err(e),
            };
            for s in found.iter().filter(|s| keep(s)) {
                if budget == 0 {
                    break;
                }
                budget -= 1;
                let text = Selector::exact(&s.name, &s.labels).to_text();
                out.push(Watch {
                    signal: "metric",
                    text,
                    series: s.clone(),
                    thresholds: base.clone(),
                });
            }
        }
    }
    Ok((out, skipped))
}

fn detect<'a>(watches: impl Iterator<Item = &'a Watch>, spec: &Spec) -> Vec<Watched> {
    let mut out = Vec::new();
    for w in watches {
        watched(
            w.signal,
            &w.series,
            spec,
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
        anomalies: detect(watches.iter(), spec),
        skipped,
    })
}

/// The watched series of one tenant kept between looks: each look reads only the steps that
/// completed since the last one, so its cost follows new data, not the look-back. (A point
/// arriving after its step was read — later than `incidents.settle_secs` — is not counted.)
#[derive(Debug, Default)]
pub struct Cache {
    /// Steps before this are read.
    until_ns: u64,
    watches: BTreeMap<String, Watch>,
}

impl Cache {
    /// Reads the new steps of `spec` into the cache, forgets those before it, and judges
    /// every watched series over the whole of `spec`.
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
        let mut skipped = Vec::new();
        if self.until_ns <= spec.end_ns {
            let fresh = Spec {
                start_ns: self.until_ns,
                ..spec.clone()
            };
            let (watches, s) = collect(store, tenant, None, &fresh, settings, base, true)?;
            skipped = s;
            for w in watches {
                match self.watches.get_mut(&w.text) {
                    Some(known) => {
                        known.series.points.extend(w.series.points);
                        known.series.exemplars.extend(w.series.exemplars);
                    }
                    None => {
                        self.watches.insert(w.text.clone(), w);
                    }
                }
            }
            self.until_ns = spec.end_ns + 1;
        }
        for w in self.watches.values_mut() {
            w.series.points.retain(|p| p.0 >= spec.start_ns);
            w.series.exemplars.retain(|e| e.time_ns >= spec.start_ns);
        }
        self.watches.retain(|_, w| !w.series.points.is_empty());
        Ok(Look {
            anomalies: detect(self.watches.values(), spec),
            skipped,
        })
    }
}
