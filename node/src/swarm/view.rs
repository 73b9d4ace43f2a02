//! What each bot is shown, checked: no pop-in, no full scene after a handoff.
//!
//! - *pop-in*: an entity within the near radius of the avatar in one snapshot that is gone
//!   from the next and back in the one after (it flickered: hysteresis, interest across a
//!   border or the handoff lost it for a tick). Judged when the snapshot it was gone from
//!   and the one it is back in are less than a search interval apart: at the cap the
//!   interest set changes only when it is searched (every `search_every_ticks`), so an
//!   entity that left it is gone at least that long, and two snapshots farther apart —
//!   the bot got none in between: a handoff under way, a stalled worker, datagrams lost —
//!   cannot tell a flicker from an entity that left and came back. (A crowd of 1,000
//!   bots within 20 m over 100–140 ms round trips showed 0–3 such a run, all across 6–9
//!   ticks without a snapshot.)
//! - *handoff pop-in*: the first snapshot from the zone a REDIRECT named is full (sent
//!   against nothing: the scene is sent again, and the datagram cap spreads it over
//!   ticks). Its size against the median of the bot's last [`RECENT`] snapshots is
//!   measured, not judged: the carried baseline is about one round trip older than a
//!   steady-state one, so on a loaded machine (round trips of 80–120 ms) a correct delta
//!   against it reached 2.2× the median. The median of the recent ones, not of the whole
//!   session: a bot that walked from a quiet corner into a crowd would otherwise be
//!   measured against the corner.
//!   Not after a takeover's REDIRECT (the zone the bot is in, run by its standby now):
//!   the new run holds nothing of the bot's view and can only send against nothing; those
//!   first snapshots are counted apart, and what the library draws over them is judged
//!   for pop-in like any other.
//!
//! - *going back*: an NPC drawn (each entity at its newest sample, `Client::entities`) in
//!   a moving state it had before the one drawn before (A, B, then A again): the client
//!   was given an older state than one before it. A walking NPC never returns to exactly
//!   the same position and velocity (quantised to centimetres) within a few changes
//!   (players' avatars may: a bot's intent can flip back and forth around its target, so
//!   they are not judged); snapshots flagged partial (the datagram could not carry the
//!   whole view: among them a zone's new run's first, whose states come from an older
//!   copy) are neither judged nor remembered.
//!
//! All are client-side: the entity lists the library draws, snapshot after snapshot, are
//! all they need.

use meridian_client::Client;
use meridian_core::npc::NPC_KIND;
use meridian_core::replicate::InterestConfig;
use meridian_layouts::quant::dequantise_position;

/// Snapshots the median is taken over.
pub(super) const RECENT: usize = 32;

/// One bot's view checks.
#[derive(Debug)]
pub(super) struct ViewCheck {
    near_m: f32,
    /// Ticks between interest searches: the shortest an entity that left the set stays out.
    search_ticks: u32,
    /// Ids within the near radius in the newest snapshot (sorted).
    near: Vec<u64>,
    /// Ids that were near in the snapshot before and are missing from the newest; whether
    /// that snapshot was flagged partial, and how many entities it and the one before
    /// drew.
    vanished: Vec<u64>,
    vanished_in: (bool, [usize; 2]),
    /// How many entities the newest snapshot drew.
    drawn: usize,
    /// The last [`RECENT`] snapshots' sizes (a ring) and how many there were in all.
    sizes: [u16; RECENT],
    count: u32,
    /// A REDIRECT named this zone; its first snapshot is judged. `true`: a takeover (the
    /// zone the bot is in, now run by its standby).
    awaiting: Option<(u32, bool)>,
    /// The ticks of the two snapshots before the newest (the older first), and their zones.
    ticks: [u32; 2],
    zones: [u32; 2],
    /// Per entity of the newest snapshot (sorted by id), its last [`STATES`] distinct
    /// states, newest first; and the list being built.
    states: Vec<(u64, [State; STATES])>,
    next_states: Vec<(u64, [State; STATES])>,
    /// The client's partial snapshots so far (a new one: the newest was partial).
    partials: u64,
}

/// An entity's state as judged for going back: position and velocity, quantised.
type State = [i32; 4];

/// Distinct states remembered per entity.
const STATES: usize = 3;

/// The first snapshot after a handoff, against the bot's median.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Handoff {
    pub bytes: u16,
    pub median: u16,
    pub full: bool,
    /// The REDIRECT was a takeover's: the new run holds nothing of the bot's view, so its
    /// first snapshots are sent against nothing (the library draws the scene before over
    /// them; what it draws is judged for pop-in).
    pub takeover: bool,
}

