//! The Prometheus HTTP API over weft's metrics (RED series included), for Grafana's
//! Prometheus data source, promtool and any Prometheus client: `/api/v1/query`,
//! `/api/v1/query_range` (GET or form POST), `/api/v1/query_exemplars`, `/api/v1/series`,
//! `/api/v1/labels`, `/api/v1/label/{name}/values`, `/api/v1/metadata`,
//! `/api/v1/status/buildinfo`, in Prometheus' envelope (`status`, `data`, `errorType`,
//! `error`). Served under `/prometheus` (as Mimir does), since weft's own API owns `/api/v1`.
//! How stored points become Prometheus series: `prom_series`.

use super::prom_series::{self, PromExemplar, PromLabels, PromSeries, NAME, SERVICE};
use super::promql::{self, Fetched, Output, QueryError, Steps, Wanted};
use crate::api::params::Params;
use crate::api::AppState;
use crate::correlate::correlator::Correlator;
use crate::index::{Filter, Pick};
use crate::model::{MetricValue, Record, Signal, TenantId};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Points one query may read from the index, over all its selectors.
pub const MAX_POINTS: usize = crate::correlate::metrics::MAX_POINTS;
/// Points read to list label names and values without a selector: the newest of the window.
pub const LABEL_SCAN_POINTS: usize = 20_000;
/// Metric names whose kind is looked up for `__name__` values (histograms add suffixes).
const MAX_NAMES_TYPED: usize = 2_000;
/// The Prometheus version weft answers as: Grafana picks its features by it.
pub const COMPATIBLE_VERSION: &str = "2.42.0";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/prometheus/api/v1")
            .route("/query", web::get().to(query))
            .route("/query", web::post().to(query))
            .route("/query_range", web::get().to(query_range))
            .route("/query_range", web::post().to(query_range))
            .route("/query_exemplars", web::get().to(exemplars))
            .route("/query_exemplars", web::post().to(exemplars))
            .route("/series", web::get().to(series))
            .route("/series", web::post().to(series))
            .route("/labels", web::get().to(labels))
            .route("/labels", web::post().to(labels))
            .route("/label/{name}/values", web::get().to(label_values))
            .route("/metadata", web::get().to(metadata))
            .route("/status/buildinfo", web::get().to(buildinfo)),
    );
}

