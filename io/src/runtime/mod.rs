//! The node runtime: one pinned glommio executor per zone, driving a sans-IO `Zone`.
//!
//! Each zone's executor runs the **tick driver**:
//!
//! ```text
//! loop:
//!   sleep until zone.poll_timeout()
//!   drain the cross-core queue and the UDP receive queue (up to a budget) → handle_datagram
//!   steer NPCs, zone.tick(now), record the tick's duration
//!   drain_log()                      (persistence is not built yet: records are dropped)
//!   poll_transmit() → local zone: its cross-core queue; other node: UDP send_to
//!   poll_event()    → logs and per-second counts
//! ```
//!
//! The stages are named functions of [`driver`]'s `ZoneDriver`.
//!
//! **Cross-core queues.** Zones of one node exchange datagrams through bounded lock-free
//! `crossbeam` queues, one inbound queue per zone: no system call and no copy into the
//! kernel; a full queue drops and counts (the protocol retransmits). Zones tick on their
//! own clocks, so a queue is drained once per tick.
//!
//! **UDP.** Each zone binds its own socket (socket2: large buffers, address reuse, the
//! IPv4 don't-fragment bit: [`set_dont_fragment`]) and drives it through its own io_uring ([`crate::uring::UdpRing`]): one multishot receive
//! into a pool of provided buffers, read at the top of the tick up to a budget, and the
//! tick's whole output submitted in one system call at the end (runs of equal-size
//! datagrams to one destination as one segmentation-offload send). The zone's executor
//! never waits on the ring: it sleeps on its tick timer. With node keys, datagrams to other
//! nodes are sealed in signed envelopes and theirs are verified in one batch per tick
//! before the zone sees them ([`crate::signing`]).
//!
//! **Placement.** Zone *k* of the plan runs on the core the plan names, pinned with
//! `Placement::Fixed`. More zones than cores: several executors are pinned to one core
//! and the kernel time-shares it; each still ticks on its own deadline.

mod driver;
mod handover;
pub mod map;
mod measure;
mod persistence;
mod router;
pub mod routes;
mod setup;
mod socket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use glommio::{LocalExecutorBuilder, Placement};
use meridian_core::handoff::Counters;
use meridian_core::limits::{DATAGRAM_SIZE_MAX, Limits};
use meridian_core::npc::Pattern;
use meridian_core::session::{SessionConfig, SessionCounters};
use meridian_core::world::{World, ZoneID};

use crate::Clock;
use crate::signing::NodeKeys;
use driver::run_zone;
pub use handover::StoppedForMove;
use map::{MapFrame, MapView};
pub use measure::ZoneHistograms;
pub use persistence::{Approve, PersistCounters, StandbyState};
pub use socket::{ask_recv_buffer, bind_udp, dont_fragment, set_dont_fragment};

/// Slots in each zone's cross-core inbound queue.
const LOCAL_QUEUE_DATAGRAMS: usize = 4096;
/// Most UDP datagrams handled per tick; the rest wait in the ring and the socket buffer.
pub(crate) const UDP_RECV_BUDGET: usize = 4096;
/// Socket buffer sizes asked of the kernel.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;
/// Locked I/O memory per executor (we do not use glommio's DMA buffers).
const IO_MEMORY_BYTES: usize = 512 << 10;

/// One zone this node hosts.
#[derive(Clone, Copy, Debug)]
pub struct ZonePlan {
    pub zone: ZoneID,
    pub core: usize,
    /// The zone's UDP address (other nodes send to it).
    pub bind: SocketAddr,
    /// The node that keeps the zone's warm standby: its files are streamed there, and
    /// the zone's datagrams wait for its acknowledgement as for the disk (needs a data
    /// directory and node keys).
    pub standby: Option<crate::standby::StandbyTarget>,
}

/// Server-driven NPCs to spawn in each hosted zone.
#[derive(Clone, Copy, Debug)]
pub struct NpcPlan {
    pub pattern: Pattern,
    pub per_zone: u32,
    pub speed_mps: f32,
}

