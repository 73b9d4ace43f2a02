//! The votes' side of [`Mesh`]: asks, answers, the ledger saved before what rests on it
//! leaves (see the module docs of [`super`] and [`super::votes`]).

use core::mem::take;
use core::net::SocketAddr;
use std::collections::VecDeque;

use meridian_layouts::control::ControlKind;
use meridian_layouts::votes::{NO_NODE, VoteKind, VoteMessage, VoteOp};
use meridian_layouts::{U16Le, U32Le, U64Le};

use super::gate::TagKey;
use super::votes::{Ask, Ledger, Tally};
use super::{Liveness, Mesh, MeshEvent, VOTE_RESEND, VOTE_TIMEOUT, datagram};
use crate::time::Instant;

/// How many announced ends ([`Ask::Ended`]) a node keeps: a move's takeover follows its
/// end within seconds, and a node keeps at most a few zones' standbys.
const ENDED_KEPT: usize = 64;

/// A ledger to save ([`Mesh::ledger_to_save`]): its file's bytes, and the version to
/// report back once they are on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSave {
    pub version: u64,
    pub bytes: Vec<u8>,
}

/// Datagrams to send: (to, bytes).
type Outbox = Vec<(SocketAddr, Vec<u8>)>;

/// Answers and decisions that wait for the ledger to reach the disk.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// Made since the ledger was last handed out to be saved.
    pub(super) out: Outbox,
    pub(super) events: Vec<MeshEvent>,
    /// Those that wait for a save handed out: (its version, answers, decisions), oldest
    /// first.
    saving: VecDeque<(u64, Outbox, Vec<MeshEvent>)>,
    /// The last version handed out.
    version: u64,
}

/// An ask of this node under way.
#[derive(Debug)]
pub(super) struct Ballot {
    id: u64,
    ask: Ask,
    tally: Tally,
    began: Instant,
    pub(super) sent_at: Instant,
}

impl Mesh {
    /// This node votes, from `ledger` (what it agreed to before, read from its disk).
    pub fn with_ledger(mut self, ledger: Ledger) -> Mesh {
        self.ledger = Some(ledger);
        self
    }

    /// What this node agreed to, if it votes.
    pub fn ledger(&self) -> Option<&Ledger> {
        self.ledger.as_ref()
    }

    /// Asks every node to agree to `ask`; its outcome comes as [`MeshEvent::Decided`]
    /// with the ballot returned. This node's own vote counts first.
    pub fn ask(&mut self, now: Instant, ask: Ask) -> u64 {
        self.now = now;
        self.asks_made += 1;
        let me = self.foca.identity();
        let id = (u64::from(me.generation) << 32) | u64::from(self.asks_made);
        self.heard_end(me.node, ask);
        self.ballots.push(Ballot {
            id,
            ask,
            tally: Tally::new(self.peers.len() + 1, &ask),
            began: now,
            sent_at: now,
        });
        self.send_asks(self.ballots.len() - 1);
        self.decide();
        id
    }

