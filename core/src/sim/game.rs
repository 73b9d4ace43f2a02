//! The simulator's game: every zone runs one, so game state goes through every fault the
//! simulator draws. Each tick an entity is owned, its payload's counter goes up by one
//! and a check word tied to its id is rewritten; the game reports a payload whose check
//! word does not match (state torn, or moved to another entity), and the invariants
//! check that no entity's counter ever goes back except when its zone restarts from its
//! log (`Sim::check`): a handoff that lost the game's updates would. The record fills the
//! whole state slot and is ghosted: a ghost whose record is torn is reported too.

use std::sync::{Arc, Mutex};

use crate::entities::EntityID;
use crate::game::state::StateLayout;
use crate::game::{Game, GameWorld};
use meridian_layouts::handoff::STATE_SIZE;

const CHECK: usize = STATE_SIZE - 8;

/// The record's counter (bytes 0..8); its check word is the record's last 8 bytes, so a
/// record cut short anywhere on its way is caught. 0 for a store that keeps no record.
pub(super) fn counter(state: &[u8]) -> u64 {
    state
        .get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// The record's check word (its last 8 bytes; 0 if it has none).
fn word(state: &[u8]) -> u64 {
    state
        .get(CHECK..)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

fn check_word(id: EntityID, counter: u64) -> u64 {
    id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ counter.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
}

/// See the module docs. `problems` is drained by the invariant check.
pub(super) struct CounterGame {
    pub(super) problems: Arc<Mutex<Vec<String>>>,
}

impl Game for CounterGame {
    /// The whole slot: every ghost carries it, so a ghosted record is checked too.
    fn state_layout(&self) -> StateLayout {
        const WHOLE: StateLayout = StateLayout::of::<[u8; STATE_SIZE]>();
        WHOLE
    }

    fn systems(&mut self, world: &mut GameWorld<'_>) {
        let zone = world.zone();
        // A ghost's record is its owner's as last sent: never torn either.
        let ghosts = world.ghosts();
        for (slot, &id) in ghosts.ids().iter().enumerate() {
            let state = ghosts.state(slot as u32);
            let (n, word) = (counter(state), word(state));
            if !(n == 0 && word == 0) && word != check_word(id, n) {
                self.problems.lock().expect("not poisoned").push(format!(
                    "ghost {id}'s game state is torn in zone {} (counter {n})",
                    zone.0
                ));
            }
        }
        let ids: Vec<EntityID> = world.owned().ids().to_vec();
        for (payload, id) in world.states_mut().zip(ids) {
            let (n, word) = (counter(payload), word(payload));
            let pristine = n == 0 && word == 0;
            if !pristine && word != check_word(id, n) {
                self.problems.lock().expect("not poisoned").push(format!(
                    "entity {id}'s game state is torn in zone {} (counter {n})",
                    zone.0
                ));
            }
            payload[..8].copy_from_slice(&(n + 1).to_le_bytes());
            payload[CHECK..].copy_from_slice(&check_word(id, n + 1).to_le_bytes());
        }
    }
}
