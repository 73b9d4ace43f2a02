//! Seamless interest: ghosts driven by where clients look (docs/protocol.md).
//!
//! The aura ghosts only what lies within a few tens of metres of a border, but a client
//! sees as far as its interest's far radius. So every [`WatchConfig::every_ticks`] ticks a
//! zone sends each zone within [`WatchConfig::radius_m`] of its rectangle (its *watch
//! peers*, neighbours or not) a WATCH with the positions of its bound avatars whose view
//! reaches that zone. The receiver finds, around each point, its
//! [`WatchConfig::nearest`] owned entities within the radius and ghosts them to the
//! watcher with every aura batch, until the points stop coming (they expire after
//! `ghost_ttl_ticks`). Entities already in the watcher's aura are not sent twice.
//!
//! A zone also watches, on behalf of a neighbour, the points that neighbour watches
//! inside this zone's aura: those avatars may be handed to this zone any tick, and their
//! clients must find every zone's entities here from the first snapshot, before this
//! zone's own WATCH for them could bring any. (Sent back to the neighbour itself, such a
//! point also brings that neighbour's entities here.)
//!
//! Why the nearest N per point is enough: a client's interest set is the nearest
//! `entities_max` of everything it can see, members kept while they rank within
//! [`STAY`] of the cutoff. The entities of zone B in that set are therefore among B's
//! own nearest `entities_max / STAY²` to the client, which is what `nearest` asks for
//! (with a margin for the ticks between a WATCH and its ghosts). The cost is bounded
//! by the number of watchers, not by the density of the world.
//!
//! What a hostile or broken peer can make a zone do is bounded: at most
//! [`WATCH_POINTS_MAX`] points per peer (the rest are dropped and counted), `nearest` and
//! the radius clamped to this zone's own configuration, one search per point per WATCH
//! tick, at most [`WATCHED_MAX`] ghosts per peer.

use meridian_layouts::ghosts::{GhostRecord, GhostsHeader, records_per_datagram, write_ghosts};
use meridian_layouts::watch::{WatchHeader, WatchPoint, points_per_datagram, write_watch};
use meridian_layouts::{F32Le, U16Le, U32Le, U64Le};

use crate::entities::Entities;
use crate::limits::DATAGRAM_SIZE_MAX;
use crate::net::{Outbox, Peer};
use crate::replicate::InterestConfig;
use crate::replicate::interest::{Candidate, STAY, push_nearest};
use crate::world::{Rect, World, ZoneID};
use crate::zone::Zone;

/// Most points kept per watching peer.
pub const WATCH_POINTS_MAX: usize = 1024;
/// Most entities a peer may ask for around one point.
pub const WATCH_NEAREST_MAX: u16 = 256;
/// Most entities ghosted to one peer for its watchers.
pub const WATCHED_MAX: usize = 32_768;

/// Watched entities a peer's table holds before it grows: 64 KB per peer.
const WATCHED_RESERVE: usize = 4096;

/// How this zone's clients look across borders (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WatchConfig {
    /// How far past the border clients see; 0 turns watching off (only the aura is ghosted).
    pub radius_m: f32,
    /// Entities nearest each watched point to ghost.
    pub nearest: u16,
    /// The clients' interest cap (`entities_max`): an avatar whose zone holds this many
    /// entities within `d` of it needs nothing from other zones beyond `d / STAY`.
    pub cap: u16,
    /// A WATCH is sent every this many ticks.
    pub every_ticks: u32,
}

impl WatchConfig {
    /// What clients with `interest` need: the far radius a member may stay at (far over
    /// [`STAY`]), plus the ground a client covers between two WATCHes; the nearest
    /// `entities_max / STAY²` entities, plus an eighth for the same reason.
    pub fn for_interest(interest: &InterestConfig) -> WatchConfig {
        let nearest = (interest.entities_max as f32 / (STAY * STAY)).ceil() as usize
            + interest.entities_max / 8;
        WatchConfig {
            radius_m: interest.far_m / STAY + 4.0,
            nearest: nearest.min(usize::from(WATCH_NEAREST_MAX)) as u16,
            cap: interest.entities_max.min(usize::from(u16::MAX)) as u16,
            every_ticks: 3,
        }
    }

