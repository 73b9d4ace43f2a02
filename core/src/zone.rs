//! A zone: the entities one core owns, and the fixed-step pipeline that advances them.
//!
//! The sans-IO API, after quinn-proto:
//!
//! ```text
//! zone.handle_datagram(now, from, &bytes)  // copy into the inbox; nothing else happens
//! zone.tick(now)                           // one fixed step of the whole pipeline
//! zone.drain_log()                         // durable records: the driver persists them…
//! zone.poll_transmit(&mut buf)             // …before sending the tick's datagrams
//! zone.poll_event()                        // arrivals, departures, aborts (logs, metrics)
//! zone.poll_timeout()                      // when the next tick is due
//! ```
//!
//! [`Zone::tick`] runs, in order: **ingest** (the inbox, one message kind at a time: DONE,
//! NACK, ACK, COMMIT, OFFER, GHOSTS) → **movement** → **grid** → **border pass** →
//! **handoff** (start OFFERs for new crossings, abort the ones that came back, retransmit,
//! time out) → **ghosts** (send aura batches, expire stale ghosts, index the rest). The
//! protocol is described in [`crate::handoff`].
//!
//! Every table is allocated in [`Zone::new`] from [`Limits`]; after warm-up the tick does
//! not allocate (a test with a counting allocator holds us to it).

use core::time::Duration;
use std::collections::VecDeque;

use meridian_layouts::ghosts::{
    GhostRecord, GhostsHeader, parse_ghosts, records_per_datagram, write_ghosts,
};
use meridian_layouts::handoff::{
    Ack, Commit, Done, Nack, NackReason, Offer, SessionBinding, Transfer,
};
use meridian_layouts::{F32Le, Kind, U16Le, U32Le, U64Le, parse};
use rustc_hash::FxHashMap;

use crate::borders::{BorderOutput, Borders, Crossing, border_pass};
use crate::entities::{Entities, EntityID, EntityInit, InsertError};
use crate::ghosts::{Ghosts, Upsert};
use crate::grid::Grid;
use crate::handoff::{
    AbortReason, Counters, Event, HandoffConfig, LogRecord, NO_SESSION, PendingOffer, Staged,
    Tombstone, backoff, entity_of, state_of, transfer,
};
use crate::limits::{DATAGRAM_SIZE_MAX, Limits, LimitsError};
use crate::net::{Inbox, Outbox, Peer, Transmit, for_each_packet};
use crate::time::Instant;
use crate::world::{Rect, World, ZoneID};
use meridian_layouts::handoff::PAYLOAD_SIZE;

/// Deliberately broken protocol variants, so tests can prove the simulator catches them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// The target takes ownership on OFFER instead of on COMMIT (double ownership).
    pub adopt_on_offer: bool,
    /// Epochs are not checked: stale OFFERs and COMMITs are applied.
    pub ignore_epochs: bool,
}

/// Ticks between sweeps of the epoch memory for expired entries.
const EPOCH_SWEEP_TICKS: u64 = 64;

/// Transfer ids: the zone's incarnation in the high bits, a counter in the low 40.
const TRANSFER_COUNTER_BITS: u32 = 40;

/// One zone. See the module docs.
#[derive(Debug)]
pub struct Zone {
    id: ZoneID,
    world: World,
    limits: Limits,
    config: HandoffConfig,
    entities: Entities,
    grid: Grid,
    borders: Borders,
    border_output: BorderOutput,
    ghosts: Ghosts,
    offers: FxHashMap<EntityID, PendingOffer>,
    tombstones: FxHashMap<EntityID, Tombstone>,
    staged: FxHashMap<EntityID, Staged>,
    /// Highest epoch known per entity, and the tick it was recorded.
    epochs: FxHashMap<EntityID, (u32, u64)>,
    inbox: Inbox,
    outbox: Outbox,
    events: VecDeque<Event>,
    log: Vec<LogRecord>,
    counters: Counters,
    tick: u64,
    tick_duration: Duration,
    next_tick_at: Instant,
    next_entity_counter: u64,
    incarnation: u32,
    next_transfer_counter: u64,
    shutting_down: bool,
    bugs: Bugs,
    /// Client sessions bound to owned avatars; carried in COMMIT (DESIGN §6).
    sessions: FxHashMap<EntityID, SessionBinding>,
    /// Sessions that arrived with an avatar or left with one, for the session layer.
    session_moves: Vec<SessionMove>,
}

/// Most session bindings a zone holds (avatars with a client).
pub const SESSION_BINDINGS_MAX: usize = 4096;

/// A client session that moved with its avatar (see [`Zone::drain_session_moves`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionMove {
    /// This zone adopted avatar `id` with its session: start serving the client.
    Arrived {
        id: EntityID,
        binding: SessionBinding,
    },
    /// This zone relinquished avatar `id` to `to`: redirect the client there.
    Left {
        id: EntityID,
        to: ZoneID,
        binding: SessionBinding,
    },
}

impl Zone {
    /// A zone `id` of `world`, empty, first tick due at `now`, default protocol timing.
    pub fn new(
        world: &World,
        id: ZoneID,
        limits: Limits,
        now: Instant,
    ) -> Result<Zone, LimitsError> {
        Zone::with_config(world, id, limits, HandoffConfig::default(), now, 0)
    }

