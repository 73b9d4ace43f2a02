//! Protocol scenarios between two zones, one rule each, with delivery under test control.

use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::handoff::{AbortReason, Event, HandoffConfig, LogRecord};
use meridian_core::limits::Limits;
use meridian_core::net::{Peer, for_each_packet};
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;
use meridian_layouts::Kind;

const S: ZoneID = ZoneID(0);
const T: ZoneID = ZoneID(1);

fn world() -> World {
    World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 200.0, 100.0),
        zones_x: 2,
        zones_y: 1,
        margin_m: 2.0,
        aura_m: 10.0,
        tick_rate_hz: 30,
        cell_size_m: 10.0,
    })
    .unwrap()
}

struct Pair {
    zones: [Zone; 2],
    tick: u64,
    /// Datagrams sent by each zone during the last step, not yet delivered.
    sent: [Vec<Vec<u8>>; 2],
    events: Vec<(ZoneID, Event)>,
}

impl Pair {
    fn new(limits: Limits) -> Pair {
        Pair::with_config(limits, HandoffConfig::default())
    }

    fn with_config(limits: Limits, config: HandoffConfig) -> Pair {
        let w = world();
        Pair {
            zones: [
                Zone::with_config(&w, S, limits, config, Instant::ZERO, 0).unwrap(),
                Zone::with_config(&w, T, limits, config, Instant::ZERO, 0).unwrap(),
            ],
            tick: 0,
            sent: [Vec::new(), Vec::new()],
            events: Vec::new(),
        }
    }

    /// Ticks both zones; collects what they send.
    fn tick(&mut self) {
        self.tick += 1;
        let now = Instant::from_nanos(self.tick * 33_333_333);
        let mut buf = [0u8; 1200];
        for z in 0..2 {
            self.zones[z].tick(now);
            for _ in self.zones[z].drain_log() {}
            while let Some(e) = self.zones[z].poll_event() {
                self.events.push((ZoneID(z as u32), e));
            }
            while let Some(t) = self.zones[z].poll_transmit(&mut buf) {
                self.sent[z].push(buf[..t.len].to_vec());
            }
        }
    }

    /// Delivers everything sent so far, `copies` times each.
    fn deliver(&mut self, copies: usize) {
        for z in 0..2 {
            for d in std::mem::take(&mut self.sent[z]) {
                for _ in 0..copies {
                    self.zones[1 - z].handle_datagram(
                        Instant::ZERO,
                        Peer::Zone(ZoneID(z as u32)),
                        &d,
                    );
                }
            }
        }
    }

    fn drop_sent(&mut self) {
        self.sent = [Vec::new(), Vec::new()];
    }

    fn owner(&self, id: EntityID) -> Vec<(ZoneID, u32)> {
        self.zones
            .iter()
            .filter_map(|z| {
                z.entities()
                    .slot_of(id)
                    .map(|s| (z.id(), z.entities().epochs()[s as usize]))
            })
            .collect()
    }
}

fn walker(id: u64, x: f32, vx: f32) -> EntityInit {
    EntityInit {
        id: EntityID(id),
        epoch: 0,
        position: [x, 50.0, 0.0],
        velocity: [vx, 0.0],
        speed_mps_max: 30.0,
        kind: 0,
        flags: 0,
        payload: [7; 64],
    }
}

#[test]
fn crossing_commits_once_with_the_same_state() {
    // Zones that keep a whole 64-byte game record.
    let mut p = Pair::new(Limits {
        state_bytes: 64,
        ..Limits::for_entities(16)
    });
    p.zones[0].insert(&walker(1, 101.9, 30.0)).unwrap();
    for _ in 0..6 {
        p.tick();
        p.deliver(1);
    }
    assert_eq!(p.owner(EntityID(1)), vec![(T, 1)]);
    let relinquished = p
        .events
        .iter()
        .position(|e| matches!(e.1, Event::Relinquished { .. }))
        .unwrap();
    let arrived = p
        .events
        .iter()
        .position(|e| {
            matches!(
                e.1,
                Event::Arrived {
                    from: S,
                    epoch: 1,
                    ..
                }
            )
        })
        .unwrap();
    assert!(relinquished < arrived);
    assert!(p.events.iter().any(|e| matches!(
        e,
        (
            S,
            Event::Departed {
                to: T,
                superseded: false,
                ..
            }
        )
    )));
    assert_eq!(p.zones[0].tombstone_count(), 0);
    let slot = p.zones[1].entities().slot_of(EntityID(1)).unwrap();
    assert_eq!(
        p.zones[1].entities().get(slot).payload,
        [7; 64],
        "the payload travels"
    );
}

