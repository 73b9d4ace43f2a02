//! Replication: which entities a client is told about, and the bytes that tell it.
//!
//! **Interest** ([`interest`]). Around the client's avatar, owned entities and ghosts within
//! the far radius are candidates; the nearest [`InterestConfig::entities_max`] are the
//! client's *interest set*. The set is searched anew every
//! [`InterestConfig::search_every_ticks`] ticks (each client on its own phase, so a tick
//! searches for a fraction of the clients) or when the avatar has moved
//! [`InterestConfig::search_move_m`]; in between, members are followed where they are now
//! (their positions fresh every tick) and dropped once past the far radius or gone.
//!
//! **Priority** ([`Replicator::snapshot`]). Each tick every member accumulates priority by
//! its distance tier (near: every tick, mid: ½, far: ⅙ of the tick rate, as weights
//! 6/3/1). A member is *due* once its priority reaches [`PRIORITY_DUE`]; the due members
//! with the highest priority are sent, as many as the client's byte budget allows, and
//! their priority resets; members the client does not hold yet are always offered, first
//! when the budget is short ([`select`]). Far entities therefore wait longer but are never
//! starved; nothing outside the interest set is ever sent.
//!
//! **Samples** ([`samples`]). What an entry sends of a member is a *sample*, and a
//! client draws each entity's newest sample (`meridian_protocol::delta`, "Samples"), not
//! the newest snapshot's record: the delta is against the client's acknowledged snapshot,
//! ticks old over a real network, so a member sent as due since and not due now is
//! carried at the baseline's older value — which the client does not draw. Each snapshot
//! names the state each record holds ([`held::Core`] `sent`: the tick of the entry that
//! first sent it) and each member keeps its newest's ([`Member`] `sampled`); a due member
//! whose state is the baseline's while another state went out since is renewed
//! ([`pass::RENEW`]). Session 33 sent every member's newest sample again in each snapshot
//! until acknowledged (the client drew the newest snapshot): 2.2× the bytes at a 100 ms
//! round trip.
//!
//! **Continuity** ([`carry`]). When a client's avatar is handed to another zone, its
//! state — the acknowledged baseline, the members and their priorities, the budget — is
//! carried there (VIEW), so the new zone's first snapshot is a delta like any other.
//!
//! **Delta encoding** ([`meridian_protocol::delta`], shared with the client library). The
//! server keeps, per client, the last [`HISTORY`] snapshots *as the client will hold
//! them*, and encodes each new snapshot against the one the client acknowledged (its
//! baseline; none → every entry is new). Members not due and unchanged cost nothing;
//! members that left interest get a remove.
//!
//! **One pass** ([`pass`]). When what is due fits the budget — most snapshots — priority,
//! the delta and the client's resulting records come out of one walk of the interest set
//! and the baseline; otherwise the staged path prioritises into a list, ranks what fits
//! ([`select`]) and encodes. The bytes are the same ([`Replicator::set_one_pass`]).
//!
//! Nothing here allocates after a client's first ticks: every buffer is sized by
//! [`InterestConfig::entities_max`] and reused. A new [`ClientView`] allocates its history
//! (about 70 KB at the defaults); the session layer builds one per session slot when it is
//! created, never in a tick.

mod carry;
mod held;
pub(crate) mod interest;
mod pass;
mod rank;
mod records;
mod samples;
mod select;

use meridian_protocol::delta::{Encoded, Record, Wanted, encode_delta};

use crate::grid::Packed;
use crate::zone::Zone;
use interest::{Candidate, Member};

pub use carry::{Carried, CarryError};
use held::{Core, Held};
pub use interest::STAY;
use records::{current_record, fill_records, tier_weight};
pub use records::{record_of, with_game};
use samples::tick16;

/// Snapshots kept per client: the oldest baseline a client can acknowledge.
pub const HISTORY: usize = 16;

/// Priority at which an interest member is due to be sent.
pub const PRIORITY_DUE: u16 = 6;

