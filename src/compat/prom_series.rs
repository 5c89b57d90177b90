//! weft's stored metric points seen as Prometheus series, as Prometheus itself names OTLP
//! data:
//!
//! - Metric names: every character outside `[a-zA-Z0-9_:]` becomes `_`
//!   (`http.server.duration` → `http_server_duration`); no unit or `_total` suffix is added.
//! - Label names: every character outside `[a-zA-Z0-9_]` becomes `_` (`service.name` →
//!   `service_name`, `http.route` → `http_route`), a leading digit gets a `key_` prefix; when
//!   two attributes map to one name, their values are joined with `;`. Every series carries
//!   `service_name`, its service.
//! - Gauges are gauges; sums are counters with their cumulative value. Delta sums (weft's RED
//!   metrics among them) are accumulated from the start of the window read, so `rate` and
//!   `increase` are right, while a bare value counts only from there.
//! - Histograms (explicit or exponential) are `<name>_bucket{le="…"}` with cumulative counts
//!   up to `le="+Inf"`, `<name>_sum` and `<name>_count`; summaries are `<name>{quantile="…"}`,
//!   `<name>_sum` and `<name>_count`.
//! - Points marked *no recorded value* (exemplar carriers) add no sample.

use crate::correlate::series::{exponential_buckets, labels_of, FLAG_NO_RECORDED_VALUE};
use crate::model::{Exemplar, MetricPoint, MetricValue, Temporality};
use std::collections::BTreeMap;

pub type PromLabels = BTreeMap<String, String>;

pub const NAME: &str = "__name__";
pub const SERVICE: &str = "service_name";

/// One Prometheus series: labels (with `__name__`) and samples in time order (ms, value).
#[derive(Debug, Clone, PartialEq)]
pub struct PromSeries {
    pub labels: PromLabels,
    pub samples: Vec<(i64, f64)>,
}

/// An exemplar as Prometheus reports it, on the series it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct PromExemplar {
    pub series: PromLabels,
    pub labels: PromLabels,
    pub value: f64,
    pub time_ms: i64,
}

pub fn metric_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

pub fn label_name(key: &str) -> String {
    let out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{out}")
    } else {
        out
    }
}

/// The Prometheus names a stored metric name is served under.
pub fn served_names(stored: &str, kind_has_parts: bool) -> Vec<String> {
    let base = metric_name(stored);
    if !kind_has_parts {
        return vec![base];
    }
    ["", "_bucket", "_sum", "_count"]
        .iter()
        .map(|s| format!("{base}{s}"))
        .collect()
}

/// The stored names that could be served as `prom_name`, among `stored`.
pub fn stored_candidates<'a>(prom_name: &str, stored: &'a [String]) -> Vec<&'a str> {
    stored
        .iter()
        .filter(|s| {
            let base = metric_name(s);
            prom_name == base
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| prom_name.strip_suffix(suffix) == Some(base.as_str()))
        })
        .map(String::as_str)
        .collect()
}

/// A point's labels in Prometheus terms, without `__name__`.
pub fn point_labels(p: &MetricPoint) -> PromLabels {
    let mut out = PromLabels::new();
    for (k, v) in labels_of(p) {
        let name = label_name(&k);
        out.entry(name)
            .and_modify(|old: &mut String| {
                if *old != v {
                    old.push(';');
                    old.push_str(&v);
                }
            })
            .or_insert(v);
    }
    out
}

/// Prometheus' spelling of a float: `1`, `0.25`, `+Inf`, `-Inf`, `NaN`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

fn with(labels: &PromLabels, name: String, extra: Option<(&str, String)>) -> PromLabels {
    let mut l = labels.clone();
    l.insert(NAME.into(), name);
    if let Some((k, v)) = extra {
        l.insert(k.into(), v);
    }
    l
}

/// Accumulates samples per output series.
#[derive(Default)]
struct Out {
    series: BTreeMap<PromLabels, Vec<(i64, f64)>>,
    /// Running totals of delta series, per output series.
    running: BTreeMap<PromLabels, f64>,
}

