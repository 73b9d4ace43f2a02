//! The server-side game API: what a game built on Meridian writes, and the zone calls at
//! fixed points of its tick.
//!
//! A game implements [`Game`]. The zone holds it ([`Zone::set_game`]) and, every tick
//! after the inbox is applied and before movement:
//!
//! 1. tells it which entities **arrived** (adopted from a neighbour), **departed**
//!    (relinquished to one), were **spawned** or **removed** here since the last tick, in
//!    the order they happened;
//! 2. hands it the **actions** clients sent for their avatars ([`Zone::act`]), in the
//!    order they came;
//! 3. hands it the **messages** games sent to entities it owns ([`messages`]: from this
//!    zone's game last tick, or from another zone's);
//! 4. runs its **systems** ([`Game::systems`]) once, over the owned entities' columns.
//!
//! Everything goes through a [`GameWorld`], a view of the zone that keeps the handoff
//! invariants out of the game's reach: it can read everything (owned entities, ghosts,
//! spatial queries) but write only the velocity and payload columns of entities this
//! zone owns; positions move by the zone's movement pass (speed-clamped); spawning mints
//! an id here and logs it; despawning goes through [`Zone::remove`] (logged; an entity
//! already relinquished is not owned here and cannot be despawned). A game never sees a
//! socket or a clock: time is [`GameWorld::tick`].

pub mod events;
pub mod messages;
pub mod state;

use crate::entities::{EntityID, InsertError};
use crate::handoff::Event;
use crate::history::{Hit, Ray};
use crate::world::{Rect, ZoneID};
use crate::zone::Zone;
use state::StateLayout;

/// A game. Every method has a default but [`Game::systems`].
pub trait Game {
    /// The per-tick systems, over the owned entities (see [`GameWorld`]).
    fn systems(&mut self, world: &mut GameWorld<'_>);

    /// The game's per-entity state record: its size (ghosts carry that many bytes of each
    /// entity's state slot) and the fields clients see ([`state`]). Read once, when the
    /// game is installed. Default: no state.
    fn state_layout(&self) -> StateLayout {
        StateLayout::NONE
    }

    /// `id` was adopted from zone `from` since the last tick (its payload came with it).
    fn arrived(&mut self, world: &mut GameWorld<'_>, id: EntityID, from: ZoneID) {
        let _ = (world, id, from);
    }

    /// `id` was relinquished to zone `to` since the last tick; it is no longer owned here.
    fn departed(&mut self, world: &mut GameWorld<'_>, id: EntityID, to: ZoneID) {
        let _ = (world, id, to);
    }

    /// A client's action for its avatar `avatar` (owned here when it is called).
    fn action(&mut self, world: &mut GameWorld<'_>, avatar: EntityID, action: Action) {
        let _ = (world, avatar, action);
    }

    /// `id` was created here since the last tick ([`Zone::spawn`]: a client's avatar, a
    /// driver's or the game's own spawn). Still owned unless removed since.
    fn spawned(&mut self, world: &mut GameWorld<'_>, id: EntityID) {
        let _ = (world, id);
    }

    /// `id` was destroyed here since the last tick ([`Zone::remove`]: a closed session's
    /// avatar, a driver's or the game's own despawn).
    fn removed(&mut self, world: &mut GameWorld<'_>, id: EntityID) {
        let _ = (world, id);
    }

    /// A game's message to `message.to`, owned here when it is called
    /// ([`GameWorld::send_message`], here or in another zone; [`messages`]).
    fn message(&mut self, world: &mut GameWorld<'_>, message: messages::Message) {
        let _ = (world, message);
    }

    /// Whether the live map should single out a client's avatar with this state record
    /// (the player who is "it", a team's flag carrier). Called off the tick, about six
    /// times a second per avatar while someone watches. Default: none.
    fn marked(&self, record: &[u8]) -> bool {
        let _ = record;
        false
    }
}

/// What a client asked its avatar to do: game-defined buttons (INPUT's, nonzero), the
/// zone tick the client drew remote entities at when it pressed them — its
/// interpolation time, fractional, for lag compensation (`Zone::rewind_ray`); `None`
/// until the client has acknowledged a snapshot of this zone — and where it aimed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Action {
    pub buttons: u32,
    /// The input's sequence: the client tick it was made for (a game can echo it in an
    /// event to say which press it answers). When the zone merges presses of inputs it
    /// skips, the newest one's.
    pub sequence: u32,
    pub view_tick: Option<f64>,
    /// The aim, radians counterclockwise from +x, in [0, 2π) (INPUT's `aim`, 1/65,536 of a
    /// turn: 0.0055° steps).
    pub aim: f32,
}

