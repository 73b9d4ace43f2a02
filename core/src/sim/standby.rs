//! Warm standbys and failover (docs/mesh.md). In half the multi-node seeds (or as
//! `Options::standbys` says) every zone streams its durable log records to a standby on
//! another node over the simulated network — lossy, duplicating, delaying, partitioned like
//! every cross-node link — and its datagrams wait while the standby lacks any record
//! written so far. In half of those seeds a node dies for good; [`DETECT_TICKS`] later (what
//! membership takes) each of its zones is promoted on its standby's node: restored from the
//! standby's copy — the disk as it stood at the newest tick the standby acknowledged — as
//! the next incarnation. What the dead primary wrote after that copy is lost, and the gate
//! is what makes that safe: no datagram that depended on it ever left. Zones whose standby
//! was on the dead node go on without one.
//!
//! Only where the other nodes are a majority (three nodes or more): in a world of two, a
//! standby never sees a majority, so a dead node's zones wait for it to restart from its
//! own disks (`reboot_node`), and its standbys are not dropped (docs/mesh.md).
//!
//! The stream is per incarnation: a zone that restarts streams its restored state first (its
//! restart checkpoint) and sends nothing until the standby holds it — the restored state may
//! rest on records the standby never got (seed 179 without: `Bugs::restart_without_resync`). The standby's copy is modelled as a mark on the
//! primary's disk (the files as they stood then; the generations it needs are pinned),
//! which is what a standby that received those files would hold.
//!
//! For the invariants, records a promotion loses never happened (their transfer
//! bookkeeping is undone), and entities the dead zones held may come back as they were in
//! the copy (not a teleport or a loss: what the dead primary did since was never seen
//! outside it). The death itself and the promotions: [`super::failover`].

use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::Sim;
use super::disk::Mark;
use super::rejoin::Rejoin;
use super::suspicion::{Isolation, Superseded};
use crate::handoff::LogRecord;
use crate::world::ZoneID;

/// Ticks from a node's death to its zones' promotion: what membership takes to declare a
/// node down (under a second: `mesh::a_dead_node_is_declared_down_within_a_second`).
pub(super) const DETECT_TICKS: u64 = 25;

/// A stream's incarnation until its zone's restarted run first writes
/// ([`Stream::restart_attached`]): no run's, so that write starts the stream over.
const RESTARTED: u32 = u32::MAX;

/// One zone's stream to its standby.
#[derive(Debug, Default)]
pub(super) struct Stream {
    /// The standby's node.
    pub(super) node: u32,
    /// The incarnation streamed (a restart starts a new stream).
    pub(super) incarnation: u32,
    /// The primary went on without this standby once a majority agreed
    /// ([`super::votes`]): nothing waits for it and nothing more is sent to it; its copy
    /// stays as it was — until it comes back ([`super::rejoin`]).
    pub(super) dropped: bool,
    /// A dropped standby's way back.
    pub(super) rejoin: Rejoin,
    /// The stream's connection: a dropped standby that comes back is streamed to on a new
    /// one, and what was in flight on the old one is ignored.
    link: u32,
    /// The run the standby's copy is of.
    pub(super) replica_run: u32,
    /// Records this run has written, and how many the standby acknowledged.
    pub(super) written: u64,
    pub(super) acked: u64,
    /// What the standby holds of this run (contiguous from 0).
    held: u64,
    /// The tick the unacknowledged records were last sent.
    sent_at: u64,
    /// Datagrams waiting for the standby: (records they need, to, bytes).
    pub(super) gated: VecDeque<(u64, ZoneID, Vec<u8>)>,
    /// Ticks with records the standby has not acknowledged, oldest first, across
    /// restarts: the incarnation, its record count after the tick, where the disk stood
    /// then, and the tick's records (what a promotion loses).
    pub(super) marks: VecDeque<(u32, u64, Mark, Vec<LogRecord>)>,
    /// What the standby holds: the disk as it stood at this mark.
    pub(super) replica: Option<Mark>,
    /// Ticks in a row the zone's datagrams have waited for this standby while its node
    /// was dead (a drop, once agreed, ends it).
    dead_wait: u64,
}

