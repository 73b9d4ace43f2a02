//! A standby connection's checkpoint worker (`serve`): checkpoint and prune frames are
//! verified, opened and written off the connection's thread, in order — except a stopped
//! zone's final ones (`LANE_FINAL`), which the connection applies itself, after the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use meridian_layouts::standby::{FrameHeader, FrameKind};

use super::frame::{SIGNATURE_SIZE, StreamCipher, verify};
use super::mirror::{Parts, prune};
use super::serve::ServeError;
use crate::store::ZoneStore;

/// One frame for the checkpoint worker: kind, header, sealed payload, signature, its
/// index on the connection.
pub(super) type WorkerItem = (FrameKind, FrameHeader, Vec<u8>, [u8; SIGNATURE_SIZE], u64);

/// What a frame is verified, opened and written with.
#[derive(Clone)]
struct Apply {
    store: ZoneStore,
    key: VerifyingKey,
    challenge: [u8; 32],
    cipher: StreamCipher,
}

impl Apply {
    /// Verifies, opens and writes one checkpoint or prune frame; `parts` holds a
    /// checkpoint arriving in parts.
    fn item(&self, parts: &mut Parts, item: WorkerItem) -> Result<(), ServeError> {
        let (kind, h, mut payload, signature, index) = item;
        verify(kind, &h, &payload, &signature, &self.key, &self.challenge)
            .and_then(|()| self.cipher.open(index, kind, &h, &mut payload))
            .map_err(ServeError::from)
            .and_then(|()| {
                match kind {
                    FrameKind::Retire => prune(&self.store, &payload),
                    _ => parts.apply(&self.store, kind, &h, payload),
                }
                .map_err(ServeError::from)
            })
    }
}

/// A connection's checkpoint worker: verifies checkpoint and prune frames and applies
/// them in order; a failure ends the connection.
pub(super) struct CheckpointWorker {
    items: Option<std::sync::mpsc::SyncSender<WorkerItem>>,
    /// The final lane's frames, applied on the connection's thread.
    here: (Apply, std::cell::RefCell<Parts>),
    failed: Arc<AtomicBool>,
    /// Items sent, and items the worker has finished.
    sent: std::cell::Cell<u64>,
    done: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CheckpointWorker {
    pub(super) fn start(
        store: ZoneStore,
        key: VerifyingKey,
        challenge: [u8; 32],
        cipher: StreamCipher,
    ) -> CheckpointWorker {
        let (tx, rx) = std::sync::mpsc::sync_channel::<WorkerItem>(8);
        let failed = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let apply = Apply {
            store,
            key,
            challenge,
            cipher,
        };
        let thread = {
            let (failed, done, apply) = (failed.clone(), done.clone(), apply.clone());
            std::thread::Builder::new()
                .name("standby-checkpoints".into())
                .spawn(move || {
                    crate::store::lower_priority();
                    let mut parts = Parts::default();
                    for item in rx {
                        #[cfg(test)]
                        std::thread::sleep(tests_hooks::worker_delay(apply.store.dir()));
                        let zone = item.1.zone.get();
                        if let Err(e) = apply.item(&mut parts, item) {
                            tracing::warn!("standby stream for zone {zone}: {e}");
                            failed.store(true, Ordering::Relaxed);
                            return;
                        }
                        done.fetch_add(1, Ordering::Release);
                    }
                })
                .ok()
        };
        if thread.is_none() {
            failed.store(true, Ordering::Relaxed);
        }
        CheckpointWorker {
            items: Some(tx),
            here: (apply, std::cell::RefCell::new(Parts::default())),
            failed,
            sent: std::cell::Cell::new(0),
            done,
            thread,
        }
    }

    /// The worker stopped on an error (logged): the connection must end.
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits until the worker has written everything sent to it (a resync's end claims
    /// it all).
    pub(super) fn drain(&self) -> Result<(), ServeError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.done.load(Ordering::Acquire) < self.sent.get() {
            if self.failed.load(Ordering::Relaxed) || std::time::Instant::now() > deadline {
                return Err(ServeError::Worker);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Applies a frame of a stopped zone's final checkpoints (`LANE_FINAL`) on the calling
    /// thread, at the connection's priority, once the worker has written everything sent
    /// to it before: a move waits for these, and beside busy threads the worker, at nice
    /// 19, took 65–160 ms a checkpoint.
    pub(super) fn apply_here(&self, item: WorkerItem) -> Result<(), ServeError> {
        self.drain()?;
        let (apply, parts) = &self.here;
        apply.item(&mut parts.borrow_mut(), item)
    }

    pub(super) fn send(&self, item: WorkerItem) -> Result<(), ServeError> {
        let sent = self.items.as_ref().is_some_and(|tx| tx.send(item).is_ok());
        if sent {
            self.sent.set(self.sent.get() + 1);
            Ok(())
        } else {
            Err(ServeError::Worker)
        }
    }
}

impl Drop for CheckpointWorker {
    fn drop(&mut self) {
        self.items = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Test knobs: a checkpoint worker made slow, to show what an acknowledgement may claim
/// while it still writes.
#[cfg(test)]
pub(super) mod tests_hooks {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::time::Duration;

    /// The mirror directory whose worker is slow, and by how much (tests run in parallel:
    /// only that one's).
    static SLOW: Mutex<Option<(PathBuf, Duration)>> = Mutex::new(None);

    pub(crate) fn set_worker_delay(dir: &Path, delay: Duration) {
        *SLOW.lock().unwrap() = Some((dir.to_path_buf(), delay));
    }

    pub(super) fn worker_delay(dir: &Path) -> Duration {
        match &*SLOW.lock().unwrap() {
            Some((slow, delay)) if dir.starts_with(slow) => *delay,
            _ => Duration::ZERO,
        }
    }
}
