//! Shared test helpers: a real redis-server to compare against, a raw RESP connection, and a
//! RESP reply parser that keeps exact bytes (the `redis` crate would reformat error texts).
#![allow(dead_code)]

pub mod certs;
pub mod cluster;
pub mod gen;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A parsed RESP reply, comparable and sortable.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum Value {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    NullBulk,
    NullArray,
    Double(String),
    Bool(bool),
    Array(Vec<Value>),
    Set(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Push(Vec<Value>),
}

impl Value {
    /// Sorts aggregate elements, for replies whose order Redis does not define.
    pub fn sorted(self) -> Value {
        let key = |v: &Value| format!("{v:?}");
        match self {
            Value::Array(mut v) => {
                v.sort_by_key(key);
                Value::Array(v)
            }
            Value::Set(mut v) => {
                v.sort_by_key(key);
                Value::Set(v)
            }
            Value::Map(mut v) => {
                v.sort_by_key(|(k, _)| key(k));
                Value::Map(v)
            }
            other => other,
        }
    }
}

/// Parses one reply from the front of `buf`; `None` when incomplete.
pub fn parse_reply(buf: &[u8]) -> Option<(Value, usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..end]).ok()?;
    let mut pos = end + 2;
    let aggregate = |n: usize, pos: &mut usize| -> Option<Vec<Value>> {
        let mut items = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let (v, used) = parse_reply(&buf[*pos..])?;
            *pos += used;
            items.push(v);
        }
        Some(items)
    };
    let value = match buf[0] {
        b'+' => Value::Status(line.to_string()),
        b'-' => Value::Error(line.to_string()),
        b':' => Value::Int(line.parse().ok()?),
        b'_' => Value::Null,
        b',' => Value::Double(line.to_string()),
        b'#' => Value::Bool(line == "t"),
        b'$' | b'=' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                Value::NullBulk
            } else {
                let n = n as usize;
                if buf.len() < pos + n + 2 {
                    return None;
                }
                let data = buf[pos..pos + n].to_vec();
                pos += n + 2;
                Value::Bulk(data)
            }
        }
        b'*' | b'~' | b'>' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                Value::NullArray
            } else {
                let items = aggregate(n as usize, &mut pos)?;
                match buf[0] {
                    b'*' => Value::Array(items),
                    b'~' => Value::Set(items),
                    _ => Value::Push(items),
                }
            }
        }
        b'%' => {
            let n: usize = line.parse().ok()?;
            let mut items = aggregate(2 * n, &mut pos)?.into_iter();
            let mut pairs = Vec::with_capacity(n);
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            Value::Map(pairs)
        }
        _ => return None,
    };
    Some((value, pos))
}

/// A redis-server child process on a free loopback port, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub dir: std::path::PathBuf,
}

