//! Correlation endpoints: the traces behind a metric spike, what is different in a window,
//! the unified timeline, and incidents. Handlers parse, call `correlate`, and shape JSON.

use super::metrics::{anomaly_json, exemplar_json};
use super::params::Params;
use super::query::{link_json, log_json, ns_json, rfc3339};
use super::{bad_request, blocking, tenant_of, AppState};
use crate::correlate::diff::{self, Difference};
use crate::correlate::incidents::{Incident, Status};
use crate::correlate::series::{parse_selector, Selector};
use crate::correlate::spike;
use crate::correlate::timeline::{self, Entry, Item, Key, Phase, ServiceWindow, Source};
use crate::correlate::watch;
use crate::error::ErrorCode;
use crate::index::IndexError;
use crate::model::time::parse_time_param;
use crate::model::{Span, TenantId, TraceId};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

const DEFAULT_TRACES: usize = 20;
const DEFAULT_PAGE: usize = 200;
const MAX_PAGE: usize = 5000;

pub(super) fn limit(p: &Params, default: usize, max: usize) -> Result<usize, String> {
    match p.number::<usize>("limit")? {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(format!("limit must be 1 to {max}, got {n}")),
    }
}

fn span_brief(s: &Span) -> Value {
    json!({
        "trace_id": s.trace_id.to_hex(),
        "span_id": s.span_id.to_hex(),
        "service": s.service,
        "name": s.name,
        "start_time_unix_nano": ns_json(s.start_ns),
        "duration_ns": s.duration_ns(),
        "status": {"code": s.status_code, "message": s.status_message},
    })
}

