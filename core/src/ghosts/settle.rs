//! A zone's new run and its peers' ghosts: when what it shows its clients is whole.
//!
//! Every run of a zone starts with no ghosts — the world's start, a restart from its
//! files, a standby's takeover, a move to its standby. Its own entities are there from the
//! first tick, but what lies across its borders comes only once its peers send it: a
//! neighbour's aura batch, which needs the neighbour to have heard where the new run is
//! (after a takeover or a move, the mesh tells it a moment later), and the entities the
//! run's first WATCH asks for, one exchange later. Until then a client near a border would
//! be shown its own zone's side only, and its first whole snapshot would lack what the
//! next ones bring: every such entity gone for a snapshot and back (a pop-in; the
//! rolling-restart demo's move home showed 4–36 in 3 of 32 runs).
//!
//! So a run is *settled* once it has heard a whole GHOSTS batch from every neighbour (see
//! below: the next batch says the one before came whole), and from
//! every watch peer its WATCH asks for points one that *answers* that WATCH: a peer names,
//! in each batch, the newest WATCH of the receiving run its watched records come from (its
//! tick and the run, `GhostsHeader::answers_tick` / `answers_run`), and the run waits for
//! a batch naming its own incarnation and a tick no older than its first WATCH with points
//! to that peer. Until then the replicator flags each snapshot partial (`DELTA_PARTIAL`:
//! not the whole view yet) — the client library draws the scene it had on over such
//! snapshots — and once settled it searches each client's interest again before the first
//! whole one. A peer that stays silent (its node down, or a node of an older build, which
//! the datagram header's version keeps out) holds a run up for [`SETTLE_MAX`] at most:
//! past that, what a peer not heard from ghosted here is about to expire anyway (a
//! silent peer's ghosts are kept three times `ghost_ttl_ticks`: a second at 30 Hz).
//!
//! For a silent peer to mean "has not heard of the run", a zone that hears of a peer's new
//! run (its first datagram, or the mesh's announcement: `Zone::fence`) sends it a GHOSTS
//! batch on every ghost tick for [`SETTLE_MAX`] if it is a neighbour or watches here — an
//! empty one (28 bytes past the header, naming the WATCH it answers) when it has nothing to
//! ghost to it. The world's first runs are no news (incarnation 0, first heard of): a quiet
//! border waits out [`SETTLE_MAX`] there, where no client has a scene drawn to keep.
//!
//! **Why the batch names its WATCH** (session 47). The rule was "a batch heard at least
//! two ticks after the first WATCH round went out": it assumed a peer answers within about
//! a tick. Between nodes whose one-way latency passes a tick (33 ms at 30 Hz: sites apart)
//! the batch heard then left the peer before the WATCH reached it, and carried the old
//! run's watched set or none: the first whole snapshot lacked what the next ones brought
//! (`seamless::a_zones_new_run_shows_no_view_as_whole_before_its_peers_ghosts_came`, with
//! 100 ms each way). The run's incarnation is named too: a new run counts its ticks from
//! its restore, so a batch answering the old run's WATCH (sent before the peer heard of the
//! new one) can name a tick past the new run's first.
//!
//! **Why a batch counts only once the next one came** (session 52). A peer's batch of one
//! tick takes several datagrams when its aura or watched set is large (~31 records a
//! datagram), and a loaded node's ingest can apply them over two of its ticks: the run
//! settled on the first datagram, and its first whole snapshot lacked what the rest
//! carried — a pop-in or a visibility violation after the rolling-restart demo's move
//! home, on a busy machine (docs/mesh.md). Datagrams between two zones nearly always
//! arrive in the order sent, so a datagram of a later batch says the earlier one was
//! applied whole: a peer counts as heard once a datagram of a second tick's batch came,
//! and its answer to the run's WATCH once a batch of another tick followed the first that
//! answered it (`seamless::a_zones_new_run_shows_no_view_as_whole_before_its_peers_ghosts_came`,
//! its `split` cases). It costs a new run one ghost tick more of partial snapshots.
//!
//! What is still not exact: a WATCH round of more than one datagram (past ~97 points to
//! one peer) is answered from the first of its datagrams to arrive, and a watched batch
//! lost on the way, or overtaken by the next batch (UDP does not promise the order), is
//! not told apart from one that came; either leaves a snapshot short until the next
//! batch, as in steady state.

use meridian_layouts::ghosts::{GhostsHeader, write_ghosts};
use meridian_layouts::{U32Le, U64Le};

