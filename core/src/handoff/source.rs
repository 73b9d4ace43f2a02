//! The source side of a handoff (zone S): OFFER for each new crossing, abort what came
//! back or timed out, relinquish on ACK (log, remove, tombstone, COMMIT — in that order),
//! back off on NACK, resend COMMIT until DONE, and retire the tombstone on DONE.

use meridian_layouts::handoff::{Ack, Commit, Confirm, Done, Nack, Offer};
use meridian_layouts::wire::{WIRE_MAX, encode_commit, encode_offer};

use crate::borders::Crossing;
use crate::entities::EntityID;
use crate::handoff::{
    AbortReason, Event, LogRecord, NO_SESSION, PendingOffer, Tombstone, backoff, state_of, transfer,
};
use crate::net::Peer;
use crate::world::ZoneID;
use crate::zone::{SessionMove, TRANSFER_COUNTER_BITS, Zone, push_event};

impl Zone {
    /// Every handoff under way from this zone, for a live view: `(target zone, x, y,
    /// relinquished)`. Offered entities (still owned, awaiting ACK) at their current
    /// position; relinquished ones (awaiting DONE) where they were handed off.
    pub fn handoffs(&self) -> impl Iterator<Item = (ZoneID, f32, f32, bool)> + '_ {
        let entities = &self.entities;
        let offered = self.offers.iter().filter_map(move |(id, o)| {
            let slot = entities.slot_of(*id)? as usize;
            let to = ZoneID(o.transfer.target_zone.get());
            Some((to, entities.xs()[slot], entities.ys()[slot], false))
        });
        let relinquished = self.tombstones.values().map(|t| {
            let p = &t.commit.state.position;
            let to = ZoneID(t.commit.transfer.target_zone.get());
            (to, p[0].get(), p[1].get(), true)
        });
        offered.chain(relinquished)
    }

    /// Starts an OFFER for every crossing that has none, and marks the ones that do.
    pub(crate) fn start_offers(&mut self) {
        let tick = self.tick;
        for index in 0..self.border_output.crossings().len() {
            let Crossing { slot, target } = self.border_output.crossings()[index];
            let id = self.entities.ids()[slot as usize];
            if let Some(p) = self.offers.get_mut(&id) {
                if p.transfer.target_zone.get() == target.0 {
                    p.seen_tick = tick;
                }
                continue;
            }
            if self.entities.holds()[slot as usize] > tick {
                continue;
            }
            if self.offers.len() >= self.limits.offer_count_max as usize {
                self.counters.offers_table_full += 1;
                continue;
            }
            let epoch = self.entities.epochs()[slot as usize] + 1;
            let transfer_id =
                (u64::from(self.incarnation) << TRANSFER_COUNTER_BITS) | self.next_transfer_counter;
            self.next_transfer_counter += 1;
            let t = transfer(id, epoch, self.id, target, transfer_id);
            let state = state_of(&self.entities.get(slot));
            self.offers.insert(
                id,
                PendingOffer {
                    transfer: t,
                    started_tick: tick,
                    next_retransmit_tick: tick + backoff(&self.config, 1),
                    attempts: 1,
                    seen_tick: tick,
                },
            );
            let mut wire = [0u8; WIRE_MAX];
            let n = encode_offer(&Offer::new(t, tick, state), &mut wire);
            self.send(target, &wire[..n]);
            self.counters.offers_sent += 1;
            self.emit(Event::Offered {
                id,
                to: target,
                epoch,
                transfer_id,
            });
        }
    }

    /// Aborts OFFERs whose entity came back or that timed out; retransmits the rest.
    pub(crate) fn advance_offers(&mut self) {
        let tick = self.tick;
        let timeout = u64::from(self.config.offer_timeout_ticks);
        let config = self.config;
        let Zone {
            offers,
            entities,
            outbox,
            counters,
            events,
            ..
        } = self;
        offers.retain(|&id, p| {
            let reason = if p.seen_tick != tick {
                Some(AbortReason::CameBack)
            } else if tick >= p.started_tick + timeout {
                Some(AbortReason::Timeout)
            } else {
                None
            };
            let target = ZoneID(p.transfer.target_zone.get());
            if let Some(reason) = reason {
                counters.aborts += 1;
                push_event(
                    events,
                    counters,
                    Event::Aborted {
                        id,
                        to: target,
                        transfer_id: p.transfer.transfer_id.get(),
                        reason,
                    },
                );
                return false;
            }
            if tick >= p.next_retransmit_tick {
                let slot = entities.slot_of(id).expect("an offered entity is owned");
                let offer = Offer::new(p.transfer, tick, state_of(&entities.get(slot)));
                let mut wire = [0u8; WIRE_MAX];
                let n = encode_offer(&offer, &mut wire);
                outbox.push(Peer::Zone(target), &wire[..n]);
                p.attempts += 1;
                p.next_retransmit_tick = tick + backoff(&config, p.attempts);
                counters.retransmits += 1;
                counters.offers_sent += 1;
            }
            true
        });
    }

    pub(crate) fn handle_ack(&mut self, from: Peer, ack: &Ack) -> bool {
        let t = ack.transfer;
        if !self.addressed(from, &t.target_zone, &t.source_zone) {
            return false;
        }
        self.counters.acks_received += 1;
        let id = EntityID(t.entity_id.get());
        match self.offers.get(&id) {
            Some(p) if p.transfer.transfer_id == t.transfer_id => self.relinquish(id),
            // Late or duplicated: the transfer was aborted or already committed.
            _ => self.counters.duplicates_ignored += 1,
        }
        true
    }

    /// S side, on ACK: log, stop owning, keep a tombstone, send COMMIT — in that order.
    pub(crate) fn relinquish(&mut self, id: EntityID) {
        let offer = self.offers.remove(&id).expect("caller checked the offer");
        let slot = self
            .entities
            .slot_of(id)
            .expect("an offered entity is owned until COMMIT");
        let target = ZoneID(offer.transfer.target_zone.get());
        let epoch = offer.transfer.epoch.get();
        let full = if self.tombstones.len() >= self.limits.tombstone_count_max as usize {
            self.counters.tombstones_table_full += 1;
            true
        } else if !self.epochs.contains_key(&id)
            && self.epochs.len() >= self.limits.epoch_memory_count_max as usize
        {
            self.counters.epoch_memory_full += 1;
            true
        } else {
            self.log.len() >= self.log.capacity()
        };
        if full {
            // Cannot relinquish safely: abort (we still own it) and let T's stage expire.
            self.abort(id, &offer, AbortReason::Nack);
            return;
        }
        let entity = self.remove_slot(slot);
        // It stays in view here as a ghost (at its old epoch) until the new owner's GHOSTS
        // refresh it: without this copy this zone's clients lose the entity for the tick
        // or two before the first of them arrives — a pop-in at every handoff.
        self.ghosts.upsert(self.tick, target, &entity);
        let binding = self.sessions.remove(&id).unwrap_or(NO_SESSION);
        if binding.session_id.get() != 0 {
            self.push_session_move(SessionMove::Left {
                id,
                to: target,
                binding,
            });
        }
        let mut state = state_of(&entity);
        if self.bugs.commit_without_payload {
            // BROKEN ON PURPOSE (`commit_without_payload`): the game state stays behind.
            state.payload = [0; meridian_layouts::handoff::STATE_SIZE];
        }
        let commit = Commit::new(offer.transfer, self.tick, state, binding);
        self.log.push(LogRecord::Relinquish { commit });
        self.remember(id, epoch);
        self.tombstones.insert(
            id,
            Tombstone {
                commit,
                next_retransmit_tick: self.tick + backoff(&self.config, 1),
                attempts: 1,
                started_tick: offer.started_tick,
            },
        );
        // The session's unacknowledged events go with every send of the COMMIT; they stay
        // in `game_events` until the tombstone goes (`game::events`).
        let mut wire = [0u8; WIRE_MAX];
        let n = encode_commit(&commit, &self.departing_events(id), &mut wire);
        self.send(target, &wire[..n]);
        self.counters.commits_sent += 1;
        self.emit(Event::Relinquished {
            id,
            to: target,
            epoch,
            transfer_id: offer.transfer.transfer_id.get(),
        });
    }

    pub(crate) fn handle_nack(&mut self, from: Peer, nack: &Nack) -> bool {
        let t = nack.transfer;
        if !self.addressed(from, &t.target_zone, &t.source_zone) {
            return false;
        }
        self.counters.nacks_received += 1;
        let id = EntityID(t.entity_id.get());
        match self.offers.get(&id) {
            Some(p) if p.transfer.transfer_id == t.transfer_id => {
                let offer = self.offers.remove(&id).expect("just looked up");
                if let Some(slot) = self.entities.slot_of(id) {
                    self.entities
                        .hold_until(slot, self.tick + u64::from(self.config.nack_backoff_ticks));
                }
                self.abort(id, &offer, AbortReason::Nack);
            }
            _ => self.counters.duplicates_ignored += 1,
        }
        true
    }

    pub(crate) fn abort(&mut self, id: EntityID, offer: &PendingOffer, reason: AbortReason) {
        self.counters.aborts += 1;
        self.emit(Event::Aborted {
            id,
            to: ZoneID(offer.transfer.target_zone.get()),
            transfer_id: offer.transfer.transfer_id.get(),
            reason,
        });
    }

    /// Sends COMMIT again for every tombstone whose DONE is overdue (forever: there is no
    /// abort after COMMIT), and keeps each one's copy in view meanwhile.
    pub(crate) fn retransmit_commits(&mut self) {
        let tick = self.tick;
        let config = self.config;
        let Zone {
            tombstones,
            outbox,
            counters,
            game_events,
            ghosts,
            ..
        } = self;
        let none = bytemuck::Zeroable::zeroed();
        for (id, tomb) in tombstones.iter_mut() {
            // The copy kept in view since the relinquish lasts until the COMMIT is
            // answered: a target that has not adopted the entity cannot ghost it back (a
            // COMMIT held by the standby's gate can take longer than `ghost_ttl_ticks`).
            let epoch = tomb.commit.transfer.epoch.get();
            ghosts.hold(*id, epoch, tick, u64::from(config.ghost_ttl_ticks));
            if tick >= tomb.next_retransmit_tick {
                let target = ZoneID(tomb.commit.transfer.target_zone.get());
                let mut wire = [0u8; WIRE_MAX];
                let events = game_events.get(id).unwrap_or(&none);
                let n = encode_commit(&tomb.commit, events, &mut wire);
                outbox.push(Peer::Zone(target), &wire[..n]);
                tomb.attempts += 1;
                tomb.next_retransmit_tick = tick + backoff(&config, tomb.attempts);
                counters.retransmits += 1;
                counters.commits_sent += 1;
            }
        }
    }

    pub(crate) fn handle_done(&mut self, from: Peer, done: &Done) -> bool {
        let t = done.transfer;
        if !self.addressed(from, &t.target_zone, &t.source_zone) {
            return false;
        }
        self.counters.dones_received += 1;
        let id = EntityID(t.entity_id.get());
        match self.tombstones.get(&id) {
            Some(tomb) if tomb.commit.transfer.transfer_id == t.transfer_id => {
                if self.log.len() >= self.log.capacity() {
                    // Cannot record it durably: keep the tombstone; the next COMMIT
                    // retransmit draws another DONE.
                    return true;
                }
                if !self.bugs.forget_done {
                    self.log.push(LogRecord::Done {
                        id,
                        transfer_id: t.transfer_id.get(),
                    });
                }
                let tomb = self.tombstones.remove(&id).expect("just looked up");
                self.game_events.remove(&id);
                self.counters.departures += 1;
                self.emit(Event::Departed {
                    id,
                    to: ZoneID(t.target_zone.get()),
                    epoch: t.epoch.get(),
                    transfer_id: t.transfer_id.get(),
                    ticks: self.tick.saturating_sub(tomb.started_tick),
                    superseded: false,
                });
            }
            // A repeat, or a transfer whose DONE is already logged (or that a later
            // adoption of the entity superseded): its COMMIT is never sent again.
            _ => self.counters.duplicates_ignored += 1,
        }
        // Leaves only once this tick's Done record is durable (the driver's contract), so
        // the target forgets the transfer only when no restart can resend its COMMIT.
        self.send(
            ZoneID(t.target_zone.get()),
            bytemuck::bytes_of(&Confirm::new(t)),
        );
        self.counters.confirms_sent += 1;
        true
    }
}
