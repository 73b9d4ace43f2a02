//! meridian-node's integration tests: a real node on real sockets.

mod browser;
mod capacity;
mod cli;
mod clients;
mod conservation;
mod durability;
mod e2e;
mod fuzz;
mod game;
mod observe;
