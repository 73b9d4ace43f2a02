//! Continuity at handoff: a client's replication state — the baseline it acknowledged,
//! its interest members and their priorities, its byte budget — written as the stream of
//! a VIEW by the zone that hands the avatar away ([`Replicator::carry`]) and installed
//! by the zone that receives it ([`Replicator::install`]). The receiver's snapshots are
//! then deltas against the baseline from the other zone until the client acknowledges
//! one of its own, and the members keep their priorities: the first snapshot after a
//! handoff costs what any other does instead of a full scene spread over several ticks.
//!
//! The stream's format is in [`meridian_layouts::view`].

use meridian_layouts::view::VIEW_STREAM_MAX;
use meridian_protocol::delta::{Wanted, apply_delta, encode_delta, get_varint, put_varint};

use super::interest::{GHOST_BIT, Member};
use super::{Baseline, ClientView, Replicator};

/// A baseline may hold more records than the interest cap (removals the budget left out
/// stay until they fit); installing takes at most this many per member of the cap.
pub(super) const RECORDS_MAX_PER_MEMBER: usize = 2;

/// A member's byte in the stream: its priority (at most [`PRIORITY_MAX`], which says
/// the carried baseline lacks its newest sample), and this bit when the sender's newest
/// snapshot showed it.
const SHOWN_BIT: u8 = 0x80;
const PRIORITY_MAX: u16 = 0x7f;

/// What a VIEW carries besides its stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Carried {
    /// The snapshot the stream's records are (never tick 0).
    pub baseline: Baseline,
    pub budget_bytes: i32,
    pub reach_m: f32,
    /// Where the client's last interest search was made.
    pub searched_at: (f32, f32),
    /// No snapshot of the view was whole yet (see `ClientView::drawn_over`): the client
    /// may still draw the scene it had before over it, so the receiver flags its
    /// snapshots partial while a search holds newcomers back.
    pub drawn_over: bool,
    /// The view's last search did not find the whole view (see `ClientView::search_again`):
    /// the receiver searches again once its run is settled, as the sender would have.
    pub search_again: bool,
}

/// Why a state was not carried or not installed. `Copy`: counted, not formatted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CarryError {
    /// The client holds no baseline this view knows of: nothing worth carrying.
    NoBaseline,
    /// The state does not fit [`VIEW_STREAM_MAX`] bytes, or this zone's interest cap.
    TooLarge,
    /// The stream does not parse: bad varints, ids out of order, bad entries, bytes left.
    Malformed,
    /// The view already has a baseline of this zone: the carried one is older.
    Stale,
}

impl Replicator {
    /// Writes `view`'s state into `out` (at least [`VIEW_STREAM_MAX`] bytes) as a VIEW
    /// stream, for the zone its avatar is handed to; `zone` is this zone. Returns what
    /// the VIEW's header carries and the stream's length.
    pub fn carry(
        &mut self,
        view: &ClientView,
        zone: u32,
        out: &mut [u8],
    ) -> Result<(Carried, usize), CarryError> {
        let (baseline, records) = view.baseline(zone);
        let Some(searched_at) = view.searched_at.filter(|_| baseline.tick != 0) else {
            return Err(CarryError::NoBaseline);
        };
        let out = &mut out[..VIEW_STREAM_MAX];
        // The members (at most 11 bytes each) must fit before the records; the records
        // stop where the stream is full (`left_out`).
        let members = &view.members;
        let mut at = 0;
        if members.len() * 11 + 20 > out.len() {
            return Err(CarryError::TooLarge);
        }
        put_varint(out, &mut at, members.len() as u64);
        let newest = view.stored(view.last_sent).unwrap_or(&super::held::NOTHING);
        let (cores, mut b) = (records.cores(), 0);
        let mut previous = 0;
        for m in members {
            put_varint(out, &mut at, m.id - previous);
            let shown = newest.find(m.id).is_some();
            while b < cores.len() && cores[b].id < m.id {
                b += 1;
            }
            // A member whose newest sample the carried baseline lacks goes with the
            // highest priority, which the receiver takes as "behind": the client may draw
            // that sample, so the receiver renews the member when it next sends it (see
            // `pass::RENEW`).
            let held = cores.get(b).filter(|c| c.id == m.id);
            let behind = held.is_some_and(|c| c.sent != m.sampled);
            let priority = if behind {
                PRIORITY_MAX
            } else {
                m.priority.min(PRIORITY_MAX - 1)
            };
            out[at] = priority.min(PRIORITY_MAX) as u8 | if shown { SHOWN_BIT } else { 0 };
            at += 1;
            previous = m.id;
        }
        put_varint(out, &mut at, records.len() as u64);
        self.wanted.clear();
        self.wanted.extend((0..records.len()).map(|i| Wanted {
            record: records.record(i),
            due: true,
            renew: false,
        }));
        let encoded = encode_delta(&[], &self.wanted, &mut out[at..], &mut self.result);
        if encoded.left_out > 0 {
            return Err(CarryError::TooLarge);
        }
        let carried = Carried {
            baseline,
            budget_bytes: view
                .budget_bytes
                .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            reach_m: view.reach_m,
            searched_at,
            drawn_over: view.drawn_over,
            search_again: view.search_again,
        };
        Ok((carried, at + encoded.bytes))
    }

