//! What the standby listener turned away, counted for `/metrics`, and logged so that no
//! host can flood the node's log through it.
//!
//! Any host that reaches the control port over TCP can open connections and send a hello
//! that does not verify. Each used to cost a `warn` line: one host sending forged hellos
//! from four IPs wrote ~80 a second into the node's log (the listener's caps and its
//! accepts every 50 ms let many hosts reach ~1,300), burying what an operator needs to
//! see. Connections
//! that end before a valid hello are now counted and logged at most once per
//! [`LOG_EVERY`], with the count so far and the latest one's sender and reason — so a
//! primary whose key is pinned wrong still shows within seconds. Connections past a valid
//! hello come from a node holding a pinned key, and each end is still logged.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// At most one log line per this for connections that ended before a valid hello.
pub(super) const LOG_EVERY: Duration = Duration::from_secs(10);

/// The listener's refusals, cumulative since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerCounters {
    /// Connections closed at once: the listener's caps (connections open, or not yet past
    /// their hello from one IP) were reached.
    pub refused: u64,
    /// Connections that ended before a valid hello: none sent, malformed, for a zone this
    /// node keeps no standby of, a bad signature, or the hello's 5 s timeout.
    pub unproven: u64,
}

/// The counters, shared by the listener's threads.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    refused: AtomicU64,
    unproven: AtomicU64,
    /// When the next line about unproven connections may be written (`None`: at once).
    next_log: Mutex<Option<Instant>>,
}

impl Refusals {
    /// One more connection refused at the caps; returns the count.
    pub(super) fn refuse(&self) -> u64 {
        self.refused.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// One more connection ended before a valid hello, at `now`: the count so far when a
    /// line is due (the first, then at most one per [`LOG_EVERY`]), else `None`.
    pub(super) fn unproven(&self, now: Instant) -> Option<u64> {
        let count = self.unproven.fetch_add(1, Ordering::Relaxed) + 1;
        let mut next = self.next_log.lock().unwrap_or_else(PoisonError::into_inner);
        if next.is_some_and(|at| now < at) {
            return None;
        }
        *next = Some(now + LOG_EVERY);
        Some(count)
    }

    pub(super) fn counters(&self) -> ListenerCounters {
        ListenerCounters {
            refused: self.refused.load(Ordering::Relaxed),
            unproven: self.unproven.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_unproven_connections_is_one_line_per_interval_and_all_counted() {
        let r = Refusals::default();
        let t0 = Instant::now();
        let mut lines = Vec::new();
        // 10,000 in 25 s, evenly spread: lines at 0, 10 and 20 s.
        for k in 0..10_000u64 {
            let now = t0 + Duration::from_micros(k * 2_500);
            if let Some(count) = r.unproven(now) {
                lines.push((k, count));
            }
        }
        assert_eq!(lines, vec![(0, 1), (4_000, 4_001), (8_000, 8_001)]);
        assert_eq!(r.refuse(), 1);
        assert_eq!(
            r.counters(),
            ListenerCounters {
                refused: 1,
                unproven: 10_000
            }
        );
    }
}
