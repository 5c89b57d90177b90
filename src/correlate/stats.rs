//! Robust statistics for anomaly detection: each point of a series is compared with the median
//! of the points just before it, in units of their median absolute deviation (MAD). Median and
//! MAD ignore the outliers they are looking for, so one spike does not hide the next. Points of
//! an anomaly never join the baseline: a level shift lasts until the series returns to its
//! old level.

use serde::{Deserialize, Serialize};

/// MAD × this estimates the standard deviation of normally distributed data.
const MAD_TO_SIGMA: f64 = 1.4826;
/// Mean absolute deviation × this does the same.
const MEAN_AD_TO_SIGMA: f64 = 1.2533;

/// The median of `xs` (reordered in place); `None` when empty.
pub fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// Median absolute deviation from `center`.
pub fn mad(xs: &[f64], center: f64) -> f64 {
    let mut dev: Vec<f64> = xs.iter().map(|x| (x - center).abs()).collect();
    median(&mut dev).unwrap_or(0.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A short excursion: fewer than `level_shift_points` anomalous points.
    Spike,
    /// A sustained change of level.
    LevelShift,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
    Both,
}

/// Serialized as the anomalies answer reports the thresholds it used.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Thresholds {
    /// Robust z-score (deviation / (1.4826 × MAD)) at or above which a point is anomalous.
    pub threshold: f64,
    /// Points of trailing baseline a point is compared with.
    pub baseline_points: usize,
    /// No verdict on a point until this many baseline points exist.
    pub min_baseline_points: usize,
    /// An anomaly this many points long or longer is a level shift.
    pub level_shift_points: usize,
    /// A deviation must also be at least this fraction of the baseline median, so a flat
    /// series (MAD 0) does not turn noise into alarms.
    pub min_relative_change: f64,
    /// And at least this much in absolute terms (the series' own unit).
    pub min_absolute_change: f64,
    pub direction: Direction,
}

/// The `[anomalies]` settings; no absolute floor and both directions unless a caller says.
impl From<&crate::config::AnomalySettings> for Thresholds {
    fn from(a: &crate::config::AnomalySettings) -> Self {
        Thresholds {
            threshold: a.threshold,
            baseline_points: a.baseline_points,
            min_baseline_points: a.min_baseline_points,
            level_shift_points: a.level_shift_points,
            min_relative_change: a.min_relative_change,
            min_absolute_change: 0.0,
            direction: Direction::Both,
        }
    }
}

/// The shipped `[anomalies]` defaults.
impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::from(&crate::config::AnomalySettings::default())
    }
}

/// One run of anomalous points, by index into the series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detected {
    pub kind: AnomalyKind,
    pub start: usize,
    pub peak: usize,
    pub end: usize,
    /// Robust z-score at the peak (signed: negative for a drop).
    pub score: f64,
    /// Baseline median at the start of the run.
    pub baseline: f64,
    pub peak_value: f64,
    /// The run reaches the last point of the series: it may not be over.
    pub ongoing: bool,
}

/// The spread of a baseline around its median, as a standard deviation estimate.
fn spread(baseline: &[f64], med: f64) -> f64 {
    let sigma = MAD_TO_SIGMA * mad(baseline, med);
    if sigma > 0.0 {
        return sigma;
    }
    // When more than half the baseline sits on the median, MAD is 0 although the series
    // varies; the mean absolute deviation (× 1.2533 estimates sigma) still sees it.
    let mean_ad = baseline.iter().map(|x| (x - med).abs()).sum::<f64>() / baseline.len() as f64;
    MEAN_AD_TO_SIGMA * mean_ad
}

