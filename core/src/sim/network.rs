//! The simulated network: cross-core queues within a node (perfect), lossy, duplicating,
//! delaying links between nodes, partitions that heal, and zones that crash and restart
//! from their durable log alone.

use rustc_hash::FxHashSet;
use std::collections::BTreeMap;
use std::hash::Hash;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{HEAL_TICKS, Options, Sim};
use crate::handoff::LogRecord;
use crate::time::Instant;
use crate::world::ZoneID;

pub(super) struct Network {
    loss: f64,
    duplication: f64,
    delay_max: u64,
    /// (from tick, to tick, node a, node b): traffic between a and b is dropped.
    partitions: Vec<(u64, u64, u32, u32)>,
}

impl Network {
    /// Whether traffic between nodes `a` and `b` is cut at `tick`.
    pub(super) fn partitioned(&self, tick: u64, a: u32, b: u32) -> bool {
        self.partitions
            .iter()
            .any(|&(s, e, x, y)| tick >= s && tick < e && ((x, y) == (a, b) || (x, y) == (b, a)))
    }

    /// Cuts node `node` off from every other node from `at` to `heal`.
    pub(super) fn isolate(&mut self, node: u32, nodes: u32, at: u64, heal: u64) {
        for other in (0..nodes).filter(|&n| n != node) {
            self.partitions.push((at, heal, node, other));
        }
    }

    pub(super) fn loss(&self) -> f64 {
        self.loss
    }

    pub(super) fn delay_max(&self) -> u64 {
        self.delay_max
    }
}

/// The network a seed draws: nodes, link behaviour, partitions and crashes (or the fixed
/// network of the options). Returns the network, each zone's node, and the crashes
/// `(tick, zone, ticks down)`.
pub(super) fn draw(
    rng: &mut SmallRng,
    options: &Options,
    zone_count: u32,
    ticks: u64,
) -> (Network, Vec<u32>, Vec<(u64, u32, u64)>) {
    match options.fixed_network {
        Some(fixed) => (
            Network {
                loss: fixed.loss,
                duplication: fixed.duplication,
                delay_max: fixed.delay_max_ticks,
                partitions: Vec::new(),
            },
            (0..zone_count)
                .map(|z| if fixed.same_node { 0 } else { z })
                .collect(),
            Vec::new(),
        ),
        None => {
            let nodes = if rng.random_bool(0.1) {
                1
            } else {
                rng.random_range(2..=3u32)
            };
            let node_of: Vec<u32> = (0..zone_count)
                .map(|_| rng.random_range(0..nodes))
                .collect();
            let fault_end = ticks - HEAL_TICKS;
            let mut partitions = Vec::new();
            for _ in 0..rng.random_range(0..=3) {
                let start = rng.random_range(0..fault_end);
                let length = rng.random_range(20..200);
                let (a, b) = (rng.random_range(0..nodes), rng.random_range(0..nodes));
                partitions.push((start, (start + length).min(fault_end), a, b));
            }
            let mut crashes = Vec::new();
            for _ in 0..rng.random_range(0..=2) {
                let at = rng.random_range(10..fault_end.saturating_sub(100).max(11));
                crashes.push((
                    at,
                    rng.random_range(0..zone_count),
                    rng.random_range(5..60u64),
                ));
            }
            (
                Network {
                    loss: rng.random_range(0.0..0.3),
                    duplication: rng.random_range(0.0..0.5),
                    delay_max: rng.random_range(0..=10),
                    partitions,
                },
                node_of,
                crashes,
            )
        }
    }
}

/// Outages longer than the epoch memory, from their own generator (so a seed's other draws
/// stay what they were): a short `epoch_memory_ticks` (150–600) for the whole run, about a
/// third of the crashes stretched past it, and sometimes a partition that outlasts it. This
/// is where a COMMIT resent after the target forgot the entity would adopt it a second
/// time (see `Bugs::forget_adoptions`). A stretched crash waits (up to the fault phase's
/// end) for a moment its zone holds a tombstone, so the outage meets a transfer in flight.
/// Returns the epoch memory to run with and, per crash, whether it was stretched.
pub(super) fn draw_long_outages(
    seed: u64,
    network: &mut Network,
    nodes: u32,
    crashes: &mut [(u64, u32, u64)],
    ticks: u64,
) -> (u32, Vec<bool>) {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x1046_0a7e_5eed_0001);
    let memory = rng.random_range(150..=600u32);
    let fault_end = ticks - HEAL_TICKS;
    let mut stretched = Vec::with_capacity(crashes.len());
    for (at, _, down) in crashes.iter_mut() {
        let stretch = rng.random_bool(0.35);
        if stretch {
            let long = u64::from(memory) + rng.random_range(100..1200);
            *down = long.min(fault_end.saturating_sub(*at)).max(*down);
        }
        stretched.push(stretch);
    }
    if nodes >= 2 && rng.random_bool(0.35) {
        let length = u64::from(memory) + rng.random_range(100..1200);
        if length < fault_end {
            let start = rng.random_range(0..fault_end - length);
            let a = rng.random_range(0..nodes);
            let b = (a + rng.random_range(1..nodes)) % nodes;
            network.partitions.push((start, start + length, a, b));
        }
    }
    (memory, stretched)
}

impl Sim {
    /// Zone `z` goes down now, for the crash scheduled at `tick`.
    pub(super) fn crash(&mut self, tick: u64, z: u32) {
        let Some(&(_, _, down)) = self
            .crashes
            .iter()
            .find(|&&(at, zone, _)| at == tick && zone == z)
        else {
            return;
        };
        if self.zones[z as usize].take().is_none() {
            return;
        }
        self.crash_disk(z as usize);
        self.stream_crashed(z as usize);
        self.down_until[z as usize] = Some(tick + down);
        self.report.crashes += 1;
        if self.trace_entity.is_some() {
            eprintln!("tick {tick}: zone {z} crashes for {down} ticks");
        }
        tick.hash(&mut self.hasher);
        ("crash", z).hash(&mut self.hasher);
    }

