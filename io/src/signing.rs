//! Signed node-to-node traffic (docs/security.md): every datagram a zone sends to a zone on
//! another node travels in a signed envelope; the receiving zone verifies a tick's worth in
//! one batch before anything reaches the sans-IO zone.
//!
//! - [`Outgress`] seals a datagram: envelope header (domain `NODE`, this node's signer
//!   index, this run's epoch, a per-zone sequence) + the route (source zone, target zone:
//!   two `u32`s) + the datagram + a 16-byte tag under a key only the sending and the
//!   receiving node share (BLAKE3 keyed from their X25519 secret) + an Ed25519 signature. One signature per datagram, never
//!   per entity. The route is signed, so a captured envelope can neither be replayed "from"
//!   another zone of the same node (its window would be locked by the other zone's higher
//!   sequence) nor delivered to another zone than the one it was sealed for.
//! - [`Ingress`] takes envelopes as they arrive (parse, domain, signer expected for the
//!   sending zone, the signed route naming that zone and this one, the replay window of
//!   the signed source, the tag — so a forged source address costs a hash, never a
//!   signature check) and [`Ingress::verify`] runs the batch (strict policy:
//!   handoffs move ownership), records the sequences that verified, and delivers the
//!   payloads in arrival order. Forged, mis-signed, replayed and malformed datagrams are
//!   dropped and counted, never logged one by one.
//!
//! Zones of one node exchange datagrams through memory and do not sign (docs/security.md).
//!
//! A COMMIT that carries a client session carries its session key. Signing does not hide
//! it, so [`Outgress`] seals the key to the target node before signing: XORed with a pad
//! from the two nodes' X25519 shared secret (their Ed25519 keys' Montgomery forms) and a
//! random salt that travels beside it; [`Ingress`] unseals it after the signature
//! verified. The key is in clear only inside a node (memory, its own files).

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use meridian_core::limits::DATAGRAM_SIZE_MAX;
use meridian_core::witness::{
    BatchVerifier, KeyError, KeyRegistry, Policy, ReplayWindow, SignerID, Verdict,
};
use meridian_core::world::ZoneID;
use meridian_layouts::ParseError;
use meridian_layouts::handoff::SessionBinding;
use meridian_layouts::wire::commit_session_mut;
use meridian_layouts::witness::{SIGNATURE_SIZE, domain, parse_envelope, write_envelope_unsigned};
use meridian_protocol::seal::{
    SharedSecret, StaticSecret, binding_pad, envelope_tag_key, pair_tag, pair_tag_holds,
    x25519_public,
};

/// Bytes of the signed route at the front of a sealed payload: source zone, target zone.
pub const ROUTE_SIZE: usize = 8;
/// Bytes of the pair tag at the end of a sealed payload.
pub use meridian_protocol::seal::PAIR_TAG_SIZE as TAG_SIZE;

/// Largest sealed datagram: a full zone datagram plus envelope header, route, tag and
/// signature.
pub const SEALED_SIZE_MAX: usize = DATAGRAM_SIZE_MAX
    + ROUTE_SIZE
    + TAG_SIZE
    + meridian_layouts::witness::EnvelopeHeader::SIZE
    + SIGNATURE_SIZE;

/// This node's signing identity and every node's public key, by signer index.
#[derive(Clone, Debug)]
pub struct NodeKeys {
    pub key: SigningKey,
    /// This node's index in `public_keys`.
    pub signer: u32,
    pub public_keys: Vec<[u8; 32]>,
}

impl NodeKeys {
    /// Node `me`'s keys in a mesh of nodes whose signing keys are all known here: tests,
    /// benches, tools that play every node.
    pub fn among(signing: &[SigningKey], me: u32) -> NodeKeys {
        NodeKeys {
            key: signing[me as usize].clone(),
            signer: me,
            public_keys: signing
                .iter()
                .map(|k| k.verifying_key().to_bytes())
                .collect(),
        }
    }
}

