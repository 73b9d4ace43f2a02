//! Samples: which state of a member the client draws.
//!
//! A client draws each entity's newest *sample* — the state the newest entry naming it
//! wrote (`meridian_protocol::delta`, "Samples") — so a member not due costs nothing and
//! shows the last state sent, whichever snapshot carried it. The server keeps, in each
//! snapshot's records, the tick of the sample each holds ([`super::held::Core`] `sent`), and in
//! each member its newest sample's ([`super::interest::Member`] `sampled`), both in 16
//! bits ([`tick16`]). They differ when a snapshot the client had not acknowledged when the
//! baseline was chosen sent a newer sample; a due member whose state is then the
//! baseline's is renewed ([`super::pass::RENEW`]), since the client may draw the newer
//! one. This module maps ticks and stamps the staged path's records (the encoder it
//! shares with the client knows nothing of ticks).

use super::{ClientView, Replicator};

/// A member's newest sample when it is not known (a member new to interest): it differs
/// from every record's `sent`, so the member is renewed when due.
pub(super) const UNKNOWN: u16 = u16::MAX;

/// A sample's tick as records and members keep it ([`super::held::Core`] `sent`,
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

impl Replicator {
    /// After the staged path's encode (`left_out`: entries it could not fit): each of the
    /// client's records gets the tick of the sample it holds — this tick where an entry
    /// wrote it, else the baseline's — and the members written get this tick as their
    /// newest sample. A renewal is an entry that leaves the record as it was; when
    /// entries were left out it counts as not written (the member stays renewable:
    /// a renewal too many, never one too few).
    pub(super) fn stamp_staged(
        &mut self,
        view: &mut ClientView,
        (zone, tick): (u32, u32),
        left_out: u32,
    ) {
        let mut members = std::mem::take(&mut view.members);
        let (_, baseline) = view.baseline(zone);
        let base = baseline.cores();
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
            core.sent = if written {
                members[w].sampled = now;
                now
            } else {
                kept.map_or(0, |b| base[b].sent)
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
