//! The records clients are sent: the quantised state of an entity as a client sees it,
//! the per-tick copy of every owned one (in SIMD lanes), and the game fields a zone's game
//! shows.

use meridian_layouts::quant::{
    HEIGHT_UNITS_PER_M, POSITION_UNITS_PER_M, VELOCITY_UNITS_PER_MPS, quantise_height,
    quantise_position, quantise_velocity,
};
use meridian_protocol::delta::{GAME_FIELDS, Record};
use wide::f32x8;

use super::held::Core;
use super::interest::GHOST_BIT;
use crate::entities::Entities;
use crate::game::state::StateLayout;

/// The quantised state of the entity in `slot` of `entities`, as a client sees it, but
/// for its game fields (zero; see [`with_game`]).
pub fn record_of(entities: &Entities, slot: u32) -> Record {
    let i = slot as usize;
    Record {
        id: entities.ids()[i].0,
        x: quantise_position(entities.xs()[i]),
        y: quantise_position(entities.ys()[i]),
        z: quantise_height(entities.z(slot)),
        vx: quantise_velocity(entities.vxs()[i]),
        vy: quantise_velocity(entities.vys()[i]),
        kind: entities.kind(slot),
        flags: entities.flags(slot),
        game: [0; GAME_FIELDS],
    }
}

/// Every entity's [`record_of`], in slot order, into `out`: the columns read side by side
/// and quantised eight entities at a time (the quantisation is exactly
/// [`meridian_layouts::quant`]'s: the same multiply, the same half-away-from-zero nudge,
/// the same saturating truncation, NaN to 0). One call per zone tick copies every owned
/// entity — 20,000 in the `replicate` bench, a million in a dense zone — so it is worth
/// the lanes: per entity the scalar copy took ~12 ns.
pub(super) fn fill_records(entities: &Entities, out: &mut Vec<Core>) {
    let n = entities.len();
    let (ids, xs, ys, zs) = (
        &entities.ids()[..n],
        &entities.xs()[..n],
        &entities.ys()[..n],
        &entities.zs_column()[..n],
    );
    let (vxs, vys, kinds, flags) = (
        &entities.vxs()[..n],
        &entities.vys()[..n],
        &entities.kinds()[..n],
        &entities.flags_column()[..n],
    );
    out.clear();
    out.reserve(n);
    let lanes = n - n % 8;
    for i in (0..lanes).step_by(8) {
        let x = quantise_lanes(&xs[i..i + 8], POSITION_UNITS_PER_M);
        let y = quantise_lanes(&ys[i..i + 8], POSITION_UNITS_PER_M);
        let z = quantise_lanes(&zs[i..i + 8], HEIGHT_UNITS_PER_M);
        let vx = quantise_lanes(&vxs[i..i + 8], VELOCITY_UNITS_PER_MPS);
        let vy = quantise_lanes(&vys[i..i + 8], VELOCITY_UNITS_PER_MPS);
        out.extend((0..8).map(|l| Core {
            id: ids[i + l].0,
            x: x[l],
            y: y[l],
            z: saturate_i16(z[l]),
            vx: saturate_i16(vx[l]),
            vy: saturate_i16(vy[l]),
            kind: kinds[i + l],
            flags: flags[i + l],
            sent: 0,
        }));
    }
    out.extend((lanes..n).map(|slot| Core::of(&record_of(entities, slot as u32))));
}

/// Eight values quantised at `units_per_unit` as [`meridian_layouts::quant`] does one:
/// scaled, nudged ±0.5 away from zero, truncated with saturation (NaN: 0).
#[inline(always)]
fn quantise_lanes(values: &[f32], units_per_unit: f32) -> [i32; 8] {
    let v: [f32; 8] = values.try_into().expect("eight lanes");
    let units = f32x8::from(v) * f32x8::splat(units_per_unit);
    let nudge = units
        .simd_ge(f32x8::ZERO)
        .select(f32x8::splat(0.5), f32x8::splat(-0.5));
    (units + nudge).trunc_int().to_array()
}

