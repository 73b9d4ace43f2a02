//! Tick-true inputs: a client sends one input per tick of its own; the zone applies each
//! exactly once, one per tick, at a steady offset from the client's tick, whatever the
//! jitter on the way (the playout in `session::inputs`).

use meridian_core::net::Peer;
use meridian_core::session::{SessionConfig, SessionCounters};
use rand::Rng;

use crate::clients::{connected_with, zone_addr};
use crate::support::rng;

/// What a run of `steps` ticks with every client datagram delayed by 0…`jitter` ticks
/// shows: the server's applied input sequence after each tick, and the zone's counters.
fn run(seed: u64, steps: usize, jitter: u64) -> (Vec<u32>, SessionCounters) {
    let mut rng = rng(seed);
    run_with(steps, |step| step + rng.random_range(0..=jitter))
}

/// As [`run`], the datagram sent at a step arriving at `arrives(step)` (not before).
fn run_with(steps: usize, mut arrives: impl FnMut(u64) -> u64) -> (Vec<u32>, SessionCounters) {
    let (mut h, mut clients) = connected_with(SessionConfig::default());
    let mut in_flight: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut applied = Vec::new();
    let mut buf = [0u8; 1500];
    let (addr, client) = &mut clients[0];
    for step in 0..steps as u64 {
        // A different intent every tick: each input is told apart by its sequence.
        client.set_intent(((step * 37) % 255) as i8, 0, (step % 3) as u16);
        client.tick(h.now);
        while let Some((_, len)) = client.poll_transmit(&mut buf) {
            in_flight.push((arrives(step).max(step), buf[..len].to_vec()));
        }
        // What is due arrives, in the order it falls due (reordering included).
        in_flight.sort_by_key(|(due, _)| *due);
        let arrived = in_flight.iter().take_while(|(due, _)| *due <= step).count();
        for (_, bytes) in in_flight.drain(..arrived) {
            h.sessions[0].handle_datagram(h.unix_ms, *addr, &bytes);
        }
        h.sessions[0].tick(h.unix_ms, &mut h.zones[0]);
        h.zones[0].tick(h.now);
        for _ in h.zones[0].drain_log() {}
        h.sessions[0].replicate(&h.zones[0]);
        while let Some((to, len)) = h.sessions[0].poll_transmit(&mut buf) {
            if to == Peer::Client(*addr) {
                client.handle_datagram(h.now, zone_addr(0), &buf[..len]);
            }
        }
        h.now = h.now + h.zones[0].world().tick_duration();
        h.unix_ms += 33;
        applied.push(client.authoritative().input_sequence);
    }
    // The one session's own counters are the zone's.
    let c = h.sessions[0].counters();
    let own = h.sessions[0].input_playout(client.session()).unwrap();
    assert_eq!(u64::from(own.underruns), c.inputs_underrun);
    assert_eq!(u64::from(own.skipped), c.inputs_skipped);
    assert_eq!(u64::from(own.lost), c.inputs_lost);
    (applied, c)
}

#[test]
fn inputs_under_jitter_are_each_applied_once_one_per_tick() {
    for seed in 0..4 {
        let (applied, c) = run(seed, 600, 3);
        let last = *applied.last().unwrap();
        // Every sequence up to the last applied was applied, skipped or lost — once.
        assert_eq!(
            c.inputs_applied + c.inputs_skipped + c.inputs_lost,
            u64::from(last),
            "seed {seed}: {c:?}"
        );
        assert_eq!(c.inputs_lost, 0, "nothing was lost, only delayed");
        // One input a tick: past the first second, the applied sequence moves by exactly
        // one each tick but where the playout adapted (an underrun waits a tick, a skip
        // jumps the surplus), and that is rare.
        let steps: Vec<i64> = applied[30..]
            .windows(2)
            .map(|w| i64::from(w[1]) - i64::from(w[0]))
            .collect();
        let irregular = steps.iter().filter(|&&d| d != 1).count();
        assert!(
            steps.iter().all(|&d| (0..=4).contains(&d)),
            "seed {seed}: {steps:?}"
        );
        assert!(
            irregular <= 8,
            "seed {seed}: {irregular} irregular ticks: {c:?}"
        );
        assert!(c.inputs_underrun <= 8, "seed {seed}: {c:?}");
    }
}

#[test]
fn without_jitter_every_tick_applies_the_next_input() {
    let (applied, c) = run(9, 400, 0);
    assert_eq!(c.inputs_underrun, 0, "{c:?}");
    assert_eq!(c.inputs_skipped, 0, "{c:?}");
    // Every tick after the first applies the next input.
    assert!(
        applied[5..].windows(2).all(|w| w[1] == w[0] + 1),
        "{applied:?}"
    );
}

/// A burst (inputs held back for ten ticks, then delivered at once) leaves a backlog; the
/// playout applies it one per tick, then skips the surplus within a window instead of
/// keeping the extra latency for the rest of the session.
#[test]
fn a_backlog_after_a_burst_is_worked_off() {
    let (applied, c) = run_with(400, |step| {
        if (100..110).contains(&step) {
            110
        } else {
            step
        }
    });
    // The ten held inputs arrive together: the playout waited through the gap (underruns:
    // nothing newer had arrived), then had a backlog of ten.
    assert!(c.inputs_underrun >= 9, "{c:?}");
    // The burst's datagrams over the session's per-tick allowance were dropped: the
    // inputs only they carried are lost; the rest of the surplus is skipped.
    assert!(
        c.inputs_skipped + c.inputs_lost >= 8,
        "the surplus was worked off: {c:?}"
    );
    assert!(c.inputs_skipped > 0, "{c:?}");
    // By the end, inputs play within a tick or two of being sent again: the server's
    // applied sequence trails the client's by the margin, not by the burst.
    let lag = 400 - i64::from(applied[399]);
    assert!(lag <= 4, "the applied sequence trails by {lag}: {c:?}");
    assert_eq!(
        c.inputs_applied + c.inputs_skipped + c.inputs_lost,
        u64::from(applied[399])
    );
}
