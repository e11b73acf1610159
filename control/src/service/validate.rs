//! Request validation shared by every operation; each failure names its field.

use crate::error::{ApiError, ApiResult};

/// Object names: 1–128 characters of letters, digits, `-`, `_`, `.`, `@`.
pub(crate) fn name(field: &str, value: &str) -> ApiResult<()> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if value.chars().count() > 128 {
        return Err(ApiError::invalid(field, "must be at most 128 characters"));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')))
    {
        return Err(ApiError::invalid(
            field,
            format!("must contain only letters, digits, '-', '_', '.', '@' (found {bad:?})"),
        ));
    }
    Ok(())
}

/// A label map (resource labels, connector selectors, connector labels): keys like names, also
/// with `/` (`gate.dev/zone`, as Kubernetes label keys), values up to 256 characters.
pub(crate) fn labels(
    field: &str,
    labels: &std::collections::HashMap<String, String>,
) -> ApiResult<()> {
    for (key, value) in labels {
        let at = format!("{field}.{key}");
        if key.split('/').any(str::is_empty) {
            return Err(ApiError::invalid(&at, "a key has no empty part around '/'"));
        }
        for part in key.split('/') {
            name(&at, part)?;
        }
        text(&at, value, 256)?;
    }
    Ok(())
}

/// An id path parameter or field.
pub(crate) fn id(field: &str, value: &str) -> ApiResult<()> {
    if value.is_empty() {
        Err(ApiError::invalid(field, "is required"))
    } else {
        Ok(())
    }
}

/// `value` is one of `allowed`.
pub(crate) fn one_of(field: &str, value: &str, allowed: &[&str]) -> ApiResult<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("expected one of {}, got {value:?}", allowed.join(", ")),
        ))
    }
}

/// `value` is empty (left out) or one of `allowed`.
pub(crate) fn one_of_or_empty(field: &str, value: &str, allowed: &[&str]) -> ApiResult<()> {
    if value.is_empty() {
        Ok(())
    } else {
        one_of(field, value, allowed)
    }
}

/// Free text of at most `max` characters.
pub(crate) fn text(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.chars().count() > max {
        Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ))
    } else {
        Ok(())
    }
}

/// Resource names or shell globs (`prod-*`, `db-[0-9]`).
pub(crate) fn targets(field: &str, values: &[String]) -> ApiResult<()> {
    for (i, target) in values.iter().enumerate() {
        let field = format!("{field}[{i}]");
        if target.is_empty() {
            return Err(ApiError::invalid(&field, "must not be empty"));
        }
        if target.matches('[').count() != target.matches(']').count() {
            return Err(ApiError::invalid(&field, "unbalanced [ ] in glob"));
        }
        text(&field, target, 128)?;
    }
    Ok(())
}

/// An object's `origin`: "api" when empty, else one of [`ORIGINS`](super::resources::ORIGINS).
pub(crate) fn origin(field: &str, value: &str) -> ApiResult<String> {
    if value.is_empty() {
        return Ok("api".to_owned());
    }
    one_of(field, value, super::resources::ORIGINS)?;
    Ok(value.to_owned())
}

/// An object's `owner` within its origin (an opaque id such as a Kubernetes UID).
pub(crate) fn owner(field: &str, value: &str) -> ApiResult<()> {
    text(field, value, 256)
}