#[test]
fn duplicated_messages_change_nothing() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[0].insert(&walker(1, 101.9, 30.0)).unwrap();
    for _ in 0..8 {
        p.tick();
        p.deliver(3); // Every datagram arrives three times.
    }
    assert_eq!(p.owner(EntityID(1)), vec![(T, 1)]);
    let arrivals = p
        .events
        .iter()
        .filter(|e| matches!(e.1, Event::Arrived { .. }))
        .count();
    assert_eq!(arrivals, 1);
    assert!(p.zones[1].counters().duplicates_ignored > 0);
}

#[test]
fn lost_commit_is_retransmitted_and_a_late_duplicate_is_answered_with_done() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[0].insert(&walker(1, 101.9, 30.0)).unwrap();
    // Step 1: S sends OFFER. Step 2: T answers ACK. Step 3: S relinquishes, sends COMMIT.
    p.tick();
    p.deliver(1);
    p.tick();
    p.deliver(1);
    p.tick();
    // Lose the COMMIT (and anything else S sent this step).
    assert_eq!(p.owner(EntityID(1)), vec![], "in flight: owned by nobody");
    let lost_commit = p.sent[0].clone();
    p.drop_sent();
    for _ in 0..4 {
        p.tick();
        p.deliver(1);
    }
    assert_eq!(p.owner(EntityID(1)), vec![(T, 1)]);
    assert!(p.zones[0].counters().retransmits > 0);
    // The lost COMMIT turns up late: T answers DONE, adopts nothing new.
    for d in &lost_commit {
        p.zones[1].handle_datagram(Instant::ZERO, Peer::Zone(S), d);
    }
    let dones = p.zones[1].counters().dones_sent;
    p.tick();
    assert_eq!(p.zones[1].counters().dones_sent, dones + 1);
    assert_eq!(p.owner(EntityID(1)), vec![(T, 1)]);
}

/// The one timing assumption the protocol used to have: a COMMIT resent after the target's
/// epoch memory forgot the entity (the source was down, or cut off, that long) was adopted
/// again. The target now remembers each adoption until the source CONFIRMs it — across its
/// own restarts — and answers the resent COMMIT with DONE however late it comes.
#[test]
fn a_commit_resent_after_the_epoch_memory_expired_is_not_adopted_again() {
    let config = HandoffConfig {
        epoch_memory_ticks: 30,
        ..HandoffConfig::default()
    };
    let mut p = Pair::with_config(Limits::for_entities(16), config);
    p.zones[0].insert(&walker(1, 101.9, 30.0)).unwrap();
    p.tick(); // S: OFFER
    p.deliver(1);
    p.tick(); // T: ACK
    p.deliver(1);
    p.tick(); // S: relinquish, COMMIT
    let commit = p.sent[0].clone();
    p.deliver(1);
    p.tick(); // T: adopt, DONE — lost, and S goes quiet (down or cut off)
    p.drop_sent();
    assert_eq!(p.owner(EntityID(1)), vec![(T, 1)]);
    assert_eq!(p.zones[1].unconfirmed_count(), 1);
    // T destroys the entity (it might as well have handed it on) and forgets its epoch.
    p.zones[1].remove(EntityID(1)).unwrap();
    for _ in 0..200 {
        p.tick();
        p.sent[1].clear(); // T's DONE resends go nowhere: S is away
        p.sent[0].clear();
    }
    assert_eq!(p.zones[1].known_epoch(EntityID(1)), None, "memory expired");
    // S is back and resends its COMMIT: T must not adopt the entity a second time.
    let arrivals = p.zones[1].counters().arrivals;
    for d in &commit {
        p.zones[1].handle_datagram(Instant::ZERO, Peer::Zone(S), d);
    }
    p.tick();
    assert_eq!(p.zones[1].counters().arrivals, arrivals, "adopted twice");
    assert_eq!(p.owner(EntityID(1)), vec![]);
    // The DONE gets through this time: S logs it and CONFIRMs; T forgets the transfer.
    p.deliver(1);
    p.tick();
    p.deliver(1);
    p.tick();
    assert_eq!(p.zones[0].tombstone_count(), 0);
    assert_eq!(p.zones[1].unconfirmed_count(), 0);
    assert!(p.zones[1].counters().confirms_received >= 1);
}

