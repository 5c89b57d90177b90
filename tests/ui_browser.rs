//! The web UI in a real headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), against a real weft filled by the demo shop (five minutes with the
//! inventory fault, time-compressed): every view renders real data; a log hit opens its
//! trace, an exemplar dot its trace, an incident its origin's trace; a search by `user.id`
//! finds the trace that carries it; the back button returns to the search; the trace view
//! answers the keyboard; phone width does not overflow; with auth on, the UI asks for a token
//! and shows the API's refusal, never another tenant's data. Screenshots of every view go to
//! `target/tmp/ui-screenshots/`.
//!
//! Without chromium and chromedriver the test prints why and passes, unless `CI=true`, where
//! it fails: `.ci/run` installs them.

mod common;

use common::otlp::{self, encode, hex};
use common::{post, Server};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft::demo::scenario::{Fault, FAULTY};

const SECONDS: u64 = 300;
const FAULT: Fault = Fault {
    start_s: 120,
    end_s: 180,
};
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(30);

/// Whether the browser is here; without it, a notice (or, in CI, a failure).
fn browser_present() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        let why = format!(
            "the browser tests need {CHROMIUM} and {CHROMEDRIVER} \
             (apt-get install chromium chromium-driver)"
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipping: {why}");
    }
    present
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        common::wait_until(Duration::from_secs(20), "chromedriver", || {
            reqwest::blocking::get(format!("{url}/status"))
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn open_browser(driver: &Driver, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1280,1000",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with chromium")
}

/// The page as one browser tab sees it.
struct Page {
    client: Client,
    base: String,
    shots: PathBuf,
}

impl Page {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                self.shot("failed").await;
                let body = self.text("main").await;
                panic!("{css} did not appear ({e}); the page says: {body}");
            }
        }
    }

    async fn all(&self, css: &str) -> Vec<fantoccini::elements::Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Waits until the URL contains `part`.
    async fn wait_url(&self, part: &str) {
        let started = Instant::now();
        while !self.url().await.contains(part) {
            assert!(
                started.elapsed() < WAIT,
                "URL {} never contained {part}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// The trace view of `id` is drawn: its waterfall has a row per span.
    async fn wait_trace(&self, id: &str) -> usize {
        self.wait_url(&format!("/ui/trace/{id}")).await;
        self.wait(".waterfall .wf-row").await;
        self.all(".waterfall .wf-row").await.len()
    }
}

/// Facts about the loaded data, read from the API, that the UI must show.
struct Facts {
    window: String,
    /// A failed checkout through inventory, its user, its span count, and its start.
    trace: String,
    user: String,
    spans: usize,
    start_s: u64,
    incident: String,
}

fn facts(server: &Server, t0: u64) -> Facts {
    let ns = 1_000_000_000;
    let window = format!("start={}&end={}", t0 / ns, t0 / ns + SECONDS + 60);
    let mut incident = String::new();
    common::wait_until(Duration::from_secs(90), "a closed incident", || {
        let (_, list) = server.get_json("/api/v1/incidents?status=closed");
        match list["incidents"][0]["id"].as_str() {
            Some(id) => {
                incident = id.to_string();
                true
            }
            None => false,
        }
    });
    let (_, found) = server.get_json(&format!(
        "/api/v1/traces?service={FAULTY}&status=error&limit=1&{window}"
    ));
    let trace = found["traces"][0]["trace_id"]
        .as_str()
        .expect("a failed trace through inventory")
        .to_string();
    let (_, t) = server.get_json(&format!("/api/v1/traces/{trace}"));
    let user = t["spans"][0]["attributes"]["user.id"]
        .as_str()
        .expect("the demo's frontend spans carry user.id")
        .to_string();
    let start_s = t["start_time_unix_nano"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap()
        / ns;
    Facts {
        window,
        spans: t["spans"].as_array().unwrap().len(),
        trace,
        user,
        start_s,
        incident,
    }
}

#[test]
fn every_view_renders_real_data_and_links_through() {
    if !browser_present() {
        return;
    }
    let server = Server::start(&[("WEFT_INCIDENTS_INTERVAL_MS", "500")]);
    let (t0, failed) = common::replay_shop(&server, SECONDS, FAULT);
    assert!(failed > 50, "the fault failed only {failed} checkouts");
    let f = facts(&server, t0);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    println!("screenshots: {}", shots.display());
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = open_browser(&driver, profile.path()).await;
        let page = Page {
            client,
            base: server.url(""),
            shots: shots.clone(),
        };
        walk(&page, &f).await;
        page.client.close().await.unwrap();
    });
}

async fn walk(page: &Page, f: &Facts) {
    let w = &f.window;
    // Search: the newest traces of the window.
    page.goto(&format!("/ui/search?{w}")).await;
    page.wait("table.traces tbody tr a.trace-link").await;
    page.wait("svg.chart a.dot-link").await;
    page.shot("search-traces").await;

    // A search by user.id, typed into the form, finds the trace that carries it.
    let around = format!("start={}&end={}", f.start_s - 5, f.start_s + 5);
    page.goto(&format!("/ui/search?{around}")).await;
    let attr = page.wait("input[name=attr]").await;
    let typed = format!("user.id={}", f.user);
    attr.send_keys(&typed).await.unwrap();
    page.wait("form.search button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    page.wait_url("attr=user.id").await;
    let link = page
        .wait(&format!("table.traces a[href=\"/ui/trace/{}\"]", f.trace))
        .await;
    for row in page.all("table.traces tbody tr").await {
        assert!(row.text().await.unwrap().contains("frontend"));
    }
    page.shot("search-by-user").await;

    // The trace: a row per span, the critical path, errors, inferred logs apart.
    link.click().await.unwrap();
    assert_eq!(page.wait_trace(&f.trace).await, f.spans);
    page.wait(".wf-row.critical").await;
    page.wait(".wf-row.error").await;
    page.wait(".inferred-box li.inferred").await;
    assert!(page.text(".inferred-box").await.contains("confidence"));
    page.wait("table.ops tbody tr").await;
    page.shot("trace").await;
    // Keyboard: the rows take focus, arrows move, Enter opens a span's panel.
    page.js("document.querySelector('.wf-row').focus()").await;
    let first = page.all(".wf-row").await.remove(0);
    first.send_keys(&Key::Down.to_string()).await.unwrap();
    let focused = page
        .js("return document.activeElement.dataset.span || ''")
        .await;
    let second = page.all(".wf-row").await.remove(1);
    assert_eq!(
        focused.as_str(),
        second.attr("data-span").await.unwrap().as_deref()
    );
    second.send_keys(&Key::Enter.to_string()).await.unwrap();
    assert!(second
        .attr("class")
        .await
        .unwrap()
        .unwrap()
        .contains("selected"));

    // Back returns to the search, with what was typed.
    page.client.back().await.unwrap();
    page.wait_url("attr=user.id").await;
    page.wait("table.traces tbody tr").await;
    let value = page
        .js("return document.querySelector('input[name=attr]').value")
        .await;
    assert_eq!(value, Value::from(typed));

    // Compare the failed trace with a typical checkout.
    page.goto(&format!("/ui/trace/{}", f.trace)).await;
    page.wait_trace(&f.trace).await;
    page.wait(".compare-box a.button")
        .await
        .click()
        .await
        .unwrap();
    page.wait_url("/ui/compare/").await;
    page.wait("table.compare tbody tr").await;
    let changes = page.text("table.compare").await;
    assert!(
        changes.contains("slower") || changes.contains("missing"),
        "{changes}"
    );
    page.shot("compare").await;

    // Logs: a hit opens its trace.
    page.goto(&format!("/ui/search/logs?q=checkout%20failed&{w}"))
        .await;
    let log_link = page.wait("table.logs tbody tr a.trace-link").await;
    page.shot("search-logs").await;
    let href = log_link.attr("href").await.unwrap().unwrap();
    log_link.click().await.unwrap();
    page.wait_trace(href.trim_start_matches("/ui/trace/")).await;

    // Metrics: exemplar dots and anomaly bands; a dot opens its trace.
    let query = "http.server.request.duration%7Bhttp.route%3D%22%2Fcheckout%22%7D";
    page.goto(&format!("/ui/metrics?query={query}&{w}")).await;
    page.wait("svg.chart rect.band").await;
    let dot = page.wait("svg.chart a.dot-link").await;
    page.shot("metrics").await;
    let href = dot.attr("href").await.unwrap().unwrap();
    dot.click().await.unwrap();
    page.wait_trace(href.trim_start_matches("/ui/trace/")).await;
    page.client.back().await.unwrap();
    page.wait("svg.chart rect.band").await;
    let spike = page.wait(".anomalies button").await;
    spike.click().await.unwrap();
    page.wait(".explained ol.ranked li a").await;
    page.shot("metrics-spike").await;

    // Incidents: the list, then the incident, its origin, its timeline, its origin's trace.
    page.goto("/ui/incidents").await;
    page.wait(&format!(
        "table.incidents a[href=\"/ui/incidents/{}\"]",
        f.incident
    ))
    .await
    .click()
    .await
    .unwrap();
    page.wait("ol.origins > li").await;
    assert!(
        page.text("ol.origins > li").await.contains(FAULTY),
        "inventory is the first suspected origin"
    );
    page.wait("ol.timeline li.entry").await;
    page.shot("incident").await;
    // The view draws the first page, then goes on loading pages and redrawing, so the number of
    // entries is no measure of the filter: the log entries are. Some are shown, then none.
    let logs = page.all("ol.timeline li.entry.kind-log").await.len();
    assert!(logs > 0, "the incident timeline shows log entries");
    page.wait("input[name=kind][value=logs]")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(
        page.all("ol.timeline li.entry.kind-log").await.len(),
        0,
        "hiding logs hides every log entry"
    );
    assert!(
        !page.all("ol.timeline li.entry").await.is_empty(),
        "the other entries stay"
    );
    page.shot("incident-timeline").await;
    page.wait("a.origin-trace").await.click().await.unwrap();
    page.wait_url("/ui/trace/").await;
    page.wait(".waterfall .wf-row").await;
    assert!(page.text(".waterfall").await.contains(FAULTY));
    page.goto("/ui/incidents").await;
    page.wait("table.incidents tbody tr").await;
    page.shot("incidents").await;

    // The service map; a service opens its RED charts.
    page.goto(&format!("/ui/services?{w}")).await;
    page.wait("svg.map a").await;
    assert!(page.text("table.edges").await.contains(FAULTY));
    page.shot("service-map").await;
    page.wait(&format!("svg.map a[href^=\"/ui/services/{FAULTY}\"]"))
        .await
        .click()
        .await
        .unwrap();
    page.wait_url(&format!("/ui/services/{FAULTY}")).await;
    page.wait("svg.chart path.line").await;
    page.shot("service").await;

    // Phone width: nothing wider than the screen.
    page.client.set_window_size(390, 844).await.unwrap();
    for (path, css, name) in [
        (
            format!("/ui/trace/{}", f.trace),
            ".waterfall .wf-row",
            "phone-trace",
        ),
        (
            format!("/ui/search?{w}"),
            "table.traces tbody tr",
            "phone-search",
        ),
    ] {
        page.goto(&path).await;
        page.wait(css).await;
        // Nothing reaches past the screen's right edge (scrolling tables and the map, and the
        // waterfall's clipped labels, aside); the elements that do are named.
        let wide = page
            .js("return [...document.querySelectorAll('body *')]
                   .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1
                     && !e.closest('.table-wrap, .map-wrap, .wf-track'))
                   .slice(0, 5).map((e) => e.tagName + '.' + e.className + ': ' + e.textContent.slice(0, 40))")
            .await;
        assert_eq!(wide, json!([]), "{path} overflows at 390 px");
        page.shot(name).await;
    }
}

const TOKEN_ACME: &str = "ui-token-acme";
const TOKEN_GLOBEX: &str = "ui-token-globex";

#[test]
fn with_auth_the_ui_asks_for_a_token_and_shows_only_its_tenant() {
    if !browser_present() {
        return;
    }
    let conf = tempfile::tempdir().unwrap();
    let path = common::auth_config(
        conf.path(),
        &[("acme", TOKEN_ACME), ("globex", TOKEN_GLOBEX)],
    );
    let config = path.to_str().unwrap().to_string();
    let server = Server::start(&[("WEFT_CONFIG", config.as_str())]);
    let auth = format!("Bearer {TOKEN_ACME}");
    let req = otlp::one_span_trace("acme-billing", 5, "Invoice");
    let (status, _) = post(
        &server.url("/v1/traces"),
        "application/x-protobuf",
        &[("authorization", &auth)],
        encode(&req),
    );
    assert_eq!(status, 200);
    let id = hex(&otlp::trace_id(5));
    server.wait_for_trace_with(&id, &[("authorization", &auth)], 1, 0);
    let t0 = otlp::T0 / 1_000_000_000;
    let window = format!("start={}&end={}", t0 - 60, t0 + 60);
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let page = Page {
            client: open_browser(&driver, profile.path()).await,
            base: server.url(""),
            shots,
        };
        // No token: the API's refusal, and no data.
        page.goto(&format!("/ui/search?{window}")).await;
        let refusal = page.wait("#access .error").await.text().await.unwrap();
        assert!(refusal.contains("missing bearer token"), "{refusal}");
        assert!(page.all("table.traces").await.is_empty());
        page.wait("main .error").await;
        page.shot("auth-refused").await;
        let sign_in = |token: &'static str| {
            let page = &page;
            async move {
                let input = page.wait("#access input[name=token]").await;
                input.clear().await.unwrap();
                input.send_keys(token).await.unwrap();
                page.wait("#access button[type=submit]")
                    .await
                    .click()
                    .await
                    .unwrap();
            }
        };
        // Another tenant's token: its own (empty) data, never acme's.
        sign_in(TOKEN_GLOBEX).await;
        page.wait("p.summary").await;
        assert!(page
            .all(&format!("a[href=\"/ui/trace/{id}\"]"))
            .await
            .is_empty());
        assert!(page.text("main").await.contains("0 traces"));
        // Acme's token: acme's trace.
        page.wait("#who").await.click().await.unwrap();
        sign_in(TOKEN_ACME).await;
        page.wait(&format!("a[href=\"/ui/trace/{id}\"]")).await;
        page.shot("auth-signed-in").await;
        page.client.close().await.unwrap();
    });
}
