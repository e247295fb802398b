//! Compiles the vendored Triton gRPC protocol (proto/) into Rust with protox, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/grpc_service.proto", "proto/model_config.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(["grpc_service.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The client is generic over its transport: tests and the load example bring tonic's Channel.
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