/// The table of unconfirmed adoptions survives the target's restart: its log's Adopt
/// record brings it back, and the resent COMMIT is answered with DONE, not adopted.
#[test]
fn a_restarted_target_still_recognises_an_unconfirmed_commit() {
    let config = HandoffConfig {
        epoch_memory_ticks: 30,
        ..HandoffConfig::default()
    };
    let w = world();
    let limits = Limits::for_entities(16);
    let mut source = Zone::with_config(&w, S, limits, config, Instant::ZERO, 0).unwrap();
    let mut target = Zone::with_config(&w, T, limits, config, Instant::ZERO, 0).unwrap();
    source.insert(&walker(1, 101.9, 30.0)).unwrap();
    let mut log = Vec::new();
    let mut buf = [0u8; 1200];
    let mut commit = Vec::new();
    for step in 1..=4u64 {
        let now = Instant::from_nanos(step * 33_333_333);
        source.tick(now);
        while let Some(t) = source.poll_transmit(&mut buf) {
            if step == 3 {
                commit.push(buf[..t.len].to_vec());
            }
            target.handle_datagram(Instant::ZERO, Peer::Zone(S), &buf[..t.len]);
        }
        target.tick(now);
        log.extend(target.drain_log());
        while let Some(t) = target.poll_transmit(&mut buf) {
            if step < 4 {
                source.handle_datagram(Instant::ZERO, Peer::Zone(T), &buf[..t.len]);
            } // step 4: T's DONE is lost
        }
    }
    assert!(log.iter().any(|r| matches!(r, LogRecord::Adopt { .. })));
    // T crashes and comes back from its log; the entity is then destroyed and forgotten.
    let mut target = Zone::restore(&w, T, limits, config, Instant::ZERO, 1, &log).unwrap();
    assert_eq!(target.unconfirmed_count(), 1);
    target.remove(EntityID(1)).unwrap();
    for step in 0..200u64 {
        target.tick(Instant::from_nanos(step * 33_333_333));
        while target.poll_transmit(&mut buf).is_some() {}
    }
    assert_eq!(target.known_epoch(EntityID(1)), None);
    for d in &commit {
        target.handle_datagram(Instant::ZERO, Peer::Zone(S), d);
    }
    target.tick(Instant::from_nanos(201 * 33_333_333));
    assert_eq!(target.entities().len(), 0, "adopted twice after a restart");
}

#[test]
fn stale_offer_and_commit_are_fenced_by_epoch() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[0].insert(&walker(1, 101.9, 30.0)).unwrap();
    p.tick();
    let first_offer = p.sent[0].clone();
    p.deliver(1);
    for _ in 0..5 {
        p.tick();
        p.deliver(1);
    }
    assert_eq!(p.owner(EntityID(1)), vec![(T, 1)]);
    // Replay the epoch-1 OFFER at T, which owns the entity at epoch 1: ignored.
    let stale = p.zones[1].counters().stale_epochs_ignored;
    for d in &first_offer {
        p.zones[1].handle_datagram(Instant::ZERO, Peer::Zone(S), d);
    }
    p.tick();
    assert!(p.zones[1].counters().stale_epochs_ignored > stale);
    assert_eq!(p.owner(EntityID(1)), vec![(T, 1)]);
}

