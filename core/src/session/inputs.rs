//! Client inputs: envelope checks on arrival (session, address, replay window), the
//! signature into the tick's batch, verified inputs buffered by sequence, and the merged
//! input a tick applies. Inputs of a client whose avatar moved are forwarded to the zone
//! that owns it now.

use super::*;

impl Sessions {
    /// A client INPUT another zone forwarded: the client's avatar moved here and the
    /// client has not followed the REDIRECT yet. The forwarding zone checked the address;
    /// the session id and signature say whose input it is, wherever it came from.
    pub fn handle_forwarded(&mut self, bytes: &[u8]) {
        self.handle_input(None, bytes);
    }

    /// `from`: the client's address, or `None` for a forwarded input.
    pub(super) fn handle_input(&mut self, from: Option<SocketAddr>, bytes: &[u8]) {
        let Ok(envelope) = parse_envelope(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        if envelope.header.domain != domain::INPUT {
            self.counters.malformed += 1;
            return;
        }
        let Ok(body) = InputBody::parse(envelope.payload) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.inputs += 1;
        let id = envelope.header.signer.get();
        let Some(&slot) = self.by_id.get(&id) else {
            self.counters.inputs_unknown += 1;
            return;
        };
        let session = self.slots[slot as usize].as_ref().expect("indexed slot");
        if from.is_some_and(|from| session.addr != from) {
            self.counters.inputs_unknown += 1;
            return;
        }
        if let Some((to, _)) = session.moved {
            // The avatar is in another zone now: pass the input on, unverified (the zone
            // that owns the avatar verifies it).
            if from.is_some() {
                self.counters.inputs_forwarded += 1;
                self.send_to_peer(Peer::Zone(to), bytes);
            }
            return;
        }
        let sequence = envelope.header.sequence.get();
        if envelope.header.epoch.get() != 0
            || sequence != u64::from(body.inputs[0].sequence.get())
            || !session.window.check(0, sequence)
        {
            self.counters.inputs_replayed += 1;
            return;
        }
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
                sequence,
                body,
                direct: from.is_some(),
            }),
            Err(_) => self.counters.overflow += 1,
        }
    }

    pub(super) fn buffer_input(
        &mut self,
        slot: u32,
        id: u32,
        item: usize,
        sequence: u64,
        body: &InputBody,
        direct: bool,
    ) {
        let tick = self.tick;
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
        if !session.window.record(0, sequence) {
            self.counters.inputs_replayed += 1;
            return;
        }
        session.last_heard_tick = tick;
        // A verified input from the session's address proves the client is there.
        session.proven |= direct;
        session.view.acknowledge(body.ack_tick.get());
        let applied = session.applied_sequence;
        for entry in &body.inputs[..usize::from(body.count)] {
            let seq = entry.sequence.get();
            if seq <= applied || session.buffered.iter().any(|b| b.sequence.get() == seq) {
                continue;
            }
            if session.buffered.len() == INPUT_BUFFER {
                // Keep the newest: drop the oldest buffered.
                let oldest = (0..session.buffered.len())
                    .min_by_key(|&i| session.buffered[i].sequence.get())
                    .expect("full buffer");
                if session.buffered[oldest].sequence.get() > seq {
                    continue;
                }
                session.buffered.swap_remove(oldest);
            }
            session.buffered.push(*entry);
        }
    }

    pub(super) fn handle_disconnect(&mut self, from: SocketAddr, bytes: &[u8]) {
        let Ok(d) = parse::<Disconnect>(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        let Some(&slot) = self.by_id.get(&d.session.get()) else {
            return;
        };
        let session = self.slots[slot as usize].as_ref().expect("indexed slot");
        if session.addr == from && session.secret == d.session_secret.get() {
            self.closing.push((slot, false));
        }
    }
}

/// The input to apply this tick: everything buffered, merged — the newest movement intent,
/// the buttons of all of them (a press in a superseded input is not lost). Applying one
/// input per tick in sequence instead would let a backlog that formed after jitter or loss
/// persist for the whole session, adding a tick of latency per buffered input.
pub(super) fn next_input(session: &mut Session) -> Option<InputEntry> {
    let newest = *session.buffered.iter().max_by_key(|e| e.sequence.get())?;
    let buttons = session
        .buffered
        .iter()
        .fold(0u16, |b, e| b | e.buttons.get());
    session.buffered.clear();
    Some(InputEntry {
        buttons: U16Le::new(buttons),
        ..newest
    })
}