/// `GET /api/v1/correlate/metric?query=<series>&start&end&limit`: the traces behind a spike.
pub async fn metric(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let parsed =
        Params::parse(req.query_string(), &["query", "start", "end", "limit"]).and_then(|p| {
            let selector = parse_selector(p.required("query")?)?;
            Ok((selector, p.window()?, limit(&p, DEFAULT_TRACES, 200)?))
        });
    let (selector, (start, end), limit) = match parsed {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let store = state.store.clone();
    let text = selector.to_text();
    let found =
        blocking(move || spike::explain(&store, &tenant, &selector, start, end, limit)).await;
    match found {
        Ok(report) => HttpResponse::Ok().json(json!({
            "series": text,
            "start": rfc3339(start),
            "end": rfc3339(end),
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
        })),
        Err(r) => r,
    }
}

pub fn differences_json(d: &[Difference]) -> Vec<Value> {
    d.iter()
        .map(|d| {
            json!({
                "kind": d.kind,
                "feature": d.feature,
                "window": {"count": d.window_count, "total": d.window_total},
                "baseline": {"count": d.baseline_count, "total": d.baseline_total},
                "lift": (d.lift * 100.0).round() / 100.0,
            })
        })
        .collect()
}

/// `GET /api/v1/correlate/diff?start&end[&baseline_start&baseline_end][&service=a,b][&incident]`:
/// what is over-represented in the window against the baseline (by default the same length
/// just before it).
pub async fn diff(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let allowed = [
        "start",
        "end",
        "baseline_start",
        "baseline_end",
        "service",
        "incident",
        "limit",
    ];
    let parsed = Params::parse(req.query_string(), &allowed).and_then(|p| {
        let (mut services, mut window) = (p.list("service"), p.window()?);
        if let Some(id) = p.get("incident") {
            let inc = state
                .incidents
                .get(&tenant, id)
                .ok_or_else(|| format!("incident: no incident {id:?}"))?;
            window = (inc.start_ns, inc.end_ns(step_ns(&state)));
            if services.is_empty() {
                services = inc.services;
            }
        }
        let now = crate::now_ns();
        let len = window.1 - window.0;
        let baseline = match (p.get("baseline_start"), p.get("baseline_end")) {
            (None, None) => (
                window.0.saturating_sub(len.max(1)),
                window.0.saturating_sub(1),
            ),
            (Some(s), Some(e)) => (
                parse_time_param("baseline_start", s, now)?,
                parse_time_param("baseline_end", e, now)?,
            ),
            _ => return Err("baseline_start and baseline_end go together".into()),
        };
        Ok((services, window, baseline, limit(&p, 20, 200)?))
    });
    let (services, window, baseline, limit) = match parsed {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let store = state.store.clone();
    match blocking(move || diff::compare(&store, &tenant, &services, window, baseline, limit)).await
    {
        Ok(d) => HttpResponse::Ok().json(json!({
            "window": {"start": rfc3339(window.0), "end": rfc3339(window.1)},
            "baseline": {"start": rfc3339(baseline.0), "end": rfc3339(baseline.1)},
            "differences": differences_json(&d),
        })),
        Err(r) => r,
    }
}

fn step_ns(state: &AppState) -> u64 {
    state.config.incidents.step_secs * 1_000_000_000
}

/// The most steps a timeline page's live anomaly detection evaluates per series.
const LIVE_STEPS: u64 = 2_000;

/// The detector's step, or a whole multiple of it that covers `span_ns` in `LIVE_STEPS`.
fn live_step(step: u64, span_ns: u64) -> u64 {
    let wanted = span_ns.div_ceil(LIVE_STEPS);
    step.max(wanted.div_ceil(step).saturating_mul(step))
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
            let mut v = exemplar_json(exemplar);
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

/// What a timeline request asks for.
enum Subject {
    Trace(TraceId),
    Services(Vec<String>, u64, u64),
    Incident(Box<Incident>),
}

/// The sources of one page of a subject's timeline.
fn sources(
    state: &AppState,
    tenant: &TenantId,
    subject: &Subject,
    after: Option<&Key>,
    limit: usize,
) -> Result<Vec<Source>, IndexError> {
    let store = &state.store;
    let margin = state.config.correlate.inference_margin_ms * 1_000_000;
    let step = step_ns(state);
    match subject {
        Subject::Trace(t) => timeline::of_trace(
            store,
            tenant,
            *t,
            margin,
            state.config.correlate.max_inferred_logs,
        ),
        Subject::Services(services, start, end) => {
            let w = ServiceWindow {
                services,
                start_ns: *start,
                end_ns: *end,
                after,
                limit,
                margin_ns: margin,
            };
            let mut out = timeline::of_services(store, tenant, &w)?;
            // Live: the services' RED error rate, p95 latency and error-log rate over this
            // page's time only, in at most LIVE_STEPS steps (coarser over a long quiet page).
            // Application metrics are many and costly to re-read per page; their anomalies
            // come from the incidents the detector recorded in the window.
            let from = after.map_or(*start, |k| k.time_ns.max(*start));
            let until = timeline::page_end(&out, after, limit, *end);
            let step = live_step(step, until.saturating_sub(from));
            let spec = watch::grid(
                from.saturating_sub(state.config.anomalies.baseline_points as u64 * step),
                until,
                step,
            );
            let thresholds = crate::correlate::stats::Thresholds::from(&state.config.anomalies);
            let mut seen = watch::anomalies(
                store,
                tenant,
                Some(services),
                &spec,
                &state.config.incidents,
                &thresholds,
                false,
            )?
            .anomalies;
            for inc in state.incidents.list(tenant) {
                seen.extend(
                    inc.anomalies
                        .into_iter()
                        .filter(|a| a.signal == "metric" && services.contains(&a.service)),
                );
            }
            out.push(Source::complete(timeline::anomaly_entries(
                &seen, from, until,
            )));
            Ok(out)
        }
        Subject::Incident(inc) => {
            let (start, end) = (inc.start_ns.saturating_sub(step), inc.end_ns(step) + step);
            let w = ServiceWindow {
                services: &inc.services,
                start_ns: start,
                end_ns: end,
                after,
                limit,
                margin_ns: margin,
            };
            let mut out = timeline::of_services(store, tenant, &w)?;
            let mut events = timeline::anomaly_entries(&inc.anomalies, start, end);
            events.push(Entry {
                time_ns: inc.start_ns,
                item: Item::Incident {
                    id: inc.id.clone(),
                    opened: true,
                },
            });
            if let Some(closed) = inc.closed_ns {
                events.push(Entry {
                    time_ns: closed,
                    item: Item::Incident {
                        id: inc.id.clone(),
                        opened: false,
                    },
                });
            }
            out.push(Source::complete(events));
            Ok(out)
        }
    }
}

async fn timeline_page(
    state: web::Data<AppState>,
    tenant: TenantId,
    subject: Subject,
    after: Option<Key>,
    limit: usize,
) -> Result<Value, HttpResponse> {
    blocking(move || {
        let sources = sources(&state, &tenant, &subject, after.as_ref(), limit)?;
        let page = timeline::page(sources, after.as_ref(), limit);
        Ok::<_, IndexError>(json!({
            "count": page.entries.len(),
            "entries": page.entries.iter().map(entry_json).collect::<Vec<_>>(),
            "next_cursor": page.next.map(|k| k.to_cursor()),
        }))
    })
    .await
}

/// `GET /api/v1/timeline?trace_id=…` | `?service=a,b&start&end` | `?incident=…`, with
/// `limit` and `cursor` (from the previous page's `next_cursor`).
pub async fn timeline(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let allowed = [
        "trace_id", "service", "start", "end", "incident", "limit", "cursor",
    ];
    let parsed = Params::parse(req.query_string(), &allowed).and_then(|p| {
        let given = ["trace_id", "service", "incident"]
            .iter()
            .filter(|k| p.get(k).is_some())
            .count();
        if given != 1 {
            return Err(
                "give exactly one of trace_id, service (with start and end) or incident".into(),
            );
        }
        let subject = if let Some(t) = p.get("trace_id") {
            Subject::Trace(TraceId::from_hex(t).map_err(|e| format!("trace_id: {e}"))?)
        } else if let Some(id) = p.get("incident") {
            Subject::Incident(Box::new(
                state
                    .incidents
                    .get(&tenant, id)
                    .ok_or_else(|| format!("incident: no incident {id:?}"))?,
            ))
        } else {
            let (start, end) = p.window()?;
            Subject::Services(p.list("service"), start, end)
        };
        let after = p.get("cursor").map(Key::parse).transpose()?;
        Ok((subject, after, limit(&p, DEFAULT_PAGE, MAX_PAGE)?))
    });
    let (subject, after, limit) = match parsed {
        Ok(v) => v,
        Err(e) if e.starts_with("incident: no incident") => {
            return super::errors::json_error(ErrorCode::NotFound, &e)
        }
        Err(e) => return bad_request(e),
    };
    match timeline_page(state, tenant, subject, after, limit).await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(r) => r,
    }
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
            let mut v = anomaly_json(&w.anomaly);
            v["signal"] = json!(w.signal);
            v["service"] = json!(w.service);
            v["series"] = json!(w.series);
            v["unit"] = json!(w.unit);
            v["direction"] = json!(w.direction);
            v["exemplars"] = w.exemplars.iter().map(exemplar_json).collect();
            v
        }).collect::<Vec<_>>(),
        "exemplar_traces": i.exemplar_traces,
    })
}

