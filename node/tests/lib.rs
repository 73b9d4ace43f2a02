//! meridian-node's integration tests: a real node on real sockets.

mod browser;
mod capacity;
mod cli;
mod clients;
mod conservation;
mod durability;
mod e2e;
mod failover;
mod fuzz;
mod game;
mod mesh;
mod observe;
mod processes;
mod standby;

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The machine the tests share. A test that asserts a zone's tick time (or timing-bound
/// invariants, as the swarm's) takes it for itself ([`alone`]); every other test that
/// starts nodes, swarms or processes shares it ([`shared`]). On the 2-core CI machine a
/// tick-time claim measured next to other tests' nodes measures the neighbours: the flood
/// test once read a 34.9 ms tick p99 that way.
static MACHINE: RwLock<()> = RwLock::new(());

pub(crate) fn alone() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn shared() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(PoisonError::into_inner)
}

/// Zone `k` of `node`'s busy time so far — the whole tick on its core, the datagrams read
/// and checked included, which the tick time leaves out (`meridian_tick_busy_seconds`):
/// seconds and ticks.
pub(crate) fn busy(node: &meridian_node::run::Running, k: usize) -> (f64, u64) {
    let h = &node.stats()[k].histograms.tick_busy_seconds;
    (h.sum(), h.count())
}

/// The mean busy time a tick, in milliseconds, between two readings of [`busy`].
pub(crate) fn busy_ms(from: (f64, u64), to: (f64, u64)) -> f64 {
    1e3 * (to.0 - from.0) / (to.1 - from.1).max(1) as f64
}

/// Ports handed to a test of this binary: none is handed out twice, so two tests that
/// pick at the same moment cannot both get one.
static HANDED: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A base port with `base + offset` free on loopback for UDP and TCP a moment ago, for each
/// offset (each under 1,000), and handed to no other test. Below the kernel's ephemeral
/// range (`ip_local_port_range`): a port from that range can be taken between the pick
/// and the node's bind by any outgoing connection on the machine — the nodes' own standby
/// streams included — as one CI run found (a node's control port in use, the node not
/// started).
pub(crate) fn free_ports_at(offsets: &[u16]) -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768)
        .max(12_000);
    let span = u64::from(low - 10_000 - 1_000);
    let (random, mut attempt) = (RandomState::new(), 0u64);
    let mut handed = HANDED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        attempt += 1;
        let base = 10_000 + (random.hash_one(attempt) % span) as u16;
        let free = offsets.iter().all(|&o| {
            let port = base + o;
            !handed.contains(&port)
                && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        if free {
            handed.extend(offsets.iter().map(|&o| base + o));
            return base;
        }
    }
}

/// A port free for UDP and TCP on loopback a moment ago ([`free_ports_at`]).
pub(crate) fn free_port() -> u16 {
    free_ports_at(&[0])
}

/// `n` consecutive ports free for UDP and TCP on loopback a moment ago (a node binds the
/// ports after its `udp` one for its zones).
pub(crate) fn free_ports(n: u16) -> u16 {
    free_ports_at(&(0..n).collect::<Vec<_>>())
}
