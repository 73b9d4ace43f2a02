//! Signed layouts: the envelope every node-to-node datagram travels in, and the connect
//! token a client presents (docs/protocol.md, docs/security.md).
//!
//! **Envelope** — one signature per datagram, never per entity:
//!
//! | part               | bytes | signed |
//! |--------------------|------:|:------:|
//! | [`EnvelopeHeader`] | 34    | yes    |
//! | payload            | n     | yes    |
//! | Ed25519 signature  | 64    | —      |
//!
//! The header carries a **domain tag** (what the signed bytes mean, so a signature made
//! for one purpose is never accepted for another), the signer, the signer's epoch and a
//! sequence number. Everything before the signature is the signed message, contiguous in
//! the datagram, so signing and verifying never copy.
//!
//! **Connect token** — issued by the world's auth key, 136 bytes, the last 64 the
//! signature over the first 72.

use bytemuck::{Pod, Zeroable};

use crate::{Header, Kind, ParseError, U16Le, U32Le, U64Le};

/// Length of an Ed25519 signature.
pub const SIGNATURE_SIZE: usize = 64;

/// Domain tags. Eight ASCII bytes; the signed bytes include the tag.
pub mod domain {
    /// A zone-to-zone datagram between nodes (handoff, ghosts).
    pub const NODE: [u8; 8] = *b"MRDN-NOD";
    /// A REDIRECT from a zone to a client.
    pub const REDIRECT: [u8; 8] = *b"MRDN-RDR";
    /// A client INPUT.
    pub const INPUT: [u8; 8] = *b"MRDN-INP";
    /// A connect token.
    pub const TOKEN: [u8; 8] = *b"MRDN-TOK";
}

/// The signed header of an envelope.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct EnvelopeHeader {
    pub header: Header,
    /// One of [`domain`].
    pub domain: [u8; 8],
    /// Index of the signing key in the receiver's key registry.
    pub signer: U32Le,
    /// The signer's epoch (bumped on restart): with `sequence`, orders its datagrams.
    pub epoch: U32Le,
    /// Per-signer, per-epoch datagram counter; replays are rejected by it.
    pub sequence: U64Le,
    /// Bytes of payload between this header and the signature.
    pub payload_length: U16Le,
}

const _: () = assert!(core::mem::size_of::<EnvelopeHeader>() == 34);

impl EnvelopeHeader {
    pub const SIZE: usize = core::mem::size_of::<EnvelopeHeader>();
}

/// The most payload an envelope can carry if the sealed datagram must fit 1,200 bytes
/// (client-facing envelopes). Node-to-node envelopes carry a whole 1,200-byte zone datagram
/// and are up to 1,298 bytes, which any LAN path carries.
pub const ENVELOPE_PAYLOAD_MAX: usize = 1200 - EnvelopeHeader::SIZE - SIGNATURE_SIZE;

/// The most payload any envelope can carry (its length field is 16 bits).
pub const ENVELOPE_PAYLOAD_LIMIT: usize = u16::MAX as usize - EnvelopeHeader::SIZE - SIGNATURE_SIZE;

/// A parsed envelope: views into the datagram, nothing copied.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub header: &'a EnvelopeHeader,
    pub payload: &'a [u8],
    /// Everything the signature covers: header and payload.
    pub signed: &'a [u8],
    pub signature: &'a [u8; SIGNATURE_SIZE],
}

