//! The tick driver of one zone, on its pinned executor: the stages of one tick, in order.
//!
//! ```text
//! serve_snapshot  a snapshot, if one was asked for; hold until the cut is released
//! ingest          cross-core queue, UDP ring (up to a budget), batch verification
//! step            NPC steering, sessions.tick, zone.tick, sessions.replicate (timed)
//! transmit        drain_log → the WAL thread; the tick's datagrams, held until it is durable;
//!                 every second, the checkpoint copy (timed with the step)
//! record_tick     the step's and the copy's time into the tick histograms
//! release         (every loop) the writer's reports; held datagrams whose records are durable
//! drain_events    arrivals and departures to the logs
//! publish         once a second: figures for the status line and the admin endpoint
//! ```
//!
//! The figures (`map_frame`, `record_tick`, `record_busy`, `publish`) are in `driver/figures.rs`.

mod figures;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use hdrhistogram::Histogram;
use meridian_core::handoff::Event;
use meridian_core::limits::DATAGRAM_SIZE_MAX;
use meridian_core::net::Peer;
use meridian_core::npc;
use meridian_core::persist::encode_record;
use meridian_core::session::{AVATAR_KIND, Sessions};
use meridian_core::time::Instant;
use meridian_core::world::ZoneID;
use meridian_core::zone::Zone;

use super::map::{MapFrame, MapView};
use super::measure::{GateClock, HandoffClock, unix_nanos};
use super::persistence::Durable;
use super::router::{Queues, Router, from_zone};
use super::setup::{boot_epoch, client_sessions, promoted_sessions};
use super::{LocalDatagram, NodePlan, Shared, UDP_RECV_BUDGET, ZonePlan, ZoneStats};
use crate::Clock;
use crate::cputime::thread_cpu_time;
use crate::signing::{Ingress, Outgress, SEALED_SIZE_MAX};
use crate::store::WriterEvent;
use crate::uring::{RingConfig, UdpRing};

/// Runs zone `index` of the plan until the node is told to stop; returns its final figures.
pub(super) async fn run_zone(
    index: usize,
    zone_plan: ZonePlan,
    opened: (Zone, Option<Durable>),
    plan: NodePlan,
    socket: socket2::Socket,
    shared: Arc<Shared>,
    queues: Vec<(ZoneID, Arc<ArrayQueue<LocalDatagram>>)>,
) -> Result<ZoneStats, String> {
    let mut driver = ZoneDriver::new(index, zone_plan, opened, &plan, socket, &shared, &queues)?;
    let clock = shared.clock.clone();
    let stopping =
        || shared.stop.load(Ordering::Relaxed) || shared.moving[index].load(Ordering::SeqCst);
    while !stopping() {
        driver.release();
        if let Some(message) = driver.failure() {
            let id = driver.zone.id();
            tracing::error!(zone = %id, "zone {id} stopped: {message}");
            shared.active[index].store(false, Ordering::SeqCst);
            return Err(format!("zone {id} stopped: {message}"));
        }
        if let Some(incarnation) = driver.taken_over() {
            driver.stand_down(incarnation);
            return Ok(driver.finish(false));
        }
        let now = clock.now();
        let due = driver.zone.poll_timeout();
        if now < due {
            // Datagrams held for the disk go as soon as it confirms: poll it meanwhile.
            let wait = due.saturating_duration_since(now);
            let wait = if driver.holding() {
                wait.min(Duration::from_micros(200))
            } else {
                wait
            };
            glommio::timer::sleep(wait).await;
            continue;
        }
        let unix_ms = unix_nanos() / 1_000_000;
        if let Some(generation) = driver.serve_snapshot() {
            // Hold at this tick boundary until the node releases the cut (`Node::freeze`).
            while shared.snapshot_released.load(Ordering::SeqCst) < generation
                && !shared.stop.load(Ordering::Relaxed)
            {
                glommio::timer::sleep(Duration::from_micros(100)).await;
            }
            continue;
        }
        driver.ingest(now, unix_ms);
        driver.step(now, unix_ms);
        driver.transmit();
        driver.map_frame();
        driver.record_busy(now);
        driver.record_tick();
        driver.drain_events();
        driver.publish();
    }
    if shared.moving[index].load(Ordering::SeqCst) && !shared.stop.load(Ordering::Relaxed) {
        return Ok(driver.finish_for_move());
    }
    Ok(driver.finish(true))
}

