//! Bounds on query text that users send (log search, metric selectors, and every query language
//! parsed later), checked before any parser sees it: recursive-descent parsers use a stack frame
//! per nesting level, so 3,000 `(` in a 2.5 KB request would overflow the stack and abort the
//! whole process. Every parser of user text calls [`check`] first.

/// The longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// The deepest nesting of `(`, `[` and `{` accepted. Quoted text counts too: a regex inside a
/// string is parsed by a nested parser, and no real query nests this deep.
pub const MAX_QUERY_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryTextError {
    #[error("{param}: the query is {len} bytes, over the limit of {MAX_QUERY_BYTES}")]
    TooLong { param: String, len: usize },
    #[error("{param}: the query nests brackets {depth} deep, over the limit of {MAX_QUERY_DEPTH}")]
    TooDeep { param: String, depth: usize },
}

/// Refuses query text that is too long or nested too deep for a parser to take safely.
/// `param` names the request parameter in the error.
pub fn check(param: &str, text: &str) -> Result<(), QueryTextError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryTextError::TooLong {
            param: param.to_string(),
            len: text.len(),
        });
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_QUERY_DEPTH {
        return Err(QueryTextError::TooDeep {
            param: param.to_string(),
            depth: deepest,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_deep_text_is_refused_naming_the_parameter() {
        assert!(check("q", "error AND (timeout OR \"db (primary)\")").is_ok());
        let deep = format!("{}a", "(".repeat(3000));
        let e = check("q", &deep).unwrap_err();
        assert_eq!(
            e,
            QueryTextError::TooDeep {
                param: "q".into(),
                depth: 3000
            }
        );
        assert!(e.to_string().starts_with("q: ") && e.to_string().contains("32"));
        // Many groups side by side are fine: only depth counts.
        assert!(check("q", &"(a) ".repeat(4000)).is_ok());
        let long = "a ".repeat(MAX_QUERY_BYTES);
        assert!(matches!(
            check("query", &long),
            Err(QueryTextError::TooLong { .. })
        ));
        // Unbalanced closers do not hide later depth.
        let tricky = format!("{}{}", ")".repeat(100), "(".repeat(40));
        assert!(check("q", &tricky).is_err());
    }
}
