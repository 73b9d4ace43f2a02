//! The envelope of every datagram on a node's control port: membership gossip and the
//! votes on zones' standbys.
//!
//! ```text
//! datagram := kind:u8 version:u8 node:u16le world:8 payload tag:16 signature:64
//! signed   := domain(kind) ‖ version:u8 ‖ node:u16le ‖ world:8 ‖ payload
//! tag      := BLAKE3 keyed by the two nodes' pair key, of kind..payload (first 16 bytes)
//! ```
//!
//! `world` (mesh protocol 5 on) is the sender's world digest: what the nodes of one world
//! must agree on in their world file — its id, geometry and tick rate, the nodes with
//! their zones, addresses, keys and standbys, the clients' auth key — hashed by the node.
//! A node whose world file differs in any of that is not of this mesh: its datagrams are
//! refused as another version's are, and said so.
//!
//! The tag is the cheap gate in front of the signature: its key comes from the X25519
//! secret the sending and the receiving node share (their pinned Ed25519 keys), so a
//! sender that only knows a node's address — UDP source addresses are easy to forge —
//! cannot make one, and its datagrams cost the receiver a hash instead of an Ed25519
//! verification (docs/security.md). Version 2 had no tag. (Version 4 is version 3's frame:
//! what changed is the zone envelopes between nodes, which carry a pair tag too.)
//!
//! `kind` is [`GOSSIP_KIND`] (domain `"meridian/gossip/v1"`), [`VOTE_KIND`] (domain
//! [`crate::votes::VOTE_DOMAIN`]) or [`DEATHS_KIND`] (domain `"meridian/deaths/v1"`,
//! mesh protocol 10 on: the nodes the sender sees down, told to a node that came up, as
//! [`Death`]s); `version` is the mesh protocol the sender speaks
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

use crate::{ParseError, U16Le, U32Le};

/// The mesh protocol this build speaks: 12 (a stopped zone's final checkpoint in a lane of
/// its own: stream version 3). 11: the standby stream's frames name their lane (stream
/// version 2). 10: version 5's frame; a node tells a node that came up which
/// nodes it sees down: [`DEATHS_KIND`]. 9: a zone's GHOSTS name the WATCH
/// they answer (datagram header version 10); 8: a primary announces the end of a
/// run it stopped to move its zone, a vote of its own; 7: zones acknowledge each
/// other's game messages (datagram header version 9); 6: zones send each other game messages
/// (datagram header version 8); 5: the world digest in the head; 4: zone
/// envelopes carry a pair tag (datagram header version 7); 3: the pair tag before a
/// control datagram's signature; 2: the version byte, votes in two phases with releases;
/// 1 is every build before the version byte.
pub const MESH_VERSION: u8 = 12;
/// The length of the world digest in a control datagram's head.
pub const WORLD_DIGEST_SIZE: usize = 8;
/// The first byte of a gossip datagram.
pub const GOSSIP_KIND: u8 = 0x67;
/// The first byte of a vote datagram.
pub const VOTE_KIND: u8 = 0x76;
/// The first byte of a deaths datagram (mesh protocol 10 on).
pub const DEATHS_KIND: u8 = 0x64;
/// The first byte of a gossip datagram of mesh protocol 1 (no version byte).
pub const LEGACY_GOSSIP_KIND: u8 = 0x4D;
/// The first byte of a vote datagram of mesh protocol 1.
pub const LEGACY_VOTE_KIND: u8 = 0x56;
/// The signature's length, at the end of every control datagram.
pub const SIGNATURE_SIZE: usize = 64;
/// The pair tag's length, before the signature (mesh protocol 3 and later).
pub const TAG_SIZE: usize = 16;

/// What a control datagram carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    Gossip,
    Vote,
    /// The nodes the sender sees down: its payload is [`Death`]s.
    Deaths,
}

/// One node a deaths datagram's sender sees down: its index and the life (generation) it
/// was declared down in — 0 when the sender never heard from it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Death {
    pub node: U16Le,
    pub generation: U32Le,
}

const _: () = assert!(core::mem::size_of::<Death>() == 6);

