//! Lag compensation's history: positions rewound by tick through inserts, removals and
//! swap-removes, checked against a model that copies everything; rays rewound.

use std::collections::HashMap;

use meridian_core::entities::{Entities, EntityID, EntityInit};
use meridian_core::history::{History, Ray, RewindError};
use meridian_core::limits::Limits;
use meridian_core::world::Rect;
use proptest::prelude::*;

const BOUNDS: Rect = Rect {
    x_min: 0.0,
    y_min: 0.0,
    x_max: 1000.0,
    y_max: 1000.0,
};

fn entity(id: u64, x: f32, y: f32, vx: f32, vy: f32) -> EntityInit {
    EntityInit {
        id: EntityID(id),
        epoch: 0,
        position: [x, y, 0.0],
        velocity: [vx, vy],
        speed_mps_max: 10.0,
        kind: 0,
        flags: 0,
        payload: [0; 64],
    }
}

/// A tick of the model: each entity's position (what a full copy would have kept).
type Truth = HashMap<u64, [f32; 2]>;

fn truth(entities: &Entities) -> Truth {
    (0..entities.len())
        .map(|s| (entities.ids()[s].0, [entities.xs()[s], entities.ys()[s]]))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every entity that existed at a kept tick is found where it was then, through any
    /// mix of inserts, removals (swap-removes), re-inserts of a removed id and movement;
    /// one that did not exist then is not found; ticks outside the ring are refused.
    #[test]
    fn rewound_positions_match_a_full_copy(
        ops in prop::collection::vec((0u8..4, 0u64..40, 0.0f32..1000.0, 0.0f32..1000.0), 1..200),
        frames in 1usize..12,
    ) {
        let mut entities = Entities::new(&Limits::for_entities(64));
        entities.log_moves();
        let mut history = History::new(64, frames);
        let mut truths: Vec<(u64, Truth)> = Vec::new();
        let mut tick = 0u64;
        for (op, id, x, y) in ops {
            match op {
                // Insert (or, if present, remove: ids come back later).
                0 | 1 => match entities.slot_of(EntityID(id)) {
                    None => {
                        let _ = entities.insert(&entity(id, x, y, (x - 500.0) / 100.0, (y - 500.0) / 100.0));
                    }
                    Some(slot) => {
                        entities.swap_remove(slot);
                    }
                },
                // A tick: movement, then the record.
                _ => {
                    tick += 1;
                    entities.integrate(1.0 / 30.0, BOUNDS);
                    history.record(tick, &mut entities);
                    truths.push((tick, truth(&entities)));
                }
            }
        }
        for (t, truth) in &truths {
            let kept = history.kept().is_some_and(|(oldest, _)| *t >= oldest);
            for id in 0..40u64 {
                let got = history.position_at(&entities, EntityID(id), *t);
                if !kept {
                    prop_assert!(matches!(got, Err(RewindError::NotKept { .. })), "tick {t}: {got:?}");
                    continue;
                }
                prop_assert_eq!(got, Ok(truth.get(&id).copied()), "entity {} at tick {}", id, t);
            }
        }
        if let Some((_, newest)) = history.kept() {
            let future = history.position_at(&entities, EntityID(0), newest + 1);
            prop_assert!(matches!(future, Err(RewindError::Future { .. })), "{future:?}");
        }
    }
}