/// What this node runs.
#[derive(Clone, Debug)]
pub struct NodePlan {
    pub world: World,
    pub limits: Limits,
    pub zones: Vec<ZonePlan>,
    /// This node's index in the world (its signer index when traffic is signed).
    pub me: u32,
    /// Every zone of the world: where it is hosted and where its standby would run it.
    pub routes: Vec<routes::ZoneRoute>,
    /// The zones this node keeps the standby of, as they would run here once promoted
    /// ([`Node::promote`]): core and UDP address.
    pub standby_slots: Vec<ZonePlan>,
    pub npcs: Option<NpcPlan>,
    /// Sign datagrams to other nodes and verify theirs (docs/security.md). `None`: trust peers by
    /// address (a private network only).
    pub keys: Option<NodeKeys>,
    /// Accept clients (docs/protocol.md). `None`: client datagrams are dropped.
    pub clients: Option<ClientsPlan>,
    /// Persist every zone in this data directory. `None`: nothing reaches disk (a restart
    /// starts empty, and mints ids again from zero).
    pub store: Option<StorePlan>,
    /// The game every zone runs (docs/game.md). `None`: none.
    pub game: Option<GamePlan>,
}

/// A game for every zone of the node (docs/game.md). `make` builds each zone's game,
/// once per zone, when the zone is opened (new or restored; the game hears of entities
/// created from then on). With `rewind`, each zone records lag compensation's history:
/// (ticks kept, maximum rewind in ticks).
#[derive(Clone)]
pub struct GamePlan {
    pub make: Arc<dyn Fn(ZoneID) -> Box<dyn meridian_core::game::Game + Send> + Send + Sync>,
    pub rewind: Option<(usize, f64)>,
}

impl std::fmt::Debug for GamePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GamePlan")
            .field("rewind", &self.rewind)
            .finish_non_exhaustive()
    }
}

/// Where and how zones persist (docs/formats.md).
#[derive(Clone, Debug)]
pub struct StorePlan {
    pub dir: Arc<crate::store::DataDir>,
    pub world_id: u64,
    /// Move existing files aside and start empty.
    pub fresh: bool,
    /// A checkpoint every this many ticks.
    pub checkpoint_every_ticks: u64,
    /// A promotion: the zone must be restored from these files; empty is an error (a
    /// standby that holds nothing must not start the zone anew).
    pub restore_only: bool,
    /// The zone runs as this incarnation at least, whatever its files say (a resumed
    /// run: one past the run its marker names, whose first files may never have been
    /// written).
    pub incarnation_floor: u32,
}

/// How zones serve clients.
#[derive(Clone, Debug)]
pub struct ClientsPlan {
    /// The world id connect tokens must name.
    pub world_id: u64,
    /// The world's auth public key: it signs connect tokens.
    pub auth_key: [u8; 32],
    pub config: SessionConfig,
    /// Where clients reach every zone of the world (for REDIRECTs).
    pub zone_addrs: Vec<(ZoneID, SocketAddr)>,
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("zone {zone}: cannot bind UDP {addr}: {source}")]
    Bind {
        zone: ZoneID,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("zone {zone}: cannot start its executor on core {core}: {message}")]
    Executor {
        zone: ZoneID,
        core: usize,
        message: String,
    },
    #[error("zone {zone}: {message}")]
    Zone { zone: ZoneID, message: String },
}

/// A zone's figures, published by its executor for the status line and metrics.
#[derive(Clone, Debug, Default)]
pub struct ZoneStats {
    pub zone: u32,
    pub tick: u64,
    /// The run is tentative (see [`Snapshot::tentative`]).
    pub tentative: bool,
    pub entities: usize,
    pub ghosts: usize,
    pub in_flight: usize,
    /// Tick durations over the last second, microseconds.
    pub tick_p50_us: u64,
    pub tick_p99_us: u64,
    pub tick_max_us: u64,
    /// How far the next tick was due from its phase (`meridian_core::pacing`) when the
    /// driver last corrected it, nanoseconds.
    pub tick_phase_error_ns: i64,
    /// The tick's CPU time (this thread's, over the last second), p99, microseconds: the
    /// work alone, without the time the thread waited for a core on a busy host.
    pub tick_cpu_p99_us: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Datagrams dropped by the zone or this driver: inbox or outbox full, cross-core queue
    /// full, a UDP datagram truncated or a receive failed, a UDP send refused. Datagrams the
    /// kernel drops from a full socket receive queue are not seen here (the host's
    /// `RcvbufErrors` in `/proc/net/snmp` counts them).
    pub drops: u64,
    /// Datagrams from other nodes refused by the witness: forged, replayed, malformed.
    pub verify_failures: u64,
    /// The witness's counters, by kind.
    pub witness: crate::signing::IngressCounters,
    pub counters: Counters,
    /// Client sessions this zone serves now (not those redirected to another zone and
    /// kept for a grace period), and the session layer's counters.
    pub sessions: usize,
    pub clients: SessionCounters,
    /// What this zone's client snapshots cost and what they left out.
    pub replicate: meridian_core::replicate::ReplicateCounters,
    /// The UDP ring's counters.
    pub ring: crate::uring::RingCounters,
    pub persist: PersistCounters,
    /// Lag compensation's rewinds (all zero unless the node runs a game that rewinds).
    pub rewind: meridian_core::queries::RewindCounters,
    /// Cumulative histograms (tick time, handoff latency, snapshot size, input age).
    pub histograms: ZoneHistograms,
}

