//! Connects one client to a zone and prints what it sees, once a second.
//!
//! ```sh
//! meridian keygen --out auth.key          # put its public key in the world's [clients]
//! cargo run --release -p meridian-node -- node --world my-world.toml &
//! cargo run --release -p meridian-node --example connect -- \
//!     --server 127.0.0.1:7000 --auth-key auth.key --world-id 1 --seconds 20
//! ```
//!
//! The example mints its own token with the world's auth key (what an account service
//! does), walks its avatar in a slow circle, and prints the session, the avatar's
//! authoritative and predicted positions, the entities in view and any redirect.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use ed25519_dalek::SigningKey;
use meridian_client::ClientEvent;
use meridian_client::token::issue_token;
use meridian_client::udp::UdpClient;
use meridian_io::Clock;
use meridian_layouts::quant::dequantise_position;
use meridian_node::keyfile;

#[derive(Parser)]
struct Args {
    /// A zone's client address.
    #[arg(long)]
    server: SocketAddr,
    /// The world's auth key pair (signs this client's token).
    #[arg(long, value_name = "FILE")]
    auth_key: PathBuf,
    /// The world id in the world file's [world] section.
    #[arg(long, default_value_t = 1)]
    world_id: u64,
    /// How long to stay, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let auth = keyfile::read(&args.auth_key)?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let token = issue_token(
        &auth,
        *key.verifying_key().as_bytes(),
        args.world_id,
        u64::from_le_bytes(seed[..8].try_into()?),
        now_ms + 3_600_000,
        u64::from_le_bytes(seed[8..16].try_into()?),
    );
    let clock = Clock::new();
    let mut client = UdpClient::connect(args.server, token, key, clock.now())?;
    println!(
        "connecting to {} from {}",
        args.server,
        client.local_addr()?
    );
    let started = Instant::now();
    let mut next_print = started + Duration::from_secs(1);
    while started.elapsed() < Duration::from_secs(args.seconds) {
        std::thread::sleep(Duration::from_millis(33));
        let t = started.elapsed().as_secs_f32() * 0.3;
        client
            .client_mut()
            .set_intent((t.cos() * 60.0) as i8, (t.sin() * 60.0) as i8, 0);
        client.pump(clock.now(), || true)?;
        while let Some(event) = client.client_mut().poll_event() {
            match event {
                ClientEvent::Connected {
                    session,
                    avatar,
                    zone,
                } => {
                    println!("connected: session {session}, avatar {avatar}, zone {zone}")
                }
                ClientEvent::Redirected { zone, addr, .. } => {
                    println!("redirected to zone {zone} at {addr} (same session)")
                }
                ClientEvent::Closed(reason) => {
                    println!("closed: {reason:?}");
                    return Ok(());
                }
                ClientEvent::Game(event) => {
                    println!("game event {}: {:?}", event.seq.get(), event.bytes())
                }
                ClientEvent::Snapshot { .. } => {}
            }
        }
        if Instant::now() >= next_print && client.client().is_connected() {
            next_print += Duration::from_secs(1);
            let c = client.client();
            let a = c.authoritative();
            let p = c.predicted();
            let (tick, entities) = c.entities();
            let mut nearest: Vec<(f32, u64)> = entities
                .iter()
                .map(|r| {
                    let (dx, dy) = (
                        dequantise_position(r.x) - a.position[0],
                        dequantise_position(r.y) - a.position[1],
                    );
                    ((dx * dx + dy * dy).sqrt(), r.id)
                })
                .collect();
            nearest.sort_by(|x, y| x.0.total_cmp(&y.0));
            println!(
                "zone {} tick {tick}: avatar at ({:.1}, {:.1}), predicted ({:.1}, {:.1}), input {} applied; {} in view, nearest {:?}",
                c.zone(),
                a.position[0],
                a.position[1],
                p[0],
                p[1],
                a.input_sequence,
                entities.len(),
                nearest
                    .iter()
                    .take(3)
                    .map(|n| format!("{} at {:.1} m", n.1, n.0))
                    .collect::<Vec<_>>()
            );
        }
    }
    client.client_mut().disconnect();
    client.flush(|| true)?;
    println!("disconnected");
    Ok(())
}