impl Action {
    /// The aim as a unit vector: the direction of a [`Ray`] fired from the avatar.
    pub fn aim_direction(&self) -> [f32; 2] {
        [self.aim.cos(), self.aim.sin()]
    }
}

/// The entity is not owned by this zone (a ghost, relinquished, or unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotOwned;

pub use meridian_protocol::motion::{aim_field, aim_radians};

/// Why a game could not despawn an entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DespawnError {
    /// Not owned by this zone (a ghost, relinquished, or unknown).
    NotOwned,
    /// The tick's log is full; try again next tick.
    LogFull,
}

/// Something to tell the game at the next tick (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Note {
    Arrived(EntityID, ZoneID),
    Departed(EntityID, ZoneID),
    Action(EntityID, Action),
    Spawned(EntityID),
    Removed(EntityID),
}

/// Most notes held between two ticks: arrivals, departures and actions beyond it are
/// dropped and counted (`Counters::game_notes_dropped`).
pub const GAME_NOTES_MAX: usize = 8192;

/// The game's view of its zone during one call. See the module docs.
#[derive(Debug)]
pub struct GameWorld<'a> {
    zone: &'a mut Zone,
}

/// The game slot of a zone: the game (out of it while it runs) and what it will be told
/// (what it does while it runs — spawns, despawns — is noted for the next tick).
pub(crate) struct GameSlot {
    game: Option<Box<dyn Game + Send>>,
    layout: StateLayout,
    notes: Vec<Note>,
    /// The other notes buffer: the one being handed out while the game runs.
    spare: Vec<Note>,
    /// Messages to hand the game and to send ([`messages`]).
    pub(crate) mailbox: messages::Mailbox,
}

impl core::fmt::Debug for GameSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GameSlot")
            .field("notes", &self.notes.len())
            .finish_non_exhaustive()
    }
}

impl Zone {
    /// Installs the game this zone runs (see [`Game`]).
    pub fn set_game(&mut self, game: Box<dyn Game + Send>) {
        // The stores keep the game's record length (`Limits::state_bytes`).
        let len = game.state_layout().len();
        self.limits.state_bytes = len as u32;
        self.entities.set_state_len(len);
        self.ghosts.entities_mut().set_state_len(len);
        self.game = Some(Box::new(GameSlot {
            layout: game.state_layout(),
            game: Some(game),
            notes: Vec::with_capacity(GAME_NOTES_MAX),
            spare: Vec::with_capacity(GAME_NOTES_MAX),
            mailbox: messages::Mailbox::new(),
        }));
    }

    /// Whether a game is installed ([`Zone::set_game`]).
    pub fn has_game(&self) -> bool {
        self.game.is_some()
    }

    /// The installed game's state layout ([`StateLayout::NONE`] without a game).
    pub fn state_layout(&self) -> StateLayout {
        self.game.as_ref().map_or(StateLayout::NONE, |g| g.layout)
    }

    /// Whether the game marks the owned entity in `slot` on the live map
    /// ([`Game::marked`]).
    pub fn marked(&self, slot: u32) -> bool {
        let game = self.game.as_ref().and_then(|g| g.game.as_ref());
        game.is_some_and(|g| g.marked(self.entities.state(slot)))
    }

    /// A client's action for `avatar`, handed to the game at the next tick if the avatar
    /// is still owned here then (the session layer calls it for every input with buttons
    /// pressed). Returns `false` if no game runs here, or if too many notes are waiting
    /// (counted).
    pub fn act(&mut self, avatar: EntityID, action: Action) -> bool {
        self.note(Note::Action(avatar, action))
    }

    /// Tells the game at the next tick, if one runs here; `false` if none does or too many
    /// notes wait (counted).
    pub(crate) fn note(&mut self, note: Note) -> bool {
        let Some(slot) = &mut self.game else {
            return false;
        };
        if slot.notes.len() < GAME_NOTES_MAX {
            slot.notes.push(note);
            true
        } else {
            self.counters.game_notes_dropped += 1;
            false
        }
    }

