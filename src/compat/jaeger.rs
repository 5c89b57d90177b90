//! The Jaeger query API (the one the Jaeger UI and Grafana's Jaeger data source call) over
//! weft's spans: `/api/services`, `/api/services/{service}/operations`, `/api/operations`,
//! `/api/traces` (search), `/api/traces/{id}`, `/api/dependencies`, in the UI's envelope
//! `{data, total, limit, offset, errors}` (contract: jaeger-query's `structuredResponse` and
//! its JSON model — no Jaeger client runs here). Served under `/jaeger` — run the Jaeger UI
//! with base path `/jaeger` (`--query.base-path=/jaeger`) and it calls exactly these — and at
//! the root where nothing collides; `/api/traces/{id}` at the root is Jaeger's when
//! `compat.root_traces = "jaeger"`.
//!
//! # Mapping
//!
//! Times in microseconds; a span's kind is its `span.kind` tag, a failed span (`Span::failed`,
//! also what the `error` tag searches) has `error: true`, one whose status is error also
//! `otel.status_code: ERROR` (with `otel.status_description`); events are logs
//! with an `event` field; links are `FOLLOWS_FROM` references; each service and resource is a
//! process whose tags are the resource attributes but `service.name`.

use super::search::{Search, MAX_TRACES_READ};
use super::tempo::{span_names, Names};
use super::tempo::{trace_spans, TempoError};
use super::traceql::SpanFilter;
use crate::api::params::Params;
use crate::api::AppState;
use crate::index::{Filter, Pick};
use crate::model::{AttrValue, KeyValue, Span, TenantId};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Operations whose span kind is looked up for `/api/operations` (one span read each).
const MAX_KINDED_OPERATIONS: usize = 500;
const DAY_MS: u64 = 86_400_000;

/// Jaeger's paths under `prefix` (`/jaeger`, or `""` for the root, where `/api/traces/{id}`
/// is left to `compat::routes`).
pub fn routes_at(cfg: &mut web::ServiceConfig, prefix: &str) {
    let p = |path: &str| format!("{prefix}{path}");
    cfg.route(&p("/api/services"), web::get().to(services))
        .route(
            &p("/api/services/{service}/operations"),
            web::get().to(service_operations),
        )
        .route(&p("/api/operations"), web::get().to(operations))
        .route(&p("/api/dependencies"), web::get().to(dependencies))
        .route(&p("/api/traces"), web::get().to(find_traces));
    if !prefix.is_empty() {
        cfg.route(&p("/api/traces/{id}"), web::get().to(trace));
    }
}

#[derive(Serialize)]
pub struct JaegerError {
    pub code: u16,
    pub msg: String,
}

/// Jaeger's `structuredResponse`.
#[derive(Serialize)]
pub struct Envelope<T: Serialize> {
    pub data: T,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    pub errors: Option<Vec<JaegerError>>,
}

fn reply<T: Serialize>(data: T, total: usize) -> HttpResponse {
    HttpResponse::Ok().json(Envelope {
        data,
        total,
        limit: 0,
        offset: 0,
        errors: None,
    })
}