/// Everything one zone's executor owns.
struct ZoneDriver<'a> {
    index: usize,
    plan: &'a NodePlan,
    shared: &'a Shared,
    clock: Clock,
    zone: Zone,
    sessions: Option<Sessions>,
    inbound: Arc<ArrayQueue<LocalDatagram>>,
    udp: UdpRing,
    router: Router<'a>,
    ingress: Option<Ingress>,
    stats: ZoneStats,
    /// Tick durations of the current second, and of the whole run (µs).
    second: Histogram<u64>,
    total: Histogram<u64>,
    /// The current second's tick CPU times (µs).
    second_cpu: Histogram<u64>,
    buf: [u8; DATAGRAM_SIZE_MAX],
    local_drops: u64,
    /// This run has sent a datagram: it is no longer tentative (see `Snapshot::tentative`).
    released_any: bool,
    next_publish: Instant,
    snapshot_served: u64,
    arrived: u64,
    departed: u64,
    /// The zone's persistence, if the node has a data directory.
    durable: Option<Durable>,
    /// This tick's timed work: `step`, plus the checkpoint copy when one is taken and the
    /// map frame; on the wall clock and in this thread's CPU time.
    tick_work: Duration,
    tick_cpu: Duration,
    /// Datagrams waiting for the records they depend on to be durable: (the append
    /// sequence they wait for, destination, length, bytes), oldest first.
    held: VecDeque<(u64, Peer, usize, [u8; DATAGRAM_SIZE_MAX])>,
    /// The routes' version the session layer's zone addresses follow.
    routes_seen: u64,
    handoff_clock: HandoffClock,
    gate_clock: GateClock,
    /// The live map: this zone's frame being refilled, the windows it lists, the next
    /// frame's time.
    map: MapFrame,
    map_views: Vec<MapView>,
    next_map: Instant,
}

/// The UDP ring of a zone of `plan`: a whole tick's output in flight at once — a snapshot
/// for every session the zone may hold, plus handshake replies and zone traffic. (A fixed
/// 1,024 cut off every session past about a thousand, the same ones every tick.)
fn ring_config(plan: &NodePlan) -> RingConfig {
    let sessions = plan.clients.as_ref().map_or(0, |c| c.config.sessions_max);
    RingConfig {
        send_slots: (sessions + 1024).min(usize::from(u16::MAX)) as u16,
        ..RingConfig::default()
    }
}

