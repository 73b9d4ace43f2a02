//! Sessions and their avatars: the binding a zone carries in COMMIT, sessions that
//! arrive with an avatar (adopt) or leave with one (redirect the client, forward its
//! inputs for a grace period), and closing a session.

use super::sealed::SessionKeys;
use super::*;

impl Sessions {
    pub(super) fn rebind(&mut self, zone: &mut Zone, slot: u32) {
        let session = self.slots[slot as usize].as_ref().expect("live slot");
        let (ip, port) = mapped_ip_port(session.addr);
        let binding = SessionBinding {
            session_id: U64Le::new(u64::from(session.id)),
            client_ip: ip,
            client_port: U16Le::new(port),
            session_secret: U64Le::new(session.secret),
            client_key: *session.client_key.as_bytes(),
            input_sequence: U32Le::new(session.applied_sequence),
            session_key: session.master,
            key_salt: [0; 16],
            packet_sequence: U64Le::new(session.window.highest()),
        };
        zone.bind_session(session.avatar, binding);
    }

    /// Avatar `id` arrived with its session: serve the client from here.
    pub(super) fn adopt(&mut self, zone: &mut Zone, id: EntityID, binding: &SessionBinding) {
        let session_id = binding.session_id.get() as u32;
        let ip = std::net::Ipv6Addr::from(binding.client_ip);
        let ip = ip
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(ip), std::net::IpAddr::V4);
        let addr = SocketAddr::new(ip, binding.client_port.get());
        let Ok(client_key) = VerifyingKey::from_bytes(&binding.client_key) else {
            self.counters.malformed += 1;
            return;
        };
        if binding.key_salt != [0; 16] {
            // Still sealed to a node: the binding came from another node and this one
            // could not unseal it (it never gets here in clear otherwise).
            self.counters.malformed += 1;
            return;
        }
        // The client may have been here before (it came back): the old entry goes. Anyone
        // else holding the id or the address — a session opened here whose random id
        // collides with the arriving one's, or a client that took over the address — is
        // closed for good (client told, avatar removed), never just forgotten: forgetting
        // would leave its avatar in the world without a client.
        let olds = [
            self.by_id.get(&session_id).copied(),
            self.by_addr.get(&addr).copied(),
        ];
        for old in olds.into_iter().flatten() {
            let Some(session) = self.slots[old as usize].as_ref() else {
                continue; // both keys named the same slot, already handled
            };
            let same = session.moved.is_some() && session.client_key == client_key;
            if same {
                self.forget(old);
            } else {
                self.counters.session_collisions += 1;
                self.close(zone, old, true);
            }
        }
        let Some(slot) = self.free.pop() else {
            self.counters.overflow += 1;
            return;
        };
        let view = self.take_spare(id);
        self.slots[slot as usize] = Some(Session {
            id: session_id,
            secret: binding.session_secret.get(),
            addr,
            client_key,
            keys: SessionKeys::new(&binding.session_key, self.key_id),
            master: binding.session_key,
            path: None,
            moved: None,
            avatar: id,
            avatar_slot: u32::MAX,
            // Packets up to the newest the old zone took are replays here: a captured one
            // must not be used twice.
            window: ReplayWindow::after(0, binding.packet_sequence.get()),
            buffered: inputs::InputBuffer::default(),
            playout: inputs::Playout::default(),
            applied_sequence: binding.input_sequence.get(),
            last_heard_tick: self.tick,
            view,
            ack_tick: 0,
            view_back: 0,
            view_seq: 0,
            event_ack: None,
            event_acked: None,
            failures: 0,
            proven: false,
            left_at_restore: false,
            datagram_tick: 0,
            datagrams: 0,
        });
        self.by_id.insert(session_id, slot);
        self.by_addr.insert(addr, slot);
        self.rebind(zone, slot);
        // The client's replication state, if it came first.
        self.install_view(slot);
        self.counters.sessions_arrived += 1;
    }

    /// Frees a slot without touching the zone.
    pub(super) fn forget(&mut self, slot: u32) {
        if let Some(session) = self.slots[slot as usize].take() {
            self.by_id.remove(&session.id);
            self.by_addr.remove(&session.addr);
            self.free.push(slot);
            self.spares.push(session.view);
        }
    }

    /// A client view for a new session of avatar `avatar`: a closed session's, reset, or
    /// a new one while the zone has never held this many sessions. A view is about 70 KB
    /// (its snapshot history), so views are made as the session count first climbs,
    /// never all up front, and reused after that: a tick allocates only while the zone
    /// reaches a session count it never had.
    ///
    /// Its interest searches fall on a phase of the avatar's id, the same in every zone:
    /// a client that moves on is searched on the ticks it was searched on before, so its
    /// set changes at the cap no more often across a handoff than within a zone (by the
    /// session's slot, two searches could fall a tick apart: an entity that left the set
    /// in the old zone's last search came back in the new zone's first — a flicker).
    pub(super) fn take_spare(&mut self, avatar: EntityID) -> ClientView {
        let every = u64::from(self.config.interest.search_every_ticks.max(1));
        let phase = (avatar.0 % every) as u32;
        match self.spares.pop() {
            Some(mut view) => {
                view.reset(phase);
                view
            }
            None => ClientView::with_phase(&self.config.interest, phase),
        }
    }

    /// Avatar `id` was handed to zone `to`: redirect its client and forward stray inputs.
    pub(super) fn left(&mut self, id: EntityID, to: ZoneID) {
        let Some(slot) = self.slots.iter().position(|s| {
            s.as_ref()
                .is_some_and(|s| s.avatar == id && s.moved.is_none())
        }) else {
            return;
        };
        let until = self.tick + self.config.redirect_grace_ticks;
        self.slots[slot].as_mut().expect("found").moved = Some((to, until));
        self.counters.sessions_left += 1;
        self.send_view(slot as u32, to);
        self.redirect(slot as u32, to);
    }

    /// Avatar `id` was in flight to `to` when the zone's last run stopped (restored as
    /// such): its session is served as one that left, and the client, which may never
    /// have heard of the move, is told first where the zone runs now (if it was taken
    /// over), then where its avatar went.
    pub(super) fn adopt_in_flight(
        &mut self,
        zone: &mut Zone,
        id: EntityID,
        binding: &SessionBinding,
        to: ZoneID,
    ) {
        self.adopt(zone, id, binding);
        let adopted =
            (self.by_id.get(&(binding.session_id.get() as u32)).copied()).filter(|&slot| {
                self.slots[slot as usize]
                    .as_ref()
                    .is_some_and(|s| s.avatar == id)
            });
        let Some(slot) = adopted else {
            return; // no room, or a malformed binding: counted there
        };
        let session = self.slots[slot as usize].as_mut().expect("adopted");
        session.left_at_restore = true;
        if self.announcing(slot as usize) {
            self.redirect(slot, self.zone);
        }
        self.left(id, to);
    }

    pub(super) fn redirect(&mut self, slot: u32, to: ZoneID) {
        let Some(&(_, addr)) = self.zone_addrs.iter().find(|(z, _)| *z == to) else {
            return;
        };
        let session = self.slots[slot as usize].as_ref().expect("live slot");
        let (ip, port, family) = redirect_fields(addr);
        let body = RedirectBody {
            session: U32Le::new(session.id),
            session_secret: U64Le::new(session.secret),
            zone: U32Le::new(to.0),
            addr: ip,
            port: U16Le::new(port),
            family,
            padding: 0,
            // The zone's tick, not the session layer's: the clock of the snapshots the
            // client has, never behind the last one it got from here.
            tick: U32Le::new(self.zone_tick as u32),
        };
        self.redirect_sequence += 1;
        let signer = self.node_key.as_ref().map_or(0, |(_, i)| *i);
        let mut datagram = [0u8; CLIENT_DATAGRAM_MAX];
        let signed = write_envelope_unsigned(
            &mut datagram,
            domain::REDIRECT,
            signer,
            0,
            self.redirect_sequence,
            bytemuck::bytes_of(&body),
        )
        .expect("a redirect fits a datagram");
        if let Some((key, _)) = &self.node_key {
            use ed25519_dalek::Signer;
            let signature = key.sign(&datagram[..signed]).to_bytes();
            datagram[signed..signed + SIGNATURE_SIZE].copy_from_slice(&signature);
        }
        self.counters.redirects_sent += 1;
        self.send_sealed(slot, &datagram[..signed + SIGNATURE_SIZE]);
    }

    pub(super) fn close(&mut self, zone: &mut Zone, slot: u32, notify: bool) {
        if notify
            && let Some(session) = self.slots[slot as usize].as_ref()
            && session.moved.is_none()
        {
            let d = Disconnect {
                header: header_for::<Disconnect>(),
                session: U32Le::new(session.id),
                session_secret: U64Le::new(session.secret),
            };
            self.send_sealed(slot, bytemuck::bytes_of(&d));
        }
        let Some(session) = self.slots[slot as usize].take() else {
            return;
        };
        self.by_id.remove(&session.id);
        self.by_addr.remove(&session.addr);
        self.free.push(slot);
        self.spares.push(session.view);
        if session.moved.is_some() {
            return;
        }
        if zone.remove(session.avatar).is_none()
            && zone.entities().slot_of(session.avatar).is_some()
            && self.orphans.len() < self.orphans.capacity()
        {
            // The tick's log is full: the removal cannot be made durable now. Retried.
            self.orphans.push(session.avatar);
        }
        self.counters.disconnects += 1;
    }
}
