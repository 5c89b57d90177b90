//! Metric series: selecting them (`name{label="v",other=~"re"}`, as Prometheus writes it),
//! and turning stored points into one value per step — gauges as values, counters as
//! per-second rates, histograms as quantiles — with the exemplars that point at traces.

use crate::index::IndexError;
use crate::model::{Exemplar, MetricPoint, MetricValue, Temporality};
use std::collections::BTreeMap;

/// The label that holds a point's service (its resource's `service.name`).
pub const SERVICE_LABEL: &str = "service.name";
/// The label evaluation gives each quantile series of a histogram or summary.
pub const QUANTILE_LABEL: &str = "quantile";

pub type Labels = BTreeMap<String, String>;

/// OTLP's `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
pub const FLAG_NO_RECORDED_VALUE: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    NotRe,
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex::Regex>,
}

impl Matcher {
    /// As in Prometheus: a missing label matches as the empty string; regexes are anchored.
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.label).map_or("", String::as_str);
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRe => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Selector {
    pub name: String,
    pub matchers: Vec<Matcher>,
}

impl Selector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    /// What the index can filter by before any point is read: `=` matchers on the service
    /// and on attributes (a matcher for an empty value also matches a missing label, so it
    /// cannot be pushed down).
    pub fn pushdown(&self) -> crate::index::Filter {
        let mut f = crate::index::Filter::default();
        for m in self
            .matchers
            .iter()
            .filter(|m| m.op == MatchOp::Eq && !m.value.is_empty())
        {
            if m.label == SERVICE_LABEL {
                f.services = vec![m.value.clone()];
            } else if m.label != QUANTILE_LABEL {
                f.attrs.push((m.label.clone(), m.value.clone()));
            }
        }
        f
    }

    /// The selector written back, for messages and links.
    pub fn to_text(&self) -> String {
        if self.matchers.is_empty() {
            return self.name.clone();
        }
        let inner: Vec<String> = self
            .matchers
            .iter()
            .map(|m| {
                let op = match m.op {
                    MatchOp::Eq => "=",
                    MatchOp::Ne => "!=",
                    MatchOp::Re => "=~",
                    MatchOp::NotRe => "!~",
                };
                format!("{}{op}{:?}", m.label, m.value)
            })
            .collect();
        format!("{}{{{}}}", self.name, inner.join(","))
    }

    /// A selector for exactly one series: its name and every label (but `quantile`, which
    /// evaluation adds and stored points do not have).
    pub fn exact(name: &str, labels: &Labels) -> Selector {
        Selector {
            name: name.to_string(),
            matchers: labels
                .iter()
                .filter(|(k, _)| k.as_str() != QUANTILE_LABEL)
                .map(|(k, v)| Matcher {
                    label: k.clone(),
                    op: MatchOp::Eq,
                    value: v.clone(),
                    regex: None,
                })
                .collect(),
        }
    }
}

/// The compiled size a user's label regex may take (the regex crate's default is 10 MiB).
pub const USER_REGEX_BYTES: usize = 256 * 1024;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '/')
}

