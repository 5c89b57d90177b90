//! Trace search and the lists its form needs: services, operations of a service, span
//! attribute keys and values. Handlers parse and name every bad parameter; the answers are
//! `correlate::trace_search`'s types as they are.

use super::auth::Tenant;
use super::errors::ApiError;
use super::params::{ParamError, Params};
use super::{blocking, AppState};
use crate::correlate::correlator::Listing;
use crate::correlate::trace_search::{ListQuery, SpanStatus, TraceOrder, TraceQuery, MAX_LIMIT};
use actix_web::{web, HttpRequest, HttpResponse};

const DEFAULT_TRACES: usize = 20;
const DEFAULT_LIST: usize = 100;
const MAX_LIST: usize = 1000;

/// `key=value`: the key up to the first `=`, the value after it (which may hold `=`).
fn attribute(v: &str) -> Result<(String, String), ParamError> {
    match v.split_once('=') {
        Some((k, val)) if !k.trim().is_empty() && !val.is_empty() => {
            Ok((k.trim().to_string(), val.to_string()))
        }
        _ => Err(ParamError::new(
            "attr",
            format!("attr: {v:?} is not key=value (for example attr=user.id=u-4242)"),
        )),
    }
}

fn trace_query(query_string: &str) -> Result<TraceQuery, ParamError> {
    let allowed = [
        "service",
        "operation",
        "min_duration",
        "max_duration",
        "status",
        "start",
        "end",
        "order",
        "limit",
    ];
    let p = Params::parse_repeating(query_string, &allowed, &["attr"])?;
    let (min_duration_ns, max_duration_ns) =
        (p.duration("min_duration")?, p.duration("max_duration")?);
    if let (Some(lo), Some(hi)) = (min_duration_ns, max_duration_ns) {
        if lo > hi {
            let e = "min_duration is more than max_duration";
            return Err(ParamError::new("min_duration", e));
        }
    }
    let status = p
        .get("status")
        .map(|s| {
            SpanStatus::parse(s).ok_or_else(|| {
                ParamError::new("status", format!("status: {s:?} is not error, ok or unset"))
            })
        })
        .transpose()?;
    let order = match p.get("order") {
        None | Some("newest") => TraceOrder::Newest,
        Some("slowest") => TraceOrder::Slowest,
        Some(o) => {
            let e = format!("order: {o:?} is not newest or slowest");
            return Err(ParamError::new("order", e));
        }
    };
    let (start_ns, end_ns) = p.window()?;
    Ok(TraceQuery {
        service: p.get("service").map(str::to_string),
        operation: p.get("operation").map(str::to_string),
        min_duration_ns,
        max_duration_ns,
        status,
        attributes: p
            .all("attr")
            .into_iter()
            .map(attribute)
            .collect::<Result<_, _>>()?,
        start_ns,
        end_ns,
        order,
        limit: p.limit(DEFAULT_TRACES, MAX_LIMIT)?,
    })
}

/// `GET /api/v1/traces?service&operation&min_duration&max_duration&status&attr=k=v…&start&end&order&limit`.
pub async fn search(
    req: HttpRequest,
    Tenant(tenant): Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = trace_query(req.query_string())?;
    let correlator = state.correlator.clone();
    let found = blocking(move || correlator.search_traces(&tenant, &q)).await?;
    Ok(HttpResponse::Ok().json(found))
}

const LIST_PARAMS: [&str; 4] = ["start", "end", "prefix", "limit"];

/// Answers one list request: `service` is the path's, or else the `service` parameter's
/// when `by_service` allows one.
async fn list(
    req: HttpRequest,
    tenant: Tenant,
    state: web::Data<AppState>,
    what: Listing,
    path_service: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let by_service = matches!(what, Listing::AttributeKeys | Listing::AttributeValues(_));
    let allowed = if by_service {
        [&LIST_PARAMS[..], &["service"]].concat()
    } else {
        LIST_PARAMS.to_vec()
    };
    let p = Params::parse(req.query_string(), &allowed)?;
    let (start_ns, end_ns) = p.window()?;
    let q = ListQuery {
        service: path_service.or_else(|| p.get("service").map(str::to_string)),
        start_ns,
        end_ns,
        prefix: p.get("prefix").unwrap_or_default().to_string(),
        limit: p.limit(DEFAULT_LIST, MAX_LIST)?,
    };
    let correlator = state.correlator.clone();
    let found = blocking(move || correlator.list(&tenant.0, &what, &q)).await?;
    Ok(HttpResponse::Ok().json(found))
}

/// `GET /api/v1/services?start&end&prefix&limit`: services with spans in the window.
pub async fn services(
    req: HttpRequest,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    list(req, tenant, state, Listing::Services, None).await
}

/// `GET /api/v1/services/{service}/operations?start&end&prefix&limit`.
pub async fn operations(
    req: HttpRequest,
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let service = Some(path.into_inner());
    list(req, tenant, state, Listing::Operations, service).await
}

/// `GET /api/v1/spans/attributes?service&start&end&prefix&limit`: keys seen on the newest
/// spans of the window.
pub async fn attribute_keys(
    req: HttpRequest,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    list(req, tenant, state, Listing::AttributeKeys, None).await
}

/// `GET /api/v1/spans/attributes/{key}/values?service&start&end&prefix&limit`.
pub async fn attribute_values(
    req: HttpRequest,
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let what = Listing::AttributeValues(path.into_inner());
    list(req, tenant, state, what, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_value_names_its_parameter() {
        let q = trace_query(
            "service=frontend&attr=user.id=u-4242&attr=expr=a=b&min_duration=1.5ms&status=error&order=slowest",
        )
        .unwrap();
        assert_eq!(
            q.attributes,
            vec![
                ("user.id".to_string(), "u-4242".to_string()),
                ("expr".to_string(), "a=b".to_string())
            ]
        );
        assert_eq!(q.min_duration_ns, Some(1_500_000));
        assert_eq!(
            (q.status, q.order),
            (Some(SpanStatus::Error), TraceOrder::Slowest)
        );
        for (query, names) in [
            ("attr=user.id", "attr"),
            ("attr==x", "attr"),
            ("min_duration=fast", "min_duration"),
            ("max_duration=5y", "max_duration"),
            ("min_duration=2s&max_duration=1s", "min_duration"),
            ("status=broken", "status"),
            ("order=oldest", "order"),
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("start=yesterday", "start"),
            ("service=a&service=b", "service"),
            ("colour=red", "colour"),
        ] {
            let e = trace_query(query).unwrap_err();
            assert_eq!(e.param, names, "{query}: {e}");
            assert!(e.message.contains(names), "{query}: {e}");
        }
    }
}
