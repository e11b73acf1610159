//! Result rows, pure: RowDescription and DataRow decoding, the masking plan
//! for one result shape, and rewriting rows under that plan.
//!
//! ```text
//! RowDescription 'T': Int16 n, then n × (name\0, Int32 table oid, Int16 column,
//!                     Int32 type oid, Int16 type len, Int32 type mod, Int16 format)
//! DataRow        'D': Int16 n, then n × (Int32 len or -1 for NULL, bytes)
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

use super::codec::{CodecError, Reader, backend, put_message};

/// `text`: what masked columns are re-described as.
pub const TEXT_OID: u32 = 25;

/// One output column as the server described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub table_oid: u32,
    pub column: i16,
    pub type_oid: u32,
    pub type_len: i16,
    pub type_mod: i32,
    pub format: i16,
}

/// Decode a RowDescription body.
pub fn parse_row_description(body: &[u8]) -> Result<Vec<Field>, CodecError> {
    let mut r = Reader::new(body);
    let count = r.i16()?;
    let mut fields = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        fields.push(Field {
            name: r.cstr()?.to_owned(),
            table_oid: r.u32()?,
            column: r.i16()?,
            type_oid: r.u32()?,
            type_len: r.i16()?,
            type_mod: r.i32()?,
            format: r.i16()?,
        });
    }
    Ok(fields)
}

/// Whether any column of a RowDescription is computed (no source table),
/// read without copying the column names; also checks the message's layout.
pub fn any_computed_column(body: &[u8]) -> Result<bool, CodecError> {
    let mut r = Reader::new(body);
    let count = r.i16()?;
    let mut computed = false;
    for _ in 0..count {
        r.cstr()?;
        computed |= r.u32()? == 0;
        r.i16()?;
        r.u32()?;
        r.i16()?;
        r.i32()?;
        r.i16()?;
    }
    Ok(computed)
}

/// Append a RowDescription.
pub fn put_row_description(out: &mut BytesMut, fields: &[Field]) {
    put_message(out, backend::ROW_DESCRIPTION, |b| {
        b.put_i16(fields.len() as i16);
        for f in fields {
            b.put_slice(f.name.as_bytes());
            b.put_u8(0);
            b.put_u32(f.table_oid);
            b.put_i16(f.column);
            b.put_u32(f.type_oid);
            b.put_i16(f.type_len);
            b.put_i32(f.type_mod);
            b.put_i16(f.format);
        }
    });
}

/// How to mask each column of one result shape (`None` = pass through).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MaskPlan {
    pub columns: Vec<Option<Strategy>>,
    /// The original type of each column (to read binary values).
    pub types: Vec<u32>,
}

impl MaskPlan {
    /// Whether any column is masked.
    pub fn masks_anything(&self) -> bool {
        self.columns.iter().any(Option::is_some)
    }

    /// The RowDescription clients see: masked columns become `text`.
    pub fn describe(&self, fields: &[Field]) -> Vec<Field> {
        fields
            .iter()
            .zip(self.columns.iter().chain(std::iter::repeat(&None)))
            .map(|(f, strategy)| match strategy {
                Some(_) => Field {
                    type_oid: TEXT_OID,
                    type_len: -1,
                    type_mod: -1,
                    ..f.clone()
                },
                None => f.clone(),
            })
            .collect()
    }
}

/// Result column formats from Bind: none = all text, one = all alike, else per column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Formats(pub Vec<i16>);

impl Formats {
    fn binary(&self, column: usize) -> bool {
        match self.0.as_slice() {
            [] => false,
            [one] => *one == 1,
            many => many.get(column).is_some_and(|f| *f == 1),
        }
    }
}

