//! Result rows, pure: text rows (COM_QUERY) and binary rows (prepared
//! statements), split into values and rewritten under a mask plan. Masked
//! columns are re-described as strings, so a masked value is always a
//! length-encoded string (or NULL) in either format.
//!
//! ```text
//! text row:    value* where value = string<lenenc> | 0xFB (NULL)
//! binary row:  0x00 | NULL bitmap[(n + 7 + 2) / 8] (bit i + 2 = column i) | value* (non-NULL only)
//!   1 byte: TINY · 2: SHORT, YEAR · 4: LONG, INT24, FLOAT · 8: LONGLONG, DOUBLE
//!   u8 length + bytes: DATE, TIME, DATETIME, TIMESTAMP · string<lenenc>: everything else
//! ```
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{BufMut, BytesMut};
use gate_policy::Strategy;
use gate_policy::mask::{MaskingKey, mask_text};

use super::codec::{CodecError, Reader, put_lenenc_bytes};
use super::packets::{Column, flags};

/// Column types (`enum_field_types`).
pub mod types {
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
}

/// How to mask each column of one result (`None` = as sent), and each
/// column's original type and flags (to read binary values).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MaskPlan {
    pub columns: Vec<Option<Strategy>>,
    pub types: Vec<(u8, u16)>,
}

impl MaskPlan {
    pub fn new(columns: Vec<Option<Strategy>>, described: &[Column]) -> Self {
        Self {
            columns,
            types: described.iter().map(|c| (c.column_type, c.flags)).collect(),
        }
    }

    fn strategy(&self, i: usize) -> Option<Strategy> {
        self.columns.get(i).copied().flatten()
    }

    /// The column definition clients see for column `i`.
    pub fn describe(&self, i: usize, column: &Column) -> Option<Column> {
        self.strategy(i).map(|s| {
            column.as_masked_string(s == Strategy::Null || column.flags & flags::NOT_NULL == 0)
        })
    }
}

/// The masked form of one value's text; a missing hash key (refused when
/// the plan is made) never lets clear text through.
fn masked(strategy: Strategy, text: Option<&str>, key: Option<&MaskingKey>) -> Option<Vec<u8>> {
    match text {
        Some(text) => mask_text(strategy, text, key)
            .unwrap_or(Some("***".to_owned()))
            .map(String::into_bytes),
        None if strategy == Strategy::Null => None,
        None => Some(b"***".to_vec()),
    }
}

/// Rewrite a text row under `plan` into `out` (a new payload).
pub fn mask_text_row(
    payload: &[u8],
    plan: &MaskPlan,
    key: Option<&MaskingKey>,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    let mut r = Reader::new(payload);
    let mut i = 0;
    while !r.is_empty() {
        let value = r.lenenc_bytes("row value")?;
        match (plan.strategy(i), value) {
            (Some(strategy), Some(raw)) => {
                match masked(strategy, Some(&String::from_utf8_lossy(raw)), key) {
                    Some(bytes) => put_lenenc_bytes(out, &bytes),
                    None => out.put_u8(0xFB),
                }
            }
            (_, Some(raw)) => put_lenenc_bytes(out, raw),
            (_, None) => out.put_u8(0xFB),
        }
        i += 1;
    }
    if i != plan.types.len() {
        return Err(CodecError::Malformed("text row (column count)"));
    }
    Ok(())
}

