//! What a compatibility request will cost in memory once decoded and converted, known before
//! that work is done, so the in-flight budget is charged for it first — as `ingest::cost`
//! does for OTLP, with the same protobuf walker over these protocols' schemas.

use super::{loki_push, remote_write as rw, zipkin};
use crate::ingest::cost::{Field, Schema};
use crate::model::{KeyValue, Record};
use std::mem::size_of;

/// Prometheus remote write's messages.
#[derive(Debug, Clone, Copy)]
pub enum RemoteWrite {
    Request,
    Series,
    Label,
    Sample,
    Exemplar,
    Histogram,
    Span,
    Metadata,
}

impl Schema for RemoteWrite {
    fn size(self) -> usize {
        use RemoteWrite::*;
        match self {
            Request => size_of::<rw::WriteRequest>(),
            Series => size_of::<rw::TimeSeries>(),
            Label => size_of::<rw::Label>(),
            Sample => size_of::<rw::Sample>(),
            Exemplar => size_of::<rw::PromExemplar>(),
            Histogram => size_of::<rw::Histogram>(),
            Span => size_of::<rw::BucketSpan>(),
            Metadata => size_of::<rw::MetricMetadata>(),
        }
    }

    fn field(self, n: u64) -> Field<Self> {
        use RemoteWrite::*;
        match (self, n) {
            (Request, 1) => Field::Message(Series),
            (Request, 3) => Field::Message(Metadata),
            (Series, 1) | (Exemplar, 1) => Field::Message(Label),
            (Series, 2) => Field::Message(Sample),
            (Series, 3) => Field::Message(Exemplar),
            (Series, 4) => Field::Message(Histogram),
            (Histogram, 8) | (Histogram, 11) => Field::Message(Span),
            (Histogram, 9) | (Histogram, 12) => Field::Varints,
            _ => Field::Bytes,
        }
    }
}

/// Loki's `PushRequest`.
#[derive(Debug, Clone, Copy)]
pub enum LokiPush {
    Request,
    Stream,
    Entry,
    Timestamp,
    LabelPair,
}

impl Schema for LokiPush {
    fn size(self) -> usize {
        use LokiPush::*;
        match self {
            Request => size_of::<loki_push::PushRequest>(),
            Stream => size_of::<loki_push::StreamAdapter>(),
            Entry => size_of::<loki_push::EntryAdapter>(),
            Timestamp => size_of::<loki_push::ProtoTimestamp>(),
            LabelPair => size_of::<loki_push::LabelPairAdapter>(),
        }
    }

    fn field(self, n: u64) -> Field<Self> {
        use LokiPush::*;
        match (self, n) {
            (Request, 1) => Field::Message(Stream),
            (Stream, 2) => Field::Message(Entry),
            (Entry, 1) => Field::Message(Timestamp),
            (Entry, 3) => Field::Message(LabelPair),
            _ => Field::Bytes,
        }
    }
}

/// Zipkin's `ListOfSpans`.
#[derive(Debug, Clone, Copy)]
pub enum Zipkin {
    List,
    Span,
    Endpoint,
    Annotation,
    /// A `tags` map entry: a key and a value in a hash map.
    Tag,
}

impl Schema for Zipkin {
    fn size(self) -> usize {
        use Zipkin::*;
        match self {
            List => size_of::<zipkin::ListOfSpans>(),
            // Each protobuf span also becomes a JSON-shaped span before conversion.
            Span => size_of::<zipkin::ProtoSpan>() + size_of::<zipkin::JsonSpan>(),
            Endpoint => 2 * size_of::<zipkin::ProtoEndpoint>(),
            Annotation => 2 * size_of::<zipkin::ProtoAnnotation>(),
            Tag => 4 * size_of::<String>(),
        }
    }

    fn field(self, n: u64) -> Field<Self> {
        use Zipkin::*;
        match (self, n) {
            (List, 1) => Field::Message(Span),
            (Span, 8) | (Span, 9) => Field::Message(Endpoint),
            (Span, 10) => Field::Message(Annotation),
            (Span, 11) => Field::Message(Tag),
            _ => Field::Bytes,
        }
    }
}

/// Heap bytes of `n` attributes holding `text` bytes of keys and values once converted.
fn attributes(n: usize, text: usize) -> usize {
    n * size_of::<KeyValue>() + text
}

/// What converting a decoded remote-write request adds: per stored point its `Record` and
/// its copy of the series' labels as attributes, twice (the records and their WAL encoding).
pub fn remote_write_conversion(req: &rw::WriteRequest) -> usize {
    req.timeseries
        .iter()
        .map(|ts| {
            let text: usize = ts.labels.iter().map(|l| l.name.len() + l.value.len()).sum();
            let points =
                ts.samples.len() + ts.histograms.len() + usize::from(!ts.exemplars.is_empty());
            points.saturating_mul(size_of::<Record>() + 2 * attributes(ts.labels.len(), text))
        })
        .fold(0, usize::saturating_add)
}

/// What converting Loki entries adds: per entry its `Record`, its line and metadata, and its
/// stream's labels as resource, twice.
pub fn loki_conversion(streams: &[loki_push::Stream]) -> usize {
    streams
        .iter()
        .map(|(labels, entries)| {
            let labels = labels.as_ref().map_or(0, |l| {
                attributes(l.len(), l.iter().map(|(k, v)| k.len() + v.len()).sum())
            });
            entries
                .iter()
                .map(|e| {
                    let meta: usize = e.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
                    size_of::<Record>()
                        + 2 * (labels + attributes(e.metadata.len(), meta) + e.line.len())
                })
                .fold(0, usize::saturating_add)
        })
        .fold(0, usize::saturating_add)
}

/// What converting Zipkin spans adds: per span its `Record` and its tags, twice.
pub fn zipkin_conversion(spans: &[zipkin::JsonSpan]) -> usize {
    spans
        .iter()
        .map(|s| {
            let text: usize = s.tags.iter().map(|(k, v)| k.len() + v.len()).sum();
            size_of::<Record>() + 2 * attributes(s.tags.len() + 4, text + s.annotations.len() * 64)
        })
        .fold(0, usize::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::cost::decoded_size;

    #[test]
    fn empty_messages_are_charged_what_they_become() {
        // 10 000 empty series: 2 bytes each on the wire, a whole TimeSeries each decoded.
        let body: Vec<u8> = std::iter::repeat_n([0x0a, 0x00], 10_000)
            .flatten()
            .collect();
        let cost = decoded_size(RemoteWrite::Request, &body).unwrap();
        assert!(cost >= 10_000 * size_of::<rw::TimeSeries>(), "{cost}");
        assert!(decoded_size(LokiPush::Request, b"\x0a\xff").is_err());
        let list = zipkin::ListOfSpans {
            spans: vec![zipkin::ProtoSpan::default(); 3],
        };
        let body = prost::Message::encode_to_vec(&list);
        assert!(decoded_size(Zipkin::List, &body).unwrap() >= 3 * size_of::<zipkin::ProtoSpan>());
    }
}
