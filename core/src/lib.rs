//! The sans-IO Meridian world.
//!
//! Everything here is pure: no sockets, clocks, threads or async. Time comes in as an
//! argument ([`time::Instant`]); work happens in [`zone::Zone::tick`]. The same code runs
//! in the node, in the deterministic simulator and in benches.
//!
//! Module map, in pipeline order: [`limits`] (every capacity), [`time`], [`world`]
//! (zones, neighbours, margin, aura), [`entities`] (SoA store), [`movement`] (SIMD
//! integration), [`grid`] (spatial index), [`borders`] (crossings and auras), [`zone`]
//! (ties them together).

#![forbid(unsafe_code)]

pub mod borders;
pub mod entities;
pub mod ghosts;
pub mod grid;
pub mod handoff;
pub mod limits;
pub mod movement;
pub mod net;
pub mod npc;
pub mod replicate;
pub mod session;
#[cfg(feature = "sim")]
pub mod sim;
pub use meridian_protocol::time;
pub mod witness;
pub mod world;
pub mod zone;
