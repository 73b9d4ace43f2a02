//! A resync that outlasts checkpoints on the primary.

use std::net::TcpListener;
use std::time::{Duration, Instant as WallInstant};

use meridian_core::handoff::HandoffConfig;
use meridian_core::limits::Limits;
use meridian_core::time::Instant;
use meridian_core::world::ZoneID;
use meridian_core::zone::Zone;

use super::{Primary, WORLD_ID, scratch, standby, streaming, world};
use crate::standby::hooks::{self as tests_hooks, Point};
use crate::standby::worker::tests_hooks::set_worker_delay;
use crate::store::{DataDir, StoreError};

/// Waits up to 20 s for `done`, saying `what` if it never is.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = WallInstant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How many entities a promotion from the standby's copy in `dir` would start with;
/// panics, naming the files, if the copy cannot be restored.
///
/// The standby's worker may go on meanwhile (checkpoints the feed brought after what is
/// tested): a file it prunes between the recovery's listing and its read is read again
/// from a new listing. (A promotion stops the mirror before it restores.) A file missing
/// from the listing itself is no such race: the plan is made without it.
fn entities_restored(copy: &DataDir, dir: &std::path::Path) -> u64 {
    let mut attempts = 0;
    let (names, recovered) = loop {
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        match copy.zone(WORLD_ID, ZoneID(0)).recover() {
            Err(StoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && attempts < 20 =>
            {
                attempts += 1;
            }
            recovered => break (names, recovered),
        }
    };
    let recovered = recovered.unwrap_or_else(|e| {
        panic!("the standby acknowledged a copy it cannot restore ({names:?}): {e}")
    });
    let view = recovered.view();
    let zone = Zone::restore_from(
        &world(),
        ZoneID(0),
        Limits::for_entities(100_000),
        HandoffConfig::default(),
        Instant::ZERO,
        recovered.incarnation,
        view.as_ref(),
        &recovered.records,
    )
    .expect("restore the copy");
    zone.entities().len() as u64
}

/// A resync can take longer than two checkpoints (a large zone over a slow link), and
/// the checkpoints retire the generations it is sending. Here the resync pauses after its
/// first file while the primary writes two checkpoints; the standby's checkpoint worker is
/// slowed, so what the feed brings after the resync is not in place yet. The moment the
/// standby acknowledges what the resync claimed, its copy must restore at least the zone
/// as it stood then. (The resync read its files by name as they went out and listed the
/// kept ones at its end: the retired checkpoint was skipped, the one sent was pruned, and
/// the standby acknowledged two WAL segments with no checkpoint under them — a copy no
/// promotion can start from.)
#[test]
fn a_resync_outlasting_two_checkpoints_still_leaves_a_copy_that_restores() {
    let (primary_dir, standby_dir) = (scratch("rsc-p"), scratch("rsc-s-slow"));
    let pd = DataDir::open(&primary_dir).unwrap();
    // Nothing listens at the standby's address yet.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut primary = Primary::start(&pd, addr);
    // Checkpoints at ticks 40, 80 and 120: generations 2 and 3 kept.
    primary.run(130);
    let ckp = |g: u64| primary_dir.join(format!("zone-0.ckp.{g}"));
    wait_for("the third checkpoint was not written", || {
        ckp(3).exists() && !ckp(1).exists()
    });
    tests_hooks::pause_once(&primary_dir, Point::ResyncFile, Duration::from_millis(1500));
    set_worker_delay(&standby_dir, Duration::from_millis(400));
    let sd = DataDir::open(&standby_dir).unwrap();
    let (_server, _) = standby(addr, &sd);
    wait_for("the stream never resynced", || {
        tests_hooks::pausing(&primary_dir)
    });
    let claimed = primary.seq;
    // Checkpoints at 160 and 200 retire generations 2 and 3 while the resync pauses.
    primary.run(80);
    wait_for("the checkpoints did not retire generation 3", || {
        !ckp(3).exists()
    });
    assert!(
        tests_hooks::pausing(&primary_dir),
        "the resync went on before the retirement"
    );
    wait_for("the standby never acknowledged the resync", || {
        primary.stream.acked() >= claimed
    });
    let held = entities_restored(&sd, &standby_dir);
    // Two spawns a tick.
    assert!(
        held >= 2 * claimed,
        "the copy holds {held} entities, the resync claimed {}",
        2 * claimed
    );
    for d in [primary_dir, standby_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A checkpoint from the feed is followed by the list of files the standby keeps. Made
/// from the primary's directory as it stood once the checkpoint had gone out, the list
/// named only newer generations when two more checkpoints were written meanwhile (a large
/// zone's, over a slow link): the standby pruned the checkpoint it had just received, and
/// the appends after it were acknowledged on WAL segments with no checkpoint under them.
/// Here the stream pauses after checkpoint 2 while the primary writes 3 and 4; once the
/// standby acknowledged every append and applied that list, with its worker slowed so
/// checkpoints 3 and 4 are not in place yet, its copy must restore the whole zone.
#[test]
fn a_checkpoint_streamed_while_two_more_are_written_stays_at_the_standby() {
    // A checkpoint at tick 40: generation 1.
    let (primary_dir, standby_dir, sd, _server, mut primary) = streaming(("ckk-p", "ckk-s-slow"));
    tests_hooks::pause_once(
        &primary_dir,
        Point::CheckpointFile,
        Duration::from_millis(1500),
    );
    set_worker_delay(&standby_dir, Duration::from_millis(400));
    // Generation 2 at tick 80: the stream pauses once it has sent it.
    primary.run(20);
    wait_for("checkpoint 2 never went out", || {
        tests_hooks::pausing(&primary_dir)
    });
    // Generations 3 and 4 at 120 and 160 retire 1 and 2 on the primary.
    primary.run(80);
    let ckp = |g: u64| primary_dir.join(format!("zone-0.ckp.{g}"));
    wait_for("the checkpoints did not retire generation 2", || {
        !ckp(2).exists()
    });
    assert!(
        tests_hooks::pausing(&primary_dir),
        "the stream went on before the retirement"
    );
    primary.wait_acked();
    // The standby's worker (400 ms a file) puts checkpoint 2 in place, then applies the
    // list that followed it: the moment that list has pruned generation 1 — checkpoints 3
    // and 4 are not there yet — the copy must restore what was acknowledged.
    wait_for("the standby never pruned generation 1", || {
        !standby_dir.join("zone-0.ckp.1").exists()
    });
    let held = entities_restored(&sd, &standby_dir);
    assert!(
        held >= 2 * primary.seq,
        "the copy holds {held} entities, the standby acknowledged {}",
        2 * primary.seq
    );
    for d in [primary_dir, standby_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}
