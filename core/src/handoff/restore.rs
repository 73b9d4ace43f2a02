//! A zone rebuilt from its durable state after a crash: a checkpoint (if any), then the log
//! records written after it.
//!
//! The zone owns what they say it owns (at the logged state), keeps a tombstone for every
//! relinquish not yet confirmed (its COMMIT is sent again; a target that adopted answers
//! DONE), awaits CONFIRM for every adoption it cannot prove confirmed (resending DONE),
//! remembers every epoch, rebinds every client session (the session layer adopts
//! them as arrivals, and those of avatars in flight as sessions that left), fences off
//! the older runs of its peers it had heard were superseded, and mints entity ids after
//! the highest it ever minted.

use std::borrow::Cow;

use meridian_layouts::handoff::Transfer;

use crate::entities::{Columns, EntityID, EntityInit, InsertError};
use crate::handoff::{HandoffConfig, LogRecord, Tombstone, transfer};
use crate::limits::{Limits, LimitsError};
use crate::persist::CheckpointView;
use crate::time::Instant;
use crate::world::{World, ZoneID};
use crate::zone::{SESSION_BINDINGS_MAX, SessionMove, Zone};

/// Why durable state could not be restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("limits: {0}")]
    Limits(#[from] LimitsError),
    #[error("entity {id}: {error} (were the world's limits lowered since it was written?)")]
    Insert { id: EntityID, error: InsertError },
    #[error("the state belongs to zone {found}, not zone {expected}")]
    WrongZone { found: ZoneID, expected: ZoneID },
}

impl Zone {
    /// Rebuilds a zone from its durable log alone (the simulator's restart).
    pub fn restore(
        world: &World,
        id: ZoneID,
        limits: Limits,
        config: HandoffConfig,
        now: Instant,
        incarnation: u32,
        log: &[LogRecord],
    ) -> Result<Zone, RestoreError> {
        Zone::restore_from(world, id, limits, config, now, incarnation, None, log)
    }