/// Parses `name`, `name{}` or `name{k="v", k2!="v", k3=~"re", k4!~"re"}`.
pub fn parse_selector(text: &str) -> Result<Selector, String> {
    crate::model::query_text::check("query", text).map_err(|e| e.to_string())?;
    let text = text.trim();
    let name_end = text.find(|c: char| !is_name_char(c)).unwrap_or(text.len());
    let name = &text[..name_end];
    if name.is_empty() {
        return Err(format!("query: {text:?} does not start with a metric name"));
    }
    let rest = text[name_end..].trim();
    let mut matchers = Vec::new();
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| format!("query: expected {{label=\"value\", …}} after {name:?}"))?;
        let mut s = inner.trim();
        while !s.is_empty() {
            let label_end = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
            let label = &s[..label_end];
            if label.is_empty() {
                return Err(format!("query: expected a label name at {s:?}"));
            }
            s = s[label_end..].trim_start();
            let (op, len) = if s.starts_with("=~") {
                (MatchOp::Re, 2)
            } else if s.starts_with("!~") {
                (MatchOp::NotRe, 2)
            } else if s.starts_with("!=") {
                (MatchOp::Ne, 2)
            } else if s.starts_with('=') {
                (MatchOp::Eq, 1)
            } else {
                return Err(format!(
                    "query: expected =, !=, =~ or !~ after label {label:?}"
                ));
            };
            s = s[len..].trim_start();
            let (value, after) = quoted(s)
                .ok_or_else(|| format!("query: the value of {label:?} must be in double quotes"))?;
            let regex = match op {
                MatchOp::Re | MatchOp::NotRe => Some(
                    regex::RegexBuilder::new(&format!("^(?:{value})$"))
                        // A user's regex compiles into at most this much memory.
                        .size_limit(USER_REGEX_BYTES)
                        .build()
                        .map_err(|e| format!("query: regex for {label:?}: {e}"))?,
                ),
                _ => None,
            };
            matchers.push(Matcher {
                label: label.to_string(),
                op,
                value,
                regex,
            });
            s = after.trim_start();
            if let Some(more) = s.strip_prefix(',') {
                s = more.trim_start();
            } else if !s.is_empty() {
                return Err(format!("query: expected , or }} at {s:?}"));
            }
        }
    }
    Ok(Selector {
        name: name.to_string(),
        matchers,
    })
}

/// A double-quoted string with `\"` and `\\` escapes, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

/// A point's labels: its attributes as text, and its service.
pub fn labels_of(m: &MetricPoint) -> Labels {
    let mut labels: Labels = m
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.to_text()))
        .collect();
    labels.insert(SERVICE_LABEL.to_string(), m.service.clone());
    labels
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub start_ns: u64,
    pub end_ns: u64,
    pub step_ns: u64,
    /// Quantiles asked of histograms and summaries, each giving its own series.
    pub quantiles: Vec<f64>,
    /// Sum the selected series by these labels (`None`: keep every series apart).
    pub by: Option<Vec<String>>,
}

impl Spec {
    pub fn steps(&self) -> usize {
        ((self.end_ns.saturating_sub(self.start_ns)) / self.step_ns.max(1)) as usize + 1
    }

