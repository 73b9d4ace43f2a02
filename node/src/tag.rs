//! Tag: the demo's game, written on the game API the way a studio would write its own.
//!
//! Every client's avatar is a **player**; one in [`IT_EVERY`] players a zone spawns (the
//! world file's `[game.settings] it_every`) starts out **"it"**. A player fires with button
//! [`FIRE`] along its aim; the zone judges the shot where the shooter saw the world (lag
//! compensation: `GameWorld::rewind_ray` at the input's view time, refused past the zone's
//! maximum rewind, the world file's `rewind_ms`; shots pass through NPCs, the crowd, and
//! hit players only) and answers the shooter with an event naming the shot (its input
//! sequence) and what it hit. When "it" hits another player, the tag passes: the victim is
//! "it" now and hears so. A victim across a zone border is the other zone's to write: the
//! shooter hands "it" over in a game message ([`TAG`]), and the victim's zone takes it —
//! or, if the victim is "it" already or no player, sends it back ([`GIVE_BACK`]). While the
//! message travels, a tick or two, nobody holds that "it"; a message lost on the way (the
//! victim gone, a crash) loses it.
//!
//! Clients see three fields of every player: the flags ([`PLAYER`], [`IT`]), its hits and
//! how many times it was tagged. The live map rings whoever is "it" ([`Game::marked`]).
//!
//! The client side — which shots its own view says should hit — is [`shot_ray`] over the
//! entities it draws; the swarm's `tag` pattern plays it.

use bytemuck::{Pod, Zeroable};
use meridian_core::entities::EntityID;
use meridian_core::game::messages::Message;
use meridian_core::game::state::{FieldKind, StateLayout};
use meridian_core::game::{Action, Game, GameWorld, aim_field, aim_radians};
use meridian_core::history::Ray;

/// Each entity's tag record (8 bytes of its state column).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Player {
    /// [`PLAYER`], [`IT`].
    pub flags: u8,
    pub pad: u8,
    /// Shots of this player's that hit something.
    pub hits: u16,
    /// Times this player was tagged ("it" passed to it).
    pub tagged: u16,
    pub pad2: u16,
}

/// `Player::flags`: a client's avatar (not an NPC).
pub const PLAYER: u8 = 1;
/// `Player::flags`: this player is "it".
pub const IT: u8 = 2;

/// Clients see the flags (game field 0), hits (1) and times tagged (2).
pub const LAYOUT: StateLayout = StateLayout::of::<Player>()
    .field(0, FieldKind::U8)
    .field(2, FieldKind::U16)
    .field(4, FieldKind::U16);

/// The fire button.
pub const FIRE: u16 = 1;
/// How far a shot reaches.
pub const RANGE_M: f32 = 40.0;
/// A body's radius: a shot passing closer to an entity's centre hits it.
pub const BODY_M: f32 = 0.5;
/// Shots start this far out along the aim, outside the shooter's own body.
pub const MUZZLE_M: f32 = 0.7;
/// One in this many players a zone spawns starts out "it".
pub const IT_EVERY: u32 = 8;

/// Event kinds (the first byte of an event).
pub const HIT: u8 = 1;
pub const MISS: u8 = 2;
pub const REFUSED: u8 = 3;
/// To the victim: you are "it" now.
pub const TAGGED: u8 = 4;

/// Game messages (the first byte): "it" passes to the entity the message is for, from
/// the shooter named as its sender.
pub const TAG: u8 = 1;
/// "It" comes back to the shooter the message is for: the victim could not take it.
pub const GIVE_BACK: u8 = 2;

/// What a tag event says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagEvent {
    /// The answer to the shot fired with input `sequence`: [`HIT`] (`hit` is the entity),
    /// [`MISS`] or [`REFUSED`] (too old to rewind, or the zone could not tell when the
    /// shooter saw it).
    Shot {
        kind: u8,
        sequence: u32,
        hit: Option<u64>,
    },
    Tagged,
}

/// The shooter's event: kind, the shot's input sequence, the entity hit (0: none).
pub fn shot_event(kind: u8, sequence: u32, hit: u64) -> [u8; 13] {
    let mut e = [0u8; 13];
    e[0] = kind;
    e[1..5].copy_from_slice(&sequence.to_le_bytes());
    e[5..13].copy_from_slice(&hit.to_le_bytes());
    e
}

/// Reads an event the tag game sent (`None`: not one of its events).
pub fn parse_event(bytes: &[u8]) -> Option<TagEvent> {
    match bytes {
        [TAGGED] => Some(TagEvent::Tagged),
        [kind @ (HIT | MISS | REFUSED), rest @ ..] if rest.len() == 12 => {
            let sequence = u32::from_le_bytes(rest[..4].try_into().ok()?);
            let hit = u64::from_le_bytes(rest[4..].try_into().ok()?);
            Some(TagEvent::Shot {
                kind: *kind,
                sequence,
                hit: (*kind == HIT).then_some(hit),
            })
        }
        _ => None,
    }
}

/// The aim as the zone will see it: quantised as INPUT carries it.
pub fn quantised_aim(radians: f32) -> f32 {
    aim_radians(aim_field(radians))
}

/// The ray of a shot fired from `at` along `aim` (radians, as the zone sees it): what the
/// zone rewinds, and what a client tests the entities it draws against to know whether
/// its own view says the shot hits.
pub fn shot_ray(at: [f32; 2], aim: f32) -> Ray {
    let direction = [aim.cos(), aim.sin()];
    Ray {
        origin: [
            at[0] + direction[0] * MUZZLE_M,
            at[1] + direction[1] * MUZZLE_M,
        ],
        direction,
        length_m: RANGE_M,
        radius_m: BODY_M,
    }
}

