//! Serves the embedded web UI: the shell for every UI path (the browser routes), the assets
//! by name. Assets revalidate by `ETag` on each load (`no-cache`), so a new binary's UI is
//! seen at once and an unchanged one costs a 304; nothing is fetched from anywhere else
//! (the content security policy says so to the browser).

use crate::ui::{self, Asset};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// Scripts, styles, images and requests from weft itself only.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn send(req: &HttpRequest, a: &Asset) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, a.etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP));
    if fresh {
        return res.finish();
    }
    res.content_type(a.content_type).body(a.bytes)
}

/// `GET /`, `GET /ui/…`: the page; the client renders the view its URL names.
pub async fn shell(req: HttpRequest) -> HttpResponse {
    match ui::asset(ui::SHELL) {
        Some(a) => send(&req, a),
        None => HttpResponse::NotFound().finish(),
    }
}

/// `GET /ui/assets/{name}`.
pub async fn asset(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    match ui::asset(&name) {
        Some(a) => send(&req, a),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no UI asset {:?}", name.as_str())),
    }
}
