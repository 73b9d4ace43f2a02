//! Client inputs, once their sealed packet opened (`sealed`): signed inputs' signatures
//! into the tick's batch (`client_auth = "ed25519"`), authenticated inputs buffered by
//! sequence, and the merged input a tick applies.

use super::*;

impl Sessions {
    /// A client packet another zone forwarded: the client's avatar moved here and the
    /// client has not followed the REDIRECT yet. The session's key says whose it is,
    /// wherever it came from.
    pub fn handle_forwarded(&mut self, bytes: &[u8]) {
        self.handle_sealed(None, bytes);
    }

    /// Whether a datagram from another zone is the session layer's (see
    /// [`Sessions::handle_zone_datagram`]) rather than the zone's.
    pub fn is_session_datagram(bytes: &[u8]) -> bool {
        let kind = bytes.get(5).copied();
        kind == Some(Kind::Sealed as u8) || kind == Some(Kind::View as u8)
    }

    /// A datagram zone `from` sent this zone's session layer: a client packet it forwarded
    /// (sealed), or a client state carried with an avatar (VIEW).
    pub fn handle_zone_datagram(&mut self, from: ZoneID, bytes: &[u8]) {
        if bytes.get(5) == Some(&(Kind::View as u8)) {
            self.handle_view(from, bytes);
        } else {
            self.handle_forwarded(bytes);
        }
    }

    /// An INPUT envelope inside a sealed packet (`client_auth = "ed25519"`): the AEAD
    /// proved it comes from the session's client; its signature, checked in the tick's
    /// batch, proves to anyone what the client sent.
    pub(super) fn handle_signed_input(&mut self, slot: u32, id: u32, bytes: &[u8], direct: bool) {
        let Ok(envelope) = parse_envelope(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        let Ok(body) = InputBody::parse(envelope.payload) else {
            self.counters.malformed += 1;
            return;
        };
        if envelope.header.domain != domain::INPUT
            || envelope.header.signer.get() != id
            || envelope.header.epoch.get() != 0
            || envelope.header.sequence.get() != u64::from(body.inputs[0].sequence.get())
        {
            self.counters.malformed += 1;
            return;
        }
        self.counters.inputs += 1;
        let session = self.slots[slot as usize].as_ref().expect("indexed slot");
        let key = session.client_key;
        let body = *body;
        match self
            .verifier
            .push(&key, envelope.signed, envelope.signature, Policy::Batch)
        {
            Ok(item) => self.pending.push(Pending::Input {
                slot,
                session: id,
                item,
                body,
                direct,
            }),
            Err(_) => self.counters.overflow += 1,
        }
    }

    /// A signed input's verdict from the tick's batch.
    pub(super) fn buffer_input(
        &mut self,
        slot: u32,
        id: u32,
        item: usize,
        body: &InputBody,
        direct: bool,
    ) {
        let Some(session) = self.slots[slot as usize].as_mut().filter(|s| s.id == id) else {
            return;
        };
        if self.verifier.verdict(item) != Verdict::Accepted {
            self.counters.bad_signatures += 1;
            session.failures += 1;
            if session.failures == self.config.input_failures_max {
                // Each failure cost a strict verification: whoever holds this session
                // is not a well-behaved client. Closed, and its IP cooled down.
                let addr = session.addr;
                self.counters.sessions_closed_bad_inputs += 1;
                self.closing.push((slot, true));
                self.gate
                    .cool_down(addr, self.tick + self.config.cooldown_ticks);
            }
            return;
        }
        self.accept_input(slot, body, direct);
    }

    /// An authenticated input: buffered by sequence for the next tick to apply.
    /// `direct`: it came from the session's address (not forwarded, not a new path).
    pub(super) fn accept_input(&mut self, slot: u32, body: &InputBody, direct: bool) {
        let tick = self.tick;
        let session = self.slots[slot as usize].as_mut().expect("live slot");
        session.last_heard_tick = tick;
        // An authenticated input from the session's address proves the client is there.
        session.proven |= direct;
        // Applied to the view when the next snapshot is built (the view's memory is
        // touched there anyway; here it would be one more cache miss per input).
        // Another zone's tick (the client has not heard from this zone since its avatar
        // moved here, or the input was forwarded) says nothing about this zone's baselines.
        if body.ack_zone.get() == self.zone.0 {
            session.ack_tick = body.ack_tick.get();
        }
        let applied = session.applied_sequence;
        for entry in &body.inputs[..usize::from(body.count)] {
            let seq = entry.sequence.get();
            let buffered = session.buffered.as_slice();
            if seq <= applied || buffered.iter().any(|b| b.sequence.get() == seq) {
                continue;
            }
            if buffered.len() == INPUT_BUFFER {
                // Keep the newest: drop the oldest buffered.
                let oldest = (0..buffered.len())
                    .min_by_key(|&i| buffered[i].sequence.get())
                    .expect("full buffer");
                if buffered[oldest].sequence.get() > seq {
                    continue;
                }
                session.buffered.swap_remove(oldest);
            }
            session.buffered.push(*entry);
        }
    }
}

/// The input to apply this tick: everything buffered, merged — the newest movement intent,
/// the buttons of all of them (a press in a superseded input is not lost). Applying one
/// input per tick in sequence instead would let a backlog that formed after jitter or loss
/// persist for the whole session, adding a tick of latency per buffered input.
pub(super) fn next_input(session: &mut Session) -> Option<InputEntry> {
    let buffered = session.buffered.as_slice();
    let newest = *buffered.iter().max_by_key(|e| e.sequence.get())?;
    let buttons = buffered.iter().fold(0u16, |b, e| b | e.buttons.get());
    session.buffered.clear();
    Some(InputEntry {
        buttons: U16Le::new(buttons),
        ..newest
    })
}

/// Inputs verified and not yet applied, unordered, at most [`INPUT_BUFFER`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct InputBuffer {
    entries: [InputEntry; INPUT_BUFFER],
    len: u8,
}

impl InputBuffer {
    pub(super) fn as_slice(&self) -> &[InputEntry] {
        &self.entries[..usize::from(self.len)]
    }

    /// Adds `entry`; the caller keeps the buffer below [`INPUT_BUFFER`].
    pub(super) fn push(&mut self, entry: InputEntry) {
        self.entries[usize::from(self.len)] = entry;
        self.len += 1;
    }

    pub(super) fn swap_remove(&mut self, i: usize) {
        self.len -= 1;
        self.entries[i] = self.entries[usize::from(self.len)];
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
    }
}