impl Out {
    fn push(&mut self, labels: PromLabels, t: i64, v: f64, delta: bool) {
        let v = if delta {
            let acc = self.running.entry(labels.clone()).or_insert(0.0);
            *acc += v;
            *acc
        } else {
            v
        };
        self.series.entry(labels).or_default().push((t, v));
    }
}

/// The Prometheus series of stored points (any order), with the exemplars they carry.
pub fn to_prom(points: &[MetricPoint]) -> (Vec<PromSeries>, Vec<PromExemplar>) {
    let mut sorted: Vec<&MetricPoint> = points.iter().collect();
    sorted.sort_by_key(|p| p.time_ns);
    let mut out = Out::default();
    let mut exemplars = Vec::new();
    for p in sorted {
        let base = point_labels(p);
        let name = metric_name(&p.name);
        let t = (p.time_ns / 1_000_000) as i64;
        for e in &p.exemplars {
            exemplars.push(exemplar(p, &base, &name, e));
        }
        if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
            continue;
        }
        match &p.value {
            MetricValue::Gauge(v) => out.push(with(&base, name, None), t, *v, false),
            MetricValue::Sum {
                value, temporality, ..
            } => out.push(
                with(&base, name, None),
                t,
                *value,
                *temporality == Temporality::Delta,
            ),
            MetricValue::Histogram {
                count,
                sum,
                bounds,
                bucket_counts,
                temporality,
                ..
            } => histogram(
                &mut out,
                &base,
                &name,
                t,
                (bounds, bucket_counts),
                *count,
                *sum,
                *temporality == Temporality::Delta,
            ),
            MetricValue::ExponentialHistogram {
                count,
                sum,
                scale,
                zero_count,
                positive_offset,
                positive,
                negative,
                temporality,
                ..
            } => {
                let (bounds, counts) =
                    exponential_buckets(*scale, *zero_count, *positive_offset, positive, negative);
                histogram(
                    &mut out,
                    &base,
                    &name,
                    t,
                    (&bounds, &counts),
                    *count,
                    *sum,
                    *temporality == Temporality::Delta,
                );
            }
            MetricValue::Summary {
                count,
                sum,
                quantiles,
            } => {
                for (q, v) in quantiles {
                    out.push(
                        with(&base, name.clone(), Some(("quantile", format_value(*q)))),
                        t,
                        *v,
                        false,
                    );
                }
                out.push(with(&base, format!("{name}_sum"), None), t, *sum, false);
                out.push(
                    with(&base, format!("{name}_count"), None),
                    t,
                    *count as f64,
                    false,
                );
            }
        }
    }
    let series = out
        .series
        .into_iter()
        .map(|(labels, samples)| PromSeries { labels, samples })
        .collect();
    (series, exemplars)
}

fn histogram(
    out: &mut Out,
    base: &PromLabels,
    name: &str,
    t: i64,
    (bounds, counts): (&[f64], &[u64]),
    count: u64,
    sum: Option<f64>,
    delta: bool,
) {
    let mut cumulative = 0u64;
    for (i, c) in counts.iter().enumerate() {
        cumulative = cumulative.saturating_add(*c);
        let le = bounds
            .get(i)
            .map_or("+Inf".to_string(), |b| format_value(*b));
        out.push(
            with(base, format!("{name}_bucket"), Some(("le", le))),
            t,
            cumulative as f64,
            delta,
        );
    }
    if let Some(s) = sum {
        out.push(with(base, format!("{name}_sum"), None), t, s, delta);
    }
    out.push(
        with(base, format!("{name}_count"), None),
        t,
        count as f64,
        delta,
    );
}

