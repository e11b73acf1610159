//! The codec against hand-built frames: every prefix is incomplete, every
//! section kind, checksums, the legacy handshake, compression and limits.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use bson::doc;
use bytes::BytesMut;

use super::*;

fn msg(flags: u32, body: Document, sequences: Vec<Sequence>) -> BytesMut {
    let mut out = BytesMut::new();
    encode_msg(
        &mut out,
        7,
        0,
        &OpMsg {
            flags,
            body,
            sequences,
        },
    );
    out
}

/// An OP_MSG as a driver writes one: `insert` with its documents in a kind-1 section.
fn insert_frame() -> BytesMut {
    msg(
        0,
        doc! {"insert": "customers", "$db": "shop"},
        vec![Sequence {
            identifier: "documents".into(),
            documents: vec![doc! {"_id": 1, "email": "a@b.c"}, doc! {"_id": 2}],
        }],
    )
}

#[test]
fn every_prefix_is_incomplete_and_the_whole_decodes() {
    let bytes = insert_frame();
    for end in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..end]);
        assert_eq!(
            decode_frame(&mut buf, MAX_MESSAGE),
            Ok(None),
            "prefix {end}"
        );
    }
    let mut buf = bytes.clone();
    buf.extend_from_slice(b"next");
    let frame = decode_frame(&mut buf, MAX_MESSAGE).unwrap().unwrap();
    assert_eq!(&buf[..], b"next");
    assert_eq!(frame.raw, bytes.freeze());
    assert_eq!(frame.header.request_id, 7);
    assert_eq!(frame.header.opcode, opcode::MSG);
    let Message::Msg(m) = decode_message(&frame).unwrap() else {
        panic!("not an OP_MSG");
    };
    assert_eq!(m.body.get_str("insert").unwrap(), "customers");
    assert_eq!(m.sequences.len(), 1);
    assert_eq!(m.sequences[0].identifier, "documents");
    assert_eq!(m.sequences[0].documents.len(), 2);
}

#[test]
fn re_encoding_a_decoded_message_gives_the_same_bytes() {
    let bytes = insert_frame();
    let frame = decode_frame(&mut bytes.clone(), MAX_MESSAGE)
        .unwrap()
        .unwrap();
    let Message::Msg(m) = decode_message(&frame).unwrap() else {
        panic!("not an OP_MSG");
    };
    let mut again = BytesMut::new();
    encode_msg(&mut again, 7, 0, &m);
    assert_eq!(again, bytes);
}

