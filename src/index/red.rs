//! RED metrics derived from spans: request count, error count and a duration histogram per
//! service and operation, in fixed time buckets, stored as ordinary delta series with exemplars
//! that point at the slowest and the failed spans. Applications that send no metrics still get
//! "metric spike → traces".
//!
//! The indexer thread aggregates the spans of each WAL entry and adds the points to the
//! metrics partitions just before every commit. A span counts towards a point only if the
//! entry's sequence number is above the payload of the partition that point lands in, so a
//! replay after a crash counts every span exactly once, as it does for the records themselves.

use crate::model::{
    AttrValue, Exemplar, KeyValue, MetricPoint, MetricValue, Scope, Span, Temporality, TenantId,
};
use std::collections::{HashMap, HashSet};

pub const RED_REQUESTS: &str = "weft.span.requests";
pub const RED_ERRORS: &str = "weft.span.errors";
pub const RED_DURATION: &str = "weft.span.duration";
/// The instrumentation scope of every derived point, which sets them apart from sent ones.
pub const RED_SCOPE: &str = "weft.red";
/// The operation label of spans past the cardinality bound.
pub const OVERFLOW_OPERATION: &str = "_other_";
/// Failed spans kept as exemplars per point.
const FAILED_EXEMPLARS: usize = 3;
/// Duration histogram bounds, milliseconds.
const BOUNDS_MS: [f64; 14] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedConfig {
    pub bucket_ns: u64,
    /// Distinct (service, operation) pairs per tenant; more go to operation `_other_`.
    pub max_series: usize,
    /// Whether spans the sender marked "not sampled" (`sampling::head::unsampled`) are
    /// indexed; when not, RED is the only place they count.
    pub store_unsampled: bool,
}

#[derive(Debug, Clone)]
struct Cell {
    /// Weighted by each span's adjusted count (`sampling::head`), so counts estimate what was
    /// sent before any head sampling; rounded only when drained.
    requests: f64,
    errors: f64,
    counts: Vec<f64>,
    sum_ms: f64,
    min_ms: f64,
    max_ms: f64,
    slowest: Option<Exemplar>,
    failed: Vec<Exemplar>,
}

impl Default for Cell {
    fn default() -> Self {
        Self {
            requests: 0.0,
            errors: 0.0,
            counts: vec![0.0; BOUNDS_MS.len() + 1],
            sum_ms: 0.0,
            min_ms: f64::INFINITY,
            max_ms: 0.0,
            slowest: None,
            failed: Vec::new(),
        }
    }
}

pub struct RedAggregator {
    config: RedConfig,
    /// Tenant → bucket start → service → operation → aggregate. Nested so that a span is
    /// counted with lookups by reference, without allocating (this runs for every span).
    cells: HashMap<TenantId, HashMap<u64, ByService>>,
    /// Per tenant: the (service, operation) pairs admitted under `max_series`, and how many.
    known: HashMap<TenantId, (usize, HashMap<String, HashSet<String>>)>,
}

/// Service → operation → aggregate, within one bucket.
type ByService = HashMap<String, HashMap<String, Cell>>;

