//! `shoal-server` as a process: configuration files and options read as redis-server reads
//! them (and refused with Redis's report), CONFIG GET/SET/REWRITE, clean shutdown on
//! SIGTERM and SHUTDOWN, logging, MONITOR and CLIENT PAUSE seen from real connections.

mod common;

use common::{free_port, RespConn, ShoalServer, Value};
use std::process::Command;
use std::time::{Duration, Instant};

fn run_expecting_failure(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal-server"))
        .args(args)
        .output()
        .expect("run shoal-server");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_configuration_stops_start_up_with_the_line_and_reason() {
    let dir = std::env::temp_dir().join(format!("shoal-conf-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.conf");
    std::fs::write(&file, "# comment\nport 7000\nnosuchdirective yes\n").unwrap();
    let err = run_expecting_failure(&[file.to_str().unwrap()]);
    assert_eq!(
        err,
        "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 3\n>>> 'nosuchdirective yes'\nBad directive or wrong number of arguments\n"
    );
    let err = run_expecting_failure(&["--port", "abc"]);
    assert!(
        err.contains(">>> 'port \"abc\"'\nargument couldn't be parsed into an integer"),
        "{err}"
    );
    let err = run_expecting_failure(&["--maxmemory", "1.5gb"]);
    assert!(err.contains("argument must be a memory value"), "{err}");
    let err = run_expecting_failure(&["--daemonize", "yes"]);
    assert!(err.contains("daemonize yes is not supported"), "{err}");
    let err = run_expecting_failure(&[dir.join("missing.conf").to_str().unwrap()]);
    assert!(err.contains("can't open config file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_file_includes_options_rewrite_and_clean_shutdown() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("shoal-conf-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (file, extra, log, pid) = (
        dir.join("shoal.conf"),
        dir.join("extra.conf"),
        dir.join("shoal.log"),
        dir.join("shoal.pid"),
    );
    std::fs::write(&extra, "hash-max-ziplist-entries 64\n").unwrap();
    std::fs::write(
        &file,
        format!(
            "# Shoal\nport {port}\nbind 127.0.0.1\nsave \"\"\nlogfile \"{}\"\npidfile {}\ninclude {}\nloglevel verbose\n",
            log.display(),
            pid.display(),
            extra.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal-server"))
        .arg(&file)
        .args(["--maxmemory", "1mb", "--dir"])
        .arg(&dir)
        .spawn()
        .unwrap();
    let mut server = ShoalServerHandle { child: &mut child };
    common::wait_for_pong(port);
    let mut conn = RespConn::connect(port).unwrap();
    let get = |conn: &mut RespConn, name: &[u8]| conn.call(&[b"CONFIG", b"GET", name]);
    assert_eq!(
        get(&mut conn, b"hash-max-listpack-entries"),
        Value::Array(vec![
            Value::Bulk(b"hash-max-listpack-entries".to_vec()),
            Value::Bulk(b"64".to_vec())
        ])
    );
    assert_eq!(
        get(&mut conn, b"maxmemory"),
        Value::Array(vec![
            Value::Bulk(b"maxmemory".to_vec()),
            Value::Bulk(b"1048576".to_vec())
        ])
    );
    let pid_text = std::fs::read_to_string(&pid).unwrap();
    assert_eq!(pid_text.trim(), server.child.id().to_string());

    // CONFIG SET is all or nothing.
    assert_eq!(
        conn.call(&[b"CONFIG", b"SET", b"maxmemory", b"2mb", b"maxmemory-policy", b"bogus"]),
        Value::Error("ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction".into())
    );
    assert_eq!(
        get(&mut conn, b"maxmemory"),
        Value::Array(vec![
            Value::Bulk(b"maxmemory".to_vec()),
            Value::Bulk(b"1048576".to_vec())
        ])
    );
    assert_eq!(
        conn.call(&[
            b"CONFIG",
            b"SET",
            b"maxmemory",
            b"2mb",
            b"slowlog-max-len",
            b"7"
        ]),
        Value::Status("OK".into())
    );
    assert_eq!(
        conn.call(&[b"CONFIG", b"REWRITE"]),
        Value::Status("OK".into())
    );
    let rewritten = std::fs::read_to_string(&file).unwrap();
    assert!(rewritten.starts_with("# Shoal\n"), "{rewritten}");
    assert!(rewritten.contains("\nmaxmemory 2097152\n"), "{rewritten}");
    assert!(rewritten.contains("\nslowlog-max-len 7\n"), "{rewritten}");
    assert!(
        rewritten.contains(&format!("\ninclude {}\n", extra.display())),
        "{rewritten}"
    );
    assert_eq!(rewritten.matches("\nport ").count(), 1, "{rewritten}");

    // SHUTDOWN closes the connection without a reply, and the process exits cleanly.
    conn.send(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(conn.try_read().is_err(), "no reply to SHUTDOWN");
    let status = server.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(!pid.exists(), "the pid file is removed");
    let log_text = std::fs::read_to_string(&log).unwrap();
    for line in [
        "Shoal is starting",
        &format!("Running mode=standalone, port={port}."),
        "Ready to accept connections",
        "User requested shutdown...",
        "ready to exit, bye bye",
    ] {
        assert!(
            log_text.contains(line),
            "{line} missing from the log:\n{log_text}"
        );
    }
    // Redis's line format: pid:role date time level message.
    let first = log_text.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("{}:M ", server.child.id())) && first.contains(" * "),
        "{first}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Waits for a child started outside [`ShoalServer`], killing it if the test fails.
struct ShoalServerHandle<'a> {
    child: &'a mut std::process::Child,
}

impl ShoalServerHandle<'_> {
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "shoal-server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ShoalServerHandle<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut server = ShoalServer::start(&[]);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn monitor_sees_commands_with_secrets_redacted() {
    let server = ShoalServer::start(&["--requirepass", "pw"]);
    let mut monitor = RespConn::connect(server.port).unwrap();
    assert_eq!(monitor.call(&[b"AUTH", b"pw"]), Value::Status("OK".into()));
    assert_eq!(monitor.call(&[b"MONITOR"]), Value::Status("OK".into()));
    let mut client = RespConn::connect(server.port).unwrap();
    client.call(&[b"AUTH", b"pw"]);
    client.call(&[b"SELECT", b"3"]);
    client.call(&[b"SET", b"k\n", b"v\"1"]);
    client.call(&[b"CONFIG", b"GET", b"port"]);
    let lines: Vec<String> = (0..3)
        .map(|_| match monitor.read() {
            Value::Status(s) => s,
            other => panic!("a monitor line, got {other:?}"),
        })
        .collect();
    let strip = |line: &str| line.split_once(' ').unwrap().1.to_string();
    assert!(lines[0].ends_with(r#""AUTH" "(redacted)""#), "{}", lines[0]);
    assert_eq!(strip(&lines[1])[..3].to_string(), "[3 ");
    assert!(lines[1].ends_with(r#""SELECT" "3""#), "{}", lines[1]);
    assert!(lines[2].ends_with(r#""SET" "k\n" "v\"1""#), "{}", lines[2]);
    // CONFIG is an admin command: not shown.
    client.call(&[b"PING"]);
    match monitor.read() {
        Value::Status(s) => assert!(s.ends_with(r#""PING""#), "{s}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_pause_holds_writes_until_unpause() {
    let server = ShoalServer::start(&[]);
    let mut admin = RespConn::connect(server.port).unwrap();
    let mut writer = RespConn::connect(server.port).unwrap();
    assert_eq!(
        admin.call(&[b"CLIENT", b"PAUSE", b"10000", b"WRITE"]),
        Value::Status("OK".into())
    );
    writer.send(&[b"SET", b"k", b"v"]);
    std::thread::sleep(Duration::from_millis(300));
    // Reads go on while writes wait.
    assert_eq!(admin.call(&[b"GET", b"k"]), Value::NullBulk);
    let started = Instant::now();
    assert_eq!(
        admin.call(&[b"CLIENT", b"UNPAUSE"]),
        Value::Status("OK".into())
    );
    assert_eq!(writer.read(), Value::Status("OK".into()));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(admin.call(&[b"GET", b"k"]), Value::Bulk(b"v".to_vec()));
}

#[test]
fn redis_cli_over_tls_with_client_certificates() {
    let certs = std::env::temp_dir().join(format!("shoal-tls-{}", free_port()));
    std::fs::create_dir_all(&certs).unwrap();
    common::certs::write_certificates(
        &certs,
        "Shoal test CA",
        &[
            ("server", vec!["127.0.0.1".to_string(), "localhost".into()]),
            ("client", vec!["client".into()]),
        ],
    );
    let tls_port = free_port();
    let file = |name: &str| certs.join(name).to_str().unwrap().to_string();
    let server = ShoalServer::start(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &file("server.crt"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.crt"),
    ]);
    let cli = |with_client_cert: bool, args: &[&str]| {
        let mut command = Command::new("redis-cli");
        command.args([
            "-p",
            &tls_port.to_string(),
            "--tls",
            "--cacert",
            &file("ca.crt"),
        ]);
        if with_client_cert {
            command.args(["--cert", &file("client.crt"), "--key", &file("client.key")]);
        }
        let out = command.args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    assert_eq!(cli(true, &["SET", "secure", "yes"]), "OK\n");
    assert_eq!(cli(true, &["GET", "secure"]), "yes\n");
    // The plain port serves the same keyspace.
    let mut plain = RespConn::connect(server.port).unwrap();
    assert_eq!(
        plain.call(&[b"GET", b"secure"]),
        Value::Bulk(b"yes".to_vec())
    );
    // tls-auth-clients yes (the default): no client certificate, no service.
    let refused = cli(false, &["PING"]);
    assert!(!refused.contains("PONG"), "{refused}");
    std::fs::remove_dir_all(&certs).unwrap();
}

/// `server_cpulist` and `bio_cpulist` place the RESP and sweeper threads and the background
/// ones (replication, AOF) as Redis places its main and bio threads; a list Redis would
/// silently ignore is refused, and one naming a CPU that is not there is logged.
#[cfg(target_os = "linux")]
#[test]
fn cpulists_place_threads() {
    let last_cpu = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    let (server_cpus, bio_cpus) = ("0".to_string(), last_cpu.to_string());
    let server = ShoalServer::start(&[
        "--appendonly",
        "yes",
        "--server_cpulist",
        &server_cpus,
        "--bio_cpulist",
        &bio_cpus,
    ]);
    let mut placed = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", server.child.id())).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap();
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        placed.insert(comm.trim().to_string(), cpus);
    }
    for (thread, cpus) in [
        ("shoal-resp", &server_cpus),
        ("shoal-expire", &server_cpus),
        ("shoal-repl", &bio_cpus),
        ("shoal-aof", &bio_cpus),
    ] {
        assert_eq!(placed.get(thread), Some(cpus), "{thread} in {placed:?}");
    }
    let mut conn = RespConn::connect(server.port).unwrap();
    assert_eq!(
        conn.call(&[b"CONFIG", b"GET", b"bio_cpulist"]),
        Value::Array(vec![
            Value::Bulk(b"bio_cpulist".to_vec()),
            Value::Bulk(bio_cpus.into_bytes())
        ])
    );

    let err = run_expecting_failure(&["--server_cpulist", "3-1"]);
    assert!(err.contains("Invalid CPU list '3-1'"), "{err}");

    let absent = ShoalServer::start(&["--server_cpulist", "1023", "--logfile", "shoal.log"]);
    let log = std::fs::read_to_string(absent.dir.join("shoal.log")).unwrap();
    assert!(
        log.contains("Cannot place shoal-resp thread on CPUs 1023 (server_cpulist)"),
        "{log}"
    );
}
