//! Ghosts: read-only copies of neighbours' entities near the border (docs/architecture.md).
//!
//! Each owner sends every neighbour the entities inside that neighbour's aura, and every
//! zone whose clients look its way the entities they watch ([`watch`]); the
//! receiver keeps them here, keyed by id, fenced by epoch (a record with an epoch lower
//! than the ghost's is stale and ignored), and drops a ghost that has not been refreshed
//! for `ghost_ttl_ticks` — or, when its owner has sent nothing at all since (stalled, or
//! between two runs of its zone), for [`SILENT_TTL_FACTOR`] times that
//! ([`Ghosts::expire`]). Ghosts are indexed by their own grid and answer queries like
//! owned entities; they are never simulated or handed off. When the zone adopts an
//! entity, its ghost is removed. An entity in transit — relinquished, its COMMIT not
//! answered — stays in view on both sides: the source keeps its copy as a ghost and sends
//! it to the target with its batches ([`Ghosts::push_handed`]).

pub mod settle;
pub mod watch;

use meridian_layouts::ghosts::{GhostRecord, GhostsHeader};
use meridian_layouts::handoff::STATE_SIZE;
use meridian_layouts::{U16Le, U32Le, U64Le};
use rustc_hash::FxHashMap;

use crate::entities::{Entities, EntityID, EntityInit, InsertError};
use crate::grid::Grid;
use crate::handoff::Tombstone;
use crate::limits::Limits;
use crate::net::{Outbox, Peer};
use crate::world::{Rect, ZoneID};
use crate::zone::Zone;
use watch::push_ghosts;

/// The ghost store. See the module docs.
#[derive(Debug)]
pub struct Ghosts {
    entities: Entities,
    grid: Grid,
    refreshed_tick: Vec<u64>,
    source: Vec<ZoneID>,
    /// A direct-mapped cache of id → slot in front of the store's hash map (see
    /// [`Ghosts::refresh`]).
    cache: Vec<u32>,
    /// Per peer, the tick its newest GHOSTS datagram came (see [`Ghosts::expire`]).
    heard: Vec<(ZoneID, u64)>,
    /// Scratch for [`Ghosts::push_handed`]: slots of copies to send (at most one per
    /// tombstone).
    handed: Vec<u32>,
}

/// A peer that has sent nothing at all since it refreshed a ghost keeps it this many
/// times `ghost_ttl_ticks` (see [`Ghosts::expire`]).
pub const SILENT_TTL_FACTOR: u64 = 3;

/// Entries of the slot cache: 64 KB, which stays in L2 while the ghost store's hash map,
/// sized for the ghost capacity (~4 MB at the default limits), does not.
const CACHE_SIZE: usize = 1 << 14;

fn cache_index(id: EntityID) -> usize {
    (id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CACHE_SIZE.trailing_zeros())) as usize
}

/// What happened to a ghost record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsert {
    Inserted,
    Refreshed,
    /// Older epoch than the ghost we hold.
    Stale,
    Full,
}

impl Ghosts {
    /// A store for `limits.ghost_count_max` ghosts keeping `limits.state_bytes` of game
    /// state each.
    pub fn new(limits: &Limits, area: Rect, cell_size_m: f32) -> Ghosts {
        let entities = Entities::new(&Limits {
            state_bytes: limits.state_bytes,
            ..Limits::for_entities(limits.ghost_count_max.max(1))
        });
        let grid = Grid::covering(area, cell_size_m, entities.capacity());
        let n = entities.capacity();
        Ghosts {
            entities,
            grid,
            refreshed_tick: Vec::with_capacity(n),
            heard: Vec::new(),
            source: Vec::with_capacity(n),
            cache: vec![u32::MAX; CACHE_SIZE],
            handed: Vec::with_capacity(limits.tombstone_count_max as usize),
        }
    }

    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    pub fn entities(&self) -> &Entities {
        &self.entities
    }

    /// The zone that sent the ghost at `slot`.
    pub fn source(&self, slot: u32) -> ZoneID {
        self.source[slot as usize]
    }

    /// Refreshes the ghost of `ghost.id` if there is one; `None` if there is not.
    pub fn refresh(&mut self, tick: u64, source: ZoneID, ghost: &EntityInit) -> Option<Upsert> {
        // Every refresh used to cost two cache misses in the hash map (the busiest lookup
        // of a zone with many ghosts); the cache is checked against the id column.
        let c = cache_index(ghost.id);
        let cached = self.cache[c];
        let ids = self.entities.ids();
        let slot = if ids.get(cached as usize) == Some(&ghost.id) {
            cached
        } else {
            let slot = self.entities.slot_of(ghost.id)?;
            self.cache[c] = slot;
            slot
        };
        let s = slot as usize;
        if ghost.epoch < self.entities.epochs()[s] {
            return Some(Upsert::Stale);
        }
        self.entities.set_state(slot, ghost);
        self.refreshed_tick[s] = tick;
        self.source[s] = source;
        Some(Upsert::Refreshed)
    }

