//! Samples: what a due member is sent, recorded so it can be sent again.
//!
//! A snapshot's records carry the tick of the sample each holds ([`held::Core`] `sent`),
//! and each member its newest sample's ([`super::interest::Member`] `sampled`), both in
//! 16 bits ([`tick16`]). A baseline record whose sample is not the member's newest is sent
//! the newest again ([`super::pass::RESEND`]); this module finds it, and stamps the
//! staged path's records (the encoder it shares with the client knows nothing of ticks).

use meridian_protocol::delta::Record;

use super::held::{self, Held};
use super::{ClientView, HISTORY, Replicator};

/// A sample's tick as records and members keep it ([`held::Core`] `sent`,
/// [`super::interest::Member`] `sampled`): 16 bits, 0 only for tick 0 (no sample known) —
/// ticks 1, 65,536, 131,071 … map to 1, so a sample is never taken for "not known" —
/// compared for equality only: two ticks 65,535 apart look the same, far past the
/// [`HISTORY`] snapshots a baseline can be. Mapped once per snapshot, never per member
/// (the division cost the one pass 1.2×).
#[inline(always)]
pub(super) fn tick16(tick: u32) -> u16 {
    if tick == 0 {
        0
    } else {
        ((tick - 1) % 65_535 + 1) as u16
    }
}

/// Finds members' newest samples to send again ([`super::pass::RESEND`]), asked in
/// increasing id order: in the newest snapshot, which carries the newest sample of every
/// member it did not leave out (one walk of it), else in whichever snapshot sent it.
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

    /// The newest sample of `id` (`sampled`: its tick in 16 bits).
    pub(super) fn find(&mut self, id: u64, sampled: u16) -> Option<Record> {
        let cores = self.newest.cores();
        while self.at < cores.len() && cores[self.at].id < id {
            self.at += 1;
        }
        match cores.get(self.at) {
            Some(c) if c.id == id && c.sent != 0 && c.sent == sampled => {
                Some(self.newest.record(self.at))
            }
            _ => self.view.sample(id, sampled),
        }
    }
}

impl ClientView {
    /// The newest sample of entity `id` the client was sent, as the snapshot that sent it
    /// holds it (`sampled`: that snapshot's tick in 16 bits). `None` once that snapshot is
    /// no longer kept.
    pub(super) fn sample(&self, id: u64, sampled: u16) -> Option<Record> {
        let k = (0..HISTORY)
            .filter(|&k| self.ticks[k] != 0 && tick16(self.ticks[k]) == sampled)
            .max_by_key(|&k| self.ticks[k])?;
        let records = &self.history[k];
        let i = records.find(id)?;
        (records.cores()[i].sent == sampled).then(|| records.record(i))
    }
}

impl Replicator {
    /// After the staged path's encode: each of the client's records gets the tick of the
    /// sample it holds (this tick for what was sent as due, the resent sample's, else the
    /// baseline's), and the members sent as due get this tick as their newest sample.
    pub(super) fn stamp_staged(&mut self, view: &mut ClientView, zone: u32, tick: u32) {
        let mut members = std::mem::take(&mut view.members);
        let (_, baseline) = view.baseline(zone);
        let base = baseline.cores();
        let (cores, _) = self.held.written();
        let (wanted, resent) = (&self.wanted, &self.resent);
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
            core.sent = match (sent, resent.get(w).copied().unwrap_or(false)) {
                (Some(_), true) => members[w].sampled,
                (Some(_), false) => {
                    members[w].sampled = now;
                    now
                }
                (None, _) => base.get(b).filter(|c| c.id == r.id).map_or(0, |c| c.sent),
            };
        }
        view.members = members;
    }
}

#[cfg(test)]
mod tests {
    use super::tick16;

    /// 0 is "no sample" and only tick 0 maps there; neighbouring ticks never look alike,
    /// across the wrap either.
    #[test]
    fn sixteen_bit_ticks_never_say_unknown_and_tell_neighbours_apart() {
        assert_eq!(tick16(0), 0);
        for t in [
            1u32,
            2,
            65_534,
            65_535,
            65_536,
            65_537,
            131_070,
            131_071,
            u32::MAX - 1,
        ] {
            assert_ne!(tick16(t), 0, "{t}");
            assert_ne!(tick16(t), tick16(t + 1), "{t}");
        }
        assert_eq!(tick16(65_536), tick16(1));
        assert_ne!(tick16(u32::MAX), 0);
    }
}
