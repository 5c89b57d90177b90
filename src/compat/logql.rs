//! A LogQL subset: what Grafana's Loki data source writes for logs and for their volume.
//!
//! ```text
//! log query    := selector pipeline*
//! selector     := '{' matcher (',' matcher)* '}'        matcher := label (= | != | =~ | !~) string
//! pipeline     := (|= | != | |~ | !~) string            line contains / not / regex / not regex
//!               | '|' json | '|' logfmt | '|' drop label (',' label)*
//!               | '|' filter (( 'and' | ',' ) filter)*  filter := label op (string | number | duration)
//!                                                       op := = == != =~ !~ > >= < <=
//! metric query := (count_over_time | rate | bytes_over_time | bytes_rate) '(' log query '[' duration ']' ')'
//!               | (sum | avg | min | max | count) [(by | without) '(' labels ')'] '(' metric query ')' [(by | without) …]
//! ```
//!
//! Anything else — `line_format`, `unwrap`, `or`, binary operators, `topk` — is a 400 that
//! names it. Length and nesting are bounded before parsing, so a hostile query costs nothing.

use regex::Regex;

/// The longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// The deepest nesting of brackets accepted.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    NotRe,
}

#[derive(Debug, Clone)]
pub struct LabelMatcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl LabelMatcher {
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, String> {
        let regex = match op {
            MatchOp::Re | MatchOp::NotRe => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regex for {name:?}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Self {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// A missing label matches as the empty string, as in Loki and Prometheus.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRe => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether the matcher also matches a missing label.
    fn matches_empty(&self) -> bool {
        self.matches(None)
    }
}

#[derive(Debug, Clone)]
pub enum LineFilter {
    Contains(String),
    NotContains(String),
    Regex(Regex),
    NotRegex(Regex),
}

impl LineFilter {
    pub fn matches(&self, line: &str) -> bool {
        match self {
            LineFilter::Contains(s) => line.contains(s.as_str()),
            LineFilter::NotContains(s) => !line.contains(s.as_str()),
            LineFilter::Regex(r) => r.is_match(line),
            LineFilter::NotRegex(r) => !r.is_match(line),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone)]
pub enum LabelFilter {
    /// `=`, `!=`, `=~`, `!~` against a string.
    Text(LabelMatcher),
    /// A numeric comparison; durations (`1s`, `250ms`) compare as seconds, as Loki does.
    Number { name: String, op: CmpOp, value: f64 },
}

impl LabelFilter {
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            LabelFilter::Text(m) => m.matches(get(&m.name).as_deref()),
            LabelFilter::Number { name, op, value } => {
                let Some(v) = get(name).and_then(|v| number_or_duration(&v)) else {
                    return false;
                };
                match op {
                    CmpOp::Eq => v == *value,
                    CmpOp::Ne => v != *value,
                    CmpOp::Gt => v > *value,
                    CmpOp::Ge => v >= *value,
                    CmpOp::Lt => v < *value,
                    CmpOp::Le => v <= *value,
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum Stage {
    Line(LineFilter),
    Json,
    Logfmt,
    Drop(Vec<String>),
    Labels(Vec<LabelFilter>),
}

#[derive(Debug, Clone)]
pub struct LogQuery {
    pub selector: Vec<LabelMatcher>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFn {
    CountOverTime,
    Rate,
    BytesOverTime,
    BytesRate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

#[derive(Debug, Clone)]
pub enum MetricQuery {
    Range {
        func: RangeFn,
        logs: LogQuery,
        range_ns: u64,
    },
    Aggregate {
        op: AggOp,
        grouping: Option<Grouping>,
        inner: Box<MetricQuery>,
    },
}

impl MetricQuery {
    /// The log query and range at the bottom of the expression.
    pub fn range(&self) -> (&LogQuery, u64) {
        match self {
            MetricQuery::Range { logs, range_ns, .. } => (logs, *range_ns),
            MetricQuery::Aggregate { inner, .. } => inner.range(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Query {
    Logs(LogQuery),
    Metric(MetricQuery),
}

/// A number, or a duration as seconds (`1.5s`, `250ms`, `2m`, `1h30m`).
pub fn number_or_duration(v: &str) -> Option<f64> {
    let v = v.trim();
    if let Ok(n) = v.parse::<f64>() {
        return Some(n);
    }
    crate::model::time::parse_duration(v).map(|ns| ns as f64 / 1e9)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    /// A number or a duration, kept as written.
    Num(String),
    Sym(&'static str),
}

const SYMBOLS: [&str; 23] = [
    "|=", "|~", "!=", "!~", "=~", "==", ">=", "<=", "{", "}", "(", ")", "[", "]", ",", "|", "=",
    ">", "<", "+", "-", "*", "/",
];

/// Refuses a query that is too long or nested too deep before anything parses it.
pub fn check_bounds(q: &str, max_bytes: usize, max_depth: usize) -> Result<(), String> {
    if q.len() > max_bytes {
        return Err(format!(
            "query is {} bytes, over the limit of {max_bytes}",
            q.len()
        ));
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut in_str: Option<char> = None;
    let mut escaped = false;
    for c in q.chars() {
        if let Some(quote) = in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' && quote == '"' {
                escaped = true;
            } else if c == quote {
                in_str = None;
            }
            continue;
        }
        match c {
            '"' | '`' | '\'' => in_str = Some(c),
            '(' | '{' | '[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > max_depth {
        return Err(format!(
            "query nests {deepest} levels deep, over the limit of {max_depth}"
        ));
    }
    Ok(())
}

fn lex(q: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' {
            let mut s = String::new();
            let mut chars = q[i + 1..].char_indices();
            let mut end = None;
            while let Some((j, ch)) = chars.next() {
                match ch {
                    '"' => {
                        end = Some(i + 1 + j + 1);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => s.push('\n'),
                        Some((_, 't')) => s.push('\t'),
                        Some((_, other)) => s.push(other),
                        None => break,
                    },
                    ch => s.push(ch),
                }
            }
            i = end.ok_or("unterminated string")?;
            out.push(Tok::Str(s));
            continue;
        }
        if c == '`' {
            let rest = &q[i + 1..];
            let end = rest.find('`').ok_or("unterminated raw string")?;
            out.push(Tok::Str(rest[..end].to_string()));
            i += end + 2;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Ident(q[start..i].to_string()));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Num(q[start..i].to_string()));
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

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str) -> Result<(), String> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(format!("expected {sym:?}, found {}", self.describe()))
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "the end of the query".into(),
            Some(Tok::Ident(s)) => format!("{s:?}"),
            Some(Tok::Str(s)) => format!("string {s:?}"),
            Some(Tok::Num(s)) => s.clone(),
            Some(Tok::Sym(s)) => format!("{s:?}"),
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(format!("expected a label name, found {}", self.describe()))
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(format!(
                    "expected a quoted string, found {}",
                    self.describe()
                ))
            }
        }
    }

    fn selector(&mut self) -> Result<Vec<LabelMatcher>, String> {
        self.expect("{")?;
        let mut matchers = Vec::new();
        while !self.eat("}") {
            if !matchers.is_empty() {
                self.expect(",")?;
            }
            let name = self.ident()?;
            let op = match self.next() {
                Some(Tok::Sym("=")) => MatchOp::Eq,
                Some(Tok::Sym("!=")) => MatchOp::Ne,
                Some(Tok::Sym("=~")) => MatchOp::Re,
                Some(Tok::Sym("!~")) => MatchOp::NotRe,
                _ => {
                    self.pos -= 1;
                    return Err(format!(
                        "expected =, !=, =~ or !~ after {name:?}, found {}",
                        self.describe()
                    ));
                }
            };
            let value = self.string()?;
            matchers.push(LabelMatcher::new(&name, op, &value)?);
        }
        Ok(matchers)
    }

    fn label_filter(&mut self) -> Result<LabelFilter, String> {
        let name = self.ident()?;
        let op = match self.next() {
            Some(Tok::Sym(s)) => s,
            _ => {
                self.pos -= 1;
                return Err(format!(
                    "expected a comparison after {name:?}, found {}",
                    self.describe()
                ));
            }
        };
        match self.next() {
            Some(Tok::Str(v)) => {
                let op = match op {
                    "=" | "==" => MatchOp::Eq,
                    "!=" => MatchOp::Ne,
                    "=~" => MatchOp::Re,
                    "!~" => MatchOp::NotRe,
                    other => {
                        return Err(format!(
                            "{other:?} compares numbers; {name:?} is compared with a string"
                        ))
                    }
                };
                Ok(LabelFilter::Text(LabelMatcher::new(&name, op, &v)?))
            }
            Some(Tok::Num(v)) => {
                let op = match op {
                    "=" | "==" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    ">" => CmpOp::Gt,
                    ">=" => CmpOp::Ge,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    other => return Err(format!("{other:?} needs a string, not {v}")),
                };
                let value = number_or_duration(&v)
                    .ok_or_else(|| format!("{v:?} is neither a number nor a duration"))?;
                Ok(LabelFilter::Number { name, op, value })
            }
            _ => {
                self.pos -= 1;
                Err(format!(
                    "expected a string, number or duration after {name} {op}, found {}",
                    self.describe()
                ))
            }
        }
    }

    fn log_query(&mut self) -> Result<LogQuery, String> {
        let selector = self.selector()?;
        if selector.iter().all(LabelMatcher::matches_empty) {
            return Err(
                "queries require at least one regexp or equality matcher that does not \
                 have an empty-compatible value, like {service_name=\"api\"}"
                    .into(),
            );
        }
        let mut stages = Vec::new();
        loop {
            let line = match self.peek() {
                Some(Tok::Sym("|=")) => Some("|="),
                Some(Tok::Sym("!=")) => Some("!="),
                Some(Tok::Sym("|~")) => Some("|~"),
                Some(Tok::Sym("!~")) => Some("!~"),
                _ => None,
            };
            if let Some(op) = line {
                self.pos += 1;
                let v = self.string()?;
                let re = || Regex::new(&v).map_err(|e| format!("invalid line regex: {e}"));
                stages.push(Stage::Line(match op {
                    "|=" => LineFilter::Contains(v.clone()),
                    "!=" => LineFilter::NotContains(v.clone()),
                    "|~" => LineFilter::Regex(re()?),
                    _ => LineFilter::NotRegex(re()?),
                }));
                continue;
            }
            if !self.eat("|") {
                return Ok(LogQuery { selector, stages });
            }
            match self.peek().cloned() {
                Some(Tok::Ident(s)) if s == "json" => {
                    self.pos += 1;
                    if matches!(self.peek(), Some(Tok::Ident(_))) {
                        return Err("| json with parameters is not supported; use | json".into());
                    }
                    stages.push(Stage::Json);
                }
                Some(Tok::Ident(s)) if s == "logfmt" => {
                    self.pos += 1;
                    stages.push(Stage::Logfmt);
                }
                Some(Tok::Ident(s)) if s == "drop" => {
                    self.pos += 1;
                    let mut labels = vec![self.ident()?];
                    while self.eat(",") {
                        labels.push(self.ident()?);
                    }
                    stages.push(Stage::Drop(labels));
                }
                Some(Tok::Ident(s))
                    if [
                        "line_format",
                        "label_format",
                        "unwrap",
                        "pattern",
                        "regexp",
                        "unpack",
                        "decolorize",
                        "keep",
                        "distinct",
                    ]
                    .contains(&s.as_str()) =>
                {
                    return Err(format!(
                        "| {s} is not supported; weft supports |=, !=, |~, !~, | json, | logfmt, \
                         | drop and label filters"
                    ));
                }
                Some(Tok::Ident(_)) => {
                    let mut filters = vec![self.label_filter()?];
                    loop {
                        if self.eat(",") {
                            filters.push(self.label_filter()?);
                            continue;
                        }
                        match self.peek() {
                            Some(Tok::Ident(s)) if s == "and" => {
                                self.pos += 1;
                                filters.push(self.label_filter()?);
                            }
                            Some(Tok::Ident(s)) if s == "or" => {
                                return Err("or between label filters is not supported".into())
                            }
                            _ => break,
                        }
                    }
                    stages.push(Stage::Labels(filters));
                }
                _ => {
                    return Err(format!(
                        "expected a stage after |, found {}",
                        self.describe()
                    ))
                }
            }
        }
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, String> {
        let by = match self.peek() {
            Some(Tok::Ident(s)) if s == "by" => true,
            Some(Tok::Ident(s)) if s == "without" => false,
            _ => return Ok(None),
        };
        self.pos += 1;
        self.expect("(")?;
        let mut labels = Vec::new();
        while !self.eat(")") {
            if !labels.is_empty() {
                self.expect(",")?;
            }
            labels.push(self.ident()?);
        }
        Ok(Some(if by {
            Grouping::By(labels)
        } else {
            Grouping::Without(labels)
        }))
    }

    fn metric_query(&mut self) -> Result<MetricQuery, String> {
        let name = match self.next() {
            Some(Tok::Ident(s)) => s,
            _ => {
                self.pos -= 1;
                return Err(format!(
                    "expected a stream selector or a function, found {}",
                    self.describe()
                ));
            }
        };
        let range_fn = match name.as_str() {
            "count_over_time" => Some(RangeFn::CountOverTime),
            "rate" => Some(RangeFn::Rate),
            "bytes_over_time" => Some(RangeFn::BytesOverTime),
            "bytes_rate" => Some(RangeFn::BytesRate),
            _ => None,
        };
        if let Some(func) = range_fn {
            self.expect("(")?;
            let logs = self.log_query()?;
            self.expect("[")?;
            let range = match self.next() {
                Some(Tok::Num(d)) => crate::model::time::parse_duration(&d)
                    .filter(|&ns| ns > 0)
                    .ok_or_else(|| format!("range [{d}] is not a duration like 5m"))?,
                _ => return Err("expected a range like [5m] after the log query".into()),
            };
            self.expect("]")?;
            self.expect(")")?;
            return Ok(MetricQuery::Range {
                func,
                logs,
                range_ns: range,
            });
        }
        let op = match name.as_str() {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "count" => AggOp::Count,
            other => {
                return Err(format!(
                    "function {other:?} is not supported; weft supports count_over_time, rate, \
                     bytes_over_time, bytes_rate and sum, avg, min, max, count by/without"
                ))
            }
        };
        let mut grouping = self.grouping()?;
        self.expect("(")?;
        let inner = self.metric_query()?;
        self.expect(")")?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        }
        Ok(MetricQuery::Aggregate {
            op,
            grouping,
            inner: Box::new(inner),
        })
    }
}

/// Parses a query after checking its bounds.
pub fn parse(q: &str) -> Result<Query, String> {
    check_bounds(q, MAX_QUERY_BYTES, MAX_DEPTH)?;
    let mut p = Parser {
        toks: lex(q)?,
        pos: 0,
    };
    let query = if p.peek() == Some(&Tok::Sym("{")) {
        Query::Logs(p.log_query()?)
    } else {
        Query::Metric(p.metric_query()?)
    };
    if p.pos < p.toks.len() {
        return Err(format!(
            "unexpected {} after the end of the query (binary operators are not supported)",
            p.describe()
        ));
    }
    Ok(query)
}

/// A label set as Loki's push protobuf writes it: `{a="b", c="d"}`.
pub fn parse_label_set(text: &str) -> Result<Vec<(String, String)>, String> {
    check_bounds(text, MAX_QUERY_BYTES, 1)?;
    let mut p = Parser {
        toks: lex(text)?,
        pos: 0,
    };
    let matchers = p.selector()?;
    if p.pos < p.toks.len() {
        return Err(format!("unexpected {} after the labels", p.describe()));
    }
    matchers
        .into_iter()
        .map(|m| match m.op {
            MatchOp::Eq => Ok((m.name, m.value)),
            _ => Err(format!("label {:?} must be name=\"value\"", m.name)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        let q = parse(
            r#"{service_name="api", env=~"prod|stage"} |= "error" != `debug` |~ "t[0-9]+" | json | status >= 500 and method="GET", duration > 1s | drop __error__"#,
        )
        .unwrap();
        let Query::Logs(l) = q else { panic!() };
        assert_eq!(l.selector.len(), 2);
        assert_eq!(l.stages.len(), 6);
        let Stage::Labels(f) = &l.stages[4] else {
            panic!("{:?}", l.stages[4])
        };
        assert_eq!(f.len(), 3);
        let get = |k: &str| match k {
            "status" => Some("503".to_string()),
            "method" => Some("GET".to_string()),
            "duration" => Some("1.5s".to_string()),
            _ => None,
        };
        assert!(f.iter().all(|f| f.matches(&get)));

        let q = parse(r#"sum by (level) (count_over_time({app="shop"} |= "x" [5m]))"#).unwrap();
        let Query::Metric(MetricQuery::Aggregate {
            op,
            grouping,
            inner,
        }) = q
        else {
            panic!()
        };
        assert_eq!(op, AggOp::Sum);
        assert_eq!(grouping, Some(Grouping::By(vec!["level".into()])));
        assert_eq!(inner.range().1, 300_000_000_000);
        assert!(parse(r#"sum(rate({app="a"}[1m])) without (pod)"#).is_ok());
    }

    #[test]
    fn refuses_with_a_message_naming_what() {
        for (q, says) in [
            (r#"{app="a"} | line_format "{{.x}}""#, "line_format"),
            (r#"topk(3, rate({app="a"}[1m]))"#, "topk"),
            (r#"{app=""}"#, "at least one"),
            (r#"{app="a"} | x > 1 or y < 2"#, "or"),
            (r#"rate({app="a"}[1m]) / 2"#, "binary"),
            (r#"{app="a""#, "expected"),
            (r#"{app="a"} |= "#, "quoted string"),
            ("{app=\"a\"} | json |= \"\\", "unterminated"),
        ] {
            let e = parse(q).unwrap_err();
            assert!(e.contains(says), "{q}: {e}");
        }
    }

    #[test]
    fn deep_and_long_queries_are_refused_before_parsing() {
        let deep = format!("{}{{app=\"a\"}}{}", "(".repeat(3000), ")".repeat(3000));
        assert!(parse(&deep).unwrap_err().contains("nests 3001 levels"));
        let long = format!("{{app=\"{}\"}}", "a".repeat(MAX_QUERY_BYTES));
        assert!(parse(&long).unwrap_err().contains("bytes"));
        // Brackets inside strings do not count.
        assert!(parse(&format!("{{app=\"{}\"}}", "(".repeat(100))).is_ok());
    }

    #[test]
    fn label_sets() {
        assert_eq!(
            parse_label_set(r#"{a="b", c="d\"e"}"#).unwrap(),
            vec![("a".into(), "b".into()), ("c".into(), "d\"e".into())]
        );
        assert!(parse_label_set(r#"{a!="b"}"#).is_err());
        assert!(parse_label_set(r#"{a="b"} x"#).is_err());
        assert_eq!(parse_label_set("{}").unwrap(), vec![]);
    }
}
