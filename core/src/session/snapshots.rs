//! Each tick's snapshot for every session: the DELTA's fixed part, the own avatar's game
//! fields, the unacknowledged game events, then the entries the replicator chooses.

use meridian_layouts::client::{
    CLIENT_DATAGRAM_MAX, DELTA_ENTRIES_OFFSET, DELTA_PARTIAL, DeltaHeader, SEALED_INNER_MAX,
    SEALED_OVERHEAD, write_delta_header,
};
use meridian_layouts::{U16Le, U32Le, U64Le};
use meridian_protocol::game::{
    AVATAR_GAME_BYTES_MAX, EVENTS_BYTES_MAX, put_avatar_game, put_events,
};

use super::Sessions;
use crate::replicate::{record_of, with_game};
use crate::zone::Zone;

impl Sessions {
    /// Builds this tick's snapshot for every session whose avatar the zone owns. Call it
    /// after `zone.tick`. When the tick's output does not fit the outbox, the sessions that
    /// go without are counted (`snapshots_dropped`) and rotate from tick to tick: the
    /// sessions are visited from a different one each tick.
    pub fn replicate(&mut self, zone: &Zone) {
        let tick = zone.tick_count() as u32;
        if tick == 0 {
            return;
        }
        let entities = zone.entities();
        let layout = zone.state_layout();
        let mut datagram = [0u8; CLIENT_DATAGRAM_MAX];
        let n = self.slots.len();
        for k in 0..n {
            let slot = (tick as usize + k) % n;
            // The next session's replication state is read ahead (`Replicator::warm`).
            if let Some(next) = &self.slots[(slot + 1) % n] {
                self.replicator.warm(&next.view);
            }
            let Some(session) = self.slots[slot].as_mut().filter(|s| s.moved.is_none()) else {
                continue;
            };
            if !session.proven {
                self.counters.snapshots_withheld += 1;
                continue;
            }
            if self.outbox.len() >= self.outbox_max {
                self.counters.snapshots_dropped += 1;
                continue;
            }
            let Some(avatar_slot) = session.avatar_slot(entities) else {
                continue;
            };
            session.view.acknowledge(session.ack_tick);
            let at = (
                entities.xs()[avatar_slot as usize],
                entities.ys()[avatar_slot as usize],
            );
            // The own avatar's game fields, then the entries.
            let avatar = with_game(
                record_of(entities, avatar_slot),
                entities,
                avatar_slot,
                &layout,
            );
            // Then the game events the client has not acknowledged (`game::events`).
            let events_at = DELTA_ENTRIES_OFFSET
                + put_avatar_game(&mut datagram[DELTA_ENTRIES_OFFSET..], &avatar.game);
            let entries_at = events_at
                + put_events(&mut datagram[events_at..], zone.game_events(session.avatar));
            // What the game's blocks may grow to by a later snapshot.
            let blocks = entries_at - DELTA_ENTRIES_OFFSET;
            let blocks_max = if zone.has_game() {
                AVATAR_GAME_BYTES_MAX + EVENTS_BYTES_MAX
            } else {
                0
            };
            self.replicator
                .set_headroom(blocks_max.saturating_sub(blocks));
            let (baseline, encoded) = self.replicator.snapshot(
                &mut session.view,
                zone,
                Some(session.avatar.0),
                at,
                tick,
                &mut datagram[entries_at..SEALED_INNER_MAX],
            );
            let head = DeltaHeader {
                session_secret: U64Le::new(session.secret),
                tick: U32Le::new(tick),
                baseline_tick: U32Le::new(baseline.tick),
                baseline_zone: U32Le::new(baseline.zone),
                input_sequence: U32Le::new(session.applied_sequence),
                zone: U32Le::new(zone.id().0),
                avatar: avatar.to_wire(),
                entry_count: U16Le::new(encoded.entries),
                input_waiting: session.playout.report,
                flags: if self.replicator.partial() {
                    DELTA_PARTIAL
                } else {
                    0
                },
            };
            let total = entries_at + encoded.bytes;
            write_delta_header(&mut datagram, &head, total);
            self.counters.snapshots += 1;
            self.counters.snapshot_bytes += (total + SEALED_OVERHEAD) as u64;
            self.histograms
                .snapshot_bytes
                .record((total + SEALED_OVERHEAD) as f64);
            self.send_sealed(slot as u32, &datagram[..total]);
        }
    }
}
