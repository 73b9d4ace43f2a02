//! Votes on standbys in the simulator (docs/mesh.md, "Dropping a standby";
//! `crate::mesh::votes`). Every node keeps a ledger (on its disk: it outlives the node's
//! restarts); asks and answers cross the simulated network like every cross-node message
//! — lost, delayed, cut — and a dead node answers nothing.
//!
//! - A primary whose standby's node is declared down asks to **drop** it; once a majority
//!   agreed, its datagrams stop waiting for that standby (the copy falls behind).
//! - A standby asks to **promote** its copy when the primary's node is declared down;
//!   only once a majority agreed does it take the zone over. A refusal (the copy was
//!   dropped) leaves the zone to its own node, which restarts it from its own disk after
//!   [`super::standby::REBOOT_TICKS`]: a zone nobody may take over waits.
//!
//! The case that needs both: a standby's node is cut off long enough to be declared down,
//! the primary drops it and goes on handing entities away, the cut heals, and the primary's
//! node dies. The standby sees a majority alive and its primary down — and its copy is
//! stale. Without the votes (`Bugs::promote_without_votes`) it takes the zone over and
//! owns what the primary had handed away.

use std::collections::BTreeMap;
use std::hash::Hash;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::standby::DETECT_TICKS;
use super::{Sim, views};
use crate::mesh::votes::{Answer, Ask, Ledger, Tally};

mod withdraw;

/// Ticks between sends of an undecided ask to the nodes that have not agreed.
const RESEND_TICKS: u64 = 5;
/// An ask undecided after this many ticks is refused (the asker may ask again).
const TIMEOUT_TICKS: u64 = 90;
/// Ticks until a primary asks again to drop a standby after the others refused (the node
/// backs off likewise): what they held against it may be withdrawn meanwhile.
pub(super) const RETRY_TICKS: u64 = 30;
/// Ticks after a cut heals until membership sees the node alive again.
const REFUTE_TICKS: u64 = 10;

/// What a granted ask leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Then {
    /// Zone `z`'s primary goes on without its standby.
    Drop(usize),
    /// Zone `z`'s standby takes it over.
    Promote(usize),
    /// Zone `z`'s standby, dropped, holds everything again ([`super::rejoin`]).
    Current(usize),
    /// Zone `z`'s standby will not act on a promotion it asked for.
    Withdraw(usize),
    /// Zone `z`'s standby, its takeover agreed, acts on it once a majority hold it does.
    Acted(usize),
    /// Zone `z`'s primary asked the ledgers to let go of a promise its drop was refused
    /// for.
    Release(usize),
    /// Zone `z`'s old run, superseded by a takeover whose node died before telling it,
    /// goes on without that node as its standby — which must never be agreed
    /// ([`super::suspicion`]).
    SupersededDrop(usize),
    /// That old run asked the ledgers to let go of the takeover its drop was refused for.
    SupersededRelease(usize),
}

#[derive(Debug)]
struct Ballot {
    id: u64,
    /// The asking node.
    node: u32,
    ask: Ask,
    tally: Tally,
    began: u64,
    sent_at: u64,
    then: Then,
}

#[derive(Clone, Copy, Debug)]
enum Message {
    Ask {
        id: u64,
        from: u32,
        to: u32,
        ask: Ask,
    },
    Answer {
        id: u64,
        from: u32,
        answer: Answer,
    },
}

/// The seed's ledgers, ballots and vote messages in flight.
#[derive(Debug, Default)]
pub(super) struct Votes {
    ledgers: Vec<Ledger>,
    ballots: Vec<Ballot>,
    in_flight: BTreeMap<u64, Vec<Message>>,
    asked: u64,
    /// Each zone's drop asks so far (a primary's asks are numbered per run).
    drop_seq: Vec<u32>,
    /// Zones whose drop was refused, by the tick they ask again.
    drop_retries: BTreeMap<u64, Vec<usize>>,
    /// Withdrawals not every node holds yet, by the tick they are asked again: the
    /// asking node and the ballot that did not get there, with its ask.
    withdraw_retries: BTreeMap<u64, Vec<(u32, u64, Ask)>>,
    /// The newest takeover ask of each (node, zone), by ballot id: a withdrawal asked
    /// before it is not asked again after it.
    promote_asked: BTreeMap<(u32, u32), u64>,
    /// Promotions acted on, as (node, zone, run): what the node's runs-here marker and
    /// its durable record of the runs it started say.
    acted: std::collections::BTreeSet<(u32, u32, u32)>,
    /// Dead nodes whose disk a zone waits for (a release refused: a ledger holds that the
    /// node acts on a takeover), by the tick it is back ([`Sim::disk_returns`]).
    disk_returns: BTreeMap<u64, Vec<u32>>,
    rng: Option<SmallRng>,
}

