//! Metric endpoints: series per step with exemplars, anomalies, and the names, label names
//! and label values a tenant has.

use super::params::Params;
use super::query::{ns_json, rfc3339};
use super::{bad_request, blocking, tenant_of, AppState};
use crate::correlate::metrics::{self, Anomaly};
use crate::correlate::series::{self, parse_selector, Selector, Series, Spec};
use crate::correlate::stats::{Direction, Thresholds};
use crate::index::{Filter, Pick};
use crate::model::{attrs_to_json, Exemplar, Record, Signal};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Points read to list label names and values: the newest of the window.
const LABEL_SCAN_POINTS: usize = 20_000;

pub fn exemplar_json(e: &Exemplar) -> Value {
    json!({
        "trace_id": e.trace_id.map(|t| t.to_hex()),
        "span_id": e.span_id.map(|s| s.to_hex()),
        "value": e.value,
        "time_unix_nano": ns_json(e.time_ns),
        "time": rfc3339(e.time_ns),
        "attributes": attrs_to_json(&e.attributes),
    })
}

pub fn anomaly_json(a: &Anomaly) -> Value {
    json!({
        "kind": a.kind,
        "start_time_unix_nano": ns_json(a.start_ns),
        "peak_time_unix_nano": ns_json(a.peak_ns),
        "end_time_unix_nano": ns_json(a.end_ns),
        "start": rfc3339(a.start_ns),
        "peak": rfc3339(a.peak_ns),
        "end": rfc3339(a.end_ns),
        "score": (a.score * 100.0).round() / 100.0,
        "baseline": a.baseline,
        "peak_value": a.peak_value,
        "ongoing": a.ongoing,
    })
}

fn series_json(s: &Series) -> Value {
    json!({
        "metric": s.name,
        "kind": s.kind,
        "unit": s.unit,
        "labels": s.labels,
        "selector": Selector::exact(&s.name, &s.labels).to_text(),
        "points": s.points.iter().map(|(t, v)| json!({
            "time_unix_nano": ns_json(*t), "time": rfc3339(*t), "value": v,
        })).collect::<Vec<_>>(),
        "exemplars": s.exemplars.iter().map(exemplar_json).collect::<Vec<_>>(),
    })
}

const QUERY_PARAMS: [&str; 6] = ["query", "start", "end", "step", "quantiles", "by"];

/// The selector and evaluation spec of a metric query's parameters.
pub fn query_spec(p: &Params) -> Result<(Selector, Spec), String> {
    let selector = parse_selector(p.required("query")?)?;
    let (start_ns, end_ns) = p.window()?;
    let step_ns = p.step(start_ns, end_ns)?;
    let mut quantiles = Vec::new();
    for q in p.list("quantiles") {
        match q.parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => quantiles.push(v),
            _ => return Err(format!("quantiles: {q:?} is not a number from 0 to 1")),
        }
    }
    if quantiles.is_empty() {
        quantiles = vec![0.5, 0.95, 0.99];
    }
    let by = p.get("by").map(|_| p.list("by"));
    Ok((
        selector,
        Spec {
            start_ns,
            end_ns,
            step_ns,
            quantiles,
            by,
        },
    ))
}

/// `GET /api/v1/metrics/query?query=name{label="v"}&start&end&step&quantiles&by`.
pub async fn query(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (selector, spec) =
        match Params::parse(req.query_string(), &QUERY_PARAMS).and_then(|p| query_spec(&p)) {
            Ok(v) => v,
            Err(e) => return bad_request(e),
        };
    let store = state.store.clone();
    let step = spec.step_ns;
    match blocking(move || metrics::query(&store, &tenant, &selector, &spec)).await {
        Ok(found) => HttpResponse::Ok().json(json!({
            "step_ns": step,
            "series": found.iter().map(series_json).collect::<Vec<_>>(),
        })),
        Err(r) => r,
    }
}

