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
}
