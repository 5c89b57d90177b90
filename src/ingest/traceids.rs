//! Finds trace IDs in log attributes and text with the configured patterns, compiled once.
//! A `RegexSet` first tells in one pass which patterns can match at all, so a log line without
//! any ID costs one scan, not one per pattern.

use crate::config::{ExtractConfig, IdFormat};
use crate::model::{AttrValue, LinkMethod, LogRecord, SpanId, TraceId, TraceLink};
use regex::{Regex, RegexSet};

struct Pattern {
    name: String,
    re: Regex,
    format: IdFormat,
}

pub struct Extractor {
    set: RegexSet,
    patterns: Vec<Pattern>,
}

/// An ID found in text, and which pattern found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub trace_id: TraceId,
    pub span_id: Option<SpanId>,
    pub pattern: String,
}

impl Extractor {
    pub fn new(config: &ExtractConfig) -> Result<Self, regex::Error> {
        let set = RegexSet::new(config.patterns.iter().map(|p| &p.regex))?;
        let patterns = config
            .patterns
            .iter()
            .map(|p| {
                Ok(Pattern {
                    name: p.name.clone(),
                    re: Regex::new(&p.regex)?,
                    format: p.format,
                })
            })
            .collect::<Result<_, regex::Error>>()?;
        Ok(Self { set, patterns })
    }

    /// The first valid ID in `text`, trying patterns in their configured order.
    pub fn find(&self, text: &str) -> Option<Found> {
        let candidates = self.set.matches(text);
        if !candidates.matched_any() {
            return None;
        }
        candidates.iter().find_map(|i| {
            let p = &self.patterns[i];
            p.re.captures_iter(text).find_map(|caps| {
                let trace = caps.name("trace")?.as_str();
                let trace_id = match p.format {
                    IdFormat::Decimal => TraceId::from_decimal(trace).ok()?,
                    IdFormat::Hex => match caps.name("trace2") {
                        Some(rest) => {
                            TraceId::from_hex(&format!("{trace}{}", rest.as_str())).ok()?
                        }
                        None => TraceId::from_hex(trace).ok()?,
                    },
                };
                let span_id = caps
                    .name("span")
                    .and_then(|s| SpanId::from_hex(s.as_str()).ok());
                Some(Found {
                    trace_id,
                    span_id,
                    pattern: p.name.clone(),
                })
            })
        })
    }

