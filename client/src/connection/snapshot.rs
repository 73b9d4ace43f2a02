//! Applying a snapshot: decode it against the baseline the client holds, keep it by
//! (zone, tick), hand the newest to the motion tracks, and reconcile the own avatar.

use super::*;

impl Client {
    pub(super) fn apply_snapshot(&mut self, now: Instant, bytes: &[u8]) -> bool {
        let Ok((head, entries)) = parse_delta(bytes) else {
            return false;
        };
        if head.session_secret.get() != self.secret {
            return false;
        }
        // The own avatar's game fields come first, then the game events, then the entries.
        let Ok((avatar_game, n)) = get_avatar_game(entries) else {
            self.counters.decode_errors += 1;
            return false;
        };
        let Ok((game_events, m)) = get_events(&entries[n..]) else {
            self.counters.decode_errors += 1;
            return false;
        };
        let entries = &entries[n + m..];
        let id = SnapshotId {
            zone: head.zone.get(),
            tick: head.tick.get(),
        };
        let baseline = SnapshotId {
            zone: head.baseline_zone.get(),
            tick: head.baseline_tick.get(),
        };
        if id.tick == 0 || self.retired_keys.contains(&self.opened_key) {
            return false;
        }
        if self.another_run_of(id.zone) {
            self.new_zone_run(now, id.zone);
        }
        if self.records(id).is_some() {
            return false;
        }
        // Newer than the newest: a later tick of the zone the client is in, or the first
        // snapshot of the zone a REDIRECT sent it to. One of the zone it left, arriving
        // late, is kept as a baseline and not shown — even with a tick after the newest
        // the client holds of that zone (sent after the REDIRECT, overtaking it):
        // showing it took the client back to the zone it had left, whose avatar and
        // snapshots were no longer there, and it ignored the new zone's for good.
        let newest = id.zone == self.zone
            && (self.latest.tick == 0 || id.zone != self.latest.zone || id.tick > self.latest.tick);
        // The first newest snapshot of a zone (or of a zone's new run) starts a stay there.
        let staying = self.latest.zone == id.zone && self.latest.tick != 0;
        let sample = self.sample_of(id, newest && !staying);
        let mut result = std::mem::take(&mut self.scratch);
        let mut samples = std::mem::take(&mut self.scratch_samples);
        let count = head.entry_count.get();
        let out = (&mut result, &mut samples);
        let applied = match (baseline.tick, self.held(baseline)) {
            (0, _) => apply_delta_sampled((&[], &[]), (entries, count), sample, out),
            (_, Some(b)) => {
                apply_delta_sampled((&b.records, &b.samples), (entries, count), sample, out)
            }
            (_, None) => Err(DecodeError::Inconsistent),
        };
        if applied.is_err() {
            self.counters.decode_errors += 1;
            self.scratch = result;
            self.scratch_samples = samples;
            return false;
        }
        self.take_game_events(&game_events);
        // The oldest held snapshot's buffers take the records; its old ones are the next
        // scratch.
        let held = &mut self.history[self.next_held];
        self.next_held = (self.next_held + 1) % CLIENT_HISTORY;
        held.id = id;
        std::mem::swap(&mut held.records, &mut result);
        std::mem::swap(&mut held.samples, &mut samples);
        self.scratch = result;
        self.scratch_samples = samples;
        self.counters.snapshots += 1;
        if baseline.tick != 0 && baseline.zone != id.zone {
            self.counters.snapshots_carried += 1;
        }
        self.last_snapshot_at = now;
        if !newest {
            self.counters.snapshots_late += 1;
            return true;
        }
        let partial = head.flags & DELTA_PARTIAL != 0;
        self.counters.snapshots_partial += u64::from(partial);
        if partial && baseline.tick == 0 {
            self.keep_shown(now);
        }
        self.latest = id;
        self.freshen_drawn();
        self.refresh_stale(now, partial);
        self.latest_key = self.opened_key;
        self.pace.report(head.input_waiting);
        self.round_trip.applied(head.input_sequence.get(), now);
        // What is drawn: the snapshot's entities at their newest samples, and what a
        // partial one sent against nothing left out of the scene before (`scene`).
        let records = match self.stale.shown() {
            Some(records) => records,
            None => &self.drawn,
        };
        self.motion.on_snapshot(id.zone, id.tick, now, records);
        let (tick, zone) = (id.tick, id.zone);
        self.zone = zone;
        self.reconcile(
            &head.avatar,
            avatar_game,
            head.input_sequence.get(),
            (zone, tick),
        );
        self.events.push_back(ClientEvent::Snapshot {
            tick,
            zone: self.zone,
            bytes: bytes.len() as u16,
            full: baseline.tick == 0,
        });
        true
    }

