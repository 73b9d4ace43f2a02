//! Time as a value. Nothing in `core` reads a clock: the driver passes `now` in.
//!
//! An [`Instant`] is nanoseconds since an epoch the driver chooses (process start in the
//! node, zero in the simulator). Durations are `core::time::Duration`. The zone advances
//! in fixed steps of [`tick_duration`]; `now` only decides *when* a step is due.

use core::time::Duration;

/// A point in time, in nanoseconds since the driver's epoch. Totally ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    /// The driver's epoch.
    pub const ZERO: Instant = Instant { nanos: 0 };

    /// An instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant { nanos }
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// `self + duration`, saturating at the end of time (584 years).
    pub fn saturating_add(self, duration: Duration) -> Instant {
        let add = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Instant {
            nanos: self.nanos.saturating_add(add),
        }
    }

    /// `self - duration`, saturating at the epoch.
    pub fn saturating_sub(self, duration: Duration) -> Instant {
        let sub = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Instant {
            nanos: self.nanos.saturating_sub(sub),
        }
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, duration: Duration) -> Instant {
        self.saturating_add(duration)
    }
}

/// The fixed step for a tick rate in hertz. `rate_hz` must be ≥ 1.
pub fn tick_duration(rate_hz: u32) -> Duration {
    assert!(rate_hz >= 1);
    Duration::from_nanos(1_000_000_000 / u64::from(rate_hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_nanos(u64::MAX - 1);
        assert_eq!((t + Duration::from_secs(1)).as_nanos(), u64::MAX);
        assert_eq!(Instant::ZERO.saturating_duration_since(t), Duration::ZERO);
        assert_eq!(tick_duration(30), Duration::from_nanos(33_333_333));
    }
}
