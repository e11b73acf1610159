//! Rego source as lines of classified tokens (keyword, string, comment, number, builtin, text)
//! for the templates to colour, plus the line a compile error names.

use serde::Serialize;

/// One piece of a line and its class (`tok-<kind>` in the stylesheet).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(super) struct Token {
    pub kind: &'static str,
    pub text: String,
}

const KEYWORDS: &[&str] = &[
    "package", "import", "default", "if", "else", "not", "some", "every", "in", "with", "as",
    "contains", "true", "false", "null",
];
const BUILTINS: &[&str] = &[
    "input",
    "data",
    "count",
    "startswith",
    "endswith",
    "contains",
    "lower",
    "upper",
    "sprintf",
    "regex",
    "net",
    "time",
    "object",
    "array",
    "concat",
    "split",
    "trim",
    "glob",
];

fn word_kind(word: &str) -> &'static str {
    if KEYWORDS.contains(&word) {
        "keyword"
    } else if BUILTINS.contains(&word) {
        "builtin"
    } else if word.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        "number"
    } else {
        "text"
    }
}

/// Split one line into tokens; strings (`"…"`, `` `…` ``) and `#` comments end where the line does.
fn line_tokens(line: &str) -> Vec<Token> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut push = |kind: &'static str, text: &str| match tokens.last_mut() {
        Some(last) if last.kind == kind && kind == "text" => last.text.push_str(text),
        _ => tokens.push(Token {
            kind,
            text: text.to_owned(),
        }),
    };
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let end = if c == '#' {
            push("comment", rest);
            break;
        } else if c == '"' || c == '`' {
            let mut escaped = false;
            let close = rest
                .char_indices()
                .skip(1)
                .find(|&(_, ch)| {
                    let done = ch == c && !(escaped && c == '"');
                    escaped = ch == '\\' && !escaped;
                    done
                })
                .map_or(rest.len(), |(i, ch)| i + ch.len_utf8());
            push("string", &rest[..close]);
            close
        } else if c.is_alphanumeric() || c == '_' {
            let len = rest
                .char_indices()
                .find(|&(_, ch)| !(ch.is_alphanumeric() || ch == '_' || ch == '.'))
                .map_or(rest.len(), |(i, _)| i);
            let word = &rest[..len];
            let head = word.split('.').next().unwrap_or(word);
            push(word_kind(head), word);
            len
        } else {
            push("text", &rest[..c.len_utf8()]);
            c.len_utf8()
        };
        rest = &rest[end..];
    }
    tokens
}

/// Every line of `source`, tokenized.
pub(super) fn lines(source: &str) -> Vec<Vec<Token>> {
    source.lines().map(line_tokens).collect()
}

/// The first `<file>.rego:<line>:<col>` in a compile error: the line to mark.
pub(super) fn error_line(message: &str) -> Option<usize> {
    let at = message.find(".rego:")? + ".rego:".len();
    let digits: String = message[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_keywords_strings_and_comments() {
        let line = line_tokens(r#"deny if input.user == "a\"b" # why"#);
        let kinds: Vec<&str> = line.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                "text", "keyword", "text", "builtin", "text", "string", "text", "comment"
            ]
        );
        assert_eq!(line[line.len() - 3].text, r#""a\"b""#);
        assert_eq!(
            line.iter().map(|t| t.text.as_str()).collect::<String>(),
            r#"deny if input.user == "a\"b" # why"#
        );
    }

    #[test]
    fn finds_the_error_line() {
        assert_eq!(
            error_line("p.rego:7:3: unexpected token; p.rego:9:1: x"),
            Some(7)
        );
        assert_eq!(error_line("is required"), None);
    }
}
