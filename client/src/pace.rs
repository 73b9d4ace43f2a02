//! Pacing the client's inputs by what the zone reports, and the round trip a player feels.
//!
//! A zone plays a client's inputs one per tick from a small buffer (docs/protocol.md,
//! "Inputs"), and every snapshot says how early they arrive: how many waited beyond the
//! one played at that tick, or that the one due had not arrived (an underrun: the zone
//! guessed it). [`Pace`] turns those reports into a factor on the client's tick interval —
//! send a little faster after underruns, a little slower while every input waits a tick
//! or more, and slower still by a hair after any window without an underrun (creeping to
//! the edge of the path's jitter) — so the buffer holds just the margin it needs: without
//! it, a
//! path that got worse costs guessed inputs (and stand-still ticks while the zone deepens
//! the buffer), and one that got better keeps latency the client no longer needs.
//!
//! Both sides keep their own clocks; nothing here reads one. The client runs its tick loop
//! every `tick × Pace::factor()`.

use meridian_layouts::client::INPUT_UNDERRUN;
use meridian_protocol::time::Instant;

/// Reports judged together.
pub const PACE_WINDOW: u16 = 30;
/// Underruns in a window that make the client faster. One is tolerated: the zone's guess
/// (the input before repeated) is right whenever the player kept the intent, and a margin
/// that never underruns under loss costs a tick of latency all the time.
pub const PACE_UNDERRUNS: u16 = 2;
/// The factor for the window after one with [`PACE_UNDERRUNS`]: 1.5 % shorter ticks,
/// about half a tick of margin gained per second.
pub const PACE_FASTER: f32 = 0.985;
/// The factor for the window after one where every input waited a tick or more: 1 %
/// longer ticks, a third of a tick of latency given back per second.
pub const PACE_SLOWER: f32 = 1.01;
/// The factor for the window after one with no underrun at all: the inputs arrive in
/// time, but how early is only known to a tick (the zone counts inputs, not
/// milliseconds), so the client creeps later — a tenth of a tick a second — until an
/// underrun says it reached the edge of the path's jitter. Without it the margin settled a
/// tick plus the jitter deep: ~15 ms of latency for nothing.
pub const PACE_CREEP: f32 = 1.003;

/// The client's input pacing (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    reports: u16,
    underruns: u16,
    min_waiting: u8,
    factor: f32,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            reports: 0,
            underruns: 0,
            min_waiting: u8::MAX,
            factor: 1.0,
        }
    }
}

impl Pace {
    /// A snapshot's `input_waiting`.
    pub fn report(&mut self, waiting: u8) {
        if waiting == INPUT_UNDERRUN {
            self.underruns += 1;
        } else {
            self.min_waiting = self.min_waiting.min(waiting);
        }
        self.reports += 1;
        if self.reports == PACE_WINDOW {
            self.factor = match (self.underruns, self.min_waiting) {
                (u, _) if u >= PACE_UNDERRUNS => PACE_FASTER,
                (0, w) if w >= 1 => PACE_SLOWER,
                (0, _) => PACE_CREEP,
                _ => 1.0,
            };
            *self = Pace {
                factor: self.factor,
                ..Pace::default()
            };
        }
    }

    /// What the client's tick interval is multiplied by until the next window ends.
    pub fn factor(&self) -> f32 {
        self.factor
    }
}

/// Inputs whose send times are kept.
const SENT: usize = 64;
/// Samples the round trip is the least of.
const SAMPLES: usize = 32;

/// The round trip a player feels: from sending an input to the first snapshot showing it
/// applied — the path both ways, the wait for the zone's tick and the input buffer's
/// margin. The least of the last [`SAMPLES`] samples (a late snapshot says nothing about
/// the path).
#[derive(Clone, Debug)]
pub struct RoundTrip {
    sent: [(u32, Option<Instant>); SENT],
    samples: [u32; SAMPLES],
    count: usize,
    /// The newest input sequence a sample was taken for.
    seen: u32,
}

impl Default for RoundTrip {
    fn default() -> RoundTrip {
        RoundTrip {
            sent: [(0, None); SENT],
            samples: [0; SAMPLES],
            count: 0,
            seen: 0,
        }
    }
}

impl RoundTrip {
    /// Input `sequence` left at `now`.
    pub fn sent(&mut self, sequence: u32, now: Instant) {
        self.sent[sequence as usize % SENT] = (sequence, Some(now));
    }

    /// A snapshot that arrived at `now` says the zone applied inputs up to `sequence`.
    pub fn applied(&mut self, sequence: u32, now: Instant) {
        if sequence.wrapping_sub(self.seen) as i32 <= 0 {
            return;
        }
        self.seen = sequence;
        let (s, at) = self.sent[sequence as usize % SENT];
        if let Some(at) = at.filter(|_| s == sequence) {
            let micros = now.saturating_duration_since(at).as_micros();
            self.samples[self.count % SAMPLES] = micros.min(u128::from(u32::MAX)) as u32;
            self.count += 1;
        }
    }

    /// The estimate, once there is a sample.
    pub fn get(&self) -> Option<std::time::Duration> {
        let n = self.count.min(SAMPLES);
        let least = self.samples[..n].iter().min()?;
        Some(std::time::Duration::from_micros(u64::from(*least)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_underrun_speeds_the_inputs_up_and_a_surplus_slows_them_down() {
        let mut p = Pace::default();
        for _ in 0..PACE_WINDOW - 1 {
            p.report(0);
        }
        assert_eq!(p.factor(), 1.0, "judged once a window");
        p.report(INPUT_UNDERRUN);
        assert_eq!(p.factor(), 1.0, "one underrun a window: at the edge, stay");
        for k in 0..PACE_WINDOW {
            p.report(if k % 10 == 0 { INPUT_UNDERRUN } else { 0 });
        }
        assert_eq!(p.factor(), PACE_FASTER);
        for _ in 0..PACE_WINDOW {
            p.report(0);
        }
        assert_eq!(p.factor(), PACE_CREEP, "in time: creep toward the edge");
        for k in 0..PACE_WINDOW {
            p.report(1 + (k % 3) as u8);
        }
        assert_eq!(p.factor(), PACE_SLOWER, "every input waited a tick");
    }

    #[test]
    fn the_round_trip_is_the_least_recent_sample() {
        let mut r = RoundTrip::default();
        assert_eq!(r.get(), None);
        let t0 = Instant::ZERO;
        for seq in 1..=10u32 {
            r.sent(seq, t0 + Duration::from_millis(33 * u64::from(seq)));
        }
        // Input 3 shows up 120 ms after it left, input 5 150 ms after; a snapshot that
        // still says 3 (late, reordered) is not a sample.
        r.applied(3, t0 + Duration::from_millis(99 + 120));
        r.applied(5, t0 + Duration::from_millis(165 + 150));
        r.applied(3, t0 + Duration::from_millis(900));
        assert_eq!(r.get(), Some(Duration::from_millis(120)));
    }
}
