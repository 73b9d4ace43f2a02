//! Signed node-to-node traffic (docs/security.md): every datagram a zone sends to a zone on
//! another node travels in a signed envelope; the receiving zone verifies a tick's worth in
//! one batch before anything reaches the sans-IO zone.
//!
//! - [`Outgress`] seals a datagram: envelope header (domain `NODE`, this node's signer
//!   index, this run's epoch, a per-zone sequence) + the route (source zone, target zone:
//!   two `u32`s) + the datagram + an Ed25519 signature. One signature per datagram, never
//!   per entity. The route is signed, so a captured envelope can neither be replayed "from"
//!   another zone of the same node (its window would be locked by the other zone's higher
//!   sequence) nor delivered to another zone than the one it was sealed for.
//! - [`Ingress`] takes envelopes as they arrive (parse, domain, signer expected for the
//!   sending zone, the signed route naming that zone and this one, the replay window of
//!   the signed source) and [`Ingress::verify`] runs the batch (strict policy:
//!   handoffs move ownership), records the sequences that verified, and delivers the
//!   payloads in arrival order. Forged, mis-signed, replayed and malformed datagrams are
//!   dropped and counted, never logged one by one.
//!
//! Zones of one node exchange datagrams through memory and do not sign (docs/security.md).

use ed25519_dalek::{Signer, SigningKey};
use meridian_core::limits::DATAGRAM_SIZE_MAX;
use meridian_core::witness::{
    BatchVerifier, KeyError, KeyRegistry, Policy, ReplayWindow, SignerID, Verdict,
};
use meridian_core::world::ZoneID;
use meridian_layouts::witness::{SIGNATURE_SIZE, domain, parse_envelope, write_envelope_unsigned};

/// Bytes of the signed route at the front of a sealed payload: source zone, target zone.
pub const ROUTE_SIZE: usize = 8;

/// Largest sealed datagram: a full zone datagram plus envelope header, route and signature.
pub const SEALED_SIZE_MAX: usize = DATAGRAM_SIZE_MAX
    + ROUTE_SIZE
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

/// Seals outgoing datagrams for one zone.
#[derive(Debug)]
pub struct Outgress {
    key: SigningKey,
    signer: u32,
    epoch: u32,
    sequence: u64,
    /// The zone whose datagrams this seals.
    zone: ZoneID,
    /// Route + datagram, assembled before sealing.
    payload: [u8; ROUTE_SIZE + DATAGRAM_SIZE_MAX],
}

impl Outgress {
    /// `epoch` must grow across restarts of this node (seconds since the Unix epoch at
    /// start do), so receivers' replay windows accept the new run.
    pub fn new(keys: &NodeKeys, epoch: u32, zone: ZoneID) -> Outgress {
        Outgress {
            key: keys.key.clone(),
            signer: keys.signer,
            epoch,
            sequence: 0,
            zone,
            payload: [0; ROUTE_SIZE + DATAGRAM_SIZE_MAX],
        }
    }

    /// Writes the sealed form of `datagram`, bound for zone `to`, into `out` (≥
    /// [`SEALED_SIZE_MAX`]); returns its length, or `None` if the datagram is larger than
    /// an envelope carries.
    pub fn seal(&mut self, datagram: &[u8], to: ZoneID, out: &mut [u8]) -> Option<usize> {
        if datagram.len() > DATAGRAM_SIZE_MAX {
            return None;
        }
        self.sequence += 1;
        self.payload[..4].copy_from_slice(&self.zone.0.to_le_bytes());
        self.payload[4..ROUTE_SIZE].copy_from_slice(&to.0.to_le_bytes());
        let payload_len = ROUTE_SIZE + datagram.len();
        self.payload[ROUTE_SIZE..payload_len].copy_from_slice(datagram);
        let signed = write_envelope_unsigned(
            out,
            domain::NODE,
            self.signer,
            self.epoch,
            self.sequence,
            &self.payload[..payload_len],
        )?;
        let signature = self.key.sign(&out[..signed]).to_bytes();
        out[signed..signed + SIGNATURE_SIZE].copy_from_slice(&signature);
        Some(signed + SIGNATURE_SIZE)
    }
}

/// Counters of what [`Ingress`] refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngressCounters {
    pub accepted: u64,
    /// Not an envelope, wrong domain, or a signer other than the sending zone's node.
    pub malformed: u64,
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

