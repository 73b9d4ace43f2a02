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

/// A UDP port free on loopback a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` consecutive ports free for UDP and TCP on loopback a moment ago (a node binds the
/// ports after its `udp` one for its zones).
pub(crate) fn free_ports(n: u16) -> u16 {
    loop {
        let base = free_port();
        if base > u16::MAX - n {
            continue;
        }
        let free = (base..base + n).all(|p| {
            std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
        });
        if free {
            return base;
        }
    }
}
