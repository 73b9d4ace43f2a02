//! Game events for clients: reliable and ordered per session, across zone changes.
//!
//! A game sends a client an event (up to [`GAME_EVENT_MAX`] bytes: "you were hit", a
//! score) with [`GameWorld::send_event`](super::GameWorld::send_event). The zone keeps it
//! with the session's other unacknowledged events (at most [`GAME_EVENTS_PENDING_MAX`];
//! past that the game is told `Full` and may try again later, so nothing is dropped
//! silently), sends all of them in every snapshot until the client acknowledges them
//! (INPUT's `event_ack`), and hands them to the avatar's next zone with every send of
//! its COMMIT (kept until the transfer's DONE), which goes on numbering after them. The
//! client takes each sequence once, in order.
//!
//! Not kept across a crash of the zone that holds them (the log does not carry them),
//! as positions since the last checkpoint are not. The numbering goes on across a crash:
//! a zone that does not know where a session's numbering stands — restored from its log,
//! or handed the session by a zone that did not know either — learns it from the
//! client's next input (its `event_ack`: the next event is the one after it) and refuses
//! events until then ([`EventError::Unsynced`]; the game tries again later). Numbering
//! from 1 again would have the client, which takes only the next number, skip every new
//! event until the numbers passed the last one it took.

use meridian_layouts::U32Le;
use meridian_layouts::handoff::{EventBacklog, GAME_EVENT_MAX, GAME_EVENTS_PENDING_MAX, GameEvent};

use crate::entities::EntityID;
use crate::zone::Zone;

/// Why an event could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the avatar is not owned by this zone")]
    NotOwned,
    #[error("no client session is bound to the entity")]
    NoSession,
    #[error("an event is at most 24 bytes")]
    TooLong,
    #[error("the session's client has 8 events it has not acknowledged")]
    Full,
    /// The zone does not know yet which event the client takes next (restored from its
    /// log): it learns that from the client's next input. Try again next tick.
    #[error("the zone waits for the client's next input to learn which event it takes next")]
    Unsynced,
}

impl Zone {
    /// Queues `bytes` for the client of `avatar`; returns the event's sequence.
    pub fn send_game_event(&mut self, avatar: EntityID, bytes: &[u8]) -> Result<u32, EventError> {
        if self.entities.slot_of(avatar).is_none() {
            return Err(EventError::NotOwned);
        }
        if !self.sessions.contains_key(&avatar) {
            return Err(EventError::NoSession);
        }
        if bytes.len() > GAME_EVENT_MAX {
            return Err(EventError::TooLong);
        }
        let Some(backlog) = self.game_events.get_mut(&avatar) else {
            self.counters.game_events_unsynced += 1;
            return Err(EventError::Unsynced);
        };
        let count = usize::from(backlog.count);
        if count >= GAME_EVENTS_PENDING_MAX {
            self.counters.game_events_full += 1;
            return Err(EventError::Full);
        }
        // Sequences start at 1 (0 is "none" in an acknowledgement) and do not wrap: a
        // session that sent 2³² − 1 events (four years at 30 a second) sends no more.
        let seq = backlog.next_seq.get().max(1);
        if seq == u32::MAX {
            self.counters.game_events_full += 1;
            return Err(EventError::Full);
        }
        let mut event = GameEvent {
            seq: U32Le::new(seq),
            len: bytes.len() as u8,
            bytes: [0; GAME_EVENT_MAX],
        };
        event.bytes[..bytes.len()].copy_from_slice(bytes);
        backlog.events[count] = event;
        backlog.count += 1;
        backlog.next_seq = U32Le::new(seq + 1);
        self.counters.game_events_sent += 1;
        Ok(seq)
    }

    /// A new session's client, on `avatar`, takes events from 1.
    pub(crate) fn start_game_events(&mut self, avatar: EntityID) {
        self.game_events
            .entry(avatar)
            .or_insert_with(|| numbered_from(1));
    }

    /// The client of `avatar` has taken every event up to `ack`: they are not sent again.
    /// If the zone does not know the session's numbering (see the module docs), the next
    /// event is `ack + 1`. So it is if `ack` is past every event the zone numbered: it
    /// learnt the numbering from an older acknowledgement than the client's newest (a
    /// packet replayed to a restored zone before the client's own), and the events it
    /// holds carry numbers the client has passed, which it would never take or
    /// acknowledge: they are dropped (counted in `game_events_lost`).
    pub fn ack_game_events(&mut self, avatar: EntityID, ack: u32) {
        let Some(backlog) = self.game_events.get_mut(&avatar) else {
            if self.sessions.contains_key(&avatar) && self.entities.slot_of(avatar).is_some() {
                self.game_events
                    .insert(avatar, numbered_from(ack.wrapping_add(1).max(1)));
            }
            return;
        };
        if ack.wrapping_sub(backlog.next_seq.get()) as i32 >= 0 {
            self.counters.game_events_lost += u64::from(backlog.count);
            *backlog = numbered_from(ack.wrapping_add(1).max(1));
            return;
        }
        let count = usize::from(backlog.count);
        let taken = backlog.events[..count]
            .iter()
            .take_while(|e| ack.wrapping_sub(e.seq.get()) as i32 >= 0)
            .count();
        if taken > 0 {
            backlog.events.copy_within(taken..count, 0);
            backlog.count -= taken as u8;
        }
    }

    /// The events the client of `avatar` has not acknowledged, oldest first.
    pub fn game_events(&self, avatar: EntityID) -> &[GameEvent] {
        self.game_events.get(&avatar).map_or(&[], |b| b.pending())
    }

    /// The backlog that goes with the COMMIT of `avatar` (zero if none): kept here until
    /// the transfer's tombstone goes, so every resend carries it.
    pub(crate) fn departing_events(&self, avatar: EntityID) -> EventBacklog {
        self.game_events
            .get(&avatar)
            .copied()
            .unwrap_or_else(bytemuck::Zeroable::zeroed)
    }

    /// The backlog that came with `avatar` in its COMMIT (none, if the zone it came from
    /// did not know the session's numbering either: learnt from the client, as after a
    /// restore).
    pub(crate) fn adopt_game_events(&mut self, avatar: EntityID, backlog: &EventBacklog) {
        if backlog.next_seq.get() != 0 {
            self.game_events.insert(avatar, *backlog);
        }
    }
}

/// An empty backlog whose next event is `seq`.
fn numbered_from(seq: u32) -> EventBacklog {
    EventBacklog {
        next_seq: U32Le::new(seq),
        ..bytemuck::Zeroable::zeroed()
    }
}
