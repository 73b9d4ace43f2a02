//! Signature benches: batch against single strict verification in the same group, the
//! cost of one bad item, and signing. 256 distinct keys, 128-byte messages. And what a
//! zone's `Ingress` does with 256 envelopes from another node: genuine ones, ones with a
//! good pair tag and a bad signature (what every envelope from a forged source address
//! cost before the tag), and ones without the pair's tag (what they cost now).
//!
//! Run: `cargo bench -p meridian-benches --bench witness`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use meridian_core::witness::{BatchVerifier, Policy, Verdict};
use meridian_core::world::ZoneID;
use meridian_io::signing::{Ingress, NodeKeys, Outgress, SEALED_SIZE_MAX};

const N: usize = 256;

/// Signing keys, their public keys, messages and signatures, index-aligned.
struct Fixture {
    signing: Vec<SigningKey>,
    keys: Vec<VerifyingKey>,
    messages: Vec<Vec<u8>>,
    signatures: Vec<[u8; 64]>,
}

fn fixture() -> Fixture {
    let signing: Vec<SigningKey> = (0..N as u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            seed[31] = 0xa5;
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let keys = signing.iter().map(|k| k.verifying_key()).collect();
    let messages: Vec<Vec<u8>> = (0..N)
        .map(|i| (0..128).map(|b| (b * 31 + i) as u8).collect())
        .collect();
    let signatures = signing
        .iter()
        .zip(&messages)
        .map(|(k, m)| k.sign(m).to_bytes())
        .collect();
    Fixture {
        signing,
        keys,
        messages,
        signatures,
    }
}

fn run(
    verifier: &mut BatchVerifier,
    keys: &[VerifyingKey],
    messages: &[Vec<u8>],
    signatures: &[[u8; 64]],
) -> usize {
    verifier.clear();
    for i in 0..N {
        verifier
            .push(&keys[i], &messages[i], &signatures[i], Policy::Batch)
            .unwrap();
    }
    verifier.verify();
    verifier
        .verdicts()
        .iter()
        .filter(|v| **v == Verdict::Accepted)
        .count()
}

fn verify(c: &mut Criterion) {
    let Fixture {
        keys,
        messages,
        signatures,
        ..
    } = fixture();
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(N as u64));
    group.measurement_time(Duration::from_secs(5));

    let mut verifier = BatchVerifier::new(N, 1200);
    group.bench_function(BenchmarkId::new("batch", N), |b| {
        b.iter(|| assert_eq!(run(&mut verifier, &keys, &messages, &signatures), N))
    });

    let parsed: Vec<Signature> = signatures.iter().map(Signature::from_bytes).collect();
    group.bench_function(BenchmarkId::new("single_strict", N), |b| {
        b.iter(|| {
            for i in 0..N {
                keys[i]
                    .verify_strict(black_box(&messages[i]), &parsed[i])
                    .unwrap();
            }
        })
    });

    // One forged item (a message byte changed) in the middle of the batch.
    let mut forged = messages.clone();
    forged[N / 2 + 17][3] ^= 1;
    group.bench_function(BenchmarkId::new("batch_one_bad", N), |b| {
        b.iter(|| assert_eq!(run(&mut verifier, &keys, &forged, &signatures), N - 1))
    });
    group.finish();
}

fn sign(c: &mut Criterion) {
    let Fixture {
        signing, messages, ..
    } = fixture();
    let mut group = c.benchmark_group("sign");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function(BenchmarkId::new("meridian", N), |b| {
        b.iter(|| {
            for i in 0..N {
                black_box(signing[i].sign(black_box(&messages[i])));
            }
        })
    });
    group.finish();
}

/// 256 sealed 100-byte zone datagrams from zone 0 (node 0) to zone 1 (node 1): genuine,
/// signature changed, or tagged with the pair node 0 shares with node 2.
fn envelopes() -> (NodeKeys, [Vec<Vec<u8>>; 3]) {
    let signing: Vec<SigningKey> = (0..3u8)
        .map(|i| SigningKey::from_bytes(&[i + 60; 32]))
        .collect();
    let keys = |me: u32| NodeKeys::among(&signing, me);
    let mut out = Outgress::new(&keys(0), 100, ZoneID(0));
    let mut buf = [0u8; SEALED_SIZE_MAX];
    let mut seal = |to_signer: u32, i: usize| {
        let datagram: Vec<u8> = (0..100).map(|b| (b * 7 + i) as u8).collect();
        let n = out.seal(&datagram, ZoneID(1), to_signer, &mut buf).unwrap();
        buf[..n].to_vec()
    };
    let genuine: Vec<Vec<u8>> = (0..N).map(|i| seal(1, i)).collect();
    let bad_signature: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let mut e = seal(1, i);
            let last = e.len() - 1;
            e[last] ^= 1;
            e
        })
        .collect();
    let untagged: Vec<Vec<u8>> = (0..N).map(|i| seal(2, i)).collect();
    (keys(1), [genuine, bad_signature, untagged])
}

fn ingress(c: &mut Criterion) {
    let (receiver, [genuine, bad_signature, untagged]) = envelopes();
    let mut group = c.benchmark_group("ingress");
    group.throughput(Throughput::Elements(N as u64));
    for (name, set, accepted) in [
        ("genuine", &genuine, N),
        ("bad_signature", &bad_signature, 0),
        ("untagged", &untagged, 0),
    ] {
        group.bench_function(BenchmarkId::new(name, N), |b| {
            b.iter_batched(
                || Ingress::new(&receiver, N, ZoneID(1)).unwrap(),
                |mut ingress| {
                    for e in set {
                        ingress.push(ZoneID(0), 0, e);
                    }
                    let mut delivered = 0;
                    ingress.verify(|_, _, _, _| delivered += 1);
                    assert_eq!(delivered, accepted);
                    ingress
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(witness, verify, sign, ingress);
criterion_main!(witness);
