//! Reading and writing the standby stream's signed frames
//! (`meridian_layouts::standby`).

use std::io::{Read, Write};

use bytemuck::Zeroable;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use meridian_layouts::standby::{CHALLENGE_SIZE, DOMAIN, FrameHeader, FrameKind, LANES};
use meridian_protocol::seal::{StaticSecret, x25519_public};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};

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

/// What the primary's frames after its hello are sealed with: ChaCha20-Poly1305 under a
/// key only the two nodes can derive for this connection (their X25519 secret — the
/// Montgomery forms of their Ed25519 keys — with the standby's challenge and the
/// primary's nonce), each frame's nonce its index on the connection. The zone's files
/// carry its clients' session keys: signed alone, they crossed the network in clear.
/// Sealed, then signed (the signature covers the sealed payload).
#[derive(Clone)]
pub(super) struct StreamCipher {
    aead: LessSafeKey,
    /// The next frame's index in each lane (`FrameHeader::lane`).
    next: [u64; LANES as usize],
}

/// Bytes a sealed payload adds.
pub(super) const TAG_SIZE: usize = 16;

impl StreamCipher {
    /// The cipher between `own` (this node's key) and `peer` (the other node's pinned
    /// key) for the connection opened with `challenge` and the hello's `nonce`.
    pub(super) fn new(
        own: &SigningKey,
        peer: &VerifyingKey,
        challenge: &[u8; CHALLENGE_SIZE],
        nonce: &[u8],
    ) -> StreamCipher {
        let secret = StaticSecret::from(own.to_scalar_bytes());
        let shared = secret.diffie_hellman(&x25519_public(peer.to_montgomery().to_bytes()));
        let mut material = Vec::with_capacity(32 + CHALLENGE_SIZE + nonce.len());
        material.extend_from_slice(shared.as_bytes());
        material.extend_from_slice(challenge);
        material.extend_from_slice(nonce);
        let key = blake3::derive_key("meridian 2026-12 standby stream", &material);
        StreamCipher {
            aead: LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 32-byte key"),
            ),
            next: [0; LANES as usize],
        }
    }

    /// Frame `index` of `lane`: unique on the connection, whose key no other has.
    fn nonce(lane: u8, index: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&index.to_le_bytes());
        n[8] = lane;
        Nonce::assume_unique_for_key(n)
    }

    /// The next frame's index in `lane` (both ends count the primary's frames after the
    /// hello, each lane apart; `lane` is below `LANES`, which `FrameHeader::check` holds).
    pub(super) fn take_index(&mut self, lane: u8) -> u64 {
        let next = &mut self.next[usize::from(lane)];
        *next += 1;
        *next - 1
    }

    /// Seals `payload` as frame `index` under `header` (its length set to the sealed one).
    fn seal(&self, index: u64, header: &FrameHeader, payload: &[u8]) -> Vec<u8> {
        let mut sealed = Vec::with_capacity(payload.len() + TAG_SIZE);
        sealed.extend_from_slice(payload);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Self::nonce(header.lane, index),
                Aad::from(bytemuck::bytes_of(header)),
                &mut sealed[..],
            )
            .expect("a frame is far below the AEAD's length limit");
        sealed.extend_from_slice(tag.as_ref());
        sealed
    }

    /// Opens frame `index`'s sealed payload in place (what is left is the plaintext).
    pub(super) fn open(
        &self,
        index: u64,
        kind: FrameKind,
        header: &FrameHeader,
        payload: &mut Vec<u8>,
    ) -> Result<(), FrameError> {
        let Some(body_len) = payload.len().checked_sub(TAG_SIZE) else {
            return Err(FrameError::Forged(kind));
        };
        let (body, tag) = payload.split_at_mut(body_len);
        let tag: [u8; TAG_SIZE] = (&*tag).try_into().expect("16 bytes");
        self.aead
            .open_in_place_separate_tag(
                Self::nonce(header.lane, index),
                Aad::from(bytemuck::bytes_of(header)),
                Tag::from(tag),
                body,
                0..,
            )
            .map_err(|_| FrameError::Forged(kind))?;
        payload.truncate(body_len);
        Ok(())
    }
}

/// Writes one frame sealed with `cipher` (its next index), then signed.
pub(super) fn write_sealed(
    w: &mut impl Write,
    key: &SigningKey,
    challenge: &[u8; CHALLENGE_SIZE],
    cipher: &mut StreamCipher,
    mut header: FrameHeader,
    payload: &[u8],
) -> std::io::Result<()> {
    header.len = meridian_layouts::U32Le::new((payload.len() + TAG_SIZE) as u32);
    let index = cipher.take_index(header.lane);
    let sealed = cipher.seal(index, &header, payload);
    write_frame(w, key, challenge, header, &sealed)
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