    fn step_of(&self, t: u64) -> Option<usize> {
        (t >= self.start_ns && t <= self.end_ns)
            .then(|| ((t - self.start_ns) / self.step_ns.max(1)) as usize)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// `gauge`, `rate` (per second), `value` (a non-monotonic sum) or `quantile`.
    pub kind: &'static str,
    pub unit: String,
    pub labels: Labels,
    /// `(step start, value)`; steps without data are left out.
    pub points: Vec<(u64, f64)>,
    pub exemplars: Vec<Exemplar>,
}

/// The most exemplars one series returns: the highest values are kept.
pub const MAX_EXEMPLARS: usize = 200;

/// What one stored point adds to its step once cumulative values are turned into changes.
#[derive(Debug, Clone)]
enum Contribution {
    Gauge(f64),
    Delta(f64),
    Level(f64),
    Buckets(Vec<f64>, Vec<u64>),
    Quantiles(Vec<(f64, f64)>),
}

/// Explicit-bound buckets of an exponential histogram (zero and negative counts go to a
/// first bucket bounded by 0).
pub fn exponential_buckets(
    scale: i32,
    zero: u64,
    offset: i32,
    positive: &[u64],
    negative: &[u64],
) -> (Vec<f64>, Vec<u64>) {
    let base = 2f64.powf(2f64.powi(-scale));
    let mut bounds = vec![0.0];
    let mut counts = vec![sum_counts(negative).saturating_add(zero)];
    for (i, c) in positive.iter().enumerate() {
        bounds.push(base.powi(offset + i as i32 + 1));
        counts.push(*c);
    }
    counts.push(0);
    (bounds, counts)
}

/// Turns one raw series (time-ordered) into per-point contributions.
fn contributions(points: &[&MetricPoint]) -> Vec<(u64, Contribution)> {
    let mut out = Vec::with_capacity(points.len());
    let mut prev: Option<&MetricPoint> = None;
    for p in points {
        // OTLP's "no recorded value" flag: the point carries exemplars (or marks a gap),
        // not a value of the series.
        if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
            continue;
        }
        let restarted = |prev: Option<&MetricPoint>| {
            prev.is_none_or(|q| q.start_ns != p.start_ns && p.start_ns != 0)
        };
        let c = match &p.value {
            MetricValue::Gauge(v) => Some(Contribution::Gauge(*v)),
            MetricValue::Sum {
                value,
                monotonic,
                temporality,
            } => match (temporality, monotonic) {
                (Temporality::Delta, true) => Some(Contribution::Delta(*value)),
                (Temporality::Delta, false) => Some(Contribution::Delta(*value)),
                (_, false) => Some(Contribution::Level(*value)),
                (_, true) => match prev.map(|q| &q.value) {
                    Some(MetricValue::Sum { value: before, .. }) if !restarted(prev) => {
                        // A drop is a counter reset: the new value is all growth since.
                        Some(Contribution::Delta(if value >= before {
                            value - before
                        } else {
                            *value
                        }))
                    }
                    _ => None,
                },
            },
            MetricValue::Histogram {
                bounds,
                bucket_counts,
                temporality,
                ..
            } => match temporality {
                Temporality::Delta => {
                    Some(Contribution::Buckets(bounds.clone(), bucket_counts.clone()))
                }
                _ => match prev.map(|q| &q.value) {
                    Some(MetricValue::Histogram {
                        bounds: b0,
                        bucket_counts: c0,
                        ..
                    }) if b0 == bounds && c0.len() == bucket_counts.len() && !restarted(prev) => {
                        let reset = bucket_counts.iter().zip(c0).any(|(a, b)| a < b);
                        let counts = if reset {
                            bucket_counts.clone()
                        } else {
                            bucket_counts.iter().zip(c0).map(|(a, b)| a - b).collect()
                        };
                        Some(Contribution::Buckets(bounds.clone(), counts))
                    }
                    _ => None,
                },
            },
            MetricValue::ExponentialHistogram {
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
                match temporality {
                    Temporality::Delta => Some(Contribution::Buckets(bounds, counts)),
                    _ => match prev.map(|q| &q.value) {
                        Some(MetricValue::ExponentialHistogram {
                            scale: s0,
                            zero_count: z0,
                            positive_offset: o0,
                            positive: p0,
                            negative: n0,
                            ..
                        }) if !restarted(prev) => {
                            let (b0, c0) = exponential_buckets(*s0, *z0, *o0, p0, n0);
                            (b0 == bounds && c0.iter().zip(&counts).all(|(a, b)| a <= b)).then(
                                || {
                                    Contribution::Buckets(
                                        bounds,
                                        counts.iter().zip(&c0).map(|(a, b)| a - b).collect(),
                                    )
                                },
                            )
                        }
                        _ => None,
                    },
                }
            }
            MetricValue::Summary { quantiles, .. } => {
                Some(Contribution::Quantiles(quantiles.clone()))
            }
        };
        if let Some(c) = c {
            out.push((p.time_ns, c));
        }
        prev = Some(p);
    }
    out
}

/// Bucket counts come from clients: they add up without overflowing.
fn sum_counts(counts: &[u64]) -> u64 {
    counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
}

/// The `q` quantile of a histogram by linear interpolation inside the bucket that holds it,
/// as Prometheus' `histogram_quantile` does: the first bucket starts at 0 (or its bound when
/// that is negative), and a rank in the overflow bucket returns the highest finite bound.
pub fn histogram_quantile(q: f64, bounds: &[f64], counts: &[u64]) -> Option<f64> {
    let total = sum_counts(counts);
    if total == 0 || bounds.is_empty() {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c > 0 && below.saturating_add(c) as f64 >= rank {
            let Some(&upper) = bounds.get(i) else {
                return bounds.last().copied();
            };
            let lower = if i == 0 {
                upper.min(0.0)
            } else {
                bounds[i - 1]
            };
            let within = (rank - below as f64) / c as f64;
            return Some(lower + (upper - lower) * within);
        }
        below = below.saturating_add(c);
    }
    bounds.last().copied()
}

/// Per step of one output series: what its contributions add up to.
#[derive(Debug, Clone, Default)]
struct StepAcc {
    gauge: Option<f64>,
    delta: Option<f64>,
    level: Option<f64>,
    buckets: Option<(Vec<f64>, Vec<u64>)>,
    quantiles: Option<Vec<(f64, f64)>>,
}

