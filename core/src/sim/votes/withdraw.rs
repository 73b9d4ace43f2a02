//! What a node takes back (docs/mesh.md, "A standby that never comes back"): the
//! promotions it withdraws — one that did not go ahead, the ones its restart finds in its
//! ledger and its record of the runs it acted on says it never started, a withdrawal
//! asked again until every node holds it — and the dead node's disk brought back for a
//! zone whose release was refused.

use super::{Ballot, RETRY_TICKS, Then};
use crate::mesh::votes::Ask;
use crate::sim::Sim;
use crate::sim::standby::REBOOT_TICKS;

impl Sim {
    /// Zone `z`'s release was refused: a ledger holds that its standby acts on a takeover
    /// — it may have started that run, or died asking — and only its node's disk can say
    /// which. If that node is dead, the zone waits for its disk, which the simulator
    /// brings back after [`REBOOT_TICKS`]: an operator who starts the node only to clear
    /// its promises. (A zone that waits for its dead node brings the whole node back
    /// instead: [`Sim::node_restarts`].)
    pub(super) fn await_disk(&mut self, tick: u64, z: usize) {
        let Some(node) = self.standbys.streams[z].as_ref().map(|s| s.node) else {
            return;
        };
        let awaited = self
            .votes
            .disk_returns
            .values()
            .any(|due| due.contains(&node));
        if self.dead(tick, node) && !awaited {
            let at = tick + REBOOT_TICKS;
            self.votes.disk_returns.entry(at).or_default().push(node);
        }
    }

    /// Dead node `node`'s disk is back (an operator started the node from it, briefly, on
    /// any machine): what its ledger says it promised itself and never acted on is
    /// withdrawn, as its restart would ([`Sim::withdraw_unacted`]) — applied to every
    /// ledger at once, the node gone again. Nothing if it came back by itself meanwhile.
    pub(super) fn disk_returns(&mut self, tick: u64, node: u32) {
        if !self.dead(tick, node) {
            return;
        }
        self.event(tick, ("its disk returns", node));
        let unacted = self.unacted(node);
        for (zone, incarnation) in unacted {
            self.report.withdrawn_from_disk += 1;
            self.votes.asked += 1;
            let ask = Ask::Withdraw {
                zone,
                incarnation,
                standby: node as u16,
            };
            for ledger in &mut self.votes.ledgers {
                ledger.answer(node as u16, self.votes.asked, ask, false);
            }
        }
    }

    /// Zone `z`'s standby on node `node` acts on its takeover as run `run` (the run the
    /// mesh agreed to): a promise it acted on, never to be withdrawn.
    pub(in crate::sim) fn acted_on(&mut self, node: u32, z: usize, run: u32) {
        self.votes.acted.insert((node, z as u32, run));
    }

    /// Node `node` restarts (it came back, or came back after dying in turn) with its
    /// ledger as it left it: each promotion of its own the ledger records (withdrawn or
    /// not: its ledger holds its withdrawal from the moment it asked) and it never acted
    /// on is withdrawn — one agreed while its answers were lost and its ballot had not
    /// ended when it died, or whose withdrawal it died before every node held. Left, such
    /// a promise keeps the zone's primary from ever dropping this standby once its node
    /// dies again.
    pub(in crate::sim) fn withdraw_unacted(&mut self, tick: u64, node: u32) {
        if self.bugs.keep_promises || self.bugs.restart_keeps_promises {
            return;
        }
        let unacted = self.unacted(node);
        for (zone, incarnation) in unacted {
            self.report.withdrawn_on_restart += 1;
            if self.trace_entity.is_some() {
                eprintln!(
                    "tick {tick}: node {node} restarts, withdraws its promise to run {incarnation} of zone {zone}"
                );
            }
            let ask = Ask::Withdraw {
                zone,
                incarnation,
                standby: node as u16,
            };
            self.ask(tick, node, ask, Then::Withdraw(zone as usize));
        }
    }

    /// The promises node `node`'s ledger records to itself, withdrawn or not, that it
    /// never acted on (its durable record of the runs it started says so): (zone, run).
    fn unacted(&self, node: u32) -> Vec<(u32, u32)> {
        self.votes.ledgers[node as usize]
            .promises_to(node as u16)
            .filter(|p| !self.votes.acted.contains(&(node, p.zone, p.run)))
            .map(|p| (p.zone, p.run))
            .collect()
    }

    /// Ballot `b`, a withdrawal, ended before every node held it: asked again later, as
    /// the node does, until every node does.
    pub(super) fn withdraw_later(&mut self, tick: u64, b: &Ballot) {
        if matches!(b.ask, Ask::Withdraw { .. }) {
            let at = tick + RETRY_TICKS;
            let retry = (b.node, b.id, b.ask);
            self.votes
                .withdraw_retries
                .entry(at)
                .or_default()
                .push(retry);
        }
    }

    /// Node `node` died: the withdrawals it was to ask again go with it (its restart
    /// asks what its ledger holds).
    pub(in crate::sim) fn forget_withdrawals(&mut self, node: u32) {
        for due in self.votes.withdraw_retries.values_mut() {
            due.retain(|&(n, _, _)| n != node);
        }
    }

    /// Node `node` asks its withdrawal `ask` again (ballot `id` did not reach every node)
    /// — unless it is dead (its restart withdraws what its ledger holds) or asked to take
    /// the zone over since (a later ballot, which a withdrawal must not meet).
    pub(super) fn withdraw_again(&mut self, tick: u64, node: u32, id: u64, ask: Ask) {
        let asked_since = self
            .votes
            .promote_asked
            .get(&(node, ask.zone()))
            .is_some_and(|&p| p > id);
        if self.dead(tick, node) || asked_since {
            return;
        }
        self.report.withdrawals_again += 1;
        self.ask(tick, node, ask, Then::Withdraw(ask.zone() as usize));
    }

    /// Node `node`'s `ask` did not go ahead: a promotion, it withdraws it, so that what a
    /// majority may have agreed to without its hearing of it (answers lost, the ballot out
    /// of time) holds nothing against the zone's primary (seed 8227: the primary could
    /// never drop that standby once it died, and its datagrams waited for ever). A dead
    /// node withdraws nothing: what its ledger and the others' hold stays.
    pub(super) fn withdraw(&mut self, tick: u64, node: u32, ask: Ask) {
        let (Ask::Promote {
            zone,
            incarnation,
            standby,
            ..
        }
        | Ask::Acted {
            zone,
            incarnation,
            standby,
        }) = ask
        else {
            return;
        };
        if self.dead(tick, node) || self.bugs.keep_promises {
            return;
        }
        self.report.withdrawn += 1;
        let ask = Ask::Withdraw {
            zone,
            incarnation,
            standby,
        };
        self.ask(tick, node, ask, Then::Withdraw(zone as usize));
    }
}
