//! Property tests for every layout: encode → parse round-trips; every truncation and any
//! corruption of a valid packet yields an error or a valid value, never a panic.

use meridian_layouts::handoff::{
    Ack, Commit, Done, EntityState, Nack, NackReason, Offer, STATE_SIZE, SessionBinding, Transfer,
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
        any::<[u8; STATE_SIZE]>(),
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
        (any::<[u8; 32]>(), any::<[u8; 16]>(), any::<u64>()),
    )
        .prop_map(
            |(id, ip, port, secret, key, seq, (master, salt, packets))| SessionBinding {
                session_id: U64Le::new(id),
                client_ip: ip,
                client_port: U16Le::new(port),
                session_secret: U64Le::new(secret),
                client_key: key,
                input_sequence: U32Le::new(seq),
                session_key: master,
                key_salt: salt,
                packet_sequence: U64Le::new(packets),
            },
        )
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
        i: usize, b: u8, state_len in 0..=STATE_SIZE, seed: u8,
    ) {
        use meridian_layouts::ghosts::{GhostRecord, GhostsHeader, parse_ghosts, records_per_datagram, write_ghosts};
        let fit = records_per_datagram(1200, state_len);
        let records: Vec<GhostRecord> = raw.iter().take(fit).map(|&(id, epoch, position, velocity, kind, flags)| GhostRecord {
            id: U64Le::new(id), epoch: U32Le::new(epoch), position, velocity, kind: U16Le::new(kind), flags: U16Le::new(flags),
        }).collect();
        let states: Vec<u8> = (0..records.len() * state_len).map(|k| (k as u8).wrapping_mul(31) ^ seed).collect();
        let head = GhostsHeader {
            source_zone: U32Le::new(zone), tick: U64Le::new(tick), record_count: U16Le::new(0),
            state_len: U16Le::new(state_len as u16), answers_tick: U64Le::new(tick ^ 0x5a), answers_run: U32Le::new(zone ^ 3),
        };
        let mut buf = [0u8; 1200];
        prop_assert!(write_ghosts(&mut buf, &head, &records, &states[..states.len().saturating_sub(1)]).is_none() || states.is_empty());
        let len = write_ghosts(&mut buf, &head, &records, &states).expect("sized to fit 1,200 bytes");
        let (h, r, st) = parse_ghosts(&buf[..len]).unwrap();
        prop_assert_eq!(h.tick.get(), tick);
        prop_assert_eq!((h.answers_tick.get(), h.answers_run.get()), (tick ^ 0x5a, zone ^ 3));
        prop_assert_eq!(r, &records[..]);
        prop_assert_eq!(st, &states[..]);
        for cut in 0..len {
            prop_assert!(parse_ghosts(&buf[..cut]).is_err());
        }
        let mut corrupt = buf[..len].to_vec();
        corrupt[i % len] ^= b.max(1);
        if let Ok((h, r, st)) = parse_ghosts(&corrupt) {
            prop_assert_eq!(usize::from(h.record_count.get()), r.len());
            prop_assert_eq!(st.len(), r.len() * usize::from(h.state_len.get()));
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

// ---- the client protocol ---------------------------------------------------------------

mod client {
    use meridian_layouts::client::{
        Accept, CLIENT_DATAGRAM_MAX, CONNECT_SIZE, COOKIE_SIZE, Challenge, Connect,
        DELTA_ENTRIES_OFFSET, DeltaHeader, Disconnect, INPUTS_PER_PACKET, InputBody, InputEntry,
        RESPONSE_DOMAIN, RedirectBody, Refuse, RefuseReason, Response, parse_delta,
        write_delta_header,
    };
    use meridian_layouts::snapshot::EntityRecord;
    use meridian_layouts::witness::{ConnectToken, SIGNATURE_SIZE, domain};
    use meridian_layouts::{
        F32Le, Header, I16Le, I32Le, ParseError, U16Le, U32Le, U64Le, header_for,
    };
    use proptest::prelude::*;

    use super::check_packet;

    fn token() -> impl Strategy<Value = ConnectToken> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
        )
            .prop_map(|(world, client, key, expires, nonce, s0, s1)| {
                let mut signature = [0u8; SIGNATURE_SIZE];
                signature[..32].copy_from_slice(&s0);
                signature[32..].copy_from_slice(&s1);
                ConnectToken {
                    domain: domain::TOKEN,
                    world_id: U64Le::new(world),
                    client_id: U64Le::new(client),
                    client_key: key,
                    expires_unix_ms: U64Le::new(expires),
                    nonce: U64Le::new(nonce),
                    signature,
                }
            })
    }

    fn record() -> impl Strategy<Value = EntityRecord> {
        any::<(u64, i32, i32, i16, i16, i16, u16, u16)>().prop_map(
            |(id, x, y, z, vx, vy, kind, flags)| EntityRecord {
                id: U64Le::new(id),
                x: I32Le::new(x),
                y: I32Le::new(y),
                z: I16Le::new(z),
                vx: I16Le::new(vx),
                vy: I16Le::new(vy),
                kind: U16Le::new(kind),
                flags: U16Le::new(flags),
            },
        )
    }

    /// A valid input body: 1–4 entries with consecutive sequences, newest first.
    fn input_body() -> impl Strategy<Value = InputBody> {
        (
            any::<u32>(),
            1..=INPUTS_PER_PACKET,
            any::<u32>(),
            any::<[(i8, i8, u16); INPUTS_PER_PACKET]>(),
        )
            .prop_map(|(ack, count, newest, intents)| {
                let mut inputs = [InputEntry::default(); INPUTS_PER_PACKET];
                for (i, (entry, (x, y, b))) in inputs.iter_mut().zip(intents).enumerate() {
                    if i < count {
                        *entry = InputEntry {
                            sequence: U32Le::new(newest.wrapping_sub(i as u32)),
                            move_x: x,
                            move_y: y,
                            buttons: U16Le::new(b),
                            aim: U16Le::new(b.rotate_left(3)),
                        };
                    }
                }
                InputBody {
                    ack_tick: U32Le::new(ack),
                    ack_zone: U32Le::new(ack ^ 5),
                    count: count as u8,
                    view_back: 0,
                    event_ack: U32Le::new(ack.rotate_left(7)),
                    inputs,
                }
            })
    }

    fn valid_input(body: &InputBody) -> bool {
        let count = usize::from(body.count);
        (1..=INPUTS_PER_PACKET).contains(&count)
            && body.inputs[..count].iter().enumerate().all(|(i, e)| {
                e.sequence.get() == body.inputs[0].sequence.get().wrapping_sub(i as u32)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn connect(t in token(), i: usize, b: u8) {
            check_packet(Connect {
                header: header_for::<Connect>(),
                token: t,
                padding: [0; CONNECT_SIZE - Header::SIZE - ConnectToken::SIZE],
            }, i, b);
        }

        #[test]
        fn challenge(cookie: [u8; COOKIE_SIZE], window: u32, e: [u8; 32], n: [u8; 32], i: usize, b: u8) {
            check_packet(Challenge {
                header: header_for::<Challenge>(),
                cookie,
                window: U32Le::new(window),
                server_ephemeral: e,
                node_key: n,
            }, i, b);
        }

        #[test]
        fn response(t in token(), cookie: [u8; COOKIE_SIZE], window: u32, s0: [u8; 32], s1: [u8; 32], keys: ([u8; 32], [u8; 32], [u8; 32]), i: usize, b: u8) {
            let mut signature = [0u8; SIGNATURE_SIZE];
            signature[..32].copy_from_slice(&s0);
            signature[32..].copy_from_slice(&s1);
            let r = Response {
                header: header_for::<Response>(),
                domain: RESPONSE_DOMAIN,
                token: t,
                cookie,
                window: U32Le::new(window),
                client_ephemeral: keys.0,
                server_ephemeral: keys.1,
                node_key: keys.2,
                signature,
            };
            check_packet(r, i, b);
        }

        #[test]
        fn accept(session: u32, secret: u64, entity: u64, zone: u32, tick: u32, hz: u16, speed: u16, auth in 0u8..=1, i: usize, b: u8) {
            check_packet(Accept {
                header: header_for::<Accept>(),
                session: U32Le::new(session),
                session_secret: U64Le::new(secret),
                entity: U64Le::new(entity),
                zone: U32Le::new(zone),
                tick: U32Le::new(tick),
                tick_hz: U16Le::new(hz),
                speed_cmps_max: U16Le::new(speed),
                client_auth: auth,
                padding: [0; 3],
                bounds: [F32Le::new(-10.0), F32Le::new(0.0), F32Le::new(f32::from(hz) + 1.0), F32Le::new(1e6)],
            }, i, b);
        }

        #[test]
        fn refuse(reason in 1u8..=4, i: usize, b: u8) {
            prop_assert!(RefuseReason::from_u8(reason).is_some());
            check_packet(Refuse { header: header_for::<Refuse>(), reason, padding: [0; 3] }, i, b);
        }

        #[test]
        fn disconnect(session: u32, secret: u64, i: usize, b: u8) {
            check_packet(Disconnect {
                header: header_for::<Disconnect>(),
                session: U32Le::new(session),
                session_secret: U64Le::new(secret),
            }, i, b);
        }

        /// An input body round-trips; every truncation and any extension is an error; a
        /// corrupted one is an error or still a valid body (count 1–4, consecutive
        /// sequences).
        #[test]
        fn input_body_parse(body in input_body(), i: usize, b: u8) {
            let bytes = bytemuck::bytes_of(&body);
            prop_assert_eq!(InputBody::parse(bytes), Ok(&body));
            for cut in 0..bytes.len() {
                prop_assert!(InputBody::parse(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            prop_assert!(InputBody::parse(&longer).is_err());
            let mut corrupt = bytes.to_vec();
            corrupt[i % bytes.len()] ^= b.max(1);
            if let Ok(parsed) = InputBody::parse(&corrupt) {
                prop_assert!(valid_input(parsed));
            }
        }

        /// A redirect body round-trips; every other length is an error; a corrupted one
        /// is an error or names a known address family.
        #[test]
        fn redirect_body_parse(session: u32, secret: u64, zone: u32, addr: [u8; 16], port: u16, v6: bool, tick: u32, i: usize, b: u8) {
            let body = RedirectBody {
                session: U32Le::new(session),
                session_secret: U64Le::new(secret),
                zone: U32Le::new(zone),
                addr,
                port: U16Le::new(port),
                family: if v6 { 6 } else { 4 },
                padding: 0,
                tick: U32Le::new(tick),
            };
            let bytes = bytemuck::bytes_of(&body);
            prop_assert_eq!(RedirectBody::parse(bytes), Ok(&body));
            for cut in 0..bytes.len() {
                prop_assert!(RedirectBody::parse(&bytes[..cut]).is_err());
            }
            let mut corrupt = bytes.to_vec();
            corrupt[i % bytes.len()] ^= b.max(1);
            if let Ok(parsed) = RedirectBody::parse(&corrupt) {
                prop_assert!(parsed.family == 4 || parsed.family == 6);
            }
        }

        /// A delta's fixed part round-trips with its entry bytes; a datagram cut short or
        /// longer than its header says is an error; a corrupted one never panics and, if
        /// it parses, its entries are the datagram's tail.
        #[test]
        fn delta_header(
            secret: u64, tick: u32, baseline: u32, seq: u32, zone: u32, avatar in record(), count: u16,
            entries in proptest::collection::vec(any::<u8>(), 0..(CLIENT_DATAGRAM_MAX - DELTA_ENTRIES_OFFSET)),
            i: usize, b: u8,
        ) {
            let head = DeltaHeader {
                session_secret: U64Le::new(secret),
                tick: U32Le::new(tick),
                baseline_tick: U32Le::new(baseline),
                baseline_zone: U32Le::new(zone ^ 1),
                input_sequence: U32Le::new(seq),
                zone: U32Le::new(zone),
                avatar,
                entry_count: U16Le::new(count),
                input_waiting: (seq % 7) as u8,
                flags: (tick % 2) as u8,
            };
            let total = DELTA_ENTRIES_OFFSET + entries.len();
            let mut buf = vec![0u8; total];
            buf[DELTA_ENTRIES_OFFSET..].copy_from_slice(&entries);
            write_delta_header(&mut buf, &head, total);
            let (parsed, tail) = parse_delta(&buf).unwrap();
            prop_assert_eq!(parsed, &head);
            prop_assert_eq!(tail, &entries[..]);
            for cut in 0..total {
                prop_assert!(parse_delta(&buf[..cut]).is_err());
            }
            let mut longer = buf.clone();
            longer.push(0);
            prop_assert!(parse_delta(&longer).is_err());
            let mut corrupt = buf.clone();
            corrupt[i % total] ^= b.max(1);
            if let Ok((_, tail)) = parse_delta(&corrupt) {
                prop_assert_eq!(tail.len(), total - DELTA_ENTRIES_OFFSET);
            }
        }

        /// Arbitrary bytes never panic a client-protocol parser.
        #[test]
        fn arbitrary_bytes_never_panic_client_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
            let _ = meridian_layouts::parse::<Connect>(&bytes);
            let _ = meridian_layouts::parse::<Challenge>(&bytes);
            let _ = meridian_layouts::parse::<Response>(&bytes);
            let _ = meridian_layouts::parse::<Accept>(&bytes);
            let _ = meridian_layouts::parse::<Refuse>(&bytes);
            let _ = meridian_layouts::parse::<Disconnect>(&bytes);
            let _ = InputBody::parse(&bytes);
            let _ = RedirectBody::parse(&bytes);
            let _ = parse_delta(&bytes);
        }
    }

    #[test]
    fn a_refuse_with_an_unknown_reason_is_rejected() {
        let mut r = Refuse {
            header: header_for::<Refuse>(),
            reason: 1,
            padding: [0; 3],
        };
        for reason in [0u8, 5, 255] {
            r.reason = reason;
            assert_eq!(
                meridian_layouts::parse::<Refuse>(bytemuck::bytes_of(&r)),
                Err(ParseError::BadField)
            );
        }
    }
}