/// Interest settings (the defaults of docs/protocol.md).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InterestConfig {
    pub near_m: f32,
    pub mid_m: f32,
    pub far_m: f32,
    /// Most entities in a client's interest set (and so in one snapshot).
    pub entities_max: usize,
    /// Bytes per second a client may receive; a snapshot never exceeds one datagram.
    pub bytes_per_second: u32,
    pub tick_hz: u32,
    /// Every this many ticks a client's interest set is searched anew (spatial query,
    /// nearest `entities_max`, id sort); between searches its members are followed where
    /// they are, which costs a fraction of a search. An entity coming into range waits at
    /// most this many ticks to be found. 1: search every tick.
    pub search_every_ticks: u32,
    /// A client whose avatar moved this far since its last search is searched at once.
    pub search_move_m: f32,
}

impl Default for InterestConfig {
    fn default() -> Self {
        InterestConfig {
            near_m: 60.0,
            mid_m: 120.0,
            far_m: 250.0,
            entities_max: 128,
            bytes_per_second: 24_000,
            tick_hz: 30,
            // The far tier's rate (⅙ of the tick rate): 200 ms at 30 Hz.
            search_every_ticks: 6,
            search_move_m: 4.0,
        }
    }
}

/// The snapshot a delta is relative to, as (zone, tick); tick 0: none (every entry new).
/// The zone is another one when the client's state came with its avatar (see
/// [`Replicator::install`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    pub zone: u32,
    pub tick: u32,
}

/// What one client has been sent: interest members and their priorities, the snapshot
/// history, the acknowledged baseline and the byte budget.
#[derive(Clone, Debug)]
pub struct ClientView {
    members: Vec<Member>,
    /// The last snapshots built, as the records the client holds once it has applied
    /// each (`history[k]` is the snapshot of `ticks[k]`; tick 0: an empty slot). Slots are
    /// not a ring by tick: a new snapshot reuses the slot of one that can no longer be a
    /// baseline (older than the acknowledged one), the newest such first — in steady
    /// state the baseline of a tick ago, still in cache — else the oldest slot.
    ticks: [u32; HISTORY],
    history: Vec<Held>,
    acked_tick: u32,
    budget_bytes: i64,
    /// The interest set is searched anew when `(tick + phase) % search_every_ticks == 0`
    /// (clients with different phases spread the searches over ticks), or when the avatar
    /// moved `search_move_m` from where the last search was made.
    phase: u32,
    searched_at: Option<(f32, f32)>,
    /// The last search did not find the whole view: it was made before the zone's run
    /// held its peers' ghosts (`ghosts::settle`), or it held newcomers back while the
    /// client may still draw a scene before over the view (`drawn_over`). The next one is
    /// due once the run is settled.
    search_again: bool,
    /// Members chosen by a search that did not see the whole view (the zone's run lacked
    /// its peers' ghosts, or — carried from another zone — the search there had to search
    /// again), sorted ids: a settled run's searches rank them at their true distances, not
    /// [`STAY`] nearer, until one keeps each on its merit or lets it go. Their hysteresis
    /// would hold out entities nearer than they are that such a search could not see —
    /// which the client may have drawn all along, from the scene before, and would lose at
    /// the first whole snapshot and get back a search later. One kept only because the
    /// search could not displace more members stays unproven (the seamless test
    /// `a_blind_member_the_first_settled_search_could_not_displace_stays_unproven`).
    unproven: Vec<u64>,
    /// No snapshot of this view has been whole yet: it started against nothing (a zone's
    /// new run, a session's first), and the client may draw the scene it had before over
    /// its snapshots until one is whole (`DELTA_PARTIAL`).
    drawn_over: bool,
    /// How far the last search had to reach for its nearest `entities_max`.
    reach_m: f32,
    /// A baseline the client holds from the zone its avatar came from, as (zone, tick),
    /// with its records: the baseline until the client acknowledges a snapshot of this
    /// zone.
    foreign: Option<(u32, u32)>,
    foreign_records: Held,
    /// The members the other zone's newest snapshot showed (sorted ids), ranked like
    /// those of this zone's newest until the client acknowledges one of this zone's.
    foreign_shown: Vec<u64>,
    /// The tick of the newest snapshot built for the client (acknowledged or not).
    last_sent: u32,
    /// What the newest snapshot's successor owes the client against the same baseline,
    /// bytes as reckoned ([`select`]): every removal again, and every member sent since
    /// the baseline again in full. It bounds how many members the next search may
    /// displace ([`select::displaceable`]).
    owed_bytes: usize,
}

