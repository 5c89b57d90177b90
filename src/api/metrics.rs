//! Metric endpoints: series per step with exemplars, anomalies, and the names, label names
//! and label values a tenant has.

use super::auth::Tenant;
use super::errors::ApiError;
use super::params::{ParamError, Params};
use super::views::{AnomaliesView, MetricQueryView, SeriesView};
use super::{blocking, AppState};
use crate::correlate::series::{parse_selector, Selector, Spec};
use crate::correlate::stats::{Direction, Thresholds};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const QUERY_PARAMS: [&str; 6] = ["query", "start", "end", "step", "quantiles", "by"];

/// The selector and evaluation spec of a metric query's parameters.
pub fn query_spec(p: &Params) -> Result<(Selector, Spec), ParamError> {
    let selector = parse_selector(p.required("query")?).map_err(|e| ParamError::new("query", e))?;
    let (start_ns, end_ns) = p.window()?;
    let step_ns = p.step(start_ns, end_ns)?;
    let mut quantiles = Vec::new();
    for q in p.list("quantiles") {
        match q.parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => quantiles.push(v),
            _ => {
                let e = format!("quantiles: {q:?} is not a number from 0 to 1");
                return Err(ParamError::new("quantiles", e));
            }
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
pub async fn query(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (selector, spec) = query_spec(&Params::parse(req.query_string(), &QUERY_PARAMS)?)?;
    let correlator = state.correlator.clone();
    let step = spec.step_ns;
    let found = blocking(move || correlator.metric_query(&tenant, &selector, &spec)).await?;
    Ok(HttpResponse::Ok().json(MetricQueryView {
        step_ns: step,
        series: found.iter().map(|s| SeriesView::new(s, None)).collect(),
    }))
}

/// `GET /api/v1/metrics/anomalies`: the query's series, each with its anomalies. Thresholds
/// default to the `[anomalies]` settings and can be set per request.
pub async fn anomalies(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
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
    let p = Params::parse(req.query_string(), &allowed)?;
    let (selector, spec) = query_spec(&p)?;
    let t = thresholds(&p, Thresholds::from(&state.config.anomalies))?;
    let correlator = state.correlator.clone();
    let (spec2, t2) = (spec.clone(), t.clone());
    let found =
        blocking(move || correlator.metric_anomalies(&tenant, &selector, &spec2, &t2)).await?;
    Ok(HttpResponse::Ok().json(AnomaliesView {
        step_ns: spec.step_ns,
        thresholds: &t,
        series: found
            .iter()
            .map(|(s, anomalies)| SeriesView::new(s, Some(anomalies)))
            .collect(),
    }))
}

fn thresholds(p: &Params, mut t: Thresholds) -> Result<Thresholds, ParamError> {
    if let Some(v) = p.number::<f64>("threshold")? {
        if v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            let e = format!("threshold must be greater than 0, got {v}");
            return Err(ParamError::new("threshold", e));
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
                let e = format!("{name} must be 1 to 10000, got {v}");
                return Err(ParamError::new(name, e));
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
                let e = format!("{name} must be 0 or more, got {v}");
                return Err(ParamError::new(name, e));
            }
            *slot = v;
        }
    }
    t.direction = match p.get("direction") {
        None | Some("both") => Direction::Both,
        Some("up") => Direction::Up,
        Some("down") => Direction::Down,
        Some(other) => {
            let e = format!("direction: {other:?} is not up, down or both");
            return Err(ParamError::new("direction", e));
        }
    };
    Ok(t)
}

/// `GET /api/v1/metrics/names?start&end`.
pub async fn names(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let window = Params::parse(req.query_string(), &["start", "end"])?.window()?;
    let correlator = state.correlator.clone();
    let names = blocking(move || correlator.metric_names(&tenant, window)).await?;
    Ok(HttpResponse::Ok().json(json!({ "names": names })))
}

/// Labels of the newest points in the window, optionally of the series a selector names.
async fn labels_seen(
    req: &HttpRequest,
    tenant: crate::model::TenantId,
    state: &web::Data<AppState>,
) -> Result<BTreeMap<String, BTreeSet<String>>, ApiError> {
    let p = Params::parse(req.query_string(), &["match", "start", "end"])?;
    let selector = p
        .get("match")
        .map(parse_selector)
        .transpose()
        .map_err(|e| ParamError::new("match", e))?;
    let window = p.window()?;
    let correlator = state.correlator.clone();
    blocking(move || correlator.metric_labels(&tenant, selector.as_ref(), window)).await
}

/// `GET /api/v1/metrics/labels?match=&start&end`: label names.
pub async fn label_names(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let labels = labels_seen(&req, tenant, &state).await?;
    Ok(HttpResponse::Ok().json(json!({ "labels": labels.keys().collect::<Vec<_>>() })))
}

/// `GET /api/v1/metrics/labels/{label}/values?match=&start&end`.
pub async fn label_values(
    req: HttpRequest,
    path: web::Path<String>,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut labels = labels_seen(&req, tenant, &state).await?;
    Ok(HttpResponse::Ok().json(json!({
        "label": path.as_str(),
        "values": labels.remove(path.as_str()).unwrap_or_default(),
    })))
}
