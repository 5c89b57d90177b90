//! Incidents: anomalies of the watched signals grouped in time across services. A background
//! detector looks every `incidents.interval_ms`: an anomaly that no incident holds joins the
//! open incident it is close to in time, or opens a new one; an incident closes once none of
//! its anomalies has been active for `incidents.close_after_secs`. Each change re-ranks the
//! suspected origins and picks the exemplar traces. Incidents are JSON files under
//! `<data_dir>/incidents/`, written atomically, so they survive a restart.
//!
//! The detector's clock is each tenant's newest indexed record time, not the wall clock, so
//! back-filled or replayed data is judged in its own time.
//!
//! The room is split by subject: `store` keeps the incidents on disk, `detector` groups each
//! look's anomalies into incidents (live, and on demand over a stored window), `analysis`
//! ranks an incident's suspected origins and picks its exemplar traces.

mod analysis;
mod detector;
mod store;

pub use analysis::analyse;
pub use detector::{absorb, analyze, judge, Detector};
pub use store::Incidents;

use super::origin::Origin;
use super::watch::Watched;
use crate::model::Span;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Closed,
}

/// A span of a trace, as an incident names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRef {
    pub service: String,
    pub name: String,
    pub span_id: String,
    pub duration_ns: u64,
    pub failed: bool,
}

impl From<&Span> for SpanRef {
    fn from(s: &Span) -> Self {
        SpanRef {
            service: s.service.clone(),
            name: s.name.clone(),
            span_id: s.span_id.to_hex(),
            duration_ns: s.duration_ns(),
            failed: s.failed(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRef {
    pub trace_id: String,
    pub root: Option<SpanRef>,
    /// The trace's worst span of the top suspected origin, when it passed through it.
    pub origin_span: Option<SpanRef>,
    pub services: Vec<String>,
    pub failed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub tenant: String,
    pub status: Status,
    /// Wall-clock time the detector opened it.
    pub detected_ns: u64,
    /// Start of its first anomaly.
    pub start_ns: u64,
    /// Latest end of its anomalies.
    pub last_activity_ns: u64,
    pub closed_ns: Option<u64>,
    pub services: Vec<String>,
    pub anomalies: Vec<Watched>,
    pub origins: Vec<Origin>,
    pub exemplar_traces: Vec<TraceRef>,
}

impl Incident {
    /// The incident's window: first anomaly start to close (or latest activity).
    pub fn end_ns(&self, step_ns: u64) -> u64 {
        self.closed_ns.unwrap_or(self.last_activity_ns + step_ns)
    }
}
