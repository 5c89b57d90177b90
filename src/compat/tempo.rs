//! The Tempo HTTP API over weft's spans, for Grafana's Tempo data source: trace by ID
//! (`/api/traces/{id}`, `/api/v2/traces/{id}`; OTLP/JSON, or protobuf when `Accept` asks),
//! search (`/api/search`: tags, durations, TraceQL), tag names and values (v1 and v2),
//! `/api/echo` and `/api/status/buildinfo`. Served under `/tempo`, and at the root where
//! nothing else answers (`/api/traces/{id}` at the root per `compat.root_traces`).
//!
//! Shapes (contract: Tempo's API document and its `tempo.proto`): v1 trace JSON is
//! `{"batches": [ResourceSpans…]}` and its protobuf `tempopb.Trace` (wire-identical to OTLP
//! `TracesData`); v2 is `{"trace": {"resourceSpans": […]}, "status": "COMPLETE"}` and
//! `tempopb.TraceByIDResponse`.
//!
//! Tag names come from the newest spans of the window (an hour by default; trace search's
//! sample of attribute keys), as Tempo's own come from recent blocks; tag values, services
//! and span names from the term dictionaries, each checked against the tenant and window.

use super::otlp_out::resource_spans;
use crate::api::params::Params;
use crate::api::AppState;
use crate::correlate::correlator::{CorrelateError, Correlator};
use crate::correlate::trace_search::{AttributeScope, ListQuery};
use crate::index::IndexError;
use crate::model::{Span, TenantId, TraceId};
use actix_web::{web, HttpRequest, HttpResponse};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use serde::Serialize;
use std::collections::BTreeSet;

/// The Tempo version weft answers as: Grafana picks its API by it.
pub const COMPATIBLE_VERSION: &str = "2.6.0";
const HOUR_NS: u64 = 3_600_000_000_000;
/// TraceQL's intrinsics, as Tempo lists them.
const INTRINSICS: [&str; 8] = [
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "status",
    "statusMessage",
    "traceDuration",
];

/// Tempo's paths under `prefix` (`/tempo`, or `""` for the root, where `/api/traces/{id}`
/// is left to `compat::routes`, which knows `compat.root_traces`).
pub fn routes_at(cfg: &mut web::ServiceConfig, prefix: &str) {
    let p = |path: &str| format!("{prefix}{path}");
    cfg.route(&p("/api/v2/traces/{id}"), web::get().to(trace_v2))
        .route(&p("/api/search"), web::get().to(search))
        .route(&p("/api/search/tags"), web::get().to(tags))
        .route(&p("/api/v2/search/tags"), web::get().to(tags_v2))
        .route(
            &p("/api/search/tag/{tag}/values"),
            web::get().to(tag_values),
        )
        .route(
            &p("/api/v2/search/tag/{tag}/values"),
            web::get().to(tag_values_v2),
        )
        .route(&p("/api/echo"), web::get().to(echo))
        .route(&p("/api/status/buildinfo"), web::get().to(buildinfo));
    if !prefix.is_empty() {
        cfg.route(&p("/api/traces/{id}"), web::get().to(trace));
    }
}

#[derive(Debug)]
pub enum TempoError {
    Bad(String),
    NotFound(String),
    Index(IndexError),
}

impl From<crate::api::params::ParamError> for TempoError {
    fn from(e: crate::api::params::ParamError) -> TempoError {
        TempoError::Bad(e.message)
    }
}

impl From<CorrelateError> for TempoError {
    fn from(e: CorrelateError) -> Self {
        match e {
            CorrelateError::NotFound(m) => TempoError::NotFound(m),
            CorrelateError::Index(e) => e.into(),
        }
    }
}

impl From<IndexError> for TempoError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Query(m) => TempoError::Bad(m),
            other => TempoError::Index(other),
        }
    }
}