    /// No watching: ghosts cover the aura only.
    pub const OFF: WatchConfig = WatchConfig {
        radius_m: 0.0,
        nearest: 0,
        cap: 0,
        every_ticks: 1,
    };
}

impl Default for WatchConfig {
    fn default() -> WatchConfig {
        WatchConfig::for_interest(&InterestConfig::default())
    }
}

/// What one peer watches here, and what this zone ghosts to it for that.
#[derive(Debug, Default)]
struct Watcher {
    /// The peer's tick of `points` (a WATCH with an older tick is stale).
    tick: u64,
    /// This zone's tick when the peer was last heard from.
    heard_tick: u64,
    radius_m: f32,
    nearest: u16,
    /// Points `[x, y, radius]` the peer watches for its own avatars, then for a
    /// neighbour's (`own` first).
    points: Vec<[f32; 3]>,
    /// How many of `points` are the peer's own avatars (the ones this zone may forward).
    own: usize,
    /// The points changed since `watched` was computed.
    dirty: bool,
    /// `(id, slot)` of the owned entities ghosted for the peer, each once; the slot is
    /// checked against the id before use.
    watched: Vec<(u64, u32)>,
}

/// A zone's watch state: its peers, what it told them, what they watch here.
#[derive(Debug)]
pub struct Watch {
    config: WatchConfig,
    peers: Vec<(ZoneID, Rect)>,
    watchers: Vec<Watcher>,
    /// Whether the last WATCH to each peer had points (an empty one then says "stop").
    watching: Vec<bool>,
    points: Vec<WatchPoint>,
    /// The points this zone watches: its avatars, and neighbours' inside its aura.
    forward: Vec<[f32; 3]>,
    candidates: Vec<Candidate>,
    slots: Vec<u32>,
    /// Per owned slot, the search that last added it to a watched set ([`Seen`]).
    seen: Seen,
    /// Whether this run heard from its peers yet ([`super::settle`]).
    pub(super) settle: super::settle::Settle,
}

/// Marks which owned slots one watched set holds already: a stamp per slot, and the
/// stamp of the set being built (a new one per set, so nothing is cleared between sets).
#[derive(Debug, Default)]
struct Seen {
    stamps: Vec<u32>,
    stamp: u32,
}

impl Seen {
    /// Starts a set over a store of `slots` slots.
    fn start(&mut self, slots: usize) {
        if self.stamps.len() < slots {
            self.stamps.resize(slots, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Wrapped: stamps of 4 billion sets ago would read as this one's.
            self.stamps.fill(0);
            self.stamp = 1;
        }
    }

    /// Whether `slot` is new to the set (and marks it).
    fn first(&mut self, slot: u32) -> bool {
        let s = &mut self.stamps[slot as usize];
        let first = *s != self.stamp;
        *s = self.stamp;
        first
    }
}

impl Watch {
    pub fn new(world: &World, zone: ZoneID, config: WatchConfig) -> Watch {
        let rect = world.zone_rect(zone);
        let peers: Vec<(ZoneID, Rect)> = if config.radius_m > 0.0 {
            world
                .zones()
                .filter(|&z| z != zone)
                .map(|z| (z, world.zone_rect(z)))
                .filter(|(_, r)| r.distance_to_rect(&rect) <= config.radius_m)
                .collect()
        } else {
            Vec::new()
        };
        Watch {
            config,
            // Sized so that a zone's watching allocates nothing once warm (a few hundred
            // watched entities per peer are common; more grows the vector once).
            watchers: peers
                .iter()
                .map(|_| Watcher {
                    watched: Vec::with_capacity(WATCHED_RESERVE),
                    points: Vec::with_capacity(WATCH_POINTS_MAX),
                    ..Watcher::default()
                })
                .collect(),
            watching: vec![false; peers.len()],
            peers,
            points: Vec::with_capacity(WATCH_POINTS_MAX),
            forward: Vec::with_capacity(WATCH_POINTS_MAX),
            candidates: Vec::with_capacity(4 * usize::from(WATCH_NEAREST_MAX)),
            slots: Vec::with_capacity(WATCHED_RESERVE),
            seen: Seen::default(),
            settle: Default::default(),
        }
    }

