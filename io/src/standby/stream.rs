//! The primary's side: a thread per zone that connects to the zone's standby node and
//! mirrors the zone's files to it, and the acknowledgements that come back — the second
//! watermark the zone's held datagrams wait for.
//!
//! The writer threads feed it ([`StreamFeed`]) what they made durable, in order: WAL
//! appends with their offsets (a new segment's header is an append at offset 0) and
//! checkpoints. It keeps nothing for resending: on every (re)connection, and whenever it
//! fell behind the feed, it resends the zone's files whole, as they are on disk, then
//! goes on with the feed. Every operation is idempotent at the standby ([`super::Mirror`]).

use std::io::{BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select};
use ed25519_dalek::{SigningKey, VerifyingKey};
use meridian_layouts::U64Le;
use meridian_layouts::standby::{FileKind, FrameHeader, FrameKind};

use super::frame::{
    FrameError, SIGNATURE_SIZE, StreamCipher, TAG_SIZE, read_challenge, read_frame, write_frame,
    write_sealed,
};
use super::hooks as tests_hooks;
use super::sealer::{self, Sealed, Sealer};
use crate::store::ZoneStore;

/// Operations the feed holds before the stream counts itself behind and resyncs.
const FEED_DEPTH: usize = 1024;
/// Between connection attempts.
const RECONNECT: Duration = Duration::from_millis(200);

/// What the writer threads made durable, for the standby.
#[derive(Debug)]
pub enum MirrorOp {
    /// `bytes` written at `offset` of WAL segment `generation`; `seq` is the append
    /// sequence they complete (a segment header repeats the last one).
    Append {
        seq: u64,
        generation: u64,
        offset: u64,
        bytes: Vec<u8>,
    },
    /// Checkpoint `generation`, written whole; older generations retired after it.
    /// `last`: the zone stopped and this is its final checkpoint — a move waits for it,
    /// so the stream seals it itself, at once (`LANE_FINAL`), not on the sealer's thread.
    Checkpoint {
        generation: u64,
        bytes: Vec<u8>,
        last: bool,
    },
}

/// The writer threads' end of the stream. Never blocks: a full feed marks the stream
/// behind, and it resyncs from the files.
#[derive(Clone, Debug)]
pub struct StreamFeed {
    ops: Sender<MirrorOp>,
    behind: Arc<AtomicBool>,
}

impl StreamFeed {
    pub fn push(&self, op: MirrorOp) {
        if let Err(TrySendError::Full(_)) = self.ops.try_send(op) {
            self.behind.store(true, Ordering::Relaxed);
        }
    }
}

/// Marks the standby's answer in the takeover word as `Stale` rather than `TakenOver`.
const STALE: u32 = 1 << 31;
/// The claim a clean stop ends its stream with: a `Synced` frame whose `generation` is
/// this, which the standby echoes in its acknowledgements once everything before it is
/// in place — the final checkpoint, written by its worker, included.
const FINAL_CLAIM: u64 = 1;

/// Who the standby is and how to reach it.
#[derive(Clone, Copy, Debug)]
pub struct StandbyTarget {
    pub addr: SocketAddr,
    /// The standby node's pinned key: it signs the acknowledgements.
    pub key: VerifyingKey,
}

