//! The library behind the `meridian` binary: world files and (later) the node runtime.
//! Kept as a library so integration tests can drive it without spawning processes.

pub mod admin_token;
pub mod cli;
pub mod data_geometry;
pub mod demo_mesh;
pub mod failover;
pub mod games;
pub mod inspect;
pub mod keyfile;
pub mod layout;
pub mod map;
pub mod mesh;
pub mod metrics;
pub mod progress;
pub mod run;
pub mod sim;
pub mod sim_membership;
pub mod standby;
pub mod swarm;
pub mod tag;
pub mod world_file;
