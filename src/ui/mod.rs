//! The web UI: hand-written HTML, CSS and JavaScript modules, embedded in the binary and
//! served as they are — no build step, nothing fetched at run time. The pages call weft's own
//! REST API (`/api/v1/…`) from the browser, so they show exactly what the API answers, and
//! route on the client (history API): the server answers every UI path with the one shell.
//! Depends on nothing inside the crate.

use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub struct Asset {
    pub name: &'static str,
    pub bytes: &'static [u8],
    pub content_type: &'static str,
    /// A strong validator of the content, quoted, for `ETag`.
    pub etag: String,
}

/// The page every UI path answers with.
pub const SHELL: &str = "index.html";

macro_rules! embedded {
    ($($name:literal => $type:expr),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("assets/", $name)), $type)),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static FILES: &[(&str, &[u8], &str)] = embedded! {
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "app.js" => JS,
    "api.js" => JS,
    "format.js" => JS,
    "chart.js" => JS,
    "form.js" => JS,
    "views/search.js" => JS,
    "views/trace.js" => JS,
    "views/compare.js" => JS,
    "views/metrics.js" => JS,
    "views/incidents.js" => JS,
    "views/services.js" => JS,
};

fn all() -> &'static [Asset] {
    static ASSETS: OnceLock<Vec<Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        FILES
            .iter()
            .map(|&(name, bytes, content_type)| Asset {
                name,
                bytes,
                content_type,
                etag: format!("\"{}\"", &hex::encode(Sha256::digest(bytes))[..20]),
            })
            .collect()
    })
}

/// The embedded file `name` (`app.js`, `views/trace.js`, …).
pub fn asset(name: &str) -> Option<&'static Asset> {
    all().iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_an_asset_imports_is_embedded() {
        // A module imported but not embedded would fail only in the browser.
        let import = regex::Regex::new(r#"from\s+"(\.{1,2}/[^"]+)""#).unwrap();
        for a in all() {
            let text = std::str::from_utf8(a.bytes).unwrap();
            let dir = a.name.rsplit_once('/').map_or("", |(d, _)| d);
            for c in import.captures_iter(text) {
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for seg in c[1].split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                assert!(asset(&target).is_some(), "{} imports {target}", a.name);
            }
        }
        assert!(asset(SHELL).is_some());
    }
}
