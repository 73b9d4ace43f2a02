//! The stream end to end over loopback: a primary's writer threads feeding the stream, a
//! standby mirroring, and both directories recovered and compared.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant as WallInstant};

use ed25519_dalek::SigningKey;
use meridian_core::limits::Limits;
use meridian_core::persist::{Capture, encode_record};
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;

use super::{Kept, StandbyServer, StandbyTarget, Stream, serve};
use crate::store::{DataDir, Writer, ZoneStore};

mod priority;
mod resync;
mod stop;

const WORLD_ID: u64 = 7;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "meridian-standby-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn world() -> World {
    World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 256.0, 128.0),
        zones_x: 2,
        zones_y: 1,
        margin_m: 4.0,
        aura_m: 16.0,
        tick_rate_hz: 30,
        cell_size_m: 16.0,
    })
    .expect("a valid world")
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A standby of zone 0 at `addr` (or any port), mirroring into `dir`.
fn standby(addr: SocketAddr, dir: &DataDir) -> (StandbyServer, SocketAddr) {
    let listener = TcpListener::bind(addr).expect("bind the standby listener");
    let addr = listener.local_addr().expect("bound");
    let kept = vec![Kept {
        zone: 0,
        store: dir.zone(WORLD_ID, ZoneID(0)),
        primary: key(1).verifying_key(),
    }];
    (serve(listener, key(2), kept).expect("serve"), addr)
}

/// A zone that spawns two entities a tick (each spawn is a log record), its writer
/// threads, and its stream.
struct Primary {
    zone: Zone,
    store: ZoneStore,
    writer: Writer,
    stream: Stream,
    seq: u64,
    generation: u64,
    now: Instant,
}

impl Primary {
    fn start(dir: &DataDir, standby: SocketAddr) -> Primary {
        Primary::start_as(dir, standby, 1, 0)
    }

    /// A primary running the zone as `incarnation`, its run `run` (0: not said).
    fn start_as(dir: &DataDir, standby: SocketAddr, incarnation: u32, run: u64) -> Primary {
        let world = world();
        let mut zone = Zone::new(
            &world,
            ZoneID(0),
            Limits::for_entities(100_000),
            Instant::ZERO,
        )
        .expect("a zone");
        zone.log_incarnation();
        let mut capture = Capture::default();
        zone.capture(&mut capture);
        for _ in zone.drain_log() {}
        let store = dir.zone(WORLD_ID, ZoneID(0)).with_run(run);
        let wal = store.begin(0, incarnation, &capture).expect("begin");
        let target = StandbyTarget {
            addr: standby,
            key: key(2).verifying_key(),
        };
        let (stream, feed) = Stream::start(store.clone(), 0, incarnation, key(1), target);
        let writer = Writer::start(store.clone(), wal, 0, Some(feed));
        Primary {
            zone,
            store,
            writer,
            stream,
            seq: 0,
            generation: 0,
            now: Instant::ZERO,
        }
    }

    /// `ticks` ticks; a checkpoint every 40th.
    fn run(&mut self, ticks: u32) {
        for t in 0..ticks {
            self.now = self.now + self.zone.world().tick_duration();
            for k in 0..2 {
                let x = 10.0 + f32::from((t * 2 + k) as u16 % 100);
                self.zone
                    .spawn([x, 60.0, 0.0], [1.0, 0.5], 3.0, 0)
                    .expect("room to spawn");
            }
            self.zone.tick(self.now);
            let mut bytes = self.writer.buffer();
            for r in self.zone.drain_log() {
                encode_record(&r, &mut bytes);
            }
            self.seq += 1;
            self.writer.append(self.seq, bytes).expect("append");
            if self.zone.tick_count().is_multiple_of(40) {
                self.generation += 1;
                let tick = self.zone.tick_count();
                self.writer
                    .switch(self.generation, 1, tick)
                    .expect("switch");
                let mut capture = Box::new(Capture::default());
                self.zone.capture(&mut capture);
                self.writer
                    .checkpoint(self.generation, 1, capture)
                    .expect("checkpoint");
            }
        }
    }

