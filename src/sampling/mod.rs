//! Sampling that keeps what matters across the three signals and records what it dropped.
//!
//! - `head`: what the sender's head sampling says of a span (W3C flags, `sampling.priority`,
//!   OTel `th` tracestate, Jaeger `sampler.*`) and its adjusted count, which RED weighs by.
//! - `policy`: the ordered tail-sampling policies over a trace summary.
//! - `tail`: follows traces as their spans arrive and decides each once it is complete.
//! - `decisions`: every decision, persisted in a versioned file.
//! - `adaptive`: per-operation probabilities that hold a spans/s budget per tenant.
//! - `prune`: past the full-fidelity horizon, deletes what was dropped (after a last look).
//! - `remote`: the Jaeger remote-sampling strategies SDKs read.
//!
//! May depend on `model`, `config`, `index` (to prune and look up) and `correlate::incidents`
//! (its public list). Metric points and exemplars are never dropped: only spans and logs.

pub mod adaptive;
pub mod decisions;
pub mod head;
pub mod policy;
pub mod prune;
pub mod remote;
pub mod tail;

pub use decisions::{Decision, Decisions};
pub use tail::{Sampler, State};

use crate::index::{Indexer, Store};
use crate::telemetry::Telemetry;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often complete traces are looked for.
const TICK: Duration = Duration::from_secs(1);

/// Starts the thread that decides complete traces every second, recomputes the adaptive
/// probabilities every interval and prunes past the horizon every `prune_interval_secs`.
pub fn start(
    sampler: Arc<Sampler>,
    store: Arc<Store>,
    indexer: Indexer,
    telemetry: Arc<Telemetry>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("weft-sampling".into())
        .spawn(move || {
            let settings = sampler.settings.clone();
            let adaptive_every = Duration::from_secs(settings.adaptive_interval_secs);
            let prune_every = Duration::from_secs(settings.prune_interval_secs);
            let mut next_adaptive = Instant::now() + adaptive_every;
            let mut next_prune = Instant::now() + prune_every;
            loop {
                std::thread::sleep(TICK);
                let now = Instant::now();
                let (kept, dropped) = sampler.decide_due(now);
                let c = &telemetry.sampling_decisions;
                c.with_label_values(&["kept"]).inc_by(kept as u64);
                c.with_label_values(&["dropped"]).inc_by(dropped as u64);
                telemetry.sampling_pending.set(sampler.pending() as i64);
                if now >= next_adaptive {
                    sampler.adaptive.recompute();
                    export_probabilities(&sampler, &telemetry);
                    next_adaptive = now + adaptive_every;
                }
                if now >= next_prune {
                    let horizon = crate::now_ns()
                        .saturating_sub(settings.full_fidelity_secs.saturating_mul(1_000_000_000));
                    match prune::prune_due(&sampler, &store, &indexer, horizon) {
                        Ok(stats) => {
                            telemetry.sampling_pruned.inc_by(stats.pruned as u64);
                            telemetry.sampling_rescued.inc_by(stats.rescued as u64);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "pruning sampled traces failed; retrying")
                        }
                    }
                    next_prune = now + prune_every;
                }
            }
        })
        .map(|_| ())
}

fn export_probabilities(sampler: &Sampler, telemetry: &Telemetry) {
    let all = sampler.adaptive.all();
    let per_op = all
        .iter()
        .flat_map(|(_, p)| p.per_operation.values().copied());
    let (min, max) = per_op.fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
        (lo.min(p), hi.max(p))
    });
    let default = all
        .iter()
        .map(|(_, p)| p.default)
        .fold(f64::INFINITY, f64::min);
    let g = &telemetry.sampling_probability;
    if min.is_finite() {
        g.with_label_values(&["min"]).set(min);
        g.with_label_values(&["max"]).set(max);
    }
    if default.is_finite() {
        g.with_label_values(&["default"]).set(default);
    }
}
