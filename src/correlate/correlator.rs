//! The Correlator: the one home of every answer that joins signals. The API handlers (weft's
//! own, the UI's and the compatibility APIs') parse a request, call one method here, and
//! render what it returns; none of them reads the indexes to assemble an answer itself. Each
//! method is a blocking read (handlers run it on the blocking pool) and returns data, not JSON.
//!
//! Answers that compare a window with what came before it take that baseline from
//! `baseline::before`, so `/correlate/diff?incident=X` and `/incidents/X` agree.

use super::baseline;
use super::compare::{self, Comparison};
use super::diff::{self, Difference};
use super::incidents::{Incident, Incidents, Status};
use super::inferred::{self, Inferred};
use super::latency::{self, TraceLatency};
use super::metrics::{self, Anomaly};
use super::series::{self, Selector};
use super::series::{Series, Spec};
use super::service_map::{self, ServiceMap};
use super::spike;
use super::stats::Thresholds;
use super::timeline::{self, Entry, Item, Key, Narrow, Page, ServiceWindow, Source};
use super::trace_search::{self, AttributeKeys, ListQuery, NameList, TraceQuery, TraceSearch};
use super::trace_tree::{self, TraceTree};
use super::watch;
use crate::config::{AnomalySettings, Config, IncidentSettings};
use crate::error::{ErrorCode, ServiceError};
use crate::index::{Filter, IndexError, LogQuery, Pick, Store, TraceRecords};
use crate::model::{LogRecord, MetricPoint, Record, Signal, Span, TenantId, TraceId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Points read to list label names and values: the newest of the window.
const LABEL_SCAN_POINTS: usize = 20_000;
/// The most steps a timeline page's live anomaly detection evaluates per series.
const LIVE_STEPS: u64 = 2_000;
/// Differences an incident's summary lists per kind.
const INCIDENT_DIFFERENCES: usize = 20;
/// Entries of an incident's first timeline page.
pub const INCIDENT_TIMELINE_PAGE: usize = 200;

/// Why an answer could not be given. The API chooses the status by the variant.
#[derive(Debug, thiserror::Error)]
pub enum CorrelateError {
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Index(#[from] IndexError),
}

impl ServiceError for CorrelateError {
    fn code(&self) -> ErrorCode {
        match self {
            CorrelateError::NotFound(_) => ErrorCode::NotFound,
            CorrelateError::Index(e) => e.code(),
        }
    }
}

/// One of the lists a search form needs.
pub enum Listing {
    Services,
    Operations,
    AttributeKeys,
    AttributeValues(String),
}

/// A list a search form asked for, as `trace_search` shapes it.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub enum Listed {
    Names(NameList<String>),
    Keys(AttributeKeys),
    Values(NameList<serde_json::Value>),
}

/// Whose timeline.
pub enum Subject {
    Trace(TraceId),
    Services {
        services: Vec<String>,
        start_ns: u64,
        end_ns: u64,
    },
    Incident(String),
}

/// The window of a "what is different" question.
pub enum DiffWindow {
    Range(u64, u64),
    /// The incident's own window and, unless services are given, its services.
    Incident(String),
}

pub struct DiffRequest {
    pub window: DiffWindow,
    pub services: Vec<String>,
    /// `None`: `baseline::before` the window.
    pub baseline: Option<(u64, u64)>,
    pub limit: usize,
}

pub struct DiffAnswer {
    pub window: (u64, u64),
    pub baseline: (u64, u64),
    pub differences: Vec<Difference>,
}

/// An incident with what is different in it and the first page of its timeline.
pub struct IncidentDetail {
    pub incident: Incident,
    pub differences: Vec<Difference>,
    pub timeline: Page,
}

/// A trace's records, its span tree, and the logs inferred to belong to it. Empty when
/// nothing of the trace is stored: the caller says whether that is "not found" or, for a
/// trace sampling dropped, an answer with its decision.
pub struct TraceAnswer {
    pub records: TraceRecords,
    pub tree: TraceTree,
    pub inferred: Vec<Inferred>,
}

impl TraceAnswer {
    pub fn is_empty(&self) -> bool {
        let r = &self.records;
        r.spans.is_empty() && r.logs.is_empty() && r.metrics.is_empty()
    }
}

pub struct Correlator {
    store: Arc<Store>,
    incidents: Arc<Incidents>,
    step_ns: u64,
    margin_ns: u64,
    max_inferred_logs: usize,
    anomalies: AnomalySettings,
    detector: IncidentSettings,
}

impl Correlator {
    pub fn new(store: Arc<Store>, incidents: Arc<Incidents>, config: &Config) -> Correlator {
        Correlator {
            store,
            incidents,
            step_ns: config.incidents.step_secs * 1_000_000_000,
            margin_ns: config.correlate.inference_margin_ms * 1_000_000,
            max_inferred_logs: config.correlate.max_inferred_logs,
            anomalies: config.anomalies.clone(),
            detector: config.incidents.clone(),
        }
    }

    /// The incident detector's step.
    pub fn step_ns(&self) -> u64 {
        self.step_ns
    }

    /// A tenant's incidents, newest first, optionally only those with `status`.
    pub fn incidents(&self, tenant: &TenantId, status: Option<Status>) -> Vec<Incident> {
        let mut list = self.incidents.list(tenant);
        list.retain(|i| status.is_none_or(|s| i.status == s));
        list
    }

    pub fn incident(&self, tenant: &TenantId, id: &str) -> Result<Incident, CorrelateError> {
        self.incidents
            .get(tenant, id)
            .ok_or_else(|| CorrelateError::NotFound(format!("no incident {id:?}")))
    }

    /// Detection and ranking over any stored window, as the live detector would judge it at
    /// the window's end (`services` empty: every service). Nothing is saved.
    pub fn analyze(
        &self,
        tenant: &TenantId,
        (start_ns, end_ns): (u64, u64),
        services: &[String],
    ) -> Result<Vec<Incident>, CorrelateError> {
        let only = (!services.is_empty()).then_some(services);
        Ok(super::incidents::analyze(
            &self.store,
            tenant,
            start_ns,
            end_ns,
            only,
            &self.detector,
            &self.anomalies,
        )?)
    }

    /// The traces behind a spike of the series `selector` names.
    pub fn spike(
        &self,
        tenant: &TenantId,
        selector: &Selector,
        (start_ns, end_ns): (u64, u64),
        limit: usize,
    ) -> Result<spike::SpikeReport, CorrelateError> {
        Ok(spike::explain(
            &self.store,
            tenant,
            selector,
            start_ns,
            end_ns,
            limit,
        )?)
    }

    /// What is over-represented in a window against its baseline.
    pub fn diff(&self, tenant: &TenantId, req: DiffRequest) -> Result<DiffAnswer, CorrelateError> {
        let (window, services) = match req.window {
            DiffWindow::Range(start, end) => ((start, end), req.services),
            DiffWindow::Incident(id) => {
                let inc = self.incident(tenant, &id)?;
                let services = if req.services.is_empty() {
                    inc.services.clone()
                } else {
                    req.services
                };
                ((inc.start_ns, inc.end_ns(self.step_ns)), services)
            }
        };
        let baseline = req
            .baseline
            .unwrap_or_else(|| baseline::before(window.0, window.1));
        let differences =
            diff::compare(&self.store, tenant, &services, window, baseline, req.limit)?;
        Ok(DiffAnswer {
            window,
            baseline,
            differences,
        })
    }

    /// An incident, what is different in its window, and its timeline's first page.
    pub fn incident_detail(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<IncidentDetail, CorrelateError> {
        let incident = self.incident(tenant, id)?;
        let answer = self.diff(
            tenant,
            DiffRequest {
                window: DiffWindow::Range(incident.start_ns, incident.end_ns(self.step_ns)),
                services: incident.services.clone(),
                baseline: None,
                limit: INCIDENT_DIFFERENCES,
            },
        )?;
        let sources = self.incident_sources(tenant, &incident, None, INCIDENT_TIMELINE_PAGE)?;
        Ok(IncidentDetail {
            differences: answer.differences,
            timeline: timeline::page(sources, None, INCIDENT_TIMELINE_PAGE),
            incident,
        })
    }

    /// One page of a subject's timeline, after `after`.
    pub fn timeline(
        &self,
        tenant: &TenantId,
        subject: &Subject,
        narrow: &Narrow,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Page, CorrelateError> {
        let mut sources = match subject {
            Subject::Trace(t) => timeline::of_trace(
                &self.store,
                tenant,
                *t,
                self.margin_ns,
                self.max_inferred_logs,
            )?,
            Subject::Services {
                services,
                start_ns,
                end_ns,
            } => self.service_sources(tenant, services, (*start_ns, *end_ns), after, limit)?,
            Subject::Incident(id) => {
                let inc = self.incident(tenant, id)?;
                self.incident_sources(tenant, &inc, after, limit)?
            }
        };
        narrow.apply(&mut sources);
        Ok(timeline::page(sources, after, limit))
    }

    fn service_sources(
        &self,
        tenant: &TenantId,
        services: &[String],
        (start, end): (u64, u64),
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<Source>, IndexError> {
        let w = ServiceWindow {
            services,
            start_ns: start,
            end_ns: end,
            after,
            limit,
            margin_ns: self.margin_ns,
        };
        let mut out = timeline::of_services(&self.store, tenant, &w)?;
        // Live: the services' RED error rate, p95 latency and error-log rate over this page's
        // time only, in at most LIVE_STEPS steps (coarser over a long quiet page). Application
        // metrics are many and costly to re-read per page; their anomalies come from the
        // incidents the detector recorded in the window.
        let from = after.map_or(start, |k| k.time_ns.max(start));
        let until = timeline::page_end(&out, after, limit, end);
        let step = live_step(self.step_ns, until.saturating_sub(from));
        let spec = watch::grid(
            from.saturating_sub(self.anomalies.baseline_points as u64 * step),
            until,
            step,
        );
        let thresholds = Thresholds::from(&self.anomalies);
        let mut seen = watch::anomalies(
            &self.store,
            tenant,
            Some(services),
            &spec,
            &self.detector,
            &thresholds,
            false,
        )?
        .anomalies;
        for inc in self.incidents.list(tenant) {
            seen.extend(
                inc.anomalies
                    .into_iter()
                    .filter(|a| a.signal == "metric" && services.contains(&a.service)),
            );
        }
        // Complete up to the page's end only: a page narrowed to anomalies (`Narrow`) may
        // otherwise run past `until` on the other sources' bound.
        out.push(Source {
            entries: timeline::anomaly_entries(&seen, from, until),
            complete_before: (until < end).then(|| until + 1),
        });
        Ok(out)
    }

    fn incident_sources(
        &self,
        tenant: &TenantId,
        inc: &Incident,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<Source>, IndexError> {
        let step = self.step_ns;
        let (start, end) = (inc.start_ns.saturating_sub(step), inc.end_ns(step) + step);
        let w = ServiceWindow {
            services: &inc.services,
            start_ns: start,
            end_ns: end,
            after,
            limit,
            margin_ns: self.margin_ns,
        };
        let mut out = timeline::of_services(&self.store, tenant, &w)?;
        let mut events = timeline::anomaly_entries(&inc.anomalies, start, end);
        let mark = |time_ns, opened| Entry {
            time_ns,
            item: Item::Incident {
                id: inc.id.clone(),
                opened,
            },
        };
        events.push(mark(inc.start_ns, true));
        if let Some(closed) = inc.closed_ns {
            events.push(mark(closed, false));
        }
        out.push(Source::complete(events));
        Ok(out)
    }

    /// A trace's spans, logs and exemplar points, with inferred log candidates (empty when
    /// none is stored).
    pub fn trace(
        &self,
        tenant: &TenantId,
        trace_id: TraceId,
    ) -> Result<TraceAnswer, CorrelateError> {
        let records = self.store.trace(tenant, trace_id)?;
        let inferred = inferred::infer(
            &self.store,
            tenant,
            &records.spans,
            self.margin_ns,
            self.max_inferred_logs,
        )?;
        let tree = trace_tree::build(&records.spans, &records.logs);
        Ok(TraceAnswer {
            records,
            tree,
            inferred,
        })
    }

    /// Spans, logs and exemplars of a trace with no analysis: what a plain lookup returns.
    pub fn trace_spans(
        &self,
        tenant: &TenantId,
        trace_id: TraceId,
    ) -> Result<Vec<Span>, CorrelateError> {
        let spans = self.store.trace_spans(tenant, trace_id)?;
        if spans.is_empty() {
            return Err(CorrelateError::NotFound(format!(
                "no spans for trace {trace_id}"
            )));
        }
        Ok(spans)
    }

    /// Each span of a trace against its operation's durations over `window_ns` before it.
    pub fn trace_latency(
        &self,
        tenant: &TenantId,
        trace_id: TraceId,
        window_ns: u64,
    ) -> Result<TraceLatency, CorrelateError> {
        let spans = self.trace_spans(tenant, trace_id)?;
        Ok(latency::of_spans(&self.store, tenant, &spans, window_ns)?)
    }

    /// `other` against `base`: spans added, missing, slower, self-time differences.
    pub fn compare_traces(
        &self,
        tenant: &TenantId,
        base: TraceId,
        other: TraceId,
    ) -> Result<Comparison, CorrelateError> {
        let a = self.trace_spans(tenant, base)?;
        let b = self.trace_spans(tenant, other)?;
        Ok(compare::compare(base, &a, other, &b))
    }

    /// Services and the calls between them in a window.
    pub fn service_map(
        &self,
        tenant: &TenantId,
        (start, end): (u64, u64),
    ) -> Result<ServiceMap, CorrelateError> {
        Ok(service_map::build(&self.store, tenant, start, end)?)
    }

    pub fn search_traces(
        &self,
        tenant: &TenantId,
        q: &TraceQuery,
    ) -> Result<TraceSearch, CorrelateError> {
        Ok(trace_search::search(&self.store, tenant, q)?)
    }

    /// What a search form offers: services, operations, span attribute keys or one key's values.
    pub fn list(
        &self,
        tenant: &TenantId,
        what: &Listing,
        q: &ListQuery,
    ) -> Result<Listed, CorrelateError> {
        Ok(match what {
            Listing::Services => Listed::Names(self.services(tenant, q)?),
            Listing::Operations => Listed::Names(self.operations(tenant, q)?),
            Listing::AttributeKeys => Listed::Keys(self.attribute_keys(tenant, q)?),
            Listing::AttributeValues(key) => Listed::Values(self.attribute_values(tenant, key, q)?),
        })
    }

    /// Services with spans in the window (of `q.service`'s name prefix and limit).
    pub fn services(
        &self,
        tenant: &TenantId,
        q: &ListQuery,
    ) -> Result<NameList<String>, CorrelateError> {
        Ok(trace_search::services(&self.store, tenant, q)?)
    }

    /// Span names in the window, of one service when `q.service` names it.
    pub fn operations(
        &self,
        tenant: &TenantId,
        q: &ListQuery,
    ) -> Result<NameList<String>, CorrelateError> {
        Ok(trace_search::operations(&self.store, tenant, q)?)
    }

    /// Span and resource attribute keys of the newest spans of the window.
    pub fn attribute_keys(
        &self,
        tenant: &TenantId,
        q: &ListQuery,
    ) -> Result<AttributeKeys, CorrelateError> {
        Ok(trace_search::attribute_keys(&self.store, tenant, q)?)
    }

    /// The values one span or resource attribute takes in the window.
    pub fn attribute_values(
        &self,
        tenant: &TenantId,
        key: &str,
        q: &ListQuery,
    ) -> Result<NameList<serde_json::Value>, CorrelateError> {
        Ok(trace_search::attribute_values(&self.store, tenant, key, q)?)
    }

    pub fn search_logs(
        &self,
        tenant: &TenantId,
        q: &LogQuery,
    ) -> Result<Vec<LogRecord>, CorrelateError> {
        Ok(self.store.search_logs(tenant, q)?)
    }

    /// The series a selector names, evaluated per step.
    pub fn metric_query(
        &self,
        tenant: &TenantId,
        selector: &Selector,
        spec: &Spec,
    ) -> Result<Vec<Series>, CorrelateError> {
        Ok(metrics::query(&self.store, tenant, selector, spec)?)
    }

    /// `metric_query`, each series with its anomalies under `thresholds`.
    pub fn metric_anomalies(
        &self,
        tenant: &TenantId,
        selector: &Selector,
        spec: &Spec,
        thresholds: &Thresholds,
    ) -> Result<Vec<(Series, Vec<Anomaly>)>, CorrelateError> {
        let found = self.metric_query(tenant, selector, spec)?;
        Ok(found
            .into_iter()
            .map(|s| {
                let a = metrics::anomalies(&s, spec, thresholds);
                (s, a)
            })
            .collect())
    }

    pub fn metric_names(
        &self,
        tenant: &TenantId,
        (start, end): (u64, u64),
    ) -> Result<Vec<String>, CorrelateError> {
        Ok(self.store.metric_names(tenant, start, end)?)
    }

    /// Metric label names and their values on the newest points of the window, optionally
    /// of the series a selector names.
    pub fn metric_labels(
        &self,
        tenant: &TenantId,
        selector: Option<&Selector>,
        (start_ns, end_ns): (u64, u64),
    ) -> Result<BTreeMap<String, BTreeSet<String>>, CorrelateError> {
        let f = Filter {
            start_ns,
            end_ns,
            name: selector.map(|s| s.name.clone()),
            ..Filter::default()
        };
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let points =
            self.store
                .select(Signal::Metrics, tenant, &f, Pick::Newest, LABEL_SCAN_POINTS)?;
        for r in points {
            let Record::Metric(m) = r else { continue };
            let labels = series::labels_of(&m);
            if selector.is_some_and(|s| !s.matches(&labels)) {
                continue;
            }
            for (k, v) in labels {
                out.entry(k).or_default().insert(v);
            }
        }
        Ok(out)
    }
}

// Raw reads. The compatibility APIs' query languages (PromQL, LogQL, TraceQL) evaluate their
// own expressions; these are the reads they evaluate over, each bounded by its `limit`, so that
// they too reach the indexes only through the Correlator.
impl Correlator {
    /// Records of one signal that `f` selects, newest or oldest first, at most `limit`.
    pub fn select(
        &self,
        signal: Signal,
        tenant: &TenantId,
        f: &Filter,
        pick: Pick,
        limit: usize,
    ) -> Result<Vec<Record>, CorrelateError> {
        Ok(self.store.select(signal, tenant, f, pick, limit)?)
    }

    /// `select` of spans.
    pub fn select_spans(
        &self,
        tenant: &TenantId,
        f: &Filter,
        pick: Pick,
        limit: usize,
    ) -> Result<Vec<Span>, CorrelateError> {
        Ok(self.store.select_spans(tenant, f, pick, limit)?)
    }

    /// Every metric point `f` selects; fails with `TooManyPoints` past `limit`.
    pub fn metric_points(
        &self,
        tenant: &TenantId,
        f: &Filter,
        limit: usize,
    ) -> Result<Vec<MetricPoint>, CorrelateError> {
        Ok(self.store.metric_points(tenant, f, limit)?)
    }
}

/// The detector's step, or a whole multiple of it that covers `span_ns` in `LIVE_STEPS`.
fn live_step(step: u64, span_ns: u64) -> u64 {
    let wanted = span_ns.div_ceil(LIVE_STEPS);
    step.max(wanted.div_ceil(step).saturating_mul(step))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_steps_are_whole_multiples_of_the_detector_step() {
        let s = 1_000_000_000;
        assert_eq!(live_step(10 * s, 60 * s), 10 * s);
        let long = live_step(10 * s, 30 * 86_400 * s);
        assert_eq!(long % (10 * s), 0);
        assert!(30 * 86_400 * s / long <= LIVE_STEPS);
    }
}
