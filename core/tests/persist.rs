//! Durable state as bytes: WAL records and checkpoints round-trip through the real
//! encoders; torn tails, corrupt records and damaged checkpoints are told apart; a zone
//! restored from a checkpoint and the log after it owns what the original owned.

use meridian_core::entities::EntityID;
use meridian_core::handoff::{HandoffConfig, LogRecord, NO_SESSION};
use meridian_core::limits::Limits;
use meridian_core::net::Peer;
use meridian_core::persist::{
    Capture, CheckpointError, FileError, FileIdentity, FileKind, WalEnd, encode_checkpoint,
    encode_record, file_header, read_checkpoint, scan_wal,
};
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;
use meridian_layouts::handoff::SessionBinding;
use meridian_layouts::persist::FileHeader;
use meridian_layouts::{U16Le, U32Le, U64Le};
use proptest::prelude::*;

use crate::support;

fn identity(zone: u32) -> FileIdentity {
    FileIdentity {
        run: 0,
        world_id: 7,
        zone: ZoneID(zone),
        incarnation: 3,
        tick: 0,
        generation: 1,
    }
}

fn two_zone_world() -> World {
    World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 400.0, 200.0),
        zones_x: 2,
        zones_y: 1,
        margin_m: 2.0,
        aura_m: 15.0,
        tick_rate_hz: 30,
        cell_size_m: 10.0,
    })
    .unwrap()
}

fn binding(session: u64) -> SessionBinding {
    SessionBinding {
        session_id: U64Le::new(session),
        client_ip: [1; 16],
        client_port: U16Le::new(4000),
        session_secret: U64Le::new(99),
        client_key: [5; 32],
        input_sequence: U32Le::new(12),
        session_key: [7; 32],
        key_salt: [0; 16],
        packet_sequence: U64Le::new(40),
    }
}

/// Two zones handing entities back and forth for `ticks`, every log record kept per zone
/// (what a driver makes durable), the zones returned with their logs.
fn run_two_zones(ticks: u32) -> (World, [Zone; 2], [Vec<LogRecord>; 2]) {
    let world = two_zone_world();
    let limits = Limits::for_entities(2000);
    let mut zones = [
        Zone::new(&world, ZoneID(0), limits, Instant::ZERO).unwrap(),
        Zone::new(&world, ZoneID(1), limits, Instant::ZERO).unwrap(),
    ];
    let mut logs: [Vec<LogRecord>; 2] = [Vec::new(), Vec::new()];
    let mut rng = support::rng(4);
    for (k, zone) in zones.iter_mut().enumerate() {
        zone.log_incarnation();
        let rect = world.zone_rect(ZoneID(k as u32));
        for _ in 0..300 {
            let e = support::entity(&mut rng, 0, rect, 0.0, 30.0);
            zone.spawn(e.position, e.velocity, 30.0, 1).expect("room");
        }
    }
    let avatar = zones[0].entities().ids()[0];
    assert!(zones[0].bind_session(avatar, binding(77)));
    let victim = zones[1].entities().ids()[5];
    assert!(zones[1].remove(victim).is_some());
    run_ticks(&world, &mut zones, &mut logs, 0, ticks);
    (world, zones, logs)
}

/// Ticks both zones from tick `from` for `ticks`, delivering every datagram at once and
/// keeping every log record (what a driver makes durable).
fn run_ticks(
    world: &World,
    zones: &mut [Zone; 2],
    logs: &mut [Vec<LogRecord>; 2],
    from: u32,
    ticks: u32,
) {
    let tick = world.tick_duration();
    let mut now = Instant::from_nanos(u64::from(from) * tick.as_nanos() as u64);
    let mut buf = [0u8; 1200];
    for _ in 0..ticks {
        for z in 0..2 {
            zones[z].tick(now);
            logs[z].extend(zones[z].drain_log());
            while zones[z].poll_event().is_some() {}
            while let Some(t) = zones[z].poll_transmit(&mut buf) {
                let Peer::Zone(to) = t.to else { continue };
                zones[to.0 as usize].handle_datagram(
                    now,
                    Peer::Zone(ZoneID(z as u32)),
                    &buf[..t.len],
                );
            }
        }
        now = now + tick;
    }
}

