//! How a studio writes a game on Meridian, end to end over UDP: a small shooting game on
//! a two-zone node, played by bots in this process.
//!
//! - **State record**: `Fighter` (health, hits, deaths) in every entity's state column;
//!   clients see health and hits.
//! - **One system**: health regenerates, one point a second.
//! - **One action**: button 1 fires along the client's aim; the shot is judged where the
//!   shooter saw its target (lag compensation: `rewind_ray` at the client's
//!   interpolation time) and refused if that is too old.
//! - **Events**: the shooter hears "hit", "miss" or "refused"; the victim "you were hit".
//!
//! ```sh
//! cargo run --release -p meridian-node --example duel -- --bots 6 --seconds 20
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant as WallInstant};

use clap::Parser;
use ed25519_dalek::SigningKey;
use meridian_client::ClientEvent;
use meridian_client::token::issue_token;
use meridian_client::udp::UdpClient;
use meridian_core::entities::EntityID;
use meridian_core::game::state::{FieldKind, StateLayout};
use meridian_core::game::{Action, Game, GameWorld};
use meridian_core::history::Ray;
use meridian_core::world::ZoneID;
use meridian_io::Clock;
use meridian_node::run::{self, GamePlan};
use meridian_node::world_file;

/// The game's state record: 8 bytes of each entity's state column.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Fighter {
    health: u16,
    hits: u16,
    deaths: u32,
}

/// Clients see health (game field 0) and hits (field 1).
const FIGHTER: StateLayout = StateLayout::of::<Fighter>()
    .field(0, FieldKind::U16)
    .field(2, FieldKind::U16);

/// Event bytes: what happened to a shot, or to the one it hit.
const HIT: u8 = 1;
const MISS: u8 = 2;
const REFUSED: u8 = 3;
const WAS_HIT: u8 = 4;

struct Duel;

impl Game for Duel {
    fn state_layout(&self) -> StateLayout {
        FIGHTER
    }

    fn spawned(&mut self, world: &mut GameWorld<'_>, id: EntityID) {
        let _ = world.set_state(
            id,
            &Fighter {
                health: 100,
                ..Fighter::default()
            },
        );
    }

    fn systems(&mut self, world: &mut GameWorld<'_>) {
        if !world.tick().is_multiple_of(30) {
            return;
        }
        for f in world.records_mut::<Fighter>().expect("the declared record") {
            f.health = (f.health + 1).min(100);
        }
    }

    fn action(&mut self, world: &mut GameWorld<'_>, shooter: EntityID, action: Action) {
        if action.buttons & 1 == 0 {
            return;
        }
        let slot = world.owned().slot_of(shooter).expect("owned when called") as usize;
        let direction = action.aim_direction();
        // From just outside the shooter's body, so the ray does not start inside it.
        let (x, y) = (world.owned().xs()[slot], world.owned().ys()[slot]);
        let ray = Ray {
            origin: [x + direction[0] * 0.7, y + direction[1] * 0.7],
            direction,
            length_m: 60.0,
            radius_m: 0.5,
        };
        // The shooter's own body, where it stood then, is not a target.
        let others = |id: EntityID, _: &[u8]| id != shooter;
        let judged = action
            .view_tick
            .map(|at| world.rewind_ray_where(&ray, at, 8.0, others));
        let outcome = match judged {
            Some(Ok(Some(hit))) => {
                // A victim across the border is another zone's to write: a hit all the
                // same, for the shooter.
                if let Some(mut victim) = world.state::<Fighter>(hit.id)
                    && world.owned().slot_of(hit.id).is_some()
                {
                    victim.health = victim.health.saturating_sub(25);
                    if victim.health == 0 {
                        (victim.health, victim.deaths) = (100, victim.deaths + 1);
                    }
                    let _ = world.set_state(hit.id, &victim);
                    let _ = world.send_event(hit.id, &[WAS_HIT]);
                }
                if let Some(mut me) = world.state::<Fighter>(shooter) {
                    me.hits += 1;
                    let _ = world.set_state(shooter, &me);
                }
                HIT
            }
            Some(Ok(_)) => MISS,
            Some(Err(_)) | None => REFUSED,
        };
        // A full backlog (8 unacknowledged) refuses: this example lets that shot go.
        let _ = world.send_event(shooter, &[outcome]);
    }
}