/// The front of a control datagram.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ControlHead {
    pub kind: u8,
    pub version: u8,
    /// The sender's index in the world file's `[[nodes]]`.
    pub node: U16Le,
    /// The sender's world digest (see the module docs).
    pub world: [u8; WORLD_DIGEST_SIZE],
}

const _: () = assert!(core::mem::size_of::<ControlHead>() == 12);
/// The head of versions 2 to 4: kind, version, node.
const HEAD_BEFORE_5: usize = 4;

/// A control datagram taken apart; the signature is not checked here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control<'a> {
    pub kind: ControlKind,
    /// The mesh protocol the sender speaks (1 for a datagram without the version byte).
    pub version: u8,
    pub node: u16,
    /// The sender's world digest (`None` before mesh protocol 5).
    pub world: Option<&'a [u8; WORLD_DIGEST_SIZE]>,
    pub payload: &'a [u8],
    /// The pair tag (`None` before mesh protocol 3).
    pub tag: Option<&'a [u8; TAG_SIZE]>,
    pub signature: &'a [u8; SIGNATURE_SIZE],
}

impl ControlHead {
    pub const SIZE: usize = core::mem::size_of::<ControlHead>();
    /// Head, tag and signature: the bytes of a control datagram around its payload.
    pub const OVERHEAD: usize = Self::SIZE + TAG_SIZE + SIGNATURE_SIZE;

    /// The head of a datagram this build sends, from a node of the world `world`.
    pub fn new(kind: ControlKind, node: u16, world: [u8; WORLD_DIGEST_SIZE]) -> ControlHead {
        ControlHead {
            kind: match kind {
                ControlKind::Gossip => GOSSIP_KIND,
                ControlKind::Vote => VOTE_KIND,
                ControlKind::Deaths => DEATHS_KIND,
            },
            version: MESH_VERSION,
            node: U16Le::new(node),
            world,
        }
    }
}

/// Takes a control datagram apart, of any version: `Truncated` if it cannot hold a head
/// (with the world digest from version 5 on), a tag (version 3 on) and a signature, `UnknownKind` if its first byte is no control
/// kind of any version. Whether the version is this build's is the caller's question.
pub fn parse_control(bytes: &[u8]) -> Result<Control<'_>, ParseError> {
    let (kind, legacy) = match bytes.first() {
        Some(&GOSSIP_KIND) => (ControlKind::Gossip, false),
        Some(&VOTE_KIND) => (ControlKind::Vote, false),
        Some(&DEATHS_KIND) => (ControlKind::Deaths, false),
        Some(&LEGACY_GOSSIP_KIND) => (ControlKind::Gossip, true),
        Some(&LEGACY_VOTE_KIND) => (ControlKind::Vote, true),
        Some(_) => return Err(ParseError::UnknownKind),
        None => return Err(ParseError::Truncated),
    };
    if bytes.len() < HEAD_BEFORE_5 {
        return Err(ParseError::Truncated);
    }
    let (version, node, head) = if legacy {
        (1, [bytes[1], bytes[2]], 3)
    } else if bytes[1] < 5 {
        (bytes[1], [bytes[2], bytes[3]], HEAD_BEFORE_5)
    } else {
        (bytes[1], [bytes[2], bytes[3]], ControlHead::SIZE)
    };
    let tag_size = if version >= 3 { TAG_SIZE } else { 0 };
    if bytes.len() < head + tag_size + SIGNATURE_SIZE {
        return Err(ParseError::Truncated);
    }
    let (body, signature) = bytes.split_at(bytes.len() - SIGNATURE_SIZE);
    let (body, tag) = body.split_at(body.len() - tag_size);
    let signature: &[u8; SIGNATURE_SIZE] =
        signature.try_into().map_err(|_| ParseError::Truncated)?;
    let tag = (tag_size > 0)
        .then(|| tag.try_into().map_err(|_| ParseError::Truncated))
        .transpose()?;
    let world = (version >= 5)
        .then(|| body[HEAD_BEFORE_5..head].try_into())
        .transpose()
        .map_err(|_| ParseError::Truncated)?;
    Ok(Control {
        kind,
        version,
        node: u16::from_le_bytes(node),
        world,
        payload: &body[head..],
        tag,
        signature,
    })
}

