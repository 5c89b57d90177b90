//! Tail-sampling policies: what a trace looks like to them (`TraceSummary`, built span by span
//! as they arrive, so a trace is never held whole in memory) and the ordered evaluation that
//! turns it into a verdict naming the policy that decided.

use super::head;
use crate::config::{AttrOp, PolicyKind, PolicySettings};
use crate::model::{AttrValue, Span, TraceId};
use std::collections::BTreeSet;

/// Services listed per trace summary, at most (a decision names them; a trace through more
/// lists the first ones and still counts them in `spans`).
const MAX_SERVICES: usize = 32;

/// What the policies need to know of a trace, accumulated as its spans arrive.
#[derive(Debug, Clone, Default)]
pub struct TraceSummary {
    pub spans: u64,
    pub services: BTreeSet<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// The root span's service and name, once it arrived (adaptive probabilities are per root
    /// operation, as head samplers decide at the root).
    pub root: Option<(String, String)>,
    /// Bit `i`: policy `i`'s per-span condition held for some span.
    pub matched: u64,
    /// A span had `sampling.priority > 0`: the sender asked for it to be kept.
    pub forced: bool,
}

/// Per-span conditions of a policy (error, latency, attribute); `None` for the others.
fn span_matches(p: &PolicySettings, span: &Span) -> Option<bool> {
    let scoped = |s: &Span| {
        (p.service.is_empty() || p.service == s.service)
            && (p.operation.is_empty() || p.operation == s.name)
    };
    match p.kind {
        PolicyKind::Error => Some(span.failed()),
        PolicyKind::Latency => {
            Some(scoped(span) && span.duration_ns() > p.threshold_ms.saturating_mul(1_000_000))
        }
        PolicyKind::Attribute => Some(scoped(span) && attribute_matches(p, span)),
        _ => None,
    }
}

