//! A clean stop's end of the stream: the claim the standby acknowledges once all of it is
//! in place.

use std::time::Duration;

use meridian_core::persist::Capture;
use meridian_core::world::ZoneID;

use super::{Primary, WORLD_ID, recovered, scratch, standby};
use crate::store::DataDir;

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
    let (primary_dir, standby_dir) = (scratch("fin-p"), scratch("fin-s-slow"));
    let pd = DataDir::open(&primary_dir).unwrap();
    let sd = DataDir::open(&standby_dir).unwrap();
    let (_server, addr) = standby("127.0.0.1:0".parse().unwrap(), &sd);
    let mut primary = Primary::start(&pd, addr);
    primary.run(60);
    primary.wait_acked();
    crate::standby::worker::tests_hooks::set_worker_delay(&standby_dir, Duration::from_millis(200));
    primary.run(5);
    // The final checkpoint, then the writer's end (the feed's), then the stream's.
    let generation = primary.generation + 1;
    let tick = primary.zone.tick_count();
    primary.writer.switch(generation, 1, tick).expect("switch");
    let mut capture = Box::new(Capture::default());
    primary.zone.capture(&mut capture);
    primary
        .writer
        .checkpoint(generation, 1, capture)
        .expect("checkpoint");
    let Primary {
        writer,
        stream,
        store,
        ..
    } = primary;
    writer.finish();
    // The stream sees its feed end before it is told to stop (the driver's order).
    std::thread::sleep(Duration::from_millis(100));
    assert!(stream.finish(), "the claim was not acknowledged");
    let (a, b) = (recovered(&store), recovered(&sd.zone(WORLD_ID, ZoneID(0))));
    assert!(
        a.1.is_some() && a.1 == b.1,
        "the copy lacks the final checkpoint"
    );
    assert_eq!(a.0, b.0, "the records after the checkpoint differ");
}