    pub(super) fn crash_and_restart(&mut self, tick: u64) {
        for k in 0..self.crashes.len() {
            let (at, z, down) = self.crashes[k];
            let holds_tombstone = self.zones[z as usize]
                .as_ref()
                .is_none_or(|zone| zone.tombstones().next().is_some());
            if at == tick
                && self.stretched[k]
                && !holds_tombstone
                && tick + down < self.ticks - HEAL_TICKS
            {
                // A stretched outage waits for a transfer in flight.
                self.crashes[k].0 += 1;
                continue;
            }
            if at == tick && self.faults[k] == super::disk::Fault::Clean {
                self.crash(tick, z);
            }
        }
        for z in 0..self.zones.len() {
            if self.down_until[z] == Some(tick) {
                self.down_until[z] = None;
                self.node_restarts(tick, self.node_of[z]);
                let mut zone = self.restore_zone(tick, z);
                zone.set_bugs(self.bugs);
                super::install_game(&mut zone, (&self.game_problems, &self.game_mail), false);
                // A restore rolls positions back to the last durable state (and game
                // state with them): not a teleport, not a loss.
                for &id in zone.entities().ids() {
                    self.last_seen.remove(&id);
                    self.game_counter.remove(&id);
                }
                self.zones[z] = Some(zone);
                ("restart", z).hash(&mut self.hasher);
            }
        }
    }

    /// A datagram of zone `from`'s current run to zone `to`.
    /// A datagram of zone `from`'s current run to zone `to` — to its old primary, cut off
    /// and superseded, while `from` has not heard that its standby took over.
    pub(super) fn route(&mut self, tick: u64, from: ZoneID, to: ZoneID, bytes: Vec<u8>) {
        let old_primary = self.old_primary_of(tick, from, to);
        let flight = Flight {
            from,
            incarnation: self.incarnation[from.0 as usize],
            superseded: false,
            to,
            to_old_primary: old_primary.is_some(),
            bytes,
        };
        let a = self.node_of[from.0 as usize];
        let b = old_primary.unwrap_or(self.node_of[to.0 as usize]);
        self.send(tick, a, b, flight);
    }

    /// A datagram sent from node `a` to node `b`: over the cross-core queue when they are
    /// one node (reliable, in order, at once), over the link between them otherwise.
    pub(super) fn send(&mut self, tick: u64, a: u32, b: u32, flight: Flight) {
        self.report.messages_sent += 1;
        if a == b {
            self.arrive(flight);
            return;
        }
        if self.healing(tick) {
            self.in_flight.entry(tick + 1).or_default().push(flight);
            return;
        }
        let cut = self.network.partitioned(tick, a, b);
        let copies = 1 + usize::from(self.rng_net.random_bool(self.network.duplication));
        for _ in 0..copies {
            if cut || self.rng_net.random_bool(self.network.loss) {
                self.report.messages_lost += 1;
                continue;
            }
            let delay = self.rng_net.random_range(1..=self.network.delay_max.max(1));
            self.in_flight
                .entry(tick + delay)
                .or_default()
                .push(flight.clone());
        }
    }

    pub(super) fn deliver(&mut self, tick: u64) {
        for flight in take_due(&mut self.in_flight, tick) {
            self.arrive(flight);
        }
    }

    /// A datagram reaches its zone, which fences it off if it knows a newer run of the
    /// sender.
    fn arrive(&mut self, f: Flight) {
        let zone = if f.to_old_primary {
            self.old_primary_mut(f.to)
        } else {
            self.zones[f.to.0 as usize].as_mut()
        };
        let Some(zone) = zone else {
            return;
        };
        let taken = zone.handle_zone_datagram(Instant::ZERO, f.from, f.incarnation, &f.bytes);
        if !taken {
            self.report.fenced += 1;
        } else if f.superseded {
            self.report.superseded_taken += 1;
        }
    }
}

/// A datagram between zones: the sender's run, and whether that run had been superseded
/// (its standby promoted) when it sent it.
#[derive(Clone, Debug)]
pub(super) struct Flight {
    pub(super) from: ZoneID,
    pub(super) incarnation: u32,
    pub(super) superseded: bool,
    pub(super) to: ZoneID,
    /// To `to`'s old primary (sent before the sender heard of the takeover).
    pub(super) to_old_primary: bool,
    pub(super) bytes: Vec<u8>,
}

/// Transfers whose relinquish and DONE are both in `log`.
pub(super) fn completed_transfers(log: &[LogRecord]) -> u64 {
    let relinquished: FxHashSet<u64> = log
        .iter()
        .filter_map(|r| match r {
            LogRecord::Relinquish { commit } => Some(commit.transfer.transfer_id.get()),
            _ => None,
        })
        .collect();
    log.iter()
        .filter(|r| {
            matches!(r, LogRecord::Done { transfer_id, .. } if relinquished.contains(transfer_id))
        })
        .count() as u64
}

/// The messages of `in_flight` due by `tick`, in delivery order, taken out of it.
pub(super) fn take_due<T>(in_flight: &mut BTreeMap<u64, Vec<T>>, tick: u64) -> Vec<T> {
    let later = in_flight.split_off(&(tick + 1));
    let due = std::mem::replace(in_flight, later);
    due.into_values().flatten().collect()
}