    /// Installs a state another zone carried into `view` (a session that just arrived
    /// here): its snapshots are deltas against `carried.baseline` until the client
    /// acknowledges one of this zone's. On an error the view is as it was.
    pub fn install(
        &mut self,
        view: &mut ClientView,
        carried: &Carried,
        stream: &[u8],
    ) -> Result<(), CarryError> {
        if view.acked_tick != 0 {
            return Err(CarryError::Stale);
        }
        let cap = self.config.entities_max;
        let mut at = 0;
        let count = get_varint(stream, &mut at).map_err(|_| CarryError::Malformed)?;
        if count > cap as u64 {
            return Err(CarryError::TooLarge);
        }
        self.members.clear();
        self.shown_ids.clear();
        let mut previous = None;
        for _ in 0..count {
            let gap = get_varint(stream, &mut at).map_err(|_| CarryError::Malformed)?;
            let id = previous
                .unwrap_or(0u64)
                .checked_add(gap)
                .filter(|&id| previous.is_none_or(|p| id > p))
                .ok_or(CarryError::Malformed)?;
            let byte = *stream.get(at).ok_or(CarryError::Malformed)?;
            at += 1;
            previous = Some(id);
            if byte & SHOWN_BIT != 0 {
                self.shown_ids.push(id);
            }
            let priority = u16::from(byte & !SHOWN_BIT);
            // The slot is unknown here: an out-of-range ghost slot makes the search look
            // the id up (the first snapshot searches anyway).
            self.members.push(Member {
                id,
                slot: GHOST_BIT | (u32::MAX >> 1),
                priority: priority.min(PRIORITY_MAX - 1),
                // The carried records' samples are 0 (not known): a member sent behind
                // (`PRIORITY_MAX`) gets a sample no record holds, so it is renewed when
                // it is next sent.
                sampled: u16::from(priority == PRIORITY_MAX),
            });
        }
        let records = get_varint(stream, &mut at).map_err(|_| CarryError::Malformed)?;
        if records > (RECORDS_MAX_PER_MEMBER * cap) as u64 {
            return Err(CarryError::TooLarge);
        }
        apply_delta(&[], &stream[at..], records as u16, &mut self.result)
            .map_err(|_| CarryError::Malformed)?;
        std::mem::swap(&mut view.members, &mut self.members);
        view.foreign_records.assign(&self.result);
        std::mem::swap(&mut view.foreign_shown, &mut self.shown_ids);
        view.foreign = Some((carried.baseline.zone, carried.baseline.tick));
        // The members are followed from where the last search was made, as the zone they
        // came from would have: a search now would change the set in the very snapshot
        // that should cost what any other does.
        view.searched_at = Some(carried.searched_at);
        view.reach_m = carried.reach_m;
        // Unless the last search there did not find the whole view (its run lacked its
        // peers' ghosts, or it held newcomers back): followed, the members would go out
        // without the rest — in a snapshot flagged whole, once this run is settled, while
        // the client may still draw a scene before over the view (no snapshot of it was
        // whole yet), which it would then let go of and get back a search later. Searched
        // again as soon as this run is settled, and flagged partial while no snapshot is
        // whole and a search holds newcomers back: as over there.
        view.drawn_over = carried.drawn_over;
        view.search_again = carried.search_again;
        view.unproven.clear();
        if carried.search_again {
            view.unproven.extend(view.members.iter().map(|m| m.id));
        }
        // At most one datagram's worth either way: a peer cannot grant a flood.
        let datagram = meridian_layouts::client::CLIENT_DATAGRAM_MAX as i64;
        view.budget_bytes = i64::from(carried.budget_bytes).clamp(-datagram, datagram);
        Ok(())
    }
}
