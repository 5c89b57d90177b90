//! Trace search and the lists its form needs: services, operations of a service, span
//! attribute keys and values. Handlers parse and name every bad parameter; the answers are
//! `correlate::trace_search`'s types as they are.

use super::correlate::limit;
use super::params::Params;
use super::{bad_request, blocking, tenant_of, AppState};
use crate::correlate::trace_search::{
    self, ListQuery, SpanStatus, TraceOrder, TraceQuery, MAX_LIMIT,
};
use crate::model::time::parse_duration_param;
use actix_web::{web, HttpRequest, HttpResponse};

const DEFAULT_TRACES: usize = 20;
const DEFAULT_LIST: usize = 100;
const MAX_LIST: usize = 1000;

/// `key=value`: the key up to the first `=`, the value after it (which may hold `=`).
fn attribute(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((k, val)) if !k.trim().is_empty() && !val.is_empty() => {
            Ok((k.trim().to_string(), val.to_string()))
        }
        _ => Err(format!(
            "attr: {v:?} is not key=value (for example attr=user.id=u-4242)"
        )),
    }
}

fn trace_query(query_string: &str) -> Result<TraceQuery, String> {
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
    let duration = |name| {
        p.get(name)
            .map(|v| parse_duration_param(name, v))
            .transpose()
    };
    let (min_duration_ns, max_duration_ns) = (duration("min_duration")?, duration("max_duration")?);
    if let (Some(lo), Some(hi)) = (min_duration_ns, max_duration_ns) {
        if lo > hi {
            return Err("min_duration is more than max_duration".into());
        }
    }
    let status = p
        .get("status")
        .map(|s| {
            SpanStatus::parse(s).ok_or_else(|| format!("status: {s:?} is not error, ok or unset"))
        })
        .transpose()?;
    let order = match p.get("order") {
        None | Some("newest") => TraceOrder::Newest,
        Some("slowest") => TraceOrder::Slowest,
        Some(o) => return Err(format!("order: {o:?} is not newest or slowest")),
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
            .iter()
            .map(|a| attribute(a))
            .collect::<Result<_, _>>()?,
        start_ns,
        end_ns,
        order,
        limit: limit(&p, DEFAULT_TRACES, MAX_LIMIT)?,
    })
}

/// `GET /api/v1/traces?service&operation&min_duration&max_duration&status&attr=k=v…&start&end&order&limit`.
pub async fn search(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let q = match trace_query(req.query_string()) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let store = state.store.clone();
    match blocking(move || trace_search::search(&store, &tenant, &q)).await {
        Ok(found) => HttpResponse::Ok().json(found),
        Err(r) => r,
    }
}

fn list_query(p: &Params, service: Option<&str>) -> Result<ListQuery, String> {
    let (start_ns, end_ns) = p.window()?;
    Ok(ListQuery {
        service: service.map(str::to_string),
        start_ns,
        end_ns,
        prefix: p.get("prefix").unwrap_or_default().to_string(),
        limit: limit(p, DEFAULT_LIST, MAX_LIST)?,
    })
}

const LIST_PARAMS: [&str; 4] = ["start", "end", "prefix", "limit"];

/// Runs one list read for a request whose parameters `parse` turns into a list query.
async fn list<T, F>(
    req: HttpRequest,
    state: web::Data<AppState>,
    parse: impl FnOnce(&Params) -> Result<ListQuery, String>,
    allowed: &[&str],
    read: F,
) -> HttpResponse
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(
            &crate::index::Store,
            &crate::model::TenantId,
            &ListQuery,
        ) -> Result<T, crate::index::IndexError>
        + Send
        + 'static,
{
    let tenant = match tenant_of(&req, &state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let q = match Params::parse(req.query_string(), allowed).and_then(|p| parse(&p)) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let store = state.store.clone();
    match blocking(move || read(&store, &tenant, &q)).await {
        Ok(found) => HttpResponse::Ok().json(found),
        Err(r) => r,
    }
}

/// `GET /api/v1/services?start&end&prefix&limit`: services with spans in the window.
pub async fn services(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let parse = |p: &Params| list_query(p, None);
    list(req, state, parse, &LIST_PARAMS, trace_search::services).await
}

/// `GET /api/v1/services/{service}/operations?start&end&prefix&limit`.
pub async fn operations(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let service = path.into_inner();
    let parse = move |p: &Params| list_query(p, Some(&service));
    list(req, state, parse, &LIST_PARAMS, trace_search::operations).await
}

/// `GET /api/v1/spans/attributes?service&start&end&prefix&limit`: keys seen on the newest
/// spans of the window.
pub async fn attribute_keys(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let parse = |p: &Params| list_query(p, p.get("service"));
    let allowed = [&LIST_PARAMS[..], &["service"]].concat();
    list(req, state, parse, &allowed, trace_search::attribute_keys).await
}

/// `GET /api/v1/spans/attributes/{key}/values?service&start&end&prefix&limit`.
pub async fn attribute_values(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let key = path.into_inner();
    let parse = |p: &Params| list_query(p, p.get("service"));
    let allowed = [&LIST_PARAMS[..], &["service"]].concat();
    list(req, state, parse, &allowed, move |store, tenant, q| {
        trace_search::attribute_values(store, tenant, &key, q)
    })
    .await
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
            assert!(e.contains(names), "{query}: {e}");
        }
    }
}