impl Votes {
    pub(super) fn new(seed: u64, nodes: u32, zones: usize) -> Votes {
        Votes {
            ledgers: vec![Ledger::new(); nodes as usize],
            drop_seq: vec![0; zones],
            rng: Some(SmallRng::seed_from_u64(seed ^ 0x56a7_e500_0000_0003)),
            ..Votes::default()
        }
    }
}

impl Sim {
    /// Whether node `observer` sees node `node` declared down at `tick`.
    pub(super) fn sees_down(&self, tick: u64, observer: u32, node: u32) -> bool {
        if observer == node {
            return false;
        }
        // A node that came back is seen alive once membership refutes its death. Each
        // view trails the earliest by its own skew, if skewed ([`super::views`]).
        let skew = |event| self.skew(observer, node, event);
        let first = self.standbys.death.is_some_and(|(at, n)| {
            n == node
                && tick >= at + self.standbys.detect_ticks() + skew((views::DOWN, at))
                && !self.back(
                    tick.saturating_sub(REFUTE_TICKS + skew((views::BACK, at))),
                    node,
                )
        });
        let in_turn = self.failback.as_ref().map_or(0, |f| f.at);
        let late = DETECT_TICKS + skew((views::DOWN, in_turn));
        let dead = first || self.died_in_turn(tick.saturating_sub(late), node);
        let cut = self.standbys.isolation.is_some_and(|iso| {
            iso.node == node
                && tick >= iso.at + DETECT_TICKS + skew((views::DOWN, iso.at))
                && tick < iso.heal + REFUTE_TICKS + skew((views::HEALED, iso.heal))
        });
        dead || cut
    }

    /// Whether node `node` is dead at `tick`: from its death until it comes back, if it
    /// does ([`super::comeback`]), or from dying in turn ([`super::failback`]). A death no failover could follow is a reboot instead
    /// (`rebooting`: down until it restarts).
    pub(super) fn dead(&self, tick: u64, node: u32) -> bool {
        let first = self
            .standbys
            .death
            .is_some_and(|(at, n)| n == node && tick >= at)
            && self.standbys.outage.is_none()
            && !self.back(tick, node);
        first || self.died_in_turn(tick, node)
    }

    /// Whether a ballot about zone `z` is out.
    pub(super) fn votes_about(&self, z: usize) -> bool {
        self.votes.ballots.iter().any(|b| b.ask.zone() == z as u32)
    }

    /// Whether a takeover of zone `z` (or acting on one) is being voted on.
    pub(super) fn takeover_asked(&self, z: usize) -> bool {
        (self.votes.ballots.iter())
            .any(|b| matches!(b.then, Then::Promote(y) | Then::Acted(y) if y == z))
    }

    /// The nodes of the world (one ledger each).
    pub(super) fn node_count(&self) -> usize {
        self.votes.ledgers.len()
    }

    /// Zone `z`'s primary asks to go on without its standby (declared down).
    pub(super) fn ask_drop(&mut self, tick: u64, z: usize) {
        let Some(stream) = self.standbys.streams[z].as_ref() else {
            return;
        };
        let asking = self.votes.ballots.iter().any(|b| b.then == Then::Drop(z));
        if stream.dropped || asking {
            return;
        }
        let incarnation = self.zones[z]
            .as_ref()
            .map_or(stream.incarnation, crate::zone::Zone::incarnation);
        let standby = stream.node as u16;
        let ask = Ask::Drop {
            zone: z as u32,
            incarnation,
            seq: self.next_primary_seq(z),
            standby,
        };
        self.ask(tick, self.node_of[z], ask, Then::Drop(z));
    }

