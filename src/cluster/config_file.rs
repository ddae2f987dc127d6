//! nodes.conf on disk. A save that changes what this node promised others (its epochs, its
//! vote, whom it replicates) is written and fsynced before the command or message that
//! caused it is answered, as Redis does. Any other save (slots moving, peers' addresses
//! and flags, all of which gossip restores) is handed to a writer thread that writes the
//! newest text there is, so a reshard's five saves a slot never wait on the disk.

use super::state::Promises;
use parking_lot::{Condvar, Mutex};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The file and its writer thread.
pub(crate) struct ConfigFile {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    path: PathBuf,
    /// Serializes writes; the number of the text last written, so an older text never
    /// replaces a newer one.
    written: Mutex<u64>,
    /// What the writer thread is to do.
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    /// The newest text waiting, and its number.
    pending: Option<(u64, String)>,
    /// Numbers texts in the order they were saved.
    last: u64,
    /// The promises the file last reached the disk with.
    synced: Option<Promises>,
    closing: bool,
}

impl ConfigFile {
    pub fn new(path: PathBuf) -> io::Result<ConfigFile> {
        let shared = Arc::new(Shared {
            path,
            written: Mutex::new(0),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let for_writer = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("shoal-nodes-conf".into())
            .spawn(move || for_writer.write_in_background())?;
        Ok(ConfigFile {
            shared,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Saves `text`, written by `promises`: on disk before this returns if a promise
    /// changed since the last such save, else soon, by the writer thread.
    pub fn save(&self, text: String, promises: Promises) -> io::Result<()> {
        let mut queue = self.shared.queue.lock();
        queue.last += 1;
        let number = queue.last;
        if queue.synced.as_ref() == Some(&promises) {
            queue.pending = Some((number, text));
            self.shared.wake.notify_one();
            return Ok(());
        }
        queue.synced = None;
        drop(queue);
        self.shared.write(number, &text, true)?;
        let mut queue = self.shared.queue.lock();
        if queue.last == number {
            queue.synced = Some(promises);
        }
        Ok(())
    }

    /// Writes what is pending and stops the writer thread (the node is closing).
    pub fn close(&self) {
        self.shared.queue.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(writer) = self.writer.lock().take() {
            let _ = writer.join();
        }
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn write_in_background(&self) {
        loop {
            let mut queue = self.queue.lock();
            while queue.pending.is_none() && !queue.closing {
                self.wake.wait(&mut queue);
            }
            let (pending, closing) = (queue.pending.take(), queue.closing);
            drop(queue);
            if let Some((number, text)) = pending {
                if let Err(e) = self.write(number, &text, false) {
                    tracing::warn!(
                        "Could not save the cluster configuration to {}: {e}",
                        self.path.display()
                    );
                }
            }
            if closing {
                return;
            }
        }
    }

    /// Replaces the file with text number `number`, unless a newer one is there already.
    fn write(&self, number: u64, text: &str, durable: bool) -> io::Result<()> {
        let mut written = self.written.lock();
        if number <= *written {
            return Ok(());
        }
        replace_file(&self.path, text.as_bytes(), durable)?;
        *written = number;
        Ok(())
    }
}

/// Replaces `path` with `bytes` by a rename, so that a crash leaves the old file or the new
/// one; `durable`: the new one is on disk when this returns.
fn replace_file(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    use std::io::Write;
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path
        .parent()
        .filter(|d| durable && !d.as_os_str().is_empty())
    {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::state::State;
    use crate::cluster::NodeId;

    #[test]
    fn the_newest_text_wins_and_close_writes_what_is_pending() {
        let dir = std::env::temp_dir().join(format!("shoal-nodes-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nodes.conf");
        let file = ConfigFile::new(path.clone()).unwrap();
        let mut state = State::new(NodeId::random(), 7000, 17000, 15_000, 0);
        // The first save is durable (nothing reached the disk yet), the next ones are not.
        file.save("first\n".into(), state.promises()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
        for i in 0..100 {
            file.save(format!("behind {i}\n"), state.promises())
                .unwrap();
        }
        // A new promise is written at once, and no older text replaces it.
        state.current_epoch = crate::cluster::Epoch(7);
        file.save("epoch 7\n".into(), state.promises()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "epoch 7\n");
        file.save("last\n".into(), state.promises()).unwrap();
        file.close();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "last\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