fn wal_bytes(records: &[LogRecord]) -> Vec<u8> {
    let mut out = bytemuck::bytes_of(&file_header(FileKind::Wal, &identity(0))).to_vec();
    for r in records {
        encode_record(r, &mut out);
    }
    out
}

/// Zone `k` restored from a checkpoint image and the log written after it, both through
/// their byte encodings.
fn restore(
    world: &World,
    k: usize,
    checkpoint: &[u8],
    log: &[LogRecord],
    state_bytes: u32,
) -> Zone {
    let view = read_checkpoint(checkpoint).unwrap();
    let scan = scan_wal(&wal_bytes(log)).unwrap();
    Zone::restore_from(
        world,
        ZoneID(k as u32),
        Limits {
            state_bytes,
            ..Limits::for_entities(2000)
        },
        HandoffConfig::default(),
        Instant::ZERO,
        4,
        Some(&view),
        &scan.records,
    )
    .unwrap()
}

/// Owned (id, epoch), sorted, to compare zones. (Positions roll back to the logged
/// state: the log records ownership, not every tick's movement.)
fn owned(zone: &Zone) -> Vec<(u64, u32)> {
    let e = zone.entities();
    let mut v: Vec<_> = (0..e.len())
        .map(|i| (e.ids()[i].0, e.epochs()[i]))
        .collect();
    v.sort_unstable();
    v
}

fn tombstones(zone: &Zone) -> Vec<(EntityID, u32, u16)> {
    let mut v: Vec<_> = zone.tombstones().collect();
    v.sort_unstable_by_key(|t| t.0);
    v
}

/// The run id rides in the header's reserved bytes, covered by its checksum.
#[test]
fn a_file_header_names_its_run() {
    use meridian_core::persist::read_header;
    let id = FileIdentity {
        run: 0x1234_5678_9abc_def0,
        ..identity(2)
    };
    let header = file_header(FileKind::Checkpoint, &id);
    let bytes = bytemuck::bytes_of(&header);
    assert_eq!(read_header(bytes, FileKind::Checkpoint), Ok(id));
    let mut flipped = bytes.to_vec();
    flipped[50] ^= 1;
    assert_eq!(
        read_header(&flipped, FileKind::Checkpoint),
        Err(FileError::BadChecksum)
    );
}

#[test]
fn every_record_kind_round_trips_through_the_wal() {
    let (_, _, logs) = run_two_zones(200);
    let all: Vec<LogRecord> = logs.concat();
    for kind in [
        "Incarnation",
        "Spawn",
        "Adopt",
        "Relinquish",
        "Done",
        "Remove",
        "SessionBind",
    ] {
        assert!(
            all.iter().any(|r| format!("{r:?}").starts_with(kind)),
            "the run produced no {kind} record"
        );
    }
    let bytes = wal_bytes(&all);
    let scan = scan_wal(&bytes).unwrap();
    assert_eq!(scan.end, WalEnd::Clean);
    assert_eq!(scan.records, all);
    assert_eq!(scan.valid_len, bytes.len() as u64);
}

#[test]
fn a_zone_restored_from_its_log_alone_owns_what_it_owned() {
    let (world, zones, logs) = run_two_zones(200);
    for k in 0..2 {
        let scan = scan_wal(&wal_bytes(&logs[k])).unwrap();
        let restored = Zone::restore(
            &world,
            ZoneID(k as u32),
            Limits::for_entities(2000),
            HandoffConfig::default(),
            Instant::ZERO,
            4,
            &scan.records,
        )
        .unwrap();
        assert_eq!(owned(&restored), owned(&zones[k]), "zone {k}");
        assert_eq!(tombstones(&restored), tombstones(&zones[k]), "zone {k}");
    }
}

