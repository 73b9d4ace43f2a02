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
//! tick's datagrams until then. The checkpoint thread writes a captured image to a
//! temporary file, fsyncs it, renames it, fsyncs the directory, and retires old
//! generations. A failed write or sync is fatal for the zone (reported with the file's
//! name; never retried: after a failed fsync the page cache may have dropped the data).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crossbeam_queue::ArrayQueue;
use meridian_core::handoff::LogRecord;
use meridian_core::persist::{
    Capture, CheckpointView, FileIdentity, FileKind, WalEnd, encode_checkpoint, file_header,
    read_checkpoint, read_header, scan_wal,
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

    /// The store of zone `zone` of world `world_id` in this directory.
    pub fn zone(&self, world_id: u64, zone: ZoneID) -> ZoneStore {
        ZoneStore {
            dir: self.path.clone(),
            world_id,
            zone,
        }
    }
}

/// One zone's files in a data directory.
#[derive(Clone, Debug)]
pub struct ZoneStore {
    dir: PathBuf,
    world_id: u64,
    zone: ZoneID,
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
    fn file(&self, kind: &str, generation: u64) -> PathBuf {
        self.dir
            .join(format!("zone-{}.{kind}.{generation}", self.zone.0))
    }

    /// (generation, path) of this zone's files of `kind` ("ckp" or "wal"), ascending.
    fn list(&self, kind: &str) -> Result<Vec<(u64, PathBuf)>, StoreError> {
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

    fn check_identity(&self, path: &Path, id: &FileIdentity) -> Result<(), StoreError> {
        if id.world_id != self.world_id || id.zone != self.zone {
            return Err(StoreError::Foreign {
                path: path.to_owned(),
                what: "world or zone mismatch".into(),
                belongs: format!("world {} zone {}", id.world_id, id.zone.0),
                expected: format!("world {} zone {}", self.world_id, self.zone.0),
            });
        }
        Ok(())
    }

    /// Finds the newest valid state. See the module docs.
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        // A checkpoint interrupted before its rename is garbage: it never counted.
        let tmp_prefix = format!("zone-{}.ckp.", self.zone.0);
        for entry in std::fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let path = entry.map_err(io_error(&self.dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(&tmp_prefix) && name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
            }
        }
        let checkpoints = self.list("ckp")?;
        let segments = self.list("wal")?;
        let mut warnings = Vec::new();
        let mut incarnation = 0u32;
        let mut generation = 0u64;
        if checkpoints.is_empty() && segments.is_empty() {
            return Ok(Recovered {
                checkpoint: None,
                records: Vec::new(),
                incarnation: 1,
                generation: 1,
                empty: true,
                warnings,
            });
        }
        // Candidates, newest first: each checkpoint, then "no checkpoint" (segments from 0).
        let mut reasons = Vec::new();
        let mut candidates: Vec<Option<(u64, PathBuf)>> =
            checkpoints.iter().rev().cloned().map(Some).collect();
        candidates.push(None);
        for candidate in candidates {
            let (base, map) = match &candidate {
                Some((g, path)) => match map_file(path) {
                    Ok(map) => match read_checkpoint(&map) {
                        Ok(view) => {
                            self.check_identity(path, &view.identity)?;
                            incarnation = incarnation.max(view.identity.incarnation);
                            (*g, Some(map))
                        }
                        Err(e) => {
                            reasons.push(format!("{}: {e}", path.display()));
                            warnings.push(format!(
                                "{}: {e}; falling back to the older generation",
                                path.display()
                            ));
                            continue;
                        }
                    },
                    Err(e) => {
                        reasons.push(format!("{e}"));
                        continue;
                    }
                },
                None => (0, None),
            };
            match self.replay_segments(&segments, base, &mut warnings)? {
                Ok((records, seen_incarnation)) => {
                    if candidate.is_none() && segments.first().is_none_or(|s| s.0 != 0) {
                        reasons.push(
                            "no valid checkpoint and no WAL from the beginning (generation 0)"
                                .into(),
                        );
                        break;
                    }
                    incarnation = incarnation.max(seen_incarnation);
                    generation = generation
                        .max(checkpoints.last().map_or(0, |c| c.0))
                        .max(segments.last().map_or(0, |s| s.0));
                    return Ok(Recovered {
                        checkpoint: map,
                        records,
                        incarnation: incarnation + 1,
                        generation: generation + 1,
                        empty: false,
                        warnings,
                    });
                }
                Err(reason) => {
                    reasons.push(reason.clone());
                    warnings.push(format!("{reason}; falling back to the older generation"));
                }
            }
        }
        Err(StoreError::NothingValid {
            zone: self.zone.0,
            reason: reasons.join("; "),
        })
    }