    /// Reconciliation: the server's avatar plus the inputs it has not applied yet.
    fn reconcile(
        &mut self,
        avatar: &meridian_layouts::snapshot::EntityRecord,
        game: [i32; GAME_FIELDS],
        applied_sequence: u32,
        (zone, tick): (u32, u32),
    ) {
        let avatar = Record::from_wire(avatar);
        let reconciled_before = self.authoritative.tick != 0;
        self.authoritative = AvatarState {
            id: avatar.id,
            position: [dequantise_position(avatar.x), dequantise_position(avatar.y)],
            velocity: [
                dequantise_velocity(avatar.vx),
                dequantise_velocity(avatar.vy),
            ],
            input_sequence: applied_sequence,
            zone,
            tick,
            game,
        };
        while self
            .unapplied
            .front()
            .is_some_and(|(seq, _)| seq.wrapping_sub(applied_sequence) as i32 <= 0)
        {
            self.unapplied.pop_front();
        }
        let before = self.predicted;
        self.predicted = self.authoritative.position;
        for (_, v) in &self.unapplied {
            self.predicted = self.step(*v, self.predicted);
        }
        // The misprediction is drawn away over the next ticks, not in one jump (a jump
        // larger than `CORRECTION_SNAP_M` is taken at once: a teleport, not an error).
        if reconciled_before {
            let c = [
                self.correction[0] + before[0] - self.predicted[0],
                self.correction[1] + before[1] - self.predicted[1],
            ];
            let (ex, ey) = (before[0] - self.predicted[0], before[1] - self.predicted[1]);
            self.misprediction_m = (ex * ex + ey * ey).sqrt();
            let far = c[0] * c[0] + c[1] * c[1] > CORRECTION_SNAP_M * CORRECTION_SNAP_M;
            self.correction = if far { [0.0; 2] } else { c };
        }
    }

    /// Hands out the events of a snapshot not taken yet, in sequence: a resent one is
    /// skipped, and none past a gap (the zone resends from the oldest unacknowledged).
    fn take_game_events(&mut self, events: &meridian_protocol::game::Events<'_>) {
        for (seq, bytes) in events.iter() {
            if seq != self.event_next {
                continue;
            }
            let mut event = meridian_layouts::handoff::GameEvent {
                seq: U32Le::new(seq),
                len: bytes.len() as u8,
                bytes: [0; meridian_layouts::handoff::GAME_EVENT_MAX],
            };
            event.bytes[..bytes.len()].copy_from_slice(bytes);
            self.events.push_back(ClientEvent::Game(event));
            self.event_next = seq.wrapping_add(1).max(1);
        }
    }

    /// The sample a snapshot's entries hold: (stay, tick), the stay the client's in the
    /// snapshot's zone — a new one if `starts` (the first newest snapshot of a zone or of a
    /// zone's new run), else the zone's last (0: a zone the client has not stayed in).
    fn sample_of(&mut self, id: SnapshotId, starts: bool) -> u64 {
        if starts {
            self.stay += 1;
            self.stays.rotate_right(1);
            self.stays[0] = (id.zone, self.stay);
        }
        let stay = self.stays.iter().find(|(zone, _)| *zone == id.zone);
        (u64::from(stay.map_or(0, |&(_, stay)| stay)) << 32) | u64::from(id.tick)
    }

    /// What is drawn of the new newest snapshot: each entity at its newest sample, the
    /// snapshot's or the one drawn before (`meridian_protocol::delta::freshen`).
    fn freshen_drawn(&mut self) {
        let Some(newest) = self
            .history
            .iter()
            .find(|h| h.id == self.latest && h.id.tick != 0)
        else {
            return;
        };
        // What was drawn becomes the drawing before; the new one takes that one's buffer.
        let mut records = std::mem::take(&mut self.drawn_before);
        let mut samples = std::mem::take(&mut self.scratch_samples);
        freshen(
            (&newest.records, &newest.samples),
            (&self.drawn, &self.drawn_samples),
            (&mut records, &mut samples),
        );
        self.drawn_before = std::mem::replace(&mut self.drawn, records);
        self.scratch_samples = std::mem::replace(&mut self.drawn_samples, samples);
    }

    /// Whether the packet just opened came from another run of `zone` than the client's
    /// newest snapshot, which is of `zone`: its key is not that snapshot's.
    pub(super) fn another_run_of(&self, zone: u32) -> bool {
        self.latest.zone == zone && self.latest.tick != 0 && self.opened_key != self.latest_key
    }

    /// A snapshot of the zone the client is in came under a key of another run: the zone
    /// restarted, or its standby took it over. The new run counts its ticks from its
    /// restore, so its (zone, tick) ids say nothing of the old run's: what the client holds
    /// of the old run is dropped (never a baseline, never "newer"), the old run's key is
    /// retired (its late packets are ignored), and the zone's clock is found again.
    pub(super) fn new_zone_run(&mut self, now: Instant, zone: u32) {
        self.counters.zone_runs += 1;
        // Its first snapshots are sent against nothing: the scene is drawn on until they
        // hold it again (`scene`).
        self.keep_shown(now);
        self.retired_keys.rotate_right(1);
        self.retired_keys[0] = self.latest_key;
        for held in &mut self.history {
            if held.id.zone == zone {
                held.id = SnapshotId::default();
            }
        }
        // Nothing to interpolate from: the new run's entities appear where they are.
        self.drawn_before.clear();
        self.latest = SnapshotId { zone, tick: 0 };
        self.motion.forget_zone(zone);
    }
}
