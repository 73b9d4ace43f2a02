//! The sans-IO Meridian world.
//!
//! Everything here is pure: no sockets, clocks, threads or async. Time comes in as an
//! argument ([`time::Instant`]); work happens in [`zone::Zone::tick`]. The same code runs
//! in the node, in the deterministic simulator and in benches.
//!
//! Module map, in the order a tick touches them:
//!
//! | module | owns |
//! |---|---|
//! | [`limits`] | every capacity, validated once when a zone is built |
//! | [`time`] | `Instant` as a value (re-exported from `meridian-protocol`) |
//! | [`world`] | bounds, the zone grid, neighbours (corners included), margin, aura |
//! | [`entities`] | the SoA store: `f32x8` position/velocity lanes, id → slot map |
//! | [`movement`] | SIMD speed clamp and integration, world-bounds clamp |
//! | [`grid`] | the incremental bucket grid and its packed, cell-ordered query copy |
//! | [`borders`] | the SIMD border pass: crossings and aura membership |
//! | [`net`] | peers, the inbox and the outbox that packs packets per destination |
//! | [`handoff`] | the handoff protocol: tables, events, log records; source and target sides; restore |
//! | [`ghosts`] | the ghost store, and ghost batches out and in |
//! | [`pacing`] | when in the tick period each zone ticks, so neighbours answer each other within it |
//! | [`zone`] | one zone: the sans-IO API and the tick that ties the above together; [`bugs`], its deliberately broken variants for the simulator's tests |
//! | [`game`] | the game API: the trait a game implements, the zone's view it gets, the state record ([`game::state`]) |
//! | [`npc`] | server-driven NPC steering patterns |
//! | [`witness`] | key registry, batch verification, replay windows, connect-token checks |
//! | [`session`] | a zone's clients: handshake, inputs, bindings and redirects |
//! | [`replicate`] | interest, priority, byte budget, snapshot building |
//! | [`history`] | per-tick positions for lag compensation, and rewind queries |
//! | [`queries`] | a zone's spatial queries: near a point now, rewound (lag compensation) |
//! | [`persist`] | WAL records and checkpoint images as bytes (no file I/O) |
//! | [`mesh`] | which nodes are alive: SWIM gossip (foca), signed with node keys |
//! | `sim` | the deterministic simulator (feature `sim`) |
//!
//! The client library is a separate crate (`meridian-client`); the codecs both sides run
//! are in `meridian-protocol`.

#![forbid(unsafe_code)]

pub mod borders;
pub mod bugs;
pub mod entities;
pub mod game;
pub mod ghosts;
pub mod grid;
pub mod handoff;
pub mod history;
pub mod limits;
pub mod mesh;
pub mod metrics;
pub mod movement;
pub mod net;
pub mod npc;
pub mod pacing;
pub mod persist;
pub mod queries;
pub mod replicate;
pub mod session;
#[cfg(feature = "sim")]
pub mod sim;
pub use meridian_protocol::time;
pub mod witness;
pub mod world;
pub mod zone;
