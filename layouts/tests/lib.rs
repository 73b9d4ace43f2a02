//! Property tests for every layout: encode → parse round-trips; every truncation and any
//! corruption of a valid packet yields an error or a valid value, never a panic.

use meridian_layouts::handoff::{
    Ack, Commit, Done, EntityState, Nack, NackReason, Offer, PAYLOAD_SIZE, SessionBinding, Transfer,
};
use meridian_layouts::snapshot::{EntityRecord, SnapshotHeader, parse_snapshot, write_snapshot};
use meridian_layouts::{
    F32Le, Header, I16Le, I32Le, Packet, ParseError, U16Le, U32Le, U64Le, parse,
};
use proptest::prelude::*;

fn transfer() -> impl Strategy<Value = Transfer> {
    (
        any::<u64>(),
        1..=u32::MAX,
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_filter("source != target", |t| t.2 != t.3)
        .prop_map(|(id, epoch, s, t, transfer_id)| Transfer {
            entity_id: U64Le::new(id),
            epoch: U32Le::new(epoch),
            source_zone: U32Le::new(s),
            target_zone: U32Le::new(t),
            transfer_id: U64Le::new(transfer_id),
        })
}

fn finite() -> impl Strategy<Value = F32Le> {
    (-1.0e6f32..1.0e6).prop_map(F32Le::new)
}

fn state() -> impl Strategy<Value = EntityState> {
    (
        [finite(), finite(), finite()],
        [finite(), finite()],
        (0.0f32..1000.0).prop_map(F32Le::new),
        any::<u16>(),
        any::<u16>(),
        any::<[u8; PAYLOAD_SIZE]>(),
    )
        .prop_map(
            |(position, velocity, speed, kind, flags, payload)| EntityState {
                position,
                velocity,
                speed_mps_max: speed,
                kind: U16Le::new(kind),
                flags: U16Le::new(flags),
                payload,
            },
        )
}

fn session() -> impl Strategy<Value = SessionBinding> {
    (
        any::<u64>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<u32>(),
    )
        .prop_map(|(id, ip, port, secret, key, seq)| SessionBinding {
            session_id: U64Le::new(id),
            client_ip: ip,
            client_port: U16Le::new(port),
            session_secret: U64Le::new(secret),
            client_key: key,
            input_sequence: U32Le::new(seq),
        })
}

fn reason() -> impl Strategy<Value = NackReason> {
    prop_oneof![
        Just(NackReason::Full),
        Just(NackReason::Unknown),
        Just(NackReason::ShuttingDown),
        Just(NackReason::Stale),
    ]
}

/// Asserts the properties every fixed-size packet must have, for one valid value.
fn check_packet<T: Packet + PartialEq + core::fmt::Debug>(
    packet: T,
    flip_index: usize,
    flip_bits: u8,
) {
    let bytes = bytemuck::bytes_of(&packet);
    // Round trip.
    assert_eq!(parse::<T>(bytes), Ok(&packet));
    // Every truncation is an error.
    for cut in 0..bytes.len() {
        assert!(
            parse::<T>(&bytes[..cut]).is_err(),
            "accepted a packet cut to {cut} bytes"
        );
    }
    // Trailing garbage is an error (the header's length no longer matches).
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(parse::<T>(&longer), Err(ParseError::BadLength));
    // Corruption: an error, or a value that still validates. Never a panic.
    let mut corrupt = bytes.to_vec();
    let index = flip_index % corrupt.len();
    corrupt[index] ^= flip_bits.max(1);
    if let Ok(value) = parse::<T>(&corrupt) {
        assert!(value.validate_body().is_ok());
        assert_ne!(value, &packet);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn offer(t in transfer(), tick: u64, s in state(), i: usize, b: u8) {
        check_packet(Offer::new(t, tick, s), i, b);
    }

    #[test]
    fn ack(t in transfer(), i: usize, b: u8) {
        check_packet(Ack::new(t), i, b);
    }

    #[test]
    fn nack(t in transfer(), r in reason(), i: usize, b: u8) {
        let nack = Nack::new(t, r);
        prop_assert_eq!(parse::<Nack>(bytemuck::bytes_of(&nack)).unwrap().reason(), Some(r));
        check_packet(nack, i, b);
    }

    #[test]
    fn commit(t in transfer(), tick: u64, s in state(), sess in session(), i: usize, b: u8) {
        check_packet(Commit::new(t, tick, s, sess), i, b);
    }

    #[test]
    fn done(t in transfer(), i: usize, b: u8) {
        check_packet(Done::new(t), i, b);
    }

    /// Arbitrary bytes never panic any parser.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Header::parse(&bytes);
        let _ = parse::<Offer>(&bytes);
        let _ = parse::<Ack>(&bytes);
        let _ = parse::<Nack>(&bytes);
        let _ = parse::<Commit>(&bytes);
        let _ = parse::<Done>(&bytes);
        let _ = parse_snapshot(&bytes);
        let _ = meridian_layouts::ghosts::parse_ghosts(&bytes);
        let _ = meridian_layouts::witness::parse_envelope(&bytes);
        let _ = meridian_layouts::witness::ConnectToken::parse(&bytes);
    }

    #[test]
    fn ghosts(
        zone: u32, tick: u64,
        raw in proptest::collection::vec((any::<u64>(), any::<u32>(), [finite(), finite(), finite()], [finite(), finite()], any::<u16>(), any::<u16>()), 0..32),
        i: usize, b: u8,
    ) {
        use meridian_layouts::ghosts::{GhostRecord, GhostsHeader, parse_ghosts, write_ghosts};
        let records: Vec<GhostRecord> = raw.iter().map(|&(id, epoch, position, velocity, kind, flags)| GhostRecord {
            id: U64Le::new(id), epoch: U32Le::new(epoch), position, velocity, kind: U16Le::new(kind), flags: U16Le::new(flags),
        }).collect();
        let head = GhostsHeader { source_zone: U32Le::new(zone), tick: U64Le::new(tick), record_count: U16Le::new(0) };
        let mut buf = [0u8; 1200];
        let len = write_ghosts(&mut buf, &head, &records).expect("32 records fit 1,200 bytes");
        let (h, r) = parse_ghosts(&buf[..len]).unwrap();
        prop_assert_eq!(h.tick.get(), tick);
        prop_assert_eq!(r, &records[..]);
        for cut in 0..len {
            prop_assert!(parse_ghosts(&buf[..cut]).is_err());
        }
        let mut corrupt = buf[..len].to_vec();
        corrupt[i % len] ^= b.max(1);
        if let Ok((h, r)) = parse_ghosts(&corrupt) {
            prop_assert_eq!(usize::from(h.record_count.get()), r.len());
        }
    }

    #[test]
    fn snapshot(
        secret: u64, tick: u32, seq: u32, zone: u32,
        raw in proptest::collection::vec(any::<(u64, i32, i32, i16, i16, i16, u16, u16)>(), 0..44),
        i: usize, b: u8,
    ) {
        let records: Vec<EntityRecord> = raw.iter().map(|&(id, x, y, z, vx, vy, kind, flags)| EntityRecord {
            id: U64Le::new(id), x: I32Le::new(x), y: I32Le::new(y), z: I16Le::new(z),
            vx: I16Le::new(vx), vy: I16Le::new(vy), kind: U16Le::new(kind), flags: U16Le::new(flags),
        }).collect();
        let head = SnapshotHeader {
            session_secret: U64Le::new(secret), tick: U32Le::new(tick), baseline_tick: U32Le::new(tick),
            input_sequence: U32Le::new(seq), zone: U32Le::new(zone), record_count: U16Le::new(0),
        };
        let mut buf = [0u8; 1200];
        let len = write_snapshot(&mut buf, &head, &records).expect("44 records fit 1,200 bytes");
        let (parsed_head, parsed) = parse_snapshot(&buf[..len]).unwrap();
        prop_assert_eq!(parsed_head.tick.get(), tick);
        prop_assert_eq!(usize::from(parsed_head.record_count.get()), records.len());
        prop_assert_eq!(parsed, &records[..]);
        for cut in 0..len {
            prop_assert!(parse_snapshot(&buf[..cut]).is_err());
        }
        let mut corrupt = buf[..len].to_vec();
        let index = i % len;
        corrupt[index] ^= b.max(1);
        if let Ok((h, r)) = parse_snapshot(&corrupt) {
            prop_assert_eq!(usize::from(h.record_count.get()), r.len());
        }
    }
}

#[test]
fn non_finite_state_is_rejected() {
    let t = Transfer {
        entity_id: U64Le::new(7),
        epoch: U32Le::new(2),
        source_zone: U32Le::new(0),
        target_zone: U32Le::new(1),
        transfer_id: U64Le::new(1),
    };
    let mut s: EntityState = bytemuck::Zeroable::zeroed();
    s.position[1] = F32Le::new(f32::NAN);
    let offer = Offer::new(t, 1, s);
    assert_eq!(
        parse::<Offer>(bytemuck::bytes_of(&offer)),
        Err(ParseError::BadField)
    );
    s.position[1] = F32Le::new(1.0);
    s.speed_mps_max = F32Le::new(-1.0);
    let offer = Offer::new(t, 1, s);
    assert_eq!(
        parse::<Offer>(bytemuck::bytes_of(&offer)),
        Err(ParseError::BadField)
    );
}

#[test]
fn epoch_zero_and_self_transfer_are_rejected() {
    let mut t = Transfer {
        entity_id: U64Le::new(7),
        epoch: U32Le::new(0),
        source_zone: U32Le::new(0),
        target_zone: U32Le::new(1),
        transfer_id: U64Le::new(1),
    };
    assert_eq!(
        parse::<Ack>(bytemuck::bytes_of(&Ack::new(t))),
        Err(ParseError::BadField)
    );
    t.epoch = U32Le::new(1);
    t.target_zone = U32Le::new(0);
    assert_eq!(
        parse::<Done>(bytemuck::bytes_of(&Done::new(t))),
        Err(ParseError::BadField)
    );
}

#[test]
fn wrong_kind_is_rejected() {
    let t = Transfer {
        entity_id: U64Le::new(7),
        epoch: U32Le::new(1),
        source_zone: U32Le::new(0),
        target_zone: U32Le::new(1),
        transfer_id: U64Le::new(1),
    };
    // ACK and DONE have the same size; only the kind byte tells them apart.
    assert_eq!(
        parse::<Done>(bytemuck::bytes_of(&Ack::new(t))),
        Err(ParseError::WrongKind)
    );
}

#[test]
fn parses_at_any_offset() {
    let t = Transfer {
        entity_id: U64Le::new(u64::MAX),
        epoch: U32Le::new(9),
        source_zone: U32Le::new(3),
        target_zone: U32Le::new(4),
        transfer_id: U64Le::new(42),
    };
    let done = Done::new(t);
    let mut buf = [0u8; 64];
    for offset in 0..8 {
        buf[offset..offset + 36].copy_from_slice(bytemuck::bytes_of(&done));
        assert_eq!(parse::<Done>(&buf[offset..offset + 36]), Ok(&done));
    }
}