    pub fn config(&self) -> &WatchConfig {
        &self.config
    }

    /// The zones within the watch radius of this one.
    pub fn peers(&self) -> impl Iterator<Item = ZoneID> + '_ {
        self.peers.iter().map(|&(z, _)| z)
    }

    fn peer_index(&self, zone: ZoneID) -> Option<usize> {
        self.peers.iter().position(|&(z, _)| z == zone)
    }

    pub(crate) fn is_peer(&self, zone: ZoneID) -> bool {
        self.peer_index(zone).is_some()
    }

    pub(super) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Peer `k`, if it watches points here.
    pub(super) fn watching_here(&self, k: usize) -> Option<ZoneID> {
        let watched = !self.watchers.get(k)?.points.is_empty();
        watched.then_some(self.peers[k].0)
    }

    /// The peers this zone's last WATCH asked for points.
    pub(super) fn asking(&self) -> impl Iterator<Item = &ZoneID> + '_ {
        self.peers
            .iter()
            .zip(&self.watching)
            .filter_map(|((z, _), &asked)| asked.then_some(z))
    }

    /// The tick of `peer`'s newest WATCH this zone took (0: none, or none of its newest
    /// run heard of): what the next batch to it answers.
    pub(super) fn answers(&self, peer: ZoneID) -> u64 {
        self.peer_index(peer).map_or(0, |i| self.watchers[i].tick)
    }

    /// A newer run of `zone` was heard of at this zone's `tick`: what its older run
    /// watched here goes (the new run counts its ticks from its restore, so its WATCHes
    /// would read as stale ones of the old run until that run was silent for
    /// `ghost_ttl_ticks`), and the new run is sent a batch every ghost tick while it
    /// settles ([`super::settle`]).
    pub(crate) fn new_run(&mut self, zone: ZoneID, tick: u64) {
        if let Some(i) = self.peer_index(zone) {
            let w = &mut self.watchers[i];
            w.points.clear();
            w.own = 0;
            w.tick = 0;
            w.dirty = true;
        }
        self.settle.settling(zone, tick);
    }

    /// How many owned entities this zone ghosts to `peer` for its watchers.
    pub fn watched_count(&self, peer: ZoneID) -> usize {
        self.peer_index(peer)
            .map_or(0, |i| self.watchers[i].watched.len())
    }
}

impl Zone {
    /// The zone's watch state: its peers and what they watch here.
    pub fn watch(&self) -> &Watch {
        &self.watch
    }

    /// Tells each watch peer where the bound avatars whose view reaches it stand.
    pub(crate) fn send_watch(&mut self) {
        let config = *self.watch.config();
        if config.radius_m <= 0.0
            || !self
                .tick
                .is_multiple_of(u64::from(config.every_ticks.max(1)))
        {
            return;
        }
        const PER_PACKET: usize = points_per_datagram(DATAGRAM_SIZE_MAX);
        self.watch.settle.round();
        let head = WatchHeader {
            source_zone: U32Le::new(self.id.0),
            tick: U64Le::new(self.tick),
            radius: F32Le::new(config.radius_m),
            nearest: U16Le::new(config.nearest),
            own_count: U16Le::new(0),
            point_count: U16Le::new(0),
        };
        let mut buf = [0u8; DATAGRAM_SIZE_MAX];
        let own = self.gather_watch_points();
        let watch = &mut self.watch;
        for (k, &(peer, rect)) in watch.peers.iter().enumerate() {
            watch.points.clear();
            let mut own_count = 0;
            for (i, &[x, y, r]) in watch.forward.iter().enumerate() {
                if rect.distance_to(x, y) <= r && watch.points.len() < WATCH_POINTS_MAX {
                    watch.points.push(WatchPoint {
                        x: F32Le::new(x),
                        y: F32Le::new(y),
                        radius: F32Le::new(r),
                    });
                    own_count += usize::from(i < own);
                }
            }
            if watch.points.is_empty() && !watch.watching[k] {
                continue;
            }
            watch.watching[k] = !watch.points.is_empty();
            if watch.watching[k] {
                watch.settle.asked(peer, self.tick);
            }
            let mut chunks = watch.points.chunks(PER_PACKET).peekable();
            // No points: one empty WATCH says "stop".
            let empty: &[WatchPoint] = &[];
            let first = chunks.peek().is_none().then_some(empty);
            for chunk in first.into_iter().chain(chunks) {
                let mine = own_count.min(chunk.len());
                own_count -= mine;
                let head = WatchHeader {
                    own_count: U16Le::new(mine as u16),
                    ..head
                };
                let len = write_watch(&mut buf, &head, chunk).expect("sized to fit");
                self.outbox.push(Peer::Zone(peer), &buf[..len]);
                self.counters.watch_datagrams_sent += 1;
            }
        }
    }

