//! Crash tests with a storage double that keeps written bytes apart from fsynced ones: the
//! power goes out at a chosen moment, unsynced bytes are lost (a random part of them survives,
//! as a torn write would), and the node that starts on what is left must hold every write it
//! acknowledged.

mod common;

use common::temp_dir;
use shoal::persist::storage::{Storage, StorageFile};
use shoal::{Config, Fsync, Node, Reply};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
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
    fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.disk.check()?;
        self.file.write_all(bytes)
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
