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
            session.view_back = body.view_back;
            if body.count > 0 {
                session.view_seq = body.inputs[0].sequence.get();
            }
        }
        // Game events count across zones: any zone's acknowledgement is good (the newest
        // wins; packets may come out of order).
        let ack = body.event_ack.get();
        if session
            .event_ack
            .is_none_or(|newest| ack.wrapping_sub(newest) as i32 > 0)
        {
            session.event_ack = Some(ack);
        }
        let applied = session.applied_sequence;
        for entry in &body.inputs[..usize::from(body.count)] {
            if entry.sequence.get() <= applied {
                session
                    .playout
                    .arrived_late(applied, entry, &mut self.counters);
            } else {
                session.buffered.offer(entry);
            }
        }
    }
}

/// Most unplayed inputs' presses kept for the game in one tick (see
/// [`Playout::take_presses`]).
const PRESSES_MAX: usize = 8;

/// Ticks over which the playout measures how many inputs wait beyond the one applied.
pub(super) const PLAYOUT_WINDOW_TICKS: u16 = 30;

/// One session's playout counters (see [`Sessions::input_playout`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputPlayout {
    pub underruns: u32,
    pub skipped: u32,
    pub lost: u32,
}

impl Sessions {
    /// The input playout counters of session `id` (its underruns, skipped and lost
    /// inputs at this zone), if the session is served here.
    pub fn input_playout(&self, id: u32) -> Option<InputPlayout> {
        let slot = *self.by_id.get(&id)?;
        let p = &self.slots[slot as usize].as_ref()?.playout;
        Some(InputPlayout {
            underruns: p.underruns,
            skipped: p.skipped,
            lost: p.lost,
        })
    }
}

/// A session's input playout: one input per tick, in sequence (a client sends one per
/// tick of its own: the sequence is the client tick it was made for), each played at most
/// once, at a tick a steady offset from the client's.
///
/// Every state the zone reaches is the client's inputs applied in order, one tick of
/// motion each — what the client predicted — so the playout never moves the avatar in a
/// way the client's reconciliation would have to correct:
/// - When the input due has not arrived (an *underrun*), the zone plays a *guess*: the
///   last input's motion, under the due input's sequence (no button presses). If the
///   input arrives later it is not played (its button presses still go to the game, as
///   an action of their own stamped with that input: see [`Playout::take_presses`]);
///   when the client kept its intent, the guess was exactly right. An input that never
///   arrives while later ones do (all four copies lost) is *lost*: the next one plays.
/// - When a guessed input arrives *late* `k` ticks after its tick, the buffer was `k`
///   ticks too shallow for the path: the next `k` underruns *wait* instead of guessing
///   (forgotten after a window of [`PLAYOUT_WINDOW_TICKS`] without an underrun). A wait
///   stands the avatar still for the tick, and the input due plays a tick later, and so
///   does every later one: the buffer deepens by one. One input a window arriving a
///   single tick late is tolerated (a lost packet whose input the next packet carried).
/// - When at every tick of a window without an underrun two inputs or more waited beyond
///   the one played, all but one of the surplus are *skipped* (the newest of them played,
///   every skipped input's button presses handed to the game as its own action): a
///   backlog left by a burst does not add latency for the rest of the session. (This
///   moves the avatar one input's motion less than the client predicted: the one
///   correction the playout makes.)
///
/// Each snapshot tells the client how early its inputs arrive (`input_waiting`); a
/// client that paces its inputs by it (`Client::input_pace`) keeps the buffer at the
/// margin its path needs, and the zone rarely has to guess, wait or skip at all.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Playout {
    /// The first input has arrived: from then on an empty buffer is an underrun.
    started: bool,
    /// This window: fewest inputs that waited beyond the applied one at any tick, its
    /// underruns, and its length so far.
    min_waiting: u8,
    window_underruns: u8,
    /// Guessed inputs that arrived one tick late in this window.
    window_late: u8,
    window_ticks: u16,
    /// Underruns that wait instead of guessing: a guessed input arrived this many ticks
    /// late (see [`Playout::arrived_late`]). Forgotten after a window without underruns.
    waits_owed: u8,
    /// The motion of the last input played: the guess.
    last_move: (i8, i8),
    /// Bit k: the input `applied_sequence - k` was guessed and has not arrived since.
    guessed: u32,
    /// Inputs with button presses that were not played — guessed inputs that arrived
    /// late, skipped ones — for the game all the same ([`Playout::take_presses`]).
    presses: [InputEntry; PRESSES_MAX],
    press_count: u8,
    /// What this tick's snapshot tells the client (`DeltaHeader::input_waiting`).
    pub(super) report: u8,
    pub(super) underruns: u32,
    pub(super) skipped: u32,
    pub(super) lost: u32,
}

impl Playout {
    /// Counts a tick into the window; at its end, how many inputs to skip.
    fn close_tick(&mut self, waiting: Option<u8>) -> u8 {
        if self.window_ticks == 0 {
            (self.min_waiting, self.window_underruns) = (u8::MAX, 0);
        }
        match waiting {
            None => self.window_underruns = self.window_underruns.saturating_add(1),
            Some(w) => self.min_waiting = self.min_waiting.min(w),
        }
        self.window_ticks += 1;
        if self.window_ticks < PLAYOUT_WINDOW_TICKS {
            return 0;
        }
        self.window_ticks = 0;
        self.window_late = 0;
        if self.window_underruns > 0 {
            0
        } else {
            self.waits_owed = 0;
            self.min_waiting.saturating_sub(1)
        }
    }

