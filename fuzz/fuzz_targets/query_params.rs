//! Query parameters of every kind — log search, tantivy query text, metric selectors,
//! timeline cursors — and log template extraction: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft::index::{parse_text_query, Fields};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = weft::api::query::parse_log_params(&text);
    let _ = parse_text_query(&Fields::new(), &text);
    let _ = weft::correlate::series::parse_selector(&text);
    let _ = weft::correlate::timeline::Key::parse(&text);
    let _ = weft::correlate::templates::template(&text);
});
