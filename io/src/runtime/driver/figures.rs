//! The figures of a zone's driver: the tick histograms, the once-a-second figures the
//! status line and the admin endpoint read, and the live map's frames.

use std::sync::atomic::Ordering;
use std::time::Duration;

use meridian_core::time::Instant;

use super::ZoneDriver;
use crate::cputime::thread_cpu_time;
use crate::runtime::PersistCounters;
use crate::runtime::map::FRAME_EVERY;
use crate::runtime::measure::unix_nanos;
use crate::standby::Stream;

impl ZoneDriver<'_> {
    /// While a live map is open, every [`FRAME_EVERY`]: this zone's map frame, handed to
    /// the admin thread if it is not reading the last one (the zone never waits). Timed
    /// with the tick.
    pub(super) fn map_frame(&mut self) {
        if self.shared.map_viewers.load(Ordering::Relaxed) == 0 {
            return;
        }
        let started = self.clock.now();
        if started < self.next_map {
            return;
        }
        let cpu = thread_cpu_time();
        self.next_map = started + FRAME_EVERY;
        if let Ok(views) = self.shared.map_views.try_lock() {
            self.map_views.clear();
            self.map_views.extend_from_slice(&views);
        }
        self.map
            .fill(&self.zone, self.sessions.as_ref(), &self.map_views);
        self.map.tentative = self.tentative();
        if let Ok(mut shared) = self.shared.map_frames[self.index].try_lock() {
            std::mem::swap(&mut *shared, &mut self.map);
        }
        self.tick_work += self.clock.now().saturating_duration_since(started);
        self.tick_cpu += thread_cpu_time().saturating_sub(cpu);
    }

    /// Records this tick's work (`step`, a checkpoint copy, a map frame) in the tick
    /// histograms.
    pub(super) fn record_tick(&mut self) {
        let took_us = (self.tick_work.as_micros() as u64).max(1);
        let _ = self.second.record(took_us);
        let _ = self.total.record(took_us);
        let _ = self
            .second_cpu
            .record((self.tick_cpu.as_micros() as u64).max(1));
        let seconds = self.tick_work.as_secs_f64();
        self.stats.histograms.tick_seconds.record(seconds);
    }

    /// The tick's busy time: from its start (`started`) to the end of transmit and the map
    /// frame — the signed datagrams verified and signed included, the wait for the disk not.
    pub(super) fn record_busy(&mut self, started: Instant) {
        let busy = self.clock.now().saturating_duration_since(started);
        (self.stats.histograms.tick_busy_seconds).record(busy.as_secs_f64());
    }

    /// Once a second: the handoff summary line and the figures the status line reads.
    pub(super) fn publish(&mut self) {
        let now = self.clock.now();
        if now < self.next_publish {
            return;
        }
        self.next_publish = now + Duration::from_secs(1);
        let unix = unix_nanos();
        self.stats.tick_phase_error_ns = self.zone.tick_phase_error(now, unix);
        self.zone.align_ticks(now, unix, Duration::from_millis(2));
        let (arrived, departed) = (self.arrived, self.departed);
        if arrived + departed > 0 {
            tracing::info!(zone = %self.zone.id(), "[+] {arrived} entities ARRIVED, [-] {departed} DEPARTED in the last second");
        }
        (self.arrived, self.departed) = (0, 0);
        self.fill_stats(false);
        *self.shared.stats[self.index].lock().expect("stats lock") = self.stats.clone();
        self.second.reset();
        self.second_cpu.reset();
    }

    /// Copies the zone's figures into `stats`, with the tick percentiles of the last
    /// second or (`whole_run`) of the whole run.
    pub(super) fn fill_stats(&mut self, whole_run: bool) {
        let ticks = if whole_run { &self.total } else { &self.second };
        let c = self.udp.counters();
        let io_drops = self.local_drops + c.truncated + c.recv_errors + c.send_errors;
        let tentative = self.tentative();
        let (zone, stats) = (&self.zone, &mut self.stats);
        stats.tentative = tentative;
        let (inbox_drops, outbox_drops) = zone.datagram_drops();
        stats.tick = zone.tick_count();
        stats.entities = zone.entities().len();
        stats.ghosts = zone.ghosts().len();
        stats.in_flight = zone.tombstone_count();
        stats.tick_p50_us = ticks.value_at_quantile(0.5);
        stats.tick_p99_us = ticks.value_at_quantile(0.99);
        stats.tick_max_us = ticks.max();
        if !whole_run {
            stats.tick_cpu_p99_us = self.second_cpu.value_at_quantile(0.99);
        }
        stats.drops = inbox_drops + outbox_drops + io_drops;
        stats.counters = *zone.counters();
        stats.rewind = zone.rewind_counters().unwrap_or_default();
        stats.ring = c;
        if let Some(d) = &self.durable {
            stats.persist = PersistCounters {
                wal_appends_durable: d.synced,
                standby_appends_acked: d.standby.as_ref().map_or(0, Stream::acked),
                standby_bytes_sent: d.standby.as_ref().map_or(0, Stream::bytes_sent),
                ..d.counters
            };
        }
        if let Some(s) = &self.sessions {
            stats.sessions = s.avatars().count();
            stats.clients = s.counters();
            stats.replicate = s.replication_counters();
            let h = s.histograms();
            let mine = &mut stats.histograms;
            mine.snapshot_bytes.clone_from(&h.snapshot_bytes);
            mine.input_age_ticks.clone_from(&h.input_age_ticks);
        }
    }
}
