//! The handoff protocol's state: what a zone remembers about entities in transit.
//!
//! docs/protocol.md. The types are here; the zone's two sides of the protocol are
//! [`source`] (S: offer, relinquish, resend COMMIT until DONE) and [`target`] (T: stage,
//! adopt, answer DONE); [`restore`] rebuilds a zone from its log.
//!
//! ```text
//! S → T  OFFER (state)        S still owns E; T stages it (reserves a slot)
//! T → S  ACK | NACK(reason)
//! S → T  COMMIT (full state)  S relinquishes *before* sending, keeps a tombstone
//! T → S  DONE                 T owns E at e+1 from the moment it applied COMMIT
//! S → T  CONFIRM              S logged the DONE: T may forget the transfer
//! ```
//!
//! Tables, all bounded by [`crate::limits::Limits`], overflow counted:
//! - [`PendingOffer`] — S side, an OFFER awaiting ACK/NACK; retransmitted with backoff;
//!   aborted on timeout, on NACK, or when the entity comes back before COMMIT.
//! - [`Tombstone`] — S side, a relinquished entity awaiting DONE; holds the COMMIT and
//!   retransmits it with backoff, forever (there is no abort after COMMIT).
//! - [`Staged`] — T side, an ACKed OFFER; reserves a slot, expires if no COMMIT comes.
//!   T never simulates a staged entity, and COMMIT does not need it (self-sufficient).
//! - [`Unconfirmed`] — T side, an adoption awaiting CONFIRM; T answers its COMMIT with
//!   DONE and resends DONE with backoff until CONFIRM comes.
//! - the **epoch memory** — the highest epoch a zone has seen for each entity it owned,
//!   including ones that left. It fences stale OFFERs, COMMITs and ghosts: without it, a
//!   COMMIT duplicated and delayed by the network could resurrect an entity that has
//!   since moved on. Entries for entities no longer here expire after
//!   `epoch_memory_ticks`, which must exceed the longest a datagram can be in flight.
//!
//! **Why DONE is safe to repeat.** Epochs form a chain: the owner at `e` grants `e + 1`
//! exactly once, to the target it names. So a zone that knows an epoch ≥ a COMMIT's for
//! that entity has already adopted it at that epoch, and answers DONE again.
//!
//! **Durability.** Every spawn, relinquish, adoption and received DONE is appended to the
//! zone's log ([`LogRecord`]). The driver makes the tick's records durable before it
//! transmits the tick's datagrams, so a COMMIT never leaves before its relinquish is on
//! disk and a DONE never before its adoption. A zone restarted from its log owns exactly
//! what the log says, with tombstones for relinquishes not yet DONE (their COMMIT is
//! retransmitted; a target that already adopted answers DONE).
//!
//! **No timing assumption on outages.** A COMMIT lives as long as its tombstone: until DONE,
//! across restarts (logging DONE keeps a restored tombstone to "DONE not yet seen"; the
//! simulator's seed 12 found what happens without it). The epoch memory is finite, so on
//! its own it cannot recognise a COMMIT resent after a long outage or partition. The
//! [`Unconfirmed`] table does: S sends CONFIRM only once DONE is durable in its log, so T
//! keeps each adoption exactly as long as S may resend its COMMIT — however long that is.
//! `Bugs::forget_adoptions` (the protocol without CONFIRM) is caught by the simulator's
//! outages longer than the epoch memory.

mod fence;
mod restore;
mod source;
mod target;

use meridian_layouts::handoff::{Commit, EntityState, SessionBinding, Transfer};
use meridian_layouts::{F32Le, U16Le, U32Le, U64Le};

use crate::entities::{EntityID, EntityInit};
use crate::ghosts::watch::WatchConfig;
use crate::world::ZoneID;