/// An error in Jaeger's envelope, with its status.
pub(crate) fn jaeger_error(e: TempoError) -> HttpResponse {
    use actix_web::http::StatusCode;
    let (status, msg) = match e {
        TempoError::Bad(m) => (StatusCode::BAD_REQUEST, m),
        TempoError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        TempoError::Index(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    HttpResponse::build(status).json(Envelope::<Option<()>> {
        data: None,
        total: 0,
        limit: 0,
        offset: 0,
        errors: Some(vec![JaegerError {
            code: status.as_u16(),
            msg,
        }]),
    })
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Tag {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: Value,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Log {
    pub timestamp: u64,
    pub fields: Vec<Tag>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    pub ref_type: &'static str,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JaegerSpan {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub flags: u32,
    pub operation_name: String,
    pub references: Vec<Reference>,
    pub start_time: u64,
    pub duration: u64,
    pub tags: Vec<Tag>,
    pub logs: Vec<Log>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub service_name: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct JaegerTrace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<JaegerSpan>,
    pub processes: BTreeMap<String, Process>,
    pub warnings: Option<Vec<String>>,
}

fn tag(key: &str, v: &AttrValue) -> Tag {
    let (kind, value) = match v {
        AttrValue::Bool(b) => ("bool", Value::Bool(*b)),
        AttrValue::Int(i) => ("int64", Value::from(*i)),
        AttrValue::Double(d) => ("float64", Value::from(*d)),
        AttrValue::Bytes(b) => ("binary", Value::String(hex::encode(b))),
        other => ("string", Value::String(other.to_text())),
    };
    Tag {
        key: key.to_string(),
        kind,
        value,
    }
}

fn tags(attrs: &[KeyValue]) -> Vec<Tag> {
    attrs.iter().map(|kv| tag(&kv.key, &kv.value)).collect()
}

fn micros(ns: u64) -> u64 {
    ns / 1000
}

pub fn span_kind(kind: i32) -> &'static str {
    match kind {
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        1 => "internal",
        _ => "",
    }
}

/// One trace in the Jaeger UI's model.
pub fn jaeger_trace(spans: &[Span]) -> JaegerTrace {
    let mut processes: BTreeMap<String, Process> = BTreeMap::new();
    let mut keys: Vec<(&str, &[KeyValue])> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        let key = (s.service.as_str(), s.resource.as_slice());
        let pi = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
            keys.push(key);
            keys.len() - 1
        });
        let process_id = format!("p{}", pi + 1);
        processes
            .entry(process_id.clone())
            .or_insert_with(|| Process {
                service_name: s.service.clone(),
                tags: s
                    .resource
                    .iter()
                    .filter(|kv| kv.key != "service.name")
                    .map(|kv| tag(&kv.key, &kv.value))
                    .collect(),
            });
        let mut t = tags(&s.attributes);
        let kind = span_kind(s.kind);
        if !kind.is_empty() && kind != "internal" {
            t.push(tag("span.kind", &AttrValue::Str(kind.into())));
        }
        // `error` marks the span red in the Jaeger UI: by weft's one definition of a failed
        // span; `otel.status_code` is what the sender set.
        if s.failed() {
            t.push(tag("error", &AttrValue::Bool(true)));
        }
        if s.status_code == 2 {
            t.push(tag("otel.status_code", &AttrValue::Str("ERROR".into())));
            if !s.status_message.is_empty() {
                t.push(tag(
                    "otel.status_description",
                    &AttrValue::Str(s.status_message.clone()),
                ));
            }
        } else if s.status_code == 1 {
            t.push(tag("otel.status_code", &AttrValue::Str("OK".into())));
        }
        if !s.scope.name.is_empty() {
            t.push(tag(
                "otel.scope.name",
                &AttrValue::Str(s.scope.name.clone()),
            ));
        }
        let mut references: Vec<Reference> = s
            .parent_span_id
            .map(|p| Reference {
                ref_type: "CHILD_OF",
                trace_id: s.trace_id.to_hex(),
                span_id: p.to_hex(),
            })
            .into_iter()
            .collect();
        references.extend(s.links.iter().map(|l| Reference {
            ref_type: "FOLLOWS_FROM",
            trace_id: l.trace_id.to_hex(),
            span_id: l.span_id.to_hex(),
        }));
        out.push(JaegerSpan {
            trace_id: s.trace_id.to_hex(),
            span_id: s.span_id.to_hex(),
            flags: 1,
            operation_name: s.name.clone(),
            references,
            start_time: micros(s.start_ns),
            duration: micros(s.duration_ns()),
            tags: t,
            logs: s
                .events
                .iter()
                .map(|e| {
                    let mut fields = vec![tag("event", &AttrValue::Str(e.name.clone()))];
                    fields.extend(tags(&e.attributes));
                    Log {
                        timestamp: micros(e.time_ns),
                        fields,
                    }
                })
                .collect(),
            process_id,
            warnings: None,
        });
    }
    JaegerTrace {
        trace_id: spans
            .first()
            .map(|s| s.trace_id.to_hex())
            .unwrap_or_default(),
        spans: out,
        processes,
        warnings: None,
    }
}

fn request(req: &HttpRequest, state: &AppState) -> Result<(TenantId, Params), HttpResponse> {
    let tenant = state
        .auth
        .from_http(req)
        .map_err(|e| super::text_error(&e))?;
    let form = Params::lenient(req.query_string(), None, &[])
        .map_err(|e| jaeger_error(TempoError::from(e)))?;
    Ok((tenant, form))
}

/// A window in Jaeger's terms: `start`/`end` in microseconds (or any time weft reads);
/// by default everything retained, as Jaeger lists services of all time.
fn window(form: &Params, default_back_ns: u64) -> Result<(u64, u64), TempoError> {
    let end = form.time("end")?.unwrap_or_else(crate::now_ns);
    let start = form
        .time("start")?
        .unwrap_or(end.saturating_sub(default_back_ns));
    Ok((start.min(end), end))
}

