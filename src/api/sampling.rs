//! Sampling endpoints: Jaeger remote sampling for SDKs, a trace's sampling decision, the
//! adaptive probabilities, and bookmarks (a bookmarked trace is kept by the `user` policy).

use super::auth::Tenant;
use super::errors::ApiError;
use super::params::{trace_id, ParamError, Params};
use super::AppState;
use crate::sampling::{remote, State};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// Longest service name `/api/sampling` takes (Jaeger SDKs send their service name).
const MAX_SERVICE_BYTES: usize = 256;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::get("/api/sampling", jaeger_strategy))
        .service(super::get("/api/v1/sampling/probabilities", probabilities))
        .service(super::get("/api/v1/sampling/traces/{trace_id}", decision))
        .service(
            web::resource("/api/v1/traces/{trace_id}/bookmark").route(web::post().to(bookmark)),
        );
}

/// `GET /api/sampling?service=`: the head-sampling strategy for the service's SDKs.
pub async fn jaeger_strategy(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string(), &["service"])?;
    let service = params.required("service")?;
    if service.len() > MAX_SERVICE_BYTES {
        let e = format!("service: must be 1 to {MAX_SERVICE_BYTES} bytes");
        return Err(ParamError::new("service", e).into());
    }
    let settings = &state.sampling.settings;
    let lower_bound =
        settings.min_traces_per_interval as f64 / settings.adaptive_interval_secs as f64;
    let current = state.sampling.adaptive.current(&tenant);
    Ok(HttpResponse::Ok().json(remote::strategy(service, current.as_ref(), lower_bound)))
}

/// `GET /api/v1/sampling/probabilities`: the tenant's adaptive probabilities now.
pub async fn probabilities(Tenant(tenant): Tenant, state: web::Data<AppState>) -> HttpResponse {
    let settings = &state.sampling.settings;
    let current = state.sampling.adaptive.current(&tenant);
    HttpResponse::Ok().json(json!({
        "budget_spans_per_sec": settings.budget_spans_per_sec,
        "interval_secs": settings.adaptive_interval_secs,
        "min_traces_per_interval": settings.min_traces_per_interval,
        "default": current.as_ref().map_or(1.0, |p| p.default),
        "operations": current.iter().flat_map(|p| p.per_operation.iter()).map(|((service, operation), p)| json!({
            "service": service,
            "operation": operation,
            "probability": p,
        })).collect::<Vec<_>>(),
    }))
}

/// The sampling state of a trace as JSON: its decision, or why there is none. Every answer
/// that carries a trace's sampling state (decision, bookmark, trace) renders it here.
pub fn state_json(state: &State) -> serde_json::Value {
    match state {
        State::Decided(d) => d.to_json(),
        State::Pending { spans } => json!({
            "decision": "pending",
            "reason": "the trace is not complete yet: it is decided once no span came for a while",
            "spans": spans,
        }),
        State::Unknown => json!({
            "decision": "none",
            "reason": "sampling never decided this trace (tail sampling off, or none of its \
                       spans arrived while it was on), so nothing of it was dropped",
        }),
    }
}

/// `GET /api/v1/sampling/traces/{trace_id}`: what sampling did with the trace.
pub async fn decision(
    path: web::Path<String>,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let trace_id = trace_id("trace_id", &path)?;
    let sampling = state_json(&state.sampling.state(&tenant, trace_id));
    Ok(HttpResponse::Ok().json(json!({"trace_id": trace_id.to_hex(), "sampling": sampling})))
}

/// `POST /api/v1/traces/{trace_id}/bookmark`: keeps the trace (the `user` policy).
pub async fn bookmark(
    path: web::Path<String>,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let trace_id = trace_id("trace_id", &path)?;
    state.sampling.opened(&tenant, trace_id);
    let s = state.sampling.state(&tenant, trace_id);
    Ok(HttpResponse::Ok().json(
        json!({"trace_id": trace_id.to_hex(), "bookmarked": true, "sampling": state_json(&s)}),
    ))
}
