//! Game messages: a game's word to an entity another zone owns.
//!
//! A game writes only what its zone owns. Across a border it sees ghosts — it can aim at
//! one, rewind a shot onto one — but the hit is the owning zone's to apply. So it sends
//! the entity a message ([`GameWorld::send_message`], at most [`GAME_MESSAGE_MAX`]
//! bytes, naming the sender if it likes), and the zone that owns the entity hands it to
//! its game ([`Game::message`](super::Game::message)) at a later tick:
//!
//! - to an entity owned here: at the next tick;
//! - to a ghost: in a MESSAGES packet to the zone the ghost comes from, which hands it to
//!   its game in the tick it arrives — or, if the entity is no longer owned there when
//!   that tick runs the game, sends it on: to where its handoff took it (while the
//!   transfer's tombstone is kept), else to the zone its ghost there comes from. A
//!   message visits at most [`MESSAGE_HOPS_MAX`] zones.
//!
//! **Each hop acknowledged.** A zone keeps every message it sent another zone until
//! that zone acknowledges it (the acks ride in MESSAGES packets back, alone if there is
//! nothing else to send) and sends it again every [`RESEND_TICKS`] ticks meanwhile, up
//! to [`SENDS_MAX`] sends (`game_messages_resent`; then it gives up:
//! `game_messages_unacknowledged`). The receiver acknowledges whatever arrives — new,
//! copy or too old — and its name check drops the copies resends make. So a datagram
//! lost between zones, or a partition shorter than the resends, no longer loses a
//! message.
//!
//! **At most once, not always.** A message is handed to one game at most, on one tick,
//! and only by a zone that owns the entity then. Each is named by its origin (zone, run,
//! number), and a zone remembers the last [`SEEN_WINDOW`] names from each origin with
//! the hops each came with: a copy the network made arrives with no more hops than the
//! first, and is dropped (`duplicates_ignored`), whether the first was handed to the game
//! or sent on — so a copy cannot reach the entity's next zone by a second path. A message
//! that comes back to a zone it passed (the entity crossed back meanwhile) has more hops,
//! and is taken. A zone that restarts from its files (or is taken over) forgets the names,
//! so each packet names the run of the receiving zone its messages were first sent to,
//! and a later run drops it (acknowledged, counted `game_messages_dropped`): a resend of
//! one its old run took is not taken again (simulator seeds 3230 and 3543). A sender
//! that has not heard of the new run yet addresses the old one, so what it sends
//! meanwhile is dropped too. It is lost, and counted, when no zone
//! it reaches owns the entity or knows where it went (`game_messages_undeliverable`:
//! the entity was removed, or its handoff ended and its new owner's ghost has not
//! reached the zone yet), when the hops run out, when a queue is full
//! (`game_messages_dropped`), when every send of one hop goes unacknowledged (a long
//! partition, a dead zone), and when the zone holding it crashes (messages are not
//! logged; a zone that received one acknowledges it before its game runs, so a crash
//! between the two loses it). A game that must know answers: the receiving game sends a
//! message back.

use meridian_layouts::U32Le;
use meridian_layouts::U64Le;
use meridian_layouts::messages::{
    GAME_MESSAGE_MAX, GameMessage, MESSAGE_HOPS_MAX, MessageAck, acks_per_packet,
    messages_per_packet, write_messages,
};

use super::GameWorld;
use crate::entities::EntityID;
use crate::limits::DATAGRAM_SIZE_MAX;
use crate::net::Peer;
use crate::world::ZoneID;
use crate::zone::Zone;

/// Most messages a zone holds for its game, and most its game may send, per tick: past
/// them messages are dropped and counted (`game_messages_dropped`).
pub const GAME_MESSAGES_MAX: usize = 4096;

/// Names of messages a zone remembers per origin zone: a copy arriving more than this
/// many of its origin's messages late is dropped as too old to tell (`game_messages_dropped`).
pub const SEEN_WINDOW: usize = 1024;

/// Ticks between sends of a message another zone has not acknowledged (100 ms at 30 Hz:
/// the ack of a zone on the same machine or a LAN comes the next tick).
pub const RESEND_TICKS: u64 = 3;

/// Most sends of one message to one zone, the first included (about a second at 30 Hz):
/// then the zone gives up on it (`game_messages_unacknowledged`).
pub const SENDS_MAX: u8 = 10;

