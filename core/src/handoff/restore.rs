//! A zone rebuilt from its durable log after a crash.

use crate::entities::EntityID;
use crate::handoff::HandoffConfig;
use crate::handoff::{LogRecord, Tombstone};
use crate::limits::{Limits, LimitsError};
use crate::time::Instant;
use crate::world::{World, ZoneID};
use crate::zone::Zone;

impl Zone {
    /// Rebuilds a zone from its durable log after a crash: it owns what the log says it
    /// owns (at the logged state), keeps a tombstone for every relinquish (its COMMIT is
    /// sent again; a target that adopted answers DONE), and remembers every epoch.
    pub fn restore(
        world: &World,
        id: ZoneID,
        limits: Limits,
        config: HandoffConfig,
        now: Instant,
        incarnation: u32,
        log: &[LogRecord],
    ) -> Result<Zone, LimitsError> {
        let mut zone = Zone::with_config(world, id, limits, config, now, incarnation)?;
        for record in log {
            match record {
                LogRecord::Spawn { entity } | LogRecord::Adopt { entity, .. } => {
                    if let Some(slot) = zone.entities.slot_of(entity.id) {
                        zone.remove_slot(slot);
                    }
                    zone.tombstones.remove(&entity.id);
                    zone.entities
                        .insert(entity)
                        .expect("a restored log fits the limits it was written under");
                    zone.remember(entity.id, entity.epoch);
                    if entity.id.creator() == id {
                        zone.next_entity_counter =
                            zone.next_entity_counter.max(entity.id.counter() + 1);
                    }
                }
                LogRecord::Relinquish { commit } => {
                    let entity = EntityID(commit.transfer.entity_id.get());
                    if let Some(slot) = zone.entities.slot_of(entity) {
                        zone.remove_slot(slot);
                    }
                    zone.tombstones.insert(
                        entity,
                        Tombstone {
                            commit: *commit,
                            next_retransmit_tick: 0,
                            attempts: 0,
                            started_tick: 0,
                        },
                    );
                    zone.remember(entity, commit.transfer.epoch.get());
                }
                LogRecord::Done { id, transfer_id } => {
                    if zone
                        .tombstones
                        .get(id)
                        .is_some_and(|t| t.commit.transfer.transfer_id.get() == *transfer_id)
                    {
                        zone.tombstones.remove(id);
                    }
                }
            }
        }
        Ok(zone)
    }
}
