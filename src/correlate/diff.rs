//! "What is different": the span attributes and log templates over-represented in a window
//! compared with a baseline window, ranked by lift (how much likelier a record of the window
//! is to carry the feature), with the counts in both windows.

use super::templates::template;
use crate::model::{AttrValue, LogRecord, Span};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// Values longer than this are not features (bodies, stack traces, SQL text).
const MAX_VALUE_CHARS: usize = 120;
/// A feature must be seen this often in the window to be reported.
pub const MIN_COUNT: u64 = 3;
/// And be at least this many times likelier than in the baseline.
pub const MIN_LIFT: f64 = 1.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    SpanAttribute,
    LogTemplate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub kind: FeatureKind,
    /// `key=value` for attributes, the template for logs.
    pub feature: String,
    pub window_count: u64,
    pub window_total: u64,
    pub baseline_count: u64,
    pub baseline_total: u64,
    /// (window share) / (baseline share), both Laplace-smoothed so an absent feature does not
    /// divide by zero.
    pub lift: f64,
}

fn scalar(v: &AttrValue) -> Option<String> {
    let s = match v {
        AttrValue::Str(s) => s.clone(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::Int(i) => i.to_string(),
        _ => return None,
    };
    (s.chars().count() <= MAX_VALUE_CHARS).then_some(s)
}

/// The distinct features of one span.
pub fn span_features(s: &Span) -> BTreeSet<String> {
    let mut f = BTreeSet::new();
    f.insert(format!("service.name={}", s.service));
    f.insert(format!("span.name={}", s.name));
    let status = match s.status_code {
        2 => "error",
        1 => "ok",
        _ => "unset",
    };
    f.insert(format!("status={status}"));
    for kv in s.attributes.iter().chain(s.resource.iter()) {
        if kv.key == "service.name" {
            continue;
        }
        if let Some(v) = scalar(&kv.value) {
            f.insert(format!("{}={v}", kv.key));
        }
    }
    f
}

/// A log's feature: its service, severity and message template.
pub fn log_feature(l: &LogRecord) -> String {
    let severity = if l.severity_text.is_empty() {
        l.severity_number.to_string()
    } else {
        l.severity_text.to_uppercase()
    };
    format!(
        "[{}] {} {}",
        l.service,
        severity,
        template(&l.body.to_text())
    )
}

fn count<I: IntoIterator<Item = BTreeSet<String>>>(records: I) -> (HashMap<String, u64>, u64) {
    let mut counts = HashMap::new();
    let mut n = 0;
    for features in records {
        n += 1;
        for f in features {
            *counts.entry(f).or_insert(0) += 1;
        }
    }
    (counts, n)
}

/// Ranks the features of `window` against `baseline`, best first, at most `limit` per kind.
pub fn rank(
    kind: FeatureKind,
    window: (HashMap<String, u64>, u64),
    baseline: (HashMap<String, u64>, u64),
    limit: usize,
) -> Vec<Difference> {
    let (w, nw) = window;
    let (b, nb) = baseline;
    let mut out: Vec<Difference> = w
        .into_iter()
        .filter(|(_, c)| *c >= MIN_COUNT)
        .map(|(feature, c)| {
            let bc = b.get(&feature).copied().unwrap_or(0);
            let pw = (c as f64 + 1.0) / (nw as f64 + 2.0);
            let pb = (bc as f64 + 1.0) / (nb as f64 + 2.0);
            Difference {
                kind,
                feature,
                window_count: c,
                window_total: nw,
                baseline_count: bc,
                baseline_total: nb,
                lift: pw / pb,
            }
        })
        .filter(|d| d.lift >= MIN_LIFT)
        .collect();
    out.sort_by(|a, b| {
        b.lift
            .total_cmp(&a.lift)
            .then(b.window_count.cmp(&a.window_count))
            .then(a.feature.cmp(&b.feature))
    });
    out.truncate(limit);
    out
}

/// Span attributes, then log templates, each ranked.
pub fn differences(
    window_spans: &[Span],
    baseline_spans: &[Span],
    window_logs: &[LogRecord],
    baseline_logs: &[LogRecord],
    limit: usize,
) -> Vec<Difference> {
    let mut out = rank(
        FeatureKind::SpanAttribute,
        count(window_spans.iter().map(span_features)),
        count(baseline_spans.iter().map(span_features)),
        limit,
    );
    let one = |l: &LogRecord| BTreeSet::from([log_feature(l)]);
    out.extend(rank(
        FeatureKind::LogTemplate,
        count(window_logs.iter().map(one)),
        count(baseline_logs.iter().map(one)),
        limit,
    ));
    out
}

/// Records sampled per window and signal.
pub const SAMPLE: usize = 5000;

/// Samples spans and logs of `services` (every service when empty) in both windows and ranks
/// what is different.
pub fn compare(
    store: &crate::index::Store,
    tenant: &crate::model::TenantId,
    services: &[String],
    window: (u64, u64),
    baseline: (u64, u64),
    limit: usize,
) -> Result<Vec<Difference>, crate::index::IndexError> {
    use crate::index::{Filter, Pick};
    use crate::model::{Record, Signal};
    let sample = |signal, (start_ns, end_ns): (u64, u64)| {
        let f = Filter {
            services: services.to_vec(),
            start_ns,
            end_ns,
            ..Filter::default()
        };
        store.select(signal, tenant, &f, Pick::Newest, SAMPLE)
    };
    let split = |records: Vec<Record>| {
        let mut spans = Vec::new();
        let mut logs = Vec::new();
        for r in records {
            match r {
                Record::Span(s) => spans.push(s),
                Record::Log(l) => logs.push(l),
                Record::Metric(_) => {}
            }
        }
        (spans, logs)
    };
    let (ws, _) = split(sample(Signal::Spans, window)?);
    let (bs, _) = split(sample(Signal::Spans, baseline)?);
    let (_, wl) = split(sample(Signal::Logs, window)?);
    let (_, bl) = split(sample(Signal::Logs, baseline)?);
    Ok(differences(&ws, &bs, &wl, &bl, limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{log, span};
    use crate::model::KeyValue;

    fn with_attr(mut s: Span, k: &str, v: &str) -> Span {
        s.attributes.push(KeyValue {
            key: k.into(),
            value: AttrValue::Str(v.into()),
        });
        s
    }

    #[test]
    fn over_represented_features_rank_first_with_counts() {
        // Baseline: 20 spans, 2 on pod b. Window: 10 spans, 8 on pod b and failing.
        let baseline: Vec<Span> = (0..20)
            .map(|i| with_attr(span(1, None, 0, 1), "pod", if i < 2 { "b" } else { "a" }))
            .collect();
        let window: Vec<Span> = (0..10)
            .map(|i| {
                let mut s = with_attr(span(1, None, 0, 1), "pod", if i < 8 { "b" } else { "a" });
                if i < 8 {
                    s.status_code = 2;
                }
                s
            })
            .collect();
        let d = differences(&window, &baseline, &[], &[], 10);
        let features: Vec<&str> = d.iter().map(|d| d.feature.as_str()).collect();
        assert_eq!(features, ["status=error", "pod=b"], "{d:?}");
        // status=error: (8+1)/(10+2) / ((0+1)/(20+2)) = 16.5
        assert!((d[0].lift - 16.5).abs() < 1e-9, "{}", d[0].lift);
        assert_eq!((d[1].window_count, d[1].baseline_count), (8, 2));
        // pod=b: (9/12) / (3/22) = 5.5
        assert!((d[1].lift - 5.5).abs() < 1e-9);
    }

    #[test]
    fn log_templates_group_variable_messages() {
        let mk = |body: &str| {
            let mut l = log(body);
            l.severity_text = "WARN".into();
            l
        };
        let window: Vec<LogRecord> = [812, 95, 640, 700]
            .iter()
            .map(|ms| mk(&format!("slow query took {ms} ms")))
            .collect();
        let baseline: Vec<LogRecord> = (0..10)
            .map(|i| mk(&format!("reserved {i} items")))
            .collect();
        let d = differences(&[], &[], &window, &baseline, 10);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].feature, "[svc] WARN slow query took <*> ms");
        assert_eq!((d[0].window_count, d[0].baseline_count), (4, 0));
        // Too rare in the window: not reported.
        let d = differences(&[], &[], &window[..2], &baseline, 10);
        assert!(d.is_empty());
    }
}
