//! The SIMD border pass equals the scalar reference.

use meridian_core::borders::{BorderOutput, Borders, border_pass, border_pass_scalar};
use meridian_core::limits::Limits;
use meridian_core::world::ZoneID;
use proptest::prelude::*;
use rand::Rng;
use wide::f32x8;

use crate::support;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn simd_equals_scalar(seed: u64, zones_x in 1u32..4, zones_y in 1u32..4, n in 0usize..400) {
        let mut rng = support::rng(seed);
        let world = support::world(&mut rng, zones_x, zones_y, 900.0);
        let zone = ZoneID(rng.random_range(0..zones_x * zones_y));
        let rect = world.zone_rect(zone);
        let borders = Borders::new(&world, zone);
        let mut x = vec![f32x8::splat(0.0); n.div_ceil(8)];
        let mut y = x.clone();
        {
            let xs: &mut [f32] = bytemuck::cast_slice_mut(&mut x);
            let ys: &mut [f32] = bytemuck::cast_slice_mut(&mut y);
            for i in 0..n {
                // Concentrate near the borders, where the interesting cases are.
                xs[i] = rng.random_range(rect.x_min - 60.0..rect.x_max + 60.0);
                ys[i] = rng.random_range(rect.y_min - 60.0..rect.y_max + 60.0);
                if rng.random_bool(0.3) {
                    xs[i] = if rng.random_bool(0.5) { rect.x_min } else { rect.x_max } + rng.random_range(-45.0..45.0);
                }
            }
        }
        // Limits small enough that some seeds overflow, so drop counting is compared too.
        let cap = rng.random_range(1..=n.max(1)) as u32;
        let limits = Limits { crossing_count_max: cap, aura_count_max: cap, ..Limits::for_entities(n.max(1) as u32) };
        let mut simd = BorderOutput::new(&limits);
        let mut scalar = BorderOutput::new(&limits);
        border_pass(&x, &y, n, &borders, &mut simd);
        let xs: &[f32] = &bytemuck::cast_slice::<f32x8, f32>(&x)[..n];
        let ys: &[f32] = &bytemuck::cast_slice::<f32x8, f32>(&y)[..n];
        border_pass_scalar(xs, ys, &borders, &mut scalar);
        prop_assert_eq!(simd.crossings(), scalar.crossings());
        for k in 0..borders.neighbours().len() {
            prop_assert_eq!(simd.aura(k), scalar.aura(k));
        }
        prop_assert_eq!(simd.crossings_dropped, scalar.crossings_dropped);
        prop_assert_eq!(simd.aura_dropped, scalar.aura_dropped);
        // Every crossing's target is a zone that really contains it.
        for c in simd.crossings() {
            let (cx, cy) = (xs[c.slot as usize], ys[c.slot as usize]);
            prop_assert!(!rect.expand(world.margin_m()).contains(cx, cy));
            prop_assert_ne!(c.target, zone);
        }
    }
}
