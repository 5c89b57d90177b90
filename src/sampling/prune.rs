//! Past the full-fidelity horizon, the spans of dropped traces are deleted — after one more
//! look for a reason to keep them, since exemplars (weft's own RED ones too), WARN logs,
//! incidents and users may have named them after the decision. Each pruned decision is
//! recorded again with the time of its pruning, so the answer for that trace says so.

use super::tail::{Sampler, SEVERITY_WARN};
use crate::config::{LogRule, PolicyKind};
use crate::index::{Indexer, LogsToDelete, PruneRequest, Store, MAX_TRACES_PER_PRUNE};
use crate::model::{TenantId, TraceId};
use std::collections::BTreeMap;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct PruneStats {
    pub pruned: usize,
    pub rescued: usize,
}

fn logs_rule(rule: LogRule) -> LogsToDelete {
    match rule {
        LogRule::All => LogsToDelete::None,
        LogRule::KeptTracesAndWarn => LogsToDelete::Below(SEVERITY_WARN as u64),
        LogRule::KeptTraces => LogsToDelete::All,
    }
}

/// Prunes the dropped traces that ended before `horizon_ns`, at most `MAX_TRACES_PER_PRUNE`.
pub fn prune_due(
    sampler: &Sampler,
    store: &Store,
    indexer: &Indexer,
    horizon_ns: u64,
) -> Result<PruneStats, String> {
    let due = sampler
        .decisions
        .due_for_pruning(horizon_ns, MAX_TRACES_PER_PRUNE);
    let mut stats = PruneStats::default();
    let mut requests: BTreeMap<TenantId, PruneRequest> = BTreeMap::new();
    let mut pruned = Vec::new();
    let exemplar_policy = sampler.policy_configured(PolicyKind::Exemplar);
    let log_policy = sampler.policy_configured(PolicyKind::Log);
    let incident_policy = sampler.policy_configured(PolicyKind::Incident);
    for mut d in due {
        let (Ok(tenant), Ok(trace_id)) = (TenantId::new(&d.tenant), TraceId::from_hex(&d.trace_id))
        else {
            continue;
        };
        let (by_exemplar, by_log) = store
            .trace_named(&tenant, trace_id, SEVERITY_WARN as u64)
            .map_err(|e| e.to_string())?;
        let rescue = [
            (
                exemplar_policy.as_ref().filter(|_| by_exemplar),
                PolicyKind::Exemplar,
            ),
            (log_policy.as_ref().filter(|_| by_log), PolicyKind::Log),
            (
                incident_policy
                    .as_ref()
                    .filter(|_| sampler.in_open_incident(&tenant, trace_id)),
                PolicyKind::Incident,
            ),
        ]
        .into_iter()
        .find_map(|(policy, kind)| policy.map(|p| (p.clone(), kind)));
        if let Some((policy, kind)) = rescue {
            d.keep = true;
            d.policy = policy;
            d.reason = format!("kept in hindsight: {}", super::tail::hindsight_reason(kind));
            d.decided_ns = crate::now_ns();
            stats.rescued += 1;
            pruned.push(d);
            continue;
        }
        let req = requests
            .entry(tenant.clone())
            .or_insert_with(|| PruneRequest {
                tenant,
                traces: Vec::new(),
                logs: logs_rule(sampler.settings.logs),
                start_ns: u64::MAX,
                end_ns: 0,
            });
        req.traces.push(trace_id);
        req.start_ns = req.start_ns.min(d.start_ns);
        req.end_ns = req.end_ns.max(d.end_ns);
        d.pruned_ns = Some(crate::now_ns());
        stats.pruned += 1;
        pruned.push(d);
    }
    let deleting = !requests.is_empty();
    for (_, req) in requests {
        indexer.prune(req)?;
    }
    if deleting {
        indexer.flush()?;
    }
    // Recorded only once the deletes are committed: a crash in between prunes them again.
    sampler
        .decisions
        .record(pruned)
        .map_err(|e| format!("cannot record pruned decisions: {e}"))?;
    Ok(stats)
}