/// Protocol timing, in ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HandoffConfig {
    /// First retransmit after this many ticks without an answer. One tick: zones answer
    /// once per tick, and a tick (33 ms at 30 Hz) is far longer than a LAN round trip.
    pub retransmit_ticks: u32,
    /// Backoff doubles the interval up to this.
    pub retransmit_ticks_max: u32,
    /// An OFFER unanswered this long is aborted (S still owns: safe).
    pub offer_timeout_ticks: u32,
    /// A staged entity with no COMMIT this long is unstaged.
    pub staged_timeout_ticks: u32,
    /// After arriving, an entity is not handed off again for this long.
    pub cooldown_ticks: u32,
    /// After a NACK, the source waits this long before offering the entity again.
    pub nack_backoff_ticks: u32,
    /// Ghost batches are sent every this many ticks.
    pub ghost_interval_ticks: u32,
    /// A ghost not refreshed for this long is dropped.
    pub ghost_ttl_ticks: u32,
    /// Ghosts for what clients watch across borders (seamless interest).
    pub watch: WatchConfig,
    /// How long the epoch of an entity that left is remembered.
    pub epoch_memory_ticks: u32,
    /// The target resends DONE for an adoption not yet CONFIRMed at most this often.
    pub done_retransmit_ticks_max: u32,
}

impl Default for HandoffConfig {
    fn default() -> HandoffConfig {
        HandoffConfig {
            retransmit_ticks: 1,
            retransmit_ticks_max: 8,
            offer_timeout_ticks: 60,
            staged_timeout_ticks: 120,
            cooldown_ticks: 10,
            nack_backoff_ticks: 15,
            ghost_interval_ticks: 1,
            ghost_ttl_ticks: 10,
            watch: WatchConfig::default(),
            epoch_memory_ticks: 1800,
            done_retransmit_ticks_max: 32,
        }
    }
}

/// S side: an OFFER awaiting its answer.
#[derive(Clone, Copy, Debug)]
pub struct PendingOffer {
    pub transfer: Transfer,
    pub started_tick: u64,
    pub next_retransmit_tick: u64,
    pub attempts: u32,
    /// The last tick the border pass still reported the entity crossing to the target.
    pub seen_tick: u64,
}

/// S side: a relinquished entity awaiting DONE.
#[derive(Clone, Copy, Debug)]
pub struct Tombstone {
    pub commit: Commit,
    pub next_retransmit_tick: u64,
    pub attempts: u32,
    /// When the entity crossed (the OFFER started), for the latency histogram.
    pub started_tick: u64,
}

/// T side: an ACKed OFFER.
#[derive(Clone, Copy, Debug)]
pub struct Staged {
    pub transfer: Transfer,
    pub staged_tick: u64,
}

/// T side: an adoption awaiting the source's CONFIRM. While it is here T answers the
/// transfer's COMMIT with DONE (never adopts it twice) and resends DONE with backoff.
#[derive(Clone, Copy, Debug)]
pub struct Unconfirmed {
    pub transfer: Transfer,
    pub next_retransmit_tick: u64,
    pub attempts: u32,
}

/// What a zone reports to its driver (logs, metrics, the simulator's trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// S started a transfer.
    Offered {
        id: EntityID,
        to: ZoneID,
        epoch: u32,
        transfer_id: u64,
    },
    /// S gave up a transfer before COMMIT (timeout, NACK, or the entity came back).
    Aborted {
        id: EntityID,
        to: ZoneID,
        transfer_id: u64,
        reason: AbortReason,
    },
    /// S relinquished the entity and sent COMMIT.
    Relinquished {
        id: EntityID,
        to: ZoneID,
        epoch: u32,
        transfer_id: u64,
    },
    /// T adopted the entity: `[+] entity N ARRIVED from zone S (epoch e)`.
    Arrived {
        id: EntityID,
        from: ZoneID,
        epoch: u32,
        transfer_id: u64,
    },
    /// S received DONE: `[-] entity N DEPARTED to zone T`. `ticks` since the crossing.
    /// `superseded`: no DONE came, but the entity came back at a later epoch, which proves
    /// the transfer completed.
    Departed {
        id: EntityID,
        to: ZoneID,
        epoch: u32,
        transfer_id: u64,
        ticks: u64,
        superseded: bool,
    },
}

/// Why a transfer was aborted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbortReason {
    Timeout,
    Nack,
    CameBack,
}

