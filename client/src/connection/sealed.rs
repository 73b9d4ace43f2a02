//! The client's sealed transport: the RESPONSE that derives the session key, sealing
//! and opening session packets (`meridian_protocol::seal`), what arrives inside them, and
//! REDIRECTs.

use super::*;

impl Client {
    /// Seals an arbitrary inner datagram as this session's next packet, into `out`; returns
    /// its length. For test harnesses and protocol tools: the zone takes it as the
    /// client's (it is, cryptographically).
    pub fn seal_inner(&mut self, inner: &[u8], out: &mut [u8]) -> usize {
        self.packet_sequence += 1;
        seal::seal(
            &self.to_server,
            self.session,
            0,
            self.packet_sequence,
            inner,
            out,
        )
    }

    /// Seals `inner` with the session's client key and queues it to `to`.
    pub(super) fn send_sealed(&mut self, to: SocketAddr, inner: &[u8]) {
        self.packet_sequence += 1;
        let mut out = [0u8; CLIENT_DATAGRAM_MAX];
        let n = seal::seal(
            &self.to_server,
            self.session,
            0,
            self.packet_sequence,
            inner,
            &mut out,
        );
        self.queue(to, &out[..n]);
    }

    /// Opens a sealed packet from a zone into `out`: the zone → client key of its key id
    /// (derived on first use), its replay window.
    pub(super) fn open_sealed<'a>(&mut self, bytes: &[u8], out: &'a mut [u8]) -> Option<&'a [u8]> {
        let head = seal::peek(bytes).ok()?;
        let (key_id, sequence) = (head.key_id.get(), head.sequence.get());
        let known = (0..2).find(|&k| {
            let (id, key, _) = &self.zone_keys[k];
            *id == key_id && *key != [0; 32]
        });
        let Some(k) = known else {
            // A new zone run. Its key takes the older entry's place only once a packet
            // opened under it: packets with made-up key ids must not evict the keys (and
            // replay windows) of the zones the client talks to.
            let key = seal::zone_key(&self.master, key_id);
            let (_, inner) = seal::open(&key, bytes, out).ok()?;
            let mut window = ReplayWindow::default();
            window.record(0, sequence);
            self.zone_keys[1] = (key_id, key, window);
            self.zone_keys.swap(0, 1);
            self.opened_key = key_id;
            return Some(inner);
        };
        if k == 1 {
            self.zone_keys.swap(0, 1);
        }
        let (_, key, window) = &mut self.zone_keys[0];
        if !window.check(0, sequence) {
            return None;
        }
        let (_, inner) = seal::open(key, bytes, out).ok()?;
        window.record(0, sequence);
        self.opened_key = key_id;
        Some(inner)
    }

    /// The RESPONSE to `challenge` and the session key it yields; `None` if the zone's
    /// node key is not trusted or the exchange is degenerate.
    pub(super) fn respond(&mut self, challenge: &Challenge) -> Option<(Response, Key)> {
        let node = if challenge.node_key == [0; 32] {
            None
        } else {
            Some(VerifyingKey::from_bytes(&challenge.node_key).ok()?)
        };
        let trusted = match node {
            _ if self.node_keys.is_empty() => true,
            Some(node) => self.node_keys.contains(&node),
            None => false,
        };
        if !trusted {
            self.counters.untrusted_node += 1;
            return None;
        }
        let ephemeral = seal::client_ephemeral(self.key.as_bytes(), bytemuck::bytes_of(challenge));
        let mut response = Response {
            header: header_for::<Response>(),
            domain: RESPONSE_DOMAIN,
            token: self.token,
            cookie: challenge.cookie,
            window: challenge.window,
            client_ephemeral: PublicKey::from(&ephemeral).to_bytes(),
            server_ephemeral: challenge.server_ephemeral,
            node_key: challenge.node_key,
            signature: [0; SIGNATURE_SIZE],
        };
        response.signature = self.key.sign(response.signed_bytes()).to_bytes();
        let ee = ephemeral.diffie_hellman(&PublicKey::from(challenge.server_ephemeral));
        let es =
            node.map(|n| ephemeral.diffie_hellman(&x25519_public(n.to_montgomery().to_bytes())));
        let master = seal::session_key(&ee, es.as_ref(), response.signed_bytes()).ok()?;
        Some((response, master))
    }

    /// A sealed packet's inner datagram, from one of the session's zones.
    pub(super) fn handle_inner(&mut self, now: Instant, from: SocketAddr, inner: &[u8]) -> bool {
        match Header::parse(inner) {
            Ok(Kind::Delta) => self.apply_snapshot(now, inner),
            Ok(Kind::Envelope) => self.redirect(now, from, inner),
            Ok(Kind::Disconnect) => parse::<Disconnect>(inner).is_ok_and(|_| {
                self.close(CloseReason::Disconnected);
                true
            }),
            Ok(Kind::PathChallenge) => {
                let Ok(probe) = bytemuck::try_from_bytes::<PathProbe>(inner) else {
                    return false;
                };
                // Answered from where the client sends (the address the zone probed is
                // the one the client's packets came from).
                let answer = PathProbe {
                    header: Header::new(Kind::PathResponse, size_of::<PathProbe>() as u16),
                    data: probe.data,
                };
                self.counters.path_responses += 1;
                self.send_sealed(from, bytemuck::bytes_of(&answer));
                true
            }
            _ => false,
        }
    }

    /// A REDIRECT is followed only if it comes from the zone the client talks to and is
    /// not older than the newest snapshot it has from that zone (a zone redirects only
    /// after its last snapshot): a captured REDIRECT replayed later — from another zone's
    /// address, or from this zone after the client came back to it — is ignored, counted.
    pub(super) fn redirect(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> bool {
        let Ok(envelope) = parse_envelope(bytes) else {
            return false;
        };
        if envelope.header.domain != domain::REDIRECT {
            return false;
        }
        let Ok(body) = RedirectBody::parse(envelope.payload) else {
            return false;
        };
        if body.session.get() != self.session || body.session_secret.get() != self.secret {
            return false;
        }
        if !self.node_keys.is_empty() {
            let signature = ed25519_dalek::Signature::from_bytes(envelope.signature);
            if !self
                .node_keys
                .iter()
                .any(|k| k.verify_strict(envelope.signed, &signature).is_ok())
            {
                return false;
            }
        }
        let Some(addr) = redirect_addr(body) else {
            return false;
        };
        // A takeover: the zone the client is in runs on its standby now, which says so
        // from its own address — signed by a pinned node key, so only a node of the world
        // can send it, and naming its sender, so it can only move the client to a node
        // that serves the zone. (Its tick is the new run's, behind the old run's.)
        let takeover = !self.node_keys.is_empty()
            && from != self.server
            && addr == from
            && body.zone.get() == self.zone;
        if takeover {
            // It came under the new run's key: the new run starts here, not at its first
            // snapshot. Its REDIRECTs carry its own ticks, which count from its restore;
            // weighed against the old run's newest snapshot, the REDIRECT of an avatar
            // the new run handed on before any snapshot of it reached the client was taken
            // for a replay, and the session was lost (`takeover::a_redirect_of_a_taken_
            // over_zone_before_its_first_snapshot_is_followed`). Only if the newest
            // snapshot is of this zone: one of the zone the client came from (none of this
            // zone reached it yet) is of a run that goes on, and retiring its key dropped
            // every snapshot of that zone once the client came back to it
            // (`takeover::a_takeover_before_the_zones_first_snapshot_keeps_the_zone_before`).
            if self.another_run_of(self.zone) {
                self.new_zone_run(now, self.zone);
            }
            self.server = addr;
            self.counters.takeovers += 1;
            self.events.push_back(ClientEvent::Redirected {
                zone: self.zone,
                addr,
                takeover: true,
            });
            return true;
        }
        if addr == self.server {
            // The zone repeats its REDIRECT during the grace period; one is followed.
            return true;
        }
        // From the client's zone under a key it has no snapshot of and has not retired: a
        // new run of the zone at the same address (its node restarted from its files,
        // which announces no takeover), handing on an avatar before any snapshot of it
        // reached the client. Its tick counts from its restore; weighed against the old
        // run's newest it read as a replay (`takeover::an_avatar_in_flight_as_its_node_
        // restarts_in_place_reaches_its_client`). The REDIRECT is sealed under the run's
        // key, so only the zone's node can send it; an old run's replayed one is under a
        // key retired or of its snapshots.
        if from == self.server
            && self.another_run_of(self.zone)
            && !self.retired_keys.contains(&self.opened_key)
        {
            self.new_zone_run(now, self.zone);
        }
        let stale = self.latest.zone == self.zone && body.tick.get() < self.latest.tick;
        if from != self.server || stale {
            self.counters.redirects_stale += 1;
            return false;
        }
        self.server = addr;
        self.zone = body.zone.get();
        self.counters.redirects += 1;
        self.events.push_back(ClientEvent::Redirected {
            zone: self.zone,
            addr,
            takeover: false,
        });
        true
    }
}