    /// The number of zone `z`'s primary's next ask (drop or current), per run.
    pub(super) fn next_primary_seq(&mut self, z: usize) -> u32 {
        self.votes.drop_seq[z] += 1;
        self.votes.drop_seq[z]
    }

    /// Zone `z`'s primary node was declared down: its standby asks to take it over. A
    /// zone without a standby (never had one, or its copy was dropped and refused) waits
    /// for its own node, as does one whose standby is dead (it asks once back).
    pub(super) fn ask_promote(&mut self, tick: u64, z: usize) {
        if self.takeover_asked(z) {
            // One takeover ask per zone at a time (a second death can find one out).
            return;
        }
        let stream = self.standbys.streams[z].as_ref();
        let Some(stream) = stream.filter(|s| !self.dead(tick, s.node)) else {
            self.wait_for_own_node(tick, z);
            return;
        };
        if self.bugs.promote_without_votes {
            // BROKEN ON PURPOSE (`promote_without_votes`): a dropped copy takes over.
            self.promote(tick, z);
            return;
        }
        let ask = Ask::Promote {
            zone: z as u32,
            incarnation: stream.replica_run + 1,
            standby: stream.node as u16,
            primary: self.node_of[z] as u16,
        };
        self.ask(tick, stream.node, ask, Then::Promote(z));
    }

    pub(super) fn ask(&mut self, tick: u64, node: u32, ask: Ask, then: Then) {
        self.votes.asked += 1;
        if let Ask::Promote { zone, .. } = ask {
            self.votes
                .promote_asked
                .insert((node, zone), self.votes.asked);
        }
        ("ask", tick, node, format!("{ask:?}")).hash(&mut self.hasher);
        self.votes.ballots.push(Ballot {
            id: self.votes.asked,
            node,
            ask,
            tally: Tally::new(self.votes.ledgers.len(), &ask),
            began: tick,
            sent_at: tick,
            then,
        });
        self.report.ballots += 1;
        if self.trace_entity.is_some() {
            eprintln!("tick {tick}: node {node} asks {ask:?}");
        }
        self.send_asks(tick, self.votes.ballots.len() - 1);
    }

    /// Ballot `k`'s asker answers itself and sends the others its ask.
    fn send_asks(&mut self, tick: u64, k: usize) {
        let (id, node, ask) = {
            let b = &self.votes.ballots[k];
            (b.id, b.node, b.ask)
        };
        if !self.votes.ballots[k].tally.agreed(node as u16) {
            let answer = self.answer(tick, node, (node, id), ask);
            self.votes.ballots[k].tally.count(node as u16, answer);
        }
        self.votes.ballots[k].sent_at = tick;
        for to in 0..self.votes.ledgers.len() as u32 {
            if to != node && !self.votes.ballots[k].tally.agreed(to as u16) {
                let m = Message::Ask {
                    id,
                    from: node,
                    to,
                    ask,
                };
                self.vote_send(tick, node, to, m);
            }
        }
    }

    /// Node `node` answers `asker`'s ask (in its ballot `id`) from its ledger and its view.
    fn answer(&mut self, tick: u64, node: u32, (asker, id): (u32, u64), ask: Ask) -> Answer {
        let down = ask
            .concerns()
            .is_some_and(|n| self.sees_down(tick, node, u32::from(n)));
        let down = down || self.promotes_an_ended_run(tick, node, ask);
        let answer = self.votes.ledgers[node as usize].answer(asker as u16, id, ask, down);
        if answer == Answer::Wait {
            self.report.answered_wait += 1;
            let concerned = ask.concerns().map(u32::from);
            if concerned.is_some_and(|n| self.sees_down(tick, asker, n)) {
                self.report.views_apart += 1;
            }
        }
        answer
    }

    fn vote_send(&mut self, tick: u64, a: u32, b: u32, m: Message) {
        if self.dead(tick, a) || self.dead(tick, b) || self.rebooting(tick, a, b) {
            return;
        }
        let cut = !self.healing(tick) && self.network.partitioned(tick, a, b);
        let loss = if self.healing(tick) {
            0.0
        } else {
            self.network.loss()
        };
        let delay_max = self.network.delay_max().max(1);
        let rng = self.votes.rng.as_mut().expect("votes drawn");
        if cut || rng.random_bool(loss) {
            return;
        }
        let delay = rng.random_range(1..=delay_max);
        self.votes
            .in_flight
            .entry(tick + delay)
            .or_default()
            .push(m);
    }

