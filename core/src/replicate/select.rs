//! What one snapshot carries when the client's byte budget cannot carry everything.
//!
//! A member the client does not hold yet (*fresh*: not in the baseline) must be sent, or
//! the client's next state lacks it: it is sent whatever its priority. A member the client
//! holds is sent when it is due (its priority reached [`PRIORITY_DUE`]). When they do not
//! all fit the budget, fresh ones go first — those the newest snapshot already carried
//! first (the client most likely holds it; offering others instead would make what it
//! shows flicker until it acknowledges one; after a handoff, those the other zone's newest
//! snapshot carried), then the nearest — then the due ones, most urgent and then nearest
//! first. The rest wait: a due one left out stays due (the client draws its newest sample
//! meanwhile). Fresh members the newest snapshot carried go even past the budget, up to a
//! datagram (the budget goes into debt and the next snapshots are smaller): while
//! acknowledgements lag, every snapshot must carry them again, and one that could not
//! would blink them out.
//!
//! A session's first snapshots are the extreme case: nothing is acknowledged, every member
//! is fresh, and the budget carries a few dozen. They are the same few dozen, nearest
//! first, until the client acknowledges one and deltas fill in the rest.

use super::{ClientView, PRIORITY_DUE, Replicator};

/// What an entry is reckoned to cost when choosing what fits: an update of a moving
/// entity (position and velocity deltas), and a new entity (every standard field; its
/// game fields are added, [`game_bytes`]). The encoder enforces the exact limit.
const UPDATE_BYTES: usize = 6;
pub(super) const FRESH_BYTES: usize = 20;
/// A removal: the id gap and the op. Removals are always written (the encoder has the
/// datagram): cutting one in some snapshots and not others, all against one old baseline,
/// would make an entity that left the client's view come and go.
pub(super) const REMOVE_BYTES: usize = 4;

/// What a snapshot owes its successor against the same baseline (see
/// `ClientView::owed_bytes`): `removals` removals and `sent` members in full.
pub(super) fn owed(removals: usize, sent: usize) -> usize {
    removals * REMOVE_BYTES + sent * FRESH_BYTES
}

/// The most a snapshot may owe its successor once it has shown the client members it was
/// not shown before: its `room` less a sixteenth. A member shown once must be sent again in
/// full, and a removal written again, in every snapshot until the client acknowledges
/// one that holds them (a round trip and more); if they outgrow the datagram, what was
/// shown is left out — drawn, gone, back. The sixteenth is room for what the next
/// searches add meanwhile ([`displaceable`] bounds their removals; a member that leaves
/// and comes back within a round trip is owed in full again against a newer baseline,
/// which no cheap reckoning foresees).
pub(super) fn owed_max(room: usize) -> usize {
    room - room / 16
}

/// How many members a search may displace when the newest snapshot owes its successor
/// `owed` bytes of its `room`: each one the client holds becomes a removal every snapshot
/// owes until the client acknowledges one without it. Past that, members stay and
/// newcomers wait (found in a swarm's crowd, where half the nearest 128 change within a
/// round trip: the datagram filled with what it owed, and members shown a tick before
/// were left out).
pub(super) fn displaceable(room: usize, owed: usize) -> usize {
    room.saturating_sub(owed) / REMOVE_BYTES
}

/// What a new entity's game fields add: the game mask and a varint per nonzero field.
/// (Left out, a game whose players carry a few fields made every fresh entry a quarter
/// larger than reckoned: a session's first, all-fresh snapshots overflowed the datagram
/// and the encoder cut the highest ids, shown a tick before — a pop-in.)
fn game_bytes(game: &[i32; meridian_protocol::delta::GAME_FIELDS]) -> usize {
    use meridian_protocol::delta::{varint_len, zigzag};
    let sum: usize = game
        .iter()
        .filter(|&&v| v != 0)
        .map(|&v| varint_len(zigzag(i64::from(v))))
        .sum();
    if sum == 0 { 0 } else { 1 + sum }
}

/// What an entry is reckoned to cost (see [`UPDATE_BYTES`]).
#[inline(always)]
pub(super) fn cost(fresh: bool, game: &[i32; meridian_protocol::delta::GAME_FIELDS]) -> usize {
    if fresh {
        FRESH_BYTES + game_bytes(game)
    } else {
        UPDATE_BYTES
    }
}

impl Replicator {
    /// The byte budget, a token bucket of bytes per tick holding at most one datagram of
    /// `datagram_bytes`, refilled for this tick. Returns what the marks of this snapshot
    /// may cost before they must be ranked ([`Replicator::select_due`]): the budget, and
    /// never the headroom (see [`Replicator::set_headroom`]).
    pub(super) fn refill(&self, view: &mut ClientView, datagram_bytes: usize) -> usize {
        let c = self.config;
        let per_tick = i64::from(c.bytes_per_second / c.tick_hz.max(1));
        view.budget_bytes = (view.budget_bytes + per_tick).min(datagram_bytes as i64);
        let room = (view.budget_bytes.max(0) as usize).min(datagram_bytes);
        room.min(datagram_bytes.saturating_sub(self.headroom))
    }

