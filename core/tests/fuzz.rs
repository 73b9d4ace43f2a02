//! Fuzz targets for every decoder a hostile sender or a damaged disk reaches (bolero).
//!
//! Under `cargo test` each target runs bolero's random engine for [`INPUTS`] inputs, then
//! every input kept under `tests/__fuzz__/<target>/` (corpus and crashes, as regressions).
//! Random bytes rarely get past a datagram header, so each input is also tried *framed*:
//! behind a valid header whose kind is the input's first byte and whose length is right,
//! so the field checks behind the header see random bodies. `cargo bolero test fuzz::<target> -p meridian-core` runs the same target
//! under libFuzzer (nightly) for as long as wanted. A target fails on a panic: decoders
//! must refuse bad bytes, never crash on them.

use std::net::SocketAddr;

use meridian_core::entities::EntityInit;
use meridian_core::limits::Limits;
use meridian_core::net::Peer;
use meridian_core::persist::{
    FileKind, checkpoint_sections, read_checkpoint, read_header, scan_wal,
};
use meridian_core::session::{SessionConfig, Sessions};
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;
use meridian_layouts::client::{
    Accept, Challenge, Connect, Disconnect, Input, InputBody, RedirectBody, Refuse, Response,
    parse_delta, parse_sealed,
};
use meridian_layouts::ghosts::parse_ghosts;
use meridian_layouts::handoff::{Ack, Commit, Confirm, Done, Nack, Offer};
use meridian_layouts::witness::{ConnectToken, parse_envelope};
use meridian_layouts::{Header, parse};
use meridian_protocol::delta::{Record, apply_delta};

/// Inputs per target under `cargo test` (seconds, not minutes).
const INPUTS: usize = 20_000;

/// The input as it came, and framed behind a valid header (see the module docs).
fn variants(bytes: &[u8]) -> [Vec<u8>; 2] {
    let mut framed = Vec::with_capacity(bytes.len() + Header::SIZE);
    framed.extend_from_slice(&meridian_layouts::MAGIC);
    framed.push(meridian_layouts::VERSION);
    framed.push(bytes.first().copied().unwrap_or(0));
    let len = (bytes.len().saturating_sub(1) + Header::SIZE).min(usize::from(u16::MAX));
    framed.extend_from_slice(&(len as u16).to_le_bytes());
    framed.extend_from_slice(bytes.get(1..).unwrap_or(&[]));
    [bytes.to_vec(), framed]
}

