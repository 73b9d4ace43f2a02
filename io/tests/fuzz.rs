//! Fuzz target for the opening of signed envelopes between nodes (bolero): what a zone's
//! [`Ingress`] does with whatever arrives from another node's zone address.
//!
//! Under `cargo test` it runs bolero's random engine for [`INPUTS`] inputs, then every
//! input kept under `tests/__fuzz__/` (corpus and crashes, as regressions). Random bytes
//! rarely get past an envelope's header, so each input is also tried sealed by the right
//! node (header, route, tag and signature genuine: the zone datagram inside is random —
//! it must arrive as sent) and with one byte of that envelope changed where the input
//! says (it must not arrive). `cargo bolero test envelopes -p meridian-io` runs it under
//! libFuzzer (nightly) for as long as wanted. It fails on a panic.

use ed25519_dalek::SigningKey;
use meridian_core::limits::DATAGRAM_SIZE_MAX;
use meridian_core::world::ZoneID;
use meridian_io::signing::{Ingress, NodeKeys, Outgress, SEALED_SIZE_MAX};

/// Inputs under `cargo test` (each is signed and verified: seconds, not minutes).
const INPUTS: usize = 5_000;

fn keys(me: u32) -> NodeKeys {
    let signing: Vec<SigningKey> = (0..2u8)
        .map(|i| SigningKey::from_bytes(&[i + 40; 32]))
        .collect();
    NodeKeys::among(&signing, me)
}

#[test]
fn envelopes() {
    let (a, b) = (keys(0), keys(1));
    let mut out = Outgress::new(&a, 100, ZoneID(0));
    bolero::check!()
        .with_iterations(INPUTS)
        .for_each(|input: &[u8]| {
            let mut ingress = Ingress::new(&b, 8, ZoneID(1)).expect("ingress");
            let mut arrived = Vec::new();
            // As it came, from zone 0's address.
            ingress.push(ZoneID(0), 0, input);
            ingress.verify(|_, _, _, payload| arrived.push(payload.to_vec()));
            // Sealed by zone 0's node: arrives as sent (a COMMIT's session key aside, which
            // the seal changes on the way and the opening restores).
            let datagram = &input[..input.len().min(DATAGRAM_SIZE_MAX)];
            let mut buf = [0u8; SEALED_SIZE_MAX];
            let n = out
                .seal(datagram, ZoneID(1), 1, &mut buf)
                .expect("a datagram of at most the largest size seals");
            ingress.push(ZoneID(0), 0, &buf[..n]);
            let mut genuine = Vec::new();
            ingress.verify(|_, _, _, payload| genuine.push(payload.to_vec()));
            assert_eq!(genuine.len(), 1, "the genuine envelope arrives");
            assert_eq!(genuine[0].len(), datagram.len());
            // One byte of a fresh envelope changed: refused.
            let n = out.seal(datagram, ZoneID(1), 1, &mut buf).expect("seals");
            let at = input.first().map_or(0, |&x| usize::from(x) * 7) % n;
            buf[at] ^= 1 | input.get(1).copied().unwrap_or(0);
            ingress.push(ZoneID(0), 0, &buf[..n]);
            let mut changed = Vec::new();
            ingress.verify(|_, _, _, payload| changed.push(payload.to_vec()));
            assert!(changed.is_empty(), "a changed envelope arrived (byte {at})");
        });
}