    /// A zone with explicit protocol timing. `incarnation` distinguishes this run of the
    /// zone from earlier ones (it prefixes transfer ids); bump it on every restart.
    pub fn with_config(
        world: &World,
        id: ZoneID,
        limits: Limits,
        config: HandoffConfig,
        now: Instant,
        incarnation: u32,
    ) -> Result<Zone, LimitsError> {
        limits.validate()?;
        assert!(id.0 < world.zone_count());
        let entities = Entities::new(&limits);
        // The index covers the zone and its aura: owned entities past the border by up
        // to the margin, and ghosts within the aura.
        let area = world.zone_rect(id).expand(world.aura_m());
        let cell_size_m = world.config().cell_size_m;
        let grid = Grid::covering(area, cell_size_m, entities.capacity());
        Ok(Zone {
            id,
            world: *world,
            limits,
            config,
            entities,
            grid,
            borders: Borders::new(world, id),
            border_output: BorderOutput::new(&limits),
            ghosts: Ghosts::new(limits.ghost_count_max, area, cell_size_m),
            offers: table(limits.offer_count_max),
            tombstones: table(limits.tombstone_count_max),
            staged: table(limits.staged_count_max),
            epochs: table(limits.epoch_memory_count_max),
            inbox: Inbox::new(limits.inbox_datagram_count_max as usize),
            outbox: Outbox::new(limits.outbox_datagram_count_max as usize),
            events: VecDeque::with_capacity(limits.event_count_max as usize),
            log: Vec::with_capacity(limits.log_record_count_max as usize),
            counters: Counters::default(),
            tick: 0,
            tick_duration: world.tick_duration(),
            next_tick_at: now,
            next_entity_counter: 0,
            incarnation,
            next_transfer_counter: 0,
            shutting_down: false,
            bugs: Bugs::default(),
            sessions: table(SESSION_BINDINGS_MAX as u32),
            session_moves: Vec::with_capacity(1024),
        })
    }

    /// Rebuilds a zone from its durable log after a crash: it owns what the log says it
    /// owns (at the logged state), keeps a tombstone for every relinquish (its COMMIT is
    /// sent again; a target that adopted answers DONE), and remembers every epoch.
    pub fn restore(
        world: &World,
        id: ZoneID,
        limits: Limits,
        config: HandoffConfig,
        now: Instant,
        incarnation: u32,
        log: &[LogRecord],
    ) -> Result<Zone, LimitsError> {
        let mut zone = Zone::with_config(world, id, limits, config, now, incarnation)?;
        for record in log {
            match record {
                LogRecord::Spawn { entity } | LogRecord::Adopt { entity, .. } => {
                    if let Some(slot) = zone.entities.slot_of(entity.id) {
                        zone.remove_slot(slot);
                    }
                    zone.tombstones.remove(&entity.id);
                    zone.entities
                        .insert(entity)
                        .expect("a restored log fits the limits it was written under");
                    zone.remember(entity.id, entity.epoch);
                    if entity.id.creator() == id {
                        zone.next_entity_counter =
                            zone.next_entity_counter.max(entity.id.counter() + 1);
                    }
                }
                LogRecord::Relinquish { commit } => {
                    let entity = EntityID(commit.transfer.entity_id.get());
                    if let Some(slot) = zone.entities.slot_of(entity) {
                        zone.remove_slot(slot);
                    }
                    zone.tombstones.insert(
                        entity,
                        Tombstone {
                            commit: *commit,
                            next_retransmit_tick: 0,
                            attempts: 0,
                            started_tick: 0,
                        },
                    );
                    zone.remember(entity, commit.transfer.epoch.get());
                }
                LogRecord::Done { id, transfer_id } => {
                    if zone
                        .tombstones
                        .get(id)
                        .is_some_and(|t| t.commit.transfer.transfer_id.get() == *transfer_id)
                    {
                        zone.tombstones.remove(id);
                    }
                }
            }
        }
        Ok(zone)
    }

    /// Turns on deliberately broken protocol variants (simulator tests only).
    pub fn set_bugs(&mut self, bugs: Bugs) {
        self.bugs = bugs;
    }

    pub fn id(&self) -> ZoneID {
        self.id
    }

