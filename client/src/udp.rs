//! A thin UDP driver for [`crate::Client`]: one non-blocking socket, no
//! executor, for bots, tools and the example program.
//!
//! [`UdpClient::pump`] does one round: read every datagram waiting on the socket into the
//! client, advance it one tick, send what it queued. The caller owns the loop and its
//! rate (the server's tick rate, normally). Loss can be injected for tests and the swarm.

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
        })
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
        self.flush(keep)
    }

    /// Reads every datagram waiting into the client, without ticking it (poll between
    /// ticks to see snapshots sooner).
    pub fn receive(&mut self, now: Instant, mut keep: impl FnMut() -> bool) -> std::io::Result<()> {
        let mut buf = [0u8; RECV_BYTES];
        loop {
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    if keep() {
                        self.client.handle_datagram(now, from, &buf[..len]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors of earlier sends (port unreachable) surface here; the
                // protocol's own timeouts deal with an absent server.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends what the client queued (for example a DISCONNECT) without ticking it.
    pub fn flush(&mut self, mut keep: impl FnMut() -> bool) -> std::io::Result<()> {
        let mut buf = [0u8; RECV_BYTES];
        while let Some((to, len)) = self.client.poll_transmit(&mut buf) {
            if !keep() {
                continue;
            }
            match self.socket.send_to(&buf[..len], to) {
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
