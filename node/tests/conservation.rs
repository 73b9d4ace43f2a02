//! Conservation of entities over a consistent cut of ownership (`Node::freeze`, the admin
//! `/entities`): every zone sampled while none of them moved, so each entity must show
//! exactly once as owned — or only as in flight (relinquished, its COMMIT on the way) —
//! and never at two epochs.

use std::collections::{BTreeMap, BTreeSet};

use meridian_core::entities::EntityID;
use meridian_core::world::ZoneID;

/// One zone's part of a cut.
#[derive(Debug, Default)]
pub(crate) struct ZoneCut {
    pub(crate) zone: u32,
    /// (entity id, epoch) of every owned entity.
    pub(crate) owned: Vec<(u64, u32)>,
    /// (entity id, the epoch it was handed off at) of every relinquished entity whose DONE
    /// has not arrived.
    pub(crate) in_flight: Vec<(u64, u32)>,
}

/// The ids of the NPCs a node spawns: `per_zone` in each of `zones`, minted by each zone
/// from counter 0.
pub(crate) fn npc_ids(zones: &[u32], per_zone: u64) -> BTreeSet<u64> {
    zones
        .iter()
        .flat_map(|&z| (0..per_zone).map(move |i| EntityID::new(ZoneID(z), i).0))
        .collect()
}

/// Everything wrong with `cut` given the ids that must exist (none when it is sound).
pub(crate) fn check_cut(cut: &[ZoneCut], expected: &BTreeSet<u64>) -> Vec<String> {
    let mut owned: BTreeMap<u64, Vec<(u32, u32)>> = BTreeMap::new();
    let mut in_flight: BTreeMap<u64, Vec<(u32, u32)>> = BTreeMap::new();
    for zone in cut {
        for &(id, epoch) in &zone.owned {
            owned.entry(id).or_default().push((zone.zone, epoch));
        }
        for &(id, epoch) in &zone.in_flight {
            in_flight.entry(id).or_default().push((zone.zone, epoch));
        }
    }
    let mut problems = Vec::new();
    for (id, owners) in &owned {
        if owners.len() > 1 {
            problems.push(format!(
                "entity {id} owned {} times (zone, epoch): {owners:?}",
                owners.len()
            ));
        }
        let newest_handoff = in_flight.get(id).into_iter().flatten().map(|e| e.1).max();
        if let Some(handed) = newest_handoff
            && owners.iter().any(|&(_, epoch)| epoch < handed)
        {
            problems.push(format!(
                "entity {id} still owned at {owners:?} after it was handed off at epoch {handed}"
            ));
        }
    }
    for (id, sources) in &in_flight {
        let epochs: BTreeSet<u32> = sources.iter().map(|e| e.1).collect();
        if epochs.len() != sources.len() {
            problems.push(format!(
                "entity {id} in flight twice at one epoch: {sources:?}"
            ));
        }
    }
    for id in expected {
        if !owned.contains_key(id) && !in_flight.contains_key(id) {
            problems.push(format!("entity {id} missing: neither owned nor in flight"));
        }
    }
    for id in owned.keys().chain(in_flight.keys()) {
        if !expected.contains(id) {
            problems.push(format!("entity {id} was never spawned"));
        }
    }
    problems
}

/// The admin `/entities` (or `/freeze`) body as zone cuts.
pub(crate) fn parse_cut(body: &str) -> Vec<ZoneCut> {
    let mut zones: Vec<ZoneCut> = Vec::new();
    for line in body.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["zone", z, "tick", ..] => zones.push(ZoneCut {
                zone: z.parse().unwrap(),
                ..ZoneCut::default()
            }),
            ["owned", id, epoch] => zones
                .last_mut()
                .unwrap()
                .owned
                .push((id.parse().unwrap(), epoch.parse().unwrap())),
            ["in_flight", id, epoch] => zones
                .last_mut()
                .unwrap()
                .in_flight
                .push((id.parse().unwrap(), epoch.parse().unwrap())),
            _ => panic!("unexpected line {line:?}"),
        }
    }
    zones
}

/// Panics with the first problems of sample `sample` if the cut is not sound.
pub(crate) fn assert_sound(cut: &[ZoneCut], expected: &BTreeSet<u64>, sample: u32) {
    let problems = check_cut(cut, expected);
    assert!(
        problems.is_empty(),
        "sample {sample}: {} problems, first: {:?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
}

#[test]
fn the_checker_flags_duplicates_losses_stale_owners_and_strangers() {
    let expected: BTreeSet<u64> = [1, 2, 3].into();
    let sound = [
        ZoneCut {
            zone: 0,
            owned: vec![(1, 0)],
            in_flight: vec![(2, 1)],
        },
        ZoneCut {
            zone: 1,
            owned: vec![(2, 1), (3, 4)],
            in_flight: vec![],
        },
    ];
    assert!(check_cut(&sound, &expected).is_empty());
    let bad = |owned0: Vec<(u64, u32)>, flight0: Vec<(u64, u32)>, owned1: Vec<(u64, u32)>| {
        let cut = [
            ZoneCut {
                zone: 0,
                owned: owned0,
                in_flight: flight0,
            },
            ZoneCut {
                zone: 1,
                owned: owned1,
                in_flight: vec![],
            },
        ];
        check_cut(&cut, &expected)
    };
    // Owned twice at the same epoch, and at two epochs.
    assert!(!bad(vec![(1, 0), (2, 0)], vec![], vec![(2, 0), (3, 0)]).is_empty());
    assert!(!bad(vec![(1, 0), (2, 0)], vec![], vec![(2, 1), (3, 0)]).is_empty());
    // Still owned after being handed off.
    assert!(!bad(vec![(1, 0), (2, 0)], vec![(2, 1)], vec![(3, 0)]).is_empty());
    // Lost, and never spawned.
    assert!(!bad(vec![(1, 0)], vec![], vec![(3, 0)]).is_empty());
    assert!(!bad(vec![(1, 0), (2, 0)], vec![], vec![(3, 0), (9, 0)]).is_empty());
}
