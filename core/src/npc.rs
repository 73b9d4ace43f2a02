//! Server-driven NPCs: movement patterns that make a node do real work with no clients.
//!
//! A pattern is a pure function of (entity id, tick): nothing is stored per NPC, so an NPC
//! keeps behaving the same after a handoff to another zone, core or node. NPCs are the
//! entities of kind [`NPC_KIND`].
//!
//! - **Random walk**: every [`WALK_TURN_TICKS`] ticks (staggered by id) an NPC picks a new
//!   heading at the configured speed.
//! - **Border dancers**: NPCs swing along x with a period chosen so that each swing carries
//!   them past the border by more than the margin and back: they cross every period.
//! - **Flash crowd**: NPCs stand still until [`CROWD_START_TICK`], run +x together for
//!   [`CROWD_RUN_TICKS`], then random-walk.

use crate::entities::EntityID;
use crate::zone::Zone;

/// The entity kind of server-driven NPCs.
pub const NPC_KIND: u16 = 0x4e50; // "NP"

/// Ticks between a random walker's turns.
pub const WALK_TURN_TICKS: u64 = 60;
/// When the flash crowd starts running.
pub const CROWD_START_TICK: u64 = 30;
/// How long the flash crowd runs before it scatters.
pub const CROWD_RUN_TICKS: u64 = 90;

/// A movement pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    RandomWalk,
    BorderDancers,
    FlashCrowd,
}

/// A well-mixed 64-bit hash (splitmix64 finaliser): NPC randomness without state.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in [0, 1) from `(id, salt)`.
fn unit(id: EntityID, salt: u64) -> f32 {
    (mix(id.0 ^ mix(salt)) >> 40) as f32 / (1u64 << 24) as f32
}

/// The half-period, in ticks, of a border dancer moving at `speed_mps`: long enough to get
/// past the border by margin + 1 m from a start at the border.
pub fn dancer_half_period_ticks(margin_m: f32, speed_mps: f32, tick_rate_hz: u32) -> u64 {
    let seconds = (margin_m + 1.0) / speed_mps.max(0.1);
    ((seconds * tick_rate_hz as f32).ceil() as u64).max(1) * 2
}

/// Steers the NPCs whose turn it is at `tick`: the slots `s ≡ tick (mod period)`, so a
/// tick costs O(n / period), not O(n). (A swap-remove moves an entity to another slot and
/// shifts its schedule; it keeps its pattern.) The flash crowd's start is one full pass.
pub fn steer(zone: &mut Zone, pattern: Pattern, speed_mps: f32, tick: u64) {
    let world = *zone.world();
    let half_period =
        dancer_half_period_ticks(world.margin_m(), speed_mps, world.config().tick_rate_hz);
    let len = zone.entities().len() as u64;
    let visit = |zone: &mut Zone, period: u64, f: &dyn Fn(EntityID, f32) -> [f32; 2]| {
        let mut slot = tick % period;
        while slot < len {
            let s = slot as u32;
            if zone.entities().kind(s) == NPC_KIND {
                let id = zone.entities().ids()[slot as usize];
                let [vx, vy] = f(id, zone.entities().vxs()[slot as usize]);
                zone.set_velocity_slot(s, vx, vy);
            }
            slot += period;
        }
    };
    let walk = |id: EntityID, _vx: f32| {
        let angle = unit(id, tick) * core::f32::consts::TAU;
        [speed_mps * angle.cos(), speed_mps * angle.sin()]
    };
    match pattern {
        Pattern::RandomWalk => visit(zone, WALK_TURN_TICKS, &walk),
        Pattern::BorderDancers => visit(zone, half_period, &|_, vx| {
            [if vx > 0.0 { -speed_mps } else { speed_mps }, 0.0]
        }),
        Pattern::FlashCrowd => {
            if tick == CROWD_START_TICK {
                visit(zone, 1, &|_, _| [speed_mps, 0.0]);
            } else if tick >= CROWD_START_TICK + CROWD_RUN_TICKS {
                visit(zone, WALK_TURN_TICKS, &walk);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dancers_swing_past_the_margin() {
        let half = dancer_half_period_ticks(8.0, 5.0, 30);
        let swing_m = 5.0 * half as f32 / 30.0;
        assert!(swing_m >= 2.0 * (8.0 + 1.0) - 0.2, "swing {swing_m} m");
    }

    #[test]
    fn unit_is_in_range_and_varies() {
        let values: Vec<f32> = (0..1000).map(|i| unit(EntityID(i), 7)).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let mean = values.iter().sum::<f32>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "mean {mean}");
    }
}