/// The game, one per zone.
#[derive(Debug)]
pub struct Tag {
    /// Players this zone has spawned.
    spawned: u32,
    /// Nothing moves faster than this (the rewind's search margin).
    speed_mps: f32,
    /// One player in this many starts out "it".
    it_every: u32,
}

impl Tag {
    /// A zone's game, where nothing moves faster than `speed_mps` and one player in
    /// `it_every` it spawns starts out "it" ([`IT_EVERY`] in the demo).
    pub fn new(speed_mps: f32, it_every: u32) -> Tag {
        Tag {
            spawned: 0,
            speed_mps,
            it_every: it_every.max(1),
        }
    }

    /// A hit of `shooter`'s on `victim`: counted; the tag passes if the shooter is "it"
    /// and the victim a player who is not — at once if the victim is this zone's, else by
    /// a message to its zone.
    fn hit(&self, world: &mut GameWorld<'_>, shooter: EntityID, victim: EntityID) {
        let Some(mut me) = world.state::<Player>(shooter) else {
            return;
        };
        me.hits = me.hits.wrapping_add(1);
        if me.flags & IT != 0
            && let Some(v) = world.state::<Player>(victim)
            && v.flags & (PLAYER | IT) == PLAYER
        {
            let passed = if world.owned().slot_of(victim).is_some() {
                take_it(world, victim)
            } else {
                // A ghost: the other zone decides, from the victim as it is there.
                world.send_message(victim, Some(shooter), &[TAG]).is_ok()
            };
            if passed {
                me.flags &= !IT;
            }
        }
        let _ = world.set_state(shooter, &me);
    }
}

/// `victim` (owned here) takes "it" if it is a player who is not "it"; whether it did.
fn take_it(world: &mut GameWorld<'_>, victim: EntityID) -> bool {
    let Some(mut v) = world.state::<Player>(victim) else {
        return false;
    };
    if v.flags & (PLAYER | IT) != PLAYER {
        return false;
    }
    v.flags |= IT;
    v.tagged = v.tagged.wrapping_add(1);
    let _ = world.set_state(victim, &v);
    // A full backlog (8 unacknowledged) loses this one; the flag says it anyway.
    let _ = world.send_event(victim, &[TAGGED]);
    true
}

impl Game for Tag {
    fn state_layout(&self) -> StateLayout {
        LAYOUT
    }

    fn spawned(&mut self, world: &mut GameWorld<'_>, id: EntityID) {
        if !world.has_client(id) {
            return;
        }
        self.spawned += 1;
        let it = if self.spawned % self.it_every == 1 % self.it_every {
            IT
        } else {
            0
        };
        let _ = world.set_state(
            id,
            &Player {
                flags: PLAYER | it,
                ..Player::default()
            },
        );
    }

    fn systems(&mut self, _: &mut GameWorld<'_>) {}

    fn action(&mut self, world: &mut GameWorld<'_>, shooter: EntityID, action: Action) {
        if action.buttons & u32::from(FIRE) == 0 {
            return;
        }
        let Some(slot) = world.owned().slot_of(shooter) else {
            return;
        };
        let slot = slot as usize;
        let at = [world.owned().xs()[slot], world.owned().ys()[slot]];
        let ray = shot_ray(at, action.aim);
        // Shots pass through NPCs (the crowd) and the shooter: they hit players only.
        let target = |id: EntityID, record: &[u8]| {
            id != shooter && record.first().is_some_and(|f| f & PLAYER != 0)
        };
        let judged = action
            .view_tick
            .map(|tick| world.rewind_ray_where(&ray, tick, self.speed_mps, target));
        let (kind, hit) = match judged {
            Some(Ok(Some(hit))) => (HIT, hit.id),
            Some(Ok(_)) => (MISS, EntityID(0)),
            Some(Err(_)) | None => (REFUSED, EntityID(0)),
        };
        if kind == HIT {
            self.hit(world, shooter, hit);
        }
        // A full backlog loses the answer: the shooter counts the shot unanswered.
        let _ = world.send_event(shooter, &shot_event(kind, action.sequence, hit.0));
    }

    fn message(&mut self, world: &mut GameWorld<'_>, message: Message) {
        match message.payload() {
            [TAG] => {
                if !take_it(world, message.to)
                    && let Some(shooter) = message.from
                {
                    let _ = world.send_message(shooter, Some(message.to), &[GIVE_BACK]);
                }
            }
            [GIVE_BACK] => {
                if let Some(mut me) = world.state::<Player>(message.to)
                    && me.flags & PLAYER != 0
                {
                    me.flags |= IT;
                    let _ = world.set_state(message.to, &me);
                }
            }
            _ => {}
        }
    }

    fn marked(&self, record: &[u8]) -> bool {
        record.first().is_some_and(|flags| flags & IT != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_and_others_are_not_ours() {
        let e = shot_event(HIT, 77, 1234);
        assert_eq!(
            parse_event(&e),
            Some(TagEvent::Shot {
                kind: HIT,
                sequence: 77,
                hit: Some(1234)
            })
        );
        let e = shot_event(MISS, 78, 0);
        assert_eq!(
            parse_event(&e),
            Some(TagEvent::Shot {
                kind: MISS,
                sequence: 78,
                hit: None
            })
        );
        assert_eq!(parse_event(&[TAGGED]), Some(TagEvent::Tagged));
        assert_eq!(parse_event(&e[..12]), None);
        assert_eq!(parse_event(&[9; 13]), None);
        assert_eq!(parse_event(&[]), None);
    }

    #[test]
    fn the_map_rings_it_only() {
        let tag = Tag::new(8.0, IT_EVERY);
        assert!(tag.marked(&[PLAYER | IT, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!tag.marked(&[PLAYER, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!tag.marked(&[]));
    }
}