/// The robust z-score of `x` against the baseline median, with the spread given, or `None`
/// when it is within the thresholds.
fn deviation(x: f64, med: f64, sigma: f64, t: &Thresholds) -> Option<f64> {
    let diff = x - med;
    let wanted = match t.direction {
        Direction::Up => diff > 0.0,
        Direction::Down => diff < 0.0,
        Direction::Both => diff != 0.0,
    };
    if !wanted
        || diff.abs() < t.min_absolute_change
        || diff.abs() < t.min_relative_change * med.abs()
    {
        return None;
    }
    // A flat baseline has no spread: the deviation is then measured against the smallest
    // change the thresholds accept, so it still gets a finite, comparable score.
    let floor = (t.min_relative_change * med.abs())
        .max(t.min_absolute_change)
        .max(f64::EPSILON)
        / t.threshold;
    let z = diff / sigma.max(floor);
    (z.abs() >= t.threshold).then_some(z)
}

/// Finds spikes and level shifts. `None` values (empty steps) are skipped: they neither count
/// as baseline nor break a run.
///
/// Each point is compared with the median of the trailing baseline of normal points. The
/// spread is taken from the baseline as it was when a run began: the run's own points would
/// otherwise inflate it and cut the run short.
pub fn detect(values: &[Option<f64>], t: &Thresholds) -> Vec<Detected> {
    let mut out: Vec<Detected> = Vec::new();
    let mut history: Vec<f64> = Vec::new();
    let mut run: Option<(Detected, usize, f64)> = None;
    let last = values.iter().rposition(Option::is_some);
    for (i, v) in values.iter().enumerate() {
        let Some(x) = *v else { continue };
        let verdict = if history.len() >= t.min_baseline_points {
            let from = history.len().saturating_sub(t.baseline_points);
            let mut b = history[from..].to_vec();
            let med = median(&mut b).unwrap_or(0.0);
            let sigma = run.as_ref().map_or_else(|| spread(&b, med), |r| r.2);
            deviation(x, med, sigma, t).map(|z| (z, med, sigma))
        } else {
            None
        };
        // The baseline does not absorb an ongoing anomaly: a run's points stay out of the
        // history, so an hour-long fault stays one anomaly and the return to normal ends it
        // instead of looking like a second, opposite change.
        if verdict.is_none() {
            history.push(x);
        }
        match (verdict, run.as_mut()) {
            (Some((z, _, _)), Some((r, len, _))) => {
                *len += 1;
                r.end = i;
                if z.abs() > r.score.abs() {
                    (r.peak, r.score, r.peak_value) = (i, z, x);
                }
            }
            (Some((z, med, sigma)), None) => {
                let d = Detected {
                    kind: AnomalyKind::Spike,
                    start: i,
                    peak: i,
                    end: i,
                    score: z,
                    baseline: med,
                    peak_value: x,
                    ongoing: false,
                };
                run = Some((d, 1, sigma));
            }
            (None, _) => {
                if let Some((r, len, _)) = run.take() {
                    out.push(finish(r, len, t, false));
                }
            }
        }
    }
    if let Some((r, len, _)) = run.take() {
        let ongoing = Some(r.end) == last;
        out.push(finish(r, len, t, ongoing));
    }
    out
}

