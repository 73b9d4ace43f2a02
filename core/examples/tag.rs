//! How a studio writes a game on Meridian: a game of tag, run on two zones in memory.
//!
//! - **State record**: each runner's `Runner` record ("it" or not, since when, how many
//!   times tagged) lives in its state slot, crosses the border with it, is ghosted to the
//!   next zone, and is sent to clients ("it" only: a client field).
//! - **One system**: runners that are "it" chase the nearest runner they can see — owned
//!   here or a ghost of the next zone — and tag it on contact; the others flee.
//! - **One action**: a client's button 1 makes its avatar "it" (`Zone::act`).
//! - **Hooks**: arrivals and departures, counted.
//!
//! Game events, aim and lag-compensated shots over real UDP: `node/examples/duel.rs`.
//!
//! Run: `cargo run --release -p meridian-core --example tag`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::game::state::{self, FieldKind, StateLayout};
use meridian_core::game::{Action, Game, GameWorld};
use meridian_core::limits::Limits;
use meridian_core::net::Peer;
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;

/// The game state record: 16 bytes of each entity's state slot.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Runner {
    it: u8,
    _pad: [u8; 3],
    times_tagged: u32,
    /// The tick it became "it" (no tag-backs for two seconds).
    it_since: u64,
}

/// Clients see whether a runner is "it".
const RUNNER: StateLayout = StateLayout::of::<Runner>().field(0, FieldKind::U8);

const NO_TAG_BACKS_TICKS: u64 = 60;

struct Tag {
    crossings: Arc<AtomicU64>,
    tags: Arc<AtomicU64>,
}

impl Game for Tag {
    fn state_layout(&self) -> StateLayout {
        RUNNER
    }

    fn systems(&mut self, world: &mut GameWorld<'_>) {
        let owned = world.owned();
        let n = owned.len();
        let (mut steer, mut tagged) = (Vec::with_capacity(n), Vec::new());
        for s in 0..n {
            let (id, at) = (owned.ids()[s], (owned.xs()[s], owned.ys()[s]));
            let me: Runner = state::read(owned.state(s as u32));
            let Some((other, p, d)) = world.nearest(at, 40.0, Some(id)) else {
                steer.push([0.0, 0.0]);
                continue;
            };
            let away = [(at.0 - p[0]) / d.max(0.01), (at.1 - p[1]) / d.max(0.01)];
            // "It" runs at the nearest; everyone else runs from it (at their speed limit:
            // the zone clamps whatever the game asks).
            let sign = if me.it == 1 { -10.0 } else { 10.0 };
            steer.push([away[0] * sign, away[1] * sign]);
            if me.it == 1 && d < 1.0 && world.tick() >= me.it_since + NO_TAG_BACKS_TICKS {
                tagged.push((id, other));
            }
        }
        let (vx, vy) = world.velocities_mut();
        for (s, v) in steer.iter().enumerate() {
            (vx[s], vy[s]) = (v[0], v[1]);
        }
        for (it, victim) in tagged {
            // Only what this zone owns can be written: a ghost is tagged once it is here.
            let Some(mut v) = world.state::<Runner>(victim) else {
                continue;
            };
            if world
                .set_state(
                    victim,
                    &Runner {
                        it: 1,
                        times_tagged: v.times_tagged + 1,
                        it_since: world.tick(),
                        ..v
                    },
                )
                .is_err()
            {
                continue;
            }
            v = world.state(it).unwrap_or_default();
            let _ = world.set_state(it, &Runner { it: 0, ..v });
            self.tags.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn arrived(&mut self, _: &mut GameWorld<'_>, _: EntityID, _: ZoneID) {
        self.crossings.fetch_add(1, Ordering::Relaxed);
    }

    fn action(&mut self, world: &mut GameWorld<'_>, avatar: EntityID, action: Action) {
        if action.buttons & 1 != 0 {
            let tick = world.tick();
            let _ = world.set_state(
                avatar,
                &Runner {
                    it: 1,
                    it_since: tick,
                    ..Runner::default()
                },
            );
        }
    }
}

fn main() {
    let world = World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 200.0, 100.0),
        zones_x: 2,
        zones_y: 1,
        margin_m: 2.0,
        aura_m: 40.0,
        tick_rate_hz: 30,
        cell_size_m: 10.0,
    })
    .expect("a valid world");
    let (crossings, tags) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut zones: Vec<Zone> = world
        .zones()
        .map(|z| {
            let mut zone =
                Zone::new(&world, z, Limits::for_entities(1024), Instant::ZERO).expect("limits");
            zone.set_game(Box::new(Tag {
                crossings: Arc::clone(&crossings),
                tags: Arc::clone(&tags),
            }));
            zone
        })
        .collect();
    // 60 runners on a grid around the border; runner 0 is a player's avatar.
    for k in 0..60u64 {
        let position = [
            70.0 + (k % 10) as f32 * 6.0,
            20.0 + (k / 10) as f32 * 12.0,
            0.0,
        ];
        let zone = world.zone_at(position[0], position[1]).0 as usize;
        let runner = EntityInit {
            id: EntityID(k + 1),
            epoch: 0,
            position,
            velocity: [0.0, 0.0],
            speed_mps_max: if k == 0 { 7.0 } else { 5.0 },
            kind: 0,
            flags: 0,
            payload: [0; 64],
        };
        zones[zone].insert(&runner).expect("capacity");
    }
    // The player presses button 1: its avatar is "it".
    zones[0].act(
        EntityID(1),
        Action {
            buttons: 1,
            sequence: 1,
            view_tick: None,
            aim: 0.0,
        },
    );
    let mut now = Instant::ZERO;
    let mut buf = [0u8; 1500];
    for _ in 0..30 * 60 {
        now = now + world.tick_duration();
        for zone in &mut zones {
            zone.tick(now);
            for _ in zone.drain_log() {}
        }
        for from in 0..zones.len() {
            while let Some(t) = zones[from].poll_transmit(&mut buf) {
                if let Peer::Zone(to) = t.to {
                    let sender = Peer::Zone(ZoneID(from as u32));
                    zones[to.0 as usize].handle_datagram(now, sender, &buf[..t.len]);
                }
            }
        }
    }
    let its: usize = zones
        .iter()
        .map(|z| {
            let e = z.entities();
            (0..e.len() as u32)
                .filter(|&s| state::read::<Runner>(e.state(s)).it == 1)
                .count()
        })
        .sum();
    let runners: usize = zones.iter().map(|z| z.entities().len()).sum();
    println!(
        "60 s of tag on two zones: {} tags, {} border crossings, {runners} runners owned, {its} \"it\"",
        tags.load(Ordering::Relaxed),
        crossings.load(Ordering::Relaxed),
    );
}
