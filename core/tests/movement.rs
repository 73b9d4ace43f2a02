//! SIMD movement equals the scalar reference.

use meridian_core::movement::{integrate, integrate_scalar};
use meridian_core::world::Rect;
use proptest::prelude::*;
use wide::f32x8;

fn lanes(v: &[f32]) -> Vec<f32x8> {
    let mut out = vec![f32x8::splat(0.0); v.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<f32x8, f32>(&mut out)[..v.len()].copy_from_slice(v);
    out
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn simd_equals_scalar(
        bodies in proptest::collection::vec(
            (-2000.0f32..2000.0, -2000.0f32..2000.0, -50.0f32..50.0, -50.0f32..50.0, 0.0f32..30.0),
            0..300,
        ),
        dt in 0.001f32..0.2,
        ticks in 1usize..20,
    ) {
        let bounds = Rect::new(-1000.0, -1500.0, 1500.0, 1000.0);
        let mut x: Vec<f32> = bodies.iter().map(|b| b.0).collect();
        let mut y: Vec<f32> = bodies.iter().map(|b| b.1).collect();
        let mut vx: Vec<f32> = bodies.iter().map(|b| b.2).collect();
        let mut vy: Vec<f32> = bodies.iter().map(|b| b.3).collect();
        let s: Vec<f32> = bodies.iter().map(|b| b.4).collect();
        let (mut lx, mut ly, mut lvx, mut lvy, ls) = (lanes(&x), lanes(&y), lanes(&vx), lanes(&vy), lanes(&s));
        for _ in 0..ticks {
            integrate_scalar(&mut x, &mut y, &mut vx, &mut vy, &s, dt, bounds);
            integrate(&mut lx, &mut ly, &mut lvx, &mut lvy, &ls, dt, bounds);
        }
        let n = x.len();
        let columns = [(&x, &lx), (&y, &ly), (&vx, &lvx), (&vy, &lvy)];
        for (scalar, simd) in columns {
            let simd: &[f32] = &bytemuck::cast_slice::<f32x8, f32>(simd)[..n];
            for i in 0..n {
                prop_assert!(close(scalar[i], simd[i]), "slot {}: {} vs {}", i, scalar[i], simd[i]);
            }
        }
        for i in 0..n {
            // The clamps hold: inside bounds, at most the speed limit (plus rounding).
            prop_assert!(x[i] >= bounds.x_min && x[i] <= bounds.x_max);
            prop_assert!(y[i] >= bounds.y_min && y[i] <= bounds.y_max);
            prop_assert!((vx[i] * vx[i] + vy[i] * vy[i]).sqrt() <= s[i] * 1.0001 + 1e-6);
        }
    }
}
