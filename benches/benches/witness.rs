//! Signature benches: batch against single strict verification in the same group, the
//! cost of one bad item, and signing. 256 distinct keys, 128-byte messages.
//!
//! Run: `cargo bench -p meridian-benches --bench witness`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use meridian_core::witness::{BatchVerifier, Policy, Verdict};

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

criterion_group!(witness, verify, sign);
criterion_main!(witness);
