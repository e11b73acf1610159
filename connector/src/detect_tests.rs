//! Byte-literal tests for [`super::detect`], including openings split anywhere.

use super::{Detected, Detection, MAX_DETECT_BYTES, detect};

fn pg_packet(code: u32, body: &[u8]) -> Vec<u8> {
    let length = u32::try_from(8 + body.len()).unwrap_or(u32::MAX);
    let mut packet = length.to_be_bytes().to_vec();
    packet.extend_from_slice(&code.to_be_bytes());
    packet.extend_from_slice(body);
    packet
}

fn mongo_header(opcode: i32, response_to: i32) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(&300i32.to_le_bytes());
    header.extend_from_slice(&7i32.to_le_bytes());
    header.extend_from_slice(&response_to.to_le_bytes());
    header.extend_from_slice(&opcode.to_le_bytes());
    header.extend_from_slice(&[0u8; 20]);
    header
}

/// Every opening Gate must recognise, with what it is.
fn openings() -> Vec<(&'static str, Vec<u8>, Detected)> {
    vec![
        (
            "startup",
            pg_packet(196_608, b"user\0app\0database\0appdb\0\0"),
            Detected::Postgres,
        ),
        ("SSLRequest", pg_packet(80_877_103, b""), Detected::Postgres),
        (
            "GSSENCRequest",
            pg_packet(80_877_104, b""),
            Detected::Postgres,
        ),
        (
            "CancelRequest",
            pg_packet(80_877_102, &[0, 0, 0, 1, 0, 0, 0, 2]),
            Detected::Postgres,
        ),
        (
            "TLS 1.2 ClientHello",
            vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ],
            Detected::Tls,
        ),
        (
            "HTTP/1.1 GET",
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Detected::Http1,
        ),
        (
            "HTTP/1.1 POST",
            b"POST /mcp HTTP/1.1\r\n".to_vec(),
            Detected::Http1,
        ),
        (
            "HTTP/1.1 OPTIONS",
            b"OPTIONS * HTTP/1.1\r\n".to_vec(),
            Detected::Http1,
        ),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04".to_vec(),
            Detected::Http2,
        ),
        (
            "SSH banner",
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec(),
            Detected::Ssh,
        ),
        ("MongoDB OP_MSG", mongo_header(2013, 0), Detected::Mongodb),
        (
            "MongoDB OP_QUERY hello",
            mongo_header(2004, 0),
            Detected::Mongodb,
        ),
        (
            "MongoDB OP_COMPRESSED",
            mongo_header(2012, 0),
            Detected::Mongodb,
        ),
    ]
}

#[test]
fn every_opening_is_detected() {
    for (name, bytes, want) in openings() {
        assert_eq!(detect(&bytes), Detection::Detected(want), "{name}");
    }
}

/// A first packet may arrive in pieces: every proper prefix either needs
/// more bytes or already tells the same protocol, never another one.
#[test]
fn split_openings_need_more_bytes_and_never_mislead() {
    for (name, bytes, want) in openings() {
        let mut decided_at = None;
        for end in 0..=bytes.len() {
            match detect(&bytes[..end]) {
                Detection::NeedMore => {
                    assert!(decided_at.is_none(), "{name}: undecided again at {end}")
                }
                Detection::Detected(got) => {
                    assert_eq!(got, want, "{name} at {end} bytes");
                    decided_at.get_or_insert(end);
                }
                Detection::Unknown => panic!("{name}: unknown at {end} bytes"),
            }
        }
        assert!(
            decided_at.is_some_and(|n| n <= MAX_DETECT_BYTES),
            "{name}: {decided_at:?}"
        );
    }
    assert_eq!(detect(b""), Detection::NeedMore);
}

#[test]
fn what_no_protocol_opens_with_is_unknown() {
    for bytes in [
        &b"hello there\r\n"[..],
        b"GETX / HTTP/1.1\r\n",
        b"SSX-2.0",
        // PostgreSQL-like, with an unknown request code.
        &pg_packet(12_345, b"")[..],
        // An SSLRequest with the wrong length.
        &[0, 0, 0, 9, 0x04, 0xd2, 0x16, 0x2f, 0][..],
        // A startup packet longer than PostgreSQL accepts.
        &[0, 0, 0x30, 0x00, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        // TLS record of another type (alert).
        &[
            0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ][..],
    ] {
        assert_eq!(detect(bytes), Detection::Unknown, "{bytes:?}");
    }
    // A MongoDB reply (responseTo set) is not what a client opens with.
    assert_eq!(detect(&mongo_header(2013, 5)), Detection::Unknown);
    // Nor an unknown opcode.
    assert_eq!(detect(&mongo_header(1, 0)), Detection::Unknown);
}

#[test]
fn with_the_most_bytes_detection_always_decides() {
    // Each byte value as the first of a maximal input.
    for first in 0..=255u8 {
        let mut bytes = vec![first; MAX_DETECT_BYTES];
        bytes[1] = 0x03;
        assert_ne!(detect(&bytes), Detection::NeedMore, "{bytes:?}");
    }
}
