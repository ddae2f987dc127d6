//! GET of one local key: from C through `shoal_exec` (ffi/examples/bench_get.c, compiled
//! against this build's libshoal.a) beside the Rust API's `Node::get`, in one run.
//! Prints `RESULT <name> <value>` lines; the target is C >= 0.7x Rust.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const OPS: u64 = 2_000_000;

fn rust_ops_per_s() -> f64 {
    let node = shoal_core::Node::open(shoal_core::Config::new()).expect("open node");
    node.set("key:1", "0123456789abcdef").expect("set");
    let started = Instant::now();
    for _ in 0..OPS {
        let value = node.get("key:1").expect("get");
        assert!(value.is_some());
    }
    OPS as f64 / started.elapsed().as_secs_f64()
}

fn c_ops_per_s() -> f64 {
    let ffi = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Cargo does not build the static library for benches: build it, optimized, apart (the
    // running cargo holds the main target directory).
    let dir = ffi.join("../target/c-api");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "shoal-ffi",
            "--target-dir",
        ])
        .arg(&dir)
        .current_dir(ffi)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building libshoal.a failed");
    let target = dir.join("release");
    let binary = target.join("bench_get");
    let built = Command::new("cc")
        .args(["-O2"])
        .arg(ffi.join("examples/bench_get.c"))
        .arg("-I")
        .arg(ffi.join("include"))
        .arg(target.join("libshoal.a"))
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&binary)
        .status()
        .expect("cc is installed");
    assert!(built.success(), "cc failed");
    let out = Command::new(&binary)
        .arg(OPS.to_string())
        .output()
        .expect("the C bench runs");
    assert!(out.status.success(), "the C bench failed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ops per second")
}

fn main() {
    let rust = rust_ops_per_s();
    let c = c_ops_per_s();
    println!("RESULT rust_get_ops_per_s {rust:.0}");
    println!("RESULT c_exec_get_ops_per_s {c:.0}");
    println!("RESULT ratio_c_to_rust {:.2}", c / rust);
}