    /// Arrivals and departures for the game (from `Zone::emit`).
    pub(crate) fn note_event(&mut self, event: &Event) {
        if self.game.is_none() {
            return;
        }
        match *event {
            Event::Arrived { id, from, .. } => {
                self.note(Note::Arrived(id, from));
            }
            Event::Relinquished { id, to, .. } => {
                self.note(Note::Departed(id, to));
            }
            _ => {}
        }
    }

    /// The game's turn in the tick: notes, then systems.
    pub(crate) fn run_game(&mut self) {
        let Some(slot) = self.game.as_mut() else {
            return;
        };
        let Some(mut game) = slot.game.take() else {
            return;
        };
        // Hand out this tick's notes; what the game does meanwhile goes into the other
        // buffer, for the next tick.
        let spare = core::mem::take(&mut slot.spare);
        let mut notes = core::mem::replace(&mut slot.notes, spare);
        let mut world = GameWorld { zone: self };
        for note in notes.drain(..) {
            match note {
                Note::Arrived(id, from) => game.arrived(&mut world, id, from),
                Note::Departed(id, to) => game.departed(&mut world, id, to),
                Note::Spawned(id) => game.spawned(&mut world, id),
                Note::Removed(id) => game.removed(&mut world, id),
                Note::Action(avatar, action) => {
                    if world.zone.entities.slot_of(avatar).is_some() {
                        game.action(&mut world, avatar, action);
                    }
                }
            }
        }
        let inbound = world.zone.take_messages();
        for m in &inbound {
            if let Some(message) = world.zone.deliver_message(m) {
                game.message(&mut world, message);
            }
        }
        world.zone.return_messages(inbound);
        game.systems(&mut world);
        let slot = self
            .game
            .as_mut()
            .expect("the slot stays while the game runs");
        slot.spare = notes;
        slot.game = Some(game);
        self.send_messages();
    }
}