/// Every `layouts` parser on the same bytes.
#[test]
fn every_layouts_parser() {
    bolero::check!()
        .with_iterations(INPUTS)
        .for_each(|input: &[u8]| {
            for bytes in variants(input) {
                let bytes = bytes.as_slice();
                let _ = Header::parse(bytes);
                let _ = parse::<Offer>(bytes);
                let _ = parse::<Ack>(bytes);
                let _ = parse::<Nack>(bytes);
                let _ = parse::<Commit>(bytes);
                // The wire forms a zone receives: every one that decodes, re-encoded,
                // decodes to the same message.
                if let Ok(offer) = meridian_layouts::wire::decode_offer(bytes) {
                    let mut again = [0u8; meridian_layouts::wire::WIRE_MAX];
                    let n = meridian_layouts::wire::encode_offer(&offer, &mut again);
                    assert_eq!(meridian_layouts::wire::decode_offer(&again[..n]), Ok(offer));
                }
                if let Ok((commit, events)) = meridian_layouts::wire::decode_commit(bytes) {
                    let mut again = [0u8; meridian_layouts::wire::WIRE_MAX];
                    let n = meridian_layouts::wire::encode_commit(&commit, &events, &mut again);
                    let back = meridian_layouts::wire::decode_commit(&again[..n]);
                    assert_eq!(back, Ok((commit, events)));
                }
                let _ = parse::<Done>(bytes);
                let _ = parse::<Confirm>(bytes);
                let _ = parse::<Connect>(bytes);
                let _ = parse::<Challenge>(bytes);
                let _ = parse::<Response>(bytes);
                let _ = parse::<Accept>(bytes);
                let _ = parse::<Refuse>(bytes);
                let _ = parse::<Disconnect>(bytes);
                let _ = parse_ghosts(bytes);
                let _ = parse_delta(bytes);
                let _ = parse_envelope(bytes);
                let _ = ConnectToken::parse(bytes);
                let _ = InputBody::parse(bytes);
                let _ = RedirectBody::parse(bytes);
                let _ = parse::<Input>(bytes);
                let _ = parse_sealed(bytes);
                let _ = meridian_layouts::view::parse_view(bytes);
                let _ = meridian_layouts::watch::parse_watch(bytes);
                if let Ok((head, messages, acks)) =
                    meridian_layouts::messages::parse_messages(bytes)
                {
                    let mut again = [0u8; 65_536];
                    let ends = (
                        head.source_zone.get(),
                        head.target_zone.get(),
                        head.target_incarnation.get(),
                    );
                    let n = meridian_layouts::messages::write_messages(
                        &mut again, ends, messages, acks,
                    )
                    .expect("what parsed fits again");
                    let back = meridian_layouts::messages::parse_messages(&again[..n]);
                    assert_eq!(back.map(|(_, m, a)| (m, a)), Ok((messages, acks)));
                }
                let _ = meridian_layouts::snapshot::parse_snapshot(bytes);
                let _ = meridian_layouts::control::parse_control(bytes);
                if let Some(head) = bytes.get(..meridian_layouts::standby::FrameHeader::SIZE) {
                    let frame: meridian_layouts::standby::FrameHeader =
                        bytemuck::pod_read_unaligned(head);
                    let _ = frame.check();
                }
                if let Some(vote) = bytes.get(..meridian_layouts::votes::VoteMessage::SIZE) {
                    let vote: meridian_layouts::votes::VoteMessage =
                        bytemuck::pod_read_unaligned(vote);
                    let _ = vote.check();
                }
            }
        });
}

/// The delta decoder: a DELTA's entries against a baseline made of the same bytes, and
/// the game's blocks (the avatar's fields, the events) that precede them.
#[test]
fn delta_decoder() {
    bolero::check!()
        .with_iterations(INPUTS)
        .for_each(|bytes: &[u8]| {
            let (count, rest) = match bytes.split_first_chunk::<2>() {
                Some((count, rest)) => (u16::from_le_bytes(*count), rest),
                None => (0, bytes),
            };
            let baseline: Vec<Record> = rest
                .chunks_exact(8)
                .take(64)
                .map(|c| Record {
                    id: u64::from_le_bytes(c.try_into().expect("8 bytes")),
                    ..Record::default()
                })
                .collect();
            let mut out = Vec::new();
            let _ = apply_delta(&baseline, rest, count, &mut out);
            // The game's blocks before the entries: every event a parse accepts can be
            // walked without running past the bytes.
            let _ = meridian_protocol::game::get_avatar_game(bytes);
            if let Ok((events, n)) = meridian_protocol::game::get_events(bytes) {
                assert!(n <= bytes.len());
                assert!(events.iter().all(|(_, e)| e.len() <= 24));
            }
        });
}

