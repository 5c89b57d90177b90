//! Incidents on disk: one JSON file per incident under `<data_dir>/incidents/`, written
//! atomically (temporary file, fsync, rename, fsync of the directory), read back at start.
//! Each file carries its format version (`"format": 1`); files without one are version 0,
//! the same shape (fields added since take their defaults). A file from a newer format is
//! left in place and skipped with an error, never misread.

use super::Incident;
use crate::model::TenantId;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The incident file format this release writes and reads.
const FORMAT: u32 = 1;

#[derive(serde::Serialize)]
struct FileOut<'a> {
    format: u32,
    #[serde(flatten)]
    incident: &'a Incident,
}

#[derive(serde::Deserialize)]
struct FileIn {
    #[serde(default)]
    format: u32,
    #[serde(flatten)]
    incident: Incident,
}

/// An incident file's contents, or why it cannot be used.
fn decode(bytes: &[u8]) -> Result<Incident, String> {
    let file: FileIn = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.format > FORMAT {
        return Err(format!(
            "format {} is newer than this release reads ({FORMAT})",
            file.format
        ));
    }
    Ok(file.incident)
}

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
            match decode(&std::fs::read(&path)?) {
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
        let file = FileOut {
            format: FORMAT,
            incident: i,
        };
        f.write_all(&serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_carry_their_format_and_a_newer_one_is_refused() {
        let old = std::fs::read("tests/fixtures/data-v0/incidents/inc-ace3a94e38ce.json").unwrap();
        let incident = decode(&old).expect("a version-0 file (no format field) reads");
        let written = serde_json::to_vec(&FileOut {
            format: FORMAT,
            incident: &incident,
        })
        .unwrap();
        let text = String::from_utf8(written.clone()).unwrap();
        assert!(text.contains("\"format\":1"), "{text}");
        assert_eq!(decode(&written).unwrap().id, incident.id);
        let newer = text.replacen("\"format\":1", "\"format\":2", 1);
        let e = decode(newer.as_bytes()).unwrap_err();
        assert!(e.contains("format 2"), "{e}");
    }
}
