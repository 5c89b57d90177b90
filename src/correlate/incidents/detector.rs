//! The detector: each look evaluates the watched series over the step grid and folds the
//! anomalies it finds into the tenant's incidents.

use super::{analyse, Incident, Incidents, Status};
use crate::config::{AnomalySettings, IncidentSettings};
use crate::correlate::stats::Thresholds;
use crate::correlate::watch::{self, Watched};
use crate::index::{IndexError, Store};
use crate::model::TenantId;
use crate::notify::Event;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How far back a look reaches for the baseline of an anomaly that is still going on.
const MAX_HOLD_NS: u64 = 6 * 3600 * 1_000_000_000;

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

/// An incident's ID, from what opened it: the same stored data gives the same IDs, whether
/// judged live or on demand.
fn incident_id(tenant: &TenantId, first: &Watched) -> String {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: stable from run to run (not across Rust releases, which only
    // matters for a re-analysis comparing IDs across an upgrade).
    let mut h = std::hash::DefaultHasher::new();
    (tenant.as_str(), &first.series, first.anomaly.start_ns).hash(&mut h);
    format!("inc-{:012x}", h.finish() & 0xffff_ffff_ffff)
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
                    id: incident_id(tenant, &w),
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

/// The top suspected origin of an incident.
fn top(i: &Incident) -> Option<String> {
    i.origins.first().map(|o| o.service.clone())
}

/// The one path from a look's anomalies to incidents, for the live detector and for analysis
/// on demand alike: anomalies shorter than `min_anomaly_steps` are dropped, the rest folded
/// into `incidents`, and each incident that opened, gained an anomaly or closed is ranked
/// again. (Origins cost dozens of trace reads: not redone each time an ongoing anomaly grows.)
/// Returns the IDs that changed.
pub fn judge(
    store: &Store,
    tenant: &TenantId,
    incidents: &mut Vec<Incident>,
    anomalies: Vec<Watched>,
    now_ns: u64,
    s: &IncidentSettings,
) -> Result<BTreeSet<String>, IndexError> {
    let step = s.step_secs * 1_000_000_000;
    let seen: Vec<Watched> = anomalies
        .into_iter()
        .filter(|w| (w.anomaly.end_ns - w.anomaly.start_ns) / step + 1 >= s.min_anomaly_steps)
        .collect();
    let before: BTreeMap<String, (Status, usize)> = incidents
        .iter()
        .map(|i| (i.id.clone(), (i.status, i.anomalies.len())))
        .collect();
    let changed = absorb(incidents, tenant, seen, now_ns, s);
    for inc in incidents.iter_mut().filter(|i| changed.contains(&i.id)) {
        if before.get(&inc.id) != Some(&(inc.status, inc.anomalies.len())) {
            analyse(store, tenant, inc, step)?;
        }
    }
    Ok(changed)
}

/// Detection and ranking over any stored window, as the live detector would have judged it
/// at the window's end: the incidents it finds, newest first. Nothing is saved.
pub fn analyze(
    store: &Store,
    tenant: &TenantId,
    start_ns: u64,
    end_ns: u64,
    services: Option<&[String]>,
    s: &IncidentSettings,
    a: &AnomalySettings,
) -> Result<Vec<Incident>, IndexError> {
    let step = s.step_secs * 1_000_000_000;
    if end_ns <= start_ns + step {
        return Ok(Vec::new());
    }
    let spec = watch::grid(start_ns, end_ns, step);
    let look = watch::anomalies(
        store,
        tenant,
        services,
        &spec,
        s,
        &Thresholds::from(a),
        true,
    )?;
    let mut found = Vec::new();
    judge(store, tenant, &mut found, look.anomalies, spec.end_ns, s)?;
    // Detected, as far as an analysis can say, when the window it judged ended.
    for i in found.iter_mut() {
        i.detected_ns = spec.end_ns;
    }
    found.sort_by(|a, b| b.start_ns.cmp(&a.start_ns).then(b.id.cmp(&a.id)));
    Ok(found)
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
    /// Where opened, changed and closed incidents are sent, when configured.
    pub notify: Option<Arc<crate::notify::Notifier>>,
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
        // The look reaches back far enough to hold the baseline of every anomaly still going
        // on (at most `MAX_HOLD_NS`): an hour-long fault is judged against the time before it,
        // not against itself, however the looks fall.
        let ongoing = self
            .incidents
            .list(tenant)
            .iter()
            .filter(|i| i.status == Status::Open)
            .flat_map(|i| i.anomalies.iter())
            .filter(|a| a.anomaly.ongoing)
            .map(|a| a.anomaly.start_ns)
            .min();
        let baseline = self.anomalies.baseline_points as u64 * step;
        let start = ongoing
            .map(|t| {
                t.saturating_sub(baseline)
                    .max(end.saturating_sub(MAX_HOLD_NS))
            })
            .unwrap_or(end)
            .min(end.saturating_sub(s.lookback_secs * 1_000_000_000));
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
        let mut mine = self.incidents.list(tenant);
        let step = s.step_secs * 1_000_000_000;
        let before: BTreeMap<String, (Status, Option<String>)> = mine
            .iter()
            .map(|i| (i.id.clone(), (i.status, top(i))))
            .collect();
        let changed = judge(&self.store, tenant, &mut mine, look.anomalies, end, s)?;
        for inc in mine.into_iter().filter(|i| changed.contains(&i.id)) {
            if let Err(e) = self.incidents.save(&inc) {
                tracing::error!(id = %inc.id, error = %e, "cannot save incident");
            }
            let was = before.get(&inc.id);
            let (id, services, origin) = (&inc.id, &inc.services, top(&inc));
            let event = match (was, inc.status) {
                (None, _) => Some(Event::Opened),
                (Some((Status::Open, _)), Status::Closed) => Some(Event::Closed),
                (Some((_, o)), Status::Open) if *o != origin => Some(Event::OriginChanged),
                _ => None,
            };
            match event {
                Some(e) => tracing::info!(%id, ?services, ?origin, event = e.as_str(), "incident"),
                None => tracing::debug!(%id, ?services, ?origin, "incident updated"),
            }
            if let (Some(e), Some(n)) = (event, &self.notify) {
                n.send(e, &inc, step);
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
            unit: "{error}/s".into(),
            direction: "rise".into(),
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
