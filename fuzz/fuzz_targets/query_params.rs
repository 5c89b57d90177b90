//! Log search parameters and the tantivy query text: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft::index::{parse_text_query, Fields};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = weft::api::query::parse_log_params(&text);
    let _ = parse_text_query(&Fields::new(), &text);
});
