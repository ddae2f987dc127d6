//! Crash tests with a storage double that keeps written bytes apart from fsynced ones: the
//! power goes out at a chosen moment, unsynced bytes are lost (a random part of them survives,
//! as a torn write would), and the node that starts on what is left must hold every write it
//! acknowledged. A second double is a disk that fills up: writes are refused with MISCONF
//! until there is room again.

mod common;

use common::temp_dir;
use shoal::persist::storage::{Storage, StorageFile};
use shoal::{Config, Fsync, Node, Reply};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A disk whose power can be cut: after `syncs_left` fsyncs, or when told.
struct PowerCut {
    /// Bytes of each file known to be durable.
    synced: Mutex<HashMap<PathBuf, u64>>,
    syncs_left: AtomicI64,
    down: AtomicBool,
}

struct CutFile {
    path: PathBuf,
    file: File,
    disk: Arc<PowerCut>,
}

impl PowerCut {
    fn new(syncs: i64) -> Arc<PowerCut> {
        Arc::new(PowerCut {
            synced: Mutex::new(HashMap::new()),
            syncs_left: AtomicI64::new(syncs),
            down: AtomicBool::new(false),
        })
    }

    fn open(self: &Arc<Self>, path: &Path, file: File) -> Box<dyn StorageFile> {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.synced.lock().unwrap().insert(path.to_path_buf(), len);
        Box::new(CutFile {
            path: path.to_path_buf(),
            file,
            disk: Arc::clone(self),
        })
    }

    fn check(&self) -> io::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(io::Error::other("the power is out"));
        }
        Ok(())
    }

    /// What a restart finds: each file keeps its durable bytes and a random part of the rest.
    fn lose_unsynced(&self) {
        for (path, &synced) in self.synced.lock().unwrap().iter() {
            // A rewrite may have removed it.
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            let len = meta.len();
            let kept = synced + fastrand::u64(0..=len - synced);
            OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(kept)
                .unwrap();
        }
    }
}

struct Shared(Arc<PowerCut>);

impl Storage for Shared {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.0.check()?;
        Ok(self.0.open(path, File::create(path)?))
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.0.check()?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(self.0.open(path, file))
    }
}

impl StorageFile for CutFile {
    fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.disk.check()?;
        self.file.write_all(bytes)?;
        Ok(bytes.len())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.disk.check()?;
        let len = self.file.metadata()?.len();
        self.disk
            .synced
            .lock()
            .unwrap()
            .insert(self.path.clone(), len);
        if self.disk.syncs_left.fetch_sub(1, Ordering::SeqCst) <= 1 {
            self.disk.down.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A faulty disk. It has `free_bytes` of room: a write that does not fit is cut short (as
/// write(2) is on a full disk) and the next one fails with "No space left on device". And
/// the next `failing_syncs` fsyncs fail, dropping what was written since the last good one
/// (as Linux may drop dirty pages it could not write back), while later fsyncs succeed.
#[derive(Clone, Default)]
struct FaultyDisk {
    free_bytes: Arc<AtomicU64>,
    failing_syncs: Arc<AtomicU64>,
}

struct FaultyFile {
    file: File,
    synced_bytes: u64,
    disk: FaultyDisk,
}

impl FaultyDisk {
    fn new() -> FaultyDisk {
        let disk = FaultyDisk::default();
        disk.free_bytes.store(u64::MAX, Ordering::SeqCst);
        disk
    }

    fn open(&self, file: File) -> io::Result<Box<dyn StorageFile>> {
        let synced_bytes = file.metadata()?.len();
        let disk = self.clone();
        Ok(Box::new(FaultyFile {
            file,
            synced_bytes,
            disk,
        }))
    }
}

impl Storage for FaultyDisk {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.open(File::create(path)?)
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.open(OpenOptions::new().append(true).open(path)?)
    }
}

impl StorageFile for FaultyFile {
    fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let free = self.disk.free_bytes.load(Ordering::SeqCst);
        if free == 0 {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device",
            ));
        }
        let n = bytes.len().min(usize::try_from(free).unwrap_or(usize::MAX));
        self.file.write_all(&bytes[..n])?;
        self.disk.free_bytes.fetch_sub(n as u64, Ordering::SeqCst);
        Ok(n)
    }

    fn sync(&mut self) -> io::Result<()> {
        let fail = self.disk.failing_syncs.load(Ordering::SeqCst) > 0;
        if fail {
            self.disk.failing_syncs.fetch_sub(1, Ordering::SeqCst);
            self.file.set_len(self.synced_bytes)?;
            self.file.seek(io::SeekFrom::End(0))?;
            return Err(io::Error::other("Input/output error"));
        }
        self.file.sync_data()?;
        self.synced_bytes = self.file.metadata()?.len();
        Ok(())
    }
}

