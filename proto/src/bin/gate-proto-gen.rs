//! `gate-proto-gen`: regenerates `src/gen/gate.v1.rs` from `gate/v1/*.proto` with the
//! pure-Rust protobuf compiler (no system `protoc`); `--check` fails when the committed file is stale.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const PROTOS: &[&str] = &[
    "gate/v1/tenant.proto",
    "gate/v1/resource_policy.proto",
    "gate/v1/identity_group.proto",
    "gate/v1/webhook_access.proto",
    "gate/v1/audit.proto",
    "gate/v1/recording.proto",
    "gate/v1/connector.proto",
    "gate/v1/controlplane.proto",
];

/// Every message gets serde so the HTTP API speaks the same shapes as gRPC;
/// unknown JSON fields are refused with their name.
const SERDE: &str =
    "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default, deny_unknown_fields)]";

fn generate(out_dir: &Path) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(PROTOS, [root]).map_err(|e| format!("{e:?}"))?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .type_attribute(".gate.v1", SERDE)
        .out_dir(out_dir)
        .compile_fds(fds)
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let committed: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gen");
    let out_dir = if check {
        std::env::temp_dir().join(format!("gate-proto-gen-{}", std::process::id()))
    } else {
        committed.clone()
    };
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("gate-proto-gen: cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    if let Err(e) = generate(&out_dir) {
        eprintln!("gate-proto-gen: {e}");
        return ExitCode::FAILURE;
    }
    if !check {
        println!(
            "gate-proto-gen: wrote {}",
            committed.join("gate.v1.rs").display()
        );
        return ExitCode::SUCCESS;
    }
    let fresh = std::fs::read(out_dir.join("gate.v1.rs"));
    let _ = std::fs::remove_dir_all(&out_dir);
    let current = std::fs::read(committed.join("gate.v1.rs"));
    match (fresh, current) {
        (Ok(fresh), Ok(current)) if fresh == current => {
            println!("verify-generated: proto/src/gen/gate.v1.rs is current");
            ExitCode::SUCCESS
        }
        (Ok(_), Ok(_)) => {
            eprintln!(
                "verify-generated: proto/src/gen/gate.v1.rs is stale; run `make generate` and commit it"
            );
            ExitCode::FAILURE
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("verify-generated: cannot compare the generated file: {e}");
            ExitCode::FAILURE
        }
    }
}