impl Stream {
    /// A dropped standby comes back: streamed to on a new connection from a resync (the
    /// zone's files as they stand at `mark`: one item), its copy as it was until it holds
    /// that.
    pub(super) fn restart_for_resync(&mut self, incarnation: u32, mark: Mark) {
        *self = Stream {
            node: self.node,
            incarnation,
            dropped: true,
            rejoin: Rejoin::Resync { until: 1 },
            link: self.link + 1,
            replica_run: self.replica_run,
            replica: self.replica,
            written: 1,
            marks: VecDeque::from([(incarnation, 1, mark, Vec::new())]),
            ..Stream::default()
        };
    }
    /// The zone's node restarted: the stream is no longer dropped, and its run's first
    /// write starts it over as a restart's (a resync its datagrams wait for: see
    /// `Sim::stream_wrote`), on a new connection.
    pub(super) fn restart_attached(&mut self) {
        *self = Stream {
            node: self.node,
            incarnation: RESTARTED,
            link: self.link + 1,
            replica_run: self.replica_run,
            replica: self.replica,
            marks: std::mem::take(&mut self.marks),
            ..Stream::default()
        };
    }

    /// A stream to a node that ran the zone before and stood down (another node took it
    /// over): that node keeps the zone's standby from then on (the node's `kept-here`
    /// marker), on its way back like a dropped standby — streamed to from a resync, in
    /// the gate once it holds that, current once the mesh agrees ([`super::rejoin`]).
    pub(super) fn kept_here(node: u32) -> Stream {
        Stream {
            node,
            dropped: true,
            ..Stream::default()
        }
    }
}

/// A stream message on the wire: records (only their count matters here) or an ack.
#[derive(Clone, Copy, Debug)]
enum Message {
    /// Records `from..to` of `incarnation`.
    Records {
        zone: u32,
        incarnation: u32,
        link: u32,
        from: u64,
        to: u64,
    },
    Ack {
        zone: u32,
        incarnation: u32,
        link: u32,
        held: u64,
    },
}

/// The standbys of a seed and their messages in flight.
#[derive(Debug, Default)]
pub(super) struct Standbys {
    pub(super) streams: Vec<Option<Stream>>,
    in_flight: BTreeMap<u64, Vec<Message>>,
    pub(super) rng: Option<SmallRng>,
    /// Datagrams that waited for a standby, and the ticks they waited in all.
    pub(super) gated: u64,
    pub(super) gated_ticks: u64,
    /// The most ticks in a row any zone's datagrams waited for a standby on a dead node.
    pub(super) dead_wait_max: u64,
    /// A node that dies for good: (tick, node); its zones are promoted on their standbys
    /// [`Standbys::detect_ticks`] later.
    pub(super) death: Option<(u64, u32)>,
    /// The death is a leave ([`super::Options::leaves`]): the node's zones stop as in a
    /// death, and membership declares it down this many ticks later instead of
    /// [`DETECT_TICKS`].
    pub(super) leave_ticks: Option<u64>,
    /// Zones promoted on their standbys.
    pub(super) promoted: Vec<u32>,
    /// The entities the dead node's zones held (owned or in flight) when it died.
    pub(super) held_at_death: Vec<crate::entities::EntityID>,
    /// A node cut off long enough to be declared down, and its zones' old primaries
    /// running on behind the cut ([`super::suspicion`]).
    pub(super) isolation: Option<Isolation>,
    pub(super) superseded: Vec<Superseded>,
    /// When each zone hears of each takeover: (zone, zone taken over, tick).
    pub(super) heard_at: Vec<(usize, usize, u64)>,
    /// Nodes in the world: a standby promotes only while it sees a majority of them.
    nodes: u32,
    /// A node that died where no failover can be (two nodes: the survivor is no
    /// majority): it restarts from its own disk, down until the tick given.
    pub(super) outage: Option<(u32, u64)>,
}