/// The value under `key`, inserted as the default when missing; the key is copied only then.
fn slot<'a, K, Q, V>(map: &'a mut HashMap<K, V>, key: &Q) -> &'a mut V
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: ?Sized + std::hash::Hash + Eq + ToOwned<Owned = K>,
    V: Default,
{
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

fn exemplar(span: &Span, ms: f64) -> Exemplar {
    Exemplar {
        time_ns: span.end_ns,
        value: ms,
        trace_id: Some(span.trace_id),
        span_id: Some(span.span_id),
        attributes: Vec::new(),
    }
}

impl RedAggregator {
    pub fn new(config: RedConfig) -> Self {
        Self {
            config,
            cells: HashMap::new(),
            known: HashMap::new(),
        }
    }

    /// The start of the bucket a span's point lands in (by the span's end).
    pub fn bucket_of(&self, span: &Span) -> u64 {
        let w = self.config.bucket_ns.max(1);
        span.end_ns - span.end_ns % w
    }

    /// The time the point of `bucket` carries: the bucket's end.
    /// Whether the indexer stores `span` (it has counted it either way).
    pub fn stores(&self, span: &Span) -> bool {
        self.config.store_unsampled || !crate::sampling::head::unsampled(span)
    }

    pub fn point_time(&self, bucket: u64) -> u64 {
        bucket + self.config.bucket_ns
    }

    /// Counts one span by its adjusted count; `true` when the cardinality bound moved it to
    /// operation `_other_`.
    pub fn observe(&mut self, tenant: &TenantId, span: &Span) -> bool {
        let weight = crate::sampling::head::adjusted_count(span);
        if weight == 0.0 {
            return false; // its sampled siblings count for it
        }
        // Exemplars point only at spans that will be there to open.
        let exemplary = self.stores(span);
        let (admitted, ops) = slot(&mut self.known, tenant);
        let seen = ops
            .get(span.service.as_str())
            .is_some_and(|o| o.contains(span.name.as_str()));
        let operation = if seen {
            span.name.as_str()
        } else if *admitted < self.config.max_series {
            slot(ops, span.service.as_str()).insert(span.name.clone());
            *admitted += 1;
            span.name.as_str()
        } else {
            OVERFLOW_OPERATION
        };
        let overflowed = operation == OVERFLOW_OPERATION && span.name != OVERFLOW_OPERATION;
        let bucket = self.bucket_of(span);
        let buckets = slot(&mut self.cells, tenant);
        let services = slot(buckets, &bucket);
        let ops = slot(services, span.service.as_str());
        let cell = slot(ops, operation);
        let ms = span.duration_ns() as f64 / 1e6;
        cell.requests += weight;
        let i = BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BOUNDS_MS.len());
        cell.counts[i] += weight;
        cell.sum_ms += ms * weight;
        cell.min_ms = cell.min_ms.min(ms);
        cell.max_ms = cell.max_ms.max(ms);
        if exemplary && cell.slowest.as_ref().is_none_or(|e| ms > e.value) {
            cell.slowest = Some(exemplar(span, ms));
        }
        if span.failed() {
            cell.errors += weight;
            if exemplary && cell.failed.len() < FAILED_EXEMPLARS {
                cell.failed.push(exemplar(span, ms));
            }
        }
        overflowed
    }

    /// Every aggregated cell as its three points, and an empty aggregator.
    pub fn drain(&mut self) -> Vec<(TenantId, MetricPoint)> {
        let mut out = Vec::new();
        let cells = self.cells.drain().flat_map(|(tenant, buckets)| {
            buckets.into_iter().flat_map(move |(bucket, services)| {
                let tenant = tenant.clone();
                services.into_iter().flat_map(move |(service, ops)| {
                    let tenant = tenant.clone();
                    ops.into_iter().map(move |(operation, cell)| {
                        (tenant.clone(), bucket, service.clone(), operation, cell)
                    })
                })
            })
        });
        for (tenant, bucket, service, operation, cell) in cells {
            let time_ns = bucket + self.config.bucket_ns;
            let point = |name: &str, unit: &str, value: MetricValue, exemplars: Vec<Exemplar>| {
                MetricPoint {
                    name: name.to_string(),
                    description: "derived by weft from spans".to_string(),
                    unit: unit.to_string(),
                    time_ns,
                    start_ns: bucket,
                    service: service.clone(),
                    resource: vec![KeyValue {
                        key: "service.name".into(),
                        value: AttrValue::Str(service.clone()),
                    }],
                    scope: Scope {
                        name: RED_SCOPE.into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                    },
                    attributes: vec![KeyValue {
                        key: "span.name".into(),
                        value: AttrValue::Str(operation.clone()),
                    }],
                    value,
                    exemplars,
                    flags: 0,
                }
            };
            let sum = |v: f64| MetricValue::Sum {
                value: v,
                monotonic: true,
                temporality: Temporality::Delta,
            };
            // The count is the sum of the rounded buckets, so the histogram stays consistent.
            let buckets: Vec<u64> = cell.counts.iter().map(|c| c.round() as u64).collect();
            let mut slow_and_failed: Vec<Exemplar> = cell.slowest.iter().cloned().collect();
            slow_and_failed.extend(
                cell.failed
                    .iter()
                    .filter(|e| Some(e.span_id) != cell.slowest.as_ref().map(|s| s.span_id))
                    .cloned(),
            );
            out.push((
                tenant.clone(),
                point(
                    RED_REQUESTS,
                    "{request}",
                    sum(cell.requests),
                    cell.slowest.iter().cloned().collect(),
                ),
            ));
            if cell.errors > 0.0 {
                out.push((
                    tenant.clone(),
                    point(RED_ERRORS, "{error}", sum(cell.errors), cell.failed.clone()),
                ));
            }
            out.push((
                tenant.clone(),
                point(
                    RED_DURATION,
                    "ms",
                    MetricValue::Histogram {
                        count: buckets.iter().sum(),
                        sum: Some(cell.sum_ms),
                        min: Some(cell.min_ms),
                        max: Some(cell.max_ms),
                        bounds: BOUNDS_MS.to_vec(),
                        bucket_counts: buckets,
                        temporality: Temporality::Delta,
                    },
                    slow_and_failed,
                ),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::span;

    fn tenant() -> TenantId {
        TenantId::new("t").unwrap()
    }

    fn aggregator(bucket_ns: u64, max_series: usize) -> RedAggregator {
        RedAggregator::new(RedConfig {
            bucket_ns,
            max_series,
            store_unsampled: true,
        })
    }

    #[test]
    fn counts_errors_durations_and_picks_exemplars() {
        let mut red = aggregator(10_000_000_000, 10);
        let t = tenant();
        let mut slow = span(1, None, 0, 900_000_000);
        slow.name = "GET /".into();
        let mut fast = span(2, None, 0, 3_000_000);
        fast.name = "GET /".into();
        let mut failed = span(3, None, 0, 40_000_000);
        failed.name = "GET /".into();
        failed.status_code = 2;
        for s in [&slow, &fast, &failed] {
            red.observe(&t, s);
        }
        let points = red.drain();
        assert_eq!(points.len(), 3);
        let get = |n: &str| points.iter().find(|(_, p)| p.name == n).unwrap().1.clone();
        let req = get(RED_REQUESTS);
        assert!(matches!(req.value, MetricValue::Sum { value, .. } if value == 3.0));
        assert_eq!(req.exemplars[0].span_id, Some(slow.span_id));
        assert_eq!(req.time_ns, 10_000_000_000);
        let err = get(RED_ERRORS);
        assert_eq!(err.exemplars[0].span_id, Some(failed.span_id));
        let dur = get(RED_DURATION);
        let MetricValue::Histogram { bucket_counts, .. } = &dur.value else {
            panic!()
        };
        // 3 ms in (2.5, 5], 40 ms in (25, 50], 900 ms in (500, 1000]
        assert_eq!(bucket_counts[2], 1);
        assert_eq!(bucket_counts[5], 1);
        assert_eq!(bucket_counts[9], 1);
        assert_eq!(dur.exemplars.len(), 2);
        assert!(red.drain().is_empty());
    }

    #[test]
    fn a_failure_without_span_status_is_an_error() {
        let mut red = aggregator(10_000_000_000, 10);
        let t = tenant();
        let answered = |id: u8, code: i64| {
            let mut s = span(id, None, 0, 1_000);
            s.attributes = vec![crate::model::KeyValue {
                key: "http.response.status_code".into(),
                value: crate::model::AttrValue::Int(code),
            }];
            s
        };
        let (http500, ok) = (answered(1, 503), answered(2, 200));
        red.observe(&t, &http500);
        red.observe(&t, &ok);
        let points = red.drain();
        let err = points.iter().find(|(_, p)| p.name == RED_ERRORS).unwrap();
        assert!(matches!(err.1.value, MetricValue::Sum { value, .. } if value == 1.0));
        assert_eq!(err.1.exemplars[0].span_id, Some(http500.span_id));
    }

    #[test]
    fn cardinality_is_bounded() {
        let mut red = aggregator(1_000_000_000, 2);
        let t = tenant();
        let mut overflowed = 0;
        for (i, name) in ["a", "b", "c", "d", "a"].iter().enumerate() {
            let mut s = span(i as u8 + 1, None, 0, 1_000);
            s.name = name.to_string();
            overflowed += red.observe(&t, &s) as u32;
        }
        assert_eq!(overflowed, 2);
        let ops: HashSet<String> = red
            .drain()
            .into_iter()
            .map(|(_, p)| {
                crate::model::attr_str(&p.attributes, "span.name")
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            ops,
            ["a", "b", OVERFLOW_OPERATION]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
    }
}