/// Parses an envelope datagram: header checks, then that `payload_length` plus the
/// signature exactly fill the datagram. The signature is *not* verified here.
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope<'_>, ParseError> {
    let kind = Header::parse(bytes)?;
    if kind != Kind::Envelope {
        return Err(ParseError::WrongKind);
    }
    let Some(head) = bytes.get(..EnvelopeHeader::SIZE) else {
        return Err(ParseError::Truncated);
    };
    let header: &EnvelopeHeader = bytemuck::from_bytes(head);
    let payload_length = usize::from(header.payload_length.get());
    if bytes.len() != EnvelopeHeader::SIZE + payload_length + SIGNATURE_SIZE {
        return Err(ParseError::BadCount);
    }
    let (signed, signature) = bytes.split_at(EnvelopeHeader::SIZE + payload_length);
    let signature: &[u8; SIGNATURE_SIZE] =
        signature.try_into().map_err(|_| ParseError::BadCount)?;
    Ok(Envelope {
        header,
        payload: &signed[EnvelopeHeader::SIZE..],
        signed,
        signature,
    })
}

/// Writes an envelope's header and payload into `out` and returns the signed part's
/// length; the caller signs `out[..n]` and writes the signature at `out[n..n + 64]`.
/// `None` if the payload exceeds [`ENVELOPE_PAYLOAD_LIMIT`] or `out` is too small; callers
/// with a tighter budget (client traffic: [`ENVELOPE_PAYLOAD_MAX`]) check it themselves.
pub fn write_envelope_unsigned(
    out: &mut [u8],
    domain: [u8; 8],
    signer: u32,
    epoch: u32,
    sequence: u64,
    payload: &[u8],
) -> Option<usize> {
    if payload.len() > ENVELOPE_PAYLOAD_LIMIT {
        return None;
    }
    let signed = EnvelopeHeader::SIZE + payload.len();
    let total = signed + SIGNATURE_SIZE;
    let out = out.get_mut(..total)?;
    let header = EnvelopeHeader {
        header: Header::new(Kind::Envelope, total as u16),
        domain,
        signer: U32Le::new(signer),
        epoch: U32Le::new(epoch),
        sequence: U64Le::new(sequence),
        payload_length: U16Le::new(payload.len() as u16),
    };
    out[..EnvelopeHeader::SIZE].copy_from_slice(bytemuck::bytes_of(&header));
    out[EnvelopeHeader::SIZE..signed].copy_from_slice(payload);
    Some(signed)
}

/// A connect token (docs/protocol.md). The signature covers every byte before it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ConnectToken {
    /// Always [`domain::TOKEN`].
    pub domain: [u8; 8],
    /// The world this token admits to.
    pub world_id: U64Le,
    /// The client's account id, as the auth service knows it.
    pub client_id: U64Le,
    /// The client session's Ed25519 public key; it signs the client's inputs.
    pub client_key: [u8; 32],
    /// Expiry, milliseconds since the Unix epoch.
    pub expires_unix_ms: U64Le,
    /// Random; makes every token unique, for replay detection.
    pub nonce: U64Le,
    /// Ed25519 signature by the world's auth key over the 72 bytes above.
    pub signature: [u8; SIGNATURE_SIZE],
}

const _: () = assert!(core::mem::size_of::<ConnectToken>() == 136);

impl ConnectToken {
    pub const SIZE: usize = core::mem::size_of::<ConnectToken>();
    /// Bytes covered by the signature.
    pub const SIGNED_SIZE: usize = Self::SIZE - SIGNATURE_SIZE;

    /// The signed bytes.
    pub fn signed_bytes(&self) -> &[u8] {
        &bytemuck::bytes_of(self)[..Self::SIGNED_SIZE]
    }

    /// Parses a token: exact length and domain tag. Signature, expiry and world are
    /// checked by the verifier, which knows the keys, the time and the world.
    pub fn parse(bytes: &[u8]) -> Result<&ConnectToken, ParseError> {
        if bytes.len() < Self::SIZE {
            return Err(ParseError::Truncated);
        }
        if bytes.len() > Self::SIZE {
            return Err(ParseError::BadLength);
        }
        let token: &ConnectToken =
            bytemuck::try_from_bytes(bytes).map_err(|_| ParseError::BadLength)?;
        if token.domain != domain::TOKEN {
            return Err(ParseError::BadField);
        }
        Ok(token)
    }
}
