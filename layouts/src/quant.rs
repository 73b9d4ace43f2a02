//! Quantisation: `f32` metres ↔ fixed-point integers, shared by server and clients.
//!
//! Positions in the plane are centimetres in an `i32` (±21,474 km); height is
//! decimetres in an `i16` (±3,276 m); velocities are centimetres per second in an `i16`
//! (±327 m/s). Encoding rounds to nearest and saturates at the type's range; NaN
//! encodes as 0. Decoding is exact. So the round-trip error is at most half a unit for
//! any in-range value: 0.5 cm for positions, 0.5 cm/s for velocities, 5 cm for height.

/// Position units per metre (centimetres).
pub const POSITION_UNITS_PER_M: f32 = 100.0;
/// Height units per metre (decimetres).
pub const HEIGHT_UNITS_PER_M: f32 = 10.0;
/// Velocity units per metre per second (centimetres per second).
pub const VELOCITY_UNITS_PER_MPS: f32 = 100.0;

/// Adds ±0.5 so that the truncating `as` cast rounds half away from zero. (`f32::round`
/// is not in `core`.) `as` from `f32` saturates and maps NaN to 0, which is what we want.
fn nudge(units: f32) -> f32 {
    if units >= 0.0 {
        units + 0.5
    } else {
        units - 0.5
    }
}

/// Metres → centimetres, rounded, saturating at `i32` range.
pub fn quantise_position(metres: f32) -> i32 {
    nudge(metres * POSITION_UNITS_PER_M) as i32
}

/// Centimetres → metres.
pub fn dequantise_position(units: i32) -> f32 {
    units as f32 / POSITION_UNITS_PER_M
}

/// Metres → decimetres, rounded, saturating at `i16` range.
pub fn quantise_height(metres: f32) -> i16 {
    nudge(metres * HEIGHT_UNITS_PER_M) as i16
}

/// Decimetres → metres.
pub fn dequantise_height(units: i16) -> f32 {
    f32::from(units) / HEIGHT_UNITS_PER_M
}

/// Metres per second → centimetres per second, rounded, saturating at `i16` range.
pub fn quantise_velocity(mps: f32) -> i16 {
    nudge(mps * VELOCITY_UNITS_PER_MPS) as i16
}

/// Centimetres per second → metres per second.
pub fn dequantise_velocity(units: i16) -> f32 {
    f32::from(units) / VELOCITY_UNITS_PER_MPS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_error_is_half_a_unit() {
        let mut x = -20_000.0f32;
        while x < 20_000.0 {
            let back = dequantise_position(quantise_position(x));
            // f32 spacing near 20 km is ~2 mm, so allow that on top of half a centimetre.
            assert!((back - x).abs() <= 0.005 + 0.002, "{x} -> {back}");
            x += 13.37;
        }
        for v in [-300.0f32, -1.234, 0.0, 0.005, 5.0, 299.99] {
            let back = dequantise_velocity(quantise_velocity(v));
            assert!((back - v).abs() <= 0.005 + 1e-4, "{v} -> {back}");
        }
    }

    #[test]
    fn saturates_and_maps_nan_to_zero() {
        assert_eq!(quantise_velocity(1.0e9), i16::MAX);
        assert_eq!(quantise_velocity(-1.0e9), i16::MIN);
        assert_eq!(quantise_position(f32::NAN), 0);
        assert_eq!(quantise_height(f32::INFINITY), i16::MAX);
    }
}
