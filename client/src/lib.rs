//! The Meridian client library: what a game client links to talk to a Meridian world.
//!
//! - [`Client`] — the sans-IO session: connect handshake, signed inputs, delta snapshots,
//!   prediction (inside the world's bounds) and smoothed reconciliation of the own avatar,
//!   redirects when the avatar changes zone. It owns no socket and reads no clock: the
//!   caller passes datagrams and `now` in, and takes datagrams out.
//! - [`motion::Motion`] — clock sync, a jitter buffer and smooth tracks for the others
//!   (the client drives it; [`Client::render_remote`] draws them).
//! - [`pace`] — input pacing by the zone's reports ([`Client::input_pace`]) and the round
//!   trip a player feels ([`Client::round_trip`]).
//! - [`udp::UdpClient`] (feature `udp`, on by default) — the same over one non-blocking
//!   std UDP socket, for bots, tools and simple games.
//! - [`token::issue_token`] — what a world's auth service does: sign a connect token.
//!
//! Depends on the wire layouts (`meridian-layouts`), the shared codecs
//! (`meridian-protocol`) and Ed25519; never on the server (`meridian-core`), its drivers,
//! glommio or io_uring. The wire format is specified in the repository's
//! `docs/protocol.md`, for clients in other languages.

#![forbid(unsafe_code)]

mod connection;
pub mod motion;
pub mod pace;
pub mod token;
#[cfg(feature = "udp")]
pub mod udp;

pub use connection::{
    AvatarState, CLIENT_HISTORY, Client, ClientCounters, ClientEvent, CloseReason,
};
pub use meridian_protocol::delta::Record;
pub use meridian_protocol::time::Instant;
