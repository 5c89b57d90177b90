//! The tail sampler: follows every trace as its spans arrive (a summary, not the spans),
//! decides it once no span came for `decision_wait_secs`, and records the decision. Until a
//! dropped trace's partition passes the full-fidelity horizon its spans stay stored, and an
//! exemplar, a WARN log, an incident or a user naming it in the meantime turns the decision
//! into a keep: sampling with hindsight. `prune` does the deleting.

use super::adaptive::Adaptive;
use super::decisions::{Decision, Decisions};
use super::policy::{self, Signals, TraceSummary};
use crate::config::{PolicyKind, PolicySettings, SamplingSettings};
use crate::correlate::incidents::{Incidents, Status};
use crate::model::{Batch, Record, TenantId, TraceId};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The lowest OTLP severity number of a WARN log.
pub const SEVERITY_WARN: i32 = 13;

type Key = (TenantId, TraceId);

#[derive(Default)]
struct Pending {
    summary: TraceSummary,
    /// The last time a span of it came or something named it.
    touched: Option<Instant>,
    by_exemplar: bool,
    by_log: bool,
    by_user: bool,
    /// The root span's adjusted count: how many traces this one stands for.
    weight: f64,
}

/// A token bucket per rate-limited policy: `rate` traces per second, bursts of one second.
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Sampler {
    pub settings: SamplingSettings,
    pub decisions: Arc<Decisions>,
    pub adaptive: Adaptive,
    incidents: Arc<Incidents>,
    pending: Mutex<HashMap<Key, Pending>>,
    buckets: Mutex<HashMap<usize, Bucket>>,
}

/// The answer about one trace: its decision, or that it still waits for one.
pub enum State {
    Decided(Decision),
    Pending { spans: u64 },
    Unknown,
}

