//! The one tantivy schema every signal's partitions use. Fields a signal does not fill cost
//! nothing. What is indexed is what queries need; the whole record is kept once, as a stored
//! postcard blob (`raw`), so adding a field to the API never needs a re-index.

use tantivy::schema::{
    IndexRecordOption, JsonObjectOptions, NumericOptions, Schema, TextFieldIndexing, TextOptions,
    FAST, STORED, STRING,
};

#[derive(Clone)]
pub struct Fields {
    pub schema: Schema,
    /// Raw term; every query filters on it.
    pub tenant: tantivy::schema::Field,
    /// Raw lowercase hex; several per metric point (one per exemplar).
    pub trace_id: tantivy::schema::Field,
    /// Nanoseconds since the epoch: span start, log time, metric point time.
    pub time: tantivy::schema::Field,
    pub service: tantivy::schema::Field,
    /// Span name, metric name or log event name.
    pub name: tantivy::schema::Field,
    /// Log severity number.
    pub severity: tantivy::schema::Field,
    /// Span duration in nanoseconds.
    pub duration: tantivy::schema::Field,
    /// Span status code.
    pub status: tantivy::schema::Field,
    /// Log link method (`structured`, `attribute`, `text`), or `none`.
    pub link: tantivy::schema::Field,
    /// Log body, full text.
    pub body: tantivy::schema::Field,
    /// Record attributes, searchable as `attrs.key:value` (whole values).
    pub attrs: tantivy::schema::Field,
    /// Resource attributes, searchable as `resource.key:value`.
    pub resource: tantivy::schema::Field,
    /// The whole record, postcard-encoded.
    pub raw: tantivy::schema::Field,
}

pub const TIME: &str = "time";
/// The `link` term of a log that carries no trace ID: what inference looks for.
pub const UNLINKED: &str = "none";

impl Fields {
    pub fn new() -> Self {
        let mut b = Schema::builder();
        let indexed_fast = NumericOptions::default().set_indexed().set_fast();
        let words = TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        // Attribute values are matched whole (`attrs.http.route:/cart`), as tracing backends
        // match tags: one raw term per value, no positions. Word search is for log bodies.
        let exact = TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic);
        let json = JsonObjectOptions::default()
            .set_indexing_options(exact)
            .set_expand_dots_enabled();
        let tenant = b.add_text_field("tenant", STRING);
        let trace_id = b.add_text_field("trace_id", STRING);
        let time = b.add_i64_field(TIME, indexed_fast.clone());
        let service = b.add_text_field("service", STRING | FAST);
        let name = b.add_text_field("name", STRING);
        let severity = b.add_u64_field("severity", indexed_fast.clone());
        let duration = b.add_u64_field("duration", indexed_fast.clone());
        let status = b.add_u64_field("status", indexed_fast);
        let link = b.add_text_field("link", STRING);
        let body = b.add_text_field("body", TextOptions::default().set_indexing_options(words));
        let attrs = b.add_json_field("attrs", json.clone());
        let resource = b.add_json_field("resource", json);
        let raw = b.add_bytes_field("raw", STORED);
        Self {
            schema: b.build(),
            tenant,
            trace_id,
            time,
            service,
            name,
            severity,
            duration,
            status,
            link,
            body,
            attrs,
            resource,
            raw,
        }
    }
}

impl Default for Fields {
    fn default() -> Self {
        Self::new()
    }
}
