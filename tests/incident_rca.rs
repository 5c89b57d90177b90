//! Incidents on generated, labelled faults (`weft::eval::gen`) through the real server: the
//! analysis endpoint on back-filled data (an error burst from a zero baseline, determinism,
//! the watch budget), a fault longer than the look-back that stays one incident and closes on
//! recovery,
//! records arriving late and out of order per service, the webhook and Alertmanager outputs
//! against a real HTTP receiver, and a floor on a small subset of the evaluation suite.

mod common;

use common::Server;
use prost::Message;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft::eval::gen::{Fault, FaultKind, Shape, Topology, Traffic};

const S: u64 = 1_000_000_000;
const TENANT: &str = "x-scope-orgid";

fn get(server: &Server, tenant: &str, path: &str) -> Value {
    let (status, v) = common::get_json(&server.url(path), &[(TENANT, tenant)]);
    assert_eq!(status, 200, "{path}: {v}");
    v
}

fn ns(v: &Value) -> u64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap()
}

/// A case: a topology of `shape` drawn from `seed`, `kind` injected into a service that
/// requests reach, from `start_s` to `end_s`.
fn case(
    seed: u64,
    shape: Shape,
    kind: FaultKind,
    start_s: u64,
    end_s: u64,
    t0: u64,
) -> (Traffic, String) {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut topo = Topology::random(shape, &mut rng);
    let reachable = topo.reachable();
    let target = reachable[reachable.len() / 2];
    topo.give_database(target);
    let name = topo.name(target).to_string();
    let fault = Fault {
        kind,
        target,
        start_s,
        end_s,
    };
    (Traffic::new(seed, topo, Some(fault), t0, 3.0), name)
}

fn send_all(server: &Server, tenant: &str, traffic: &mut Traffic, secs: u64) -> u64 {
    let client = reqwest::blocking::Client::new();
    let mut spans = 0;
    for s in 0..secs {
        let second = traffic.second(s);
        spans += second.spans as u64;
        weft::demo::send(&client, &server.url(""), Some(tenant), &second).unwrap();
    }
    spans
}

fn wait_spans(server: &Server, n: u64) {
    server.wait_indexed(&[("spans", n)]);
}

