//! `${NAME}` and `${NAME:-default}` expansion inside configuration string values.

/// One unresolvable reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError {
    pub message: String,
}

/// Expand `${NAME}` and `${NAME:-default}` in `text` with `lookup`; `$$` is a literal `$`.
///
/// An unset variable without a default, or an unterminated `${`, is an error
/// naming it. Expansion is single-pass: values are not expanded again.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, EnvError> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(EnvError {
                    message: format!("unterminated ${{ in {text:?}"),
                });
            };
            let reference = &body[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(EnvError {
                    message: format!("invalid variable name {name:?} in ${{{reference}}}"),
                });
            }
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(EnvError {
                        message: format!("environment variable {name} is not set"),
                    });
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER" => Some("gate".into()),
            "EMPTY" => Some(String::new()),
            "DOLLAR" => Some("${USER}".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        assert_eq!(
            expand("postgres://${USER}@db", &env).unwrap(),
            "postgres://gate@db"
        );
        assert_eq!(expand("${MISSING:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(
            expand("${EMPTY:-fallback}", &env).unwrap(),
            "",
            "set but empty is set"
        );
        assert_eq!(
            expand("cost: $$5 and $HOME", &env).unwrap(),
            "cost: $5 and $HOME"
        );
        assert_eq!(expand("${DOLLAR}", &env).unwrap(), "${USER}", "single pass");
        assert_eq!(expand("no references", &env).unwrap(), "no references");
    }

    #[test]
    fn unset_and_malformed_references_are_errors_naming_them() {
        assert_eq!(
            expand("${GATE_API_KEY}", &env).unwrap_err().message,
            "environment variable GATE_API_KEY is not set"
        );
        assert_eq!(
            expand("x${USER", &env).unwrap_err().message,
            "unterminated ${ in \"x${USER\""
        );
        assert_eq!(
            expand("${BAD-NAME}", &env).unwrap_err().message,
            "invalid variable name \"BAD-NAME\" in ${BAD-NAME}"
        );
    }
}
