//! Game messages between zones, in memory (`game::messages`): a game's message to a ghost
//! reaches the game of the zone that owns the entity, once, and follows an entity that
//! was handed off while the message was on its way.

use std::sync::{Arc, Mutex};

use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::game::messages::{Message, MessageError};
use meridian_core::game::{Game, GameWorld};
use meridian_core::time::Instant;
use meridian_core::world::ZoneID;

use crate::support::{step, two_zones};

const TARGET: u64 = 1 << 20;
const SENDER: u64 = (1 << 20) + 1;

/// A message as a zone's game got it: the zone, whether the zone owned the entity then,
/// the message, and the tick.
type Got = (u32, bool, Message, u64);

/// A game that sends `TARGET` a numbered message every tick from `first` to `last`
/// (if it has one: `sends`) and at tick `also`, and records what it is sent.
struct Mail {
    sends: Option<(u64, u64)>,
    also: Option<u64>,
    number: u8,
    got: Arc<Mutex<Vec<Got>>>,
    refused: Arc<Mutex<Vec<MessageError>>>,
}

impl Game for Mail {
    fn systems(&mut self, world: &mut GameWorld<'_>) {
        let Some((first, last)) = self.sends else {
            return;
        };
        if (first..=last).contains(&world.tick()) || self.also == Some(world.tick()) {
            let payload = [b'#', self.number];
            match world.send_message(EntityID(TARGET), Some(EntityID(SENDER)), &payload) {
                Ok(()) => self.number += 1,
                Err(e) => self.refused.lock().unwrap().push(e),
            }
        }
    }

    fn message(&mut self, world: &mut GameWorld<'_>, message: Message) {
        let owned = world.owned().slot_of(message.to).is_some();
        let got = (world.zone().0, owned, message, world.tick());
        self.got.lock().unwrap().push(got);
    }
}

fn entity(id: u64, x: f32, vx: f32) -> EntityInit {
    EntityInit {
        id: EntityID(id),
        epoch: 0,
        position: [x, 64.0, 0.0],
        velocity: [vx, 0.0],
        speed_mps_max: 6.0,
        kind: 1,
        flags: 0,
        payload: [0; 64],
    }
}

/// Two zones, zone 1's game sending from tick `first` to `last`; what both games got, and
/// what zone 1's was refused.
struct Mesh {
    zones: Vec<meridian_core::zone::Zone>,
    got: Arc<Mutex<Vec<Got>>>,
    refused: Arc<Mutex<Vec<MessageError>>>,
}

fn mesh(target_at: f32, target_vx: f32, (first, last): (u64, u64)) -> Mesh {
    let (_, mut zones) = two_zones();
    let got = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    for (z, zone) in zones.iter_mut().enumerate() {
        zone.set_game(Box::new(Mail {
            sends: (z == 1).then_some((first, last)),
            also: None,
            number: 0,
            got: Arc::clone(&got),
            refused: Arc::clone(&refused),
        }));
    }
    zones[0]
        .insert(&entity(TARGET, target_at, target_vx))
        .unwrap();
    zones[1].insert(&entity(SENDER, 136.0, 0.0)).unwrap();
    Mesh {
        zones,
        got,
        refused,
    }
}

/// Zone 1's game sends zone 0's entity, a ghost in zone 1 eight metres from the border,
/// ten messages: zone 0's game gets each once, in order, the tick after it was sent,
/// with its sender, origin and payload.
#[test]
fn a_message_to_a_ghost_reaches_the_game_of_its_zone_once() {
    let mut m = mesh(120.0, 0.0, (5, 14));
    let mut now = Instant::ZERO;
    for _ in 0..30 {
        step(&mut m.zones, &mut now);
    }
    assert!(m.refused.lock().unwrap().is_empty(), "{:?}", m.refused);
    let got = m.got.lock().unwrap();
    assert_eq!(got.len(), 10, "{got:?}");
    for (k, (zone, owned, message, tick)) in got.iter().enumerate() {
        assert_eq!((*zone, *owned), (0, true), "{got:?}");
        assert_eq!(message.to, EntityID(TARGET));
        assert_eq!(message.from, Some(EntityID(SENDER)));
        assert_eq!(message.origin, ZoneID(1));
        assert_eq!(message.sent_tick, 5 + k as u64);
        assert_eq!(*tick, message.sent_tick + 1);
        assert_eq!(message.payload(), [b'#', k as u8]);
    }
    let (c0, c1) = (m.zones[0].counters(), m.zones[1].counters());
    assert_eq!(
        (c1.game_messages_sent, c0.game_messages_delivered),
        (10, 10)
    );
    assert_eq!(
        c0.game_messages_undeliverable + c0.game_messages_forwarded,
        0
    );
}