/// The owned entities of one zone at one instant, for conservation checks.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub zone: u32,
    /// Clock time the snapshot was taken, nanoseconds since the node started.
    pub taken_at_ns: u64,
    pub tick: u64,
    /// (entity id, epoch) of every owned entity.
    pub owned: Vec<(u64, u32)>,
    /// Where each of `owned` is (x, y), in the same order.
    pub positions: Vec<[f32; 2]>,
    /// (entity id, new epoch) of every relinquished entity awaiting DONE.
    pub in_flight: Vec<(u64, u32)>,
    /// (entity id, epoch) of every owned entity that is a client avatar.
    pub avatars: Vec<(u64, u32)>,
    /// (entity id, new epoch) of every relinquished client avatar awaiting DONE.
    pub avatars_in_flight: Vec<(u64, u32)>,
    /// This run is still tentative: it has sent nothing, and its gate would let nothing
    /// out, because its standby holds none of it yet — a restarted run waiting for the
    /// standby's first answer, which may be that the zone runs elsewhere now (then this
    /// run stands down). Nothing it did has left the zone, so what it holds is not yet the
    /// world's. (A run that sent anything is never tentative: a gate that leaked shows.)
    pub tentative: bool,
}

pub(crate) struct Shared {
    stop: AtomicBool,
    /// Per slot (the plan's zones, then its standby slots): whether a zone runs there.
    active: Vec<AtomicBool>,
    /// Where every zone of the world runs now.
    routes: routes::Routes,
    /// Per slot: a change to the zone's standby for its driver to make at its next loop
    /// ([`Node::attach_standby`], [`Node::drop_standby`]), and whether one waits (read
    /// every loop of the driver: the lock is taken only then).
    attach: Vec<(AtomicBool, Mutex<Option<StandbyChange>>)>,
    /// Per slot: the zone's incarnation << 8 | its [`StandbyState`], as its driver last
    /// saw them.
    standby_word: Vec<AtomicU64>,
    /// Per slot: the zone's standby's address (kept once it is dropped), written by its
    /// driver when it changes.
    standby_addr: Vec<Mutex<Option<std::net::SocketAddr>>>,
    /// Zones that stood down (taken over elsewhere while this node was away), with the
    /// incarnation they run as now.
    stood_down: Mutex<Vec<(ZoneID, u32)>>,
    /// Per slot: the zone stops after its tick to move to its standby ([`Node::stop_for_move`]);
    /// how each such stop ended ([`Node::stopped_for_move`]).
    moving: Vec<AtomicBool>,
    stopped: Mutex<Vec<StoppedForMove>>,
    stats: Vec<Mutex<ZoneStats>>,
    /// The latest snapshot generation asked for.
    snapshot_wanted: AtomicU64,
    /// The latest snapshot generation released: zones that sampled a generation up to
    /// this one tick again (see [`Node::freeze`]).
    snapshot_released: AtomicU64,
    snapshots: Vec<Mutex<(u64, Snapshot)>>,
    clock: Clock,
    /// Connect tokens used at any zone of this node: a token admits once per node.
    tokens: meridian_core::witness::SharedTokens,
    /// The live map: open viewer windows, and each zone's latest frame (renewed only
    /// while a window is open).
    map_views: Mutex<Vec<MapView>>,
    map_viewers: AtomicUsize,
    map_next_id: AtomicU64,
    map_frames: Vec<Mutex<MapFrame>>,
}

type ZoneHandle = (
    ZoneID,
    glommio::ExecutorJoinHandle<Result<ZoneStats, String>>,
);

/// A running node.
pub struct Node {
    shared: Arc<Shared>,
    plan: NodePlan,
    queues: Vec<(ZoneID, Arc<ArrayQueue<LocalDatagram>>)>,
    handles: Mutex<Vec<ZoneHandle>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("zones", &self.plan.zones.len())
            .finish()
    }
}

/// A change to a running zone's standby.
#[derive(Clone, Copy, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per zone, in a mutex, changed a few times in a run"
)]
pub(crate) enum StandbyChange {
    Attach(crate::standby::StandbyTarget),
    Drop,
}

