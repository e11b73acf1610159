//! MariaDB metadata caching through Gate: a client speaking the binary
//! protocol with `MARIADB_CLIENT_CACHE_METADATA` (as libmariadb, and so
//! sysbench, does) executes a prepared statement over a masked column
//! repeatedly. The prepare answer describes the result (the masked column
//! re-described as a string), executions skip the definitions as the real
//! MariaDB upstream does, and every row is still masked.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // in tests a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::{BufMut, BytesMut};
use common::{all_stages, example_policy, mariadb_shop, start_yaml};
use gate_connector::protocols::mysql::codec::{Packet, Reader, decode_packet, put_packet};
use gate_connector::protocols::mysql::handshake::{HandshakeResponse, HandshakeV10, caps};
use gate_connector::protocols::mysql::packets::{Column, is_eof};
use gate_connector::protocols::mysql::scramble;

const SEED: &str = "
    CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128));
    INSERT INTO shop.customers VALUES (1, 'Alice', 'alice@example.com'), (2, 'Bob', 'bob@example.org');
";

/// A blocking MySQL client speaking packets with Gate's own codec.
struct Client {
    tcp: TcpStream,
    buf: BytesMut,
}

impl Client {
    fn read(&mut self) -> Packet {
        loop {
            if let Some(packet) = decode_packet(&mut self.buf).unwrap() {
                return packet;
            }
            let mut chunk = [0u8; 8192];
            let n = self.tcp.read(&mut chunk).unwrap();
            assert!(n > 0, "Gate closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn send(&mut self, seq: u8, payload: &[u8]) {
        let mut out = BytesMut::new();
        put_packet(&mut out, seq, payload);
        self.tcp.write_all(&out).unwrap();
    }
}

/// Execute statement `id` with one INT parameter; (metadata sent, column types, the row's email).
fn execute(client: &mut Client, id: u32, param: i32) -> (bool, Vec<u8>, Option<String>) {
    let mut execute = BytesMut::new();
    execute.put_u8(0x17);
    execute.put_u32_le(id);
    execute.put_u8(0); // no cursor
    execute.put_u32_le(1);
    execute.put_u8(0); // null bitmap
    execute.put_u8(1); // types follow
    execute.put_slice(&[3, 0]); // MYSQL_TYPE_LONG, signed
    execute.put_i32_le(param);
    client.send(0, &execute);
    let count = client.read();
    let mut r = Reader::new(&count.payload);
    assert_eq!(r.lenenc_int("column count").unwrap(), 2);
    let follows = r.u8("metadata follows").unwrap() == 1;
    let mut types = Vec::new();
    if follows {
        for _ in 0..2 {
            types.push(Column::decode(&client.read().payload).unwrap().column_type);
        }
    }
    assert!(
        is_eof(&client.read().payload),
        "EOF after the (skipped) columns"
    );
    let row = client.read();
    assert!(!is_eof(&row.payload), "a row");
    // 0x00 | null bitmap (1 byte for 2 columns) | id i32 | email lenenc
    let mut r = Reader::new(&row.payload);
    r.bytes(2, "header and null bitmap").unwrap();
    assert_eq!(r.u32("id").unwrap(), param as u32);
    let email = r
        .lenenc_bytes("email")
        .unwrap()
        .map(|b| String::from_utf8_lossy(b).into_owned());
    assert!(is_eof(&client.read().payload), "EOF after the row");
    (follows, types, email)
}

#[test]
fn skipped_metadata_keeps_masking_prepared_results() {
    let db = mariadb_shop(vec![SEED.into()]);
    let port = gate_testkit::free_port().unwrap();
    let yaml = format!(
        "identities:\n  - {{name: app, password: app-pw}}\n\
         resources:\n  - {{name: orders-db, protocol: mysql, host: 127.0.0.1, port: {}, database: shop, username: gate_app, password: gate-app-pw, listen_port: {port}}}\n{}",
        db.port(),
        example_policy()
    );
    let gate = start_yaml(&yaml, None);
    let mut client = Client {
        tcp: TcpStream::connect(("127.0.0.1", port)).unwrap(),
        buf: BytesMut::new(),
    };
    let hello = HandshakeV10::decode(&client.read().payload).unwrap();
    assert!(hello.server_version.contains("MariaDB"), "{hello:?}");
    assert_eq!(
        hello.capabilities & caps::CLIENT_MYSQL,
        0,
        "greets as MariaDB"
    );
    assert_ne!(hello.mariadb_caps & caps::MARIADB_CACHE_METADATA, 0);
    let response = HandshakeResponse {
        capabilities: caps::PROTOCOL_41
            | caps::SECURE_CONNECTION
            | caps::PLUGIN_AUTH
            | caps::PLUGIN_AUTH_LENENC
            | caps::CONNECT_WITH_DB
            | caps::TRANSACTIONS,
        max_packet: 1 << 24,
        charset: 45,
        user: "app".into(),
        auth_response: scramble::native(b"app-pw", &hello.scramble),
        database: Some("shop".into()),
        auth_plugin: Some(scramble::NATIVE.into()),
        mariadb_caps: caps::MARIADB_CACHE_METADATA,
        ..Default::default()
    };
    let mut payload = BytesMut::new();
    response.encode(&mut payload);
    client.send(1, &payload);
    assert_eq!(client.read().payload.first(), Some(&0x00), "logged in");

    let mut prepare = vec![0x16];
    prepare.extend_from_slice(b"SELECT id, email FROM customers WHERE id = ?");
    client.send(0, &prepare);
    let ok = client.read();
    let mut r = Reader::new(&ok.payload);
    assert_eq!(r.u8("status").unwrap(), 0, "{ok:?}");
    let id = r.u32("statement id").unwrap();
    // One parameter and two columns, each list with its EOF.
    let described: Vec<Packet> = (0..(1 + 1 + 2 + 1)).map(|_| client.read()).collect();
    let types: Vec<u8> = described[2..4]
        .iter()
        .map(|c| Column::decode(&c.payload).unwrap().column_type)
        .collect();
    let var_string = 253;
    assert_eq!(
        types,
        [3, var_string],
        "the masked column is re-described as a string"
    );
    // The prepare answer described the result: MariaDB skips the definitions
    // from the first execution on, and Gate passes that on.
    for (param, want) in [
        (1, "*************.com"),
        (2, "***********.org"),
        (1, "*************.com"),
    ] {
        let (follows, _, email) = execute(&mut client, id, param);
        assert!(!follows, "the unchanged column definitions are skipped");
        assert_eq!(email.as_deref(), Some(want), "and rows are still masked");
    }

    // The policy changes (no masks now) while the upstream keeps skipping:
    // the client's description is stale, so Gate sends the real one.
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.rego");
    std::fs::write(&allow, "package allow\nimport rego.v1\nsession := {\"action\": \"allow\"}\npre_request := {\"action\": \"allow\"}\npost_request := {\"action\": \"allow\"}\n").unwrap();
    let config: gate_config::ConnectorConfig = gate_config::load_str(
        "allow.yaml",
        &format!("resources: []\n{}", all_stages(&allow)),
        &|_| None,
    )
    .unwrap();
    let engine = gate_connector::startup::compile_policies(&config).unwrap();
    gate.gate
        .live
        .replace(engine, gate_connector::managed::Managed::default());
    let (follows, types, email) = execute(&mut client, id, 1);
    assert!(follows, "re-described after the plan changed");
    assert_eq!(types.len(), 2);
    assert_eq!(email.as_deref(), Some("alice@example.com"));
    let (follows, _, email) = execute(&mut client, id, 2);
    assert!(!follows, "and skipped again once the client holds it");
    assert_eq!(email.as_deref(), Some("bob@example.org"));
}