fn finish(mut r: Detected, len: usize, t: &Thresholds, ongoing: bool) -> Detected {
    if len >= t.level_shift_points {
        r.kind = AnomalyKind::LevelShift;
    }
    r.ongoing = ongoing;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(xs: &[f64]) -> Vec<Option<f64>> {
        xs.iter().copied().map(Some).collect()
    }

    #[test]
    fn median_and_mad_known_answers() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
        // |x - 2| = 1, 1, 0, 2, 7 -> median 1
        assert_eq!(mad(&[1.0, 3.0, 2.0, 4.0, 9.0], 2.0), 1.0);
    }

    #[test]
    fn a_spike_is_found_with_start_peak_and_end() {
        let mut xs = vec![10.0, 11.0, 9.0, 10.0, 10.5, 9.5, 10.0, 10.2, 9.8, 10.1];
        xs.extend([30.0, 50.0, 25.0]);
        xs.extend([10.0, 9.9, 10.1]);
        let found = detect(&series(&xs), &Thresholds::default());
        assert_eq!(found.len(), 1, "{found:?}");
        let a = &found[0];
        assert_eq!(
            (a.kind, a.start, a.peak, a.end),
            (AnomalyKind::Spike, 10, 11, 12)
        );
        assert_eq!(a.peak_value, 50.0);
        assert_eq!(a.baseline, 10.0);
        // 1.4826 × MAD of the baseline (0.2) is below the floor that min_relative_change sets,
        // 0.2 × 10 / 5 = 0.4, so z = (50 - 10) / 0.4.
        assert!((a.score - 100.0).abs() < 1e-9, "{}", a.score);
        assert!(!a.ongoing);
    }

    #[test]
    fn a_level_shift_lasts_until_the_series_returns_and_the_return_is_no_anomaly() {
        // 1 for 20 points, 5 for 200 (far longer than the 12-point baseline), 1 again.
        let mut xs = vec![1.0; 20];
        xs.extend(vec![5.0; 200]);
        xs.extend(vec![1.0; 20]);
        let t = Thresholds {
            baseline_points: 12,
            ..Thresholds::default()
        };
        let found = detect(&series(&xs), &t);
        assert_eq!(
            found.len(),
            1,
            "one anomaly, no second one for the recovery: {found:?}"
        );
        let a = &found[0];
        assert_eq!(a.kind, AnomalyKind::LevelShift);
        assert_eq!((a.start, a.end), (20, 219));
        assert!(!a.ongoing);
        // Still at the new level at the end: ongoing.
        let found = detect(&series(&xs[..200]), &t);
        assert_eq!((found.len(), found[0].ongoing), (1, true));
    }

    #[test]
    fn flat_baselines_need_a_real_change_and_direction_is_respected() {
        // Zero errors, then one stray error per step: below the absolute floor.
        let mut xs = vec![0.0; 12];
        xs.push(0.2);
        let t = Thresholds {
            min_absolute_change: 0.5,
            direction: Direction::Up,
            ..Thresholds::default()
        };
        assert!(detect(&series(&xs), &t).is_empty());
        xs.push(4.0);
        let found = detect(&series(&xs), &t);
        assert_eq!(found.len(), 1);
        assert!(found[0].ongoing);
        assert_eq!(found[0].start, 13);
        // A drop is ignored when only rises are asked for.
        let mut drop = vec![10.0; 12];
        drop.push(0.0);
        assert!(detect(&series(&drop), &t).is_empty());
    }

    #[test]
    fn a_mostly_constant_baseline_still_has_a_spread() {
        // 3 most of the time, sometimes 2 or 4: MAD is 0, the mean absolute deviation is 0.2.
        let mut xs = vec![3.0, 3.0, 2.0, 3.0, 3.0, 4.0, 3.0, 3.0, 3.0, 3.0];
        xs.push(4.0);
        assert!(detect(&series(&xs), &Thresholds::default()).is_empty());
        // 20 is z = 17 / (1.2533 × 0.2) ≈ 67.8.
        xs.push(20.0);
        let found = detect(&series(&xs), &Thresholds::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].start, 11);
        let mean_ad = 3.0 / 11.0;
        assert!(
            (found[0].score - 17.0 / (1.2533 * mean_ad)).abs() < 1e-6,
            "{}",
            found[0].score
        );
    }

    #[test]
    fn too_little_baseline_and_gaps() {
        let xs = [Some(1.0), Some(1.0), Some(100.0)];
        assert!(detect(&xs, &Thresholds::default()).is_empty());
        let mut gappy: Vec<Option<f64>> = vec![Some(2.0); 8];
        gappy.push(None);
        gappy.push(Some(40.0));
        let found = detect(&gappy, &Thresholds::default());
        assert_eq!(found[0].start, 9);
    }
}
