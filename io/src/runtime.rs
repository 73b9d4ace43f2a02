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
//! **Cross-core queues.** Zones of one node exchange datagrams through bounded lock-free
//! `crossbeam` queues, one inbound queue per zone: no system call and no copy into the
//! kernel; a full queue drops and counts (the protocol retransmits). Zones tick on their
//! own clocks, so a queue is drained once per tick.
//!
//! **UDP.** Each zone binds its own socket (socket2: large buffers, address reuse) and
//! drives it through its own io_uring ([`crate::uring::UdpRing`]): one multishot receive
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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use meridian_core::handoff::{Counters, Event};
use meridian_core::limits::{DATAGRAM_SIZE_MAX, Limits};
use meridian_core::net::Peer;
use meridian_core::npc::{self, NPC_KIND, Pattern};
use meridian_core::session::{SessionConfig, SessionCounters, Sessions};
use meridian_core::world::{World, ZoneID};
use meridian_core::zone::Zone;

use crate::Clock;
use crate::signing::{Ingress, NodeKeys, Outgress, SEALED_SIZE_MAX};
use crate::uring::{RingConfig, UdpRing};

/// Slots in each zone's cross-core inbound queue.
const LOCAL_QUEUE_DATAGRAMS: usize = 4096;
/// Most UDP datagrams handled per tick; the rest wait in the ring and the socket buffer.
const UDP_RECV_BUDGET: usize = 4096;
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
}

/// Server-driven NPCs to spawn in each hosted zone.
#[derive(Clone, Copy, Debug)]
pub struct NpcPlan {
    pub pattern: Pattern,
    pub per_zone: u32,
    pub speed_mps: f32,
}

/// A zone hosted by another node.
#[derive(Clone, Copy, Debug)]
pub struct RemoteZone {
    pub zone: ZoneID,
    /// Where to reach it (and where its datagrams come from).
    pub addr: SocketAddr,
    /// The signer index of the node hosting it.
    pub signer: u32,
}

/// What this node runs.
#[derive(Clone, Debug)]
pub struct NodePlan {
    pub world: World,
    pub limits: Limits,
    pub zones: Vec<ZonePlan>,
    /// Zones hosted by other nodes.
    pub remote: Vec<RemoteZone>,
    pub npcs: Option<NpcPlan>,
    /// Sign datagrams to other nodes and verify theirs (DESIGN §7). `None`: trust peers by
    /// address (a private network only).
    pub keys: Option<NodeKeys>,
    /// Accept clients (DESIGN §6). `None`: client datagrams are dropped.
    pub clients: Option<ClientsPlan>,
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
    pub entities: usize,
    pub ghosts: usize,
    pub in_flight: usize,
    /// Tick durations over the last second, microseconds.
    pub tick_p50_us: u64,
    pub tick_p99_us: u64,
    pub tick_max_us: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Datagrams dropped: inbox, outbox, cross-core queue full, UDP receive queue full.
    pub drops: u64,
    /// Datagrams from other nodes refused by the witness: forged, replayed, malformed.
    pub verify_failures: u64,
    /// The witness's counters, by kind.
    pub witness: crate::signing::IngressCounters,
    pub counters: Counters,
    /// Client sessions open now, and the session layer's counters.
    pub sessions: usize,
    pub clients: SessionCounters,
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
    /// (entity id, new epoch) of every relinquished entity awaiting DONE.
    pub in_flight: Vec<(u64, u32)>,
    /// (entity id, epoch) of every owned entity that is a client avatar.
    pub avatars: Vec<(u64, u32)>,
}

struct Shared {
    stop: AtomicBool,
    stats: Vec<Mutex<ZoneStats>>,
    /// The latest snapshot generation asked for.
    snapshot_wanted: AtomicU64,
    snapshots: Vec<Mutex<(u64, Snapshot)>>,
    clock: Clock,
}

/// A running node.
pub struct Node {
    shared: Arc<Shared>,
    handles: Vec<glommio::ExecutorJoinHandle<Result<ZoneStats, String>>>,
    zones: Vec<ZoneID>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("zones", &self.zones).finish()
    }
}

struct LocalDatagram {
    from: ZoneID,
    len: u16,
    bytes: [u8; DATAGRAM_SIZE_MAX],
}