#[test]
fn coming_back_before_commit_aborts_and_the_source_keeps_it() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[0].insert(&walker(1, 101.9, 30.0)).unwrap();
    p.tick(); // OFFER sent; the answer is never delivered.
    p.drop_sent();
    p.zones[0].set_velocity(EntityID(1), -30.0, 0.0);
    for _ in 0..3 {
        p.tick();
        p.drop_sent();
    }
    assert!(p.events.iter().any(|e| matches!(
        e.1,
        Event::Aborted {
            reason: AbortReason::CameBack,
            ..
        }
    )));
    assert_eq!(p.owner(EntityID(1)), vec![(S, 0)]);
    assert_eq!(p.zones[0].pending_offer_count(), 0);
}

#[test]
fn full_target_nacks_and_the_source_backs_off() {
    let mut limits = Limits::for_entities(1);
    limits.crossing_count_max = 1;
    limits.aura_count_max = 1;
    let mut p = Pair::new(limits);
    p.zones[0].insert(&walker(1, 101.9, 30.0)).unwrap();
    p.zones[1].insert(&walker(2, 150.0, 0.0)).unwrap(); // T is full.
    p.tick();
    p.deliver(1);
    p.tick();
    p.deliver(1);
    p.tick();
    assert!(p.zones[1].counters().nacks_sent >= 1);
    assert!(p.events.iter().any(|e| matches!(
        e.1,
        Event::Aborted {
            reason: AbortReason::Nack,
            ..
        }
    )));
    assert_eq!(p.owner(EntityID(1)), vec![(S, 0)]);
    // Backing off: no new OFFER for a while.
    let offers = p.zones[0].counters().offers_sent;
    p.drop_sent();
    for _ in 0..5 {
        p.tick();
        p.drop_sent();
    }
    assert_eq!(p.zones[0].counters().offers_sent, offers);
}

#[test]
fn a_target_shutting_down_refuses_arrivals() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[1].shut_down();
    p.zones[0].insert(&walker(1, 101.9, 30.0)).unwrap();
    for _ in 0..3 {
        p.tick();
        p.deliver(1);
    }
    assert!(p.zones[1].counters().nacks_sent >= 1);
    assert_eq!(p.owner(EntityID(1)), vec![(S, 0)]);
}

/// An entity handed to a neighbour stays in view at the source (a ghost at its old epoch
/// from the moment it is relinquished) until the new owner's ghosts refresh it: the source's
/// clients never lose it for the ticks in between (a pop-in at every handoff).
#[test]
fn a_relinquished_entity_stays_in_view_at_the_source() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[0].insert(&walker(1, 101.5, 3.0)).unwrap();
    let id = EntityID(1);
    for _ in 0..60 {
        p.tick();
        let z = &p.zones[0];
        let owned = z.entities().slot_of(id).is_some();
        let ghost = z.ghosts().entities().slot_of(id);
        assert!(
            owned || ghost.is_some(),
            "tick {}: S lost sight of it",
            p.tick
        );
        if let Some(g) = ghost {
            // Never a ghost of an entity it still owns, never ahead of the owner.
            assert!(!owned);
            assert!(z.ghosts().entities().epochs()[g as usize] <= 1);
        }
        p.deliver(1);
    }
    assert_eq!(p.owner(id), vec![(T, 1)]);
}

