//! Witness: keys, batch verification with bisection, replay windows, connect tokens.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use meridian_core::witness::{
    BatchVerifier, KeyError, KeyRegistry, Policy, ReplayWindow, TokenError, TokenReplay, Verdict,
    parse_key, precheck_token,
};
use meridian_layouts::witness::{ConnectToken, domain, parse_envelope, write_envelope_unsigned};
use meridian_layouts::{ParseError, U64Le};
use proptest::prelude::*;

fn signing_key(i: u32) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[31] = 0x5a;
    SigningKey::from_bytes(&seed)
}

/// 128-byte messages signed by `n` distinct keys.
fn items(n: u32) -> Vec<(VerifyingKey, Vec<u8>, [u8; 64])> {
    (0..n)
        .map(|i| {
            let key = signing_key(i);
            let message: Vec<u8> = (0..128u32).map(|b| (b * 7 + i) as u8).collect();
            let signature = key.sign(&message).to_bytes();
            (key.verifying_key(), message, signature)
        })
        .collect()
}

fn verify_all(
    items: &[(VerifyingKey, Vec<u8>, [u8; 64])],
    policy: Policy,
) -> (Vec<Verdict>, BatchVerifier) {
    let mut verifier = BatchVerifier::new(items.len().max(1), 1200);
    for (key, message, signature) in items {
        verifier.push(key, message, signature, policy).unwrap();
    }
    verifier.verify();
    (verifier.verdicts().to_vec(), verifier)
}

#[test]
fn clean_batch_is_accepted_in_one_call() {
    let (verdicts, verifier) = verify_all(&items(256), Policy::Batch);
    assert!(verdicts.iter().all(|v| *v == Verdict::Accepted));
    assert_eq!(verifier.stats().batch_calls, 1);
    assert_eq!(verifier.stats().strict_calls, 0);
}

#[test]
fn one_bad_item_among_256_rejects_exactly_that_one() {
    for bad in [0usize, 1, 77, 128, 255] {
        let mut items = items(256);
        items[bad].1[5] ^= 1; // The message no longer matches its signature.
        let (verdicts, verifier) = verify_all(&items, Policy::Batch);
        for (i, v) in verdicts.iter().enumerate() {
            let want = if i == bad {
                Verdict::RejectedSignature
            } else {
                Verdict::Accepted
            };
            assert_eq!(*v, want, "item {i} (bad item {bad})");
        }
        // Bisection, not a single-verify pass: a handful of batches and strict checks.
        let stats = verifier.stats();
        assert!(stats.strict_calls <= 10, "{stats:?}");
        assert!(stats.batch_items <= 3 * 256, "{stats:?}");
    }
}

#[test]
fn all_bad_rejects_all_256() {
    let mut items = items(256);
    for item in &mut items {
        item.2[0] ^= 0x40; // Corrupt R.
    }
    let (verdicts, _) = verify_all(&items, Policy::Batch);
    assert!(
        verdicts
            .iter()
            .all(|v| matches!(v, Verdict::RejectedSignature | Verdict::RejectedMalformed))
    );
}

#[test]
fn wrong_key_is_rejected() {
    let mut items = items(8);
    items[3].0 = signing_key(999).verifying_key();
    let (verdicts, _) = verify_all(&items, Policy::Strict);
    assert_eq!(verdicts[3], Verdict::RejectedSignature);
    assert_eq!(
        verdicts.iter().filter(|v| **v == Verdict::Accepted).count(),
        7
    );
}

#[test]
fn small_order_r_and_non_canonical_s_never_reach_the_batch() {
    let mut items = items(4);
    // R = the identity point's encoding (y = 1), a small-order point.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    items[1].2[..32].copy_from_slice(&identity);
    // s = l (the group order) is not canonical.
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    items[2].2[32..].copy_from_slice(&l);
    let (verdicts, verifier) = verify_all(&items, Policy::Batch);
    assert_eq!(
        verdicts,
        [
            Verdict::Accepted,
            Verdict::RejectedMalformed,
            Verdict::RejectedMalformed,
            Verdict::Accepted
        ]
    );
    assert_eq!(verifier.stats().batch_calls, 1);
}

#[test]
fn verifier_is_reusable_and_bounded() {
    let items = items(4);
    let mut verifier = BatchVerifier::new(2, 200);
    for round in 0..3 {
        verifier.clear();
        verifier
            .push(&items[0].0, &items[0].1, &items[0].2, Policy::Batch)
            .unwrap();
        verifier
            .push(&items[1].0, &items[1].1, &items[1].2, Policy::Batch)
            .unwrap();
        assert_eq!(
            verifier.push(&items[2].0, &items[2].1, &items[2].2, Policy::Batch),
            Err(meridian_core::witness::PushError::Full),
            "round {round}"
        );
        verifier.verify();
        assert_eq!(verifier.verdicts(), [Verdict::Accepted, Verdict::Accepted]);
    }
    assert_eq!(
        BatchVerifier::new(1, 10).push(&items[0].0, &items[0].1, &items[0].2, Policy::Batch),
        Err(meridian_core::witness::PushError::TooLong)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Any pattern of bad items: every verdict equals what `verify_strict` says alone.
    #[test]
    fn verdicts_equal_strict_verification(bad in proptest::collection::vec(any::<bool>(), 1..40), strict: bool) {
        let mut items = items(bad.len() as u32);
        for (item, &is_bad) in items.iter_mut().zip(&bad) {
            if is_bad {
                item.1[0] ^= 0xff;
            }
        }
        let policy = if strict { Policy::Strict } else { Policy::Batch };
        let (verdicts, _) = verify_all(&items, policy);
        for (i, (key, message, signature)) in items.iter().enumerate() {
            let ok = key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature)).is_ok();
            prop_assert_eq!(verdicts[i] == Verdict::Accepted, ok, "item {}", i);
        }
    }
}