/// The zone's end: the highest append sequence the standby holds durably.
#[derive(Debug)]
pub struct Stream {
    acked: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    taken_over: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    /// A clean stop's claim was acknowledged: the standby holds everything ([`Stream::finish`]).
    complete: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stream {
    /// Starts streaming zone `store`'s files (this node's copy) to `target`.
    pub fn start(
        store: ZoneStore,
        zone: u32,
        incarnation: u32,
        key: SigningKey,
        target: StandbyTarget,
    ) -> (Stream, StreamFeed) {
        Stream::start_from(store, zone, incarnation, key, target, 0)
    }

    /// [`Stream::start`] for a zone that has run a while (a standby attached at run
    /// time): appends up to `durable` are in the files on disk, so the resync stands for
    /// them and the standby acknowledges them once it holds it.
    pub fn start_from(
        store: ZoneStore,
        zone: u32,
        incarnation: u32,
        key: SigningKey,
        target: StandbyTarget,
        durable: u64,
    ) -> (Stream, StreamFeed) {
        let (tx, rx) = bounded(FEED_DEPTH);
        let behind = Arc::new(AtomicBool::new(false));
        let (acked, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let taken_over = Arc::new(AtomicU32::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let complete = Arc::new(AtomicBool::new(false));
        let run = Run {
            store,
            zone,
            incarnation,
            key,
            target,
            ops: rx,
            behind: behind.clone(),
            acked: acked.clone(),
            taken_over: taken_over.clone(),
            sent: sent.clone(),
            cipher: None,
            connected: false,
            stop: stop.clone(),
            complete: complete.clone(),
            claimed: Arc::new(AtomicU64::new(0)),
            last_seq: durable,
            later: std::collections::VecDeque::new(),
            sealer: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("zone-{zone}-standby"))
            .spawn(move || run.run())
            .expect("spawn the standby stream thread");
        let stream = Stream {
            acked,
            sent,
            taken_over,
            stop,
            complete,
            thread: Some(thread),
        };
        (stream, StreamFeed { ops: tx, behind })
    }

    /// Every append up to this sequence is durable on the standby.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Bytes sent to the standby so far (frames whole).
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The incarnation the standby runs the zone as, if it said it took the zone over
    /// (while this node was down or cut off): this run must stand down.
    pub fn taken_over(&self) -> Option<u32> {
        Some(self.taken_over.load(Ordering::Acquire)).filter(|&i| i > 0 && i & STALE == 0)
    }

    /// The newest incarnation the standby's copy holds, if it refused this run as older
    /// (this node restored stale files: the zone ran elsewhere since).
    pub fn stale(&self) -> Option<u32> {
        Some(self.taken_over.load(Ordering::Acquire))
            .filter(|&i| i & STALE != 0)
            .map(|i| i & !STALE)
    }

    /// Ends the stream after a clean stop of its zone (the writer finished: the feed holds
    /// everything, the final checkpoint last): what it holds is sent, then a claim the
    /// standby acknowledges only once all of it is in place. Whether that came within a
    /// second — the standby's copy is then the zone as it stopped.
    pub fn finish(mut self) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.complete.load(Ordering::Acquire)
    }

    /// Ends the stream without waiting for its thread, for a standby the zone goes on
    /// without (the mesh agreed its node is down): nothing is left to finish there, and
    /// the thread may be asleep between connection attempts (200 ms) or inside one (up to
    /// a second to a host that does not answer) — the zone's thread, which drops the
    /// standby, must not wait for that. The thread ends at its next look at `stop`.
    /// (Dropping a stream waits: a zone that stops cleanly finishes what it queued.)
    pub fn abandon(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.thread.take());
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Run {
    store: ZoneStore,
    zone: u32,
    incarnation: u32,
    key: SigningKey,
    target: StandbyTarget,
    ops: Receiver<MirrorOp>,
    behind: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    taken_over: Arc<AtomicU32>,
    sent: Arc<AtomicU64>,
    /// The current connection's cipher (from its hello on).
    cipher: Option<StreamCipher>,
    /// The current connection got past its resync (a failure after it is news again).
    connected: bool,
    stop: Arc<AtomicBool>,
    complete: Arc<AtomicBool>,
    /// The highest claim the standby acknowledged on this stream.
    claimed: Arc<AtomicU64>,
    /// The newest append sequence the feed has delivered.
    last_seq: u64,
    /// Checkpoints fed while one was being sent in parts: sent next.
    later: std::collections::VecDeque<MirrorOp>,
    /// The current connection's checkpoint sealer (from its hello on).
    sealer: Option<Sealer>,
}

impl Run {
    fn run(mut self) {
        // At the zone's own priority, not lowered like the checkpoint thread: the zone's
        // datagrams wait for the appends this thread sends (its acknowledgement reader
        // inherits it). A checkpoint's frames are sealed by the sealer, at nice 19 (here,
        // they cost the zones 1.3–2.4 ms of tick p99; docs/mesh.md, "The priority of the
        // stream's threads"), but for a stopped zone's last, which a move waits for.
        // Logged once per outage: the first failure, and the first after a connection
        // that worked.
        let mut logged = false;
        while !self.stop.load(Ordering::Relaxed) {
            if self.taken_over.load(Ordering::Acquire) > 0 {
                // The standby runs the zone now: nothing to stream to it any more.
                return;
            }
            match self.session() {
                Ok(()) => return,
                Err(e) => {
                    if !logged || self.connected {
                        tracing::warn!(zone = self.zone, standby = %self.target.addr, "standby stream: {e}; retrying");
                    }
                    (logged, self.connected) = (true, false);
                }
            }
            std::thread::sleep(RECONNECT);
        }
    }

    /// One connection: the challenge, hello, the files whole, then the feed. Returns
    /// `Ok` only when told to stop.
    fn session(&mut self) -> Result<(), FrameError> {
        let socket = TcpStream::connect_timeout(&self.target.addr, Duration::from_secs(1))?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        let challenge = read_challenge(&mut BufReader::new(&socket))?;
        socket.set_read_timeout(None)?;
        // The primary's own randomness, echoed in every acknowledgement: acks recorded on
        // an earlier connection (whose challenge a man in the middle could replay) do not
        // count on this one.
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        let reader = {
            let socket = socket.try_clone()?;
            let (key, zone) = (self.target.key, self.zone);
            let answers = (
                self.acked.clone(),
                self.claimed.clone(),
                self.taken_over.clone(),
            );
            std::thread::Builder::new()
                .name(format!("zone-{zone}-standby-acks"))
                .spawn(move || read_acks(socket, key, challenge, nonce, answers))?
        };
        let result = self.send_all(&socket, &challenge, &nonce, &reader);
        let _ = socket.shutdown(std::net::Shutdown::Both);
        let _ = reader.join();
        result
    }

    fn send_all(
        &mut self,
        socket: &TcpStream,
        challenge: &[u8; 32],
        nonce: &[u8; 32],
        reader: &std::thread::JoinHandle<()>,
    ) -> Result<(), FrameError> {
        let mut w = BufWriter::with_capacity(1 << 16, socket);
        let mut hello = FrameHeader::new(FrameKind::Hello, self.zone);
        hello.generation = U64Le::new(u64::from(self.incarnation));
        // The run (random per start): a restore that reuses an incarnation is not it.
        hello.offset = U64Le::new(self.store.run());
        write_frame(&mut w, &self.key, challenge, hello, nonce)?;
        // Everything after the hello is sealed to the standby: a checkpoint's frames by
        // the sealer, in their own lane.
        let cipher = StreamCipher::new(&self.key, &self.target.key, challenge, nonce);
        self.sealer = Some(Sealer::start(
            self.zone,
            (self.key.clone(), *challenge),
            cipher.clone(),
            self.store.dir().to_path_buf(),
        )?);
        self.cipher = Some(cipher);
        self.resync(&mut w, challenge)?;
        self.connected = true;
        loop {
            // The standby closed the connection (or took the zone over): a quiet zone
            // writes nothing that would notice, so the reader's end is the sign.
            if reader.is_finished() {
                return Err(FrameError::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the standby closed the connection",
                )));
            }
            if self.stop.load(Ordering::Relaxed) {
                return self.finish(&mut w, challenge);
            }
            if self.behind.swap(false, Ordering::Relaxed) {
                self.resync(&mut w, challenge)?;
            }
            if self.sealer().idle()
                && let Some(op) = self.later.pop_front()
            {
                self.send(&mut w, challenge, op)?;
                continue;
            }
            let (ops, frames) = (self.ops.clone(), self.sealer().frames().clone());
            select! {
                recv(ops) -> op => match op {
                    Ok(op) => {
                        self.send(&mut w, challenge, op)?;
                        while let Ok(op) = self.ops.try_recv() {
                            self.send(&mut w, challenge, op)?;
                        }
                        w.flush()?;
                    }
                    // The writer finished (a clean stop drops the feed before it stops
                    // the stream): the same end as a stop. Returning at once here skipped
                    // the claim and the wait for the acknowledgement whenever the feed's
                    // end was seen first — a moved zone's standby then lacked its final
                    // checkpoint.
                    Err(_) => return self.finish(&mut w, challenge),
                },
                recv(frames) -> frame => {
                    let frame = self.sealer().took(frame)?;
                    self.write_sealed_frame(&mut w, &frame)?;
                    w.flush()?;
                }
                default(Duration::from_millis(50)) => {}
            }
        }
    }

    fn sealer(&mut self) -> &mut Sealer {
        self.sealer.as_mut().expect("sealing begins with the hello")
    }

    /// Writes a frame the sealer made.
    fn write_sealed_frame(&mut self, w: &mut impl Write, frame: &Sealed) -> std::io::Result<()> {
        w.write_all(&frame.bytes)?;
        self.sent
            .fetch_add(frame.bytes.len() as u64, Ordering::Relaxed);
        if frame.file_end {
            tests_hooks::at(self.store.dir(), tests_hooks::Point::CheckpointFile);
        }
        Ok(())
    }

    /// Writes every frame of the checkpoints handed to the sealer, waiting for them.
    fn drain_sealer(&mut self, w: &mut impl Write) -> std::io::Result<()> {
        while let Some(frame) = self.sealer().next()? {
            self.write_sealed_frame(w, &frame)?;
        }
        Ok(())
    }

    /// A clean stop (the zone's writer has finished): what the feed still holds is
    /// sent, and the standby given a moment to acknowledge it, so a zone stopped on
    /// purpose leaves its standby complete. A feed that overflowed dropped what the
    /// claim would vouch for: the files go first, whole (`a_stop_after_the_feed_
    /// overflowed_resyncs_before_its_claim`).
    fn finish(&mut self, w: &mut impl Write, challenge: &[u8; 32]) -> Result<(), FrameError> {
        if self.behind.swap(false, Ordering::Relaxed) {
            self.resync(w, challenge)?;
        }
        // The checkpoint under way and those fed while it went in parts first (they came
        // before the rest).
        self.drain_sealer(w)?;
        while let Some(op) = self.later.pop_front().or_else(|| self.ops.try_recv().ok()) {
            self.send(w, challenge, op)?;
            self.drain_sealer(w)?;
        }
        let mut claim = FrameHeader::new(FrameKind::Synced, self.zone);
        claim.seq = U64Le::new(self.last_seq);
        claim.generation = U64Le::new(FINAL_CLAIM);
        self.sealed(w, challenge, claim, &[])?;
        w.flush()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < deadline {
            let acked = self.acked.load(Ordering::Acquire) >= self.last_seq;
            if acked && self.claimed.load(Ordering::Acquire) >= FINAL_CLAIM {
                self.complete.store(true, Ordering::Release);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// The zone's files whole, as they are now, then the list of them (the standby
    /// deletes the rest). Everything the feed held is in them.
    ///
    /// The files are taken at one moment and held open ([`snapshot`]): sending them can
    /// take longer than two checkpoints — a large zone over a slow link — and the
    /// checkpoints retire the older generations meanwhile. Read by name as they went out,
    /// the retired ones were skipped and the kept list, made at the end, named only the
    /// newest: the standby pruned the checkpoint it had just received and acknowledged a
    /// copy of WAL segments with no checkpoint under them, which no promotion can restore
    /// (`a_resync_outlasting_two_checkpoints_still_leaves_a_copy_that_restores`).
    fn resync(&mut self, w: &mut impl Write, challenge: &[u8; 32]) -> Result<(), FrameError> {
        // A checkpoint under way goes out whole first (its frames took their nonces; the
        // standby counts them all), the ones after it are in the files.
        self.drain_sealer(w)?;
        self.later.clear();
        while let Ok(op) = self.ops.try_recv() {
            if let MirrorOp::Append { seq, .. } = op {
                self.last_seq = self.last_seq.max(seq);
            }
        }
        let files = snapshot(&self.store)?;
        for (kind, generation, file) in &files {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &*file, &mut bytes)?;
            // No claim on a file frame: the resync's claim is the Synced frame at
            // its end (a claim here was acknowledged before the later files, and the
            // checkpoints the standby writes on a worker, were in place).
            let mut h = FrameHeader::new(FrameKind::File, self.zone);
            h.file = *kind as u8;
            h.generation = U64Le::new(*generation);
            self.sealed(w, challenge, h, &bytes)?;
            tests_hooks::at(self.store.dir(), tests_hooks::Point::ResyncFile);
        }
        self.send_kept(w, challenge, files.iter().map(|f| (f.0, f.1)))?;
        let mut synced = FrameHeader::new(FrameKind::Synced, self.zone);
        synced.seq = U64Le::new(self.last_seq);
        self.sealed(w, challenge, synced, &[])?;
        w.flush()?;
        Ok(())
    }

    /// The list of the files the standby is to keep — (kind, generation) pairs, 9 bytes
    /// each — after which it deletes the older others (one newer than every listed one of
    /// its kind stays: the feed brings it).
    fn send_kept(
        &mut self,
        w: &mut impl Write,
        challenge: &[u8; 32],
        files: impl Iterator<Item = (FileKind, u64)>,
    ) -> Result<(), FrameError> {
        let mut kept = Vec::new();
        for (kind, generation) in files {
            kept.push(kind as u8);
            kept.extend_from_slice(&generation.to_le_bytes());
        }
        let mut h = FrameHeader::new(FrameKind::Retire, self.zone);
        h.seq = U64Le::new(self.last_seq);
        self.sealed(w, challenge, h, &kept)?;
        Ok(())
    }

    /// Writes a frame sealed to the standby and signed.
    fn sealed(
        &mut self,
        w: &mut impl Write,
        challenge: &[u8; 32],
        h: FrameHeader,
        payload: &[u8],
    ) -> Result<(), FrameError> {
        let cipher = self.cipher.as_mut().expect("sealing begins with the hello");
        write_sealed(w, &self.key, challenge, cipher, h, payload)?;
        let frame = FrameHeader::SIZE + payload.len() + TAG_SIZE + SIGNATURE_SIZE;
        self.sent.fetch_add(frame as u64, Ordering::Relaxed);
        Ok(())
    }

    fn send(
        &mut self,
        w: &mut impl Write,
        challenge: &[u8; 32],
        op: MirrorOp,
    ) -> Result<(), FrameError> {
        match op {
            MirrorOp::Append {
                seq,
                generation,
                offset,
                bytes,
            } => {
                self.last_seq = self.last_seq.max(seq);
                let mut h = FrameHeader::new(FrameKind::Append, self.zone);
                h.generation = U64Le::new(generation);
                h.offset = U64Le::new(offset);
                h.seq = U64Le::new(self.last_seq);
                self.sealed(w, challenge, h, &bytes)?;
            }
            MirrorOp::Checkpoint {
                generation,
                bytes,
                last: true,
            } => self.seal_final(w, challenge, (generation, bytes))?,
            // Sealed on the sealer's thread, written between the appends; one at a time.
            MirrorOp::Checkpoint { .. } if !self.sealer().idle() => self.later.push_back(op),
            MirrorOp::Checkpoint {
                generation, bytes, ..
            } => self.sealer().seal(generation, bytes)?,
        }
        Ok(())
    }

    /// A stopped zone's final checkpoint, sealed and written here, at once, in the final
    /// lane (the standby applies it on its connection's thread): on a saturated machine
    /// the nice-19 threads at both ends took 0.3–0.55 s of a move. The one in the sealer
    /// goes out first, then those queued behind it, sealed here too.
    fn seal_final(
        &mut self,
        w: &mut impl Write,
        challenge: &[u8; 32],
        last: (u64, Vec<u8>),
    ) -> Result<(), FrameError> {
        self.drain_sealer(w)?;
        let queued = self.later.drain(..).filter_map(|op| match op {
            MirrorOp::Checkpoint {
                generation, bytes, ..
            } => Some((generation, bytes)),
            MirrorOp::Append { .. } => None,
        });
        let all: Vec<(u64, Vec<u8>)> = queued.chain([last]).collect();
        let cipher = self.cipher.as_mut().expect("sealing begins with the hello");
        let to = (self.zone, &self.key, challenge);
        let sent = sealer::seal_here(to, cipher, all, w, self.store.dir())?;
        self.sent.fetch_add(sent, Ordering::Relaxed);
        Ok(())
    }
}

/// Reads the standby's acknowledgements (and a takeover) until the connection ends.
fn read_acks(
    socket: TcpStream,
    key: VerifyingKey,
    challenge: [u8; 32],
    nonce: [u8; 32],
    (acked, claimed, taken_over): (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU32>),
) {
    let mut r = BufReader::new(socket);
    let mut payload = Vec::new();
    loop {
        match read_frame(&mut r, &key, &challenge, &mut payload) {
            Ok((FrameKind::Ack, h)) if payload == nonce => {
                acked.fetch_max(h.seq.get(), Ordering::AcqRel);
                claimed.fetch_max(h.generation.get(), Ordering::AcqRel);
            }
            Ok((FrameKind::TakenOver, h)) if payload == nonce => {
                let incarnation = u32::try_from(h.seq.get()).unwrap_or(u32::MAX);
                taken_over.store(incarnation, Ordering::Release);
            }
            Ok((FrameKind::Stale, h)) if payload == nonce => {
                let newest = u32::try_from(h.seq.get()).unwrap_or(u32::MAX >> 1);
                taken_over.store(newest | STALE, Ordering::Release);
            }
            Ok((FrameKind::Ack | FrameKind::TakenOver | FrameKind::Stale, _)) => {
                tracing::warn!("a standby acknowledgement for another connection: ignored");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("standby acknowledgements: {e}");
                return;
            }
        }
    }
}

fn other(e: crate::store::StoreError) -> FrameError {
    FrameError::Io(std::io::Error::other(e.to_string()))
}

/// The zone's files (checkpoints, then WAL segments) as they stand at one moment, each
/// held open: a generation retired while the resync sends it is still read whole from
/// its handle. Listed again if one went between the listing and its opening, or if the
/// newest checkpoint's own segment did (two checkpoints between the two listings), so
/// the set is one the zone's recovery can start from — up to [`SNAPSHOT_TRIES`] times:
/// a directory that lacks such a segment for good (damaged by hand) is sent as it is,
/// as before, rather than keeping the stream from ever resyncing.
fn snapshot(store: &ZoneStore) -> Result<Vec<(FileKind, u64, std::fs::File)>, FrameError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let (mut files, mut gone) = (Vec::new(), false);
        for (kind, name) in [(FileKind::Checkpoint, "ckp"), (FileKind::Wal, "wal")] {
            for (generation, path) in store.list(name).map_err(other)? {
                match std::fs::File::open(&path) {
                    Ok(file) => files.push((kind, generation, file)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone = true,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let newest = files
            .iter()
            .filter(|f| f.0 == FileKind::Checkpoint)
            .map(|f| f.1)
            .max();
        let base_segment = files
            .iter()
            .any(|f| f.0 == FileKind::Wal && Some(f.1) == newest);
        if (!gone && (newest.is_none() || base_segment)) || tries == SNAPSHOT_TRIES {
            return Ok(files);
        }
    }
}

/// Listings [`snapshot`] takes at most.
const SNAPSHOT_TRIES: u32 = 8;