/// The X25519 secret this node shares with each node (by signer index), for sealing
/// session keys; `None` for a key that is not a valid point.
fn pair_secrets(keys: &NodeKeys) -> Vec<Option<SharedSecret>> {
    let own = StaticSecret::from(keys.key.to_scalar_bytes());
    keys.public_keys
        .iter()
        .map(|k| {
            let peer = VerifyingKey::from_bytes(k).ok()?;
            Some(own.diffie_hellman(&x25519_public(peer.to_montgomery().to_bytes())))
        })
        .collect()
}

/// The tag keys this node shares with each node (by signer index), from [`pair_secrets`].
fn tag_keys(pairs: &[Option<SharedSecret>]) -> Vec<Option<[u8; 32]>> {
    pairs
        .iter()
        .map(|p| p.as_ref().map(envelope_tag_key))
        .collect()
}

/// The binding of a COMMIT datagram (its wire form) with a session, for sealing or
/// unsealing its key.
fn session_commit(datagram: &mut [u8]) -> Option<&mut SessionBinding> {
    let session = commit_session_mut(datagram)?;
    (session.session_id.get() != 0).then_some(session)
}

fn xor_key(key: &mut [u8; 32], pad: &[u8; 32]) {
    for (k, p) in key.iter_mut().zip(pad) {
        *k ^= p;
    }
}

/// Seals outgoing datagrams for one zone.
pub struct Outgress {
    key: SigningKey,
    pairs: Vec<Option<SharedSecret>>,
    tags: Vec<Option<[u8; 32]>>,
    /// Keys the salts of sealed session keys (random per run).
    salt_key: [u8; 32],
    signer: u32,
    epoch: u32,
    sequence: u64,
    /// The zone whose datagrams this seals.
    zone: ZoneID,
    /// Route + datagram + tag, assembled before sealing.
    payload: [u8; ROUTE_SIZE + DATAGRAM_SIZE_MAX + TAG_SIZE],
}

impl std::fmt::Debug for Outgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgress")
            .field("zone", &self.zone)
            .field("sequence", &self.sequence)
            .finish()
    }
}

impl Outgress {
    /// `epoch` must grow across restarts of this node (seconds since the Unix epoch at
    /// start do), so receivers' replay windows accept the new run.
    pub fn new(keys: &NodeKeys, epoch: u32, zone: ZoneID) -> Outgress {
        let mut salt_key = [0u8; 32];
        // Without entropy the salts are still unique per sequence; only their
        // unpredictability is lost, which the pad does not rely on.
        let _ = getrandom::fill(&mut salt_key);
        let pairs = pair_secrets(keys);
        Outgress {
            key: keys.key.clone(),
            tags: tag_keys(&pairs),
            pairs,
            salt_key,
            signer: keys.signer,
            epoch,
            sequence: 0,
            zone,
            payload: [0; ROUTE_SIZE + DATAGRAM_SIZE_MAX + TAG_SIZE],
        }
    }

    /// Writes the sealed form of `datagram`, bound for zone `to` on node `to_signer`, into
    /// `out` (≥ [`SEALED_SIZE_MAX`]); returns its length, or `None` if the datagram is
    /// larger than an envelope carries or the node has no valid key.
    pub fn seal(
        &mut self,
        datagram: &[u8],
        to: ZoneID,
        to_signer: u32,
        out: &mut [u8],
    ) -> Option<usize> {
        if datagram.len() > DATAGRAM_SIZE_MAX {
            return None;
        }
        let tag_key = self.tags.get(to_signer as usize)?.as_ref()?;
        self.sequence += 1;
        self.payload[..4].copy_from_slice(&self.zone.0.to_le_bytes());
        self.payload[4..ROUTE_SIZE].copy_from_slice(&to.0.to_le_bytes());
        let payload_len = ROUTE_SIZE + datagram.len();
        self.payload[ROUTE_SIZE..payload_len].copy_from_slice(datagram);
        if let Some(commit) = session_commit(&mut self.payload[ROUTE_SIZE..payload_len]) {
            let pair = self.pairs.get(to_signer as usize)?.as_ref()?;
            let mut salt = [0u8; 16];
            salt.copy_from_slice(
                &blake3::keyed_hash(&self.salt_key, &self.sequence.to_le_bytes()).as_bytes()[..16],
            );
            salt[0] |= 1; // never all zeros: zeros mean "in clear"
            xor_key(&mut commit.session_key, &binding_pad(pair, &salt));
            commit.key_salt = salt;
        }
        let signed = write_envelope_unsigned(
            out,
            domain::NODE,
            self.signer,
            self.epoch,
            self.sequence,
            &self.payload[..payload_len + TAG_SIZE],
        )?;
        // The tag covers everything before it (header, route, datagram); the signature,
        // the tag too.
        let tagged = signed - TAG_SIZE;
        let tag = pair_tag(tag_key, &out[..tagged]);
        out[tagged..signed].copy_from_slice(&tag);
        let signature = self.key.sign(&out[..signed]).to_bytes();
        out[signed..signed + SIGNATURE_SIZE].copy_from_slice(&signature);
        Some(signed + SIGNATURE_SIZE)
    }
}