impl ClientView {
    pub fn new(config: &InterestConfig) -> ClientView {
        ClientView::with_phase(config, 0)
    }

    /// A view whose interest searches fall on ticks `t` with `(t + phase) %
    /// search_every_ticks == 0`: give each client its own phase (its session slot, say) so
    /// searches spread evenly over ticks.
    pub fn with_phase(config: &InterestConfig, phase: u32) -> ClientView {
        ClientView {
            phase,
            searched_at: None,
            search_again: false,
            unproven: Vec::with_capacity(config.entities_max),
            drawn_over: true,
            reach_m: 0.0,
            members: Vec::with_capacity(config.entities_max),
            ticks: [0; HISTORY],
            history: (0..HISTORY)
                .map(|_| Held::with_capacity(config.entities_max))
                .collect(),
            acked_tick: 0,
            budget_bytes: 0,
            foreign: None,
            last_sent: 0,
            foreign_records: Held::with_capacity(
                carry::RECORDS_MAX_PER_MEMBER * config.entities_max,
            ),
            foreign_shown: Vec::with_capacity(config.entities_max),
            owed_bytes: 0,
        }
    }

    /// Makes the view as new (for another client), keeping its buffers.
    pub fn reset(&mut self, phase: u32) {
        self.phase = phase;
        self.searched_at = None;
        self.search_again = false;
        self.unproven.clear();
        self.drawn_over = true;
        self.reach_m = 0.0;
        self.members.clear();
        self.ticks = [0; HISTORY];
        for records in &mut self.history {
            records.clear();
        }
        self.acked_tick = 0;
        self.budget_bytes = 0;
        self.owed_bytes = 0;
        self.foreign = None;
        self.foreign_records.clear();
        self.foreign_shown.clear();
        self.last_sent = 0;
    }

    /// The ids in the client's interest set, as of its last snapshot (sorted).
    pub fn interest(&self) -> impl Iterator<Item = u64> + '_ {
        self.members.iter().map(|m| m.id)
    }

    /// The client has applied this zone's snapshot of `tick` (from its INPUT's
    /// `ack_tick`, when its `ack_zone` is this zone). Older or unknown ticks are ignored.
    pub fn acknowledge(&mut self, tick: u32) {
        if tick > self.acked_tick && self.stored(tick).is_some() {
            self.acked_tick = tick;
            // A snapshot of this zone is newer than anything the client brought along.
            self.foreign = None;
            self.foreign_shown.clear();
        }
    }

    /// The snapshot the next delta is against, and its records: the acknowledged one of
    /// this zone (`zone`), else the one the client brought from another zone, else none
    /// (tick 0).
    fn baseline(&self, zone: u32) -> (Baseline, &Held) {
        match (self.stored(self.acked_tick), self.foreign) {
            (Some(records), _) => (
                Baseline {
                    zone,
                    tick: self.acked_tick,
                },
                records,
            ),
            (None, Some((zone, tick))) => (Baseline { zone, tick }, &self.foreign_records),
            (None, None) => (Baseline { zone, tick: 0 }, &held::NOTHING),
        }
    }

    /// The records of the snapshot of `tick`, if it is still kept.
    fn stored(&self, tick: u32) -> Option<&Held> {
        if tick == 0 {
            return None;
        }
        let k = self.ticks.iter().position(|&t| t == tick)?;
        Some(&self.history[k])
    }

    /// The slot the snapshot of `tick` is stored in: its own if it was built before (built
    /// again, it replaces itself), else one that can no longer be a baseline (empty, or
    /// older than the acknowledged snapshot), the newest of those — most likely the
    /// baseline it replaced, read a tick ago and still in cache — else the oldest (the
    /// client's acknowledgements lag [`HISTORY`] snapshots).
    fn slot_for(&self, tick: u32) -> usize {
        if let Some(k) = self.ticks.iter().position(|&t| t == tick) {
            return k;
        }
        let acked = self.acked_tick;
        let dead = (0..HISTORY)
            .filter(|&k| self.ticks[k] < acked || self.ticks[k] == 0)
            .max_by_key(|&k| self.ticks[k]);
        dead.unwrap_or_else(|| {
            (0..HISTORY)
                .min_by_key(|&k| self.ticks[k])
                .expect("HISTORY > 0")
        })
    }
}

