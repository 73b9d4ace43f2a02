//! Movement: speed clamp, integration and world-bounds clamp, eight entities per step.
//!
//! For every entity, in this order:
//! 1. if `|v| > speed_mps_max`, scale `v` down to exactly `speed_mps_max` (a speed hack
//!    becomes a clamp, never a teleport);
//! 2. `p += v · dt`;
//! 3. if `p` left the world bounds on an axis, clamp it to the bound and reverse that
//!    axis' velocity, so server-driven walkers stay inside and keep moving.
//!
//! The kernel is a free function over column slices, so the profile names it and the
//! compiler sees no aliasing. Padding lanes have zero velocity and stay inert (their
//! position may be clamped to the bounds, which nobody reads). [`integrate_scalar`] is the
//! reference the SIMD kernel is tested against: the same operations in the same order, so
//! results agree to the bit, not just within a tolerance.

use wide::f32x8;

use crate::world::Rect;

/// The SIMD kernel. All slices must have the same length (in lanes).
pub fn integrate(
    x: &mut [f32x8],
    y: &mut [f32x8],
    vx: &mut [f32x8],
    vy: &mut [f32x8],
    speed_mps_max: &[f32x8],
    dt: f32,
    bounds: Rect,
) {
    let n = x.len();
    assert_eq!(y.len(), n);
    assert_eq!(vx.len(), n);
    assert_eq!(vy.len(), n);
    assert_eq!(speed_mps_max.len(), n);
    let dt = f32x8::splat(dt);
    let (x_min, x_max) = (f32x8::splat(bounds.x_min), f32x8::splat(bounds.x_max));
    let (y_min, y_max) = (f32x8::splat(bounds.y_min), f32x8::splat(bounds.y_max));
    for i in 0..n {
        let (mut vxi, mut vyi) = (vx[i], vy[i]);
        let smax = speed_mps_max[i];
        let speed_squared = vxi * vxi + vyi * vyi;
        let over = speed_squared.simd_gt(smax * smax);
        // Rare in practice; skipping the divide when no lane is over keeps the kernel
        // memory-bound instead of divider-bound.
        if over.any() {
            let scale = smax / speed_squared.sqrt();
            vxi = over.select(vxi * scale, vxi);
            vyi = over.select(vyi * scale, vyi);
        }
        let xi = x[i] + vxi * dt;
        let yi = y[i] + vyi * dt;
        let x_out = xi.simd_lt(x_min) | xi.simd_gt(x_max);
        let y_out = yi.simd_lt(y_min) | yi.simd_gt(y_max);
        x[i] = xi.max(x_min).min(x_max);
        y[i] = yi.max(y_min).min(y_max);
        vx[i] = x_out.select(-vxi, vxi);
        vy[i] = y_out.select(-vyi, vyi);
    }
}

/// The scalar reference: the same arithmetic as [`integrate`], one entity at a time.
pub fn integrate_scalar(
    x: &mut [f32],
    y: &mut [f32],
    vx: &mut [f32],
    vy: &mut [f32],
    speed_mps_max: &[f32],
    dt: f32,
    bounds: Rect,
) {
    for i in 0..x.len() {
        let (mut vxi, mut vyi) = (vx[i], vy[i]);
        let smax = speed_mps_max[i];
        let speed_squared = vxi * vxi + vyi * vyi;
        if speed_squared > smax * smax {
            let scale = smax / speed_squared.sqrt();
            vxi *= scale;
            vyi *= scale;
        }
        let xi = x[i] + vxi * dt;
        let yi = y[i] + vyi * dt;
        let x_out = xi < bounds.x_min || xi > bounds.x_max;
        let y_out = yi < bounds.y_min || yi > bounds.y_max;
        x[i] = xi.max(bounds.x_min).min(bounds.x_max);
        y[i] = yi.max(bounds.y_min).min(bounds.y_max);
        vx[i] = if x_out { -vxi } else { vxi };
        vy[i] = if y_out { -vyi } else { vyi };
    }
}