/// An exemplar on the series Prometheus would have it on: a histogram's on the bucket its
/// value falls in.
fn exemplar(p: &MetricPoint, base: &PromLabels, name: &str, e: &Exemplar) -> PromExemplar {
    let series = match &p.value {
        MetricValue::Histogram { bounds, .. } => {
            let le = bounds
                .iter()
                .find(|b| e.value <= **b)
                .map_or("+Inf".to_string(), |b| format_value(*b));
            with(base, format!("{name}_bucket"), Some(("le", le)))
        }
        _ => with(base, name.to_string(), None),
    };
    let mut labels = PromLabels::new();
    if let Some(t) = e.trace_id {
        labels.insert("trace_id".into(), t.to_hex());
    }
    if let Some(s) = e.span_id {
        labels.insert("span_id".into(), s.to_hex());
    }
    for kv in &e.attributes {
        labels.insert(label_name(&kv.key), kv.value.to_text());
    }
    PromExemplar {
        series,
        labels,
        value: e.value,
        time_ms: (e.time_ns / 1_000_000) as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttrValue, KeyValue, Scope, TraceId};

    fn point(t_s: u64, value: MetricValue) -> MetricPoint {
        MetricPoint {
            name: "http.server.duration".into(),
            description: String::new(),
            unit: "ms".into(),
            time_ns: t_s * 1_000_000_000,
            start_ns: 0,
            service: "api".into(),
            resource: vec![],
            scope: Scope {
                name: String::new(),
                version: String::new(),
            },
            attributes: vec![
                KeyValue {
                    key: "http.route".into(),
                    value: AttrValue::Str("/cart".into()),
                },
                KeyValue {
                    key: "http_route".into(),
                    value: AttrValue::Str("/x".into()),
                },
            ],
            value,
            exemplars: vec![],
            flags: 0,
        }
    }

    #[test]
    fn names_and_labels_are_prometheus_safe() {
        assert_eq!(metric_name("http.server.duration"), "http_server_duration");
        assert_eq!(metric_name("9lives"), "_9lives");
        assert_eq!(label_name("service.name"), "service_name");
        assert_eq!(label_name("1a"), "key_1a");
        let stored = vec!["http.server.duration".to_string(), "up".into()];
        assert_eq!(
            stored_candidates("http_server_duration_bucket", &stored),
            ["http.server.duration"]
        );
        assert!(stored_candidates("up_bucket", &stored).contains(&"up"));
        assert!(stored_candidates("down", &stored).is_empty());
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.25), "0.25");
    }

    #[test]
    fn histograms_become_buckets_and_deltas_accumulate() {
        let h = |c: Vec<u64>| MetricValue::Histogram {
            count: c.iter().sum(),
            sum: Some(10.0),
            min: None,
            max: None,
            bounds: vec![5.0, 10.0],
            bucket_counts: c,
            temporality: Temporality::Delta,
        };
        let mut p1 = point(100, h(vec![1, 2, 3]));
        p1.exemplars.push(Exemplar {
            time_ns: 100_000_000_000,
            value: 7.0,
            trace_id: Some(TraceId([1; 16])),
            span_id: None,
            attributes: vec![],
        });
        let pts = vec![point(110, h(vec![1, 0, 0])), p1];
        let (series, exemplars) = to_prom(&pts);
        let find = |name: &str, le: Option<&str>| {
            series
                .iter()
                .find(|s| s.labels[NAME] == name && s.labels.get("le").map(String::as_str) == le)
                .unwrap_or_else(|| panic!("{name} {le:?} in {series:?}"))
        };
        let b = find("http_server_duration_bucket", Some("10"));
        assert_eq!(b.samples, vec![(100_000, 3.0), (110_000, 4.0)]);
        assert_eq!(b.labels[SERVICE], "api");
        assert_eq!(b.labels["http_route"], "/cart;/x");
        let inf = find("http_server_duration_bucket", Some("+Inf"));
        assert_eq!(inf.samples, vec![(100_000, 6.0), (110_000, 7.0)]);
        assert_eq!(
            find("http_server_duration_count", None).samples.last(),
            Some(&(110_000, 7.0))
        );
        assert_eq!(exemplars[0].series["le"], "10");
        assert_eq!(exemplars[0].labels["trace_id"], "01".repeat(16));
        let mut flagged = point(120, MetricValue::Gauge(1.0));
        flagged.flags = FLAG_NO_RECORDED_VALUE;
        assert!(to_prom(&[flagged]).0.is_empty());
    }
}
