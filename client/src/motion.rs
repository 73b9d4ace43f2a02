//! Smooth remote motion: server time from snapshot arrivals (clock sync), an adaptive
//! playout delay, and a track per entity interpolated on server time.
//!
//! **Clock sync.** Ticks are per zone. For each zone the client has heard from, it keeps
//! the *offset* between its clock and that zone's ticks: the earliest a snapshot of tick
//! `t` has ever arrived, as `arrival − t · period`, minimised over arrivals (so a late
//! snapshot never moves it) and let rise slowly (so clock drift does not pin it to an old
//! minimum). A tick of any zone then has a time on the client's clock, and snapshots of
//! two zones fall on one timeline: nothing resets at a zone change.
//!
//! **Playout delay.** How late snapshots arrive past that offset is the path's jitter;
//! [`Motion`] draws remote entities `delay` behind server time: one snapshot interval (so
//! the next sample is usually there) plus a decaying peak of the lateness seen. The delay
//! follows that target smoothly — the drawing clock runs at 0.9× while it grows and 1.05×
//! while it shrinks — so a late snapshot slows the scene for a moment instead of moving
//! it back.
//!
//! **Tracks.** An entity's samples are its states at the snapshots where they *changed*
//! (far entities are updated every sixth tick, not every tick). A track interpolates from
//! where it was drawn when its newest sample arrived to that sample, at the sample's server
//! time, then extrapolates with the sample's velocity for at most
//! [`EXTRAPOLATE_MAX_S`], then holds. Drawn positions are therefore continuous: a late
//! snapshot, an update after five unchanged ones, or a zone change bends the path, never
//! breaks it.

use meridian_layouts::quant::{dequantise_position, dequantise_velocity};
use meridian_protocol::delta::Record;

/// Longest a track extrapolates past its newest sample before it holds still.
pub const EXTRAPOLATE_MAX_S: f64 = 0.25;

/// The slowest a track catches up with a sample of an entity that stands still (m/s,
/// before doubling).
const CATCH_UP_MIN_MPS: f32 = 1.0;

/// How far the offset estimate rises per second toward arrivals that are all later than
/// it (clock drift, a path that got slower): 1 ms/s.
const OFFSET_RISE_PER_S: f64 = 0.001;

/// The lateness peak keeps this share of itself per snapshot.
const PEAK_DECAY: f64 = 0.995;

/// Zones whose offsets are kept (the current one and the last few it came from).
const ZONES: usize = 4;

/// Share of elapsed time by which the delay may grow, and shrink.
const DELAY_GROW: f64 = 0.10;
const DELAY_SHRINK: f64 = 0.05;

/// One zone's clock: `arrival_s ≈ offset_s + tick · period` for the least delayed arrivals.
#[derive(Clone, Copy, Debug)]
struct ZoneClock {
    zone: u32,
    offset_s: f64,
    last_arrival_s: f64,
}

/// An entity's drawn path: from `(ta, pa)` to `(tb, pb)`, then on with `vb`.
#[derive(Clone, Copy, Debug)]
struct Track {
    id: u64,
    record: Record,
    ta: f64,
    pa: [f32; 2],
    tb: f64,
    pb: [f32; 2],
    vb: [f32; 2],
}

impl Track {
    fn at(&self, t: f64) -> [f32; 2] {
        if t <= self.ta {
            return self.pa;
        }
        if t < self.tb {
            let f = ((t - self.ta) / (self.tb - self.ta)) as f32;
            return [
                self.pa[0] + (self.pb[0] - self.pa[0]) * f,
                self.pa[1] + (self.pb[1] - self.pa[1]) * f,
            ];
        }
        let dt = (t - self.tb).min(EXTRAPOLATE_MAX_S) as f32;
        [self.pb[0] + self.vb[0] * dt, self.pb[1] + self.vb[1] * dt]
    }
}

