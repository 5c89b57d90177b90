//! `GET /api/v1/analyze?start&end[&service=a,b]`: incident detection and origin ranking over
//! any stored window, on the live detector's code path (`correlate::incidents::analyze`), for
//! data imported after the fact or a window a person picks. Nothing is saved.

use super::correlate::incident_json;
use super::params::Params;
use super::{bad_request, blocking, tenant_of, AppState};
use crate::correlate::incidents;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// The longest window one analysis judges: its cost grows with the window.
pub const MAX_WINDOW_NS: u64 = 24 * 3600 * 1_000_000_000;

pub async fn analyze(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let parsed = Params::parse(req.query_string(), &["start", "end", "service"]).and_then(|p| {
        let (start, end) = p.window()?;
        if end - start > MAX_WINDOW_NS {
            return Err(format!(
                "start, end: the window is {:.1} h; at most 24 h is analysed at once",
                (end - start) as f64 / 3.6e12
            ));
        }
        Ok((start, end, p.list("service")))
    });
    let (start, end, services) = match parsed {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let (store, settings, anomalies) = (
        state.store.clone(),
        state.config.incidents.clone(),
        state.config.anomalies.clone(),
    );
    let step = settings.step_secs * 1_000_000_000;
    let found = blocking(move || {
        let only = (!services.is_empty()).then_some(services.as_slice());
        incidents::analyze(&store, &tenant, start, end, only, &settings, &anomalies)
    })
    .await;
    match found {
        Ok(list) => HttpResponse::Ok().json(json!({
            "count": list.len(),
            "incidents": list.iter().map(|i| incident_json(i, step)).collect::<Vec<_>>(),
        })),
        Err(r) => r,
    }
}