    /// Every tick: the vote messages due, asks sent again, ballots decided.
    pub(super) fn votes_tick(&mut self, tick: u64) {
        for m in super::network::take_due(&mut self.votes.in_flight, tick) {
            self.vote_received(tick, m);
        }
        for z in super::network::take_due(&mut self.votes.drop_retries, tick) {
            self.ask_drop_again(tick, z);
        }
        for (node, id, ask) in super::network::take_due(&mut self.votes.withdraw_retries, tick) {
            self.withdraw_again(tick, node, id, ask);
        }
        for node in super::network::take_due(&mut self.votes.disk_returns, tick) {
            self.disk_returns(tick, node);
        }
        let mut k = 0;
        while k < self.votes.ballots.len() {
            let b = &self.votes.ballots[k];
            let outcome = b
                .tally
                .outcome()
                .or_else(|| (tick >= b.began + TIMEOUT_TICKS).then_some(false));
            if let Some(granted) = outcome {
                let b = self.votes.ballots.swap_remove(k);
                if !granted {
                    self.withdraw(tick, b.node, b.ask);
                    self.withdraw_later(tick, &b);
                }
                let answered = b.tally.outcome().is_some() || b.tally.refused();
                self.decided(tick, (b.then, b.ask), granted, answered);
                continue;
            }
            if tick >= b.sent_at + RESEND_TICKS && !self.dead(tick, b.node) {
                self.send_asks(tick, k);
            }
            k += 1;
        }
    }

    fn vote_received(&mut self, tick: u64, m: Message) {
        match m {
            Message::Ask { id, from, to, ask } => {
                if self.dead(tick, to) {
                    return;
                }
                let answer = self.answer(tick, to, (from, id), ask);
                let reply = Message::Answer {
                    id,
                    from: to,
                    answer,
                };
                self.vote_send(tick, to, from, reply);
            }
            Message::Answer { id, from, answer } => {
                if let Some(b) = self.votes.ballots.iter_mut().find(|b| b.id == id) {
                    if self.trace_entity.is_some() {
                        eprintln!("tick {tick}: node {from} answers {answer:?} to {:?}", b.ask);
                    }
                    b.tally.count(from as u16, answer);
                }
            }
        }
    }

    /// A ballot ended: granted, refused (`answered`: by enough nodes, or by some when it
    /// ran out of time), or out of time.
    fn decided(&mut self, tick: u64, (then, ask): (Then, Ask), granted: bool, answered: bool) {
        ("decided", tick, format!("{then:?}"), granted).hash(&mut self.hasher);
        if self.trace_entity.is_some() {
            eprintln!("tick {tick}: {then:?} granted {granted}");
        }
        match then {
            Then::Promote(_) | Then::Acted(_) if granted && self.dead_taker(tick, ask) => {}
            Then::Drop(z) if granted => self.drop_standby(tick, z),
            Then::Drop(z) if answered => {
                // Refused (a takeover of this run was agreed to, or promised and not yet
                // withdrawn): the ledgers are asked to let go of a promise the standby
                // never said it acts on, and the drop asked again later while the
                // standby is still down.
                self.ask_release(tick, z);
                let at = tick + RETRY_TICKS;
                self.votes.drop_retries.entry(at).or_default().push(z);
            }
            Then::Drop(z) => self.ask_drop_again(tick, z),
            Then::Promote(z) if granted => self.ask_acted(tick, z, ask),
            Then::Acted(z) if granted => {
                // Recorded before the run starts, as the node does (`mark_acted`): the run
                // the mesh agreed to — which the restored run's number can pass (seed
                // 3582: a primary restarted after its standby's copy; the copy's run + 1
                // was agreed, the zone's newest + 1 started).
                if let Ask::Acted {
                    incarnation,
                    standby,
                    ..
                } = ask
                {
                    self.acted_on(u32::from(standby), z, incarnation);
                }
                self.promote(tick, z);
            }
            Then::Promote(z) | Then::Acted(z) if self.move_ballot_failed(tick, z) => {}
            Then::Promote(z) | Then::Acted(z) if answered => {
                self.report.promotions_refused += 1;
                if !self.ask_takeover_again(tick, z) {
                    self.wait_for_own_node(tick, z);
                }
            }
            Then::Promote(z) | Then::Acted(z) => {
                // Out of time: asked again while the primary's node is still down; once
                // it is seen alive (a cut healed, a node back) the zone is its node's
                // again, which restarts it if it is down (seed 4161: a zone down when its
                // node was cut off stayed down for good, asked about for ever).
                if self.standby_sees_primary_down(tick, z) {
                    self.ask_promote(tick, z);
                } else {
                    self.wait_for_own_node(tick, z);
                }
            }
            Then::Current(z) => self.current_decided(tick, z, granted),
            Then::Release(z) if !granted && answered => self.await_disk(tick, z),
            Then::SupersededDrop(z) if granted => self.violation(
                tick,
                format!("zone {z}'s superseded run was agreed to go on without the node that took it over ({ask:?})"),
            ),
            Then::SupersededDrop(z) if answered => {
                self.report.superseded_drops_refused += 1;
                let asker = self.old_run_node(z);
                if let (Some(node), Ask::Drop {
                    zone,
                    incarnation,
                    standby,
                    ..
                }) = (asker, ask)
                {
                    let release = Ask::Release {
                        zone,
                        incarnation,
                        standby,
                    };
                    self.ask(tick, node, release, Then::SupersededRelease(z));
                }
            }
            Then::Withdraw(_)
            | Then::Release(_)
            | Then::SupersededDrop(_)
            | Then::SupersededRelease(_) => {}
        }
    }