#[derive(Parser)]
struct Args {
    /// Bots playing.
    #[arg(long, default_value_t = 6)]
    bots: usize,
    /// How long they play, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Zone 0 listens on this UDP port of 127.0.0.1, zone 1 on the next.
    #[arg(long, default_value_t = 47_400)]
    port: u16,
}

/// Two 64 m zones, one node on loopback, no NPCs: the bots are the players.
fn world(auth: &SigningKey, port: u16) -> String {
    format!(
        r#"
[world]
id = 7
bounds = {{ x_min = 0.0, y_min = 0.0, x_max = 128.0, y_max = 64.0 }}
tick_rate_hz = 30
margin_m = 2.0
aura_m = 16.0
cell_size_m = 8.0

[zones]
columns = 2
rows = 1

[[nodes]]
name = "duel"
zones = [0, 1]
udp = "127.0.0.1:{port}"

[clients]
auth_key = "{}"
speed_mps = 4.0
"#,
        hex::encode(auth.verifying_key().as_bytes())
    )
}

/// What the bots heard.
#[derive(Default, Debug)]
struct Tally {
    hits: u32,
    misses: u32,
    refused: u32,
    was_hit: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let auth = SigningKey::from_bytes(&rand_bytes()?);
    let spec = world_file::parse_spec(&world(&auth, args.port)).map_err(anyhow::Error::msg)?;
    let game = GamePlan {
        make: Arc::new(|_: ZoneID| Box::new(Duel) as Box<dyn Game + Send>),
        // One second of history, shots judged up to 8 ticks (267 ms) back.
        rewind: Some((30, 8.0)),
    };
    let running = run::start_with(&spec, &spec.nodes[0], None, None, None, Some(game))?;
    let server = spec.nodes[0].zone_address(0);
    let clock = Clock::new();
    let mut bots = Vec::new();
    for k in 0..args.bots {
        let key = SigningKey::from_bytes(&rand_bytes()?);
        let expires = unix_ms() + 3_600_000;
        let token = issue_token(
            &auth,
            *key.verifying_key().as_bytes(),
            7,
            k as u64,
            expires,
            0,
        );
        bots.push(UdpClient::connect(server, token, key, clock.now())?);
    }
    let (started, mut tally, mut tick) = (WallInstant::now(), Tally::default(), 0u64);
    while started.elapsed() < Duration::from_secs(args.seconds) {
        std::thread::sleep(Duration::from_millis(33));
        tick += 1;
        for (k, bot) in bots.iter_mut().enumerate() {
            bot.pump(clock.now(), || true)?;
            play(bot, clock.now(), tick + k as u64);
            while let Some(event) = bot.client_mut().poll_event() {
                if let ClientEvent::Game(e) = event {
                    match e.bytes() {
                        [HIT] => tally.hits += 1,
                        [MISS] => tally.misses += 1,
                        [REFUSED] => tally.refused += 1,
                        [WAS_HIT] => tally.was_hit += 1,
                        _ => {}
                    }
                }
            }
        }
    }
    for bot in &bots {
        let c = bot.client();
        let me = c.authoritative();
        println!(
            "avatar {}: health {}, hits {}",
            me.id, me.game[0], me.game[1]
        );
    }
    println!("{tally:?}");
    running.stop()?;
    Ok(())
}

/// A bot's turn: run at the nearest other player it sees, aim where it draws it, and
/// fire twice a second.
fn play(bot: &mut UdpClient, now: meridian_core::time::Instant, turn: u64) {
    let c = bot.client_mut();
    if !c.is_connected() {
        return;
    }
    let me = c.predicted();
    let mut nearest: Option<(f32, [f32; 2])> = None;
    c.render_remote(now, |_, p| {
        let d = (p[0] - me[0]).hypot(p[1] - me[1]);
        if nearest.is_none_or(|(best, _)| d < best) {
            nearest = Some((d, p));
        }
    });
    let Some((d, target)) = nearest else {
        c.set_intent(0, 0, 0);
        return;
    };
    let (dx, dy) = (target[0] - me[0], target[1] - me[1]);
    c.set_aim(dy.atan2(dx));
    // Close in to about 8 m, then stand and shoot.
    let speed = if d > 8.0 { 127.0 / d } else { 0.0 };
    let fire = u16::from(turn.is_multiple_of(15));
    c.set_intent((dx * speed) as i8, (dy * speed) as i8, fire);
}

fn rand_bytes() -> anyhow::Result<[u8; 32]> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(b)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
