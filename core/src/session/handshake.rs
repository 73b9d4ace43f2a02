//! The connect handshake: CONNECT → CHALLENGE (a stateless cookie) → RESPONSE → ACCEPT or
//! REFUSE, and the admission gate in front of it (`gate`).
//!
//! Nothing is stored for a CONNECT and no signature is checked for it: the CHALLENGE costs a
//! keyed hash and is smaller than the CONNECT. A RESPONSE with a valid cookie has proven its
//! address; only then is it queued for the tick's handshake budget, whose signatures are
//! verified one by one after the established sessions' inputs, and the session is opened
//! in [`Sessions::tick`] when both verified.

use ed25519_dalek::Signature;

use meridian_layouts::F32Le;
use meridian_layouts::client::{CLIENT_AUTH_AEAD, CLIENT_AUTH_ED25519};
use meridian_protocol::seal::{self, DhSecret, PublicKey, StaticSecret};

use super::gate::Handshake;
use super::sealed::SessionKeys;
use super::*;
use crate::witness::parse_key;

impl Sessions {
    pub(super) fn keyed_hash(&self, parts: &[&[u8]]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.secret_key);
        for p in parts {
            h.update(p);
        }
        h.finalize()
    }

    pub(super) fn cookie(
        &self,
        addr: SocketAddr,
        window: u32,
        token: &ConnectToken,
    ) -> [u8; COOKIE_SIZE] {
        let (ip, port) = mapped_ip_port(addr);
        let hash = self.keyed_hash(&[
            b"cookie",
            &ip,
            &port.to_le_bytes(),
            &window.to_le_bytes(),
            &token.client_id.get().to_le_bytes(),
            &token.nonce.get().to_le_bytes(),
        ]);
        hash.as_bytes()[..COOKIE_SIZE]
            .try_into()
            .expect("16 of 32 bytes")
    }

    /// The zone's X25519 ephemeral for cookie window `window` (secret, public): derived
    /// from the zone's secret key, computed once per window (a fixed-base scalar
    /// multiplication) and kept for the window after it.
    pub(super) fn ephemeral(&mut self, window: u32) -> (StaticSecret, [u8; 32]) {
        if let Some((_, secret, public)) = self.ephemerals.iter().flatten().find(|e| e.0 == window)
        {
            return (secret.0.clone(), *public);
        }
        let secret = seal::zone_ephemeral(&self.secret_key, window);
        let public = PublicKey::from(&secret).to_bytes();
        // Replace the older of the two.
        let older = usize::from(
            self.ephemerals[0].as_ref().map_or(0, |e| e.0)
                > self.ephemerals[1].as_ref().map_or(0, |e| e.0),
        );
        self.ephemerals[older] = Some((window, DhSecret(secret.clone()), public));
        (secret, public)
    }

    /// The session key of a verified RESPONSE; `None` if its key exchange is degenerate.
    fn session_key(&mut self, response: &Response) -> Option<seal::Key> {
        let (ephemeral, _) = self.ephemeral(response.window.get());
        let client = PublicKey::from(response.client_ephemeral);
        let ee = ephemeral.diffie_hellman(&client);
        let es = self
            .node_dh
            .as_ref()
            .map(|(node, _)| node.0.diffie_hellman(&client));
        seal::session_key(&ee, es.as_ref(), response.signed_bytes()).ok()
    }

    pub(super) fn next_random(&mut self) -> u64 {
        self.secret_counter += 1;
        let hash = self.keyed_hash(&[b"secret", &self.secret_counter.to_le_bytes()]);
        u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
    }

    /// Whether a datagram from `from` may be looked at: an established session's within
    /// its own per-tick allowance; anyone else's within its IP's, unless that IP is
    /// cooling down. Every drop is counted. `Some` with the sender's IP bucket if it has no
    /// session, `Some(None)` if it has one.
    pub(super) fn admit_datagram(&mut self, from: SocketAddr) -> Option<Option<usize>> {
        match self.by_addr.get(&from) {
            Some(&slot) => self.admit_session_datagram(slot).then_some(None),
            None => self.admit_stranger_datagram(from).map(Some),
        }
    }

    /// A datagram from the address of the session in `slot`: within its allowance?
    pub(super) fn admit_session_datagram(&mut self, slot: u32) -> bool {
        let (tick, max) = (self.tick, self.config.session_datagrams_per_tick);
        let session = self.slots[slot as usize].as_mut().expect("indexed slot");
        if session.datagram_tick != tick {
            (session.datagram_tick, session.datagrams) = (tick, 0);
        }
        if session.datagrams >= max {
            self.counters.rate_limited += 1;
            return false;
        }
        session.datagrams += 1;
        true
    }

    /// A datagram from an address no session has: within its IP's allowance, and the IP
    /// not cooling down? Its IP bucket if so.
    pub(super) fn admit_stranger_datagram(&mut self, from: SocketAddr) -> Option<usize> {
        let bucket = self.gate.bucket(from);
        if self.gate.cooling(bucket, self.tick) {
            self.counters.cooled_down += 1;
            return None;
        }
        if !self
            .gate
            .allow_datagram(bucket, self.config.datagrams_per_tick)
        {
            self.counters.rate_limited += 1;
            return None;
        }
        Some(bucket)
    }

    /// Token format, world and expiry; the signature is not checked here (a CHALLENGE costs
    /// the zone a hash, and is smaller than the CONNECT).
    pub(super) fn token_ok(&mut self, token: &ConnectToken, unix_ms: u64) -> bool {
        if token.world_id.get() != self.world_id {
            self.counters.tokens_wrong_world += 1;
            return false;
        }
        if token.expires_unix_ms.get() <= unix_ms {
            self.counters.tokens_expired += 1;
            return false;
        }
        true
    }

    pub(super) fn window(&self, unix_ms: u64) -> u32 {
        (unix_ms / self.config.cookie_window_ms.max(1)) as u32
    }

    /// A CONNECT from `from`, of IP bucket `bucket` (`None`: not computed yet, the address
    /// has a session).
    pub(super) fn handle_connect(
        &mut self,
        unix_ms: u64,
        (from, bucket): (SocketAddr, Option<usize>),
        bytes: &[u8],
    ) {
        let Ok(connect) = parse::<Connect>(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.connects += 1;
        let token = connect.token;
        if ConnectToken::parse(bytemuck::bytes_of(&token)).is_err() {
            self.counters.malformed += 1;
            return;
        }
        if !self.token_ok(&token, unix_ms) {
            return;
        }
        let source = bucket.unwrap_or_else(|| self.gate.bucket(from));
        let random = self.next_random();
        let dropped = self.challenges.offer(source, (from, token), random);
        self.counters.challenges_over_budget += dropped.over_source + dropped.over_budget;
    }

    /// Sends the tick's CHALLENGEs: a sample, fair across source IPs, of at most
    /// `challenges_per_tick` of the CONNECTs that passed the cheap checks since the last
    /// tick.
    pub(super) fn send_challenges(&mut self, unix_ms: u64) {
        let window = self.window(unix_ms);
        let server_ephemeral = self.ephemeral(window).1;
        let node_key = self.node_dh.as_ref().map_or([0; 32], |(_, public)| *public);
        let random = self.next_random();
        let (connects, dropped) = self.challenges.take(random);
        self.counters.challenges_over_budget += dropped.over_budget;
        for (from, token) in &connects {
            let challenge = Challenge {
                header: header_for::<Challenge>(),
                cookie: self.cookie(*from, window, token),
                window: U32Le::new(window),
                server_ephemeral,
                node_key,
            };
            self.counters.challenges += 1;
            self.send(*from, &challenge);
        }
        self.challenges.give_back(connects);
    }

    /// A RESPONSE from `from`, of IP bucket `bucket` (as for [`Sessions::handle_connect`]).
    pub(super) fn handle_response(
        &mut self,
        unix_ms: u64,
        (from, bucket): (SocketAddr, Option<usize>),
        bytes: &[u8],
    ) {
        let Ok(response) = parse::<Response>(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.responses += 1;
        let response = *response;
        let window = response.window.get();
        let now_window = self.window(unix_ms);
        let fresh = window == now_window || window.wrapping_add(1) == now_window;
        let expected = self.cookie(from, window, &response.token);
        // blake3's Hash comparison is constant-time.
        let matches = blake3::Hash::from_bytes(pad32(&expected))
            == blake3::Hash::from_bytes(pad32(&response.cookie));
        if !fresh || !matches {
            self.counters.bad_cookies += 1;
            return;
        }
        let node_key = self.node_dh.as_ref().map_or([0; 32], |(_, public)| *public);
        if response.server_ephemeral != self.ephemeral(window).1 || response.node_key != node_key {
            // The client keyed its session to another zone's (or a man in the middle's)
            // half of the exchange: no session key it holds would match ours.
            self.counters.handshakes_bad_keys += 1;
            return;
        }
        // The address is proven from here on.
        if let Some(&slot) = self.by_addr.get(&from) {
            // A retransmitted RESPONSE (our ACCEPT was lost): the same client gets its
            // ACCEPT again; anyone else at this address is refused.
            let session = self.slots[slot as usize].as_ref().expect("indexed slot");
            if session.client_key.as_bytes() == &response.token.client_key {
                let accept = self.accept_packet(slot);
                self.send_sealed(slot, bytemuck::bytes_of(&accept));
            }
            return;
        }
        if !self.token_ok(&response.token, unix_ms) {
            return;
        }
        let (token_key, response_key) = (
            self.gate.token_key(&response),
            self.gate.response_key(&response),
        );
        if self.gate.known_bad(token_key) || self.gate.known_bad(response_key) {
            self.counters.handshakes_known_bad += 1;
            return;
        }
        let source = bucket.unwrap_or_else(|| self.gate.bucket(from));
        let random = self.next_random();
        let handshake = Handshake {
            addr: from,
            response,
            token_key,
            response_key,
        };
        let dropped = self.gate.queue.offer(source, handshake, random);
        self.counters.handshakes_rate_limited += dropped.over_source;
        self.counters.handshakes_deferred += dropped.over_budget;
    }

    /// The tick's handshake budget: verifies the sample of at most `handshakes_per_tick`
    /// RESPONSEs (fair across source IPs) and opens a session for each that holds;
    /// remembers each failure. The rest were dropped (their clients resend).
    ///
    /// One strict check at a time, the token's first: under attack nearly every item is
    /// bad, and a batch that fails costs more than checking its items one by one; a bad
    /// token spares the second check.
    pub(super) fn admit_handshakes(&mut self, unix_ms: u64, zone: &mut Zone) {
        let random = self.next_random();
        let (queue, dropped) = self.gate.queue.take(random);
        self.counters.handshakes_deferred += dropped.over_budget;
        for h in &queue {
            let token = &h.response.token;
            let token_key = h.token_key;
            if self.gate.known_bad(token_key) {
                // A copy of a forgery already refused this tick.
                self.counters.handshakes_known_bad += 1;
                continue;
            }
            let Some(auth) = self.keys.auth() else {
                self.counters.tokens_bad_key += 1;
                continue;
            };
            let Ok(client_key) = parse_key(&token.client_key) else {
                self.counters.tokens_bad_key += 1;
                self.gate.mark_bad(token_key);
                continue;
            };
            let token_ok = auth
                .verify_strict(
                    token.signed_bytes(),
                    &Signature::from_bytes(&token.signature),
                )
                .is_ok();
            let response_ok = token_ok
                && client_key
                    .verify_strict(
                        h.response.signed_bytes(),
                        &Signature::from_bytes(&h.response.signature),
                    )
                    .is_ok();
            if !response_ok {
                let key = if token_ok { h.response_key } else { token_key };
                self.gate.mark_bad(key);
                self.counters.bad_signatures += 1;
                self.refuse(h.addr, RefuseReason::BadSignature);
                continue;
            }
            let response = h.response;
            let Some(master) = self.session_key(&response) else {
                // A low-order ephemeral: the shared secret would be public.
                self.counters.handshakes_bad_keys += 1;
                self.gate.mark_bad(h.response_key);
                self.refuse(h.addr, RefuseReason::BadSignature);
                continue;
            };
            self.open(unix_ms, zone, (h.addr, token), client_key, master);
        }
        self.gate.queue.give_back(queue);
    }

    /// Opens a session for a verified handshake.
    pub(super) fn open(
        &mut self,
        unix_ms: u64,
        zone: &mut Zone,
        (addr, token): (SocketAddr, &ConnectToken),
        client_key: VerifyingKey,
        master: seal::Key,
    ) {
        if self.by_addr.contains_key(&addr) {
            // Two RESPONSEs from one address in one tick: the first won.
            return;
        }
        if !self.record_token(addr, token, unix_ms) {
            return;
        }
        let Some(slot) = self.free.pop() else {
            self.counters.overflow += 1;
            self.refuse(addr, RefuseReason::Full);
            return;
        };
        let position = spawn_point(zone, token.client_id.get());
        let avatar = match zone.spawn(
            position,
            [0.0, 0.0],
            self.config.speed_mps_max,
            self.config.avatar_kind,
        ) {
            Ok(id) => id,
            Err(_) => {
                self.free.push(slot);
                self.refuse(addr, RefuseReason::NoRoom);
                return;
            }
        };
        // A new client takes game events from 1.
        zone.start_game_events(avatar);
        let mut id = self.next_random() as u32;
        while id == 0 || self.by_id.contains_key(&id) {
            id = self.next_random() as u32;
        }
        let secret = self.next_random();
        let view = self.take_spare(avatar);
        self.slots[slot as usize] = Some(Session {
            id,
            secret,
            addr,
            client_key,
            keys: SessionKeys::new(&master, self.key_id),
            master,
            path: None,
            moved: None,
            avatar,
            avatar_slot: u32::MAX,
            window: ReplayWindow::default(),
            buffered: super::inputs::InputBuffer::default(),
            playout: super::inputs::Playout::default(),
            applied_sequence: 0,
            last_heard_tick: self.tick,
            view,
            ack_tick: 0,
            view_back: 0,
            view_seq: 0,
            event_ack: None,
            event_acked: None,
            failures: 0,
            proven: true,
            left_at_restore: false,
            datagram_tick: 0,
            datagrams: 0,
        });
        self.by_id.insert(id, slot);
        self.by_addr.insert(addr, slot);
        self.rebind(zone, slot);
        self.counters.accepted += 1;
        let accept = self.accept_packet(slot);
        self.send_sealed(slot, bytemuck::bytes_of(&accept));
    }

    /// Records the token's nonce (once per node); refuses the client when it was used
    /// already or the table is full.
    fn record_token(&mut self, addr: SocketAddr, token: &ConnectToken, unix_ms: u64) -> bool {
        // A poisoned lock (a zone thread panicked) still holds a consistent table.
        let recorded = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(token, unix_ms);
        match recorded {
            Ok(true) => true,
            Ok(false) => {
                self.counters.overflow += 1;
                self.refuse(addr, RefuseReason::Full);
                false
            }
            Err(_) => {
                self.counters.tokens_replayed += 1;
                self.refuse(addr, RefuseReason::TokenReplayed);
                false
            }
        }
    }

    pub(super) fn accept_packet(&self, slot: u32) -> Accept {
        let session = self.slots[slot as usize].as_ref().expect("live slot");
        let b = self.bounds;
        Accept {
            header: header_for::<Accept>(),
            session: U32Le::new(session.id),
            session_secret: U64Le::new(session.secret),
            entity: U64Le::new(session.avatar.0),
            zone: U32Le::new(self.zone.0),
            tick: U32Le::new(self.tick as u32),
            tick_hz: U16Le::new(self.config.interest.tick_hz as u16),
            speed_cmps_max: U16Le::new((self.config.speed_mps_max * 100.0) as u16),
            client_auth: match self.config.client_auth {
                ClientAuth::Aead => CLIENT_AUTH_AEAD,
                ClientAuth::Ed25519 => CLIENT_AUTH_ED25519,
            },
            padding: [0; 3],
            bounds: [b.x_min, b.y_min, b.x_max, b.y_max].map(F32Le::new),
        }
    }

    pub(super) fn refuse(&mut self, to: SocketAddr, reason: RefuseReason) {
        self.counters.refused += 1;
        let refuse = Refuse {
            header: header_for::<Refuse>(),
            reason: reason as u8,
            padding: [0; 3],
        };
        self.send(to, &refuse);
    }
}

/// Where a client's avatar appears: a point of the zone (its outer 5 % excepted), from its
/// client id.
fn spawn_point(zone: &Zone, client_id: u64) -> [f32; 3] {
    let r = zone.rect();
    let h = client_id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let (u, v) = (
        (h >> 40) as f32 / (1u64 << 24) as f32,
        ((h >> 16) & 0xFF_FFFF) as f32 / (1u64 << 24) as f32,
    );
    let (w, hgt) = (r.x_max - r.x_min, r.y_max - r.y_min);
    [
        r.x_min + w * (0.05 + 0.9 * u),
        r.y_min + hgt * (0.05 + 0.9 * v),
        0.0,
    ]
}

/// An address as 16 bytes of IPv6 (IPv4 mapped) and a port: the form a binding carries,
/// and the form the cookie hashes (so one client has one cookie either way).
fn pad32(bytes: &[u8; COOKIE_SIZE]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..COOKIE_SIZE].copy_from_slice(bytes);
    out
}