    /// Replays the segments from generation `base` on. `Ok(Err(reason))`: a corrupt record
    /// (or a gap) makes this base unusable.
    #[allow(clippy::type_complexity)]
    fn replay_segments(
        &self,
        segments: &[(u64, PathBuf)],
        base: u64,
        warnings: &mut Vec<String>,
    ) -> Result<Result<(Vec<LogRecord>, u32), String>, StoreError> {
        let mut records = Vec::new();
        let mut incarnation = 0;
        let wanted: Vec<&(u64, PathBuf)> = segments.iter().filter(|s| s.0 >= base).collect();
        if wanted.first().is_none_or(|s| s.0 != base) {
            return Ok(Err(format!(
                "the WAL segment of generation {base} (zone-{}.wal.{base}) is missing",
                self.zone.0
            )));
        }
        for (i, (g, path)) in wanted.iter().enumerate() {
            if *g != base + i as u64 {
                return Ok(Err(format!(
                    "WAL generation {} is missing",
                    base + i as u64
                )));
            }
            let bytes = std::fs::read(path).map_err(io_error(path))?;
            let last = i + 1 == wanted.len();
            if last && bytes.len() < meridian_layouts::persist::FileHeader::SIZE {
                // A crash between creating the newest segment and syncing its header: it
                // holds nothing.
                warnings.push(format!(
                    "{}: {} bytes, no complete header (a crash while it was created); ignored",
                    path.display(),
                    bytes.len()
                ));
                break;
            }
            let scan = match scan_wal(&bytes) {
                Ok(scan) => scan,
                Err(e) => return Ok(Err(format!("{}: {e}", path.display()))),
            };
            self.check_identity(path, &scan.identity)?;
            incarnation = incarnation.max(scan.identity.incarnation);
            match scan.end {
                WalEnd::Clean => {}
                WalEnd::Torn { offset } if last => {
                    warnings.push(format!(
                        "{}: torn tail at offset {offset} (an interrupted write), truncated",
                        path.display()
                    ));
                    truncate(path, offset)?;
                }
                WalEnd::Torn { offset } | WalEnd::Corrupt { offset } => {
                    return Ok(Err(format!(
                        "{}: corrupt record at offset {offset}",
                        path.display()
                    )));
                }
            }
            for r in &scan.records {
                if let LogRecord::Incarnation { incarnation: i, .. } = r {
                    incarnation = incarnation.max(*i);
                }
            }
            records.extend(scan.records);
        }
        Ok(Ok((records, incarnation)))
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
        }
    }

    fn create_segment(
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
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_error(&tmp))?;
        file.write_all(buf)
            .and_then(|()| file.sync_all())
            .map_err(io_error(&tmp))?;
        if let Some(pause) = *CHECKPOINT_PAUSE {
            // Fault injection for tests: widen the window in which a crash finds the
            // checkpoint written but not yet renamed.
            std::thread::sleep(pause);
        }
        std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
        sync_dir(&self.dir)
    }

    /// Deletes the files of generations older than `newest − 1`.
    fn retire(&self, newest: u64) -> Result<(), StoreError> {
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

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

// ---- the writer threads ----------------------------------------------------------------

/// Work for the WAL thread.
enum WalJob {
    /// Append and sync one tick's encoded records; report `seq` durable.
    Append { seq: u64, bytes: Vec<u8> },
    /// Checkpoint `generation` was captured: later records go to segment `generation`.
    Switch {
        generation: u64,
        incarnation: u32,
        tick: u64,
        capture: Box<Capture>,
    },
}

/// What the writer threads report.
#[derive(Debug)]
pub enum WriterEvent {
    /// Every record up to sequence `seq` is durable.
    Durable { seq: u64 },
    /// Checkpoint `generation` is durable; its capture buffers come back for reuse.
    Checkpointed {
        generation: u64,
        capture: Box<Capture>,
    },
    /// A write or sync failed: the zone must stop.
    Failed(String),
}

/// A zone's two writer threads.
#[derive(Debug)]
pub struct Writer {
    jobs: SyncSender<WalJob>,
    events: Arc<ArrayQueue<WriterEvent>>,
    buffers: Arc<ArrayQueue<Vec<u8>>>,
}

/// Ticks of records that may wait for the disk before the zone waits with them.
const WAL_QUEUE: usize = 256;

impl Writer {
    /// Starts the threads, appending to `wal` (from [`ZoneStore::begin`]).
    pub fn start(store: ZoneStore, wal: (File, PathBuf)) -> Writer {
        let (jobs, receiver) = sync_channel(WAL_QUEUE);
        let events = Arc::new(ArrayQueue::new(WAL_QUEUE * 2 + 8));
        let buffers = Arc::new(ArrayQueue::new(WAL_QUEUE + 8));
        let (ckp_jobs, ckp_receiver) = sync_channel::<(u64, u32, Box<Capture>)>(2);
        {
            let (events, store) = (events.clone(), store.clone());
            std::thread::Builder::new()
                .name(format!("zone-{}-ckp", store.zone.0))
                .spawn(move || checkpoint_thread(store, ckp_receiver, events))
                .expect("spawn the checkpoint thread");
        }
        {
            let (events, buffers) = (events.clone(), buffers.clone());
            std::thread::Builder::new()
                .name(format!("zone-{}-wal", store.zone.0))
                .spawn(move || wal_thread(store, wal, receiver, ckp_jobs, events, buffers))
                .expect("spawn the WAL thread");
        }
        Writer {
            jobs,
            events,
            buffers,
        }
    }

    /// An empty buffer for a tick's records (reused).
    pub fn buffer(&self) -> Vec<u8> {
        self.buffers.pop().unwrap_or_default()
    }

    /// Queues a tick's records; blocks only if the disk is `WAL_QUEUE` ticks behind.
    pub fn append(&self, seq: u64, bytes: Vec<u8>) -> Result<(), String> {
        self.send(WalJob::Append { seq, bytes })
    }

    /// Queues checkpoint `generation` (records appended after this go to its segment).
    pub fn checkpoint(
        &self,
        generation: u64,
        incarnation: u32,
        capture: Box<Capture>,
    ) -> Result<(), String> {
        let tick = capture.tick;
        self.send(WalJob::Switch {
            generation,
            incarnation,
            tick,
            capture,
        })
    }

    fn send(&self, job: WalJob) -> Result<(), String> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => {
                tracing::warn!("the disk is {WAL_QUEUE} ticks behind; the zone waits for it");
                self.jobs
                    .send(job)
                    .map_err(|_| "the WAL thread has stopped".to_owned())
            }
            Err(TrySendError::Disconnected(_)) => Err("the WAL thread has stopped".into()),
        }
    }

    /// The next report, if any.
    pub fn poll(&self) -> Option<WriterEvent> {
        self.events.pop()
    }
}

