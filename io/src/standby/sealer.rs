//! A checkpoint's frames sealed and signed on a thread of their own at nice 19.
//!
//! The stream's thread sends the appends whose acknowledgements the zone's datagrams wait
//! for, so it runs at the zone's priority; sealing and signing a checkpoint (~10 MB a
//! second for 250,000 entities) on it competed with the zone threads and cost ~1.5–2 ms
//! of tick p99. Here a checkpoint is cut into its `Part` frames, its closing `File` frame
//! and the `Retire` after it, sealed in lane 1 of the connection's cipher (their own count
//! of nonces, so the stream's thread can send its own frames between them), and handed
//! back whole to be written between the appends. A stopped zone's final checkpoint is
//! sealed by the stream itself, in lane 2 ([`seal_here`]): its move waits for it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, RecvError, Sender, bounded};
use ed25519_dalek::SigningKey;
use meridian_layouts::U64Le;
use meridian_layouts::standby::{FileKind, FrameHeader, FrameKind, LANE_CHECKPOINT, LANE_FINAL};

use super::frame::{StreamCipher, write_sealed};
use super::hooks::{self as tests_hooks, Point};

/// A checkpoint's frames longer than this are sent in parts (`Part` frames), with the
/// appends fed meanwhile between them.
const PART_SIZE: usize = 256 << 10;

/// A frame sealed and signed, ready for the socket.
pub(super) struct Sealed {
    pub bytes: Vec<u8>,
    /// The `File` frame that completes the checkpoint.
    pub file_end: bool,
    /// The checkpoint's last frame (the `Retire` after it).
    pub last: bool,
}

/// A checkpoint to seal: its generation and bytes.
type Job = (u64, Vec<u8>);

/// One connection's sealing thread.
pub(super) struct Sealer {
    jobs: Sender<Job>,
    frames: Receiver<Sealed>,
    /// Checkpoints handed over whose last frame has not come back yet.
    pending: usize,
}