meridian_core::counters! {
    /// Counters of what [`Ingress`] refused.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct IngressCounters {
        pub accepted: u64,
        /// Not an envelope, wrong domain, or a signer other than the sending zone's node.
        pub malformed: u64,
        /// A datagram header of another wire version than this build's: the sending
        /// zone's node runs another build. Dropped unchecked.
        pub other_version: u64,
        /// The pair tag does not hold: not made by the node hosting the sending zone (a
        /// forged source address: UDP's are easy to forge), or changed on the way.
        /// Dropped for the cost of a hash, before the signature.
        pub bad_tag: u64,
        /// A signed route naming another source than the zone it came from, or another
        /// target than this zone: replayed from elsewhere or delivered to the wrong zone.
        pub misrouted: u64,
        /// Sequence already seen (or older than the window, or an older epoch).
        pub replayed: u64,
        /// The signature did not verify.
        pub forged: u64,
        /// More envelopes in one tick than the batch holds.
        pub overflow: u64,
    }
}

struct Pending {
    from: ZoneID,
    signer: u32,
    epoch: u32,
    sequence: u64,
    payload_start: usize,
    payload_len: usize,
    item: usize,
}

/// Verifies incoming envelopes for one zone, a tick at a time.
pub struct Ingress {
    /// The zone this ingress serves (the signed route's target).
    zone: ZoneID,
    pairs: Vec<Option<SharedSecret>>,
    tags: Vec<Option<[u8; 32]>>,
    registry: KeyRegistry,
    verifier: BatchVerifier,
    windows: Vec<(ZoneID, ReplayWindow)>,
    pending: Vec<Pending>,
    payloads: Vec<u8>,
    capacity: usize,
    pub counters: IngressCounters,
    /// The last datagram of another wire version: the zone it came from and its version
    /// (logged when it changes).
    pub other_version: Option<(ZoneID, u8)>,
}

impl std::fmt::Debug for Ingress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingress")
            .field("counters", &self.counters)
            .finish()
    }
}

impl Ingress {
    /// An ingress of zone `zone` for up to `capacity` envelopes per tick. Fails on a
    /// malformed or weak key.
    pub fn new(keys: &NodeKeys, capacity: usize, zone: ZoneID) -> Result<Ingress, KeyError> {
        let mut registry = KeyRegistry::new(keys.public_keys.len());
        for key in &keys.public_keys {
            registry.register(key)?;
        }
        let pairs = pair_secrets(keys);
        Ok(Ingress {
            zone,
            tags: tag_keys(&pairs),
            pairs,
            registry,
            verifier: BatchVerifier::new(capacity, SEALED_SIZE_MAX),
            windows: Vec::new(),
            pending: Vec::with_capacity(capacity),
            payloads: vec![0; capacity * DATAGRAM_SIZE_MAX],
            capacity,
            counters: IngressCounters::default(),
            other_version: None,
        })
    }