/// Most messages a zone keeps for resending; past it a message is sent once, unkept.
pub const UNACKED_MAX: usize = 4 * GAME_MESSAGES_MAX;

/// A message as a game receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// The entity it is for (owned by the zone whose game receives it).
    pub to: EntityID,
    /// The entity the sender named as its author, if any.
    pub from: Option<EntityID>,
    /// The zone whose game sent it, and its tick then.
    pub origin: ZoneID,
    pub sent_tick: u64,
    len: u8,
    bytes: [u8; GAME_MESSAGE_MAX],
}

impl Message {
    /// What the sender wrote.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn of(m: &GameMessage) -> Message {
        let from = m.from.get();
        Message {
            to: EntityID(m.to.get()),
            from: (from != 0).then_some(EntityID(from)),
            origin: ZoneID(m.origin_zone.get()),
            sent_tick: m.sent_tick.get(),
            len: m.len.min(GAME_MESSAGE_MAX as u8),
            bytes: m.bytes,
        }
    }
}

/// Why a message could not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("a message is at most 24 bytes")]
    TooLong,
    /// Neither owned here, nor a ghost here, nor handed off from here lately.
    #[error("the entity is not known to this zone")]
    Unknown,
    #[error("the zone's game sent the most messages one tick may")]
    Full,
}

/// The messages of a zone's game: those to hand it (`inbound`; while the game runs, those
/// it sends to entities owned here go there for the next tick) and those to send.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    pub(crate) inbound: Vec<GameMessage>,
    /// The other inbound buffer: the one being handed out while the game runs.
    pub(crate) spare: Vec<GameMessage>,
    /// To send this tick: each to a zone, addressed to the run of it the sender knew of
    /// at its first send ([`Hop`]).
    outbound: Vec<(Hop, GameMessage)>,
    /// Messages sent to other zones and not acknowledged yet.
    unacked: Vec<Unacked>,
    /// Acks owed to the zones messages came from.
    acks: Vec<(ZoneID, MessageAck)>,
    /// Scratch: one destination's outbound messages and acks.
    batch: Vec<GameMessage>,
    batch_acks: Vec<MessageAck>,
    /// The number of this run's next message.
    next_seq: u64,
    /// What arrived lately from each origin zone.
    seen: std::collections::HashMap<ZoneID, Seen>,
}

/// Where a message goes: a zone, and the run of it the sender knew of when it first sent
/// the message there (resends keep it, so a run of the zone that started since drops them:
/// it cannot know whether its old run took the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hop {
    to: ZoneID,
    incarnation: u32,
}

/// A message sent to a zone, kept until that zone acknowledges it.
#[derive(Clone, Copy, Debug)]
struct Unacked {
    hop: Hop,
    message: GameMessage,
    /// The tick of its last send, and how many sends so far.
    sent_tick: u64,
    sends: u8,
}

/// The messages of one origin zone's run a zone has received lately: the hops each came
/// with, for the names from `top - SEEN_WINDOW` to `top - 1` (0: not received).
#[derive(Debug)]
struct Seen {
    incarnation: u32,
    top: u64,
    hops: Box<[u8; SEEN_WINDOW]>,
}

/// What a zone makes of a message that arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arrival {
    New,
    /// It came before with as many hops or more: a copy.
    Copy,
    /// From an older run of its origin than one heard since, or too far behind its
    /// origin's newest to tell.
    TooOld,
}

impl Seen {
    fn new(incarnation: u32) -> Seen {
        Seen {
            incarnation,
            top: 0,
            hops: Box::new([0; SEEN_WINDOW]),
        }
    }

    fn arrive(&mut self, incarnation: u32, seq: u64, hops: u8) -> Arrival {
        if incarnation < self.incarnation {
            return Arrival::TooOld;
        }
        if incarnation > self.incarnation {
            *self = Seen::new(incarnation);
        }
        if seq.saturating_add(SEEN_WINDOW as u64) < self.top.saturating_add(1) {
            return Arrival::TooOld;
        }
        if seq >= self.top {
            // The names from `top` to `seq` enter the window: forget what their slots held.
            let fresh = (seq - self.top + 1).min(SEEN_WINDOW as u64);
            for k in 0..fresh {
                self.hops[((seq - k) % SEEN_WINDOW as u64) as usize] = 0;
            }
            self.top = seq + 1;
        }
        let slot = &mut self.hops[(seq % SEEN_WINDOW as u64) as usize];
        if *slot != 0 && *slot >= hops {
            return Arrival::Copy;
        }
        *slot = hops;
        Arrival::New
    }
}

