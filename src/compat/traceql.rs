//! A TraceQL subset: one spanset filter, what Grafana's Tempo search builder writes.
//!
//! ```text
//! query      := '{' [ or ] '}'
//! or         := and ( '||' and )*
//! and        := atom ( '&&' atom )*
//! atom       := '(' or ')' | field op value
//! field      := span.<name> | resource.<name> | .<name>           attributes
//!             | duration | name | status | kind | statusMessage     of the span
//!             | traceDuration | rootName | rootServiceName          of its trace
//!               (also as span:duration, trace:rootName, …)
//! op         := = | != | > | >= | < | <= | =~ | !~
//! value      := "string" | number | duration (1s, 250ms) | true | false
//!             | error | ok | unset | server | client | producer | consumer | internal | unspecified
//! ```
//!
//! A trace matches when one of its spans satisfies the filter. Attribute comparisons are
//! typed, except that a string attribute holding a number compares as the number (Zipkin
//! sends every tag as a string). Several spansets (`{…} && {…}`, `>>`), pipelines (`| count()`)
//! and other forms are refused with a 400 that names them. Length and nesting are bounded
//! before parsing.

use crate::model::{AttrValue, KeyValue, Span};
use regex::Regex;

pub const MAX_QUERY_BYTES: usize = 16 * 1024;
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Span(String),
    Resource(String),
    Any(String),
    Duration,
    Name,
    Status,
    Kind,
    StatusMessage,
    TraceDuration,
    RootName,
    RootServiceName,
    /// Whether the span failed by `Span::failed` (with `Value::Bool`): not TraceQL syntax,
    /// what Jaeger's `error` tag searches.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Re,
    NotRe,
}

#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    Num(f64),
    /// Nanoseconds.
    Duration(u64),
    Bool(bool),
    /// `error`, `ok`, `unset` as OTLP status codes.
    Status(i32),
    /// `server`, `client`, … as OTLP span kinds.
    Kind(i32),
}

