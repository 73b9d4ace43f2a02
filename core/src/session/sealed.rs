//! Sealed session packets (ChaCha20-Poly1305, `meridian_protocol::seal`): everything a
//! session sends after the handshake, both ways. Opening a client packet, the packet
//! replay window, the inner datagrams a client may send, and path migration.
//!
//! **Path migration** (as QUIC does it): a packet that opens under a session's key, is
//! fresh, and is the newest the session has sent, but comes from another address than
//! the session's, is used (its inputs are the client's) and starts a probe: a sealed
//! PATH_CHALLENGE with random data goes to the new address, at most once every
//! [`PROBE_EVERY_TICKS`]. The session moves there when the PATH_RESPONSE comes back from
//! it. Until then every other reply still goes to the old address: an attacker who
//! replays or races a captured packet from its own address gets one small probe, never
//! the session's traffic.

use meridian_layouts::client::{Input, PathProbe, SEALED_INNER_MAX, SealedHeader};
use meridian_protocol::seal::{self, Key, OpenError};

use super::*;

/// A session probes a new address at most this often.
pub(super) const PROBE_EVERY_TICKS: u64 = 8;

/// A new address a session's packets came from, being probed.
#[derive(Clone, Copy, Debug)]
pub(super) struct PathCandidate {
    pub(super) addr: SocketAddr,
    pub(super) data: u64,
    pub(super) probed_tick: u64,
}

/// The two keys a session's packets are sealed with, derived from its master key (which
/// travels in the binding) for this run of this zone.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(super) struct SessionKeys {
    /// Every input is opened with it, every snapshot sealed with the other.
    pub(super) from_client: Key,
    pub(super) to_client: Key,
}

impl SessionKeys {
    pub(super) fn new(master: &Key, key_id: u32) -> SessionKeys {
        SessionKeys {
            from_client: seal::client_key(master),
            to_client: seal::zone_key(master, key_id),
        }
    }
}

impl Sessions {
    /// Seals `inner` for the session in `slot` and queues it to `to`.
    pub(super) fn send_sealed_to(&mut self, slot: u32, to: SocketAddr, inner: &[u8]) {
        debug_assert!(inner.len() <= SEALED_INNER_MAX);
        let session = self.slots[slot as usize].as_ref().expect("live slot");
        let (id, key) = (session.id, session.keys.to_client);
        if self.outbox.len() >= self.outbox_max {
            self.counters.overflow += 1;
            return;
        }
        self.seal_sequence += 1;
        // Sealed straight into the outbox entry: no intermediate copy of the datagram.
        let mut out = Outgoing {
            to: Peer::Client(to),
            len: 0,
            bytes: [0; CLIENT_DATAGRAM_MAX],
        };
        let n = seal::seal(
            &key,
            id,
            self.key_id,
            self.seal_sequence,
            inner,
            &mut out.bytes,
        );
        out.len = n as u16;
        self.outbox.push_back(out);
    }

    /// Seals `inner` for the session in `slot`, to its address.
    pub(super) fn send_sealed(&mut self, slot: u32, inner: &[u8]) {
        let to = self.slots[slot as usize].as_ref().expect("live slot").addr;
        self.send_sealed_to(slot, to, inner);
    }

