//! Admission control: what a source that has not proven itself — or a session that
//! misbehaves — can make the zone do (docs/security.md).
//!
//! - **Per source IP**, not per address and port (a host has 64 K ports): unproven
//!   datagrams (CONNECT, RESPONSE, anything from an address without a session) are limited
//!   per tick in buckets chosen by a keyed hash of the IP (SipHash, key per zone), so a
//!   sender can neither spread over buckets by changing ports nor aim at someone else's
//!   bucket.
//! - **Handshake budget**: a RESPONSE whose cookie holds is queued, at most
//!   `handshakes_per_ip_per_tick` per IP bucket, the queue a uniform sample of what came
//!   since the last tick; each tick verifies a uniform sample of at most
//!   `handshakes_per_tick` of them, one strict check at a time (the token's first), after
//!   the established sessions' inputs. The rest are dropped (the client resends its RESPONSE). A tick's
//!   worst case is that budget times two strict verifications (~40 µs each).
//! - **Negative cache**: a token or a RESPONSE that failed verification is remembered (a
//!   direct-mapped table of keyed hashes), so resending the same forgery costs a lookup.
//! - **Cool-down**: a session whose inputs fail verification `input_failures_max` times is
//!   closed, and its IP bucket is refused for `cooldown_ticks`.
//! - **Per session**: an established session's datagrams are limited per tick on their own
//!   (a proven client is not throttled by strangers sharing its IP bucket).

use core::net::SocketAddr;

use meridian_layouts::client::Response;

use meridian_protocol::address::mapped_ip_port;

/// IP buckets (a power of two).
const IP_BUCKETS: usize = 4096;

/// Entries of the negative cache (a power of two).
const KNOWN_BAD: usize = 8192;

/// A RESPONSE whose cookie held, waiting for the tick's handshake budget.
#[derive(Clone, Copy, Debug)]
pub(super) struct Handshake {
    pub(super) addr: SocketAddr,
    pub(super) response: Response,
    /// Its negative-cache keys ([`Gate::token_key`], [`Gate::response_key`]), computed once.
    pub(super) token_key: u64,
    pub(super) response_key: u64,
}

#[derive(Debug)]
pub(super) struct Gate {
    keys: (u64, u64),
    datagrams: Vec<u16>,
    handshakes: Vec<u16>,
    cooldown_until: Vec<u64>,
    known_bad: Vec<u64>,
    pub(super) queue: Reservoir<Handshake>,
}

/// A uniform sample of at most `capacity` of the items offered since the last
/// [`Reservoir::take`] (reservoir sampling): an item's chance to be kept does not depend on
/// when it was offered, so a flood that arrives first in every tick cannot crowd out an
/// honest sender that arrives later.
#[derive(Debug)]
pub(super) struct Reservoir<T> {
    items: Vec<T>,
    capacity: usize,
    offered: u64,
}

impl<T> Reservoir<T> {
    pub(super) fn new(capacity: usize) -> Reservoir<T> {
        Reservoir {
            items: Vec::with_capacity(capacity),
            capacity,
            offered: 0,
        }
    }

    /// Offers `item` (`random` a fresh random number); `false` if one item was dropped for
    /// it (this one, or one it replaced).
    pub(super) fn offer(&mut self, item: T, random: u64) -> bool {
        self.offered += 1;
        if self.items.len() < self.capacity {
            self.items.push(item);
            return true;
        }
        let j = (random % self.offered) as usize;
        if j < self.items.len() {
            self.items[j] = item;
        }
        false
    }

    /// The sample, leaving the reservoir empty for the next round; hand the vector back
    /// with [`Reservoir::give_back`] to keep its allocation.
    pub(super) fn take(&mut self) -> Vec<T> {
        self.offered = 0;
        std::mem::take(&mut self.items)
    }

    pub(super) fn give_back(&mut self, mut items: Vec<T>) {
        items.clear();
        if items.capacity() >= self.capacity {
            self.items = items;
        }
    }
}

impl Gate {
    /// A gate keyed by `key` (secret, per zone), queueing up to `queue` handshakes.
    pub(super) fn new(key: [u8; 32], queue: usize) -> Gate {
        let k0 = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(key[8..16].try_into().expect("8 bytes"));
        Gate {
            keys: (k0, k1),
            datagrams: vec![0; IP_BUCKETS],
            handshakes: vec![0; IP_BUCKETS],
            cooldown_until: vec![0; IP_BUCKETS],
            known_bad: vec![0; KNOWN_BAD],
            queue: Reservoir::new(queue),
        }
    }

    /// A keyed hash of `parts` (SipHash-2-4: keyed, fast on short input; std's only keyed
    /// hasher, deprecated for the general `Hasher` use but exactly this use).
    fn hash(&self, parts: &[&[u8]]) -> u64 {
        use core::hash::Hasher;
        #[allow(deprecated)]
        let mut h = core::hash::SipHasher::new_with_keys(self.keys.0, self.keys.1);
        for p in parts {
            h.write(p);
        }
        h.finish()
    }

    fn bucket(&self, from: SocketAddr) -> usize {
        let (ip, _) = mapped_ip_port(from);
        self.hash(&[&ip]) as usize & (IP_BUCKETS - 1)
    }

    /// Starts a tick: every per-tick allowance is full again.
    pub(super) fn tick(&mut self) {
        self.datagrams.fill(0);
        self.handshakes.fill(0);
    }

    /// Whether `from`'s IP is cooling down at `tick`.
    pub(super) fn cooling(&self, from: SocketAddr, tick: u64) -> bool {
        tick < self.cooldown_until[self.bucket(from)]
    }

    /// Refuses `from`'s IP until `until` (a tick).
    pub(super) fn cool_down(&mut self, from: SocketAddr, until: u64) {
        let b = self.bucket(from);
        self.cooldown_until[b] = self.cooldown_until[b].max(until);
    }

    /// Counts an unproven datagram from `from`; `false` once its IP has sent `max` this tick.
    pub(super) fn allow_datagram(&mut self, from: SocketAddr, max: u16) -> bool {
        let b = self.bucket(from);
        take(&mut self.datagrams[b], max)
    }

    /// Counts a handshake from `from`; `false` once its IP has queued `max` this tick.
    pub(super) fn allow_handshake(&mut self, from: SocketAddr, max: u16) -> bool {
        let b = self.bucket(from);
        take(&mut self.handshakes[b], max)
    }

    /// The negative-cache key of a token (whatever cookie or signature comes with it).
    pub(super) fn token_key(&self, response: &Response) -> u64 {
        self.hash(&[b"token", bytemuck::bytes_of(&response.token)])
    }

    /// The negative-cache key of a whole RESPONSE: token, cookie and signature.
    pub(super) fn response_key(&self, response: &Response) -> u64 {
        self.hash(&[b"response", bytemuck::bytes_of(response)])
    }

    pub(super) fn known_bad(&self, key: u64) -> bool {
        self.known_bad[key as usize & (KNOWN_BAD - 1)] == key | 1
    }

    pub(super) fn mark_bad(&mut self, key: u64) {
        self.known_bad[key as usize & (KNOWN_BAD - 1)] = key | 1;
    }
}

fn take(count: &mut u16, max: u16) -> bool {
    if *count >= max {
        return false;
    }
    *count += 1;
    true
}
