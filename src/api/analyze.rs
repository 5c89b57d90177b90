//! `GET /api/v1/analyze?start&end[&service=a,b]`: incident detection and origin ranking over
//! any stored window, on the live detector's code path (`correlate::incidents::analyze`), for
//! data imported after the fact or a window a person picks. Nothing is saved.

use super::auth::Tenant;
use super::correlate::incident_json;
use super::errors::ApiError;
use super::params::{ParamError, Params};
use super::{blocking, AppState};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// The longest window one analysis judges: its cost grows with the window.
pub const MAX_WINDOW_NS: u64 = 24 * 3600 * 1_000_000_000;

pub async fn analyze(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(req.query_string(), &["start", "end", "service"])?;
    let (start, end) = p.window()?;
    if end - start > MAX_WINDOW_NS {
        let e = format!(
            "start, end: the window is {:.1} h; at most 24 h is analysed at once",
            (end - start) as f64 / 3.6e12
        );
        return Err(ParamError::new("start", e).into());
    }
    let services = p.list("service");
    let correlator = state.correlator.clone();
    let step = correlator.step_ns();
    let list = blocking(move || correlator.analyze(&tenant, (start, end), &services)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "count": list.len(),
        "incidents": list.iter().map(|i| incident_json(i, step)).collect::<Vec<_>>(),
    })))
}
