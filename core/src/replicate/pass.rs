//! A snapshot in one pass: the common case, where everything due fits the budget.
//!
//! The staged path ([`Replicator::prioritise`], then [`Replicator::select_due`], then
//! [`encode_delta`](meridian_protocol::delta::encode_delta)) writes every member's record
//! into a list for the encoder, walks the baseline twice and keeps three side lists, so
//! that the budget can rank the marks before anything is encoded. Most snapshots need no
//! ranking: what is due fits. [`Replicator::one_pass`] walks the interest set, the last
//! tick's members and the baseline together once, marking which members are due, then
//! walks the due ones (and the removals) and writes each entry as it decides it — a
//! member's record is read from the tick's table only when it is sent. When the marks
//! outgrow the budget, or an entry does not fit the datagram, it gives up, having changed
//! nothing the staged path reads, and the staged path builds the snapshot instead: the
//! bytes are the same either way (a test builds every snapshot both ways and compares).
//!
//! **Why two walks.** Whether a member is due follows no pattern the processor can
//! predict (near members every tick, mid every other, far every sixth, in id order): as a
//! branch in one walk it was a third of the pass's mispredictions. The first walk
//! computes it without a branch — the due members' positions appended to a list by
//! index arithmetic, the client's records started as the baseline's — and the second
//! walks that list, whose branches go the same way almost every time (0.90–0.92× of
//! whole `replicate_ticks` runs and of `replicate/meridian/1000`).
//!
//! **Nothing to merge.** Between searches, and at most searches (the nearest members
//! change slowly), the interest set, the last tick's members and the baseline hold the
//! same ids in the same order — 94 % of the bench's snapshots. The first walk then
//! merges three identical lists (its merges were a third of the pass's instructions);
//! [`Replicator::mark_due`] checks the ids once, without a branch per member, and hands
//! such snapshots to a walk that copies the baseline's records whole and only
//! prioritises (0.90–0.96× of whole `replicate_ticks` runs).

use meridian_protocol::delta::{DeltaWriter, Encoded};

use super::held::{Core, Held};
use super::interest::{Candidate, Member};
use super::samples::{Samples, UNKNOWN};
use super::select::{REMOVE_BYTES, cost};
use super::{ClientView, PRIORITY_DUE, Replicator, current_record, tick16, tier_weight};
use crate::zone::Zone;

/// In the marks of [`Replicator::one_pass`]: a member the baseline does not hold.
const NOT_HELD: u32 = u32::MAX;

/// In the due list of [`Replicator::one_pass`]: a due member whose baseline record holds
/// another state's name than the member's newest (`sent` ≠ `sampled`: another state was
/// sent since, in a snapshot the client had not acknowledged when this one's baseline was
/// chosen). It gets an entry even if its state is the baseline's — a renewal, a new sample
/// — or the client, which draws each entity's newest sample, would go on drawing the one
/// sent since: a state that flipped back (A, B, A) would show B.
pub(super) const RENEW: u32 = 1 << 31;

impl Replicator {
    /// Prioritises the members found for `view` (in `candidates`, sorted by id) and
    /// encodes the delta against its baseline into `out`, the client's records after it
    /// into `held` — if what is due costs at most `limit` bytes and every entry fits
    /// `out`. Else `None`, with `view` untouched (the staged path then ranks what fits).
    pub(super) fn one_pass(
        &mut self,
        view: &mut ClientView,
        (zone, tick): (&Zone, u32),
        limit: usize,
        out: &mut [u8],
    ) -> Option<Encoded> {
        if !self.one_pass {
            return None;
        }
        let due = self.mark_due(view, zone);
        // Members the baseline lacks are all sent (or the pass gives up), and with the
        // removals every snapshot owes them until the client acknowledges one: if that
        // could crowd out what it shows, the staged path chooses what to show.
        if self.owed > super::select::owed_max(out.len().saturating_sub(self.headroom)) {
            return None;
        }
        let encoded = self.write_due(view, zone, (due, tick), limit, out)?;
        std::mem::swap(&mut view.members, &mut self.members);
        Some(encoded)
    }