/// The bytes a control datagram's tag covers: everything before the tag.
pub fn tagged_bytes(datagram: &[u8]) -> &[u8] {
    &datagram[..datagram.len().saturating_sub(TAG_SIZE + SIGNATURE_SIZE)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_of_this_build_parses_back() {
        let head = ControlHead::new(ControlKind::Vote, 7, *b"worlddig");
        let mut bytes = [0u8; 12 + 3 + 16 + 64];
        bytes[..12].copy_from_slice(bytemuck::bytes_of(&head));
        bytes[12..15].copy_from_slice(b"abc");
        bytes[15..31].fill(5);
        bytes[31..].fill(9);
        let c = parse_control(&bytes).unwrap();
        assert_eq!(
            (c.kind, c.version, c.node, c.world, c.payload),
            (
                ControlKind::Vote,
                MESH_VERSION,
                7,
                Some(b"worlddig"),
                &b"abc"[..]
            )
        );
        assert_eq!((c.tag, c.signature), (Some(&[5u8; 16]), &[9u8; 64]));
        assert_eq!(tagged_bytes(&bytes), &bytes[..15]);
    }

    /// Versions 3 and 4 had no world digest: the payload follows the node.
    #[test]
    fn a_datagram_of_version_4_has_no_world_digest() {
        let mut bytes = [0u8; 4 + 5 + 16 + 64];
        bytes[..4].copy_from_slice(&[VOTE_KIND, 4, 2, 0]);
        bytes[4..9].copy_from_slice(b"hello");
        let c = parse_control(&bytes).unwrap();
        assert_eq!(
            (c.version, c.node, c.world, c.payload),
            (4, 2, None, &b"hello"[..])
        );
        assert!(c.tag.is_some());
    }

    /// Version 2 had no tag: its payload runs up to the signature.
    #[test]
    fn a_datagram_of_version_2_has_no_tag() {
        let mut bytes = [0u8; 4 + 5 + 64];
        bytes[..4].copy_from_slice(&[GOSSIP_KIND, 2, 1, 0]);
        let c = parse_control(&bytes).unwrap();
        assert_eq!((c.version, c.payload.len(), c.tag), (2, 5, None));
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
    /// stream's, the vote ledger's (what an answer rests on), and the zone files' (a
    /// standby's copy is the primary's files). A change to any of them
    /// must come with a new mesh protocol, or a mixed mesh would fail in silence again.
    #[test]
    fn the_mesh_protocol_changes_with_every_format_between_nodes() {
        let formats = (
            crate::VERSION,
            crate::standby::VERSION,
            crate::votes::LEDGER_VERSION,
            crate::persist::FORMAT_VERSION,
        );
        assert_eq!(
            (formats, MESH_VERSION),
            ((10, 3, 3, 5), 12),
            "a format between nodes changed: raise MESH_VERSION with it and update this line"
        );
    }

    #[test]
    fn short_or_foreign_bytes_are_refused() {
        assert_eq!(parse_control(&[]), Err(ParseError::Truncated));
        // Version byte 0x67 (≥ 5): head with the world digest, tag and signature.
        assert_eq!(
            parse_control(&[GOSSIP_KIND; 91]),
            Err(ParseError::Truncated)
        );
        assert!(parse_control(&[GOSSIP_KIND; 92]).is_ok());
        let mut v4 = [GOSSIP_KIND; 84];
        v4[1] = 4;
        assert!(parse_control(&v4).is_ok());
        assert_eq!(parse_control(&v4[..83]), Err(ParseError::Truncated));
        assert_eq!(parse_control(&v4[..3]), Err(ParseError::Truncated));
        let mut v2 = [GOSSIP_KIND; 68];
        v2[1] = 2;
        assert!(parse_control(&v2).is_ok());
        assert_eq!(parse_control(&v2[..67]), Err(ParseError::Truncated));
        assert_eq!(
            parse_control(&[LEGACY_VOTE_KIND; 66]),
            Err(ParseError::Truncated)
        );
        assert_eq!(parse_control(&[0x01; 100]), Err(ParseError::UnknownKind));
    }
}
