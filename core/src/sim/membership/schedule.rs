//! A seed's faults: when each node dies, leaves, comes back, stalls or is cut off.

use core::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;

use crate::time::Instant;

/// Faults start after this: every node has met every other.
const FIRST_FAULT: Duration = Duration::from_secs(3);
/// No fault starts after this; the rest of the run is quiet.
pub(super) const FAULTS_UNTIL: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// The node's process dies (kill -9): it sends nothing more.
    Kill,
    /// The node leaves the mesh (SIGTERM), then its process ends.
    Leave,
    /// The node does not run (SIGSTOP, a VM stall): no timers, nothing sent; what reaches
    /// it waits in its socket.
    Stall,
    /// Traffic between the node and this other node is dropped.
    Cut(usize),
    /// Traffic from the node to this other node is dropped; the other way it flows (a
    /// firewall rule, a broken route).
    OneWay(usize),
    /// Traffic between the node and every other is dropped.
    Isolate,
}

/// One fault of `node`, from `from` until `to`: for a death, `to` is its restart (past
/// the run's end: it stays dead).
#[derive(Clone, Copy, Debug)]
pub(super) struct Fault {
    pub(super) node: usize,
    pub(super) kind: Kind,
    pub(super) from: Instant,
    pub(super) to: Instant,
}

impl Fault {
    /// Whether traffic from node `a` to node `b` is cut at `now` by this fault.
    pub(super) fn cuts(&self, now: Instant, a: usize, b: usize) -> bool {
        if now < self.from || now >= self.to {
            return false;
        }
        match self.kind {
            Kind::Cut(other) => (self.node, other) == (a, b) || (self.node, other) == (b, a),
            Kind::OneWay(other) => (self.node, other) == (a, b),
            Kind::Isolate => self.node == a || self.node == b,
            Kind::Kill | Kind::Leave | Kind::Stall => false,
        }
    }

    /// Whether the fault disturbs the network or a node's timing anywhere in `[from, to)`:
    /// a cut, an isolation or a stall (deaths are what the checks look at).
    pub(super) fn disturbs(&self, from: Instant, to: Instant) -> bool {
        let network = !matches!(self.kind, Kind::Kill | Kind::Leave);
        network && self.from < to && self.to > from
    }

    pub(super) fn is_death(&self) -> bool {
        matches!(self.kind, Kind::Kill | Kind::Leave)
    }
}

/// A seed's network and faults.
pub(super) struct Schedule {
    pub(super) nodes: usize,
    pub(super) loss: f64,
    pub(super) duplication: f64,
    /// Each datagram takes 1 ms to this, drawn per datagram.
    pub(super) delay_max_ms: u64,
    pub(super) faults: Vec<Fault>,
    /// Only deaths and returns, spaced apart (a third of the seeds): the timing
    /// properties have calm windows to hold in.
    pub(super) calm: bool,
}

impl Schedule {
    /// Draws a seed's schedule; with `one_way`, half the cuts between two nodes drop
    /// traffic one way only (drawn only then: the other seeds stay as they were).
    pub(super) fn draw(rng: &mut SmallRng, one_way: bool) -> Schedule {
        let nodes = rng.random_range(3..=5);
        let loss = [0.0, 0.0, 0.01, 0.05, 0.1][rng.random_range(0..5)];
        let duplication = if rng.random_bool(0.25) { 0.05 } else { 0.0 };
        let delay_max_ms = [1, 3, 10][rng.random_range(0..3)];
        let calm = rng.random_bool(1.0 / 3.0);
        let mut schedule = Schedule {
            nodes,
            loss,
            duplication,
            delay_max_ms,
            faults: Vec::new(),
            calm,
        };
        let mut at = Instant::ZERO + FIRST_FAULT;
        while at < Instant::ZERO + FAULTS_UNTIL {
            schedule.draw_fault(rng, at, one_way);
            let gap = if calm { 6_000..=9_000 } else { 300..=4_000 };
            at = at + ms(rng.random_range(gap));
        }
        schedule
    }

    /// One fault starting at `at`, of a node alive then (at least one stays alive).
    fn draw_fault(&mut self, rng: &mut SmallRng, at: Instant, one_way: bool) {
        let alive: Vec<usize> = (0..self.nodes).filter(|&k| self.alive(k, at)).collect();
        if alive.len() < 2 {
            return;
        }
        let node = alive[rng.random_range(0..alive.len())];
        let roll = if self.calm {
            0
        } else {
            rng.random_range(0..10)
        };
        let (kind, lasts) = match roll {
            0..=3 => {
                let kind = if rng.random_bool(0.3) {
                    Kind::Leave
                } else {
                    Kind::Kill
                };
                // Back after a while in most seeds; in some for good.
                let back = if rng.random_bool(0.75) {
                    rng.random_range(200..=8_000)
                } else {
                    u64::MAX / 4
                };
                (kind, back)
            }
            4..=5 => (Kind::Stall, rng.random_range(100..=3_000)),
            6..=7 => {
                let other = (node + rng.random_range(1..self.nodes)) % self.nodes;
                let kind = if one_way && rng.random_bool(0.5) {
                    Kind::OneWay(other)
                } else {
                    Kind::Cut(other)
                };
                (kind, rng.random_range(300..=6_000))
            }
            _ => (Kind::Isolate, rng.random_range(300..=6_000)),
        };
        let to = if lasts > u64::MAX / 8 {
            Instant::from_nanos(u64::MAX / 2)
        } else {
            at + ms(lasts)
        };
        self.faults.push(Fault {
            node,
            kind,
            from: at,
            to,
        });
    }

    /// Whether node `k`'s process runs at `now` (dead from a death until its restart).
    pub(super) fn alive(&self, k: usize, now: Instant) -> bool {
        !self
            .faults
            .iter()
            .any(|f| f.node == k && f.is_death() && f.from <= now && now < f.to)
    }

    /// Whether node `k` is stalled at `now`.
    pub(super) fn stalled(&self, k: usize, now: Instant) -> bool {
        self.faults
            .iter()
            .any(|f| f.node == k && f.kind == Kind::Stall && f.from <= now && now < f.to)
    }

    /// Whether traffic from `a` to `b` is cut at `now`.
    pub(super) fn cut(&self, now: Instant, a: usize, b: usize) -> bool {
        self.faults.iter().any(|f| f.cuts(now, a, b))
    }

    /// Whether `[from, to)` is calm: little loss, no cut, no isolation, no stall.
    pub(super) fn calm_between(&self, from: Instant, to: Instant) -> bool {
        self.loss <= 0.05 && !self.faults.iter().any(|f| f.disturbs(from, to))
    }

    /// The start of node `k`'s current life at `now`: its last restart, or the run's start.
    pub(super) fn life_start(&self, k: usize, now: Instant) -> Instant {
        self.faults
            .iter()
            .filter(|f| f.node == k && f.is_death() && f.to <= now)
            .map(|f| f.to)
            .max()
            .unwrap_or(Instant::ZERO)
    }
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
