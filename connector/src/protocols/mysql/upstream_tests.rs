//! Gate's upstream login against a scripted MySQL 8 server that demands
//! caching_sha2_password full authentication without TLS: Gate must ask for
//! the public key and send its password RSA-OAEP encrypted. The script
//! checks the fast-path proof Gate tried first and decrypts with the
//! `openssl` CLI (independent of Gate's own RSA code).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

use bytes::BytesMut;
use gate_config::ConnectorConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::super::codec::put_packet;
use super::super::handshake::{HandshakeResponse, HandshakeV10, SERVER_STATUS_AUTOCOMMIT, caps};
use super::super::packets::{OK, OkPacket};
use super::super::scramble::{self, CACHING_SHA2};
use super::super::wire::expect_packet;
use super::{LoginParams, connect};

const PASSWORD: &str = "upstream-secret";

/// An RSA key made by openssl: (private key file, public key PEM).
fn openssl_key(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let key = dir.join("server.pem");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    (key, String::from_utf8(public.stdout).unwrap())
}

/// Decrypt with openssl (RSA_PKCS1_OAEP_PADDING: SHA-1, MGF1-SHA-1).
fn openssl_decrypt(key: &std::path::Path, dir: &std::path::Path, sealed: &[u8]) -> Vec<u8> {
    let input = dir.join("sealed.bin");
    std::fs::write(&input, sealed).unwrap();
    let out = Command::new("openssl")
        .args([
            "pkeyutl",
            "-decrypt",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-inkey",
        ])
        .arg(key)
        .arg("-in")
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

async fn send(stream: &mut tokio::net::TcpStream, seq: u8, payload: &[u8]) {
    let mut out = BytesMut::new();
    put_packet(&mut out, seq, payload);
    stream.write_all(&out).await.unwrap();
}

#[tokio::test]
async fn full_authentication_without_tls_sends_the_password_rsa_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let (key_file, public_pem) = openssl_key(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let scramble: Vec<u8> = (0..20u8).map(|i| 0x30 + i).collect();
    let server = {
        let (dir, scramble) = (dir.path().to_path_buf(), scramble.clone());
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            let mut hello = BytesMut::new();
            HandshakeV10 {
                server_version: "8.4.0".into(),
                connection_id: 7,
                scramble: scramble.clone(),
                capabilities: caps::GATE | caps::SSL,
                charset: 255,
                status: SERVER_STATUS_AUTOCOMMIT,
                auth_plugin: CACHING_SHA2.into(),
                mariadb_caps: 0,
            }
            .encode(&mut hello);
            send(&mut s, 0, &hello).await;
            let response = expect_packet(&mut s, &mut buf).await.unwrap();
            let response = HandshakeResponse::decode(&response.payload).unwrap();
            assert_eq!(response.user, "gate_app");
            assert_eq!(response.auth_plugin.as_deref(), Some(CACHING_SHA2));
            assert_eq!(
                response.auth_response,
                scramble::caching_sha2(PASSWORD.as_bytes(), &scramble),
                "the fast path first"
            );
            send(&mut s, 2, &[0x01, scramble::FULL_AUTH]).await;
            let request = expect_packet(&mut s, &mut buf).await.unwrap();
            assert_eq!(&request.payload[..], [scramble::REQUEST_PUBLIC_KEY]);
            let mut key = vec![0x01];
            key.extend_from_slice(public_pem.as_bytes());
            send(&mut s, request.seq + 1, &key).await;
            let sealed = expect_packet(&mut s, &mut buf).await.unwrap();
            assert_eq!(sealed.payload.len(), 256);
            let plain = openssl_decrypt(&key_file, &dir, &sealed.payload);
            let password: Vec<u8> = plain
                .iter()
                .zip(scramble.iter().cycle())
                .map(|(p, s)| p ^ s)
                .collect();
            let mut ok = BytesMut::new();
            OkPacket {
                affected_rows: 0,
                status: SERVER_STATUS_AUTOCOMMIT,
                warnings: 0,
            }
            .encode(OK, &mut ok);
            send(&mut s, sealed.seq + 1, &ok).await;
            password
        })
    };
    let yaml = format!(
        "resources:\n  - {{name: db, protocol: mysql, host: 127.0.0.1, port: {port}, database: shop, username: gate_app, password: {PASSWORD}}}\n"
    );
    let config: ConnectorConfig = gate_config::load_str("test.yaml", &yaml, &|_| None).unwrap();
    let params = LoginParams {
        user: "gate_app".into(),
        database: Some("shop".into()),
        shaping: 0,
        charset: 255,
        mariadb: 0,
    };
    let upstream = connect(&config.resources[0], &params).await.unwrap();
    assert_eq!(upstream.server_version, "8.4.0");
    let mut expected = PASSWORD.as_bytes().to_vec();
    expected.push(0);
    assert_eq!(
        server.await.unwrap(),
        expected,
        "password ‖ NUL, XOR the scramble"
    );
}