/// Ticks a node that died without a possible failover stays down before it restarts.
pub(super) const REBOOT_TICKS: u64 = 150;

impl Standbys {
    /// Draws standbys from their own generator: in half the seeds with two nodes or more
    /// (or as `forced` says), every zone streams to a node other than its own.
    pub(super) fn draw(
        seed: u64,
        node_of: &[u32],
        forced: Option<bool>,
        suspicions: Option<bool>,
        fault_end: u64,
    ) -> Standbys {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x57a9_d8b1_0000_0001);
        let nodes = node_of.iter().max().map_or(1, |n| n + 1);
        let on = forced.unwrap_or_else(|| rng.random_bool(0.5)) && nodes >= 2;
        if !on {
            return Standbys::default();
        }
        let streams: Vec<Option<Stream>> = node_of
            .iter()
            .map(|&n| {
                let other = (n + rng.random_range(1..nodes)) % nodes;
                Some(Stream {
                    node: other,
                    ..Stream::default()
                })
            })
            .collect();
        // Half of them lose a node for good, early enough to fail over and heal.
        let death = (rng.random_bool(0.5) && fault_end > 600).then(|| {
            (
                rng.random_range(200..fault_end - 300),
                rng.random_range(0..nodes),
            )
        });
        // Half of the others cut a node off long enough to be declared down, and heal
        // (from a generator of their own: the draws above stay as they were).
        let mut rng_cut = SmallRng::seed_from_u64(seed ^ 0x57a9_d8b1_0000_0002);
        let cut = death.is_none()
            && fault_end > 700
            && suspicions.unwrap_or_else(|| rng_cut.random_bool(0.5));
        let isolation = cut.then(|| {
            let at = rng_cut.random_range(200..fault_end - 400);
            let heal = at + DETECT_TICKS + rng_cut.random_range(0..200);
            Isolation {
                node: rng_cut.random_range(0..nodes),
                at,
                heal,
                stand_down: heal + rng_cut.random_range(1..=5),
            }
        });
        let death = death
            .or_else(|| death_after_cut(seed, isolation, node_of, &streams, nodes))
            .or_else(|| taker_dies(seed, isolation, node_of, &streams, nodes));
        Standbys {
            streams,
            rng: Some(rng),
            death,
            isolation,
            nodes,
            ..Standbys::default()
        }
    }

    pub(super) fn active(&self) -> bool {
        !self.streams.is_empty()
    }

    /// Ticks from the death to its declaration: [`DETECT_TICKS`], or what a leave takes.
    pub(super) fn detect_ticks(&self) -> u64 {
        self.leave_ticks.unwrap_or(DETECT_TICKS)
    }

    /// Whether the nodes other than one make a majority of the world — what a standby
    /// must see alive to promote, and the primaries to drop a standby (docs/mesh.md): a
    /// node cut off alone sees no majority, and in a world of two nodes neither side
    /// does, so nothing fails over there.
    pub(super) fn majority_without_one(&self) -> bool {
        2 * (self.nodes - 1) > self.nodes
    }
}

/// In half the cuts of worlds of three nodes or more (drawn from a generator seeded with
/// `seed`, which the caller goes on drawing from): the cut.
fn half_the_cuts(
    seed: u64,
    isolation: Option<Isolation>,
    nodes: u32,
) -> Option<(Isolation, SmallRng)> {
    let iso = isolation?;
    let mut rng = SmallRng::seed_from_u64(seed);
    (nodes >= 3 && rng.random_bool(0.5)).then_some((iso, rng))
}

/// Half the cuts in worlds of three nodes or more end with a death soon after the heal,
/// of a node whose zone kept its standby on the node that was cut off when there is one:
/// that standby was dropped while cut off, and its copy is stale ([`super::votes`]).
fn death_after_cut(
    seed: u64,
    isolation: Option<Isolation>,
    node_of: &[u32],
    streams: &[Option<Stream>],
    nodes: u32,
) -> Option<(u64, u32)> {
    let (iso, mut rng) = half_the_cuts(seed ^ 0x57a9_d8b1_0000_0003, isolation, nodes)?;
    let primaries: Vec<u32> = node_of
        .iter()
        .zip(streams)
        .filter(|(_, s)| s.as_ref().is_some_and(|s| s.node == iso.node))
        .map(|(&n, _)| n)
        .collect();
    let node = if primaries.is_empty() {
        (iso.node + rng.random_range(1..nodes)) % nodes
    } else {
        primaries[rng.random_range(0..primaries.len())]
    };
    Some((iso.stand_down + rng.random_range(1..=30), node))
}