/// `GET /api/v1/metrics/anomalies`: the query's series, each with its anomalies. Thresholds
/// default to the `[anomalies]` settings and can be set per request.
pub async fn anomalies(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut allowed = QUERY_PARAMS.to_vec();
    allowed.extend([
        "threshold",
        "baseline_points",
        "min_baseline_points",
        "level_shift_points",
        "min_relative_change",
        "min_absolute_change",
        "direction",
    ]);
    let parsed = Params::parse(req.query_string(), &allowed).and_then(|p| {
        let (selector, spec) = query_spec(&p)?;
        let t = thresholds(&p, Thresholds::from(&state.config.anomalies))?;
        Ok((selector, spec, t))
    });
    let (selector, spec, t) = match parsed {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let store = state.store.clone();
    let spec2 = spec.clone();
    match blocking(move || metrics::query(&store, &tenant, &selector, &spec2)).await {
        Ok(found) => HttpResponse::Ok().json(json!({
            "step_ns": spec.step_ns,
            "thresholds": {
                "threshold": t.threshold, "baseline_points": t.baseline_points,
                "min_baseline_points": t.min_baseline_points,
                "level_shift_points": t.level_shift_points,
                "min_relative_change": t.min_relative_change,
                "min_absolute_change": t.min_absolute_change,
                "direction": t.direction,
            },
            "series": found.iter().map(|s| {
                let mut v = series_json(s);
                v["anomalies"] = metrics::anomalies(s, &spec, &t).iter().map(anomaly_json).collect();
                v
            }).collect::<Vec<_>>(),
        })),
        Err(r) => r,
    }
}

fn thresholds(p: &Params, mut t: Thresholds) -> Result<Thresholds, String> {
    if let Some(v) = p.number::<f64>("threshold")? {
        if v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(format!("threshold must be greater than 0, got {v}"));
        }
        t.threshold = v;
    }
    for (name, slot) in [
        ("baseline_points", &mut t.baseline_points),
        ("min_baseline_points", &mut t.min_baseline_points),
        ("level_shift_points", &mut t.level_shift_points),
    ] {
        if let Some(v) = p.number::<usize>(name)? {
            if v == 0 || v > 10_000 {
                return Err(format!("{name} must be 1 to 10000, got {v}"));
            }
            *slot = v;
        }
    }
    for (name, slot) in [
        ("min_relative_change", &mut t.min_relative_change),
        ("min_absolute_change", &mut t.min_absolute_change),
    ] {
        if let Some(v) = p.number::<f64>(name)? {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("{name} must be 0 or more, got {v}"));
            }
            *slot = v;
        }
    }
    t.direction = match p.get("direction") {
        None | Some("both") => Direction::Both,
        Some("up") => Direction::Up,
        Some("down") => Direction::Down,
        Some(other) => return Err(format!("direction: {other:?} is not up, down or both")),
    };
    Ok(t)
}

/// `GET /api/v1/metrics/names?start&end`.
pub async fn names(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let window = Params::parse(req.query_string(), &["start", "end"]).and_then(|p| p.window());
    let (start, end) = match window {
        Ok(w) => w,
        Err(e) => return bad_request(e),
    };
    let store = state.store.clone();
    match blocking(move || store.metric_names(&tenant, start, end)).await {
        Ok(names) => HttpResponse::Ok().json(json!({ "names": names })),
        Err(r) => r,
    }
}

/// Labels of the newest points in the window, optionally of the series a selector names.
async fn labels_seen(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<BTreeMap<String, BTreeSet<String>>, HttpResponse> {
    let tenant = tenant_of(req, state)?;
    let parsed = Params::parse(req.query_string(), &["match", "start", "end"]).and_then(|p| {
        let selector = p.get("match").map(parse_selector).transpose()?;
        Ok((selector, p.window()?))
    });
    let (selector, (start_ns, end_ns)) = parsed.map_err(bad_request)?;
    let store = state.store.clone();
    blocking(move || {
        let f = Filter {
            start_ns,
            end_ns,
            name: selector.as_ref().map(|s| s.name.clone()),
            ..Filter::default()
        };
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in store.select(
            Signal::Metrics,
            &tenant,
            &f,
            Pick::Newest,
            LABEL_SCAN_POINTS,
        )? {
            let Record::Metric(m) = r else { continue };
            let labels = series::labels_of(&m);
            if selector.as_ref().is_some_and(|s| !s.matches(&labels)) {
                continue;
            }
            for (k, v) in labels {
                out.entry(k).or_default().insert(v);
            }
        }
        Ok::<_, crate::index::IndexError>(out)
    })
    .await
}

/// `GET /api/v1/metrics/labels?match=&start&end`: label names.
pub async fn label_names(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match labels_seen(&req, &state).await {
        Ok(labels) => {
            HttpResponse::Ok().json(json!({ "labels": labels.keys().collect::<Vec<_>>() }))
        }
        Err(r) => r,
    }
}

/// `GET /api/v1/metrics/labels/{label}/values?match=&start&end`.
pub async fn label_values(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    match labels_seen(&req, &state).await {
        Ok(mut labels) => HttpResponse::Ok().json(json!({
            "label": path.as_str(),
            "values": labels.remove(path.as_str()).unwrap_or_default(),
        })),
        Err(r) => r,
    }
}