fn wal_thread(
    store: ZoneStore,
    wal: (File, PathBuf),
    jobs: Receiver<WalJob>,
    checkpoints: SyncSender<(u64, u32, Box<Capture>)>,
    events: Arc<ArrayQueue<WriterEvent>>,
    buffers: Arc<ArrayQueue<Vec<u8>>>,
) {
    let (mut file, mut path) = wal;
    let fail = |message: String| {
        tracing::error!("{message}");
        let _ = events.push(WriterEvent::Failed(message));
    };
    let mut pending: Option<WalJob> = None;
    loop {
        let job = match pending.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            WalJob::Append { seq, bytes } => {
                // Every tick queued behind this one goes in the same sync.
                let (mut last, mut batch) = (seq, vec![bytes]);
                while batch.len() < 32 {
                    match jobs.try_recv() {
                        Ok(WalJob::Append { seq, bytes }) => {
                            last = seq;
                            batch.push(bytes);
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let written = batch
                    .iter()
                    .try_for_each(|b| file.write_all(b))
                    .and_then(|()| file.sync_data());
                if let Err(e) = written {
                    fail(format!(
                        "{}: write or fdatasync failed: {e}",
                        path.display()
                    ));
                    return;
                }
                let _ = events.push(WriterEvent::Durable { seq: last });
                for mut b in batch {
                    b.clear();
                    let _ = buffers.push(b);
                }
            }
            WalJob::Switch {
                generation,
                incarnation,
                tick,
                capture,
            } => {
                match store.create_segment(generation, incarnation, tick) {
                    Ok(next) => (file, path) = next,
                    Err(e) => {
                        fail(e.to_string());
                        return;
                    }
                }
                if checkpoints
                    .send((generation, incarnation, capture))
                    .is_err()
                {
                    fail("the checkpoint thread has stopped".into());
                    return;
                }
            }
        }
    }
}

fn checkpoint_thread(
    store: ZoneStore,
    jobs: Receiver<(u64, u32, Box<Capture>)>,
    events: Arc<ArrayQueue<WriterEvent>>,
) {
    let mut buf = Vec::new();
    while let Ok((generation, incarnation, capture)) = jobs.recv() {
        let written = store
            .write_checkpoint(generation, incarnation, &capture, &mut buf)
            .and_then(|()| store.retire(generation));
        match written {
            Ok(()) => {
                let _ = events.push(WriterEvent::Checkpointed {
                    generation,
                    capture,
                });
            }
            Err(e) => {
                tracing::error!("{e}");
                let _ = events.push(WriterEvent::Failed(e.to_string()));
                return;
            }
        }
    }
}

/// The header of a WAL or checkpoint file, for `meridian inspect`.
pub fn identify(
    bytes: &[u8],
) -> Option<(
    FileKind,
    Result<FileIdentity, meridian_core::persist::FileError>,
)> {
    if bytes.starts_with(b"MRDN-WAL") {
        Some((FileKind::Wal, read_header(bytes, FileKind::Wal)))
    } else if bytes.starts_with(b"MRDN-CKP") {
        Some((
            FileKind::Checkpoint,
            read_header(bytes, FileKind::Checkpoint),
        ))
    } else {
        None
    }
}
