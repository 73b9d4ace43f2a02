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
//! as positions since the last checkpoint are not.

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
        let backlog = self
            .game_events
            .entry(avatar)
            .or_insert_with(bytemuck::Zeroable::zeroed);
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

    /// The client of `avatar` has taken every event up to `ack`: they are not sent again.
    pub fn ack_game_events(&mut self, avatar: EntityID, ack: u32) {
        let Some(backlog) = self.game_events.get_mut(&avatar) else {
            return;
        };
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

    /// The backlog that came with `avatar` in its COMMIT.
    pub(crate) fn adopt_game_events(&mut self, avatar: EntityID, backlog: &EventBacklog) {
        if backlog.next_seq.get() != 0 {
            self.game_events.insert(avatar, *backlog);
        }
    }
}
