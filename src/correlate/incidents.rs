//! Incidents: anomalies of the watched signals grouped in time across services. A background
//! detector looks every `incidents.interval_ms`: an anomaly that no incident holds joins the
//! open incident it is close to in time, or opens a new one; an incident closes once none of
//! its anomalies has been active for `incidents.close_after_secs`. Each change re-ranks the
//! suspected origins and picks the exemplar traces. Incidents are JSON files under
//! `<data_dir>/incidents/`, written atomically, so they survive a restart.
//!
//! The detector's clock is each tenant's newest indexed record time, not the wall clock, so
//! back-filled or replayed data is judged in its own time.

use super::origin::{self, Origin};
use super::stats::Thresholds;
use super::watch::{self, Watched};
use crate::config::{AnomalySettings, IncidentSettings};
use crate::index::{Filter, IndexError, Pick, Store, STATUS_ERROR};
use crate::model::{Span, TenantId, TraceId};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Traces read per incident analysis: the slowest and the failed of the window, and a
/// baseline sample before it.
const ANALYSIS_TRACES: usize = 30;
/// Exemplar traces kept per incident.
const EXEMPLAR_TRACES: usize = 10;

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
            failed: s.status_code == 2,
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

/// Every incident, in memory and on disk.
pub struct Incidents {
    dir: PathBuf,
    all: RwLock<BTreeMap<String, Incident>>,
}

impl Incidents {
    pub fn open(data_dir: &Path) -> std::io::Result<Arc<Incidents>> {
        let dir = data_dir.join("incidents");
        std::fs::create_dir_all(&dir)?;
        let mut all = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match serde_json::from_slice::<Incident>(&std::fs::read(&path)?) {
                Ok(i) => {
                    all.insert(i.id.clone(), i);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "unreadable incident file; skipped")
                }
            }
        }
        Ok(Arc::new(Incidents {
            dir,
            all: RwLock::new(all),
        }))
    }

    fn save(&self, i: &Incident) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = self.dir.join(format!("{}.json.tmp", i.id));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(i).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(format!("{}.json", i.id)))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// A tenant's incidents, newest first.
    pub fn list(&self, tenant: &TenantId) -> Vec<Incident> {
        let mut out: Vec<Incident> = self
            .all
            .read()
            .values()
            .filter(|i| i.tenant == tenant.as_str())
            .cloned()
            .collect();
        out.sort_by(|a, b| b.start_ns.cmp(&a.start_ns).then(b.id.cmp(&a.id)));
        out
    }

    pub fn get(&self, tenant: &TenantId, id: &str) -> Option<Incident> {
        self.all
            .read()
            .get(id)
            .filter(|i| i.tenant == tenant.as_str())
            .cloned()
    }
}

/// Whether two sightings are the same anomaly: same series, overlapping in time.
fn same(a: &Watched, b: &Watched, step_ns: u64) -> bool {
    a.series == b.series
        && b.anomaly.start_ns <= a.anomaly.end_ns + step_ns
        && b.anomaly.end_ns + step_ns >= a.anomaly.start_ns
}

fn refresh(i: &mut Incident) {
    i.start_ns = i
        .anomalies
        .iter()
        .map(|a| a.anomaly.start_ns)
        .min()
        .unwrap_or(i.start_ns);
    i.last_activity_ns = i
        .anomalies
        .iter()
        .map(|a| a.anomaly.end_ns)
        .max()
        .unwrap_or(i.last_activity_ns);
    let services: BTreeSet<String> = i
        .anomalies
        .iter()
        .map(|a| a.service.clone())
        .filter(|s| !s.is_empty())
        .collect();
    i.services = services.into_iter().collect();
}

