//! Generates the remote-write and exposition message types from `proto/` with a pure-Rust
//! protobuf compiler (protox), so building needs no system `protoc`; and
//! has the release binary linked with the functions an agent runs placed
//! together.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/remote_write.proto", "proto/metrics.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    order_functions();
    Ok(())
}

/// Passes `linker/function-order.txt` to the release link, which then
/// places those functions first and together: a third of the resident
/// memory the scattered code costs (`bench/function-order.sh` says why and
/// makes the list). Only where the link is rustc's own LLD, which knows
/// `--symbol-ordering-file`; a listed function the build lacks is skipped
/// without a word, so a stale list costs memory, never a build.
/// `REDPUSH_FUNCTION_ORDER=0` turns it off.
fn order_functions() {
    let order = "linker/function-order.txt";
    println!("cargo:rerun-if-changed={order}");
    println!("cargo:rerun-if-env-changed=REDPUSH_FUNCTION_ORDER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let wanted = var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("REDPUSH_FUNCTION_ORDER") != "0"
        // A linker of the user's own choosing may not know the option.
        && !var("CARGO_ENCODED_RUSTFLAGS").contains("link");
    if !wanted || !rustc_links_with_lld(&var("RUSTC")) {
        return;
    }
    let path = Path::new(&var("CARGO_MANIFEST_DIR")).join(order);
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        path.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// Whether `rustc` links x86_64 Linux binaries with its own LLD: it does by
/// default from 1.90 on where the toolchain ships it (`gcc-ld/ld.lld`);
/// a distribution's rustc without it links with the system's linker.
fn rustc_links_with_lld(rustc: &str) -> bool {
    let output = |args: &[&str]| {
        Command::new(rustc)
            .args(args)
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .unwrap_or_default()
    };
    let version = output(&["-V"]);
    let minor: u32 = version
        .split(['.', ' '])
        .nth(2)
        .and_then(|minor| minor.parse().ok())
        .unwrap_or(0);
    let sysroot = output(&["--print", "sysroot"]);
    let lld =
        Path::new(sysroot.trim()).join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld/ld.lld");
    minor >= 90 && lld.exists()
}