/// A new, empty folder under the system's temporary directory, unique to this call.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shoal-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    /// Starts redis-server 7 (`apt-get install redis-server`; `.ci/run` installs it).
    pub fn start() -> RedisServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("shoal-redis-{port}"));
        RedisServer::start_in(&dir, &[])
    }

    /// Starts redis-server 7 with its files in `dir` and `args` after the defaults.
    pub fn start_in(dir: &std::path::Path, args: &[&str]) -> RedisServer {
        let port = free_port();
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "yes", "--dir"])
            .arg(&dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the parity tests (apt-get install -y redis-server)");
        let server = RedisServer { child, port, dir };
        wait_for_pong(port);
        server
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A raw RESP connection.
pub struct RespConn {
    reader: BufReader<TcpStream>,
    pub writer: TcpStream,
    buf: Vec<u8>,
}

impl RespConn {
    pub fn connect(port: u16) -> std::io::Result<RespConn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(RespConn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, args: &[&[u8]]) {
        let mut out = Vec::new();
        shoal::resp::encode_command(args, &mut out);
        self.writer.write_all(&out).expect("write to server");
    }

    pub fn read(&mut self) -> Value {
        self.try_read().expect("read a reply from the server")
    }

    pub fn try_read(&mut self) -> std::io::Result<Value> {
        loop {
            if let Some((value, used)) = parse_reply(&self.buf) {
                self.buf.drain(..used);
                return Ok(value);
            }
            let chunk = self.reader.fill_buf()?.to_vec();
            if chunk.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.reader.consume(chunk.len());
            self.buf.extend_from_slice(&chunk);
        }
    }

    pub fn call(&mut self, args: &[&[u8]]) -> Value {
        self.send(args);
        self.read()
    }

    /// One INFO section, as text.
    pub fn info(&mut self, section: &str) -> String {
        match self.call(&[b"INFO", section.as_bytes()]) {
            Value::Bulk(text) => String::from_utf8(text).expect("INFO is text"),
            other => panic!("INFO {section}: {other:?}"),
        }
    }
}

/// Encodes a Shoal reply for `proto` and parses it back into the comparable form.
pub fn shoal_value(reply: &shoal::Reply, proto: shoal::resp::Protocol) -> Value {
    let mut out = Vec::new();
    shoal::resp::encode_reply(reply, proto, &mut out);
    let (value, used) = parse_reply(&out).expect("our own encoding parses");
    assert_eq!(used, out.len());
    value
}

/// Runs a Python script (with the `redis` package, which .ci/run installs) with `args`;
/// it must exit 0 having printed only "ok". `what` names it in the failure.
pub fn run_python_ok(what: &str, script: &str, args: &[String]) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 with the redis package (.ci/run installs it)");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drains a reader to EOF (unused readers in some tests).
pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

/// A `shoal-server` process on a free loopback port, stopped with SIGTERM when dropped.
pub struct ShoalServer {
    pub child: Child,
    pub port: u16,
    pub dir: std::path::PathBuf,
}

impl ShoalServer {
    /// Starts `shoal-server` with `args` after its port, bind and working directory.
    pub fn start(args: &[&str]) -> ShoalServer {
        ShoalServer::start_on(free_port(), args)
    }

    /// [`ShoalServer::start`] with a port whose cluster bus port (+10000, UDP) is free too,
    /// for replication by `REPLICAOF host port`.
    pub fn start_with_bus(args: &[&str]) -> ShoalServer {
        loop {
            let port = free_port();
            let bus_free =
                port < 55_000 && std::net::UdpSocket::bind(("127.0.0.1", port + 10_000)).is_ok();
            if bus_free {
                return ShoalServer::start_on(port, args);
            }
        }
    }

    fn start_on(port: u16, args: &[&str]) -> ShoalServer {
        let dir = std::env::temp_dir().join(format!("shoal-server-{port}"));
        // Fresh: a killed run may have left files (a nodes.conf) for this port.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = ShoalServer::spawn(port, &dir, args);
        let server = ShoalServer { child, port, dir };
        wait_for_pong(port);
        server
    }

    fn spawn(port: u16, dir: &std::path::Path, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_shoal-server"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("shoal-server is built with the tests")
    }

    /// `shoal-server <dir>/sentinel.conf --sentinel` with `conf` in that file (it is
    /// rewritten with what the sentinel learns).
    pub fn start_sentinel(conf: &str) -> ShoalServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("shoal-sentinel-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("sentinel.conf");
        std::fs::write(&file, conf).expect("write sentinel.conf");
        let child = Command::new(env!("CARGO_BIN_EXE_shoal-server"))
            .arg(&file)
            .args([
                "--sentinel",
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("shoal-server is built with the tests");
        let server = ShoalServer { child, port, dir };
        wait_for_pong(port);
        server
    }

    /// Stops the server and starts it again on the same port and directory.
    pub fn restart(&mut self, args: &[&str]) {
        self.terminate();
        self.start_again(args);
    }

    /// kill -9, and waits for the exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a server that exited (or was killed) again, on its port and directory.
    pub fn start_again(&mut self, args: &[&str]) {
        self.child = ShoalServer::spawn(self.port, &self.dir, args);
        wait_for_pong(self.port);
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.child.wait().expect("wait for shoal-server")
    }
}

impl Drop for ShoalServer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until a server on `port` answers PING (or asks for a password first).
pub fn wait_for_pong(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let noauth = Value::Error("NOAUTH Authentication required.".into());
    loop {
        if let Ok(mut c) = RespConn::connect(port) {
            c.send(&[b"PING"]);
            let reply = c.try_read().ok();
            if reply == Some(Value::Status("PONG".into())) || reply == Some(noauth.clone()) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
