//! Grid queries equal brute force, across ticks of movement, inserts and removals.

use meridian_core::grid::{Grid, Packed};
use meridian_core::limits::Limits;
use meridian_core::time::Instant;
use meridian_core::world::Rect;
use meridian_core::world::ZoneID;
use meridian_core::zone::Zone;
use proptest::prelude::*;
use rand::Rng;
use wide::f32x8;

use crate::support;

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

/// Drives a grid directly: random points jittering, jumping, appearing and vanishing.
fn grid_matches_brute_force(seed: u64) {
    let mut rng = support::rng(seed);
    let cell = rng.random_range(2.0..50.0f32);
    let (columns, rows) = (rng.random_range(1..40u32), rng.random_range(1..40u32));
    let area = Rect::new(0.0, 0.0, columns as f32 * cell, rows as f32 * cell);
    let capacity = rng.random_range(1..600usize);
    let mut grid = Grid::new(area.x_min, area.y_min, cell, columns, rows, capacity);
    let mut x = vec![f32x8::splat(0.0); capacity.div_ceil(8)];
    let mut y = x.clone();
    let mut len = 0usize;
    // One packed copy for the whole run, refreshed once a step: its queries fill cells as
    // they reach them, later ones reuse them, and the next step's refresh makes every
    // cell stale again.
    let mut packed = Packed::new(&grid);
    for _step in 0..30 {
        let xs: &mut [f32] = bytemuck::cast_slice_mut(&mut x);
        let ys: &mut [f32] = bytemuck::cast_slice_mut(&mut y);
        // Insert some (points may lie outside the grid: edge cells take them).
        let add = rng.random_range(0..=(capacity - len).min(50));
        for _ in 0..add {
            xs[len] = rng.random_range(area.x_min - 30.0..area.x_max + 30.0);
            ys[len] = rng.random_range(area.y_min - 30.0..area.y_max + 30.0);
            len += 1;
        }
        // Move: most jitter, a few jump anywhere.
        for i in 0..len {
            if rng.random_bool(0.05) {
                xs[i] = rng.random_range(area.x_min..area.x_max);
                ys[i] = rng.random_range(area.y_min..area.y_max);
            } else {
                xs[i] += rng.random_range(-1.0..1.0f32);
                ys[i] += rng.random_range(-1.0..1.0f32);
            }
        }
        grid.update(&x, &y, len);
        grid.verify(&x, &y);
        // Remove some by swap-remove, as the entity store does.
        let remove = rng.random_range(0..=len.min(20));
        for _ in 0..remove {
            let slot = rng.random_range(0..len);
            let last = len - 1;
            let xs: &mut [f32] = bytemuck::cast_slice_mut(&mut x);
            let ys: &mut [f32] = bytemuck::cast_slice_mut(&mut y);
            xs[slot] = xs[last];
            ys[slot] = ys[last];
            grid.swap_remove(slot as u32, (slot != last).then_some(last as u32));
            len -= 1;
        }
        let xs: &[f32] = &bytemuck::cast_slice::<f32x8, f32>(&x)[..len];
        let ys: &[f32] = &bytemuck::cast_slice::<f32x8, f32>(&y)[..len];
        packed.refresh(&grid, (xs, ys));
        for _ in 0..10 {
            let (cx, cy) = (
                rng.random_range(area.x_min - 50.0..area.x_max + 50.0),
                rng.random_range(area.y_min - 50.0..area.y_max + 50.0),
            );
            let r = rng.random_range(0.0..area.width().max(area.height()) / 2.0);
            let mut got = Vec::new();
            grid.for_each_in_radius(xs, ys, cx, cy, r, |s| got.push(s));
            let want: Vec<u32> = (0..len as u32)
                .filter(|&s| {
                    let (dx, dy) = (xs[s as usize] - cx, ys[s as usize] - cy);
                    dx * dx + dy * dy <= r * r
                })
                .collect();
            assert_eq!(
                sorted(got),
                want.clone(),
                "seed {seed}: radius query ({cx}, {cy}, {r})"
            );

            let mut got = Vec::new();
            packed.for_each_in_radius(&grid, (xs, ys), (cx, cy, r), |s| got.push(s));
            assert_eq!(
                sorted(got),
                want,
                "seed {seed}: packed radius query ({cx}, {cy}, {r})"
            );

            let rect = Rect::new(cx, cy, cx + r, cy + r * 0.5);
            let mut got = Vec::new();
            grid.for_each_in_rect(xs, ys, rect, |s| got.push(s));
            let want: Vec<u32> = (0..len as u32)
                .filter(|&s| rect.contains(xs[s as usize], ys[s as usize]))
                .collect();
            assert_eq!(sorted(got), want, "seed {seed}: rect query {rect:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn grid_queries_equal_brute_force(seed: u64) {
        grid_matches_brute_force(seed);
    }

    /// The same through a whole zone: movement, grid update and removals together.
    #[test]
    fn zone_queries_equal_brute_force(seed: u64) {
        let mut rng = support::rng(seed);
        let world = support::world(&mut rng, 2, 2, 600.0);
        let zone_id = ZoneID(rng.random_range(0..4));
        let mut zone = Zone::new(&world, zone_id, Limits::for_entities(500), Instant::ZERO).unwrap();
        let rect = world.zone_rect(zone_id);
        for id in 0..rng.random_range(1..500u64) {
            zone.insert(&support::entity(&mut rng, id, rect, 20.0, 40.0)).unwrap();
        }
        for _ in 0..20 {
            zone.tick(Instant::ZERO);
            let crossing: Vec<_> = zone.crossings().iter().map(|c| zone.entities().ids()[c.slot as usize]).collect();
            for id in crossing.into_iter().take(5) {
                zone.remove(id);
            }
            // Queries see the index as of the tick; removals are followed immediately.
            let (xs, ys) = (zone.entities().xs(), zone.entities().ys());
            let (cx, cy) = (rng.random_range(rect.x_min..rect.x_max), rng.random_range(rect.y_min..rect.y_max));
            let r = rng.random_range(0.0..200.0f32);
            let mut got = Vec::new();
            zone.query_radius(cx, cy, r, |s| got.push(s));
            let want: Vec<u32> = (0..xs.len() as u32)
                .filter(|&s| {
                    let (dx, dy) = (xs[s as usize] - cx, ys[s as usize] - cy);
                    dx * dx + dy * dy <= r * r
                })
                .collect();
            prop_assert_eq!(sorted(got), want);
        }
    }
}

/// A flash crowd piles every entity into one cell: buckets overflow, the grid rebuilds,
/// and queries stay exact.
#[test]
fn overflowing_bucket_triggers_rebuild() {
    let cap = 1000;
    let mut grid = Grid::new(0.0, 0.0, 10.0, 10, 10, cap);
    let mut x = vec![f32x8::splat(0.0); cap / 8];
    let mut y = x.clone();
    {
        let xs: &mut [f32] = bytemuck::cast_slice_mut(&mut x);
        let ys: &mut [f32] = bytemuck::cast_slice_mut(&mut y);
        for i in 0..cap {
            xs[i] = (i % 100) as f32 + 0.5;
            ys[i] = (i / 10 % 100) as f32 + 0.5;
        }
    }
    grid.update(&x, &y, cap);
    let rebuilds = grid.stats().rebuilds;
    // Move 5 % (under the full-rebuild fraction) into one cell: its bucket overflows.
    {
        let xs: &mut [f32] = bytemuck::cast_slice_mut(&mut x);
        let ys: &mut [f32] = bytemuck::cast_slice_mut(&mut y);
        for i in 0..50 {
            xs[i * 20] = 55.0;
            ys[i * 20] = 55.0;
        }
    }
    grid.update(&x, &y, cap);
    grid.verify(&x, &y);
    assert_eq!(grid.stats().rebuilds, rebuilds + 1);
    let mut found = 0;
    grid.for_each_in_radius(
        bytemuck::cast_slice(&x),
        bytemuck::cast_slice(&y),
        55.0,
        55.0,
        0.0,
        |_| found += 1,
    );
    assert_eq!(found, 50);
}

/// Regression (found by the `zone_tick` bench): an entity inserted after the last grid
/// update and then swap-removed — or moved into a freed slot — before the next update
/// used to trip the grid's slot bookkeeping.
#[test]
fn regress_remove_after_insert_before_update() {
    let mut rng = support::rng(11);
    let world = support::world(&mut rng, 2, 1, 800.0);
    let mut zone = Zone::new(&world, ZoneID(0), Limits::for_entities(64), Instant::ZERO).unwrap();
    let rect = world.zone_rect(ZoneID(0));
    for id in 0..40 {
        zone.insert(&support::entity(&mut rng, id, rect, 0.0, 5.0))
            .unwrap();
    }
    zone.tick(Instant::ZERO);
    for round in 0..5u64 {
        // Insert three, then remove an old one (moves a new one into its slot), then a
        // new one (never filed), before the next tick.
        for k in 0..3 {
            zone.insert(&support::entity(
                &mut rng,
                1000 + round * 10 + k,
                rect,
                0.0,
                5.0,
            ))
            .unwrap();
        }
        zone.remove(meridian_core::entities::EntityID(round))
            .unwrap();
        zone.remove(meridian_core::entities::EntityID(1000 + round * 10 + 1))
            .unwrap();
        zone.tick(Instant::ZERO);
        let (x, y) = zone.entities().position_lanes();
        zone.grid().verify(x, y);
    }
    assert_eq!(zone.entities().len(), 40 + 5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `block_around`'s count and distance bound the nearest entities: at least `count`
    /// entities lie within the distance it returns (those it counted).
    #[test]
    fn block_around_bounds_the_nearest(seed in any::<u64>(), k in 0u32..3) {
        let mut rng = support::rng(seed);
        let cell = rng.random_range(2.0..50.0f32);
        let (columns, rows) = (rng.random_range(1..20u32), rng.random_range(1..20u32));
        let area = Rect::new(0.0, 0.0, columns as f32 * cell, rows as f32 * cell);
        let len = rng.random_range(0..400usize);
        let mut x = vec![f32x8::splat(0.0); len.div_ceil(8).max(1)];
        let mut y = x.clone();
        {
            let xs: &mut [f32] = bytemuck::cast_slice_mut(&mut x);
            let ys: &mut [f32] = bytemuck::cast_slice_mut(&mut y);
            for i in 0..len {
                xs[i] = rng.random_range(area.x_min..area.x_max);
                ys[i] = rng.random_range(area.y_min..area.y_max);
            }
        }
        let mut grid = Grid::new(area.x_min, area.y_min, cell, columns, rows, len.max(1));
        grid.update(&x, &y, len);
        let (xs, ys): (&[f32], &[f32]) = (bytemuck::cast_slice(&x), bytemuck::cast_slice(&y));
        for _ in 0..20 {
            let (px, py) = (
                rng.random_range(area.x_min - 20.0..area.x_max + 20.0),
                rng.random_range(area.y_min - 20.0..area.y_max + 20.0),
            );
            let (count, within) = grid.block_around(px, py, k);
            let inside = (0..len)
                .filter(|&i| ((xs[i] - px).powi(2) + (ys[i] - py).powi(2)).sqrt() <= within + 1e-3)
                .count();
            prop_assert!(inside >= count as usize, "{inside} within {within} m, counted {count}");
        }
    }
}