    /// Gives a log its trace link: its own trace-context field if it has one, else the first
    /// attribute (as `key=value`) that holds an ID, else its body text.
    pub fn link(&self, log: &mut LogRecord, structured_field: &str) {
        if log.trace_id.is_some() {
            if log.link.is_none() {
                log.link = Some(TraceLink {
                    method: LinkMethod::Structured,
                    field: Some(structured_field.to_string()),
                    pattern: None,
                });
            }
            return;
        }
        let from_attrs = log.attributes.iter().find_map(|kv| {
            let text = format!("{}={}", kv.key, kv.value.to_text());
            self.find(&text)
                .map(|f| (f, LinkMethod::Attribute, Some(kv.key.clone())))
        });
        let found = from_attrs.or_else(|| {
            let body = match &log.body {
                AttrValue::Str(s) => std::borrow::Cow::Borrowed(s.as_str()),
                other => std::borrow::Cow::Owned(other.to_text()),
            };
            self.find(&body).map(|f| (f, LinkMethod::Text, None))
        });
        if let Some((found, method, field)) = found {
            log.trace_id = Some(found.trace_id);
            log.span_id = found.span_id.or(log.span_id);
            log.link = Some(TraceLink {
                method,
                field,
                pattern: Some(found.pattern),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extractor() -> Extractor {
        Extractor::new(&ExtractConfig::default()).unwrap()
    }

    const T32: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const S16: &str = "00f067aa0ba902b7";

    fn found(text: &str) -> (String, String, Option<String>) {
        let f = extractor()
            .find(text)
            .unwrap_or_else(|| panic!("no ID in {text:?}"));
        (
            f.trace_id.to_hex(),
            f.pattern,
            f.span_id.map(|s| s.to_hex()),
        )
    }

    #[test]
    fn every_format_from_text() {
        assert_eq!(
            found(&format!("GET /cart traceparent=00-{T32}-{S16}-01 took 3ms")),
            (T32.into(), "w3c-traceparent".into(), Some(S16.into()))
        );
        assert_eq!(
            found(&format!("uber-trace-id: {}:{S16}:0:1 handled", &T32[16..])),
            (
                format!("{:0>32}", &T32[16..]),
                "jaeger-uber-trace-id".into(),
                Some(S16.into())
            )
        );
        assert_eq!(
            found("X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
            (
                "5759e988bd862e3fe1be46a994272793".into(),
                "aws-xray".into(),
                None
            )
        );
        assert_eq!(
            found(&format!("b3={T32}-{S16}-1")),
            (T32.into(), "b3-single".into(), Some(S16.into()))
        );
        assert_eq!(
            found("X-B3-TraceId: 80f198ee56343ba8 sampled"),
            (
                "000000000000000080f198ee56343ba8".into(),
                "b3-trace-id".into(),
                None
            )
        );
        assert_eq!(
            found(&format!("X-B3-TraceId={T32}")),
            (T32.into(), "b3-trace-id".into(), None)
        );
        assert_eq!(
            found("payment failed dd.trace_id=5208512171318403364 dd.span_id=1"),
            (
                format!("{:032x}", 5208512171318403364u64),
                "datadog-trace-id".into(),
                None
            )
        );
        for key in ["trace_id", "traceId", "trace.id", "TraceID"] {
            assert_eq!(
                found(&format!("oops {key}=\"{}\" retry", T32.to_uppercase())),
                (T32.into(), "trace-id-field".into(), None),
                "{key}"
            );
        }
    }

    #[test]
    fn invalid_ids_are_not_links() {
        let e = extractor();
        assert!(e.find("no ids here at all").is_none());
        assert!(e
            .find(&format!("traceparent=00-{}-{S16}-01", "0".repeat(32)))
            .is_none());
        assert!(e.find("trace_id=1234 is too short").is_none());
        assert!(e.find("dd.trace_id=0").is_none());
    }

    fn log(body: &str, attrs: Vec<(&str, AttrValue)>) -> LogRecord {
        let mut log = crate::model::testing::log(body);
        log.attributes = attrs
            .into_iter()
            .map(|(k, v)| crate::model::KeyValue {
                key: k.into(),
                value: v,
            })
            .collect();
        log
    }

    #[test]
    fn links_say_how_they_were_made() {
        let e = extractor();
        let mut structured = log("x", vec![]);
        structured.trace_id = Some(TraceId::from_hex(T32).unwrap());
        e.link(&mut structured, "traceId");
        let l = structured.link.unwrap();
        assert_eq!(
            (l.method, l.field.as_deref()),
            (LinkMethod::Structured, Some("traceId"))
        );

        let mut attr = log(
            "no id in the text",
            vec![
                ("http.status", AttrValue::Int(500)),
                ("traceparent", AttrValue::Str(format!("00-{T32}-{S16}-01"))),
            ],
        );
        e.link(&mut attr, "traceId");
        assert_eq!(attr.trace_id.unwrap().to_hex(), T32);
        assert_eq!(attr.span_id.unwrap().to_hex(), S16);
        let l = attr.link.unwrap();
        assert_eq!(l.method, LinkMethod::Attribute);
        assert_eq!(l.field.as_deref(), Some("traceparent"));
        assert_eq!(l.pattern.as_deref(), Some("w3c-traceparent"));

        let mut dd = log("x", vec![("dd.trace_id", AttrValue::Int(42))]);
        e.link(&mut dd, "traceId");
        assert_eq!(dd.trace_id.unwrap().to_hex(), format!("{:032x}", 42));
        assert_eq!(
            dd.link.unwrap().pattern.as_deref(),
            Some("datadog-trace-id")
        );

        let mut text = log(&format!("checkout failed trace_id={T32}"), vec![]);
        e.link(&mut text, "traceId");
        let l = text.link.unwrap();
        assert_eq!(
            (l.method, l.pattern.as_deref()),
            (LinkMethod::Text, Some("trace-id-field"))
        );

        let mut none = log(
            "nothing to see",
            vec![("user", AttrValue::Str("bob".into()))],
        );
        e.link(&mut none, "traceId");
        assert!(none.trace_id.is_none() && none.link.is_none());
    }
}