/// The same when the source's COMMIT takes longer than `ghost_ttl_ticks` (10) to reach
/// the target: a zone with a standby holds its datagrams until the standby has the
/// relinquish, and under load that took 300–1,000 ms (the rolling-restart demo's
/// handoffs, p99 up to 1 s). The copy, refreshed by nobody, expired while the target
/// — sending its other ghosts all along — had not adopted the entity yet: the source's
/// clients lost it until the target's first batch with it (the demo: 1–2 entities gone
/// from two bots' snapshots at one tick, `drawn 127`). The copy now lasts as long as the
/// COMMIT is unanswered.
#[test]
fn a_relinquished_entity_stays_in_view_while_its_commit_is_held() {
    for held in [0u64, 15, 25] {
        let mut p = Pair::new(Limits::for_entities(16));
        p.zones[0].insert(&walker(1, 101.5, 3.0)).unwrap();
        // Standing in T's aura for S: T sends S a batch every tick.
        p.zones[1].insert(&walker(2, 103.0, 0.0)).unwrap();
        let id = EntityID(1);
        // S's datagrams, each with the tick it is delivered at.
        let mut gated: Vec<(u64, Vec<u8>)> = Vec::new();
        for _ in 0..60 {
            p.tick();
            let z = &p.zones[0];
            let owned = z.entities().slot_of(id).is_some();
            let ghost = z.ghosts().entities().slot_of(id).is_some();
            assert!(
                owned || ghost,
                "S's datagrams held {held} ticks: tick {}: S lost sight of it",
                p.tick
            );
            let at = p.tick + held;
            gated.extend(std::mem::take(&mut p.sent[0]).into_iter().map(|d| (at, d)));
            for d in std::mem::take(&mut p.sent[1]) {
                p.zones[0].handle_datagram(Instant::ZERO, Peer::Zone(T), &d);
            }
            let tick = p.tick;
            for (_, d) in gated.iter().filter(|g| g.0 <= tick) {
                p.zones[1].handle_datagram(Instant::ZERO, Peer::Zone(S), d);
            }
            gated.retain(|g| g.0 > tick);
        }
        assert_eq!(p.owner(id), vec![(T, 1)], "held {held}");
    }
}

/// The same seen from the target: its ghost of an entity handed to it, which the source
/// stops sending once it relinquishes the entity, expired after `ghost_ttl_ticks` (10)
/// when the COMMIT was lost and the resends came later than that (backoff up to 8 ticks a
/// resend) — the target's clients lost the entity until it adopted it; and a new run of
/// the target's zone, started as the entity crossed, never had a ghost of it at all. The
/// source now sends its copy with every batch to the target while the COMMIT is
/// unanswered (`Ghosts::push_handed`).
#[test]
fn a_handed_entity_stays_in_the_targets_view_while_its_commit_is_lost() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[0].insert(&walker(1, 101.5, 3.0)).unwrap();
    let id = EntityID(1);
    let mut seen_since = None;
    for _ in 0..80 {
        p.tick();
        // Every COMMIT the source sends in the first 40 ticks is lost.
        if p.tick <= 40 {
            for d in &mut p.sent[0] {
                let mut kept = Vec::new();
                for_each_packet(d, |kind, packet| {
                    if kind != Kind::Commit as u8 {
                        kept.extend_from_slice(packet);
                    }
                });
                *d = kept;
            }
        }
        p.deliver(1);
        let z = &p.zones[1];
        let owned = z.entities().slot_of(id).is_some();
        let ghost = z.ghosts().entities().slot_of(id).is_some();
        if owned || ghost {
            seen_since.get_or_insert(p.tick);
        }
        assert!(
            owned || ghost || seen_since.is_none(),
            "tick {}: T lost sight of it (seen since tick {seen_since:?})",
            p.tick
        );
        assert!(
            !(owned && ghost),
            "tick {}: T owns it and keeps a ghost",
            p.tick
        );
    }
    assert_eq!(p.owner(id), vec![(T, 1)]);
    assert!(p.zones[0].counters().retransmits >= 3);
}

/// A COMMIT unanswered when its target's new run is heard of (a takeover, a move, a
/// restart) goes to the new run at once, not at its next backoff (up to
/// `retransmit_ticks_max`, 8 ticks): until the new run has it the entity is owned by no
/// zone and shown by none — a client of the new run whose first whole snapshot fell in
/// that gap lost the entity for a snapshot (the rolling-restart demo under load).
#[test]
fn an_unanswered_commit_goes_to_its_targets_new_run_at_once() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[0].insert(&walker(1, 101.5, 3.0)).unwrap();
    // The OFFER and its ACK go through; every COMMIT is lost (T's run is going down).
    while p.zones[0].tombstone_count() == 0 {
        p.tick();
        p.deliver(1);
    }
    for _ in 0..40 {
        p.tick();
        p.drop_sent();
    }
    // Right after a resend: the next is the backoff away.
    let sent = |p: &Pair| p.zones[0].counters().commits_sent;
    let mut before = sent(&p);
    while sent(&p) == before {
        p.tick();
        p.drop_sent();
    }
    before = sent(&p);
    p.zones[0].fence(T, 1);
    p.tick();
    assert_eq!(sent(&p), before + 1, "the COMMIT waited for its backoff");
    p.deliver(1);
    p.tick();
    p.deliver(1);
    assert_eq!(p.owner(EntityID(1)), vec![(T, 1)]);
}