    /// The first walk, without a branch on whether a member is due (without a merge when
    /// the ids have not changed: [`Replicator::mark_due_same`]): each member's
    /// priority (into `members`) and place in the baseline (`marks`), the positions of
    /// the due members (`due_at`, returns how many; tagged [`RENEW`] where the baseline
    /// holds another state than the newest sent), the baseline's records no longer
    /// members (`removed`), what the snapshot will owe its successor (`owed`); the
    /// client's records (`held`) start as the baseline's, a member the baseline lacks
    /// with a placeholder that [`Replicator::write_due`] replaces.
    fn mark_due(&mut self, view: &ClientView, zone: &Zone) -> usize {
        let c = self.config;
        let tiers = (c.near_m * c.near_m, c.mid_m * c.mid_m);
        let (_, baseline) = view.baseline(zone.id().0);
        let (cores, old, candidates) = (baseline.cores(), &view.members, &self.candidates);
        if same_ids(candidates, old, cores) {
            return self.mark_due_same(&view.members, baseline);
        }
        let n = candidates.len();
        let (members, marks, due_at) = (&mut self.members, &mut self.marks, &mut self.due_at);
        members.clear();
        marks.clear();
        marks.resize(n, NOT_HELD);
        due_at.clear();
        due_at.resize(n, 0);
        self.removed.clear();
        let (result, games) = self.held.sized(n);
        let last = cores.len().saturating_sub(1);
        let (mut m, mut b, mut due_count) = (0, 0, 0);
        for (i, k) in candidates.iter().enumerate() {
            while m < old.len() && old[m].id < k.id {
                m += 1;
            }
            // New to interest: due at once, and which sample the client draws is unknown.
            let (carried, sampled) = match old.get(m) {
                Some(o) if o.id == k.id => (o.priority, o.sampled),
                _ => (PRIORITY_DUE, UNKNOWN),
            };
            // Baseline records before this member left interest: removed.
            while b < cores.len() && cores[b].id < k.id {
                self.removed.push(b as u32);
                b += 1;
            }
            let held = b < cores.len() && cores[b].id == k.id;
            let base = cores.get(b.min(last)).copied().unwrap_or_default();
            let (member, due, renew) =
                mark(k, (carried, sampled), held.then_some(base.sent), tiers);
            result[i] = base;
            marks[i] = if held { b as u32 } else { NOT_HELD };
            due_at[due_count] = i as u32 | if renew { RENEW } else { 0 };
            due_count += usize::from(due);
            b += usize::from(held);
            members.push(member);
        }
        self.removed.extend(b as u32..cores.len() as u32);
        // What this snapshot will owe its successor if it sends every member the baseline
        // lacks (as the one pass does).
        let held = cores.len() - self.removed.len();
        self.owed = super::select::owed(self.removed.len(), n - held);
        if baseline.has_game() {
            for (i, &at) in marks.iter().enumerate().filter(|&(_, &at)| at != NOT_HELD) {
                Held::put_game(games, n, i, baseline.game(at as usize));
            }
        }
        due_count
    }

    /// [`Replicator::mark_due`] when the interest set, the last tick's members and the
    /// baseline hold the same ids — most snapshots between searches, the client having
    /// acknowledged one since the last change of its set: no merge, nothing removed,
    /// nothing fresh, the baseline's records copied whole.
    fn mark_due_same(&mut self, old: &[Member], baseline: &Held) -> usize {
        let c = self.config;
        let tiers = (c.near_m * c.near_m, c.mid_m * c.mid_m);
        let candidates = &self.candidates;
        let n = candidates.len();
        let (members, marks, due_at) = (&mut self.members, &mut self.marks, &mut self.due_at);
        members.clear();
        marks.clear();
        marks.extend(0..n as u32);
        due_at.clear();
        due_at.resize(n, 0);
        self.removed.clear();
        let (result, games) = self.held.sized(n);
        result.copy_from_slice(baseline.cores());
        games.extend_from_slice(baseline.games());
        let mut due_count = 0;
        for (i, ((k, o), base)) in candidates.iter().zip(old).zip(baseline.cores()).enumerate() {
            let (member, due, renew) = mark(k, (o.priority, o.sampled), Some(base.sent), tiers);
            due_at[due_count] = i as u32 | if renew { RENEW } else { 0 };
            due_count += usize::from(due);
            members.push(member);
        }
        self.owed = super::select::owed(0, 0);
        due_count
    }

