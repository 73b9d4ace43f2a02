//! The envelope of every datagram on a node's control port: membership gossip and the
//! votes on zones' standbys.
//!
//! ```text
//! datagram := kind:u8 version:u8 node:u16le payload signature:64
//! signed   := domain(kind) ‖ version:u8 ‖ node:u16le ‖ payload
//! ```
//!
//! `kind` is [`GOSSIP_KIND`] (domain `"meridian/gossip/v1"`) or [`VOTE_KIND`] (domain
//! [`crate::votes::VOTE_DOMAIN`]); `version` is the mesh protocol the sender speaks
//! ([`MESH_VERSION`]): what its gossip and its votes mean, and which formats its zones and
//! standby streams use towards other nodes (it changes with any of them). Nodes of
//! different versions do not take each other's datagrams — a mesh must not count the
//! votes of a node that reads its ledger by other rules — and say so instead of staying
//! silent about it.
//!
//! The first four bytes keep this meaning in every later version, so that any two builds
//! can tell which protocol the other speaks. Builds from before the version byte (mesh
//! protocol 1) sent `kind:u8 node:u16le payload signature` with kinds
//! [`LEGACY_GOSSIP_KIND`] and [`LEGACY_VOTE_KIND`]; they are recognised by those kinds.

use bytemuck::{Pod, Zeroable};

use crate::{ParseError, U16Le};

/// The mesh protocol this build speaks: 2 (the version byte, votes in two phases with
/// releases). 1 is every build before the version byte.
pub const MESH_VERSION: u8 = 2;
/// The first byte of a gossip datagram.
pub const GOSSIP_KIND: u8 = 0x67;
/// The first byte of a vote datagram.
pub const VOTE_KIND: u8 = 0x76;
/// The first byte of a gossip datagram of mesh protocol 1 (no version byte).
pub const LEGACY_GOSSIP_KIND: u8 = 0x4D;
/// The first byte of a vote datagram of mesh protocol 1.
pub const LEGACY_VOTE_KIND: u8 = 0x56;
/// The signature's length, at the end of every control datagram.
pub const SIGNATURE_SIZE: usize = 64;

/// What a control datagram carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    Gossip,
    Vote,
}

/// The front of a control datagram.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ControlHead {
    pub kind: u8,
    pub version: u8,
    /// The sender's index in the world file's `[[nodes]]`.
    pub node: U16Le,
}

const _: () = assert!(core::mem::size_of::<ControlHead>() == 4);

/// A control datagram taken apart; the signature is not checked here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control<'a> {
    pub kind: ControlKind,
    /// The mesh protocol the sender speaks (1 for a datagram without the version byte).
    pub version: u8,
    pub node: u16,
    pub payload: &'a [u8],
    pub signature: &'a [u8; SIGNATURE_SIZE],
}

impl ControlHead {
    pub const SIZE: usize = core::mem::size_of::<ControlHead>();
    /// Head and signature: the bytes of a control datagram around its payload.
    pub const OVERHEAD: usize = Self::SIZE + SIGNATURE_SIZE;

    /// The head of a datagram this build sends.
    pub fn new(kind: ControlKind, node: u16) -> ControlHead {
        ControlHead {
            kind: match kind {
                ControlKind::Gossip => GOSSIP_KIND,
                ControlKind::Vote => VOTE_KIND,
            },
            version: MESH_VERSION,
            node: U16Le::new(node),
        }
    }
}

/// Takes a control datagram apart, of any version: `Truncated` if it cannot hold a head
/// and a signature, `UnknownKind` if its first byte is no control kind of any version.
/// Whether the version is this build's is the caller's question.
pub fn parse_control(bytes: &[u8]) -> Result<Control<'_>, ParseError> {
    let (kind, version, head) = match bytes.first() {
        Some(&GOSSIP_KIND) => (ControlKind::Gossip, None, ControlHead::SIZE),
        Some(&VOTE_KIND) => (ControlKind::Vote, None, ControlHead::SIZE),
        Some(&LEGACY_GOSSIP_KIND) => (ControlKind::Gossip, Some(1), 3),
        Some(&LEGACY_VOTE_KIND) => (ControlKind::Vote, Some(1), 3),
        Some(_) => return Err(ParseError::UnknownKind),
        None => return Err(ParseError::Truncated),
    };
    if bytes.len() < head + SIGNATURE_SIZE {
        return Err(ParseError::Truncated);
    }
    let (body, signature) = bytes.split_at(bytes.len() - SIGNATURE_SIZE);
    let signature: &[u8; SIGNATURE_SIZE] =
        signature.try_into().map_err(|_| ParseError::Truncated)?;
    let (version, node) = match version {
        Some(legacy) => (legacy, [body[1], body[2]]),
        None => (body[1], [body[2], body[3]]),
    };
    Ok(Control {
        kind,
        version,
        node: u16::from_le_bytes(node),
        payload: &body[head..],
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_of_this_build_parses_back() {
        let head = ControlHead::new(ControlKind::Vote, 7);
        let mut bytes = [0u8; 4 + 3 + 64];
        bytes[..4].copy_from_slice(bytemuck::bytes_of(&head));
        bytes[4..7].copy_from_slice(b"abc");
        bytes[7..].fill(9);
        let c = parse_control(&bytes).unwrap();
        assert_eq!(
            (c.kind, c.version, c.node, c.payload),
            (ControlKind::Vote, MESH_VERSION, 7, &b"abc"[..])
        );
        assert_eq!(c.signature, &[9u8; 64]);
    }

    #[test]
    fn a_datagram_without_the_version_byte_is_version_1() {
        let mut bytes = [0u8; 3 + 5 + 64];
        bytes[0] = LEGACY_GOSSIP_KIND;
        bytes[1..3].copy_from_slice(&300u16.to_le_bytes());
        let c = parse_control(&bytes).unwrap();
        assert_eq!(
            (c.kind, c.version, c.node, c.payload.len()),
            (ControlKind::Gossip, 1, 300, 5)
        );
    }

    /// Two builds that share a mesh protocol share a mesh, so every format one node sends
    /// another is named by it: the datagram header's version (zone to zone), the standby
    /// stream's, and the vote ledger's (what an answer rests on). A change to any of them
    /// must come with a new mesh protocol, or a mixed mesh would fail in silence again.
    #[test]
    fn the_mesh_protocol_changes_with_every_format_between_nodes() {
        let formats = (
            crate::VERSION,
            crate::standby::VERSION,
            crate::votes::LEDGER_VERSION,
        );
        assert_eq!(
            (formats, MESH_VERSION),
            ((6, 1, 3), 2),
            "a format between nodes changed: raise MESH_VERSION with it and update this line"
        );
    }

    #[test]
    fn short_or_foreign_bytes_are_refused() {
        assert_eq!(parse_control(&[]), Err(ParseError::Truncated));
        assert_eq!(
            parse_control(&[GOSSIP_KIND; 67]),
            Err(ParseError::Truncated)
        );
        assert!(parse_control(&[GOSSIP_KIND; 68]).is_ok());
        assert_eq!(
            parse_control(&[LEGACY_VOTE_KIND; 66]),
            Err(ParseError::Truncated)
        );
        assert_eq!(parse_control(&[0x01; 100]), Err(ParseError::UnknownKind));
    }
}
