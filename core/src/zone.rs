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

use meridian_layouts::ghosts::parse_ghosts;
use meridian_layouts::handoff::{Ack, Confirm, Done, Nack, SessionBinding};
use meridian_layouts::messages::parse_messages;
use meridian_layouts::watch::parse_watch;
use meridian_layouts::wire::{decode_commit, decode_offer};
use meridian_layouts::{Kind, U32Le, parse};
use rustc_hash::FxHashMap;

use crate::borders::{BorderOutput, Borders, Crossing, border_pass};
use crate::entities::{Entities, EntityID, EntityInit, InsertError};
use crate::ghosts::Ghosts;
use crate::ghosts::watch::Watch;
use crate::grid::Grid;
use crate::handoff::{
    Counters, Event, HandoffConfig, LogRecord, PendingOffer, Staged, Tombstone, Unconfirmed,
};
use crate::limits::{DATAGRAM_SIZE_MAX, Limits, LimitsError};
use crate::net::{Inbox, Outbox, Peer, Transmit, for_each_packet};
use crate::time::Instant;
use crate::world::{Rect, World, ZoneID};
use meridian_layouts::handoff::STATE_SIZE;

pub use crate::bugs::Bugs;

/// Ticks between sweeps of the epoch memory for expired entries.
const EPOCH_SWEEP_TICKS: u64 = 64;

/// Transfer ids: the zone's incarnation in the high bits, a counter in the low 40.
pub(crate) const TRANSFER_COUNTER_BITS: u32 = 40;

/// One zone. See the module docs.
#[derive(Debug)]
pub struct Zone {
    pub(crate) id: ZoneID,
    pub(crate) world: World,
    pub(crate) limits: Limits,
    pub(crate) config: HandoffConfig,
    pub(crate) entities: Entities,
    pub(crate) grid: Grid,
    /// Where this zone's entities may be: its rectangle grown by the aura, inside the
    /// world. Movement clamps to it, so an entity whose neighbour zone is down (its
    /// handoff cannot complete) waits at the border instead of walking through that zone
    /// into one this zone cannot hand it to.
    pub(crate) reach: Rect,
    pub(crate) borders: Borders,
    pub(crate) border_output: BorderOutput,
    pub(crate) ghosts: Ghosts,
    pub(crate) watch: Watch,
    pub(crate) offers: FxHashMap<EntityID, PendingOffer>,
    pub(crate) tombstones: FxHashMap<EntityID, Tombstone>,
    pub(crate) staged: FxHashMap<EntityID, Staged>,
    /// Adoptions whose CONFIRM has not come, by (source zone, transfer id).
    pub(crate) unconfirmed: FxHashMap<(ZoneID, u64), Unconfirmed>,
    /// Highest epoch known per entity, and the tick it was recorded.
    pub(crate) epochs: FxHashMap<EntityID, (u32, u64)>,
    pub(crate) inbox: Inbox,
    pub(crate) outbox: Outbox,
    pub(crate) events: VecDeque<Event>,
    pub(crate) log: Vec<LogRecord>,
    pub(crate) counters: Counters,
    pub(crate) tick: u64,
    pub(crate) tick_duration: Duration,
    pub(crate) next_tick_at: Instant,
    pub(crate) next_entity_counter: u64,
    pub(crate) incarnation: u32,
    pub(crate) next_transfer_counter: u64,
    pub(crate) shutting_down: bool,
    pub(crate) bugs: Bugs,
    /// Client sessions bound to owned avatars; carried in COMMIT (docs/protocol.md).
    pub(crate) sessions: FxHashMap<EntityID, SessionBinding>,
    /// Their clients' unacknowledged game events (`game::events`); carried in COMMIT.
    pub(crate) game_events: FxHashMap<EntityID, meridian_layouts::handoff::EventBacklog>,
    /// Sessions that arrived with an avatar or left with one, for the session layer.
    pub(crate) session_moves: Vec<SessionMove>,
    /// The newest incarnation heard of per peer zone: datagrams from older ones are
    /// fenced off ([`Zone::handle_zone_datagram`]).
    pub(crate) peer_incarnations: FxHashMap<ZoneID, u32>,
    /// Position histories for lag compensation, once enabled ([`crate::queries`]).
    pub(crate) rewind: Option<Box<crate::queries::Rewind>>,
    pub(crate) game: Option<Box<crate::game::GameSlot>>,
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
    /// The zone's last run was handing avatar `id` to `to` as it stopped (a restored
    /// tombstone; that tick's datagrams may never have left): the client may not know.
    /// Serve it as a session that left: where the zone runs now, then a REDIRECT to `to`.
    InFlight {
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
        let bounds = world.bounds();
        let reach = Rect::new(
            area.x_min.max(bounds.x_min),
            area.y_min.max(bounds.y_min),
            area.x_max.min(bounds.x_max),
            area.y_max.min(bounds.y_max),
        );
        let cell_size_m = world.config().cell_size_m;
        let grid = Grid::covering(area, cell_size_m, entities.capacity());
        let ghost_area = area
            .expand(config.watch.radius_m)
            .clip(&bounds.expand(world.aura_m()));
        Ok(Zone {
            id,
            world: *world,
            limits,
            config,
            entities,
            grid,
            reach,
            borders: Borders::new(world, id),
            border_output: BorderOutput::new(&limits),
            // Watched ghosts lie up to the watch radius past the border.
            ghosts: Ghosts::new(&limits, ghost_area, cell_size_m),
            watch: Watch::new(world, id, config.watch),
            offers: table(limits.offer_count_max),
            tombstones: table(limits.tombstone_count_max),
            staged: table(limits.staged_count_max),
            unconfirmed: FxHashMap::with_capacity_and_hasher(
                limits.unconfirmed_count_max as usize,
                Default::default(),
            ),
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
            game_events: FxHashMap::default(),
            session_moves: Vec::with_capacity(1024),
            peer_incarnations: FxHashMap::default(),
            rewind: None,
            game: None,
        })
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

    /// Adoptions whose source has not yet CONFIRMed them (their COMMIT is still
    /// recognised and answered with DONE).
    pub fn unconfirmed_count(&self) -> usize {
        self.unconfirmed.len()
    }

    /// The adoptions awaiting CONFIRM: (source zone, transfer id).
    pub fn unconfirmed(&self) -> impl Iterator<Item = (ZoneID, u64)> + '_ {
        self.unconfirmed.keys().copied()
    }