    pub fn rect(&self) -> Rect {
        self.world.zone_rect(self.id)
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Ticks run so far.
    pub fn tick_count(&self) -> u64 {
        self.tick
    }

    pub fn entities(&self) -> &Entities {
        &self.entities
    }

    pub fn ghosts(&self) -> &Ghosts {
        &self.ghosts
    }

    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    pub fn borders(&self) -> &Borders {
        &self.borders
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Entities relinquished and not yet confirmed by DONE.
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// Ids of entities relinquished and not yet confirmed by DONE, with their new epoch.
    pub fn tombstones(&self) -> impl Iterator<Item = (EntityID, u32)> + '_ {
        self.tombstones
            .iter()
            .map(|(id, t)| (*id, t.commit.transfer.epoch.get()))
    }

    /// OFFERs awaiting an answer.
    pub fn pending_offer_count(&self) -> usize {
        self.offers.len()
    }

    /// Entities staged for arrival.
    pub fn staged_count(&self) -> usize {
        self.staged.len()
    }

    /// Datagrams dropped because the inbox or outbox was full: (in, out).
    pub fn datagram_drops(&self) -> (u64, u64) {
        (self.inbox.dropped, self.outbox.dropped)
    }

    /// Refuses new arrivals from now on (NACK `ShuttingDown`); transfers under way finish.
    pub fn shut_down(&mut self) {
        self.shutting_down = true;
    }

    /// Creates a new entity owned by this zone, with an id minted here, at epoch 0, and
    /// logs it (a spawn must survive a crash like an adoption does).
    pub fn spawn(
        &mut self,
        position: [f32; 3],
        velocity: [f32; 2],
        speed_mps_max: f32,
        kind: u16,
    ) -> Result<EntityID, InsertError> {
        if self.log.len() == self.log.capacity() {
            return Err(InsertError::Full);
        }
        let id = EntityID::new(self.id, self.next_entity_counter);
        let entity = EntityInit {
            id,
            epoch: 0,
            position,
            velocity,
            speed_mps_max,
            kind,
            flags: 0,
            payload: [0; PAYLOAD_SIZE],
        };
        self.entities.insert(&entity)?;
        self.log.push(LogRecord::Spawn { entity });
        self.remember(id, 0);
        self.next_entity_counter += 1;
        Ok(id)
    }

    /// Inserts an entity with a known id and epoch without logging it (tests, benches,
    /// and drivers that persist entities by other means).
    pub fn insert(&mut self, init: &EntityInit) -> Result<u32, InsertError> {
        self.entities.insert(init)
    }

    /// Removes an owned entity without a transfer (it is destroyed), returning its last
    /// state. A pending OFFER for it is dropped.
    pub fn remove(&mut self, id: EntityID) -> Option<EntityInit> {
        let slot = self.entities.slot_of(id)?;
        self.offers.remove(&id);
        self.sessions.remove(&id);
        Some(self.remove_slot(slot))
    }

    fn remove_slot(&mut self, slot: u32) -> EntityInit {
        let (removed, moved_from) = self.entities.swap_remove(slot);
        self.grid.swap_remove(slot, moved_from);
        removed
    }

    /// Binds a client session to owned avatar `id` (or updates it): the binding travels
    /// in the COMMIT that hands the avatar off. `false` if `id` is not owned here or the
    /// table is full.
    pub fn bind_session(&mut self, id: EntityID, binding: SessionBinding) -> bool {
        if self.entities.slot_of(id).is_none() {
            return false;
        }
        if self.sessions.len() >= SESSION_BINDINGS_MAX && !self.sessions.contains_key(&id) {
            self.counters.session_bindings_full += 1;
            return false;
        }
        self.sessions.insert(id, binding);
        true
    }

    /// Sessions that arrived or left with their avatars since the last call.
    pub fn drain_session_moves(&mut self) -> std::vec::Drain<'_, SessionMove> {
        self.session_moves.drain(..)
    }

    fn push_session_move(&mut self, m: SessionMove) {
        if self.session_moves.len() < self.session_moves.capacity() {
            self.session_moves.push(m);
        } else {
            self.counters.session_bindings_full += 1;
        }
    }

    /// Sets an entity's velocity (its movement intent); clamped to its speed limit by the
    /// next tick. Returns `false` if the entity is not here.
    pub fn set_velocity(&mut self, id: EntityID, vx: f32, vy: f32) -> bool {
        match self.entities.slot_of(id) {
            Some(slot) => {
                self.entities.set_velocity(slot, vx, vy);
                true
            }
            None => false,
        }
    }

    /// Sets the velocity of the entity at `slot` (for per-slot steering passes).
    pub fn set_velocity_slot(&mut self, slot: u32, vx: f32, vy: f32) {
        self.entities.set_velocity(slot, vx, vy);
    }