    /// Waits until the standby acknowledged every append so far.
    fn wait_acked(&self) {
        let started = WallInstant::now();
        while self.stream.acked() < self.seq {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the standby acknowledged {} of {} appends",
                self.stream.acked(),
                self.seq
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A primary streaming to a standby, each in a scratch directory of its own (named from
/// `names`), past its first checkpoint (tick 40) and with every append acknowledged:
/// the directories, the standby's, its server (kept alive) and the primary.
fn streaming(names: (&str, &str)) -> (PathBuf, PathBuf, DataDir, StandbyServer, Primary) {
    let (primary_dir, standby_dir) = (scratch(names.0), scratch(names.1));
    let pd = DataDir::open(&primary_dir).unwrap();
    let sd = DataDir::open(&standby_dir).unwrap();
    let (server, addr) = standby("127.0.0.1:0".parse().unwrap(), &sd);
    let mut primary = Primary::start(&pd, addr);
    primary.run(60);
    primary.wait_acked();
    (primary_dir, standby_dir, sd, server, primary)
}

/// What a restart from `store` would begin with, for comparison.
fn recovered(store: &ZoneStore) -> (Vec<String>, Option<Vec<u8>>, u32) {
    let r = store.recover().expect("recover");
    let records = r.records.iter().map(|x| format!("{x:?}")).collect();
    (
        records,
        r.checkpoint.as_deref().map(<[u8]>::to_vec),
        r.incarnation,
    )
}

/// The files differ only in what the standby has not acknowledged; once everything is,
/// a restart from the standby's copy is the restart the primary's own disk gives.
fn assert_same(primary: &Primary, mirror: &DataDir) {
    primary.wait_acked();
    let list = |d: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .expect("list")
            .map(|e| {
                let e = e.expect("entry");
                format!(
                    "{} {}",
                    e.file_name().to_string_lossy(),
                    e.metadata().map_or(0, |m| m.len())
                )
            })
            .collect();
        v.sort();
        v
    };
    // The checkpoint threads (the primary's, the standby's worker) may still be writing
    // the newest one: wait until both directories list the same files.
    let started = WallInstant::now();
    while list(primary.store.dir()) != list(mirror.path())
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let a = recovered(&primary.store);
    let b = recovered(&mirror.zone(WORLD_ID, ZoneID(0)));
    eprintln!(
        "primary {:?}\nmirror {:?}",
        list(primary.store.dir()),
        list(mirror.path())
    );
    assert!(!a.0.is_empty() || a.1.is_some(), "nothing was written");
    assert_eq!(
        a.1.as_ref().map(Vec::len),
        b.1.as_ref().map(Vec::len),
        "checkpoints"
    );
    assert!(a.1 == b.1, "the checkpoints differ");
    assert_eq!(a.0, b.0, "the records after the checkpoint differ");
    assert_eq!(a.2, b.2);
}

#[test]
fn a_standby_holds_what_the_primary_holds_and_resyncs_a_new_standby() {
    let (pdir, sdir, tdir) = (scratch("p"), scratch("s"), scratch("t"));
    let primary_dir = DataDir::open(&pdir).expect("primary dir");
    let standby_dir = DataDir::open(&sdir).expect("standby dir");
    let (server, addr) = standby("127.0.0.1:0".parse().expect("addr"), &standby_dir);
    let mut p = Primary::start(&primary_dir, addr);
    p.run(130);
    assert_same(&p, &standby_dir);
    assert_eq!(
        server.status[0]
            .held
            .load(std::sync::atomic::Ordering::Relaxed),
        p.seq
    );
    // The standby is replaced by one with an empty disk on the same address: the stream
    // reconnects and sends the files whole, then carries on.
    drop(server);
    let second_dir = DataDir::open(&tdir).expect("second standby dir");
    let (_second, _) = standby(addr, &second_dir);
    p.run(90);
    assert_same(&p, &second_dir);
    for d in [pdir, sdir, tdir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A stranger (or a node that is not the zone's primary) who connects and signs with
/// its own key is refused at the hello, and nothing reaches the mirror.
#[test]
fn a_stream_signed_by_another_key_is_refused() {
    use meridian_layouts::standby::{FrameHeader, FrameKind};
    use std::io::Write;
    let sdir = scratch("forged");
    let standby_dir = DataDir::open(&sdir).expect("standby dir");
    let (server, addr) = standby("127.0.0.1:0".parse().expect("addr"), &standby_dir);
    let mut socket = TcpStream::connect(addr).expect("connect");
    let challenge = super::frame::read_challenge(&mut socket).expect("a challenge");
    let hello = FrameHeader::new(FrameKind::Hello, 0);
    // A well-formed hello (its 32-byte nonce), signed by a key that is not the primary's.
    super::frame::write_frame(&mut socket, &key(9), &challenge, hello, &[7; 32]).expect("send");
    let mut file = FrameHeader::new(FrameKind::Append, 0);
    file.seq = meridian_layouts::U64Le::new(1);
    // The standby may already have closed the connection: a refused send is fine.
    let _ = super::frame::write_frame(&mut socket, &key(9), &challenge, file, b"not a header");
    let _ = socket.flush();
    std::thread::sleep(Duration::from_millis(200));
    let files = std::fs::read_dir(&sdir).expect("list").count();
    assert_eq!(files, 1, "only the lock file: nothing was mirrored");
    assert_eq!(
        server.status[0]
            .held
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let _ = std::fs::remove_dir_all(sdir);
}

/// A stranger's hello that claims a huge payload is refused at its header: nothing is
/// allocated or waited for on behalf of a sender not yet authenticated (without the check
/// the standby would hold the connection for its 5-second read timeout, with 256 MB
/// reserved).
#[test]
fn a_hello_claiming_a_huge_payload_is_refused_at_once() {
    use meridian_layouts::standby::{FrameHeader, FrameKind, PAYLOAD_MAX};
    use std::io::{Read, Write};
    let sdir = scratch("huge");
    let standby_dir = DataDir::open(&sdir).expect("standby dir");
    let (_server, addr) = standby("127.0.0.1:0".parse().expect("addr"), &standby_dir);
    let mut socket = TcpStream::connect(addr).expect("connect");
    let _challenge = super::frame::read_challenge(&mut socket).expect("a challenge");
    let mut hello = FrameHeader::new(FrameKind::Hello, 0);
    hello.len = meridian_layouts::U32Le::new(PAYLOAD_MAX);
    socket
        .write_all(bytemuck::bytes_of(&hello))
        .expect("send the header");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let started = WallInstant::now();
    let mut byte = [0u8; 1];
    let closed = matches!(socket.read(&mut byte), Ok(0) | Err(_));
    assert!(closed, "the standby sent something");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the standby waited {:?} for a stranger's payload",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(sdir);
}

/// A standby that takes its zone over: the old primary's stream is ended and refused,
/// nothing more is written to the mirror, and a primary that says hello again is told
/// the incarnation the zone runs as — signed, over its own nonce — so it stands down.
#[test]
fn a_released_zone_refuses_its_old_primary_and_tells_it_of_the_takeover() {
    let (primary_dir, standby_dir) = (scratch("tk-p"), scratch("tk-s"));
    let (pd, sd) = (
        DataDir::open(&primary_dir).unwrap(),
        DataDir::open(&standby_dir).unwrap(),
    );
    let (server, addr) = standby("127.0.0.1:0".parse().unwrap(), &sd);
    let mut primary = Primary::start(&pd, addr);
    primary.run(20);
    primary.wait_acked();
    assert!(
        server.release(0, Duration::from_secs(2)),
        "the stream ended"
    );
    let mirrored = recovered(&sd.zone(WORLD_ID, ZoneID(0)));
    // The old primary goes on: nothing more is acknowledged or written.
    let acked = primary.stream.acked();
    primary.run(20);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(primary.stream.acked(), acked);
    assert_eq!(recovered(&sd.zone(WORLD_ID, ZoneID(0))), mirrored);
    assert_eq!(
        primary.stream.taken_over(),
        None,
        "not before the promotion"
    );
    // Promoted: the next hello (the stream reconnects) is answered with the takeover.
    server.taken_over(0, 9);
    let deadline = WallInstant::now() + Duration::from_secs(5);
    while primary.stream.taken_over().is_none() {
        assert!(
            WallInstant::now() < deadline,
            "the primary never heard of the takeover"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(primary.stream.taken_over(), Some(9));
}

/// A primary that restored stale files — an older run than the standby's copy holds, or
/// another run under the same incarnation (the zone ran elsewhere since) — is refused at
/// its hello and told the newest run, signed; the copy is left as it was. A standby
/// restarted on its copy knows the newest run from the files' headers, and takes the
/// newest run's own hello again.
#[test]
fn a_hello_of_an_older_run_than_the_copy_is_refused_as_stale() {
    let dirs = ["st-n", "st-o", "st-r", "st-s"].map(|d| DataDir::open(&scratch(d)).unwrap());
    let [newer_dir, older_dir, reused_dir, standby_dir] = &dirs;
    let (server, addr) = standby("127.0.0.1:0".parse().unwrap(), standby_dir);
    let mut newer = Primary::start_as(newer_dir, addr, 3, 11);
    newer.run(20);
    newer.wait_acked();
    drop(newer);
    drop(server);
    let mirrored = recovered(&standby_dir.zone(WORLD_ID, ZoneID(0)));
    let (_server, addr) = standby(addr, standby_dir);
    for (dir, incarnation, run) in [(older_dir, 2, 22), (reused_dir, 3, 33)] {
        let mut stale = Primary::start_as(dir, addr, incarnation, run);
        stale.run(20);
        let deadline = WallInstant::now() + Duration::from_secs(5);
        while stale.stream.stale().is_none() {
            assert!(
                WallInstant::now() < deadline,
                "run ({incarnation}, {run}) was never told"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(stale.stream.stale(), Some(3));
        assert_eq!(stale.stream.taken_over(), None);
        assert_eq!(stale.stream.acked(), 0);
        assert_eq!(recovered(&standby_dir.zone(WORLD_ID, ZoneID(0))), mirrored);
    }
    // The newest run itself (its node restarted the stream) is taken.
    let mut again = Primary::start_as(newer_dir, addr, 3, 11);
    again.run(20);
    again.wait_acked();
    assert_eq!(again.stream.stale(), None);
}

/// Copies a connection both ways between `listener`'s first client and `to`, keeping
/// what the client sent.
fn tap(listener: TcpListener, to: SocketAddr) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::io::{Read, Write};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    std::thread::spawn(move || {
        while let Ok((mut client, _)) = listener.accept() {
            let Ok(mut server) = TcpStream::connect(to) else {
                return;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
            });
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1 << 16];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 || server.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    kept.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    seen
}

/// A primary's and a standby's data directories, the standby serving, and a tap in front
/// of it; the directories are removed on drop.
struct Tapped {
    primary: DataDir,
    standby: DataDir,
    dirs: [PathBuf; 2],
    _server: StandbyServer,
    /// Where the primary connects (the tap).
    addr: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Tapped {
    fn start(name: &str) -> Tapped {
        let dirs = [scratch(&format!("{name}-p")), scratch(&format!("{name}-s"))];
        let (primary, standby_dir) = (
            DataDir::open(&dirs[0]).unwrap(),
            DataDir::open(&dirs[1]).unwrap(),
        );
        let (server, to) = standby("127.0.0.1:0".parse().unwrap(), &standby_dir);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        Tapped {
            primary,
            standby: standby_dir,
            dirs,
            _server: server,
            addr,
            seen: tap(listener, to),
        }
    }
}

impl Drop for Tapped {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The zone's files carry its clients' session keys: on the wire between the nodes the
/// stream is sealed, so no run of the primary's file bytes shows in what it sent.
#[test]
fn the_stream_carries_no_file_bytes_in_clear() {
    let t = Tapped::start("tap");
    let (pd, sd, tapped, seen) = (&t.primary, &t.standby, t.addr, t.seen.clone());
    let mut primary = Primary::start(pd, tapped);
    primary.run(60);
    primary.wait_acked();
    assert_same(&primary, sd);
    // The stream counts what it sent: everything the tap saw but the hello (a header, the
    // 32-byte nonce, a signature) — once the tap has passed on the last of it.
    let hello = meridian_layouts::standby::FrameHeader::SIZE + 32 + 64;
    let started = WallInstant::now();
    while primary.stream.bytes_sent() as usize + hello != seen.lock().unwrap().len()
        && started.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        primary.stream.bytes_sent() as usize + hello,
        seen.len(),
        "bytes_sent counts the frames on the wire"
    );
    let mut files: Vec<_> = std::fs::read_dir(primary.store.dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("zone-0."))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    files.retain(|f| f.len() >= 256);
    assert!(
        !files.is_empty() && seen.len() > 1024,
        "{} bytes tapped",
        seen.len()
    );
    for file in &files {
        for chunk in file[64..].chunks_exact(32).step_by(4) {
            if chunk.iter().all(|&b| b == 0) {
                continue;
            }
            assert!(
                !seen.windows(32).any(|w| w == chunk),
                "file bytes crossed in clear"
            );
        }
    }
}

/// A resync (a new standby, or a reconnect) is acknowledged only once the standby holds
/// all of it — the checkpoints its worker writes included. The resync's claim used to ride
/// on its file frames, so the first WAL file was acknowledged with the newest append while
/// the checkpoint was still being written: the gate opened on a copy that could not
/// restore what it claimed. Here the new standby's worker is slowed down; at the moment the
/// primary sees its newest append acknowledged, the standby's copy restores exactly what
/// the primary's own files do.
#[test]
fn a_resync_is_acknowledged_only_once_the_standby_holds_all_of_it() {
    let (primary_dir, first_dir, second_dir) =
        (scratch("rs-p"), scratch("rs-a"), scratch("rs-b-slow"));
    let pd = DataDir::open(&primary_dir).unwrap();
    let (first, addr) = standby(
        "127.0.0.1:0".parse().unwrap(),
        &DataDir::open(&first_dir).unwrap(),
    );
    let mut primary = Primary::start(&pd, addr);
    primary.run(60);
    primary.wait_acked();
    // The standby goes; the primary goes on (a checkpoint prunes its older segments).
    drop(first);
    primary.run(90);
    let second = DataDir::open(&second_dir).unwrap();
    super::worker::tests_hooks::set_worker_delay(&second_dir, Duration::from_millis(400));
    let (_server, _) = standby(addr, &second);
    let started = WallInstant::now();
    while primary.stream.acked() < primary.seq {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the new standby acknowledged {} of {}",
            primary.stream.acked(),
            primary.seq
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Acknowledged: the copy must restore what the primary's files do, now.
    let (a, b) = (
        recovered(&primary.store),
        recovered(&second.zone(WORLD_ID, ZoneID(0))),
    );
    assert!(
        a.1 == b.1,
        "the standby acknowledged before its checkpoint was in place"
    );
    assert_eq!(a.0, b.0, "the records after the checkpoint differ");
}

/// The frames a tap saw from the primary: (kind byte, file byte, generation, offset).
fn frames_seen(bytes: &[u8]) -> Vec<(u8, u8, u64, u64)> {
    use meridian_layouts::standby::FrameHeader;
    let mut out = Vec::new();
    let mut at = 0;
    while at + FrameHeader::SIZE <= bytes.len() {
        let h: FrameHeader = bytemuck::pod_read_unaligned(&bytes[at..at + FrameHeader::SIZE]);
        out.push((h.kind, h.file, h.generation.get(), h.offset.get()));
        at += FrameHeader::SIZE + h.len.get() as usize + 64;
    }
    out
}

/// A checkpoint of megabytes goes in parts, and the appends fed behind it are sent between
/// them — not after it, which kept them (and every handoff waiting for their
/// acknowledgement) ~100 ms behind a 15 MB checkpoint. The standby puts the parts together
/// into the same file.
#[test]
fn appends_fed_behind_a_large_checkpoint_go_between_its_parts() {
    use meridian_layouts::standby::{FileKind, FrameKind};
    let t = Tapped::start("parts");
    let (pd, sd, tapped, seen) = (&t.primary, &t.standby, t.addr, t.seen.clone());
    let target = StandbyTarget {
        addr: tapped,
        key: key(2).verifying_key(),
    };
    // A stream of a zone that had made appends 1..=5 durable (in no file: the resync's
    // claim alone), then fed a checkpoint of 8 MB and, right behind it, append 6.
    let store = pd.zone(WORLD_ID, ZoneID(0));
    let (stream, feed) = Stream::start_from(store, 0, 1, key(1), target, 5);
    let started = WallInstant::now();
    while stream.acked() < 5 {
        assert!(started.elapsed() < Duration::from_secs(10), "no resync");
        std::thread::sleep(Duration::from_millis(5));
    }
    let checkpoint: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    feed.push(super::MirrorOp::Checkpoint {
        generation: 3,
        bytes: checkpoint.clone(),
        last: false,
    });
    feed.push(super::MirrorOp::Append {
        seq: 6,
        generation: 3,
        offset: 0,
        bytes: vec![7; 100],
    });
    while stream.acked() < 6 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "6 not acknowledged"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mirrored = sd.zone(WORLD_ID, ZoneID(0)).file("ckp", 3);
    while std::fs::metadata(&mirrored).map_or(0, |m| m.len()) < checkpoint.len() as u64 {
        assert!(started.elapsed() < Duration::from_secs(20), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        std::fs::read(&mirrored).unwrap() == checkpoint,
        "parts put together wrong"
    );
    let frames = frames_seen(&seen.lock().unwrap());
    let ckp = FileKind::Checkpoint as u8;
    let parts = frames
        .iter()
        .filter(|f| f.0 == FrameKind::Part as u8 && f.1 == ckp)
        .count();
    let append = frames.iter().position(|f| f.0 == FrameKind::Append as u8);
    let end = frames
        .iter()
        .position(|f| f.0 == FrameKind::File as u8 && f.1 == ckp);
    eprintln!("{parts} parts; append at {append:?}, the checkpoint's end at {end:?}");
    assert_eq!(
        parts, 31,
        "8 MB in parts of 256 KB, the last one in the File frame"
    );
    assert!(append < end, "the append waited for the whole checkpoint");
    drop(stream);
}

/// A standby that is gone: its stream's thread tries again every 200 ms (and a connection
/// attempt to a host that does not answer takes up to a second). `abandon` — what a zone
/// does when the mesh agreed its standby's node is down, on the zone's own thread —
/// returns at once; dropping the stream waits for the thread (a clean stop finishes what
/// was queued), measured here as the peer. The zone used to drop it, stalling for up to
/// 200 ms over loopback at every standby drop.
#[test]
fn a_stream_to_a_gone_standby_is_abandoned_without_waiting() {
    let gone = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port");
    let dir = scratch("gone");
    let store = DataDir::open(&dir).expect("dir").zone(WORLD_ID, ZoneID(0));
    let target = StandbyTarget {
        addr: gone,
        key: key(2).verifying_key(),
    };
    let mut took = Vec::new();
    for abandon in [true, false] {
        let (stream, _feed) = Stream::start(store.clone(), 0, 1, key(1), target);
        // Refused at once; asleep before the next attempt.
        std::thread::sleep(Duration::from_millis(40));
        let started = WallInstant::now();
        if abandon {
            stream.abandon();
        } else {
            drop(stream);
        }
        took.push(started.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("abandoned in {:?}, dropped in {:?}", took[0], took[1]);
    assert!(
        took[0] < Duration::from_millis(20),
        "abandon waited {:?}",
        took[0]
    );
    assert!(
        took[1] > Duration::from_millis(50),
        "the peer: {:?}",
        took[1]
    );
}