/// Folds one look's anomalies into a tenant's incidents; returns the IDs that changed.
/// `now_ns` is the end of the evaluated window (the tenant's data clock).
pub fn absorb(
    incidents: &mut Vec<Incident>,
    tenant: &TenantId,
    mut seen: Vec<Watched>,
    now_ns: u64,
    s: &IncidentSettings,
) -> BTreeSet<String> {
    let step = s.step_secs * 1_000_000_000;
    let gap = s.group_gap_secs * 1_000_000_000;
    let mut changed = BTreeSet::new();
    seen.sort_by_key(|w| (w.anomaly.start_ns, w.series.clone()));
    let sightings = seen.clone();
    for w in seen {
        if let Some(inc) = incidents
            .iter_mut()
            .find(|i| i.anomalies.iter().any(|a| same(a, &w, step)))
        {
            let a = inc
                .anomalies
                .iter_mut()
                .find(|a| same(a, &w, step))
                .expect("found above");
            if a.anomaly != w.anomaly {
                // Keep the earliest start seen: a later look may have lost the run's
                // beginning from its window.
                let start = a.anomaly.start_ns.min(w.anomaly.start_ns);
                *a = w;
                a.anomaly.start_ns = start;
                changed.insert(inc.id.clone());
            }
            refresh(inc);
            continue;
        }
        let near = incidents.iter_mut().find(|i| {
            i.status == Status::Open
                && w.anomaly.start_ns <= i.last_activity_ns + gap
                && w.anomaly.end_ns + gap >= i.start_ns
        });
        match near {
            Some(inc) => {
                inc.anomalies.push(w);
                refresh(inc);
                changed.insert(inc.id.clone());
            }
            None => {
                let mut inc = Incident {
                    id: format!("inc-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
                    tenant: tenant.as_str().to_string(),
                    status: Status::Open,
                    detected_ns: crate::now_ns(),
                    start_ns: w.anomaly.start_ns,
                    last_activity_ns: w.anomaly.end_ns,
                    closed_ns: None,
                    services: Vec::new(),
                    anomalies: vec![w],
                    origins: Vec::new(),
                    exemplar_traces: Vec::new(),
                };
                refresh(&mut inc);
                changed.insert(inc.id.clone());
                incidents.push(inc);
            }
        }
    }
    // An anomaly last seen ongoing that this look, covering its series, no longer sees has
    // ended where it was last seen (a later look judged the same points with more data).
    for inc in incidents.iter_mut().filter(|i| i.status == Status::Open) {
        for a in inc.anomalies.iter_mut().filter(|a| a.anomaly.ongoing) {
            if !sightings.iter().any(|w| same(a, w, step)) {
                a.anomaly.ongoing = false;
                changed.insert(inc.id.clone());
            }
        }
    }
    let quiet = s.close_after_secs * 1_000_000_000;
    for inc in incidents.iter_mut().filter(|i| i.status == Status::Open) {
        let active = inc.anomalies.iter().any(|a| a.anomaly.ongoing);
        if !active && inc.last_activity_ns + step + quiet <= now_ns {
            inc.status = Status::Closed;
            inc.closed_ns = Some(inc.last_activity_ns + step);
            changed.insert(inc.id.clone());
        }
    }
    changed
}

/// The spans of each of `ids`' traces.
fn traces(store: &Store, tenant: &TenantId, ids: &[TraceId]) -> Result<Vec<Vec<Span>>, IndexError> {
    ids.iter()
        .map(|t| store.trace(tenant, *t).map(|r| r.spans))
        .filter(|r| !matches!(r, Ok(s) if s.is_empty()))
        .collect()
}

fn trace_ids(found: Vec<Span>, into: &mut Vec<TraceId>, cap: usize) {
    for s in found {
        if into.len() >= cap {
            break;
        }
        if !into.contains(&s.trace_id) {
            into.push(s.trace_id);
        }
    }
}

/// Ranks the suspected origins and picks the exemplar traces of an incident.
pub fn analyse(
    store: &Store,
    tenant: &TenantId,
    inc: &mut Incident,
    step_ns: u64,
) -> Result<(), IndexError> {
    let start = inc.start_ns;
    let end = inc.end_ns(step_ns);
    let window = Filter {
        services: inc.services.clone(),
        start_ns: start,
        end_ns: end,
        ..Filter::default()
    };
    let mut ids: Vec<TraceId> = Vec::new();
    let mut exemplars: Vec<(f64, TraceId)> = inc
        .anomalies
        .iter()
        .flat_map(|a| a.exemplars.iter())
        .filter_map(|e| e.trace_id.map(|t| (e.value, t)))
        .collect();
    exemplars.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, t) in exemplars {
        if !ids.contains(&t) && ids.len() < ANALYSIS_TRACES {
            ids.push(t);
        }
    }
    let cap = ids.len() + ANALYSIS_TRACES;
    trace_ids(
        store.select_spans(tenant, &window, Pick::Slowest, ANALYSIS_TRACES)?,
        &mut ids,
        cap,
    );
    let failed = Filter {
        status: Some(STATUS_ERROR),
        ..window.clone()
    };
    let cap = ids.len() + ANALYSIS_TRACES;
    trace_ids(
        store.select_spans(tenant, &failed, Pick::Newest, ANALYSIS_TRACES)?,
        &mut ids,
        cap,
    );
    let (base_start, base_end) = super::baseline::before(start, end);
    let before = Filter {
        start_ns: base_start,
        end_ns: base_end,
        ..window.clone()
    };
    let mut base_ids = Vec::new();
    trace_ids(
        store.select_spans(tenant, &before, Pick::Newest, ANALYSIS_TRACES * 4)?,
        &mut base_ids,
        ANALYSIS_TRACES,
    );
    let window_traces = traces(store, tenant, &ids)?;
    let baseline_traces = traces(store, tenant, &base_ids)?;
    let mut first: Vec<(u64, String)> = Vec::new();
    for a in &inc.anomalies {
        match first.iter_mut().find(|(_, s)| *s == a.service) {
            Some(f) => f.0 = f.0.min(a.anomaly.start_ns),
            None => first.push((a.anomaly.start_ns, a.service.clone())),
        }
    }
    first.sort();
    let order: Vec<String> = first
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| !s.is_empty())
        .collect();
    inc.origins = origin::rank(&window_traces, &baseline_traces, &order);
    let top = inc.origins.first().map(|o| o.service.clone());
    let mut refs: Vec<(bool, bool, u64, TraceRef)> = window_traces
        .iter()
        .map(|spans| {
            let worst = spans
                .iter()
                .filter(|s| Some(&s.service) == top.as_ref())
                .max_by_key(|s| (s.status_code == 2, s.duration_ns()));
            let mut services: Vec<String> = spans.iter().map(|s| s.service.clone()).collect();
            services.sort();
            services.dedup();
            let failed = spans.iter().any(|s| s.status_code == 2);
            let r = TraceRef {
                trace_id: spans[0].trace_id.to_hex(),
                root: spans
                    .iter()
                    .find(|s| s.parent_span_id.is_none())
                    .map(SpanRef::from),
                origin_span: worst.map(SpanRef::from),
                services,
                failed,
            };
            (
                worst.is_some(),
                worst.is_some_and(|w| w.status_code == 2),
                worst.map_or(0, |w| w.duration_ns()),
                r,
            )
        })
        .collect();
    refs.sort_by_key(|r| std::cmp::Reverse((r.0, r.1, r.2)));
    inc.exemplar_traces = refs
        .into_iter()
        .take(EXEMPLAR_TRACES)
        .map(|r| r.3)
        .collect();
    Ok(())
}

