//! The vote ledger on disk: read at start, saved on a thread of its own.
//!
//! Nothing that rests on the ledger leaves before it is on disk, and a save syncs the
//! file and its directory. Under a loaded disk a sync can take a second or more (668 ms
//! measured here at a mesh's start, three nodes writing checkpoints). Saved on the
//! membership thread, that second held the probes unanswered: the others suspected the
//! node and declared it down — a takeover of a live node's zones for a slow disk — and
//! the node rejoined as a new life when it woke. On its own thread the save holds only
//! the answers and decisions that rest on it ([`meridian_core::mesh::Mesh::ledger_to_save`]).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use meridian_core::mesh::LedgerSave;
use meridian_core::mesh::votes::Ledger;

/// After a failed save the thread waits this long before it reports it, so a disk that
/// refuses every write is not retried in a busy loop.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// The thread that saves the ledger, and what it reported.
pub(super) struct Saver {
    jobs: Option<Sender<LedgerSave>>,
    done: Receiver<(u64, std::io::Result<()>)>,
    thread: Option<JoinHandle<()>>,
    /// The newest version handed to the thread, until a report of it (or a later one).
    pending: Option<u64>,
}

impl Saver {
    /// Starts the thread that saves the ledger at `path`.
    pub(super) fn start(path: PathBuf) -> std::io::Result<Saver> {
        let (jobs, inbox) = channel::<LedgerSave>();
        let (report, done) = channel();
        let thread = std::thread::Builder::new()
            .name("mesh-ledger".into())
            .spawn(move || {
                while let Ok(mut job) = inbox.recv() {
                    // Only the newest matters: it holds every change of the older ones.
                    while let Ok(newer) = inbox.try_recv() {
                        job = newer;
                    }
                    let saved = save_ledger(&path, &job.bytes);
                    if saved.is_err() {
                        std::thread::sleep(RETRY_AFTER);
                    }
                    if report.send((job.version, saved)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Saver {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            pending: None,
        })
    }

    /// Hands `save` to the thread.
    pub(super) fn save(&mut self, save: LedgerSave) {
        self.pending = Some(save.version);
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(save);
        }
    }

    /// Whether a save is under way (the membership thread then looks for its report
    /// often, so the answers it holds leave soon after it).
    pub(super) fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// The saves finished since the last call: (version, outcome).
    pub(super) fn reports(&mut self) -> Vec<(u64, std::io::Result<()>)> {
        let reports: Vec<_> = self.done.try_iter().collect();
        if let Some(&(newest, _)) = reports.last()
            && self.pending.is_some_and(|p| p <= newest)
        {
            self.pending = None;
        }
        reports
    }
}

impl Drop for Saver {
    /// Lets the save under way finish.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The ledger at `path`, or a new one if there is no file yet. A damaged file stops the
/// node: a node that forgot what it agreed to could let a stale standby take a zone over.
pub(super) fn load_ledger(path: &Path) -> anyhow::Result<Ledger> {
    match std::fs::read(path) {
        Ok(bytes) => Ledger::decode(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}. This file records what this node agreed to about standbys; \
                 without it the node could let a stale standby take a zone over. Restore it \
                 from a backup, or — only if every zone's standby is current and no node is \
                 down — delete it",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::new()),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the ledger whole to a new file, syncs it and renames it over the old one (a
/// crash leaves the old ledger or the new, never a torn one). `MERIDIAN_LEDGER_SAVE_PAUSE_MS`
/// (a test hook, unset in production) makes each save that much slower, as a loaded disk
/// does.
fn save_ledger(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(ms) = std::env::var("MERIDIAN_LEDGER_SAVE_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("ledger.new");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
