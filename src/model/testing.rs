//! Records with fixed, boring defaults for unit tests across the crate; a test sets only the
//! fields it is about.

use super::*;

fn no_scope() -> Scope {
    Scope {
        name: String::new(),
        version: String::new(),
    }
}

/// An INFO log of service `svc` at time 1 with `body` and nothing else.
pub fn log(body: &str) -> LogRecord {
    LogRecord {
        time_ns: 1,
        observed_ns: 1,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: AttrValue::Str(body.into()),
        event_name: String::new(),
        service: "svc".into(),
        resource: vec![],
        scope: no_scope(),
        attributes: vec![],
        trace_id: None,
        span_id: None,
        link: None,
        flags: 0,
    }
}

/// A span of trace `[1; 16]` and service `svc` named `s<id>`, with span ID `[id; 8]`.
pub fn span(id: u8, parent: Option<u8>, start_ns: u64, end_ns: u64) -> Span {
    Span {
        trace_id: TraceId([1; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        trace_state: String::new(),
        name: format!("s{id}"),
        kind: 0,
        start_ns,
        end_ns,
        status_code: 0,
        status_message: String::new(),
        service: "svc".into(),
        resource: vec![],
        scope: no_scope(),
        attributes: vec![],
        events: vec![],
        links: vec![],
    }
}