/// `GET /api/v1/incidents?status=open|closed`: newest first.
pub async fn incidents(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let status = match Params::parse(req.query_string(), &["status"]) {
        Ok(p) => match p.get("status") {
            None => None,
            Some("open") => Some(Status::Open),
            Some("closed") => Some(Status::Closed),
            Some(other) => return bad_request(format!("status: {other:?} is not open or closed")),
        },
        Err(e) => return bad_request(e),
    };
    let step = step_ns(&state);
    let list: Vec<Value> = state
        .incidents
        .list(&tenant)
        .iter()
        .filter(|i| status.is_none_or(|s| i.status == s))
        .map(|i| incident_json(i, step))
        .collect();
    HttpResponse::Ok().json(json!({ "count": list.len(), "incidents": list }))
}

/// `GET /api/v1/incidents/{id}`: the incident with what is different and its timeline's
/// first page.
pub async fn incident(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(e) = Params::parse(req.query_string(), &[]) {
        return bad_request(e);
    }
    let Some(inc) = state.incidents.get(&tenant, &path) else {
        return super::errors::json_error(
            ErrorCode::NotFound,
            &format!("no incident {:?}", path.as_str()),
        );
    };
    let step = step_ns(&state);
    let mut v = incident_json(&inc, step);
    let (start, end) = (inc.start_ns, inc.end_ns(step));
    let len = (end - start).max(60_000_000_000);
    let (store, services, t2) = (state.store.clone(), inc.services.clone(), tenant.clone());
    let differences = blocking(move || {
        diff::compare(
            &store,
            &t2,
            &services,
            (start, end),
            (start.saturating_sub(len), start.saturating_sub(1)),
            20,
        )
    })
    .await;
    match differences {
        Ok(d) => v["what_is_different"] = json!(differences_json(&d)),
        Err(r) => return r,
    }
    let id = inc.id.clone();
    match timeline_page(
        state,
        tenant,
        Subject::Incident(Box::new(inc)),
        None,
        DEFAULT_PAGE,
    )
    .await
    {
        Ok(t) => v["timeline"] = t,
        Err(r) => return r,
    }
    v["links"] = json!({
        "self": format!("/api/v1/incidents/{id}"),
        "timeline": format!("/api/v1/timeline?incident={id}"),
        "what_is_different": format!("/api/v1/correlate/diff?incident={id}"),
    });
    HttpResponse::Ok().json(v)
}
