//! OK, ERR, EOF and column definitions from byte literals.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::*;

#[test]
fn ok_err_eof() {
    let ok = OkPacket::decode(&[0x00, 0x02, 0x00, 0x0A, 0x00, 0x01, 0x00]).unwrap();
    assert_eq!((ok.affected_rows, ok.status, ok.warnings), (2, 0x000A, 1));
    let err = ErrPacket::decode(b"\xff\x7a\x04#42000denied").unwrap();
    assert_eq!(err, ErrPacket::new(1146, "42000", "denied"));
    let mut out = BytesMut::new();
    err.encode(&mut out);
    assert_eq!(ErrPacket::decode(&out).unwrap(), err);
    assert!(is_eof(&[0xFE, 0x00, 0x00, 0x22, 0x00]));
    assert_eq!(
        terminator_status(&[0xFE, 0x00, 0x00, 0x22, 0x00])
            .unwrap()
            .status,
        0x22
    );
    // A row that starts with 0xFE is at least 16 MiB long: never a terminator.
    assert!(!ends_rows(&[0xFE; 9], false));
    assert!(ends_rows(&[0xFE, 0, 0, 2, 0, 0, 0], true));
}

#[test]
fn column_definition_round_trips_and_is_re_described_as_string() {
    let column = Column {
        schema: "shop".into(),
        table: "c".into(),
        org_table: "customers".into(),
        name: "x".into(),
        org_name: "email".into(),
        charset: 63,
        length: 12,
        column_type: 3,
        flags: flags::NOT_NULL | flags::UNSIGNED | 0x80,
        decimals: 0,
        trailer: Vec::new(),
    };
    let mut out = BytesMut::new();
    column.encode(&mut out);
    assert_eq!(Column::decode(&out).unwrap(), column);
    assert!(!column.computed());
    assert!(column_traced(&out, &["customers".into()]).unwrap());
    assert!(!column_traced(&out, &["orders".into()]).unwrap());
    let masked = column.as_masked_string(true);
    assert_eq!(masked.column_type, TYPE_VAR_STRING);
    assert_eq!(masked.charset, UTF8MB4);
    assert_eq!(masked.flags, 0, "unsigned, binary and not-null are gone");
    for end in 0..out.len() {
        assert!(Column::decode(&out[..end]).is_err());
    }
}

#[test]
fn more_results_is_set_in_ok_and_eof_status_flags() {
    use super::super::handshake::SERVER_MORE_RESULTS_EXISTS as MORE;
    // EOF: header, warnings, status.
    let eof = with_more_results(&[0xFE, 0x01, 0x00, 0x02, 0x00]).unwrap();
    assert_eq!(terminator_status(&eof).unwrap().status, 0x02 | MORE);
    assert_eq!(terminator_status(&eof).unwrap().warnings, 1);
    // OK with a 3-byte affected-rows count and an info string (status after the two lenencs).
    let ok = [
        0x00, 0xFC, 0x2C, 0x01, 0x05, 0x02, 0x00, 0x00, 0x00, b'h', b'i',
    ];
    let patched = with_more_results(&ok).unwrap();
    let decoded = OkPacket::decode(&patched).unwrap();
    assert_eq!((decoded.affected_rows, decoded.status), (300, 0x02 | MORE));
    assert_eq!(&patched[9..], b"hi");
    // A DEPRECATE_EOF terminator (OK with header 0xFE).
    let ended = with_more_results(&[0xFE, 0, 0, 0x22, 0, 0, 0]).unwrap();
    assert_eq!(terminator_status(&ended).unwrap().status, 0x22 | MORE);
    assert!(with_more_results(&[0x00, 0x01]).is_err());
}
