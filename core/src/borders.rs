//! The border pass: one SIMD sweep over a zone's entities that finds
//! (a) **crossings** — entities past the zone's rectangle by more than `margin`, with the
//! zone that now contains them (never this zone: past the world's edge nothing is), and (b) **aura members** — entities inside a neighbour's
//! rectangle grown by `aura`, per neighbour (that neighbour's ghost batch).
//!
//! Most entities are deep inside their zone. The pass tests each lane of eight against an
//! *inner* rectangle (the zone shrunk by `aura` on every side that has a neighbour) and
//! skips the lane when all eight are inside it; only lanes near a border pay for the
//! per-neighbour tests. Output lists are in ascending slot order, bounded by
//! [`Limits`]; entries past a bound are dropped and counted.
//!
//! "Back inside → abort a pending handoff" (docs/architecture.md, one tick, step 4) needs the handoff table
//! and is decided by the handoff layer from the crossing list: an entity with a pending
//! handoff that is not in this tick's crossings has come back.

use wide::f32x8;

use crate::limits::{LANES, Limits};
use crate::world::{NEIGHBOURS_MAX, Rect, World, ZoneID};

/// An entity past the border by more than the margin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crossing {
    pub slot: u32,
    /// The zone whose rectangle contains the entity now.
    pub target: ZoneID,
}

/// Geometry of one zone's borders, precomputed from the world.
#[derive(Clone, Copy, Debug)]
pub struct Borders {
    world: World,
    zone: ZoneID,
    /// Inside this, no entity can be a crossing or in any aura.
    inner: Rect,
    /// Outside this, an entity is a crossing.
    outer: Rect,
    neighbours: [ZoneID; NEIGHBOURS_MAX],
    /// Each neighbour's rectangle grown by the aura.
    neighbour_aura: [Rect; NEIGHBOURS_MAX],
    neighbour_count: usize,
}

impl Borders {
    pub fn new(world: &World, zone: ZoneID) -> Borders {
        let rect = world.zone_rect(zone);
        let aura = world.aura_m();
        let neighbours = world.neighbours(zone);
        let mut out = Borders {
            world: *world,
            zone,
            inner: rect,
            outer: rect.expand(world.margin_m()),
            neighbours: [ZoneID(0); NEIGHBOURS_MAX],
            neighbour_aura: [rect; NEIGHBOURS_MAX],
            neighbour_count: 0,
        };
        // Sides without a neighbour (the world's edge) need no inner band.
        out.inner = Rect::new(
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::INFINITY,
        );
        for (k, &n) in neighbours.as_slice().iter().enumerate() {
            let r = world.zone_rect(n);
            out.neighbours[k] = n;
            out.neighbour_aura[k] = r.expand(aura);
            if r.x_max <= rect.x_min {
                out.inner.x_min = rect.x_min + aura;
            }
            if r.x_min >= rect.x_max {
                out.inner.x_max = rect.x_max - aura;
            }
            if r.y_max <= rect.y_min {
                out.inner.y_min = rect.y_min + aura;
            }
            if r.y_min >= rect.y_max {
                out.inner.y_max = rect.y_max - aura;
            }
            out.neighbour_count += 1;
        }
        out
    }

    pub fn zone(&self) -> ZoneID {
        self.zone
    }

    pub fn neighbours(&self) -> &[ZoneID] {
        &self.neighbours[..self.neighbour_count]
    }
}

/// The pass's output, allocated once at the limits and reused every tick.
#[derive(Debug)]
pub struct BorderOutput {
    crossings: Vec<Crossing>,
    aura: [Vec<u32>; NEIGHBOURS_MAX],
    crossing_count_max: usize,
    aura_count_max: usize,
    /// Crossings not reported because the list was full (cumulative).
    pub crossings_dropped: u64,
    /// Aura members not reported because a list was full (cumulative).
    pub aura_dropped: u64,
}

