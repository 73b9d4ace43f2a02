//! A clean stop's end of the stream: the claim the standby acknowledges once all of it is
//! in place.

use std::time::Duration;

use meridian_core::persist::Capture;
use meridian_core::world::ZoneID;

use super::{Primary, WORLD_ID, recovered, streaming};
use crate::standby::hooks::{self as tests_hooks, Point};
use crate::store::WriterEvent;

/// A zone stopped on purpose (a move to its standby, SIGTERM) writes a final checkpoint,
/// finishes its writer — which ends the stream's feed — and ends its stream: the stream
/// sends what is left, then a claim the standby takes only once all of it is in place,
/// and says whether that was acknowledged. With the standby's checkpoint worker slowed
/// (200 ms a file, ~300 ms behind when the stream is stopped: well inside the stop's 1 s
/// wait, where 300 ms a file once missed it on a busy machine), the copy restores
/// exactly what the primary's files do the moment `finish` returns `true`. (Before the claim, an acknowledgement said nothing of
/// checkpoints; and a stream that saw its feed end before the stop returned at once.)
#[test]
fn a_clean_stop_ends_its_stream_once_the_standby_holds_its_last_checkpoint() {
    let (_, standby_dir, sd, _server, mut primary) = streaming(("fin-p", "fin-s-slow"));
    crate::standby::worker::tests_hooks::set_worker_delay(&standby_dir, Duration::from_millis(200));
    primary.run(5);
    // The final checkpoint and the writer's end (the feed's), then the stream's.
    let store = stop(primary, Duration::from_millis(100));
    assert_holds_all(&store, &sd);
}

/// Stops `primary` as the driver does: the final checkpoint written on this thread as the
/// writer finishes, then, `pause` later (the stream sees its feed end before it is told to
/// stop), the stream's end, which must say the standby holds all of it. Returns the
/// primary's files.
fn stop(primary: Primary, pause: Duration) -> crate::store::ZoneStore {
    let generation = primary.generation + 1;
    let tick = primary.zone.tick_count();
    let mut capture = Capture::default();
    primary.zone.capture(&mut capture);
    let Primary {
        writer,
        stream,
        store,
        ..
    } = primary;
    (writer.finish_with_checkpoints((generation, 1, tick), &[(generation, &capture)]))
        .expect("final checkpoint");
    std::thread::sleep(pause);
    assert!(stream.finish(), "the claim was not acknowledged");
    store
}

/// A move waits for its zone's final checkpoint to reach the standby, and the threads
/// that write, seal and apply a checkpoint run at nice 19: beside busy threads each took
/// 60–270 ms of a move on a saturated machine (the zone's players frozen meanwhile). The
/// final one goes another way — written on the stopping zone's thread, sealed by the
/// stream, applied by the standby's connection, all at the zone's priority — so with the
/// primary's sealer paused and the standby's worker taking 3 s an item, the stop still
/// completes at once, and the copy holds the final checkpoint.
#[test]
fn a_stops_final_checkpoint_waits_for_no_low_priority_thread() {
    // A periodic checkpoint at tick 40, out and written before the threads slow down.
    let (primary_dir, standby_dir, sd, _server, mut primary) = streaming(("last-p", "last-s"));
    std::thread::sleep(Duration::from_millis(500));
    let slow = Duration::from_secs(3);
    tests_hooks::pause_once(&primary_dir, Point::Sealing, slow);
    crate::standby::worker::tests_hooks::set_worker_delay(&standby_dir, slow);
    primary.run(5);
    primary.wait_acked();
    let started = std::time::Instant::now();
    let store = stop(primary, Duration::ZERO);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the stop took {:?}",
        started.elapsed()
    );
    assert_holds_all(&store, &sd);
}

/// A stream whose feed overflows (the standby, or the link, a thousand appends behind)
/// resyncs from the files. A stop that came before it ended with a claim the standby
/// took for everything, although the feed had dropped appends and the final checkpoint:
/// the primary was told its standby held the zone whole, and a move would have handed
/// the zone over to a copy without them. Here the stream's thread is held at a
/// checkpoint while more appends than the feed holds are made durable, then the zone
/// stops; the standby's copy must restore what the primary's files do.
#[test]
fn a_stop_after_the_feed_overflowed_resyncs_before_its_claim() {
    let (primary_dir, _, sd, _server, mut primary) = streaming(("over-p", "over-s"));
    tests_hooks::pause_once(
        &primary_dir,
        Point::CheckpointFile,
        Duration::from_secs(120),
    );
    // Checkpoint 2 at tick 80: the stream's thread pauses after its file.
    primary.run(20);
    let started = std::time::Instant::now();
    while !tests_hooks::pausing(&primary_dir) {
        assert!(started.elapsed() < Duration::from_secs(20), "no pause");
        std::thread::sleep(Duration::from_millis(5));
    }
    // More appends than the feed holds, each its own write (durable before the next).
    for _ in 0..1100 {
        primary.run(1);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match primary.writer.poll() {
                Some(WriterEvent::Durable { seq }) if seq >= primary.seq => break,
                Some(_) => {}
                None => {
                    assert!(std::time::Instant::now() < deadline, "not durable");
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    // The stop while the stream's thread is still held: it resumes to find it.
    let resume = primary_dir.clone();
    let resumer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        tests_hooks::resume(&resume);
    });
    let store = stop(primary, Duration::ZERO);
    resumer.join().unwrap();
    assert_holds_all(&store, &sd);
}

/// The standby's copy in `standby` restores what the primary's files in `store` do: the
/// same final checkpoint and the same records after it.
fn assert_holds_all(store: &crate::store::ZoneStore, standby: &crate::store::DataDir) {
    let (a, b) = (
        recovered(store),
        recovered(&standby.zone(WORLD_ID, ZoneID(0))),
    );
    assert!(
        a.1.is_some() && a.1 == b.1,
        "the copy lacks the final checkpoint"
    );
    assert_eq!(a.0, b.0, "the records after the checkpoint differ");
}
