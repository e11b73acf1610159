//! Greetings and handshake responses: captured from MariaDB 10.11 and the
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
//! `mariadb` CLI (the fuzz seeds), and Gate's own round-tripped.

use bytes::BytesMut;

use super::*;
use crate::protocols::mysql::codec::decode_packet;

fn seed(name: &str) -> BytesMut {
    let path = format!(
        "{}/../fuzz/corpus/mysql_packets/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    BytesMut::from(&std::fs::read(path).unwrap()[..])
}

#[test]
fn mariadb_greeting_decodes() {
    let mut server = seed("query_server");
    let greeting = decode_packet(&mut server).unwrap().unwrap();
    let hello = HandshakeV10::decode(&greeting.payload).unwrap();
    assert!(hello.server_version.contains("MariaDB"), "{hello:?}");
    assert_eq!(hello.scramble.len(), 20);
    assert_eq!(hello.auth_plugin, "mysql_native_password");
    assert_ne!(hello.capabilities & caps::PROTOCOL_41, 0);
    // MariaDB: no CLIENT_MYSQL, and metadata caching among its extended capabilities.
    assert_eq!(hello.capabilities & caps::CLIENT_MYSQL, 0);
    assert_ne!(hello.mariadb_caps & caps::MARIADB_CACHE_METADATA, 0);
}

#[test]
fn cli_handshake_response_decodes_and_round_trips() {
    let mut client = seed("query_client");
    let packet = decode_packet(&mut client).unwrap().unwrap();
    assert_eq!(packet.seq, 1);
    let response = HandshakeResponse::decode(&packet.payload).unwrap();
    assert_eq!(response.user, "gate_app");
    assert_eq!(response.database.as_deref(), Some("shop"));
    assert_eq!(
        response.auth_plugin.as_deref(),
        Some("mysql_native_password")
    );
    assert_eq!(response.auth_response.len(), 20);
    assert!(response.attributes.iter().any(|(k, _)| k == "_client_name"));
    let mut out = BytesMut::new();
    response.encode(&mut out);
    assert_eq!(HandshakeResponse::decode(&out).unwrap(), response);
    assert!(!HandshakeResponse::is_ssl_request(&packet.payload));
}

#[test]
fn gate_greeting_round_trips_and_never_offers_local_files() {
    let hello = HandshakeV10 {
        server_version: "10.11.6-MariaDB".into(),
        connection_id: 42,
        scramble: (1..=20).collect(),
        capabilities: caps::GATE | caps::SSL,
        charset: 45,
        status: SERVER_STATUS_AUTOCOMMIT,
        auth_plugin: "caching_sha2_password".into(),
        mariadb_caps: 0,
    };
    let mut out = BytesMut::new();
    hello.encode(&mut out);
    assert_eq!(HandshakeV10::decode(&out).unwrap(), hello);
    // As a MariaDB server: no CLIENT_MYSQL, extended capabilities in the reserved bytes.
    let mariadb = HandshakeV10 {
        capabilities: hello.capabilities & !caps::CLIENT_MYSQL,
        mariadb_caps: caps::MARIADB_CACHE_METADATA,
        ..hello.clone()
    };
    let mut out = BytesMut::new();
    mariadb.encode(&mut out);
    assert_eq!(HandshakeV10::decode(&out).unwrap(), mariadb);
    assert_eq!(caps::GATE & caps::LOCAL_FILES, 0);
    assert_eq!(caps::GATE & caps::COMPRESS, 0);
    // Every prefix fails cleanly.
    for end in 0..out.len() {
        let _ = HandshakeV10::decode(&out[..end]);
    }
}

#[test]
fn ssl_request_is_the_fixed_part_with_the_ssl_flag() {
    let request = HandshakeResponse {
        capabilities: caps::PROTOCOL_41 | caps::SSL,
        max_packet: 1 << 24,
        charset: 45,
        ..Default::default()
    };
    let mut out = BytesMut::new();
    request.encode_fixed(&mut out);
    assert_eq!(out.len(), SSL_REQUEST_LEN);
    assert!(HandshakeResponse::is_ssl_request(&out));
}

#[test]
fn auth_switch_round_trips() {
    let switch = AuthSwitch {
        plugin: "mysql_clear_password".into(),
        data: Vec::new(),
    };
    let mut out = BytesMut::new();
    switch.encode(&mut out);
    assert_eq!(&out[..], b"\xfemysql_clear_password\0\0");
    assert_eq!(AuthSwitch::decode(&out).unwrap(), switch);
}