/// The target walks from zone 0 into zone 1 while zone 1's game sends it a message every
/// tick — to its ghost, then to it owned. Every message reaches a game once, always the
/// game of a zone that owns the entity then; those on their way to zone 0 when it handed
/// the entity away are sent on after it.
#[test]
fn a_message_follows_an_entity_handed_off_on_its_way() {
    let mut m = mesh(122.0, 6.0, (3, 92));
    let mut now = Instant::ZERO;
    for _ in 0..100 {
        step(&mut m.zones, &mut now);
    }
    assert!(
        m.zones[1].entities().slot_of(EntityID(TARGET)).is_some(),
        "the target crossed into zone 1"
    );
    assert!(m.refused.lock().unwrap().is_empty(), "{:?}", m.refused);
    let got = m.got.lock().unwrap();
    let mut numbers: Vec<u8> = got.iter().map(|g| g.2.payload()[1]).collect();
    assert!(
        got.iter().all(|g| g.1),
        "delivered where not owned: {got:?}"
    );
    numbers.sort_unstable();
    assert_eq!(numbers, (0..90).collect::<Vec<u8>>(), "each once");
    let by = |z: u32| got.iter().filter(|g| g.0 == z).count();
    assert!(by(0) > 0 && by(1) > 0, "delivered by both zones: {got:?}");
    let c0 = m.zones[0].counters();
    assert!(c0.game_messages_forwarded > 0, "none forwarded: {c0:?}");
    assert_eq!(
        c0.game_messages_undeliverable + m.zones[1].counters().game_messages_undeliverable,
        0
    );
}

/// What a game cannot send: too long, or to an entity its zone does not know. A message
/// to an entity removed before it arrives is counted lost, never handed to a game.
#[test]
fn a_message_to_nothing_is_refused_or_counted_lost() {
    let (_, mut zones) = two_zones();
    let got = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    for (z, zone) in zones.iter_mut().enumerate() {
        zone.set_game(Box::new(Mail {
            sends: (z == 1).then_some((3, 3)),
            also: None,
            number: 0,
            got: Arc::clone(&got),
            refused: Arc::clone(&refused),
        }));
    }
    zones[1].insert(&entity(SENDER, 136.0, 0.0)).unwrap();
    zones[0].insert(&entity(TARGET, 120.0, 0.0)).unwrap();
    let mut now = Instant::ZERO;
    step(&mut zones, &mut now);
    step(&mut zones, &mut now);
    // Ghosted to zone 1 by now; gone from zone 0 before the message of tick 3 arrives.
    step(&mut zones, &mut now);
    zones[0].remove(EntityID(TARGET)).unwrap();
    for _ in 0..5 {
        step(&mut zones, &mut now);
    }
    assert!(got.lock().unwrap().is_empty(), "{got:?}");
    assert!(refused.lock().unwrap().is_empty(), "{refused:?}");
    assert_eq!(zones[1].counters().game_messages_sent, 1);
    assert_eq!(zones[0].counters().game_messages_undeliverable, 1);

    struct Once(Arc<Mutex<Vec<MessageError>>>);
    impl Game for Once {
        fn systems(&mut self, world: &mut GameWorld<'_>) {
            let mut r = self.0.lock().unwrap();
            r.push(
                world
                    .send_message(EntityID(SENDER), None, &[0; 25])
                    .unwrap_err(),
            );
            r.push(world.send_message(EntityID(99), None, b"x").unwrap_err());
        }
    }
    let refused = Arc::new(Mutex::new(Vec::new()));
    zones[1].set_game(Box::new(Once(Arc::clone(&refused))));
    step(&mut zones, &mut now);
    assert_eq!(
        *refused.lock().unwrap(),
        [MessageError::TooLong, MessageError::Unknown]
    );
}

