//! Session cryptography, shared by the zone and the client library: the key exchange of
//! the connect handshake, the keys each direction seals with, sealing and opening session
//! packets (ChaCha20-Poly1305, RFC 8439, `ring`'s implementation), and the pad a session
//! key is sealed with when its binding crosses to another node.
//!
//! **Handshake.** The zone's CHALLENGE carries an X25519 ephemeral (one per cookie window)
//! and the Ed25519 public key of its node; the client answers with its own ephemeral, and
//! signs the RESPONSE — ephemerals, node key, token and cookie — with the session key its
//! token names. Both sides compute
//!
//! ```text
//! ee = X25519(client ephemeral, zone ephemeral)
//! es = X25519(client ephemeral, node key as X25519)      (zero without node keys)
//! master = BLAKE3-derive("meridian 2026-12 session key", ee ‖ es ‖ RESPONSE signed bytes)
//! ```
//!
//! The client's signature binds its ephemeral to the token's client key (no one else can
//! open a session with that token), and `es` binds the session to the node key: only the
//! node holding that key can derive `master`, so only it can send the ACCEPT the client
//! opens. An Ed25519 node key serves as an X25519 key through the birational map
//! (Montgomery form of the public key, the clamped SHA-512 scalar of the secret), as
//! libsodium's `crypto_sign_ed25519_*_to_curve25519` does.
//!
//! **Directions.** Client → zone packets are sealed with `client_key(master)`, the nonce
//! the client's packet counter. Zone → client packets are sealed with
//! `zone_key(master, key_id)`, where `key_id` is random for each run of a zone and the
//! counter starts at a random point: a session that visits several zones (or one zone
//! twice, across a restart) never sees a key and nonce pair twice, without any zone
//! knowing what another sent.

use meridian_layouts::client::{SEALED_OVERHEAD, SealedHeader, TAG_SIZE, parse_sealed};
/// The length of a pair tag (control datagrams and envelopes between nodes).
pub use meridian_layouts::control::TAG_SIZE as PAIR_TAG_SIZE;
use meridian_layouts::{Header, Kind, ParseError, U32Le, U64Le};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
pub use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};

/// A 32-byte symmetric key.
pub type Key = [u8; 32];

const SESSION_CONTEXT: &str = "meridian 2026-12 session key";
const CLIENT_CONTEXT: &str = "meridian 2026-12 client to zone";
const ZONE_CONTEXT: &str = "meridian 2026-12 zone to client";
const EPHEMERAL_CONTEXT: &str = "meridian 2026-12 zone ephemeral";
const CLIENT_EPHEMERAL_CONTEXT: &str = "meridian 2026-12 client ephemeral";
const PAD_CONTEXT: &str = "meridian 2026-12 binding key pad";
const CONTROL_TAG_CONTEXT: &str = "meridian 2026-12 control datagram tag";
const ENVELOPE_TAG_CONTEXT: &str = "meridian 2026-12 zone envelope tag";

/// An X25519 secret that prints as `DhSecret(..)`: structs holding one can derive `Debug`
/// without ever writing it to a log.
#[derive(Clone)]
pub struct DhSecret(pub StaticSecret);

impl core::fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DhSecret(..)")
    }
}

/// Why a handshake cannot produce a session key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// A public key was a low-order point: the shared secret would be all zeros, known to
    /// anyone.
    NotContributory,
}

/// The session master key from the handshake's Diffie–Hellman results and the RESPONSE's
/// signed bytes (the transcript both sides saw).
pub fn session_key(
    ee: &SharedSecret,
    es: Option<&SharedSecret>,
    transcript: &[u8],
) -> Result<Key, ExchangeError> {
    if !ee.was_contributory() || es.is_some_and(|es| !es.was_contributory()) {
        return Err(ExchangeError::NotContributory);
    }
    let mut h = blake3::Hasher::new_derive_key(SESSION_CONTEXT);
    h.update(ee.as_bytes());
    h.update(es.map_or(&[0u8; 32], |es| es.as_bytes()));
    h.update(transcript);
    Ok(*h.finalize().as_bytes())
}