#[test]
fn ghosts_mirror_the_aura_are_replaced_on_arrival_and_expire() {
    let mut p = Pair::new(Limits::for_entities(16));
    // Entity 1 walks toward the border; entity 2 stands deep inside S (no ghost).
    p.zones[0].insert(&walker(1, 94.0, 3.0)).unwrap();
    p.zones[0].insert(&walker(2, 20.0, 0.0)).unwrap();
    p.tick();
    p.deliver(1);
    p.tick();
    let ghosts = p.zones[1].ghosts();
    assert_eq!(ghosts.entities().ids(), &[EntityID(1)]);
    let mut near = Vec::new();
    p.zones[1].query_ghosts_radius(95.0, 50.0, 5.0, |s| near.push(s));
    assert_eq!(near.len(), 1, "ghosts answer queries");
    // Walk it across: on arrival the ghost is replaced by the owned entity.
    for _ in 0..120 {
        p.tick();
        p.deliver(1);
    }
    assert_eq!(p.owner(EntityID(1)), vec![(T, 1)]);
    assert!(
        p.zones[1]
            .ghosts()
            .entities()
            .slot_of(EntityID(1))
            .is_none()
    );
    // T now mirrors it back to S (still near the border), at the new epoch.
    let s_ghosts = p.zones[0].ghosts().entities();
    let slot = s_ghosts
        .slot_of(EntityID(1))
        .expect("S sees the entity it gave away as a ghost");
    assert_eq!(s_ghosts.epochs()[slot as usize], 1);
    // The owner goes silent: the ghost is kept past `ghost_ttl_ticks` (10) — the owner
    // may be between two runs, whose next one sends it again — and expires by three times
    // that.
    for _ in 0..20 {
        p.tick();
        p.drop_sent();
    }
    assert!(
        !p.zones[0].ghosts().is_empty(),
        "a silent owner's ghost kept"
    );
    for _ in 0..12 {
        p.tick();
        p.drop_sent();
    }
    assert!(p.zones[0].ghosts().is_empty());
    assert!(p.zones[0].counters().ghosts_expired > 0);
}

/// A ghost the owner's batches leave out (it walked out of the aura) while the owner
/// goes on sending others expires at `ghost_ttl_ticks` (10): only a silent owner's
/// ghosts are kept longer.
#[test]
fn a_ghost_left_out_by_a_peer_still_sending_expires_at_the_short_bound() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[0].insert(&walker(3, 95.0, 0.0)).unwrap();
    p.zones[0].insert(&walker(4, 96.0, -10.0)).unwrap();
    let (refreshed_at, gone_at) = ghost_life(&mut p, EntityID(4));
    assert!(
        gone_at - refreshed_at <= 10 + 2,
        "last refreshed at {refreshed_at}, gone at {gone_at}"
    );
    assert!(
        p.zones[1]
            .ghosts()
            .entities()
            .slot_of(EntityID(3))
            .is_some()
    );
}

/// The same when the ghost was the owner's last one in the aura: the owner then has no
/// records for its neighbour, and says so with empty batches for a while — without them
/// it would look silent, and the ghost would be kept three times as long.
#[test]
fn the_last_ghost_to_leave_a_peers_aura_expires_at_the_short_bound() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[0].insert(&walker(4, 96.0, -10.0)).unwrap();
    let (refreshed_at, gone_at) = ghost_life(&mut p, EntityID(4));
    assert!(
        gone_at - refreshed_at <= 10 + 2,
        "last refreshed at {refreshed_at}, gone at {gone_at}"
    );
    assert!(p.zones[0].counters().ghost_heartbeats_sent > 0);
}