    /// When the next tick is due. Retransmits and timeouts are counted in ticks, so this
    /// is the only deadline.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick_at
    }

    /// Queues a datagram for the next tick. Nothing is parsed or applied here.
    pub fn handle_datagram(&mut self, _now: Instant, from: Peer, datagram: &[u8]) {
        self.inbox.push(from, datagram);
    }

    /// The next datagram to send, written into `buf` (at least 1,200 bytes). Call after
    /// the tick's log records are durable (see [`Zone::drain_log`]).
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        assert!(buf.len() >= DATAGRAM_SIZE_MAX);
        self.outbox.poll(buf)
    }

    /// The next event (arrival, departure, …).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The log records written since the last drain, oldest first. The driver must make
    /// them durable before it sends this tick's datagrams.
    pub fn drain_log(&mut self) -> std::vec::Drain<'_, LogRecord> {
        self.log.drain(..)
    }

    /// Runs one fixed step. See the module docs for the order.
    ///
    /// The step is always `1 / tick_rate_hz` of simulated time; `now` only schedules the
    /// next one. A driver that fell behind sees a deadline in the past and ticks again.
    pub fn tick(&mut self, now: Instant) {
        self.tick += 1;
        self.ingest();

        let dt = self.tick_duration.as_secs_f32();
        let bounds = self.world.bounds();
        self.entities.integrate(dt, bounds);
        let len = self.entities.len();
        let (x, y) = self.entities.position_lanes();
        self.grid.update(x, y, len);
        border_pass(x, y, len, &self.borders, &mut self.border_output);

        self.start_offers();
        self.advance_offers();
        self.retransmit_commits();
        self.expire_staged();
        self.send_ghosts();
        self.counters.ghosts_expired += self
            .ghosts
            .expire(self.tick, u64::from(self.config.ghost_ttl_ticks));
        self.ghosts.update_grid();
        if self.tick.is_multiple_of(EPOCH_SWEEP_TICKS) {
            self.sweep_epoch_memory();
        }
        self.outbox.close();

        self.next_tick_at = self
            .next_tick_at
            .max(now.saturating_sub(self.tick_duration))
            + self.tick_duration;
        #[cfg(feature = "verify")]
        self.entities.verify();
    }

    // ---- ingest -------------------------------------------------------------------------

    /// Applies the inbox, one message kind at a time.
    fn ingest(&mut self) {
        // Taken out so the handlers can borrow `self` mutably; `Inbox::new(0)` allocates nothing.
        let inbox = core::mem::replace(&mut self.inbox, Inbox::new(0));
        for kind in [
            Kind::Done,
            Kind::Nack,
            Kind::Ack,
            Kind::Commit,
            Kind::Offer,
            Kind::Ghosts,
        ] {
            for index in 0..inbox.len() {
                let (from, datagram) = inbox.get(index);
                let framed = for_each_packet(datagram, |k, packet| {
                    if k == kind as u8 {
                        self.handle_packet(from, kind, packet);
                    } else if kind == Kind::Done && !is_zone_kind(k) {
                        // Counted once, in the first pass.
                        self.counters.bad_packets += 1;
                    }
                });
                if !framed && kind == Kind::Done {
                    self.counters.bad_datagrams += 1;
                }
            }
        }
        // Nothing pushes into the placeholder during ingest: put the real inbox back.
        self.inbox = inbox;
        self.inbox.clear();
    }

    fn handle_packet(&mut self, from: Peer, kind: Kind, packet: &[u8]) {
        let handled = match kind {
            Kind::Offer => parse::<Offer>(packet).map(|m| self.handle_offer(from, m)),
            Kind::Ack => parse::<Ack>(packet).map(|m| self.handle_ack(from, m)),
            Kind::Nack => parse::<Nack>(packet).map(|m| self.handle_nack(from, m)),
            Kind::Commit => parse::<Commit>(packet).map(|m| self.handle_commit(from, m)),
            Kind::Done => parse::<Done>(packet).map(|m| self.handle_done(from, m)),
            Kind::Ghosts => parse_ghosts(packet).map(|(h, r)| self.handle_ghosts(from, h, r)),
            // Client traffic is the session layer's (`crate::session`), not the zone's.
            Kind::Connect
            | Kind::Challenge
            | Kind::Response
            | Kind::Accept
            | Kind::Refuse
            | Kind::Disconnect
            | Kind::Snapshot
            | Kind::Delta
            | Kind::Envelope => Ok(false),
        };
        if handled != Ok(true) {
            self.counters.bad_packets += 1;
        }
    }

    /// `true` if `from` is the zone the message says it comes from, and the message is
    /// addressed to this zone.
    fn addressed(&self, from: Peer, sender: &U32Le, receiver: &U32Le) -> bool {
        from == Peer::Zone(ZoneID(sender.get())) && receiver.get() == self.id.0
    }

    fn handle_offer(&mut self, from: Peer, offer: &Offer) -> bool {
        let t = offer.transfer;
        if !self.addressed(from, &t.source_zone, &t.target_zone) {
            return false;
        }
        self.counters.offers_received += 1;
        let id = EntityID(t.entity_id.get());
        let epoch = t.epoch.get();
        let source = ZoneID(t.source_zone.get());
        if !self.borders.neighbours().contains(&source) {
            self.send_nack(&t, NackReason::Unknown);
            return true;
        }
        if self.shutting_down {
            self.send_nack(&t, NackReason::ShuttingDown);
            return true;
        }
        if self.bugs.adopt_on_offer {
            // BROKEN ON PURPOSE: the target owns the entity while the source still does.
            if self.entities.slot_of(id).is_none() {
                let _ = self.entities.insert(&entity_of(&t, &offer.state));
            }
            self.send_ack(&t);
            return true;
        }
        if !self.bugs.ignore_epochs && self.known_epoch(id).is_some_and(|known| known >= epoch) {
            self.counters.stale_epochs_ignored += 1;
            return true;
        }
        if let Some(staged) = self.staged.get(&id) {
            if staged.transfer.transfer_id == t.transfer_id
                && staged.transfer.source_zone == t.source_zone
            {
                // A retransmitted OFFER: our ACK was lost or is late. Answer again.
                self.counters.duplicates_ignored += 1;
                self.send_ack(&t);
                return true;
            }
            if staged.transfer.epoch.get() > epoch {
                self.counters.stale_epochs_ignored += 1;
                return true;
            }
        }
        let staged_here = usize::from(self.staged.contains_key(&id));
        let room = self.entities.len() + self.staged.len() - staged_here < self.entities.capacity();
        if !room {
            self.send_nack(&t, NackReason::Full);
            return true;
        }
        if staged_here == 0 && self.staged.len() == self.limits.staged_count_max as usize {
            self.counters.staged_table_full += 1;
            self.send_nack(&t, NackReason::Full);
            return true;
        }
        self.staged.insert(
            id,
            Staged {
                transfer: t,
                staged_tick: self.tick,
            },
        );
        self.send_ack(&t);
        true
    }

    fn send_ack(&mut self, t: &Transfer) {
        self.send(
            ZoneID(t.source_zone.get()),
            bytemuck::bytes_of(&Ack::new(*t)),
        );
        self.counters.acks_sent += 1;
    }

    fn send_done(&mut self, t: &Transfer) {
        self.send(
            ZoneID(t.source_zone.get()),
            bytemuck::bytes_of(&Done::new(*t)),
        );
        self.counters.dones_sent += 1;
    }

    fn send_nack(&mut self, t: &Transfer, reason: NackReason) {
        let source = ZoneID(t.source_zone.get());
        self.send(source, bytemuck::bytes_of(&Nack::new(*t, reason)));
        self.counters.nacks_sent += 1;
    }

    fn handle_ack(&mut self, from: Peer, ack: &Ack) -> bool {
        let t = ack.transfer;
        if !self.addressed(from, &t.target_zone, &t.source_zone) {
            return false;
        }
        self.counters.acks_received += 1;
        let id = EntityID(t.entity_id.get());
        match self.offers.get(&id) {
            Some(p) if p.transfer.transfer_id == t.transfer_id => self.relinquish(id),
            // Late or duplicated: the transfer was aborted or already committed.
            _ => self.counters.duplicates_ignored += 1,
        }
        true
    }

    /// S side, on ACK: log, stop owning, keep a tombstone, send COMMIT — in that order.
    fn relinquish(&mut self, id: EntityID) {
        let offer = self.offers.remove(&id).expect("caller checked the offer");
        let slot = self
            .entities
            .slot_of(id)
            .expect("an offered entity is owned until COMMIT");
        let target = ZoneID(offer.transfer.target_zone.get());
        let epoch = offer.transfer.epoch.get();
        let full = if self.tombstones.len() == self.limits.tombstone_count_max as usize {
            self.counters.tombstones_table_full += 1;
            true
        } else if !self.epochs.contains_key(&id)
            && self.epochs.len() == self.limits.epoch_memory_count_max as usize
        {
            self.counters.epoch_memory_full += 1;
            true
        } else {
            self.log.len() == self.log.capacity()
        };
        if full {
            // Cannot relinquish safely: abort (we still own it) and let T's stage expire.
            self.abort(id, &offer, AbortReason::Nack);
            return;
        }
        let entity = self.remove_slot(slot);
        let binding = self.sessions.remove(&id).unwrap_or(NO_SESSION);
        if binding.session_id.get() != 0 {
            self.push_session_move(SessionMove::Left {
                id,
                to: target,
                binding,
            });
        }
        let commit = Commit::new(offer.transfer, self.tick, state_of(&entity), binding);
        self.log.push(LogRecord::Relinquish { commit });
        self.remember(id, epoch);
        self.tombstones.insert(
            id,
            Tombstone {
                commit,
                next_retransmit_tick: self.tick + backoff(&self.config, 1),
                attempts: 1,
                started_tick: offer.started_tick,
            },
        );
        self.send(target, bytemuck::bytes_of(&commit));
        self.counters.commits_sent += 1;
        self.emit(Event::Relinquished {
            id,
            to: target,
            epoch,
            transfer_id: offer.transfer.transfer_id.get(),
        });
    }

    fn handle_nack(&mut self, from: Peer, nack: &Nack) -> bool {
        let t = nack.transfer;
        if !self.addressed(from, &t.target_zone, &t.source_zone) {
            return false;
        }
        self.counters.nacks_received += 1;
        let id = EntityID(t.entity_id.get());
        match self.offers.get(&id) {
            Some(p) if p.transfer.transfer_id == t.transfer_id => {
                let offer = self.offers.remove(&id).expect("just looked up");
                if let Some(slot) = self.entities.slot_of(id) {
                    self.entities
                        .hold_until(slot, self.tick + u64::from(self.config.nack_backoff_ticks));
                }
                self.abort(id, &offer, AbortReason::Nack);
            }
            _ => self.counters.duplicates_ignored += 1,
        }
        true
    }

    fn abort(&mut self, id: EntityID, offer: &PendingOffer, reason: AbortReason) {
        self.counters.aborts += 1;
        self.emit(Event::Aborted {
            id,
            to: ZoneID(offer.transfer.target_zone.get()),
            transfer_id: offer.transfer.transfer_id.get(),
            reason,
        });
    }

    fn handle_commit(&mut self, from: Peer, commit: &Commit) -> bool {
        let t = commit.transfer;
        if !self.addressed(from, &t.source_zone, &t.target_zone) {
            return false;
        }
        self.counters.commits_received += 1;
        let id = EntityID(t.entity_id.get());
        let epoch = t.epoch.get();
        let source = ZoneID(t.source_zone.get());
        let known = self.known_epoch(id);
        if self.bugs.ignore_epochs {
            // BROKEN ON PURPOSE: only "already here" is checked, not the epoch.
            if self.entities.slot_of(id).is_some() {
                self.counters.duplicates_ignored += 1;
                self.send_done(&t);
                return true;
            }
        } else if let Some(known) = known
            && known >= epoch
        {
            // Epochs form a chain: knowing this epoch or a later one means we adopted it.
            if known == epoch {
                self.counters.duplicates_ignored += 1;
            } else {
                self.counters.stale_epochs_ignored += 1;
            }
            self.send_done(&t);
            return true;
        }
        if self.entities.len() == self.entities.capacity() {
            self.counters.commits_refused_full += 1;
            return true;
        }
        if !self.epochs.contains_key(&id)
            && self.epochs.len() == self.limits.epoch_memory_count_max as usize
        {
            self.counters.epoch_memory_full += 1;
            return true;
        }
        if self.log.len() == self.log.capacity() {
            return true;
        }
        let entity = entity_of(&t, &commit.state);
        self.log.push(LogRecord::Adopt {
            entity,
            from: source,
            transfer_id: t.transfer_id.get(),
        });
        self.staged.remove(&id);
        self.ghosts.remove(id);
        if let Some(slot) = self.entities.slot_of(id) {
            // Only reachable with `ignore_epochs`: a stale copy replaces a newer one.
            self.remove_slot(slot);
        }
        let slot = self.entities.insert(&entity).expect("room was checked");
        self.entities
            .hold_until(slot, self.tick + u64::from(self.config.cooldown_ticks));
        self.remember(id, epoch);
        if let Some(tomb) = self.tombstones.remove(&id) {
            // We relinquished it earlier and never got DONE; it came back at a later epoch,
            // so that transfer completed.
            let old = tomb.commit.transfer;
            self.counters.departures += 1;
            self.emit(Event::Departed {
                id,
                to: ZoneID(old.target_zone.get()),
                epoch: old.epoch.get(),
                transfer_id: old.transfer_id.get(),
                ticks: self.tick.saturating_sub(tomb.started_tick),
                superseded: true,
            });
        }
        if commit.session.session_id.get() != 0 {
            let binding = commit.session;
            if self.sessions.len() < SESSION_BINDINGS_MAX {
                self.sessions.insert(id, binding);
            } else {
                self.counters.session_bindings_full += 1;
            }
            self.push_session_move(SessionMove::Arrived { id, binding });
        }
        self.send_done(&t);
        self.counters.arrivals += 1;
        self.emit(Event::Arrived {
            id,
            from: source,
            epoch,
            transfer_id: t.transfer_id.get(),
        });
        true
    }

    fn handle_done(&mut self, from: Peer, done: &Done) -> bool {
        let t = done.transfer;
        if !self.addressed(from, &t.target_zone, &t.source_zone) {
            return false;
        }
        self.counters.dones_received += 1;
        let id = EntityID(t.entity_id.get());
        match self.tombstones.get(&id) {
            Some(tomb) if tomb.commit.transfer.transfer_id == t.transfer_id => {
                if self.log.len() == self.log.capacity() {
                    // Cannot record it durably: keep the tombstone; the next COMMIT
                    // retransmit draws another DONE.
                    return true;
                }
                self.log.push(LogRecord::Done {
                    id,
                    transfer_id: t.transfer_id.get(),
                });
                let tomb = self.tombstones.remove(&id).expect("just looked up");
                self.counters.departures += 1;
                self.emit(Event::Departed {
                    id,
                    to: ZoneID(t.target_zone.get()),
                    epoch: t.epoch.get(),
                    transfer_id: t.transfer_id.get(),
                    ticks: self.tick.saturating_sub(tomb.started_tick),
                    superseded: false,
                });
            }
            _ => self.counters.duplicates_ignored += 1,
        }
        true
    }

    fn handle_ghosts(&mut self, from: Peer, head: &GhostsHeader, records: &[GhostRecord]) -> bool {
        let source = ZoneID(head.source_zone.get());
        if from != Peer::Zone(source) || !self.borders.neighbours().contains(&source) {
            return false;
        }
        for r in records {
            let id = EntityID(r.id.get());
            let epoch = r.epoch.get();
            let ghost = EntityInit {
                id,
                epoch,
                position: [
                    r.position[0].get(),
                    r.position[1].get(),
                    r.position[2].get(),
                ],
                velocity: [r.velocity[0].get(), r.velocity[1].get()],
                speed_mps_max: 0.0,
                kind: r.kind.get(),
                flags: r.flags.get(),
                payload: [0; PAYLOAD_SIZE],
            };
            // A refresh (the common case) needs one lookup: an id is never both owned
            // and a ghost here (adopting removes the ghost), so the ghost's epoch fences.
            let outcome = match self.ghosts.refresh(self.tick, source, &ghost) {
                Some(outcome) => outcome,
                None => {
                    // A new ghost: our own entity, or one we know at a newer epoch, is stale.
                    let stale = self.entities.slot_of(id).is_some()
                        || self.known_epoch(id).is_some_and(|k| k > epoch);
                    if stale && !self.bugs.ignore_epochs {
                        Upsert::Stale
                    } else {
                        self.ghosts.upsert(self.tick, source, &ghost)
                    }
                }
            };
            match outcome {
                Upsert::Inserted | Upsert::Refreshed => self.counters.ghosts_received += 1,
                Upsert::Stale => self.counters.stale_epochs_ignored += 1,
                Upsert::Full => self.counters.ghosts_table_full += 1,
            }
        }
        true
    }

    // ---- handoff state machines -----------------------------------------------------------

    /// Starts an OFFER for every crossing that has none, and marks the ones that do.
    fn start_offers(&mut self) {
        let tick = self.tick;
        for index in 0..self.border_output.crossings().len() {
            let Crossing { slot, target } = self.border_output.crossings()[index];
            let id = self.entities.ids()[slot as usize];
            if let Some(p) = self.offers.get_mut(&id) {
                if p.transfer.target_zone.get() == target.0 {
                    p.seen_tick = tick;
                }
                continue;
            }
            if self.entities.holds()[slot as usize] > tick {
                continue;
            }
            if self.offers.len() == self.limits.offer_count_max as usize {
                self.counters.offers_table_full += 1;
                continue;
            }
            let epoch = self.entities.epochs()[slot as usize] + 1;
            let transfer_id =
                (u64::from(self.incarnation) << TRANSFER_COUNTER_BITS) | self.next_transfer_counter;
            self.next_transfer_counter += 1;
            let t = transfer(id, epoch, self.id, target, transfer_id);
            let state = state_of(&self.entities.get(slot));
            self.offers.insert(
                id,
                PendingOffer {
                    transfer: t,
                    started_tick: tick,
                    next_retransmit_tick: tick + backoff(&self.config, 1),
                    attempts: 1,
                    seen_tick: tick,
                },
            );
            self.send(target, bytemuck::bytes_of(&Offer::new(t, tick, state)));
            self.counters.offers_sent += 1;
            self.emit(Event::Offered {
                id,
                to: target,
                epoch,
                transfer_id,
            });
        }
    }

    /// Aborts OFFERs whose entity came back or that timed out; retransmits the rest.
    fn advance_offers(&mut self) {
        let tick = self.tick;
        let timeout = u64::from(self.config.offer_timeout_ticks);
        let config = self.config;
        let Zone {
            offers,
            entities,
            outbox,
            counters,
            events,
            ..
        } = self;
        offers.retain(|&id, p| {
            let reason = if p.seen_tick != tick {
                Some(AbortReason::CameBack)
            } else if tick >= p.started_tick + timeout {
                Some(AbortReason::Timeout)
            } else {
                None
            };
            let target = ZoneID(p.transfer.target_zone.get());
            if let Some(reason) = reason {
                counters.aborts += 1;
                push_event(
                    events,
                    counters,
                    Event::Aborted {
                        id,
                        to: target,
                        transfer_id: p.transfer.transfer_id.get(),
                        reason,
                    },
                );
                return false;
            }
            if tick >= p.next_retransmit_tick {
                let slot = entities.slot_of(id).expect("an offered entity is owned");
                let offer = Offer::new(p.transfer, tick, state_of(&entities.get(slot)));
                outbox.push(Peer::Zone(target), bytemuck::bytes_of(&offer));
                p.attempts += 1;
                p.next_retransmit_tick = tick + backoff(&config, p.attempts);
                counters.retransmits += 1;
                counters.offers_sent += 1;
            }
            true
        });
    }

    /// Sends COMMIT again for every tombstone whose DONE is overdue. Forever: there is no
    /// abort after COMMIT.
    fn retransmit_commits(&mut self) {
        let tick = self.tick;
        let config = self.config;
        let Zone {
            tombstones,
            outbox,
            counters,
            ..
        } = self;
        for tomb in tombstones.values_mut() {
            if tick >= tomb.next_retransmit_tick {
                let target = ZoneID(tomb.commit.transfer.target_zone.get());
                outbox.push(Peer::Zone(target), bytemuck::bytes_of(&tomb.commit));
                tomb.attempts += 1;
                tomb.next_retransmit_tick = tick + backoff(&config, tomb.attempts);
                counters.retransmits += 1;
                counters.commits_sent += 1;
            }
        }
    }

    fn expire_staged(&mut self) {
        let deadline = u64::from(self.config.staged_timeout_ticks);
        let tick = self.tick;
        self.staged.retain(|_, s| tick < s.staged_tick + deadline);
    }

    /// Sends each neighbour the entities inside its aura, in batches of one datagram.
    fn send_ghosts(&mut self) {
        if !self
            .tick
            .is_multiple_of(u64::from(self.config.ghost_interval_ticks.max(1)))
        {
            return;
        }
        const PER_PACKET: usize = records_per_datagram(DATAGRAM_SIZE_MAX);
        let head = GhostsHeader {
            source_zone: U32Le::new(self.id.0),
            tick: U64Le::new(self.tick),
            record_count: U16Le::new(0),
        };
        let mut records: [GhostRecord; PER_PACKET] = [bytemuck::Zeroable::zeroed(); PER_PACKET];
        let mut buf = [0u8; DATAGRAM_SIZE_MAX];
        for k in 0..self.borders.neighbours().len() {
            let neighbour = self.borders.neighbours()[k];
            for chunk in self.border_output.aura(k).chunks(PER_PACKET) {
                for (record, &slot) in records.iter_mut().zip(chunk) {
                    let s = slot as usize;
                    let e = &self.entities;
                    *record = GhostRecord {
                        id: U64Le::new(e.ids()[s].0),
                        epoch: U32Le::new(e.epochs()[s]),
                        position: [
                            F32Le::new(e.xs()[s]),
                            F32Le::new(e.ys()[s]),
                            F32Le::new(e.z(slot)),
                        ],
                        velocity: [F32Le::new(e.vxs()[s]), F32Le::new(e.vys()[s])],
                        kind: U16Le::new(e.kind(slot)),
                        flags: U16Le::new(e.flags(slot)),
                    };
                }
                let len =
                    write_ghosts(&mut buf, &head, &records[..chunk.len()]).expect("sized to fit");
                self.outbox.push(Peer::Zone(neighbour), &buf[..len]);
                self.counters.ghost_batches_sent += 1;
            }
        }
    }

    /// Forgets the epochs of entities that left more than `epoch_memory_ticks` ago.
    fn sweep_epoch_memory(&mut self) {
        let keep = u64::from(self.config.epoch_memory_ticks);
        let tick = self.tick;
        let Zone {
            epochs,
            entities,
            tombstones,
            ..
        } = self;
        epochs.retain(|id, (_, at)| {
            tick < *at + keep || entities.slot_of(*id).is_some() || tombstones.contains_key(id)
        });
    }

    // ---- helpers ------------------------------------------------------------------------

    /// The highest epoch this zone knows for `id`: owned, tombstoned or remembered.
    pub fn known_epoch(&self, id: EntityID) -> Option<u32> {
        let owned = self
            .entities
            .slot_of(id)
            .map(|slot| self.entities.epochs()[slot as usize]);
        let remembered = self.epochs.get(&id).map(|e| e.0);
        let tombstoned = self
            .tombstones
            .get(&id)
            .map(|t| t.commit.transfer.epoch.get());
        owned.max(remembered).max(tombstoned)
    }

    fn remember(&mut self, id: EntityID, epoch: u32) {
        let tick = self.tick;
        let entry = self.epochs.entry(id).or_insert((epoch, tick));
        entry.0 = entry.0.max(epoch);
        entry.1 = tick;
    }

    fn send(&mut self, to: ZoneID, packet: &[u8]) {
        self.outbox.push(Peer::Zone(to), packet);
    }

    fn emit(&mut self, event: Event) {
        push_event(&mut self.events, &mut self.counters, event);
    }

    /// Entities past a border by more than the margin, as of the last tick.
    pub fn crossings(&self) -> &[Crossing] {
        self.border_output.crossings()
    }

    /// For each neighbour, the slots of entities inside its aura, as of the last tick.
    pub fn aura(&self) -> impl Iterator<Item = (ZoneID, &[u32])> {
        self.borders
            .neighbours()
            .iter()
            .enumerate()
            .map(|(k, &n)| (n, self.border_output.aura(k)))
    }

    /// Border-list entries dropped at the limits so far: (crossings, aura members).
    pub fn border_drops(&self) -> (u64, u64) {
        (
            self.border_output.crossings_dropped,
            self.border_output.aura_dropped,
        )
    }

    /// Calls `f(slot)` for every owned entity within `radius_m` of `(x, y)`, as indexed at
    /// the last tick.
    pub fn query_radius(&self, x: f32, y: f32, radius_m: f32, f: impl FnMut(u32)) {
        self.grid
            .for_each_in_radius(self.entities.xs(), self.entities.ys(), x, y, radius_m, f);
    }

    /// Calls `f(slot)` for every ghost within `radius_m` of `(x, y)`.
    pub fn query_ghosts_radius(&self, x: f32, y: f32, radius_m: f32, f: impl FnMut(u32)) {
        self.ghosts.query_radius(x, y, radius_m, f);
    }
}

fn table<V>(capacity: u32) -> FxHashMap<EntityID, V> {
    FxHashMap::with_capacity_and_hasher(capacity as usize, Default::default())
}

fn push_event(events: &mut VecDeque<Event>, counters: &mut Counters, event: Event) {
    if events.len() == events.capacity() {
        counters.events_dropped += 1;
    } else {
        events.push_back(event);
    }
}

fn is_zone_kind(kind: u8) -> bool {
    matches!(
        Kind::from_u8(kind),
        Some(Kind::Offer | Kind::Ack | Kind::Nack | Kind::Commit | Kind::Done | Kind::Ghosts)
    )
}
