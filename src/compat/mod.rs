//! Compatibility: the protocols existing agents and UIs already speak, so they work pointed at
//! weft unchanged. Ingest — Prometheus remote write, Loki push, Zipkin v2 — lands in the same
//! stores as OTLP through the one `IngestService` (WAL first, then the 2xx); queries — the
//! Prometheus HTTP API with PromQL, Loki's with LogQL, Tempo's with TraceQL, Jaeger's — read
//! the same indexes. Every path shares weft's tenancy (`X-Scope-OrgID`), authentication and
//! limits.
//!
//! One module per protocol; each query language has its parser in a file of its own, and every
//! parser bounds the query's length and nesting before it parses. Handlers stay thin: the
//! answers are functions over `index` and `correlate` with typed inputs, returning
//! `Serialize` structs in each protocol's own shape.
//! May depend on `api` (state, auth, body reading), `ingest`, `index`, `correlate`, `model`.
//!
//! # Paths
//!
//! Every query API is served under a prefix of its own (`/prometheus`, `/loki`, `/tempo`,
//! `/jaeger`, as Mimir serves `/prometheus`), since a Grafana data source takes a URL with a
//! path. At the root only what collides with nothing: `/api/v1/write`, `/loki/api/v1/*`,
//! `/api/v2/spans`, and the Tempo and Jaeger paths that neither weft nor the other owns.
//! The README's table lists them all.

pub mod cost;
pub mod jaeger;
pub mod logql;
pub mod loki;
pub mod loki_push;
pub mod otlp_out;
pub mod prom_series;
pub mod prometheus;
pub mod promql;
pub mod remote_write;
pub mod search;
pub mod tempo;
pub mod traceql;
pub mod zipkin;

use crate::api::otlp_http::{header, read_body};
use crate::api::{AppState, Routes};
use crate::error::ServiceError;
use crate::ingest::admission::{Admission, Charge};
use crate::ingest::request::RequestError;
use crate::model::Signal;
use actix_web::{web, HttpRequest, HttpResponse};

/// The compatibility routes a listener serves (ingest, queries or both).
pub fn routes(cfg: &mut web::ServiceConfig, routes: Routes) {
    if routes != Routes::Query {
        cfg.route("/api/v1/write", web::post().to(remote_write::write))
            .route(
                "/prometheus/api/v1/write",
                web::post().to(remote_write::write),
            )
            .route("/loki/api/v1/push", web::post().to(loki_push::push))
            .route("/api/v2/spans", web::post().to(zipkin::spans))
            .route("/zipkin/api/v2/spans", web::post().to(zipkin::spans));
    }
    if routes != Routes::Ingest {
        cfg.configure(prometheus::routes).configure(loki::routes);
        tempo::routes_at(cfg, "/tempo");
        tempo::routes_at(cfg, "");
        jaeger::routes_at(cfg, "/jaeger");
        jaeger::routes_at(cfg, "");
        cfg.route("/api/traces/{id}", web::get().to(root_trace));
    }
}

/// `GET /api/traces/{id}` at the root, where Tempo and Jaeger collide: `compat.root_traces`
/// says whose answer it is.
async fn root_trace(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    match state.config.compat.root_traces {
        crate::config::RootTraces::Tempo => tempo::trace(req, path, state).await,
        crate::config::RootTraces::Jaeger => jaeger::trace(req, path, state).await,
    }
}

/// An error as a plain-text body with the status weft gives its code and, when a retry can
/// succeed, `Retry-After`: what remote write, Loki push and Zipkin clients read.
pub fn text_error(e: &dyn ServiceError) -> HttpResponse {
    let mut b = HttpResponse::build(crate::api::errors::http_status(e.code()));
    if let Some(wait) = e.retry_after() {
        b.insert_header(("Retry-After", wait.as_secs().max(1).to_string()));
    }
    b.content_type("text/plain; charset=utf-8")
        .body(format!("{e}\n"))
}

/// A request body as the OTLP endpoints read it (size bound, in-flight budget, gzip or snappy
/// by `Content-Encoding`), then snappy-decompressed when `snappy_always` says the protocol
/// compresses its bodies without saying so in a header (Loki's protobuf push).
pub(crate) async fn body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    signal: Signal,
    charge: &mut Charge,
    snappy_always: bool,
) -> Result<bytes::Bytes, HttpResponse> {
    let refuse = |e: RequestError| {
        state.ingest.count_refused_request(signal, e.reason());
        text_error(&e)
    };
    let body = read_body(req, payload, state, charge)
        .await
        .map_err(refuse)?;
    let encoded =
        header(req, "content-encoding").is_some_and(|e| e.trim().eq_ignore_ascii_case("snappy"));
    if !snappy_always || encoded {
        return Ok(body);
    }
    let limit = state.config.http.max_body_bytes;
    let inflated = (|| {
        let len = crate::ingest::decode::snappy_len(&body, limit)?;
        // The compressed bytes stay held until the inflated ones replace them.
        state.ingest.admission().grow(charge, len)?;
        Ok::<_, RequestError>(crate::ingest::decode::snappy(&body, limit)?)
    })()
    .map_err(refuse)?;
    Ok(inflated.into())
}

/// A fresh in-flight charge for one request.
pub(crate) fn charge() -> Charge {
    Admission::empty_charge()
}
