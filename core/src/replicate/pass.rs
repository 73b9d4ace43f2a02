//! A snapshot in one pass: the common case, where everything due fits the budget.
//!
//! The staged path ([`Replicator::prioritise`], then [`Replicator::select_due`], then
//! [`encode_delta`](meridian_protocol::delta::encode_delta)) writes every member's record
//! into a list for the encoder, walks the baseline twice and keeps three side lists, so
//! that the budget can rank the marks before anything is encoded. Most snapshots need no
//! ranking: what is due fits. [`Replicator::one_pass`] walks the interest set, the last
//! tick's members and the baseline together once, and writes each entry as it decides it
//! — a member's record is read from the tick's table only when it is sent. When the marks
//! outgrow the budget, or an entry does not fit the datagram, it gives up, having changed
//! nothing the staged path reads, and the staged path builds the snapshot instead: the
//! bytes are the same either way (a test builds every snapshot both ways and compares).

use meridian_protocol::delta::{DeltaWriter, Encoded};

use super::interest::Member;
use super::select::{REMOVE_BYTES, cost};
use super::{ClientView, PRIORITY_DUE, Replicator, current_record, tier_weight};
use crate::zone::Zone;

impl Replicator {
    /// Prioritises the members found for `view` (in `candidates`, sorted by id) and
    /// encodes the delta against its baseline into `out`, the client's records after it
    /// into `held` — if what is due costs at most `limit` bytes and every entry fits
    /// `out`. Else `None`, with `view` untouched (the staged path then ranks what fits).
    pub(super) fn one_pass(
        &mut self,
        view: &mut ClientView,
        zone: &Zone,
        limit: usize,
        out: &mut [u8],
    ) -> Option<Encoded> {
        if !self.one_pass {
            return None;
        }
        let (owned, ghosts) = (zone.entities(), zone.ghosts().entities());
        let layout = zone.state_layout();
        let c = self.config;
        let (near2, mid2) = (c.near_m * c.near_m, c.mid_m * c.mid_m);
        let (_, baseline) = view.baseline(zone.id().0);
        let cores = baseline.cores();
        let old = &view.members;
        let (members, result, records) = (&mut self.members, &mut self.held, &self.records);
        members.clear();
        result.clear();
        let mut writer = DeltaWriter::new(out);
        let (mut m, mut b, mut used) = (0, 0, 0);
        for k in &self.candidates {
            while m < old.len() && old[m].id < k.id {
                m += 1;
            }
            // New to interest: due at once.
            let carried = match old.get(m) {
                Some(o) if o.id == k.id => o.priority,
                _ => PRIORITY_DUE,
            };
            // Baseline records before this member left interest: removed.
            while b < cores.len() && cores[b].id < k.id {
                used += REMOVE_BYTES;
                if used > limit || !writer.remove(cores[b].id) {
                    return None;
                }
                b += 1;
            }
            let held = b < cores.len() && cores[b].id == k.id;
            let weight = tier_weight(k.distance2, (near2, mid2));
            let priority = carried.saturating_add(weight);
            let due = !held || priority >= PRIORITY_DUE;
            if due {
                let record = current_record(records, (owned, ghosts), &layout, k.slot);
                used += cost(!held, &record.game);
                let fits = used <= limit
                    && if held {
                        let base = baseline.record(b);
                        base == record || writer.update(&base, &record)
                    } else {
                        writer.introduce(&record)
                    };
                if !fits {
                    return None;
                }
                result.push(&record);
            } else if held {
                result.push_from(baseline, b);
            }
            b += usize::from(held);
            members.push(Member {
                id: k.id,
                slot: k.slot,
                priority: if due { 0 } else { priority },
            });
        }
        for base in &cores[b..] {
            used += REMOVE_BYTES;
            if used > limit || !writer.remove(base.id) {
                return None;
            }
        }
        std::mem::swap(&mut view.members, &mut self.members);
        Some(writer.written())
    }
}
