//! What stored points add to a step: cumulative counters and histograms turned into
//! changes (resets and gaps handled), gauges as they are, and quantiles of bucket counts.

use super::FLAG_NO_RECORDED_VALUE;
use crate::model::{MetricPoint, MetricValue, Temporality};

/// What one stored point adds to its step once cumulative values are turned into changes.
#[derive(Debug, Clone)]
pub(super) enum Contribution {
    Gauge(f64),
    Delta(f64),
    Level(f64),
    Buckets(Buckets),
    Quantiles(Vec<(f64, f64)>),
}

/// Bucket counts of a step, with the smallest and largest value recorded when every point in
/// it said (OTLP histograms may carry `min`/`max`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Buckets {
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
    /// For a cumulative histogram this is the range since its start, which still holds every
    /// value of one interval: a quantile clamped to it stays true.
    pub range: Option<(f64, f64)>,
}

impl Buckets {
    fn of(bounds: Vec<f64>, counts: Vec<u64>, min: Option<f64>, max: Option<f64>) -> Self {
        let range = min.zip(max).filter(|(lo, hi)| lo <= hi);
        Buckets {
            bounds,
            counts,
            range,
        }
    }

    /// Adds another series' or point's counts of the same step; different bounds cannot be
    /// added, and the later ones win (as a changed instrument's newer buckets should).
    pub fn add(&mut self, other: Buckets) {
        if self.bounds != other.bounds || self.counts.len() != other.counts.len() {
            *self = other;
            return;
        }
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(x, y)| *x = x.saturating_add(*y));
        self.range = self
            .range
            .zip(other.range)
            .map(|((a, b), (c, d))| (a.min(c), b.max(d)));
    }

    /// The `q` quantile by interpolation, never outside the recorded min and max: a bucket's
    /// bounds are wider than what fell in it (a p99 of 100 ms is wrong when the slowest
    /// request took 60).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let v = histogram_quantile(q, &self.bounds, &self.counts)?;
        Some(match self.range {
            Some((lo, hi)) => v.clamp(lo, hi),
            None => v,
        })
    }
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
pub(super) fn contributions(points: &[&MetricPoint]) -> Vec<(u64, Contribution)> {
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
                min,
                max,
                ..
            } => match temporality {
                Temporality::Delta => Some(Contribution::Buckets(Buckets::of(
                    bounds.clone(),
                    bucket_counts.clone(),
                    *min,
                    *max,
                ))),
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
                        Some(Contribution::Buckets(Buckets::of(
                            bounds.clone(),
                            counts,
                            *min,
                            *max,
                        )))
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
                    Temporality::Delta => Some(Contribution::Buckets(Buckets::of(
                        bounds, counts, None, None,
                    ))),
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
                                    Contribution::Buckets(Buckets::of(
                                        bounds,
                                        counts.iter().zip(&c0).map(|(a, b)| a - b).collect(),
                                        None,
                                        None,
                                    ))
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