/// Rewrite a DataRow body under `plan`; appends the new 'D' message to `out`.
///
/// Text-format values are masked as text. Binary values of text-like types
/// are their UTF-8 bytes, integers are decoded; any other binary value is
/// replaced by `***` (documented), since its text form is not known here.
pub fn mask_data_row(
    body: &[u8],
    plan: &MaskPlan,
    formats: &Formats,
    key: Option<&MaskingKey>,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    let mut r = Reader::new(body);
    let count = r.i16()?;
    let mut values = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        let len = r.i32()?;
        values.push(if len < 0 {
            None
        } else {
            Some(r.bytes(len as usize)?)
        });
    }
    if !r.rest().is_empty() {
        return Err(CodecError::Malformed { what: "data row" });
    }
    put_message(out, backend::DATA_ROW, |b| {
        b.put_i16(count);
        for (i, value) in values.into_iter().enumerate() {
            let masked = match (plan.columns.get(i).copied().flatten(), value) {
                (Some(strategy), Some(raw)) => {
                    match value_text(
                        raw,
                        plan.types.get(i).copied().unwrap_or(0),
                        formats.binary(i),
                    ) {
                        // A missing hash key is refused when the plan is made; never pass clear text.
                        Some(text) => {
                            mask_text(strategy, &text, key).unwrap_or(Some("***".to_owned()))
                        }
                        None if strategy == Strategy::Null => None,
                        None => Some("***".to_owned()),
                    }
                    .map(String::into_bytes)
                }
                (_, raw) => raw.map(<[u8]>::to_vec),
            };
            match masked {
                Some(bytes) => {
                    b.put_i32(bytes.len() as i32);
                    b.put_slice(&bytes);
                }
                None => b.put_i32(-1),
            }
        }
    });
    Ok(())
}