    /// Inserts or refreshes a ghost from `source` at `tick`.
    pub fn upsert(&mut self, tick: u64, source: ZoneID, ghost: &EntityInit) -> Upsert {
        if let Some(slot) = self.entities.slot_of(ghost.id) {
            let s = slot as usize;
            if ghost.epoch < self.entities.epochs()[s] {
                return Upsert::Stale;
            }
            self.entities.set_state(slot, ghost);
            self.refreshed_tick[s] = tick;
            self.source[s] = source;
            return Upsert::Refreshed;
        }
        match self.entities.insert(ghost) {
            Ok(_) => {
                self.refreshed_tick.push(tick);
                self.source.push(source);
                Upsert::Inserted
            }
            Err(InsertError::Full) => Upsert::Full,
            // Duplicate is impossible (checked above); non-finite was rejected by the parse.
            Err(_) => Upsert::Stale,
        }
    }

    /// Removes the ghost of `id`, if any.
    pub fn remove(&mut self, id: EntityID) -> bool {
        let Some(slot) = self.entities.slot_of(id) else {
            return false;
        };
        self.remove_slot(slot);
        true
    }

    fn remove_slot(&mut self, slot: u32) {
        let (_, moved_from) = self.entities.swap_remove(slot);
        self.grid.swap_remove(slot, moved_from);
        self.refreshed_tick.swap_remove(slot as usize);
        self.source.swap_remove(slot as usize);
    }

    /// Keeps the copy of entity `id` this zone handed on (a ghost below `epoch`, the
    /// epoch its new owner holds it at) as refreshed at `tick`: its COMMIT is not answered
    /// yet, so the new owner may not have it and cannot ghost it back. Only while the new
    /// owner was heard from within `ttl` ticks: a silent one's copy ages with its other
    /// ghosts ([`Ghosts::expire`]).
    pub fn hold(&mut self, id: EntityID, epoch: u32, tick: u64, ttl: u64) {
        let Some(slot) = self.entities.slot_of(id).map(|s| s as usize) else {
            return;
        };
        let owner = self.source[slot];
        let heard = self.heard.iter().find(|h| h.0 == owner);
        if self.entities.epochs()[slot] < epoch && heard.is_some_and(|h| h.1 + ttl >= tick) {
            self.refreshed_tick[slot] = tick;
        }
    }

    /// Sends `target` the copies kept here of the entities this zone handed to it whose
    /// COMMIT it has not answered (`tombstones`), as they were relinquished — those it has
    /// not ghosted back yet at the epoch it holds them at. Returns how many batches.
    ///
    /// Until it adopts such an entity the target cannot show it: its own ghost of it ages
    /// out while the COMMIT waits (at this zone's gate for the standby, or for its resend),
    /// and a new run of its zone, started as the entity crossed, never had one. A run
    /// that settles on batches carrying these copies shows the entity in its first whole
    /// snapshot; adopting it replaces the copy, a copy that comes later is stale there.
    pub(crate) fn push_handed(
        &mut self,
        tombstones: &FxHashMap<EntityID, Tombstone>,
        head: &GhostsHeader,
        outbox: &mut Outbox,
        target: ZoneID,
    ) -> u64 {
        self.handed.clear();
        for (id, tomb) in tombstones {
            let t = tomb.commit.transfer;
            if t.target_zone.get() == target.0
                && let Some(slot) = self.entities.slot_of(*id)
                && self.entities.epochs()[slot as usize] < t.epoch.get()
            {
                self.handed.push(slot);
            }
        }
        if self.handed.is_empty() {
            return 0;
        }
        push_ghosts(&self.entities, head, &self.handed, outbox, target).0
    }

    /// A GHOSTS datagram of `peer` came at `tick`.
    pub fn heard_from(&mut self, peer: ZoneID, tick: u64) {
        match self.heard.iter_mut().find(|h| h.0 == peer) {
            Some(h) => h.1 = tick,
            None => self.heard.push((peer, tick)),
        }
    }