/// A ray rewound to the tick the shooter saw hits the target there, and misses where it is
/// now; one aimed a body-width off misses; the first entity along the ray is the hit.
#[test]
fn a_rewound_ray_hits_where_the_target_was() {
    let mut entities = Entities::new(&Limits::for_entities(16));
    entities.log_moves();
    let mut history = History::new(16, 30);
    // The target runs north at 6 m/s across x = 100; a bystander stands behind it.
    entities.insert(&entity(7, 100.0, 0.0, 0.0, 6.0)).unwrap();
    entities.insert(&entity(9, 100.0, 300.0, 0.0, 0.0)).unwrap();
    for tick in 1..=30u64 {
        entities.integrate(1.0 / 30.0, BOUNDS);
        history.record(tick, &mut entities);
    }
    // At tick 12 the target was at y = 2.4 (12 ticks × 0.2 m); now (tick 30) at 6.
    let then = history
        .position_at(&entities, EntityID(7), 12)
        .unwrap()
        .unwrap();
    assert!((then[1] - 2.4).abs() < 1e-3, "{then:?}");
    let aim = |y: f32| Ray {
        origin: [0.0, y],
        direction: [1.0, 0.0],
        length_m: 500.0,
        radius_m: 0.5,
    };
    let candidates = [EntityID(7), EntityID(9)];
    let hit = history
        .ray_at(&entities, &aim(2.4), 12, candidates)
        .unwrap()
        .unwrap();
    assert_eq!(hit.id, EntityID(7));
    assert!((hit.distance_m - 99.5).abs() < 1e-3, "{hit:?}");
    assert_eq!(
        history
            .ray_at(&entities, &aim(2.4), 30, candidates)
            .unwrap(),
        None,
        "now it is elsewhere"
    );
    assert_eq!(
        history
            .ray_at(&entities, &aim(3.4), 12, candidates)
            .unwrap(),
        None,
        "a body-width off"
    );
    // Along the target's own path (north from the origin), the target is first.
    let along = Ray {
        origin: [100.0, -10.0],
        direction: [0.0, 1.0],
        length_m: 400.0,
        radius_m: 0.5,
    };
    let first = history
        .ray_at(&entities, &along, 12, candidates)
        .unwrap()
        .unwrap();
    assert_eq!(first.id, EntityID(7));
    // The candidates a caller must search: the ray's box grown by the speed × the age.
    let reach = History::ray_reach(&aim(2.4), 6.0, 18.0 / 30.0);
    assert!(
        reach.contains(100.0, 6.0),
        "the target now is a candidate: {reach:?}"
    );
    // Older than the ring: refused.
    assert!(matches!(
        history.position_at(&entities, EntityID(7), 0),
        Err(RewindError::NotKept {
            oldest: Some(1),
            ..
        })
    ));
}

/// Two zones side by side, both recording; a target runs east across the border while a
/// shooter in the west zone fires at where it saw it 5 ticks (and 5.5 ticks) before: the
/// west zone's rewound ray hits it both while the west zone owned it and after it crossed
/// (a ghost there), a shot a body-width off misses, and a shot older than the maximum
/// rewind is refused and counted.
#[test]
fn a_rewound_shot_across_a_border_hits_the_ghost() {
    use meridian_core::time::Instant;
    let (_, mut zones) = crate::support::two_zones();
    for zone in &mut zones {
        zone.enable_rewind(30, 8.0);
    }
    const TARGET: u64 = 1 << 20;
    zones[0]
        .insert(&entity(TARGET, 118.0, 64.0, 6.0, 0.0))
        .unwrap();
    let mut now = Instant::ZERO;
    // Per tick: where the target was and which zone owned it (none while in flight).
    let mut truth: Vec<Option<(u64, [f32; 2], usize)>> = Vec::new();
    let (mut hits_owned, mut hits_ghost) = (0, 0);
    for _ in 0..90 {
        crate::support::step(&mut zones, &mut now);
        let tick = zones[0].tick_count();
        truth.push(
            (0..2)
                .find(|&z| zones[z].entities().slot_of(EntityID(TARGET)).is_some())
                .map(|owner| {
                    let e = zones[owner].entities();
                    let slot = e.slot_of(EntityID(TARGET)).unwrap() as usize;
                    (tick, [e.xs()[slot], e.ys()[slot]], owner)
                }),
        );
        if truth.len() <= 6 {
            continue;
        }
        // The shooter in the west zone saw the target 5 ticks ago, and half a tick later.
        for back in [5.0, 5.5] {
            let at = tick as f64 - back;
            let (Some((t0, p0, owner_then)), Some((_, p1, _))) = (
                truth[truth.len() - 1 - back.ceil() as usize],
                truth[truth.len() - 1 - back.floor() as usize],
            ) else {
                continue; // In flight between the zones then.
            };
            let f = (at - t0 as f64) as f32;
            let seen = [p0[0] + (p1[0] - p0[0]) * f, p0[1] + (p1[1] - p0[1]) * f];
            let ray = |dy: f32| Ray {
                origin: [seen[0] - 30.0, seen[1] + dy],
                direction: [1.0, 0.0],
                length_m: 60.0,
                radius_m: 0.5,
            };
            let hit = zones[0].rewind_ray(&ray(0.0), at, 7.0).unwrap();
            let hit = hit.unwrap_or_else(|| panic!("tick {tick}, back {back}: missed"));
            assert_eq!(hit.id, EntityID(TARGET));
            // Where the west zone had it: exact while it owned it; as a ghost, up to a
            // tick of motion behind (ghosts arrive a tick late).
            let slack = if owner_then == 0 { 1e-3 } else { 0.21 };
            assert!(
                (hit.position[0] - seen[0]).abs() <= slack
                    && (hit.position[1] - seen[1]).abs() < 1e-3,
                "tick {tick}, back {back}: {hit:?} vs {seen:?}"
            );
            if owner_then == 0 {
                hits_owned += 1
            } else {
                hits_ghost += 1
            }
            assert_eq!(
                zones[0].rewind_ray(&ray(1.0), at, 7.0).unwrap(),
                None,
                "a body-width off"
            );
        }
    }
    assert!(
        hits_owned > 10 && hits_ghost > 10,
        "{hits_owned} owned, {hits_ghost} ghost"
    );
    // Older than the maximum rewind (8 ticks): refused, counted.
    let tick = zones[0].tick_count() as f64;
    let ray = Ray {
        origin: [0.0, 64.0],
        direction: [1.0, 0.0],
        length_m: 256.0,
        radius_m: 0.5,
    };
    assert!(matches!(
        zones[0].rewind_ray(&ray, tick - 9.0, 7.0),
        Err(meridian_core::queries::RefusedRewind::TooOld { .. })
    ));
    // A hostile time: not a number (refused as too old), in the future (not kept).
    assert!(matches!(
        zones[0].rewind_ray(&ray, f64::NAN, 7.0),
        Err(meridian_core::queries::RefusedRewind::TooOld { .. })
    ));
    assert!(matches!(
        zones[0].rewind_ray(&ray, tick + 0.5, 7.0),
        Err(meridian_core::queries::RefusedRewind::NotKept(
            RewindError::Future { .. }
        ))
    ));
    let c = zones[0].rewind_counters().unwrap();
    assert_eq!((c.refused_too_old, c.refused_not_kept), (2, 1));
    assert_eq!(c.hits, (hits_owned + hits_ghost) as u64);
}