impl Mailbox {
    pub(crate) fn new() -> Mailbox {
        Mailbox {
            inbound: Vec::with_capacity(GAME_MESSAGES_MAX),
            spare: Vec::with_capacity(GAME_MESSAGES_MAX),
            outbound: Vec::with_capacity(GAME_MESSAGES_MAX),
            unacked: Vec::new(),
            acks: Vec::new(),
            batch: Vec::with_capacity(GAME_MESSAGES_MAX),
            batch_acks: Vec::new(),
            next_seq: 0,
            seen: std::collections::HashMap::new(),
        }
    }
}

impl GameWorld<'_> {
    /// Sends `bytes` to the entity `to`, from `from` (an entity the receiving game may
    /// answer; `None`: no one), to be handed to the game of the zone that owns it (see
    /// the module docs). `to` must be owned here, a ghost here, or an entity this zone
    /// handed off and still keeps the tombstone of.
    pub fn send_message(
        &mut self,
        to: EntityID,
        from: Option<EntityID>,
        bytes: &[u8],
    ) -> Result<(), MessageError> {
        let zone = &mut *self.zone;
        if bytes.len() > GAME_MESSAGE_MAX {
            return Err(MessageError::TooLong);
        }
        // Numbered whether or not it goes out: a gap in an origin's numbers costs nothing.
        let mailbox = zone.mailbox_mut()?;
        let seq = mailbox.next_seq;
        mailbox.next_seq += 1;
        let mut m = GameMessage {
            to: U64Le::new(to.0),
            from: U64Le::new(from.map_or(0, |e| e.0)),
            origin_zone: U32Le::new(zone.id.0),
            origin_incarnation: U32Le::new(zone.incarnation()),
            seq: U64Le::new(seq),
            sent_tick: U64Le::new(zone.tick),
            hops: 0,
            len: bytes.len() as u8,
            reserved: [0; 2],
            bytes: [0; GAME_MESSAGE_MAX],
        };
        m.bytes[..bytes.len()].copy_from_slice(bytes);
        let sent = if zone.entities.slot_of(to).is_some() {
            zone.mailbox_mut().and_then(|b| {
                (b.inbound.len() < GAME_MESSAGES_MAX)
                    .then(|| b.inbound.push(m))
                    .ok_or(MessageError::Full)
            })
        } else {
            zone.route_message(m)
        };
        match sent {
            Ok(()) => zone.counters.game_messages_sent += 1,
            Err(MessageError::Full) => zone.counters.game_messages_dropped += 1,
            Err(_) => {}
        }
        sent
    }
}

impl Zone {
    fn mailbox_mut(&mut self) -> Result<&mut Mailbox, MessageError> {
        self.game
            .as_mut()
            .map(|g| &mut g.mailbox)
            .ok_or(MessageError::Unknown)
    }

    /// Queues `m` (not owned here) for the zone that has the entity: where its handoff
    /// took it, else where its ghost comes from.
    fn route_message(&mut self, mut m: GameMessage) -> Result<(), MessageError> {
        let id = EntityID(m.to.get());
        let handed = self
            .tombstones
            .get(&id)
            .map(|t| ZoneID(t.commit.transfer.target_zone.get()));
        let ghost = || {
            let slot = self.ghosts.entities().slot_of(id)?;
            Some(self.ghosts.source(slot))
        };
        let Some(to) = handed.or_else(ghost).filter(|&z| z != self.id) else {
            return Err(MessageError::Unknown);
        };
        if m.hops >= MESSAGE_HOPS_MAX {
            return Err(MessageError::Unknown);
        }
        m.hops += 1;
        // The newest run of `to` this zone has heard of (0: none yet).
        let incarnation = self.peer_incarnations.get(&to).copied().unwrap_or(0);
        let mailbox = self.mailbox_mut()?;
        if mailbox.outbound.len() >= GAME_MESSAGES_MAX {
            return Err(MessageError::Full);
        }
        mailbox.outbound.push((Hop { to, incarnation }, m));
        Ok(())
    }