#[test]
fn weak_and_malformed_keys_are_refused_at_registration() {
    let mut registry = KeyRegistry::new(2);
    // The identity point: a valid encoding, but small order.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(registry.register(&identity), Err(KeyError::Weak));
    assert_eq!(parse_key(&identity), Err(KeyError::Weak));
    // y = 2 is not on the curve.
    let mut off_curve = [0u8; 32];
    off_curve[0] = 2;
    assert_eq!(registry.register(&off_curve), Err(KeyError::Malformed));
    let a = registry
        .register(&signing_key(1).verifying_key().to_bytes())
        .unwrap();
    registry
        .register(&signing_key(2).verifying_key().to_bytes())
        .unwrap();
    assert_eq!(
        registry.register(&signing_key(3).verifying_key().to_bytes()),
        Err(KeyError::Full)
    );
    assert_eq!(registry.node(a), Some(&signing_key(1).verifying_key()));
}

#[test]
fn envelopes_round_trip_and_forgeries_fail() {
    let key = signing_key(7);
    let mut buf = [0u8; 1200];
    let payload = b"handoff bytes";
    let signed = write_envelope_unsigned(&mut buf, domain::NODE, 3, 1, 42, payload).unwrap();
    let signature = key.sign(&buf[..signed]).to_bytes();
    buf[signed..signed + 64].copy_from_slice(&signature);
    let datagram = &buf[..signed + 64];

    let envelope = parse_envelope(datagram).unwrap();
    assert_eq!(envelope.payload, payload);
    assert_eq!(envelope.header.sequence.get(), 42);
    let mut verifier = BatchVerifier::new(4, 1200);
    verifier
        .push(
            &key.verifying_key(),
            envelope.signed,
            envelope.signature,
            Policy::Strict,
        )
        .unwrap();

    // A forgery: same signature, one payload byte changed.
    let mut forged = datagram.to_vec();
    forged[40] ^= 1;
    let forged_envelope = parse_envelope(&forged).unwrap();
    verifier
        .push(
            &key.verifying_key(),
            forged_envelope.signed,
            forged_envelope.signature,
            Policy::Strict,
        )
        .unwrap();
    // The sequence is inside the signed bytes: changing it breaks the signature too.
    let mut resequenced = datagram.to_vec();
    resequenced[26] ^= 1;
    let resequenced = parse_envelope(&resequenced).unwrap();
    verifier
        .push(
            &key.verifying_key(),
            resequenced.signed,
            resequenced.signature,
            Policy::Strict,
        )
        .unwrap();
    verifier.verify();
    assert_eq!(
        verifier.verdicts(),
        [
            Verdict::Accepted,
            Verdict::RejectedSignature,
            Verdict::RejectedSignature
        ]
    );

    // Every truncation is a parse error.
    for cut in 0..datagram.len() {
        assert!(parse_envelope(&datagram[..cut]).is_err(), "cut {cut}");
    }
    assert_eq!(
        parse_envelope(&datagram[..datagram.len() - 1]).unwrap_err(),
        ParseError::BadLength
    );
}

#[test]
fn replay_window_rejects_replays_and_stale_epochs() {
    let mut window = ReplayWindow::default();
    assert!(window.record(1, 10));
    assert!(!window.check(1, 10), "exact replay");
    assert!(window.record(1, 12));
    assert!(window.record(1, 11), "late but fresh, inside the window");
    assert!(!window.record(1, 11), "replay of a late one");
    assert!(window.record(1, 100));
    assert!(!window.check(1, 30), "older than the window");
    assert!(!window.check(0, 1000), "older epoch");
    assert!(window.record(2, 0), "a newer epoch resets the window");
    assert!(!window.check(1, 101));
}

fn token(auth: &SigningKey, world: u64, client: u64, expires: u64, nonce: u64) -> ConnectToken {
    let mut token = ConnectToken {
        domain: domain::TOKEN,
        world_id: U64Le::new(world),
        client_id: U64Le::new(client),
        client_key: signing_key(500 + client as u32).verifying_key().to_bytes(),
        expires_unix_ms: U64Le::new(expires),
        nonce: U64Le::new(nonce),
        signature: [0; 64],
    };
    token.signature = auth.sign(token.signed_bytes()).to_bytes();
    token
}