    /// Keeps the marks [`Replicator::prioritise`] made (`removals` baseline records
    /// leave; the marked members `marked` bytes, and how many of them the client does
    /// not hold) when they fit `limit` (from [`Replicator::refill`]) and what the next
    /// snapshots owe fits [`owed_max`], else ranks them and keeps what fits (the others
    /// wait, their priority restored). The encoder then has the whole datagram: the
    /// estimate chose what this snapshot sends, and capping the encoder at the budget
    /// would let it cut what the estimate got wrong in id order — the highest ids, fresh
    /// members shown a tick ago among them: a pop-in. What is sent past the budget is
    /// charged to it (debt), so the rate holds over a few ticks.
    pub(super) fn select_due(
        &mut self,
        view: &mut ClientView,
        datagram_bytes: usize,
        limit: usize,
        removals: usize,
        marked: (usize, usize),
    ) {
        let removals = removals * REMOVE_BYTES;
        let owed_max = owed_max(datagram_bytes.saturating_sub(self.headroom));
        // Reckoned as the one pass does (`owed`), so both paths choose alike.
        let (marked, fresh) = marked;
        if removals + marked > limit || owed(removals / REMOVE_BYTES, fresh) > owed_max {
            // Unmarked, ranked, and marked again as far as they fit.
            for &(priority, index) in &self.due {
                self.wanted[index as usize].due = false;
                view.members[index as usize].priority = priority;
            }
            self.rank_due(view);
            let mut used = removals;
            let before = self.due.len();
            let (fresh, shown, wanted) = (&self.fresh, &self.shown, &self.wanted);
            let (partial, blinked) = (&mut self.partial, &mut self.counters.blinked);
            self.due.retain(|&(_, i)| {
                let i = i as usize;
                let c = cost(fresh[i], &wanted[i].record.game);
                // What the newest snapshot showed the client and it may not hold yet is
                // shown again even past the budget (up to a datagram; the budget goes
                // into debt): leaving it out once would make it blink out and back.
                // Others only into what leaves the headroom (`set_headroom`), and new
                // ones only into what the next snapshots can owe (`owed_max`): they must
                // have the room to show them again.
                let room = match (shown[i], fresh[i]) {
                    (true, _) => datagram_bytes,
                    (false, true) => limit.min(owed_max),
                    (false, false) => limit,
                };
                let fits = used + c <= room;
                used += if fits { c } else { 0 };
                // A fresh member left out: the client's state is not the whole view.
                *partial |= !fits && fresh[i];
                *blinked += u64::from(!fits && shown[i]);
                fits
            });
            self.counters.deferred += (before - self.due.len()) as u64;
            for &(_, index) in &self.due {
                self.wanted[index as usize].due = true;
                view.members[index as usize].priority = 0;
            }
        }
    }

    /// Orders the due list when it does not all fit: fresh members first (those the
    /// newest snapshot carried first, then the nearest), then the others by priority,
    /// then distance.
    fn rank_due(&mut self, view: &ClientView) {
        let (wanted, fresh) = (&self.wanted, &self.fresh);
        let before = shown_before(view);
        self.shown.clear();
        self.shown.extend(
            wanted
                .iter()
                .zip(fresh)
                .map(|(w, &f)| f && before(w.record.id)),
        );
        let (shown, candidates) = (&self.shown, &self.candidates);
        let distance = |i: u32| candidates[i as usize].distance2;
        self.due.sort_unstable_by(|&(pa, a), &(pb, b)| {
            let (fa, fb) = (fresh[a as usize], fresh[b as usize]);
            fb.cmp(&fa)
                .then_with(|| {
                    if fa && fb {
                        shown[b as usize].cmp(&shown[a as usize])
                    } else {
                        pb.cmp(&pa)
                    }
                })
                .then_with(|| distance(a).total_cmp(&distance(b)))
        });
    }

    /// After an encode that left entries out (the estimate was short): the due members
    /// the client did not get stay due for the next snapshot.
    pub(super) fn retry_left_out(&mut self, view: &mut ClientView) {
        let result = &self.result;
        let mut cut_shown = 0;
        let mut r = 0;
        for (i, w) in self.wanted.iter().enumerate() {
            if !w.due {
                continue;
            }
            while r < result.len() && result[r].id < w.record.id {
                r += 1;
            }
            let sent = r < result.len() && result[r] == w.record;
            if !sent {
                view.members[i].priority = PRIORITY_DUE;
                self.partial |= self.fresh[i];
                cut_shown += u64::from(self.fresh[i] && shown_before(view)(w.record.id));
            }
        }
        self.counters.blinked += cut_shown;
    }
}

/// Whether the client's newest snapshot showed an entity, by id — this zone's last one,
/// or right after a handoff (this zone has shown nothing yet) what the zone the client
/// came from said its newest snapshot showed.
fn shown_before(view: &ClientView) -> impl Fn(u64) -> bool + '_ {
    let last = view.stored(view.last_sent).unwrap_or(&super::held::NOTHING);
    move |id| last.find(id).is_some() || view.foreign_shown.binary_search(&id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::game_bytes;
    use meridian_protocol::delta::{Record, Wanted, encode_delta};

    /// What the encoder writes for a new entity with these game fields, beyond one
    /// without.
    fn written(game: [i32; 4]) -> usize {
        let (mut out, mut result) = ([0u8; 128], Vec::new());
        let mut size = |game| {
            let record = Record {
                id: 9,
                x: 1_000,
                game,
                ..Record::default()
            };
            let want = Wanted {
                record,
                due: true,
                renew: false,
            };
            encode_delta(&[], &[want], &mut out, &mut result).bytes
        };
        size(game) - size([0; 4])
    }

    #[test]
    fn game_fields_are_reckoned_as_the_encoder_writes_them() {
        for game in [
            [0; 4],
            [3, 0, 0, 0],
            [-64, 64, 0, 0],
            [0, 0, 0, i32::MIN],
            [i32::MAX, -1, 1, 8_191],
        ] {
            assert_eq!(game_bytes(&game), written(game), "{game:?}");
        }
    }
}
