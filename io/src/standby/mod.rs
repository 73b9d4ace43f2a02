//! Warm standbys (docs/mesh.md): a zone's primary mirrors its files — WAL segments and
//! checkpoints, byte for byte — to the node that keeps its standby, over a signed TCP
//! stream between the nodes' control addresses; the standby acknowledges what it holds
//! durably. The acknowledgement is the second watermark a zone's held datagrams wait for,
//! after its own disk: a promoted standby then never lacks a record something that left
//! depended on. A promotion restores the zone from the mirror, as a restart would.

mod frame;
mod hooks;
mod mirror;
mod refusals;
mod sealer;
mod serve;
mod stream;
mod worker;

pub use frame::FrameError;
pub use mirror::{Mirror, MirrorError};
pub use refusals::ListenerCounters;
pub use serve::{Kept, KeptStatus, StandbyServer, serve};
pub use stream::{MirrorOp, StandbyTarget, Stream, StreamFeed};

#[cfg(test)]
mod tests;
