//! The demo's shop, time-compressed (five minutes of telemetry sent as fast as weft takes it,
//! fixed seed), through the real server: the incident detector must find the injected
//! inventory database fault, rank inventory first, point at traces that really went through
//! it, and build an ordered timeline with the spike, those traces' error logs and inferred
//! links. Then the endpoints behind it: metric query, spike → traces, what is different, and
//! incidents surviving a restart.

mod common;

use common::Server;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;
use weft::demo::scenario::{Fault, FAULTY};

const SECONDS: u64 = 300;
const FAULT: Fault = Fault {
    start_s: 120,
    end_s: 180,
};
const NS: u64 = 1_000_000_000;

fn time_ns(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .expect("nanoseconds as a string")
}

/// Every page of a timeline, `limit` entries a page, following `next_cursor`; checks that
/// the whole is in time order and that no entry repeats across pages.
fn whole_timeline(server: &Server, query: &str) -> Vec<Value> {
    paged_timeline(server, query, 500)
}

fn paged_timeline(server: &Server, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let page = match &cursor {
            None => format!("/api/v1/timeline?{query}&limit={limit}"),
            Some(c) => format!("/api/v1/timeline?{query}&limit={limit}&cursor={c}"),
        };
        let (status, body) = server.get_json(&page);
        assert_eq!(status, 200, "{body}");
        out.extend(body["entries"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                let times: Vec<u64> = out.iter().map(|e| time_ns(&e["time_unix_nano"])).collect();
                assert!(
                    times.windows(2).all(|w| w[0] <= w[1]),
                    "{query}: out of order"
                );
                let unique: HashSet<String> = out.iter().map(|e| e.to_string()).collect();
                assert_eq!(
                    unique.len(),
                    out.len(),
                    "{query}: an entry repeats across pages"
                );
                return out;
            }
        }
    }
    panic!("timeline did not end within 1000 pages");
}