/// `f32 as i16` from `f32 as i32`: both saturate, so clamping the wider one is the same.
#[inline(always)]
fn saturate_i16(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// `record` with the game fields `layout` gives clients of the state in `slot`.
#[inline]
pub fn with_game(
    mut record: Record,
    entities: &Entities,
    slot: u32,
    layout: &StateLayout,
) -> Record {
    if !layout.fields().is_empty() {
        record.game = layout.client_fields(entities.state(slot));
    }
    record
}

/// What a member at `distance2` (squared) adds to its priority each tick: near 6 (due
/// every tick), mid 3 (every other), far 1 (every sixth); `near2` and `mid2` squared too.
#[inline(always)]
pub(super) fn tier_weight(distance2: f32, (near2, mid2): (f32, f32)) -> u16 {
    if distance2 <= near2 {
        6
    } else if distance2 <= mid2 {
        3
    } else {
        1
    }
}

/// The record a client is sent of the member in `slot` (tagged: [`GHOST_BIT`] for the
/// ghost store): an owned one from the tick's table, a ghost from its columns, with the
/// game fields `layout` shows.
#[inline(always)]
pub(super) fn current_record(
    records: &[Core],
    (owned, ghosts): (&Entities, &Entities),
    layout: &StateLayout,
    slot: u32,
) -> Record {
    if slot & GHOST_BIT != 0 {
        let slot = slot & !GHOST_BIT;
        with_game(record_of(ghosts, slot), ghosts, slot, layout)
    } else {
        let core = records[slot as usize];
        with_game(core.with([0; GAME_FIELDS]), owned, slot, layout)
    }
}

#[cfg(test)]
mod tests {
    use super::{fill_records, quantise_lanes, record_of};
    use crate::entities::{Entities, EntityID, EntityInit};
    use crate::limits::Limits;

    /// The lanes quantise as the scalar functions do, at the edges too: halves, signs,
    /// zero, values past every integer range, infinities, NaN.
    #[test]
    fn lanes_quantise_as_the_scalar_functions_do() {
        use meridian_layouts::quant::{
            HEIGHT_UNITS_PER_M, POSITION_UNITS_PER_M, VELOCITY_UNITS_PER_MPS, quantise_height,
            quantise_position, quantise_velocity,
        };
        let values = [
            0.0,
            -0.0,
            0.004,
            0.005,
            0.0049,
            -0.005,
            -0.0051,
            0.015,
            -0.015,
            1.234_5,
            -1.234_5,
            327.67,
            327.675,
            -327.68,
            -327.685,
            3_276.7,
            -3_276.8,
            1e6,
            -1e6,
            2.147_483_6e7,
            2.2e7,
            -2.2e7,
            3e38,
            -3e38,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            12.345_678,
            -98.765_43,
            4_095.99,
            0.5,
            -0.5,
            1e-30,
            0.125,
            -0.125,
            7.0,
            -7.0,
            250.0,
            -250.0,
        ];
        for chunk in values.chunks(8).filter(|c| c.len() == 8) {
            let p = quantise_lanes(chunk, POSITION_UNITS_PER_M);
            let h = quantise_lanes(chunk, HEIGHT_UNITS_PER_M);
            let v = quantise_lanes(chunk, VELOCITY_UNITS_PER_MPS);
            for (l, &x) in chunk.iter().enumerate() {
                assert_eq!(p[l], quantise_position(x), "position {x}");
                assert_eq!(super::saturate_i16(h[l]), quantise_height(x), "height {x}");
                assert_eq!(
                    super::saturate_i16(v[l]),
                    quantise_velocity(x),
                    "velocity {x}"
                );
            }
        }
    }

    /// The per-tick copy reads the columns side by side: every field must come from its
    /// own column (each entity here differs from the others in every field).
    #[test]
    fn the_column_copy_is_the_record_of_every_slot() {
        let mut entities = Entities::new(&Limits::default());
        for k in 0..37u16 {
            let f = f32::from(k);
            entities
                .insert(&EntityInit {
                    id: EntityID(1_000 + u64::from(k) * 7),
                    epoch: 0,
                    position: [10.0 + f, 20.0 - f * 0.5, 3.0 + f * 0.25],
                    velocity: [1.0 + f * 0.125, -2.0 - f * 0.0625],
                    speed_mps_max: 9.0,
                    kind: 3 + k,
                    flags: 0x100 | k,
                    payload: [0; 64],
                })
                .unwrap();
        }
        let mut copied = Vec::new();
        fill_records(&entities, &mut copied);
        assert_eq!(copied.len(), entities.len());
        for (slot, r) in copied.iter().enumerate() {
            let whole = record_of(&entities, slot as u32);
            assert_eq!(*r, super::Core::of(&whole), "slot {slot}");
        }
    }
}