    /// Fills `watch.forward` with the points this zone watches: its bound avatars whose
    /// sight reaches a peer (first; returns how many), then the neighbours' own points
    /// inside this zone's aura.
    fn gather_watch_points(&mut self) -> usize {
        let config = *self.watch.config();
        let watch = &mut self.watch;
        // Neighbours' clients that may be handed to this zone soon (inside its aura): their
        // views must be ghosted here before they arrive, so they are watched from here too.
        let (mine, aura) = (self.world.zone_rect(self.id), self.world.aura_m());
        watch.forward.clear();
        for &id in self.sessions.keys() {
            let Some(slot) = self.entities.slot_of(id) else {
                continue;
            };
            let at = (
                self.entities.xs()[slot as usize],
                self.entities.ys()[slot as usize],
            );
            let reaches = |r: f32| watch.peers.iter().any(|p| p.1.distance_to(at.0, at.1) <= r);
            // A bound from cell counts first: most avatars see no other zone at all.
            let (count, within) = self.grid.block_around(at.0, at.1, 1);
            let bound = if count > u32::from(config.cap) {
                within / STAY + SIGHT_SLACK_M
            } else {
                config.radius_m
            };
            if !reaches(bound.min(config.radius_m)) {
                continue;
            }
            let r = sight(
                &self.entities,
                &self.grid,
                at,
                &config,
                &mut watch.candidates,
            );
            if reaches(r) {
                watch.forward.push([at.0, at.1, r]);
            }
        }
        let own = watch.forward.len();
        for (j, w) in watch.watchers.iter().enumerate() {
            // Only a neighbour's own avatars: forwarded points are never forwarded again
            // (two zones would echo each other's points forever).
            if self.borders.neighbours().contains(&watch.peers[j].0) {
                let near = w.points[..w.own].iter();
                watch
                    .forward
                    .extend(near.filter(|&&[x, y, _]| mine.distance_to(x, y) <= aura));
            }
        }
        own
    }

    pub(crate) fn handle_watch(
        &mut self,
        from: Peer,
        head: &WatchHeader,
        points: &[WatchPoint],
    ) -> bool {
        let source = ZoneID(head.source_zone.get());
        let Some(i) = self.watch.peer_index(source) else {
            return false;
        };
        if from != Peer::Zone(source) {
            return false;
        }
        let config = *self.watch.config();
        let w = &mut self.watch.watchers[i];
        let tick = head.tick.get();
        if tick < w.tick {
            self.counters.duplicates_ignored += 1;
            return true;
        }
        if tick > w.tick {
            w.points.clear();
            w.own = 0;
            w.tick = tick;
        }
        w.heard_tick = self.tick;
        w.radius_m = head.radius.get().min(config.radius_m);
        w.nearest = head
            .nearest
            .get()
            .min(config.nearest.max(1))
            .min(WATCH_NEAREST_MAX);
        let room = WATCH_POINTS_MAX - w.points.len();
        let taken = points.len().min(room);
        // Own points go first: insert this datagram's after the ones already held.
        let own = usize::from(head.own_count.get()).min(taken);
        let at = w.own;
        let r_max = w.radius_m;
        let point = |p: &WatchPoint| [p.x.get(), p.y.get(), p.radius.get().min(r_max)];
        w.points.splice(at..at, points[..own].iter().map(point));
        w.own += own;
        w.points.extend(points[own..taken].iter().map(point));
        w.dirty = true;
        self.counters.watch_points_received += taken as u64;
        self.counters.watch_points_dropped += (points.len() - taken) as u64;
        true
    }

