//! `weft demo`: weft on its embedded default, fed a seven-service shop over OTLP/HTTP in real
//! time, with a database slowdown behind `inventory` injected after a calm start. It prints
//! what to open and reports the incident when the detector opens it.

pub mod scenario;

use crate::config::Config;
use crate::server::{serve, SinkMode};
use prost::Message;
use scenario::{Fault, Scenario, Second};
use std::time::{Duration, Instant};

/// Sends one second of the scenario to weft's OTLP/HTTP endpoint (protobuf), as `tenant` or
/// the default one.
pub fn send(
    client: &reqwest::blocking::Client,
    base: &str,
    tenant: Option<&str>,
    s: &Second,
) -> Result<(), String> {
    let parts: [(&str, Vec<u8>); 3] = [
        ("/v1/traces", s.traces.encode_to_vec()),
        ("/v1/logs", s.logs.encode_to_vec()),
        ("/v1/metrics", s.metrics.encode_to_vec()),
    ];
    for (path, body) in parts {
        let mut req = client
            .post(format!("{base}{path}"))
            .header("content-type", "application/x-protobuf");
        if let Some(t) = tenant {
            req = req.header(crate::api::auth::TENANT_HEADER, t);
        }
        let r = req.body(body).send().map_err(|e| format!("{path}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{path}: HTTP {}", r.status()));
        }
    }
    Ok(())
}

pub struct DemoOptions {
    pub seed: u64,
    pub fault_at_secs: u64,
    pub fault_secs: u64,
}

fn wait_ready(client: &reqwest::blocking::Client, base: &str) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err("weft did not become ready within 2 minutes".into())
}

/// Feeds the shop in real time until the process is stopped, reporting incidents.
fn feed(base: String, opts: DemoOptions) -> Result<(), String> {
    let client = reqwest::blocking::Client::new();
    wait_ready(&client, &base)?;
    let fault = Fault {
        start_s: opts.fault_at_secs,
        end_s: opts.fault_at_secs + opts.fault_secs,
    };
    let t0 = crate::now_ns();
    let mut shop = Scenario::new(opts.seed, t0, fault);
    println!("weft demo: seven services (frontend, checkout, cart, inventory, payment, shipping, catalog) are sending traces, logs and metrics to {base}");
    println!("  in {} s inventory's database slows down for {} s; checkouts then time out and fail up the call chain", fault.start_s, opts.fault_secs);
    println!("  web UI:      {base}/");
    println!("  incidents:   {base}/api/v1/incidents");
    println!("  RED metrics: {base}/api/v1/metrics/query?query=weft.span.duration&by=service.name&quantiles=0.95&start=now-5m");
    println!("  error logs:  {base}/api/v1/logs?severity=error&start=now-5m");
    let started = Instant::now();
    let mut known: Vec<String> = Vec::new();
    for s in 0.. {
        let due = Duration::from_secs(s + 1);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        send(&client, &base, None, &shop.second(s))?;
        if s == fault.start_s {
            println!("[+{s:>3} s] fault injected: inventory's database is slow");
        }
        if s == fault.end_s {
            println!("[+{s:>3} s] fault over: the database is fast again");
        }
        let Ok(list) = client
            .get(format!("{base}/api/v1/incidents"))
            .send()
            .and_then(|r| r.json::<serde_json::Value>())
        else {
            continue;
        };
        for inc in list["incidents"].as_array().into_iter().flatten() {
            let id = inc["id"].as_str().unwrap_or_default().to_string();
            let status = inc["status"].as_str().unwrap_or_default();
            let key = format!("{id}:{status}");
            if known.contains(&key) {
                continue;
            }
            known.push(key);
            let origin = inc["suspected_origins"][0]["service"]
                .as_str()
                .unwrap_or("?");
            println!(
                "[+{s:>3} s] incident {id} is {status}: services {}, suspected origin {origin}",
                inc["services"]
            );
            println!("          {base}/ui/incidents/{id}");
            println!("          {base}/api/v1/incidents/{id}");
            println!("          {base}/api/v1/timeline?incident={id}");
        }
    }
    Ok(())
}

/// Runs weft with `config` and feeds it the shop; returns when weft stops (Ctrl-C).
pub fn run(config: Config, opts: DemoOptions) -> Result<(), String> {
    let base = format!("http://{}", config.http.listen);
    std::thread::Builder::new()
        .name("weft-demo-feed".into())
        .spawn(move || {
            if let Err(e) = feed(base, opts) {
                eprintln!("weft demo: feeding stopped: {e}");
            }
        })
        .map_err(|e| e.to_string())?;
    serve(config, SinkMode::Wal).map_err(|e| e.to_string())
}