    /// Takes a datagram that came from `from` (a zone hosted by node `signer`). Cheap checks
    /// only; the signature is verified in [`Ingress::verify`].
    pub fn push(&mut self, from: ZoneID, signer: u32, datagram: &[u8]) {
        let envelope = match parse_envelope(datagram) {
            Ok(envelope) => envelope,
            Err(ParseError::BadVersion) => {
                self.counters.other_version += 1;
                let seen = Some((from, datagram[4]));
                if self.other_version != seen {
                    tracing::error!(zone = %self.zone, "datagrams from zone {from} (node index {signer}) speak wire version {}, this build {}: dropped unchecked — that node runs another build; run one build on every node of the world", datagram[4], meridian_layouts::VERSION);
                    self.other_version = seen;
                }
                return;
            }
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        let header = envelope.header;
        if header.domain != domain::NODE || header.signer.get() != signer {
            self.counters.malformed += 1;
            return;
        }
        let Some((route, payload)) = envelope.payload.split_first_chunk::<ROUTE_SIZE>() else {
            self.counters.malformed += 1;
            return;
        };
        let Some((payload, tag_bytes)) = payload.split_last_chunk::<TAG_SIZE>() else {
            self.counters.malformed += 1;
            return;
        };
        let source = u32::from_le_bytes(route[..4].try_into().expect("4 bytes"));
        let target = u32::from_le_bytes(route[4..].try_into().expect("4 bytes"));
        if source != from.0 || target != self.zone.0 {
            // Checked again only by the signature; the window below is the signed source's.
            self.counters.misrouted += 1;
            return;
        }
        let (epoch, sequence) = (header.epoch.get(), header.sequence.get());
        let fresh = self
            .windows
            .iter()
            .find(|w| w.0 == from)
            .is_none_or(|w| w.1.check(epoch, sequence));
        if !fresh {
            self.counters.replayed += 1;
            return;
        }
        // The tag before the signature: a forged source address costs a hash.
        let Some(tag_key) = self.tags.get(signer as usize).and_then(Option::as_ref) else {
            self.counters.malformed += 1;
            return;
        };
        let tagged = &envelope.signed[..envelope.signed.len() - TAG_SIZE];
        if !pair_tag_holds(tag_key, tagged, tag_bytes) {
            self.counters.bad_tag += 1;
            return;
        }
        if self.pending.len() == self.capacity || payload.len() > DATAGRAM_SIZE_MAX {
            self.counters.overflow += 1;
            return;
        }
        let Some(key) = self.registry.node(SignerID(signer)) else {
            self.counters.malformed += 1;
            return;
        };
        let Ok(item) = self
            .verifier
            .push(key, envelope.signed, envelope.signature, Policy::Strict)
        else {
            self.counters.overflow += 1;
            return;
        };
        let payload_start = self.pending.len() * DATAGRAM_SIZE_MAX;
        self.payloads[payload_start..payload_start + payload.len()].copy_from_slice(payload);
        self.pending.push(Pending {
            from,
            signer,
            epoch,
            sequence,
            payload_start,
            payload_len: payload.len(),
            item,
        });
    }

    /// Verifies everything pushed since the last call, in one batch, and calls
    /// `deliver(from, signer, epoch, payload)` for each datagram that verified and is not a
    /// replay (the epoch of a persisted zone is its incarnation).
    pub fn verify(&mut self, mut deliver: impl FnMut(ZoneID, u32, u32, &[u8])) {
        if !self.pending.is_empty() {
            self.verifier.verify();
        }
        for p in &self.pending {
            if self.verifier.verdict(p.item) != Verdict::Accepted {
                self.counters.forged += 1;
                continue;
            }
            let window = match self.windows.iter().position(|w| w.0 == p.from) {
                Some(k) => &mut self.windows[k].1,
                None => {
                    self.windows.push((p.from, ReplayWindow::default()));
                    &mut self.windows.last_mut().expect("just pushed").1
                }
            };
            // Two copies of one sequence in the same batch: the second is a replay.
            if !window.record(p.epoch, p.sequence) {
                self.counters.replayed += 1;
                continue;
            }
            let payload = &mut self.payloads[p.payload_start..p.payload_start + p.payload_len];
            if let Some(commit) = session_commit(payload).filter(|c| c.key_salt != [0; 16]) {
                // Sealed by the sender to this node (the signature covers the salt and the
                // sealed key); in clear from here on.
                let Some(pair) = self.pairs.get(p.signer as usize).and_then(Option::as_ref) else {
                    self.counters.malformed += 1;
                    continue;
                };
                let salt = commit.key_salt;
                xor_key(&mut commit.session_key, &binding_pad(pair, &salt));
                commit.key_salt = [0; 16];
            }
            self.counters.accepted += 1;
            deliver(p.from, p.signer, p.epoch, payload);
        }
        self.pending.clear();
        self.verifier.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u32, me: u32) -> NodeKeys {
        let signing: Vec<SigningKey> = (0..n)
            .map(|i| {
                let mut seed = [9u8; 32];
                seed[0] = i as u8;
                SigningKey::from_bytes(&seed)
            })
            .collect();
        NodeKeys::among(&signing, me)
    }

    fn delivered(ingress: &mut Ingress) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        ingress.verify(|_, _, _, payload| out.push(payload.to_vec()));
        out
    }