/// What one snapshot showed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Seen {
    /// Entities that popped back in (the first of them, and how many), and the ticks of
    /// the three snapshots: held, gone, back (a gap between them: snapshots lost).
    pub popped: Option<u64>,
    pub pop_ins: u32,
    pub ticks: [u32; 3],
    pub zones: [u32; 3],
    /// Whether the snapshot without them was flagged partial, and how many entities the
    /// three drew (held, gone, back): a partial or shrunken one says the budget or the
    /// datagram left them out, a whole one of the usual size that interest dropped them.
    pub gone_partial: bool,
    pub drawn: [usize; 3],
    /// Entities shown going back (the first of them, and how many).
    pub went_back: Option<u64>,
    pub going_back: u32,
    /// The snapshot was the first of a new zone (once the median means something).
    pub handoff: Option<Handoff>,
}

impl ViewCheck {
    pub(super) fn new(interest: &InterestConfig) -> ViewCheck {
        ViewCheck {
            near_m: interest.near_m,
            search_ticks: interest.search_every_ticks,
            near: Vec::new(),
            vanished: Vec::new(),
            vanished_in: (false, [0; 2]),
            drawn: 0,
            sizes: [0; RECENT],
            count: 0,
            awaiting: None,
            ticks: [0; 2],
            zones: [0; 2],
            states: Vec::new(),
            next_states: Vec::new(),
            partials: 0,
        }
    }

    pub(super) fn redirected(&mut self, zone: u32, takeover: bool) {
        self.awaiting = Some((zone, takeover));
    }

    /// The client applied a new snapshot of `zone`, `bytes` long (`full`: against nothing).
    pub(super) fn snapshot(&mut self, client: &Client, zone: u32, bytes: u16, full: bool) -> Seen {
        let mut seen = Seen::default();
        if let Some((awaited, takeover)) = self.awaiting
            && awaited == zone
        {
            self.awaiting = None;
            if self.count as usize >= RECENT {
                seen.handoff = Some(Handoff {
                    bytes,
                    median: self.median(),
                    full,
                    takeover,
                });
            }
        }
        self.sizes[self.count as usize % RECENT] = bytes;
        self.count += 1;

        // What the bot draws (`Client::shown`): after a zone's new run, its first
        // snapshots are sent against nothing and the library draws the scene before on
        // until they hold it.
        let (_, records) = client.shown();
        let partial = client.counters().snapshots_partial != self.partials;
        let tick = client.authoritative().tick;
        let apart = tick.saturating_sub(self.ticks[1]);
        (seen.pop_ins, seen.popped) =
            popped_back(&self.vanished, records, apart, self.search_ticks);
        seen.zones = [self.zones[0], self.zones[1], zone];
        self.zones = [self.zones[1], zone];
        let (gone_partial, [held, gone]) = self.vanished_in;
        (seen.gone_partial, seen.drawn) = (gone_partial, [held, gone, records.len()]);
        seen.ticks = [self.ticks[0], self.ticks[1], tick];
        self.ticks = [self.ticks[1], tick];
        self.vanished.clear();
        for id in &self.near {
            if records.binary_search_by_key(id, |r| r.id).is_err() {
                self.vanished.push(*id);
            }
        }
        self.vanished_in = (partial, [self.drawn, records.len()]);
        self.drawn = records.len();
        self.judge_states(client, &mut seen);
        let at = client.authoritative().position;
        let near2 = self.near_m * self.near_m;
        self.near.clear();
        self.near.extend(records.iter().filter_map(|r| {
            let (dx, dy) = (
                dequantise_position(r.x) - at[0],
                dequantise_position(r.y) - at[1],
            );
            (dx * dx + dy * dy <= near2).then_some(r.id)
        }));
        seen
    }

    /// Going back: each entity of the newest snapshot against its last distinct states.
    fn judge_states(&mut self, client: &Client, seen: &mut Seen) {
        // A partial snapshot is neither judged nor remembered (see the module docs): after
        // a zone's new run its states come from the standby's older copy.
        let partials = client.counters().snapshots_partial;
        if partials != self.partials {
            self.partials = partials;
            return;
        }
        let (_, records) = client.entities();
        let (old, next) = (&self.states, &mut self.next_states);
        next.clear();
        let mut k = 0;
        for r in records {
            let state = [r.x, r.y, i32::from(r.vx), i32::from(r.vy)];
            while k < old.len() && old[k].0 < r.id {
                k += 1;
            }
            let mut states = [state; STATES];
            if let Some((_, before)) = old.get(k).filter(|(id, _)| *id == r.id)
                && before[0] != state
            {
                // Only NPCs: a player's avatar follows its bot's intent, which may flip
                // back and forth around a target (the tag pattern's chase), and then it
                // does pass through the same state twice.
                let moving = r.vx != 0 || r.vy != 0;
                if moving && r.kind == NPC_KIND && before[1..].contains(&state) {
                    seen.going_back += 1;
                    seen.went_back.get_or_insert(r.id);
                }
                states[1..].copy_from_slice(&before[..STATES - 1]);
            } else if let Some((_, before)) = old.get(k).filter(|(id, _)| *id == r.id) {
                states = *before;
            }
            next.push((r.id, states));
        }
        std::mem::swap(&mut self.states, &mut self.next_states);
    }

