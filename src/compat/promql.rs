//! A PromQL subset, parsed by the `promql-parser` crate and evaluated over Prometheus series
//! (`prom_series`): selectors (with `offset`), `rate`, `increase`, `sum/avg/min/max/count_over_time`,
//! `histogram_quantile`, `vector`, `time`, `sum/avg/min/max/count` by or without labels, and
//! arithmetic and comparisons between series and scalars (one-to-one matching, `on`,
//! `ignoring`, `bool`). Anything else is refused with a message that names it.
//!
//! Bounds, all checked before the work they bound: the query's length, nesting and operator
//! count (before parsing: a 3000-deep `(((` costs nothing), the steps of a range query, the
//! points read from the index, and series × steps evaluated.

use super::prom_series::{PromLabels, PromSeries, NAME};
use crate::correlate::correlator::CorrelateError;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{
    self, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};
use std::collections::{BTreeMap, HashMap};

/// The longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// The deepest nesting of brackets accepted.
pub const MAX_DEPTH: usize = 64;
/// The most binary operators accepted (each adds a level to the parsed tree).
pub const MAX_OPERATORS: usize = 256;
/// The most steps a range query may have, as Prometheus bounds its resolution.
pub const MAX_STEPS: i64 = 11_000;
/// The most series × steps one query may evaluate.
pub const MAX_SERIES_STEPS: usize = 2_000_000;
/// How far back an instant selector looks for a sample, as Prometheus' default.
pub const LOOKBACK_MS: i64 = 300_000;

const FUNCTIONS: &str = "rate, increase, sum_over_time, avg_over_time, min_over_time, \
    max_over_time, count_over_time, histogram_quantile, vector, time";

#[derive(Debug)]
pub enum QueryError {
    /// The query is malformed or uses what is not supported (400 `bad_data`).
    Bad(String),
    /// The query is over a cost bound (422 `execution`), naming it.
    Limit(String),
    /// The index failed.
    Index(crate::index::IndexError),
}

impl From<crate::api::params::ParamError> for QueryError {
    fn from(e: crate::api::params::ParamError) -> QueryError {
        QueryError::Bad(e.message)
    }
}

impl From<CorrelateError> for QueryError {
    fn from(e: CorrelateError) -> Self {
        match e {
            // The reads PromQL makes have no subject to miss.
            CorrelateError::NotFound(m) => QueryError::Bad(m),
            CorrelateError::Index(e) => e.into(),
        }
    }
}

impl From<crate::index::IndexError> for QueryError {
    fn from(e: crate::index::IndexError) -> Self {
        match e {
            crate::index::IndexError::TooManyPoints { limit } => QueryError::Limit(format!(
                "the query would read more than {limit} points; narrow the time range or the selectors"
            )),
            crate::index::IndexError::Query(m) => QueryError::Bad(m),
            other => QueryError::Index(other),
        }
    }
}

fn bad<T>(m: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError::Bad(m.into()))
}

/// The time points of an evaluation: one for an instant query.
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
}

impl Steps {
    pub fn instant(t_ms: i64) -> Steps {
        Steps {
            start_ms: t_ms,
            end_ms: t_ms,
            step_ms: 1,
        }
    }

    pub fn count(&self) -> i64 {
        (self.end_ms - self.start_ms) / self.step_ms.max(1) + 1
    }

    fn times(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.count()).map(|i| self.start_ms + i * self.step_ms)
    }
}

/// What an evaluation returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// One value per step.
    Scalar(Vec<(i64, f64)>),
    /// Series with a value at the steps they have one.
    Vector(Vec<(PromLabels, Vec<(i64, f64)>)>),
    /// The raw samples of a range selector (instant queries only).
    Matrix(Vec<PromSeries>),
}

/// Checks length, nesting and operators, then parses.
pub fn parse(q: &str) -> Result<Expr, QueryError> {
    super::logql::check_bounds(q, MAX_QUERY_BYTES, MAX_DEPTH).map_err(QueryError::Bad)?;
    let operators = count_operators(q);
    if operators > MAX_OPERATORS {
        return bad(format!(
            "query has {operators} operators, over the limit of {MAX_OPERATORS}"
        ));
    }
    let expr = parser::parse(q).map_err(|e| QueryError::Bad(format!("parse error: {e}")))?;
    check_supported(&expr)?;
    Ok(expr)
}

