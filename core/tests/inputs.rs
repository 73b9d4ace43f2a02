//! Tick-true inputs: a client sends one input per tick of its own; the zone applies each
//! exactly once, one per tick, at a steady offset from the client's tick, whatever the
//! jitter on the way (the playout in `session::inputs`).

use std::sync::{Arc, Mutex};

use meridian_core::entities::EntityID;
use meridian_core::game::{Action, Game, GameWorld};
use meridian_core::net::Peer;
use meridian_core::session::{SessionConfig, SessionCounters};
use rand::Rng;

use crate::clients::{connected_with, zone_addr};
use crate::support::rng;

/// What a run shows: the server's applied input sequence after each tick, the client's
/// misprediction after each tick, and the zone's counters.
struct Run {
    applied: Vec<u32>,
    mispredicted: Vec<f32>,
    counters: SessionCounters,
    /// Every input the client sent with buttons pressed: (sequence, buttons).
    pressed: Vec<(u32, u32)>,
}

/// A run of `steps` ticks with every client datagram delayed by 0…`jitter` ticks.
fn run(seed: u64, steps: usize, jitter: u64) -> (Vec<u32>, SessionCounters) {
    let mut rng = rng(seed);
    let r = run_with(steps, Intent::Changing, |step| {
        step + rng.random_range(0..=jitter)
    });
    (r.applied, r.counters)
}

#[derive(Clone, Copy, PartialEq)]
enum Intent {
    /// A different intent every tick: each input is told apart by its sequence.
    Changing,
    /// Full speed east, always.
    Steady,
}

/// A run of `steps` ticks, the datagram sent at a step arriving at `arrives(step)` (not
/// before).
fn run_with(steps: usize, intent: Intent, arrives: impl FnMut(u64) -> u64) -> Run {
    run_playing(steps, intent, arrives, None)
}

/// [`run_with`], the zone running `game`.
fn run_playing(
    steps: usize,
    intent: Intent,
    mut arrives: impl FnMut(u64) -> u64,
    game: Option<Box<dyn Game + Send>>,
) -> Run {
    let (mut h, mut clients) = connected_with(SessionConfig::default());
    if let Some(game) = game {
        h.zones[0].set_game(game);
    }
    let mut in_flight: Vec<(u64, Vec<u8>)> = Vec::new();
    let (mut applied, mut mispredicted, mut pressed) = (Vec::new(), Vec::new(), Vec::new());
    let mut buf = [0u8; 1500];
    let (addr, client) = &mut clients[0];
    for step in 0..steps as u64 {
        let buttons = match intent {
            Intent::Changing => (step % 3) as u16,
            Intent::Steady => 0,
        };
        match intent {
            Intent::Changing => client.set_intent(((step * 37) % 255) as i8, 0, buttons),
            Intent::Steady => client.set_intent(127, 0, 0),
        }
        let before = client.input_sequence();
        client.tick(h.now);
        if client.input_sequence() != before && buttons != 0 {
            pressed.push((client.input_sequence(), u32::from(buttons)));
        }
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
        mispredicted.push(client.misprediction());
    }
    // The one session's own counters are the zone's.
    let c = h.sessions[0].counters();
    let own = h.sessions[0].input_playout(client.session()).unwrap();
    assert_eq!(u64::from(own.underruns), c.inputs_underrun);
    assert_eq!(u64::from(own.skipped), c.inputs_skipped);
    assert_eq!(u64::from(own.lost), c.inputs_lost);
    Run {
        applied,
        mispredicted,
        counters: c,
        pressed,
    }
}

/// Sequences the playout has dealt with: applied, guessed, skipped or lost — each once.
fn accounted(c: &SessionCounters) -> u64 {
    c.inputs_applied + c.inputs_guessed + c.inputs_skipped + c.inputs_lost
}

/// After a 400-tick run: inputs play within a tick or two of being sent again (the
/// server's applied sequence trails the client's by the margin, not by what the path did
/// earlier), and every sequence up to the last applied was dealt with once.
fn caught_up(applied: &[u32], c: &SessionCounters) {
    let last = applied[applied.len() - 1];
    let lag = applied.len() as i64 - i64::from(last);
    assert!(lag <= 2, "the applied sequence trails by {lag}: {c:?}");
    assert_eq!(accounted(c), u64::from(last), "{c:?}");
}

#[test]
fn inputs_under_jitter_are_each_applied_once_one_per_tick() {
    for seed in 0..4 {
        let (applied, c) = run(seed, 600, 3);
        let last = *applied.last().unwrap();
        // Every sequence up to the last applied was applied, guessed, skipped or lost —
        // once.
        assert_eq!(accounted(&c), u64::from(last), "seed {seed}: {c:?}");
        assert_eq!(c.inputs_lost, 0, "nothing was lost, only delayed");
        // Every guessed input arrived afterwards (but those still on their way).
        assert!(
            c.inputs_late <= c.inputs_guessed && c.inputs_late + 3 >= c.inputs_guessed,
            "seed {seed}: {c:?}"
        );
        // One input a tick: past the first second, the applied sequence moves by exactly
        // one each tick (an input or a guess) but where the playout adapted (a wait
        // stands still, a skip jumps the surplus), and that is rare.
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
        // A client that does not pace its inputs by the snapshots' report: the buffer
        // deepens until underruns are rare (under two a window), not gone.
        assert!(c.inputs_underrun <= 60, "seed {seed}: {c:?}");
    }
}