impl Node {
    /// Binds every zone's socket, then starts one pinned executor per zone.
    pub fn start(plan: NodePlan) -> Result<Node, RuntimeError> {
        let clock = Clock::new();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            stats: plan
                .zones
                .iter()
                .map(|_| Mutex::new(ZoneStats::default()))
                .collect(),
            snapshot_wanted: AtomicU64::new(0),
            snapshots: plan
                .zones
                .iter()
                .map(|_| Mutex::new((0, Snapshot::default())))
                .collect(),
            clock,
        });
        let queues: Vec<(ZoneID, Arc<ArrayQueue<LocalDatagram>>)> = plan
            .zones
            .iter()
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
        let mut handles = Vec::new();
        for (index, (z, socket)) in plan.zones.iter().zip(sockets).enumerate() {
            let zone_plan = *z;
            let (plan, shared, queues) = (plan.clone(), shared.clone(), queues.clone());
            let handle = LocalExecutorBuilder::new(Placement::Fixed(z.core))
                .name(&format!("zone-{}", z.zone))
                .io_memory(IO_MEMORY_BYTES)
                .spawn(move || async move {
                    run_zone(index, zone_plan, plan, socket, shared, queues).await
                })
                .map_err(|e| RuntimeError::Executor {
                    zone: z.zone,
                    core: z.core,
                    message: e.to_string(),
                })?;
            handles.push(handle);
        }
        Ok(Node {
            shared,
            handles,
            zones: plan.zones.iter().map(|z| z.zone).collect(),
        })
    }

    /// The latest figures of every zone, in plan order.
    pub fn stats(&self) -> Vec<ZoneStats> {
        self.shared
            .stats
            .iter()
            .map(|s| s.lock().expect("stats lock").clone())
            .collect()
    }

    /// Asks every zone for a snapshot of its owned entities and waits for all of them
    /// (each zone takes it at the start of its next tick). `None` on timeout.
    pub fn snapshot(&self, timeout: Duration) -> Option<Vec<Snapshot>> {
        let generation = self.shared.snapshot_wanted.fetch_add(1, Ordering::SeqCst) + 1;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let ready = self
                .shared
                .snapshots
                .iter()
                .all(|s| s.lock().expect("snapshot lock").0 >= generation);
            if ready {
                return Some(
                    self.shared
                        .snapshots
                        .iter()
                        .map(|s| s.lock().expect("snapshot lock").1.clone())
                        .collect(),
                );
            }
            if std::time::Instant::now() > deadline || self.shared.stop.load(Ordering::Relaxed) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Tells every zone to stop, waits for them, and returns their final figures.
    pub fn stop(self) -> Result<Vec<ZoneStats>, RuntimeError> {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut out = Vec::new();
        for (handle, zone) in self.handles.into_iter().zip(self.zones) {
            let result = handle.join().map_err(|e| RuntimeError::Zone {
                zone,
                message: format!("executor failed: {e}"),
            })?;
            out.push(result.map_err(|message| RuntimeError::Zone { zone, message })?);
        }
        Ok(out)
    }
}

/// A UDP socket with large buffers and address reuse, as every zone binds it; glommio takes
/// it over inside the zone's executor (a glommio socket belongs to the reactor of the thread
/// that made it: convert with `glommio::net::UdpSocket::from`).
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    // The kernel may cap these (net.core.rmem_max): best effort, not an error.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

