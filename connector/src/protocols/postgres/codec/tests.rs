//! Byte-literal tests for the PostgreSQL codec, including every prefix of a real startup.
#![allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]

use bytes::BytesMut;

use super::*;

/// A psql 15 StartupMessage: user=app database=appdb application_name=psql client_encoding=UTF8.
fn psql_startup() -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_startup(
        &[
            ("user", "app"),
            ("database", "appdb"),
            ("application_name", "psql"),
            ("client_encoding", "UTF8"),
        ],
        &mut out,
    );
    out.to_vec()
}

#[test]
fn startup_message_decodes_and_every_prefix_asks_for_more() {
    let bytes = psql_startup();
    for cut in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert_eq!(decode_startup(&mut buf), Ok(None), "prefix of {cut} bytes");
    }
    let mut buf = BytesMut::from(&bytes[..]);
    let Ok(Some(Startup::Message { params })) = decode_startup(&mut buf) else {
        panic!("not a startup")
    };
    assert_eq!(Startup::param(&params, "database"), Some("appdb"));
    assert_eq!(Startup::param(&params, "user"), Some("app"));
    assert_eq!(params.len(), 4);
    assert!(buf.is_empty());
}

#[test]
fn ssl_gssenc_and_cancel_requests() {
    let mut buf = BytesMut::from(&[0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f][..]);
    assert_eq!(decode_startup(&mut buf), Ok(Some(Startup::Ssl)));
    let mut buf = BytesMut::from(&[0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30][..]);
    assert_eq!(decode_startup(&mut buf), Ok(Some(Startup::GssEnc)));
    let mut buf = BytesMut::new();
    encode_cancel(4242, 0xdead_beef, &mut buf);
    assert_eq!(&buf[..8], &[0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e]);
    assert_eq!(
        decode_startup(&mut buf),
        Ok(Some(Startup::Cancel {
            pid: 4242,
            secret: 0xdead_beef
        }))
    );
}

#[test]
fn bad_startup_packets_are_errors() {
    let mut buf = BytesMut::from(&[0u8, 0, 0, 4, 0, 0, 0, 0][..]);
    assert_eq!(decode_startup(&mut buf), Err(CodecError::BadLength(4)));
    let mut buf = BytesMut::from(&[0u8, 0x10, 0, 0, 0, 3, 0, 0][..]);
    assert_eq!(
        decode_startup(&mut buf),
        Err(CodecError::BadLength(0x0010_0000))
    );
    let mut buf = BytesMut::from(&[0u8, 0, 0, 9, 0, 2, 0, 0, 0][..]);
    assert_eq!(
        decode_startup(&mut buf),
        Err(CodecError::Version { major: 2, minor: 0 })
    );
    // A startup message without its terminating NUL pair.
    let mut buf = BytesMut::from(&[0u8, 0, 0, 12, 0, 3, 0, 0, b'u', 0, b'x', 0][..]);
    assert_eq!(
        decode_startup(&mut buf),
        Err(CodecError::Malformed {
            what: "startup message"
        })
    );
}

#[test]
fn frames_keep_their_original_bytes() {
    let query = b"Q\x00\x00\x00\x0dselect 1\x00".to_vec();
    for cut in 0..query.len() {
        let mut buf = BytesMut::from(&query[..cut]);
        assert_eq!(decode_frame(&mut buf), Ok(None));
    }
    let mut buf = BytesMut::from(&query[..]);
    buf.extend_from_slice(b"S\x00\x00\x00\x04");
    let frame = decode_frame(&mut buf).unwrap().unwrap();
    assert_eq!(frame.tag, b'Q');
    assert_eq!(&frame.raw[..], &query[..]);
    assert_eq!(parse_query(frame.body()), Ok("select 1"));
    let sync = decode_frame(&mut buf).unwrap().unwrap();
    assert_eq!((sync.tag, sync.body().len()), (b'S', 0));
    let mut bad = BytesMut::from(&b"Q\x00\x00\x00\x02"[..]);
    assert_eq!(decode_frame(&mut bad), Err(CodecError::BadLength(2)));
}

#[test]
fn error_response_round_trip() {
    let mut out = BytesMut::new();
    put_error(
        &mut out,
        &ErrorFields {
            severity: "ERROR",
            code: "42501",
            message: "no drops".into(),
        },
    );
    assert_eq!(
        &out[..],
        b"E\x00\x00\x00\x24SERROR\x00VERROR\x00C42501\x00Mno drops\x00\x00"
    );
    let frame = decode_frame(&mut out).unwrap().unwrap();
    assert_eq!(
        parse_error(frame.body()),
        Ok(("42501".into(), "no drops".into()))
    );
}

#[test]
fn ready_and_auth_messages() {
    let mut out = BytesMut::new();
    put_ready(&mut out, b'I');
    assert_eq!(&out[..], b"Z\x00\x00\x00\x05I");
    let mut out = BytesMut::new();
    put_auth(&mut out, auth::SASL, b"SCRAM-SHA-256\0\0");
    assert_eq!(
        &out[..],
        b"R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00"
    );
}

#[test]
fn parse_message_fields() {
    let mut out = BytesMut::new();
    put_parse(&mut out, "s1", "select $1");
    let frame = decode_frame(&mut out).unwrap().unwrap();
    assert_eq!(
        parse_parse(frame.body()),
        Ok(Parse {
            name: "s1",
            query: "select $1",
            param_types: &[0, 0]
        })
    );
    let mut out = BytesMut::new();
    put_parse_with(&mut out, "s1", "select 2", &[0, 1, 0, 0, 0, 23]);
    let frame = decode_frame(&mut out).unwrap().unwrap();
    assert_eq!(
        parse_parse(frame.body()).unwrap().param_types,
        &[0, 1, 0, 0, 0, 23]
    );
    assert!(parse_parse(b"s1\0unterminated").is_err());
}

#[test]
fn reader_is_bounds_checked() {
    let mut r = Reader::new(&[0, 1]);
    assert!(r.u32().is_err());
    assert_eq!(r.i16(), Ok(1));
    assert!(r.u8().is_err());
}

#[test]
fn bind_describe_and_close_fields() {
    // Bind portal "p1" to "s1": 1 param format (binary), 2 params (NULL, "42"), result formats [1, 0].
    let body = b"p1\0s1\0\x00\x01\x00\x01\x00\x02\xff\xff\xff\xff\x00\x00\x00\x0242\x00\x02\x00\x01\x00\x00";
    let bind = parse_bind(body).unwrap();
    assert_eq!(
        bind,
        Bind {
            portal: "p1",
            statement: "s1",
            result_formats: vec![1, 0]
        }
    );
    assert!(parse_bind(&body[..body.len() - 1]).is_err());
    assert_eq!(parse_target(b"Ss1\0"), Ok((b'S', "s1")));
    assert_eq!(parse_target(b"P\0"), Ok((b'P', "")));
    assert!(parse_target(b"Xs1\0").is_err());
    let mut out = BytesMut::new();
    put_describe(&mut out, b'S', "s1");
    assert_eq!(&out[..], b"D\x00\x00\x00\x08Ss1\x00");
}

#[test]
fn command_complete_rows() {
    assert_eq!(command_rows(b"SELECT 5\0"), 5);
    assert_eq!(command_rows(b"INSERT 0 3\0"), 3);
    assert_eq!(command_rows(b"UPDATE 12\0"), 12);
    assert_eq!(command_rows(b"CREATE TABLE\0"), 0);
    assert_eq!(command_rows(b"\0"), 0);
    assert_eq!(
        command_rows(b"SELECT 99999999999999999999999\0"),
        0,
        "overflow is no count"
    );
}
