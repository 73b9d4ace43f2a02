//! The end of an interest search: hysteresis, the cut to the nearest N, and the id order
//! the delta needs — without sorting the whole set.
//!
//! The spatial query returns candidates in cell order. The client's current members are
//! sorted by id, and most of them are among the candidates again. So:
//!
//! 1. **Which candidates are members**: each candidate's slot is stamped in a table (one
//!    write each), and each member looks its slot up (one read; the id confirms it). A
//!    member whose slot moved, or that turned from owned into a ghost, is located by id and
//!    looked up at its new slot; one the query did not return (past the radius searched,
//!    or cut when the buffer filled) joins the candidates if it is within the far radius
//!    over [`STAY`]. Members rank [`STAY`] times nearer than they are (hysteresis) —
//!    but those chosen before the view could be whole (`ClientView::unproven`).
//! 2. **The cut**: the N-th smallest ranked distance, selected among the distances alone
//!    (4 bytes each), is the threshold; ties at it are kept in order, members first.
//! 3. **Id order**: the members kept, walked in member order, are already sorted; the
//!    newcomers kept (a few per search) are sorted and merged in.
//!
//! This replaced a select over the candidates, a binary search per candidate, a second
//! select and a sort by id of the N kept: most of the search's cost.

use super::held::Core;
use super::interest::{Candidate, GHOST_BIT, Member, STAY, locate};
use crate::entities::Entities;

/// No candidate: a member the search lost.
const NONE: u32 = u32::MAX;

/// Scratch for ranking a search's candidates, reused across clients.
#[derive(Debug, Default)]
pub(super) struct Ranking {
    /// Per slot key (owned slots, then ghost slots after them): `stamp << 32 | candidate`.
    table: Vec<u64>,
    stamp: u32,
    /// Per member: the index of its candidate, or [`NONE`].
    member_at: Vec<u32>,
    /// Per member: whether it ranks at its true distance (unproven), not [`STAY`] nearer;
    /// empty when none does (most searches; read through [`unproven_at`]).
    member_unproven: Vec<bool>,
    /// Per candidate: whether it is a member.
    is_member: Vec<bool>,
    distances: Vec<f32>,
    kept: Vec<Candidate>,
    newcomers: Vec<Candidate>,
    /// Scratch for [`Ranking::hold_back`]: the members a search would displace, and
    /// whether each is unproven.
    back: Vec<(Candidate, bool)>,
    /// Newcomers the last ranking held back (0: it kept the nearest `n` as ranked).
    pub(super) held_back: usize,
    /// The unproven members the last ranking kept only because it could not displace
    /// them (sorted ids): still unproven (`ClientView::unproven`).
    pub(super) held_unproven: Vec<u64>,
}

/// What the ranking reads of the zone.
pub(super) struct Stores<'a> {
    /// The owned entities' records of this tick, by slot.
    pub(super) records: &'a [Core],
    pub(super) owned: &'a Entities,
    pub(super) ghosts: &'a Entities,
}

impl Ranking {
    pub(super) fn with_capacity(n: usize) -> Ranking {
        Ranking {
            member_at: Vec::with_capacity(n),
            member_unproven: Vec::with_capacity(n),
            held_unproven: Vec::with_capacity(n),
            is_member: Vec::with_capacity(4 * n),
            distances: Vec::with_capacity(4 * n),
            kept: Vec::with_capacity(n),
            newcomers: Vec::with_capacity(n),
            back: Vec::with_capacity(n),
            ..Ranking::default()
        }
    }

