//! The simulator's game: every zone runs one, so game state goes through every fault the
//! simulator draws. Each tick an entity is owned, its payload's counter goes up by one
//! and a check word tied to its id is rewritten; the game reports a payload whose check
//! word does not match (state torn, or moved to another entity), and the invariants
//! check that no entity's counter ever goes back except when its zone restarts from its
//! log (`Sim::check`): a handoff that lost the game's updates would. The record fills the
//! whole state slot and is ghosted: a ghost whose record is torn is reported too.
//!
//! With [`Options::messages`](super::Options::messages), each zone's game also sends a
//! game message to about one ghost in 31 each tick (`game::messages`), numbered across
//! the whole seed and sealed with a check word tied to its number and its entity, and
//! reports a message handed to a game by a zone that does not own its entity, one never
//! sent, one torn, and one handed to a game twice — unless the zone that took it first has
//! restarted since (a restarted zone forgets which messages it took: `game::messages`).
//! Only a zone's current run counts: a superseded one (cut off while its zone was taken
//! over, or resumed from a dead node's stale files) stands down with its state discarded,
//! so what its game is handed takes no effect.
//! In a seed where no zone crashed and no node died, every message but the last ones is
//! accounted for at the end (`Sim::finish`): handed to a game, or counted lost by a zone
//! (no owner found, hops or queues out, every resend unacknowledged) — a datagram the
//! network lost must not lose a message silently.

use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};

use crate::entities::EntityID;
use crate::game::messages::Message;
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
    /// The seed's messages, if its games send any, and which run of its zone this game
    /// is (a restart installs a new game).
    pub(super) mail: Option<Arc<Mutex<MailLog>>>,
    pub(super) run: u64,
}

/// Every message the seed's games sent and were handed.
#[derive(Debug, Default)]
pub(super) struct MailLog {
    /// Messages sent (their numbers are 0 to `sent - 1`), and the tick each was sent at.
    pub(super) sent: u64,
    pub(super) sent_ticks: Vec<u64>,
    /// Numbers handed to a game so far: by which zone, in which of its runs.
    pub(super) delivered: FxHashMap<u64, (u32, u64)>,
    /// Each zone's current run (games installed so far, counted over the seed).
    pub(super) runs: FxHashMap<u32, u64>,
    pub(super) installed: u64,
}

impl MailLog {
    /// A game is installed on `zone`: its run — the zone's current one unless it is a
    /// `superseded` run (a dead node's zone resumed from stale files while it runs on
    /// elsewhere: it stands down, its state discarded).
    pub(super) fn new_run(&mut self, zone: u32, superseded: bool) -> u64 {
        self.installed += 1;
        if !superseded {
            self.runs.insert(zone, self.installed);
        }
        self.installed
    }
}

fn message_word(number: u64, to: EntityID) -> u64 {
    check_word(to, number ^ 0x6d65_7373_6167_6521)
}

impl CounterGame {
    /// About one ghost in 31 a tick gets a numbered message.
    fn send_messages(&self, world: &mut GameWorld<'_>, mail: &Mutex<MailLog>) {
        let tick = world.tick();
        let picked: Vec<EntityID> = (world.ghosts().ids().iter())
            .filter(|id| (id.0 ^ tick).is_multiple_of(31))
            .copied()
            .collect();
        for to in picked {
            let number = mail.lock().expect("not poisoned").sent;
            let mut payload = [0u8; 16];
            payload[..8].copy_from_slice(&number.to_le_bytes());
            payload[8..].copy_from_slice(&message_word(number, to).to_le_bytes());
            if world.send_message(to, None, &payload).is_ok() {
                let mut mail = mail.lock().expect("not poisoned");
                mail.sent += 1;
                mail.sent_ticks.push(tick);
            }
        }
    }
}

impl Game for CounterGame {
    /// The whole slot: every ghost carries it, so a ghosted record is checked too.
    fn state_layout(&self) -> StateLayout {
        const WHOLE: StateLayout = StateLayout::of::<[u8; STATE_SIZE]>();
        WHOLE
    }

    fn message(&mut self, world: &mut GameWorld<'_>, message: Message) {
        let Some(mail) = &self.mail else {
            return;
        };
        let zone = world.zone().0;
        let payload = message.payload();
        let read = |at: usize| {
            payload
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        let mut problems = self.problems.lock().expect("not poisoned");
        let (Some(number), Some(word)) = (read(0), read(8)) else {
            problems.push(format!(
                "a game message of {} bytes in zone {zone}",
                payload.len()
            ));
            return;
        };
        if word != message_word(number, message.to) {
            problems.push(format!("game message {number} to {} is torn", message.to));
        }
        if world.owned().slot_of(message.to).is_none() {
            problems.push(format!(
                "game message {number} handed to zone {zone}, which does not own {}",
                message.to
            ));
        }
        let mut log = mail.lock().expect("not poisoned");
        if number >= log.sent {
            problems.push(format!("game message {number} was never sent"));
        }
        // A run that is not its zone's current one — an old primary cut off while its zone
        // was taken over, a dead node's zone resumed from stale files — stands down and
        // its state is discarded: what its game was handed took no effect. (Each hop
        // resent until acknowledged reaches such runs more often than copies did: seed
        // 1344 with `--comebacks --messages` handed message 279 to zone 1's takeover, then
        // to its stale run.)
        if log.runs.get(&zone) != Some(&self.run) {
            return;
        }
        match log.delivered.get(&number).copied() {
            None => {
                log.delivered.insert(number, (zone, self.run));
            }
            Some((first, run)) if log.runs.get(&first) == Some(&run) => {
                problems.push(format!(
                    "game message {number} handed to a game twice (zone {first}, then zone {zone})"
                ));
            }
            // The zone that took it first restarted since, forgetting it.
            Some(_) => {
                log.delivered.insert(number, (zone, self.run));
            }
        }
    }

    fn systems(&mut self, world: &mut GameWorld<'_>) {
        if let Some(mail) = &self.mail {
            self.send_messages(world, mail);
        }
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
