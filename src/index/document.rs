//! One record becomes one tantivy document.

use super::schema::{Fields, UNLINKED};
use crate::model::{AttrValue, KeyValue, Record, Span, TenantId};
use std::collections::BTreeMap;
use tantivy::schema::OwnedValue;
use tantivy::TantivyDocument;

/// An attribute as tantivy's own value, directly (not through `serde_json`: this runs for
/// every attribute of every record).
fn owned(v: &AttrValue) -> OwnedValue {
    match v {
        AttrValue::Empty | AttrValue::Bytes(_) => OwnedValue::Null,
        AttrValue::Str(s) => OwnedValue::Str(s.clone()),
        AttrValue::Bool(b) => OwnedValue::Bool(*b),
        AttrValue::Int(i) => OwnedValue::I64(*i),
        AttrValue::Double(d) => OwnedValue::F64(*d),
        AttrValue::Array(a) => OwnedValue::Array(a.iter().map(owned).collect()),
        AttrValue::Map(m) => OwnedValue::Object(
            m.iter()
                .map(|kv| (kv.key.clone(), owned(&kv.value)))
                .collect(),
        ),
    }
}

fn object(attrs: &[KeyValue]) -> BTreeMap<String, OwnedValue> {
    attrs
        .iter()
        .filter(|kv| !matches!(kv.value, AttrValue::Empty | AttrValue::Bytes(_)))
        .map(|kv| (kv.key.clone(), owned(&kv.value)))
        .collect()
}

fn clamp_i64(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// The span's indexed status: its OTLP code (0 unset, 1 ok, 2 error), except that an unset
/// status of a span that failed by `Span::failed` (HTTP ≥ 500, a gRPC error, an exception) is
/// indexed as error, so searching for failed spans and counting them from the index agree with
/// RED and the service map. The stored record keeps the code the sender set.
fn status_class(s: &Span) -> u64 {
    if s.failed() {
        2
    } else {
        u64::from(s.status_code == 1)
    }
}

pub fn build(fields: &Fields, tenant: &TenantId, record: &Record) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_text(fields.tenant, tenant.as_str());
    doc.add_i64(fields.time, clamp_i64(record.time_ns()));
    let (service, resource, attributes) = match record {
        Record::Span(s) => {
            doc.add_text(fields.trace_id, s.trace_id.to_hex());
            doc.add_text(fields.name, &s.name);
            doc.add_u64(fields.duration, s.duration_ns());
            doc.add_u64(fields.status, status_class(s));
            (&s.service, &s.resource, &s.attributes)
        }
        Record::Log(l) => {
            if let Some(t) = l.trace_id {
                doc.add_text(fields.trace_id, t.to_hex());
            }
            let link = l
                .link
                .as_ref()
                .map_or(UNLINKED, |link| link.method.as_str());
            doc.add_text(fields.link, link);
            if !l.event_name.is_empty() {
                doc.add_text(fields.name, &l.event_name);
            }
            doc.add_u64(fields.severity, l.severity_number.max(0) as u64);
            doc.add_text(fields.body, l.body.to_text());
            (&l.service, &l.resource, &l.attributes)
        }
        Record::Metric(m) => {
            let mut seen = Vec::new();
            for t in m.exemplars.iter().filter_map(|e| e.trace_id) {
                if !seen.contains(&t) {
                    doc.add_text(fields.trace_id, t.to_hex());
                    seen.push(t);
                }
            }
            doc.add_text(fields.name, &m.name);
            (&m.service, &m.resource, &m.attributes)
        }
    };
    doc.add_text(fields.service, service);
    let attrs = object(attributes);
    if !attrs.is_empty() {
        doc.add_object(fields.attrs, attrs);
    }
    let res = object(resource);
    if !res.is_empty() {
        doc.add_object(fields.resource, res);
    }
    doc.add_bytes(fields.raw, &crate::model::codec::encode_record(record));
    doc
}