    /// Leaves in `candidates` the nearest `n` of them and of the `members` still within
    /// `keep2` (squared) of `at`, members ranked [`STAY`] times nearer, sorted by id, at
    /// their true distances — displacing at most `displace` members: past that, the
    /// nearest members that would have been displaced stay and as many of the farthest
    /// newcomers wait ([`super::select::displaceable`]). `unproven` (sorted ids): members
    /// chosen by a search that did not see the whole view, which rank at their true
    /// distances (see `ClientView::unproven`); those of them kept only because they could
    /// not be displaced are left in `held_unproven`. Returns the farthest distance kept,
    /// squared.
    pub(super) fn rank(
        &mut self,
        candidates: &mut Vec<Candidate>,
        (members, unproven): (&[Member], &[u64]),
        stores: &Stores<'_>,
        (at, keep2): ((f32, f32), f32),
        (n, displace): (usize, usize),
    ) -> f32 {
        self.held_back = 0;
        self.held_unproven.clear();
        if unproven.is_empty() {
            self.mark_members::<false>(candidates, (members, unproven), stores, (at, keep2));
        } else {
            self.mark_members::<true>(candidates, (members, unproven), stores, (at, keep2));
        }
        // The threshold: the n-th smallest ranked distance; of those equal to it, only as
        // many as fill n are kept.
        let (threshold, mut ties) = if candidates.len() > n && n > 0 {
            self.distances.clear();
            self.distances
                .extend(candidates.iter().map(|k| k.distance2));
            let (below, &mut t, _) = self
                .distances
                .select_nth_unstable_by(n - 1, |a, b| a.total_cmp(b));
            let under = below.iter().filter(|&&d| d < t).count();
            (t, n - under)
        } else {
            (f32::INFINITY, usize::MAX)
        };
        let mut kept_here =
            |d: f32| d < threshold || (d == threshold && ties > 0 && consume(&mut ties));
        let mut reach2 = 0.0f32;
        // Members kept, in member (id) order, at their true distances.
        self.kept.clear();
        let mut found = 0;
        for (j, &i) in self.member_at.iter().enumerate() {
            if i != NONE {
                found += 1;
                let k = candidates[i as usize];
                if kept_here(k.distance2) {
                    reach2 = reach2.max(k.distance2);
                    self.kept.push(Candidate {
                        distance2: k.distance2 / stay2(unproven_at(&self.member_unproven, j)),
                        ..k
                    });
                }
            }
        }
        // Newcomers kept, sorted by id (a few per search).
        self.newcomers.clear();
        for (k, &member) in candidates.iter().zip(&self.is_member) {
            if !member && kept_here(k.distance2) {
                reach2 = reach2.max(k.distance2);
                self.newcomers.push(*k);
            }
        }
        let displaced = found - self.kept.len();
        if displaced > displace && !self.newcomers.is_empty() {
            let stay = (displaced - displace).min(self.newcomers.len());
            reach2 = self.hold_back(candidates, stay);
        }
        self.newcomers.sort_unstable_by_key(|k| k.id);
        candidates.clear();
        merge_by_id(&self.kept, &self.newcomers, candidates);
        reach2
    }

    /// A search that would displace more members than the client can be told of: the
    /// `stay` nearest members it would have displaced stay, the `stay` farthest newcomers
    /// wait for a later search. Returns the farthest distance kept, squared.
    #[cold]
    #[inline(never)]
    fn hold_back(&mut self, candidates: &[Candidate], stay: usize) -> f32 {
        let by_distance = |a: &Candidate, b: &Candidate| a.distance2.total_cmp(&b.distance2);
        let keep = self.newcomers.len() - stay;
        self.held_back = stay;
        if keep > 0 {
            self.newcomers.select_nth_unstable_by(keep - 1, by_distance);
        }
        self.newcomers.truncate(keep);
        // The displaced members (at ranked distances): the nearest `stay` of them join the
        // newcomers (sorted by id with them) at their true distances.
        let (kept, back, unproven) = (&self.kept, &mut self.back, &self.member_unproven);
        back.clear();
        back.extend(
            (self.member_at.iter().enumerate())
                .filter(|&(_, &i)| i != NONE)
                .map(|(j, &i)| (candidates[i as usize], unproven_at(unproven, j)))
                .filter(|(k, _)| kept.binary_search_by_key(&k.id, |m| m.id).is_err()),
        );
        back.select_nth_unstable_by(stay - 1, |a, b| by_distance(&a.0, &b.0));
        for &(k, unproven) in &back[..stay] {
            self.newcomers.push(Candidate {
                distance2: k.distance2 / stay2(unproven),
                ..k
            });
            if unproven {
                self.held_unproven.push(k.id);
            }
        }
        self.held_unproven.sort_unstable();
        self.kept
            .iter()
            .chain(&self.newcomers)
            .map(|k| k.distance2)
            .fold(0.0, f32::max)
    }