    #[test]
    fn sealed_datagrams_arrive_and_everything_else_is_dropped_and_counted() {
        let (a, b) = (keys(2, 0), keys(2, 1));
        let mut out = Outgress::new(&a, 100, ZoneID(0));
        let mut ingress = Ingress::new(&b, 64, ZoneID(1)).unwrap();
        let mut buf = [0u8; SEALED_SIZE_MAX];
        let zone_a = ZoneID(0);

        let n = out
            .seal(b"handoff packets", ZoneID(1), 1, &mut buf)
            .unwrap();
        let good = buf[..n].to_vec();
        ingress.push(zone_a, 0, &good);
        assert_eq!(delivered(&mut ingress), vec![b"handoff packets".to_vec()]);

        // Replayed: the same datagram again.
        ingress.push(zone_a, 0, &good);
        assert!(delivered(&mut ingress).is_empty());
        assert_eq!(ingress.counters.replayed, 1);

        // Changed after sealing: the tag does not hold (a hash, no signature check).
        let n = out.seal(b"move entity 7", ZoneID(1), 1, &mut buf).unwrap();
        let mut changed = buf[..n].to_vec();
        changed[44] ^= 1; // inside the datagram (after the 34-byte header and the route)
        ingress.push(zone_a, 0, &changed);
        // Forged: the tag holds (made with the pair's key) but the signature does not.
        let n = out.seal(b"move entity 8", ZoneID(1), 1, &mut buf).unwrap();
        let mut forged = buf[..n].to_vec();
        forged[n - 1] ^= 1;
        ingress.push(zone_a, 0, &forged);
        // Signed by a node that is not the one hosting the sending zone.
        let mut imposter = Outgress::new(&b, 100, ZoneID(0));
        let n = imposter
            .seal(b"I am zone 0", ZoneID(1), 1, &mut buf)
            .unwrap();
        ingress.push(zone_a, 0, &buf[..n]);
        // Not an envelope at all.
        ingress.push(zone_a, 0, b"plain bytes");
        // A genuine envelope in another build's wire version: dropped unchecked, and told.
        let n = out
            .seal(b"from a newer build", ZoneID(1), 1, &mut buf)
            .unwrap();
        let mut newer = buf[..n].to_vec();
        newer[4] = meridian_layouts::VERSION + 1;
        ingress.push(zone_a, 0, &newer);
        assert_eq!(ingress.counters.other_version, 1);
        assert_eq!(
            ingress.other_version,
            Some((zone_a, meridian_layouts::VERSION + 1))
        );
        // A forgery does not advance the window: the next real datagram still arrives.
        let n = out.seal(b"next", ZoneID(1), 1, &mut buf).unwrap();
        ingress.push(zone_a, 0, &buf[..n]);
        assert_eq!(delivered(&mut ingress), vec![b"next".to_vec()]);
        assert_eq!(ingress.counters.bad_tag, 1);
        assert_eq!(ingress.counters.forged, 1);
        assert_eq!(ingress.counters.malformed, 2);
        assert_eq!(ingress.counters.accepted, 2);

        // A full-size zone datagram seals (1,322 bytes) and arrives intact.
        let full = [0xabu8; 1200];
        let n = out.seal(&full, ZoneID(1), 1, &mut buf).unwrap();
        assert_eq!(n, SEALED_SIZE_MAX);
        ingress.push(zone_a, 0, &buf[..n]);
        assert_eq!(delivered(&mut ingress), vec![full.to_vec()]);
        assert!(out.seal(&[0u8; 1201], ZoneID(1), 1, &mut buf).is_none());

        // A restart of the sender (newer epoch) is accepted; the old epoch is not.
        let mut restarted = Outgress::new(&a, 101, ZoneID(0));
        let n = restarted
            .seal(b"after restart", ZoneID(1), 1, &mut buf)
            .unwrap();
        ingress.push(zone_a, 0, &buf[..n]);
        assert_eq!(delivered(&mut ingress).len(), 1);
        let n = out
            .seal(b"from the old run", ZoneID(1), 1, &mut buf)
            .unwrap();
        ingress.push(zone_a, 0, &buf[..n]);
        assert!(delivered(&mut ingress).is_empty());
    }

