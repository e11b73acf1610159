//! Text and binary rows under mask plans.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::*;
use crate::protocols::mysql::packets::Column;

fn column(column_type: u8, flags: u16) -> Column {
    Column {
        column_type,
        flags,
        ..Default::default()
    }
}

#[test]
fn text_rows_mask_the_planned_columns_and_keep_nulls() {
    let plan = MaskPlan::new(
        vec![None, Some(Strategy::Partial), Some(Strategy::Redact)],
        &[column(3, 0), column(253, 0), column(253, 0)],
    );
    let row = b"\x011\x11alice@example.com\xfb";
    let mut out = BytesMut::new();
    mask_text_row(row, &plan, None, &mut out).unwrap();
    assert_eq!(&out[..], b"\x011\x11*************.com\xfb");
    let mut out = BytesMut::new();
    assert!(
        mask_text_row(b"\x011", &plan, None, &mut out).is_err(),
        "too few columns"
    );
}

#[test]
fn binary_rows_become_strings_where_masked() {
    // INT -7, VARCHAR 'secret', DATETIME 2024-01-02 03:04:05, NULL INT
    let plan = MaskPlan::new(
        vec![
            Some(Strategy::Partial),
            Some(Strategy::Redact),
            Some(Strategy::Partial),
            Some(Strategy::Redact),
        ],
        &[
            column(types::LONG, 0),
            column(253, 0),
            column(types::DATETIME, 0),
            column(types::LONG, 0),
        ],
    );
    let mut row = vec![0x00, 0b0010_0000];
    row.extend_from_slice(&(-7i32).to_le_bytes());
    row.extend_from_slice(b"\x06secret");
    row.extend_from_slice(&[7, 0xE8, 0x07, 1, 2, 3, 4, 5]);
    let mut out = BytesMut::new();
    mask_binary_row(&row, &plan, None, &mut out).unwrap();
    let mut want = vec![0x00, 0b0010_0000, 2, b'*', b'*', 3, b'*', b'*', b'*'];
    want.push(19);
    want.extend_from_slice(b"***************4:05");
    assert_eq!(out.to_vec(), want);
    // The null strategy sets the value's NULL bit.
    let nulls = MaskPlan::new(vec![Some(Strategy::Null)], &[column(types::LONG, 0)]);
    let mut out = BytesMut::new();
    mask_binary_row(&[0, 0, 1, 0, 0, 0], &nulls, None, &mut out).unwrap();
    assert_eq!(out.to_vec(), vec![0, 0b0000_0100]);
    for end in 0..row.len() {
        assert!(mask_binary_row(&row[..end], &plan, None, &mut BytesMut::new()).is_err());
    }
}

#[test]
fn temporal_values_as_text() {
    assert_eq!(
        temporal_text(types::DATE, &[0xE8, 0x07, 1, 2]),
        "2024-01-02"
    );
    assert_eq!(
        temporal_text(
            types::DATETIME,
            &[0xE8, 0x07, 1, 2, 3, 4, 5, 0x40, 0xE2, 0x01, 0x00]
        ),
        "2024-01-02 03:04:05.123456"
    );
    assert_eq!(
        temporal_text(types::TIME, &[1, 1, 0, 0, 0, 2, 3, 4]),
        "-26:03:04"
    );
}
