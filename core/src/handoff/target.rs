//! The target side of a handoff (zone T): stage on OFFER and answer ACK or NACK, adopt on
//! COMMIT and answer DONE (again for every duplicate), unstage what no COMMIT followed.

use meridian_layouts::handoff::{Ack, Commit, Confirm, Done, Nack, NackReason, Offer, Transfer};

use crate::entities::EntityID;
use crate::handoff::{Event, LogRecord, Staged, Unconfirmed, done_backoff, entity_of};
use crate::net::Peer;
use crate::world::ZoneID;
use crate::zone::{SESSION_BINDINGS_MAX, SessionMove, Zone};

impl Zone {
    pub(crate) fn handle_offer(&mut self, from: Peer, offer: &Offer) -> bool {
        let t = offer.transfer;
        if !self.addressed(from, &t.source_zone, &t.target_zone) {
            return false;
        }
        self.counters.offers_received += 1;
        let id = EntityID(t.entity_id.get());
        let epoch = t.epoch.get();
        let source = ZoneID(t.source_zone.get());
        if !self.borders.neighbours().contains(&source) {
            self.send_nack(&t, NackReason::Unknown);
            return true;
        }
        if self.shutting_down {
            self.send_nack(&t, NackReason::ShuttingDown);
            return true;
        }
        if self.bugs.adopt_on_offer {
            // BROKEN ON PURPOSE: the target owns the entity while the source still does.
            if self.entities.slot_of(id).is_none() {
                let _ = self.entities.insert(&entity_of(&t, &offer.state));
            }
            self.send_ack(&t);
            return true;
        }
        if !self.bugs.ignore_epochs && self.known_epoch(id).is_some_and(|known| known >= epoch) {
            self.counters.stale_epochs_ignored += 1;
            return true;
        }
        if let Some(staged) = self.staged.get(&id) {
            if staged.transfer.transfer_id == t.transfer_id
                && staged.transfer.source_zone == t.source_zone
            {
                // A retransmitted OFFER: our ACK was lost or is late. Answer again.
                self.counters.duplicates_ignored += 1;
                self.send_ack(&t);
                return true;
            }
            if staged.transfer.epoch.get() > epoch {
                self.counters.stale_epochs_ignored += 1;
                return true;
            }
        }
        let staged_here = usize::from(self.staged.contains_key(&id));
        let room = self.entities.len() + self.staged.len() - staged_here < self.entities.capacity();
        if !room {
            self.send_nack(&t, NackReason::Full);
            return true;
        }
        if staged_here == 0 && self.staged.len() >= self.limits.staged_count_max as usize {
            self.counters.staged_table_full += 1;
            self.send_nack(&t, NackReason::Full);
            return true;
        }
        self.staged.insert(
            id,
            Staged {
                transfer: t,
                staged_tick: self.tick,
            },
        );
        self.send_ack(&t);
        true
    }

    pub(crate) fn send_ack(&mut self, t: &Transfer) {
        self.send(
            ZoneID(t.source_zone.get()),
            bytemuck::bytes_of(&Ack::new(*t)),
        );
        self.counters.acks_sent += 1;
    }

    pub(crate) fn send_done(&mut self, t: &Transfer) {
        self.send(
            ZoneID(t.source_zone.get()),
            bytemuck::bytes_of(&Done::new(*t)),
        );
        self.counters.dones_sent += 1;
    }

    pub(crate) fn send_nack(&mut self, t: &Transfer, reason: NackReason) {
        let source = ZoneID(t.source_zone.get());
        self.send(source, bytemuck::bytes_of(&Nack::new(*t, reason)));
        self.counters.nacks_sent += 1;
    }

    pub(crate) fn handle_commit(
        &mut self,
        from: Peer,
        commit: &Commit,
        events: &meridian_layouts::handoff::EventBacklog,
    ) -> bool {
        let t = commit.transfer;
        if !self.addressed(from, &t.source_zone, &t.target_zone) {
            return false;
        }
        self.counters.commits_received += 1;
        let id = EntityID(t.entity_id.get());
        let epoch = t.epoch.get();
        let source = ZoneID(t.source_zone.get());
        let known = self.known_epoch(id);
        if self
            .unconfirmed
            .contains_key(&(source, t.transfer_id.get()))
        {
            // Adopted here and not yet CONFIRMed: the source has not seen our DONE (or
            // restarted before logging it). Its COMMIT must never be adopted twice, however
            // long ago the epoch memory forgot the entity.
            self.counters.duplicates_ignored += 1;
            self.send_done(&t);
            return true;
        }
        if self.bugs.ignore_epochs {
            // BROKEN ON PURPOSE: only "already here" is checked, not the epoch.
            if self.entities.slot_of(id).is_some() {
                self.counters.duplicates_ignored += 1;
                self.send_done(&t);
                return true;
            }
        } else if let Some(known) = known
            && known >= epoch
        {
            // Epochs form a chain: knowing this epoch or a later one means we adopted it.
            if known == epoch {
                self.counters.duplicates_ignored += 1;
            } else {
                self.counters.stale_epochs_ignored += 1;
            }
            self.send_done(&t);
            return true;
        }
        if !self.room_to_adopt(id) {
            // No DONE: the source keeps resending COMMIT until there is room.
            return true;
        }
        let entity = entity_of(&t, &commit.state);
        self.log.push(LogRecord::Adopt {
            entity,
            from: source,
            transfer_id: t.transfer_id.get(),
        });
        self.staged.remove(&id);
        self.ghosts.remove(id);
        if let Some(slot) = self.entities.slot_of(id) {
            // Only reachable with `ignore_epochs`: a stale copy replaces a newer one.
            self.remove_slot(slot);
        }
        let slot = self.entities.insert(&entity).expect("room was checked");
        self.entities
            .hold_until(slot, self.tick + u64::from(self.config.cooldown_ticks));
        self.remember(id, epoch);
        self.await_confirm(t);
        self.retire_superseded_tombstone(id);
        if commit.session.session_id.get() != 0 {
            let binding = commit.session;
            if self.sessions.len() < SESSION_BINDINGS_MAX {
                self.sessions.insert(id, binding);
                // Durable with the adoption (the Adopt record carries the entity only): a
                // restore before the next checkpoint brings the avatar back with its
                // client, not without it.
                self.log.push(LogRecord::SessionBind { id, binding });
            } else {
                self.counters.session_bindings_full += 1;
            }
            self.adopt_game_events(id, events);
            self.push_session_move(SessionMove::Arrived { id, binding });
        }
        self.send_done(&t);
        self.counters.arrivals += 1;
        self.emit(Event::Arrived {
            id,
            from: source,
            epoch,
            transfer_id: t.transfer_id.get(),
        });
        true
    }

