//! Reads that explain a trace or a system at a glance: how each span of a trace compares
//! with its operation's recent durations, two traces compared, and the service map. Handlers
//! parse and call the `Correlator`, which answers with typed results.

use super::auth::Tenant;
use super::errors::ApiError;
use super::params::{trace_id, ParamError, Params};
use super::{blocking, AppState};
use actix_web::{web, HttpRequest, HttpResponse};

const DEFAULT_LATENCY_WINDOW_NS: u64 = 3600 * 1_000_000_000;
const MAX_LATENCY_WINDOW_NS: u64 = 7 * 86_400 * 1_000_000_000;

/// `GET /api/v1/traces/{trace_id}/latency?window=1h`: each span's duration as a percentile of
/// its operation's durations from `window` before the trace to its end.
pub async fn trace_latency(
    req: HttpRequest,
    path: web::Path<String>,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(req.query_string(), &["window"])?;
    let window = p.duration("window")?.unwrap_or(DEFAULT_LATENCY_WINDOW_NS);
    if window == 0 || window > MAX_LATENCY_WINDOW_NS {
        let e = ParamError::new("window", "window must be more than 0 and at most 7d");
        return Err(e.into());
    }
    let trace = trace_id("trace_id", &path)?;
    let correlator = state.correlator.clone();
    let latency = blocking(move || correlator.trace_latency(&tenant, trace, window)).await?;
    Ok(HttpResponse::Ok().json(latency))
}

/// `GET /api/v1/traces/{base}/compare/{other}`: `other` against `base`.
pub async fn compare_traces(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Params::parse(req.query_string(), &[])?;
    let (a, b) = path.into_inner();
    let (base, other) = (trace_id("base", &a)?, trace_id("other", &b)?);
    let correlator = state.correlator.clone();
    let comparison = blocking(move || correlator.compare_traces(&tenant, base, other)).await?;
    Ok(HttpResponse::Ok().json(comparison))
}

/// `GET /api/v1/service-map?start&end`: services and the calls between them.
pub async fn service_map(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let window = Params::parse(req.query_string(), &["start", "end"])?.window()?;
    let correlator = state.correlator.clone();
    let map = blocking(move || correlator.service_map(&tenant, window)).await?;
    Ok(HttpResponse::Ok().json(map))
}
