//! Reading and writing the standby stream's signed frames
//! (`meridian_layouts::standby`).

use std::io::{Read, Write};

use bytemuck::Zeroable;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use meridian_layouts::standby::{CHALLENGE_SIZE, DOMAIN, FrameHeader, FrameKind};

/// The signature length after every frame but a challenge.
pub(super) const SIGNATURE_SIZE: usize = 64;

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a standby stream frame this build speaks: {0:?}")]
    Malformed(meridian_layouts::ParseError),
    #[error("bad signature on a {0:?} frame")]
    Forged(FrameKind),
    #[error("unexpected {0:?} frame")]
    Unexpected(FrameKind),
}

/// The message a frame's signature covers.
fn signed_message(
    challenge: &[u8; CHALLENGE_SIZE],
    header: &FrameHeader,
    payload: &[u8],
) -> Vec<u8> {
    let mut m =
        Vec::with_capacity(DOMAIN.len() + CHALLENGE_SIZE + FrameHeader::SIZE + payload.len());
    m.extend_from_slice(&DOMAIN);
    m.extend_from_slice(challenge);
    m.extend_from_slice(bytemuck::bytes_of(header));
    m.extend_from_slice(payload);
    m
}

/// Writes one signed frame.
pub(super) fn write_frame(
    w: &mut impl Write,
    key: &SigningKey,
    challenge: &[u8; CHALLENGE_SIZE],
    mut header: FrameHeader,
    payload: &[u8],
) -> std::io::Result<()> {
    header.len = meridian_layouts::U32Le::new(payload.len() as u32);
    let signature = key.sign(&signed_message(challenge, &header, payload));
    w.write_all(bytemuck::bytes_of(&header))?;
    w.write_all(payload)?;
    w.write_all(&signature.to_bytes())
}

/// Reads one frame's header and payload (into `payload`), checking its signature by `key`.
pub(super) fn read_frame(
    r: &mut impl Read,
    key: &VerifyingKey,
    challenge: &[u8; CHALLENGE_SIZE],
    payload: &mut Vec<u8>,
) -> Result<(FrameKind, FrameHeader), FrameError> {
    let (kind, header) = read_header(r)?;
    read_body(r, kind, &header, key, challenge, payload)?;
    Ok((kind, header))
}

/// Reads a frame's header alone (to learn whose key its signature needs).
pub(super) fn read_header(r: &mut impl Read) -> Result<(FrameKind, FrameHeader), FrameError> {
    let mut header = FrameHeader::zeroed();
    r.read_exact(bytemuck::bytes_of_mut(&mut header))?;
    let kind = header.check().map_err(FrameError::Malformed)?;
    Ok((kind, header))
}

/// Reads the rest of a frame whose header was read, checking its signature by `key`.
pub(super) fn read_body(
    r: &mut impl Read,
    kind: FrameKind,
    header: &FrameHeader,
    key: &VerifyingKey,
    challenge: &[u8; CHALLENGE_SIZE],
    payload: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let signature = read_unverified(r, header, payload)?;
    verify(kind, header, payload, &signature, key, challenge)
}

/// Reads the rest of a frame without checking it: [`verify`] must, before it is acted on.
pub(super) fn read_unverified(
    r: &mut impl Read,
    header: &FrameHeader,
    payload: &mut Vec<u8>,
) -> Result<[u8; SIGNATURE_SIZE], FrameError> {
    payload.clear();
    payload.resize(header.len.get() as usize, 0);
    r.read_exact(payload)?;
    let mut signature = [0u8; SIGNATURE_SIZE];
    r.read_exact(&mut signature)?;
    Ok(signature)
}

/// Checks a frame's signature by `key`.
pub(super) fn verify(
    kind: FrameKind,
    header: &FrameHeader,
    payload: &[u8],
    signature: &[u8; SIGNATURE_SIZE],
    key: &VerifyingKey,
    challenge: &[u8; CHALLENGE_SIZE],
) -> Result<(), FrameError> {
    let message = signed_message(challenge, header, payload);
    key.verify(&message, &Signature::from_bytes(signature))
        .map_err(|_| FrameError::Forged(kind))
}

/// The standby's opening: a challenge frame carrying fresh random bytes (unsigned: it
/// only binds what follows to this connection).
pub(super) fn write_challenge(
    w: &mut impl Write,
    challenge: &[u8; CHALLENGE_SIZE],
) -> std::io::Result<()> {
    let mut header = FrameHeader::new(FrameKind::Challenge, 0);
    header.len = meridian_layouts::U32Le::new(CHALLENGE_SIZE as u32);
    w.write_all(bytemuck::bytes_of(&header))?;
    w.write_all(challenge)
}

/// Reads the standby's challenge.
pub(super) fn read_challenge(r: &mut impl Read) -> Result<[u8; CHALLENGE_SIZE], FrameError> {
    let mut header = FrameHeader::zeroed();
    r.read_exact(bytemuck::bytes_of_mut(&mut header))?;
    let kind = header.check().map_err(FrameError::Malformed)?;
    if kind != FrameKind::Challenge || header.len.get() as usize != CHALLENGE_SIZE {
        return Err(FrameError::Unexpected(kind));
    }
    let mut challenge = [0u8; CHALLENGE_SIZE];
    r.read_exact(&mut challenge)?;
    Ok(challenge)
}