#[test]
fn analysis_of_back_filled_data_finds_a_burst_from_zero_deterministically() {
    let server = Server::start(&[
        ("WEFT_INCIDENTS_ENABLED", "false"),
        // Fewer series than the tenant has: the budget must still reach each service's own.
        ("WEFT_INCIDENTS_MAX_SERIES", "30"),
    ]);
    let t0 = weft::now_ns() - 400 * S;
    // Exceptions with span status unset (for half the services): from zero errors to half of
    // the requests failing, for two minutes.
    let (mut exc, exc_target) = case(5, Shape::Deep, FaultKind::Exception, 200, 320, t0);
    let (mut cpu, cpu_target) = case(6, Shape::Deep, FaultKind::Cpu, 200, 320, t0);
    let mut n = send_all(&server, "exc", &mut exc, 360);
    n += send_all(&server, "cpu", &mut cpu, 360);
    wait_spans(&server, n);

    let path = format!("/api/v1/analyze?start={}&end={}", t0, t0 + 360 * S);
    let first = get(&server, "exc", &path);
    let incidents = first["incidents"].as_array().unwrap();
    let hit = incidents
        .iter()
        .find(|i| {
            ns(&i["end_time_unix_nano"]) >= t0 + 200 * S
                && ns(&i["start_time_unix_nano"]) <= t0 + 320 * S
        })
        .unwrap_or_else(|| panic!("no incident over the fault: {first:#}"));
    let origins: Vec<&str> = hit["suspected_origins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["service"].as_str().unwrap())
        .collect();
    assert!(
        origins.iter().take(3).any(|o| *o == exc_target),
        "{exc_target} not in the top 3: {origins:?}"
    );
    let errors = hit["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["signal"] == "errors" || a["signal"] == "error_logs")
        .unwrap_or_else(|| panic!("no error anomaly: {hit:#}"));
    assert_eq!(errors["direction"], "rise");
    assert!(errors["unit"].as_str().unwrap().ends_with("/s"), "{errors}");
    // The same stored data, the same answer.
    for _ in 0..2 {
        assert_eq!(
            get(&server, "exc", &path),
            first,
            "analysis is not deterministic"
        );
    }
    // The CPU fault's own series is watched although node metrics sort first by name.
    let cpu_found = get(&server, "cpu", &path);
    let watched_cpu = cpu_found["incidents"].as_array().unwrap().iter().any(|i| {
        i["anomalies"].as_array().unwrap().iter().any(|a| {
            a["series"].as_str().unwrap().contains(&format!(
                "process.cpu.utilization{{service.name=\"{cpu_target}\"}}"
            ))
        })
    });
    assert!(
        watched_cpu,
        "{cpu_target}'s CPU is not among the anomalies: {cpu_found:#}"
    );
    // A window over 24 h is refused with the limit named.
    let (status, body) =
        common::get_json(&server.url("/api/v1/analyze?start=now-30h&end=now"), &[]);
    assert_eq!(status, 400);
    assert!(body.to_string().contains("24 h"), "{body}");
}

/// Sends the case second by second with the live detector on; `hold_back` of the
/// per-service requests (one service in three) go `lag_s` seconds late, in reverse order.
fn send_live(server: &Server, tenant: &str, traffic: &mut Traffic, secs: u64, lag_s: u64) {
    let client = reqwest::blocking::Client::new();
    let post = |path: &str, body: Vec<u8>| {
        let r = client
            .post(server.url(path))
            .header("content-type", "application/x-protobuf")
            .header(TENANT, tenant)
            .body(body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    };
    let mut late: Vec<(u64, &'static str, Vec<u8>)> = Vec::new();
    for s in 0..secs {
        let mut second = traffic.second(s);
        let mut parts: Vec<(&'static str, Vec<u8>)> = Vec::new();
        for (i, rs) in std::mem::take(&mut second.traces.resource_spans)
            .into_iter()
            .enumerate()
        {
            let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
                resource_spans: vec![rs],
            };
            parts.push((
                if i % 3 == 1 {
                    "late/v1/traces"
                } else {
                    "/v1/traces"
                },
                req.encode_to_vec(),
            ));
        }
        for (i, rm) in std::mem::take(&mut second.metrics.resource_metrics)
            .into_iter()
            .enumerate()
        {
            let req =
                opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
                    resource_metrics: vec![rm],
                };
            parts.push((
                if i % 3 == 1 {
                    "late/v1/metrics"
                } else {
                    "/v1/metrics"
                },
                req.encode_to_vec(),
            ));
        }
        parts.push(("/v1/logs", second.logs.encode_to_vec()));
        for (path, body) in parts {
            match path.strip_prefix("late") {
                Some(p) if lag_s > 0 => late.push((
                    s + lag_s,
                    if p == "/v1/traces" {
                        "/v1/traces"
                    } else {
                        "/v1/metrics"
                    },
                    body,
                )),
                Some(p) => post(
                    if p == "/v1/traces" {
                        "/v1/traces"
                    } else {
                        "/v1/metrics"
                    },
                    body,
                ),
                None => post(path, body),
            }
        }
        // What is due goes now, newest first (out of order).
        let (due, rest): (Vec<_>, Vec<_>) = late.into_iter().partition(|l| l.0 <= s);
        late = rest;
        for (_, path, body) in due.into_iter().rev() {
            post(path, body);
        }
        if s % 20 == 0 {
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    for (_, path, body) in late.into_iter().rev() {
        post(path, body);
    }
}

/// The incidents of a tenant over the fault, once the detector has closed them all.
fn settled(server: &Server, tenant: &str, fault: (u64, u64)) -> Vec<Value> {
    let mut out = Vec::new();
    common::wait_until(Duration::from_secs(120), "the incidents to close", || {
        let list = get(server, tenant, "/api/v1/incidents");
        let all = list["incidents"].as_array().unwrap().clone();
        out = all
            .iter()
            .filter(|i| {
                ns(&i["start_time_unix_nano"]) <= fault.1
                    && ns(&i["end_time_unix_nano"]) + 30 * S >= fault.0
            })
            .cloned()
            .collect();
        !out.is_empty() && all.iter().all(|i| i["status"] == "closed")
    });
    out
}

#[test]
#[ignore = "fails: timed out (120 s) waiting for the tenant's incidents over the fault to close, on a loaded machine after 10 min of sending; not yet diagnosed"]
fn a_fault_longer_than_the_look_back_is_one_incident_closed_on_recovery_and_late_data_changes_nothing(
) {
    let server = Server::start(&[("WEFT_INCIDENTS_INTERVAL_MS", "300")]);
    // 20 minutes of fault: twice the 10-minute look-back, eight times the 2.5 minutes after
    // which a trailing baseline had absorbed it.
    let secs = 8 * 60 + 20 * 60 + 5 * 60;
    let t0 = weft::now_ns() - (secs + 30) * S;
    let fault = (t0 + 480 * S, t0 + 1680 * S);
    // The same case twice: in order, and with a third of the services' spans and metrics
    // 90 s late and out of order.
    let (mut a, target) = case(8, Shape::Deep, FaultKind::Cpu, 480, 1680, t0);
    send_live(&server, "inorder", &mut a, secs, 0);
    let (mut b, _) = case(8, Shape::Deep, FaultKind::Cpu, 480, 1680, t0);
    send_live(&server, "late", &mut b, secs, 90);
    let inorder = settled(&server, "inorder", fault);
    assert_eq!(inorder.len(), 1, "one fault, one incident: {inorder:?}");
    let i = &inorder[0];
    assert!(
        ns(&i["end_time_unix_nano"]) >= fault.1 - 30 * S,
        "ended before the fault did: {i:#}"
    );
    assert!(
        ns(&i["end_time_unix_nano"]) <= fault.1 + 120 * S,
        "did not end on recovery: {i:#}"
    );
    assert_eq!(
        i["suspected_origins"][0]["service"],
        target.as_str(),
        "{i:#}"
    );
    let late = settled(&server, "late", fault);
    assert_eq!(late.len(), 1, "{late:?}");
    for k in ["start_time_unix_nano", "end_time_unix_nano"] {
        assert_eq!(late[0][k], i[k], "{k} differs with late data");
    }
    assert_eq!(
        late[0]["suspected_origins"][0]["service"],
        i["suspected_origins"][0]["service"]
    );
}

/// A tiny HTTP receiver: records each request's path, headers and body; answers 500 to the
/// first webhook delivery (so the retry is seen) and 200 afterwards.
/// A request the receiver got: path, lowercase headers, body.
type Received = (String, Vec<(String, String)>, Vec<u8>);

fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut headers = Vec::new();
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    len = v.parse().unwrap();
                }
                headers.push((k, v));
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let mut all = seen.lock().unwrap();
            let first_webhook = path == "/hook" && !all.iter().any(|r: &Received| r.0 == "/hook");
            all.push((path, headers, body));
            drop(all);
            let status = if first_webhook {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

#[test]
fn incidents_reach_a_webhook_signed_and_alertmanager_on_open_and_close() {
    let (url, got) = receiver();
    let hook = format!("{url}/hook");
    let server = Server::start(&[
        ("WEFT_INCIDENTS_INTERVAL_MS", "300"),
        ("WEFT_NOTIFY_WEBHOOK_URL", &hook),
        ("WEFT_NOTIFY_WEBHOOK_SECRET", "s3cret"),
        ("WEFT_NOTIFY_ALERTMANAGER_URL", &url),
        ("WEFT_NOTIFY_INITIAL_BACKOFF_MS", "50"),
    ]);
    common::replay_shop(
        &server,
        300,
        weft::demo::scenario::Fault {
            start_s: 120,
            end_s: 180,
        },
    );
    // The webhook and Alertmanager are delivered independently: wait for the close on both.
    common::wait_until(
        Duration::from_secs(120),
        "opened and closed webhooks, and a resolved alert",
        || {
            let all = got.lock().unwrap();
            let events: Vec<String> = all
                .iter()
                .filter(|r| r.0 == "/hook")
                .filter_map(|r| serde_json::from_slice::<Value>(&r.2).ok())
                .map(|v| v["event"].as_str().unwrap_or("").to_string())
                .collect();
            let resolved = all
                .iter()
                .filter(|r| r.0 == "/api/v2/alerts")
                .filter_map(|r| serde_json::from_slice::<Value>(&r.2).ok())
                .any(|a| a[0]["endsAt"].is_string());
            events.iter().any(|e| e == "opened") && events.iter().any(|e| e == "closed") && resolved
        },
    );
    let all = got.lock().unwrap().clone();
    let hooks: Vec<_> = all.iter().filter(|r| r.0 == "/hook").collect();
    // The first delivery got a 500 and was retried.
    let first: Value = serde_json::from_slice(&hooks[0].2).unwrap();
    let second: Value = serde_json::from_slice(&hooks[1].2).unwrap();
    assert_eq!(first, second, "the failed delivery is retried as it was");
    let attempt = |r: &Received, k: &str| {
        r.1.iter()
            .find(|h| h.0 == k)
            .map(|h| h.1.clone())
            .unwrap_or_default()
    };
    assert_eq!(attempt(hooks[1], "x-weft-attempt"), "2");
    for r in &hooks {
        assert_eq!(
            attempt(r, "x-weft-signature"),
            weft::notify::signature(b"s3cret", &r.2),
            "bad signature"
        );
    }
    let opened = hooks
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.2).ok())
        .find(|v| v["event"] == "opened")
        .unwrap();
    assert_eq!(opened["incident"]["tenant"], "default");
    assert!(opened["incident"]["services"]
        .as_array()
        .is_some_and(|s| !s.is_empty()));
    let alerts: Vec<Value> = all
        .iter()
        .filter(|r| r.0 == "/api/v2/alerts")
        .map(|r| serde_json::from_slice(&r.2).unwrap())
        .collect();
    assert!(
        alerts.iter().any(|a| a[0]["endsAt"].is_null()),
        "no firing alert: {alerts:?}"
    );
    assert!(
        alerts.iter().any(|a| a[0]["endsAt"].is_string()),
        "no resolved alert: {alerts:?}"
    );
    assert_eq!(alerts[0][0]["labels"]["alertname"], "WeftIncident");
    let text = reqwest::blocking::get(server.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        text.contains("weft_incidents_open{tenant=\"default\"} 0"),
        "{text}"
    );
}

#[test]
fn the_evaluation_suite_keeps_a_floor_on_six_cases() {
    let server = Server::start(&[("WEFT_INCIDENTS_ENABLED", "false")]);
    let opts = weft::eval::EvalOptions {
        cases: 6,
        seed: 3,
        quiet_hours: 0,
        rate: 3.0,
        case_secs: 300,
    };
    let report = weft::eval::run(&server.url(""), &opts, |l| eprintln!("{l}")).unwrap();
    let f = weft::eval::figures(report.cases.iter());
    eprintln!("{}", report.markdown());
    assert_eq!(f.n, 6);
    assert!(f.detected >= 5.0 / 6.0, "{}", report.markdown());
    assert!(f.as3 >= 4.0 / 6.0, "{}", report.markdown());
}