/// The durable files' readers: headers, a WAL scan, a checkpoint's table and sections.
/// Every byte of these files is checksummed, so random bytes never get past a header or a
/// record's CRC: each input is also tried as a WAL with a valid header whose records are
/// cut from the input — a kind byte, then that kind's payload — under a correct checksum,
/// so the record decoders see random payloads.
#[test]
fn durable_file_readers() {
    use meridian_core::persist::{FileIdentity, checksum, file_header};
    use meridian_layouts::persist::{RecordHeader, RecordKind};
    use meridian_layouts::{U16Le, U32Le};
    let identity = FileIdentity {
        world_id: 1,
        zone: ZoneID(0),
        incarnation: 1,
        tick: 0,
        generation: 0,
        run: 0,
    };
    bolero::check!()
        .with_iterations(INPUTS)
        .for_each(|bytes: &[u8]| {
            let _ = read_header(bytes, FileKind::Wal);
            let _ = read_header(bytes, FileKind::Checkpoint);
            let _ = scan_wal(bytes);
            let _ = checkpoint_sections(bytes);
            let _ = read_checkpoint(bytes);
            let mut wal = bytemuck::bytes_of(&file_header(FileKind::Wal, &identity)).to_vec();
            let mut rest = bytes;
            while let Some((&k, tail)) = rest.split_first() {
                let kind = RecordKind::ALL[usize::from(k) % RecordKind::ALL.len()];
                let size = kind.payload_size().min(tail.len());
                let mut payload = tail[..size].to_vec();
                payload.resize(kind.payload_size(), 0);
                rest = &tail[size..];
                let mut header = RecordHeader {
                    length: U32Le::new(payload.len() as u32),
                    kind: U16Le::new(kind as u16),
                    reserved: U16Le::new(0),
                    checksum: U32Le::new(0),
                };
                header.checksum = U32Le::new(checksum(&[header.covered(), &payload]));
                wal.extend_from_slice(bytemuck::bytes_of(&header));
                wal.extend_from_slice(&payload);
            }
            let _ = scan_wal(&wal);
            vote_ledger(bytes);
        });
}

/// A vote ledger file (`Ledger::decode`): the bytes as they are, and as the body of a
/// file of each version with a right header and checksum, so the entries behind the
/// checksum see random bytes. One that decodes encodes to a file that decodes the same.
fn vote_ledger(bytes: &[u8]) {
    use meridian_core::mesh::votes::Ledger;
    use meridian_layouts::U32Le;
    use meridian_layouts::votes::{LEDGER_ENTRY_V1_SIZE, LEDGER_MAGIC, LedgerEntry, LedgerHeader};
    let _ = Ledger::decode(bytes);
    for (version, entry) in [
        (1, LEDGER_ENTRY_V1_SIZE),
        (2, size_of::<LedgerEntry>()),
        (3, size_of::<LedgerEntry>()),
    ] {
        let body = &bytes[..bytes.len() / entry * entry];
        let header = LedgerHeader {
            magic: LEDGER_MAGIC,
            version: U32Le::new(version),
            count: U32Le::new((body.len() / entry) as u32),
            crc: U32Le::new(crc32c::crc32c(body)),
            reserved: U32Le::new(0),
        };
        let file = [bytemuck::bytes_of(&header), body].concat();
        let ledger = Ledger::decode(&file).expect("a well-formed file decodes");
        let again = Ledger::decode(&ledger.encode()).expect("what it encodes decodes");
        assert_eq!(again.encode(), ledger.encode());
    }
}

fn world() -> World {
    World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 200.0, 100.0),
        zones_x: 2,
        zones_y: 1,
        ..WorldConfig::default()
    })
    .expect("valid world")
}

/// A zone's ingest end to end: the bytes as a datagram from its neighbour, then a tick
/// (every packet parsed and applied), with entities near the border to hand off.
#[test]
fn zone_datagrams() {
    let world = world();
    bolero::check!()
        .with_iterations(INPUTS)
        .for_each(|input: &[u8]| {
            let mut zone = Zone::new(&world, ZoneID(1), Limits::for_entities(64), Instant::ZERO)
                .expect("zone");
            for k in 0..4 {
                let _ = zone.insert(&EntityInit {
                    id: meridian_core::entities::EntityID(k + 1),
                    epoch: 0,
                    position: [101.0 + k as f32, 50.0, 0.0],
                    velocity: [-10.0, 0.0],
                    speed_mps_max: 20.0,
                    kind: 0,
                    flags: 0,
                    payload: [0; 64],
                });
            }
            for bytes in variants(input) {
                zone.handle_datagram(Instant::ZERO, Peer::Zone(ZoneID(0)), &bytes);
            }
            zone.tick(Instant::ZERO);
            let mut buf = [0u8; 1200];
            while zone.poll_transmit(&mut buf).is_some() {}
        });
}