/// One binary-row value: its raw bytes (as sent) and its text form when known.
fn binary_value<'a>(
    r: &mut Reader<'a>,
    column_type: u8,
    column_flags: u16,
) -> Result<(&'a [u8], Option<String>), CodecError> {
    let unsigned = column_flags & flags::UNSIGNED != 0;
    let int = |raw: &[u8], n: u32| -> String {
        let value = raw
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        if unsigned || n == 64 {
            if unsigned {
                return value.to_string();
            }
            return (value as i64).to_string();
        }
        let shift = 64 - n;
        (((value << shift) as i64) >> shift).to_string()
    };
    let fixed = |r: &mut Reader<'a>, n: usize| r.bytes(n, "binary value");
    Ok(match column_type {
        types::TINY => {
            let raw = fixed(r, 1)?;
            (raw, Some(int(raw, 8)))
        }
        types::SHORT | types::YEAR => {
            let raw = fixed(r, 2)?;
            (raw, Some(int(raw, 16)))
        }
        types::LONG | types::INT24 => {
            let raw = fixed(r, 4)?;
            (raw, Some(int(raw, 32)))
        }
        types::LONGLONG => {
            let raw = fixed(r, 8)?;
            (raw, Some(int(raw, 64)))
        }
        types::FLOAT => {
            let raw = fixed(r, 4)?;
            let bits = <[u8; 4]>::try_from(raw).map_err(|_| CodecError::Truncated("float"))?;
            (raw, Some(f32::from_le_bytes(bits).to_string()))
        }
        types::DOUBLE => {
            let raw = fixed(r, 8)?;
            let bits = <[u8; 8]>::try_from(raw).map_err(|_| CodecError::Truncated("double"))?;
            (raw, Some(f64::from_le_bytes(bits).to_string()))
        }
        types::NULL => (&[][..], None),
        types::DATE | types::NEWDATE | types::DATETIME | types::TIMESTAMP | types::TIME => {
            let start = r.rest();
            let n = usize::from(r.u8("temporal length")?);
            let body = r.bytes(n, "temporal value")?;
            let raw = start.get(..n + 1).unwrap_or_default();
            (raw, Some(temporal_text(column_type, body)))
        }
        _ => {
            let start = r.rest();
            let value = r.lenenc_bytes("binary value")?.unwrap_or_default();
            let raw = start
                .get(..start.len() - r.rest().len())
                .unwrap_or_default();
            (raw, Some(String::from_utf8_lossy(value).into_owned()))
        }
    })
}

/// The text form of a binary DATE/DATETIME/TIMESTAMP/TIME value.
fn temporal_text(column_type: u8, body: &[u8]) -> String {
    let mut r = Reader::new(body);
    let mut num = |n: usize| r.uint(n, "temporal").unwrap_or(0);
    if column_type == types::TIME {
        if body.is_empty() {
            return "00:00:00".to_owned();
        }
        let negative = num(1) == 1;
        let days = num(4);
        let (h, m, s) = (num(1), num(1), num(1));
        let micros = num(4);
        let sign = if negative { "-" } else { "" };
        let mut text = format!("{sign}{:02}:{m:02}:{s:02}", days * 24 + h);
        if body.len() > 8 {
            text.push_str(&format!(".{micros:06}"));
        }
        return text;
    }
    let (y, mo, d) = (num(2), num(1), num(1));
    let (h, mi, s) = (num(1), num(1), num(1));
    let micros = num(4);
    let mut text = format!("{y:04}-{mo:02}-{d:02}");
    if column_type != types::DATE && column_type != types::NEWDATE {
        text.push_str(&format!(" {h:02}:{mi:02}:{s:02}"));
        if body.len() > 7 {
            text.push_str(&format!(".{micros:06}"));
        }
    }
    text
}

/// Rewrite a binary row under `plan` into `out` (a new payload): masked
/// values become length-encoded strings, or NULL under `null`.
pub fn mask_binary_row(
    payload: &[u8],
    plan: &MaskPlan,
    key: Option<&MaskingKey>,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    let n = plan.types.len();
    let mut r = Reader::new(payload);
    if r.u8("binary row")? != 0 {
        return Err(CodecError::Malformed("binary row header"));
    }
    let mut bitmap = r.bytes((n + 7 + 2) / 8, "NULL bitmap")?.to_vec();
    let is_null = |bitmap: &[u8], i: usize| {
        bitmap
            .get((i + 2) / 8)
            .is_some_and(|b| b & (1 << ((i + 2) % 8)) != 0)
    };
    let mut values = BytesMut::with_capacity(payload.len());
    for (i, (column_type, column_flags)) in plan.types.iter().enumerate() {
        if is_null(&bitmap, i) {
            continue;
        }
        let (raw, text) = binary_value(&mut r, *column_type, *column_flags)?;
        match plan.strategy(i) {
            None => values.put_slice(raw),
            Some(strategy) => match masked(strategy, text.as_deref(), key) {
                Some(bytes) => put_lenenc_bytes(&mut values, &bytes),
                None => {
                    if let Some(b) = bitmap.get_mut((i + 2) / 8) {
                        *b |= 1 << ((i + 2) % 8);
                    }
                }
            },
        }
    }
    if !r.is_empty() {
        return Err(CodecError::Malformed("binary row (trailing bytes)"));
    }
    out.put_u8(0);
    out.put_slice(&bitmap);
    out.put_slice(&values);
    Ok(())
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