/// In two busy zones — entities crossing the border both ways, handed off, ghosted and
/// unghosted every tick — every zone finds every entity it held (owned or a ghost) at each
/// kept tick exactly where it held it then.
#[test]
fn every_rewound_position_in_busy_zones_is_where_the_zone_held_it() {
    use meridian_core::time::Instant;
    let (world, mut zones) = crate::support::two_zones();
    let mut rng = crate::support::rng(7);
    for zone in &mut zones {
        zone.enable_rewind(30, 30.0);
    }
    for id in 1..=300u64 {
        let e = crate::support::entity(&mut rng, id, world.bounds(), 0.0, 8.0);
        let z = world.zone_at(e.position[0], e.position[1]).0 as usize;
        zones[z].insert(&e).unwrap();
    }
    let mut now = Instant::ZERO;
    // Per zone, per tick: what it held (owned and ghosts).
    let mut held: Vec<Vec<(u64, Truth)>> = vec![Vec::new(), Vec::new()];
    let mut checked = 0;
    for _ in 0..150 {
        crate::support::step(&mut zones, &mut now);
        for (z, zone) in zones.iter().enumerate() {
            let mut t = truth(zone.entities());
            t.extend(truth(zone.ghosts().entities()));
            held[z].push((zone.tick_count(), t));
            for (tick, truth) in held[z].iter().rev().take(20) {
                for (&id, &p) in truth {
                    let got = zone.rewind_position(EntityID(id), *tick as f64).unwrap();
                    assert_eq!(got, Some(p), "zone {z}: entity {id} at tick {tick}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100_000, "{checked}");
}

/// A ray rewound among the entities a game accepts passes through the others (the
/// shooter's own body where it stood, the crowd): the first accepted one is the hit.
#[test]
fn a_rewound_ray_passes_through_what_the_game_leaves_out() {
    use meridian_core::time::Instant;
    let (_, mut zones) = crate::support::two_zones();
    zones[0].enable_rewind(30, 8.0);
    zones[0].insert(&entity(1, 40.0, 64.0, 0.0, 0.0)).unwrap();
    zones[0].insert(&entity(2, 60.0, 64.0, 0.0, 0.0)).unwrap();
    let mut now = Instant::ZERO;
    for _ in 0..3 {
        crate::support::step(&mut zones, &mut now);
    }
    let ray = Ray {
        origin: [20.0, 64.0],
        direction: [1.0, 0.0],
        length_m: 60.0,
        radius_m: 0.5,
    };
    let at = zones[0].tick_count() as f64 - 1.0;
    let first = zones[0].rewind_ray(&ray, at, 1.0).unwrap().unwrap();
    assert_eq!(first.id, EntityID(1));
    let past = zones[0]
        .rewind_ray_where(&ray, at, 1.0, |id, _| id != EntityID(1))
        .unwrap()
        .unwrap();
    assert_eq!(past.id, EntityID(2));
    let none = zones[0]
        .rewind_ray_where(&ray, at, 1.0, |_, _| false)
        .unwrap();
    assert_eq!(none, None);
}
