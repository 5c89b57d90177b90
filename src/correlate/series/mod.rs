//! Metric series: selecting them (`selector`: `name{label="v",other=~"re"}`, as Prometheus
//! writes it), what each stored point adds to its step (`contributions`), and here the
//! evaluation that turns them into one value per step — gauges as values, counters as
//! per-second rates, histograms as quantiles — with the exemplars that point at traces.

use crate::index::IndexError;
use crate::model::{Exemplar, MetricPoint};
use std::collections::BTreeMap;

/// The label that holds a point's service (its resource's `service.name`).
pub const SERVICE_LABEL: &str = "service.name";
/// The label evaluation gives each quantile series of a histogram or summary.
pub const QUANTILE_LABEL: &str = "quantile";

pub type Labels = BTreeMap<String, String>;

/// OTLP's `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
pub const FLAG_NO_RECORDED_VALUE: u32 = 1;

mod contributions;
mod selector;

use contributions::{contributions, Buckets, Contribution};
pub use contributions::{exponential_buckets, histogram_quantile};
pub use selector::{labels_of, parse_selector, MatchOp, Matcher, Selector, USER_REGEX_BYTES};

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

/// Per step of one output series: what its contributions add up to.
#[derive(Debug, Clone, Default)]
struct StepAcc {
    gauge: Option<f64>,
    delta: Option<f64>,
    level: Option<f64>,
    buckets: Option<Buckets>,
    quantiles: Option<Vec<(f64, f64)>>,
}

impl StepAcc {
    fn add_buckets(&mut self, b: Buckets) {
        match &mut self.buckets {
            Some(mine) => mine.add(b),
            None => self.buckets = Some(b),
        }
    }

    /// Adds one raw series' step value; several raw series meet here when summed `by` labels.
    fn merge(&mut self, other: &StepAcc) {
        let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(x), Some(y)) => Some(x + y),
            (x, y) => x.or(y),
        };
        self.gauge = add(self.gauge, other.gauge);
        self.delta = add(self.delta, other.delta);
        self.level = add(self.level, other.level);
        if let Some(o) = &other.buckets {
            self.add_buckets(o.clone());
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
                Contribution::Buckets(b) => s.add_buckets(b),
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
                    (Some(b), _) => b.quantile(q),
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
    use crate::model::{AttrValue, KeyValue, MetricValue, Scope, Temporality};

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
    fn histogram_quantiles_stay_within_the_recorded_min_and_max() {
        // Every value fell in (10, 100] but none above 60 nor below 12: the bucket says up
        // to 100, the histogram's own max says 60.
        let h = |min: Option<f64>, max: Option<f64>, t: Temporality, c: Vec<u64>| {
            MetricValue::Histogram {
                count: c.iter().sum(),
                sum: None,
                min,
                max,
                bounds: vec![10.0, 100.0],
                bucket_counts: c,
                temporality: t,
            }
        };
        let q = |pts: Vec<MetricPoint>| -> Vec<f64> {
            let mut s = spec(None);
            s.quantiles = vec![0.01, 0.99];
            evaluate(&pts, &s)
                .unwrap()
                .iter()
                .map(|x| x.points[0].1)
                .collect()
        };
        let delta = Temporality::Delta;
        let clamped = q(vec![
            point(
                101 * S,
                h(Some(12.0), Some(60.0), delta, vec![0, 50, 0]),
                "/",
            ),
            point(
                102 * S,
                h(Some(15.0), Some(55.0), delta, vec![0, 50, 0]),
                "/",
            ),
        ]);
        assert_eq!(clamped, vec![12.0, 60.0]);
        // One point without min/max: the step's range is unknown, the buckets decide.
        let open = q(vec![
            point(
                101 * S,
                h(Some(12.0), Some(60.0), delta, vec![0, 50, 0]),
                "/",
            ),
            point(102 * S, h(None, None, delta, vec![0, 50, 0]), "/"),
        ]);
        assert!(open[0] < 12.0 && open[1] > 60.0, "{open:?}");
        // Cumulative: the range since the start still bounds each interval.
        let cum = Temporality::Cumulative;
        let cumulative = q(vec![
            point(100 * S, h(Some(20.0), Some(40.0), cum, vec![0, 10, 0]), "/"),
            point(101 * S, h(Some(20.0), Some(40.0), cum, vec![0, 60, 0]), "/"),
        ]);
        assert_eq!(cumulative, vec![20.0, 40.0]);
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