/// The background detector.
pub struct Detector {
    pub store: Arc<Store>,
    pub incidents: Arc<Incidents>,
    pub settings: IncidentSettings,
    pub anomalies: AnomalySettings,
    /// Metrics already reported as too big to watch (each is logged once).
    pub skipped: parking_lot::Mutex<BTreeSet<String>>,
    /// Per tenant, the watched series read so far.
    pub caches: parking_lot::Mutex<BTreeMap<TenantId, watch::Cache>>,
}

/// A tenant's cache, created empty on first use.
fn slot_cache<'a>(
    caches: &'a parking_lot::Mutex<BTreeMap<TenantId, watch::Cache>>,
    tenant: &TenantId,
) -> parking_lot::MappedMutexGuard<'a, watch::Cache> {
    parking_lot::MutexGuard::map(caches.lock(), |c| c.entry(tenant.clone()).or_default())
}

impl Detector {
    /// One look at every tenant.
    pub fn tick(&self) {
        for (tenant, clock) in self.store.tenants() {
            if let Err(e) = self.look(&tenant, clock) {
                tracing::error!(tenant = %tenant.as_str(), error = %e, "incident detection failed");
            }
        }
    }

    fn look(&self, tenant: &TenantId, clock_ns: u64) -> Result<(), IndexError> {
        let s = &self.settings;
        let step = s.step_secs * 1_000_000_000;
        let end = clock_ns.saturating_sub(s.settle_secs * 1_000_000_000);
        let start = end.saturating_sub(s.lookback_secs * 1_000_000_000);
        if end <= start + step {
            return Ok(());
        }
        let spec = watch::grid(start, end, step);
        let look = slot_cache(&self.caches, tenant).look(
            &self.store,
            tenant,
            &spec,
            s,
            &Thresholds::from(&self.anomalies),
        )?;
        for name in look.skipped {
            if self.skipped.lock().insert(name.clone()) {
                tracing::warn!(tenant = %tenant.as_str(), metric = %name, max_points = s.max_points,
                    "metric has more points per look than incidents.max_points; not watched");
            }
        }
        let seen: Vec<Watched> = look
            .anomalies
            .into_iter()
            .filter(|w| (w.anomaly.end_ns - w.anomaly.start_ns) / step + 1 >= s.min_anomaly_steps)
            .collect();
        let mut mine = self.incidents.list(tenant);
        let changed = absorb(&mut mine, tenant, seen, end, s);
        for mut inc in mine.into_iter().filter(|i| changed.contains(&i.id)) {
            let before = self
                .incidents
                .all
                .read()
                .get(&inc.id)
                .map(|i| (i.status, i.anomalies.len()));
            // Origins and exemplar traces cost dozens of trace reads: redone when the incident
            // opens, gains an anomaly or closes, not each time an ongoing anomaly grows.
            if before.is_none_or(|b| b != (inc.status, inc.anomalies.len())) {
                analyse(&self.store, tenant, &mut inc, step)?;
            }
            if let Err(e) = self.incidents.save(&inc) {
                tracing::error!(id = %inc.id, error = %e, "cannot save incident");
            }
            let before = before.map(|b| b.0);
            let (id, services, origin) = (
                &inc.id,
                &inc.services,
                inc.origins.first().map(|o| &o.service),
            );
            match (before, inc.status) {
                (None, _) => tracing::info!(%id, ?services, ?origin, "incident opened"),
                (Some(Status::Open), Status::Closed) => {
                    tracing::info!(%id, ?services, ?origin, "incident closed")
                }
                _ => tracing::debug!(%id, ?services, ?origin, "incident updated"),
            }
            self.incidents.all.write().insert(inc.id.clone(), inc);
        }
        Ok(())
    }

