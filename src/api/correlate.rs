//! Correlation endpoints: the traces behind a metric spike, what is different in a window,
//! the unified timeline, and incidents. Handlers parse, call the `Correlator`, and render.

use super::auth::Tenant;
use super::errors::ApiError;
use super::params::{ParamError, Params};
use super::query::{link_json, log_json, ns_json, rfc3339};
use super::views::{AnomalyView, DiffView, DifferenceView, ExemplarView, WindowView};
use super::{blocking, AppState};
use crate::correlate::correlator::{DiffRequest, DiffWindow, Subject};
use crate::correlate::diff::Difference;
use crate::correlate::incidents::{Incident, Status};
use crate::correlate::series::{parse_selector, Selector};
use crate::correlate::timeline::{Entry, Item, Key, Kind, Narrow, Page, Phase};
use crate::model::{Span, TraceId};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

const DEFAULT_TRACES: usize = 20;
const DEFAULT_PAGE: usize = 200;
const MAX_PAGE: usize = 5000;

fn span_brief(s: &Span) -> Value {
    json!({
        "trace_id": s.trace_id.to_hex(),
        "span_id": s.span_id.to_hex(),
        "service": s.service,
        "name": s.name,
        "start_time_unix_nano": ns_json(s.start_ns),
        "duration_ns": s.duration_ns(),
        "status": {"code": s.status_code, "message": s.status_message},
        "failed": s.failed(),
    })
}

/// `GET /api/v1/correlate/metric?query=<series>&start&end&limit`: the traces behind a spike.
pub async fn metric(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(req.query_string(), &["query", "start", "end", "limit"])?;
    let selector = parse_selector(p.required("query")?).map_err(|e| ParamError::new("query", e))?;
    let (window, limit) = (p.window()?, p.limit(DEFAULT_TRACES, 200)?);
    let correlator = state.correlator.clone();
    let text = selector.to_text();
    let report = blocking(move || correlator.spike(&tenant, &selector, window, limit)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "series": text,
        "start": rfc3339(window.0),
        "end": rfc3339(window.1),
        "services": report.services,
        "exemplar_traces": report.exemplars,
        "traces": report.traces.iter().map(|t| json!({
            "trace_id": t.trace_id.to_hex(),
            "exemplar": t.exemplar_value.is_some(),
            "exemplar_value": t.exemplar_value,
            "score": (t.score * 1000.0).round() / 1000.0,
            "reasons": t.reasons,
            "span": t.span.as_ref().map(span_brief),
            "baseline_median_ns": t.baseline_median_ns,
            "root": t.root.as_ref().map(span_brief),
            "error_logs": t.error_logs.iter().map(log_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })))
}

fn differences(d: &[Difference]) -> Vec<DifferenceView<'_>> {
    d.iter().map(DifferenceView::from).collect()
}

/// `GET /api/v1/correlate/diff?start&end[&baseline_start&baseline_end][&service=a,b][&incident]`:
/// what is over-represented in the window against the baseline (by default
/// `correlate::baseline::before` the window, as for an incident's own summary).
pub async fn diff(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let allowed = [
        "start",
        "end",
        "baseline_start",
        "baseline_end",
        "service",
        "incident",
        "limit",
    ];
    let p = Params::parse(req.query_string(), &allowed)?;
    let window = match p.get("incident") {
        Some(id) => DiffWindow::Incident(id.to_string()),
        None => {
            let (start, end) = p.window()?;
            DiffWindow::Range(start, end)
        }
    };
    let baseline = match (p.time("baseline_start")?, p.time("baseline_end")?) {
        (None, None) => None,
        (Some(s), Some(e)) if s <= e => Some((s, e)),
        (Some(_), Some(_)) => {
            let e = ParamError::new("baseline_start", "baseline_start is after baseline_end");
            return Err(e.into());
        }
        (Some(_), None) | (None, Some(_)) => {
            let e = ParamError::new(
                "baseline_start",
                "baseline_start and baseline_end go together",
            );
            return Err(e.into());
        }
    };
    let request = DiffRequest {
        window,
        services: p.list("service"),
        baseline,
        limit: p.limit(20, 200)?,
    };
    let correlator = state.correlator.clone();
    let answer = blocking(move || correlator.diff(&tenant, request)).await?;
    Ok(HttpResponse::Ok().json(DiffView {
        window: WindowView::new(answer.window),
        baseline: WindowView::new(answer.baseline),
        differences: differences(&answer.differences),
    }))
}

