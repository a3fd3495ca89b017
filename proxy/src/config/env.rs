//! `${VAR}` expansion from the environment.
//!
//! Expansion runs on string values *after* the TOML is parsed, never on the file's text: a variable's value is
//! only ever the content of one string, so a secret holding `"` or a newline cannot add keys or tables (no TOML
//! injection), and the error for a missing variable can name the line of the string that asked for it.
//!
//! Syntax, inside any string value:
//! - `${NAME}`: the variable's value; an unset variable is an error naming it.
//! - `${NAME:-default}`: the default when the variable is unset or empty.
//! - `$${`: a literal `${` (so `$${HOME}` stays `${HOME}`).
//! - any other `$` is kept as it is.
//!
//! Lookup is a function so tests never touch the process environment (which is shared by parallel tests).

use std::borrow::Cow;

/// Where variable values come from. [`process_env`] in production; a closure over a map in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads the process environment. A variable that is set but not valid UTF-8 counts as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Why a string could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("environment variable {name} is not set (write ${{{name}:-default}} for a default)")]
    Missing { name: String },
    #[error("`${{` without a closing `}}` (write `$${{` for a literal `${{`)")]
    Unterminated,
    #[error("`{name}` is not a variable name (letters, digits and `_`, not starting with a digit)")]
    BadName { name: String },
}

/// Expands every `${NAME}` in `input`. Borrows when there is nothing to expand (the common case).
pub fn expand<'s>(input: &'s str, lookup: Lookup<'_>) -> Result<Cow<'s, str>, ExpandError> {
    if !input.contains('$') {
        return Ok(Cow::Borrowed(input));
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let close = after.find('}').ok_or(ExpandError::Unterminated)?;
            let inner = &after[..close];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !is_var_name(name) {
                return Err(ExpandError::BadName { name: name.to_string() });
            }
            match (lookup(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(ExpandError::Missing { name: name.to_string() }),
            }
            rest = &after[close + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The inverse of [`expand`] for a literal: a value written with `escape` reads back unchanged, whatever `${`
/// it holds (for tools that write config files, such as `migrate`).
pub fn escape(literal: &str) -> String {
    literal.replace("${", "$${")
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn plain_strings_are_borrowed() {
        let e = env(&[]);
        assert!(matches!(expand("no variables here", &e), Ok(Cow::Borrowed("no variables here"))));
    }

    #[test]
    fn variables_are_replaced() {
        let e = env(&[("TID", "1234"), ("B", "b")]);
        assert_eq!(expand("https://x/${TID}/v2.0", &e).unwrap(), "https://x/1234/v2.0");
        assert_eq!(expand("${TID}${B}-${B}", &e).unwrap(), "1234b-b");
    }

    #[test]
    fn missing_variable_is_named() {
        let e = env(&[]);
        assert_eq!(expand("a ${NOPE} b", &e), Err(ExpandError::Missing { name: "NOPE".into() }));
        let msg = expand("${NOPE}", &e).unwrap_err().to_string();
        assert!(msg.contains("NOPE is not set"), "{msg}");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let e = env(&[("EMPTY", ""), ("SET", "v")]);
        assert_eq!(expand("${UNSET:-0.0.0.0:80}", &e).unwrap(), "0.0.0.0:80");
        assert_eq!(expand("${EMPTY:-d}", &e).unwrap(), "d");
        assert_eq!(expand("${SET:-d}", &e).unwrap(), "v");
        assert_eq!(expand("${UNSET:-}", &e).unwrap(), "");
        // Set but empty without a default stays empty: validation decides whether empty is allowed.
        assert_eq!(expand("${EMPTY}", &e).unwrap(), "");
    }

    #[test]
    fn escapes_and_lone_dollars() {
        let e = env(&[("HOME", "/root")]);
        assert_eq!(expand("$${HOME}", &e).unwrap(), "${HOME}");
        assert_eq!(expand("cost $5 and $", &e).unwrap(), "cost $5 and $");
        assert_eq!(expand("$$", &e).unwrap(), "$$");
        assert_eq!(expand("$${HOME} ${HOME}", &e).unwrap(), "${HOME} /root");
    }

    #[test]
    fn malformed_references_are_errors() {
        let e = env(&[]);
        assert_eq!(expand("${OPEN", &e), Err(ExpandError::Unterminated));
        assert_eq!(expand("${}", &e), Err(ExpandError::BadName { name: String::new() }));
        assert_eq!(expand("${1X}", &e), Err(ExpandError::BadName { name: "1X".into() }));
        assert_eq!(expand("${A B}", &e), Err(ExpandError::BadName { name: "A B".into() }));
    }

    proptest::proptest! {
        #[test]
        fn escaped_literals_read_back_unchanged(s in ".*") {
            let e = env(&[("A", "x")]);
            let escaped = escape(&s);
            proptest::prop_assert_eq!(expand(&escaped, &e).unwrap(), s);
        }

        #[test]
        fn a_reference_yields_exactly_the_value(v in ".*") {
            let e = env(&[("V", v.as_str())]);
            proptest::prop_assert_eq!(expand("<${V}>", &e).unwrap(), format!("<{v}>"));
        }
    }

    #[test]
    fn values_are_not_expanded_again() {
        // A value that itself looks like a reference is taken literally: no recursion, no surprises.
        let e = env(&[("A", "${B}"), ("B", "secret")]);
        assert_eq!(expand("${A}", &e).unwrap(), "${B}");
    }
}