#[test]
fn checksums_are_checked_and_flags_kept() {
    let mut bytes = msg(
        flags::MORE_TO_COME,
        doc! {"ping": 1, "$db": "admin"},
        vec![],
    );
    // Add a checksum as a driver would: set the flag, grow the length, append CRC-32C.
    bytes[16] |= 1;
    let len = (bytes.len() + 4) as i32;
    bytes[..4].copy_from_slice(&len.to_le_bytes());
    let sum = crc32c(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    let frame = decode_frame(&mut bytes.clone(), MAX_MESSAGE)
        .unwrap()
        .unwrap();
    verify_checksum(&frame).unwrap();
    let Message::Msg(m) = decode_message(&frame).unwrap() else {
        panic!("not an OP_MSG");
    };
    assert_eq!(m.flags & flags::MORE_TO_COME, flags::MORE_TO_COME);
    assert_eq!(m.body.get_i32("ping").unwrap(), 1);
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    let bad = decode_frame(&mut bytes, MAX_MESSAGE).unwrap().unwrap();
    assert_eq!(verify_checksum(&bad), Err(CodecError::Checksum));
    // The CRC-32C check value.
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn unknown_required_flags_and_bad_sections_are_refused() {
    let mut bytes = msg(0, doc! {"ping": 1}, vec![]);
    bytes[16] = 0x04;
    let frame = decode_frame(&mut bytes, MAX_MESSAGE).unwrap().unwrap();
    assert_eq!(decode_message(&frame), Err(CodecError::UnknownFlags(4)));
    // Optional bits (16 and up) are fine: exhaustAllowed.
    let mut bytes = msg(flags::EXHAUST_ALLOWED, doc! {"getMore": 1_i64}, vec![]);
    let frame = decode_frame(&mut bytes, MAX_MESSAGE).unwrap().unwrap();
    assert!(decode_message(&frame).is_ok());
    // A section kind that does not exist.
    let mut bytes = msg(0, doc! {"ping": 1}, vec![]);
    bytes[20] = 9;
    let frame = decode_frame(&mut bytes, MAX_MESSAGE).unwrap().unwrap();
    assert!(decode_message(&frame).is_err());
}

#[test]
fn sizes_are_limited_before_the_body_arrives() {
    let mut huge = BytesMut::new();
    huge.extend_from_slice(&(MAX_MESSAGE as i32 + 1).to_le_bytes());
    assert_eq!(
        decode_frame(&mut huge, MAX_MESSAGE),
        Err(CodecError::TooLarge {
            got: MAX_MESSAGE + 1,
            max: MAX_MESSAGE
        })
    );
    let mut short = BytesMut::from(&8i32.to_le_bytes()[..]);
    assert_eq!(
        decode_frame(&mut short, MAX_MESSAGE),
        Err(CodecError::TooShort(8))
    );
    let mut negative = BytesMut::from(&(-1i32).to_le_bytes()[..]);
    assert!(decode_frame(&mut negative, MAX_MESSAGE).is_err());
}

#[test]
fn the_legacy_handshake_and_its_reply() {
    let mut bytes = BytesMut::new();
    let query = OpQuery {
        flags: 0,
        collection: "admin.$cmd".into(),
        skip: 0,
        limit: -1,
        query: doc! {"isMaster": 1, "helloOk": true, "client": {"driver": {"name": "x"}}},
    };
    encode_query(&mut bytes, 3, &query);
    let frame = decode_frame(&mut bytes, MAX_MESSAGE).unwrap().unwrap();
    assert_eq!(frame.header.opcode, opcode::QUERY);
    assert_eq!(decode_message(&frame).unwrap(), Message::Query(query));

    let reply = OpReply {
        flags: 8,
        cursor_id: 0,
        starting_from: 0,
        documents: vec![doc! {"ismaster": true, "ok": 1.0}],
    };
    let mut out = BytesMut::new();
    encode_reply(&mut out, 9, 3, &reply);
    let frame = decode_frame(&mut out, MAX_MESSAGE).unwrap().unwrap();
    assert_eq!(frame.header.response_to, 3);
    assert_eq!(decode_message(&frame).unwrap(), Message::Reply(reply));
}

#[test]
fn compressed_messages_decode_for_every_compressor() {
    let inner = insert_frame();
    for compressor in [0u8, 1, 2, 3] {
        let mut out = BytesMut::new();
        assert!(encode_compressed(&mut out, &inner, compressor));
        let frame = decode_frame(&mut out, MAX_MESSAGE).unwrap().unwrap();
        assert_eq!(frame.header.opcode, opcode::COMPRESSED);
        let Message::Msg(m) = decode_message(&frame).unwrap() else {
            panic!("not an OP_MSG");
        };
        assert_eq!(m.sequences[0].documents.len(), 2, "compressor {compressor}");
        // A lying uncompressedSize, either way: refused.
        for size in [5i32, (inner.len() - 16 + 1) as i32] {
            let mut out = BytesMut::new();
            assert!(encode_compressed(&mut out, &inner, compressor));
            out[20..24].copy_from_slice(&size.to_le_bytes());
            let frame = decode_frame(&mut out, MAX_MESSAGE).unwrap().unwrap();
            assert_eq!(
                decode_message(&frame),
                Err(CodecError::Malformed("uncompressedSize")),
                "compressor {compressor}, size {size}"
            );
        }
        // Cut short: refused, never a guess.
        if compressor != 0 {
            let mut out = BytesMut::new();
            assert!(encode_compressed(&mut out, &inner, compressor));
            let cut = out.len() - 8;
            out.truncate(cut);
            out[0..4].copy_from_slice(&(cut as i32).to_le_bytes());
            let frame = decode_frame(&mut out, MAX_MESSAGE).unwrap().unwrap();
            assert!(decode_message(&frame).is_err(), "compressor {compressor}");
        }
    }
    // An unknown compressor (4): a clear error.
    let mut out = BytesMut::new();
    assert!(encode_compressed(&mut out, &inner, 0));
    out[24] = 4;
    let frame = decode_frame(&mut out, MAX_MESSAGE).unwrap().unwrap();
    assert_eq!(decode_message(&frame), Err(CodecError::Compressor(4)));
    assert!(!encode_compressed(&mut BytesMut::new(), &inner, 4));
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x1234_5678u32;
    for len in 16..200usize {
        let mut bytes = BytesMut::new();
        bytes.extend_from_slice(&(len as i32).to_le_bytes());
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&[2013i32, 2004, 2012, 1][len % 4].to_le_bytes());
        while bytes.len() < len {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            bytes.extend_from_slice(&[(seed >> 16) as u8]);
        }
        let frame = decode_frame(&mut bytes, MAX_MESSAGE).unwrap().unwrap();
        let _ = decode_message(&frame);
        let _ = verify_checksum(&frame);
    }
}

/// A document nested `depth` levels: {a: {a: {... {}}}}.
fn nested(depth: usize) -> Vec<u8> {
    let mut doc = vec![5, 0, 0, 0, 0];
    for _ in 0..depth {
        let mut outer = Vec::with_capacity(doc.len() + 8);
        outer.extend_from_slice(&((doc.len() + 8) as i32).to_le_bytes());
        outer.extend_from_slice(&[0x03, b'a', 0]);
        outer.extend_from_slice(&doc);
        outer.push(0);
        doc = outer;
    }
    doc
}

#[test]
fn deep_nesting_is_refused_before_it_is_decoded() {
    let (doc, len) = read_document(&nested(MAX_DEPTH - 1), "test").unwrap();
    assert_eq!(len, nested(MAX_DEPTH - 1).len());
    assert!(doc.contains_key("a"));
    for depth in [MAX_DEPTH, 20_000] {
        assert_eq!(
            read_document(&nested(depth), "test").map(|_| ()),
            Err(CodecError::TooDeep("test"))
        );
    }
    // Every element kind a driver sends still reads.
    let all = doc! {
        "d": 1.5, "s": "x", "o": {"a": [1, 2]}, "b": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1] },
        "id": bson::oid::ObjectId::new(), "t": true, "dt": bson::DateTime::now(), "n": bson::Bson::Null,
        "re": bson::Regex { pattern: "a.*".try_into().unwrap(), options: "i".try_into().unwrap() }, "js": bson::Bson::JavaScriptCode("f()".into()),
        "jss": bson::Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope { code: "g()".into(), scope: doc! {"x": 1} }),
        "i": 1_i32, "ts": bson::Timestamp { time: 1, increment: 2 }, "l": 2_i64,
        "dec": bson::Bson::Decimal128(bson::Decimal128::from_bytes([0; 16])), "min": bson::Bson::MinKey, "max": bson::Bson::MaxKey,
        "u": bson::Bson::Undefined, "sym": bson::Bson::Symbol("s".into()),
    };
    let bytes = all.to_vec().unwrap();
    assert_eq!(read_document(&bytes, "all").unwrap().0, all);
}

#[test]
fn every_compressor_round_trips_empty_and_large_bodies() {
    use super::decompress;
    for body in [
        Vec::new(),
        (0..200_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    ] {
        let mut inner = BytesMut::new();
        inner.extend_from_slice(&[0; 12]);
        inner.extend_from_slice(&opcode::MSG.to_le_bytes());
        inner.extend_from_slice(&body);
        for compressor in [0u8, 1, 2, 3] {
            let mut out = BytesMut::new();
            assert!(encode_compressed(&mut out, &inner, compressor));
            let frame = decode_frame(&mut out, MAX_MESSAGE).unwrap().unwrap();
            assert_eq!(
                decompress(frame.body()),
                Ok((opcode::MSG, body.clone())),
                "compressor {compressor}, {} bytes",
                body.len()
            );
        }
    }
}