async fn run_zone(
    index: usize,
    zone_plan: ZonePlan,
    plan: NodePlan,
    socket: socket2::Socket,
    shared: Arc<Shared>,
    queues: Vec<(ZoneID, Arc<ArrayQueue<LocalDatagram>>)>,
) -> Result<ZoneStats, String> {
    let clock = shared.clock.clone();
    let id = zone_plan.zone;
    let mut zone =
        Zone::new(&plan.world, id, plan.limits, clock.now()).map_err(|e| e.to_string())?;
    if let Some(npcs) = plan.npcs {
        spawn_npcs(&mut zone, &npcs)?;
        for _ in zone.drain_log() {}
    }
    let inbound = queues
        .iter()
        .find(|q| q.0 == id)
        .expect("own queue")
        .1
        .clone();
    let mut udp = UdpRing::new(socket.into(), RingConfig::default())
        .map_err(|e| format!("io_uring for UDP {}: {e}", zone_plan.bind))?;
    let mut sessions = match &plan.clients {
        Some(c) => {
            let mut entropy = [0u8; 32];
            getrandom::fill(&mut entropy).map_err(|e| format!("no randomness: {e}"))?;
            let mut s = Sessions::new(c.config, id, c.world_id, &c.auth_key, entropy)
                .map_err(|e| format!("auth key: {e}"))?;
            for &(zone, addr) in &c.zone_addrs {
                s.set_zone_address(zone, addr);
            }
            if let Some(keys) = &plan.keys {
                s.set_node_key(keys.key.clone(), keys.signer);
            }
            Some(s)
        }
        None => None,
    };

    let boot_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let mut router = Router {
        id,
        queues: &queues,
        remote: &plan.remote,
        outgress: plan
            .keys
            .as_ref()
            .map(|keys| Outgress::new(keys, boot_epoch)),
        sealed: [0u8; SEALED_SIZE_MAX],
    };
    let mut ingress = match &plan.keys {
        Some(keys) => {
            Some(Ingress::new(keys, UDP_RECV_BUDGET).map_err(|e| format!("node keys: {e}"))?)
        }
        None => None,
    };
    let mut stats = ZoneStats {
        zone: id.0,
        ..ZoneStats::default()
    };
    let mut second =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut total = second.clone();
    let mut buf = [0u8; DATAGRAM_SIZE_MAX];
    let mut local_drops = 0u64;
    let mut next_publish = clock.now();
    let mut snapshot_served = 0u64;
    let (mut arrived, mut departed) = (0u64, 0u64);
    tracing::info!(zone = %id, core = zone_plan.core, udp = %zone_plan.bind, entities = zone.entities().len(), "zone started");

    while !shared.stop.load(Ordering::Relaxed) {
        let now = clock.now();
        let due = zone.poll_timeout();
        if now < due {
            glommio::timer::sleep(due.saturating_duration_since(now)).await;
            continue;
        }
        // Snapshot requests are served at a tick boundary: a consistent view of this zone.
        // The lock is taken only when one is asked for.
        let wanted = shared.snapshot_wanted.load(Ordering::SeqCst);
        if wanted > snapshot_served {
            snapshot_served = wanted;
            let mut slot = shared.snapshots[index].lock().expect("snapshot lock");
            let e = zone.entities();
            slot.1.zone = id.0;
            slot.1.taken_at_ns = clock.now().as_nanos();
            slot.1.tick = zone.tick_count();
            slot.1.owned.clear();
            slot.1
                .owned
                .extend(e.ids().iter().zip(e.epochs()).map(|(id, ep)| (id.0, *ep)));
            slot.1.avatars.clear();
            slot.1.avatars.extend(
                (0..e.len() as u32)
                    .filter(|&s| e.kind(s) == meridian_core::session::AVATAR_KIND)
                    .map(|s| (e.ids()[s as usize].0, e.epochs()[s as usize])),
            );
            slot.1.in_flight.clear();
            slot.1
                .in_flight
                .extend(zone.tombstones().map(|(id, ep)| (id.0, ep)));
            slot.0 = wanted;
        }
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        while let Some(d) = inbound.pop() {
            stats.packets_in += 1;
            stats.bytes_in += u64::from(d.len);
            from_zone(
                &mut zone,
                sessions.as_mut(),
                now,
                d.from,
                &d.bytes[..usize::from(d.len)],
            );
        }
        let received = udp.recv(UDP_RECV_BUDGET, |from, bytes| {
            stats.packets_in += 1;
            stats.bytes_in += bytes.len() as u64;
            match (
                plan.remote.iter().find(|r| r.addr == from),
                ingress.as_mut(),
            ) {
                // Another node's zone, signed: verified below, in one batch.
                (Some(r), Some(ingress)) => ingress.push(r.zone, r.signer, bytes),
                (Some(r), None) => from_zone(&mut zone, sessions.as_mut(), now, r.zone, bytes),
                (None, _) => match sessions.as_mut() {
                    Some(s) => s.handle_datagram(unix_ms, from, bytes),
                    None => zone.handle_datagram(now, Peer::Client(from), bytes),
                },
            }
        });
        if let Err(e) = received {
            tracing::warn!(zone = %id, "UDP receive failed: {e}");
        }
        if let Some(ingress) = ingress.as_mut() {
            ingress.verify(|from, payload| {
                from_zone(&mut zone, sessions.as_mut(), now, from, payload)
            });
            let c = ingress.counters;
            stats.verify_failures = c.forged + c.replayed + c.malformed + c.overflow;
            stats.witness = c;
        }
        if let Some(npcs) = plan.npcs {
            let next_tick = zone.tick_count() + 1;
            npc::steer(&mut zone, npcs.pattern, npcs.speed_mps, next_tick);
        }
        let started = clock.now();
        if let Some(s) = sessions.as_mut() {
            s.tick(unix_ms, &mut zone);
        }
        zone.tick(now);
        if let Some(s) = sessions.as_mut() {
            s.replicate(&zone);
        }
        let took_us = clock.now().saturating_duration_since(started).as_micros() as u64;
        let _ = second.record(took_us.max(1));
        let _ = total.record(took_us.max(1));
        // Persistence is not built yet: the log is dropped (see the README).
        for _ in zone.drain_log() {}
        while let Some(t) = zone.poll_transmit(&mut buf) {
            stats.packets_out += 1;
            stats.bytes_out += t.len as u64;
            if !router.route(t.to, &buf[..t.len], &mut udp) {
                local_drops += 1;
            }
        }
        if let Some(s) = sessions.as_mut() {
            while let Some((to, len)) = s.poll_transmit(&mut buf) {
                stats.packets_out += 1;
                stats.bytes_out += len as u64;
                if !router.route(to, &buf[..len], &mut udp) {
                    local_drops += 1;
                }
            }
        }
        // The tick's whole UDP output in one system call.
        if let Err(e) = udp.flush() {
            tracing::warn!(zone = %id, "UDP submit failed: {e}");
        }
        while let Some(event) = zone.poll_event() {
            match event {
                Event::Arrived {
                    id: e, from, epoch, ..
                } => {
                    arrived += 1;
                    tracing::debug!("[+] entity {e} ARRIVED from zone {from} (epoch {epoch})");
                }
                Event::Departed { id: e, to, .. } => {
                    departed += 1;
                    tracing::debug!("[-] entity {e} DEPARTED to zone {to}");
                }
                _ => {}
            }
        }
        let now = clock.now();
        if now >= next_publish {
            next_publish = now + Duration::from_secs(1);
            if arrived + departed > 0 {
                tracing::info!(zone = %id, "[+] {arrived} entities ARRIVED, [-] {departed} DEPARTED in the last second");
            }
            (arrived, departed) = (0, 0);
            fill_stats(&mut stats, &zone, &second, local_drops + udp_drops(&udp));
            if let Some(s) = &sessions {
                stats.sessions = s.len();
                stats.clients = s.counters();
            }
            *shared.stats[index].lock().expect("stats lock") = stats.clone();
            second.reset();
        }
    }
    zone.shut_down();
    fill_stats(&mut stats, &zone, &total, local_drops + udp_drops(&udp));
    if let Some(s) = &sessions {
        stats.sessions = s.len();
        stats.clients = s.counters();
    }
    tracing::info!(zone = %id, ticks = stats.tick, entities = stats.entities, "zone stopped");
    Ok(stats)
}