impl<'a> ZoneDriver<'a> {
    fn new(
        index: usize,
        zone_plan: ZonePlan,
        (mut zone, durable): (Zone, Option<Durable>),
        plan: &'a NodePlan,
        socket: socket2::Socket,
        shared: &'a Shared,
        queues: &'a Queues,
    ) -> Result<ZoneDriver<'a>, String> {
        let clock = shared.clock.clone();
        let id = zone_plan.zone;
        let inbound = queues
            .iter()
            .find(|q| q.0 == id)
            .expect("own queue")
            .1
            .clone();
        let udp = UdpRing::new(socket.into(), ring_config(plan))
            .map_err(|e| format!("io_uring for UDP {}: {e}", zone_plan.bind))?;
        let boot_epoch = boot_epoch(&zone, durable.is_some());
        // Neighbours tick a quarter period apart or more (`meridian_core::pacing`).
        zone.align_ticks(clock.now(), unix_nanos(), Duration::from_secs(1));
        let router = Router {
            id,
            incarnation: boot_epoch,
            queues,
            routes: &shared.routes,
            outgress: plan
                .keys
                .as_ref()
                .map(|keys| Outgress::new(keys, boot_epoch, id)),
            sealed: [0u8; SEALED_SIZE_MAX],
        };
        let ingress = match &plan.keys {
            Some(keys) => Some(
                Ingress::new(keys, UDP_RECV_BUDGET, id).map_err(|e| format!("node keys: {e}"))?,
            ),
            None => None,
        };
        let second =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
        tracing::info!(zone = %id, core = zone_plan.core, udp = %zone_plan.bind, entities = zone.entities().len(), "zone started");
        Ok(ZoneDriver {
            index,
            plan,
            shared,
            sessions: promoted_sessions(
                client_sessions(plan, shared, id)?,
                // Started by `Node::promote` (its plan restores only).
                plan.store.as_ref().is_some_and(|s| s.restore_only),
                &zone_plan,
            ),
            zone,
            inbound,
            udp,
            router,
            ingress,
            stats: ZoneStats {
                zone: id.0,
                ..ZoneStats::default()
            },
            total: second.clone(),
            second_cpu: second.clone(),
            second,
            buf: [0u8; DATAGRAM_SIZE_MAX],
            local_drops: 0,
            released_any: false,
            next_publish: clock.now(),
            next_map: clock.now(),
            clock,
            snapshot_served: 0,
            arrived: 0,
            departed: 0,
            durable,
            tick_work: Duration::ZERO,
            tick_cpu: Duration::ZERO,
            held: VecDeque::with_capacity(4096),
            routes_seen: 0,
            handoff_clock: HandoffClock::default(),
            gate_clock: GateClock::default(),
            map: MapFrame::default(),
            map_views: Vec::new(),
        })
    }

    /// Serves a snapshot request at this tick boundary, before anything of the tick is
    /// ingested; returns its generation (the zone then holds until it is released). The
    /// lock is taken only when one is asked for.
    fn serve_snapshot(&mut self) -> Option<u64> {
        let wanted = self.shared.snapshot_wanted.load(Ordering::SeqCst);
        if wanted <= self.snapshot_served {
            return None;
        }
        self.snapshot_served = wanted;
        let mut slot = self.shared.snapshots[self.index]
            .lock()
            .expect("snapshot lock");
        let (zone, e) = (&self.zone, self.zone.entities());
        let snapshot = &mut slot.1;
        snapshot.zone = zone.id().0;
        snapshot.taken_at_ns = self.clock.now().as_nanos();
        snapshot.tick = zone.tick_count();
        snapshot.tentative = self.tentative();
        snapshot.owned.clear();
        snapshot
            .owned
            .extend(e.ids().iter().zip(e.epochs()).map(|(id, ep)| (id.0, *ep)));
        snapshot.positions.clear();
        snapshot
            .positions
            .extend(e.xs().iter().zip(e.ys()).map(|(x, y)| [*x, *y]));
        snapshot.avatars.clear();
        snapshot.avatars.extend(
            (0..e.len() as u32)
                .filter(|&s| e.kind(s) == AVATAR_KIND)
                .map(|s| (e.ids()[s as usize].0, e.epochs()[s as usize])),
        );
        snapshot.in_flight.clear();
        snapshot
            .in_flight
            .extend(zone.tombstones().map(|(id, ep, _)| (id.0, ep)));
        snapshot.avatars_in_flight.clear();
        snapshot.avatars_in_flight.extend(
            zone.tombstones()
                .filter(|t| t.2 == AVATAR_KIND)
                .map(|(id, ep, _)| (id.0, ep)),
        );
        slot.0 = wanted;
        Some(wanted)
    }

    /// Everything that arrived: the cross-core queue, then the UDP ring up to its budget;
    /// signed datagrams from other nodes are verified in one batch before the zone sees
    /// them.
    fn ingest(&mut self, now: Instant, unix_ms: u64) {
        self.follow_routes();
        let (zone, sessions, stats) = (&mut self.zone, &mut self.sessions, &mut self.stats);
        let routes = &self.shared.routes;
        while let Some(d) = self.inbound.pop() {
            stats.packets_in += 1;
            stats.bytes_in += u64::from(d.len);
            let bytes = &d.bytes[..usize::from(d.len)];
            moved(routes.heard(d.from, self.plan.me, d.incarnation));
            from_zone(zone, sessions.as_mut(), now, (d.from, d.incarnation), bytes);
        }
        let ingress = &mut self.ingress;
        let received = self.udp.recv(UDP_RECV_BUDGET, |from, bytes| {
            stats.packets_in += 1;
            stats.bytes_in += bytes.len() as u64;
            match (routes.by_addr(from), ingress.as_mut()) {
                // Another node's zone, signed: verified below, in one batch.
                (Some((z, home)), Some(ingress)) => ingress.push(z, home.node, bytes),
                // Unsigned (a private network): no run is known, nothing is fenced.
                (Some((z, _)), None) => from_zone(zone, sessions.as_mut(), now, (z, 0), bytes),
                (None, _) => match sessions.as_mut() {
                    Some(s) => s.handle_datagram(unix_ms, from, bytes),
                    None => zone.handle_datagram(now, Peer::Client(from), bytes),
                },
            }
        });
        if let Err(e) = received {
            tracing::warn!(zone = %zone.id(), "UDP receive failed: {e}");
        }
        if let Some(ingress) = ingress.as_mut() {
            ingress.verify(|from, signer, epoch, payload| {
                // A persisted zone's envelope epoch is its incarnation: a newer run
                // moves the zone's route (a standby took it over).
                moved(routes.heard(from, signer, epoch));
                from_zone(zone, sessions.as_mut(), now, (from, epoch), payload);
            });
            let c = ingress.counters;
            stats.verify_failures =
                c.forged + c.replayed + c.malformed + c.other_version + c.overflow;
            stats.witness = c;
        }
    }

    /// One tick of work, timed: NPC steering, the sessions' inputs, the zone's tick, the
    /// snapshots.
    fn step(&mut self, now: Instant, unix_ms: u64) {
        if let Some(npcs) = self.plan.npcs {
            let next_tick = self.zone.tick_count() + 1;
            npc::steer(&mut self.zone, npcs.pattern, npcs.speed_mps, next_tick);
        }
        let (started, cpu) = (self.clock.now(), thread_cpu_time());
        if let Some(s) = self.sessions.as_mut() {
            s.tick(unix_ms, &mut self.zone);
        }
        let settling = !self.zone.settled();
        self.zone.tick(now);
        if settling && self.zone.settled() {
            // From this tick the run's snapshots show their clients' whole view: before it,
            // they were flagged partial while the peers' ghosts came (`ghosts::settle`).
            let timed_out = self.zone.counters().settle_timeouts > 0;
            tracing::info!(
                zone = %self.zone.id(),
                tick = self.zone.tick_count(),
                timed_out,
                "the run holds its peers' ghosts from its tick {}{}",
                self.zone.tick_count(),
                if timed_out { " (a peer stayed silent: waited for it no longer)" } else { "" }
            );
        }
        if let Some(s) = self.sessions.as_mut() {
            s.replicate(&self.zone);
        }
        self.tick_work = self.clock.now().saturating_duration_since(started);
        self.tick_cpu = thread_cpu_time().saturating_sub(cpu);
    }

    /// The tick's log records, then its datagrams: the zone's, then the sessions'.
    ///
    /// With persistence, the records go to the WAL thread; if there were any (or earlier
    /// datagrams still wait), the tick's datagrams are held until the disk confirms them
    /// (a COMMIT never leaves before its relinquish is durable, a DONE before its adoption,
    /// an ACCEPT before its session binding). Otherwise they leave at once, the whole UDP
    /// output in one system call.
    fn transmit(&mut self) {
        let mut hold = false;
        match self.durable.as_mut() {
            None => for _ in self.zone.drain_log() {},
            Some(d) => {
                // A pooled buffer only when there is something to write: most ticks have
                // no records, and a buffer taken and dropped would be reallocated later.
                let records = self.zone.drain_log();
                if records.len() > 0 {
                    let mut bytes = d.writer.buffer();
                    d.counters.wal_records += records.len() as u64;
                    for record in records {
                        encode_record(&record, &mut bytes);
                    }
                    d.appended += 1;
                    d.counters.wal_appends += 1;
                    if let Err(e) = d.writer.append(d.appended, bytes) {
                        d.failed = Some(e);
                    }
                } else {
                    drop(records);
                }
                hold = d.appended > d.safe();
                // The copies are zone work: they count in the tick's time.
                let (started, cpu) = (self.clock.now(), thread_cpu_time());
                d.checkpoint_step(&self.zone);
                self.tick_work += self.clock.now().saturating_duration_since(started);
                self.tick_cpu += thread_cpu_time().saturating_sub(cpu);
            }
        }
        let wait_for = self.durable.as_ref().map_or(0, |d| d.appended);
        let packets_before = self.stats.packets_out;
        let (buf, stats) = (&mut self.buf, &mut self.stats);
        let held_before = self.held.len();
        let mut out = |to: Peer, bytes: &[u8], router: &mut Router<'_>, udp: &mut UdpRing| {
            stats.packets_out += 1;
            stats.bytes_out += bytes.len() as u64;
            if hold {
                let mut copy = [0u8; DATAGRAM_SIZE_MAX];
                copy[..bytes.len()].copy_from_slice(bytes);
                self.held.push_back((wait_for, to, bytes.len(), copy));
                false
            } else {
                !router.route(to, bytes, udp)
            }
        };
        while let Some(t) = self.zone.poll_transmit(buf) {
            if out(t.to, &buf[..t.len], &mut self.router, &mut self.udp) {
                self.local_drops += 1;
            }
        }
        if let Some(s) = self.sessions.as_mut() {
            while let Some((to, len)) = s.poll_transmit(buf) {
                if out(to, &buf[..len], &mut self.router, &mut self.udp) {
                    self.local_drops += 1;
                }
            }
        }
        if let Some(d) = self.durable.as_mut() {
            d.counters.datagrams_held += (self.held.len() - held_before) as u64;
            if self.held.len() > held_before {
                self.gate_clock.held(wait_for, self.clock.now());
            }
        }
        self.released_any |= !hold && self.stats.packets_out > packets_before;
        if !hold && let Err(e) = self.udp.flush() {
            tracing::warn!(zone = %self.zone.id(), "UDP submit failed: {e}");
        }
    }

    /// Takes the writer's reports and sends the held datagrams whose records are durable.
    fn release(&mut self) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        while let Some(event) = d.writer.poll() {
            match event {
                WriterEvent::Durable { seq } => d.synced = d.synced.max(seq),
                WriterEvent::Checkpointed { capture, .. } => {
                    d.capture = Some(capture);
                    d.counters.checkpoints += 1;
                }
                WriterEvent::Failed(message) => d.failed = Some(message),
            }
        }
        let (waiting, change) = &self.shared.attach[self.index];
        if waiting.swap(false, Ordering::Acquire) {
            let change = change.lock().expect("attach lock").take();
            match (change, &self.plan.keys) {
                (Some(super::StandbyChange::Attach(target)), Some(keys)) => {
                    d.attach(self.zone.id(), self.zone.incarnation(), &keys.key, target);
                    *self.shared.standby_addr[self.index]
                        .lock()
                        .expect("standby addr") = d.standby_addr;
                }
                (Some(super::StandbyChange::Drop), _) => d.drop_standby(self.zone.id()),
                _ => {}
            }
        }
        d.update_gate(self.zone.id());
        let word = u64::from(self.zone.incarnation()) << 8 | d.standby_state() as u64;
        self.shared.standby_word[self.index].store(word, Ordering::Release);
        let safe = d.safe();
        let now = self.clock.now();
        (self.gate_clock).confirmed(d.synced, safe, now, &mut self.stats.histograms);
        let mut sent = false;
        while self.held.front().is_some_and(|h| h.0 <= safe) {
            let (_, to, len, bytes) = self.held.pop_front().expect("looked at");
            if !self.router.route(to, &bytes[..len], &mut self.udp) {
                self.local_drops += 1;
            }
            sent = true;
        }
        self.released_any |= sent;
        if sent && let Err(e) = self.udp.flush() {
            tracing::warn!(zone = %self.zone.id(), "UDP submit failed: {e}");
        }
    }

    /// This run is tentative (`Snapshot::tentative`): the run's first append (its
    /// incarnation, right after the restart checkpoint) is what its first datagrams wait
    /// for; a run that sent anything all the same (a gate that leaks) is not, so the cuts
    /// still show what it holds.
    fn tentative(&self) -> bool {
        !self.released_any && self.durable.as_ref().is_some_and(|d| d.safe() == 0)
    }

    /// Datagrams wait for the disk.
    fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// After a zone moved (a takeover anywhere in the world), REDIRECTs name its new
    /// address.
    fn follow_routes(&mut self) {
        let version = self.shared.routes.version();
        if version == self.routes_seen {
            return;
        }
        self.routes_seen = version;
        if let Some(s) = self.sessions.as_mut() {
            for (zone, home) in self.shared.routes.homes() {
                s.set_zone_address(zone, home.addr);
            }
        }
    }

    /// The incarnation the zone's standby runs it as, if it took the zone over.
    fn taken_over(&self) -> Option<u32> {
        self.durable.as_ref()?.standby.as_ref()?.taken_over()
    }

    /// The standby took the zone over while this node was down or cut off: this run
    /// (restored from a disk the world has moved past) sends nothing more — what it held
    /// for the standby is dropped — and the node routes the zone to its new home.
    fn stand_down(&mut self, incarnation: u32) {
        let id = self.zone.id();
        tracing::error!(zone = %id, incarnation, "zone {id} was taken over by its standby (incarnation {incarnation}) while this node was down or cut off: standing down, dropping {} datagrams it held", self.held.len());
        self.held.clear();
        self.shared.active[self.index].store(false, Ordering::SeqCst);
        self.shared.routes.taken_over(id, incarnation);
        self.shared
            .stood_down
            .lock()
            .expect("stood down lock")
            .push((id, incarnation));
    }

    /// The persistence failure that must stop the zone, if any.
    fn failure(&self) -> Option<String> {
        let d = self.durable.as_ref()?;
        if let Some(newest) = d.standby.as_ref().and_then(crate::standby::Stream::stale) {
            return Some(format!(
                "its standby holds a newer run of the zone (incarnation {newest}) than this node \
                 restored ({}): the zone ran elsewhere since and these files are stale. Where the \
                 zone's newest state is: the standby's copy. (If you started this node --fresh on \
                 purpose, clear the zone's copy on its standby node too.)",
                self.zone.incarnation()
            ));
        }
        d.failed.clone()
    }

    /// Arrivals and departures: one debug line each, counted for the per-second summary;
    /// handoffs timed from OFFER to DONE.
    fn drain_events(&mut self) {
        let now = self.clock.now();
        let histograms = &mut self.stats.histograms;
        while let Some(event) = self.zone.poll_event() {
            match event {
                Event::Offered { transfer_id, .. } => self.handoff_clock.offered(transfer_id, now),
                Event::Aborted { transfer_id, .. } => self.handoff_clock.aborted(transfer_id),
                Event::Arrived {
                    id, from, epoch, ..
                } => {
                    self.arrived += 1;
                    tracing::debug!("[+] entity {id} ARRIVED from zone {from} (epoch {epoch})");
                }
                Event::Departed {
                    id,
                    to,
                    transfer_id,
                    ticks,
                    ..
                } => {
                    self.departed += 1;
                    histograms.handoff_ticks.record(ticks as f64);
                    if let Some(seconds) = self.handoff_clock.departed(transfer_id, now) {
                        histograms.handoff_seconds.record(seconds);
                    }
                    tracing::debug!("[-] entity {id} DEPARTED to zone {to}");
                }
                _ => {}
            }
        }
    }

    /// Stops taking arrivals, writes a final checkpoint if the node stopped the zone
    /// (`clean`) and returns the run's figures.
    fn finish(mut self, clean: bool) -> ZoneStats {
        self.zone.shut_down();
        // What the game's mailbox still holds ends with the run: counted, not lost silently.
        self.zone.stop_messages();
        if let Some(d) = self.durable.take() {
            // The stream ends as it is dropped.
            drop(d.finish(&self.zone, clean));
        }
        self.fill_stats(true);
        let stats = self.stats;
        tracing::info!(zone = %self.zone.id(), ticks = stats.tick, entities = stats.entities, "zone stopped");
        stats
    }
}