#[test]
fn the_demo_fault_becomes_an_incident_with_the_right_origin_and_timeline() {
    let mut server = Server::start(&[("WEFT_INCIDENTS_INTERVAL_MS", "500")]);
    let (t0, failed) = common::replay_shop(&server, SECONDS, FAULT);
    assert!(failed > 50, "the fault failed only {failed} checkouts");

    // 1. Detected within the fault's window, and closed once the signals are back.
    let mut incident = Value::Null;
    let found = common::poll(Duration::from_secs(90), || {
        let (_, list) = server.get_json("/api/v1/incidents");
        match list["incidents"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["status"] == "closed"))
        {
            Some(i) => {
                incident = i.clone();
                true
            }
            None => false,
        }
    });
    let (_, list) = server.get_json("/api/v1/incidents");
    assert!(found, "no closed incident: {list:#}");
    assert_eq!(list["count"], 1, "one fault, one incident: {list}");
    let start = time_ns(&incident["start_time_unix_nano"]);
    let fault_start = t0 + FAULT.start_s * NS;
    let fault_end = t0 + FAULT.end_s * NS;
    assert!(
        start + 10 * NS >= fault_start && start <= fault_end,
        "incident starts {}s into the scenario: {incident:#}",
        (start - t0) / NS
    );
    let end = time_ns(&incident["end_time_unix_nano"]);
    assert!(
        end >= fault_end - 10 * NS && end <= fault_end + 60 * NS,
        "incident ends {}s into the scenario",
        (end - t0) / NS
    );
    let services: Vec<&str> = incident["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(services.contains(&FAULTY), "{services:?}");

    // 2. The suspected origin ranked first is the faulty service, with evidence.
    let origins = incident["suspected_origins"].as_array().unwrap();
    assert_eq!(origins[0]["service"], FAULTY, "{origins:#?}");
    assert!(!origins[0]["evidence"].as_array().unwrap().is_empty());

    // 3. Its exemplar traces are slow or failing traces that really went through inventory.
    let id = incident["id"].as_str().unwrap().to_string();
    let exemplars = incident["exemplar_traces"].as_array().unwrap();
    assert!(exemplars.len() >= 3, "{exemplars:#?}");
    let mut exemplar_ids = HashSet::new();
    let mut red_points = 0;
    for t in exemplars {
        let trace_id = t["trace_id"].as_str().unwrap();
        exemplar_ids.insert(trace_id.to_string());
        let (status, trace) = server.get_json(&format!("/api/v1/traces/{trace_id}"));
        assert_eq!(status, 200);
        let inventory: Vec<&Value> = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["service"] == FAULTY)
            .collect();
        assert!(
            !inventory.is_empty(),
            "exemplar {trace_id} never reached inventory"
        );
        let slow_or_failed = inventory
            .iter()
            .any(|s| s["status"]["code"] == 2 || s["duration_ns"].as_u64().unwrap() > 300_000_000);
        assert!(
            slow_or_failed,
            "exemplar {trace_id} is neither slow nor failing in inventory"
        );
        // The reverse lookup: the RED series that picked this trace's spans as exemplars.
        for p in trace["red_exemplars"].as_array().unwrap() {
            assert!(
                p["metric"].as_str().unwrap().starts_with("weft.span."),
                "{p}"
            );
            red_points += 1;
        }
    }
    assert!(red_points > 0, "no RED point names any exemplar trace");

    // 4. The timeline: in time order, with the spike, the exemplar traces' error logs, and
    //    inferred links marked as inferred.
    let entries = whole_timeline(&server, &format!("incident={id}"));
    let kinds: HashSet<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "incident_opened",
        "incident_closed",
        "anomaly_start",
        "anomaly_peak",
        "anomaly_end",
        "span_start",
        "span_end",
        "log",
        "exemplar",
    ] {
        assert!(kinds.contains(k), "no {k} entry; kinds: {kinds:?}");
    }
    let spike = entries
        .iter()
        .find(|e| e["kind"] == "anomaly_start" && e["service"] == FAULTY);
    assert!(spike.is_some(), "no anomaly of {FAULTY} in the timeline");
    let error_logs_of_exemplars = entries
        .iter()
        .filter(|e| e["kind"] == "log" && e["severity_number"].as_i64() >= Some(17))
        .filter(|e| {
            e["trace_id"]
                .as_str()
                .is_some_and(|t| exemplar_ids.contains(t))
        })
        .count();
    assert!(
        error_logs_of_exemplars >= 2,
        "only {error_logs_of_exemplars} error logs of exemplar traces"
    );
    let inferred: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "log" && e["link"]["method"] == "inferred")
        .collect();
    assert!(!inferred.is_empty(), "no inferred links");
    for e in &inferred {
        assert!(
            e["trace_id"].is_null(),
            "an inferred link on a log that has its own trace ID"
        );
        assert_eq!(e["service"], FAULTY);
        assert_eq!(e["links"][0]["how"], "inferred");
        let c = e["link"]["confidence"].as_f64().unwrap();
        assert!(c > 0.0 && c <= 1.0);
    }
    let exact = entries
        .iter()
        .filter(|e| e["kind"] == "log" && e["trace_id"].is_string())
        .count();
    assert!(exact > 0);
    for e in entries
        .iter()
        .filter(|e| e["kind"] == "log" && e["trace_id"].is_string())
    {
        assert_ne!(
            e["link"]["method"], "inferred",
            "an exact link marked inferred"
        );
    }

    // Narrowed to the faulty service's logs and anomalies: only those, and every such log of
    // the whole timeline, though most pages' other entries are dropped.
    let narrowed = whole_timeline(
        &server,
        &format!("incident={id}&kinds=log,anomaly&service={FAULTY}"),
    );
    for e in &narrowed {
        let kind = e["kind"].as_str().unwrap();
        assert!(kind == "log" || kind.starts_with("anomaly_"), "{e}");
        assert_eq!(e["service"], FAULTY, "{e}");
    }
    let logs_of = |v: &[Value]| {
        v.iter()
            .filter(|e| e["kind"] == "log" && e["service"] == FAULTY)
            .count()
    };
    assert!(logs_of(&narrowed) > 0);
    assert_eq!(logs_of(&narrowed), logs_of(&entries));
    assert!(narrowed.iter().any(|e| e["kind"] == "anomaly_start"));
    let (status, body) = server.get_json(&format!("/api/v1/timeline?incident={id}&kinds=spans"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "kinds", "{body}");

    // One service's timeline over the fault: live RED anomalies of inventory, its metric
    // anomalies as the detector recorded them, its spans and (inferred) logs, in order.
    let entries = whole_timeline(
        &server,
        &format!(
            "service={FAULTY}&start={}&end={}",
            (fault_start - 20 * NS) / NS,
            (fault_start + 40 * NS) / NS
        ),
    );
    assert!(entries
        .iter()
        .all(|e| e["service"] == FAULTY || e["kind"] == "exemplar"));
    let series: HashSet<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "anomaly_start")
        .map(|e| e["series"].as_str().unwrap())
        .collect();
    assert!(
        series.iter().any(|s| s.starts_with("weft.span.duration")),
        "{series:?}"
    );
    assert!(
        series
            .iter()
            .any(|s| s.starts_with("db.client.connection.count")),
        "{series:?}"
    );
    assert!(entries.iter().any(|e| e["link"]["method"] == "inferred"));
    // Narrowed to anomalies, with small pages (most of each page's spans and logs dropped):
    // the same anomalies are still found, none lost past a page's end.
    let narrowed = paged_timeline(
        &server,
        &format!(
            "service={FAULTY}&start={}&end={}&kinds=anomaly",
            (fault_start - 20 * NS) / NS,
            (fault_start + 40 * NS) / NS
        ),
        20,
    );
    assert!(narrowed
        .iter()
        .all(|e| e["kind"].as_str().unwrap().starts_with("anomaly_")));
    let narrowed_series: HashSet<&str> = narrowed
        .iter()
        .filter(|e| e["kind"] == "anomaly_start")
        .map(|e| e["series"].as_str().unwrap())
        .collect();
    assert!(
        narrowed_series
            .iter()
            .any(|s| s.starts_with("db.client.connection.count")),
        "{narrowed_series:?}"
    );

    // The incident in full: what is different names the slow query and the timeouts.
    let (status, detail) = server.get_json(&format!("/api/v1/incidents/{id}"));
    assert_eq!(status, 200, "{detail}");
    let diffs: Vec<&str> = detail["what_is_different"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["feature"].as_str().unwrap())
        .collect();
    assert!(
        diffs
            .iter()
            .any(|f| f.contains("[inventory] ERROR query timeout after <*> ms on table stock")),
        "{diffs:#?}"
    );
    assert!(diffs.contains(&"status=error"), "{diffs:#?}");
    assert!(detail["timeline"]["entries"].as_array().unwrap().len() > 10);
    // Every field of a real incident (origins, evidence, anomalies, timeline) is documented.
    let (_, doc) = server.get_json("/api/v1/openapi.json");
    let mut drift = Vec::new();
    for (path, answer) in [
        ("/api/v1/incidents/{id}", &detail),
        ("/api/v1/incidents", &list_now(&server)),
    ] {
        let schema =
            &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        common::undocumented(&doc, schema, answer, path, &mut drift);
    }
    assert!(drift.is_empty(), "answered but not documented: {drift:#?}");

    // Metric query: RED p95 latency of inventory rises with the fault, with exemplars.
    let window = format!("start={}&end={}", t0 / NS, (t0 + SECONDS * NS) / NS);
    let (status, q) = server.get_json(&format!(
        "/api/v1/metrics/query?query=weft.span.duration{{service.name=%22{FAULTY}%22}}&by=service.name&quantiles=0.95&step=10s&{window}"
    ));
    assert_eq!(status, 200, "{q}");
    let series = &q["series"][0];
    assert_eq!(series["labels"]["quantile"], "0.95");
    let value_at = |s: u64| {
        series["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| time_ns(&p["time_unix_nano"]) >= t0 + s * NS)
            .unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    assert!(
        value_at(60) < 50.0 && value_at(150) > 500.0,
        "p95 {} ms before, {} ms during",
        value_at(60),
        value_at(150)
    );
    assert!(series["exemplars"].as_array().unwrap().len() > 10);

    // Spike → traces: exemplars first, each through inventory's service set, error logs attached.
    let (status, spike) = server.get_json(&format!(
        "/api/v1/correlate/metric?query=http.server.request.duration{{http.route=%22/checkout%22}}&start={}&end={}&limit=10",
        (fault_start + 10 * NS) / NS, (fault_start + 40 * NS) / NS
    ));
    assert_eq!(status, 200, "{spike}");
    let traces = spike["traces"].as_array().unwrap();
    assert!(traces[0]["exemplar"].as_bool().unwrap(), "{spike:#}");
    assert!(traces
        .iter()
        .any(|t| !t["error_logs"].as_array().unwrap().is_empty()));
    let scores: Vec<f64> = traces
        .iter()
        .filter(|t| t["exemplar"] == false)
        .map(|t| t["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "non-exemplar traces not ranked: {scores:?}"
    );

    // Incidents survive a restart.
    server.terminate();
    let dir = server.take_dir();
    let again = Server::start_in(dir.path(), &[]);
    let (_, after) = again.get_json(&format!("/api/v1/incidents/{id}"));
    assert_eq!(after["id"], id.as_str());
    assert_eq!(after["suspected_origins"][0]["service"], FAULTY);
}

fn list_now(server: &Server) -> Value {
    server.get_json("/api/v1/incidents").1
}