crate::counters! {
    /// Counters, cumulative.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ReplicateCounters {
        pub snapshots: u64,
        /// Entry bytes of every snapshot (the datagram's header and seal not included).
        pub bytes: u64,
        pub entries: u64,
        /// Entries the byte budget could not carry this tick: they wait for a later one.
        pub deferred: u64,
        /// Entries the estimate let through and the datagram could not hold (the
        /// encoder cut them): they wait for a later tick too.
        pub cut: u64,
        /// Snapshots that left out members the client does not hold (`DELTA_PARTIAL`):
        /// its state after them is not its whole view.
        pub partial: u64,
        /// Members the client's newest snapshot showed that the next could not carry
        /// again (its baseline lacked them and they did not fit): each one drawn, gone
        /// for a snapshot, and back — a blink the player sees.
        pub blinked: u64,
        /// Renewals: entries of a due member whose state is back to what the baseline
        /// holds after a newer sample went out.
        pub renewals: u64,
        /// Snapshots sent with no baseline (first, or the acknowledged one was too old).
        pub full: u64,
        /// Snapshots sent against a baseline the client brought from another zone.
        pub carried: u64,
        /// Interest searches (the other snapshots followed the members where they are).
        pub searches: u64,
        /// Snapshots built by the staged path (what was due did not fit the budget or
        /// the datagram); the others were built in one pass.
        pub staged: u64,
    }
}

/// Shared scratch for building every client's snapshot in a tick.
#[derive(Debug)]
pub struct Replicator {
    config: InterestConfig,
    candidates: Vec<Candidate>,
    /// Scratch for the end of an interest search ([`rank`]).
    ranking: rank::Ranking,
    wanted: Vec<Wanted>,
    /// Members due this tick: (priority, index into `wanted`).
    due: Vec<(u16, u32)>,
    /// Per `wanted` entry: not in the baseline (it would be a new entry); and of those,
    /// carried by the newest snapshot (`select`).
    fresh: Vec<bool>,
    shown: Vec<bool>,
    /// Scratch for [`Replicator::install`]: the ids a carried state marks as shown.
    shown_ids: Vec<u64>,
    members: Vec<Member>,
    /// A cell-ordered copy of the zone's positions, and the zone tick it was taken at.
    packed: Option<Packed>,
    packed_tick: Option<u64>,
    /// The owned entities' records at `packed_tick`, by slot.
    records: Vec<Core>,
    /// The staged path's records: the baseline whole, and the client's after the snapshot.
    staged_baseline: Vec<Record>,
    result: Vec<Record>,
    /// The client's records after the snapshot, as kept (copied into its history).
    held: Held,
    /// The one pass's scratch: per member its baseline position, the due members'
    /// positions, the baseline positions removed.
    marks: Vec<u32>,
    due_at: Vec<u32>,
    removed: Vec<u32>,
    counters: ReplicateCounters,
    /// Bytes the next snapshot's entries may lose to what precedes them in the datagram
    /// ([`Replicator::set_headroom`]).
    headroom: usize,
    /// What the snapshot being built owes its successor (`ClientView::owed_bytes`).
    owed: usize,
    /// The last snapshot left out members the client does not hold ([`Replicator::partial`]).
    partial: bool,
    /// Off: every snapshot takes the staged path ([`Replicator::set_one_pass`]).
    one_pass: bool,
}

impl Replicator {
    /// How many bytes of the room the next [`Replicator::snapshot`] gets may go to what
    /// precedes its entries in later datagrams (a game's events and avatar fields grow
    /// and shrink): members the client has not been shown are admitted only into the room
    /// that leaves that much, so the following snapshots can always carry them again
    /// (one that could not would blink them out). Members already shown may use it all.
    pub fn set_headroom(&mut self, bytes: usize) {
        self.headroom = bytes;
    }