    /// Runs `tick` every `interval_ms` on its own thread for the life of the process.
    pub fn start(self) -> std::io::Result<()> {
        let every = Duration::from_millis(self.settings.interval_ms);
        std::thread::Builder::new()
            .name("weft-incidents".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                self.tick();
            })
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::metrics::Anomaly;
    use crate::correlate::stats::AnomalyKind;

    const S: u64 = 1_000_000_000;

    fn seen(series: &str, service: &str, start: u64, end: u64, ongoing: bool) -> Watched {
        Watched {
            signal: "errors".into(),
            service: service.into(),
            series: series.into(),
            anomaly: Anomaly {
                kind: AnomalyKind::Spike,
                start_ns: start * S,
                peak_ns: start * S,
                end_ns: end * S,
                score: 9.0,
                baseline: 0.0,
                peak_value: 3.0,
                ongoing,
            },
            exemplars: vec![],
        }
    }

    #[test]
    fn anomalies_group_by_time_and_incidents_close_when_quiet() {
        let s = IncidentSettings {
            step_secs: 5,
            group_gap_secs: 60,
            close_after_secs: 30,
            ..IncidentSettings::default()
        };
        let t = TenantId::new("t").unwrap();
        let mut all = Vec::new();
        // One look at `at` seconds that sees `sightings`; the IDs it changed.
        let look = |all: &mut Vec<Incident>, sightings: Vec<Watched>, at: u64| {
            absorb(all, &t, sightings, at * S, &s)
        };
        // Inventory first, checkout 40 s later: one incident.
        let c = look(&mut all, vec![seen("a", "inventory", 100, 120, true)], 125);
        assert_eq!((all.len(), c.len()), (1, 1));
        look(
            &mut all,
            vec![
                seen("a", "inventory", 100, 125, true),
                seen("b", "checkout", 140, 150, true),
            ],
            155,
        );
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].services, ["checkout", "inventory"]);
        assert_eq!(
            all[0].anomalies[0].anomaly.end_ns,
            125 * S,
            "the sighting was updated, not added"
        );
        // A sighting the next look does not repeat stops being ongoing.
        look(
            &mut all,
            vec![
                seen("a", "inventory", 100, 125, true),
                seen("b", "checkout", 140, 150, true),
                seen("p", "cart", 150, 150, true),
            ],
            155,
        );
        assert!(all[0]
            .anomalies
            .iter()
            .any(|a| a.series == "p" && a.anomaly.ongoing));
        look(
            &mut all,
            vec![
                seen("a", "inventory", 100, 125, true),
                seen("b", "checkout", 140, 150, true),
            ],
            160,
        );
        assert!(all[0]
            .anomalies
            .iter()
            .any(|a| a.series == "p" && !a.anomaly.ongoing));
        // Both end; not yet quiet for 30 s.
        look(
            &mut all,
            vec![
                seen("a", "inventory", 100, 130, false),
                seen("b", "checkout", 140, 150, false),
            ],
            170,
        );
        assert_eq!(all[0].status, Status::Open);
        let c = look(&mut all, vec![], 186);
        assert_eq!(all[0].status, Status::Closed);
        assert_eq!(all[0].closed_ns, Some(155 * S));
        assert!(c.contains(&all[0].id));
        // An anomaly well after: a new incident; one seen again does not reopen anything.
        look(
            &mut all,
            vec![
                seen("a", "inventory", 100, 130, false),
                seen("c", "cart", 400, 410, true),
            ],
            415,
        );
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].services, ["cart"]);
        assert_eq!(all[1].status, Status::Open);
    }
}
