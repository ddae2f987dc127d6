//! Start-up: loading the snapshot into the keyspace.

use super::rdb::decode::{self, LoadOptions, LoadSummary, Record};
use crate::engine::Engine;
use crate::error::Error;
use crate::slot::SlotId;
use std::path::Path;

/// Loads the RDB file at `path` into the (empty) keyspace; `Ok(None)` when there is no file.
/// A damaged file is an error naming it, the byte offset and what is wrong: start-up stops
/// rather than run with part of the data.
pub(crate) fn load_rdb(engine: &Engine, path: &Path) -> Result<Option<LoadSummary>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io(e)),
    };
    let settings = engine.settings();
    let opts = LoadOptions {
        limits: &settings.encoding,
        databases: engine.db_count(),
        verify_checksum: settings.rdb_checksum,
        drop_expired_before_ms: Some(engine.now_ms()),
    };
    let summary = decode::load(&bytes, &opts, |record| insert(engine, record)).map_err(|e| {
        Error::Corrupt {
            file: path.to_path_buf(),
            offset: e.offset,
            what: e.what,
        }
    })?;
    engine
        .persist
        .note_load(summary.keys_loaded, summary.keys_expired);
    Ok(Some(summary))
}

fn insert(engine: &Engine, record: Record<'_>) -> Result<(), String> {
    let Some(slots) = engine.keyspace.open(record.db) else {
        return Err(format!("database {} is out of range", record.db));
    };
    let slot = &slots[SlotId::of_key(&record.key).index()];
    let mut data = slot.data.write();
    if data.get(&record.key).is_some() {
        return Err(format!(
            "duplicated key '{}' in database {}",
            String::from_utf8_lossy(&record.key),
            record.db
        ));
    }
    data.insert(&record.key, record.value, record.expire_at_ms);
    slot.publish(&data);
    Ok(())
}
