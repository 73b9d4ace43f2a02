//! What a zone's driver measures beyond the zone's own counters: the histograms `/metrics`
//! exposes, and the wall-clock time of each handoff.

use meridian_core::metrics::{self, Histogram};
use meridian_core::time::Instant;
use std::collections::VecDeque;

use rustc_hash::FxHashMap;

/// Handoffs timed at once; past this, new ones go untimed (counted in ticks only).
const TIMED_HANDOFFS_MAX: usize = 65_536;

/// A zone's histograms, cumulative since it started.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneHistograms {
    /// The tick's work (steering, sessions, the zone tick, snapshots, checkpoint copies,
    /// the live map's frame), seconds.
    pub tick_seconds: Histogram,
    /// The whole of the tick on the zone's core, seconds: its work (above) and the
    /// ingest and transmit around it — the neighbours' signed datagrams verified, this
    /// zone's signed, the datagrams read and queued; not the wait for the disk.
    pub tick_busy_seconds: Histogram,
    /// Handoffs from this zone, from the crossing (OFFER) to DONE, in ticks…
    pub handoff_ticks: Histogram,
    /// …and in seconds of the node's clock.
    pub handoff_seconds: Histogram,
    /// Snapshot datagrams to clients, bytes (see `SessionHistograms`).
    pub snapshot_bytes: Histogram,
    /// Inputs applied, their age in ticks (see `SessionHistograms`).
    pub input_age_ticks: Histogram,
    /// Ticks whose datagrams waited for their records: seconds from the append until the
    /// WAL's fdatasync confirmed it…
    pub gate_disk_seconds: Histogram,
    /// …and until the datagrams left (the disk and, with a standby, its acknowledgement).
    pub gate_seconds: Histogram,
}

impl Default for ZoneHistograms {
    fn default() -> ZoneHistograms {
        ZoneHistograms {
            tick_seconds: Histogram::new(metrics::TICK_SECONDS),
            tick_busy_seconds: Histogram::new(metrics::TICK_SECONDS),
            handoff_ticks: Histogram::new(metrics::HANDOFF_TICKS),
            handoff_seconds: Histogram::new(metrics::HANDOFF_SECONDS),
            snapshot_bytes: Histogram::new(metrics::SNAPSHOT_BYTES),
            input_age_ticks: Histogram::new(metrics::INPUT_AGE_TICKS),
            gate_disk_seconds: Histogram::new(metrics::GATE_SECONDS),
            gate_seconds: Histogram::new(metrics::GATE_SECONDS),
        }
    }
}

/// When each handoff under way started, by transfer id.
#[derive(Debug, Default)]
pub(super) struct HandoffClock {
    started: FxHashMap<u64, Instant>,
}

impl HandoffClock {
    pub(super) fn offered(&mut self, transfer_id: u64, now: Instant) {
        if self.started.len() < TIMED_HANDOFFS_MAX {
            self.started.insert(transfer_id, now);
        }
    }

    pub(super) fn aborted(&mut self, transfer_id: u64) {
        self.started.remove(&transfer_id);
    }

    /// The handoff's duration, if it was timed (not one restored from disk).
    pub(super) fn departed(&mut self, transfer_id: u64, now: Instant) -> Option<f64> {
        let started = self.started.remove(&transfer_id)?;
        Some(now.saturating_duration_since(started).as_secs_f64())
    }
}

/// When each append that held datagrams was queued, until they leave.
#[derive(Debug, Default)]
pub(super) struct GateClock {
    /// (append sequence, queued at, the disk's confirmation recorded).
    waiting: VecDeque<(u64, Instant, bool)>,
}

impl GateClock {
    /// Append `seq`, queued at `now`, holds datagrams.
    pub(super) fn held(&mut self, seq: u64, now: Instant) {
        if self.waiting.back().is_none_or(|w| w.0 < seq) {
            self.waiting.push_back((seq, now, false));
        }
    }

    /// The disk confirmed up to `synced`, and everything up to `safe` may leave.
    pub(super) fn confirmed(
        &mut self,
        synced: u64,
        safe: u64,
        now: Instant,
        h: &mut ZoneHistograms,
    ) {
        for w in self.waiting.iter_mut().take_while(|w| w.0 <= synced) {
            if !w.2 {
                w.2 = true;
                h.gate_disk_seconds
                    .record(now.saturating_duration_since(w.1).as_secs_f64());
            }
        }
        while let Some(&(_, at, _)) = self.waiting.front().filter(|w| w.0 <= safe) {
            h.gate_seconds
                .record(now.saturating_duration_since(at).as_secs_f64());
            self.waiting.pop_front();
        }
    }
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub(super) fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
