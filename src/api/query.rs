//! Read endpoints: a trace with its logs and exemplars, and log search. The `Correlator`
//! answers on the blocking pool; handlers only parse parameters and shape JSON.

use super::auth::Tenant;
use super::errors::ApiError;
use super::params::{ParamError, Params};
use super::{blocking, AppState};
use crate::correlate::correlator::TraceAnswer;
use crate::index::LogQuery;
use crate::ingest::jsonlines::severity_number;
use crate::model::{attrs_to_json, LogRecord, MetricPoint, MetricValue, Span, TraceId, TraceLink};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

pub fn ns_json(ns: u64) -> Value {
    // Nanoseconds as a string, as OTLP/JSON does: JavaScript numbers lose precision past 2^53.
    Value::String(ns.to_string())
}

pub use crate::model::rfc3339;

pub fn link_json(link: &Option<TraceLink>) -> Value {
    match link {
        None => Value::Null,
        Some(l) => json!({
            "method": l.method.as_str(),
            "field": l.field,
            "pattern": l.pattern,
        }),
    }
}

pub fn span_json(s: &Span) -> Value {
    json!({
        "trace_id": s.trace_id.to_hex(),
        "span_id": s.span_id.to_hex(),
        "parent_span_id": s.parent_span_id.map(|p| p.to_hex()),
        "name": s.name,
        "kind": s.kind,
        "service": s.service,
        "start_time_unix_nano": ns_json(s.start_ns),
        "end_time_unix_nano": ns_json(s.end_ns),
        "start_time": rfc3339(s.start_ns),
        "duration_ns": s.duration_ns(),
        "status": {"code": s.status_code, "message": s.status_message},
        "failed": s.failed(),
        "trace_state": s.trace_state,
        "attributes": attrs_to_json(&s.attributes),
        "resource": attrs_to_json(&s.resource),
        "scope": {"name": s.scope.name, "version": s.scope.version},
        "events": s.events.iter().map(|e| json!({
            "time_unix_nano": ns_json(e.time_ns),
            "name": e.name,
            "attributes": attrs_to_json(&e.attributes),
        })).collect::<Vec<_>>(),
        "links": s.links.iter().map(|l| json!({
            "trace_id": l.trace_id.to_hex(),
            "span_id": l.span_id.to_hex(),
            "attributes": attrs_to_json(&l.attributes),
        })).collect::<Vec<_>>(),
    })
}

pub fn log_json(l: &LogRecord) -> Value {
    json!({
        "time_unix_nano": ns_json(l.time_ns),
        "observed_time_unix_nano": ns_json(l.observed_ns),
        "time": rfc3339(l.effective_time_ns()),
        "severity_number": l.severity_number,
        "severity_text": l.severity_text,
        "body": l.body.to_json(),
        "event_name": l.event_name,
        "service": l.service,
        "attributes": attrs_to_json(&l.attributes),
        "resource": attrs_to_json(&l.resource),
        "scope": {"name": l.scope.name, "version": l.scope.version},
        "trace_id": l.trace_id.map(|t| t.to_hex()),
        "span_id": l.span_id.map(|s| s.to_hex()),
        "link": link_json(&l.link),
    })
}

fn value_json(v: &MetricValue) -> Value {
    match v {
        MetricValue::Gauge(x) => json!({"value": x}),
        MetricValue::Sum {
            value,
            monotonic,
            temporality,
        } => {
            json!({"value": value, "monotonic": monotonic, "temporality": format!("{temporality:?}").to_lowercase()})
        }
        MetricValue::Histogram {
            count,
            sum,
            min,
            max,
            bounds,
            bucket_counts,
            temporality,
        } => json!({
            "count": count, "sum": sum, "min": min, "max": max,
            "explicit_bounds": bounds, "bucket_counts": bucket_counts,
            "temporality": format!("{temporality:?}").to_lowercase(),
        }),
        MetricValue::ExponentialHistogram {
            count,
            sum,
            scale,
            zero_count,
            positive_offset,
            positive,
            negative_offset,
            negative,
            temporality,
        } => json!({
            "count": count, "sum": sum, "scale": scale, "zero_count": zero_count,
            "positive": {"offset": positive_offset, "bucket_counts": positive},
            "negative": {"offset": negative_offset, "bucket_counts": negative},
            "temporality": format!("{temporality:?}").to_lowercase(),
        }),
        MetricValue::Summary {
            count,
            sum,
            quantiles,
        } => json!({
            "count": count, "sum": sum,
            "quantiles": quantiles.iter().map(|(q, v)| json!({"quantile": q, "value": v})).collect::<Vec<_>>(),
        }),
    }
}

