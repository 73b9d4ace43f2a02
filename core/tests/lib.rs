//! meridian-core's integration tests: one binary, one module per subsystem.
//!
//! This binary links `allocation-counter`, which replaces the global allocator with a
//! counting one (see `alloc.rs`); nothing else in the workspace links it.

mod alloc;
mod borders;
mod clients;
mod continuity;
mod crowd;
mod deaths;
mod fuzz;
mod game;
mod grid;
mod handoff;
mod history;
mod inputs;
mod interest;
mod lagging;
mod membership;
mod mesh;
mod messages;
mod movement;
mod one_pass;
mod persist;
mod sealed;
mod seamless;
mod sim;
mod support;
mod takeover;
mod votes;
mod witness;