/// Where a zone's datagrams go: a zone of this node (its cross-core queue), a zone of
/// another node (UDP, sealed when the node has keys), or a client (UDP).
struct Router<'a> {
    id: ZoneID,
    queues: &'a [(ZoneID, Arc<ArrayQueue<LocalDatagram>>)],
    remote: &'a [RemoteZone],
    outgress: Option<Outgress>,
    sealed: [u8; SEALED_SIZE_MAX],
}

impl Router<'_> {
    /// Queues `bytes` for `to`; `false` if it was dropped (full queue, no route, refused).
    fn route(&mut self, to: Peer, bytes: &[u8], udp: &mut UdpRing) -> bool {
        match to {
            Peer::Zone(to) => {
                if let Some((_, q)) = self.queues.iter().find(|q| q.0 == to) {
                    let mut d = LocalDatagram {
                        from: self.id,
                        len: bytes.len() as u16,
                        bytes: [0; DATAGRAM_SIZE_MAX],
                    };
                    d.bytes[..bytes.len()].copy_from_slice(bytes);
                    q.push(d).is_ok()
                } else if let Some(r) = self.remote.iter().find(|r| r.zone == to) {
                    let datagram = match self.outgress.as_mut() {
                        Some(out) => match out.seal(bytes, &mut self.sealed) {
                            Some(n) => &self.sealed[..n],
                            None => return false,
                        },
                        None => bytes,
                    };
                    match udp.send_to(datagram, r.addr) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::debug!(zone = %self.id, to = %r.addr, "UDP send refused: {e}");
                            false
                        }
                    }
                } else {
                    false
                }
            }
            Peer::Client(addr) => udp.send_to(bytes, addr).is_ok(),
        }
    }
}