    pub fn new(config: InterestConfig) -> Replicator {
        assert!(config.near_m <= config.mid_m && config.mid_m <= config.far_m);
        assert!(config.entities_max > 0);
        assert!(config.search_every_ticks > 0);
        Replicator {
            config,
            candidates: Vec::with_capacity(config.entities_max * 4),
            ranking: rank::Ranking::with_capacity(config.entities_max),
            wanted: Vec::with_capacity(config.entities_max),
            due: Vec::with_capacity(config.entities_max),
            fresh: Vec::with_capacity(config.entities_max),
            shown: Vec::with_capacity(config.entities_max),
            shown_ids: Vec::with_capacity(config.entities_max),
            members: Vec::with_capacity(config.entities_max),
            packed: None,
            packed_tick: None,
            records: Vec::new(),
            staged_baseline: Vec::with_capacity(config.entities_max),
            held: Held::with_capacity(config.entities_max),
            marks: Vec::with_capacity(config.entities_max),
            due_at: Vec::with_capacity(config.entities_max),
            removed: Vec::with_capacity(config.entities_max),
            result: Vec::with_capacity(config.entities_max),
            headroom: 0,
            owed: 0,
            partial: false,
            one_pass: true,
            counters: ReplicateCounters::default(),
        }
    }

    /// Whether a snapshot whose due members fit the budget is built in one pass (the
    /// default) or, like those that do not fit, staged: prioritised into a list, ranked,
    /// then encoded. The bytes are the same; the switch is there to compare the two (a
    /// test checks they agree, a bench times both).
    pub fn set_one_pass(&mut self, on: bool) {
        self.one_pass = on;
    }

    /// Whether the last [`Replicator::snapshot`] left out members of the client's interest
    /// set that it does not hold (fresh ones the budget or the datagram could not carry),
    /// or was built by a zone's run that has not heard from its peers yet
    /// ([`Zone::settled`]): the client's state after it is not the whole view yet
    /// (`DELTA_PARTIAL`).
    pub fn partial(&self) -> bool {
        self.partial
    }

    pub fn counters(&self) -> ReplicateCounters {
        self.counters
    }

    /// Copies the zone's positions (packed, cell-ordered) and every owned entity's record,
    /// once per zone tick.
    fn refresh(&mut self, zone: &Zone) {
        if self.packed_tick == Some(zone.tick_count()) {
            return;
        }
        let owned = zone.entities();
        let packed = self.packed.get_or_insert_with(|| Packed::new(zone.grid()));
        packed.refresh(zone.grid(), (owned.xs(), owned.ys()));
        // Every owned entity quantised once per tick, by slot: a client's members are
        // then one 32-byte load each instead of eight scattered column reads.
        fill_records(owned, &mut self.records);
        self.packed_tick = Some(zone.tick_count());
    }

    /// Reads ahead what the next [`Replicator::snapshot`] of `view` reads — its members
    /// and its baseline's records — one load per cache line, so they are on their way from
    /// the outer caches while the caller builds the snapshot before it. Call it for the
    /// next client just before building the current one's: a client's state (a few KB per
    /// tick, read once per tick) is cold by its next tick, and waiting for it line by line
    /// was half of `replicate/meridian/1000`. (The history slot the snapshot is stored in
    /// is written whole by a block copy, which needs no read ahead: see `store`.)
    pub fn warm(&self, view: &ClientView) {
        // One value folded from every line's load, kept alive once at the end.
        let mut fold = 0u64;
        for m in view.members.iter().step_by(4) {
            fold ^= m.id;
        }
        let (_, baseline) = view.baseline(0);
        fold ^= baseline.fold_lines();
        core::hint::black_box(fold);
    }