/// The key client → zone packets are sealed with.
pub fn client_key(master: &Key) -> Key {
    let mut h = blake3::Hasher::new_derive_key(CLIENT_CONTEXT);
    h.update(master);
    *h.finalize().as_bytes()
}

/// The key a run of a zone (`key_id`) seals its packets to the client with.
pub fn zone_key(master: &Key, key_id: u32) -> Key {
    let mut h = blake3::Hasher::new_derive_key(ZONE_CONTEXT);
    h.update(master);
    h.update(&key_id.to_le_bytes());
    *h.finalize().as_bytes()
}

/// A zone's X25519 ephemeral secret for cookie window `window`, from its secret key: the
/// zone keeps no state per CONNECT, and forgets the secret when the window is over.
pub fn zone_ephemeral(secret: &Key, window: u32) -> StaticSecret {
    let mut h = blake3::Hasher::new_derive_key(EPHEMERAL_CONTEXT);
    h.update(secret);
    h.update(&window.to_le_bytes());
    StaticSecret::from(*h.finalize().as_bytes())
}

/// A client's X25519 ephemeral for one CHALLENGE, from its session signing key's secret
/// bytes and the CHALLENGE: fresh for every challenge, secret, and the same again if the
/// RESPONSE is resent (no random source needed in the sans-IO client).
pub fn client_ephemeral(secret: &Key, challenge: &[u8]) -> StaticSecret {
    let mut h = blake3::Hasher::new_derive_key(CLIENT_EPHEMERAL_CONTEXT);
    h.update(secret);
    h.update(challenge);
    StaticSecret::from(*h.finalize().as_bytes())
}

/// An Ed25519 public key as the X25519 public key of the same secret (its Montgomery
/// form; the caller converts, e.g. `VerifyingKey::to_montgomery`).
pub fn x25519_public(montgomery: [u8; 32]) -> PublicKey {
    PublicKey::from(montgomery)
}

/// The pad a session key is XORed with when its binding goes to another node: from the
/// two nodes' shared X25519 secret and a random salt carried beside it. The binding is
/// inside a signed envelope, which authenticates the sealed key.
pub fn binding_pad(pair: &SharedSecret, salt: &[u8; 16]) -> Key {
    let mut h = blake3::Hasher::new_derive_key(PAD_CONTEXT);
    h.update(pair.as_bytes());
    h.update(salt);
    *h.finalize().as_bytes()
}

/// The key of the tags on the control datagrams two nodes exchange (the same both ways:
/// each datagram names its sender), from their shared X25519 secret.
pub fn control_tag_key(pair: &SharedSecret) -> Key {
    blake3::derive_key(CONTROL_TAG_CONTEXT, pair.as_bytes())
}

/// The key of the tags on the zone envelopes two nodes exchange (the same both ways: each
/// envelope names its signer), from their shared X25519 secret.
pub fn envelope_tag_key(pair: &SharedSecret) -> Key {
    blake3::derive_key(ENVELOPE_TAG_CONTEXT, pair.as_bytes())
}

/// The pair tag of `bytes` under `key` (a [`control_tag_key`] or an [`envelope_tag_key`]):
/// the first [`PAIR_TAG_SIZE`] bytes of BLAKE3 keyed by it.
pub fn pair_tag(key: &Key, bytes: &[u8]) -> [u8; PAIR_TAG_SIZE] {
    let mut tag = [0u8; PAIR_TAG_SIZE];
    tag.copy_from_slice(&blake3::keyed_hash(key, bytes).as_bytes()[..PAIR_TAG_SIZE]);
    tag
}

/// Whether `tag` is the pair tag of `bytes` under `key` (compared in constant time).
pub fn pair_tag_holds(key: &Key, bytes: &[u8], tag: &[u8; PAIR_TAG_SIZE]) -> bool {
    let expected = pair_tag(key, bytes);
    expected.iter().zip(tag).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
}