    /// Saves the ledger through `save` if it changed, then lets the answers and
    /// decisions that rest on it out: [`Mesh::ledger_to_save`] and [`Mesh::ledger_saved`]
    /// in one call, for a caller that may wait on its disk. What it holds stays held
    /// while saving fails.
    pub fn save_ledger(
        &mut self,
        save: impl FnOnce(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        if let Some(LedgerSave { version, bytes }) = self.ledger_to_save() {
            if let Err(e) = save(&bytes) {
                self.ledger_save_failed();
                return Err(e);
            }
            self.ledger_saved(version);
        }
        Ok(())
    }

    /// The ledger to save, if it changed since the last call: save it, then report it
    /// with [`Mesh::ledger_saved`] (or [`Mesh::ledger_save_failed`]). The answers and
    /// decisions made so far leave only once a save of this version or a later one is
    /// reported; meanwhile the mesh goes on — probes answered, gossip sent — so a disk
    /// that takes a second to sync does not make this node look dead (the node saves on
    /// a thread of its own). With nothing new to save, what was held rests on a save
    /// already under way, or on none and leaves now. Call it after each batch of
    /// datagrams and timeouts.
    pub fn ledger_to_save(&mut self) -> Option<LedgerSave> {
        let held = &mut self.held;
        match self.ledger.as_mut().filter(|l| l.dirty()) {
            Some(ledger) => {
                let bytes = ledger.encode();
                ledger.saved();
                held.version += 1;
                let waiting = (held.version, take(&mut held.out), take(&mut held.events));
                held.saving.push_back(waiting);
                return Some(LedgerSave {
                    version: held.version,
                    bytes,
                });
            }
            None => match held.saving.back_mut() {
                Some((_, out, events)) => {
                    out.append(&mut held.out);
                    events.append(&mut held.events);
                }
                None => {
                    self.outbox.extend(held.out.drain(..));
                    self.events.extend(held.events.drain(..));
                }
            },
        }
        None
    }

    /// The ledger of `version` ([`Mesh::ledger_to_save`]) is on disk: what rests on it,
    /// or on an earlier version, leaves.
    pub fn ledger_saved(&mut self, version: u64) {
        while self
            .held
            .saving
            .front()
            .is_some_and(|(v, _, _)| *v <= version)
        {
            let Some((_, out, events)) = self.held.saving.pop_front() else {
                break;
            };
            self.outbox.extend(out);
            self.events.extend(events);
        }
    }

    /// A save handed out failed: the ledger counts as changed, so the next
    /// [`Mesh::ledger_to_save`] hands it out again, and what waits on the failed one
    /// leaves with that save.
    pub fn ledger_save_failed(&mut self) {
        if let Some(ledger) = self.ledger.as_mut() {
            ledger.unsaved();
        }
    }

    /// Whether this node sees `node` declared down (never itself).
    fn sees_down(&self, node: Option<u16>) -> bool {
        node.is_some_and(|n| {
            self.peers
                .iter()
                .any(|p| p.node == n && p.liveness == Liveness::Down)
        })
    }

    /// What `ask` rests on holds from here: the node it concerns is declared down, or —
    /// a takeover — the primary announced that the run the copy is of ended
    /// ([`Ask::Ended`]).
    fn rests(&self, ask: Ask) -> bool {
        let ended = match ask {
            Ask::Promote {
                zone,
                incarnation,
                primary,
                ..
            } => self
                .ended
                .contains(&(zone, incarnation.wrapping_sub(1), primary)),
            _ => false,
        };
        ended || self.sees_down(ask.concerns())
    }

    /// Keeps an [`Ask::Ended`] said by node `from` (its own only), the newest
    /// [`ENDED_KEPT`].
    fn heard_end(&mut self, from: u16, ask: Ask) {
        if let Ask::Ended {
            zone,
            incarnation,
            primary,
        } = ask
            && primary == from
            && !self.ended.contains(&(zone, incarnation, primary))
        {
            if self.ended.len() >= ENDED_KEPT {
                self.ended.remove(0);
            }
            self.ended.push((zone, incarnation, primary));
        }
    }

    /// The runs this node heard have ended for a move: (zone, run, node), oldest first.
    pub fn ended(&self) -> &[(u32, u32, u16)] {
        &self.ended
    }

    /// Sends ballot `k`'s ask to every node that has not agreed yet — this one included,
    /// which answers from its own ledger and view.
    fn send_asks(&mut self, k: usize) {
        let me = self.foca.identity().node;
        let down = self.rests(self.ballots[k].ask);
        let ballot = &mut self.ballots[k];
        if let Some(ledger) = self.ledger.as_mut()
            && !ballot.tally.agreed(me)
        {
            ballot
                .tally
                .count(me, ledger.answer(me, ballot.id, ballot.ask, down));
        }
        let ballot = &self.ballots[k];
        let message = encode_ask(ballot.id, ballot.ask);
        let to: Vec<(SocketAddr, TagKey)> = self
            .peers
            .iter()
            .filter(|p| !ballot.tally.agreed(p.node))
            .map(|p| (p.addr, p.tag))
            .collect();
        for (addr, tag) in to {
            let datagram = self.vote_datagram(&message, &tag);
            self.outbox.push_back((addr, datagram));
        }
    }

    fn vote_datagram(&mut self, message: &VoteMessage, tag: &TagKey) -> Vec<u8> {
        let me = self.foca.identity().node;
        self.counters.sent += 1;
        datagram(
            ControlKind::Vote,
            (me, self.world),
            bytemuck::bytes_of(message),
            &self.key,
            tag,
        )
    }

    /// A vote datagram from `node`, signature checked.
    pub(super) fn handle_vote(&mut self, node: u16, addr: SocketAddr, payload: &[u8]) {
        let Some(message) = (payload.len() == VoteMessage::SIZE)
            .then(|| bytemuck::pod_read_unaligned::<VoteMessage>(payload))
        else {
            self.counters.votes_dropped += 1;
            return;
        };
        let Ok((kind, op, answer)) = message.check() else {
            self.counters.votes_dropped += 1;
            return;
        };
        let ask = decode_ask(&message, op);
        match (kind, answer, ask) {
            (VoteKind::Ask, _, ask) if self.ledger.is_some() => {
                self.heard_end(node, ask);
                let down = self.rests(ask);
                let ledger = self.ledger.as_mut().expect("looked at");
                let answer = ledger.answer(node, message.ballot.get(), ask, down);
                let mut reply = message;
                reply.kind = VoteKind::Answer as u8;
                reply.answer = answer as u8;
                let Some(tag) = self.peers.iter().find(|p| p.node == node).map(|p| p.tag) else {
                    return;
                };
                let datagram = self.vote_datagram(&reply, &tag);
                self.held.out.push((addr, datagram));
                self.counters.votes += 1;
            }
            (VoteKind::Answer, Some(answer), ask) => {
                let id = message.ballot.get();
                let Some(ballot) = self.ballots.iter_mut().find(|b| b.id == id && b.ask == ask)
                else {
                    self.counters.votes_dropped += 1;
                    return;
                };
                ballot.tally.count(node, answer);
                self.counters.votes += 1;
                self.decide();
            }
            _ => self.counters.votes_dropped += 1,
        }
    }

    /// Ballots with an outcome (or out of time) end, as events held until the ledger is
    /// saved; the others go again to the nodes that have not agreed, when due.
    pub(super) fn decide(&mut self) {
        let now = self.now;
        let mut k = 0;
        while k < self.ballots.len() {
            let b = &self.ballots[k];
            let outcome = b.tally.outcome().or_else(|| {
                (now.saturating_duration_since(b.began) >= VOTE_TIMEOUT).then_some(false)
            });
            if let Some(granted) = outcome {
                let b = self.ballots.swap_remove(k);
                self.held.events.push(MeshEvent::Decided {
                    ballot: b.id,
                    ask: b.ask,
                    granted,
                });
                continue;
            }
            if now.saturating_duration_since(b.sent_at) >= VOTE_RESEND {
                self.ballots[k].sent_at = now;
                self.send_asks(k);
            }
            k += 1;
        }
    }
}

fn encode_ask(ballot: u64, ask: Ask) -> VoteMessage {
    let (op, zone, incarnation, seq, standby, primary) = match ask {
        Ask::Drop {
            zone,
            incarnation,
            seq,
            standby,
        } => (VoteOp::Drop, zone, incarnation, seq, standby, NO_NODE),
        Ask::Current {
            zone,
            incarnation,
            seq,
            standby,
        } => (VoteOp::Current, zone, incarnation, seq, standby, NO_NODE),
        Ask::Promote {
            zone,
            incarnation,
            standby,
            primary,
        } => (VoteOp::Promote, zone, incarnation, 0, standby, primary),
        Ask::Withdraw {
            zone,
            incarnation,
            standby,
        } => (VoteOp::Withdraw, zone, incarnation, 0, standby, NO_NODE),
        Ask::Acted {
            zone,
            incarnation,
            standby,
        } => (VoteOp::Acted, zone, incarnation, 0, standby, NO_NODE),
        Ask::Release {
            zone,
            incarnation,
            standby,
        } => (VoteOp::Release, zone, incarnation, 0, standby, NO_NODE),
        Ask::Ended {
            zone,
            incarnation,
            primary,
        } => (VoteOp::Ended, zone, incarnation, 0, NO_NODE, primary),
    };
    VoteMessage {
        kind: VoteKind::Ask as u8,
        op: op as u8,
        answer: 0,
        reserved: 0,
        ballot: U64Le::new(ballot),
        zone: U32Le::new(zone),
        incarnation: U32Le::new(incarnation),
        seq: U32Le::new(seq),
        standby: U16Le::new(standby),
        primary: U16Le::new(primary),
    }
}

/// The ask a vote message carries (asks and answers both do), its op checked.
fn decode_ask(m: &VoteMessage, op: VoteOp) -> Ask {
    let (zone, incarnation, seq) = (m.zone.get(), m.incarnation.get(), m.seq.get());
    let (standby, primary) = (m.standby.get(), m.primary.get());
    match op {
        VoteOp::Drop => Ask::Drop {
            zone,
            incarnation,
            seq,
            standby,
        },
        VoteOp::Current => Ask::Current {
            zone,
            incarnation,
            seq,
            standby,
        },
        VoteOp::Promote => Ask::Promote {
            zone,
            incarnation,
            standby,
            primary,
        },
        VoteOp::Withdraw => Ask::Withdraw {
            zone,
            incarnation,
            standby,
        },
        VoteOp::Acted => Ask::Acted {
            zone,
            incarnation,
            standby,
        },
        VoteOp::Release => Ask::Release {
            zone,
            incarnation,
            standby,
        },
        VoteOp::Ended => Ask::Ended {
            zone,
            incarnation,
            primary,
        },
    }
}