impl Sampler {
    pub fn new(
        settings: SamplingSettings,
        decisions: Arc<Decisions>,
        incidents: Arc<Incidents>,
    ) -> Self {
        let adaptive = Adaptive::new(
            settings.budget_spans_per_sec,
            settings.adaptive_interval_secs,
            settings.min_traces_per_interval,
        );
        Self {
            settings,
            decisions,
            adaptive,
            incidents,
            pending: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn policies(&self) -> &[PolicySettings] {
        &self.settings.policies
    }

    /// The first configured policy of `kind`: the one a hindsight keep is recorded under.
    fn policy_of(&self, kind: PolicyKind) -> Option<&PolicySettings> {
        self.policies().iter().find(|p| p.kind == kind)
    }

    pub fn state(&self, tenant: &TenantId, trace_id: TraceId) -> State {
        if let Some(d) = self.decisions.get(tenant, trace_id) {
            return State::Decided(d);
        }
        match self.pending.lock().get(&(tenant.clone(), trace_id)) {
            Some(p) => State::Pending {
                spans: p.summary.spans,
            },
            None => State::Unknown,
        }
    }

    /// Follows a durable batch: spans into their traces' summaries; logs at WARN or above and
    /// exemplars name their traces. Runs on the WAL's hand-off to the indexer (and on replay).
    pub fn observe(&self, batch: &Batch) {
        if !self.settings.tail {
            return;
        }
        let now = Instant::now();
        let mut rescued = Vec::new();
        {
            let mut pending = self.pending.lock();
            let mut name =
                |trace_id: TraceId, kind: PolicyKind, rescued: &mut Vec<(Key, PolicyKind)>| {
                    let key = (batch.tenant.clone(), trace_id);
                    if let Some(p) = pending.get_mut(&key) {
                        match kind {
                            PolicyKind::Exemplar => p.by_exemplar = true,
                            _ => p.by_log = true,
                        }
                        p.touched = Some(now);
                    } else if self.decisions.get(&key.0, trace_id).is_some() {
                        rescued.push((key, kind));
                    } else if pending.len() < self.settings.max_pending_traces {
                        // Named before its spans came: the flag waits with an empty summary.
                        let p = pending.entry(key).or_default();
                        match kind {
                            PolicyKind::Exemplar => p.by_exemplar = true,
                            _ => p.by_log = true,
                        }
                        p.touched = Some(now);
                    }
                };
            for record in &batch.records {
                match record {
                    Record::Log(l) if l.severity_number >= SEVERITY_WARN => {
                        if let Some(t) = l.trace_id {
                            name(t, PolicyKind::Log, &mut rescued);
                        }
                    }
                    Record::Metric(m) => {
                        for t in m.exemplars.iter().filter_map(|e| e.trace_id) {
                            name(t, PolicyKind::Exemplar, &mut rescued);
                        }
                    }
                    _ => {}
                }
            }
            for record in &batch.records {
                let Record::Span(span) = record else { continue };
                let key = (batch.tenant.clone(), span.trace_id);
                if !pending.contains_key(&key)
                    && self.decisions.get(&key.0, span.trace_id).is_some()
                {
                    // A late span of a decided trace: it follows the decision unless it meets
                    // a policy on its own (a late failure).
                    let bits = policy::span_bits(self.policies(), span);
                    if bits != 0 {
                        let first = self.policies()[bits.trailing_zeros() as usize].kind;
                        rescued.push((key, first));
                    }
                    continue;
                }
                if !pending.contains_key(&key) && pending.len() >= self.settings.max_pending_traces
                {
                    continue; // undecided traces are kept: full, we keep rather than guess
                }
                let p = pending.entry(key).or_default();
                if p.summary.spans == 0 {
                    p.weight = 1.0;
                }
                p.summary.add(self.policies(), span);
                if span.parent_span_id.is_none() {
                    p.weight = super::head::adjusted_count(span);
                }
                p.touched = Some(now);
            }
        }
        for (key, kind) in rescued {
            self.keep_in_hindsight(&key.0, key.1, kind);
        }
    }

    /// A user opened or bookmarked the trace: kept if a `user` policy is configured.
    pub fn opened(&self, tenant: &TenantId, trace_id: TraceId) {
        if !self.settings.tail || self.policy_of(PolicyKind::User).is_none() {
            return;
        }
        {
            let key = (tenant.clone(), trace_id);
            let mut pending = self.pending.lock();
            if let Some(p) = pending.get_mut(&key) {
                p.by_user = true;
                return;
            }
            if self.decisions.get(tenant, trace_id).is_none() {
                // Opened before its spans came (a link from a log): they will be kept.
                if pending.len() < self.settings.max_pending_traces {
                    let p = pending.entry(key).or_default();
                    p.by_user = true;
                    p.touched = Some(Instant::now());
                }
                return;
            }
        }
        self.keep_in_hindsight(tenant, trace_id, PolicyKind::User);
    }

    /// Turns a drop whose spans are still stored into a keep, in the name of the first policy
    /// of `kind` (for a late span, the kind of the first per-span policy it met).
    fn keep_in_hindsight(&self, tenant: &TenantId, trace_id: TraceId, kind: PolicyKind) {
        let Some(mut d) = self.decisions.get(tenant, trace_id) else {
            return;
        };
        if d.keep || d.pruned_ns.is_some() {
            return;
        }
        let Some(policy) = self.policy_of(kind) else {
            return;
        };
        d.keep = true;
        d.policy = policy.name.clone();
        d.reason = format!("kept in hindsight: {}", hindsight_reason(kind));
        d.decided_ns = crate::now_ns();
        if let Err(e) = self.decisions.record(vec![d]) {
            tracing::error!(error = %e, "cannot record a sampling decision");
        }
    }

    /// Open incidents' traces of `tenant`.
    fn incident_traces(&self, tenant: &TenantId) -> HashSet<String> {
        self.incidents
            .list(tenant)
            .into_iter()
            .filter(|i| i.status == Status::Open)
            .flat_map(|i| i.exemplar_traces.into_iter().map(|t| t.trace_id))
            .collect()
    }

    /// Decides every trace that is complete (or, past `max_pending_traces`, the oldest).
    /// Returns how many were kept and dropped.
    pub fn decide_due(&self, now: Instant) -> (usize, usize) {
        let wait = Duration::from_secs(self.settings.decision_wait_secs);
        let due: Vec<(Key, Pending)> = {
            let mut pending = self.pending.lock();
            let keys: Vec<Key> = pending
                .iter()
                .filter(|(_, p)| {
                    p.touched
                        .is_none_or(|t| now.saturating_duration_since(t) >= wait)
                })
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| pending.remove(&k).map(|p| (k, p)))
                .collect()
        };
        let mut incident_traces: HashMap<TenantId, HashSet<String>> = HashMap::new();
        let mut out = Vec::new();
        let decided_ns = crate::now_ns();
        for ((tenant, trace_id), p) in due {
            if p.summary.spans == 0 {
                // Named by a log or an exemplar, but no span ever came: nothing to decide.
                continue;
            }
            let incidents = incident_traces
                .entry(tenant.clone())
                .or_insert_with(|| self.incident_traces(&tenant));
            let mut signals = Known {
                sampler: self,
                tenant: &tenant,
                pending: &p,
                in_incident: incidents.contains(&trace_id.to_hex()),
                now,
            };
            let verdict = policy::evaluate(self.policies(), trace_id, &p.summary, &mut signals);
            if let Some(root) = &p.summary.root {
                self.adaptive
                    .observe(&tenant, root, p.summary.spans, p.weight);
            }
            out.push(Decision {
                tenant: tenant.as_str().to_string(),
                trace_id: trace_id.to_hex(),
                keep: verdict.keep,
                policy: verdict.policy,
                reason: verdict.reason,
                decided_ns,
                spans: p.summary.spans,
                services: p.summary.services.iter().cloned().collect(),
                start_ns: p.summary.start_ns,
                end_ns: p.summary.end_ns,
                pruned_ns: None,
            });
        }
        let kept = out.iter().filter(|d| d.keep).count();
        let counts = (kept, out.len() - kept);
        if let Err(e) = self.decisions.record(out) {
            // Undecided traces are kept, so a failed write loses no data, only the saving.
            tracing::error!(error = %e, "cannot record sampling decisions; those traces stay kept");
        }
        counts
    }

    pub fn pending(&self) -> usize {
        self.pending.lock().len()
    }

    /// Whether the trace is named by an open incident now (prune re-checks before deleting).
    pub fn in_open_incident(&self, tenant: &TenantId, trace_id: TraceId) -> bool {
        self.incident_traces(tenant).contains(&trace_id.to_hex())
    }

    pub fn policy_configured(&self, kind: PolicyKind) -> Option<String> {
        self.policy_of(kind).map(|p| p.name.clone())
    }
}

pub fn hindsight_reason(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::User => "opened or bookmarked by a user",
        PolicyKind::Exemplar => "named by an exemplar",
        PolicyKind::Log => "named by a log at WARN or above",
        PolicyKind::Incident => "named by an open incident",
        _ => "a late span met a policy",
    }
}