    /// Whether COMMIT for `id` can be adopted now: a free slot, room in the epoch memory,
    /// in the table of adoptions awaiting CONFIRM and in the log. Each shortage is counted.
    fn room_to_adopt(&mut self, id: EntityID) -> bool {
        if self.entities.len() >= self.entities.capacity() {
            self.counters.commits_refused_full += 1;
            return false;
        }
        if self.unconfirmed.len() >= self.limits.unconfirmed_count_max as usize {
            self.counters.unconfirmed_full += 1;
            return false;
        }
        if !self.epochs.contains_key(&id)
            && self.epochs.len() >= self.limits.epoch_memory_count_max as usize
        {
            self.counters.epoch_memory_full += 1;
            return false;
        }
        // Two records: the adoption and, for an avatar, its session.
        self.log.len() + 2 <= self.log.capacity()
    }

    /// `id` came back at a later epoch while we still held a tombstone for an earlier
    /// transfer of it (its DONE was lost): that transfer completed, so it departs now.
    fn retire_superseded_tombstone(&mut self, id: EntityID) {
        let Some(tomb) = self.tombstones.remove(&id) else {
            return;
        };
        self.game_events.remove(&id);
        let old = tomb.commit.transfer;
        self.counters.departures += 1;
        self.emit(Event::Departed {
            id,
            to: ZoneID(old.target_zone.get()),
            epoch: old.epoch.get(),
            transfer_id: old.transfer_id.get(),
            ticks: self.tick.saturating_sub(tomb.started_tick),
            superseded: true,
        });
    }

    /// Remembers adoption `t` until the source CONFIRMs it.
    pub(crate) fn await_confirm(&mut self, t: Transfer) {
        if self.bugs.forget_adoptions {
            return;
        }
        let key = (ZoneID(t.source_zone.get()), t.transfer_id.get());
        let next_retransmit_tick = self.tick + done_backoff(&self.config, 0);
        self.unconfirmed.insert(
            key,
            Unconfirmed {
                transfer: t,
                next_retransmit_tick,
                attempts: 0,
            },
        );
    }

    /// The source logged our DONE: its COMMIT will never come again.
    pub(crate) fn handle_confirm(&mut self, from: Peer, confirm: &Confirm) -> bool {
        let t = confirm.transfer;
        if !self.addressed(from, &t.source_zone, &t.target_zone) {
            return false;
        }
        self.counters.confirms_received += 1;
        let key = (ZoneID(t.source_zone.get()), t.transfer_id.get());
        match self.unconfirmed.get(&key) {
            Some(u) if u.transfer == t => {
                self.unconfirmed.remove(&key);
                // Copies of the COMMIT may still be in flight (the source resent it, the
                // network duplicates and reorders): the epoch memory fences them from now
                // for `epoch_memory_ticks`, as it fences any duplicate. Found by the
                // simulator (seed 361): a CONFIRM overtook a resent COMMIT.
                let id = EntityID(t.entity_id.get());
                let room = self.epochs.contains_key(&id)
                    || self.epochs.len() < self.limits.epoch_memory_count_max as usize;
                if self.bugs.forget_epoch_on_confirm {
                    // BROKEN ON PURPOSE (`forget_epoch_on_confirm`).
                } else if room {
                    self.remember(id, t.epoch.get());
                } else {
                    self.counters.epoch_memory_full += 1;
                }
            }
            _ => self.counters.duplicates_ignored += 1,
        }
        true
    }

    /// Sends DONE again for every adoption whose CONFIRM is overdue (it was lost, or the
    /// source is down). Until CONFIRM, forever.
    pub(crate) fn retransmit_dones(&mut self) {
        let tick = self.tick;
        let config = self.config;
        let Zone {
            unconfirmed,
            outbox,
            counters,
            ..
        } = self;
        for u in unconfirmed.values_mut() {
            if tick >= u.next_retransmit_tick {
                let source = ZoneID(u.transfer.source_zone.get());
                outbox.push(
                    Peer::Zone(source),
                    bytemuck::bytes_of(&Done::new(u.transfer)),
                );
                u.attempts += 1;
                u.next_retransmit_tick = tick + done_backoff(&config, u.attempts);
                counters.retransmits += 1;
                counters.dones_sent += 1;
            }
        }
    }

    pub(crate) fn expire_staged(&mut self) {
        let deadline = u64::from(self.config.staged_timeout_ticks);
        let tick = self.tick;
        self.staged.retain(|_, s| tick < s.staged_tick + deadline);
    }
}