impl Sealer {
    /// A sealer for the connection of zone `zone` (whose files are in `dir`): the
    /// primary's key, the connection's challenge and cipher.
    pub(super) fn start(
        zone: u32,
        (key, challenge): (SigningKey, [u8; 32]),
        cipher: StreamCipher,
        dir: PathBuf,
    ) -> std::io::Result<Sealer> {
        let (jobs, inbox) = bounded::<Job>(1);
        // A few parts ahead of the socket: a megabyte at most waits here.
        let (outbox, frames) = bounded(4);
        // Not joined: dropped with its connection, it ends at its next frame (its inbox
        // and outbox closed), and whoever drops it — a reconnection, the zone's stop —
        // does not wait for a thread that may be starved.
        std::thread::Builder::new()
            .name(format!("zone-{zone}-sealer"))
            .spawn(move || {
                crate::store::lower_priority();
                let mut cipher = cipher;
                for (generation, bytes) in inbox {
                    tests_hooks::at(&dir, Point::Sealing);
                    let to = (zone, &key, &challenge);
                    let lane = (&mut cipher, LANE_CHECKPOINT);
                    // The stream ended (its receiver gone): nothing more to seal for it.
                    if seal(to, lane, (generation, &bytes), |f| outbox.send(f)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Sealer {
            jobs,
            frames,
            pending: 0,
        })
    }

    /// Whether every checkpoint handed over went out whole.
    pub(super) fn idle(&self) -> bool {
        self.pending == 0
    }

    /// Hands checkpoint `generation` over (only when [`Sealer::idle`]: one at a time).
    pub(super) fn seal(&mut self, generation: u64, bytes: Vec<u8>) -> std::io::Result<()> {
        debug_assert!(self.idle(), "one checkpoint at a time");
        self.jobs.send((generation, bytes)).map_err(|_| ended())?;
        self.pending += 1;
        Ok(())
    }

    /// Where the sealed frames come out (for a `select`); what it yields goes to
    /// [`Sealer::took`].
    pub(super) fn frames(&self) -> &Receiver<Sealed> {
        &self.frames
    }

    /// A frame received from [`Sealer::frames`], counted.
    pub(super) fn took(&mut self, frame: Result<Sealed, RecvError>) -> std::io::Result<Sealed> {
        let frame = frame.map_err(|_| ended())?;
        if frame.last {
            self.pending -= 1;
        }
        Ok(frame)
    }

    /// The next sealed frame, waiting for it; `None` once every checkpoint went out.
    pub(super) fn next(&mut self) -> std::io::Result<Option<Sealed>> {
        if self.idle() {
            return Ok(None);
        }
        let frame = self.frames.recv();
        self.took(frame).map(Some)
    }
}

/// Seals `checkpoints` in the final lane of `cipher` and writes them to `w`, on the
/// calling thread: a stopped zone's last ones, which its move waits for (the stream's
/// thread, at the zone's priority; see `Run::seal_final`). Returns the bytes written.
pub(super) fn seal_here(
    to: (u32, &SigningKey, &[u8; 32]),
    cipher: &mut StreamCipher,
    checkpoints: Vec<(u64, Vec<u8>)>,
    w: &mut impl Write,
    dir: &Path,
) -> std::io::Result<u64> {
    let mut sent = 0;
    for (generation, bytes) in checkpoints {
        seal(to, (&mut *cipher, LANE_FINAL), (generation, &bytes), |f| {
            w.write_all(&f.bytes)?;
            sent += f.bytes.len() as u64;
            if f.file_end {
                tests_hooks::at(dir, Point::CheckpointFile);
            }
            Ok::<(), std::io::Error>(())
        })?;
    }
    Ok(sent)
}

fn ended() -> std::io::Error {
    std::io::Error::other("the checkpoint sealing thread ended")
}

/// Seals checkpoint `generation`'s frames in `lane` of `cipher`, in order, into `out`:
/// its parts, the `File` frame with the rest (the whole file when it is short), then the
/// list of the files the standby is to keep. Stops at `out`'s first error (the stream is
/// gone). The sealer's thread seals in [`LANE_CHECKPOINT`]; the stream itself, a stopped
/// zone's last checkpoints, in `LANE_FINAL`.
pub(super) fn seal<E>(
    (zone, key, challenge): (u32, &SigningKey, &[u8; 32]),
    (cipher, lane): (&mut StreamCipher, u8),
    (generation, bytes): (u64, &[u8]),
    mut out: impl FnMut(Sealed) -> Result<(), E>,
) -> Result<(), E> {
    let mut frame = |mut h: FrameHeader, payload: &[u8], file_end: bool, last: bool| {
        h.lane = lane;
        let mut bytes = Vec::with_capacity(FrameHeader::SIZE + payload.len() + 16 + 64);
        write_sealed(&mut bytes, key, challenge, cipher, h, payload)
            .expect("writing to a Vec cannot fail");
        out(Sealed {
            bytes,
            file_end,
            last,
        })
    };
    let mut h = FrameHeader::new(FrameKind::Part, zone);
    h.file = FileKind::Checkpoint as u8;
    h.generation = U64Le::new(generation);
    let mut at = 0;
    while bytes.len() - at > PART_SIZE {
        h.offset = U64Le::new(at as u64);
        frame(h, &bytes[at..at + PART_SIZE], false, false)?;
        at += PART_SIZE;
    }
    // The rest ends it.
    h.kind = FrameKind::File as u8;
    h.offset = U64Le::new(at as u64);
    frame(h, &bytes[at..], true, false)?;
    // Its checkpoint thread retired the generations before the one before it — named by
    // generation, not by what the directory holds by now: newer checkpoints written while
    // this one went out are not at the standby yet, and a list naming only them would
    // prune this one there.
    let mut kept = Vec::new();
    for kind in [FileKind::Checkpoint, FileKind::Wal] {
        for g in [generation.saturating_sub(1), generation] {
            kept.push(kind as u8);
            kept.extend_from_slice(&g.to_le_bytes());
        }
    }
    frame(
        FrameHeader::new(FrameKind::Retire, zone),
        &kept,
        false,
        true,
    )
}
