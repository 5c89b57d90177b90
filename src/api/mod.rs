//! The API: the actix-web route table, thin handlers, and the gRPC services. Handlers decode
//! the request, call one service, and map the result; nothing else lives here.
//! May depend on `ingest`, `index`, `correlate`, `model`, `config`, `error` and `telemetry`.

mod analyze;
pub mod auth;
mod correlate;
pub mod errors;
mod explore;
pub mod grpc;
mod metrics;
mod ops;
pub(crate) mod otlp_http;
pub(crate) mod params;
pub mod query;
pub mod sampling;
mod search;
mod ui;
mod views;

use crate::config::Config;
use crate::ingest::IngestService;
use actix_web::dev::Service;
use actix_web::web;
use std::sync::Arc;
use std::time::Instant;

pub struct AppState {
    pub config: Config,
    pub auth: Arc<auth::Auth>,
    pub ingest: Arc<IngestService>,
    pub incidents: Arc<crate::correlate::incidents::Incidents>,
    /// Every read: handlers (weft's, the UI's and the compatibility APIs') call it; the
    /// indexes themselves are not in the handlers' state.
    pub correlator: Arc<crate::correlate::correlator::Correlator>,
    pub sampling: Arc<crate::sampling::Sampler>,
}

/// Which routes a listener serves: with a separate query listener the ingest listener keeps
/// only ingest and health routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    All,
    Ingest,
    Query,
}

/// The route table. Tests call it to build an `App` without a socket.
pub fn configure(cfg: &mut web::ServiceConfig, routes: Routes) {
    cfg.service(get("/healthz", ops::healthz))
        .service(get("/readyz", ops::readyz))
        .service(get("/metrics", ops::metrics));
    if routes != Routes::Query {
        cfg.service(web::resource("/v1/traces").route(web::post().to(otlp_http::traces)))
            .service(web::resource("/v1/logs").route(web::post().to(otlp_http::logs)))
            .service(web::resource("/v1/metrics").route(web::post().to(otlp_http::metrics)));
    }
    let logs = web::resource("/api/v1/logs");
    let logs = match routes {
        Routes::All => logs
            .route(web::post().to(otlp_http::json_lines))
            .route(web::get().to(query::search_logs)),
        Routes::Ingest => logs.route(web::post().to(otlp_http::json_lines)),
        Routes::Query => logs.route(web::get().to(query::search_logs)),
    };
    cfg.service(logs);
    if routes != Routes::Ingest {
        cfg.service(get("/api/v1/traces", search::search))
            .service(get("/api/v1/traces/{trace_id}", query::trace))
            .service(get(
                "/api/v1/traces/{trace_id}/latency",
                explore::trace_latency,
            ))
            .service(get(
                "/api/v1/traces/{base}/compare/{other}",
                explore::compare_traces,
            ))
            .service(get("/api/v1/service-map", explore::service_map))
            .service(get("/api/v1/services", search::services))
            .service(get(
                "/api/v1/services/{service}/operations",
                search::operations,
            ))
            .service(get("/api/v1/spans/attributes", search::attribute_keys))
            .service(get(
                "/api/v1/spans/attributes/{key}/values",
                search::attribute_values,
            ))
            .service(get("/api/v1/correlate/metric", correlate::metric))
            .service(get("/api/v1/correlate/diff", correlate::diff))
            .service(get("/api/v1/timeline", correlate::timeline))
            .service(get("/api/v1/incidents", correlate::incidents))
            .service(get("/api/v1/incidents/{id}", correlate::incident))
            .service(get("/api/v1/analyze", analyze::analyze))
            .service(get("/api/v1/metrics/query", metrics::query))
            .service(get("/api/v1/metrics/anomalies", metrics::anomalies))
            .service(get("/api/v1/metrics/names", metrics::names))
            .service(get("/api/v1/metrics/labels", metrics::label_names))
            .service(get(
                "/api/v1/metrics/labels/{label}/values",
                metrics::label_values,
            ))
            .configure(sampling::routes)
            .service(get("/api/v1/openapi.json", ops::openapi))
            // The web UI goes with the query API: its pages call it from the same origin.
            .service(get("/", ui::shell))
            .service(get("/ui/assets/{name:.*}", ui::asset))
            .service(get("/ui", ui::shell))
            .service(get("/ui/{view:.*}", ui::shell));
    }
    cfg.configure(|c| crate::compat::routes(c, routes));
}

/// A GET resource: another method on its path answers 405 (Method Not Allowed), not 404.
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path).route(web::get().to(handler))
}

/// Builds the app for one listener, with request latency recorded per route pattern.
pub fn app(
    state: web::Data<AppState>,
    routes: Routes,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let timing = state.clone();
    actix_web::App::new()
        .app_data(state)
        .wrap_fn(move |req, srv| {
            let started = Instant::now();
            let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
            let telemetry = timing.clone();
            let fut = srv.call(req);
            async move {
                let res = fut.await?;
                let class = match res.status().as_u16() {
                    200..=299 => "2xx",
                    400..=499 => "4xx",
                    500..=599 => "5xx",
                    _ => "other",
                };
                telemetry
                    .ingest
                    .telemetry()
                    .http_request_seconds
                    .with_label_values(&[&route, class])
                    .observe(started.elapsed().as_secs_f64());
                Ok(res)
            }
        })
        .configure(|cfg| configure(cfg, routes))
}

/// Runs a blocking read on the blocking pool.
pub(crate) async fn blocking<T, E, F>(f: F) -> Result<T, errors::ApiError>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: crate::error::ServiceError + Send + 'static,
{
    match web::block(f).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(errors::ApiError::new(
            crate::error::ErrorCode::Internal,
            e.to_string(),
        )),
    }
}
