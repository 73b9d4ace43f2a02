//! A thin UDP driver for [`crate::Client`]: one non-blocking socket, no
//! executor, for bots, tools and the example program.
//!
//! [`UdpClient::pump`] does one round: read every datagram waiting on the socket into the
//! client, advance it one tick, send what it queued. The caller owns the loop and its
//! rate (the server's tick rate, normally). Loss, latency and jitter can be injected for
//! tests and the swarm ([`UdpClient::set_delay`]).

use core::time::Duration;
use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};

use crate::Client;
use ed25519_dalek::SigningKey;
use meridian_layouts::witness::ConnectToken;
use meridian_protocol::time::Instant;

/// Bytes read per datagram (anything longer is not a Meridian datagram).
const RECV_BYTES: usize = 1500;

/// A client session over its own UDP socket.
#[derive(Debug)]
pub struct UdpClient {
    socket: UdpSocket,
    client: Client,
    delay: Option<Delay>,
}

/// Injected one-way latency and jitter, each way: datagrams wait in these queues until
/// their time (each draws `latency + uniform(0, jitter)`; reordering happens).
#[derive(Debug)]
struct Delay {
    latency: Duration,
    jitter: Duration,
    state: u64,
    inbound: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    outbound: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
}

impl Delay {
    /// When a datagram handled at `now` is let through (xorshift for the jitter).
    fn release(&mut self, now: Instant) -> Instant {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let jitter = self.jitter.as_nanos() as u64;
        let extra = if jitter == 0 { 0 } else { self.state % jitter };
        now + self.latency + Duration::from_nanos(extra)
    }

    /// Removes and returns the datagrams of `queue` due at `now`, in order of release.
    fn due(
        queue: &mut VecDeque<(Instant, SocketAddr, Vec<u8>)>,
        now: Instant,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < queue.len() {
            if queue[i].0 <= now {
                let (_, to, bytes) = queue.remove(i).expect("in range");
                out.push((to, bytes));
            } else {
                i += 1;
            }
        }
        out
    }
}

impl UdpClient {
    /// Binds an ephemeral local port (on the server's address family) and starts
    /// connecting to `server` with `token`, signing with `key`.
    pub fn connect(
        server: SocketAddr,
        token: ConnectToken,
        key: SigningKey,
        now: Instant,
    ) -> std::io::Result<UdpClient> {
        let local: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        UdpClient::connect_from(local, server, token, key, now)
    }

    /// As [`UdpClient::connect`], from the local address `local` (port 0: any). Load tools
    /// on one machine bind bots to distinct loopback addresses (`127.x.y.z`), so a zone's
    /// per-IP limits see distinct hosts, as they would see distinct players.
    pub fn connect_from(
        local: SocketAddr,
        server: SocketAddr,
        token: ConnectToken,
        key: SigningKey,
        now: Instant,
    ) -> std::io::Result<UdpClient> {
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        Ok(UdpClient {
            socket,
            client: Client::new(server, token, key, now),
            delay: None,
        })
    }

    /// Delays every datagram, each way, by `latency` plus a uniform share of `jitter`
    /// (`seed` draws it): a round trip of `2 × latency` and up, as a far player sees.
    /// Zero for both: no delay.
    pub fn set_delay(&mut self, latency: Duration, jitter: Duration, seed: u64) {
        self.delay = (!latency.is_zero() || !jitter.is_zero()).then(|| Delay {
            latency,
            jitter,
            state: seed | 1,
            inbound: VecDeque::new(),
            outbound: VecDeque::new(),
        });
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// One round: receive everything waiting, tick, send. `keep()` is asked once per
    /// datagram in either direction; `false` drops it (simulated loss).
    pub fn pump(&mut self, now: Instant, mut keep: impl FnMut() -> bool) -> std::io::Result<()> {
        self.receive(now, &mut keep)?;
        self.client.tick(now);
        self.flush_at(Some(now), keep)
    }

    /// Reads every datagram waiting into the client, without ticking it (poll between
    /// ticks to see snapshots sooner).
    pub fn receive(&mut self, now: Instant, mut keep: impl FnMut() -> bool) -> std::io::Result<()> {
        let mut buf = [0u8; RECV_BYTES];
        loop {
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    if !keep() {
                        continue;
                    }
                    match self.delay.as_mut() {
                        Some(d) => {
                            let at = d.release(now);
                            d.inbound.push_back((at, from, buf[..len].to_vec()));
                        }
                        None => self.client.handle_datagram(now, from, &buf[..len]),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors of earlier sends (port unreachable) surface here; the
                // protocol's own timeouts deal with an absent server.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            }
        }
        if let Some(d) = self.delay.as_mut() {
            let outbound = Delay::due(&mut d.outbound, now);
            for (from, bytes) in Delay::due(&mut d.inbound, now) {
                self.client.handle_datagram(now, from, &bytes);
            }
            self.send_all(outbound)?;
        }
        Ok(())
    }

    /// Sends what the client queued (for example a DISCONNECT) without ticking it.
    pub fn flush(&mut self, mut keep: impl FnMut() -> bool) -> std::io::Result<()> {
        self.flush_at(None, &mut keep)
    }

    /// As [`UdpClient::flush`], at `now` (what injected latency holds back goes when due).
    pub fn flush_at(
        &mut self,
        now: Option<Instant>,
        mut keep: impl FnMut() -> bool,
    ) -> std::io::Result<()> {
        let mut buf = [0u8; RECV_BYTES];
        let mut ready = Vec::new();
        while let Some((to, len)) = self.client.poll_transmit(&mut buf) {
            if !keep() {
                continue;
            }
            match (self.delay.as_mut(), now) {
                (Some(d), Some(now)) => {
                    let at = d.release(now);
                    d.outbound.push_back((at, to, buf[..len].to_vec()));
                }
                _ => ready.push((to, buf[..len].to_vec())),
            }
        }
        if let (Some(d), Some(now)) = (self.delay.as_mut(), now) {
            ready.extend(Delay::due(&mut d.outbound, now));
        }
        self.send_all(ready)
    }

    fn send_all(&self, datagrams: Vec<(SocketAddr, Vec<u8>)>) -> std::io::Result<()> {
        for (to, bytes) in datagrams {
            match self.socket.send_to(&bytes, to) {
                Ok(_) => {}
                // A full socket buffer is loss, which the protocol tolerates.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_delay_holds_each_datagram_for_its_latency_and_jitter() {
        let mut d = Delay {
            latency: Duration::from_millis(50),
            jitter: Duration::from_millis(20),
            state: 7,
            inbound: VecDeque::new(),
            outbound: VecDeque::new(),
        };
        let from: SocketAddr = ([127, 0, 0, 1], 9).into();
        let t0 = Instant::ZERO + Duration::from_secs(1);
        for k in 0..200u8 {
            let at = d.release(t0);
            let held = at.saturating_duration_since(t0);
            assert!(held >= Duration::from_millis(50) && held < Duration::from_millis(70));
            d.inbound.push_back((at, from, vec![k]));
        }
        assert!(Delay::due(&mut d.inbound, t0 + Duration::from_millis(49)).is_empty());
        let early = Delay::due(&mut d.inbound, t0 + Duration::from_millis(60)).len();
        assert!(
            (50..150).contains(&early),
            "about half are due after 60 ms: {early}"
        );
        let rest = Delay::due(&mut d.inbound, t0 + Duration::from_millis(70)).len();
        assert_eq!(early + rest, 200);
        assert!(d.inbound.is_empty());
    }
}
