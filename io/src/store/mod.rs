//! A node's data directory: one write-ahead log and a set of checkpoints per zone, made
//! durable off the zone's tick.
//!
//! ```text
//! DIR/LOCK                 held (flock) while a node runs on DIR
//! DIR/zone-K.ckp.G         checkpoint generation G of zone K (written as .tmp, renamed)
//! DIR/zone-K.wal.G         the records written after checkpoint G
//! ```
//!
//! **Recovery** ([`ZoneStore::recover`]): the newest checkpoint whose every checksum holds,
//! then the WAL segments from its generation on, in order. A torn tail (the last record
//! of the last segment cut short) is truncated with a warning naming file and offset. A
//! corrupt record anywhere else, or a corrupt checkpoint, falls back to the older
//! generation; if nothing valid remains the zone refuses to start and says which file,
//! which offset, and that `--fresh` starts empty on purpose.
//!
//! **Each start** begins a new generation: the restored zone is checkpointed at once
//! (synchronously, before it sends anything) and its records go to a new segment. Two
//! generations are kept; older files are deleted once a newer checkpoint is durable.
//!
//! **Writing** ([`Writer`]): two threads per zone. The WAL thread appends each tick's
//! records and `fdatasync`s them, then reports the tick durable; the driver holds that
//! tick's datagrams until then. A checkpoint begins at a tick boundary (the WAL switches to
//! the new generation's segment) and its capture completes over the next ticks (see
//! `Zone::capture_begin`); the checkpoint thread, at nice 19, then writes the image to a
//! temporary file, fsyncs it, renames it, fsyncs the directory, and retires old
//! generations. A failed write or sync is fatal for the zone (reported with the file's
//! name; never retried: after a failed fsync the page cache may have dropped the data).

mod writer;

pub(crate) use writer::lower_priority;
pub use writer::{Writer, WriterEvent};

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use meridian_core::handoff::LogRecord;
use meridian_core::persist::{
    Capture, CheckpointView, FileIdentity, FileKind, RecoveryError, RecoveryPlan, StoredFile,
    encode_checkpoint, file_header, plan_recovery, read_checkpoint,
};
use meridian_core::world::ZoneID;

/// Why a data directory or a zone's files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "data directory {path} is in use by another running node (its LOCK is held); stop it or choose another --data"
    )]
    Locked { path: PathBuf },
    #[error("{path}: {what} — the files belong to {belongs}, not to {expected}")]
    Foreign {
        path: PathBuf,
        what: String,
        belongs: String,
        expected: String,
    },
    #[error(
        "zone {zone}: no valid state to restore: {reason}. Start with --fresh to move these files aside and begin empty on purpose."
    )]
    NothingValid { zone: u32, reason: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An open data directory, locked for this process.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Opens (creating it, mode 0700) and locks `path`.
    pub fn open(path: &Path) -> Result<DataDir, StoreError> {
        if !path.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io_error(path))?;
        }
        let lock_path = path.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        if let Err(e) = lock.try_lock() {
            return Err(match e {
                std::fs::TryLockError::WouldBlock => StoreError::Locked {
                    path: path.to_owned(),
                },
                std::fs::TryLockError::Error(source) => StoreError::Io {
                    path: lock_path,
                    source,
                },
            });
        }
        Ok(DataDir {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts `bytes` in place as this directory's file `name`, durably: written to a new
    /// file and synced, renamed over the old one, the directory synced (never seen half
    /// written).
    pub fn put_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path.join(name);
        let tmp = self.path.join(format!("{name}.tmp"));
        write_synced(&tmp, bytes)?;
        std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
        sync_dir(&self.path)
    }

    /// Removes this directory's file `name`, durably; one that is not there is fine.
    pub fn remove_file(&self, name: &str) -> Result<(), StoreError> {
        let path = self.path.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io { path, source }),
            Ok(()) => sync_dir(&self.path),
        }
    }

    /// Whether this directory holds a file `name`.
    pub fn has_file(&self, name: &str) -> bool {
        self.path.join(name).exists()
    }

    /// The bytes of this directory's file `name`; `None` if it is not there.
    pub fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// The store of zone `zone` of world `world_id` in this directory.
    pub fn zone(&self, world_id: u64, zone: ZoneID) -> ZoneStore {
        ZoneStore {
            dir: self.path.clone(),
            world_id,
            zone,
            run: 0,
        }
    }
}

/// One zone's files in a data directory.
#[derive(Clone, Debug)]
pub struct ZoneStore {
    dir: PathBuf,
    world_id: u64,
    zone: ZoneID,
    /// The run writing through it (in every file header it writes; 0: not said).
    run: u64,
}

