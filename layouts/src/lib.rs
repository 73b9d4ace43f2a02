//! Byte layouts of everything that crosses a Meridian process boundary.
//!
//! Every wire packet (and, later, every checkpoint section) is a `#[repr(C)]` type that
//! derives [`bytemuck::Pod`], built only from byte arrays and the little-endian integer
//! wrappers of [`int`]. Alignment is therefore 1: a packet parses at any offset of a
//! receive buffer, with no copy. Each type carries a compile-time size assertion, so a
//! field added by mistake breaks the build rather than the wire.
//!
//! Parsing validates in a fixed order — length, magic, version, kind, declared length,
//! counts, then field values — and returns a [`ParseError`]. It never panics, whatever
//! the bytes: hostile input is the normal case for a server on the open internet, and the
//! caller counts the error kind and drops the datagram.
//!
//! The crate is `no_std`, forbids `unsafe_code`, and depends on `bytemuck` only, so the server,
//! the client library and clients in other languages (via the byte tables in the docs)
//! share one definition of the wire.

#![no_std]
#![forbid(unsafe_code)]

pub mod client;
pub mod control;
pub mod ghosts;
pub mod handoff;
pub mod header;
pub mod int;
pub mod messages;
pub mod persist;
pub mod quant;
pub mod snapshot;
pub mod standby;
pub mod view;
pub mod votes;
pub mod watch;
pub mod wire;
pub mod witness;

pub use header::{Header, Kind, MAGIC, VERSION};
pub use int::{F32Le, I16Le, I32Le, U16Le, U32Le, U64Le};

/// Why a byte string is not a valid packet. `Copy`, so the hot path can count it
/// (see [`ParseError::index`]) without formatting anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the fixed part of the expected layout.
    Truncated,
    /// The first four bytes are not [`MAGIC`].
    BadMagic,
    /// A protocol version this build does not speak.
    BadVersion,
    /// The kind byte names no known packet.
    UnknownKind,
    /// A known kind, but not the one the caller asked for.
    WrongKind,
    /// The header's length field disagrees with the datagram or the layout size.
    BadLength,
    /// A count field disagrees with the bytes that follow it.
    BadCount,
    /// A field holds a value outside its domain (non-finite float, unknown enum value).
    BadField,
}

impl ParseError {
    /// Number of distinct errors, for counter arrays indexed by [`ParseError::index`].
    pub const COUNT: usize = 8;

    /// A dense index in `0..COUNT`, stable for the life of a process.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// A fixed-size packet: a [`Header`] followed by a body, all in one `Pod` struct.
///
/// Implementors put `header: Header` first, so [`parse`] can check it before anything
/// else, and override [`Packet::validate_body`] to check field domains.
pub trait Packet: bytemuck::Pod {
    /// The kind byte this packet carries.
    const KIND: Kind;

    /// The header at the front of the packet.
    fn header(&self) -> &Header;

    /// Field-domain checks beyond the header. The default accepts every body.
    fn validate_body(&self) -> Result<(), ParseError> {
        Ok(())
    }
}

/// A header stamped for packet type `T`: magic, version, `T::KIND` and `T`'s size.
pub fn header_for<T: Packet>() -> Header {
    const { assert!(core::mem::size_of::<T>() <= u16::MAX as usize) };
    Header::new(T::KIND, core::mem::size_of::<T>() as u16)
}

/// Parses a whole datagram as packet type `T`, without copying.
///
/// Order of checks: length ≥ header, magic, version, kind known, kind is `T::KIND`,
/// declared length equals both the datagram length and `size_of::<T>()`, then the body.
pub fn parse<T: Packet>(bytes: &[u8]) -> Result<&T, ParseError> {
    let kind = Header::parse(bytes)?;
    if kind != T::KIND {
        return Err(ParseError::WrongKind);
    }
    if bytes.len() != core::mem::size_of::<T>() {
        return Err(ParseError::BadLength);
    }
    // Alignment is 1 and the length was checked: this cannot fail, but a failure would
    // still be an error, never a panic.
    let packet: &T = bytemuck::try_from_bytes(bytes).map_err(|_| ParseError::BadLength)?;
    packet.validate_body()?;
    Ok(packet)
}
