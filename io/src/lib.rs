//! Meridian's drivers: the only crate that touches clocks, sockets, threads and executors.
//!
//! It holds the clock that turns wall time into the [`meridian_core::time::Instant`]s the
//! sans-IO core is driven by, and the [`runtime`]: one pinned glommio executor per zone,
//! cross-core queues and the tick driver; [`uring`], the batched io_uring UDP driver each
//! zone's socket runs on; [`signing`], sealing and batch-verifying node-to-node traffic;
//! and [`mmsg`], the `sendmmsg` baseline. glommio stays behind this crate's API, so the
//! executor could be swapped.

use meridian_core::time::Instant;

pub mod cputime;
pub mod mmsg;
pub mod runtime;
pub mod signing;
pub mod standby;
pub mod store;
pub mod uring;

/// A monotonic clock whose epoch is its creation. Backed by `quanta` (TSC where stable),
/// which reads in nanoseconds without a system call.
#[derive(Debug, Clone)]
pub struct Clock {
    clock: quanta::Clock,
    epoch: quanta::Instant,
}

impl Clock {
    pub fn new() -> Clock {
        let clock = quanta::Clock::new();
        let epoch = clock.now();
        Clock { clock, epoch }
    }

    /// Time since the clock was created, as a core `Instant`.
    pub fn now(&self) -> Instant {
        let elapsed = self.clock.now().saturating_duration_since(self.epoch);
        Instant::from_nanos(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic_and_starts_near_zero() {
        let clock = Clock::new();
        let a = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = clock.now();
        assert!(b > a);
        assert!(b.saturating_duration_since(a) >= std::time::Duration::from_millis(2));
        assert!(a.as_nanos() < 1_000_000_000);
    }
}
