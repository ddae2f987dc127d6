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
    /// Writes all of `bytes` at the end.
    fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()>;
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
    fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}