/// Half the cuts of three nodes or more that end without that death lose instead, right
/// after the heal, a node that took a zone of the cut-off node over — before it told that
/// zone's old primary, which then waits ([`super::suspicion`]).
fn taker_dies(
    seed: u64,
    isolation: Option<Isolation>,
    node_of: &[u32],
    streams: &[Option<Stream>],
    nodes: u32,
) -> Option<(u64, u32)> {
    let (iso, mut rng) = half_the_cuts(seed ^ 0x57a9_d8b1_0000_0004, isolation, nodes)?;
    let takers: Vec<u32> = node_of
        .iter()
        .zip(streams)
        .filter(|&(&n, _)| n == iso.node)
        .filter_map(|(_, s)| s.as_ref().map(|s| s.node))
        .collect();
    let node = *takers.get(rng.random_range(0..takers.len().max(1)))?;
    Some((rng.random_range(iso.heal..iso.stand_down), node))
}

impl Sim {
    /// Zone `z` wrote `records` this tick as `incarnation`: returns the record count its
    /// datagrams must wait for (`None`: no standby, or it holds every record already).
    /// A tick's records go to the standby at once (as the WAL's write is submitted at the
    /// end of the tick).
    pub(super) fn stream_wrote(
        &mut self,
        tick: u64,
        z: usize,
        incarnation: u32,
        records: u64,
    ) -> Option<u64> {
        let stream = self.standbys.streams.get_mut(z)?.as_mut()?;
        let restarted = stream.incarnation != incarnation;
        if stream.dropped && (restarted || stream.rejoin == Rejoin::No) {
            // Dropped: nothing is sent to it (a run that restarts on its way back starts
            // the way over).
            stream.rejoin = Rejoin::No;
            return None;
        }
        // BROKEN ON PURPOSE when `restart_without_resync`: no resync item.
        let resync = restarted && !self.bugs.restart_without_resync;
        if restarted {
            // A new run: its stream starts over with the restart's whole checkpoint (one
            // item: the zone's state as restored), and nothing leaves until the standby
            // holds it — the restored state may rest on records the standby never got.
            // The standby keeps its copy, and the marks it has not acknowledged stay until
            // a newer one is.
            // A run restarted by its node's new process (`Stream::restart_attached`)
            // keeps the new connection that marked it.
            let link = if stream.incarnation == RESTARTED {
                stream.link
            } else {
                0
            };
            *stream = Stream {
                node: stream.node,
                incarnation,
                link,
                marks: std::mem::take(&mut stream.marks),
                replica: stream.replica,
                replica_run: stream.replica_run,
                written: u64::from(resync),
                ..Stream::default()
            };
        }
        stream.written += records;
        if records > 0 || resync {
            let mark = self.disks[z].mark();
            stream
                .marks
                .push_back((incarnation, stream.written, mark, Vec::new()));
            self.pin_copy(z);
            self.stream_records(tick, z);
        }
        let stream = self.standbys.streams[z].as_mut().expect("looked at");
        if matches!(stream.rejoin, Rejoin::Resync { .. }) {
            // On its way back: not in the gate until it holds the resync.
            return None;
        }
        // Every datagram waits while the standby lacks any record: a COMMIT resent in a
        // tick that wrote nothing still depends on the relinquish written before (as the
        // WAL's gate: `appended > synced`).
        if self.bugs.skip_standby_gate {
            // BROKEN ON PURPOSE (`skip_standby_gate`).
            return None;
        }
        if self.bugs.gate_new_records_only {
            // BROKEN ON PURPOSE (`gate_new_records_only`).
            return (records > 0).then_some(stream.written);
        }
        (stream.written > stream.acked).then_some(stream.written)
    }