#[test]
fn a_zone_restored_from_a_checkpoint_and_the_log_after_it_owns_what_it_owned() {
    let (world, mut zones, mut logs) = run_two_zones(100);
    // Checkpoint each zone at this tick boundary, then run on; the log after the
    // checkpoint is what a new WAL segment would hold.
    let mut images = Vec::new();
    for k in 0..2 {
        let mut capture = Capture::default();
        zones[k].capture(&mut capture);
        let mut bytes = Vec::new();
        encode_checkpoint(&identity(k as u32), &capture, &mut bytes);
        images.push(bytes);
        logs[k].clear();
    }
    run_ticks(&world, &mut zones, &mut logs, 100, 100);
    let mut arrived = 0;
    for k in 0..2 {
        let mut restored = restore(&world, k, &images[k], &logs[k], 0);
        assert_eq!(owned(&restored), owned(&zones[k]), "zone {k}");
        assert_eq!(tombstones(&restored), tombstones(&zones[k]), "zone {k}");
        // CONFIRMs are not logged: the restored zone may await more, never fewer.
        let awaited: std::collections::HashSet<_> = restored.unconfirmed().collect();
        assert!(
            zones[k].unconfirmed().all(|u| awaited.contains(&u)),
            "zone {k}"
        );
        arrived += restored.drain_session_moves().count();
        // New ids never repeat one the original minted.
        let next = restored
            .spawn([10.0, 10.0, 0.0], [0.0, 0.0], 1.0, 1)
            .unwrap();
        assert!(
            zones[k].known_epoch(next).is_none(),
            "zone {k} reused id {next}"
        );
    }
    assert_eq!(
        arrived, 1,
        "the bound session is handed to the session layer once"
    );
}

/// A checkpoint captured the way the driver does it — ownership at one tick, the state
/// columns a slice per tick over the next ticks while entities leave, arrive and change
/// slots — restores, with the log written since its first tick, to exactly what the zone
/// owns; entities that left mid-capture carry placeholders that the log's replay removes.
#[test]
fn a_capture_spread_over_ticks_restores_exactly_what_the_zone_owns() {
    let (world, mut zones, mut logs) = run_two_zones(60);
    let mut captures = [Capture::default(), Capture::default()];
    for k in 0..2 {
        zones[k].capture_begin(&mut captures[k]);
        logs[k].clear();
    }
    // The case a bulk copy by slot gets wrong: the last entity moves into a hole and a new
    // one takes its old slot, far from it.
    let first = zones[0].entities().ids()[0];
    zones[0].remove(first).unwrap();
    let moved = zones[0].entities().ids()[0];
    let x = zones[0].entities().xs()[0];
    let far = if x < 100.0 {
        [190.0, 100.0, 0.0]
    } else {
        [10.0, 100.0, 0.0]
    };
    zones[0].spawn(far, [0.0, 0.0], 1.0, 1).unwrap();
    logs[0].extend(zones[0].drain_log());
    assert_eq!(zones[0].entities().slot_of(moved), Some(0));
    let mut tick = 60;
    let mut steps = 0;
    let mut departed_since_begin = 0;
    loop {
        run_ticks(&world, &mut zones, &mut logs, tick, 1);
        tick += 1;
        steps += 1;
        let mut done = true;
        for k in 0..2 {
            done &= zones[k].capture_continue(&mut captures[k], 10);
        }
        if done {
            break;
        }
    }
    assert!(steps > 5, "the capture did not spread over ticks");
    run_ticks(&world, &mut zones, &mut logs, tick, 20);
    for k in 0..2 {
        let owned_now: std::collections::HashSet<u64> =
            zones[k].entities().ids().iter().map(|id| id.0).collect();
        departed_since_begin += captures[k]
            .ids
            .iter()
            .filter(|id| !owned_now.contains(id))
            .count();
        let mut bytes = Vec::new();
        encode_checkpoint(&identity(k as u32), &captures[k], &mut bytes);
        let restored = restore(&world, k, &bytes, &logs[k], 0);
        assert_eq!(owned(&restored), owned(&zones[k]), "zone {k}");
        assert_eq!(tombstones(&restored), tombstones(&zones[k]), "zone {k}");
        // Each entity's restored state is its own, a few ticks old: within top speed ×
        // the ticks since the capture began of where it is now.
        let reach_m = 30.0 * (tick - 60 + 20) as f32 / 30.0 + 0.01;
        let (now, then) = (zones[k].entities(), restored.entities());
        for (slot, id) in then.ids().iter().enumerate() {
            let s = now.slot_of(*id).unwrap() as usize;
            let (dx, dy) = (then.xs()[slot] - now.xs()[s], then.ys()[slot] - now.ys()[s]);
            assert!(
                (dx * dx + dy * dy).sqrt() <= reach_m,
                "zone {k}: entity {id} restored {dx:.1}, {dy:.1} m from where it is"
            );
        }
    }
    assert!(
        departed_since_begin > 0,
        "no entity left after the capture began"
    );
}

