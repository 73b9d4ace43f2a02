//! The standby's side: a zone's files, mirrored from its primary's frames into this
//! node's standby directory, where a promotion restores from them as a restart would.
//!
//! Every operation is idempotent, so a primary that reconnects resends whole files and
//! then appends that may repeat bytes already here: a WAL append is a write at its offset,
//! a checkpoint a whole file put in place by rename, and a prune deletes what the primary
//! no longer keeps. An append past the end of its segment (bytes missed) is refused: the
//! primary reconnects and resends the whole file.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use meridian_layouts::standby::{FileKind, FrameHeader, FrameKind, PAYLOAD_MAX};

use crate::store::{StoreError, ZoneStore, sync_dir, write_synced};

/// Why the mirror refused a frame (the connection ends; the primary resyncs).
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "an append at byte {offset} of WAL segment {generation}, which holds {len}: bytes were missed"
    )]
    Gap {
        generation: u64,
        offset: u64,
        len: u64,
    },
    #[error("a malformed {0:?} frame")]
    Malformed(FrameKind),
    #[error("a {0:?} frame is the checkpoint worker's to apply")]
    Bulk(FrameKind),
}

/// One zone's mirrored files.
#[derive(Debug)]
pub struct Mirror {
    store: ZoneStore,
    /// Segments written since the last sync, to fdatasync before acknowledging.
    dirty: BTreeSet<u64>,
    /// The highest append sequence applied, and the highest durable (acknowledged).
    applied: u64,
    durable: u64,
}

impl Mirror {
    pub fn new(store: ZoneStore) -> Mirror {
        Mirror {
            store,
            dirty: BTreeSet::new(),
            applied: 0,
            durable: 0,
        }
    }

    /// The zone's mirrored files.
    pub fn store(&self) -> &ZoneStore {
        &self.store
    }

    /// Applies one frame from the primary.
    pub fn apply(
        &mut self,
        kind: FrameKind,
        header: &FrameHeader,
        payload: &[u8],
    ) -> Result<(), MirrorError> {
        let generation = header.generation.get();
        if is_bulk(kind, header) {
            return Err(MirrorError::Bulk(kind));
        }
        match kind {
            FrameKind::Append => self.append(generation, header.offset.get(), payload)?,
            FrameKind::File if header.file == FileKind::Wal as u8 => {
                put(&self.store, "wal", generation, payload)?;
                self.dirty.remove(&generation);
            }
            FrameKind::File | FrameKind::Part | FrameKind::TakenOver | FrameKind::Stale => {
                return Err(MirrorError::Malformed(kind));
            }
            // Synced: its claim is taken below (the connection made sure everything before
            // it is in place first).
            FrameKind::Retire
            | FrameKind::Hello
            | FrameKind::Challenge
            | FrameKind::Ack
            | FrameKind::Synced => {}
        }
        self.applied = self.applied.max(header.seq.get());
        Ok(())
    }

    /// Makes everything applied durable; returns the sequence to acknowledge.
    pub fn sync(&mut self) -> Result<u64, MirrorError> {
        for generation in std::mem::take(&mut self.dirty) {
            let path = self.store.file("wal", generation);
            match File::open(&path).and_then(|f| f.sync_data()) {
                Ok(()) => {}
                // Pruned since it was written: the primary no longer keeps it either.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(io(&path, source)),
            }
        }
        self.durable = self.applied;
        Ok(self.durable)
    }

    fn append(&mut self, generation: u64, offset: u64, bytes: &[u8]) -> Result<(), MirrorError> {
        let path = self.store.file("wal", generation);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| io(&path, source))?;
        let len = file.metadata().map_err(|source| io(&path, source))?.len();
        if offset > len {
            return Err(MirrorError::Gap {
                generation,
                offset,
                len,
            });
        }
        file.write_all_at(bytes, offset)
            .map_err(|source| io(&path, source))?;
        if offset == 0 {
            // A new segment: its directory entry must be durable too.
            file.sync_all().map_err(|source| io(&path, source))?;
            sync_dir(self.store.dir())?;
        }
        self.dirty.insert(generation);
        Ok(())
    }
}