    /// Rebuilds a zone from a checkpoint (if any) and the log records written after it.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_from(
        world: &World,
        id: ZoneID,
        limits: Limits,
        config: HandoffConfig,
        now: Instant,
        incarnation: u32,
        checkpoint: Option<&CheckpointView<'_>>,
        log: &[LogRecord],
    ) -> Result<Zone, RestoreError> {
        let mut zone = Zone::with_config(world, id, limits, config, now, incarnation)?;
        if let Some(c) = checkpoint {
            zone.load_checkpoint(c)?;
        }
        for record in log {
            zone.replay(record)?;
        }
        let arrived = zone
            .sessions
            .iter()
            .map(|(&id, &binding)| SessionMove::Arrived { id, binding });
        // An avatar in flight took its session with it: the client is told where it went.
        let in_flight = zone.tombstones.values().filter_map(|t| {
            let c = &t.commit;
            (c.session.session_id.get() != 0).then(|| SessionMove::InFlight {
                id: EntityID(c.transfer.entity_id.get()),
                to: ZoneID(c.transfer.target_zone.get()),
                binding: c.session,
            })
        });
        // Every one of them, past the per-tick bound of the moves' queue: one left out is
        // a client nobody serves.
        let moves: Vec<SessionMove> = arrived.chain(in_flight).collect();
        zone.session_moves.extend(moves);
        Ok(zone)
    }

    fn load_checkpoint(&mut self, c: &CheckpointView<'_>) -> Result<(), RestoreError> {
        if c.identity.zone != self.id {
            return Err(RestoreError::WrongZone {
                found: c.identity.zone,
                expected: self.id,
            });
        }
        // The columns go into the store whole (one hash insert per entity): this is most of
        // a restart's time.
        let columns = Columns {
            ids: &native(c.ids, |v| v.get()),
            epochs: &native(c.epochs, |v| v.get()),
            x: &native(c.x, |v| v.get()),
            y: &native(c.y, |v| v.get()),
            z: &native(c.z, |v| v.get()),
            vx: &native(c.vx, |v| v.get()),
            vy: &native(c.vy, |v| v.get()),
            speeds: &native(c.speeds, |v| v.get()),
            kinds: &native(c.kinds, |v| v.get()),
            flags: &native(c.flags, |v| v.get()),
            states: c.payloads,
            state_len: c.state_len(),
        };
        self.entities
            .extend_columns(&columns)
            .map_err(|(id, error)| RestoreError::Insert { id, error })?;
        for e in c.epoch_memory {
            self.remember(EntityID(e.id.get()), e.epoch.get());
        }
        for commit in c.tombstones {
            self.restore_tombstone(commit);
        }
        for t in c.unconfirmed {
            self.restore_unconfirmed(*t);
        }
        for r in c.peer_runs {
            self.restore_peer_run(ZoneID(r.zone.get()), r.incarnation.get());
        }
        for s in c.sessions {
            let avatar = EntityID(s.id.get());
            if self.entities.slot_of(avatar).is_some() && self.sessions.len() < SESSION_BINDINGS_MAX
            {
                self.sessions.insert(avatar, s.binding);
            }
        }
        self.next_entity_counter = self
            .next_entity_counter
            .max(c.meta.next_entity_counter.get());
        Ok(())
    }

    fn replay(&mut self, record: &LogRecord) -> Result<(), RestoreError> {
        match record {
            LogRecord::Incarnation { .. } => {}
            LogRecord::Spawn { entity } => self.adopt_restored(entity)?,
            LogRecord::Adopt {
                entity,
                from,
                transfer_id,
            } => {
                self.adopt_restored(entity)?;
                // Whether or not its CONFIRM came before the crash (CONFIRMs are not
                // logged): resending DONE draws a CONFIRM again.
                let t = transfer(entity.id, entity.epoch, *from, self.id, *transfer_id);
                self.restore_unconfirmed(t);
            }
            LogRecord::Relinquish { commit } => {
                let entity = EntityID(commit.transfer.entity_id.get());
                if let Some(slot) = self.entities.slot_of(entity) {
                    self.remove_slot(slot);
                }
                self.sessions.remove(&entity);
                self.restore_tombstone(commit);
            }
            LogRecord::Done { id, transfer_id } => {
                if self
                    .tombstones
                    .get(id)
                    .is_some_and(|t| t.commit.transfer.transfer_id.get() == *transfer_id)
                {
                    self.tombstones.remove(id);
                }
            }
            LogRecord::Remove { id } => {
                if let Some(slot) = self.entities.slot_of(*id) {
                    self.remove_slot(slot);
                }
                self.sessions.remove(id);
            }
            LogRecord::SessionBind { id, binding } => {
                if self.entities.slot_of(*id).is_some()
                    && (self.sessions.len() < SESSION_BINDINGS_MAX
                        || self.sessions.contains_key(id))
                {
                    self.sessions.insert(*id, *binding);
                }
            }
            LogRecord::PeerRun { zone, incarnation } => {
                self.restore_peer_run(*zone, *incarnation);
            }
        }
        Ok(())
    }

    /// Owns `entity` as restored, replacing an older copy and any tombstone for it.
    fn adopt_restored(&mut self, entity: &EntityInit) -> Result<(), RestoreError> {
        if let Some(slot) = self.entities.slot_of(entity.id) {
            self.remove_slot(slot);
        }
        self.tombstones.remove(&entity.id);
        self.entities
            .insert(entity)
            .map_err(|error| RestoreError::Insert {
                id: entity.id,
                error,
            })?;
        if entity.id.creator() == self.id {
            self.next_entity_counter = self.next_entity_counter.max(entity.id.counter() + 1);
        }
        Ok(())
    }

    fn restore_unconfirmed(&mut self, t: Transfer) {
        if self.unconfirmed.len() < self.limits.unconfirmed_count_max as usize {
            self.await_confirm(t);
        } else {
            self.counters.unconfirmed_full += 1;
        }
    }

    fn restore_tombstone(&mut self, commit: &meridian_layouts::handoff::Commit) {
        let entity = EntityID(commit.transfer.entity_id.get());
        self.tombstones.insert(
            entity,
            Tombstone {
                commit: *commit,
                next_retransmit_tick: 0,
                attempts: 0,
                started_tick: 0,
            },
        );
        self.remember(entity, commit.transfer.epoch.get());
    }
}

/// A little-endian wire column as native values: the same memory when it is aligned (a
/// mapped checkpoint's sections are), else a converted copy.
fn native<W: bytemuck::Pod, T: bytemuck::Pod>(wire: &[W], get: impl Fn(&W) -> T) -> Cow<'_, [T]> {
    match bytemuck::try_cast_slice(wire) {
        Ok(values) => Cow::Borrowed(values),
        Err(_) => Cow::Owned(wire.iter().map(get).collect()),
    }
}
