//! Limits a policy's source must meet before it is parsed or compiled: module
//! size, bracket nesting and string literal length. Compile time grows
//! exponentially with nested literals and the parser recurses once per
//! bracket, so these are checked on the raw text first.

/// Largest module, in bytes.
pub const MAX_MODULE_BYTES: usize = 256 * 1024;
/// Deepest nesting of `(`, `[` and `{` (rule bodies and literals alike).
pub const MAX_NESTING: usize = 12;
/// Longest string literal, in bytes.
pub const MAX_STRING_LITERAL_BYTES: usize = 64 * 1024;

/// Check one module's text; the error is `origin:line:col: message`.
pub(crate) fn check(origin: &str, source: &str) -> Result<(), String> {
    if source.len() > MAX_MODULE_BYTES {
        return Err(format!(
            "{origin}: module is {} bytes, over the limit of {MAX_MODULE_BYTES}",
            source.len()
        ));
    }
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut col = 0usize;
    let mut in_comment = false;
    // The current string literal: where it started and its closing quote.
    let mut string: Option<(usize, usize, usize, char)> = None;
    let mut escaped = false;
    for (byte, c) in source.char_indices() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            in_comment = false;
        }
        if in_comment {
            continue;
        }
        if let Some((start_line, start_col, start_byte, quote)) = string {
            if escaped {
                escaped = false;
            } else if quote == '"' && c == '\\' {
                escaped = true;
            } else if c == quote || (quote == '"' && c == '\n') {
                string = None;
            }
            if byte - start_byte > MAX_STRING_LITERAL_BYTES {
                return Err(format!(
                    "{origin}:{start_line}:{start_col}: string literal longer than the limit of {MAX_STRING_LITERAL_BYTES} bytes"
                ));
            }
            continue;
        }
        match c {
            '#' => in_comment = true,
            '"' | '`' => string = Some((line, col, byte + 1, c)),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "{origin}:{line}:{col}: brackets nested deeper than the limit of {MAX_NESTING}"
                    ));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!(
            "package p\nx := {}1{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_beyond_it_names_the_place() {
        assert_eq!(check("p.rego", &nested(MAX_NESTING)), Ok(()));
        let error = check("p.rego", &nested(MAX_NESTING + 1)).unwrap_err();
        assert_eq!(
            error,
            format!(
                "p.rego:2:{}: brackets nested deeper than the limit of {MAX_NESTING}",
                6 + MAX_NESTING
            )
        );
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let deep = "[".repeat(MAX_NESTING * 2);
        let source = format!("package p\n# {deep}\nx := \"{deep}\"\ny := `{deep}`\n");
        assert_eq!(check("p.rego", &source), Ok(()));
    }

    #[test]
    fn long_string_literals_and_big_modules_are_refused() {
        let long = "a".repeat(MAX_STRING_LITERAL_BYTES + 1);
        let error = check("p.rego", &format!("package p\nx := \"{long}\"\n")).unwrap_err();
        assert!(
            error.starts_with("p.rego:2:6: string literal longer"),
            "{error}"
        );
        let big = format!("package p\n{}", "# filler\n".repeat(MAX_MODULE_BYTES / 8));
        let error = check("p.rego", &big).unwrap_err();
        assert!(error.contains("over the limit of 262144"), "{error}");
    }

    #[test]
    fn escaped_quotes_stay_inside_the_string() {
        let source = format!("package p\nx := \"\\\" {}\"\n", "(".repeat(MAX_NESTING + 1));
        assert_eq!(check("p.rego", &source), Ok(()));
    }
}