    /// Builds the snapshot of `tick` for the client whose avatar is at `(x, y)`: interest,
    /// priority, then the delta against its acknowledged baseline, encoded into `out` (the
    /// entries only, at most `out.len()` bytes). Returns the baseline used and what was
    /// encoded. The avatar itself is excluded (it travels in the header).
    ///
    /// Call it after the zone's tick and before anything else changes the zone: positions
    /// come from a copy taken at the first call after each tick.
    pub fn snapshot(
        &mut self,
        view: &mut ClientView,
        zone: &Zone,
        avatar: Option<u64>,
        (x, y): (f32, f32),
        tick: u32,
        out: &mut [u8],
    ) -> (Baseline, Encoded) {
        assert!(tick != 0, "tick 0 means 'no baseline'");
        let c = self.config;
        // The records of owned entities, once per zone tick (see `refresh`).
        self.refresh(zone);
        let moved = view.searched_at.is_none_or(|(sx, sy)| {
            (sx - x) * (sx - x) + (sy - y) * (sy - y) > c.search_move_m * c.search_move_m
        });
        let settled = zone.settled();
        let search = moved
            || view.members.is_empty()
            || (view.search_again && settled)
            || (tick.wrapping_add(view.phase)).is_multiple_of(c.search_every_ticks.max(1));
        if search {
            self.counters.searches += 1;
            view.searched_at = Some((x, y));
            view.search_again = !settled;
            // Start past where the last search reached: the client and the entities moved
            // since, and a second pass costs more than a slightly wider first one.
            let start = (view.reach_m + 2.0 * c.search_move_m) * 1.25;
            let room = out.len().saturating_sub(self.headroom);
            let displace = select::displaceable(room, view.owed_bytes);
            // Members chosen before the view could be whole lose their hysteresis once
            // it can be: in a settled run's searches, until each is kept on its merit.
            let unproven: &[u64] = if settled { &view.unproven } else { &[] };
            let members = (view.members.as_slice(), displace, unproven);
            view.reach_m = self.search(zone, members, avatar, (x, y), start);
            if settled {
                std::mem::swap(&mut view.unproven, &mut self.ranking.held_unproven);
            } else {
                view.unproven.clear();
                view.unproven.extend(self.candidates.iter().map(|k| k.id));
            }
        } else {
            self.follow(view, zone.entities(), zone.ghosts().entities(), (x, y));
        }
        // Newcomers held back (the client could not be told of more removals yet) leave
        // the view short of its nearest members: a client drawing the scene it had over a
        // new view must keep it until they are in, or each one it showed would be gone
        // for a snapshot and back (the rolling-restart demo's move home, at the cap).
        self.partial = search && view.drawn_over && self.ranking.held_back > 0;
        view.search_again |= self.partial;
        let limit = self.refill(view, out.len());
        // Usually everything due fits the budget: one pass decides and encodes. When it
        // does not, the pass gives up having changed nothing, and the staged path ranks
        // what fits first.
        let encoded = match self.one_pass(view, (zone, tick), limit, out) {
            Some(encoded) => encoded,
            None => {
                self.counters.staged += 1;
                let (removals, cost) = self.prioritise(view, zone);
                self.select_due(view, out.len(), limit, removals, cost);
                let (_, held) = view.baseline(zone.id().0);
                held.to_records(&mut self.staged_baseline);
                let encoded =
                    encode_delta(&self.staged_baseline, &self.wanted, out, &mut self.result);
                // Every member the client's state holds and the baseline lacks was sent.
                let sent = self.result.len() - (held.cores().len() - removals);
                self.owed = select::owed(removals, sent);
                if encoded.left_out > 0 {
                    self.counters.cut += u64::from(encoded.left_out);
                    self.retry_left_out(view);
                }
                self.held.assign(&self.result);
                self.stamp_staged(view, (zone.id().0, tick), encoded.left_out);
                encoded
            }
        };
        // A run that has not heard from its peers yet shows only part of the view.
        self.partial |= !settled;
        self.counters.partial += u64::from(self.partial);
        view.drawn_over &= self.partial;
        view.owed_bytes = self.owed;
        self.store(view, zone.id().0, tick, encoded)
    }