/// Operators outside strings and label braces: an upper bound of the binary operators.
fn count_operators(q: &str) -> usize {
    let mut n = 0;
    let (mut in_str, mut braces) = (None, 0usize);
    let mut prev = ' ';
    for c in q.chars() {
        if let Some(quote) = in_str {
            if c == quote && prev != '\\' {
                in_str = None;
            }
        } else {
            match c {
                '"' | '\'' | '`' => in_str = Some(c),
                '{' => braces += 1,
                '}' => braces = braces.saturating_sub(1),
                '+' | '-' | '*' | '/' | '%' | '^' | '<' | '>' | '=' | '!' if braces == 0 => n += 1,
                _ => {}
            }
        }
        prev = c;
    }
    n
}

/// Walks the tree once, refusing what the evaluator does not do, by name.
fn check_supported(e: &Expr) -> Result<(), QueryError> {
    match e {
        Expr::NumberLiteral(_) => Ok(()),
        Expr::StringLiteral(_) => bad("string literals are not supported"),
        Expr::Paren(p) => check_supported(&p.expr),
        Expr::Unary(u) => check_supported(&u.expr),
        Expr::VectorSelector(v) => check_selector(v),
        Expr::MatrixSelector(m) => check_selector(&m.vs),
        Expr::Subquery(_) => bad("subqueries are not supported"),
        Expr::Extension(_) => bad("extension expressions are not supported"),
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if !["sum", "avg", "min", "max", "count"].contains(&op.as_str()) {
                return bad(format!(
                    "aggregation {op:?} is not supported; weft supports sum, avg, min, max and count"
                ));
            }
            check_supported(&a.expr)
        }
        Expr::Binary(b) => {
            let op = b.op.to_string();
            if ![
                "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=",
            ]
            .contains(&op.as_str())
            {
                return bad(format!(
                    "operator {op:?} is not supported; weft supports + - * / % ^ and comparisons"
                ));
            }
            if let Some(m) = &b.modifier {
                if !matches!(m.card, VectorMatchCardinality::OneToOne) {
                    return bad("group_left and group_right are not supported");
                }
            }
            check_supported(&b.lhs)?;
            check_supported(&b.rhs)
        }
        Expr::Call(c) => {
            let name = c.func.name;
            if !FUNCTIONS.split(", ").any(|f| f == name) {
                return bad(format!(
                    "function {name:?} is not supported; weft supports {FUNCTIONS}"
                ));
            }
            c.args.args.iter().try_for_each(|a| check_supported(a))
        }
    }
}

fn check_selector(v: &VectorSelector) -> Result<(), QueryError> {
    if v.at.is_some() {
        return bad("the @ modifier is not supported");
    }
    if !v.matchers.or_matchers.is_empty() {
        return bad("\"or\" inside a selector is not supported");
    }
    if v.name.is_none() && v.matchers.matchers.iter().all(|m| m.is_match("")) {
        return bad("vector selector must contain at least one non-empty matcher");
    }
    Ok(())
}

fn offset_ms(v: &VectorSelector) -> i64 {
    match &v.offset {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

/// A selector to fetch: its name matchers and how far back of the first step it reads.
pub struct Wanted<'a> {
    pub selector: &'a VectorSelector,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Wanted<'_> {
    /// Every matcher, the metric name as a `__name__` matcher.
    pub fn matchers(&self) -> Vec<Matcher> {
        let mut m = self.selector.matchers.matchers.clone();
        if let Some(name) = &self.selector.name {
            m.push(Matcher::new(MatchOp::Equal, NAME, name));
        }
        m
    }
}

/// The selectors the expression reads, with the time each must be read over.
pub fn selectors<'a>(e: &'a Expr, steps: &Steps) -> Vec<Wanted<'a>> {
    let mut out = Vec::new();
    collect(e, steps, &mut out);
    out
}

fn collect<'a>(e: &'a Expr, steps: &Steps, out: &mut Vec<Wanted<'a>>) {
    let mut add = |v: &'a VectorSelector, back: i64| {
        let off = offset_ms(v);
        out.push(Wanted {
            selector: v,
            from_ms: steps.start_ms - off - back,
            to_ms: steps.end_ms - off,
        });
    };
    match e {
        Expr::VectorSelector(v) => add(v, LOOKBACK_MS),
        Expr::MatrixSelector(m) => add(&m.vs, m.range.as_millis() as i64),
        Expr::Paren(p) => collect(&p.expr, steps, out),
        Expr::Unary(u) => collect(&u.expr, steps, out),
        Expr::Aggregate(a) => collect(&a.expr, steps, out),
        Expr::Binary(b) => {
            collect(&b.lhs, steps, out);
            collect(&b.rhs, steps, out);
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect(a, steps, out)),
        _ => {}
    }
}