/// A durable record of the zone's ownership changes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LogRecord {
    /// The zone started (again) as `incarnation`.
    Incarnation { incarnation: u32, zone: ZoneID },
    /// The zone created the entity (epoch 0).
    Spawn { entity: EntityInit },
    /// The zone adopted the entity on COMMIT.
    Adopt {
        entity: EntityInit,
        from: ZoneID,
        transfer_id: u64,
    },
    /// The zone relinquished the entity; the COMMIT it sends (and resends) after this.
    Relinquish { commit: Commit },
    /// The target confirmed the transfer: the tombstone is gone for good.
    Done { id: EntityID, transfer_id: u64 },
    /// The entity was destroyed without a transfer.
    Remove { id: EntityID },
    /// A client session was bound to owned avatar `id` (a new session, not an update).
    SessionBind {
        id: EntityID,
        binding: SessionBinding,
    },
    /// Zone `zone` runs as `incarnation` or newer: its older runs are fenced off, after a
    /// restart too (simulator seed 1344, `--comebacks --messages`).
    PeerRun { zone: ZoneID, incarnation: u32 },
}

crate::counters! {
    /// Everything the protocol does, counted (cumulative).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Counters {
        pub offers_sent: u64,
        pub acks_sent: u64,
        pub nacks_sent: u64,
        pub commits_sent: u64,
        pub dones_sent: u64,
        pub offers_received: u64,
        pub acks_received: u64,
        pub nacks_received: u64,
        pub commits_received: u64,
        pub dones_received: u64,
        pub confirms_sent: u64,
        pub confirms_received: u64,
        pub arrivals: u64,
        /// Removals and session bindings refused because the tick's log was full.
        pub log_full: u64,
        /// Arrivals, departures and actions not handed to the game: too many were
        /// waiting (`game::GAME_NOTES_MAX`).
        pub game_notes_dropped: u64,
        /// Game events queued for clients, and refused because a client had the most
        /// unacknowledged (`game::events`).
        pub game_events_sent: u64,
        pub game_events_full: u64,
        /// Game events refused because the zone had not yet learnt from the client's next
        /// input which event it takes next (a zone restored from its log).
        pub game_events_unsynced: u64,
        /// Game events dropped unsent because the client had taken events numbered past
        /// them (the zone learnt the numbering from a replayed old packet: `game::events`).
        pub game_events_lost: u64,
        /// Game messages to entities (`game::messages`): sent by this zone's game; handed
        /// to it; sent on to another zone (the entity was not owned here when they came);
        /// lost because no zone they reached owned the entity or knew where it went, or
        /// their hops ran out; dropped because a queue or the outbox was full; sent to
        /// another zone again, unacknowledged; given up after their last resend.
        pub game_messages_sent: u64,
        pub game_messages_delivered: u64,
        pub game_messages_forwarded: u64,
        pub game_messages_undeliverable: u64,
        pub game_messages_dropped: u64,
        pub game_messages_resent: u64,
        pub game_messages_unacknowledged: u64,
        pub departures: u64,
        pub aborts: u64,
        pub retransmits: u64,
        /// Messages that repeated one already handled (answered again or ignored).
        pub duplicates_ignored: u64,
        /// Messages with an epoch not newer than the zone knows (fenced off).
        pub stale_epochs_ignored: u64,
        /// Datagrams from a superseded incarnation of their zone (fenced off).
        pub fenced: u64,
        /// Packets that failed to parse, or named the wrong zone.
        pub bad_packets: u64,
        /// Datagrams whose packet framing was broken.
        pub bad_datagrams: u64,
        pub ghost_batches_sent: u64,
        pub ghosts_received: u64,
        pub ghosts_expired: u64,
        /// WATCH datagrams sent: where this zone's clients stand, to the zones they see.
        pub watch_datagrams_sent: u64,
        /// Points received in WATCHes from peers.
        pub watch_points_received: u64,
        /// Points dropped past the per-peer cap.
        pub watch_points_dropped: u64,
        /// Ghost records sent because a peer's clients watch them (beyond the aura).
        pub watched_ghosts_sent: u64,
        /// Watched entities not ghosted because a peer's watched set was full.
        pub watched_dropped: u64,
        /// Empty GHOSTS batches: a peer had nothing to ghost this ghost tick while its
        /// new run settles (it knows its peers heard of it by them), or after this zone
        /// ghosted it something within `ghost_ttl_ticks` (it tells ghosts left out from
        /// a silent zone's by them).
        pub ghost_heartbeats_sent: u64,
        /// Runs that called their view whole without hearing from every peer: one stayed
        /// silent for `SETTLE_MAX` (`ghosts::settle`).
        pub settle_timeouts: u64,
        /// Table overflows: offers not started, tombstones/stages/memory/events refused.
        pub offers_table_full: u64,
        pub tombstones_table_full: u64,
        pub staged_table_full: u64,
        pub epoch_memory_full: u64,
        /// COMMITs not adopted because the table of adoptions awaiting CONFIRM was full.
        pub unconfirmed_full: u64,
        pub ghosts_table_full: u64,
        pub events_dropped: u64,
        /// COMMITs that could not be adopted because the zone was full (retried by S).
        pub commits_refused_full: u64,
        /// Session bindings or session moves dropped: the table was full.
        pub session_bindings_full: u64,
    }
}