    /// Zone `z`'s old run on node `node` (its run `incarnation`), superseded by a takeover
    /// whose node `taker` it sees down, asks to go on without it as its standby.
    pub(super) fn ask_superseded_drop(
        &mut self,
        tick: u64,
        z: usize,
        (node, incarnation): (u32, u32),
        taker: u32,
    ) {
        let asking = self.votes.ballots.iter().any(
            |b| matches!(b.then, Then::SupersededDrop(y) | Then::SupersededRelease(y) if y == z),
        );
        if asking {
            return;
        }
        let ask = Ask::Drop {
            zone: z as u32,
            incarnation,
            seq: self.next_primary_seq(z),
            standby: taker as u16,
        };
        self.ask(tick, node, ask, Then::SupersededDrop(z));
    }

    /// Zone `z`'s standby learnt its takeover (`promote`, the ask agreed) was agreed: it
    /// asks the ledgers to hold that it acts on that very promise, and starts the run only
    /// once a majority do.
    fn ask_acted(&mut self, tick: u64, z: usize, promote: Ask) {
        let Ask::Promote {
            zone,
            incarnation,
            standby,
            ..
        } = promote
        else {
            return;
        };
        let ask = Ask::Acted {
            zone,
            incarnation,
            standby,
        };
        self.ask(tick, u32::from(standby), ask, Then::Acted(z));
    }

    /// Zone `z`'s primary, its drop of a standby declared down refused, asks the ledgers
    /// to let go of a promise to that standby it never said it acts on.
    fn ask_release(&mut self, tick: u64, z: usize) {
        let (Some(stream), Some(zone)) =
            (self.standbys.streams[z].as_ref(), self.zones[z].as_ref())
        else {
            return;
        };
        let asking = self
            .votes
            .ballots
            .iter()
            .any(|b| b.then == Then::Release(z));
        if asking || self.bugs.never_release {
            return;
        }
        self.report.releases += 1;
        let ask = Ask::Release {
            zone: z as u32,
            incarnation: zone.incarnation(),
            standby: stream.node as u16,
        };
        self.ask(tick, self.node_of[z], ask, Then::Release(z));
    }

    /// Zone `z`'s primary asks again to drop its standby, if it still sees it down.
    fn ask_drop_again(&mut self, tick: u64, z: usize) {
        let standby = self.standbys.streams[z].as_ref().map(|s| s.node);
        let primary = self.node_of[z];
        if standby.is_some_and(|s| self.sees_down(tick, primary, s)) {
            self.ask_drop(tick, z);
        }
    }
}