struct Pending {
    from: ZoneID,
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
    registry: KeyRegistry,
    verifier: BatchVerifier,
    windows: Vec<(ZoneID, ReplayWindow)>,
    pending: Vec<Pending>,
    payloads: Vec<u8>,
    capacity: usize,
    pub counters: IngressCounters,
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
        Ok(Ingress {
            zone,
            registry,
            verifier: BatchVerifier::new(capacity, SEALED_SIZE_MAX),
            windows: Vec::new(),
            pending: Vec::with_capacity(capacity),
            payloads: vec![0; capacity * DATAGRAM_SIZE_MAX],
            capacity,
            counters: IngressCounters::default(),
        })
    }

    /// Takes a datagram that came from `from` (a zone hosted by node `signer`). Cheap checks
    /// only; the signature is verified in [`Ingress::verify`].
    pub fn push(&mut self, from: ZoneID, signer: u32, datagram: &[u8]) {
        let Ok(envelope) = parse_envelope(datagram) else {
            self.counters.malformed += 1;
            return;
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
            epoch,
            sequence,
            payload_start,
            payload_len: payload.len(),
            item,
        });
    }

    /// Verifies everything pushed since the last call, in one batch, and calls
    /// `deliver(from, payload)` for each datagram that verified and is not a replay.
    pub fn verify(&mut self, mut deliver: impl FnMut(ZoneID, &[u8])) {
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
            self.counters.accepted += 1;
            deliver(
                p.from,
                &self.payloads[p.payload_start..p.payload_start + p.payload_len],
            );
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
        NodeKeys {
            key: signing[me as usize].clone(),
            signer: me,
            public_keys: signing
                .iter()
                .map(|k| k.verifying_key().to_bytes())
                .collect(),
        }
    }

    fn delivered(ingress: &mut Ingress) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        ingress.verify(|_, payload| out.push(payload.to_vec()));
        out
    }

    #[test]
    fn sealed_datagrams_arrive_and_everything_else_is_dropped_and_counted() {
        let (a, b) = (keys(2, 0), keys(2, 1));
        let mut out = Outgress::new(&a, 100, ZoneID(0));
        let mut ingress = Ingress::new(&b, 64, ZoneID(1)).unwrap();
        let mut buf = [0u8; SEALED_SIZE_MAX];
        let zone_a = ZoneID(0);

        let n = out.seal(b"handoff packets", ZoneID(1), &mut buf).unwrap();
        let good = buf[..n].to_vec();
        ingress.push(zone_a, 0, &good);
        assert_eq!(delivered(&mut ingress), vec![b"handoff packets".to_vec()]);

        // Replayed: the same datagram again.
        ingress.push(zone_a, 0, &good);
        assert!(delivered(&mut ingress).is_empty());
        assert_eq!(ingress.counters.replayed, 1);

        // Forged: payload changed after signing.
        let n = out.seal(b"move entity 7", ZoneID(1), &mut buf).unwrap();
        let mut forged = buf[..n].to_vec();
        forged[44] ^= 1; // inside the datagram (after the 34-byte header and the route)
        ingress.push(zone_a, 0, &forged);
        // Signed by a node that is not the one hosting the sending zone.
        let mut imposter = Outgress::new(&b, 100, ZoneID(0));
        let n = imposter.seal(b"I am zone 0", ZoneID(1), &mut buf).unwrap();
        ingress.push(zone_a, 0, &buf[..n]);
        // Not an envelope at all.
        ingress.push(zone_a, 0, b"plain bytes");
        // A forgery does not advance the window: the next real datagram still arrives.
        let n = out.seal(b"next", ZoneID(1), &mut buf).unwrap();
        ingress.push(zone_a, 0, &buf[..n]);
        assert_eq!(delivered(&mut ingress), vec![b"next".to_vec()]);
        assert_eq!(ingress.counters.forged, 1);
        assert_eq!(ingress.counters.malformed, 2);
        assert_eq!(ingress.counters.accepted, 2);

        // A full-size zone datagram seals (1,306 bytes) and arrives intact.
        let full = [0xabu8; 1200];
        let n = out.seal(&full, ZoneID(1), &mut buf).unwrap();
        assert_eq!(n, SEALED_SIZE_MAX);
        ingress.push(zone_a, 0, &buf[..n]);
        assert_eq!(delivered(&mut ingress), vec![full.to_vec()]);
        assert!(out.seal(&[0u8; 1201], ZoneID(1), &mut buf).is_none());

        // A restart of the sender (newer epoch) is accepted; the old epoch is not.
        let mut restarted = Outgress::new(&a, 101, ZoneID(0));
        let n = restarted
            .seal(b"after restart", ZoneID(1), &mut buf)
            .unwrap();
        ingress.push(zone_a, 0, &buf[..n]);
        assert_eq!(delivered(&mut ingress).len(), 1);
        let n = out.seal(b"from the old run", ZoneID(1), &mut buf).unwrap();
        ingress.push(zone_a, 0, &buf[..n]);
        assert!(delivered(&mut ingress).is_empty());
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
            from_0.seal(b"x", ZoneID(1), &mut buf).unwrap();
        }
        let n = from_0
            .seal(b"zone 0 to zone 1", ZoneID(1), &mut buf)
            .unwrap();
        let captured = buf[..n].to_vec();
        // Replayed as if from zone 2 (same node, same signer): refused.
        ingress_1.push(ZoneID(2), 0, &captured);
        assert!(delivered(&mut ingress_1).is_empty());
        assert_eq!(ingress_1.counters.misrouted, 1);
        // Zone 2's own first datagram still arrives: its window was not touched.
        let n = from_2
            .seal(b"zone 2 to zone 1", ZoneID(1), &mut buf)
            .unwrap();
        ingress_1.push(ZoneID(2), 0, &buf[..n]);
        assert_eq!(
            delivered(&mut ingress_1),
            vec![b"zone 2 to zone 1".to_vec()]
        );
        // Sealed for zone 3, delivered to zone 1: refused.
        let n = from_0
            .seal(b"zone 0 to zone 3", ZoneID(3), &mut buf)
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
}