/// The entity's state as carried in OFFER and COMMIT.
pub fn state_of(e: &EntityInit) -> EntityState {
    EntityState {
        position: [
            F32Le::new(e.position[0]),
            F32Le::new(e.position[1]),
            F32Le::new(e.position[2]),
        ],
        velocity: [F32Le::new(e.velocity[0]), F32Le::new(e.velocity[1])],
        speed_mps_max: F32Le::new(e.speed_mps_max),
        kind: U16Le::new(e.kind),
        flags: U16Le::new(e.flags),
        payload: e.payload,
    }
}

/// The entity a COMMIT describes, at the transfer's epoch.
pub fn entity_of(transfer: &Transfer, state: &EntityState) -> EntityInit {
    EntityInit {
        id: EntityID(transfer.entity_id.get()),
        epoch: transfer.epoch.get(),
        position: [
            state.position[0].get(),
            state.position[1].get(),
            state.position[2].get(),
        ],
        velocity: [state.velocity[0].get(), state.velocity[1].get()],
        speed_mps_max: state.speed_mps_max.get(),
        kind: state.kind.get(),
        flags: state.flags.get(),
        payload: state.payload,
    }
}

/// A transfer record.
pub fn transfer(
    id: EntityID,
    epoch: u32,
    source: ZoneID,
    target: ZoneID,
    transfer_id: u64,
) -> Transfer {
    Transfer {
        entity_id: U64Le::new(id.0),
        epoch: U32Le::new(epoch),
        source_zone: U32Le::new(source.0),
        target_zone: U32Le::new(target.0),
        transfer_id: U64Le::new(transfer_id),
    }
}

/// No session: an NPC.
pub const NO_SESSION: SessionBinding = SessionBinding {
    session_id: U64Le::new(0),
    client_ip: [0; 16],
    client_port: U16Le::new(0),
    session_secret: U64Le::new(0),
    client_key: [0; 32],
    input_sequence: U32Le::new(0),
    session_key: [0; 32],
    key_salt: [0; 16],
    packet_sequence: U64Le::new(0),
};

/// Sends at the base interval before backoff starts.
pub const RETRANSMITS_BEFORE_BACKOFF: u32 = 4;

/// Retransmit interval after `attempts` sends: the base interval for the first
/// [`RETRANSMITS_BEFORE_BACKOFF`] sends (a lost packet is usually a lone loss, and a
/// handoff needs two round trips), then doubling, capped at `retransmit_ticks_max`.
pub fn backoff(config: &HandoffConfig, attempts: u32) -> u64 {
    let doublings = attempts.saturating_sub(RETRANSMITS_BEFORE_BACKOFF).min(16);
    let interval = u64::from(config.retransmit_ticks) << doublings;
    interval.min(u64::from(config.retransmit_ticks_max)).max(1)
}

/// Interval before the target resends DONE for the `attempts`-th time: four base
/// intervals first (a CONFIRM needs a round trip, two ticks between zones of one node),
/// then doubling up to `done_retransmit_ticks_max`. Slower than COMMIT's: a lost DONE is
/// also answered by the source's next COMMIT; this resend only cleans up lost CONFIRMs.
pub fn done_backoff(config: &HandoffConfig, attempts: u32) -> u64 {
    let interval = (4 * u64::from(config.retransmit_ticks)) << attempts.min(16);
    interval
        .min(u64::from(config.done_retransmit_ticks_max))
        .max(1)
}