pub(crate) struct LocalDatagram {
    from: ZoneID,
    /// The sending zone's run.
    incarnation: u32,
    len: u16,
    bytes: [u8; DATAGRAM_SIZE_MAX],
}

impl Node {
    /// Binds every zone's socket, then starts one pinned executor per zone.
    pub fn start(plan: NodePlan) -> Result<Node, RuntimeError> {
        let clock = Clock::new();
        let slots = plan.zones.len() + plan.standby_slots.len();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            active: (0..slots)
                .map(|k| AtomicBool::new(k < plan.zones.len()))
                .collect(),
            routes: routes::Routes::new(plan.me, plan.routes.clone()),
            attach: (0..slots)
                .map(|_| (AtomicBool::new(false), Mutex::new(None)))
                .collect(),
            standby_word: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            standby_addr: (0..slots).map(|_| Mutex::new(None)).collect(),
            stood_down: Mutex::new(Vec::new()),
            moving: (0..slots).map(|_| AtomicBool::new(false)).collect(),
            stopped: Mutex::new(Vec::new()),
            stats: (0..slots)
                .map(|_| Mutex::new(ZoneStats::default()))
                .collect(),
            snapshot_wanted: AtomicU64::new(0),
            snapshot_released: AtomicU64::new(0),
            snapshots: (0..slots)
                .map(|_| Mutex::new((0, Snapshot::default())))
                .collect(),
            clock,
            tokens: Arc::new(Mutex::new(meridian_core::witness::TokenReplay::new(
                plan.clients
                    .as_ref()
                    .map_or(64, |c| plan.zones.len() * (2 * c.config.sessions_max + 64)),
            ))),
            map_views: Mutex::new(Vec::new()),
            map_viewers: AtomicUsize::new(0),
            map_next_id: AtomicU64::new(1),
            map_frames: (0..slots)
                .map(|_| Mutex::new(MapFrame::default()))
                .collect(),
        });
        let queues: Vec<(ZoneID, Arc<ArrayQueue<LocalDatagram>>)> = plan
            .zones
            .iter()
            .chain(&plan.standby_slots)
            .map(|z| (z.zone, Arc::new(ArrayQueue::new(LOCAL_QUEUE_DATAGRAMS))))
            .collect();
        let mut sockets = Vec::new();
        for z in &plan.zones {
            sockets.push(bind_udp(z.bind).map_err(|source| RuntimeError::Bind {
                zone: z.zone,
                addr: z.bind,
                source,
            })?);
        }
        // Zones are built (or restored from the data directory) here, before any executor
        // starts, so a refusal — damaged files, another world's data — stops the node at
        // once with the reason.
        let mut opened = Vec::new();
        for z in &plan.zones {
            opened.push(
                persistence::open_zone(&plan, z, shared.clock.now(), None).map_err(|message| {
                    RuntimeError::Zone {
                        zone: z.zone,
                        message,
                    }
                })?,
            );
        }
        let node = Node {
            shared,
            plan,
            queues,
            handles: Mutex::new(Vec::new()),
        };
        let zones = node.plan.zones.clone();
        for (index, ((z, socket), opened)) in zones.iter().zip(sockets).zip(opened).enumerate() {
            node.spawn(index, *z, opened, socket, node.plan.clone())?;
        }
        Ok(node)
    }

    /// Starts zone `z`'s executor in slot `index`.
    fn spawn(
        &self,
        index: usize,
        z: ZonePlan,
        opened: (meridian_core::zone::Zone, Option<persistence::Durable>),
        socket: socket2::Socket,
        plan: NodePlan,
    ) -> Result<(), RuntimeError> {
        *self.shared.standby_addr[index]
            .lock()
            .expect("standby addr") = opened.1.as_ref().and_then(|d| d.standby_addr);
        let (shared, queues) = (self.shared.clone(), self.queues.clone());
        let handle =
            LocalExecutorBuilder::new(Placement::Fixed(z.core))
                .name(&format!("zone-{}", z.zone))
                .io_memory(IO_MEMORY_BYTES)
                .spawn(move || async move {
                    run_zone(index, z, opened, plan, socket, shared, queues).await
                })
                .map_err(|e| RuntimeError::Executor {
                    zone: z.zone,
                    core: z.core,
                    message: e.to_string(),
                })?;
        self.handles
            .lock()
            .expect("handles lock")
            .push((z.zone, handle));
        Ok(())
    }

    /// Where every zone of the world runs now, as this node knows it.
    pub fn routes(&self) -> &routes::Routes {
        &self.shared.routes
    }

    /// The slots that run a zone now.
    fn active(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.shared.active.len()).filter(|&k| self.shared.active[k].load(Ordering::SeqCst))
    }

    /// The latest figures of every zone running here, in plan order (promoted zones last).
    pub fn stats(&self) -> Vec<ZoneStats> {
        self.active()
            .map(|k| self.shared.stats[k].lock().expect("stats lock").clone())
            .collect()
    }

    /// Opens a live-map window on `rect`: while it is open, every zone renews its map
    /// frame every [`map::FRAME_EVERY`] and lists the entities inside `rect` (if few
    /// enough). `None` when [`map::VIEWS_MAX`] windows are open already.
    pub fn map_watch(&self, rect: meridian_core::world::Rect) -> Option<MapWatch> {
        let mut views = self.shared.map_views.lock().expect("map lock");
        if views.len() >= map::VIEWS_MAX {
            return None;
        }
        let id = self.shared.map_next_id.fetch_add(1, Ordering::Relaxed);
        views.push(MapView { id, rect });
        self.shared.map_viewers.fetch_add(1, Ordering::SeqCst);
        Some(MapWatch {
            shared: self.shared.clone(),
            id,
        })
    }

    /// Every zone's latest map frame, in plan order (empty before a window was opened).
    pub fn map_frames(&self) -> Vec<MapFrame> {
        self.active()
            .map(|k| self.shared.map_frames[k].lock().expect("map lock").clone())
            .collect()
    }

    /// A consistent cut of the node's ownership: [`Node::freeze`], then
    /// [`Node::release`]. Every zone pauses at its next tick boundary until all have
    /// sampled, so each entity shows exactly once — owned, or in flight (relinquished,
    /// its COMMIT or DONE still on the way) — unless the protocol is broken. Zones lose at
    /// most about one tick. `None` on timeout (the zones are released either way).
    pub fn snapshot(&self, timeout: Duration) -> Option<Vec<Snapshot>> {
        let snapshots = self.freeze(timeout);
        self.release();
        snapshots
    }

    /// Asks every zone to sample its owned and in-flight entities at its next tick
    /// boundary and then hold there, and waits until all have: between the last sample
    /// and [`Node::release`] no zone of this node moves. Freezing several nodes before
    /// releasing any gives a consistent cut across them. `None` on timeout; call
    /// [`Node::release`] in any case.
    pub fn freeze(&self, timeout: Duration) -> Option<Vec<Snapshot>> {
        let generation = self.shared.snapshot_wanted.fetch_add(1, Ordering::SeqCst) + 1;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let snapshots = &self.shared.snapshots;
            let ready = self
                .active()
                .all(|k| snapshots[k].lock().expect("snapshot lock").0 >= generation);
            if ready {
                return Some(
                    self.active()
                        .map(|k| snapshots[k].lock().expect("snapshot lock").1.clone())
                        .collect(),
                );
            }
            if std::time::Instant::now() > deadline || self.shared.stop.load(Ordering::Relaxed) {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Lets every zone frozen by [`Node::freeze`] tick again.
    pub fn release(&self) {
        let wanted = self.shared.snapshot_wanted.load(Ordering::SeqCst);
        self.shared
            .snapshot_released
            .fetch_max(wanted, Ordering::SeqCst);
    }

    /// Tells every zone to stop, waits for them, and returns their final figures.
    pub fn stop(self) -> Result<Vec<ZoneStats>, RuntimeError> {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut out = Vec::new();
        let handles = self.handles.into_inner().expect("handles lock");
        for (zone, handle) in handles {
            let result = handle.join().map_err(|e| RuntimeError::Zone {
                zone,
                message: format!("executor failed: {e}"),
            })?;
            out.push(result.map_err(|message| RuntimeError::Zone { zone, message })?);
        }
        Ok(out)
    }
}

/// An open live-map window ([`Node::map_watch`]); closed when dropped.
pub struct MapWatch {
    shared: Arc<Shared>,
    id: u64,
}

impl MapWatch {
    /// The window's id, as frames name it.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl std::fmt::Debug for MapWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapWatch").field("id", &self.id).finish()
    }
}

impl Drop for MapWatch {
    fn drop(&mut self) {
        let mut views = self.shared.map_views.lock().expect("map lock");
        views.retain(|v| v.id != self.id);
        self.shared.map_viewers.fetch_sub(1, Ordering::SeqCst);
    }
}