/// Whether a series' labels satisfy every matcher.
pub fn matches(matchers: &[Matcher], labels: &PromLabels) -> bool {
    matchers
        .iter()
        .all(|m| m.is_match(labels.get(&m.name).map_or("", String::as_str)))
}

/// The series each selector read, by the selector's address in the tree.
pub type Fetched = HashMap<usize, Vec<PromSeries>>;

fn key(v: &VectorSelector) -> usize {
    v as *const VectorSelector as usize
}

pub fn fetched_key(w: &Wanted) -> usize {
    key(w.selector)
}

enum Val {
    Scalar(f64),
    Vector(Vec<(PromLabels, f64)>),
    Range(Vec<PromSeries>),
}

struct Ctx<'a> {
    fetched: &'a Fetched,
    range_query: bool,
}

/// Evaluates at every step. `fetched` holds what each selector read (`selectors`); its size
/// is checked against `MAX_SERIES_STEPS` first.
pub fn evaluate(e: &Expr, steps: &Steps, fetched: &Fetched) -> Result<Output, QueryError> {
    if steps.count() > MAX_STEPS {
        return Err(QueryError::Limit(format!(
            "the query has {} steps, over the limit of {MAX_STEPS}; use a larger step",
            steps.count()
        )));
    }
    let series: usize = fetched.values().map(Vec::len).sum();
    let cost = series.saturating_mul(steps.count() as usize);
    if cost > MAX_SERIES_STEPS {
        return Err(QueryError::Limit(format!(
            "the query selects {series} series over {} steps, over the limit of {MAX_SERIES_STEPS} \
             series × steps; narrow the selectors or the time range, or use a larger step",
            steps.count()
        )));
    }
    let ctx = Ctx {
        fetched,
        range_query: steps.count() > 1,
    };
    let mut scalar: Vec<(i64, f64)> = Vec::new();
    let mut vector: BTreeMap<PromLabels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut is_scalar = false;
    for t in steps.times() {
        match eval(e, t, &ctx)? {
            Val::Scalar(v) => {
                is_scalar = true;
                scalar.push((t, v));
            }
            Val::Vector(v) => {
                for (labels, value) in v {
                    vector.entry(labels).or_default().push((t, value));
                }
            }
            Val::Range(r) => {
                if ctx.range_query {
                    return bad("a range vector cannot be the result of a range query; use it in a function such as rate()");
                }
                return Ok(Output::Matrix(r));
            }
        }
    }
    Ok(if is_scalar {
        Output::Scalar(scalar)
    } else {
        Output::Vector(vector.into_iter().collect())
    })
}

/// The newest sample in `(from, to]`.
fn last_in(samples: &[(i64, f64)], from: i64, to: i64) -> Option<(i64, f64)> {
    let end = samples.partition_point(|(t, _)| *t <= to);
    samples[..end].last().copied().filter(|(t, _)| *t > from)
}

fn window(samples: &[(i64, f64)], from: i64, to: i64) -> &[(i64, f64)] {
    let a = samples.partition_point(|(t, _)| *t <= from);
    let b = samples.partition_point(|(t, _)| *t <= to);
    &samples[a..b.max(a)]
}

fn drop_name(mut l: PromLabels) -> PromLabels {
    l.remove(NAME);
    l
}