    /// A sealed datagram from a client's address. The session it names is looked up once,
    /// by the id in its header, and charges the datagram to its own allowance when it
    /// comes from the session's address; anything else is charged to the sender's IP.
    pub(super) fn handle_sealed_datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        let slot = seal::peek(bytes)
            .ok()
            .and_then(|head| self.by_id.get(&head.session.get()).copied());
        let own = slot.filter(|&slot| {
            self.slots[slot as usize]
                .as_ref()
                .is_some_and(|s| s.addr == from)
        });
        let admitted = match own {
            Some(slot) => self.admit_session_datagram(slot),
            None => self.admit_stranger_datagram(from).is_some(),
        };
        if !admitted {
            return;
        }
        match slot {
            Some(slot) => self.handle_sealed_in(slot, Some(from), bytes),
            None => self.handle_sealed(Some(from), bytes),
        }
    }

    /// A sealed packet: `from` the client, or `None` when another zone forwarded it (the
    /// client's avatar moved here before the client followed the REDIRECT).
    pub(super) fn handle_sealed(&mut self, from: Option<SocketAddr>, bytes: &[u8]) {
        let Ok(head) = seal::peek(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        let Some(&slot) = self.by_id.get(&head.session.get()) else {
            self.counters.inputs_unknown += 1;
            return;
        };
        self.handle_sealed_in(slot, from, bytes);
    }

    /// A sealed packet naming the session in `slot`.
    fn handle_sealed_in(&mut self, slot: u32, from: Option<SocketAddr>, bytes: &[u8]) {
        let session = self.slots[slot as usize].as_ref().expect("indexed slot");
        if let Some((to, _)) = session.moved {
            // The avatar is in another zone now: pass the packet on, unopened (the zone
            // that owns the avatar opens it). Only the client's own address is forwarded.
            if from == Some(session.addr) {
                self.counters.inputs_forwarded += 1;
                self.send_to_peer(Peer::Zone(to), bytes);
            } else {
                self.counters.inputs_unknown += 1;
            }
            return;
        }
        let mut plain = std::mem::take(&mut self.plain);
        self.open_sealed(slot, from, bytes, &mut plain);
        self.plain = plain;
    }

    /// Opens a client's sealed packet for the session in `slot` (into `plain`), checks
    /// its replay window and address, and handles what it carries.
    fn open_sealed(&mut self, slot: u32, from: Option<SocketAddr>, bytes: &[u8], plain: &mut [u8]) {
        let session = self.slots[slot as usize].as_ref().expect("indexed slot");
        let (head, inner) = match seal::open(&session.keys.from_client, bytes, plain) {
            Ok(opened) => opened,
            Err(OpenError::Malformed(_)) => {
                self.counters.malformed += 1;
                return;
            }
            Err(OpenError::Forged) => {
                // Cheap to check (~0.2 µs), so it closes nothing: an off-path sender that
                // knows a session id must not be able to end the session.
                self.counters.sealed_forged += 1;
                return;
            }
        };
        let sequence = head.sequence.get();
        let session = self.slots[slot as usize].as_mut().expect("indexed slot");
        let newest = sequence > session.window.highest();
        if !session.window.record(0, sequence) {
            self.counters.inputs_replayed += 1;
            return;
        }
        let direct = match from {
            None => false,
            Some(addr) if addr == session.addr => true,
            Some(addr) => {
                if newest {
                    self.probe_path(slot, addr);
                }
                false
            }
        };
        self.handle_inner(slot, from, direct, &head, inner);
    }

    /// A sealed packet's inner datagram, authenticated: it is the session's client's.
    fn handle_inner(
        &mut self,
        slot: u32,
        from: Option<SocketAddr>,
        direct: bool,
        head: &SealedHeader,
        inner: &[u8],
    ) {
        let kind = Header::parse(inner);
        let id = head.session.get();
        match (kind, self.config.client_auth) {
            (Ok(Kind::Input), ClientAuth::Aead) => match parse::<Input>(inner) {
                Ok(input) => {
                    let body = input.body;
                    self.counters.inputs += 1;
                    self.accept_input(slot, &body, direct);
                }
                Err(_) => self.counters.malformed += 1,
            },
            (Ok(Kind::Envelope), ClientAuth::Ed25519) => {
                self.handle_signed_input(slot, id, inner, direct)
            }
            (Ok(Kind::PathResponse), _) => {
                let Some(from) = from else {
                    self.counters.malformed += 1;
                    return;
                };
                match parse_probe(inner, Kind::PathResponse) {
                    Some(probe) => self.path_response(slot, from, probe.data.get()),
                    None => self.counters.malformed += 1,
                }
            }
            (Ok(Kind::Disconnect), _) if parse::<Disconnect>(inner).is_ok() => {
                self.closing.push((slot, false));
            }
            _ => self.counters.malformed += 1,
        }
    }

    /// Starts (or repeats, at most every [`PROBE_EVERY_TICKS`]) a probe of `addr`.
    fn probe_path(&mut self, slot: u32, addr: SocketAddr) {
        let tick = self.tick;
        let session = self.slots[slot as usize].as_ref().expect("live slot");
        if let Some(c) = session.path
            && c.addr == addr
            && tick < c.probed_tick + PROBE_EVERY_TICKS
        {
            return;
        }
        let data = self.next_random();
        let session = self.slots[slot as usize].as_mut().expect("live slot");
        session.path = Some(PathCandidate {
            addr,
            data,
            probed_tick: tick,
        });
        let probe = PathProbe {
            header: Header::new(Kind::PathChallenge, size_of::<PathProbe>() as u16),
            data: U64Le::new(data),
        };
        self.counters.path_probes += 1;
        self.send_sealed_to(slot, addr, bytemuck::bytes_of(&probe));
    }

    /// A PATH_RESPONSE: if it echoes the probe of `from`, the session moves there.
    fn path_response(&mut self, slot: u32, from: SocketAddr, data: u64) {
        let session = self.slots[slot as usize].as_ref().expect("live slot");
        let Some(c) = session.path.filter(|c| c.addr == from && c.data == data) else {
            self.counters.malformed += 1;
            return;
        };
        if self.by_addr.get(&c.addr).is_some_and(|&s| s != slot) {
            // Another session holds that address (a NAT reused the port for another
            // client): neither is moved.
            self.counters.path_conflicts += 1;
            return;
        }
        let session = self.slots[slot as usize].as_mut().expect("live slot");
        let old = std::mem::replace(&mut session.addr, c.addr);
        session.path = None;
        session.proven = true;
        self.by_addr.remove(&old);
        self.by_addr.insert(c.addr, slot);
        self.counters.path_migrations += 1;
        self.rebound.push(slot);
    }
}

fn parse_probe(bytes: &[u8], kind: Kind) -> Option<&PathProbe> {
    (Header::parse(bytes).ok()? == kind)
        .then(|| bytemuck::try_from_bytes(bytes).ok())
        .flatten()
}
