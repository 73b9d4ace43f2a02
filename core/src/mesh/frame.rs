//! The frame of a control datagram this build sends, and what its sender signs
//! (`meridian_layouts::control`; the module docs of [`super`]).

use ed25519_dalek::{Signer, SigningKey};
use meridian_layouts::control::{ControlHead, ControlKind, MESH_VERSION, WORLD_DIGEST_SIZE};
use meridian_layouts::votes::VOTE_DOMAIN;

use super::gate;

/// What a node signs before the version, the node index and a gossip payload.
const DOMAIN: &[u8] = b"meridian/gossip/v1";
/// What a node signs before the version, the node index and a deaths payload.
const DEATHS_DOMAIN: &[u8] = b"meridian/deaths/v1";

/// A control datagram of this build from node `node` of the world `world` (its digest)
/// to the peer it shares `tag_key` with ([`super::tag_key`]): head, payload, tag, signature
/// (`meridian_layouts::control`).
pub fn control_datagram(
    kind: ControlKind,
    (node, world): (u16, [u8; WORLD_DIGEST_SIZE]),
    payload: &[u8],
    key: &SigningKey,
    tag_key: &[u8; 32],
) -> Vec<u8> {
    datagram(
        kind,
        (node, world),
        payload,
        key,
        &gate::TagKey::from_bytes(*tag_key),
    )
}

pub(super) fn datagram(
    kind: ControlKind,
    (node, world): (u16, [u8; WORLD_DIGEST_SIZE]),
    payload: &[u8],
    key: &SigningKey,
    tag: &gate::TagKey,
) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(ControlHead::OVERHEAD + payload.len());
    datagram.extend_from_slice(bytemuck::bytes_of(&ControlHead::new(kind, node, world)));
    datagram.extend_from_slice(payload);
    let tag = tag.tag(&datagram);
    datagram.extend_from_slice(&tag);
    let signature = key.sign(&signed_bytes(kind, node, world, payload));
    datagram.extend_from_slice(&signature.to_bytes());
    datagram
}

/// What a node signs: its kind's domain, this build's version, the node, its world
/// digest and the payload.
pub(super) fn signed_bytes(
    kind: ControlKind,
    node: u16,
    world: [u8; WORLD_DIGEST_SIZE],
    payload: &[u8],
) -> Vec<u8> {
    let domain = match kind {
        ControlKind::Gossip => DOMAIN,
        ControlKind::Vote => VOTE_DOMAIN,
        ControlKind::Deaths => DEATHS_DOMAIN,
    };
    let mut signed = Vec::with_capacity(domain.len() + 3 + WORLD_DIGEST_SIZE + payload.len());
    signed.extend_from_slice(domain);
    signed.push(MESH_VERSION);
    signed.extend_from_slice(&node.to_le_bytes());
    signed.extend_from_slice(&world);
    signed.extend_from_slice(payload);
    signed
}