    /// Drops ghosts not refreshed since `tick - ttl` whose peer sent batches since that
    /// left them out (they left its aura or the watched set); a peer silent since —
    /// stalled, or between a run that stopped and its next (a move, a takeover) — keeps
    /// its ghosts [`SILENT_TTL_FACTOR`] times as long, so its next run's first batch finds
    /// them still shown instead of a zone's clients losing them for a tick or two.
    /// Returns how many were dropped.
    pub fn expire(&mut self, tick: u64, ttl: u64) -> u64 {
        let mut expired = 0;
        let mut slot = 0;
        while slot < self.entities.len() {
            let refreshed = self.refreshed_tick[slot];
            // (The peers are looked up only for a ghost past the short bound: rare.)
            let expires = refreshed + ttl < tick && {
                let source = self.source[slot];
                let silent = self
                    .heard
                    .iter()
                    .find(|h| h.0 == source)
                    .is_none_or(|h| h.1 <= refreshed);
                !silent || refreshed + SILENT_TTL_FACTOR * ttl < tick
            };
            if expires {
                self.remove_slot(slot as u32);
                expired += 1;
            } else {
                slot += 1;
            }
        }
        expired
    }

    /// Brings the ghost grid up to date (after a tick's refreshes).
    pub fn update_grid(&mut self) {
        let len = self.entities.len();
        let (x, y) = self.entities.position_lanes();
        self.grid.update(x, y, len);
    }

    /// Calls `f(slot)` for every ghost within `radius_m` of `(x, y)`.
    pub fn query_radius(&self, x: f32, y: f32, radius_m: f32, f: impl FnMut(u32)) {
        self.grid
            .for_each_in_radius(self.entities.xs(), self.entities.ys(), x, y, radius_m, f);
    }

    /// Calls `f(slot)` for every ghost inside `rect`.
    pub fn query_rect(&self, rect: Rect, f: impl FnMut(u32)) {
        self.grid
            .for_each_in_rect(self.entities.xs(), self.entities.ys(), rect, f);
    }

    /// The store, for a history that records it (and clears its move log).
    pub(crate) fn entities_mut(&mut self) -> &mut Entities {
        &mut self.entities
    }
}

// ---- the zone's side: ghost batches out and in ----------------------------------------

impl Zone {
    /// Sends each neighbour the entities inside its aura, and each watch peer what its
    /// clients watch here ([`watch`]), in batches of one datagram; an empty batch to a
    /// peer that had none ([`settle`]). Settles a new run first.
    pub(crate) fn send_ghosts(&mut self) {
        self.settle();
        if !self
            .tick
            .is_multiple_of(u64::from(self.config.ghost_interval_ticks.max(1)))
        {
            return;
        }
        let head = GhostsHeader {
            source_zone: U32Le::new(self.id.0),
            tick: U64Le::new(self.tick),
            record_count: U16Le::new(0),
            state_len: U16Le::new(self.entities.state_len() as u16),
            answers_tick: U64Le::new(0),
            answers_run: U32Le::new(0),
        };
        for k in 0..self.borders.neighbours().len() {
            let neighbour = self.borders.neighbours()[k];
            let aura = self.border_output.aura(k);
            let head = self.answering(&head, neighbour);
            let (mut batches, _) =
                push_ghosts(&self.entities, &head, aura, &mut self.outbox, neighbour);
            if !self.tombstones.is_empty() {
                let (ghosts, tombstones) = (&mut self.ghosts, &self.tombstones);
                batches += ghosts.push_handed(tombstones, &head, &mut self.outbox, neighbour);
            }
            self.counters.ghost_batches_sent += batches;
            if batches > 0 {
                self.watch.settle.sent(neighbour, self.tick);
            }
        }
        self.send_watched(&head);
        self.send_heartbeats(&head);
    }

    pub(crate) fn handle_ghosts(
        &mut self,
        from: Peer,
        head: &GhostsHeader,
        records: &[GhostRecord],
        states: &[u8],
    ) -> bool {
        let source = ZoneID(head.source_zone.get());
        let peer = self.borders.neighbours().contains(&source) || self.watch.is_peer(source);
        if from != Peer::Zone(source) || !peer {
            return false;
        }
        self.heard_ghosts(source, head);
        self.ghosts.heard_from(source, self.tick);
        let state_len = usize::from(head.state_len.get());
        for (k, r) in records.iter().enumerate() {
            let id = EntityID(r.id.get());
            // The owner's record, zero-padded to the slot (parse checked the lengths).
            let mut payload = [0; STATE_SIZE];
            payload[..state_len].copy_from_slice(&states[k * state_len..(k + 1) * state_len]);
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
                payload,
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
}