fn nonce(sequence: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&sequence.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The AEAD under `key`. (ChaCha20 has no key schedule: this only copies the key.)
fn aead(key: &Key) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key"))
}

/// Seals `inner` (a complete datagram) into `out`: header, ciphertext, tag. Returns the
/// sealed length. `out` must hold `inner.len() + SEALED_OVERHEAD` bytes.
pub fn seal(
    key: &Key,
    session: u32,
    key_id: u32,
    sequence: u64,
    inner: &[u8],
    out: &mut [u8],
) -> usize {
    let total = inner.len() + SEALED_OVERHEAD;
    let head = SealedHeader {
        header: Header::new(Kind::Sealed, total as u16),
        session: U32Le::new(session),
        key_id: U32Le::new(key_id),
        sequence: U64Le::new(sequence),
    };
    let (front, rest) = out[..total].split_at_mut(SealedHeader::SIZE);
    front.copy_from_slice(bytemuck::bytes_of(&head));
    let (body, tag_out) = rest.split_at_mut(inner.len());
    body.copy_from_slice(inner);
    let tag = aead(key)
        .seal_in_place_separate_tag(nonce(sequence), Aad::from(&*front), body)
        .expect("a datagram is far below the AEAD's length limit");
    tag_out.copy_from_slice(tag.as_ref());
    total
}

/// Why a sealed packet was not opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    Malformed(ParseError),
    /// The tag did not verify: wrong key, or bytes changed in transit.
    Forged,
}

/// Opens a sealed packet into `out`; returns its header and the inner datagram (not yet
/// parsed). Nothing of `out` is meaningful after a failure.
pub fn open<'a>(
    key: &Key,
    bytes: &[u8],
    out: &'a mut [u8],
) -> Result<(SealedHeader, &'a [u8]), OpenError> {
    let (head, body, tag) = parse_sealed(bytes).map_err(OpenError::Malformed)?;
    let inner = &mut out[..body.len()];
    inner.copy_from_slice(body);
    aead(key)
        .open_in_place_separate_tag(
            nonce(head.sequence.get()),
            Aad::from(&bytes[..SealedHeader::SIZE]),
            Tag::from(*tag),
            &mut *inner,
            0..,
        )
        .map_err(|_| OpenError::Forged)?;
    Ok((*head, inner))
}

/// The header of a sealed packet without opening it (to find the session's key).
pub fn peek(bytes: &[u8]) -> Result<SealedHeader, ParseError> {
    parse_sealed(bytes).map(|(head, _, _)| *head)
}

const _: () = assert!(TAG_SIZE == 16);

#[cfg(test)]
mod tests {
    use super::*;

    fn inner() -> Vec<u8> {
        let mut d = vec![0u8; 20];
        d[..8].copy_from_slice(bytemuck::bytes_of(&Header::new(Kind::Disconnect, 20)));
        d[8..].copy_from_slice(b"twelve bytes");
        d
    }

    #[test]
    fn a_sealed_packet_opens_with_its_key_only() {
        let key = [7u8; 32];
        let mut out = [0u8; 1200];
        let n = seal(&key, 9, 3, 41, &inner(), &mut out);
        assert_eq!(n, 20 + SEALED_OVERHEAD);
        let sealed = out[..n].to_vec();
        assert!(
            !sealed.windows(12).any(|w| w == b"twelve bytes"),
            "encrypted"
        );
        let mut buf = [0u8; 1200];
        let (head, opened) = open(&key, &sealed, &mut buf).expect("opens");
        assert_eq!((head.session.get(), head.key_id.get()), (9, 3));
        assert_eq!(head.sequence.get(), 41);
        assert_eq!(opened, &inner()[..]);
        assert_eq!(
            open(&[8u8; 32], &sealed, &mut buf).err(),
            Some(OpenError::Forged)
        );
        // Every byte is covered: header (associated data), ciphertext and tag.
        for i in 0..n {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert!(open(&key, &bad, &mut buf).is_err(), "byte {i} flipped");
        }
    }