    /// An input at or before the applied one arrived: a duplicate, or a guessed input
    /// arriving late. Its button presses are kept for the game, and the
    /// buffer was that many ticks too shallow: as many underruns from now on wait.
    pub(super) fn arrived_late(
        &mut self,
        applied: u32,
        entry: &InputEntry,
        counters: &mut SessionCounters,
    ) {
        let behind = applied.wrapping_sub(entry.sequence.get());
        if behind < 32 && self.guessed & (1 << behind) != 0 {
            self.guessed &= !(1 << behind);
            self.keep_presses(entry);
            // One tick late, once in a window: a lost packet the next one's copies
            // covered, most likely — the guess stood in, and deepening the buffer for it
            // would cost every later input a tick. Later than that, or again, it is the
            // path: wait.
            self.window_late = self.window_late.saturating_add(u8::from(behind == 0));
            if behind > 0 || self.window_late >= 2 {
                self.waits_owed = self.waits_owed.max(behind as u8 + 1);
            }
            counters.inputs_late += 1;
        }
    }

    /// Keeps an unplayed input's button presses for the game (see [`Playout::presses`]).
    /// Past [`PRESSES_MAX`] in one tick (a client pressing every tick through a burst)
    /// they join the newest kept.
    fn keep_presses(&mut self, entry: &InputEntry) {
        if entry.buttons.get() == 0 {
            return;
        }
        let n = usize::from(self.press_count);
        if n < PRESSES_MAX {
            self.presses[n] = *entry;
            self.press_count += 1;
        } else {
            let last = &mut self.presses[PRESSES_MAX - 1];
            last.buttons = U16Le::new(last.buttons.get() | entry.buttons.get());
        }
    }

    /// Whether [`Playout::take_presses`] has anything (most ticks of most sessions: no).
    pub(super) fn has_presses(&self) -> bool {
        self.press_count != 0
    }

    /// The button presses of inputs that were not played since the last call, oldest
    /// first: each goes to the game as an action stamped with its own input (sequence,
    /// aim, the view time it was made at), not folded into another.
    pub(super) fn take_presses(&mut self) -> impl Iterator<Item = InputEntry> + use<> {
        let mut kept = self.presses;
        let n = usize::from(std::mem::take(&mut self.press_count));
        kept[..n].sort_unstable_by_key(|e| e.sequence.get());
        kept.into_iter().take(n)
    }

    /// The applied sequence moves on by `by`; `guessed`: the newest of them was a guess.
    fn advance(&mut self, by: u32, guessed: bool) {
        self.guessed = self.guessed.checked_shl(by).unwrap_or(0) | u32::from(guessed);
    }
}

/// The input to play this tick, if any (see [`Playout`]): an input the client sent, a
/// guess under the sequence due, or — when waiting — a standstill under the applied
/// sequence. Counts into `counters`.
pub(super) fn next_input(
    session: &mut Session,
    counters: &mut SessionCounters,
) -> Option<InputEntry> {
    let p = &mut session.playout;
    let buffered = &mut session.buffered;
    let applied = session.applied_sequence;
    if buffered.len() == 0 {
        if !p.started {
            return None;
        }
        p.underruns += 1;
        counters.inputs_underrun += 1;
        p.close_tick(None);
        p.report = INPUT_UNDERRUN;
        let (sequence, (move_x, move_y)) = if p.waits_owed > 0 {
            p.waits_owed -= 1;
            (applied, (0, 0))
        } else {
            p.advance(1, true);
            counters.inputs_guessed += 1;
            (applied.wrapping_add(1), p.last_move)
        };
        return Some(InputEntry {
            sequence: U32Le::new(sequence),
            move_x,
            move_y,
            buttons: U16Le::new(0),
            aim: U16Le::new(0),
        });
    }
    p.started = true;
    let due = applied.wrapping_add(1);
    let mut input = buffered.take_oldest();
    let seq = input.sequence.get();
    if seq != due {
        let lost = seq.wrapping_sub(due);
        p.lost += lost;
        counters.inputs_lost += u64::from(lost);
    }
    let surplus = p.close_tick(Some(buffered.len() as u8));
    let surplus = usize::from(surplus).min(buffered.len());
    for _ in 0..surplus {
        // The newest of them plays; the skipped ones' presses go to the game.
        p.keep_presses(&input);
        input = buffered.take_oldest();
    }
    p.skipped += surplus as u32;
    counters.inputs_skipped += surplus as u64;
    counters.inputs_applied += 1;
    p.advance(input.sequence.get().wrapping_sub(applied), false);
    p.last_move = (input.move_x, input.move_y);
    p.report = (buffered.len() as u8).min(INPUT_UNDERRUN - 1);
    Some(input)
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

    /// Buffers `entry`, an input after the applied one, unless it is buffered already.
    /// When the buffer is full the newest are kept: the oldest buffered makes room, or
    /// `entry` is dropped if it is older than all of them. Whether it was buffered.
    pub(super) fn offer(&mut self, entry: &InputEntry) -> bool {
        let seq = entry.sequence.get();
        let buffered = self.as_slice();
        if buffered.iter().any(|b| b.sequence.get() == seq) {
            return false;
        }
        if buffered.len() == INPUT_BUFFER {
            let oldest = (0..buffered.len())
                .min_by_key(|&i| buffered[i].sequence.get())
                .expect("full buffer");
            if buffered[oldest].sequence.get() > seq {
                return false;
            }
            self.swap_remove(oldest);
        }
        self.push(*entry);
        true
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

    pub(super) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Removes and returns the entry with the lowest sequence; the buffer is not empty.
    pub(super) fn take_oldest(&mut self) -> InputEntry {
        let oldest = (0..self.len())
            .min_by_key(|&i| self.entries[i].sequence.get())
            .expect("a buffered input");
        let entry = self.entries[oldest];
        self.swap_remove(oldest);
        entry
    }
}