    /// A sender that knows a zone's address but not the pair's key — forging the source
    /// address of another node's zone — gets nothing verified: a thousand envelopes with
    /// fresh sequences and a genuine-looking signature, signed even with the right node's
    /// key, are dropped at the tag; the genuine envelope after them arrives.
    #[test]
    fn envelopes_without_the_pair_tag_cost_no_verification() {
        let (a, b) = (keys(3, 0), keys(3, 1));
        let mut ingress = Ingress::new(&b, 64, ZoneID(1)).unwrap();
        // Node 0's own key, but the tag of the pair it shares with node 2.
        let mut wrong_pair = Outgress::new(&a, 100, ZoneID(0));
        let mut buf = [0u8; SEALED_SIZE_MAX];
        for _ in 0..1000 {
            let n = wrong_pair.seal(b"x", ZoneID(1), 2, &mut buf).unwrap();
            ingress.push(ZoneID(0), 0, &buf[..n]);
        }
        assert!(delivered(&mut ingress).is_empty());
        assert_eq!(ingress.counters.bad_tag, 1000);
        assert_eq!(
            ingress.counters.forged, 0,
            "nothing reached the signature check"
        );
        let mut out = Outgress::new(&a, 100, ZoneID(0));
        let n = out.seal(b"genuine", ZoneID(1), 1, &mut buf).unwrap();
        ingress.push(ZoneID(0), 0, &buf[..n]);
        assert_eq!(delivered(&mut ingress), vec![b"genuine".to_vec()]);
    }

    #[test]
    fn weak_keys_are_refused() {
        let mut k = keys(2, 0);
        k.public_keys[1] = [0; 32];
        k.public_keys[1][0] = 1; // The identity point: small order.
        assert_eq!(Ingress::new(&k, 4, ZoneID(1)).err(), Some(KeyError::Weak));
    }

    /// The route is signed: an envelope replayed from the address of another zone of the
    /// same node, or delivered to another zone than its target, is refused before its
    /// signature is even checked — and cannot lock the other zone's replay window.
    #[test]
    fn envelopes_are_bound_to_their_route() {
        let (a, b) = (keys(2, 0), keys(2, 1));
        // Zones 0 and 2 run on node a; zones 1 and 3 on node b.
        let (mut from_0, mut from_2) = (
            Outgress::new(&a, 100, ZoneID(0)),
            Outgress::new(&a, 100, ZoneID(2)),
        );
        let mut ingress_1 = Ingress::new(&b, 64, ZoneID(1)).unwrap();
        let mut buf = [0u8; SEALED_SIZE_MAX];
        // Zone 0 has sent many datagrams: its sequence is far ahead of zone 2's.
        for _ in 0..1000 {
            from_0.seal(b"x", ZoneID(1), 1, &mut buf).unwrap();
        }
        let n = from_0
            .seal(b"zone 0 to zone 1", ZoneID(1), 1, &mut buf)
            .unwrap();
        let captured = buf[..n].to_vec();
        // Replayed as if from zone 2 (same node, same signer): refused.
        ingress_1.push(ZoneID(2), 0, &captured);
        assert!(delivered(&mut ingress_1).is_empty());
        assert_eq!(ingress_1.counters.misrouted, 1);
        // Zone 2's own first datagram still arrives: its window was not touched.
        let n = from_2
            .seal(b"zone 2 to zone 1", ZoneID(1), 1, &mut buf)
            .unwrap();
        ingress_1.push(ZoneID(2), 0, &buf[..n]);
        assert_eq!(
            delivered(&mut ingress_1),
            vec![b"zone 2 to zone 1".to_vec()]
        );
        // Sealed for zone 3, delivered to zone 1: refused.
        let n = from_0
            .seal(b"zone 0 to zone 3", ZoneID(3), 1, &mut buf)
            .unwrap();
        ingress_1.push(ZoneID(0), 0, &buf[..n]);
        assert!(delivered(&mut ingress_1).is_empty());
        assert_eq!(ingress_1.counters.misrouted, 2);
        // The genuine route arrives.
        ingress_1.push(ZoneID(0), 0, &captured);
        assert_eq!(
            delivered(&mut ingress_1),
            vec![b"zone 0 to zone 1".to_vec()]
        );
    }

