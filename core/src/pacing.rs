//! When a zone ticks within the tick period: its **phase**.
//!
//! A handoff is OFFER → ACK → COMMIT → DONE, each answered on the other zone's next
//! tick, and COMMIT and DONE leave only once their records are durable (and, with a
//! standby, acknowledged by it). Two neighbours that tick at the same instant answer each
//! other a whole period later whenever that wait is longer than zero — the handoff takes a
//! tick more than it needs. Neighbours that tick a fraction of a period apart answer each
//! other within the period as long as the tick's work and the durability wait fit in that
//! fraction.
//!
//! So every zone ticks at a fixed phase of a grid shared by the whole world: the Unix
//! clock's nanoseconds modulo the period, plus a quarter period per step of a 2 × 2
//! pattern over the zone grid (column parity: half a period, row parity: a quarter). Any
//! two neighbours — edge or corner — are then at least a quarter period apart, which is
//! the most four mutually adjacent zones can be. Nodes that keep their clocks within a
//! millisecond (NTP on a LAN) keep the phases across machines too.
//!
//! The driver aligns a zone's first tick to its phase and nudges it back every second by
//! a bounded step (the monotonic clock drifting from the Unix clock moves it). A tick late
//! by more than a period does not: the slots it missed are skipped whole, and the tick
//! after it is due at once, on the grid ([`Zone::following_tick`]).

use core::time::Duration;

use crate::time::Instant;
use crate::world::{World, ZoneID};
use crate::zone::Zone;

impl World {
    /// Where in the tick period `zone` ticks: 0, ½, ¼ or ¾ of it, by the parities of its
    /// column and row.
    pub fn tick_phase(&self, zone: ZoneID) -> Duration {
        let columns = self.config().zones_x.max(1);
        let (column, row) = (zone.0 % columns, zone.0 / columns);
        let quarters = (column % 2) * 2 + row % 2;
        self.tick_duration() * quarters / 4
    }
}

impl Zone {
    /// How far the next tick is due after its phase's nearest grid point of the Unix
    /// clock, in nanoseconds (negative: before it); `unix_nanos` is the Unix time at `now`.
    pub fn tick_phase_error(&self, now: Instant, unix_nanos: u64) -> i64 {
        let period = self.tick_duration.as_nanos() as i64;
        let phase = self.world.tick_phase(self.id).as_nanos() as i64;
        let due_in = self.next_tick_at.as_nanos() as i64 - now.as_nanos() as i64;
        let past = (i128::from(unix_nanos) + i128::from(due_in) - i128::from(phase))
            .rem_euclid(i128::from(period)) as i64;
        if past > period / 2 {
            past - period
        } else {
            past
        }
    }

    /// When the tick after the one run at `now` is due: a period after this one was due.
    /// A tick late by up to a period leaves the next one due at once (it catches up); one
    /// later than that skips the slots it missed, whole periods at a time, so the next is
    /// still due at once and on the zone's phase. (Restarting the count from `now`
    /// instead moved the phase by the overrun, and the once-a-second correction of at
    /// most 2 ms took seconds to bring it back.)
    pub(crate) fn following_tick(&self, now: Instant) -> Instant {
        let period = self.tick_duration.as_nanos() as u64;
        let next = self.next_tick_at.as_nanos().saturating_add(period);
        let earliest = now.as_nanos().saturating_sub(period);
        if next >= earliest || period == 0 {
            return Instant::from_nanos(next);
        }
        let missed = (earliest - next).div_ceil(period);
        Instant::from_nanos(next + missed * period)
    }

