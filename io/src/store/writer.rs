//! A zone's two writer threads: the WAL thread appends and `fdatasync`s each tick's records
//! and reports them durable; the checkpoint thread writes captured images and retires old
//! generations. Both report through a lock-free queue the zone polls; a failure is reported
//! once and ends the thread (never retried).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crossbeam_queue::ArrayQueue;
use meridian_core::persist::Capture;

use super::ZoneStore;
use crate::standby::{MirrorOp, StreamFeed};

/// Work for the WAL thread.
enum WalJob {
    /// Append and sync one tick's encoded records; report `seq` durable.
    Append { seq: u64, bytes: Vec<u8> },
    /// Checkpoint `generation` was begun: later records go to segment `generation`.
    Switch {
        generation: u64,
        incarnation: u32,
        tick: u64,
    },
    /// Checkpoint `generation`'s capture is complete: write it.
    Checkpoint {
        generation: u64,
        incarnation: u32,
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

/// Where the writer threads feed the standby stream: set at start, or later when a
/// standby is attached at run time ([`Writer::attach`]).
type FeedSlot = Arc<std::sync::Mutex<Option<StreamFeed>>>;

/// Pushes `op` to the stream if one is attached.
fn feed(slot: &FeedSlot, op: impl FnOnce() -> MirrorOp) {
    let slot = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(f) = slot.as_ref() {
        f.push(op());
    }
}

/// A zone's two writer threads.
#[derive(Debug)]
pub struct Writer {
    mirror: FeedSlot,
    jobs: SyncSender<WalJob>,
    events: Arc<ArrayQueue<WriterEvent>>,
    buffers: Arc<ArrayQueue<Vec<u8>>>,
    /// The WAL thread, then the checkpoint thread.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Where the final checkpoint is written ([`Writer::finish_with_checkpoints`]).
    store: ZoneStore,
    /// Checkpoints queued and not yet written by the checkpoint thread.
    checkpoints_pending: Arc<AtomicUsize>,
}

/// Ticks of records that may wait for the disk before the zone waits with them.
const WAL_QUEUE: usize = 256;

impl Writer {
    /// Starts the threads, appending to `wal` (WAL segment `generation`, from
    /// [`ZoneStore::begin`]). With a `mirror`, everything made durable is fed to the
    /// zone's standby stream as well.
    pub fn start(
        store: ZoneStore,
        wal: (File, PathBuf),
        generation: u64,
        mirror: Option<StreamFeed>,
    ) -> Writer {
        let (jobs, receiver) = sync_channel(WAL_QUEUE);
        let events = Arc::new(ArrayQueue::new(WAL_QUEUE * 2 + 8));
        let buffers = Arc::new(ArrayQueue::new(WAL_QUEUE + 8));
        let (ckp_jobs, ckp_receiver) = sync_channel::<(u64, u32, Box<Capture>)>(2);
        let mirror: FeedSlot = Arc::new(std::sync::Mutex::new(mirror));
        let checkpoints_pending = Arc::new(AtomicUsize::new(0));
        let checkpoints = {
            let (events, store, mirror) = (events.clone(), store.clone(), mirror.clone());
            let pending = checkpoints_pending.clone();
            std::thread::Builder::new()
                .name(format!("zone-{}-ckp", store.zone.0))
                .spawn(move || checkpoint_thread(store, ckp_receiver, (events, pending), mirror))
                .expect("spawn the checkpoint thread")
        };
        let wal = {
            let (events, buffers) = (events.clone(), buffers.clone());
            let thread = WalThread {
                store: store.clone(),
                generation,
                mirror: mirror.clone(),
                jobs: receiver,
                checkpoints: ckp_jobs,
                events,
                buffers,
            };
            std::thread::Builder::new()
                .name(format!("zone-{}-wal", thread.store.zone.0))
                .spawn(move || thread.run(wal))
                .expect("spawn the WAL thread")
        };
        Writer {
            mirror,
            jobs,
            events,
            buffers,
            threads: vec![wal, checkpoints],
            store,
            checkpoints_pending,
        }
    }

    /// Feeds a standby stream from now on (one attached at run time): everything made
    /// durable after this call reaches it; what was durable before is in the files its
    /// resync reads.
    pub fn attach(&self, stream: StreamFeed) {
        *self
            .mirror
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stream);
    }

    /// Stops feeding the stream (the zone dropped its standby).
    pub fn detach(&self) {
        *self
            .mirror
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Ends the threads once everything queued is written (a zone that stops cleanly
    /// leaves its directory as the module docs say: the last checkpoint complete, older
    /// generations retired).
    pub fn finish(self) {
        let Writer { jobs, threads, .. } = self;
        drop(jobs);
        for t in threads {
            let _ = t.join();
        }
    }

    /// A clean stop's end: starts WAL segment `generation` (at `tick`), ends the threads
    /// as [`Writer::finish`] does, then writes the `checkpoints` — the last of them
    /// `generation`, the stopped zone's final one; before it, the periodic one whose
    /// capture was under way — on the calling thread and hands each to the stream as a
    /// last one (sealed and written there at once, `MirrorOp::Checkpoint::last`). The
    /// calling thread is the zone's, idle now and at its priority: at nice 19, beside busy
    /// threads, the checkpoint thread took 60–110 ms to write one, and a move waits for
    /// it. The checkpoint thread is waited for only if it has a checkpoint still to
    /// write; idle, it ends on its own.
    pub fn finish_with_checkpoints(
        self,
        (generation, incarnation, tick): (u64, u32, u64),
        checkpoints: &[(u64, &Capture)],
    ) -> Result<(), String> {
        let switched = self.switch(generation, incarnation, tick);
        let Writer {
            jobs,
            threads,
            store,
            mirror,
            checkpoints_pending,
            ..
        } = self;
        drop(jobs);
        let mut threads = threads.into_iter();
        // The WAL thread: every append and the switch written, queued checkpoints handed on.
        threads.next().map(std::thread::JoinHandle::join);
        if checkpoints_pending.load(Ordering::Acquire) > 0 {
            threads.next().map(std::thread::JoinHandle::join);
        }
        let written = switched.and_then(|()| {
            checkpoints.iter().try_for_each(|&(generation, capture)| {
                let mut buf = Vec::new();
                store
                    .write_checkpoint(generation, incarnation, capture, &mut buf)
                    .and_then(|()| store.retire(generation))
                    .map_err(|e| e.to_string())?;
                feed(&mirror, || MirrorOp::Checkpoint {
                    generation,
                    bytes: buf,
                    last: true,
                });
                Ok(())
            })
        });
        // The feed ends here, not when the idle checkpoint thread drops its slot.
        *mirror
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        written
    }

    /// An empty buffer for a tick's records (reused).
    pub fn buffer(&self) -> Vec<u8> {
        self.buffers.pop().unwrap_or_default()
    }

    /// Queues a tick's records; blocks only if the disk is `WAL_QUEUE` ticks behind.
    pub fn append(&self, seq: u64, bytes: Vec<u8>) -> Result<(), String> {
        self.send(WalJob::Append { seq, bytes })
    }

    /// Starts WAL segment `generation` (records appended after this go to it): the zone
    /// began checkpoint `generation` at `tick`.
    pub fn switch(&self, generation: u64, incarnation: u32, tick: u64) -> Result<(), String> {
        self.send(WalJob::Switch {
            generation,
            incarnation,
            tick,
        })
    }

    /// Queues checkpoint `generation`'s completed capture for writing (after
    /// [`Writer::switch`] to the same generation).
    pub fn checkpoint(
        &self,
        generation: u64,
        incarnation: u32,
        capture: Box<Capture>,
    ) -> Result<(), String> {
        self.checkpoints_pending.fetch_add(1, Ordering::AcqRel);
        self.send(WalJob::Checkpoint {
            generation,
            incarnation,
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

/// The WAL thread's state.
struct WalThread {
    store: ZoneStore,
    /// The segment being appended to.
    generation: u64,
    mirror: FeedSlot,
    jobs: Receiver<WalJob>,
    checkpoints: SyncSender<(u64, u32, Box<Capture>)>,
    events: Arc<ArrayQueue<WriterEvent>>,
    buffers: Arc<ArrayQueue<Vec<u8>>>,
}

/// Where the WAL thread is: the segment's file and its generation, where the next
/// append lands in it, and the last sequence made durable (what the standby stream needs
/// to place and acknowledge the bytes).
struct Segment {
    file: File,
    path: PathBuf,
    generation: u64,
    offset: u64,
    durable: u64,
}

impl WalThread {
    fn run(self, wal: (File, PathBuf)) {
        let (file, path) = wal;
        let offset = file.metadata().map_or(0, |m| m.len());
        let mut at = Segment {
            file,
            path,
            generation: self.generation,
            offset,
            durable: 0,
        };
        let mut pending: Option<WalJob> = None;
        loop {
            let job = match pending.take() {
                Some(job) => job,
                None => match self.jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            let done = match job {
                WalJob::Append { seq, bytes } => {
                    let (last, batch) = gather(&self.jobs, seq, bytes, &mut pending);
                    self.append(&mut at, last, batch)
                }
                WalJob::Switch {
                    generation,
                    incarnation,
                    tick,
                } => self.switch(&mut at, generation, incarnation, tick),
                WalJob::Checkpoint {
                    generation,
                    incarnation,
                    capture,
                } => self
                    .checkpoints
                    .send((generation, incarnation, capture))
                    .map_err(|_| "the checkpoint thread has stopped".to_owned()),
            };
            if let Err(message) = done {
                tracing::error!("{message}");
                let _ = self.events.push(WriterEvent::Failed(message));
                return;
            }
        }
    }

    /// Writes and syncs a batch of ticks' records; reports them durable and feeds them to
    /// the standby stream.
    fn append(&self, at: &mut Segment, last: u64, batch: Vec<Vec<u8>>) -> Result<(), String> {
        batch
            .iter()
            .try_for_each(|b| at.file.write_all(b))
            .and_then(|()| at.file.sync_data())
            .map_err(|e| format!("{}: write or fdatasync failed: {e}", at.path.display()))?;
        at.durable = last;
        let _ = self.events.push(WriterEvent::Durable { seq: last });
        let len: usize = batch.iter().map(Vec::len).sum();
        feed(&self.mirror, || MirrorOp::Append {
            seq: last,
            generation: at.generation,
            offset: at.offset,
            bytes: batch.concat(),
        });
        at.offset += len as u64;
        for mut b in batch {
            b.clear();
            let _ = self.buffers.push(b);
        }
        Ok(())
    }

    /// Starts segment `generation`; its header goes to the standby stream as an append
    /// at offset 0.
    fn switch(
        &self,
        at: &mut Segment,
        generation: u64,
        incarnation: u32,
        tick: u64,
    ) -> Result<(), String> {
        let (file, path) = self
            .store
            .create_segment(generation, incarnation, tick)
            .map_err(|e| e.to_string())?;
        at.offset = file.metadata().map_or(0, |m| m.len());
        (at.file, at.path, at.generation) = (file, path, generation);
        let attached = self
            .mirror
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some();
        if attached {
            let bytes = std::fs::read(&at.path)
                .map_err(|e| format!("{}: read back failed: {e}", at.path.display()))?;
            feed(&self.mirror, || MirrorOp::Append {
                seq: at.durable,
                generation,
                offset: 0,
                bytes,
            });
        }
        Ok(())
    }
}

/// This tick's records and every tick's queued behind them (up to 32), for one sync: the
/// last sequence and the buffers. A job that is not an append is left in `pending`.
fn gather(
    jobs: &Receiver<WalJob>,
    seq: u64,
    bytes: Vec<u8>,
    pending: &mut Option<WalJob>,
) -> (u64, Vec<Vec<u8>>) {
    let (mut last, mut batch) = (seq, vec![bytes]);
    while batch.len() < 32 {
        match jobs.try_recv() {
            Ok(WalJob::Append { seq, bytes }) => {
                last = seq;
                batch.push(bytes);
            }
            Ok(other) => {
                *pending = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    (last, batch)
}

fn checkpoint_thread(
    store: ZoneStore,
    jobs: Receiver<(u64, u32, Box<Capture>)>,
    (events, pending): (Arc<ArrayQueue<WriterEvent>>, Arc<AtomicUsize>),
    mirror: FeedSlot,
) {
    lower_priority();
    let mut buf = Vec::new();
    while let Ok((generation, incarnation, capture)) = jobs.recv() {
        let written = store
            .write_checkpoint(generation, incarnation, &capture, &mut buf)
            .and_then(|()| store.retire(generation));
        match written {
            Ok(()) => {
                feed(&mirror, || MirrorOp::Checkpoint {
                    generation,
                    bytes: buf.clone(),
                    last: false,
                });
                pending.fetch_sub(1, Ordering::AcqRel);
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

/// Runs the calling thread at nice 19: encoding and writing a checkpoint (tens of
/// milliseconds of CPU a second for a large zone) then yields to the zone threads, which
/// share the cores, instead of stretching their ticks. Not SCHED_IDLE: a saturated zone must
/// still get its checkpoints written. Best effort: failing to lower it costs only latency.
///
/// Only for bulk work no zone waits on (this thread, the standby's checkpoint worker):
/// beside busy threads at nice 0 a nice-19 thread gets ~1.5 % of a core, so the standby
/// stream and its acknowledgements, which gate the zone's datagrams, keep the zone's
/// priority (`standby::tests::priority`).
pub(crate) fn lower_priority() {
    #[allow(
        unsafe_code,
        reason = "gettid and setpriority have no safe std wrapper"
    )]
    // SAFETY: plain system calls on the calling thread, no memory passed.
    let lowered = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19)
    };
    if lowered != 0 {
        tracing::debug!(
            "could not lower the checkpoint thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}
