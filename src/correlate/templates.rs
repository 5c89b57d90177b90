//! Log message templates: the constant shape of a message with its variable parts masked, so
//! "took 812 ms" and "took 95 ms" count as one kind of message. Tokens holding digits, long
//! hex, UUIDs, addresses or quoted text are variables; in `key=value` only the value is.

/// What a masked variable is written as.
pub const VAR: &str = "<*>";

fn is_variable(token: &str) -> bool {
    let t = token.trim_matches(|c: char| {
        matches!(c, ',' | ';' | '.' | ':' | '(' | ')' | '[' | ']' | '{' | '}')
    });
    if t.is_empty() {
        return false;
    }
    let quoted = (t.starts_with('"') && t.ends_with('"') && t.len() > 1)
        || (t.starts_with('\'') && t.ends_with('\'') && t.len() > 1);
    let long_hex = t.len() >= 8 && t.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    quoted || long_hex || t.chars().any(|c| c.is_ascii_digit())
}

fn mask(token: &str) -> String {
    if let Some((key, value)) = token.split_once('=') {
        if !key.is_empty() && !key.chars().any(|c| c.is_ascii_digit()) {
            return if is_variable(value) || value.is_empty() {
                format!("{key}={VAR}")
            } else {
                token.to_string()
            };
        }
    }
    if is_variable(token) {
        VAR.to_string()
    } else {
        token.to_string()
    }
}

/// The template of a message: whitespace-separated tokens, variables masked, runs of
/// variables collapsed into one, at most 24 tokens (long messages share a prefix shape).
pub fn template(message: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for token in message.split_whitespace().take(24) {
        let m = mask(token);
        if m == VAR && out.last().is_some_and(|l| l == VAR) {
            continue;
        }
        out.push(m);
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_masked_known_answers() {
        assert_eq!(
            template("slow query: SELECT stock took 812 ms"),
            "slow query: SELECT stock took <*> ms"
        );
        assert_eq!(
            template("slow query: SELECT stock took 95 ms"),
            template("slow query: SELECT stock took 812 ms")
        );
        assert_eq!(
            template("user=alice order_id=8812 status=failed"),
            "user=alice order_id=<*> status=failed"
        );
        assert_eq!(
            template("GET /cart/42 from 10.0.0.7 traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            "GET <*> from <*> traceparent=<*>"
        );
        assert_eq!(
            template("request 9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d failed"),
            "request <*> failed"
        );
        assert_eq!(
            template("could not reach \"inventory\" (timeout)"),
            "could not reach <*> (timeout)"
        );
        assert_eq!(template("  spaced   out  "), "spaced out");
        assert_eq!(template(""), "");
    }
}
