//! The zones running here that have (or had) a standby: asks the mesh to drop a standby
//! declared down, streams to it again when it is back, and tells the mesh when it is
//! current (docs/mesh.md, "Dropping a standby: the votes").

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};

use meridian_core::mesh::Liveness;
use meridian_core::mesh::votes::Ask;
use meridian_core::world::ZoneID;
use meridian_io::runtime::{Node, StandbyState};
use meridian_io::standby::StandbyTarget;

use super::{Layout, Retry, alive, majority};
use crate::mesh::{MeshView, VoteBox};

/// A zone running here with a standby: what the mesh agreed about it in this run.
pub(super) struct Guarded {
    incarnation: u32,
    /// The standby's node, by index.
    standby: usize,
    /// This run's asks about the zone so far.
    seq: u32,
    /// The mesh agreed the zone goes on without its standby.
    dropped: bool,
    /// The mesh agreed the standby is current in this run.
    current: bool,
    /// An ask under way: its outcome, and what it asked.
    pending: Option<(Receiver<bool>, Asked)>,
    /// A drop was refused: the next step asks the ledgers to release the promise it was
    /// refused for, if one is held, before the drop is asked again.
    release: bool,
    retry: Retry,
}

/// What a zone's ask under way asked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    Drop,
    Current,
    Release,
}

impl Guarded {
    fn new(incarnation: u32, standby: usize) -> Guarded {
        Guarded {
            incarnation,
            standby,
            seq: 0,
            dropped: false,
            current: false,
            pending: None,
            release: false,
            retry: Retry::default(),
        }
    }
}

/// One look at the zones running here that have (or had) a standby: drops a standby the
/// mesh agreed is down, streams to it again when it is back, and tells the mesh when it
/// is current.
pub(super) fn guard(
    view: &MeshView,
    (layout, votes): (&Layout, &VoteBox),
    guards: &mut HashMap<ZoneID, Guarded>,
    node: &Node,
) {
    for &zone in &layout.zones {
        let Some((incarnation, state, Some(addr))) = node.standby_state(zone) else {
            guards.remove(&zone);
            continue;
        };
        let Some(standby) = layout.nodes.iter().position(|n| n.1 == addr) else {
            continue;
        };
        let g = guards
            .entry(zone)
            .or_insert_with(|| Guarded::new(incarnation, standby));
        if (g.incarnation, g.standby) != (incarnation, standby) {
            // A new run, or a new standby: nothing agreed about it yet. The asks of one
            // run stay numbered in order (the others refuse one older than they took).
            let seq = if g.incarnation == incarnation {
                g.seq
            } else {
                0
            };
            *g = Guarded {
                seq,
                ..Guarded::new(incarnation, standby)
            };
        }
        if g.outcome(zone, node) && g.retry.due() {
            g.next(zone, state, (view, layout, votes), node);
        }
    }
}

impl Guarded {
    /// Takes the outcome of the ask under way, if any; `false` while it is undecided.
    fn outcome(&mut self, zone: ZoneID, node: &Node) -> bool {
        let Some((outcome, asked)) = &self.pending else {
            return true;
        };
        let drop = *asked == Asked::Drop;
        match outcome.try_recv() {
            Err(TryRecvError::Empty) => return false,
            // Whatever the ledgers let go of, the drop is asked again next.
            _ if *asked == Asked::Release => {}
            Ok(true) if drop => {
                node.drop_standby(zone);
                (self.dropped, self.current) = (true, false);
                self.retry.succeeded();
            }
            Ok(true) => {
                self.current = true;
                self.retry.succeeded();
            }
            Ok(false) | Err(TryRecvError::Disconnected) => {
                let wait = self.retry.failed();
                if drop {
                    // Refused: ledgers hold a takeover of this run promised to the
                    // standby's node — released next, unless that node said it acts on it
                    // (docs/mesh.md, "A limit: a standby that never comes back") — or a
                    // newer run of the zone exists.
                    self.release = true;
                    tracing::warn!(%zone, "the mesh did not agree that zone {zone} goes on without its standby (its datagrams wait for it meanwhile); asking again in {wait:?}, after asking the ledgers to let go of any takeover of the zone promised to the standby's node that it never said it acts on. If this repeats while most nodes are up, that node did act on one (or a newer run of the zone exists): start it again from its data directory, on any machine, and it resumes or withdraws what it holds");
                } else {
                    tracing::warn!(%zone, "the mesh did not agree that zone {zone} has its standby current; asking again in {wait:?}");
                }
            }
        }
        self.pending = None;
        true
    }

    /// The next step for `zone`, its standby now `state`: ask to drop a standby declared
    /// down, say a standby holding the zone again is current, stream to a dropped one
    /// that is back.
    fn next(
        &mut self,
        zone: ZoneID,
        state: StandbyState,
        (view, layout, votes): (&MeshView, &Layout, &VoteBox),
        node: &Node,
    ) {
        let (name, control, key) = &layout.nodes[self.standby];
        let liveness = view
            .peers
            .iter()
            .find(|p| &p.name == name)
            .map(|p| p.liveness);
        let (z, incarnation, standby) = (zone.0, self.incarnation, self.standby as u16);
        if !self.dropped && liveness == Some(Liveness::Down) && self.release {
            if majority(alive(view), layout.nodes.len()) {
                self.release = false;
                let ask = Ask::Release {
                    zone: z,
                    incarnation,
                    standby,
                };
                self.pending = Some((votes.ask(ask), Asked::Release));
            }
        } else if !self.dropped && liveness == Some(Liveness::Down) {
            if majority(alive(view), layout.nodes.len()) {
                tracing::warn!(%zone, "node {name}, zone {zone}'s standby, is declared down: asking the mesh to let the zone go on without it");
                self.seq += 1;
                let ask = Ask::Drop {
                    zone: z,
                    incarnation,
                    seq: self.seq,
                    standby,
                };
                self.pending = Some((votes.ask(ask), Asked::Drop));
            }
        } else if !self.dropped && !self.current && state == StandbyState::Current {
            self.seq += 1;
            let ask = Ask::Current {
                zone: z,
                incarnation,
                seq: self.seq,
                standby,
            };
            self.pending = Some((votes.ask(ask), Asked::Current));
        } else if self.dropped && liveness == Some(Liveness::Alive) && state == StandbyState::None {
            let target = StandbyTarget {
                addr: *control,
                key: *key,
            };
            if node.attach_standby(zone, target) {
                tracing::warn!(%zone, "node {name} is back: streaming zone {zone} to it again as its standby");
                self.dropped = false;
            }
        }
    }
}