    /// The sealed packet is plain RFC 8439 ChaCha20-Poly1305 (header as associated data,
    /// the sequence as the nonce's first 8 bytes): an independent implementation —
    /// RustCrypto's — opens what we seal and seals what we open, at every length a
    /// datagram can have. (A client in another language can use any library.)
    #[test]
    fn another_implementation_opens_and_seals_the_same_packets() {
        use chacha20poly1305::aead::inout::InOutBuf;
        use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit};
        use meridian_layouts::client::SEALED_INNER_MAX;
        let (mut out, mut plain) = ([0u8; 1500], [0u8; 1500]);
        for len in (8..=SEALED_INNER_MAX).step_by(7).chain([SEALED_INNER_MAX]) {
            let key = [len as u8 ^ 0x5a; 32];
            let inner: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let sequence = 0x0102_0304_0506_0708 ^ len as u64;
            let n = seal(&key, 9, 3, sequence, &inner, &mut out);
            let mut n12 = [0u8; 12];
            n12[..8].copy_from_slice(&sequence.to_le_bytes());
            let theirs = ChaCha20Poly1305::new(&key.into());
            // Theirs opens ours...
            let (head, rest) = out[..n].split_at(SealedHeader::SIZE);
            let (body, tag) = rest.split_at(len);
            let mut opened = body.to_vec();
            theirs
                .decrypt_inout_detached(
                    &n12.into(),
                    head,
                    InOutBuf::from(&mut opened[..]),
                    &<[u8; 16]>::try_from(tag).unwrap().into(),
                )
                .expect("RustCrypto opens our packet");
            assert_eq!(opened, inner, "length {len}");
            // ...and ours opens theirs.
            let mut sealed = out[..n].to_vec();
            let (head, rest) = sealed.split_at_mut(SealedHeader::SIZE);
            let (body, tag) = rest.split_at_mut(len);
            body.copy_from_slice(&inner);
            let their_tag = theirs
                .encrypt_inout_detached(&n12.into(), head, InOutBuf::from(body))
                .unwrap();
            tag.copy_from_slice(&their_tag);
            assert_eq!(sealed, &out[..n], "the same bytes, length {len}");
            let (_, ours) = open(&key, &sealed, &mut plain).expect("we open theirs");
            assert_eq!(ours, &inner[..]);
        }
    }

    #[test]
    fn both_sides_of_the_exchange_derive_the_same_key() {
        let zone_secret = [1u8; 32];
        let server_e = zone_ephemeral(&zone_secret, 5);
        let client_e = StaticSecret::from([2u8; 32]);
        let node = StaticSecret::from([3u8; 32]);
        let (server_pub, client_pub, node_pub) = (
            PublicKey::from(&server_e),
            PublicKey::from(&client_e),
            PublicKey::from(&node),
        );
        let client = session_key(
            &client_e.diffie_hellman(&server_pub),
            Some(&client_e.diffie_hellman(&node_pub)),
            b"transcript",
        );
        let server = session_key(
            &server_e.diffie_hellman(&client_pub),
            Some(&node.diffie_hellman(&client_pub)),
            b"transcript",
        );
        assert_eq!(client, server);
        // Another node key, or another transcript, gives another key.
        let other = StaticSecret::from([4u8; 32]);
        let wrong = session_key(
            &server_e.diffie_hellman(&client_pub),
            Some(&other.diffie_hellman(&client_pub)),
            b"transcript",
        );
        assert_ne!(client, wrong);
        let changed = session_key(
            &server_e.diffie_hellman(&client_pub),
            Some(&node.diffie_hellman(&client_pub)),
            b"transcripT",
        );
        assert_ne!(client, changed);
        // A low-order public key is refused.
        let zero = PublicKey::from([0u8; 32]);
        assert_eq!(
            session_key(&server_e.diffie_hellman(&zero), None, b"t"),
            Err(ExchangeError::NotContributory)
        );
        assert_ne!(client_key(&client.unwrap()), zone_key(&client.unwrap(), 0));
        assert_ne!(zone_key(&client.unwrap(), 1), zone_key(&client.unwrap(), 2));
    }
}