    /// Holds a datagram of zone `z` until its standby holds `needs` records.
    pub(super) fn gate(&mut self, z: usize, needs: u64, to: ZoneID, bytes: Vec<u8>) {
        let stream = self.standbys.streams[z].as_mut().expect("a standby");
        stream.gated.push_back((needs, to, bytes));
        self.standbys.gated += 1;
    }

    /// A zone that crashes loses the datagrams it had not sent.
    pub(super) fn stream_crashed(&mut self, z: usize) {
        if let Some(Some(stream)) = self.standbys.streams.get_mut(z) {
            stream.gated.clear();
        }
    }

    /// Every tick: the standbys' messages due, each zone's unacknowledged records sent
    /// again, and the datagrams whose records the standby holds released.
    pub(super) fn stream_tick(&mut self, tick: u64) {
        if !self.standbys.active() {
            return;
        }
        for m in super::network::take_due(&mut self.standbys.in_flight, tick) {
            self.stream_received(tick, m);
        }
        for z in 0..self.standbys.streams.len() {
            let Some(node) = self.standbys.streams[z].as_ref().map(|s| s.node) else {
                continue;
            };
            let dead = self.dead(tick, node);
            let stream = self.standbys.streams[z].as_mut().expect("looked at");
            self.standbys.gated_ticks += stream.gated.len() as u64;
            stream.dead_wait = if dead && !stream.gated.is_empty() {
                stream.dead_wait + 1
            } else {
                0
            };
            self.standbys.dead_wait_max = self.standbys.dead_wait_max.max(stream.dead_wait);
            // Resent every other tick until acknowledged (an ack takes two ticks at best).
            let streamed = !stream.dropped || stream.rejoin != Rejoin::No;
            let due = streamed && stream.written > stream.acked && tick >= stream.sent_at + 2;
            if due && (self.zones[z].is_some() || self.stopped_for_move(z)) {
                self.stream_records(tick, z);
            }
            let stream = self.standbys.streams[z].as_mut().expect("looked at");
            let mut released = Vec::new();
            while stream.gated.front().is_some_and(|g| g.0 <= stream.acked) {
                released.push(stream.gated.pop_front().expect("looked at"));
            }
            for (_, to, bytes) in released {
                self.route(tick, ZoneID(z as u32), to, bytes);
            }
        }
    }

    /// Sends zone `z`'s standby the records it has not acknowledged.
    pub(super) fn stream_records(&mut self, tick: u64, z: usize) {
        let stream = self.standbys.streams[z].as_mut().expect("a standby");
        stream.sent_at = tick;
        let m = Message::Records {
            zone: z as u32,
            incarnation: stream.incarnation,
            link: stream.link,
            from: stream.acked,
            to: stream.written,
        };
        let (a, b) = (self.node_of[z], stream.node);
        self.stream_send(tick, a, b, m);
    }

    fn stream_received(&mut self, tick: u64, m: Message) {
        match m {
            Message::Records {
                zone,
                incarnation,
                link,
                from,
                to,
            } => {
                // A standby on a dead node takes nothing (and so acknowledges nothing).
                let dead = |node| self.dead(tick, node);
                let Some(stream) = self.standbys.streams[zone as usize].as_ref() else {
                    return;
                };
                if (incarnation, link) != (stream.incarnation, stream.link) || dead(stream.node) {
                    return;
                }
                let stream = self.standbys.streams[zone as usize]
                    .as_mut()
                    .expect("looked at");
                // Contiguous only: a gap waits for the resend.
                if from <= stream.held {
                    stream.held = stream.held.max(to);
                }
                let ack = Message::Ack {
                    zone,
                    incarnation,
                    link,
                    held: stream.held,
                };
                let (a, b) = (stream.node, self.node_of[zone as usize]);
                self.stream_send(tick, a, b, ack);
            }
            Message::Ack {
                zone,
                incarnation,
                link,
                held,
            } => {
                let Some(stream) = self.standbys.streams[zone as usize].as_mut() else {
                    return;
                };
                if (incarnation, link) == (stream.incarnation, stream.link) {
                    stream.acked = stream.acked.max(held);
                    // The standby's copy now reaches the newest mark of this run it
                    // acknowledged (older runs' marks are behind it).
                    let acked = stream.acked;
                    let newest = stream
                        .marks
                        .iter()
                        .rposition(|m| m.0 == incarnation && m.1 <= acked);
                    if let Some(k) = newest {
                        stream.replica = Some(stream.marks[k].2);
                        stream.replica_run = stream.marks[k].0;
                        stream.marks.drain(..=k);
                    }
                    self.pin_copy(zone as usize);
                }
            }
        }
    }

