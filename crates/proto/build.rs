//! Compiles `proto/baove/v1/*.proto` with protox (no system `protoc`) and
//! writes the encoded descriptor set for gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = ["common", "audit", "intake", "case", "referral", "reporting"]
        .map(|name| root.join(format!("baove/v1/{name}.proto")));
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("baove_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // Every message knows its proto name (`prost::Name`), so that code
    // reading a message through the descriptors (the CLI's JSON) takes the
    // name from the type, never from a string beside it.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost's codec, but a request that does not decode is the
        // caller's INVALID_ARGUMENT, not INTERNAL (see src/codec.rs).
        .codec_path("crate::codec::Codec")
        .compile_fds_with_config(fds, config)?;
    Ok(())
}
