//! The simulator's game: every zone runs one, so game state goes through every fault the
//! simulator draws. Each tick an entity is owned, its payload's counter goes up by one
//! and a check word tied to its id is rewritten; the game reports a payload whose check
//! word does not match (state torn, or moved to another entity), and the invariants
//! check that no entity's counter ever goes back except when its zone restarts from its
//! log (`Sim::check`): a handoff that lost the game's updates would.

use std::sync::{Arc, Mutex};

use crate::entities::EntityID;
use crate::game::{Game, GameWorld};

/// The payload's counter (bytes 0..8).
pub(super) fn counter(payload: &[u8; 16]) -> u64 {
    u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"))
}

fn check_word(id: EntityID, counter: u64) -> u64 {
    id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ counter.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
}

/// See the module docs. `problems` is drained by the invariant check.
pub(super) struct CounterGame {
    pub(super) problems: Arc<Mutex<Vec<String>>>,
}

impl Game for CounterGame {
    fn systems(&mut self, world: &mut GameWorld<'_>) {
        let zone = world.zone();
        let ids: Vec<EntityID> = world.owned().ids().to_vec();
        for (payload, id) in world.payloads_mut().iter_mut().zip(ids) {
            let n = counter(payload);
            let word = u64::from_le_bytes(payload[8..].try_into().expect("8 bytes"));
            let pristine = n == 0 && word == 0;
            if !pristine && word != check_word(id, n) {
                self.problems.lock().expect("not poisoned").push(format!(
                    "entity {id}'s game state is torn in zone {} (counter {n})",
                    zone.0
                ));
            }
            payload[..8].copy_from_slice(&(n + 1).to_le_bytes());
            payload[8..].copy_from_slice(&check_word(id, n + 1).to_le_bytes());
        }
    }
}