fn eval(e: &Expr, t: i64, ctx: &Ctx) -> Result<Val, QueryError> {
    Ok(match e {
        Expr::NumberLiteral(n) => Val::Scalar(n.val),
        Expr::Paren(p) => eval(&p.expr, t, ctx)?,
        Expr::Unary(u) => match eval(&u.expr, t, ctx)? {
            Val::Scalar(v) => Val::Scalar(-v),
            Val::Vector(v) => Val::Vector(v.into_iter().map(|(l, x)| (drop_name(l), -x)).collect()),
            Val::Range(_) => return bad("unary minus needs an instant vector or a scalar"),
        },
        Expr::VectorSelector(v) => {
            let at = t - offset_ms(v);
            let series = ctx.fetched.get(&key(v)).map_or(&[][..], Vec::as_slice);
            Val::Vector(
                series
                    .iter()
                    .filter_map(|s| {
                        last_in(&s.samples, at - LOOKBACK_MS, at)
                            .map(|(_, x)| (s.labels.clone(), x))
                    })
                    .collect(),
            )
        }
        Expr::MatrixSelector(m) => {
            let at = t - offset_ms(&m.vs);
            let range = m.range.as_millis() as i64;
            let series = ctx.fetched.get(&key(&m.vs)).map_or(&[][..], Vec::as_slice);
            Val::Range(
                series
                    .iter()
                    .map(|s| PromSeries {
                        labels: s.labels.clone(),
                        samples: window(&s.samples, at - range, at).to_vec(),
                    })
                    .filter(|s| !s.samples.is_empty())
                    .collect(),
            )
        }
        Expr::Call(c) => call(c.func.name, &c.args.args, t, ctx)?,
        Expr::Aggregate(a) => {
            let Val::Vector(v) = eval(&a.expr, t, ctx)? else {
                return bad(format!("{} needs an instant vector", a.op));
            };
            Val::Vector(aggregate(&a.op.to_string(), a.modifier.as_ref(), v))
        }
        Expr::Binary(b) => {
            let op = b.op.to_string();
            let lhs = eval(&b.lhs, t, ctx)?;
            let rhs = eval(&b.rhs, t, ctx)?;
            let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
            binary(
                &op,
                lhs,
                rhs,
                return_bool,
                b.modifier.as_ref().and_then(|m| m.matching.as_ref()),
            )?
        }
        _ => return bad("this expression is not supported"),
    })
}

fn call(name: &str, args: &[Box<Expr>], t: i64, ctx: &Ctx) -> Result<Val, QueryError> {
    match name {
        "time" => Ok(Val::Scalar(t as f64 / 1000.0)),
        "vector" => match eval(&args[0], t, ctx)? {
            Val::Scalar(v) => Ok(Val::Vector(vec![(PromLabels::new(), v)])),
            _ => bad("vector() needs a scalar"),
        },
        "histogram_quantile" => {
            let Val::Scalar(q) = eval(&args[0], t, ctx)? else {
                return bad("histogram_quantile needs a scalar quantile first");
            };
            let Val::Vector(v) = eval(&args[1], t, ctx)? else {
                return bad("histogram_quantile needs an instant vector of buckets");
            };
            Ok(Val::Vector(histogram_quantile(q, v)))
        }
        _ => {
            let range_ms = match args[0].as_ref() {
                Expr::MatrixSelector(m) => m.range.as_millis() as i64,
                _ => return bad(format!("{name} needs a range vector like x[5m]")),
            };
            let Val::Range(series) = eval(&args[0], t, ctx)? else {
                return bad(format!("{name} needs a range vector"));
            };
            Ok(Val::Vector(
                series
                    .into_iter()
                    .filter_map(|s| {
                        let v = over_time(name, &s.samples, t - range_ms, t)?;
                        Some((drop_name(s.labels), v))
                    })
                    .collect(),
            ))
        }
    }
}

fn over_time(name: &str, s: &[(i64, f64)], from: i64, to: i64) -> Option<f64> {
    let values = s.iter().map(|(_, v)| *v);
    match name {
        "rate" => extrapolated_rate(s, from, to, true),
        "increase" => extrapolated_rate(s, from, to, false),
        "sum_over_time" => Some(values.sum()),
        "avg_over_time" => Some(values.sum::<f64>() / s.len() as f64),
        "min_over_time" => values.reduce(f64::min),
        "max_over_time" => values.reduce(f64::max),
        "count_over_time" => Some(s.len() as f64),
        _ => None,
    }
}

/// Prometheus' `rate`/`increase`: the counter's growth over the samples in `(from, to]`,
/// counter resets added back, extrapolated to the window's edges unless a sample is far
/// from them, and not below zero at the start.
fn extrapolated_rate(s: &[(i64, f64)], from: i64, to: i64, per_second: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (first, last) = (s[0], s[s.len() - 1]);
    let mut growth = last.1 - first.1;
    for w in s.windows(2) {
        if w[1].1 < w[0].1 {
            growth += w[0].1;
        }
    }
    let secs = |ms: i64| ms as f64 / 1000.0;
    let sampled = secs(last.0 - first.0);
    if sampled <= 0.0 {
        return None;
    }
    let mut to_start = secs(first.0 - from);
    let to_end = secs(to - last.0);
    let average = sampled / (s.len() - 1) as f64;
    if growth > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / growth);
        to_start = to_start.min(to_zero);
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    let result = growth * (interval / sampled);
    Some(if per_second {
        result / secs(to - from)
    } else {
        result
    })
}