    /// Whether node `a` or `b` is down at `tick`, restarting after a death no failover
    /// could follow (`reboot_node`): nothing reaches it or leaves it.
    pub(super) fn rebooting(&self, tick: u64, a: u32, b: u32) -> bool {
        self.standbys
            .outage
            .is_some_and(|(node, until)| (node == a || node == b) && tick < until)
    }

    /// One stream message from node `a` to node `b` over the link between them.
    fn stream_send(&mut self, tick: u64, a: u32, b: u32, m: Message) {
        ("stream", tick, a, b).hash(&mut self.hasher);
        if self.rebooting(tick, a, b) {
            return;
        }
        if self.healing(tick) {
            self.standbys.in_flight.entry(tick + 1).or_default().push(m);
            return;
        }
        let cut = self.network.partitioned(tick, a, b);
        let rng = self.standbys.rng.as_mut().expect("standbys drawn");
        if cut || rng.random_bool(self.network.loss()) {
            return;
        }
        let delay = rng.random_range(1..=self.network.delay_max().max(1));
        self.standbys
            .in_flight
            .entry(tick + delay)
            .or_default()
            .push(m);
    }
}

impl Sim {
    /// The tick's records of zone `z`, kept with its newest mark until the standby holds
    /// them (a promotion before that loses them: see [`Sim::undo_lost`]).
    pub(super) fn stream_records_of(&mut self, z: usize, records: &[LogRecord]) {
        let Some(Some(stream)) = self.standbys.streams.get_mut(z) else {
            return;
        };
        if let Some(last) = stream.marks.back_mut() {
            last.3.extend_from_slice(records);
        }
    }

    /// Every standby starts with a copy of its zone's disk as the world was created.
    pub(super) fn standbys_start(&mut self) {
        for z in 0..self.standbys.streams.len() {
            let mark = self.disks[z].mark();
            let run = self.zones[z]
                .as_ref()
                .map_or(0, crate::zone::Zone::incarnation);
            if let Some(stream) = self.standbys.streams[z].as_mut() {
                stream.replica = Some(mark);
                stream.replica_run = run;
                self.pin_copy(z);
            }
        }
    }

    /// Keeps on zone `z`'s disk every generation its standby's copy needs — the copy it
    /// holds, and every mark it may yet acknowledge (a resync's included): a standby that
    /// received those files holds them, however many checkpoints the primary writes and
    /// retires before the acknowledgement comes. (The pin followed the acknowledged copy
    /// alone; seed 28843, `--comebacks`: a kept-here standby's resync — no copy before it
    /// — was acknowledged after two checkpoints had retired the files it named, and the
    /// standby's promotion restored an empty zone.)
    pub(super) fn pin_copy(&mut self, z: usize) {
        let Some(Some(stream)) = self.standbys.streams.get(z) else {
            return;
        };
        // BROKEN ON PURPOSE when `pin_acknowledged_copy_only`.
        let unacknowledged = if self.bugs.pin_acknowledged_copy_only {
            0
        } else {
            stream.marks.len()
        };
        let pin = stream
            .replica
            .iter()
            .chain(stream.marks.iter().take(unacknowledged).map(|m| &m.2))
            .map(|mark| mark.oldest_needed())
            .min();
        self.disks[z].pinned = pin;
    }
}