    /// Ghosts what each peer watches (called from `send_ghosts`, on ghost ticks): drops
    /// watchers not heard from for `ghost_ttl_ticks`, searches again for those whose
    /// points changed, and sends the rest, skipping what the peer's aura batch carries.
    pub(crate) fn send_watched(&mut self, head: &GhostsHeader) {
        let ttl = u64::from(self.config.ghost_ttl_ticks);
        for k in 0..self.watch.peers.len() {
            let (peer, rect) = self.watch.peers[k];
            let w = &mut self.watch.watchers[k];
            if !w.points.is_empty() && w.heard_tick + ttl < self.tick {
                w.points.clear();
                w.own = 0;
                w.dirty = true;
                // A peer silent this long may come back as a new run (a restart, or its
                // standby's takeover) whose ticks start again from where its restore
                // left them: its WATCH must not be taken for a stale one of the old run.
                w.tick = 0;
            }
            if w.dirty {
                w.dirty = false;
                search_watched(
                    &self.entities,
                    &self.grid,
                    self.reach,
                    w,
                    (&mut self.watch.candidates, &mut self.watch.seen),
                    &mut self.counters.watched_dropped,
                );
            }
            if w.watched.is_empty() {
                continue;
            }
            // Resolve slots (an entity may have moved slot or left); skip the aura's.
            let aura = self
                .borders
                .neighbours()
                .contains(&peer)
                .then(|| rect.expand(self.world.aura_m()));
            let (entities, slots) = (&self.entities, &mut self.watch.slots);
            slots.clear();
            w.watched.retain_mut(|(id, slot)| {
                let here = entities
                    .ids()
                    .get(*slot as usize)
                    .is_some_and(|e| e.0 == *id);
                if !here {
                    match entities.slot_of(crate::entities::EntityID(*id)) {
                        Some(s) => *slot = s,
                        None => return false,
                    }
                }
                let s = *slot as usize;
                if aura.is_none_or(|a| !a.contains(entities.xs()[s], entities.ys()[s])) {
                    slots.push(*slot);
                }
                true
            });
            let head = self.answering(head, peer);
            let sent = push_ghosts(
                &self.entities,
                &head,
                &self.watch.slots,
                &mut self.outbox,
                peer,
            );
            self.counters.ghost_batches_sent += sent.0;
            self.counters.watched_ghosts_sent += sent.1;
            if sent.0 > 0 {
                self.watch.settle.sent(peer, self.tick);
            }
        }
    }
}

/// The nearest `w.nearest` owned entities within `w.radius_m` of each of `w.points`,
/// each once, into `w.watched` (in the order found). Points near each other share most
/// of their nearest: an entity already in the set is skipped by its slot's stamp, so only
/// entities new to it count against [`WATCHED_MAX`] (appending every point's whole and
/// sorting out the duplicates at the end filled the cap with duplicates, and dropped
/// the later points' entities, whenever the points outnumbered ~169).
fn search_watched(
    entities: &Entities,
    grid: &crate::grid::Grid,
    reach: Rect,
    w: &mut Watcher,
    (candidates, seen): (&mut Vec<Candidate>, &mut Seen),
    dropped: &mut u64,
) {
    w.watched.clear();
    let keep = usize::from(w.nearest);
    if keep == 0 {
        return;
    }
    seen.start(entities.len());
    for &[x, y, radius_m] in &w.points {
        // Nothing owned lies nearer than the zone's reach.
        let from = reach.distance_to(x, y);
        if from > radius_m {
            continue;
        }
        nearest_within(entities, grid, (x, y), (from, radius_m), keep, candidates);
        for k in candidates.iter() {
            if seen.first(k.slot) {
                if w.watched.len() == WATCHED_MAX {
                    *dropped += 1;
                } else {
                    w.watched.push((k.id, k.slot));
                }
            }
        }
    }
}