/// A zone's session layer: the bytes from a client address, then a tick.
#[test]
fn client_datagrams() {
    let world = world();
    bolero::check!()
        .with_iterations(INPUTS)
        .for_each(|input: &[u8]| {
            let mut zone = Zone::new(&world, ZoneID(0), Limits::for_entities(64), Instant::ZERO)
                .expect("zone");
            let mut sessions = Sessions::new(
                SessionConfig {
                    sessions_max: 4,
                    ..SessionConfig::default()
                },
                ZoneID(0),
                7,
                ed25519_dalek::SigningKey::from_bytes(&[9; 32])
                    .verifying_key()
                    .as_bytes(),
                [1; 32],
            )
            .expect("sessions");
            let from: SocketAddr = "10.0.0.9:4000".parse().expect("address");
            for bytes in variants(input) {
                sessions.handle_datagram(1_800_000_000_000, from, &bytes);
                sessions.handle_forwarded(&bytes);
                sessions.handle_zone_datagram(ZoneID(1), &bytes);
            }
            sessions.tick(1_800_000_000_000, &mut zone);
            sessions.replicate(&zone);
            let mut buf = [0u8; 1500];
            while sessions.poll_transmit(&mut buf).is_some() {}
        });
}

/// Sealed session packets, both ends: a zone with one connected client takes, from the
/// client's address and forwarded, (a) the input as a sealed packet (random header
/// fields, random ciphertext: the AEAD must refuse it) and (b) the input sealed under the
/// session's real key, so every inner-datagram decoder behind the AEAD sees random bytes.
/// The client takes the same bytes from its zone. State carries over between inputs.
#[test]
fn sealed_session_packets() {
    use ed25519_dalek::SigningKey;
    use meridian_client::Client;
    use meridian_client::token::issue_token;

    let world = world();
    let server: SocketAddr = "10.0.0.1:7000".parse().expect("address");
    let from: SocketAddr = "10.0.0.9:4000".parse().expect("address");
    let unix_ms = 1_800_000_000_000;
    let auth = SigningKey::from_bytes(&[9; 32]);
    let zone = Zone::new(&world, ZoneID(0), Limits::for_entities(64), Instant::ZERO).expect("zone");
    let sessions = Sessions::new(
        SessionConfig {
            sessions_max: 4,
            ..SessionConfig::default()
        },
        ZoneID(0),
        7,
        auth.verifying_key().as_bytes(),
        [1; 32],
    )
    .expect("sessions");
    // A client connected to the zone (again, after a fuzzed DISCONNECT ended the last).
    let connect = |zone: &mut Zone, sessions: &mut Sessions, nonce: u64| -> Client {
        let key = SigningKey::from_bytes(&[10; 32]);
        let token = issue_token(
            &auth,
            *key.verifying_key().as_bytes(),
            7,
            1,
            unix_ms + 3_600_000,
            nonce,
        );
        let mut client = Client::new(server, token, key, Instant::ZERO);
        let mut buf = [0u8; 1500];
        for _ in 0..4 {
            client.tick(Instant::ZERO);
            while let Some((_, n)) = client.poll_transmit(&mut buf) {
                sessions.handle_datagram(unix_ms, from, &buf[..n]);
            }
            sessions.tick(unix_ms, zone);
            while let Some((_, n)) = sessions.poll_transmit(&mut buf) {
                client.handle_datagram(Instant::ZERO, server, &buf[..n]);
            }
        }
        assert!(client.is_connected(), "the fixture's client connected");
        client
    };
    let (mut zone, mut sessions) = (zone, sessions);
    let client = connect(&mut zone, &mut sessions, 1);
    let nonce = std::sync::atomic::AtomicU64::new(1);
    // A Mutex (not a RefCell): state shared with a closure that may unwind.
    let state = std::sync::Mutex::new((zone, sessions, client));
    bolero::check!()
        .with_iterations(INPUTS)
        .for_each(|input: &[u8]| {
            let mut guard = state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (zone, sessions, client) = &mut *guard;
            if sessions.is_empty() {
                let n = nonce.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                *client = connect(zone, sessions, n);
            }
            // The client's own input too, so the session never idles out.
            let mut buf = [0u8; 1500];
            client.tick(Instant::ZERO);
            while let Some((_, n)) = client.poll_transmit(&mut buf) {
                sessions.handle_datagram(unix_ms, from, &buf[..n]);
            }
            let mut sealed = [0u8; 1500];
            let inner = &input[..input.len().min(1100)];
            for bytes in variants(inner) {
                let n = client.seal_inner(&bytes[..bytes.len().min(1100)], &mut sealed);
                sessions.handle_datagram(unix_ms, from, &sealed[..n]);
                sessions.handle_forwarded(&sealed[..n]);
                let mut raw = bytes.clone();
                if raw.len() > 5 {
                    raw[5] = meridian_layouts::Kind::Sealed as u8;
                }
                sessions.handle_datagram(unix_ms, from, &raw);
                client.handle_datagram(Instant::ZERO, server, &bytes);
                client.handle_datagram(Instant::ZERO, server, &raw);
            }
            sessions.tick(unix_ms, zone);
            zone.tick(Instant::ZERO);
            sessions.replicate(zone);
            while let Some((_, n)) = sessions.poll_transmit(&mut buf) {
                client.handle_datagram(Instant::ZERO, server, &buf[..n]);
            }
            while client.poll_transmit(&mut buf).is_some() {}
        });
    // The sealed copies opened and reached the inner decoders (nearly all refused there);
    // the raw ones were refused by the AEAD or before it.
    let guard = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let c = guard.1.counters();
    assert!(c.malformed > INPUTS as u64, "{c:?}");
    assert_eq!(c.timeouts, 0, "{c:?}");
}