/// [`step`], with the datagrams from zone `from` to zone `to` sent at a tick `cut` says
/// (tick, from, to) lost on the way; each delivered with its sender's run, as a node's
/// router and the simulator deliver them (so a zone learns its peers' runs).
fn step_losing(
    zones: &mut [meridian_core::zone::Zone],
    now: &mut Instant,
    cut: impl Fn(u64, u32, u32) -> bool,
) {
    use meridian_core::net::Peer;
    *now = *now + zones[0].world().tick_duration();
    for zone in zones.iter_mut() {
        zone.tick(*now);
        for _ in zone.drain_log() {}
    }
    let mut buf = [0u8; 1500];
    for from in 0..zones.len() {
        let (tick, run) = (zones[from].tick_count(), zones[from].incarnation());
        while let Some(t) = zones[from].poll_transmit(&mut buf) {
            if let Peer::Zone(to) = t.to
                && !cut(tick, from as u32, to.0)
            {
                let sender = ZoneID(from as u32);
                zones[to.0 as usize].handle_zone_datagram(*now, sender, run, &buf[..t.len]);
            }
        }
    }
}

/// Zone 1's game sends ten messages to a ghost (ticks 5–14) while everything zone 1 sends
/// zone 0 is lost until tick 9, and everything back — the acks — from tick 10 to 20:
/// each message is sent again until acknowledged, zone 0's game gets each once, and the
/// resends of those it had already taken are dropped as copies. Then zone
/// 0 hears nothing from zone 1 for good: the messages of ticks 30–34 are sent
/// `SENDS_MAX` times each, counted unacknowledged, and none is handed over. (Messages
/// are not ordered across a loss: a resend may arrive after a message sent later.)
#[test]
fn a_message_whose_datagram_is_lost_is_sent_again_until_acknowledged() {
    use meridian_core::game::messages::SENDS_MAX;
    let mut m = mesh(120.0, 0.0, (5, 14));
    let mut now = Instant::ZERO;
    let lossy = |tick: u64, from: u32, _: u32| match from {
        1 => tick <= 9,
        _ => (10..=20).contains(&tick),
    };
    for _ in 0..60 {
        step_losing(&mut m.zones, &mut now, lossy);
    }
    let got = m.got.lock().unwrap().clone();
    // Each once (in the order their sends got through: a resend may come after a message
    // sent later).
    let mut numbers: Vec<u8> = got.iter().map(|(.., msg, _)| msg.payload()[1]).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..10).collect::<Vec<u8>>(), "{got:?}");
    assert!(got.iter().all(|&(zone, owned, ..)| zone == 0 && owned));
    let (c0, c1) = (m.zones[0].counters(), m.zones[1].counters());
    assert_eq!(
        (c1.game_messages_sent, c0.game_messages_delivered),
        (10, 10)
    );
    assert!(c1.game_messages_resent >= 10, "{c1:?}");
    assert!(
        c0.duplicates_ignored >= 5,
        "the resends after the lost acks: {c0:?}"
    );
    assert_eq!(c1.game_messages_unacknowledged, 0);
    // Zone 1 cut off from zone 0 for good; its game sends five more.
    let mut m = mesh(120.0, 0.0, (30, 34));
    for _ in 0..100 {
        step_losing(&mut m.zones, &mut now, |tick, from, _| {
            from == 1 && tick >= 25
        });
    }
    let c1 = m.zones[1].counters();
    assert!(m.got.lock().unwrap().is_empty());
    assert_eq!(c1.game_messages_sent, 5);
    assert_eq!(c1.game_messages_resent, 5 * u64::from(SENDS_MAX - 1));
    assert_eq!(c1.game_messages_unacknowledged, 5);
}