#[derive(Debug, Clone)]
pub enum Cond {
    Cmp {
        field: Field,
        op: Op,
        value: Value,
        regex: Option<Regex>,
    },
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

/// What the trace of a span is known for: what trace-level intrinsics read.
#[derive(Debug, Clone, Default)]
pub struct TraceFacts {
    pub duration_ns: u64,
    pub root_name: String,
    pub root_service: String,
}

/// A parsed filter; `None` matches every span (`{}`).
#[derive(Debug, Clone)]
pub struct SpanFilter(pub Option<Cond>);

/// What a search can ask the index for before any span is checked: conditions every
/// matching span must meet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pushdown {
    pub service: Option<String>,
    pub name: Option<String>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    pub status_error: bool,
    /// Attribute equalities (span or resource), as text.
    pub attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Sym(&'static str),
}

const SYMBOLS: [&str; 19] = [
    "&&", "||", "!=", "!~", "=~", ">=", "<=", ">>", "<<", "{", "}", "(", ")", "=", ">", "<", "|",
    "!", "~",
];

fn lex(q: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    let b = q.as_bytes();
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' || c == '`' {
            let mut s = String::new();
            let mut chars = q[i + 1..].char_indices();
            let mut end = None;
            while let Some((j, ch)) = chars.next() {
                if ch == c {
                    end = Some(i + 1 + j + 1);
                    break;
                }
                if ch == '\\' && c == '"' {
                    match chars.next() {
                        Some((_, n)) => s.push(n),
                        None => break,
                    }
                } else {
                    s.push(ch);
                }
            }
            i = end.ok_or("unterminated string")?;
            out.push(Tok::Str(s));
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':' || c == '-' {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || matches!(b[i], b'_' | b'.' | b':' | b'-' | b'/'))
            {
                i += 1;
            }
            out.push(Tok::Word(q[start..i].to_string()));
            continue;
        }
        match SYMBOLS.iter().find(|s| q[i..].starts_with(**s)) {
            Some(s) => {
                out.push(Tok::Sym(s));
                i += s.len();
            }
            None => {
                let ch = q[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected character {ch:?} at {i}"));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "the end of the query".into(),
            Some(Tok::Word(w)) => format!("{w:?}"),
            Some(Tok::Str(s)) => format!("string {s:?}"),
            Some(Tok::Sym(s)) => format!("{s:?}"),
        }
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut parts = vec![self.and()?];
        while self.eat("||") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Cond, String> {
        let mut parts = vec![self.atom()?];
        while self.eat("&&") {
            parts.push(self.atom()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::And(parts)
        })
    }

    fn atom(&mut self) -> Result<Cond, String> {
        if self.eat("(") {
            let c = self.or()?;
            if !self.eat(")") {
                return Err(format!("expected \")\", found {}", self.describe()));
            }
            return Ok(c);
        }
        let field = match self.peek().cloned() {
            Some(Tok::Word(w)) => {
                self.pos += 1;
                field(&w)?
            }
            _ => {
                return Err(format!(
                    "expected an attribute or intrinsic, found {}",
                    self.describe()
                ))
            }
        };
        let op = match self.peek() {
            Some(Tok::Sym("=")) => Op::Eq,
            Some(Tok::Sym("!=")) => Op::Ne,
            Some(Tok::Sym(">")) => Op::Gt,
            Some(Tok::Sym(">=")) => Op::Ge,
            Some(Tok::Sym("<")) => Op::Lt,
            Some(Tok::Sym("<=")) => Op::Le,
            Some(Tok::Sym("=~")) => Op::Re,
            Some(Tok::Sym("!~")) => Op::NotRe,
            _ => {
                return Err(format!(
                "expected a comparison (=, !=, >, >=, <, <=, =~, !~) after {field:?}, found {}; \
                     a bare attribute (existence) is not supported",
                self.describe()
            ))
            }
        };
        self.pos += 1;
        let value = match self.peek().cloned() {
            Some(Tok::Str(s)) => Value::Str(s),
            Some(Tok::Word(w)) => word_value(&w)?,
            _ => {
                return Err(format!(
                    "expected a value after the comparison, found {}",
                    self.describe()
                ))
            }
        };
        self.pos += 1;
        let regex = match op {
            Op::Re | Op::NotRe => match &value {
                Value::Str(s) => Some(
                    Regex::new(&format!("^(?:{s})$"))
                        .map_err(|e| format!("invalid regex {s:?}: {e}"))?,
                ),
                _ => return Err("=~ and !~ need a string".into()),
            },
            _ => None,
        };
        Ok(Cond::Cmp {
            field,
            op,
            value,
            regex,
        })
    }
}

fn field(w: &str) -> Result<Field, String> {
    let intrinsic = w
        .strip_prefix("span:")
        .or_else(|| w.strip_prefix("trace:"))
        .unwrap_or(w);
    Ok(match intrinsic {
        "duration" => Field::Duration,
        "name" => Field::Name,
        "status" => Field::Status,
        "kind" => Field::Kind,
        "statusMessage" => Field::StatusMessage,
        "traceDuration" => Field::TraceDuration,
        "rootName" => Field::RootName,
        "rootServiceName" => Field::RootServiceName,
        _ => {
            if let Some(k) = w.strip_prefix("span.") {
                Field::Span(k.into())
            } else if let Some(k) = w.strip_prefix("resource.") {
                Field::Resource(k.into())
            } else if let Some(k) = w.strip_prefix('.') {
                Field::Any(k.into())
            } else {
                return Err(format!(
                    "{w:?} is not an attribute or intrinsic: write span.{w}, resource.{w} or .{w}, \
                     or one of duration, name, status, kind, statusMessage, traceDuration, \
                     rootName, rootServiceName"
                ));
            }
        }
    })
}

fn word_value(w: &str) -> Result<Value, String> {
    Ok(match w {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "error" => Value::Status(2),
        "ok" => Value::Status(1),
        "unset" => Value::Status(0),
        "unspecified" => Value::Kind(0),
        "internal" => Value::Kind(1),
        "server" => Value::Kind(2),
        "client" => Value::Kind(3),
        "producer" => Value::Kind(4),
        "consumer" => Value::Kind(5),
        _ => {
            if let Ok(n) = w.parse::<f64>() {
                Value::Num(n)
            } else if let Some(ns) = crate::model::time::parse_duration(w) {
                Value::Duration(ns)
            } else {
                return Err(format!(
                    "{w:?} is not a value: quote strings, as in \"{w}\""
                ));
            }
        }
    })
}

/// Parses a TraceQL query after checking its bounds.
pub fn parse(q: &str) -> Result<SpanFilter, String> {
    super::logql::check_bounds(q, MAX_QUERY_BYTES, MAX_DEPTH)?;
    let mut p = Parser {
        toks: lex(q)?,
        pos: 0,
    };
    if !p.eat("{") {
        return Err(format!(
            "a TraceQL query starts with {{, found {}",
            p.describe()
        ));
    }
    let cond = if p.eat("}") {
        None
    } else {
        let c = p.or()?;
        if !p.eat("}") {
            return Err(format!("expected \"}}\", found {}", p.describe()));
        }
        Some(c)
    };
    match p.peek() {
        None => Ok(SpanFilter(cond)),
        Some(Tok::Sym("|")) => {
            Err("pipelines (| count(), | avg(), | select(), …) are not supported".into())
        }
        Some(Tok::Sym(s)) if ["&&", "||", ">>", "<<", ">", "<", "~"].contains(s) => Err(format!(
            "combining spansets with {s} is not supported: write one {{ … }} filter"
        )),
        _ => Err(format!("unexpected {} after the spanset", p.describe())),
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AttrValue> {
    attrs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

fn compare<T: PartialOrd>(a: T, op: Op, b: T) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Re | Op::NotRe => false,
    }
}

fn text_matches(s: &str, op: Op, value: &Value, regex: &Option<Regex>) -> bool {
    match (op, value) {
        (Op::Re, _) => regex.as_ref().is_some_and(|r| r.is_match(s)),
        (Op::NotRe, _) => !regex.as_ref().is_some_and(|r| r.is_match(s)),
        (_, Value::Str(v)) => compare(s, op, v.as_str()),
        (_, Value::Num(n)) => s.parse::<f64>().is_ok_and(|x| compare(x, op, *n)),
        (_, Value::Bool(b)) => s.parse::<bool>().is_ok_and(|x| compare(x, op, *b)),
        _ => false,
    }
}

fn value_matches(v: &AttrValue, op: Op, value: &Value, regex: &Option<Regex>) -> bool {
    match (v, value) {
        (AttrValue::Str(s), _) => text_matches(s, op, value, regex),
        (AttrValue::Int(i), Value::Num(n)) => compare(*i as f64, op, *n),
        (AttrValue::Double(d), Value::Num(n)) => compare(*d, op, *n),
        (AttrValue::Bool(b), Value::Bool(x)) => compare(*b, op, *x),
        // A tag search (`http.status_code=500`) gives every value as text.
        (other, Value::Str(_)) => text_matches(&other.to_text(), op, value, regex),
        _ => false,
    }
}

fn duration_value(v: &Value) -> Option<u64> {
    match v {
        Value::Duration(ns) => Some(*ns),
        // A bare number is nanoseconds, as in Tempo.
        Value::Num(n) if *n >= 0.0 => Some(*n as u64),
        _ => None,
    }
}

impl Cond {
    fn matches(&self, s: &Span, t: &TraceFacts) -> bool {
        match self {
            Cond::And(parts) => parts.iter().all(|c| c.matches(s, t)),
            Cond::Or(parts) => parts.iter().any(|c| c.matches(s, t)),
            Cond::Cmp {
                field,
                op,
                value,
                regex,
            } => {
                let (op, regex) = (*op, regex);
                match field {
                    Field::Span(k) => {
                        attr(&s.attributes, k).is_some_and(|v| value_matches(v, op, value, regex))
                    }
                    Field::Resource(k) => {
                        attr(&s.resource, k).is_some_and(|v| value_matches(v, op, value, regex))
                    }
                    Field::Any(k) => [&s.attributes, &s.resource]
                        .iter()
                        .any(|a| attr(a, k).is_some_and(|v| value_matches(v, op, value, regex))),
                    Field::Duration => {
                        duration_value(value).is_some_and(|d| compare(s.duration_ns(), op, d))
                    }
                    Field::TraceDuration => {
                        duration_value(value).is_some_and(|d| compare(t.duration_ns, op, d))
                    }
                    Field::Name => text_matches(&s.name, op, value, regex),
                    Field::StatusMessage => text_matches(&s.status_message, op, value, regex),
                    Field::RootName => text_matches(&t.root_name, op, value, regex),
                    Field::RootServiceName => text_matches(&t.root_service, op, value, regex),
                    Field::Status => {
                        matches!(value, Value::Status(c) if compare(s.status_code, op, *c))
                    }
                    Field::Kind => matches!(value, Value::Kind(k) if compare(s.kind, op, *k)),
                    Field::Failed => match (op, value) {
                        (Op::Eq, Value::Bool(b)) => s.failed() == *b,
                        (Op::Ne, Value::Bool(b)) => s.failed() != *b,
                        _ => false,
                    },
                }
            }
        }
    }

    fn push(&self, p: &mut Pushdown) {
        match self {
            Cond::And(parts) => parts.iter().for_each(|c| c.push(p)),
            Cond::Cmp {
                field, op, value, ..
            } => match (field, op, value) {
                (Field::Resource(k), Op::Eq, Value::Str(v)) if k == "service.name" => {
                    p.service = Some(v.clone())
                }
                (Field::Name, Op::Eq, Value::Str(v)) => p.name = Some(v.clone()),
                // The index's status field holds the failed class (a superset of status error).
                (Field::Status, Op::Eq, Value::Status(2))
                | (Field::Failed, Op::Eq, Value::Bool(true)) => p.status_error = true,
                (Field::Duration, Op::Gt | Op::Ge, v) => {
                    p.min_duration_ns = duration_value(v).max(p.min_duration_ns)
                }
                (Field::Duration, Op::Lt | Op::Le, v) => {
                    p.max_duration_ns = match (duration_value(v), p.max_duration_ns) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    }
                }
                (Field::Span(k) | Field::Resource(k) | Field::Any(k), Op::Eq, Value::Str(v)) => {
                    p.attributes.push((k.clone(), v.clone()))
                }
                _ => {}
            },
            // Either side may hold: nothing is certain.
            Cond::Or(_) => {}
        }
    }
}

impl SpanFilter {
    /// Tag equalities (`key=value`, on the span or its resource), all on one span, as the
    /// Tempo and Jaeger tag searches mean them; `service.name` is the resource's.
    pub fn tags(tags: &[(String, String)]) -> SpanFilter {
        let conds: Vec<Cond> = tags
            .iter()
            .map(|(k, v)| Cond::Cmp {
                field: if k == "service.name" {
                    Field::Resource(k.clone())
                } else {
                    Field::Any(k.clone())
                },
                op: Op::Eq,
                value: Value::Str(v.clone()),
                regex: None,
            })
            .collect();
        SpanFilter((!conds.is_empty()).then_some(Cond::And(conds)))
    }

    /// Both filters on the same span.
    pub fn and(self, other: SpanFilter) -> SpanFilter {
        SpanFilter(match (self.0, other.0) {
            (Some(a), Some(b)) => Some(Cond::And(vec![a, b])),
            (a, b) => a.or(b),
        })
    }

    /// The attribute names the filter reads, in order of appearance.
    pub fn attribute_keys(&self) -> Vec<String> {
        fn walk(c: &Cond, out: &mut Vec<String>) {
            match c {
                Cond::And(p) | Cond::Or(p) => p.iter().for_each(|c| walk(c, out)),
                Cond::Cmp {
                    field: Field::Span(k) | Field::Resource(k) | Field::Any(k),
                    ..
                } => {
                    if !out.contains(k) {
                        out.push(k.clone());
                    }
                }
                Cond::Cmp { .. } => {}
            }
        }
        let mut out = Vec::new();
        if let Some(c) = &self.0 {
            walk(c, &mut out);
        }
        out
    }

    pub fn matches(&self, s: &Span, t: &TraceFacts) -> bool {
        self.0.as_ref().is_none_or(|c| c.matches(s, t))
    }

    /// Conditions every matching span meets, for the index (the filter is still checked on
    /// every span read).
    pub fn pushdown(&self) -> Pushdown {
        let mut p = Pushdown::default();
        if let Some(c) = &self.0 {
            c.push(&mut p);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing;

    fn span() -> Span {
        let mut s = testing::span(1, None, 0, 2_000_000_000);
        s.resource = vec![KeyValue {
            key: "service.name".into(),
            value: AttrValue::Str("x".into()),
        }];
        s.attributes = vec![
            KeyValue {
                key: "http.status_code".into(),
                value: AttrValue::Int(503),
            },
            KeyValue {
                key: "zipkin.code".into(),
                value: AttrValue::Str("404".into()),
            },
        ];
        s.status_code = 2;
        s.kind = 2;
        s
    }

    #[test]
    fn the_issue_example_and_the_common_operators() {
        let t = TraceFacts {
            duration_ns: 3_000_000_000,
            root_name: "GET /".into(),
            root_service: "x".into(),
        };
        let q = parse(
            r#"{ resource.service.name = "x" && span.http.status_code >= 500 && duration > 1s }"#,
        )
        .unwrap();
        assert!(q.matches(&span(), &t));
        assert_eq!(
            q.pushdown(),
            Pushdown {
                service: Some("x".into()),
                min_duration_ns: Some(1_000_000_000),
                ..Pushdown::default()
            }
        );
        for (yes, query) in [
            (true, "{}"),
            (true, r#"{ .service.name =~ "x|y" }"#),
            (false, r#"{ .service.name !~ "x" }"#),
            (true, "{ status = error && kind = server }"),
            (false, "{ status != error }"),
            (true, r#"{ span.zipkin.code > 400 }"#),
            (true, r#"{ name = "s1" || duration < 1ms }"#),
            (
                false,
                r#"{ (name = "s1" && duration < 1ms) || span.missing = "a" }"#,
            ),
            (
                true,
                "{ traceDuration >= 3s && rootServiceName = \"x\" && span:duration <= 2s }",
            ),
            (true, r#"{ rootName =~ "GET.*" }"#),
        ] {
            assert_eq!(parse(query).unwrap().matches(&span(), &t), yes, "{query}");
        }
    }

    #[test]
    fn unsupported_forms_are_named() {
        for (q, says) in [
            (r#"{ .a = "b" } | count() > 2"#, "pipelines"),
            (r#"{ .a = "b" } && { .c = "d" }"#, "combining spansets"),
            (r#"{ .a = "b" } >> { .c = "d" }"#, "combining spansets"),
            ("{ http.status_code = 200 }", "span.http.status_code"),
            ("{ span.a }", "existence"),
            ("{ span.a = b }", "quote strings"),
            ("span.a = 1", "starts with {"),
            (r#"{ span.a =~ "(" }"#, "regex"),
            ("{ span.a = 1", "expected \"}\""),
        ] {
            let e = parse(q).unwrap_err();
            assert!(e.contains(says), "{q}: {e}");
        }
        let deep = format!("{{ {} span.a = 1 {} }}", "(".repeat(3000), ")".repeat(3000));
        assert!(parse(&deep).unwrap_err().contains("levels"));
    }
}
