//! The standby node's listener: accepts its primaries' streams on the node's control
//! address (TCP) and mirrors each zone into its standby directory.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use meridian_layouts::U64Le;
use meridian_layouts::standby::{CHALLENGE_SIZE, FrameHeader, FrameKind, LANE_FINAL};

use super::frame::{FrameError, read_body, read_header, write_challenge, write_frame};
use super::frame::{StreamCipher, read_unverified};
use super::mirror::{Mirror, MirrorError, is_bulk};
use super::refusals::{ListenerCounters, Refusals};
use super::worker::CheckpointWorker;
use crate::store::ZoneStore;

/// A zone this node keeps the standby of: its mirror and the primary's pinned key.
#[derive(Debug)]
pub struct Kept {
    pub zone: u32,
    pub store: ZoneStore,
    pub primary: VerifyingKey,
}

/// Per kept zone: the highest append sequence held durably (what was acknowledged).
#[derive(Debug, Default)]
pub struct KeptStatus {
    pub zone: u32,
    pub held: AtomicU64,
}

/// The running listener; stops when dropped.
#[derive(Debug)]
pub struct StandbyServer {
    pub status: Vec<Arc<KeptStatus>>,
    zones: Zones,
    refusals: Arc<Refusals>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandbyServer {
    /// Keeps `kept` from now on (this node came back and keeps the standby of a zone
    /// that was taken over from it; or took a zone back and its old host keeps it). A
    /// zone kept already is replaced only if it was released (taken over here).
    pub fn keep(&self, kept: Kept) -> bool {
        let mut zones = self.zones.write().unwrap_or_else(PoisonError::into_inner);
        if zones
            .get(&kept.zone)
            .is_some_and(|k| !k.released.load(Ordering::SeqCst))
        {
            return false;
        }
        let status = Arc::new(KeptStatus {
            zone: kept.zone,
            ..KeptStatus::default()
        });
        zones.insert(kept.zone, Arc::new(KeptZone::new(kept, status)));
        true
    }

    /// The zones whose standby this node keeps now (not taken over here), each with the
    /// highest append sequence its copy holds durably (0 until a stream reached it since
    /// this node started), by zone: what the node's `/status` shows.
    pub fn kept_zones(&self) -> Vec<(u32, u64)> {
        let zones = self.zones.read().unwrap_or_else(PoisonError::into_inner);
        let mut kept: Vec<(u32, u64)> = zones
            .values()
            .filter(|k| !k.released.load(Ordering::SeqCst))
            .map(|k| (k.status.zone, k.status.held.load(Ordering::Acquire)))
            .collect();
        kept.sort_unstable();
        kept
    }

    /// The newest run of `zone` its copy holds (the newest a stream said hello for, or
    /// its files were written by), if this node keeps its standby and has not released it.
    pub fn newest_run(&self, zone: u32) -> Option<u32> {
        let kept = kept(&self.zones, zone)?;
        if kept.released.load(Ordering::SeqCst) {
            return None;
        }
        let newest = kept.newest.lock().unwrap_or_else(PoisonError::into_inner);
        Some(newest.0)
    }

    /// What the listener turned away since it started (`/metrics`).
    pub fn counters(&self) -> ListenerCounters {
        self.refusals.counters()
    }

    /// This node runs released zone `zone` as `incarnation` now: its old primary, when it
    /// says hello again (a node that comes back), is told so and stands down.
    pub fn taken_over(&self, zone: u32, incarnation: u32) {
        if let Some(kept) = kept(&self.zones, zone) {
            kept.taken_over.store(incarnation, Ordering::SeqCst);
            let mut newest = kept.newest.lock().unwrap_or_else(PoisonError::into_inner);
            if incarnation > newest.0 {
                *newest = (incarnation, 0);
            }
        }
    }

    /// This node resumed released zone `zone` as `incarnation` at its start (it ran the
    /// zone from here when it stopped) and the run is not confirmed yet: a node that says
    /// hello for the zone with an older run — it resumed the zone too, from a run this
    /// one superseded — is told this node runs it, and stands down. A hello of a newer
    /// run is not answered: this node's run waits for that node's answer instead.
    pub fn resumed(&self, zone: u32, incarnation: u32) {
        if let Some(kept) = kept(&self.zones, zone) {
            kept.resumed.store(incarnation, Ordering::SeqCst);
        }
    }

    /// Keeps mirroring `zone` again after a [`StandbyServer::release`] whose takeover did
    /// not happen (the mesh refused it): its primary may stream to it when it is back.
    pub fn unrelease(&self, zone: u32) {
        if let Some(kept) = kept(&self.zones, zone)
            && kept.taken_over.load(Ordering::SeqCst) == 0
        {
            kept.released.store(false, Ordering::SeqCst);
        }
    }

    /// Stops keeping `zone`'s standby — this node is taking the zone over: its streams
    /// are ended and refused from now on, and when this returns nothing writes its mirror
    /// any more. `false` if its connections did not end within `timeout`.
    pub fn release(&self, zone: u32, timeout: Duration) -> bool {
        let Some(kept) = kept(&self.zones, zone) else {
            return true;
        };
        kept.released.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut open = kept.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.retain(|(_, ended)| !ended.load(Ordering::SeqCst));
            if open.is_empty() {
                // Taken while a connection would apply: none can start applying now.
                drop(kept.mirror.lock().unwrap_or_else(PoisonError::into_inner));
                return true;
            }
            for (socket, _) in open.iter() {
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
            drop(open);
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for StandbyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connections open at once, at most: one per kept zone is what the primaries need; a
/// connection not yet past its hello holds a thread for at most 5 s.
const CONNECTIONS_MAX: usize = 64;
/// Connections from one IP not yet past their hello, at most. A primary opens one per
/// zone and says hello at once; a host that holds idle connections open (the hello waits
/// up to 5 s) took every slot before: a primary started next to one such host got its
/// standby 10.2 s after its start instead of 1.1 s.
const UNPROVEN_PER_IP: usize = 4;

impl KeptZone {
    fn new(k: Kept, status: Arc<KeptStatus>) -> KeptZone {
        KeptZone {
            primary: k.primary,
            newest: Mutex::new(newest_run(&k.store)),
            mirror: Mutex::new(Mirror::new(k.store)),
            status,
            released: AtomicBool::new(false),
            taken_over: AtomicU32::new(0),
            resumed: AtomicU32::new(0),
            open: Mutex::new(Vec::new()),
        }
    }
}

/// A kept zone as the connections see it.
#[derive(Debug)]
struct KeptZone {
    primary: VerifyingKey,
    mirror: Mutex<Mirror>,
    status: Arc<KeptStatus>,
    /// Taken over by this node: its streams are refused.
    released: AtomicBool,
    /// The incarnation this node runs it as, once promoted (0 before): a primary that
    /// says hello is told so, and stands down.
    taken_over: AtomicU32,
    /// The incarnation of this node's run of it resumed at start and not yet confirmed
    /// (0: none; [`StandbyServer::resumed`]).
    resumed: AtomicU32,
    /// Its connections (a handle to end each, and whether it ended).
    open: Mutex<Vec<(TcpStream, Arc<AtomicBool>)>>,
    /// The newest run its copy holds — (incarnation, run id; 0: not said): a hello of an
    /// older one, or of another run under the same incarnation, is refused (`Stale`).
    newest: Mutex<(u32, u64)>,
}

/// The newest run the zone's files in `store` were written by ((0, 0): none), from their
/// headers.
fn newest_run(store: &ZoneStore) -> (u32, u64) {
    use std::io::Read;
    let mut newest = (0, 0);
    for kind in ["ckp", "wal"] {
        for (_, path) in store.list(kind).unwrap_or_default() {
            let mut header = [0u8; meridian_layouts::persist::FileHeader::SIZE];
            let read = std::fs::File::open(&path).and_then(|mut f| f.read_exact(&mut header));
            if read.is_ok() {
                let h: meridian_layouts::persist::FileHeader =
                    bytemuck::pod_read_unaligned(&header);
                let run = (h.incarnation.get(), meridian_core::persist::run_of(&h));
                if run.0 > newest.0 {
                    newest = run;
                }
            }
        }
    }
    newest
}

/// Whether a hello of `hello` (incarnation, run id) is of an older run than `newest`, or
/// of another run under the same incarnation (an id of 0 is not said: taken as the same).
fn is_stale(hello: (u32, u64), newest: (u32, u64)) -> bool {
    hello.0 < newest.0
        || (hello.0 == newest.0 && hello.1 != 0 && newest.1 != 0 && hello.1 != newest.1)
}

type Zones = Arc<std::sync::RwLock<HashMap<u32, Arc<KeptZone>>>>;

/// The kept zone `zone`, if any.
fn kept(zones: &Zones, zone: u32) -> Option<Arc<KeptZone>> {
    zones
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&zone)
        .cloned()
}

/// Serves `kept` on `listener`, acknowledging with `key`.
pub fn serve(
    listener: TcpListener,
    key: SigningKey,
    kept: Vec<Kept>,
) -> std::io::Result<StandbyServer> {
    listener.set_nonblocking(true)?;
    let status: Vec<Arc<KeptStatus>> = kept
        .iter()
        .map(|k| {
            Arc::new(KeptStatus {
                zone: k.zone,
                ..KeptStatus::default()
            })
        })
        .collect();
    let zones: Zones = Arc::new(std::sync::RwLock::new(
        kept.into_iter()
            .zip(&status)
            .map(|(k, s)| (k.zone, Arc::new(KeptZone::new(k, s.clone()))))
            .collect(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let refusals = Arc::new(Refusals::default());
    let thread = {
        let (stop, zones, refusals) = (stop.clone(), zones.clone(), refusals.clone());
        std::thread::Builder::new()
            .name("standby-listener".into())
            .spawn(move || accept_loop(&listener, (&key, &zones, &refusals), &stop))?
    };
    Ok(StandbyServer {
        status,
        zones,
        refusals,
        stop,
        thread: Some(thread),
    })
}

/// An open connection, as the listener keeps it: a handle to end it, whether it ended,
/// whether it got past its hello, and where it came from.
type OpenConnection = (
    TcpStream,
    Arc<AtomicBool>,
    Arc<AtomicBool>,
    std::net::IpAddr,
);

/// Whether a new connection from `ip` may be served: at most [`UNPROVEN_PER_IP`] of one IP
/// before their hello. When [`CONNECTIONS_MAX`] are open, the oldest connection not yet
/// past its hello of the IP that holds the most of them is ended to make room — if it
/// holds more than `ip` does — so idle connections from many IPs cannot keep a primary
/// out either (its hello comes at once; then it cannot be ended this way).
fn make_room(open: &mut Vec<OpenConnection>, ip: std::net::IpAddr) -> bool {
    let unproven = |o: &OpenConnection| !o.2.load(Ordering::Relaxed);
    let count =
        |open: &[OpenConnection], ip| open.iter().filter(|o| o.3 == ip && unproven(o)).count();
    let mine = count(open, ip);
    if mine >= UNPROVEN_PER_IP {
        return false;
    }
    if open.len() < CONNECTIONS_MAX {
        return true;
    }
    let busiest = open
        .iter()
        .filter(|o| unproven(o))
        .map(|o| (count(open, o.3), o.3))
        .max_by_key(|&(n, _)| n)
        .filter(|&(n, _)| n > mine);
    let Some((_, busiest)) = busiest else {
        return false;
    };
    // `open` is in the order accepted: the first is the oldest.
    let Some(k) = open.iter().position(|o| o.3 == busiest && unproven(o)) else {
        return false;
    };
    let (socket, ..) = open.remove(k);
    let _ = socket.shutdown(std::net::Shutdown::Both);
    true
}

fn accept_loop(
    listener: &TcpListener,
    (key, zones, refusals): (&SigningKey, &Zones, &Arc<Refusals>),
    stop: &AtomicBool,
) {
    let mut open: Vec<OpenConnection> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((socket, from)) => {
                let _ = socket.set_nonblocking(false);
                open.retain(|(_, ended, _, _)| !ended.load(Ordering::Relaxed));
                if !make_room(&mut open, from.ip()) {
                    // A node's primaries need a connection per zone kept, each past its
                    // hello at once; more is a flood.
                    let refused = refusals.refuse();
                    if refused.is_power_of_two() {
                        tracing::warn!(%from, "standby streams: {refused} connections refused ({CONNECTIONS_MAX} open at most, {UNPROVEN_PER_IP} of one IP before their hello)");
                    }
                    continue;
                }
                let ended = Arc::new(AtomicBool::new(false));
                let proven = Arc::new(AtomicBool::new(false));
                if let Ok(s) = socket.try_clone() {
                    open.push((s, ended.clone(), proven.clone(), from.ip()));
                }
                let (key, zones, refusals) = (key.clone(), zones.clone(), refusals.clone());
                let spawned = std::thread::Builder::new()
                    .name("standby-mirror".into())
                    .spawn(move || {
                        // At the listener's priority: it acknowledges the appends the
                        // primary's zone waits for; checkpoints go to a worker at nice 19.
                        let own = socket.try_clone();
                        match connection(socket, &key, &zones, (&ended, &proven)) {
                            Ok(()) => {}
                            // Anyone can get this far: counted, logged now and then.
                            Err(e) if !proven.load(Ordering::Relaxed) && e.before_hello() => {
                                if let Some(n) = refusals.unproven(std::time::Instant::now()) {
                                    tracing::warn!(%from, "standby listener: {n} connections so far ended before a valid hello, the latest: {e} (logged at most every {:?})", super::refusals::LOG_EVERY);
                                }
                            }
                            Err(e) => tracing::warn!(%from, "standby stream ended: {e}"),
                        }
                        // The listener keeps a handle to end it on stop: close it now.
                        if let Ok(own) = own {
                            let _ = own.shutdown(std::net::Shutdown::Both);
                        }
                        ended.store(true, Ordering::Relaxed);
                    });
                if let Err(e) = spawned {
                    tracing::warn!("cannot serve a standby stream: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                tracing::warn!("standby listener: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    for (socket, ..) in open {
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }
}

/// Why a connection was ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum ServeError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Mirror(#[from] MirrorError),
    #[error("a stream for zone {0}, which this node keeps no standby of")]
    NotKept(u32),
    #[error("the first frame was a {0:?}, not a hello")]
    NoHello(FrameKind),
    #[error("a hello of {0} bytes (it carries a 32-byte nonce)")]
    BadHello(u32),
    #[error("a frame for zone {got} on zone {zone}'s stream")]
    WrongZone { zone: u32, got: u32 },
    #[error("a checkpoint or prune failed (logged above)")]
    Worker,
    #[error("zone {0} was taken over by this node: its old primary's stream is refused")]
    Released(u32),
    #[error(
        "zone {zone}: a hello of incarnation {hello}, older than the copy here \
         ({newest}): the primary restored stale files and was told so"
    )]
    Stale { zone: u32, hello: u32, newest: u32 },
}

impl ServeError {
    /// Whether the connection ended before its hello verified (what any host can cause).
    fn before_hello(&self) -> bool {
        matches!(
            self,
            ServeError::Frame(_)
                | ServeError::NoHello(_)
                | ServeError::BadHello(_)
                | ServeError::NotKept(_)
        )
    }
}

/// The zone's mirrored files, as the checkpoint worker writes them.
fn mirror_store(mirror: &Mutex<Mirror>) -> ZoneStore {
    mirror
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .store()
        .clone()
}

/// A connection past its hello: the zone's entry, the challenge, the primary's nonce, and
/// both ends of the socket.
struct Opened {
    zone: u32,
    kept: Arc<KeptZone>,
    challenge: [u8; 32],
    nonce: Vec<u8>,
    r: BufReader<TcpStream>,
    w: BufWriter<TcpStream>,
}

/// The opening: the challenge, then the primary's hello, verified under the key of the
/// zone it names; a zone taken over is refused (with a signed `TakenOver` once promoted),
/// any other is registered so [`StandbyServer::release`] can end it.
fn open_connection(
    socket: TcpStream,
    key: &SigningKey,
    zones: &Zones,
    ended: &Arc<AtomicBool>,
) -> Result<Opened, ServeError> {
    socket.set_nodelay(true).map_err(FrameError::Io)?;
    let mut challenge = [0u8; 32];
    getrandom::fill(&mut challenge)
        .map_err(|e| FrameError::Io(std::io::Error::other(e.to_string())))?;
    let mut w = BufWriter::new(socket.try_clone().map_err(FrameError::Io)?);
    write_challenge(&mut w, &challenge)
        .and_then(|()| w.flush())
        .map_err(FrameError::Io)?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(FrameError::Io)?;
    let mut r = BufReader::with_capacity(1 << 16, socket);
    // The hello names the zone: its frames must verify under that zone's primary key.
    let (kind, hello) = read_header(&mut r)?;
    if kind != FrameKind::Hello {
        return Err(ServeError::NoHello(kind));
    }
    let zone = hello.zone.get();
    let Some(kept) = kept(zones, zone) else {
        return Err(ServeError::NotKept(zone));
    };
    // Checked before anything is read or allocated for a sender not yet authenticated.
    if hello.len.get() as usize != CHALLENGE_SIZE {
        return Err(ServeError::BadHello(hello.len.get()));
    }
    let mut nonce = Vec::new();
    read_body(&mut r, kind, &hello, &kept.primary, &challenge, &mut nonce)?;
    let mut open = kept.open.lock().unwrap_or_else(PoisonError::into_inner);
    let told = Told {
        key,
        challenge: &challenge,
        nonce: &nonce,
        zone,
    };
    let hello_run = (
        u32::try_from(hello.generation.get()).unwrap_or(u32::MAX),
        hello.offset.get(),
    );
    if kept.released.load(Ordering::SeqCst) {
        // Run here: confirmed, or resumed at start and newer than the run saying hello
        // (two nodes that both resumed the zone: the older run stands down).
        let incarnation = match kept.taken_over.load(Ordering::SeqCst) {
            0 => Some(kept.resumed.load(Ordering::SeqCst)).filter(|&r| r > hello_run.0),
            confirmed => Some(confirmed),
        };
        if let Some(incarnation) = incarnation {
            drop(open);
            told.answer(FrameKind::TakenOver, incarnation, w, r);
        }
        return Err(ServeError::Released(zone));
    }
    // A run older than the copy: the zone ran since from a copy of it (taken over, and
    // maybe back), and this primary restored files the world has moved past. Mirroring
    // them would roll the copy back.
    if let Err(newest) = kept.admit(hello_run) {
        drop(open);
        told.answer(FrameKind::Stale, newest, w, r);
        return Err(ServeError::Stale {
            zone,
            hello: hello_run.0,
            newest,
        });
    }
    open.push((socket_clone(r.get_ref())?, ended.clone()));
    drop(open);
    Ok(Opened {
        zone,
        kept,
        challenge,
        nonce,
        r,
        w,
    })
}

/// What a refused hello is answered with.
struct Told<'a> {
    key: &'a SigningKey,
    challenge: &'a [u8; 32],
    nonce: &'a [u8],
    zone: u32,
}

impl Told<'_> {
    /// A signed `kind` frame naming `incarnation` over the hello's nonce, then the end of
    /// the connection once the primary has read it.
    fn answer(
        &self,
        kind: FrameKind,
        incarnation: u32,
        mut w: BufWriter<TcpStream>,
        r: BufReader<TcpStream>,
    ) {
        let mut h = FrameHeader::new(kind, self.zone);
        h.seq = U64Le::new(u64::from(incarnation));
        let _ =
            write_frame(&mut w, self.key, self.challenge, h, self.nonce).and_then(|()| w.flush());
        linger(r);
    }
}

impl KeptZone {
    /// Takes a hello of `run` (incarnation, run id), or refuses it with the newest
    /// incarnation the copy holds if it is stale.
    fn admit(&self, run: (u32, u64)) -> Result<(), u32> {
        let mut newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
        if is_stale(run, *newest) {
            return Err(newest.0);
        }
        if run.0 > newest.0 || newest.1 == 0 {
            *newest = run;
        }
        Ok(())
    }
}

/// Serves one primary's stream; `proven` is set once its hello verified.
fn connection(
    socket: TcpStream,
    key: &SigningKey,
    zones: &Zones,
    (ended, proven): (&Arc<AtomicBool>, &AtomicBool),
) -> Result<(), ServeError> {
    let Opened {
        zone,
        kept,
        challenge,
        nonce,
        mut r,
        mut w,
    } = open_connection(socket, key, zones, ended)?;
    proven.store(true, Ordering::Relaxed);
    let (primary, mirror, status) = (&kept.primary, &kept.mirror, &kept.status);
    let mut payload = Vec::new();
    r.get_ref().set_read_timeout(None).map_err(FrameError::Io)?;
    // Checkpoints (megabytes) and the prunes after them are verified and written by a
    // worker, so the appends behind them are acknowledged without waiting for them; a
    // stopped zone's final ones here, once the worker is done (a move waits for them).
    let mut cipher = StreamCipher::new(key, primary, &challenge, &nonce);
    let worker = CheckpointWorker::start(mirror_store(mirror), *primary, challenge, cipher.clone());
    // The highest claim taken (a clean stop's `Synced`): echoed in every acknowledgement.
    let mut claimed = 0;
    loop {
        if worker.failed() {
            return Err(ServeError::Worker);
        }
        let (kind, h) = read_header(&mut r)?;
        if kept.released.load(Ordering::SeqCst) {
            return Err(ServeError::Released(zone));
        }
        if h.zone.get() != zone {
            return Err(ServeError::WrongZone {
                zone,
                got: h.zone.get(),
            });
        }
        let bulk = is_bulk(kind, &h);
        let index = cipher.take_index(h.lane);
        if bulk {
            let signature = read_unverified(&mut r, &h, &mut payload)?;
            let item = (kind, h, std::mem::take(&mut payload), signature, index);
            match h.lane {
                LANE_FINAL => worker.apply_here(item)?,
                _ => worker.send(item)?,
            }
        } else {
            read_body(&mut r, kind, &h, primary, &challenge, &mut payload)?;
            cipher.open(index, kind, &h, &mut payload)?;
            if kind == FrameKind::Synced {
                worker.drain()?;
                claimed = h.generation.get().max(claimed);
            }
        }
        // The mirror is locked only to apply, never across the socket's reads.
        let mut m = mirror.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.released.load(Ordering::SeqCst) {
            return Err(ServeError::Released(zone));
        }
        if !bulk {
            m.apply(kind, &h, &payload)?;
        }
        if r.buffer().is_empty() {
            // Nothing more waiting: make the appends durable and say so.
            let held = m.sync()?;
            drop(m);
            status.held.fetch_max(held, Ordering::AcqRel);
            let mut ack = FrameHeader::new(FrameKind::Ack, zone);
            ack.seq = U64Le::new(held);
            ack.generation = U64Le::new(claimed);
            write_frame(&mut w, key, &challenge, ack, &nonce)
                .and_then(|()| w.flush())
                .map_err(FrameError::Io)?;
        }
    }
}

fn socket_clone(socket: &TcpStream) -> Result<TcpStream, ServeError> {
    socket
        .try_clone()
        .map_err(|e| ServeError::Frame(FrameError::Io(e)))
}

/// Ends a connection gracefully after a last frame: closing it with the peer's data
/// unread would reset it, and a reset can discard that frame before the peer reads it.
/// Reads and drops what the peer still sends, for up to a second.
fn linger(mut r: BufReader<TcpStream>) {
    use std::io::Read;
    let _ = r.get_ref().shutdown(std::net::Shutdown::Write);
    let _ = r
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut sink = [0u8; 1 << 16];
    while std::time::Instant::now() < deadline {
        match r.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}
