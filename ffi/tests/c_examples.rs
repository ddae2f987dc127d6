//! The C examples, compiled with `cc` against include/shoal.h and the static library, and
//! run; under valgrind's memcheck when it is installed (`.ci/run` installs it): no definite
//! leak, no invalid read or write.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A folder of this test's own under the target directory, holding libshoal.a: cargo does
/// not build a crate's static library for its tests, and the running `cargo test` holds the
/// main target directory, so the library is built once into `target/c-api` by a cargo of
/// its own.
fn target_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let ffi = Path::new(env!("CARGO_MANIFEST_DIR"));
            let dir = ffi.join("../target/c-api");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "shoal-ffi", "--target-dir"])
                .arg(&dir)
                .current_dir(ffi)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building libshoal.a failed");
            dir.join("debug")
        })
        .clone()
}

fn build(example: &str) -> PathBuf {
    let ffi = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = target_dir();
    let out = target.join(format!("c-example-{example}"));
    let status = Command::new("cc")
        .arg(ffi.join(format!("examples/{example}.c")))
        .arg("-I")
        .arg(ffi.join("include"))
        .arg(target.join("libshoal.a"))
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&out)
        .status()
        .expect("cc is installed");
    assert!(status.success(), "cc failed on {example}.c");
    out
}

fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if port < 55_000 && std::net::UdpSocket::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn run(example: &str, args: &[String]) {
    let binary = build(example);
    let valgrind = Command::new("valgrind").arg("--version").output().is_ok();
    let mut command = match valgrind {
        true => {
            let mut c = Command::new("valgrind");
            let suppressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("valgrind.supp");
            c.arg(format!("--suppressions={}", suppressions.display()));
            c.args([
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--error-exitcode=99",
                "--quiet",
            ])
            .arg(&binary);
            c
        }
        false => Command::new(&binary),
    };
    let out = command.args(args).output().expect("the example runs");
    assert!(
        out.status.success(),
        "{example} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hello() {
    run("hello", &[]);
}

#[test]
fn pubsub() {
    run("pubsub", &[]);
}

#[test]
fn replica() {
    run(
        "replica",
        &[free_port().to_string(), free_port().to_string()],
    );
}