#[test]
fn a_torn_tail_is_told_apart_from_a_corrupt_record() {
    let (_, _, logs) = run_two_zones(50);
    let bytes = wal_bytes(&logs[0]);
    // Every cut: clean at a record boundary, torn inside a record; never corrupt.
    let mut boundaries = 0;
    for cut in FileHeader::SIZE..bytes.len() {
        let scan = scan_wal(&bytes[..cut]).unwrap();
        match scan.end {
            WalEnd::Clean => boundaries += 1,
            WalEnd::Torn { offset } => assert!(offset <= cut as u64),
            WalEnd::Corrupt { .. } => panic!("a cut at {cut} read as corruption"),
        }
        assert!(scan.records.len() <= logs[0].len());
    }
    assert_eq!(boundaries, logs[0].len());
    // A flipped bit inside a whole record: corrupt at that record (or a torn tail when the
    // flip lands in the length of the last one), never a different record.
    let mut flipped = bytes.clone();
    let at = FileHeader::SIZE + 20;
    flipped[at] ^= 0x10;
    let scan = scan_wal(&flipped).unwrap();
    assert_eq!(
        scan.end,
        WalEnd::Corrupt {
            offset: FileHeader::SIZE as u64
        }
    );
    assert!(scan.records.is_empty());
    // A damaged header is not a WAL at all.
    let mut header = bytes.clone();
    header[30] ^= 1;
    assert_eq!(scan_wal(&header).unwrap_err(), FileError::BadChecksum);
    assert_eq!(scan_wal(&[]).unwrap_err(), FileError::Truncated);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any damage to a WAL is an error, a shorter good prefix, or a torn/corrupt end —
    /// never a panic and never a record that was not written.
    #[test]
    fn damaged_wals_never_invent_records(flips in prop::collection::vec((any::<usize>(), 1u8..), 1..4), cut in any::<usize>()) {
        let records: Vec<LogRecord> = (0..20)
            .map(|i| LogRecord::Done { id: EntityID(i), transfer_id: i * 3 })
            .chain([LogRecord::SessionBind { id: EntityID(5), binding: NO_SESSION }])
            .collect();
        let mut bytes = wal_bytes(&records);
        for (at, mask) in flips {
            let n = bytes.len();
            bytes[at % n] ^= mask;
        }
        let cut = cut % (bytes.len() + 1);
        if let Ok(scan) = scan_wal(&bytes[..cut]) {
            prop_assert!(scan.records.len() <= records.len());
            prop_assert_eq!(&scan.records[..], &records[..scan.records.len()]);
        }
    }
}