impl GameWorld<'_> {
    /// The zone's tick (the game's only clock).
    pub fn tick(&self) -> u64 {
        self.zone.tick
    }

    pub fn zone(&self) -> ZoneID {
        self.zone.id
    }

    pub fn rect(&self) -> Rect {
        self.zone.rect()
    }

    /// The owned entities, read-only (columns by slot: ids, positions, velocities, kinds,
    /// flags, payloads).
    pub fn owned(&self) -> &crate::entities::Entities {
        &self.zone.entities
    }

    /// The ghosts (neighbours' entities near the border), read-only.
    pub fn ghosts(&self) -> &crate::entities::Entities {
        self.zone.ghosts.entities()
    }

    /// The owned entities' velocity columns (`vx`, `vy`, by slot), to write: the movement
    /// pass clamps them to each entity's speed limit.
    pub fn velocities_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        let len = self.zone.entities.len();
        let lanes = self.zone.entities.lanes_mut();
        (
            &mut bytemuck::cast_slice_mut::<_, f32>(lanes.vx)[..len],
            &mut bytemuck::cast_slice_mut::<_, f32>(lanes.vy)[..len],
        )
    }

    /// The owned entities' state records (by slot, `StateLayout::len` bytes each), to
    /// write ([`state::read`], [`state::write`] for the record in each); carried with the
    /// entity through handoffs and checkpoints. None when the game declares no record.
    pub fn states_mut(&mut self) -> core::slice::ChunksExactMut<'_, u8> {
        self.zone.entities.states_mut()
    }

    /// The owned entities' records as a slice of `S` (by slot), to write: the fast way
    /// for a system to touch every record. `None` unless the game's layout is
    /// `StateLayout::of::<S>()`.
    pub fn records_mut<S: bytemuck::Pod>(&mut self) -> Option<&mut [S]> {
        self.zone.entities.records_mut()
    }

    /// Sends the client of `avatar` a game event (at most 24 bytes): delivered once, in
    /// order, across zone changes ([`events`]). Returns its sequence.
    pub fn send_event(
        &mut self,
        avatar: EntityID,
        bytes: &[u8],
    ) -> Result<u32, events::EventError> {
        self.zone.send_game_event(avatar, bytes)
    }

    /// Whether `id` is owned here and a client's avatar (a session is bound to it).
    pub fn has_client(&self, id: EntityID) -> bool {
        self.zone.entities.slot_of(id).is_some() && self.zone.sessions.contains_key(&id)
    }

    /// Events sent to the client of `avatar` it has not acknowledged yet (at most 8).
    pub fn pending_events(&self, avatar: EntityID) -> usize {
        self.zone.game_events(avatar).len()
    }

    /// The state record of `id`, owned or a ghost (a ghost's as its owner last sent it).
    pub fn state<S: bytemuck::Pod>(&self, id: EntityID) -> Option<S> {
        let (owned, ghosts) = (&self.zone.entities, self.zone.ghosts.entities());
        let (e, slot) = match owned.slot_of(id) {
            Some(slot) => (owned, slot),
            None => (ghosts, ghosts.slot_of(id)?),
        };
        Some(state::read(e.state(slot)))
    }

    /// Writes the state record of `id`, if this zone owns it.
    pub fn set_state<S: bytemuck::Pod>(
        &mut self,
        id: EntityID,
        record: &S,
    ) -> Result<(), NotOwned> {
        let slot = self.zone.entities.slot_of(id).ok_or(NotOwned)?;
        state::write(self.zone.entities.state_mut(slot), record);
        Ok(())
    }

    /// A new entity owned here (id minted and the spawn logged, as [`Zone::spawn`]).
    pub fn spawn(
        &mut self,
        position: [f32; 2],
        speed_mps_max: f32,
        kind: u16,
    ) -> Result<EntityID, InsertError> {
        let at = [position[0], position[1], 0.0];
        self.zone.spawn(at, [0.0, 0.0], speed_mps_max, kind)
    }

    /// Destroys an entity owned here (logged, as [`Zone::remove`]).
    pub fn despawn(&mut self, id: EntityID) -> Result<(), DespawnError> {
        if self.zone.entities.slot_of(id).is_none() {
            return Err(DespawnError::NotOwned);
        }
        self.zone
            .remove(id)
            .map(|_| ())
            .ok_or(DespawnError::LogFull)
    }

    /// Every owned entity and ghost within `radius_m` of `(x, y)`: `f(id, position,
    /// owned)`.
    pub fn within(
        &self,
        (x, y): (f32, f32),
        radius_m: f32,
        mut f: impl FnMut(EntityID, [f32; 2], bool),
    ) {
        let (owned, ghosts) = (&self.zone.entities, self.zone.ghosts.entities());
        self.zone.query_radius(x, y, radius_m, |s| {
            let s = s as usize;
            f(owned.ids()[s], [owned.xs()[s], owned.ys()[s]], true);
        });
        self.zone.query_ghosts_radius(x, y, radius_m, |s| {
            let s = s as usize;
            f(ghosts.ids()[s], [ghosts.xs()[s], ghosts.ys()[s]], false);
        });
    }

    /// The nearest owned entity or ghost to `(x, y)` within `radius_m`, other than
    /// `except`: its id, position and distance.
    pub fn nearest(
        &self,
        at: (f32, f32),
        radius_m: f32,
        except: Option<EntityID>,
    ) -> Option<(EntityID, [f32; 2], f32)> {
        let mut best: Option<(EntityID, [f32; 2], f32)> = None;
        self.within(at, radius_m, |id, p, _| {
            let d = ((p[0] - at.0).powi(2) + (p[1] - at.1).powi(2)).sqrt();
            if Some(id) != except && best.is_none_or(|b| d < b.2) {
                best = Some((id, p, d));
            }
        });
        best
    }

    /// The first owned entity or ghost `ray` meets now (other than `except`).
    pub fn ray(&self, ray: &Ray, except: Option<EntityID>) -> Option<Hit> {
        let reach = crate::history::History::ray_reach(ray, 0.0, 0.0);
        let mut first = None;
        self.zone.query_rect(reach, |id, p| {
            if Some(id) != except {
                ray.keep_first(&mut first, id, p);
            }
        });
        first
    }

    /// The first entity `ray` met at the client's tick `at` (lag compensation; see
    /// `Zone::rewind_ray`), entities no faster than `speed_mps`.
    pub fn rewind_ray(
        &mut self,
        ray: &Ray,
        at: f64,
        speed_mps: f32,
    ) -> Result<Option<Hit>, crate::queries::RefusedRewind> {
        self.zone.rewind_ray(ray, at, speed_mps)
    }

    /// [`GameWorld::rewind_ray`] among the entities `keep` accepts, given each one's id
    /// and state record: the ray passes through the others.
    pub fn rewind_ray_where(
        &mut self,
        ray: &Ray,
        at: f64,
        speed_mps: f32,
        keep: impl FnMut(EntityID, &[u8]) -> bool,
    ) -> Result<Option<Hit>, crate::queries::RefusedRewind> {
        self.zone.rewind_ray_where(ray, at, speed_mps, keep)
    }
}