impl StepAcc {
    /// Adds one raw series' step value; several raw series meet here when summed `by` labels.
    fn merge(&mut self, other: &StepAcc) {
        let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(x), Some(y)) => Some(x + y),
            (x, y) => x.or(y),
        };
        self.gauge = add(self.gauge, other.gauge);
        self.delta = add(self.delta, other.delta);
        self.level = add(self.level, other.level);
        match (&mut self.buckets, &other.buckets) {
            (Some((b, c)), Some((ob, oc))) if b == ob && c.len() == oc.len() => {
                c.iter_mut()
                    .zip(oc)
                    .for_each(|(x, y)| *x = x.saturating_add(*y));
            }
            (None, Some(o)) => self.buckets = Some(o.clone()),
            _ => {}
        }
        if self.quantiles.is_none() {
            self.quantiles = other.quantiles.clone();
        }
    }
}

/// Series × steps one query may evaluate. The work and the answer grow with it even where
/// steps are empty (anomaly detection walks every step), so it is checked before any.
pub const MAX_SERIES_STEPS: usize = 5_000_000;

/// Evaluates stored points (any order) of the series the selector chose. Steps are kept
/// sparse (memory follows the points, not the steps); more than `MAX_SERIES_STEPS` series ×
/// steps is refused before any work.
pub fn evaluate(points: &[MetricPoint], spec: &Spec) -> Result<Vec<Series>, IndexError> {
    let mut raw: BTreeMap<Labels, Vec<&MetricPoint>> = BTreeMap::new();
    for p in points {
        raw.entry(labels_of(p)).or_default().push(p);
    }
    let cells = raw.len().saturating_mul(spec.steps());
    if cells > MAX_SERIES_STEPS {
        return Err(IndexError::TooCostly(format!(
            "{} series × {} steps = {cells} is over the limit of {MAX_SERIES_STEPS}; use a \
             larger step, a shorter window, a narrower selector or fewer `by` labels",
            raw.len(),
            spec.steps()
        )));
    }
    struct Out {
        unit: String,
        steps: BTreeMap<usize, StepAcc>,
        exemplars: Vec<Exemplar>,
    }
    let mut grouped: BTreeMap<Labels, Out> = BTreeMap::new();
    let name = points.first().map(|p| p.name.clone()).unwrap_or_default();
    for (labels, mut pts) in raw {
        pts.sort_by_key(|p| p.time_ns);
        let mut steps: BTreeMap<usize, StepAcc> = BTreeMap::new();
        for (t, c) in contributions(&pts) {
            let Some(i) = spec.step_of(t) else { continue };
            let s = steps.entry(i).or_default();
            match c {
                Contribution::Gauge(v) => s.gauge = Some(v),
                Contribution::Level(v) => s.level = Some(v),
                Contribution::Delta(v) => s.delta = Some(s.delta.unwrap_or(0.0) + v),
                Contribution::Buckets(b, c) => match &mut s.buckets {
                    Some((b0, c0)) if *b0 == b && c0.len() == c.len() => c0
                        .iter_mut()
                        .zip(&c)
                        .for_each(|(x, y)| *x = x.saturating_add(*y)),
                    _ => s.buckets = Some((b, c)),
                },
                Contribution::Quantiles(q) => s.quantiles = Some(q),
            }
        }
        let key = match &spec.by {
            None => labels,
            Some(by) => labels.into_iter().filter(|(k, _)| by.contains(k)).collect(),
        };
        let out = grouped.entry(key).or_insert_with(|| Out {
            unit: pts[0].unit.clone(),
            steps: BTreeMap::new(),
            exemplars: Vec::new(),
        });
        for (i, s) in &steps {
            out.steps.entry(*i).or_default().merge(s);
        }
        out.exemplars.extend(
            pts.iter()
                .flat_map(|p| p.exemplars.iter())
                .filter(|e| e.time_ns >= spec.start_ns && e.time_ns <= spec.end_ns + spec.step_ns)
                .cloned(),
        );
    }
    let step_secs = spec.step_ns as f64 / 1e9;
    let mut series = Vec::new();
    for (labels, mut out) in grouped {
        if out.exemplars.len() > MAX_EXEMPLARS {
            out.exemplars.sort_by(|a, b| b.value.total_cmp(&a.value));
            out.exemplars.truncate(MAX_EXEMPLARS);
        }
        out.exemplars.sort_by_key(|e| e.time_ns);
        let at = |i: usize| spec.start_ns + i as u64 * spec.step_ns;
        let single = |kind: &'static str, f: &dyn Fn(&StepAcc) -> Option<f64>| {
            let points: Vec<(u64, f64)> = out
                .steps
                .iter()
                .filter_map(|(i, s)| f(s).map(|v| (at(*i), v)))
                .collect();
            (!points.is_empty()).then(|| Series {
                name: name.clone(),
                kind,
                unit: out.unit.clone(),
                labels: labels.clone(),
                points,
                exemplars: out.exemplars.clone(),
            })
        };
        series.extend(single("gauge", &|s| s.gauge));
        series.extend(single("rate", &|s| s.delta.map(|d| d / step_secs)));
        series.extend(single("value", &|s| s.level));
        let has_distribution = out
            .steps
            .values()
            .any(|s| s.buckets.is_some() || s.quantiles.is_some());
        if has_distribution {
            for &q in &spec.quantiles {
                let value = |s: &StepAcc| match (&s.buckets, &s.quantiles) {
                    (Some((b, c)), _) => histogram_quantile(q, b, c),
                    (None, Some(qs)) => qs
                        .iter()
                        .min_by(|a, b| (a.0 - q).abs().total_cmp(&(b.0 - q).abs()))
                        .map(|x| x.1),
                    _ => None,
                };
                if let Some(mut s) = single("quantile", &value) {
                    s.labels.insert(QUANTILE_LABEL.into(), q.to_string());
                    series.push(s);
                }
            }
        }
    }
    Ok(series)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttrValue, KeyValue, Scope};

    const S: u64 = 1_000_000_000;

    fn point(t: u64, value: MetricValue, route: &str) -> MetricPoint {
        MetricPoint {
            name: "m".into(),
            description: String::new(),
            unit: "ms".into(),
            time_ns: t,
            start_ns: 1,
            service: "api".into(),
            resource: vec![],
            scope: Scope {
                name: String::new(),
                version: String::new(),
            },
            attributes: vec![KeyValue {
                key: "route".into(),
                value: AttrValue::Str(route.into()),
            }],
            value,
            exemplars: vec![],
            flags: 0,
        }
    }

    fn spec(by: Option<Vec<String>>) -> Spec {
        Spec {
            start_ns: 100 * S,
            end_ns: 139 * S,
            step_ns: 10 * S,
            quantiles: vec![0.5, 0.9],
            by,
        }
    }

    fn counter(v: f64) -> MetricValue {
        MetricValue::Sum {
            value: v,
            monotonic: true,
            temporality: Temporality::Cumulative,
        }
    }

    #[test]
    fn selectors_parse_and_match() {
        let s = parse_selector(
            r#"http.duration{service.name="api", route=~"/cart.*",code!="200", x!~"a|b"}"#,
        )
        .unwrap();
        assert_eq!(s.name, "http.duration");
        assert_eq!(s.matchers.len(), 4);
        let mut l = Labels::new();
        l.insert("service.name".into(), "api".into());
        l.insert("route".into(), "/cart/1".into());
        l.insert("code".into(), "500".into());
        assert!(s.matches(&l));
        l.insert("x".into(), "a".into());
        assert!(!s.matches(&l));
        // Anchored: "/cartx" matches /cart.*, "x/cart" does not.
        l.insert("x".into(), "c".into());
        l.insert("route".into(), "x/cart".into());
        assert!(!s.matches(&l));
        assert_eq!(parse_selector("up").unwrap().matchers.len(), 0);
        assert_eq!(
            parse_selector(r#"a{k="q\"uote"}"#).unwrap().matchers[0].value,
            "q\"uote"
        );
        for bad in [
            "",
            "{a=\"b\"}",
            "m{a=b}",
            "m{a~\"b\"}",
            "m{a=\"b\"",
            "m{a=~\"(\"}",
            "m{a=\"b\" c=\"d\"}",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn counters_become_rates_across_resets() {
        // Cumulative 0, 50, 100 | reset to 20, 80 : deltas 50, 50, 20, 60 at 105,115,125,135.
        let pts: Vec<MetricPoint> = [
            (95, 0.0),
            (105, 50.0),
            (115, 100.0),
            (125, 20.0),
            (135, 80.0),
        ]
        .iter()
        .map(|&(t, v)| point(t * S, counter(v), "/"))
        .collect();
        let out = evaluate(&pts, &spec(None)).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, "rate");
        assert_eq!(
            out[0].points,
            vec![
                (100 * S, 5.0),
                (110 * S, 5.0),
                (120 * S, 2.0),
                (130 * S, 6.0)
            ]
        );
    }

    #[test]
    fn gauges_keep_the_last_value_and_sum_by_label() {
        let pts = vec![
            point(101 * S, MetricValue::Gauge(1.0), "/a"),
            point(109 * S, MetricValue::Gauge(3.0), "/a"),
            point(105 * S, MetricValue::Gauge(10.0), "/b"),
        ];
        let apart = evaluate(&pts, &spec(None)).unwrap();
        assert_eq!(apart.len(), 2);
        assert_eq!(apart[0].points, vec![(100 * S, 3.0)]);
        let summed = evaluate(&pts, &spec(Some(vec![SERVICE_LABEL.into()]))).unwrap();
        assert_eq!(summed.len(), 1);
        assert_eq!(summed[0].labels.len(), 1);
        assert_eq!(summed[0].points, vec![(100 * S, 13.0)]);
    }

    #[test]
    fn histogram_quantiles_interpolate_like_prometheus() {
        // 10 in (0,10], 80 in (10,100], 10 in (100, +inf)
        let bounds = [10.0, 100.0];
        let counts = [10, 80, 10];
        assert_eq!(
            histogram_quantile(0.5, &bounds, &counts),
            Some(10.0 + 90.0 * 0.5)
        );
        assert_eq!(histogram_quantile(0.05, &bounds, &counts), Some(5.0));
        assert_eq!(histogram_quantile(0.95, &bounds, &counts), Some(100.0));
        assert_eq!(histogram_quantile(0.5, &bounds, &[0, 0, 0]), None);
        let delta = |c: Vec<u64>| MetricValue::Histogram {
            count: c.iter().sum(),
            sum: None,
            min: None,
            max: None,
            bounds: bounds.to_vec(),
            bucket_counts: c,
            temporality: Temporality::Delta,
        };
        let pts = vec![
            point(101 * S, delta(vec![5, 40, 5]), "/"),
            point(102 * S, delta(vec![5, 40, 5]), "/"),
        ];
        let out = evaluate(&pts, &spec(None)).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].labels["quantile"], "0.5");
        assert_eq!(out[0].points, vec![(100 * S, 55.0)]);
        assert_eq!(out[1].points[0].1, 10.0 + 90.0 * (80.0 / 80.0));
    }

    #[test]
    fn huge_counts_saturate_instead_of_overflowing() {
        let c = vec![u64::MAX, u64::MAX, 3];
        // The total saturates at u64::MAX: the median is half-way into the first bucket.
        assert_eq!(histogram_quantile(0.5, &[1.0, 2.0], &c), Some(0.5));
        let h = MetricValue::Histogram {
            count: u64::MAX,
            sum: None,
            min: None,
            max: None,
            bounds: vec![1.0, 2.0],
            bucket_counts: c,
            temporality: Temporality::Delta,
        };
        let pts = vec![point(101 * S, h.clone(), "/"), point(102 * S, h, "/")];
        assert_eq!(evaluate(&pts, &spec(None)).unwrap().len(), 2);
        let (_, counts) = exponential_buckets(0, u64::MAX, 0, &[1], &[u64::MAX]);
        assert_eq!(counts[0], u64::MAX);
    }

    #[test]
    fn exponential_histograms_have_power_of_two_bounds() {
        let (b, c) = exponential_buckets(0, 1, 2, &[3, 4], &[2]);
        assert_eq!(b, vec![0.0, 8.0, 16.0]);
        assert_eq!(c, vec![3, 3, 4, 0]);
    }
}