/// Frames applied by the connection's checkpoint worker ([`put`], [`prune`]) rather than
/// [`Mirror::apply`], so the appends behind a checkpoint of megabytes are acknowledged
/// without waiting for it: a checkpoint, and the prune that follows it.
pub(super) fn is_bulk(kind: FrameKind, header: &FrameHeader) -> bool {
    kind == FrameKind::Retire
        || kind == FrameKind::Part
        || (kind == FrameKind::File && header.file == FileKind::Checkpoint as u8)
}

/// A checkpoint arriving in parts ([`FrameKind::Part`]), on the checkpoint worker.
#[derive(Debug, Default)]
pub(super) struct Parts {
    generation: u64,
    bytes: Vec<u8>,
}

impl Parts {
    /// Applies a checkpoint's frame: a part is kept; the `File` frame that ends the
    /// checkpoint (its `offset` the bytes sent in parts before it) puts it in place whole.
    /// A part that does not continue the one before, or a checkpoint longer than a frame
    /// may be, is refused (the primary resyncs).
    pub(super) fn apply(
        &mut self,
        store: &ZoneStore,
        kind: FrameKind,
        header: &FrameHeader,
        payload: Vec<u8>,
    ) -> Result<(), MirrorError> {
        let (generation, offset) = (header.generation.get(), header.offset.get());
        if offset == 0 {
            (self.generation, self.bytes) = (generation, Vec::new());
        } else if generation != self.generation || offset != self.bytes.len() as u64 {
            return Err(MirrorError::Malformed(kind));
        }
        if self.bytes.len() + payload.len() > PAYLOAD_MAX as usize {
            return Err(MirrorError::Malformed(kind));
        }
        if kind == FrameKind::Part {
            if self.bytes.is_empty() {
                self.bytes = payload;
            } else {
                self.bytes.extend_from_slice(&payload);
            }
            return Ok(());
        }
        if offset == 0 {
            return put(store, "ckp", generation, &payload);
        }
        let mut whole = std::mem::take(&mut self.bytes);
        whole.extend_from_slice(&payload);
        put(store, "ckp", generation, &whole)
    }
}

/// A whole file of the zone, put in place durably (temporary file, fsync, rename, fsync
/// the directory).
pub(super) fn put(
    store: &ZoneStore,
    kind: &str,
    generation: u64,
    bytes: &[u8],
) -> Result<(), MirrorError> {
    let path = store.file(kind, generation);
    let tmp = path.with_extension(format!("{generation}.mirror"));
    write_synced(&tmp, bytes)?;
    std::fs::rename(&tmp, &path).map_err(|source| io(&path, source))?;
    sync_dir(store.dir())?;
    Ok(())
}

/// Deletes the zone's files the primary no longer keeps: the payload lists the (kind,
/// generation) pairs it keeps, 9 bytes each. A file newer than every listed one of its
/// kind stays: it was begun after the list was made.
pub(super) fn prune(store: &ZoneStore, payload: &[u8]) -> Result<(), MirrorError> {
    if !payload.len().is_multiple_of(9) {
        return Err(MirrorError::Malformed(FrameKind::Retire));
    }
    let kept: BTreeSet<(u8, u64)> = payload
        .chunks_exact(9)
        .map(|c| {
            let g = u64::from_le_bytes(c[1..9].try_into().expect("9-byte chunks"));
            (c[0], g)
        })
        .collect();
    for (kind, name) in [(FileKind::Wal, "wal"), (FileKind::Checkpoint, "ckp")] {
        let newest = kept.iter().filter(|k| k.0 == kind as u8).map(|k| k.1).max();
        for (g, path) in store.list(name)? {
            if !kept.contains(&(kind as u8, g)) && newest.is_some_and(|n| g < n) {
                std::fs::remove_file(&path).map_err(|source| io(&path, source))?;
            }
        }
    }
    sync_dir(store.dir())?;
    Ok(())
}

fn io(path: &std::path::Path, source: std::io::Error) -> MirrorError {
    MirrorError::Io {
        path: path.display().to_string(),
        source,
    }
}
