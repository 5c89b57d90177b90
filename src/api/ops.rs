//! Operational endpoints: health, readiness and weft's own metrics. None of them shows any
//! tenant's data.

use super::AppState;
use actix_web::{web, HttpResponse};

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// 503 until the WAL replay has finished and writes are accepted, and whenever the WAL or
/// the indexer fails (a full disk), with the reason.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.ingest.not_ready() {
        None => HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n"),
        Some(why) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .content_type("text/plain")
            .body(format!("not ready: {why}\n")),
    }
}

/// The OpenAPI document of the `/api/v1` endpoints (kept beside the route table; a test sends
/// every documented request to a real server).
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("openapi.json"))
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.ingest.telemetry().render() + &state.incidents.render_gauge())
}