/// A metric point seen from one trace: the series and the exemplars that name the trace.
fn exemplar_point_json(m: &MetricPoint, trace_id: TraceId) -> Value {
    json!({
        "metric": m.name,
        "kind": m.value.kind(),
        "unit": m.unit,
        "service": m.service,
        "labels": attrs_to_json(&m.attributes),
        "time_unix_nano": ns_json(m.time_ns),
        "time": rfc3339(m.time_ns),
        "point": value_json(&m.value),
        "exemplars": m.exemplars.iter().filter(|e| e.trace_id == Some(trace_id)).map(|e| json!({
            "trace_id": e.trace_id.map(|t| t.to_hex()),
            "span_id": e.span_id.map(|s| s.to_hex()),
            "value": e.value,
            "time_unix_nano": ns_json(e.time_ns),
            "attributes": attrs_to_json(&e.attributes),
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/traces/{trace_id}`: the span tree (depth-first, with depth, self time and the
/// critical path), every log linked to the trace (each span lists its own by index), logs
/// without a trace ID offered as inferred candidates (kept apart, with confidence and reason),
/// the metric points whose exemplars name the trace, and apart from them the RED points that
/// picked one of its spans as the slowest or a failed one.
pub async fn trace(
    path: web::Path<String>,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let trace_id = super::params::trace_id("trace_id", &path)?;
    // Opening a trace is a reason to keep it (the `user` sampling policy).
    state.sampling.opened(&tenant, trace_id);
    let sampled = state.sampling.state(&tenant, trace_id);
    let decided = !matches!(sampled, crate::sampling::State::Unknown);
    let sampling = super::sampling::state_json(&sampled);
    let correlator = state.correlator.clone();
    let answer = blocking(move || correlator.trace(&tenant, trace_id)).await?;
    // A trace sampling dropped answers with its decision, never a bare 404.
    if answer.is_empty() && !decided {
        return Err(ApiError::not_found(format!(
            "no spans, logs or exemplars for trace {trace_id}"
        )));
    }
    let TraceAnswer {
        records,
        tree,
        inferred,
    } = answer;
    // Points the application sent, apart from the RED points weft derived from the spans.
    let (derived, sent): (Vec<&MetricPoint>, Vec<&MetricPoint>) = records
        .metrics
        .iter()
        .partition(|m| m.scope.name == crate::index::RED_SCOPE);
    if records.spans.is_empty() && decided {
        // Sampling dropped its spans: the decision is the answer, with what was kept of the
        // trace's logs and every exemplar (metric points are never dropped).
        return Ok(HttpResponse::Ok().json(json!({
            "trace_id": trace_id.to_hex(),
            "spans": [],
            "logs": records.logs.iter().map(log_json).collect::<Vec<_>>(),
            "exemplars": sent.iter().map(|m| exemplar_point_json(m, trace_id)).collect::<Vec<_>>(),
            "red_exemplars": derived.iter().map(|m| exemplar_point_json(m, trace_id)).collect::<Vec<_>>(),
            "sampling": sampling,
        })));
    }
    let spans: Vec<Value> = tree
        .nodes
        .iter()
        .map(|n| {
            let mut v = span_json(&records.spans[n.span]);
            v["depth"] = json!(n.depth);
            v["self_time_ns"] = json!(n.self_time_ns);
            v["on_critical_path"] = json!(n.on_critical_path);
            v["missing_parent"] = json!(n.missing_parent);
            v["log_indexes"] = json!(n.logs);
            v
        })
        .collect();
    let start = records.spans.iter().map(|s| s.start_ns).min();
    let end = records.spans.iter().map(|s| s.end_ns).max();
    let mut services: Vec<&str> = records.spans.iter().map(|s| s.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    Ok(HttpResponse::Ok().json(json!({
        "trace_id": trace_id.to_hex(),
        "start_time_unix_nano": start.map(ns_json),
        "duration_ns": start.zip(end).map(|(s, e)| e - s),
        "services": services,
        "critical_path": tree.critical_path.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
        "spans": spans,
        "logs": records.logs.iter().map(log_json).collect::<Vec<_>>(),
        "trace_log_indexes": tree.trace_logs,
        "inferred_logs": inferred.iter().map(|i| {
            let mut v = log_json(&i.log);
            v["link"] = json!({
                "method": "inferred",
                "span_id": i.span_id.to_hex(),
                "confidence": (i.confidence * 1000.0).round() / 1000.0,
                "reason": i.reason,
            });
            v
        }).collect::<Vec<_>>(),
        "exemplars": sent.iter().map(|m| exemplar_point_json(m, trace_id)).collect::<Vec<_>>(),
        "red_exemplars": derived.iter().map(|m| exemplar_point_json(m, trace_id)).collect::<Vec<_>>(),
        "sampling": sampling,
    })))
}

/// The parameters of a log search.
pub const LOG_PARAMS: [&str; 6] = ["q", "start", "end", "service", "severity", "limit"];

/// Parses a log search's query string (`q=…&start=…`) into a query.
pub fn parse_log_params(query_string: &str) -> Result<LogQuery, ParamError> {
    let p = Params::parse(query_string, &LOG_PARAMS)?;
    let (start_ns, end_ns) = (p.time("start")?, p.time("end")?);
    if let (Some(s), Some(e)) = (start_ns, end_ns) {
        if s > e {
            return Err(ParamError::new("start", "start is after end"));
        }
    }
    let min_severity = match p.get("severity") {
        None => None,
        Some(s) => Some(match s.parse::<u64>() {
            Ok(n) if (1..=24).contains(&n) => n,
            _ => match severity_number(s) {
                0 => {
                    let e = format!(
                        "severity: {s:?} is not trace, debug, info, warn, error, fatal or 1-24"
                    );
                    return Err(ParamError::new("severity", e));
                }
                n => n as u64,
            },
        }),
    };
    let limit = p.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    Ok(LogQuery {
        q: p.get("q").unwrap_or_default().to_string(),
        start_ns,
        end_ns,
        service: p.get("service").map(str::to_string),
        min_severity,
        limit,
    })
}

/// `GET /api/v1/logs?q=&start=&end=&service=&severity=&limit=`: newest first. `severity` is a
/// minimum: `warn` returns warnings, errors and fatals.
pub async fn search_logs(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = parse_log_params(req.query_string())?;
    let correlator = state.correlator.clone();
    let of = tenant.clone();
    let logs = blocking(move || correlator.search_logs(&of, &query)).await?;
    let decisions = &state.sampling.decisions;
    Ok(HttpResponse::Ok().json(json!({
        "count": logs.len(),
        "logs": logs.iter().map(|l| {
            let mut v = log_json(l);
            // A log whose trace sampling dropped says so, rather than linking to nothing.
            if let Some(d) = l.trace_id.and_then(|t| decisions.get(&tenant, t)) {
                if !d.keep {
                    v["trace_sampling"] = d.to_json();
                }
            }
            v
        }).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_params_are_checked() {
        let p = parse_log_params;
        let q = p("severity=warn&limit=5").unwrap();
        assert_eq!((q.min_severity, q.limit), (Some(13), 5));
        assert_eq!(p("severity=loud").unwrap_err().param, "severity");
        assert_eq!(p("limit=0").unwrap_err().param, "limit");
        assert!(p("start=now&end=now-1h")
            .unwrap_err()
            .message
            .contains("after"));
        assert!(p("colour=red").is_err());
        // start=0 is the epoch; an empty value is the default, as on every endpoint.
        let q = p("start=0&end=").unwrap();
        assert_eq!((q.start_ns, q.end_ns), (Some(0), None));
    }
}