    /// Finds which candidates are members (`member_at`, `is_member`) and ranks them
    /// [`STAY`] times nearer, but the `unproven` (sorted ids: `member_unproven`); members
    /// not among the candidates but within `keep2` of `at` join them.
    fn mark_members<const ANY_UNPROVEN: bool>(
        &mut self,
        candidates: &mut Vec<Candidate>,
        (members, unproven): (&[Member], &[u64]),
        stores: &Stores<'_>,
        (at, keep2): ((f32, f32), f32),
    ) {
        let owned_len = stores.records.len();
        let keys = owned_len + stores.ghosts.len();
        if self.table.len() < keys {
            self.table.resize(keys, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Every 2³² searches: old stamps could match again.
            self.table.fill(0);
            self.stamp = 1;
        }
        let stamp = u64::from(self.stamp) << 32;
        for (i, k) in candidates.iter().enumerate() {
            self.table[key(k.slot, owned_len)] = stamp | i as u64;
        }
        self.is_member.clear();
        self.is_member.resize(candidates.len(), false);
        self.member_at.clear();
        self.member_unproven.clear();
        let mut u = 0;
        // The candidate at `slot`, if it is entity `id`.
        let table = &self.table;
        let at_slot = |candidates: &[Candidate], slot: u32, id: u64| {
            let entry = *table.get(key(slot, owned_len))?;
            let i = (entry & 0xffff_ffff) as usize;
            (entry & !0xffff_ffff == stamp && candidates[i].id == id).then_some(i)
        };
        for m in members {
            let unproven = ANY_UNPROVEN && {
                // Both lists are sorted by id.
                while u < unproven.len() && unproven[u] < m.id {
                    u += 1;
                }
                unproven.get(u) == Some(&m.id)
            };
            if ANY_UNPROVEN {
                self.member_unproven.push(unproven);
            }
            let i = at_slot(candidates, m.slot, m.id).or_else(|| {
                // Its slot moved (or it turned into a ghost): where is it now?
                let k = locate(stores.records, m, stores.owned, stores.ghosts, at)?;
                at_slot(candidates, k.slot, m.id).or_else(|| {
                    // Not among the candidates: joins them if still within reach.
                    (k.distance2 <= keep2).then(|| {
                        candidates.push(k);
                        self.is_member.push(false);
                        candidates.len() - 1
                    })
                })
            });
            match i {
                Some(i) if !self.is_member[i] => {
                    self.is_member[i] = true;
                    candidates[i].distance2 *= stay2(unproven);
                    self.member_at.push(i as u32);
                }
                _ => self.member_at.push(NONE),
            }
        }
    }
}

/// A slot's place in the table: owned slots first, ghost slots after them. (A stale owned
/// slot past `owned_len` lands among the ghosts' keys: harmless, every hit is checked
/// against the id.)
#[inline(always)]
fn key(slot: u32, owned_len: usize) -> usize {
    if slot & GHOST_BIT != 0 {
        owned_len + (slot & !GHOST_BIT) as usize
    } else {
        slot as usize
    }
}

/// Whether member `j` of a ranking ranks at its true distance (`member_unproven`).
#[inline(always)]
fn unproven_at(member_unproven: &[bool], j: usize) -> bool {
    member_unproven.get(j) == Some(&true)
}

/// What a member's distance is ranked at, squared, over its true one: [`STAY`]², or 1 for
/// an unproven member.
#[inline(always)]
fn stay2(unproven: bool) -> f32 {
    if unproven { 1.0 } else { STAY * STAY }
}

/// Takes one of the ties left; always true (`ties` is positive when called).
#[inline(always)]
fn consume(ties: &mut usize) -> bool {
    *ties -= 1;
    true
}

/// `a` and `b` (each sorted by id) merged into `out`, sorted by id.
fn merge_by_id(a: &[Candidate], b: &[Candidate], out: &mut Vec<Candidate>) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if b[j].id < a[i].id {
            out.push(b[j]);
            j += 1;
        } else {
            out.push(a[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
}