    /// The zone stops for good at a tick boundary (a clean stop, or a move to its
    /// standby): what its mailbox still holds cannot be sent or handed over by this run.
    /// The messages other zones have not acknowledged are counted unacknowledged (some
    /// may have arrived, their acks lost), those acknowledged here and not yet handed to
    /// the game dropped.
    pub fn stop_messages(&mut self) {
        let Ok(mailbox) = self.mailbox_mut() else {
            return;
        };
        let unacked = mailbox.unacked.len() as u64;
        let inbound = mailbox.inbound.len() as u64;
        mailbox.unacked.clear();
        mailbox.inbound.clear();
        self.counters.game_messages_unacknowledged += unacked;
        self.counters.game_messages_dropped += inbound;
    }

    /// A MESSAGES packet from zone `from`: its messages are for this zone's game (handed
    /// over, or sent on, when the game runs this tick), each acknowledged; its acks end
    /// the resends of what this zone sent there.
    pub(crate) fn handle_messages(
        &mut self,
        from: Peer,
        (head, messages, acks): meridian_layouts::messages::Messages<'_>,
    ) -> bool {
        let source = ZoneID(head.source_zone.get());
        let peer = self.borders.neighbours().contains(&source) || self.watch.is_peer(source);
        if !peer || !self.addressed(from, &head.source_zone, &head.target_zone) {
            return false;
        }
        let Some(game) = self.game.as_mut() else {
            self.counters.game_messages_undeliverable += messages.len() as u64;
            return true;
        };
        let zones = self.world.zone_count();
        let mailbox = &mut game.mailbox;
        if !acks.is_empty() {
            let acked: std::collections::HashSet<&MessageAck> = acks.iter().collect();
            mailbox
                .unacked
                .retain(|u| u.hop.to != source || !acked.contains(&u.message.ack()));
        }
        // Sent first to an older run of this zone: that run may have taken them, and this
        // one does not know which it took (a restart forgets the names). Acknowledged, so
        // the sender stops, and dropped (simulator seeds 3230 and 3543). BROKEN ON PURPOSE
        // when `take_stale_hops`, or `send_messages_once` (the zone before acks took them).
        let stale = head.target_incarnation.get() < self.incarnation;
        if stale && !self.bugs.take_stale_hops && !self.bugs.send_messages_once {
            self.counters.game_messages_dropped += messages.len() as u64;
            let owed = messages.iter().map(|m| (source, m.ack()));
            let room = GAME_MESSAGES_MAX.saturating_sub(mailbox.acks.len());
            mailbox.acks.extend(owed.take(room));
            return true;
        }
        for m in messages {
            let origin = m.origin_zone.get();
            if origin >= zones {
                self.counters.game_messages_dropped += 1;
                continue;
            }
            // Whatever becomes of it here, its sender may stop sending it. (Past the most
            // a tick acknowledges, the sender's next send is acknowledged instead.)
            // BROKEN ON PURPOSE when `send_messages_once`: no acks either.
            if mailbox.acks.len() < GAME_MESSAGES_MAX && !self.bugs.send_messages_once {
                mailbox.acks.push((source, m.ack()));
            }
            let seen = mailbox
                .seen
                .entry(ZoneID(origin))
                .or_insert_with(|| Seen::new(m.origin_incarnation.get()));
            match seen.arrive(m.origin_incarnation.get(), m.seq.get(), m.hops) {
                // BROKEN ON PURPOSE when `take_message_copies`.
                Arrival::Copy if self.bugs.take_message_copies => mailbox.inbound.push(*m),
                Arrival::Copy => self.counters.duplicates_ignored += 1,
                Arrival::TooOld => self.counters.game_messages_dropped += 1,
                Arrival::New if mailbox.inbound.len() < GAME_MESSAGES_MAX => {
                    mailbox.inbound.push(*m);
                }
                Arrival::New => self.counters.game_messages_dropped += 1,
            }
        }
        true
    }

    /// The game's inbound messages for this tick (taken out; the game's local sends go
    /// into the other buffer).
    pub(crate) fn take_messages(&mut self) -> Vec<GameMessage> {
        let Some(game) = self.game.as_mut() else {
            return Vec::new();
        };
        let spare = core::mem::take(&mut game.mailbox.spare);
        core::mem::replace(&mut game.mailbox.inbound, spare)
    }

    /// Hands a message to the game if the entity is owned here (`Some`); else sends it
    /// on, or counts it lost (`None`).
    pub(crate) fn deliver_message(&mut self, m: &GameMessage) -> Option<Message> {
        if self.entities.slot_of(EntityID(m.to.get())).is_some() {
            self.counters.game_messages_delivered += 1;
            return Some(Message::of(m));
        }
        match self.route_message(*m) {
            Ok(()) => self.counters.game_messages_forwarded += 1,
            Err(MessageError::Full) => self.counters.game_messages_dropped += 1,
            Err(_) => self.counters.game_messages_undeliverable += 1,
        }
        None
    }