    /// The second walk: the entries in id order — the due members listed by
    /// [`Replicator::mark_due`] (updates and renewals; new ones introduced) and the
    /// removals, merged — each written into `out` as decided, each sent member's record
    /// into the client's records with its state's name. `None` when what is due costs
    /// more than `limit` or an entry does not fit.
    fn write_due(
        &mut self,
        view: &ClientView,
        zone: &Zone,
        (due, tick): (usize, u32),
        limit: usize,
        out: &mut [u8],
    ) -> Option<Encoded> {
        let (owned, ghosts) = (zone.entities(), zone.ghosts().entities());
        let layout = zone.state_layout();
        let (_, baseline) = view.baseline(zone.id().0);
        let (cores, candidates, records) = (baseline.cores(), &self.candidates, &self.records);
        let (marks, removed, members) = (&self.marks, &self.removed, &mut self.members);
        let n = candidates.len();
        let (result, games) = self.held.written();
        let mut writer = DeltaWriter::new(out);
        let mut samples = Samples::new(view);
        let now = tick16(tick);
        let (mut r, mut used, mut renewals) = (0, 0, 0u64);
        for &tagged in &self.due_at[..due] {
            let i = (tagged & !RENEW) as usize;
            let k = &candidates[i];
            while let Some(gone) = removed.get(r).map(|&b| cores[b as usize].id)
                && gone < k.id
            {
                used += REMOVE_BYTES;
                if used > limit || !writer.remove(gone) {
                    return None;
                }
                r += 1;
            }
            let at = marks[i];
            let record = current_record(records, (owned, ghosts), &layout, k.slot);
            used += cost(at == NOT_HELD, &record.game);
            if used > limit {
                return None;
            }
            // An unchanged member not renewed gets no entry and keeps the baseline's
            // state and its name (`result[i]` holds the baseline's record). An update sends
            // a state the baseline does not hold: a new name; a renewal or a new member
            // keeps the member's newest name if it stands for this very state.
            let name = if at != NOT_HELD {
                let base = baseline.record(at as usize);
                let renewal = base == record && tagged & RENEW != 0;
                if base != record {
                    if !writer.update(&base, &record) {
                        return None;
                    }
                    Some(now)
                } else if renewal {
                    if !writer.update(&base, &record) {
                        return None;
                    }
                    renewals += 1;
                    Some(samples.named(&record, members[i].sampled, now))
                } else {
                    None
                }
            } else {
                if !writer.introduce(&record) {
                    return None;
                }
                Some(samples.named(&record, members[i].sampled, now))
            };
            if let Some(name) = name {
                members[i].sampled = name;
                result[i] = Core::of(&record).sent_at(name);
                Held::put_game(games, n, i, record.game);
            }
        }
        for &at in &removed[r..] {
            used += REMOVE_BYTES;
            if used > limit || !writer.remove(cores[at as usize].id) {
                return None;
            }
        }
        self.counters.renewals += renewals;
        Some(writer.written())
    }
}

/// One member of the interest set marked: its priority carried over (`carried`, and the
/// name of its newest sample) plus its tier's weight — due once it reaches
/// [`PRIORITY_DUE`] or when the baseline lacks it (`base_sent`: the baseline record's
/// sample name, if held). Returns the member as it goes on (priority reset if due;
/// `sampled` becomes the written state's name if [`Replicator::write_due`] writes an
/// entry), whether it is due, and whether it is to be renewed ([`RENEW`]).
#[inline(always)]
fn mark(
    k: &Candidate,
    (carried, sampled): (u16, u16),
    base_sent: Option<u16>,
    (near2, mid2): (f32, f32),
) -> (Member, bool, bool) {
    let priority = carried.saturating_add(tier_weight(k.distance2, (near2, mid2)));
    let due = base_sent.is_none() || priority >= PRIORITY_DUE;
    let renew = base_sent.is_some_and(|sent| sent != sampled);
    let member = Member {
        id: k.id,
        slot: k.slot,
        priority: if due { 0 } else { priority },
        sampled,
    };
    (member, due, renew)
}

/// Whether the interest set, the last tick's members and the baseline's records hold the
/// same ids in the same order (one pass, no branch per member).
fn same_ids(candidates: &[Candidate], old: &[Member], cores: &[Core]) -> bool {
    if candidates.len() != old.len() || candidates.len() != cores.len() {
        return false;
    }
    let differ = candidates
        .iter()
        .zip(old)
        .zip(cores)
        .fold(0, |acc, ((k, o), c)| acc | (k.id ^ o.id) | (k.id ^ c.id));
    differ == 0
}
