//! Shared by the integration tests: start the real `weft` binary on free ports with a
//! temporary data directory, talk to it over real sockets, and build OTLP batches with fixed
//! IDs and timestamps.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod external;
pub mod otlp;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub http: String,
    pub grpc: String,
    pub query: Option<String>,
    pub data_dir: PathBuf,
    /// Kept so the directory lives as long as the first server that made it.
    _temp: Option<tempfile::TempDir>,
}

/// Extra `WEFT_*` settings for a server.
pub type Env<'a> = &'a [(&'a str, &'a str)];

impl Server {
    /// A fresh server on a new temporary data directory.
    pub fn start(env: Env) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut s = Server::start_in(temp.path(), env);
        s._temp = Some(temp);
        s
    }

    /// A server on an existing data directory (a restart); waits until it is ready.
    pub fn start_in(data_dir: &Path, env: Env) -> Server {
        let s = Server::spawn(data_dir, env).expect("weft did not start");
        s.wait_ready();
        s
    }

    /// A fresh server whose address space is capped at 3 GiB (`ulimit -v`), as hostile
    /// requests must be served within a bound: an allocation past it aborts the process, which
    /// `assert_alive` then reports.
    pub fn start_capped(env: Env) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut s = Server::spawn_under(temp.path(), env, Some("ulimit -v 3145728"))
            .expect("weft did not start");
        s.wait_ready();
        s._temp = Some(temp);
        s
    }

    /// Fails the test if the process has exited (an abort, an OOM) or stopped answering.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("weft died: {status}");
        }
        let ok = reqwest::blocking::get(self.url("/healthz")).is_ok_and(|r| r.status() == 200);
        assert!(ok, "weft stopped answering /healthz");
    }

    /// Starts the binary and waits for its `listening` line, not for readiness.
    pub fn spawn(data_dir: &Path, env: Env) -> Result<Server, String> {
        Server::spawn_under(data_dir, env, None)
    }

    /// Like `spawn`, with shell commands run first in the server's process (`ulimit -f 64`).
    pub fn spawn_under(
        data_dir: &Path,
        env: Env,
        shell_prefix: Option<&str>,
    ) -> Result<Server, String> {
        let mut cmd = match shell_prefix {
            None => Command::new(env!("CARGO_BIN_EXE_weft")),
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix}; exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_weft"));
                c
            }
        };
        cmd.arg("serve")
            .env("WEFT_DATA_DIR", data_dir)
            .env("WEFT_HTTP_LISTEN", "127.0.0.1:0")
            .env("WEFT_GRPC_LISTEN", "127.0.0.1:0")
            .env("WEFT_INDEX_COMMIT_INTERVAL_MS", "200")
            .env("WEFT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let announced: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                let status = child.wait().map_err(|e| e.to_string())?;
                return Err(format!(
                    "weft exited ({status}) without listening: {line:?}"
                ));
            }
        };
        let addr = |k: &str| announced[k].as_str().map(str::to_string);
        Ok(Server {
            child,
            http: addr("http").expect("http address"),
            grpc: addr("grpc").expect("grpc address"),
            query: addr("query"),
            data_dir: data_dir.to_path_buf(),
            _temp: None,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn wait_ready(&self) {
        wait_until(Duration::from_secs(60), "weft to become ready", || {
            reqwest::blocking::get(self.url("/readyz"))
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        });
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait for weft")
    }

    /// Hands the data directory over to the caller (so it outlives this server).
    pub fn take_dir(&mut self) -> tempfile::TempDir {
        self._temp.take().expect("server owns its directory")
    }

    pub fn get_json(&self, path_and_query: &str) -> (u16, Value) {
        get_json(&self.url(path_and_query), &[])
    }

    /// `GET /api/v1/traces/{id}` once the trace has at least `spans` spans and `logs` logs.
    pub fn wait_for_trace(
        &self,
        trace_id: &str,
        tenant: Option<&str>,
        spans: usize,
        logs: usize,
    ) -> Value {
        let headers: Vec<(&str, &str)> = tenant
            .map(|t| vec![("x-scope-orgid", t)])
            .unwrap_or_default();
        self.wait_for_trace_with(trace_id, &headers, spans, logs)
    }

    /// `wait_for_trace` with any request headers (a bearer token, say).
    pub fn wait_for_trace_with(
        &self,
        trace_id: &str,
        headers: &[(&str, &str)],
        spans: usize,
        logs: usize,
    ) -> Value {
        let mut last = Value::Null;
        let ok = poll(Duration::from_secs(15), || {
            let (status, body) =
                get_json(&self.url(&format!("/api/v1/traces/{trace_id}")), headers);
            let done = status == 200
                && body["spans"].as_array().map_or(0, Vec::len) >= spans
                && body["logs"].as_array().map_or(0, Vec::len) >= logs;
            last = body;
            done
        });
        assert!(
            ok,
            "trace {trace_id} did not show {spans} spans and {logs} logs; last reply: {last}"
        );
        last
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, from /proc, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// The most resident memory the server process has had (VmHWM), in bytes: catches a
    /// spike that is gone by the time anyone looks.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Waits until the indexes hold at least these many searchable documents per signal
    /// (`weft_index_documents`, set at each commit): what was sent before is then all
    /// visible, so a test reads a settled state instead of racing the commit.
    pub fn wait_indexed(&self, at_least: &[(&str, u64)]) {
        let mut seen = Vec::new();
        let ok = poll(Duration::from_secs(120), || {
            seen = at_least
                .iter()
                .map(|(signal, _)| {
                    self.metric_or_zero(&format!("weft_index_documents{{signal=\"{signal}\"}}"))
                })
                .collect();
            at_least
                .iter()
                .zip(&seen)
                .all(|((_, want), got)| *got >= *want as f64)
        });
        assert!(ok, "indexes never held {at_least:?}; last seen {seen:?}");
    }

    /// The value of one sample in `/metrics`, by its full name with labels.
    /// Fails the test when the sample is missing: a misspelt name must not read as 0.
    pub fn metric(&self, sample: &str) -> f64 {
        self.sample(sample)
            .unwrap_or_else(|| panic!("{sample} is not in /metrics"))
    }

    /// For a labelled counter that may never have been touched: Prometheus client libraries
    /// export a label combination only once it has counted something, so absent means 0.
    pub fn metric_or_zero(&self, sample: &str) -> f64 {
        self.sample(sample).unwrap_or(0.0)
    }

    fn sample(&self, sample: &str) -> Option<f64> {
        let text = reqwest::blocking::get(self.url("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn get_json(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::blocking::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("GET");
    let status = resp.status().as_u16();
    let body = resp.json().unwrap_or(Value::Null);
    (status, body)
}

pub fn post(
    url: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let mut req = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("POST");
    let status = resp.status().as_u16();
    (status, resp.bytes().expect("body").to_vec())
}

/// Calls `f` until it returns true or `limit` passes; returns whether it did.
pub fn poll(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_until(limit: Duration, what: &str, f: impl FnMut() -> bool) {
    assert!(poll(limit, f), "timed out waiting for {what}");
}

/// A spec-shaped OTLP/JSON example of the repository's own (`tests/fixtures/otlp/`).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/otlp")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// How many spans of `service` the derived RED metric `weft.span.requests` counted in the
/// day around `otlp::T0`: the per-minute rates times 60, summed.
pub fn red_requests(server: &Server, service: &str) -> f64 {
    let day = 86_400;
    let t0 = otlp::T0 / 1_000_000_000;
    let (status, body) = server.get_json(&format!(
        "/api/v1/metrics/query?query=weft.span.requests{{service.name=%22{service}%22}}&by=service.name&step=60s&start={}&end={}",
        t0 - day / 2,
        t0 + day / 2
    ));
    assert_eq!(status, 200, "{body}");
    // Counts come back as per-second rates: undo the division, and its rounding error.
    body["series"][0]["points"]
        .as_array()
        .map_or(0.0, |p| {
            p.iter()
                .map(|p| p["value"].as_f64().unwrap() * 60.0)
                .sum::<f64>()
        })
        .round()
}

/// Sends `seconds` of the demo shop (seed 42) ending now, as fast as weft takes it; returns
/// the scenario's start and how many checkouts the fault failed.
pub fn replay_shop(
    server: &Server,
    seconds: u64,
    fault: weft::demo::scenario::Fault,
) -> (u64, usize) {
    let t0 = weft::now_ns() - seconds * 1_000_000_000;
    let mut shop = weft::demo::scenario::Scenario::new(42, t0, fault);
    let client = reqwest::blocking::Client::new();
    let base = server.url("");
    let mut failed = 0;
    for s in 0..seconds {
        let second = shop.second(s);
        failed += second.failed_traces;
        weft::demo::send(&client, &base, None, &second).unwrap();
    }
    (t0, failed)
}

/// A config file in `dir` that turns auth on with a token per tenant (stored as hashes).
pub fn auth_config(dir: &Path, tokens: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("auth.toml");
    let entries: String = tokens
        .iter()
        .map(|(tenant, token)| {
            format!(
                "[[auth.tokens]]\ntenant = {tenant:?}\nsha256 = {:?}\n",
                weft::api::auth::hash_token(token)
            )
        })
        .collect();
    std::fs::write(&path, format!("[auth]\nenabled = true\n\n{entries}")).unwrap();
    path
}

/// Where `value` (an answer of the API) holds a field that `schema` (from the OpenAPI
/// document `doc`) does not document, recursing through `$ref`s, object properties and array
/// items: its path, pushed to `out`. A schema without `properties` documents
/// whatever its object holds (a map, or free-form attributes).
pub fn undocumented(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let schema = match schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    };
    match value {
        Value::Object(fields) => {
            let Some(props) = schema["properties"].as_object() else {
                return;
            };
            for (k, v) in fields {
                match props.get(k) {
                    Some(sub) => undocumented(doc, sub, v, &format!("{at}.{k}"), out),
                    None => out.push(format!("{at}.{k}")),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate().take(3) {
                undocumented(doc, &schema["items"], v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}
