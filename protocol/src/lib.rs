//! What a Meridian server and its clients both compute, beyond fixed byte layouts.
//!
//! [`meridian_layouts`] holds every fixed-size wire type and stays `no_std`, allocation-free
//! and bytemuck-only: a parse there is a length check and a cast. The few shared pieces
//! that are *computation* rather than layout live here, so the zone (`meridian-core`) and
//! the client library (`meridian-client`) run one definition of each:
//!
//! - [`delta`] — the variable-length snapshot entry codec (varints, zigzag, field masks).
//!   It needs an allocator (the decoded snapshot is a `Vec`).
//! - [`motion`] — a movement intent (−127…127 per axis) as a velocity; it needs `sqrt`,
//!   which `no_std` Rust does not have.
//! - [`address`] — socket addresses as the byte fields of REDIRECT and session bindings.
//! - [`replay`] — replay windows over sequence numbers.
//! - [`seal`] — the session key exchange and sealed (ChaCha20-Poly1305) session packets.
//! - [`time`] — time as a value ([`time::Instant`]); the server's zone and the client
//!   library are both driven by a `now` their driver passes in.
//!
//! Pure: no sockets, clocks, threads or unsafe code.

#![forbid(unsafe_code)]

pub mod address;
pub mod delta;
pub mod game;
pub mod motion;
pub mod replay;
pub mod seal;
pub mod time;
