//! Incidents on disk: one JSON file per incident under `<data_dir>/incidents/`, written
//! atomically (temporary file, fsync, rename, fsync of the directory), read back at start.

use super::Incident;
use crate::model::TenantId;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Every incident, in memory and on disk.
pub struct Incidents {
    dir: PathBuf,
    pub(super) all: RwLock<BTreeMap<String, Incident>>,
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

    pub(super) fn save(&self, i: &Incident) -> std::io::Result<()> {
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

    /// Open incidents per tenant (tenants that have had an incident), for `/metrics`.
    pub fn open_counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for i in self.all.read().values() {
            let n = out.entry(i.tenant.clone()).or_insert(0);
            if i.status == super::Status::Open {
                *n += 1;
            }
        }
        out
    }

    /// `weft_incidents_open{tenant}` in the Prometheus text format. The label is a validated
    /// tenant ID, and only of tenants that have had an incident.
    pub fn render_gauge(&self) -> String {
        let mut out = String::from(
            "# HELP weft_incidents_open Open incidents per tenant\n# TYPE weft_incidents_open gauge\n",
        );
        for (tenant, n) in self.open_counts() {
            out.push_str(&format!("weft_incidents_open{{tenant=\"{tenant}\"}} {n}\n"));
        }
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