    /// The median size of the last [`RECENT`] snapshots.
    fn median(&self) -> u16 {
        let mut sorted = self.sizes;
        sorted.sort_unstable();
        sorted[RECENT / 2]
    }
}

/// The entities of `vanished` (near in one snapshot, gone from the next) that `drawn` (the
/// one after, sorted by id) shows again: how many, and the first. `apart`: ticks from the
/// snapshot they were gone from to this one (zones tick on one clock, to within a tick or
/// two: also across a handoff). Only a return less than `search_ticks` after is a pop-in
/// (see the module docs).
fn popped_back(
    vanished: &[u64],
    drawn: &[meridian_client::Record],
    apart: u32,
    search_ticks: u32,
) -> (u32, Option<u64>) {
    if apart >= search_ticks {
        return (0, None);
    }
    let mut back = vanished
        .iter()
        .filter(|id| drawn.binary_search_by_key(*id, |r| r.id).is_ok());
    let first = back.next().copied();
    (u32::from(first.is_some()) + back.count() as u32, first)
}

/// Remote entities as the client library draws them (`Client::render_remote`), frame
/// after frame: none may move farther between two frames than its speed allows. The
/// library bends a track toward a late correction at most at twice the entity's speed, on
/// a drawing clock that runs up to 5 % fast while its delay shrinks, so the bound is 2.1 ×
/// the fastest speed over the time between the two frames, plus a centimetre of
/// quantisation. That time is the one the library was given (`now`), not the worker's
/// wall clock at the start of its loop: a worker that stalls part-way through its bots
/// would otherwise hand a bot a longer frame than it is judged by (a loaded CI machine
/// flagged 1.4 m moves against 1.3–1.4 m allowed that way).
/// Entities drawn in only one of two frames are not judged.
#[derive(Debug, Default)]
pub(super) struct Frames {
    drawn: std::collections::HashMap<u64, [f32; 2]>,
    next: std::collections::HashMap<u64, [f32; 2]>,
    at: Option<meridian_client::Instant>,
    /// The largest move between two frames seen, as a share of what was allowed.
    pub worst_share: f32,
}

/// How many times its speed a drawn entity may move: the library's bend (2×) on a drawing
/// clock up to 5 % fast (`client/src/motion.rs`).
const BEND_SPEEDS: f32 = 2.0 * 1.05;

/// What one frame showed: the entity that jumped most past its allowance, if any.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Jump {
    pub id: u64,
    pub moved_m: f32,
    pub allowed_m: f32,
}

impl Frames {
    /// Draws a frame of `client` at `now`; `speed_mps`: the fastest anything moves.
    pub(super) fn frame(
        &mut self,
        client: &mut Client,
        now: meridian_client::Instant,
        speed_mps: f32,
    ) -> Option<Jump> {
        let dt = self
            .at
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f32());
        self.at = Some(now);
        let allowed = BEND_SPEEDS * speed_mps * dt + 0.01;
        let (drawn, next) = (&self.drawn, &mut self.next);
        next.clear();
        let mut worst: Option<Jump> = None;
        client.render_remote(now, |id, p| {
            next.insert(id, p);
            if let Some(q) = drawn.get(&id) {
                let moved = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
                if moved > allowed && worst.is_none_or(|w| moved > w.moved_m) {
                    worst = Some(Jump {
                        id,
                        moved_m: moved,
                        allowed_m: allowed,
                    });
                }
                if dt > 0.0 {
                    self.worst_share = self.worst_share.max(moved / allowed);
                }
            }
        });
        std::mem::swap(&mut self.drawn, &mut self.next);
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::popped_back;
    use meridian_client::Record;

    fn drawn(ids: &[u64]) -> Vec<Record> {
        ids.iter()
            .map(|&id| Record {
                id,
                ..Record::default()
            })
            .collect()
    }

    /// Gone for one snapshot and back in the next: a pop-in, also across a lost snapshot
    /// or two; gone across as many ticks as a search interval
    /// (the bot got no snapshot in between), not judged: the entity may have left the
    /// interest set at one search and come back at the next.
    #[test]
    fn a_return_within_a_search_interval_is_a_pop_in() {
        let (vanished, back) = ([5, 9, 40], drawn(&[1, 5, 9, 12]));
        assert_eq!(popped_back(&vanished, &back, 1, 6), (2, Some(5)));
        assert_eq!(popped_back(&vanished, &back, 5, 6), (2, Some(5)));
        assert_eq!(popped_back(&vanished, &back, 6, 6), (0, None));
        assert_eq!(popped_back(&vanished, &back, 9, 6), (0, None));
        assert_eq!(popped_back(&[40], &back, 1, 6), (0, None));
    }
}