    /// Entities relinquished and not yet confirmed by DONE: id, the epoch they were handed
    /// off at, and their kind.
    pub fn tombstones(&self) -> impl Iterator<Item = (EntityID, u32, u16)> + '_ {
        self.tombstones.iter().map(|(id, t)| {
            (
                *id,
                t.commit.transfer.epoch.get(),
                t.commit.state.kind.get(),
            )
        })
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
        if self.log.len() >= self.log.capacity() {
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
            payload: [0; STATE_SIZE],
        };
        self.entities.insert(&entity)?;
        self.note(crate::game::Note::Spawned(id));
        self.log.push(LogRecord::Spawn { entity });
        // No epoch-memory entry: an owned entity's epoch is in its column (`known_epoch`
        // reads both); the memory is for entities that left, bounded and checked there.
        self.next_entity_counter += 1;
        Ok(id)
    }

    /// Inserts an entity with a known id and epoch without logging it (tests, benches,
    /// and drivers that persist entities by other means).
    pub fn insert(&mut self, init: &EntityInit) -> Result<u32, InsertError> {
        self.entities.insert(init)
    }

    /// Removes an owned entity without a transfer (it is destroyed), returning its last
    /// state. A pending OFFER for it is dropped. The removal is logged: a zone restored
    /// from its log does not bring the entity back. `None` if the entity is not owned
    /// here, or if the tick's log is full (counted in `log_full`; try again next tick).
    pub fn remove(&mut self, id: EntityID) -> Option<EntityInit> {
        let slot = self.entities.slot_of(id)?;
        if self.log.len() >= self.log.capacity() {
            self.counters.log_full += 1;
            return None;
        }
        self.log.push(LogRecord::Remove { id });
        self.note(crate::game::Note::Removed(id));
        self.offers.remove(&id);
        self.sessions.remove(&id);
        self.game_events.remove(&id);
        Some(self.remove_slot(slot))
    }

    /// Logs that this zone starts as its incarnation: the first record of every run.
    pub fn log_incarnation(&mut self) {
        if self.log.len() < self.log.capacity() {
            self.log.push(LogRecord::Incarnation {
                incarnation: self.incarnation,
                zone: self.id,
            });
        }
    }

    /// The zone's incarnation (this run of it).
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    pub(crate) fn remove_slot(&mut self, slot: u32) -> EntityInit {
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
        let known = self.sessions.get(&id);
        if self.sessions.len() >= SESSION_BINDINGS_MAX && known.is_none() {
            self.counters.session_bindings_full += 1;
            return false;
        }
        // A new session is logged (a restored zone serves it again); updates of the same
        // session (its applied input sequence, every tick) are not.
        if known.is_none_or(|k| k.session_id != binding.session_id) {
            if self.log.len() >= self.log.capacity() {
                self.counters.log_full += 1;
                return false;
            }
            self.log.push(LogRecord::SessionBind { id, binding });
        }
        self.sessions.insert(id, binding);
        true
    }

    /// Updates what changes every tick in avatar `id`'s binding — the input the zone
    /// applied last, the newest client packet it took — in place (not logged, as any update
    /// of a known session). `false` if the avatar has no binding here.
    pub fn update_session_progress(&mut self, id: EntityID, input: u32, packet: u64) -> bool {
        let Some(b) = self.sessions.get_mut(&id) else {
            return false;
        };
        b.input_sequence = U32Le::new(input);
        b.packet_sequence = meridian_layouts::U64Le::new(packet);
        true
    }

    /// Sessions that arrived or left with their avatars since the last call.
    pub fn drain_session_moves(&mut self) -> std::vec::Drain<'_, SessionMove> {
        self.session_moves.drain(..)
    }

    pub(crate) fn push_session_move(&mut self, m: SessionMove) {
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
        self.run_game();

        let dt = self.tick_duration.as_secs_f32();
        self.entities.integrate(dt, self.reach);
        let len = self.entities.len();
        let (x, y) = self.entities.position_lanes();
        self.grid.update(x, y, len);
        border_pass(x, y, len, &self.borders, &mut self.border_output);

        self.start_offers();
        self.advance_offers();
        self.retransmit_commits();
        self.retransmit_dones();
        self.expire_staged();
        self.send_watch();
        self.send_ghosts();
        self.counters.ghosts_expired += self
            .ghosts
            .expire(self.tick, u64::from(self.config.ghost_ttl_ticks));
        self.ghosts.update_grid();
        self.record_history();
        if self.tick.is_multiple_of(EPOCH_SWEEP_TICKS) {
            self.sweep_epoch_memory();
        }
        self.outbox.close();

        self.next_tick_at = self.following_tick(now);
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
            Kind::Confirm,
            Kind::Nack,
            Kind::Ack,
            Kind::Commit,
            Kind::Offer,
            Kind::Ghosts,
            Kind::Watch,
            Kind::Messages,
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
            Kind::Offer => decode_offer(packet).map(|m| self.handle_offer(from, &m)),
            Kind::Ack => parse::<Ack>(packet).map(|m| self.handle_ack(from, m)),
            Kind::Nack => parse::<Nack>(packet).map(|m| self.handle_nack(from, m)),
            Kind::Commit => decode_commit(packet).map(|(m, e)| self.handle_commit(from, &m, &e)),
            Kind::Done => parse::<Done>(packet).map(|m| self.handle_done(from, m)),
            Kind::Confirm => parse::<Confirm>(packet).map(|m| self.handle_confirm(from, m)),
            Kind::Ghosts => {
                parse_ghosts(packet).map(|(h, r, st)| self.handle_ghosts(from, h, r, st))
            }
            Kind::Watch => parse_watch(packet).map(|(h, p)| self.handle_watch(from, h, p)),
            Kind::Messages => parse_messages(packet).map(|parts| self.handle_messages(from, parts)),
            // Client traffic is the session layer's (`crate::session`), not the zone's.
            Kind::Connect
            | Kind::Challenge
            | Kind::Response
            | Kind::Accept
            | Kind::Refuse
            | Kind::Disconnect
            | Kind::Snapshot
            | Kind::Delta
            | Kind::Sealed
            | Kind::Input
            | Kind::PathChallenge
            | Kind::PathResponse
            | Kind::View
            | Kind::Envelope => Ok(false),
        };
        if handled != Ok(true) {
            self.counters.bad_packets += 1;
        }
    }

    /// `true` if `from` is the zone the message says it comes from, and the message is
    /// addressed to this zone.
    pub(crate) fn addressed(&self, from: Peer, sender: &U32Le, receiver: &U32Le) -> bool {
        from == Peer::Zone(ZoneID(sender.get())) && receiver.get() == self.id.0
    }

    /// Forgets the epochs of entities that left more than `epoch_memory_ticks` ago, and of
    /// entities owned here.
    fn sweep_epoch_memory(&mut self) {
        let keep = u64::from(self.config.epoch_memory_ticks);
        let tick = self.tick;
        let Zone {
            epochs,
            entities,
            tombstones,
            ..
        } = self;
        // Owned entities need no entry (their column holds the epoch, and relinquishing
        // remembers it again); entries of entities that left expire after
        // `epoch_memory_ticks`, except while their COMMIT is unconfirmed.
        epochs.retain(|id, (_, at)| {
            tombstones.contains_key(id) || (tick < *at + keep && entities.slot_of(*id).is_none())
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

    pub(crate) fn remember(&mut self, id: EntityID, epoch: u32) {
        let tick = self.tick;
        let entry = self.epochs.entry(id).or_insert((epoch, tick));
        entry.0 = entry.0.max(epoch);
        entry.1 = tick;
    }

    pub(crate) fn send(&mut self, to: ZoneID, packet: &[u8]) {
        self.outbox.push(Peer::Zone(to), packet);
    }

    pub(crate) fn emit(&mut self, event: Event) {
        self.note_event(&event);
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
}

fn table<V>(capacity: u32) -> FxHashMap<EntityID, V> {
    FxHashMap::with_capacity_and_hasher(capacity as usize, Default::default())
}

pub(crate) fn push_event(events: &mut VecDeque<Event>, counters: &mut Counters, event: Event) {
    if events.len() == events.capacity() {
        counters.events_dropped += 1;
    } else {
        events.push_back(event);
    }
}

fn is_zone_kind(kind: u8) -> bool {
    matches!(
        Kind::from_u8(kind),
        Some(
            Kind::Offer
                | Kind::Ack
                | Kind::Nack
                | Kind::Commit
                | Kind::Done
                | Kind::Confirm
                | Kind::Ghosts
                | Kind::Watch
                | Kind::Messages
        )
    )
}