impl BorderOutput {
    pub fn new(limits: &Limits) -> BorderOutput {
        let crossing_count_max = limits.crossing_count_max as usize;
        let aura_count_max = limits.aura_count_max as usize;
        BorderOutput {
            crossings: Vec::with_capacity(crossing_count_max),
            aura: core::array::from_fn(|_| Vec::with_capacity(aura_count_max)),
            crossing_count_max,
            aura_count_max,
            crossings_dropped: 0,
            aura_dropped: 0,
        }
    }

    pub fn crossings(&self) -> &[Crossing] {
        &self.crossings
    }

    /// Slots inside the aura of the `k`-th neighbour of [`Borders::neighbours`].
    pub fn aura(&self, k: usize) -> &[u32] {
        &self.aura[k]
    }

    fn clear(&mut self) {
        self.crossings.clear();
        for list in &mut self.aura {
            list.clear();
        }
    }

    fn push_crossing(&mut self, crossing: Crossing) {
        if self.crossings.len() < self.crossing_count_max {
            self.crossings.push(crossing);
        } else {
            self.crossings_dropped += 1;
        }
    }

    fn push_aura(&mut self, k: usize, slot: u32) {
        if self.aura[k].len() < self.aura_count_max {
            self.aura[k].push(slot);
        } else {
            self.aura_dropped += 1;
        }
    }
}

#[inline]
fn inside(x: f32x8, y: f32x8, r: &Rect) -> f32x8 {
    x.simd_ge(f32x8::splat(r.x_min))
        & x.simd_lt(f32x8::splat(r.x_max))
        & y.simd_ge(f32x8::splat(r.y_min))
        & y.simd_lt(f32x8::splat(r.y_max))
}

/// The SIMD pass over `len` entities whose positions are the lanes `x`, `y`.
pub fn border_pass(
    x: &[f32x8],
    y: &[f32x8],
    len: usize,
    borders: &Borders,
    out: &mut BorderOutput,
) {
    out.clear();
    let lanes = len.div_ceil(LANES);
    assert!(x.len() >= lanes && y.len() >= lanes);
    let xs: &[f32] = bytemuck::cast_slice(x);
    let ys: &[f32] = bytemuck::cast_slice(y);
    for lane in 0..lanes {
        let (xl, yl) = (x[lane], y[lane]);
        let live = (len - lane * LANES).min(LANES);
        let valid: u32 = (1u32 << live) - 1;
        let inner = inside(xl, yl, &borders.inner).to_bitmask();
        if inner & valid == valid {
            continue;
        }
        let mut crossing = !inside(xl, yl, &borders.outer).to_bitmask() & valid;
        while crossing != 0 {
            let i = crossing.trailing_zeros() as usize;
            crossing &= crossing - 1;
            let slot = lane * LANES + i;
            let target = borders.world.zone_at(xs[slot], ys[slot]);
            // Past the world's edge there is no other zone: it clamps back to us.
            if target != borders.zone {
                out.push_crossing(Crossing {
                    slot: slot as u32,
                    target,
                });
            }
        }
        for k in 0..borders.neighbour_count {
            let mut member = inside(xl, yl, &borders.neighbour_aura[k]).to_bitmask() & valid;
            while member != 0 {
                let i = member.trailing_zeros() as usize;
                member &= member - 1;
                out.push_aura(k, (lane * LANES + i) as u32);
            }
        }
    }
}

/// The scalar reference for [`border_pass`]: obvious loops, same output.
pub fn border_pass_scalar(xs: &[f32], ys: &[f32], borders: &Borders, out: &mut BorderOutput) {
    out.clear();
    let rect = borders.world.zone_rect(borders.zone);
    let outer = rect.expand(borders.world.margin_m());
    for slot in 0..xs.len() {
        let (x, y) = (xs[slot], ys[slot]);
        let target = borders.world.zone_at(x, y);
        if !outer.contains(x, y) && target != borders.zone {
            out.push_crossing(Crossing {
                slot: slot as u32,
                target,
            });
        }
        for (k, &n) in borders.neighbours().iter().enumerate() {
            if borders
                .world
                .zone_rect(n)
                .expand(borders.world.aura_m())
                .contains(x, y)
            {
                out.push_aura(k, slot as u32);
            }
        }
    }
}
