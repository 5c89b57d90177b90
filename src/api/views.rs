//! The answers of the query API as types: what a handler renders is one of these, so the
//! shape of an answer is written once, here, and the OpenAPI test (`tests/ingest_http.rs`)
//! fails when an answer holds a field the document does not describe. Nanosecond times are
//! decimal strings (`ns_string`), as OTLP/JSON writes them; each comes with its RFC 3339 twin.

use crate::correlate::diff::{Difference, FeatureKind};
use crate::correlate::metrics::Anomaly;
use crate::correlate::series::{Labels, Selector, Series};
use crate::correlate::stats::{AnomalyKind, Thresholds};
use crate::model::time::{ns_string, rfc3339};
use crate::model::{attrs_to_json, Exemplar};
use serde::Serialize;

#[derive(Serialize)]
pub struct ExemplarView {
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub value: f64,
    #[serde(serialize_with = "ns_string")]
    pub time_unix_nano: u64,
    pub time: String,
    pub attributes: serde_json::Value,
}

impl From<&Exemplar> for ExemplarView {
    fn from(e: &Exemplar) -> Self {
        ExemplarView {
            trace_id: e.trace_id.map(|t| t.to_hex()),
            span_id: e.span_id.map(|s| s.to_hex()),
            value: e.value,
            time_unix_nano: e.time_ns,
            time: rfc3339(e.time_ns),
            attributes: attrs_to_json(&e.attributes),
        }
    }
}

/// Two decimals: scores are read by people, not computed with.
fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[derive(Serialize)]
pub struct AnomalyView {
    pub kind: AnomalyKind,
    #[serde(serialize_with = "ns_string")]
    pub start_time_unix_nano: u64,
    #[serde(serialize_with = "ns_string")]
    pub peak_time_unix_nano: u64,
    #[serde(serialize_with = "ns_string")]
    pub end_time_unix_nano: u64,
    pub start: String,
    pub peak: String,
    pub end: String,
    pub score: f64,
    pub baseline: f64,
    pub peak_value: f64,
    pub ongoing: bool,
}

impl From<&Anomaly> for AnomalyView {
    fn from(a: &Anomaly) -> Self {
        AnomalyView {
            kind: a.kind,
            start_time_unix_nano: a.start_ns,
            peak_time_unix_nano: a.peak_ns,
            end_time_unix_nano: a.end_ns,
            start: rfc3339(a.start_ns),
            peak: rfc3339(a.peak_ns),
            end: rfc3339(a.end_ns),
            score: cents(a.score),
            baseline: a.baseline,
            peak_value: a.peak_value,
            ongoing: a.ongoing,
        }
    }
}

#[derive(Serialize)]
pub struct PointView {
    #[serde(serialize_with = "ns_string")]
    pub time_unix_nano: u64,
    pub time: String,
    pub value: f64,
}

#[derive(Serialize)]
pub struct SeriesView<'a> {
    pub metric: &'a str,
    pub kind: &'static str,
    pub unit: &'a str,
    pub labels: &'a Labels,
    pub selector: String,
    pub points: Vec<PointView>,
    pub exemplars: Vec<ExemplarView>,
    /// Only in the anomalies answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomalies: Option<Vec<AnomalyView>>,
}

impl<'a> SeriesView<'a> {
    pub fn new(s: &'a Series, anomalies: Option<&[Anomaly]>) -> Self {
        SeriesView {
            metric: &s.name,
            kind: s.kind,
            unit: &s.unit,
            labels: &s.labels,
            selector: Selector::exact(&s.name, &s.labels).to_text(),
            points: s
                .points
                .iter()
                .map(|&(t, value)| PointView {
                    time_unix_nano: t,
                    time: rfc3339(t),
                    value,
                })
                .collect(),
            exemplars: s.exemplars.iter().map(ExemplarView::from).collect(),
            anomalies: anomalies.map(|a| a.iter().map(AnomalyView::from).collect()),
        }
    }
}

/// `GET /api/v1/metrics/query`.
#[derive(Serialize)]
pub struct MetricQueryView<'a> {
    pub step_ns: u64,
    pub series: Vec<SeriesView<'a>>,
}

/// `GET /api/v1/metrics/anomalies`.
#[derive(Serialize)]
pub struct AnomaliesView<'a> {
    pub step_ns: u64,
    pub thresholds: &'a Thresholds,
    pub series: Vec<SeriesView<'a>>,
}

#[derive(Serialize)]
pub struct Counted {
    pub count: u64,
    pub total: u64,
}

#[derive(Serialize)]
pub struct DifferenceView<'a> {
    pub kind: FeatureKind,
    pub feature: &'a str,
    pub window: Counted,
    pub baseline: Counted,
    pub lift: f64,
}

impl<'a> From<&'a Difference> for DifferenceView<'a> {
    fn from(d: &'a Difference) -> Self {
        DifferenceView {
            kind: d.kind,
            feature: &d.feature,
            window: Counted {
                count: d.window_count,
                total: d.window_total,
            },
            baseline: Counted {
                count: d.baseline_count,
                total: d.baseline_total,
            },
            lift: cents(d.lift),
        }
    }
}

#[derive(Serialize)]
pub struct WindowView {
    pub start: String,
    pub end: String,
}

impl WindowView {
    pub fn new((start, end): (u64, u64)) -> Self {
        WindowView {
            start: rfc3339(start),
            end: rfc3339(end),
        }
    }
}

/// `GET /api/v1/correlate/diff`.
#[derive(Serialize)]
pub struct DiffView<'a> {
    pub window: WindowView,
    pub baseline: WindowView,
    pub differences: Vec<DifferenceView<'a>>,
}