fn group_key(labels: &PromLabels, modifier: Option<&LabelModifier>) -> PromLabels {
    match modifier {
        None => PromLabels::new(),
        Some(LabelModifier::Include(keep)) => labels
            .iter()
            .filter(|(k, _)| keep.labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(drop)) => labels
            .iter()
            .filter(|(k, _)| k.as_str() != NAME && !drop.labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn aggregate(
    op: &str,
    modifier: Option<&LabelModifier>,
    v: Vec<(PromLabels, f64)>,
) -> Vec<(PromLabels, f64)> {
    let mut groups: BTreeMap<PromLabels, Vec<f64>> = BTreeMap::new();
    for (l, x) in v {
        groups.entry(group_key(&l, modifier)).or_default().push(x);
    }
    groups
        .into_iter()
        .map(|(l, xs)| (l, reduce(op, &xs)))
        .collect()
}

/// One group's values aggregated by `sum`, `avg`, `min`, `max` or `count` (PromQL's and
/// LogQL's aggregations alike).
pub fn reduce(op: &str, xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    match op {
        "sum" => xs.iter().sum(),
        "avg" => xs.iter().sum::<f64>() / n,
        "min" => xs.iter().copied().fold(f64::INFINITY, f64::min),
        "max" => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        _ => n,
    }
}

/// Prometheus' `histogram_quantile` over `le` buckets, per series without `le`.
fn histogram_quantile(q: f64, v: Vec<(PromLabels, f64)>) -> Vec<(PromLabels, f64)> {
    let mut groups: BTreeMap<PromLabels, Vec<(f64, f64)>> = BTreeMap::new();
    for (mut l, count) in v {
        let Some(le) = l.remove("le").and_then(|b| match b.as_str() {
            "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
            other => other.parse::<f64>().ok(),
        }) else {
            continue;
        };
        groups.entry(drop_name(l)).or_default().push((le, count));
    }
    groups
        .into_iter()
        .map(|(l, mut buckets)| (l, bucket_quantile(q, &mut buckets)))
        .collect()
}

fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.len() < 2 || buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
        return f64::NAN;
    }
    // Counts must not fall with the bound (they can, by rounding or a scrape mid-update).
    let mut max = f64::NEG_INFINITY;
    for b in buckets.iter_mut() {
        max = max.max(b.1);
        b.1 = max;
    }
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * total;
    let i = buckets.partition_point(|b| b.1 < rank);
    if i == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if i == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[i].0, buckets[i].1);
    if i > 0 {
        start = buckets[i - 1].0;
        count -= buckets[i - 1].1;
        rank -= buckets[i - 1].1;
    }
    start + (end - start) * (rank / count)
}

fn apply(op: &str, a: f64, b: f64) -> Option<f64> {
    Some(match op {
        "+" => a + b,
        "-" => a - b,
        "*" => a * b,
        "/" => a / b,
        "%" => a % b,
        "^" => a.powf(b),
        "==" => return Some(if a == b { 1.0 } else { 0.0 }),
        "!=" => return Some(if a != b { 1.0 } else { 0.0 }),
        ">" => return Some(if a > b { 1.0 } else { 0.0 }),
        "<" => return Some(if a < b { 1.0 } else { 0.0 }),
        ">=" => return Some(if a >= b { 1.0 } else { 0.0 }),
        "<=" => return Some(if a <= b { 1.0 } else { 0.0 }),
        _ => return None,
    })
}

fn is_comparison(op: &str) -> bool {
    ["==", "!=", ">", "<", ">=", "<="].contains(&op)
}

