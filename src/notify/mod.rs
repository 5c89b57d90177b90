//! Incidents reach people: on open, on a change of the top suspected origin and on close, a
//! JSON webhook (signed with a shared secret) and Alertmanager alerts (`POST /api/v2/alerts`).
//! Deliveries run on one thread of their own, so a slow receiver never holds up detection;
//! each is retried with exponential backoff and given up after `notify.max_attempts`, and at
//! most `QUEUE` wait (the oldest is dropped past that, and counted).
//!
//! Depends on `correlate::incidents` (what it sends) and `config`; nothing depends on it but
//! the detector, which hands it events.

mod hmac;

pub use hmac::{hmac_sha256, signature};

use crate::config::NotifySettings;
use crate::correlate::incidents::{Incident, Status};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Deliveries that may wait; past it the oldest is dropped.
const QUEUE: usize = 1000;
/// Header carrying `sha256=<hex HMAC-SHA256 of the body>` when a secret is set.
pub const SIGNATURE_HEADER: &str = "x-weft-signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Opened,
    OriginChanged,
    Closed,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Opened => "opened",
            Event::OriginChanged => "origin_changed",
            Event::Closed => "closed",
        }
    }
}

/// One HTTP delivery.
#[derive(Debug, Clone)]
struct Delivery {
    url: String,
    body: Vec<u8>,
    signed: bool,
}

#[derive(Default)]
struct Queue {
    items: parking_lot::Mutex<VecDeque<Delivery>>,
    ready: parking_lot::Condvar,
}

pub struct Notifier {
    settings: NotifySettings,
    queue: Arc<Queue>,
    /// Deliveries that failed every attempt, or were dropped from a full queue.
    pub failed: Arc<AtomicU64>,
    pub delivered: Arc<AtomicU64>,
}

fn rfc3339(ns: u64) -> String {
    crate::model::time::rfc3339(ns)
}

/// The webhook's JSON: the event and a small summary of the incident.
pub fn webhook_body(event: Event, i: &Incident, step_ns: u64) -> Value {
    json!({
        "event": event.as_str(),
        "incident": {
            "id": i.id,
            "tenant": i.tenant,
            "status": i.status,
            "start": rfc3339(i.start_ns),
            "end": i.closed_ns.map(rfc3339),
            "last_activity": rfc3339(i.last_activity_ns + step_ns),
            "services": i.services,
            "top_origin": i.origins.first().map(|o| &o.service),
            "origins": i.origins.iter().take(3).map(|o| json!({
                "service": o.service,
                "score": o.score,
                "evidence": o.evidence,
            })).collect::<Vec<_>>(),
            "anomalies": i.anomalies.len(),
            "link": format!("/api/v1/incidents/{}", i.id),
        }
    })
}

/// The Alertmanager alert for an incident: firing while open, resolved (`endsAt` set) once
/// closed. Labels identify the incident, so a change of origin updates the same alert's
/// annotations rather than opening another.
pub fn alert(i: &Incident, step_ns: u64) -> Value {
    let origin = i.origins.first().map_or("", |o| o.service.as_str());
    let mut a = json!({
        "labels": {
            "alertname": "WeftIncident",
            "tenant": i.tenant,
            "incident": i.id,
        },
        "annotations": {
            "summary": format!("incident in {}; suspected origin {}", i.services.join(", "),
                if origin.is_empty() { "unknown" } else { origin }),
            "origin": origin,
            "services": i.services.join(","),
        },
        "startsAt": rfc3339(i.start_ns),
        "generatorURL": format!("/api/v1/incidents/{}", i.id),
    });
    if i.status == Status::Closed {
        a["endsAt"] = json!(rfc3339(i.end_ns(step_ns)));
    }
    json!([a])
}

impl Notifier {
    /// A notifier with its delivery thread, or `None` when no output is configured.
    pub fn start(settings: NotifySettings) -> std::io::Result<Option<Arc<Notifier>>> {
        if settings.webhook_url.is_empty() && settings.alertmanager_url.is_empty() {
            return Ok(None);
        }
        let n = Arc::new(Notifier {
            settings: settings.clone(),
            queue: Arc::new(Queue::default()),
            failed: Arc::default(),
            delivered: Arc::default(),
        });
        let (queue, failed, delivered) = (n.queue.clone(), n.failed.clone(), n.delivered.clone());
        std::thread::Builder::new()
            .name("weft-notify".into())
            .spawn(move || deliver_forever(&settings, &queue, &failed, &delivered))?;
        Ok(Some(n))
    }

    /// Queues the deliveries of one event.
    pub fn send(&self, event: Event, i: &Incident, step_ns: u64) {
        let s = &self.settings;
        let mut out = Vec::new();
        if !s.webhook_url.is_empty() {
            out.push(Delivery {
                url: s.webhook_url.clone(),
                body: serde_json::to_vec(&webhook_body(event, i, step_ns)).unwrap_or_default(),
                signed: true,
            });
        }
        if !s.alertmanager_url.is_empty() {
            out.push(Delivery {
                url: format!("{}/api/v2/alerts", s.alertmanager_url.trim_end_matches('/')),
                body: serde_json::to_vec(&alert(i, step_ns)).unwrap_or_default(),
                signed: false,
            });
        }
        let mut q = self.queue.items.lock();
        for d in out {
            if q.len() >= QUEUE {
                q.pop_front();
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(d);
        }
        self.queue.ready.notify_one();
    }
}

fn deliver_forever(s: &NotifySettings, q: &Queue, failed: &AtomicU64, delivered: &AtomicU64) {
    let client = match reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(s.timeout_ms))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the notification client; notifications are off");
            return;
        }
    };
    loop {
        let d = {
            let mut items = q.items.lock();
            while items.is_empty() {
                q.ready.wait(&mut items);
            }
            items.pop_front().expect("not empty")
        };
        match deliver(&client, s, &d) {
            Ok(()) => delivered.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(url = %d.url, error = %e, attempts = s.max_attempts, "notification given up");
                failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// One delivery with retries: a 2xx ends it; a network error, a 5xx or a 429 is retried after
/// `initial_backoff_ms`, doubling each time; any other status is final.
fn deliver(
    client: &reqwest::blocking::Client,
    s: &NotifySettings,
    d: &Delivery,
) -> Result<(), String> {
    let mut backoff = Duration::from_millis(s.initial_backoff_ms);
    let mut last = String::new();
    for attempt in 1..=s.max_attempts.max(1) {
        let mut req = client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("x-weft-attempt", attempt.to_string());
        if d.signed && !s.webhook_secret.is_empty() {
            req = req.header(
                SIGNATURE_HEADER,
                signature(s.webhook_secret.as_bytes(), &d.body),
            );
        }
        match req.body(d.body.clone()).send() {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if !(r.status().is_server_error() || r.status().as_u16() == 429) => {
                return Err(format!("HTTP {}", r.status()))
            }
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        if attempt < s.max_attempts {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
    Err(last)
}