fn config(dir: &Path, fsync: Fsync) -> Config {
    Config::new().dir(dir).save_points(&[]).append_only(fsync)
}

fn counter(node: &Node, c: usize) -> i64 {
    match node.execute(&["GET", &format!("counter:{c}")]) {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).parse().unwrap(),
        Reply::Nil => 0,
        other => panic!("GET: {other:?}"),
    }
}

/// Each client increments its own counter until a write fails; returns the last value it
/// was acknowledged with, and when.
fn run_clients(node: &Node, clients: usize) -> Vec<Vec<(i64, Instant)>> {
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let node = node.clone();
            std::thread::spawn(move || {
                let mut acks = Vec::new();
                let key = format!("counter:{c}");
                while let Reply::Int(n) = node.execute(&["INCR", &key]) {
                    acks.push((n, Instant::now()));
                }
                acks
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// appendfsync always: the power goes out after a random number of fsyncs, ten times on one
/// directory; every acknowledged INCR survives each time.
#[test]
fn always_loses_no_acknowledged_write_at_any_power_cut() {
    const CLIENTS: usize = 4;
    let dir = temp_dir("crash-always");
    let mut acked = [0i64; CLIENTS];
    for round in 0..10 {
        let disk = PowerCut::new(fastrand::i64(1..200));
        let mut cfg = config(&dir, Fsync::Always);
        cfg.aof_storage = Some(Arc::new(Shared(disk.clone())));
        let node = Node::open(cfg).expect("open on what the last cut left");
        for (c, value) in acked.iter().enumerate() {
            let now = counter(&node, c);
            assert!(
                (*value..=*value + 1).contains(&now),
                "round {round}: counter {c} is {now}, {value} was acknowledged"
            );
        }
        for (c, acks) in run_clients(&node, CLIENTS).into_iter().enumerate() {
            if let Some(&(n, _)) = acks.last() {
                acked[c] = n;
            }
        }
        drop(node);
        disk.lose_unsynced();
    }
    let node = Node::open(config(&dir, Fsync::Always)).unwrap();
    for (c, value) in acked.iter().enumerate() {
        assert!((*value..=*value + 1).contains(&counter(&node, c)));
    }
    assert!(acked.iter().sum::<i64>() > 0, "nothing was acknowledged");
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// appendfsync everysec: what a power cut loses is the last second or so of writes; anything
/// acknowledged two seconds before the cut is there.
#[test]
fn everysec_loses_at_most_about_two_seconds() {
    let dir = temp_dir("crash-everysec");
    let disk = PowerCut::new(i64::MAX);
    let mut cfg = config(&dir, Fsync::EverySec);
    cfg.aof_storage = Some(Arc::new(Shared(disk.clone())));
    let node = Node::open(cfg).unwrap();
    let cutter = {
        let disk = disk.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(3200));
            disk.down.store(true, Ordering::SeqCst);
            Instant::now()
        })
    };
    let acks = run_clients(&node, 1).remove(0);
    let cut_at = cutter.join().unwrap();
    drop(node);
    disk.lose_unsynced();
    let node = Node::open(config(&dir, Fsync::EverySec)).unwrap();
    let survived = counter(&node, 0);
    let must_survive = acks
        .iter()
        .take_while(|(_, at)| *at + Duration::from_secs(2) <= cut_at)
        .last()
        .map_or(0, |(n, _)| *n);
    assert!(must_survive > 0, "the clients made no progress");
    assert!(
        survived >= must_survive,
        "{survived} survived, but {must_survive} was acknowledged 2 s before the cut"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The disk fills up in the middle of a command: that write is not acknowledged, later
/// writes get Redis's MISCONF while reads go on; once there is room again the AOF goes on
/// from the first byte it could not write (no command is duplicated or torn), writes are
/// accepted, and a restart finds everything that was acknowledged.
#[test]
fn a_full_disk_refuses_writes_until_there_is_room() {
    let dir = temp_dir("crash-full-disk");
    let disk = FaultyDisk::new();
    let free_bytes = Arc::clone(&disk.free_bytes);
    let mut cfg = config(&dir, Fsync::Always);
    cfg.aof_storage = Some(Arc::new(disk));
    let node = Node::open(cfg).unwrap();
    assert_eq!(node.execute(&["SET", "before", "1"]), Reply::OK);
    // Room for part of the next command only.
    free_bytes.store(10, Ordering::SeqCst);
    let cut = node.execute(&["SET", "cut", "x".repeat(100).as_str()]);
    assert!(
        matches!(&cut, Reply::Error(e) if e.starts_with("MISCONF Errors writing to the AOF file")),
        "{cut:?}"
    );
    let refused = node.execute(&["SET", "refused", "1"]);
    assert!(
        matches!(&refused, Reply::Error(e) if e.contains("No space left on device")),
        "{refused:?}"
    );
    assert_eq!(node.execute(&["GET", "before"]), Reply::bulk(b"1"));
    free_bytes.store(u64::MAX, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.execute(&["SET", "after", "1"]) != Reply::OK {
        assert!(
            Instant::now() < deadline,
            "writes still refused with room on the disk"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let expected = node.execute(&["DEBUG", "DIGEST"]);
    drop(node);
    let incr = dir.join("appendonlydir").join("appendonly.aof.1.incr.aof");
    let check = std::process::Command::new("redis-check-aof")
        .arg(&incr)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success() && report.contains("is valid"),
        "{report}"
    );
    let node = Node::open(config(&dir, Fsync::Always)).unwrap();
    assert_eq!(node.execute(&["DEBUG", "DIGEST"]), expected);
    assert_eq!(node.execute(&["EXISTS", "refused"]), Reply::Int(0));
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An fsync fails and the kernel drops the pages it could not write; later fsyncs succeed.
/// The write whose fsync failed is not acknowledged, writes are refused until the AOF is
/// rebuilt from memory, and a restart then finds every write the node holds (a writer that
/// retried the fsync and called the file durable would have lost it).
#[test]
fn a_failed_fsync_rebuilds_the_aof_from_memory() {
    let dir = temp_dir("crash-fsync-error");
    let disk = FaultyDisk::new();
    let failing_syncs = Arc::clone(&disk.failing_syncs);
    let mut cfg = config(&dir, Fsync::Always);
    cfg.aof_storage = Some(Arc::new(disk));
    let node = Node::open(cfg).unwrap();
    assert_eq!(node.execute(&["SET", "before", "1"]), Reply::OK);
    failing_syncs.store(1, Ordering::SeqCst);
    let dropped = node.execute(&["SET", "dropped", "1"]);
    assert!(
        matches!(&dropped, Reply::Error(e) if e.starts_with("MISCONF Errors writing to the AOF file: fsync failed")),
        "{dropped:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while node.execute(&["SET", "after", "1"]) != Reply::OK {
        assert!(Instant::now() < deadline, "the AOF was not rebuilt");
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = node.execute(&["INFO", "persistence"]);
    assert!(
        format!("{info:?}").contains("aof_last_write_status:ok"),
        "{info:?}"
    );
    let expected = node.execute(&["DEBUG", "DIGEST"]);
    drop(node);
    let node = Node::open(config(&dir, Fsync::Always)).unwrap();
    assert_eq!(node.execute(&["DEBUG", "DIGEST"]), expected);
    assert_eq!(node.execute(&["GET", "dropped"]), Reply::bulk(b"1"));
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}