/// Runs the pair 120 ticks, delivering zone 0's datagrams to zone 1; returns the tick
/// zone 1's ghost of `id` was last refreshed (its position stops changing then) and the
/// tick it was gone.
fn ghost_life(p: &mut Pair, id: EntityID) -> (u32, u32) {
    let (mut last_x, mut refreshed_at, mut gone_at) = (None, 0, None);
    for t in 0..120u32 {
        p.tick();
        p.deliver(1);
        let ghosts = p.zones[1].ghosts().entities();
        match ghosts.slot_of(id) {
            Some(slot) => {
                let x = ghosts.xs()[slot as usize];
                if last_x != Some(x) {
                    (last_x, refreshed_at) = (Some(x), t);
                }
            }
            None if last_x.is_some() && gone_at.is_none() => gone_at = Some(t),
            None => {}
        }
    }
    (refreshed_at, gone_at.expect("the ghost expired"))
}

#[test]
fn spoofed_and_garbage_datagrams_are_counted_not_applied() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[0].insert(&walker(1, 101.9, 30.0)).unwrap();
    p.tick();
    // The OFFER claims to come from zone 0; deliver it as if from a client instead.
    let offer = p.sent[0].clone();
    p.drop_sent();
    for d in &offer {
        p.zones[1].handle_datagram(
            Instant::ZERO,
            Peer::Client("127.0.0.1:9".parse().unwrap()),
            d,
        );
    }
    p.zones[1].handle_datagram(Instant::ZERO, Peer::Zone(S), b"not a datagram at all");
    p.zones[1].handle_datagram(Instant::ZERO, Peer::Zone(S), &[]);
    p.tick();
    let c = p.zones[1].counters();
    assert_eq!(c.offers_received, 0);
    assert!(c.bad_packets >= 1);
    assert!(c.bad_datagrams >= 1);
    assert_eq!(p.zones[1].staged_count(), 0);
}

/// Incarnation fencing: once a zone has heard of run `n` of a peer — announced by the mesh
/// after a takeover, or in a datagram of that run — it drops everything older runs of the
/// peer send (an old primary alive behind a partition), counted; the newer run's
/// datagrams are taken as before.
#[test]
fn datagrams_of_a_superseded_run_are_fenced_off() {
    let mut p = Pair::new(Limits::for_entities(16));
    p.zones[0].insert(&walker(1, 98.9, 30.0)).unwrap();
    p.zones[1].fence(S, 1);
    let deliver_as = |p: &mut Pair, incarnation: u32| {
        let mut taken = 0;
        for d in std::mem::take(&mut p.sent[0]) {
            taken +=
                usize::from(p.zones[1].handle_zone_datagram(Instant::ZERO, S, incarnation, &d));
        }
        for d in std::mem::take(&mut p.sent[1]) {
            p.zones[0].handle_zone_datagram(Instant::ZERO, T, 0, &d);
        }
        taken
    };
    for _ in 0..10 {
        p.tick();
        assert_eq!(
            deliver_as(&mut p, 0),
            0,
            "run 0 of the source is superseded"
        );
    }
    let fenced = p.zones[1].counters().fenced;
    assert!(fenced > 0, "nothing was fenced");
    assert_eq!(
        p.owner(EntityID(1)),
        vec![(S, 0)],
        "the offer was never seen"
    );
    // The source's run 1 is heard: the handoff goes through, and run 0 stays fenced.
    for _ in 0..10 {
        p.tick();
        assert!(deliver_as(&mut p, 1) > 0 || p.owner(EntityID(1)) == vec![(T, 1)]);
    }
    assert_eq!(p.owner(EntityID(1)), vec![(T, 1)]);
    p.zones[0].insert(&walker(2, 98.9, 30.0)).unwrap();
    p.tick();
    assert_eq!(deliver_as(&mut p, 0), 0);
    assert!(p.zones[1].counters().fenced > fenced);
}
