//! Warm standbys' stream and gate (docs/mesh.md), the first half of failover: each zone of a
//! multi-node seed (when the seed draws standbys) streams its durable log records to a
//! standby on another node over the simulated network — lossy, duplicating, delaying,
//! partitioned like every cross-node link — and a tick's datagrams wait until the standby
//! holds every record written so far. Nothing promotes a standby yet; what is checked is that the
//! gate keeps every invariant (it only delays datagrams, as the WAL's does) and what it
//! costs in handoff latency.
//!
//! The stream is per incarnation: a zone that restarts streams its new run from record 0,
//! and the standby drops what an older run sends. The standby is never down.

use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::Sim;
use crate::world::ZoneID;

/// One zone's stream to its standby.
#[derive(Debug, Default)]
pub(super) struct Stream {
    /// The standby's node.
    pub(super) node: u32,
    /// The incarnation streamed (a restart starts a new stream).
    incarnation: u32,
    /// Records this run has written, and how many the standby acknowledged.
    written: u64,
    acked: u64,
    /// What the standby holds of this run (contiguous from 0).
    held: u64,
    /// The tick the unacknowledged records were last sent.
    sent_at: u64,
    /// Datagrams waiting for the standby: (records they need, to, bytes).
    gated: VecDeque<(u64, ZoneID, Vec<u8>)>,
}

/// A stream message on the wire: records (only their count matters here) or an ack.
#[derive(Clone, Copy, Debug)]
enum Message {
    /// Records `from..to` of `incarnation`.
    Records {
        zone: u32,
        incarnation: u32,
        from: u64,
        to: u64,
    },
    Ack {
        zone: u32,
        incarnation: u32,
        held: u64,
    },
}

/// The standbys of a seed and their messages in flight.
#[derive(Debug, Default)]
pub(super) struct Standbys {
    pub(super) streams: Vec<Option<Stream>>,
    in_flight: BTreeMap<u64, Vec<Message>>,
    rng: Option<SmallRng>,
    /// Datagrams that waited for a standby, and the ticks they waited in all.
    pub(super) gated: u64,
    pub(super) gated_ticks: u64,
}

impl Standbys {
    /// Draws standbys from their own generator: in half the seeds with two nodes or more
    /// (or as `forced` says), every zone streams to a node other than its own.
    pub(super) fn draw(seed: u64, node_of: &[u32], forced: Option<bool>) -> Standbys {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x57a9_d8b1_0000_0001);
        let nodes = node_of.iter().max().map_or(1, |n| n + 1);
        let on = forced.unwrap_or_else(|| rng.random_bool(0.5)) && nodes >= 2;
        if !on {
            return Standbys::default();
        }
        let streams = node_of
            .iter()
            .map(|&n| {
                let other = (n + rng.random_range(1..nodes)) % nodes;
                Some(Stream {
                    node: other,
                    ..Stream::default()
                })
            })
            .collect();
        Standbys {
            streams,
            rng: Some(rng),
            ..Standbys::default()
        }
    }

    pub(super) fn active(&self) -> bool {
        !self.streams.is_empty()
    }
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
        if stream.incarnation != incarnation {
            // A new run: its stream starts over.
            *stream = Stream {
                node: stream.node,
                incarnation,
                ..Stream::default()
            };
        }
        stream.written += records;
        if records > 0 {
            self.stream_records(tick, z);
        }
        let stream = self.standbys.streams[z].as_mut().expect("looked at");
        // Every datagram waits while the standby lacks any record: a COMMIT resent in a
        // tick that wrote nothing still depends on the relinquish written before (as the
        // WAL's gate: `appended > synced`).
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
        let due: Vec<u64> = self
            .standbys
            .in_flight
            .range(..=tick)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            for m in self.standbys.in_flight.remove(&t).unwrap_or_default() {
                self.stream_received(tick, m);
            }
        }
        for z in 0..self.standbys.streams.len() {
            let Some(stream) = self.standbys.streams[z].as_mut() else {
                continue;
            };
            self.standbys.gated_ticks += stream.gated.len() as u64;
            // Resent every other tick until acknowledged (an ack takes two ticks at best).
            let due = stream.written > stream.acked && tick >= stream.sent_at + 2;
            if due && self.zones[z].is_some() {
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
    fn stream_records(&mut self, tick: u64, z: usize) {
        let stream = self.standbys.streams[z].as_mut().expect("a standby");
        stream.sent_at = tick;
        let m = Message::Records {
            zone: z as u32,
            incarnation: stream.incarnation,
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
                from,
                to,
            } => {
                let Some(stream) = self.standbys.streams[zone as usize].as_mut() else {
                    return;
                };
                if incarnation != stream.incarnation {
                    return;
                }
                // Contiguous only: a gap waits for the resend.
                if from <= stream.held {
                    stream.held = stream.held.max(to);
                }
                let ack = Message::Ack {
                    zone,
                    incarnation,
                    held: stream.held,
                };
                let (a, b) = (stream.node, self.node_of[zone as usize]);
                self.stream_send(tick, a, b, ack);
            }
            Message::Ack {
                zone,
                incarnation,
                held,
            } => {
                let Some(stream) = self.standbys.streams[zone as usize].as_mut() else {
                    return;
                };
                if incarnation == stream.incarnation {
                    stream.acked = stream.acked.max(held);
                }
            }
        }
    }

    /// One stream message from node `a` to node `b` over the link between them.
    fn stream_send(&mut self, tick: u64, a: u32, b: u32, m: Message) {
        ("stream", tick, a, b).hash(&mut self.hasher);
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