/// How far from `at` a client can see anything it could be shown: its interest holds at
/// most `cap` entities, and this zone alone has `cap` (besides the avatar) within `d`,
/// so nothing beyond `d / STAY` can make the cut even as a member; plus the ground a
/// client and an entity cover between two WATCHes. `radius_m` if the zone has fewer.
fn sight(
    entities: &Entities,
    grid: &crate::grid::Grid,
    at: (f32, f32),
    config: &WatchConfig,
    candidates: &mut Vec<Candidate>,
) -> f32 {
    let keep = usize::from(config.cap) + 1;
    if keep > candidates.capacity() / 2 {
        return config.radius_m; // a cap this large: no bound worth the search
    }
    nearest_within(entities, grid, at, (0.0, config.radius_m), keep, candidates);
    if candidates.len() < keep {
        return config.radius_m;
    }
    let d2 = candidates.iter().map(|k| k.distance2).fold(0.0, f32::max);
    (d2.sqrt() / STAY + SIGHT_SLACK_M).min(config.radius_m)
}

/// Metres added to a client's sight: what it and the entities around it move between
/// two WATCHes and their ghosts (about 10 ticks at 6 m/s).
const SIGHT_SLACK_M: f32 = 4.0;

/// The nearest `keep` owned entities within `radius_m` of `(x, y)`, into `candidates`;
/// none lies nearer than `from_m`.
///
/// The search starts one cell past `from_m` and doubles until it holds `keep` entities or
/// reaches `radius_m`: where the world is dense the nearest few hundred lie within a few
/// cells, and scanning the whole radius (300 m: hundreds of cells) would cost ~50 times
/// more. Exact: once `keep` entities lie within `r`, none beyond `r` is among the nearest.
fn nearest_within(
    entities: &Entities,
    grid: &crate::grid::Grid,
    (x, y): (f32, f32),
    (from_m, radius_m): (f32, f32),
    keep: usize,
    candidates: &mut Vec<Candidate>,
) {
    let (xs, ys, ids) = (entities.xs(), entities.ys(), entities.ids());
    let mut r = (from_m + grid.cell_size_m()).min(radius_m);
    loop {
        candidates.clear();
        let (mut cutoff2, mut found) = (r * r, 0usize);
        grid.for_each_in_radius(xs, ys, x, y, r, |slot| {
            let i = slot as usize;
            let (dx, dy) = (xs[i] - x, ys[i] - y);
            let distance2 = dx * dx + dy * dy;
            found += 1;
            if distance2 <= cutoff2 {
                let k = Candidate {
                    id: ids[i].0,
                    distance2,
                    slot,
                };
                push_nearest(candidates, keep, &mut cutoff2, k);
            }
        });
        if found >= keep || r >= radius_m {
            break;
        }
        r = (2.0 * r).min(radius_m);
    }
    if candidates.len() > keep {
        candidates.select_nth_unstable_by(keep - 1, |a, b| a.distance2.total_cmp(&b.distance2));
        candidates.truncate(keep);
    }
}

/// Sends the entities at `slots` to `to` as GHOSTS batches, with `head.state_len` bytes
/// of each one's game state; returns (batches, records).
pub(crate) fn push_ghosts(
    entities: &Entities,
    head: &GhostsHeader,
    slots: &[u32],
    outbox: &mut Outbox,
    to: ZoneID,
) -> (u64, u64) {
    const MOST: usize = records_per_datagram(DATAGRAM_SIZE_MAX, 0);
    let state_len = usize::from(head.state_len.get());
    let per_packet = records_per_datagram(DATAGRAM_SIZE_MAX, state_len);
    let mut records: [GhostRecord; MOST] = [bytemuck::Zeroable::zeroed(); MOST];
    let mut states = [0u8; DATAGRAM_SIZE_MAX];
    let mut buf = [0u8; DATAGRAM_SIZE_MAX];
    let mut batches = 0;
    for chunk in slots.chunks(per_packet) {
        for (k, &slot) in chunk.iter().enumerate() {
            records[k] = ghost_record(entities, slot);
            // The header's length is the store's (`Zone::send_ghosts`).
            states[k * state_len..(k + 1) * state_len].copy_from_slice(entities.state(slot));
        }
        let n = chunk.len();
        let len = write_ghosts(&mut buf, head, &records[..n], &states[..n * state_len])
            .expect("sized to fit");
        outbox.push(Peer::Zone(to), &buf[..len]);
        batches += 1;
    }
    (batches, slots.len() as u64)
}

fn ghost_record(e: &Entities, slot: u32) -> GhostRecord {
    let s = slot as usize;
    GhostRecord {
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
    }
}