/// What recovery found.
#[derive(Debug)]
pub struct Recovered {
    /// The checkpoint restored from (its mapped file), if any.
    pub checkpoint: Option<memmap2::Mmap>,
    /// The records after it, in order.
    pub records: Vec<LogRecord>,
    /// The incarnation this run must use (one more than any seen).
    pub incarnation: u32,
    /// The generation this run must begin (one more than any seen).
    pub generation: u64,
    /// Nothing was found: a new zone.
    pub empty: bool,
    /// What an operator should know (torn tails truncated, fallbacks taken).
    pub warnings: Vec<String>,
}

impl Recovered {
    /// The verified checkpoint view (checked once more: cheap next to the restore).
    pub fn view(&self) -> Option<CheckpointView<'_>> {
        self.checkpoint
            .as_ref()
            .map(|m| read_checkpoint(m).expect("verified during recovery"))
    }
}

impl ZoneStore {
    /// The directory the zone's files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn file(&self, kind: &str, generation: u64) -> PathBuf {
        self.dir
            .join(format!("zone-{}.{kind}.{generation}", self.zone.0))
    }

    /// (generation, path) of this zone's files of `kind` ("ckp" or "wal"), ascending.
    pub(crate) fn list(&self, kind: &str) -> Result<Vec<(u64, PathBuf)>, StoreError> {
        let prefix = format!("zone-{}.{kind}.", self.zone.0);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let entry = entry.map_err(io_error(&self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(g) = name.strip_prefix(&prefix).and_then(|g| g.parse().ok()) {
                out.push((g, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Moves every file of this zone into `DIR/discarded-<unix seconds>/` (`--fresh`).
    pub fn discard(&self) -> Result<Option<PathBuf>, StoreError> {
        let files: Vec<_> = self
            .list("ckp")?
            .into_iter()
            .chain(self.list("wal")?)
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = self.dir.join(format!("discarded-{stamp}"));
        std::fs::create_dir_all(&aside).map_err(io_error(&aside))?;
        for (_, path) in files {
            let to = aside.join(path.file_name().expect("listed file"));
            std::fs::rename(&path, &to).map_err(io_error(&path))?;
        }
        Ok(Some(aside))
    }

    /// Deletes checkpoints a crash interrupted before their rename: they never counted.
    fn remove_interrupted_checkpoints(&self) -> Result<(), StoreError> {
        let prefix = format!("zone-{}.ckp.", self.zone.0);
        for entry in std::fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let path = entry.map_err(io_error(&self.dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
            }
        }
        Ok(())
    }

    /// Finds the newest valid state ([`plan_recovery`]; see the module docs) and cuts a
    /// torn tail off the last WAL segment.
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        self.remove_interrupted_checkpoints()?;
        let checkpoint_files = self.list("ckp")?;
        let segment_files = self.list("wal")?;
        // An empty file cannot be mapped; it is as invalid as any damaged checkpoint.
        let mut maps = Vec::with_capacity(checkpoint_files.len());
        for (_, path) in &checkpoint_files {
            let len = std::fs::metadata(path).map_err(io_error(path))?.len();
            maps.push(if len == 0 {
                None
            } else {
                Some(map_file(path)?)
            });
        }
        let mut logs = Vec::with_capacity(segment_files.len());
        for (_, path) in &segment_files {
            logs.push(std::fs::read(path).map_err(io_error(path))?);
        }
        let names = |files: &[(u64, PathBuf)]| -> Vec<String> {
            files.iter().map(|(_, p)| p.display().to_string()).collect()
        };
        let (checkpoint_names, segment_names) = (names(&checkpoint_files), names(&segment_files));
        let checkpoints: Vec<StoredFile<'_>> = checkpoint_files
            .iter()
            .zip(&maps)
            .zip(&checkpoint_names)
            .map(|(((generation, _), map), name)| StoredFile {
                generation: *generation,
                name,
                bytes: map.as_deref().unwrap_or(&[]),
            })
            .collect();
        let segments: Vec<StoredFile<'_>> = segment_files
            .iter()
            .zip(&logs)
            .zip(&segment_names)
            .map(|(((generation, _), bytes), name)| StoredFile {
                generation: *generation,
                name,
                bytes,
            })
            .collect();
        let plan = plan_recovery(self.world_id, self.zone, &checkpoints, &segments).map_err(
            |e| match e {
                RecoveryError::Foreign { name, identity } => StoreError::Foreign {
                    path: PathBuf::from(name),
                    what: "world or zone mismatch".into(),
                    belongs: format!("world {} zone {}", identity.world_id, identity.zone.0),
                    expected: format!("world {} zone {}", self.world_id, self.zone.0),
                },
                RecoveryError::NothingValid(reason) => StoreError::NothingValid {
                    zone: self.zone.0,
                    reason,
                },
            },
        )?;
        if let Some((segment, offset)) = plan.truncate {
            truncate(&segment_files[segment].1, offset)?;
        }
        let chosen = plan.checkpoint.as_ref().map(|(index, _)| *index);
        let RecoveryPlan {
            records,
            incarnation,
            generation,
            empty,
            warnings,
            ..
        } = plan;
        Ok(Recovered {
            checkpoint: chosen.and_then(|index| maps.swap_remove(index)),
            records,
            incarnation,
            generation,
            empty,
            warnings,
        })
    }

    /// Writes checkpoint `generation` from `capture` and starts WAL segment `generation`,
    /// both durable when this returns. The start of a run, before anything is sent.
    pub fn begin(
        &self,
        generation: u64,
        incarnation: u32,
        capture: &Capture,
    ) -> Result<(File, PathBuf), StoreError> {
        let wal = self.create_segment(generation, incarnation, capture.tick)?;
        self.write_checkpoint(generation, incarnation, capture, &mut Vec::new())?;
        self.retire(generation)?;
        Ok(wal)
    }

    fn identity(&self, generation: u64, incarnation: u32, tick: u64) -> FileIdentity {
        FileIdentity {
            world_id: self.world_id,
            zone: self.zone,
            incarnation,
            tick,
            generation,
            run: self.run,
        }
    }

    /// The same files, written by run `run` from now on.
    pub fn with_run(mut self, run: u64) -> ZoneStore {
        self.run = run;
        self
    }

    /// The run writing through this store (0: not said).
    pub fn run(&self) -> u64 {
        self.run
    }

    pub(super) fn create_segment(
        &self,
        generation: u64,
        incarnation: u32,
        tick: u64,
    ) -> Result<(File, PathBuf), StoreError> {
        let path = self.file("wal", generation);
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?;
        let header = file_header(FileKind::Wal, &self.identity(generation, incarnation, tick));
        file.write_all(bytemuck::bytes_of(&header))
            .and_then(|()| file.sync_all())
            .map_err(io_error(&path))?;
        sync_dir(&self.dir)?;
        Ok((file, path))
    }

    /// Writes checkpoint `generation` durably (temporary file, fsync, rename, fsync the
    /// directory), encoding `capture` into `buf`.
    pub fn write_checkpoint(
        &self,
        generation: u64,
        incarnation: u32,
        capture: &Capture,
        buf: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        encode_checkpoint(
            &self.identity(generation, incarnation, capture.tick),
            capture,
            buf,
        );
        let path = self.file("ckp", generation);
        let tmp = path.with_extension(format!("{generation}.tmp"));
        write_synced(&tmp, buf)?;
        if let Some(pause) = *CHECKPOINT_PAUSE {
            // Fault injection for tests: widen the window in which a crash finds the
            // checkpoint written but not yet renamed.
            std::thread::sleep(pause);
        }
        std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
        sync_dir(&self.dir)
    }

    /// Deletes the files of generations older than `newest − 1`.
    pub(super) fn retire(&self, newest: u64) -> Result<(), StoreError> {
        for kind in ["ckp", "wal"] {
            for (g, path) in self.list(kind)? {
                if g + 1 < newest {
                    std::fs::remove_file(&path).map_err(io_error(&path))?;
                }
            }
        }
        Ok(())
    }
}

/// `MERIDIAN_CHECKPOINT_PAUSE_MS`: a pause between writing a checkpoint's temporary file
/// and renaming it, so crash tests can land a kill inside a checkpoint write. Unset in
/// production.
static CHECKPOINT_PAUSE: std::sync::LazyLock<Option<std::time::Duration>> =
    std::sync::LazyLock::new(|| {
        std::env::var("MERIDIAN_CHECKPOINT_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(std::time::Duration::from_millis)
    });

fn map_file(path: &Path) -> Result<memmap2::Mmap, StoreError> {
    let file = File::open(path).map_err(io_error(path))?;
    // SAFETY: the map is read-only and the file is this zone's, written once and renamed
    // into place; nothing in this process writes it while it is mapped, and a node holds
    // the directory's lock. Every byte is checksummed before it is interpreted.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_error(path))?;
    Ok(map)
}

fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(io_error(path))
}

/// Writes `bytes` as the whole of a new (or truncated) file, mode 0600, and syncs it.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error(path))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}
