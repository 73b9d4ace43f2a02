//! Samples: which state of a member the client draws.
//!
//! A client draws each entity's newest *sample* — the state the newest entry naming it
//! wrote (`meridian_protocol::delta`, "Samples") — so a member not due costs nothing and
//! shows the last state sent, whichever snapshot carried it. The server names each state
//! it sends of a member: the tick, in 16 bits ([`tick16`]), of the entry that first sent
//! that state — a new name only when the state differs from the member's newest, so an
//! entity that stands still keeps one name however often it is introduced again while
//! acknowledgements lag. Each snapshot's records keep the name of the state they hold
//! ([`super::held::Core`] `sent`), each member its newest's ([`super::interest::Member`]
//! `sampled`). When they differ the client may draw another state than the baseline's (one
//! sent since, possibly in a snapshot that was lost, between two others), so a due member
//! whose state is the baseline's is sent all the same — a renewal
//! ([`super::pass::RENEW`]) — until a baseline holds its newest name. [`Samples`] finds
//! the state a name stands for, to tell whether an entry sends a new one.

use meridian_protocol::delta::Record;

use super::HISTORY;
use super::held::{self, Held};
use super::{ClientView, Replicator};

/// A member's newest sample when it is not known (a member new to interest): it differs
/// from every record's `sent`, so the member is renewed when due.
pub(super) const UNKNOWN: u16 = u16::MAX;

/// A state's name as records and members keep it ([`super::held::Core`] `sent`,
/// [`super::interest::Member`] `sampled`): 16 bits, 0 only for tick 0 (no sample known:
/// records carried from another zone), never [`UNKNOWN`] — ticks 1, 65,535, 131,069 …
/// map to 1 — compared for equality only: two ticks 65,534 apart look the same, far past
/// the [`super::HISTORY`] snapshots a baseline can be. Mapped once per snapshot, never per
/// member (the division cost the one pass 1.2×).
#[inline(always)]
pub(super) fn tick16(tick: u32) -> u16 {
    if tick == 0 {
        0
    } else {
        ((tick - 1) % 65_534 + 1) as u16
    }
}

/// Finds the state a member's newest name stands for ([`Samples::named`]), asked in
/// increasing id order: in the newest snapshot (one walk of it), else in the snapshot
/// that first sent it.
pub(super) struct Samples<'a> {
    view: &'a ClientView,
    newest: &'a Held,
    at: usize,
}

impl<'a> Samples<'a> {
    pub(super) fn new(view: &'a ClientView) -> Samples<'a> {
        let newest = view.stored(view.last_sent).unwrap_or(&held::NOTHING);
        Samples {
            view,
            newest,
            at: 0,
        }
    }

    /// The name an entry sending `record` gives the state: the member's newest
    /// (`sampled`) if that name stands for this very state, else `now` (a new one; also
    /// when the named state is no longer kept, or the member is new: a name too many is a
    /// renewal or two more, never a state drawn wrongly).
    pub(super) fn named(&mut self, record: &Record, sampled: u16, now: u16) -> u16 {
        if sampled == UNKNOWN || sampled == 0 {
            return now;
        }
        let cores = self.newest.cores();
        while self.at < cores.len() && cores[self.at].id < record.id {
            self.at += 1;
        }
        let same = match cores.get(self.at) {
            Some(c) if c.id == record.id && c.sent == sampled => {
                self.newest.record(self.at) == *record
            }
            _ => self.view.sample(record.id, sampled) == Some(*record),
        };
        if same { sampled } else { now }
    }
}

impl ClientView {
    /// The state of entity `id` named `sampled`, as the snapshot that first sent it holds
    /// it (that snapshot's tick in 16 bits). `None` once that snapshot is no longer kept.
    fn sample(&self, id: u64, sampled: u16) -> Option<Record> {
        let k = (0..HISTORY)
            .filter(|&k| self.ticks[k] != 0 && tick16(self.ticks[k]) == sampled)
            .max_by_key(|&k| self.ticks[k])?;
        let records = &self.history[k];
        let i = records.find(id)?;
        (records.cores()[i].sent == sampled).then(|| records.record(i))
    }
}

impl Replicator {
    /// After the staged path's encode (`left_out`: entries it could not fit): each of the
    /// client's records gets the name of the state it holds — an entry's ([`Samples::named`])
    /// where an entry wrote it, else the baseline's — and the members written their newest
    /// name. A renewal is an entry that leaves the record as it was; when entries were left
    /// out it counts as not written (the member stays renewable: a renewal too many, never
    /// one too few).
    pub(super) fn stamp_staged(
        &mut self,
        view: &mut ClientView,
        (zone, tick): (u32, u32),
        left_out: u32,
    ) {
        let mut members = std::mem::take(&mut view.members);
        let (_, baseline) = view.baseline(zone);
        let base = baseline.cores();
        let mut samples = Samples::new(view);
        let (cores, _) = self.held.written();
        let (wanted, records) = (&self.wanted, &self.staged_baseline);
        let now = tick16(tick);
        let (mut w, mut b) = (0, 0);
        for (core, r) in cores.iter_mut().zip(&self.result) {
            while w < wanted.len() && wanted[w].record.id < r.id {
                w += 1;
            }
            while b < base.len() && base[b].id < r.id {
                b += 1;
            }
            let sent = wanted
                .get(w)
                .filter(|want| want.record.id == r.id && want.due && want.record == *r);
            let kept = (b < base.len() && base[b].id == r.id).then_some(b);
            let written = match (sent, kept) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(want), Some(b)) if records[b] == *r => {
                    let renewed = want.renew && left_out == 0;
                    self.counters.renewals += u64::from(renewed);
                    renewed
                }
                (Some(_), Some(_)) => true,
            };
            core.sent = match (written, kept) {
                (true, Some(b)) if records[b] != *r => {
                    // An update: a state the baseline does not hold, named anew.
                    members[w].sampled = now;
                    now
                }
                (true, _) => {
                    let name = samples.named(r, members[w].sampled, now);
                    members[w].sampled = name;
                    name
                }
                (false, kept) => kept.map_or(0, |b| base[b].sent),
            };
        }
        view.members = members;
    }
}

#[cfg(test)]
mod tests {
    use super::{UNKNOWN, tick16};

    /// 0 is "no sample" and only tick 0 maps there, nothing maps to "unknown"; neighbouring
    /// ticks never look alike, across the wrap either.
    #[test]
    fn sixteen_bit_ticks_never_say_unknown_and_tell_neighbours_apart() {
        assert_eq!(tick16(0), 0);
        for t in [
            1u32,
            2,
            65_533,
            65_534,
            65_535,
            65_536,
            131_068,
            131_069,
            u32::MAX - 1,
        ] {
            assert_ne!(tick16(t), 0, "{t}");
            assert_ne!(tick16(t), UNKNOWN, "{t}");
            assert_ne!(tick16(t), tick16(t + 1), "{t}");
        }
        assert_eq!(tick16(65_535), tick16(1));
        assert_ne!(tick16(u32::MAX), 0);
        assert_ne!(tick16(u32::MAX), UNKNOWN);
    }
}