    /// Carries each member's priority over from the last tick (both lists sorted by id),
    /// adds its tier's weight, and marks the members this snapshot sends: those due and
    /// those the baseline lacks (*fresh*: the client's next state must have them); a
    /// marked member whose baseline record may hold an older sample than the newest sent
    /// is renewed if unchanged ([`pass::RENEW`]). Each member's record goes to `wanted`;
    /// the due list gets the marked ones with their priority (a due member's is reset to
    /// 0: [`Replicator::select_due`] undoes what the budget cannot carry). Returns how
    /// many of the baseline's records are no longer members (each a removal in the
    /// delta), what the marked ones are reckoned to cost, and how many of them the
    /// baseline lacks.
    fn prioritise(&mut self, view: &mut ClientView, zone: &Zone) -> (usize, (usize, usize)) {
        let (owned, ghosts) = (zone.entities(), zone.ghosts().entities());
        // The game's client fields are read per member (a state slot is a cache line; the
        // per-tick copy of every owned record leaves them out).
        let layout = zone.state_layout();
        let c = self.config;
        let (near2, mid2) = (c.near_m * c.near_m, c.mid_m * c.mid_m);
        self.wanted.clear();
        self.due.clear();
        self.fresh.clear();
        let (_, baseline) = view.baseline(zone.id().0);
        let baseline = baseline.cores();
        let (mut m, mut b, mut held, mut cost) = (0, 0, 0, 0);
        let old = &view.members;
        let members = &mut self.members;
        members.clear();
        for k in &self.candidates {
            while m < old.len() && old[m].id < k.id {
                m += 1;
            }
            let (carried, sampled) = if m < old.len() && old[m].id == k.id {
                (old[m].priority, old[m].sampled)
            } else {
                // New to interest: due at once, its sample unknown.
                (PRIORITY_DUE, samples::UNKNOWN)
            };
            while b < baseline.len() && baseline[b].id < k.id {
                b += 1;
            }
            let fresh = b >= baseline.len() || baseline[b].id != k.id;
            held += usize::from(!fresh);
            let weight = tier_weight(k.distance2, (near2, mid2));
            let priority = carried.saturating_add(weight);
            let due = fresh || priority >= PRIORITY_DUE;
            let renew = !fresh && baseline[b].sent != sampled;
            let record = if due {
                current_record(&self.records, (owned, ghosts), &layout, k.slot)
            } else {
                // A member not due keeps what the client holds: the encoder reads its id
                // alone.
                Record {
                    id: k.id,
                    ..Record::default()
                }
            };
            if due {
                self.due.push((priority, self.wanted.len() as u32));
                cost += select::cost(fresh, &record.game);
            }
            self.fresh.push(fresh);
            self.wanted.push(Wanted { record, due, renew });
            members.push(Member {
                id: k.id,
                slot: k.slot,
                priority: if due { 0 } else { priority },
                sampled,
            });
        }
        let removals = baseline.len() - held;
        std::mem::swap(&mut view.members, &mut self.members);
        (removals, (cost, self.candidates.len() - held))
    }

    /// Counts the snapshot of `tick` (its entries in `out`, the client's records after it
    /// in `result`) and stores its records in the client's history.
    fn store(
        &mut self,
        view: &mut ClientView,
        zone: u32,
        tick: u32,
        encoded: Encoded,
    ) -> (Baseline, Encoded) {
        let (baseline, _) = view.baseline(zone);
        if baseline.tick == 0 {
            self.counters.full += 1;
        } else if baseline.zone != zone {
            self.counters.carried += 1;
        }
        // The records were written into the scratch buffer (hot: every client's go there)
        // and are copied into the history slot in one block per column: whole cache lines
        // written in a row, which the processor need not read first. (Swapping the buffers
        // instead made every slot's old buffer the next client's scratch, cold unless
        // read ahead; the copy took 0.93× and 0.89× as long, whole `replicate_ticks` runs.)
        let k = view.slot_for(tick);
        view.budget_bytes -= encoded.bytes as i64;
        view.last_sent = tick;
        view.ticks[k] = tick;
        view.history[k].copy_from(&self.held);
        self.counters.snapshots += 1;
        self.counters.bytes += encoded.bytes as u64;
        self.counters.entries += u64::from(encoded.entries);
        (baseline, encoded)
    }
}