    /// Moves the zone's next tick toward its phase by at most `max_step`. Returns how far
    /// it moved it, in nanoseconds (negative: earlier).
    pub fn align_ticks(&mut self, now: Instant, unix_nanos: u64, max_step: Duration) -> i64 {
        let error = self.tick_phase_error(now, unix_nanos);
        let max = max_step.as_nanos().min(i64::MAX as u128) as i64;
        let shift = (-error).clamp(-max, max);
        let at = self.next_tick_at.as_nanos() as i64 + shift;
        self.next_tick_at = Instant::from_nanos(at.max(0) as u64);
        shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use crate::world::{Rect, WorldConfig};

    fn world(columns: u32, rows: u32) -> World {
        World::new(WorldConfig {
            zones_x: columns,
            zones_y: rows,
            bounds: Rect::new(0.0, 0.0, 1024.0 * columns as f32, 1024.0 * rows as f32),
            ..WorldConfig::default()
        })
        .expect("world")
    }

    /// Cyclic distance between two phases of `period`.
    fn apart(a: Duration, b: Duration, period: Duration) -> Duration {
        let d = a.abs_diff(b);
        d.min(period - d)
    }

    #[test]
    fn every_pair_of_neighbours_ticks_at_least_a_quarter_period_apart() {
        for (columns, rows) in [(2, 1), (3, 1), (1, 3), (2, 2), (4, 3), (5, 5)] {
            let w = world(columns, rows);
            let period = w.tick_duration();
            for z in w.zones() {
                for &n in w.neighbours(z).as_slice() {
                    let gap = apart(w.tick_phase(z), w.tick_phase(n), period);
                    assert!(
                        gap + Duration::from_nanos(2) >= period / 4,
                        "{columns}x{rows}: zones {} and {} tick {gap:?} apart",
                        z.0,
                        n.0
                    );
                }
            }
        }
    }

    /// A tick late by more than a period leaves the zone on its phase: the slots it
    /// missed are skipped whole, and the next tick is due at once, on the grid; a tick
    /// late by less leaves the next one a period after this one was due.
    #[test]
    fn a_late_tick_skips_whole_periods_and_keeps_the_phase() {
        let w = world(2, 2);
        let period = w.tick_duration();
        let start = Instant::from_nanos(1_000_000_000);
        let unix = 1_700_000_000_123_456_789u64;
        let mut zone = Zone::new(&w, ZoneID(3), Limits::default(), start).expect("zone");
        zone.align_ticks(start, unix, Duration::from_secs(1));
        for late in [0, 1, 3, 4, 7, 30, 2] {
            let late = period * late / 3;
            let due = zone.poll_timeout();
            let now = due + late;
            zone.tick(now);
            let unix_now = unix + now.saturating_duration_since(start).as_nanos() as u64;
            assert_eq!(zone.tick_phase_error(now, unix_now), 0, "late {late:?}");
            let next = zone.poll_timeout();
            if late >= period {
                assert!(next <= now, "late {late:?}: due at once");
                assert!(next + period >= now, "late {late:?}: skipped whole periods");
            } else {
                assert_eq!(next, due + period, "late {late:?}");
            }
        }
    }

    #[test]
    fn ticks_land_on_the_phase_of_the_unix_clock_and_move_by_bounded_steps() {
        let w = world(2, 2);
        let period = w.tick_duration().as_nanos() as u64;
        for z in w.zones() {
            let phase = w.tick_phase(z).as_nanos() as u64;
            for unix in [1_700_000_000_123_456_789u64, 5, period * 1000 + phase + 7] {
                let now = Instant::from_nanos(1_000_000_000);
                let mut zone = Zone::new(&w, z, Limits::default(), now).expect("zone");
                zone.align_ticks(now, unix, Duration::from_secs(1));
                let due = i128::from(zone.poll_timeout().as_nanos()) - i128::from(now.as_nanos());
                let at = i128::from(unix) + due;
                assert_eq!((at - i128::from(phase)).rem_euclid(i128::from(period)), 0);
                assert!(due.unsigned_abs() <= u128::from(period / 2));
                assert_eq!(zone.tick_phase_error(now, unix), 0);
                assert_eq!(zone.tick_phase_error(now, unix + 3), 3);
                // Aligned: nothing more to do. Off by 5 ms: moved back 1 ms at a time.
                assert_eq!(zone.align_ticks(now, unix, Duration::from_secs(1)), 0);
                let step = Duration::from_millis(1);
                assert_eq!(zone.align_ticks(now, unix + 5_000_000, step), -1_000_000);
                assert_eq!(zone.align_ticks(now, unix + 4_000_000, step), -1_000_000);
            }
        }
    }
}
