//! Movement intents as velocities: the one rule the server applies to an input and the
//! client applies to its prediction, so the two agree to the bit.

/// The velocity (m/s) an intent (−127…127 per axis) asks for: the intent's direction, its
/// length clamped to 1, scaled by `speed_mps_max`.
pub fn intent_velocity(move_x: i8, move_y: i8, speed_mps_max: f32) -> (f32, f32) {
    let (x, y) = (f32::from(move_x) / 127.0, f32::from(move_y) / 127.0);
    let length = (x * x + y * y).sqrt();
    let scale = if length > 1.0 { 1.0 / length } else { 1.0 };
    (x * scale * speed_mps_max, y * scale * speed_mps_max)
}

/// INPUT's aim field (1/65,536 of a turn, counterclockwise from +x) in radians, [0, 2π).
pub fn aim_radians(aim: u16) -> f32 {
    f32::from(aim) * (core::f32::consts::TAU / 65_536.0)
}

/// A direction in radians as INPUT's aim field (the client's side of [`aim_radians`]);
/// NaN and infinities aim at 0.
pub fn aim_field(radians: f32) -> u16 {
    let turns = (radians / core::f32::consts::TAU).rem_euclid(1.0);
    ((turns * 65_536.0).round() as u32 % 65_536) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagonal_is_clamped_to_the_top_speed() {
        let (vx, vy) = intent_velocity(127, 127, 6.0);
        assert!(((vx * vx + vy * vy).sqrt() - 6.0).abs() < 1e-4);
        assert_eq!(intent_velocity(0, -127, 6.0), (0.0, -6.0));
        assert_eq!(intent_velocity(0, 0, 6.0), (0.0, 0.0));
    }

    #[test]
    fn aims_round_trip_to_a_step_and_wrap() {
        use core::f32::consts::{PI, TAU};
        for r in [0.0, 0.5, PI, 6.0, -PI / 2.0, 7.0 * TAU + 1.0] {
            let back = aim_radians(aim_field(r));
            let diff = (back - r.rem_euclid(TAU)).abs();
            assert!(
                diff < TAU / 65_536.0 || (TAU - diff) < TAU / 65_536.0,
                "{r} → {back}"
            );
        }
        assert_eq!(aim_field(f32::NAN), 0);
        assert_eq!(aim_field(TAU - 1e-7), 0);
    }
}