fn trace_link(trace: TraceId, span: Option<crate::model::SpanId>, how: &str) -> Value {
    json!({"trace_id": trace.to_hex(), "span_id": span.map(|s| s.to_hex()), "how": how})
}

fn entry_json(e: &Entry) -> Value {
    let (kind, mut v) = match &e.item {
        Item::SpanStart(s) | Item::SpanEnd(s) => {
            let kind = if matches!(e.item, Item::SpanStart(_)) {
                "span_start"
            } else {
                "span_end"
            };
            let mut v = span_brief(s);
            v["parent_span_id"] = json!(s.parent_span_id.map(|p| p.to_hex()));
            v["end_time_unix_nano"] = ns_json(s.end_ns);
            v["links"] = json!([trace_link(s.trace_id, Some(s.span_id), "span")]);
            (kind, v)
        }
        Item::Log { log, inferred } => {
            let mut v = log_json(log);
            let links = match (inferred, log.trace_id) {
                (Some(i), _) => {
                    v["link"] = json!({
                        "method": "inferred",
                        "trace_id": i.trace_id.to_hex(),
                        "span_id": i.span_id.to_hex(),
                        "confidence": (i.confidence * 1000.0).round() / 1000.0,
                        "reason": i.reason,
                    });
                    json!([{"trace_id": i.trace_id.to_hex(), "span_id": i.span_id.to_hex(),
                            "how": "inferred", "confidence": (i.confidence * 1000.0).round() / 1000.0}])
                }
                (None, Some(t)) => {
                    let how = log
                        .link
                        .as_ref()
                        .map_or("structured", |l| l.method.as_str());
                    json!([trace_link(t, log.span_id, how)])
                }
                (None, None) => {
                    v["link"] = link_json(&None);
                    json!([])
                }
            };
            v["links"] = links;
            ("log", v)
        }
        Item::Exemplar { point, exemplar } => {
            let labels = crate::correlate::series::labels_of(point);
            let series = Selector::exact(&point.name, &labels).to_text();
            let mut v = json!(ExemplarView::from(exemplar));
            // The entry's time is the point's; the exemplar's own moment stays visible.
            v["exemplar_time_unix_nano"] = v["time_unix_nano"].take();
            v["metric"] = json!(point.name);
            v["labels"] = json!(labels);
            v["series"] = json!(series);
            v["links"] = match exemplar.trace_id {
                Some(t) => {
                    json!([{"trace_id": t.to_hex(), "span_id": exemplar.span_id.map(|s| s.to_hex()),
                                   "series": series, "how": "exemplar"}])
                }
                None => json!([]),
            };
            ("exemplar", v)
        }
        Item::Anomaly { watched, phase } => {
            let kind = match phase {
                Phase::Start => "anomaly_start",
                Phase::Peak => "anomaly_peak",
                Phase::End => "anomaly_end",
            };
            let mut links = vec![json!({"series": watched.series, "how": "detector"})];
            links.extend(watched.exemplars.iter().filter_map(|x| {
                x.trace_id.map(|t| {
                    json!({"trace_id": t.to_hex(), "span_id": x.span_id.map(|s| s.to_hex()),
                                          "series": watched.series, "how": "exemplar"})
                })
            }));
            let a = &watched.anomaly;
            (
                kind,
                json!({
                    "signal": watched.signal,
                    "service": watched.service,
                    "series": watched.series,
                    "anomaly": a.kind,
                    "score": (a.score * 100.0).round() / 100.0,
                    "baseline": a.baseline,
                    "peak_value": a.peak_value,
                    "links": links,
                }),
            )
        }
        Item::Incident { id, opened } => (
            if *opened {
                "incident_opened"
            } else {
                "incident_closed"
            },
            json!({"incident": id, "links": [{"incident": id, "how": "detector"}]}),
        ),
    };
    v["kind"] = json!(kind);
    v["time"] = json!(rfc3339(e.time_ns));
    v["time_unix_nano"] = ns_json(e.time_ns);
    v
}

fn page_json(page: &Page) -> Value {
    json!({
        "count": page.entries.len(),
        "entries": page.entries.iter().map(entry_json).collect::<Vec<_>>(),
        "next_cursor": page.next.as_ref().map(|k| k.to_cursor()),
    })
}

