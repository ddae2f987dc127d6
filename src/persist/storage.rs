//! Where the AOF's incr files are written: the filesystem, or a double a test swaps in to
//! keep written and fsynced bytes apart and to "lose power" at a chosen moment.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Opens incr files for the AOF writer.
pub trait Storage: Send + Sync {
    /// Creates (or empties) the file at `path`.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens the file at `path` to append to it.
    fn append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
}

/// An open incr file.
pub trait StorageFile: Send {
    /// Writes a prefix of `bytes` at the end: how many bytes it wrote. A short count (a full
    /// disk) is not an error; the next call reports the error, and the AOF writer retries
    /// from the first byte not written, so a failure never duplicates a command's bytes.
    fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> io::Result<()>;
}

/// The filesystem.
pub struct Disk;

impl Storage for Disk {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        Ok(Box::new(file))
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(OpenOptions::new().append(true).open(path)?))
    }
}

impl StorageFile for File {
    fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        loop {
            match self.write(bytes) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}