/// A node's control port (membership gossip and votes): the bytes as they came from a
/// listed node's address, and — since only a node's own keys get past the tag and the
/// signature — the same bytes as a gossip payload and as a vote message tagged and signed
/// by that node, so
/// foca's decoder and the vote rules behind the signature see random input too (the
/// vote: the bytes cut or padded to its size, kind, op and answer folded into their
/// ranges, so nearly every one is an ask or an answer of some op). Then timers, the
/// ledger's save and everything sent.
#[test]
fn control_datagrams() {
    use meridian_core::mesh::votes::Ledger;
    use meridian_core::mesh::{Mesh, MeshConfig, control_datagram, tag_key};
    use meridian_layouts::control::ControlKind;
    use meridian_layouts::votes::VoteMessage;
    let key = |k: u8| ed25519_dalek::SigningKey::from_bytes(&[k + 1; 32]);
    let addr = |k: u16| SocketAddr::from(([127, 0, 0, 1], 7600 + k));
    let peers: Vec<(u16, SocketAddr, [u8; 32])> = (1..3)
        .map(|k| (k, addr(k), key(k as u8).verifying_key().to_bytes()))
        .collect();
    let tag = tag_key(&key(1), &key(0).verifying_key()).expect("a tag key");
    bolero::check!()
        .with_iterations(INPUTS / 4)
        .for_each(|input: &[u8]| {
            let config = MeshConfig::default();
            let mut mesh = Mesh::new(0, 1, key(0), &peers, config, Instant::ZERO, 1)
                .expect("mesh")
                .with_ledger(Ledger::new());
            mesh.join(Instant::ZERO);
            let mut vote = input.to_vec();
            vote.resize(VoteMessage::SIZE, 0);
            // kind 1–2, op 1–6, answer 0–3 (0 for an ask).
            vote[0] = 1 + vote[0] % 2;
            vote[1] = 1 + vote[1] % 6;
            vote[2] = if vote[0] == 1 { 0 } else { vote[2] % 4 };
            for bytes in [
                input.to_vec(),
                control_datagram(ControlKind::Gossip, (1, [0; 8]), input, &key(1), &tag),
                control_datagram(ControlKind::Vote, (1, [0; 8]), &vote, &key(1), &tag),
                control_datagram(ControlKind::Deaths, (1, [0; 8]), input, &key(1), &tag),
            ] {
                mesh.handle_datagram(Instant::ZERO, addr(1), &bytes);
            }
            mesh.handle_timeout(Instant::ZERO);
            mesh.save_ledger(|_| Ok(())).expect("saved");
            while mesh.poll_transmit().is_some() {}
            while mesh.poll_event().is_some() {}
        });
}