/// `GET /api/v1/timeline?trace_id=…` | `?service=a,b&start&end` | `?incident=…`, with
/// `limit` and `cursor` (from the previous page's `next_cursor`).
pub async fn timeline(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let allowed = [
        "trace_id", "service", "start", "end", "incident", "limit", "cursor", "kinds",
    ];
    let p = Params::parse(req.query_string(), &allowed)?;
    let subjects = ["trace_id", "incident"]
        .iter()
        .filter(|k| p.get(k).is_some())
        .count();
    if subjects > 1 || (subjects == 0 && p.get("service").is_none()) {
        let e = ParamError::new(
            "trace_id",
            "give trace_id or incident (service then narrows its entries), or service with start and end",
        );
        return Err(e.into());
    }
    let mut narrow = Narrow::default();
    for k in p.list("kinds") {
        let kind = Kind::parse(&k).ok_or_else(|| {
            ParamError::new("kinds", format!("{k:?} is not one of {}", Kind::NAMES))
        })?;
        narrow.kinds.push(kind);
    }
    // With a trace or an incident, `service` narrows its timeline to those services' entries.
    let subject = if let Some(t) = p.get("trace_id") {
        narrow.services = p.list("service");
        Subject::Trace(super::params::trace_id("trace_id", t)?)
    } else if let Some(id) = p.get("incident") {
        narrow.services = p.list("service");
        Subject::Incident(id.to_string())
    } else {
        let (start_ns, end_ns) = p.window()?;
        Subject::Services {
            services: p.list("service"),
            start_ns,
            end_ns,
        }
    };
    let after = p
        .get("cursor")
        .map(Key::parse)
        .transpose()
        .map_err(|e| ParamError::new("cursor", e))?;
    let limit = p.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let correlator = state.correlator.clone();
    let page =
        blocking(move || correlator.timeline(&tenant, &subject, &narrow, after.as_ref(), limit))
            .await?;
    Ok(HttpResponse::Ok().json(page_json(&page)))
}

pub(super) fn incident_json(i: &Incident, step_ns: u64) -> Value {
    json!({
        "id": i.id,
        "status": i.status,
        "detected_at": rfc3339(i.detected_ns),
        "start": rfc3339(i.start_ns),
        "start_time_unix_nano": ns_json(i.start_ns),
        "end": rfc3339(i.end_ns(step_ns)),
        "end_time_unix_nano": ns_json(i.end_ns(step_ns)),
        "closed": i.closed_ns.map(rfc3339),
        "services": i.services,
        "suspected_origins": i.origins,
        "anomalies": i.anomalies.iter().map(|w| {
            let mut v = json!(AnomalyView::from(&w.anomaly));
            v["signal"] = json!(w.signal);
            v["service"] = json!(w.service);
            v["series"] = json!(w.series);
            v["unit"] = json!(w.unit);
            v["direction"] = json!(w.direction);
            v["exemplars"] = json!(w.exemplars.iter().map(ExemplarView::from).collect::<Vec<_>>());
            v
        }).collect::<Vec<_>>(),
        "exemplar_traces": i.exemplar_traces,
    })
}

/// `GET /api/v1/incidents?status=open|closed`: newest first.
pub async fn incidents(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(req.query_string(), &["status"])?;
    let status = match p.get("status") {
        None => None,
        Some("open") => Some(Status::Open),
        Some("closed") => Some(Status::Closed),
        Some(other) => {
            let e = ParamError::new("status", format!("status: {other:?} is not open or closed"));
            return Err(e.into());
        }
    };
    let step = state.correlator.step_ns();
    let list: Vec<Value> = state
        .correlator
        .incidents(&tenant, status)
        .iter()
        .map(|i| incident_json(i, step))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "count": list.len(), "incidents": list })))
}

/// `GET /api/v1/incidents/{id}`: the incident with what is different and its timeline's
/// first page.
pub async fn incident(
    req: HttpRequest,
    path: web::Path<String>,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Params::parse(req.query_string(), &[])?;
    let correlator = state.correlator.clone();
    let id = path.into_inner();
    let detail = blocking(move || correlator.incident_detail(&tenant, &id)).await?;
    let id = &detail.incident.id;
    let mut v = incident_json(&detail.incident, state.correlator.step_ns());
    v["what_is_different"] = json!(differences(&detail.differences));
    v["timeline"] = page_json(&detail.timeline);
    v["links"] = json!({
        "self": format!("/api/v1/incidents/{id}"),
        "timeline": format!("/api/v1/timeline?incident={id}"),
        "what_is_different": format!("/api/v1/correlate/diff?incident={id}"),
    });
    Ok(HttpResponse::Ok().json(v))
}