/// Tempo answers errors as text.
pub(crate) fn error_response(e: TempoError) -> HttpResponse {
    use actix_web::http::StatusCode;
    let (status, m) = match e {
        TempoError::Bad(m) => (StatusCode::BAD_REQUEST, m),
        TempoError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        TempoError::Index(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(m + "\n")
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TempoError> + Send + 'static,
) -> Result<T, HttpResponse> {
    match web::block(f).await {
        Ok(r) => r.map_err(error_response),
        Err(e) => Err(error_response(TempoError::Bad(e.to_string()))),
    }
}

pub(crate) fn request(
    req: &HttpRequest,
    state: &AppState,
) -> Result<(TenantId, Params), HttpResponse> {
    let tenant = state
        .auth
        .from_http(req)
        .map_err(|e| super::text_error(&e))?;
    let form = Params::lenient(req.query_string(), None, &[])
        .map_err(|e| error_response(TempoError::from(e)))?;
    Ok((tenant, form))
}

/// The most services or span names one list returns.
pub const MAX_NAMES: usize = 10_000;

/// Which names of spans a list asks for.
pub enum Names {
    Services,
    /// Span names of one service.
    Operations(String),
    AllOperations,
}

/// The first `MAX_NAMES` of a list over the window, of one service when given.
fn list_query(service: Option<String>, (start_ns, end_ns): (u64, u64)) -> ListQuery {
    ListQuery {
        service,
        start_ns,
        end_ns,
        prefix: String::new(),
        limit: MAX_NAMES,
    }
}

/// Services or span names of the tenant's spans in the window (trace search's lists: every
/// value checked against the tenant and window, at most `MAX_NAMES`).
pub fn span_names(
    c: &Correlator,
    tenant: &TenantId,
    names: Names,
    w: (u64, u64),
) -> Result<Vec<String>, TempoError> {
    let q = |service| list_query(service, w);
    let list = match names {
        Names::Services => c.services(tenant, &q(None))?,
        Names::Operations(s) => c.operations(tenant, &q(Some(s)))?,
        Names::AllOperations => c.operations(tenant, &q(None))?,
    };
    Ok(list.values)
}

/// The spans of one trace, or `NotFound`.
pub fn trace_spans(c: &Correlator, tenant: &TenantId, id: &str) -> Result<Vec<Span>, TempoError> {
    let trace_id =
        TraceId::from_hex(id).map_err(|e| TempoError::Bad(format!("invalid trace id: {e}")))?;
    // Tempo's own words, which clients show as they are.
    c.trace_spans(tenant, trace_id).map_err(|e| match e {
        CorrelateError::NotFound(_) => TempoError::NotFound(format!("trace {trace_id} not found")),
        e => e.into(),
    })
}

#[derive(Serialize)]
struct TraceV1 {
    batches: Vec<ResourceSpans>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TraceBody {
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Serialize)]
struct TraceV2 {
    trace: TraceBody,
    status: &'static str,
}

/// `tempopb.TraceByIDResponse`: the trace (as `TracesData`, wire-identical to `tempopb.Trace`)
/// and its completeness (0 complete).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<TracesData>,
    #[prost(int32, tag = "3")]
    pub status: i32,
}

fn wants_protobuf(req: &HttpRequest) -> bool {
    crate::api::otlp_http::header(req, "accept").is_some_and(|a| a.contains("protobuf"))
}

async fn lookup(
    req: &HttpRequest,
    state: &AppState,
    id: String,
) -> Result<Vec<ResourceSpans>, HttpResponse> {
    let (tenant, _) = request(req, state)?;
    let c = state.correlator.clone();
    blocking(move || Ok(resource_spans(&trace_spans(&c, &tenant, &id)?))).await
}

/// `GET /api/traces/{id}`.
pub async fn trace(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    match lookup(&req, &state, path.into_inner()).await {
        Ok(rs) if wants_protobuf(&req) => HttpResponse::Ok()
            .content_type("application/protobuf")
            .body(prost::Message::encode_to_vec(&TracesData {
                resource_spans: rs,
            })),
        Ok(rs) => HttpResponse::Ok().json(TraceV1 { batches: rs }),
        Err(r) => r,
    }
}

/// `GET /api/v2/traces/{id}`.
pub async fn trace_v2(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    match lookup(&req, &state, path.into_inner()).await {
        Ok(rs) if wants_protobuf(&req) => HttpResponse::Ok()
            .content_type("application/protobuf")
            .body(prost::Message::encode_to_vec(&TraceByIdResponse {
                trace: Some(TracesData { resource_spans: rs }),
                status: 0,
            })),
        Ok(rs) => HttpResponse::Ok().json(TraceV2 {
            trace: TraceBody { resource_spans: rs },
            status: "COMPLETE",
        }),
        Err(r) => r,
    }
}

fn window(form: &Params) -> Result<(u64, u64), TempoError> {
    let end = form.time("end")?.unwrap_or_else(crate::now_ns);
    let start = form.time("start")?.unwrap_or(end.saturating_sub(HOUR_NS));
    if start > end {
        return Err(TempoError::Bad("start is after end".into()));
    }
    Ok((start, end))
}

/// Attribute names of the newest spans of the window, by scope (trace search's sample).
fn tag_names(
    c: &Correlator,
    tenant: &TenantId,
    w: (u64, u64),
) -> Result<(Vec<String>, Vec<String>), TempoError> {
    let q = list_query(None, w);
    let (mut span, mut resource) = (BTreeSet::new(), BTreeSet::new());
    for k in c.attribute_keys(tenant, &q)?.keys {
        match k.scope {
            AttributeScope::Span => span.insert(k.key),
            AttributeScope::Resource => resource.insert(k.key),
        };
    }
    Ok((span.into_iter().collect(), resource.into_iter().collect()))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TagNames {
    tag_names: Vec<String>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    tags: Vec<String>,
}

#[derive(Serialize)]
struct TagScopes {
    scopes: Vec<Scope>,
}

/// `GET /api/search/tags`: span and resource attribute names together.
pub async fn tags(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (tenant, form) = match request(&req, &state) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let c = state.correlator.clone();
    let found = blocking(move || {
        let (span, resource) = tag_names(&c, &tenant, window(&form)?)?;
        let names: BTreeSet<String> = span.into_iter().chain(resource).collect();
        Ok(TagNames {
            tag_names: names.into_iter().collect(),
        })
    })
    .await;
    match found {
        Ok(t) => HttpResponse::Ok().json(t),
        Err(r) => r,
    }
}

/// `GET /api/v2/search/tags?scope=`: names by scope, intrinsics included.
pub async fn tags_v2(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (tenant, form) = match request(&req, &state) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let scope = form.get("scope").unwrap_or("all").to_string();
    if !["all", "span", "resource", "intrinsic", "event", "link"].contains(&scope.as_str()) {
        return error_response(TempoError::Bad(format!(
            "invalid scope {scope:?}: use span, resource, intrinsic or all"
        )));
    }
    let c = state.correlator.clone();
    let found = blocking(move || {
        let (span, resource) = tag_names(&c, &tenant, window(&form)?)?;
        let mut scopes = Vec::new();
        let want = |n: &str| scope == "all" || scope == n;
        if want("resource") {
            scopes.push(Scope {
                name: "resource",
                tags: resource,
            });
        }
        if want("span") {
            scopes.push(Scope {
                name: "span",
                tags: span,
            });
        }
        if want("intrinsic") {
            scopes.push(Scope {
                name: "intrinsic",
                tags: INTRINSICS.iter().map(|s| s.to_string()).collect(),
            });
        }
        Ok(TagScopes { scopes })
    })
    .await;
    match found {
        Ok(t) => HttpResponse::Ok().json(t),
        Err(r) => r,
    }
}

/// A tag as asked: v1 names (`service.name`) or TraceQL (`resource.service.name`,
/// `span.http.method`, `.x`, intrinsics).
enum Tag {
    Any(String),
    Span(String),
    Resource(String),
    Intrinsic(&'static str),
}

fn parse_tag(t: &str) -> Tag {
    if let Some(i) = INTRINSICS.iter().find(|i| **i == t) {
        return Tag::Intrinsic(i);
    }
    if let Some(k) = t.strip_prefix("resource.") {
        return Tag::Resource(k.into());
    }
    if let Some(k) = t.strip_prefix("span.") {
        return Tag::Span(k.into());
    }
    Tag::Any(t.strip_prefix('.').unwrap_or(t).into())
}

/// The values of a tag, typed as Tempo's v2 reports them.
fn values_of(
    c: &Correlator,
    tenant: &TenantId,
    tag: &str,
    w: (u64, u64),
) -> Result<Vec<(&'static str, String)>, TempoError> {
    let strings = |v: Vec<String>| v.into_iter().map(|s| ("string", s)).collect::<Vec<_>>();
    let keywords = |v: &[&str]| {
        v.iter()
            .map(|s| ("keyword", s.to_string()))
            .collect::<Vec<_>>()
    };
    Ok(match parse_tag(tag) {
        Tag::Resource(k) | Tag::Any(k) if k == "service.name" => {
            strings(span_names(c, tenant, Names::Services, w)?)
        }
        Tag::Intrinsic("name") => strings(span_names(c, tenant, Names::AllOperations, w)?),
        Tag::Intrinsic("status") => keywords(&["error", "ok", "unset"]),
        Tag::Intrinsic("kind") => keywords(&[
            "client",
            "consumer",
            "internal",
            "producer",
            "server",
            "unspecified",
        ]),
        Tag::Intrinsic(_) => Vec::new(),
        Tag::Span(k) | Tag::Resource(k) | Tag::Any(k) => c
            .attribute_values(tenant, &k, &list_query(None, w))?
            .values
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => ("string", s),
                serde_json::Value::Bool(b) => ("bool", b.to_string()),
                serde_json::Value::Number(n) if n.is_f64() => ("float", n.to_string()),
                other => ("int", other.to_string()),
            })
            .collect(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TagValues {
    tag_values: Vec<String>,
}

#[derive(Serialize)]
struct TypedValue {
    r#type: &'static str,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TagValuesV2 {
    tag_values: Vec<TypedValue>,
}

/// `GET /api/search/tag/{tag}/values`.
pub async fn tag_values(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, form) = match request(&req, &state) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let tag = path.into_inner();
    let c = state.correlator.clone();
    let found = blocking(move || {
        let values = values_of(&c, &tenant, &tag, window(&form)?)?;
        let unique: BTreeSet<String> = values.into_iter().map(|(_, v)| v).collect();
        Ok(TagValues {
            tag_values: unique.into_iter().collect(),
        })
    })
    .await;
    match found {
        Ok(t) => HttpResponse::Ok().json(t),
        Err(r) => r,
    }
}

/// `GET /api/v2/search/tag/{tag}/values`.
pub async fn tag_values_v2(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, form) = match request(&req, &state) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let tag = path.into_inner();
    let c = state.correlator.clone();
    let found = blocking(move || {
        let values = values_of(&c, &tenant, &tag, window(&form)?)?;
        Ok(TagValuesV2 {
            tag_values: values
                .into_iter()
                .map(|(t, value)| TypedValue { r#type: t, value })
                .collect(),
        })
    })
    .await;
    match found {
        Ok(t) => HttpResponse::Ok().json(t),
        Err(r) => r,
    }
}

/// One span of a search hit.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchSpan {
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub name: String,
    #[serde(serialize_with = "crate::model::time::ns_string")]
    pub start_time_unix_nano: u64,
    #[serde(serialize_with = "crate::model::time::ns_string")]
    pub duration_nanos: u64,
    pub attributes: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
}

#[derive(Clone, Serialize)]
pub struct SpanSet {
    pub spans: Vec<SearchSpan>,
    pub matched: usize,
}

/// `tempopb.TraceSearchMetadata`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceMetadata {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub root_service_name: String,
    pub root_trace_name: String,
    #[serde(serialize_with = "crate::model::time::ns_string")]
    pub start_time_unix_nano: u64,
    pub duration_ms: u64,
    pub span_set: SpanSet,
    pub span_sets: Vec<SpanSet>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchMetrics {
    pub inspected_traces: usize,
    pub inspected_bytes: String,
    pub completed_jobs: u32,
    pub total_jobs: u32,
}

#[derive(Serialize)]
pub struct SearchResponse {
    pub traces: Vec<TraceMetadata>,
    pub metrics: SearchMetrics,
}

/// Tempo's `tags` parameter: logfmt, `key=value key2="a value"`.
fn logfmt_tags(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("tags: {rest:?} is not key=value"))?;
        let (value, tail) = match after.strip_prefix('"') {
            Some(q) => {
                let end = q.find('"').ok_or("tags: unterminated quoted value")?;
                (&q[..end], &q[end + 1..])
            }
            None => after.split_at(after.find(' ').unwrap_or(after.len())),
        };
        out.push((key.trim().to_string(), value.to_string()));
        rest = tail.trim_start();
    }
    Ok(out)
}

/// The search a Tempo request asks for.
fn tempo_search(form: &Params) -> Result<(super::search::Search, usize), TempoError> {
    let bad = TempoError::Bad;
    let mut filter = match form.get("q") {
        Some(q) => super::traceql::parse(q).map_err(bad)?,
        None => super::traceql::SpanFilter(None),
    };
    if let Some(tags) = form.get("tags") {
        filter = filter.and(super::traceql::SpanFilter::tags(
            &logfmt_tags(tags).map_err(bad)?,
        ));
    }
    let (start_ns, end_ns) = window(form)?;
    let limit = form.number::<usize>("limit")?.unwrap_or(20);
    if limit == 0 || limit > super::search::MAX_TRACES_READ {
        return Err(bad(format!(
            "limit must be 1 to {}, got {limit}",
            super::search::MAX_TRACES_READ
        )));
    }
    let spss = form.number::<usize>("spss")?.unwrap_or(3).max(1);
    Ok((
        super::search::Search {
            filter,
            start_ns,
            end_ns,
            min_trace_ns: form.duration("minDuration")?,
            max_trace_ns: form.duration("maxDuration")?,
            limit,
        },
        spss,
    ))
}

/// `GET /api/search?q=&tags=&minDuration=&maxDuration=&limit=&start=&end=&spss=`.
pub async fn search(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (tenant, form) = match request(&req, &state) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (s, spss) = match tempo_search(&form) {
        Ok(v) => v,
        Err(e) => return error_response(e),
    };
    let c = state.correlator.clone();
    let found = blocking(move || {
        let results = super::search::search(&c, &tenant, &s)?;
        let mut keys = vec!["service.name".to_string()];
        keys.extend(s.filter.attribute_keys());
        let traces = results
            .traces
            .into_iter()
            .map(|f| {
                let spans = f
                    .matched
                    .iter()
                    .take(spss)
                    .map(|&i| {
                        let sp = &f.spans[i];
                        let attrs: Vec<crate::model::KeyValue> = keys
                            .iter()
                            .filter_map(|k| {
                                sp.attributes
                                    .iter()
                                    .chain(&sp.resource)
                                    .find(|kv| &kv.key == k)
                                    .cloned()
                            })
                            .collect();
                        SearchSpan {
                            span_id: sp.span_id.to_hex(),
                            name: sp.name.clone(),
                            start_time_unix_nano: sp.start_ns,
                            duration_nanos: sp.duration_ns(),
                            attributes: super::otlp_out::key_values(&attrs),
                        }
                    })
                    .collect::<Vec<_>>();
                let set = SpanSet {
                    spans,
                    matched: f.matched.len(),
                };
                let summary = &f.summary;
                TraceMetadata {
                    trace_id: summary.trace_id.to_hex(),
                    root_service_name: summary.root_service.clone(),
                    root_trace_name: summary.root_operation.clone(),
                    start_time_unix_nano: summary.start_time_unix_nano,
                    duration_ms: summary.duration_ns / 1_000_000,
                    span_sets: vec![set.clone()],
                    span_set: set,
                }
            })
            .collect();
        Ok(SearchResponse {
            traces,
            metrics: SearchMetrics {
                inspected_traces: results.inspected,
                inspected_bytes: "0".into(),
                completed_jobs: 1,
                total_jobs: 1,
            },
        })
    })
    .await;
    match found {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(r) => r,
    }
}

/// `GET /api/echo`: Grafana's connection test.
pub async fn echo() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("echo")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildInfo {
    version: &'static str,
    revision: String,
    branch: &'static str,
    build_user: &'static str,
    build_date: &'static str,
    go_version: &'static str,
}

/// `GET /api/status/buildinfo`: the Tempo version whose API weft speaks, and weft's own.
pub async fn buildinfo() -> HttpResponse {
    HttpResponse::Ok().json(BuildInfo {
        version: COMPATIBLE_VERSION,
        revision: format!("weft-{}", env!("CARGO_PKG_VERSION")),
        branch: "weft",
        build_user: "weft",
        build_date: "",
        go_version: "",
    })
}