    #[test]
    fn a_session_key_crosses_nodes_sealed_and_arrives_in_clear() {
        use meridian_layouts::handoff::{Commit, EntityState, SessionBinding, Transfer};
        use meridian_layouts::wire::{WIRE_MAX, decode_commit, encode_commit};
        use meridian_layouts::{F32Le, U16Le, U32Le, U64Le, header_for};
        let (a, b, c) = (keys(3, 0), keys(3, 1), keys(3, 2));
        let mut out = Outgress::new(&a, 100, ZoneID(0));
        let mut ingress = Ingress::new(&b, 64, ZoneID(1)).unwrap();
        let mut eavesdropper = Ingress::new(&c, 64, ZoneID(1)).unwrap();
        let key = *b"the session master key, 32 bytes";
        let commit = Commit {
            header: header_for::<Commit>(),
            transfer: Transfer {
                entity_id: U64Le::new(7),
                epoch: U32Le::new(1),
                source_zone: U32Le::new(0),
                target_zone: U32Le::new(1),
                transfer_id: U64Le::new(1),
            },
            tick: U64Le::new(5),
            state: EntityState {
                position: [F32Le::new(1.0); 3],
                velocity: [F32Le::new(0.0); 2],
                speed_mps_max: F32Le::new(1.0),
                kind: U16Le::new(2),
                flags: U16Le::new(0),
                payload: [0; 64],
            },
            session: SessionBinding {
                session_id: U64Le::new(9),
                client_ip: [0; 16],
                client_port: U16Le::new(4000),
                session_secret: U64Le::new(1),
                client_key: [0; 32],
                input_sequence: U32Le::new(0),
                session_key: key,
                key_salt: [0; 16],
                packet_sequence: U64Le::new(3),
            },
        };
        // As a zone sends it: the wire form.
        let mut bytes = [0u8; WIRE_MAX];
        let len = encode_commit(&commit, &bytemuck::Zeroable::zeroed(), &mut bytes);
        let wire = &bytes[..len];
        let mut buf = [0u8; SEALED_SIZE_MAX];
        let n = out.seal(wire, ZoneID(1), 1, &mut buf).unwrap();
        assert!(
            !buf[..n].windows(32).any(|w| w == key),
            "the key is not on the wire in clear"
        );
        ingress.push(ZoneID(0), 0, &buf[..n]);
        let got = delivered(&mut ingress);
        let (arrived, _) = decode_commit(&got[0]).unwrap();
        assert_eq!(arrived.session.session_key, key);
        assert_eq!(arrived.session.key_salt, [0; 16]);
        assert_eq!(arrived.session.packet_sequence.get(), 3);
        // A third node cannot read it — nor take the envelope: its tag is the pair's.
        eavesdropper.push(ZoneID(0), 0, &buf[..n]);
        assert!(delivered(&mut eavesdropper).is_empty());
        assert_eq!(eavesdropper.counters.bad_tag, 1);
        // Two sends of one COMMIT use different salts (different pads).
        let m = out.seal(wire, ZoneID(1), 1, &mut buf).unwrap();
        assert_eq!(m, n);
    }
}
