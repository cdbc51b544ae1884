//! Compiles the .proto files with protox (pure Rust), so no system `protoc` is needed.
use prost::Message;
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/migrex/v1/notice.proto",
        "proto/migrex/v1/exchange.proto",
        "proto/migrex/v1/desk.proto",
        "proto/migrex/v1/stats.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // The descriptor set feeds gRPC server reflection.
    std::fs::write(out.join("migrex_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
