//! Jaeger remote sampling: the strategy an SDK of `service` should head-sample with, in the
//! JSON shape of Jaeger's `SamplingStrategyResponse` (`sampling.proto`, as its collector's
//! `/api/sampling` serves it): a per-operation strategy from the adaptive probabilities of
//! the operations that service roots, with its default for the rest.

use super::adaptive::Probabilities;
use serde_json::{json, Value};

/// `probabilities` of the tenant (none before the first interval, or without a budget: then
/// everything is sampled); `lower_bound` is the floor in traces per second per operation.
pub fn strategy(service: &str, probabilities: Option<&Probabilities>, lower_bound: f64) -> Value {
    let default = probabilities.map_or(1.0, |p| p.default);
    let per_operation: Vec<Value> = probabilities
        .into_iter()
        .flat_map(|p| p.per_operation.iter())
        .filter(|((s, _), _)| s == service)
        .map(|((_, operation), rate)| {
            json!({
                "operation": operation,
                "probabilisticSampling": {"samplingRate": rate},
            })
        })
        .collect();
    json!({
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": default},
        "operationSampling": {
            "defaultSamplingProbability": default,
            "defaultLowerBoundTracesPerSecond": lower_bound,
            "defaultUpperBoundTracesPerSecond": 0.0,
            "perOperationStrategies": per_operation,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_the_services_operations() {
        let p = Probabilities {
            default: 0.2,
            per_operation: [
                (("a".to_string(), "GET /".to_string()), 0.5),
                (("b".to_string(), "POST /".to_string()), 0.1),
            ]
            .into_iter()
            .collect(),
        };
        let s = strategy("a", Some(&p), 0.5);
        assert_eq!(s["probabilisticSampling"]["samplingRate"], 0.2);
        let ops = s["operationSampling"]["perOperationStrategies"]
            .as_array()
            .unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0]["operation"], "GET /");
        assert_eq!(
            strategy("a", None, 0.0)["probabilisticSampling"]["samplingRate"],
            1.0
        );
    }
}
