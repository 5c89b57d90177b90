//! PromQL (through its bounds, the crate's parser and weft's checks), LogQL, TraceQL and Loki
//! label sets: errors, never panics or overflows the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = weft::compat::promql::parse(&text);
    let _ = weft::compat::logql::parse(&text);
    let _ = weft::compat::logql::parse_label_set(&text);
    let _ = weft::compat::traceql::parse(&text);
    let _ = weft::model::time::parse_duration(&text);
});
