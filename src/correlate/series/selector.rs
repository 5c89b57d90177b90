//! Choosing series: selectors as Prometheus writes them (`name{label="v",other=~"re"}`),
//! and the labels a stored point has.

use super::{Labels, QUANTILE_LABEL, SERVICE_LABEL};
use crate::model::MetricPoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    NotRe,
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex::Regex>,
}

impl Matcher {
    /// As in Prometheus: a missing label matches as the empty string; regexes are anchored.
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.label).map_or("", String::as_str);
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRe => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Selector {
    pub name: String,
    pub matchers: Vec<Matcher>,
}

impl Selector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    /// What the index can filter by before any point is read: `=` matchers on the service
    /// and on attributes (a matcher for an empty value also matches a missing label, so it
    /// cannot be pushed down).
    pub fn pushdown(&self) -> crate::index::Filter {
        let mut f = crate::index::Filter::default();
        for m in self
            .matchers
            .iter()
            .filter(|m| m.op == MatchOp::Eq && !m.value.is_empty())
        {
            if m.label == SERVICE_LABEL {
                f.services = vec![m.value.clone()];
            } else if m.label != QUANTILE_LABEL {
                f.attrs.push((m.label.clone(), m.value.clone()));
            }
        }
        f
    }

    /// The selector written back, for messages and links.
    pub fn to_text(&self) -> String {
        if self.matchers.is_empty() {
            return self.name.clone();
        }
        let inner: Vec<String> = self
            .matchers
            .iter()
            .map(|m| {
                let op = match m.op {
                    MatchOp::Eq => "=",
                    MatchOp::Ne => "!=",
                    MatchOp::Re => "=~",
                    MatchOp::NotRe => "!~",
                };
                format!("{}{op}{:?}", m.label, m.value)
            })
            .collect();
        format!("{}{{{}}}", self.name, inner.join(","))
    }

    /// A selector for exactly one series: its name and every label (but `quantile`, which
    /// evaluation adds and stored points do not have).
    pub fn exact(name: &str, labels: &Labels) -> Selector {
        Selector {
            name: name.to_string(),
            matchers: labels
                .iter()
                .filter(|(k, _)| k.as_str() != QUANTILE_LABEL)
                .map(|(k, v)| Matcher {
                    label: k.clone(),
                    op: MatchOp::Eq,
                    value: v.clone(),
                    regex: None,
                })
                .collect(),
        }
    }
}

/// The compiled size a user's label regex may take (the regex crate's default is 10 MiB).
pub const USER_REGEX_BYTES: usize = 256 * 1024;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '/')
}

/// Parses `name`, `name{}` or `name{k="v", k2!="v", k3=~"re", k4!~"re"}`.
pub fn parse_selector(text: &str) -> Result<Selector, String> {
    crate::model::query_text::check("query", text).map_err(|e| e.to_string())?;
    let text = text.trim();
    let name_end = text.find(|c: char| !is_name_char(c)).unwrap_or(text.len());
    let name = &text[..name_end];
    if name.is_empty() {
        return Err(format!("query: {text:?} does not start with a metric name"));
    }
    let rest = text[name_end..].trim();
    let mut matchers = Vec::new();
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| format!("query: expected {{label=\"value\", …}} after {name:?}"))?;
        let mut s = inner.trim();
        while !s.is_empty() {
            let label_end = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
            let label = &s[..label_end];
            if label.is_empty() {
                return Err(format!("query: expected a label name at {s:?}"));
            }
            s = s[label_end..].trim_start();
            let (op, len) = if s.starts_with("=~") {
                (MatchOp::Re, 2)
            } else if s.starts_with("!~") {
                (MatchOp::NotRe, 2)
            } else if s.starts_with("!=") {
                (MatchOp::Ne, 2)
            } else if s.starts_with('=') {
                (MatchOp::Eq, 1)
            } else {
                return Err(format!(
                    "query: expected =, !=, =~ or !~ after label {label:?}"
                ));
            };
            s = s[len..].trim_start();
            let (value, after) = quoted(s)
                .ok_or_else(|| format!("query: the value of {label:?} must be in double quotes"))?;
            let regex = match op {
                MatchOp::Re | MatchOp::NotRe => Some(
                    regex::RegexBuilder::new(&format!("^(?:{value})$"))
                        // A user's regex compiles into at most this much memory.
                        .size_limit(USER_REGEX_BYTES)
                        .build()
                        .map_err(|e| format!("query: regex for {label:?}: {e}"))?,
                ),
                _ => None,
            };
            matchers.push(Matcher {
                label: label.to_string(),
                op,
                value,
                regex,
            });
            s = after.trim_start();
            if let Some(more) = s.strip_prefix(',') {
                s = more.trim_start();
            } else if !s.is_empty() {
                return Err(format!("query: expected , or }} at {s:?}"));
            }
        }
    }
    Ok(Selector {
        name: name.to_string(),
        matchers,
    })
}

/// A double-quoted string with `\"` and `\\` escapes, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

/// A point's labels: its attributes as text, and its service.
pub fn labels_of(m: &MetricPoint) -> Labels {
    let mut labels: Labels = m
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.to_text()))
        .collect();
    labels.insert(SERVICE_LABEL.to_string(), m.service.clone());
    labels
}
