//! Framing and field encodings: byte literals, every prefix, continuations.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::*;

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_packet(&mut out, seq, payload);
    out.to_vec()
}

#[test]
fn one_packet_and_every_prefix() {
    let bytes = [0x03, 0x00, 0x00, 0x00, 0x03, b'h', b'i'];
    for end in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..end]);
        assert_eq!(decode_packet(&mut buf), Ok(None), "prefix of {end}");
        assert_eq!(
            buf.len(),
            end,
            "nothing is consumed until the packet is whole"
        );
    }
    let mut buf = BytesMut::from(&bytes[..]);
    let p = decode_packet(&mut buf).unwrap().unwrap();
    assert_eq!((p.seq, p.last_seq, &p.payload[..]), (0, 0, &b"\x03hi"[..]));
    assert_eq!(&p.raw[..], &bytes[..]);
    assert!(buf.is_empty());
}

#[test]
fn payloads_of_16_mib_and_more_are_continued() {
    for len in [MAX_PACKET - 1, MAX_PACKET, MAX_PACKET + 10] {
        let payload = vec![7u8; len];
        let bytes = packet(3, &payload);
        let physical = len / MAX_PACKET + 1;
        assert_eq!(bytes.len(), len + 4 * physical, "{len}");
        let mut buf = BytesMut::from(&bytes[..]);
        let p = decode_packet(&mut buf).unwrap().unwrap();
        assert_eq!(p.payload.len(), len);
        assert_eq!(p.seq, 3);
        assert_eq!(usize::from(p.last_seq), 3 + physical - 1);
        // Cut anywhere: not yet whole.
        let mut cut = BytesMut::from(&bytes[..bytes.len() - 1]);
        assert_eq!(decode_packet(&mut cut), Ok(None));
    }
}

#[test]
fn continuation_out_of_sequence_is_refused() {
    let mut bytes = vec![0xFF, 0xFF, 0xFF, 0x00];
    bytes.extend(std::iter::repeat_n(0u8, MAX_PACKET));
    bytes.extend_from_slice(&[0x01, 0x00, 0x00, 0x05, 0x01]);
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(
        decode_packet(&mut buf),
        Err(CodecError::Sequence {
            expected: 1,
            got: 5
        })
    );
}

#[test]
fn lenenc_boundaries_round_trip() {
    for n in [
        0u64,
        250,
        251,
        0xFFFF,
        0x1_0000,
        0xFF_FFFF,
        0x100_0000,
        u64::MAX,
    ] {
        let mut out = BytesMut::new();
        put_lenenc(&mut out, n);
        let mut r = Reader::new(&out);
        assert_eq!(r.lenenc("n"), Ok(Some(n)), "{n}");
        assert!(r.is_empty());
    }
    assert_eq!(Reader::new(&[0xFB]).lenenc("null"), Ok(None));
    assert!(Reader::new(&[0xFF]).lenenc("bad").is_err());
    assert!(Reader::new(&[0xFC, 0x01]).lenenc("short").is_err());
    assert!(Reader::new(&[0x05, b'a']).lenenc_bytes("short").is_err());
}
