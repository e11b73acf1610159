//! Shell-style globs for resource targeting: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`.

/// Whether `name` matches the shell glob `pattern` (whole string, case-sensitive).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => {
                p += 1;
                n += 1;
                continue;
            }
            Some('[') => {
                if let Some((matched, next)) = class(&pattern, p, name.get(n).copied()) {
                    if matched {
                        p = next;
                        n += 1;
                        continue;
                    }
                } else if name.get(n) == Some(&'[') {
                    // An unterminated `[` is a literal.
                    p += 1;
                    n += 1;
                    continue;
                }
            }
            Some(c) if Some(c) == name.get(n) => {
                p += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

/// Match a `[...]` class starting at `start`; returns (matched, index after `]`),
/// or `None` when the class is unterminated.
fn class(pattern: &[char], start: usize, c: Option<char>) -> Option<(bool, usize)> {
    let c = c?;
    let mut i = start + 1;
    let negate = matches!(pattern.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *pattern.get(i)?;
        if ch == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|e| *e != ']') {
            let end = *pattern.get(i + 2)?;
            matched |= ch <= c && c <= end;
            i += 3;
        } else {
            matched |= ch == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn literal_names_match_exactly() {
        assert!(glob_match("primary-db", "primary-db"));
        assert!(!glob_match("primary-db", "primary-db2"));
        assert!(!glob_match("primary-db", "primary"));
    }

    #[test]
    fn star_matches_any_run() {
        assert!(glob_match("prod-*", "prod-orders"));
        assert!(glob_match("prod-*", "prod-"));
        assert!(!glob_match("prod-*", "staging-orders"));
        assert!(glob_match("*-staging", "orders-staging"));
        assert!(!glob_match("*-staging", "orders-staging-2"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }

    #[test]
    fn question_mark_matches_one_character() {
        assert!(glob_match("db-??", "db-01"));
        assert!(!glob_match("db-??", "db-1"));
        assert!(!glob_match("db-??", "db-001"));
        assert!(glob_match("db-??", "db-éü"));
    }

    #[test]
    fn classes_and_ranges() {
        assert!(glob_match("db-[0-9]", "db-7"));
        assert!(!glob_match("db-[0-9]", "db-x"));
        assert!(glob_match("db-[!0-9]", "db-x"));
        assert!(glob_match("[ab]-db", "b-db"));
        assert!(!glob_match("[ab]-db", "c-db"));
        assert!(glob_match("x[", "x["), "unterminated class is literal");
    }
}