use crate::limits::DATAGRAM_SIZE_MAX;
use crate::net::Peer;
use crate::world::ZoneID;
use crate::zone::Zone;

/// The longest a run waits for a silent peer before it calls its view whole.
pub const SETTLE_MAX: core::time::Duration = core::time::Duration::from_secs(1);

/// Where a run stands in hearing from its peers (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Settle {
    /// The run's first WATCH round went out (or watching is off): who it asks is known.
    round: bool,
    /// Per peer asked for points, the tick of the run's first WATCH to it with points.
    asked: Vec<(ZoneID, u64)>,
    /// Per peer heard from: which of its batches came (see [`Heard`]).
    heard: Vec<Heard>,
    /// Peers sent a batch this ghost tick (reused).
    sent: Vec<ZoneID>,
    /// Per peer sent ghosts within `ghost_ttl_ticks`, the tick of the last batch with
    /// records: sent an empty batch on a ghost tick that has none for it (see
    /// [`Zone::send_heartbeats`]).
    ghosted: Vec<(ZoneID, u64)>,
    /// Peers due an empty batch this ghost tick (reused).
    due: Vec<ZoneID>,
    /// Peers whose new run this zone heard of, and its tick then: sent a batch every
    /// ghost tick for [`SETTLE_MAX`].
    settling: Vec<(ZoneID, u64)>,
    settled: bool,
}

/// What came from one peer while the run settles. A peer's batch of one tick can take
/// several datagrams, and a loaded node's ingest can take them over two of its ticks: a
/// batch counts once a datagram of a *later* batch came (datagrams between two zones
/// nearly always arrive in the order sent), so the whole of it was applied.
#[derive(Debug)]
struct Heard {
    peer: ZoneID,
    /// The peer's tick of the first batch that came, and whether one of another tick did.
    first: u64,
    whole: bool,
    /// The peer's tick of the first batch that answered the run's first WATCH with points
    /// to it, and whether one of another tick came after it.
    answered: Option<u64>,
    answered_whole: bool,
}

impl Settle {
    /// The run's WATCH round went out.
    pub(super) fn round(&mut self) {
        self.round = true;
    }

    /// The run's WATCH of `tick` asked `peer` for points.
    pub(super) fn asked(&mut self, peer: ZoneID, tick: u64) {
        if !self.settled && !self.asked.iter().any(|&(p, _)| p == peer) {
            self.asked.push((peer, tick));
        }
    }

    /// A datagram of `peer`'s GHOSTS batch of its tick `tick` came, answering this run's
    /// WATCH of tick `answers` (0: no WATCH of this run).
    pub(super) fn heard(&mut self, peer: ZoneID, tick: u64, answers: u64) {
        if self.settled {
            return;
        }
        let i = match self.heard.iter().position(|h| h.peer == peer) {
            Some(i) => i,
            None => {
                self.heard.push(Heard {
                    peer,
                    first: tick,
                    whole: false,
                    answered: None,
                    answered_whole: false,
                });
                self.heard.len() - 1
            }
        };
        let asked = self.asked.iter().find(|&&(p, _)| p == peer).map(|a| a.1);
        let h = &mut self.heard[i];
        h.whole |= tick != h.first;
        match h.answered {
            Some(at) => h.answered_whole |= tick != at,
            None if asked.is_some_and(|asked| answers >= asked) => h.answered = Some(tick),
            None => {}
        }
    }

    /// A new run of `peer` was heard of at `tick`.
    pub(super) fn settling(&mut self, peer: ZoneID, tick: u64) {
        match self.settling.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, at)) => *at = tick,
            None => self.settling.push((peer, tick)),
        }
    }

    /// A batch with records went to `peer` on this ghost tick, `tick`.
    pub(super) fn sent(&mut self, peer: ZoneID, tick: u64) {
        if !self.sent.contains(&peer) {
            self.sent.push(peer);
        }
        match self.ghosted.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, at)) => *at = tick,
            None => self.ghosted.push((peer, tick)),
        }
    }

    /// Whether `peer` was heard from — any batch carries the aura — and, if the run asks
    /// it for `points`, whether a batch answered its first WATCH with points to it. Never
    /// before the run's first WATCH round: until then, whom it asks is not known.
    fn answered(&self, peer: ZoneID, points: bool) -> bool {
        if !self.round {
            return false;
        }
        let Some(h) = self.heard.iter().find(|h| h.peer == peer) else {
            return false;
        };
        h.whole && (!points || h.answered_whole)
    }
}