fn attribute_matches(p: &PolicySettings, span: &Span) -> bool {
    let Some(value) = span
        .attributes
        .iter()
        .chain(span.resource.iter())
        .find(|kv| kv.key == p.key)
        .map(|kv| &kv.value)
    else {
        return false;
    };
    let number = || match value {
        AttrValue::Int(i) => Some(*i as f64),
        AttrValue::Double(d) => Some(*d),
        AttrValue::Str(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let wanted = || p.value.trim().parse::<f64>().ok();
    match p.op {
        AttrOp::Eq => value.to_text() == p.value,
        AttrOp::Ne => value.to_text() != p.value,
        AttrOp::Gt => number().zip(wanted()).is_some_and(|(v, w)| v > w),
        AttrOp::Lt => number().zip(wanted()).is_some_and(|(v, w)| v < w),
    }
}

impl TraceSummary {
    pub fn add(&mut self, policies: &[PolicySettings], span: &Span) {
        if self.spans == 0 || span.start_ns < self.start_ns {
            self.start_ns = span.start_ns;
        }
        self.end_ns = self.end_ns.max(span.end_ns);
        self.spans += 1;
        if self.services.len() < MAX_SERVICES {
            self.services.insert(span.service.clone());
        }
        if span.parent_span_id.is_none() {
            self.root = Some((span.service.clone(), span.name.clone()));
        }
        self.forced |= head::priority(span).is_some_and(|p| p > 0.0);
        self.matched |= span_bits(policies, span);
    }

    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// The policies whose per-span condition `span` meets, as bits.
pub fn span_bits(policies: &[PolicySettings], span: &Span) -> u64 {
    policies
        .iter()
        .enumerate()
        .filter(|(_, p)| span_matches(p, span) == Some(true))
        .fold(0, |bits, (i, _)| bits | 1 << i)
}

/// What weft knows of a trace beyond its spans, asked only when a policy needs it.
pub trait Signals {
    fn opened_by_user(&self) -> bool;
    fn named_by_exemplar(&self) -> bool;
    fn named_by_log(&self) -> bool;
    fn named_by_incident(&self) -> bool;
    /// Whether policy `index`'s rate limit has room for one more trace now (and takes it).
    fn take_rate(&mut self, index: usize) -> bool;
    /// The probability a probabilistic policy uses: adaptive when a budget is set.
    fn probability(&self, policy: &PolicySettings, root: Option<&(String, String)>) -> f64;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub keep: bool,
    /// The policy that decided, or why none did.
    pub policy: String,
    pub reason: String,
}

/// The same trace always lands on the same side of a probability: a uniform number in [0, 1)
/// from the trace ID's low 56 bits (W3C random trace IDs put their randomness there).
pub fn trace_randomness(trace_id: TraceId) -> f64 {
    let low = u64::from_be_bytes(trace_id.0[8..16].try_into().expect("8 bytes")) & ((1 << 56) - 1);
    low as f64 / (1u64 << 56) as f64
}

/// Applies the policies in order: the first that matches keeps the trace, unless its rate
/// limit is used up, which drops it in that policy's name (later policies still may keep it).
pub fn evaluate(
    policies: &[PolicySettings],
    trace_id: TraceId,
    summary: &TraceSummary,
    signals: &mut dyn Signals,
) -> Verdict {
    if summary.forced {
        return Verdict {
            keep: true,
            policy: "sampling.priority".into(),
            reason: "a span asked to be kept (sampling.priority > 0)".into(),
        };
    }
    let mut limited: Option<&PolicySettings> = None;
    for (i, p) in policies.iter().enumerate() {
        let (matched, reason) = match p.kind {
            PolicyKind::User => (
                signals.opened_by_user(),
                "opened or bookmarked by a user".into(),
            ),
            PolicyKind::Exemplar => (signals.named_by_exemplar(), "named by an exemplar".into()),
            PolicyKind::Log => (
                signals.named_by_log(),
                "named by a log at WARN or above".into(),
            ),
            PolicyKind::Incident => (
                signals.named_by_incident(),
                "named by an open incident".into(),
            ),
            PolicyKind::Error => (summary.matched & 1 << i != 0, "a span failed".into()),
            PolicyKind::Latency => (
                summary.matched & 1 << i != 0,
                format!("a span took longer than {} ms", p.threshold_ms),
            ),
            PolicyKind::Attribute => (
                summary.matched & 1 << i != 0,
                format!("a span has {} {:?} {:?}", p.key, p.op, p.value),
            ),
            PolicyKind::SpanCount => (
                summary.spans >= p.min_spans,
                format!("{} spans, at least {}", summary.spans, p.min_spans),
            ),
            PolicyKind::Probabilistic => {
                let probability = signals.probability(p, summary.root.as_ref());
                (
                    trace_randomness(trace_id) < probability,
                    format!("sampled at probability {probability:.4}"),
                )
            }
        };
        if !matched {
            continue;
        }
        if p.max_traces_per_sec > 0.0 && !signals.take_rate(i) {
            limited.get_or_insert(p);
            continue;
        }
        return Verdict {
            keep: true,
            policy: p.name.clone(),
            reason,
        };
    }
    match limited {
        Some(p) => Verdict {
            keep: false,
            policy: p.name.clone(),
            reason: format!(
                "matched, but over its rate limit of {} traces/s",
                p.max_traces_per_sec
            ),
        },
        None => Verdict {
            keep: false,
            policy: "no-policy-matched".into(),
            reason: format!("none of the {} policies kept it", policies.len()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::span;
    use crate::model::KeyValue;

    struct Fixed {
        tokens: usize,
    }

    impl Signals for Fixed {
        fn opened_by_user(&self) -> bool {
            false
        }
        fn named_by_exemplar(&self) -> bool {
            false
        }
        fn named_by_log(&self) -> bool {
            false
        }
        fn named_by_incident(&self) -> bool {
            true
        }
        fn take_rate(&mut self, _: usize) -> bool {
            let ok = self.tokens > 0;
            self.tokens = self.tokens.saturating_sub(1);
            ok
        }
        fn probability(&self, p: &PolicySettings, _: Option<&(String, String)>) -> f64 {
            p.probability
        }
    }

    fn policy(name: &str, kind: PolicyKind) -> PolicySettings {
        PolicySettings {
            name: name.into(),
            kind,
            ..PolicySettings::default()
        }
    }

    fn summary(policies: &[PolicySettings], spans: &[Span]) -> TraceSummary {
        let mut s = TraceSummary::default();
        for span in spans {
            s.add(policies, span);
        }
        s
    }

    #[test]
    fn the_first_matching_policy_decides_and_a_rate_limit_drops_in_its_name() {
        let slow = PolicySettings {
            threshold_ms: 100,
            service: "svc".into(),
            max_traces_per_sec: 1.0,
            ..policy("slow", PolicyKind::Latency)
        };
        let tier = PolicySettings {
            key: "tier".into(),
            op: AttrOp::Gt,
            value: "2".into(),
            ..policy("tier", PolicyKind::Attribute)
        };
        let policies = vec![slow, tier, policy("incident", PolicyKind::Incident)];
        let mut long = span(1, None, 0, 200_000_000);
        long.attributes.push(KeyValue {
            key: "tier".into(),
            value: AttrValue::Int(3),
        });
        let s = summary(&policies, &[long.clone()]);
        let id = TraceId([0xff; 16]);
        let v = evaluate(&policies, id, &s, &mut Fixed { tokens: 1 });
        assert_eq!((v.keep, v.policy.as_str()), (true, "slow"));
        // Out of tokens: the next policy that matches keeps it.
        let v = evaluate(&policies, id, &s, &mut Fixed { tokens: 0 });
        assert_eq!((v.keep, v.policy.as_str()), (true, "tier"));
        // Only the rate-limited policy matches: dropped in its name.
        let only_slow = &policies[..1];
        let s = summary(only_slow, &[long.clone()]);
        let v = evaluate(only_slow, id, &s, &mut Fixed { tokens: 0 });
        assert_eq!((v.keep, v.policy.as_str()), (false, "slow"));
        // Another service is out of the latency policy's scope.
        long.service = "other".into();
        let s = summary(only_slow, &[long]);
        let v = evaluate(only_slow, id, &s, &mut Fixed { tokens: 1 });
        assert_eq!((v.keep, v.policy.as_str()), (false, "no-policy-matched"));
    }

    #[test]
    fn priority_forces_and_probability_is_by_trace_id() {
        let half = PolicySettings {
            probability: 0.5,
            ..policy("half", PolicyKind::Probabilistic)
        };
        let policies = vec![half];
        let s = summary(&policies, &[span(1, None, 0, 1)]);
        let low = TraceId([0; 16]);
        let mut high = [0u8; 16];
        high[9] = 0xff;
        assert!(evaluate(&policies, low, &s, &mut Fixed { tokens: 0 }).keep);
        assert!(!evaluate(&policies, TraceId(high), &s, &mut Fixed { tokens: 0 }).keep);
        let mut forced = span(1, None, 0, 1);
        forced.attributes.push(KeyValue {
            key: "sampling.priority".into(),
            value: AttrValue::Int(1),
        });
        let s = summary(&policies, &[forced]);
        let v = evaluate(&policies, TraceId(high), &s, &mut Fixed { tokens: 0 });
        assert_eq!((v.keep, v.policy.as_str()), (true, "sampling.priority"));
    }
}