/// What the sampler knows of a trace at its decision.
struct Known<'a> {
    sampler: &'a Sampler,
    tenant: &'a TenantId,
    pending: &'a Pending,
    in_incident: bool,
    now: Instant,
}

impl Signals for Known<'_> {
    fn opened_by_user(&self) -> bool {
        self.pending.by_user
    }
    fn named_by_exemplar(&self) -> bool {
        self.pending.by_exemplar
    }
    fn named_by_log(&self) -> bool {
        self.pending.by_log
    }
    fn named_by_incident(&self) -> bool {
        self.in_incident
    }
    fn take_rate(&mut self, index: usize) -> bool {
        let rate = self.sampler.policies()[index].max_traces_per_sec;
        let mut buckets = self.sampler.buckets.lock();
        let b = buckets.entry(index).or_insert(Bucket {
            tokens: rate,
            at: self.now,
        });
        let elapsed = self.now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate.max(1.0));
        b.at = self.now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
    fn probability(&self, policy: &PolicySettings, root: Option<&(String, String)>) -> f64 {
        if !self.sampler.adaptive.enabled() {
            return policy.probability;
        }
        // A trace the head already sampled at 1/w needs only the rest of the way.
        let target = self.sampler.adaptive.probability(self.tenant, root);
        (target * self.pending.weight.max(1.0)).min(1.0)
    }
}