#[test]
fn every_damaged_checksummed_byte_of_a_checkpoint_is_refused() {
    let (_, zones, _) = run_two_zones(60);
    let mut capture = Capture::default();
    zones[0].capture(&mut capture);
    assert!(!capture.tombstones.is_empty() || !capture.epoch_memory.is_empty());
    let mut bytes = Vec::new();
    encode_checkpoint(&identity(0), &capture, &mut bytes);
    let view = read_checkpoint(&bytes).unwrap();
    assert_eq!(view.entity_count(), zones[0].entities().len());
    assert_eq!(view.sessions.len(), 1);
    // Flip one bit of each byte in turn (a stride keeps the test fast): the checkpoint is
    // refused, unless the byte was alignment padding, which nothing reads.
    let mut refused = 0;
    for at in (0..bytes.len()).step_by(7) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x04;
        match read_checkpoint(&damaged) {
            Err(_) => refused += 1,
            Ok(v) => {
                assert_eq!(v.entity_count(), view.entity_count());
                assert!(bytes[at] == 0, "byte {at} changed and nobody noticed");
            }
        }
    }
    assert!(refused > bytes.len() / 7 * 9 / 10, "only {refused} refused");
    for cut in [0, 10, 64, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(read_checkpoint(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let wal = wal_bytes(&[]);
    assert!(matches!(
        read_checkpoint(&wal),
        Err(CheckpointError::File(FileError::WrongKind(_)))
    ));
}

/// A game whose record is 12 bytes.
struct Twelve;

impl meridian_core::game::Game for Twelve {
    fn state_layout(&self) -> meridian_core::game::state::StateLayout {
        meridian_core::game::state::StateLayout::of::<[u32; 3]>()
    }

    fn systems(&mut self, world: &mut meridian_core::game::GameWorld<'_>) {
        let tick = world.tick() as u32;
        let ids = world.owned().ids().to_vec();
        for (slot, id) in world.states_mut().zip(ids) {
            meridian_core::game::state::write(slot, &[id.0 as u32, tick, 0x0707_0707u32]);
        }
    }
}

/// A checkpoint keeps each entity's game record — the layout's 12 bytes — and a restore
/// puts them back (zero-padded in the 64-byte wire slot); a zone without a game writes no
/// state at all.
#[test]
fn a_checkpoint_keeps_the_games_records_and_only_them() {
    let (world, mut zones, mut logs) = run_two_zones(10);
    zones[0].set_game(Box::new(Twelve));
    run_ticks(&world, &mut zones, &mut logs, 10, 5);
    for (k, zone) in zones.iter().enumerate() {
        let mut capture = Capture::default();
        zone.capture(&mut capture);
        let mut bytes = Vec::new();
        encode_checkpoint(&identity(k as u32), &capture, &mut bytes);
        let view = read_checkpoint(&bytes).unwrap();
        let n = zone.entities().len();
        let len = if k == 0 { 12 } else { 0 };
        assert_eq!(
            (view.state_len(), view.payloads.len()),
            (len, n * len),
            "zone {k}"
        );
        // Restored with the game's record length, as a node restores.
        let mut restored = restore(&world, k, &bytes, &[], len as u32);
        let (was, now) = (zone.entities(), restored.entities());
        assert_eq!(now.len(), n);
        for (slot, id) in was.ids().iter().enumerate() {
            let back = now.slot_of(*id).unwrap();
            assert_eq!(
                now.state(back),
                was.state(slot as u32),
                "zone {k} entity {id}"
            );
            assert!(now.get(back).payload[len..].iter().all(|&b| b == 0));
        }
        if k == 0 {
            // The game installed after the restore keeps the records.
            let before = restored.entities().states().to_vec();
            restored.set_game(Box::new(Twelve));
            assert_eq!(restored.entities().states(), &before[..]);
        }
    }
}

/// A client's avatar crosses into the next zone with its session; that zone crashes before
/// any checkpoint: restored from its log alone, it still holds the session, and hands it to
/// its session layer (without the binding in the log, the avatar came back without its
/// client — found by `meridian demo --mesh`: a bot that had just crossed into the killed
/// node's zone was never told of the takeover and timed out).
#[test]
fn a_session_that_arrived_with_its_avatar_survives_a_restore_from_the_log() {
    let world = two_zone_world();
    let limits = Limits::for_entities(100);
    let mut zones = [
        Zone::new(&world, ZoneID(0), limits, Instant::ZERO).unwrap(),
        Zone::new(&world, ZoneID(1), limits, Instant::ZERO).unwrap(),
    ];
    let mut logs: [Vec<LogRecord>; 2] = [Vec::new(), Vec::new()];
    for zone in &mut zones {
        zone.log_incarnation();
    }
    let avatar = zones[0]
        .spawn([190.0, 100.0, 0.0], [10.0, 0.0], 30.0, 1)
        .unwrap();
    assert!(zones[0].bind_session(avatar, binding(77)));
    run_ticks(&world, &mut zones, &mut logs, 0, 150);
    assert!(zones[1].entities().slot_of(avatar).is_some(), "it crossed");
    while zones[1].drain_session_moves().next().is_some() {}
    let scan = scan_wal(&wal_bytes(&logs[1])).unwrap();
    let mut restored = Zone::restore(
        &world,
        ZoneID(1),
        limits,
        HandoffConfig::default(),
        Instant::ZERO,
        4,
        &scan.records,
    )
    .unwrap();
    let arrived: Vec<_> = restored
        .drain_session_moves()
        .filter_map(|m| match m {
            meridian_core::zone::SessionMove::Arrived { id, binding } => {
                Some((id, binding.session_id.get()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(arrived, [(avatar, 77)]);
}

/// A zone holding more sessions than the session moves a tick queues (1,024) is restored:
/// every session reaches the session layer. The restore queued them within that bound, so
/// past the 1,024th the clients of a taken-over zone were never told, and timed out.
#[test]
fn a_zone_restored_with_thousands_of_sessions_hands_over_every_one() {
    let world = two_zone_world();
    let limits = Limits::for_entities(2000);
    let mut zone = Zone::new(&world, ZoneID(0), limits, Instant::ZERO).unwrap();
    zone.log_incarnation();
    for i in 0..1500u64 {
        let at = [
            10.0 + (i % 60) as f32 * 2.0,
            10.0 + (i / 60) as f32 * 2.0,
            0.0,
        ];
        let avatar = zone.spawn(at, [0.0, 0.0], 1.0, 1).unwrap();
        assert!(zone.bind_session(avatar, binding(1000 + i)));
    }
    let mut capture = Capture::default();
    zone.capture(&mut capture);
    let mut image = Vec::new();
    encode_checkpoint(&identity(0), &capture, &mut image);
    let mut restored = restore(&world, 0, &image, &[], 0);
    assert_eq!(restored.drain_session_moves().count(), 1500);
}

/// What a zone heard of its peers' runs outlives a restart, from the log alone and from a
/// checkpoint: the restored zone fences off a datagram of a run older than the newest it
/// had heard of, and takes one of that run. (Simulator seed 1344: a restarted zone took
/// an old run's resent COMMIT and the entity had two owners.) A version 4 checkpoint,
/// written before peers' runs were kept, reads as none heard of.
#[test]
fn a_restored_zone_fences_the_peer_runs_it_had_heard_were_superseded() {
    let world = two_zone_world();
    let limits = Limits::for_entities(2000);
    let fenced_after = |zone: &mut Zone| {
        let old = zone.handle_zone_datagram(Instant::ZERO, ZoneID(1), 2, &[]);
        let new = zone.handle_zone_datagram(Instant::ZERO, ZoneID(1), 3, &[]);
        (!old, new)
    };
    let mut zone = Zone::new(&world, ZoneID(0), limits, Instant::ZERO).unwrap();
    zone.log_incarnation();
    assert!(zone.handle_zone_datagram(Instant::ZERO, ZoneID(1), 2, &[]));
    zone.fence(ZoneID(1), 3);
    let log: Vec<LogRecord> = zone.drain_log().collect();
    assert!(log.contains(&LogRecord::PeerRun {
        zone: ZoneID(1),
        incarnation: 3
    }));
    let scan = scan_wal(&wal_bytes(&log)).unwrap();
    let config = HandoffConfig::default();
    let mut restored = Zone::restore(
        &world,
        ZoneID(0),
        limits,
        config,
        Instant::ZERO,
        5,
        &scan.records,
    )
    .unwrap();
    assert_eq!(fenced_after(&mut restored), (true, true), "from the log");

    let mut capture = Capture::default();
    zone.capture(&mut capture);
    let mut image = Vec::new();
    encode_checkpoint(&identity(0), &capture, &mut image);
    let mut restored = restore(&world, 0, &image, &[], 0);
    assert_eq!(
        fenced_after(&mut restored),
        (true, true),
        "from a checkpoint"
    );

    // The same checkpoint as version 4 wrote it: no peer-run section (the last), a header
    // saying 4. It restores, fencing nothing.
    let old = version_4(&image);
    let mut restored = restore(&world, 0, &old, &[], 0);
    assert_eq!(fenced_after(&mut restored), (false, true), "version 4");
}

/// `image` (this build's checkpoint) as a version 4 build wrote it: the header's version
/// 4, the last section (peers' runs) left out of the table.
fn version_4(image: &[u8]) -> Vec<u8> {
    use meridian_core::persist::checksum;
    use meridian_layouts::persist::{SectionEntry, SectionTableHead};
    let mut old = image.to_vec();
    let mut header: FileHeader = bytemuck::pod_read_unaligned(&old[..FileHeader::SIZE]);
    header.format_version = U32Le::new(4);
    header.checksum = U32Le::new(checksum(&[header.covered()]));
    old[..FileHeader::SIZE].copy_from_slice(bytemuck::bytes_of(&header));
    let at = FileHeader::SIZE;
    let head_size = size_of::<SectionTableHead>();
    let mut head: SectionTableHead = bytemuck::pod_read_unaligned(&old[at..at + head_size]);
    let count = head.count.get() as usize - 1;
    let entries = &old[at + head_size..at + head_size + count * size_of::<SectionEntry>()];
    head.count = U32Le::new(count as u32);
    head.checksum = U32Le::new(checksum(&[entries]));
    old[at..at + head_size].copy_from_slice(bytemuck::bytes_of(&head));
    old
}