#[test]
fn connect_tokens() {
    let auth = signing_key(1000);
    let mut keys = KeyRegistry::new(1);
    keys.set_auth(&auth.verifying_key().to_bytes()).unwrap();
    let now = 1_700_000_000_000;
    let mut verifier = BatchVerifier::new(8, 256);
    let mut replay = TokenReplay::new(4);

    let good = token(&auth, 9, 1, now + 30_000, 77);
    let bytes = bytemuck::bytes_of(&good);
    let parsed = ConnectToken::parse(bytes).unwrap();
    let (index, client_key) = precheck_token(parsed, 9, now, &keys, &mut verifier)
        .unwrap()
        .unwrap();
    assert_eq!(client_key.to_bytes(), good.client_key);

    // Expired, wrong world: refused before any signature work.
    let expired = token(&auth, 9, 2, now - 1, 78);
    assert_eq!(
        precheck_token(&expired, 9, now, &keys, &mut verifier).unwrap_err(),
        TokenError::Expired
    );
    assert_eq!(
        precheck_token(&good, 8, now, &keys, &mut verifier).unwrap_err(),
        TokenError::WrongWorld
    );

    // Forged: signed by another key, and a tampered one.
    let forged = token(&signing_key(1001), 9, 3, now + 30_000, 79);
    let (forged_index, _) = precheck_token(&forged, 9, now, &keys, &mut verifier)
        .unwrap()
        .unwrap();
    let mut tampered = good;
    tampered.client_id = U64Le::new(4);
    let (tampered_index, _) = precheck_token(&tampered, 9, now, &keys, &mut verifier)
        .unwrap()
        .unwrap();

    verifier.verify();
    assert_eq!(verifier.verdict(index), Verdict::Accepted);
    assert_eq!(verifier.verdict(forged_index), Verdict::RejectedSignature);
    assert_eq!(verifier.verdict(tampered_index), Verdict::RejectedSignature);

    // Replayed: the same token admits once.
    assert_eq!(replay.record(&good, now), Ok(true));
    assert_eq!(replay.record(&good, now), Err(TokenError::Replayed));

    // Truncated and mis-tagged tokens do not parse.
    assert_eq!(
        ConnectToken::parse(&bytes[..100]).unwrap_err(),
        ParseError::Truncated
    );
    let mut mistagged = *bytemuck::bytes_of(&good).first_chunk::<136>().unwrap();
    mistagged[0] = b'X';
    assert_eq!(
        ConnectToken::parse(&mistagged).unwrap_err(),
        ParseError::BadField
    );
}

#[test]
fn token_replay_table_is_bounded() {
    let auth = signing_key(1000);
    let now = 1_000;
    let mut replay = TokenReplay::new(2);
    assert_eq!(
        replay.record(&token(&auth, 1, 1, now + 10, 1), now),
        Ok(true)
    );
    assert_eq!(
        replay.record(&token(&auth, 1, 2, now + 10, 2), now),
        Ok(true)
    );
    // Full of unexpired tokens: refuse rather than forget one.
    assert_eq!(
        replay.record(&token(&auth, 1, 3, now + 10, 3), now),
        Ok(false)
    );
    // Once they expire, room frees up.
    assert_eq!(
        replay.record(&token(&auth, 1, 3, now + 100, 3), now + 20),
        Ok(true)
    );
}

/// A full table frees exactly the expired tokens, whenever one has expired, and a token
/// recorded stays a replay until it expires, however many others come and go.
#[test]
fn token_replay_frees_exactly_what_expired() {
    let auth = signing_key(1000);
    let now = 1_000;
    let mut replay = TokenReplay::new(3);
    let a = token(&auth, 1, 1, now + 10, 1);
    let b = token(&auth, 1, 2, now + 50, 2);
    let c = token(&auth, 1, 3, now + 100, 3);
    for t in [&a, &b, &c] {
        assert_eq!(replay.record(t, now), Ok(true));
    }
    // Full, nothing expired yet.
    assert_eq!(
        replay.record(&token(&auth, 1, 4, now + 200, 4), now + 9),
        Ok(false)
    );
    // `a` expired: its room goes to the new one; `b` and `c` are still replays.
    assert_eq!(
        replay.record(&token(&auth, 1, 4, now + 200, 4), now + 10),
        Ok(true)
    );
    assert_eq!(replay.len(), 3);
    assert_eq!(replay.record(&b, now + 11), Err(TokenError::Replayed));
    assert_eq!(replay.record(&c, now + 11), Err(TokenError::Replayed));
    // Full again until `b` expires at +50.
    assert_eq!(
        replay.record(&token(&auth, 1, 5, now + 200, 5), now + 49),
        Ok(false)
    );
    assert_eq!(
        replay.record(&token(&auth, 1, 5, now + 200, 5), now + 50),
        Ok(true)
    );
    assert_eq!(replay.record(&c, now + 51), Err(TokenError::Replayed));
    assert_eq!(replay.len(), 3);
}