async fn answer<T: Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<(T, usize), TempoError> + Send + 'static,
) -> HttpResponse {
    match web::block(f).await {
        Ok(Ok((data, total))) => reply(data, total),
        Ok(Err(e)) => jaeger_error(e),
        Err(e) => jaeger_error(TempoError::Bad(e.to_string())),
    }
}

fn span_filter(w: (u64, u64), services: Vec<String>) -> Filter {
    Filter {
        services,
        start_ns: w.0,
        end_ns: w.1,
        ..Filter::default()
    }
}

/// `GET /api/services`.
pub async fn services(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (tenant, form) = match request(&req, &state) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let c = state.correlator.clone();
    answer(move || {
        let w = window(&form, u64::MAX)?;
        let s = span_names(&c, &tenant, Names::Services, w)?;
        let n = s.len();
        Ok((s, n))
    })
    .await
}

/// `GET /api/services/{service}/operations`: the names, as strings.
pub async fn service_operations(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, form) = match request(&req, &state) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let service = path.into_inner();
    let c = state.correlator.clone();
    answer(move || {
        let w = window(&form, u64::MAX)?;
        let ops = span_names(&c, &tenant, Names::Operations(service), w)?;
        let n = ops.len();
        Ok((ops, n))
    })
    .await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub name: String,
    pub span_kind: &'static str,
}

/// `GET /api/operations?service=&spanKind=`: names with the kind of their newest span.
pub async fn operations(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (tenant, form) = match request(&req, &state) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(service) = form.get("service").map(String::from) else {
        return jaeger_error(TempoError::Bad("parameter 'service' is required".into()));
    };
    let kind_wanted = form.get("spanKind").map(String::from);
    let c = state.correlator.clone();
    answer(move || {
        let w = window(&form, u64::MAX)?;
        let f = span_filter(w, vec![service.clone()]);
        let names = span_names(&c, &tenant, Names::Operations(service), w)?;
        let kinded = names.len() <= MAX_KINDED_OPERATIONS;
        let mut ops = Vec::new();
        for name in names {
            let span_kind = if kinded {
                let g = Filter {
                    name: Some(name.clone()),
                    ..f.clone()
                };
                c.select_spans(&tenant, &g, Pick::Newest, 1)?
                    .first()
                    .map_or("", |s| span_kind(s.kind))
            } else {
                ""
            };
            if kind_wanted.as_deref().is_none_or(|k| k == span_kind) {
                ops.push(Operation { name, span_kind });
            }
        }
        let n = ops.len();
        Ok((ops, n))
    })
    .await
}

/// Jaeger's `tags`: a JSON object (what the UI sends) or `key=value` pairs.
fn jaeger_tags(text: &str) -> Result<Vec<(String, String)>, String> {
    if text.trim_start().starts_with('{') {
        let map: BTreeMap<String, Value> =
            serde_json::from_str(text).map_err(|e| format!("tags: not a JSON object: {e}"))?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect());
    }
    text.split_whitespace()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("tags: {kv:?} is not key=value"))
        })
        .collect()
}

/// The span filter a Jaeger search asks for: every condition on one span, as Jaeger means
/// it; the tag `error=true` is a failed span.
fn jaeger_filter(form: &Params) -> Result<SpanFilter, String> {
    use super::traceql::{Cond, Field, Op, Value as V};
    let cmp = |field, op, value| Cond::Cmp {
        field,
        op,
        value,
        regex: None,
    };
    let mut conds = Vec::new();
    if let Some(s) = form.get("service") {
        conds.push(cmp(
            Field::Resource("service.name".into()),
            Op::Eq,
            V::Str(s.into()),
        ));
    }
    if let Some(o) = form.get("operation") {
        conds.push(cmp(Field::Name, Op::Eq, V::Str(o.into())));
    }
    for (name, op) in [("minDuration", Op::Ge), ("maxDuration", Op::Le)] {
        if let Some(d) = form.duration(name)? {
            conds.push(cmp(Field::Duration, op, V::Duration(d)));
        }
    }
    let mut tags = Vec::new();
    for (k, v) in jaeger_tags(form.get("tags").unwrap_or(""))? {
        match (k.as_str(), v.as_str()) {
            // As the spans are rendered: `error` is weft's failed span.
            ("error", "true") => conds.push(cmp(Field::Failed, Op::Eq, V::Bool(true))),
            ("error", "false") => conds.push(cmp(Field::Failed, Op::Eq, V::Bool(false))),
            _ => tags.push((k, v)),
        }
    }
    let base = SpanFilter((!conds.is_empty()).then_some(Cond::And(conds)));
    Ok(base.and(SpanFilter::tags(&tags)))
}

