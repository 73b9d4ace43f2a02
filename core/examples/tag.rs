//! How a studio writes a game on Meridian: a game of tag, run on two zones in memory.
//!
//! - **State record**: each runner's game state lives in its 16-byte payload (here: "it"
//!   or not, and how many times it was tagged), carried with it across the border.
//! - **One system**: runners that are "it" chase the nearest runner they can see — owned
//!   here or a ghost of the next zone — and tag it on contact; the others flee.
//! - **One action**: a client's button 1 makes its avatar "it" (`Zone::act`).
//! - **Hooks**: arrivals and departures, counted.
//!
//! Not shown, because not built yet: a game-declared state record larger than the
//! payload, game events sent to clients. See docs/game.md.
//!
//! Run: `cargo run --release -p meridian-core --example tag`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::game::{Action, Game, GameWorld};
use meridian_core::limits::Limits;
use meridian_core::net::Peer;
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;

/// The game state record, in the payload: byte 0 "it", bytes 4..8 times tagged, bytes
/// 8..16 the tick it became "it" (no tag-backs for two seconds).
fn is_it(payload: &[u8; 16]) -> bool {
    payload[0] == 1
}

fn it_since(payload: &[u8; 16]) -> u64 {
    u64::from_le_bytes(payload[8..16].try_into().unwrap())
}

const NO_TAG_BACKS_TICKS: u64 = 60;

struct Tag {
    crossings: Arc<AtomicU64>,
    tags: Arc<AtomicU64>,
}

impl Game for Tag {
    fn systems(&mut self, world: &mut GameWorld<'_>) {
        let owned = world.owned();
        let n = owned.len();
        let (mut steer, mut tagged) = (Vec::with_capacity(n), Vec::new());
        for s in 0..n {
            let (id, at) = (owned.ids()[s], (owned.xs()[s], owned.ys()[s]));
            let it = is_it(&owned.payloads()[s]);
            let Some((other, p, d)) = world.nearest(at, 40.0, Some(id)) else {
                steer.push([0.0, 0.0]);
                continue;
            };
            let away = [(at.0 - p[0]) / d.max(0.01), (at.1 - p[1]) / d.max(0.01)];
            // "It" runs at the nearest; everyone else runs from it (at their speed limit:
            // the zone clamps whatever the game asks).
            let sign = if it { -10.0 } else { 10.0 };
            steer.push([away[0] * sign, away[1] * sign]);
            if it && d < 1.0 && world.tick() >= it_since(&owned.payloads()[s]) + NO_TAG_BACKS_TICKS
            {
                tagged.push((s, other));
            }
        }
        let (vx, vy) = world.velocities_mut();
        for (s, v) in steer.iter().enumerate() {
            (vx[s], vy[s]) = (v[0], v[1]);
        }
        for (it_slot, victim) in tagged {
            // Only what this zone owns can be written: a ghost is tagged once it is here.
            let Some(v) = world.owned().slot_of(victim) else {
                continue;
            };
            let tick = world.tick();
            let payloads = world.payloads_mut();
            payloads[it_slot][0] = 0;
            payloads[v as usize][0] = 1;
            payloads[v as usize][8..16].copy_from_slice(&tick.to_le_bytes());
            let times = u32::from_le_bytes(payloads[v as usize][4..8].try_into().unwrap());
            payloads[v as usize][4..8].copy_from_slice(&(times + 1).to_le_bytes());
            self.tags.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn arrived(&mut self, _: &mut GameWorld<'_>, _: EntityID, _: ZoneID) {
        self.crossings.fetch_add(1, Ordering::Relaxed);
    }

    fn action(&mut self, world: &mut GameWorld<'_>, avatar: EntityID, action: Action) {
        let slot = world.owned().slot_of(avatar).expect("owned when called");
        if action.buttons & 1 != 0 {
            world.payloads_mut()[slot as usize][0] = 1;
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
            payload: [0; 16],
        };
        zones[zone].insert(&runner).expect("capacity");
    }
    // The player presses button 1: its avatar is "it".
    zones[0].act(
        EntityID(1),
        Action {
            buttons: 1,
            view_tick: None,
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
        .map(|z| z.entities().payloads().iter().filter(|p| is_it(p)).count())
        .sum();
    let runners: usize = zones.iter().map(|z| z.entities().len()).sum();
    println!(
        "60 s of tag on two zones: {} tags, {} border crossings, {runners} runners owned, {its} \"it\"",
        tags.load(Ordering::Relaxed),
        crossings.load(Ordering::Relaxed),
    );
}