/// Clock sync, playout delay and entity tracks. See the module docs.
#[derive(Clone, Debug)]
pub struct Motion {
    period_s: f64,
    clocks: Vec<ZoneClock>,
    /// Decaying peak of how late snapshots arrived past their zone's offset.
    late_peak_s: f64,
    /// The delay drawn at, following `period_s + late_peak_s`, as of `advanced_s`.
    delay_s: f64,
    advanced_s: f64,
    tracks: Vec<Track>,
    scratch: Vec<Track>,
}

fn seconds(now: crate::Instant) -> f64 {
    now.as_nanos() as f64 * 1e-9
}

fn position(r: &Record) -> [f32; 2] {
    [dequantise_position(r.x), dequantise_position(r.y)]
}

fn velocity(r: &Record) -> [f32; 2] {
    [dequantise_velocity(r.vx), dequantise_velocity(r.vy)]
}

impl Motion {
    /// Forgets `zone`'s clock: a new run of the zone counts its ticks afresh.
    pub fn forget_zone(&mut self, zone: u32) {
        self.clocks.retain(|c| c.zone != zone);
    }

    pub fn new(tick_hz: u32) -> Motion {
        Motion {
            period_s: 1.0 / f64::from(tick_hz.max(1)),
            clocks: Vec::with_capacity(ZONES),
            late_peak_s: 0.0,
            delay_s: 1.0 / f64::from(tick_hz.max(1)),
            advanced_s: 0.0,
            tracks: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The time of `tick` of `zone` on the client's clock (as if its snapshot had arrived
    /// with the least delay seen), if the zone was heard from.
    pub fn server_time(&self, zone: u32, tick: u32) -> Option<f64> {
        let c = self.clocks.iter().find(|c| c.zone == zone)?;
        Some(c.offset_s + f64::from(tick) * self.period_s)
    }

    /// How far behind server time remote entities are drawn.
    pub fn delay_s(&self) -> f64 {
        self.delay_s
    }

    /// Moves the delay toward its target by what the time since the last call allows.
    /// Time never runs back here: a `now` older than one already seen counts as that one.
    fn advance(&mut self, now: crate::Instant) {
        let now = seconds(now);
        let elapsed = (now - self.advanced_s).max(0.0);
        self.advanced_s = self.advanced_s.max(now);
        let target = self.period_s + self.late_peak_s;
        let step = (target - self.delay_s).clamp(-DELAY_SHRINK * elapsed, DELAY_GROW * elapsed);
        self.delay_s += step;
    }

    /// The server time remote entities are drawn at, as of the last `advance`.
    fn drawn_at(&self) -> f64 {
        self.advanced_s - self.delay_s
    }

    /// The tick of `zone` remote entities are drawn at (fractional): the client's
    /// interpolation time, which a shot is judged at (lag compensation).
    pub fn view_tick(&self, zone: u32) -> Option<f64> {
        let c = self.clocks.iter().find(|c| c.zone == zone)?;
        Some((self.drawn_at() - c.offset_s) / self.period_s)
    }

    /// The client's estimate of the current zone's tick now: the newest server time, moved
    /// on by the time since (fractional).
    pub fn server_tick(&self, zone: u32, now: crate::Instant) -> Option<f64> {
        let c = self.clocks.iter().find(|c| c.zone == zone)?;
        Some((seconds(now) - c.offset_s) / self.period_s)
    }

    /// Takes the clock sample of a snapshot of `tick` of `zone` arriving at `now`; returns
    /// its server time.
    fn sync(&mut self, zone: u32, tick: u32, now: crate::Instant) -> f64 {
        let arrival = seconds(now);
        let sample = arrival - f64::from(tick) * self.period_s;
        let clock = match self.clocks.iter_mut().position(|c| c.zone == zone) {
            Some(i) => &mut self.clocks[i],
            None => {
                if self.clocks.len() == ZONES {
                    self.clocks.remove(0);
                }
                self.clocks.push(ZoneClock {
                    zone,
                    offset_s: sample,
                    last_arrival_s: arrival,
                });
                self.clocks.last_mut().expect("pushed")
            }
        };
        let since = (arrival - clock.last_arrival_s).max(0.0);
        clock.offset_s = sample.min(clock.offset_s + OFFSET_RISE_PER_S * since);
        clock.last_arrival_s = arrival;
        let late = sample - clock.offset_s;
        self.late_peak_s = late.max(self.late_peak_s * PEAK_DECAY);
        clock.offset_s + f64::from(tick) * self.period_s
    }

    /// A new newest snapshot of `tick` of `zone`, arrived at `now`, holding `records`
    /// (sorted by id): entities whose state changed get a new sample, new ones a track,
    /// gone ones lose theirs.
    pub fn on_snapshot(&mut self, zone: u32, tick: u32, now: crate::Instant, records: &[Record]) {
        self.advance(now);
        let drawn = self.drawn_at();
        let t = self.sync(zone, tick, now);
        self.scratch.clear();
        let mut k = 0;
        for r in records {
            while k < self.tracks.len() && self.tracks[k].id < r.id {
                k += 1;
            }
            let (p, v) = (position(r), velocity(r));
            let track = match self.tracks.get(k).filter(|tr| tr.id == r.id) {
                Some(old) if old.record == *r => *old,
                Some(old) => {
                    // Bend the path from where it is drawn now toward the new sample, due at
                    // its server time — but no sooner than one snapshot interval, and no
                    // faster than twice the entity's speed: after a stall the track has
                    // extrapolated past where the entity turned, and is caught up with
                    // over a few frames, not in one.
                    let from = old.at(drawn);
                    let gap = ((p[0] - from[0]).powi(2) + (p[1] - from[1]).powi(2)).sqrt();
                    let speed = (v[0] * v[0] + v[1] * v[1]).sqrt().max(CATCH_UP_MIN_MPS);
                    let due = t
                        .max(drawn + self.period_s)
                        .max(drawn + f64::from(gap / (2.0 * speed)));
                    Track {
                        id: r.id,
                        record: *r,
                        ta: drawn,
                        pa: from,
                        tb: due,
                        pb: p,
                        vb: v,
                    }
                }
                None => Track {
                    id: r.id,
                    record: *r,
                    ta: t,
                    pa: p,
                    tb: t,
                    pb: p,
                    vb: v,
                },
            };
            self.scratch.push(track);
        }
        std::mem::swap(&mut self.tracks, &mut self.scratch);
    }

    /// Every tracked entity drawn at `now`: `(id, position)`, in id order.
    pub fn render(&mut self, now: crate::Instant, mut f: impl FnMut(u64, [f32; 2])) {
        self.advance(now);
        let t = self.drawn_at();
        for track in &self.tracks {
            f(track.id, track.at(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn rec(id: u64, x: f32, vx: f32) -> Record {
        Record {
            id,
            x: (x * 100.0).round() as i32,
            y: 0,
            z: 0,
            vx: (vx * 100.0).round() as i16,
            vy: 0,
            kind: 0,
            flags: 0,
            game: [0; 4],
        }
    }

    fn at(ms: f64) -> crate::Instant {
        crate::Instant::ZERO + Duration::from_micros((ms * 1000.0) as u64)
    }

    /// Renders at 120 Hz from `from_ms` to `to_ms`; returns the largest step between two
    /// frames of entity `id`.
    fn largest_step(m: &mut Motion, id: u64, frames: &mut Vec<(f64, f32)>, ms: f64) {
        m.render(at(ms), |e, p| {
            if e == id {
                frames.push((ms, p[0]));
            }
        });
    }

    fn steps(frames: &[(f64, f32)]) -> f32 {
        frames
            .windows(2)
            .map(|w| (w[1].1 - w[0].1).abs())
            .fold(0.0, f32::max)
    }

    /// An entity at 6 m/s, a snapshot every tick (30 Hz) with up to 10 ms of jitter, one
    /// of them 100 ms late: drawn at 120 Hz, it never moves more than its speed allows
    /// between two frames (plus a little for the bend toward a late sample).
    #[test]
    fn drawn_motion_is_continuous_across_a_late_snapshot() {
        let mut m = Motion::new(30);
        let mut frames = Vec::new();
        let period = 1000.0 / 30.0;
        let mut pending: Vec<(f64, u32)> = (1..=120u32)
            .map(|tick| {
                let jitter = f64::from((tick * 7919) % 10);
                let late = if tick == 60 { 100.0 } else { 0.0 };
                (f64::from(tick) * period + 20.0 + jitter + late, tick)
            })
            .collect();
        pending.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut newest = 0;
        let mut next = 0;
        let mut ms = 0.0;
        while ms < 121.0 * period {
            while next < pending.len() && pending[next].0 <= ms {
                let (arrived, tick) = pending[next];
                if tick > newest {
                    newest = tick;
                    let x = 6.0 * f64::from(tick) as f32 / 30.0;
                    m.on_snapshot(0, tick, at(arrived), &[rec(1, x, 6.0)]);
                }
                next += 1;
            }
            largest_step(&mut m, 1, &mut frames, ms);
            ms += 1000.0 / 120.0;
        }
        let allowed = 6.0 / 120.0 * 1.6;
        let step = steps(&frames[40..]);
        assert!(
            step <= allowed,
            "a frame moved {step} m (allowed {allowed})"
        );
        // And it is drawn where it was a little while ago, not wherever: at most the delay
        // (one interval plus the jitter, a late snapshot's lateness fading out) behind.
        let (ms, x) = *frames.last().unwrap();
        let truth = 6.0 * (ms - 20.0) as f32 / 1000.0;
        let behind = truth - x;
        assert!((0.0..=0.6).contains(&behind), "drawn {behind} m behind");
    }

    /// A far entity updated every sixth tick glides between its updates instead of
    /// standing still for five ticks and then jumping.
    #[test]
    fn an_entity_updated_every_sixth_tick_glides() {
        let mut m = Motion::new(30);
        let period = 1000.0 / 30.0;
        let mut frames = Vec::new();
        let mut ms = 0.0;
        let mut tick = 0u32;
        let mut x = 0.0f32;
        while tick < 120 {
            if ms >= f64::from(tick + 1) * period + 15.0 {
                tick += 1;
                if tick.is_multiple_of(6) {
                    x = 3.0 * tick as f32 / 30.0;
                }
                m.on_snapshot(0, tick, at(ms), &[rec(9, x, 3.0)]);
            }
            largest_step(&mut m, 9, &mut frames, ms);
            ms += 1000.0 / 120.0;
        }
        let step = steps(&frames[60..]);
        // 3 m/s over one 120 Hz frame is 2.5 cm; a six-tick step would be 60 cm.
        assert!(step <= 0.05, "a frame moved {step} m");
    }

    /// After a zone change the ticks jump — back, here: the new zone started later — and
    /// the timeline does not.
    #[test]
    fn a_zone_change_does_not_break_the_path() {
        let mut m = Motion::new(30);
        let period = 1000.0 / 30.0;
        let mut frames = Vec::new();
        let mut ms = 0.0;
        let mut n = 0u32;
        while n < 120 {
            if ms >= f64::from(n + 1) * period + 12.0 {
                n += 1;
                let (zone, tick) = if n < 60 { (0, n + 50_000) } else { (1, n) };
                let x = 6.0 * n as f32 / 30.0;
                m.on_snapshot(zone, tick, at(ms), &[rec(4, x, 6.0)]);
            }
            largest_step(&mut m, 4, &mut frames, ms);
            ms += 1000.0 / 120.0;
        }
        let step = steps(&frames[40..]);
        assert!(step <= 6.0 / 120.0 * 1.6, "a frame moved {step} m");
    }

    /// The path stalls (six snapshots held back, then delivered at once, 200 ms late) while
    /// the entity turns round: the drawing slows, then bends from where it was drawn toward
    /// the new samples — no jump back to where the samples were, nor in time.
    #[test]
    fn a_late_burst_and_a_turn_bend_the_path_without_a_jump() {
        let mut m = Motion::new(30);
        let period = 1000.0 / 30.0;
        let truth = |tick: u32| {
            let t = tick.min(60) as f32 - tick.saturating_sub(60) as f32;
            (6.0 * t / 30.0, if tick < 60 { 6.0 } else { -6.0 })
        };
        let arrival = |tick: u32| {
            let tick = if (58..64).contains(&tick) { 64 } else { tick };
            f64::from(tick) * period + 20.0
        };
        let mut frames = Vec::new();
        let (mut ms, mut next) = (0.0, 1u32);
        while ms < 120.0 * period {
            while next <= 118 && arrival(next) <= ms {
                let (x, vx) = truth(next);
                m.on_snapshot(0, next, at(arrival(next)), &[rec(2, x, vx)]);
                next += 1;
            }
            largest_step(&mut m, 2, &mut frames, ms);
            ms += 1000.0 / 120.0;
        }
        let step = steps(&frames[40..]);
        assert!(step <= 0.15, "a frame moved {step} m");
        assert!(m.delay_s() > 0.05, "the delay grew after the stall");
    }

    /// Each zone keeps its own clock: the offset is the least delayed arrival (jitter and a
    /// late snapshot do not move it), and a zone's ticks keep their times when snapshots of
    /// another zone come in between.
    #[test]
    fn each_zone_keeps_its_own_clock() {
        let mut m = Motion::new(30);
        let period = 1000.0 / 30.0;
        for n in 1..=90u32 {
            let jitter = f64::from((n * 7919) % 12);
            let late = if n == 40 { 150.0 } else { 0.0 };
            let (zone, tick) = if n % 2 == 0 { (7, n + 1_000) } else { (8, n) };
            let arrival = f64::from(n) * period + 25.0 + jitter + late;
            m.on_snapshot(zone, tick, at(arrival), &[]);
        }
        // The least delayed arrival was 25 ms after its tick (plus the 1 ms/s rise).
        let seven = m.server_time(7, 1_090).unwrap() * 1000.0;
        let eight = m.server_time(8, 89).unwrap() * 1000.0;
        assert!((seven - (90.0 * period + 25.0)).abs() < 5.0, "{seven}");
        assert!((eight - (89.0 * period + 25.0)).abs() < 5.0, "{eight}");
        assert!(m.server_time(9, 1).is_none());
    }

    /// The delay follows the jitter without a step: after a 150 ms stall it grows by at
    /// most a tenth of the time that passed, so the drawn scene slows instead of jumping
    /// back; afterwards it shrinks again.
    #[test]
    fn the_delay_changes_without_a_step() {
        let mut m = Motion::new(30);
        let period = 1000.0 / 30.0;
        let (mut ms, mut n) = (0.0, 0u32);
        let mut last = (0.0, m.delay_s());
        let mut grown = 0.0f64;
        while n < 300 {
            let due = f64::from(n + 1) * period + 20.0 + if n + 1 == 100 { 150.0 } else { 0.0 };
            if ms >= due {
                n += 1;
                m.on_snapshot(0, n, at(ms), &[rec(1, 0.0, 0.0)]);
            }
            m.render(at(ms), |_, _| {});
            let (t, d) = (ms / 1000.0, m.delay_s());
            assert!(
                d - last.1 <= 0.1 * (t - last.0) + 1e-5,
                "at {ms} ms: {} → {d}",
                last.1
            );
            grown = grown.max(d);
            last = (t, d);
            ms += 1000.0 / 120.0;
        }
        assert!(grown > 0.1, "it grew toward the stall's lateness: {grown}");
        assert!(m.delay_s() < grown, "and shrank after it");
    }
}