/// `GET /api/traces?service=&operation=&tags=&minDuration=&maxDuration=&start=&end=&lookback=&limit=`
/// (or `traceID=` repeated): whole traces, newest first.
pub async fn find_traces(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (tenant, form) = match request(&req, &state) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ids: Vec<String> = form.all("traceID").into_iter().map(String::from).collect();
    let parsed = (|| {
        if ids.is_empty() && form.get("service").is_none() {
            return Err(TempoError::Bad("parameter 'service' is required".into()));
        }
        let filter = jaeger_filter(&form).map_err(TempoError::Bad)?;
        let lookback = match form.get("lookback") {
            None | Some("custom") => 3_600_000_000_000,
            Some(_) => form.duration("lookback")?.unwrap_or(0),
        };
        let (start_ns, end_ns) = window(&form, lookback)?;
        let limit = form.number::<usize>("limit")?.unwrap_or(20);
        if limit == 0 || limit > MAX_TRACES_READ {
            return Err(TempoError::Bad(format!(
                "limit must be 1 to {MAX_TRACES_READ}, got {limit}"
            )));
        }
        Ok(Search {
            filter,
            start_ns,
            end_ns,
            min_trace_ns: None,
            max_trace_ns: None,
            limit,
        })
    })();
    let s = match parsed {
        Ok(s) => s,
        Err(e) => return jaeger_error(e),
    };
    let c = state.correlator.clone();
    answer(move || {
        let traces: Vec<JaegerTrace> = if ids.is_empty() {
            super::search::search(&c, &tenant, &s)?
                .traces
                .iter()
                .map(|f| jaeger_trace(&f.spans))
                .collect()
        } else {
            let mut out = Vec::new();
            for id in ids.iter().take(MAX_TRACES_READ) {
                match trace_spans(&c, &tenant, id) {
                    Ok(spans) => out.push(jaeger_trace(&spans)),
                    Err(TempoError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            out
        };
        let n = traces.len();
        Ok((traces, n))
    })
    .await
}

/// `GET /api/traces/{id}`.
pub async fn trace(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, _) = match request(&req, &state) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = path.into_inner();
    let c = state.correlator.clone();
    answer(move || Ok((vec![jaeger_trace(&trace_spans(&c, &tenant, &id)?)], 1))).await
}

#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
}

/// `GET /api/dependencies?endTs=&lookback=` (milliseconds): the service map's calls between
/// services in the window (from its newest spans; see `correlate::service_map`).
pub async fn dependencies(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (tenant, form) = match request(&req, &state) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let parsed = (|| {
        let end_ms = form
            .number::<u64>("endTs")?
            .unwrap_or(crate::now_ns() / 1_000_000);
        let back_ms = form.number::<u64>("lookback")?.unwrap_or(DAY_MS);
        Ok((
            end_ms.saturating_sub(back_ms).saturating_mul(1_000_000),
            end_ms.saturating_mul(1_000_000),
        ))
    })();
    let w = match parsed {
        Ok(w) => w,
        Err(e) => return jaeger_error(e),
    };
    let c = state.correlator.clone();
    answer(move || {
        let links: Vec<Dependency> = c
            .service_map(&tenant, w)?
            .edges
            .into_iter()
            .map(|e| Dependency {
                parent: e.from,
                child: e.to,
                call_count: e.stats.requests as u64,
            })
            .collect();
        let n = links.len();
        Ok((links, n))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing;

    #[test]
    fn traces_in_jaeger_terms() {
        let mut root = testing::span(1, None, 10, 50);
        root.service = "frontend".into();
        root.kind = 2;
        let mut child = testing::span(2, Some(1), 20, 40);
        child.service = "cart".into();
        child.status_code = 2;
        child.status_message = "timeout".into();
        let t = jaeger_trace(&[root.clone(), child.clone()]);
        assert_eq!(t.spans.len(), 2);
        assert_eq!(t.processes.len(), 2);
        assert_eq!(t.spans[1].references[0].ref_type, "CHILD_OF");
        assert_eq!(t.spans[1].references[0].span_id, root.span_id.to_hex());
        assert!(t.spans[0]
            .tags
            .iter()
            .any(|t| t.key == "span.kind" && t.value == "server"));
        assert!(t.spans[1]
            .tags
            .iter()
            .any(|t| t.key == "error" && t.value == true));
        let v = serde_json::to_value(&t).unwrap();
        assert!(v["spans"][0]["traceID"].is_string() && v["spans"][0]["processID"] == "p1");
    }
}