impl ZoneDriver<'_> {
    /// The zone stops to move to its standby (docs/mesh.md, "Moving a zone on purpose"):
    /// a final checkpoint of its last tick, the writer finished, and its stream ended
    /// with a claim the standby acknowledges once it holds all of it. The run is over
    /// either way; whether the standby holds it whole is for the node to act on
    /// ([`super::Node::stopped_for_move`]).
    fn finish_for_move(mut self) -> ZoneStats {
        self.zone.shut_down();
        self.zone.stop_messages();
        let (id, incarnation) = (self.zone.id(), self.zone.incarnation());
        let mut held = false;
        if let Some(d) = self.durable.take() {
            let failed = d.failed.is_some();
            held = d
                .finish(&self.zone, true)
                .is_some_and(|s| !failed && s.finish());
        }
        self.shared.active[self.index].store(false, Ordering::SeqCst);
        self.fill_stats(true);
        tracing::warn!(zone = %id, incarnation, held, "zone {id} stopped to move to its standby (the standby holds it whole: {held})");
        let stopped = super::StoppedForMove {
            zone: id,
            incarnation,
            held,
        };
        self.shared
            .stopped
            .lock()
            .expect("stopped lock")
            .push(stopped);
        self.stats
    }
}

/// Logs a zone's route moving to another node.
fn moved(moved: Option<super::routes::Moved>) {
    if let Some((zone, node, incarnation)) = moved {
        tracing::warn!(%zone, node, incarnation, "zone {zone} runs on node {node} now (incarnation {incarnation}): routing its traffic there");
    }
}
