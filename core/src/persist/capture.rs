//! A checkpoint's capture of a zone: ownership exact at one tick boundary, the entities'
//! state columns copied over the next ticks (docs/formats.md).

use meridian_layouts::{U32Le, U64Le};

use super::Capture;
use crate::entities::EntityID;

impl crate::zone::Zone {
    /// Copies the zone's durable state into `out` (its buffers reused), all at once, as of
    /// the last tick: [`Zone::capture_begin`](crate::zone::Zone::capture_begin) and every
    /// [`Zone::capture_continue`](crate::zone::Zone::capture_continue) step in one call.
    pub fn capture(&self, out: &mut Capture) {
        self.capture_begin(out);
        while !self.capture_continue(out, usize::MAX) {}
    }

    /// Starts a capture at this tick boundary: what the log's replay builds on is exact as of
    /// now — which entities are owned, at which epochs, the epoch memory, the tombstones, the
    /// adoptions awaiting CONFIRM and the session bindings. The entities' state columns
    /// (position, velocity, kind, flags, payload) follow in
    /// [`Zone::capture_continue`](crate::zone::Zone::capture_continue) steps on the next
    /// ticks, so no tick pays for the whole copy.
    ///
    /// Why this is a sound checkpoint: the log segment that follows it starts at this tick,
    /// and every ownership change after it (spawn, adoption, relinquish, removal) is in the
    /// log, with the entity's full state where it matters. The state columns are not
    /// logged at all; a restore rolls each entity back to its state at the step that copied
    /// it, a few ticks after this one — within the checkpoint interval, as promised.
    pub fn capture_begin(&self, out: &mut Capture) {
        use meridian_layouts::persist::{EpochEntry, SessionRecord};
        let e = &self.entities;
        out.tick = self.tick;
        out.next_entity_counter = self.next_entity_counter;
        out.incarnation = self.incarnation;
        out.ids.clear();
        out.ids.extend(e.ids().iter().map(|id| id.0));
        out.epochs.clear();
        out.epochs.extend_from_slice(e.epochs());
        for column in float_columns(out) {
            column.clear();
        }
        out.kinds.clear();
        out.flags.clear();
        out.payloads.clear();
        out.state_len = e.state_len();
        out.epoch_memory.clear();
        out.epoch_memory
            .extend(self.epochs.iter().map(|(id, &(epoch, at))| EpochEntry {
                id: U64Le::new(id.0),
                epoch: U32Le::new(epoch),
                age_ticks: U32Le::new(self.tick.saturating_sub(at).min(u64::from(u32::MAX)) as u32),
            }));
        out.tombstones.clear();
        out.tombstones
            .extend(self.tombstones.values().map(|t| t.commit));
        out.unconfirmed.clear();
        out.unconfirmed
            .extend(self.unconfirmed.values().map(|u| u.transfer));
        out.sessions.clear();
        out.sessions
            .extend(self.sessions.iter().map(|(id, binding)| SessionRecord {
                id: U64Le::new(id.0),
                binding: *binding,
            }));
        out.peer_runs.clear();
        if !self.bugs.forget_peer_runs {
            out.peer_runs.extend(
                (self.peer_incarnations.iter())
                    .filter(|&(_, &run)| run > 0)
                    .map(|(&zone, &run)| super::peer_run(zone, run)),
            );
            // In zone order: the same state writes the same bytes.
            out.peer_runs.sort_unstable_by_key(|r| r.zone.get());
        }
    }

    /// Copies the current state of up to `max` more of the captured entities; `true` once
    /// every one has its state. An entity still in the slot it had at
    /// [`Zone::capture_begin`](crate::zone::Zone::capture_begin) is copied with its
    /// neighbours in bulk; one that moved slot is found by id; one that has left since
    /// gets an inert placeholder (zero state): the log's replay removes it anyway.
    pub fn capture_continue(&self, out: &mut Capture, max: usize) -> bool {
        let e = &self.entities;
        let (from, n) = (out.x.len(), out.ids.len());
        let to = n.min(from.saturating_add(max));
        let live = e.len();
        let unmoved = to <= live
            && e.ids()[from..to]
                .iter()
                .zip(&out.ids[from..to])
                .all(|(now, then)| now.0 == *then);
        if unmoved {
            for (column, source) in [
                (&mut out.x, e.xs()),
                (&mut out.y, e.ys()),
                (&mut out.z, e.zs_column()),
                (&mut out.vx, e.vxs()),
                (&mut out.vy, e.vys()),
                (&mut out.speeds, e.speeds()),
            ] {
                column.extend_from_slice(&source[from..to]);
            }
            out.kinds.extend_from_slice(&e.kinds()[from..to]);
            out.flags.extend_from_slice(&e.flags_column()[from..to]);
            let len = out.state_len;
            out.payloads
                .extend_from_slice(&e.states()[from * len..to * len]);
        } else {
            for k in from..to {
                let slot = if k < live && e.ids()[k].0 == out.ids[k] {
                    Some(k)
                } else {
                    e.slot_of(EntityID(out.ids[k])).map(|s| s as usize)
                };
                match slot {
                    Some(s) => {
                        out.x.push(e.xs()[s]);
                        out.y.push(e.ys()[s]);
                        out.z.push(e.zs_column()[s]);
                        out.vx.push(e.vxs()[s]);
                        out.vy.push(e.vys()[s]);
                        out.speeds.push(e.speeds()[s]);
                        out.kinds.push(e.kinds()[s]);
                        out.flags.push(e.flags_column()[s]);
                        out.payloads.extend_from_slice(e.state(s as u32));
                    }
                    None => {
                        for column in float_columns(out) {
                            column.push(0.0);
                        }
                        out.kinds.push(0);
                        out.flags.push(0);
                        out.payloads.resize(out.payloads.len() + out.state_len, 0);
                    }
                }
            }
        }
        to == n
    }
}

/// The capture's `f32` state columns.
fn float_columns(out: &mut Capture) -> [&mut Vec<f32>; 6] {
    [
        &mut out.x,
        &mut out.y,
        &mut out.z,
        &mut out.vx,
        &mut out.vy,
        &mut out.speeds,
    ]
}