/// The text form of a value, when it can be known.
fn value_text(raw: &[u8], type_oid: u32, binary: bool) -> Option<String> {
    if !binary {
        return Some(String::from_utf8_lossy(raw).into_owned());
    }
    match (type_oid, raw.len()) {
        // text, varchar, bpchar, name, unknown, citext-like: UTF-8 bytes.
        (25 | 1043 | 1042 | 19 | 705, _) => Some(String::from_utf8_lossy(raw).into_owned()),
        (21, 2) => raw
            .try_into()
            .ok()
            .map(|b: [u8; 2]| i16::from_be_bytes(b).to_string()),
        (23, 4) => raw
            .try_into()
            .ok()
            .map(|b: [u8; 4]| i32::from_be_bytes(b).to_string()),
        (20, 8) => raw
            .try_into()
            .ok()
            .map(|b: [u8; 8]| i64::from_be_bytes(b).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;
    use crate::protocols::postgres::codec::decode_frame;

    fn field(name: &str, table_oid: u32, column: i16, type_oid: u32) -> Field {
        Field {
            name: name.into(),
            table_oid,
            column,
            type_oid,
            type_len: -1,
            type_mod: -1,
            format: 0,
        }
    }

    fn data_row(values: &[Option<&[u8]>]) -> BytesMut {
        let mut out = BytesMut::new();
        put_message(&mut out, b'D', |b| {
            b.put_i16(values.len() as i16);
            for v in values {
                match v {
                    Some(v) => {
                        b.put_i32(v.len() as i32);
                        b.put_slice(v);
                    }
                    None => b.put_i32(-1),
                }
            }
        });
        out
    }

    fn values(frame: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut r = Reader::new(&frame[5..]);
        let n = r.i16().unwrap();
        (0..n)
            .map(|_| {
                let len = r.i32().unwrap();
                (len >= 0).then(|| r.bytes(len as usize).unwrap().to_vec())
            })
            .collect()
    }

    #[test]
    fn computed_columns_are_found_without_parsing_names() {
        let encode = |fields: &[Field]| {
            let mut out = BytesMut::new();
            put_row_description(&mut out, fields);
            out[5..].to_vec() // the body, after tag and length
        };
        let from_tables = encode(&[field("email", 16384, 2, 25), field("id", 16384, 1, 23)]);
        let with_computed = encode(&[field("email", 16384, 2, 25), field("lower", 0, 0, 25)]);
        assert_eq!(any_computed_column(&from_tables).ok(), Some(false));
        assert_eq!(any_computed_column(&with_computed).ok(), Some(true));
        // A cut message is an error, as for the full parse.
        let cut = &with_computed[..with_computed.len() - 3];
        assert!(any_computed_column(cut).is_err());
        assert!(parse_row_description(cut).is_err());
    }

    #[test]
    fn row_description_round_trip_and_re_description() {
        let fields = vec![field("id", 16384, 1, 23), field("x", 16384, 3, 1043)];
        let mut out = BytesMut::new();
        put_row_description(&mut out, &fields);
        let frame = decode_frame(&mut out).unwrap().unwrap();
        assert_eq!(parse_row_description(frame.body()).unwrap(), fields);
        let plan = MaskPlan {
            columns: vec![None, Some(Strategy::Redact)],
            types: vec![23, 1043],
        };
        let described = plan.describe(&fields);
        assert_eq!(described[0], fields[0]);
        assert_eq!(
            (
                described[1].type_oid,
                described[1].name.as_str(),
                described[1].table_oid
            ),
            (TEXT_OID, "x", 16384)
        );
    }

    #[test]
    fn text_rows_are_masked_per_column_and_nulls_stay_null() {
        let plan = MaskPlan {
            columns: vec![
                None,
                Some(Strategy::Email),
                Some(Strategy::Partial),
                Some(Strategy::Redact),
            ],
            types: vec![23, 25, 25, 25],
        };
        let row = data_row(&[
            Some(b"1"),
            Some(b"alice@example.com"),
            Some(b"123-45-6789"),
            None,
        ]);
        let mut out = BytesMut::new();
        mask_data_row(&row[5..], &plan, &Formats::default(), None, &mut out).unwrap();
        assert_eq!(
            values(&out),
            vec![
                Some(b"1".to_vec()),
                Some(b"a***@example.com".to_vec()),
                Some(b"*******6789".to_vec()),
                None
            ]
        );
    }

    #[test]
    fn binary_values_are_decoded_or_redacted() {
        let plan = MaskPlan {
            columns: vec![
                Some(Strategy::Partial),
                Some(Strategy::Partial),
                Some(Strategy::Partial),
                Some(Strategy::Null),
            ],
            types: vec![25, 23, 1700, 25],
        };
        let row = data_row(&[
            Some(b"secret-value"),
            Some(&123_456_789i32.to_be_bytes()),
            Some(&[0, 1, 0, 0]),
            Some(b"x"),
        ]);
        let mut out = BytesMut::new();
        mask_data_row(&row[5..], &plan, &Formats(vec![1]), None, &mut out).unwrap();
        assert_eq!(
            values(&out),
            vec![
                Some(b"********alue".to_vec()),
                Some(b"*****6789".to_vec()),
                Some(b"***".to_vec()),
                None
            ]
        );
    }

    #[test]
    fn per_column_formats() {
        let f = Formats(vec![0, 1]);
        assert!(!f.binary(0));
        assert!(f.binary(1));
        assert!(!f.binary(2));
        assert!(Formats(vec![1]).binary(5));
    }

    #[test]
    fn truncated_or_overlong_rows_are_malformed() {
        let row = data_row(&[Some(b"abc")]);
        let plan = MaskPlan {
            columns: vec![Some(Strategy::Redact)],
            types: vec![25],
        };
        let mut out = BytesMut::new();
        assert_eq!(
            mask_data_row(
                &row[5..row.len() - 1],
                &plan,
                &Formats::default(),
                None,
                &mut out
            ),
            Err(CodecError::Malformed { what: "message" })
        );
        let mut long = row[5..].to_vec();
        long.push(0);
        assert_eq!(
            mask_data_row(&long, &plan, &Formats::default(), None, &mut out),
            Err(CodecError::Malformed { what: "data row" })
        );
        assert!(out.is_empty(), "nothing is written for a malformed row");
    }
}