/// A datagram from another zone: a client input forwarded after a handoff (an envelope)
/// goes to the session layer, everything else to the zone.
fn from_zone(
    zone: &mut Zone,
    sessions: Option<&mut Sessions>,
    now: meridian_core::time::Instant,
    from: ZoneID,
    bytes: &[u8],
) {
    let forwarded_input = bytes.get(5) == Some(&(meridian_layouts::Kind::Envelope as u8));
    match sessions {
        Some(s) if forwarded_input => s.handle_forwarded(bytes),
        _ => zone.handle_datagram(now, Peer::Zone(from), bytes),
    }
}

/// Datagrams the ring dropped: too long to receive, refused by the kernel on send.
fn udp_drops(udp: &UdpRing) -> u64 {
    let c = udp.counters();
    c.truncated + c.recv_errors + c.send_errors
}

/// Copies the zone's figures and the tick percentiles of `ticks` into `stats`. `io_drops`:
/// datagrams this driver dropped (full cross-core queue, UDP receive queue, send errors).
fn fill_stats(stats: &mut ZoneStats, zone: &Zone, ticks: &Histogram<u64>, io_drops: u64) {
    let (inbox_drops, outbox_drops) = zone.datagram_drops();
    stats.tick = zone.tick_count();
    stats.entities = zone.entities().len();
    stats.ghosts = zone.ghosts().len();
    stats.in_flight = zone.tombstone_count();
    stats.tick_p50_us = ticks.value_at_quantile(0.5);
    stats.tick_p99_us = ticks.value_at_quantile(0.99);
    stats.tick_max_us = ticks.max();
    stats.drops = inbox_drops + outbox_drops + io_drops;
    stats.counters = *zone.counters();
}

fn spawn_npcs(zone: &mut Zone, npcs: &NpcPlan) -> Result<(), String> {
    let world = *zone.world();
    let rect = zone.rect();
    let neighbour_east = world
        .neighbours(zone.id())
        .as_slice()
        .iter()
        .any(|&n| world.zone_rect(n).x_min >= rect.x_max);
    let border_x = if neighbour_east {
        rect.x_max
    } else {
        rect.x_min
    };
    let n = npcs.per_zone.max(1);
    for i in 0..npcs.per_zone {
        // A low-discrepancy spread (golden ratio), deterministic per zone.
        let u = (f64::from(i) * 0.618_033_988_749_895).fract() as f32;
        let v = (i as f32 + 0.5) / n as f32;
        let (x, y) = match npcs.pattern {
            Pattern::RandomWalk => (
                rect.x_min + u * rect.width(),
                rect.y_min + v * rect.height(),
            ),
            Pattern::BorderDancers => (border_x - 0.5, rect.y_min + v * rect.height()),
            Pattern::FlashCrowd => (border_x - 1.0 - u * 4.0, rect.y_min + v * rect.height()),
        };
        let x = x.clamp(rect.x_min, rect.x_max - 0.01);
        zone.spawn([x, y, 0.0], [0.0, 0.0], npcs.speed_mps * 1.5, NPC_KIND)
            .map_err(|e| format!("cannot spawn NPC {i}: {e} (raise the entity limit)"))?;
        // Spawns are logged; the log is bounded, so drain it as we go (no persistence yet).
        for _ in zone.drain_log() {}
    }
    Ok(())
}