impl Zone {
    /// Whether this run holds its peers' ghosts: what it shows its clients is their whole
    /// view (see [`settle`](crate::ghosts::settle)). Once settled, settled for the run.
    pub fn settled(&self) -> bool {
        self.watch.settle.settled
    }

    /// Settles the run once every peer it needs answered, or [`SETTLE_MAX`] passed.
    /// Called every tick, after the tick's WATCH round.
    pub(super) fn settle(&mut self) {
        if self.watch.settle.settled {
            return;
        }
        if self.watch.config().radius_m <= 0.0 {
            self.watch.settle.round();
        }
        let ticks = self.tick.min(u64::from(u32::MAX)) as u32;
        let waited = self.tick_duration.saturating_mul(ticks);
        let settle = &self.watch.settle;
        let asking = || self.watch.asking();
        let all = self
            .borders
            .neighbours()
            .iter()
            .all(|p| settle.answered(*p, asking().any(|a| a == p)))
            && asking().all(|&p| settle.answered(p, true));
        if all || waited >= SETTLE_MAX {
            self.counters.settle_timeouts += u64::from(!all);
            let settle = &mut self.watch.settle;
            settle.settled = true;
            settle.heard = Vec::new();
            settle.asked = Vec::new();
        }
    }

    /// `head` for a batch to `peer`: naming the newest WATCH of `peer`'s run the batch
    /// answers (see the module docs).
    pub(super) fn answering(&self, head: &GhostsHeader, peer: ZoneID) -> GhostsHeader {
        GhostsHeader {
            answers_tick: U64Le::new(self.watch.answers(peer)),
            answers_run: U32Le::new(self.peer_incarnations.get(&peer).copied().unwrap_or(0)),
            ..*head
        }
    }

    /// A batch from `source` came: heard, and which of this run's WATCHes it answers.
    pub(super) fn heard_ghosts(&mut self, source: ZoneID, head: &GhostsHeader) {
        let mine = head.answers_run.get() == self.incarnation();
        let answers = if mine { head.answers_tick.get() } else { 0 };
        self.watch.settle.heard(source, head.tick.get(), answers);
    }

    /// After a ghost tick's batches, an empty batch to every peer that got none and
    /// - got ghosts from this zone within `ghost_ttl_ticks`: so it tells the ghosts this
    ///   zone left out (they left the aura or the watched set) from those of a zone gone
    ///   silent, which it keeps longer ([`Ghosts::expire`](super::Ghosts::expire)) — a
    ///   zone whose last ghost leaves would otherwise send nothing at all;
    /// - or is a neighbour, or a watch peer watching here, whose new run this zone heard
    ///   of less than [`SETTLE_MAX`] ago (see the module docs).
    pub(super) fn send_heartbeats(&mut self, head: &GhostsHeader) {
        let ticks = SETTLE_MAX.as_nanos() / self.tick_duration.as_nanos().max(1);
        let ttl = u64::from(self.config.ghost_ttl_ticks);
        let tick = self.tick;
        let settle = &mut self.watch.settle;
        settle
            .settling
            .retain(|&(_, at)| u128::from(tick.saturating_sub(at)) <= ticks);
        settle
            .ghosted
            .retain(|&(_, at)| tick.saturating_sub(at) <= ttl);
        let mut due = core::mem::take(&mut settle.due);
        due.clear();
        let (sent, ghosted) = (&settle.sent, &settle.ghosted);
        due.extend(ghosted.iter().map(|g| g.0).filter(|p| !sent.contains(p)));
        for &(peer, _) in &self.watch.settle.settling {
            let neighbour = self.borders.neighbours().contains(&peer);
            let watching =
                (0..self.watch.peer_count()).any(|k| self.watch.watching_here(k) == Some(peer));
            let sent = &self.watch.settle.sent;
            if (neighbour || watching) && !sent.contains(&peer) && !due.contains(&peer) {
                due.push(peer);
            }
        }
        let mut buf = [0u8; DATAGRAM_SIZE_MAX];
        for &peer in &due {
            let head = self.answering(head, peer);
            let len = write_ghosts(&mut buf, &head, &[], &[]).expect("an empty batch fits");
            self.outbox.push(Peer::Zone(peer), &buf[..len]);
            self.counters.ghost_heartbeats_sent += 1;
        }
        self.watch.settle.due = due;
        self.watch.settle.sent.clear();
    }
}