#[derive(Serialize)]
struct Success<T: Serialize> {
    status: &'static str,
    data: T,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Failure {
    status: &'static str,
    error_type: &'static str,
    error: String,
}

/// `[<unix seconds>, "<value>"]`.
#[derive(Debug, Serialize, PartialEq)]
pub struct SamplePair(pub f64, pub String);

impl SamplePair {
    fn new(t_ms: i64, v: f64) -> Self {
        SamplePair(t_ms as f64 / 1000.0, prom_series::format_value(v))
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct VectorSample {
    pub metric: PromLabels,
    pub value: SamplePair,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct MatrixSeries {
    pub metric: PromLabels,
    pub values: Vec<SamplePair>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryData {
    Scalar(SamplePair),
    Vector(Vec<VectorSample>),
    Matrix(Vec<MatrixSeries>),
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ExemplarOut {
    pub labels: PromLabels,
    pub value: String,
    pub timestamp: f64,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeriesExemplars {
    pub series_labels: PromLabels,
    pub exemplars: Vec<ExemplarOut>,
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

fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(Success {
        status: "success",
        data,
    })
}

fn fail(
    status: actix_web::http::StatusCode,
    error_type: &'static str,
    error: String,
) -> HttpResponse {
    HttpResponse::build(status).json(Failure {
        status: "error",
        error_type,
        error,
    })
}

fn query_error(e: QueryError) -> HttpResponse {
    use actix_web::http::StatusCode;
    match e {
        QueryError::Bad(m) => fail(StatusCode::BAD_REQUEST, "bad_data", m),
        QueryError::Limit(m) => fail(StatusCode::UNPROCESSABLE_ENTITY, "execution", m),
        QueryError::Index(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// An error of weft's own vocabulary (auth, tenancy) in the Prometheus envelope.
fn service_error(e: &dyn crate::error::ServiceError) -> HttpResponse {
    use crate::error::ErrorCode;
    let kind = match e.code() {
        ErrorCode::InvalidArgument => "bad_data",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Internal => "internal",
        _ => "unauthorized",
    };
    fail(
        crate::api::errors::http_status(e.code()),
        kind,
        e.to_string(),
    )
}

/// The tenant and the parameters (query string and form body) of a request.
fn request(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<(TenantId, Params), HttpResponse> {
    let tenant = state.auth.from_http(req).map_err(|e| service_error(&e))?;
    let form = Params::lenient(
        req.query_string(),
        crate::api::otlp_http::header(req, "content-type"),
        body,
    )
    .map_err(|e| query_error(QueryError::from(e)))?;
    Ok((tenant, form))
}

fn ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

fn ns(ms: i64) -> u64 {
    ms.max(0) as u64 * 1_000_000
}

/// Reads what every selector names and turns it into Prometheus series, within one points
/// budget; the exemplars of the points read come along.
pub fn fetch(
    c: &Correlator,
    tenant: &TenantId,
    wanted: &[Wanted],
) -> Result<(Fetched, Vec<PromExemplar>), QueryError> {
    let mut fetched = Fetched::new();
    let mut exemplars = Vec::new();
    let Some(from) = wanted.iter().map(|w| w.from_ms).min() else {
        return Ok((fetched, exemplars));
    };
    let to = wanted.iter().map(|w| w.to_ms).max().unwrap_or(from);
    let stored = c.metric_names(tenant, (ns(from), ns(to)))?;
    let mut budget = MAX_POINTS;
    for w in wanted {
        let matchers = w.matchers();
        let names: Vec<&str> = match &w.selector.name {
            Some(n) => prom_series::stored_candidates(n, &stored),
            None => stored
                .iter()
                .filter(|s| {
                    prom_series::served_names(s, true).iter().any(|n| {
                        matchers
                            .iter()
                            .filter(|m| m.name == NAME)
                            .all(|m| m.is_match(n))
                    })
                })
                .map(String::as_str)
                .collect(),
        };
        let services: Vec<String> = matchers
            .iter()
            .filter(|m| m.name == SERVICE && matches!(m.op, promql_parser::label::MatchOp::Equal))
            .map(|m| m.value.clone())
            .collect();
        let mut series: Vec<PromSeries> = Vec::new();
        for name in names {
            let f = Filter {
                services: services.clone(),
                start_ns: ns(w.from_ms),
                end_ns: ns(w.to_ms),
                name: Some(name.to_string()),
                ..Filter::default()
            };
            let points = c.metric_points(tenant, &f, budget)?;
            budget -= points.len();
            let (s, e) = prom_series::to_prom(&points);
            series.extend(
                s.into_iter()
                    .filter(|s| promql::matches(&matchers, &s.labels)),
            );
            exemplars.extend(
                e.into_iter()
                    .filter(|e| promql::matches(&matchers, &e.series)),
            );
        }
        fetched.insert(promql::fetched_key(w), series);
    }
    Ok((fetched, exemplars))
}

/// Evaluates a query at `steps`.
pub fn run_query(
    c: &Correlator,
    tenant: &TenantId,
    q: &str,
    steps: Steps,
) -> Result<QueryData, QueryError> {
    let expr = promql::parse(q)?;
    if steps.count() > promql::MAX_STEPS {
        return Err(QueryError::Limit(format!(
            "the query has {} steps, over the limit of {}; use a larger step",
            steps.count(),
            promql::MAX_STEPS
        )));
    }
    let wanted = promql::selectors(&expr, &steps);
    let (fetched, _) = fetch(c, tenant, &wanted)?;
    let out = promql::evaluate(&expr, &steps, &fetched)?;
    let instant = steps.count() == 1;
    Ok(match out {
        Output::Scalar(v) if instant => {
            let (t, x) = v.first().copied().unwrap_or((steps.start_ms, f64::NAN));
            QueryData::Scalar(SamplePair::new(t, x))
        }
        Output::Scalar(v) => QueryData::Matrix(vec![MatrixSeries {
            metric: PromLabels::new(),
            values: v.into_iter().map(|(t, x)| SamplePair::new(t, x)).collect(),
        }]),
        Output::Vector(v) if instant => QueryData::Vector(
            v.into_iter()
                .filter_map(|(metric, points)| {
                    let (t, x) = points.first().copied()?;
                    Some(VectorSample {
                        metric,
                        value: SamplePair::new(t, x),
                    })
                })
                .collect(),
        ),
        Output::Vector(v) => QueryData::Matrix(
            v.into_iter()
                .map(|(metric, points)| MatrixSeries {
                    metric,
                    values: points
                        .into_iter()
                        .map(|(t, x)| SamplePair::new(t, x))
                        .collect(),
                })
                .collect(),
        ),
        Output::Matrix(m) => QueryData::Matrix(
            m.into_iter()
                .map(|s| MatrixSeries {
                    metric: s.labels,
                    values: s
                        .samples
                        .into_iter()
                        .map(|(t, x)| SamplePair::new(t, x))
                        .collect(),
                })
                .collect(),
        ),
    })
}

fn window(form: &Params) -> Result<(i64, i64), QueryError> {
    let now = crate::now_ns();
    let end = form.time("end")?.unwrap_or(now);
    let start = form
        .time("start")?
        .unwrap_or(end.saturating_sub(3_600_000_000_000));
    if start > end {
        return Err(QueryError::Bad(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        ));
    }
    Ok((ms(start), ms(end)))
}

/// Vector selectors of `match[]`, each read over the window.
fn series_matching(
    c: &Correlator,
    tenant: &TenantId,
    selectors: &[String],
    (from, to): (i64, i64),
) -> Result<Vec<PromSeries>, QueryError> {
    let exprs = selectors
        .iter()
        .map(|s| match promql::parse(s)? {
            promql_parser::parser::Expr::VectorSelector(v) => Ok(v),
            _ => Err(QueryError::Bad(format!(
                "match[] {s:?} is not a series selector"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let wanted: Vec<Wanted> = exprs
        .iter()
        .map(|v| Wanted {
            selector: v,
            from_ms: from,
            to_ms: to,
        })
        .collect();
    let (fetched, _) = fetch(c, tenant, &wanted)?;
    let mut seen = BTreeMap::new();
    for s in fetched.into_values().flatten() {
        seen.entry(s.labels.clone()).or_insert(s);
    }
    Ok(seen.into_values().collect())
}

/// Series of the newest points in the window, when no selector narrows it.
fn sampled_series(
    c: &Correlator,
    tenant: &TenantId,
    (from, to): (i64, i64),
) -> Result<Vec<PromSeries>, QueryError> {
    let f = Filter {
        start_ns: ns(from),
        end_ns: ns(to),
        ..Filter::default()
    };
    let points: Vec<_> = c
        .select(Signal::Metrics, tenant, &f, Pick::Newest, LABEL_SCAN_POINTS)?
        .into_iter()
        .filter_map(|r| match r {
            Record::Metric(m) => Some(m),
            _ => None,
        })
        .collect();
    Ok(prom_series::to_prom(&points).0)
}

/// Metric names as served: histograms and summaries with their `_bucket`, `_sum`, `_count`.
fn served_metric_names(
    c: &Correlator,
    tenant: &TenantId,
    (from, to): (i64, i64),
) -> Result<Vec<String>, QueryError> {
    let stored = c.metric_names(tenant, (ns(from), ns(to)))?;
    let typed = stored.len() <= MAX_NAMES_TYPED;
    let mut out = BTreeSet::new();
    for name in &stored {
        let kind = if typed {
            let f = Filter {
                start_ns: ns(from),
                end_ns: ns(to),
                name: Some(name.clone()),
                ..Filter::default()
            };
            c.select(Signal::Metrics, tenant, &f, Pick::Newest, 1)?
                .into_iter()
                .find_map(|r| match r {
                    Record::Metric(m) => Some(m.value),
                    _ => None,
                })
        } else {
            None
        };
        let base = prom_series::metric_name(name);
        let suffixes: &[&str] = match kind {
            Some(MetricValue::Histogram { .. } | MetricValue::ExponentialHistogram { .. }) => {
                &["_bucket", "_sum", "_count"]
            }
            Some(MetricValue::Summary { .. }) => &["", "_sum", "_count"],
            _ => &[""],
        };
        out.extend(suffixes.iter().map(|s| format!("{base}{s}")));
    }
    Ok(out.into_iter().collect())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, QueryError> + Send + 'static,
) -> Result<T, HttpResponse> {
    match web::block(f).await {
        Ok(r) => r.map_err(query_error),
        Err(e) => Err(query_error(QueryError::Bad(e.to_string()))),
    }
}

/// `/api/v1/query?query=&time=`.
pub async fn query(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let (tenant, form) = match request(&req, &state, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let parsed = (|| {
        let q = form.required("query")?.to_string();
        let t = form.time("time")?.unwrap_or_else(crate::now_ns);
        Ok((q, ms(t)))
    })();
    let (q, t) = match parsed {
        Ok(v) => v,
        Err(e) => return query_error(e),
    };
    let c = state.correlator.clone();
    match blocking(move || run_query(&c, &tenant, &q, Steps::instant(t))).await {
        Ok(d) => ok(d),
        Err(r) => r,
    }
}

/// `/api/v1/query_range?query=&start=&end=&step=`.
pub async fn query_range(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, form) = match request(&req, &state, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let parsed = (|| {
        let q = form.required("query")?.to_string();
        let start = form.time("start")?;
        let end = form.time("end")?;
        let (Some(start), Some(end)) = (start, end) else {
            return Err(QueryError::Bad(
                "parameters \"start\" and \"end\" are required".into(),
            ));
        };
        let step = form
            .duration("step")?
            .ok_or_else(|| QueryError::Bad("parameter \"step\" is required".into()))?;
        if end < start {
            return Err(QueryError::Bad(
                "invalid parameter \"end\": end timestamp must not be before start time".into(),
            ));
        }
        if step < 1_000_000 {
            return Err(QueryError::Bad("invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into()));
        }
        Ok((
            q,
            Steps {
                start_ms: ms(start),
                end_ms: ms(end),
                step_ms: ms(step),
            },
        ))
    })();
    let (q, steps) = match parsed {
        Ok(v) => v,
        Err(e) => return query_error(e),
    };
    let c = state.correlator.clone();
    match blocking(move || run_query(&c, &tenant, &q, steps)).await {
        Ok(d) => ok(d),
        Err(r) => r,
    }
}

/// `/api/v1/query_exemplars?query=&start=&end=`: the exemplars of the series the query's
/// selectors name, grouped by series.
pub async fn exemplars(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, form) = match request(&req, &state, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let parsed = (|| {
        let q = form.required("query")?.to_string();
        Ok((q, window(&form)?))
    })();
    let (q, (from, to)) = match parsed {
        Ok(v) => v,
        Err(e) => return query_error(e),
    };
    let c = state.correlator.clone();
    let found = blocking(move || {
        let expr = promql::parse(&q)?;
        let steps = Steps {
            start_ms: from,
            end_ms: to,
            step_ms: (to - from).max(1),
        };
        let wanted: Vec<Wanted> = promql::selectors(&expr, &steps)
            .into_iter()
            .map(|w| Wanted {
                from_ms: from,
                to_ms: to,
                ..w
            })
            .collect();
        let (_, exemplars) = fetch(&c, &tenant, &wanted)?;
        let mut by_series: BTreeMap<PromLabels, Vec<ExemplarOut>> = BTreeMap::new();
        for e in exemplars
            .into_iter()
            .filter(|e| e.time_ms >= from && e.time_ms <= to)
        {
            by_series.entry(e.series).or_default().push(ExemplarOut {
                labels: e.labels,
                value: prom_series::format_value(e.value),
                timestamp: e.time_ms as f64 / 1000.0,
            });
        }
        Ok(by_series
            .into_iter()
            .map(|(series_labels, mut exemplars)| {
                exemplars.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
                SeriesExemplars {
                    series_labels,
                    exemplars,
                }
            })
            .collect::<Vec<_>>())
    })
    .await;
    match found {
        Ok(d) => ok(d),
        Err(r) => r,
    }
}

/// `/api/v1/series?match[]=&start=&end=`.
pub async fn series(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, form) = match request(&req, &state, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let selectors: Vec<String> = form.all("match[]").into_iter().map(String::from).collect();
    if selectors.is_empty() {
        return query_error(QueryError::Bad("no match[] parameter provided".into()));
    }
    let w = match window(&form) {
        Ok(w) => w,
        Err(e) => return query_error(e),
    };
    let c = state.correlator.clone();
    match blocking(move || series_matching(&c, &tenant, &selectors, w)).await {
        Ok(s) => ok(s.into_iter().map(|s| s.labels).collect::<Vec<_>>()),
        Err(r) => r,
    }
}

/// Label names and values of the window, of `match[]` series when given.
async fn label_sets(
    req: &HttpRequest,
    body: &[u8],
    state: &web::Data<AppState>,
) -> Result<(TenantId, Vec<String>, (i64, i64)), HttpResponse> {
    let (tenant, form) = request(req, state, body)?;
    let w = window(&form).map_err(query_error)?;
    let selectors = form.all("match[]").into_iter().map(String::from).collect();
    Ok((tenant, selectors, w))
}

/// `/api/v1/labels`.
pub async fn labels(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, selectors, w) = match label_sets(&req, &body, &state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let c = state.correlator.clone();
    let found = blocking(move || {
        let series = if selectors.is_empty() {
            sampled_series(&c, &tenant, w)?
        } else {
            series_matching(&c, &tenant, &selectors, w)?
        };
        let mut names: BTreeSet<String> = series
            .into_iter()
            .flat_map(|s| s.labels.into_keys())
            .collect();
        names.insert(NAME.into());
        Ok(names.into_iter().collect::<Vec<_>>())
    })
    .await;
    match found {
        Ok(d) => ok(d),
        Err(r) => r,
    }
}

/// `/api/v1/label/{name}/values`.
pub async fn label_values(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (tenant, selectors, w) = match label_sets(&req, &[], &state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let label = path.into_inner();
    let c = state.correlator.clone();
    let found = blocking(move || {
        if label == NAME && selectors.is_empty() {
            return served_metric_names(&c, &tenant, w);
        }
        let series = if selectors.is_empty() {
            sampled_series(&c, &tenant, w)?
        } else {
            series_matching(&c, &tenant, &selectors, w)?
        };
        let values: BTreeSet<String> = series
            .into_iter()
            .filter_map(|mut s| s.labels.remove(&label))
            .collect();
        Ok(values.into_iter().collect::<Vec<_>>())
    })
    .await;
    match found {
        Ok(d) => ok(d),
        Err(r) => r,
    }
}

/// `/api/v1/metadata`: weft keeps no Prometheus metadata (help texts, declared types), so the
/// map is empty, which clients read as "unknown".
pub async fn metadata() -> HttpResponse {
    ok(serde_json::Map::new())
}

/// `/api/v1/status/buildinfo`: the Prometheus version whose API weft speaks, and weft's own.
pub async fn buildinfo() -> HttpResponse {
    ok(BuildInfo {
        version: COMPATIBLE_VERSION,
        revision: format!("weft-{}", env!("CARGO_PKG_VERSION")),
        branch: "weft",
        build_user: "weft",
        build_date: "",
        go_version: "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_serialize_in_prometheus_shape() {
        let mut metric = PromLabels::new();
        metric.insert("job".into(), "api".into());
        let v = serde_json::to_value(QueryData::Vector(vec![VectorSample {
            metric,
            value: SamplePair::new(1_700_000_000_500, 2.5),
        }]))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"resultType": "vector", "result": [
                {"metric": {"job": "api"}, "value": [1_700_000_000.5, "2.5"]}]})
        );
        let s = serde_json::to_value(QueryData::Scalar(SamplePair::new(0, f64::INFINITY))).unwrap();
        assert_eq!(
            s,
            serde_json::json!({"resultType": "scalar", "result": [0.0, "+Inf"]})
        );
    }
}