fn binary(
    op: &str,
    lhs: Val,
    rhs: Val,
    return_bool: bool,
    matching: Option<&LabelModifier>,
) -> Result<Val, QueryError> {
    let cmp = is_comparison(op);
    // One side's value, the comparison's verdict, or both: what a pair of values gives.
    let combine = |a: f64, b: f64, keep: f64| -> Option<f64> {
        let r = apply(op, a, b)?;
        if !cmp || return_bool {
            Some(r)
        } else if r == 1.0 {
            Some(keep)
        } else {
            None
        }
    };
    let relabel = |l: PromLabels| if cmp && !return_bool { l } else { drop_name(l) };
    Ok(match (lhs, rhs) {
        (Val::Scalar(a), Val::Scalar(b)) => {
            if cmp && !return_bool {
                return bad("comparisons between scalars must use bool");
            }
            Val::Scalar(apply(op, a, b).unwrap_or(f64::NAN))
        }
        (Val::Vector(v), Val::Scalar(b)) => Val::Vector(
            v.into_iter()
                .filter_map(|(l, a)| combine(a, b, a).map(|x| (relabel(l), x)))
                .collect(),
        ),
        (Val::Scalar(a), Val::Vector(v)) => Val::Vector(
            v.into_iter()
                .filter_map(|(l, b)| combine(a, b, b).map(|x| (relabel(l), x)))
                .collect(),
        ),
        (Val::Vector(l), Val::Vector(r)) => {
            let sig = |labels: &PromLabels| -> PromLabels {
                match matching {
                    Some(LabelModifier::Include(on)) => labels
                        .iter()
                        .filter(|(k, _)| on.labels.iter().any(|x| x == *k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    Some(LabelModifier::Exclude(ignoring)) => labels
                        .iter()
                        .filter(|(k, _)| {
                            k.as_str() != NAME && !ignoring.labels.iter().any(|x| x == *k)
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    None => drop_name(labels.clone()),
                }
            };
            let mut right: HashMap<PromLabels, f64> = HashMap::new();
            for (labels, x) in r {
                if right.insert(sig(&labels), x).is_some() {
                    return bad("many-to-many matching not allowed: the right side has several series with the same labels");
                }
            }
            let mut out = Vec::new();
            for (labels, a) in l {
                if let Some(&b) = right.get(&sig(&labels)) {
                    if let Some(x) = combine(a, b, a) {
                        out.push((relabel(labels), x));
                    }
                }
            }
            Val::Vector(out)
        }
        _ => {
            return bad(format!(
                "operator {op} needs instant vectors or scalars, not a range vector"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> PromLabels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Evaluates `q` over `series`, handing every selector the series it matches.
    fn run(q: &str, series: &[PromSeries], steps: Steps) -> Result<Output, QueryError> {
        let expr = parse(q)?;
        let mut fetched = Fetched::new();
        for w in selectors(&expr, &steps) {
            let m = w.matchers();
            fetched.insert(
                fetched_key(&w),
                series
                    .iter()
                    .filter(|s| matches(&m, &s.labels))
                    .cloned()
                    .collect(),
            );
        }
        evaluate(&expr, &steps, &fetched)
    }

    fn counter(code: &str, per_sec: f64) -> PromSeries {
        PromSeries {
            labels: labels(&[("__name__", "req_total"), ("code", code), ("job", "api")]),
            samples: (0..=60)
                .map(|i| (i * 10_000, per_sec * (i * 10) as f64))
                .collect(),
        }
    }

    fn vector(o: Output) -> Vec<(PromLabels, Vec<(i64, f64)>)> {
        match o {
            Output::Vector(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rates_sums_and_arithmetic() {
        let data = [counter("200", 10.0), counter("500", 2.0)];
        let at = Steps::instant(600_000);
        let v = vector(run("rate(req_total[1m])", &data, at).unwrap());
        assert_eq!(v.len(), 2);
        assert!(!v[0].0.contains_key(NAME));
        assert!((v[0].1[0].1 - 10.0).abs() < 1e-9, "{v:?}");
        let v = vector(
            run(
                r#"sum by (job) (rate(req_total{code=~"5.."}[1m])) * 60"#,
                &data,
                at,
            )
            .unwrap(),
        );
        assert_eq!(v[0].0, labels(&[("job", "api")]));
        assert!((v[0].1[0].1 - 120.0).abs() < 1e-9);
        let v = vector(run("increase(req_total[2m])", &data, at).unwrap());
        assert!((v[1].1[0].1 - 240.0).abs() < 1e-9, "{v:?}");
        // A ratio between two vectors matched on job.
        let v = vector(
            run(
                r#"sum by (job) (rate(req_total{code="500"}[1m])) / on(job) sum by (job) (rate(req_total[1m]))"#,
                &data,
                at,
            )
            .unwrap(),
        );
        assert!((v[0].1[0].1 - 2.0 / 12.0).abs() < 1e-9);
        // Comparisons filter and keep the name; with bool they give 0 or 1.
        let v = vector(run("req_total > 2000", &data, at).unwrap());
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0[NAME], "req_total");
        assert_eq!(
            vector(run("req_total > bool 1000", &data, at).unwrap()).len(),
            2
        );
        assert_eq!(
            run("1 + 2 * 3", &data, at).unwrap(),
            Output::Scalar(vec![(600_000, 7.0)])
        );
        assert_eq!(
            vector(run("count(req_total)", &data, at).unwrap())[0].1[0].1,
            2.0
        );
        // A range query steps through time; the counter has no samples before 0.
        let steps = Steps {
            start_ms: 0,
            end_ms: 600_000,
            step_ms: 60_000,
        };
        let v = vector(run(r#"rate(req_total{code="200"}[1m])"#, &data, steps).unwrap());
        assert_eq!(v[0].1.len(), 10, "no rate at 0: a single sample");
        // Offsets shift the window.
        let v = vector(run("req_total offset 5m", &data, at).unwrap());
        assert_eq!(v[0].1[0].1, 3000.0);
    }

    #[test]
    fn histogram_quantiles_interpolate() {
        let bucket = |le: &str, n: f64| PromSeries {
            labels: labels(&[("__name__", "lat_bucket"), ("le", le)]),
            samples: vec![(1_000, 0.0), (60_000, n)],
        };
        let data = [
            bucket("0.1", 10.0),
            bucket("1", 90.0),
            bucket("+Inf", 100.0),
        ];
        let v = vector(
            run(
                "histogram_quantile(0.5, sum by (le) (rate(lat_bucket[1m])))",
                &data,
                Steps::instant(60_000),
            )
            .unwrap(),
        );
        assert!(
            (v[0].1[0].1 - (0.1 + 0.9 * 40.0 / 80.0)).abs() < 1e-9,
            "{v:?}"
        );
        let mut over = vec![(1.0, 5.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.99, &mut over), 1.0);
    }

    #[test]
    fn raw_range_vectors_only_in_instant_queries() {
        let data = [counter("200", 1.0)];
        let Output::Matrix(m) = run("req_total[30s]", &data, Steps::instant(600_000)).unwrap()
        else {
            panic!()
        };
        assert_eq!(m[0].samples.len(), 3);
        let steps = Steps {
            start_ms: 0,
            end_ms: 60_000,
            step_ms: 10_000,
        };
        assert!(matches!(
            run("req_total[30s]", &data, steps),
            Err(QueryError::Bad(_))
        ));
    }

    #[test]
    fn unsupported_and_hostile_queries_get_named_errors() {
        for (q, says) in [
            ("topk(3, up)", "topk"),
            (
                "label_replace(up, \"a\", \"b\", \"c\", \"d\")",
                "label_replace",
            ),
            ("up and down", "and"),
            ("rate(up[5m:1m])", "subqueries"),
            ("up @ 100", "@"),
            ("a * on(x) group_left b", "group_left"),
            ("{job=\"\"}", "non-empty"),
            ("sum(", "parse error"),
        ] {
            match parse(q) {
                Err(QueryError::Bad(m)) => assert!(m.contains(says), "{q}: {m}"),
                other => panic!("{q}: {other:?}"),
            }
        }
        let deep = format!("{}up{}", "(".repeat(3000), ")".repeat(3000));
        assert!(matches!(parse(&deep), Err(QueryError::Bad(m)) if m.contains("3000 levels")));
        let many = vec!["up"; 300].join(" + ");
        assert!(matches!(parse(&many), Err(QueryError::Bad(m)) if m.contains("operators")));
        let long = format!("up{{a=\"{}\"}}", "x".repeat(MAX_QUERY_BYTES));
        assert!(matches!(parse(&long), Err(QueryError::Bad(m)) if m.contains("bytes")));
        let steps = Steps {
            start_ms: 0,
            end_ms: 20_000_000,
            step_ms: 1,
        };
        assert!(matches!(run("up", &[], steps), Err(QueryError::Limit(m)) if m.contains("steps")));
    }
}
