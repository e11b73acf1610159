//! Malformed gRPC input from a real HTTP/2 client (curl): a body that is not
//! protobuf, a frame cut short and an empty message each get a gRPC status
//! with a precise message, and the service keeps answering.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{Db, ROOT_KEY, start_cp};

/// POST one gRPC frame (`body` after the 5-byte prefix given in `frame`) with
/// curl over HTTP/2; returns the response head and trailers as text.
fn grpc_call(addr: std::net::SocketAddr, method: &str, frame: &[u8]) -> String {
    grpc_call_with(addr, method, frame, &[])
}

fn grpc_call_with(
    addr: std::net::SocketAddr,
    method: &str,
    frame: &[u8],
    headers: &[&str],
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frame.bin");
    std::fs::write(&path, frame).unwrap();
    let out = Command::new("curl")
        .args(["-s", "-i", "--http2-prior-knowledge", "--max-time", "10"])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .args(["-H", &format!("authorization: Bearer {ROOT_KEY}")])
        .args(headers.iter().flat_map(|h| ["-H", h]))
        .arg("--data-binary")
        .arg(format!("@{}", path.display()))
        .arg(format!(
            "http://{addr}/gate.v1.ControlPlaneService/{method}"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_grpc_messages_get_a_status_and_the_service_survives() {
    let cp = start_cp(Db::Sqlite).await;
    let addr = cp.addr();
    let cases: [(&[u8], &str); 3] = [
        // Uncompressed, 5 bytes of 0xff: not a protobuf message.
        (
            b"\x00\x00\x00\x00\x05\xff\xff\xff\xff\xff",
            "grpc-status: 13\r\ngrpc-message: failed%20to%20decode%20protobuf%20message",
        ),
        // Declares 100 bytes, sends 5.
        (
            b"\x00\x00\x00\x00\x64abcde",
            "grpc-status: 13\r\ngrpc-message: unexpected%20eof%20decoding%20stream",
        ),
        // An empty CreateResourceRequest: the service's own validation.
        (
            b"\x00\x00\x00\x00\x00",
            "grpc-status: 3\r\ngrpc-message: resource:%20is%20required",
        ),
    ];
    for (frame, wanted) in cases {
        let head = tokio::task::spawn_blocking(move || grpc_call(addr, "CreateResource", frame))
            .await
            .unwrap();
        assert!(head.contains(wanted), "{frame:?}: {head}");
    }
    // A deadline that cannot be read is refused; one that can is honoured.
    let head = tokio::task::spawn_blocking(move || {
        grpc_call_with(
            addr,
            "ListResources",
            b"\x00\x00\x00\x00\x00",
            &["grpc-timeout: soon"],
        )
    })
    .await
    .unwrap();
    assert!(
        head.contains("grpc-status: 3\r\ngrpc-message: grpc-timeout: expected digits"),
        "{head}"
    );
    let head = tokio::task::spawn_blocking(move || {
        grpc_call_with(
            addr,
            "ListResources",
            b"\x00\x00\x00\x00\x00",
            &["grpc-timeout: 5S"],
        )
    })
    .await
    .unwrap();
    assert!(head.contains("grpc-status: 0"), "{head}");
    // Still serving.
    let (status, _) = cp.root("GET", "/api/v1/resources", None, None).await;
    assert_eq!(status, 200);
}
