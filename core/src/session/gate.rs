//! Admission control: what a source that has not proven itself — or a session that
//! misbehaves — can make the zone do (docs/security.md).
//!
//! - **Per source IP**, not per address and port (a host has 64 K ports), and per /64 for
//!   IPv6 (a host has 2⁶⁴ addresses): unproven datagrams (CONNECT, RESPONSE, anything
//!   from an address without a session) are limited per tick in buckets chosen by a keyed
//!   hash of the IP (SipHash, key per zone), so a sender can neither spread over buckets
//!   by changing ports or addresses nor aim at someone else's bucket.
//! - **Handshake budget**: a RESPONSE whose cookie holds is offered to the tick's
//!   [`Sample`] of at most `handshakes_per_tick`, fair across IP buckets (each bucket that
//!   sent has the same chance, whatever it sent; at most `handshakes_per_ip_per_tick` of
//!   one); each tick verifies that sample one strict check at a time (the token's first),
//!   after the established sessions' inputs. The rest are dropped (the client resends its
//!   RESPONSE). A tick's worst case is that budget times two strict verifications (~40 µs
//!   each).
//! - **Negative cache**: a token or a RESPONSE that failed verification is remembered (a
//!   direct-mapped table of keyed hashes), so resending the same forgery costs a lookup.
//! - **Cool-down**: a session whose inputs fail verification `input_failures_max` times is
//!   closed, and its IP bucket is refused for `cooldown_ticks`.
//! - **Per session**: an established session's datagrams are limited per tick on their own
//!   (a proven client is not throttled by strangers sharing its IP bucket).

use core::net::SocketAddr;

use meridian_layouts::client::Response;

use meridian_protocol::address::mapped_ip_port;

use super::sample::Sample;

/// IP buckets (a power of two).
pub(super) const IP_BUCKETS: usize = 4096;

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
    cooldown_until: Vec<u64>,
    known_bad: Vec<u64>,
    /// The RESPONSEs waiting for the tick's handshake budget.
    pub(super) queue: Sample<Handshake>,
}

impl Gate {
    /// A gate keyed by `key` (secret, per zone), queueing up to `budget` handshakes a
    /// tick, `per_ip` of one IP bucket.
    pub(super) fn new(key: [u8; 32], budget: usize, per_ip: usize) -> Gate {
        let k0 = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(key[8..16].try_into().expect("8 bytes"));
        Gate {
            keys: (k0, k1),
            datagrams: vec![0; IP_BUCKETS],
            cooldown_until: vec![0; IP_BUCKETS],
            known_bad: vec![0; KNOWN_BAD],
            queue: Sample::new(budget, per_ip, IP_BUCKETS),
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

    /// The bucket of `from`'s IP — of its /64 for IPv6: the prefix one subscriber or
    /// host gets (SLAAC, mobile carriers, cloud instances), where its 2⁶⁴ addresses are
    /// free for it to send from. IPv4, mapped or not, by the whole address.
    pub(super) fn bucket(&self, from: SocketAddr) -> usize {
        let (ip, _) = mapped_ip_port(from);
        let mapped = ip[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        let network = if mapped { &ip[..] } else { &ip[..8] };
        self.hash(&[network]) as usize & (IP_BUCKETS - 1)
    }

    /// Starts a tick: every per-tick allowance is full again.
    pub(super) fn tick(&mut self) {
        self.datagrams.fill(0);
    }

    /// Whether the IP bucket `bucket` is cooling down at `tick`.
    pub(super) fn cooling(&self, bucket: usize, tick: u64) -> bool {
        tick < self.cooldown_until[bucket]
    }

    /// Refuses `from`'s IP until `until` (a tick).
    pub(super) fn cool_down(&mut self, from: SocketAddr, until: u64) {
        let b = self.bucket(from);
        self.cooldown_until[b] = self.cooldown_until[b].max(until);
    }

    /// Counts an unproven datagram from the IP bucket `bucket`; `false` once it has sent
    /// `max` this tick.
    pub(super) fn allow_datagram(&mut self, bucket: usize, max: u16) -> bool {
        take(&mut self.datagrams[bucket], max)
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
