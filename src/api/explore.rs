//! Reads that explain a trace or a system at a glance: how each span of a trace compares
//! with its operation's recent durations, two traces compared, and the service map. Handlers
//! parse; `correlate` answers with typed results.

use super::errors::json_error;
use super::params::Params;
use super::{bad_request, blocking, tenant_of, AppState};
use crate::correlate::{compare, latency, service_map};
use crate::error::ErrorCode;
use crate::index::IndexError;
use crate::model::time::parse_duration_param;
use crate::model::TraceId;
use actix_web::{web, HttpRequest, HttpResponse};

const DEFAULT_LATENCY_WINDOW_NS: u64 = 3600 * 1_000_000_000;
const MAX_LATENCY_WINDOW_NS: u64 = 7 * 86_400 * 1_000_000_000;

fn trace_id(name: &str, v: &str) -> Result<TraceId, String> {
    TraceId::from_hex(v).map_err(|e| format!("{name}: {e}"))
}

fn not_found(trace: TraceId) -> HttpResponse {
    json_error(ErrorCode::NotFound, &format!("no spans for trace {trace}"))
}

/// `GET /api/v1/traces/{trace_id}/latency?window=1h`: each span's duration as a percentile of
/// its operation's durations from `window` before the trace to its end.
pub async fn trace_latency(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let parsed = Params::parse(req.query_string(), &["window"]).and_then(|p| {
        let window = match p.get("window") {
            None => DEFAULT_LATENCY_WINDOW_NS,
            Some(v) => parse_duration_param("window", v)?,
        };
        if window == 0 || window > MAX_LATENCY_WINDOW_NS {
            return Err("window must be more than 0 and at most 7d".into());
        }
        Ok((trace_id("trace_id", &path)?, window))
    });
    let (trace, window) = match parsed {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let store = state.store.clone();
    let found = blocking(move || {
        let spans = store.trace_spans(&tenant, trace)?;
        if spans.is_empty() {
            return Ok(None);
        }
        latency::of_spans(&store, &tenant, &spans, window).map(Some)
    })
    .await;
    match found {
        Ok(Some(l)) => HttpResponse::Ok().json(l),
        Ok(None) => not_found(trace),
        Err(r) => r,
    }
}

/// `GET /api/v1/traces/{base}/compare/{other}`: `other` against `base`.
pub async fn compare_traces(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (a, b) = path.into_inner();
    let ids = Params::parse(req.query_string(), &[])
        .and_then(|_| Ok((trace_id("base", &a)?, trace_id("other", &b)?)));
    let (base, other) = match ids {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let store = state.store.clone();
    let found = blocking(move || {
        let a = store.trace_spans(&tenant, base)?;
        let b = store.trace_spans(&tenant, other)?;
        Ok::<_, IndexError>((a, b))
    })
    .await;
    match found {
        Ok((a, _)) if a.is_empty() => not_found(base),
        Ok((_, b)) if b.is_empty() => not_found(other),
        Ok((a, b)) => HttpResponse::Ok().json(compare::compare(base, &a, other, &b)),
        Err(r) => r,
    }
}

/// `GET /api/v1/service-map?start&end`: services and the calls between them.
pub async fn service_map(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
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
    match blocking(move || service_map::build(&store, &tenant, start, end)).await {
        Ok(map) => HttpResponse::Ok().json(map),
        Err(r) => r,
    }
}