/// Zone 1's game sends zone 0's entity one message; zone 0's game takes it, but its acks
/// are lost, and zone 0 restarts (a new run, which forgets the names of what the old one
/// took) while zone 1 is still resending. The new run drops the resends — addressed to
/// its old run — and counts them; the message is handed to a game once. A message sent
/// after zone 1 heard of the new run is taken. With such hops taken anyway
/// (`Bugs::take_stale_hops`), the resend is handed over a second time.
#[test]
fn a_restarted_zone_drops_the_resends_of_what_its_old_run_took() {
    use meridian_core::bugs::Bugs;
    let handed = |bugs: Bugs| {
        let mut m = mesh(120.0, 0.0, (5, 5));
        m.zones[1].set_game(Box::new(Mail {
            sends: Some((5, 5)),
            also: Some(60),
            number: 0,
            got: Arc::clone(&m.got),
            refused: Arc::clone(&m.refused),
        }));
        let mut now = Instant::ZERO;
        // Everything zone 0 sends from the tick it takes the message on (its ghosts
        // before that: zone 1 must see the entity) until its tick 40 — its acks with it.
        let acks_lost = |tick: u64, from: u32, _: u32| from == 0 && (6..=40).contains(&tick);
        for _ in 0..8 {
            step_losing(&mut m.zones, &mut now, acks_lost);
        }
        assert_eq!(m.got.lock().unwrap().len(), 1, "the old run took it");
        // Zone 0 restarts as its next run, the entity restored.
        let world = *m.zones[0].world();
        let limits = meridian_core::limits::Limits::for_entities(256);
        let config = meridian_core::handoff::HandoffConfig::default();
        let mut zone =
            meridian_core::zone::Zone::with_config(&world, ZoneID(0), limits, config, now, 1)
                .unwrap();
        zone.set_bugs(bugs);
        zone.insert(&entity(TARGET, 120.0, 0.0)).unwrap();
        zone.set_game(Box::new(Mail {
            sends: None,
            also: None,
            number: 0,
            got: Arc::clone(&m.got),
            refused: Arc::clone(&m.refused),
        }));
        m.zones[0] = zone;
        for _ in 0..40 {
            step_losing(&mut m.zones, &mut now, acks_lost);
        }
        let dropped = m.zones[0].counters().game_messages_dropped;
        // At its tick 60 zone 1's game sends one more, having heard of zone 0's new run.
        for _ in 0..30 {
            step_losing(&mut m.zones, &mut now, |_, _, _| false);
        }
        let got = m.got.lock().unwrap();
        let numbers: Vec<u8> = got.iter().map(|(.., msg, _)| msg.payload()[1]).collect();
        (numbers, dropped)
    };
    let (numbers, dropped) = handed(Bugs::default());
    assert_eq!(numbers, [0, 1], "once each");
    assert!(dropped >= 1, "the resend to the old run: {dropped}");
    let (numbers, _) = handed(Bugs {
        take_stale_hops: true,
        ..Bugs::default()
    });
    assert_eq!(numbers, [0, 0, 1], "taken again, broken");
}

/// A zone that stops for good (a clean stop, a move to its standby) while messages it sent
/// wait for their acks counts them unacknowledged: zone 1's game sends five (ticks 30–34)
/// that zone 0 never acknowledges, and zone 1 stops at tick 36, before it would have
/// given any up. Nothing is lost uncounted.
#[test]
fn a_zone_that_stops_counts_what_its_mailbox_still_held() {
    let mut m = mesh(120.0, 0.0, (30, 34));
    let mut now = Instant::ZERO;
    for _ in 0..36 {
        step_losing(&mut m.zones, &mut now, |tick, from, _| {
            from == 1 && tick >= 25
        });
    }
    let before = m.zones[1].counters();
    assert_eq!(
        (
            before.game_messages_sent,
            before.game_messages_unacknowledged
        ),
        (5, 0)
    );
    m.zones[1].stop_messages();
    assert_eq!(m.zones[1].counters().game_messages_unacknowledged, 5);
    assert!(m.got.lock().unwrap().is_empty());
}