/// What the playout does never needs correcting when the client keeps its intent: a
/// guess is exactly the input that was late, a wait stands still under the applied
/// sequence. (Playing the last velocity without consuming an input, as the playout once
/// did, moved the avatar a tick further than the client predicted at every underrun.)
#[test]
fn a_steady_intent_under_jitter_is_never_corrected() {
    for seed in 0..4 {
        let mut rng = rng(100 + seed);
        // Calm, then jitter of up to two ticks, then a single datagram held back three
        // ticks every 50: the playout adapts in mid-run, both ways.
        let r = run_with(600, Intent::Steady, |step| match step {
            0..100 => step,
            100..300 => step + rng.random_range(0..=2),
            _ => step + if step % 50 == 0 { 3 } else { 0 },
        });
        let c = r.counters;
        let worst = r.mispredicted[30..].iter().copied().fold(0.0f32, f32::max);
        assert!(
            worst < 0.02,
            "seed {seed}: a correction of {worst} m: {c:?}"
        );
        // The path made the playout guess and wait (else nothing was tested).
        assert!(c.inputs_guessed >= 1, "seed {seed}: {c:?}");
        assert!(c.inputs_underrun > c.inputs_guessed, "seed {seed}: {c:?}");
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

/// Inputs held back for ten ticks, then delivered at once: the playout guesses through
/// the gap (the client's intent kept), and the held inputs, late, are not played; the
/// session goes on a tick behind the client as before, not ten.
#[test]
fn a_gap_is_guessed_through() {
    let r = run_with(400, Intent::Changing, |step| {
        if (100..110).contains(&step) {
            110
        } else {
            step
        }
    });
    let (applied, c) = (r.applied, r.counters);
    assert!(c.inputs_guessed >= 9, "{c:?}");
    assert!(c.inputs_late >= 9, "{c:?}");
    caught_up(&applied, &c);
}

/// The path's delay drops from six ticks to none: six inputs arrive at once and wait. The
/// playout skips the surplus (all but one) within a window instead of keeping the extra
/// latency for the rest of the session.
#[test]
fn a_backlog_is_worked_off() {
    let r = run_with(400, Intent::Changing, |step| {
        if step < 100 { step + 6 } else { step }
    });
    let (applied, c) = (r.applied, r.counters);
    assert!(c.inputs_skipped >= 4, "the surplus was worked off: {c:?}");
    caught_up(&applied, &c);
}

/// Records every action it is handed: (input sequence, buttons).
struct Presses(Arc<Mutex<Vec<(u32, u32)>>>);

impl Game for Presses {
    fn systems(&mut self, _: &mut GameWorld<'_>) {}

    fn action(&mut self, _: &mut GameWorld<'_>, _: EntityID, action: Action) {
        self.0
            .lock()
            .unwrap()
            .push((action.sequence, action.buttons));
    }
}

/// A press goes to the game once, stamped with the input it was made with — also when that
/// input was not played: guessed (it arrived late) or skipped (a backlog). (Folded into
/// the next input played, as they once were, a late press carried the next input's
/// sequence and view time: a shot judged a tick late, its answer naming no shot the
/// client fired.)
#[test]
fn every_press_reaches_the_game_once_stamped_with_its_own_input() {
    let mut rng = rng(200);
    // Jitter (guesses, some late), a ten-tick gap (ten late at once), a backlog (skips).
    type Arrives = Box<dyn FnMut(u64) -> u64>;
    let paths: [(&str, Arrives); 3] = [
        (
            "jitter",
            Box::new(move |step| step + rng.random_range(0..=3)),
        ),
        (
            "gap",
            Box::new(|step| {
                if (100..110).contains(&step) {
                    110
                } else {
                    step
                }
            }),
        ),
        (
            "backlog",
            Box::new(|step| if step < 100 { step + 6 } else { step }),
        ),
    ];
    for (path, arrives) in paths {
        let actions = Arc::new(Mutex::new(Vec::new()));
        let game = Presses(Arc::clone(&actions));
        let r = run_playing(600, Intent::Changing, arrives, Some(Box::new(game)));
        let c = r.counters;
        assert!(
            c.inputs_late + c.inputs_skipped > 0,
            "{path}: nothing to test: {c:?}"
        );
        // Those still on their way at the end aside.
        let last = *r.applied.last().unwrap();
        let mut expected = r.pressed.clone();
        expected.retain(|&(s, _)| s <= last - 4);
        let mut got = actions.lock().unwrap().clone();
        got.retain(|&(s, _)| s <= last - 4);
        got.sort_unstable();
        assert_eq!(got, expected, "{path}: {c:?}");
    }
}