    /// Gives the inbound buffer back once handed out.
    pub(crate) fn return_messages(&mut self, mut handed: Vec<GameMessage>) {
        handed.clear();
        if let Some(game) = self.game.as_mut() {
            game.mailbox.spare = handed;
        }
    }

    /// Writes the tick's outbound messages — those its game sent or sent on, and the
    /// unacknowledged ones due again — and the acks it owes into MESSAGES packets, one zone
    /// at a time, in the order the game sent them.
    pub(crate) fn send_messages(&mut self) {
        let Some(game) = self.game.as_mut() else {
            return;
        };
        let mut mailbox = core::mem::take(&mut game.mailbox);
        // A message kept is sent again if its datagram does not get out; one unkept is lost.
        let unkept = self.keep_for_resending(&mut mailbox);
        let per_packet = messages_per_packet(DATAGRAM_SIZE_MAX);
        let mut buf = [0u8; DATAGRAM_SIZE_MAX];
        while let Some(hop) = (mailbox.outbound.first().map(|o| o.0)).or_else(|| {
            let &(to, _) = mailbox.acks.first()?;
            let incarnation = self.peer_incarnations.get(&to).copied().unwrap_or(0);
            Some(Hop { to, incarnation })
        }) {
            // One destination (and run of it) at a time — a zone sends to its few peers —
            // its messages and the acks owed to it out of the lists in order, the others
            // kept.
            let to = hop.to;
            let (batch, batch_acks) = (&mut mailbox.batch, &mut mailbox.batch_acks);
            batch.clear();
            batch_acks.clear();
            mailbox.outbound.retain(|&(h, m)| {
                let mine = h == hop;
                if mine {
                    batch.push(m);
                }
                !mine
            });
            mailbox.acks.retain(|&(z, a)| {
                let mine = z == to;
                if mine {
                    batch_acks.push(a);
                }
                !mine
            });
            let (mut messages, mut acks) = (&batch[..], &batch_acks[..]);
            while !messages.is_empty() || !acks.is_empty() {
                let (now, later) = messages.split_at(messages.len().min(per_packet));
                let room = acks_per_packet(DATAGRAM_SIZE_MAX, now.len());
                let (now_acks, later_acks) = acks.split_at(acks.len().min(room));
                let ends = (self.id.0, to.0, hop.incarnation);
                let len = write_messages(&mut buf, ends, now, now_acks)
                    .expect("a packet's worth of messages and acks fits a datagram");
                if !self.outbox.push(Peer::Zone(to), &buf[..len]) && unkept {
                    self.counters.game_messages_dropped += now.len() as u64;
                }
                (messages, acks) = (later, later_acks);
            }
        }
        if let Some(game) = self.game.as_mut() {
            game.mailbox = mailbox;
        }
    }

    /// Keeps this tick's new outbound messages for resending (while there is room), and
    /// adds the kept ones due again to the outbound list — or gives them up after their
    /// last send. Returns whether a new one could not be kept.
    fn keep_for_resending(&mut self, mailbox: &mut Mailbox) -> bool {
        // BROKEN ON PURPOSE when `send_messages_once`.
        if self.bugs.send_messages_once {
            return true;
        }
        let tick = self.tick;
        let fresh = mailbox.outbound.len();
        let mut resent = 0;
        let mut given_up = 0;
        mailbox.unacked.retain_mut(|u| {
            if tick < u.sent_tick + RESEND_TICKS {
                return true;
            }
            if u.sends >= SENDS_MAX {
                given_up += 1;
                return false;
            }
            u.sends += 1;
            u.sent_tick = tick;
            resent += 1;
            mailbox.outbound.push((u.hop, u.message));
            true
        });
        let room = UNACKED_MAX.saturating_sub(mailbox.unacked.len());
        for &(hop, message) in mailbox.outbound[..fresh].iter().take(room) {
            mailbox.unacked.push(Unacked {
                hop,
                message,
                sent_tick: tick,
                sends: 1,
            });
        }
        self.counters.game_messages_resent += resent;
        self.counters.game_messages_unacknowledged += given_up;
        fresh > room
    }
}
