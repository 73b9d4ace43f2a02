//! The `replicate/meridian/1000` workload as a plain program, for `perf` and for
//! `valgrind --tool=cachegrind` (whose instruction and cache-miss counts, unlike times,
//! do not drift with a shared machine's load): 1,000 clients in a zone of 20,000
//! walkers, `TICKS` ticks (default 60; the first 30 are warm-up), every client
//! acknowledging the last snapshot, as the bench does (see `ACK_LAG` below).
//!
//! Run: `cargo run --release -p meridian-benches --example replicate_ticks [TICKS]`.
//! `CLIENTS=n` sets the client count (the per-tick copy of the zone's records, paid once
//! per tick whatever the count, is most of a run with one client); `SEARCH_EVERY=n` how
//! often a client's interest set is searched (1: every tick, as
//! `replicate/meridian-search-every-tick`; default 6); `ACK_LAG=n` how many ticks behind
//! the clients' acknowledgements run (3: as `replicate/meridian-lagged`; default 0);
//! `WALKERS=n` the zone's walkers (1000000: as `replicate/meridian-dense`); unset,
//! unreadable or 0: the default. It
//! prints the wall time per snapshot of the ticks after the warm-up, the zone's own ticks
//! left out: a quick A/B of two builds (alternate them; one run is noise on a shared
//! machine).

use meridian_benches::{snapshot_clients, tick_alone, zone_with_walkers};
use meridian_core::replicate::{ClientView, InterestConfig, Replicator};
use meridian_core::time::Instant;
use meridian_layouts::client::CLIENT_DATAGRAM_MAX;

/// Ticks left out of the timing: clients' first snapshots are whole, and the history and
/// the budgets settle.
const WARM_UP_TICKS: u32 = 30;

fn main() {
    let clients: usize = setting("CLIENTS", 1000);
    let ticks: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60);
    let config = InterestConfig {
        search_every_ticks: setting("SEARCH_EVERY", InterestConfig::default().search_every_ticks),
        ..InterestConfig::default()
    };
    let ack_lag: u32 = setting("ACK_LAG", 0);
    let walkers: usize = setting("WALKERS", 20_000);
    let mut zone = zone_with_walkers(walkers, 12);
    let tick = zone.world().tick_duration();
    let mut now = Instant::ZERO;
    let mut replicator = Replicator::new(config);
    let mut views: Vec<ClientView> = (0..clients as u32)
        .map(|k| ClientView::with_phase(&config, k))
        .collect();
    let mut out = [0u8; CLIENT_DATAGRAM_MAX];
    let mut bytes = 0u64;
    let mut steady = std::time::Duration::ZERO;
    for snapshot_tick in 1..=ticks {
        now = now + tick;
        tick_alone(&mut zone, now);
        for view in &mut views {
            view.acknowledge((snapshot_tick - 1).saturating_sub(ack_lag));
        }
        let started = std::time::Instant::now();
        bytes += snapshot_clients(
            (&mut replicator, &mut views),
            &zone,
            snapshot_tick,
            &mut out,
        );
        if snapshot_tick > WARM_UP_TICKS {
            steady += started.elapsed();
        }
    }
    let c = replicator.counters();
    println!(
        "{ticks} ticks, {} snapshots, {:.0} entry bytes per snapshot, {} deferred",
        c.snapshots,
        bytes as f64 / c.snapshots.max(1) as f64,
        c.deferred
    );
    let measured = clients as f64 * f64::from(ticks.saturating_sub(WARM_UP_TICKS));
    if measured > 0.0 {
        println!(
            "after the warm-up: {:.3} µs per snapshot",
            steady.as_secs_f64() * 1e6 / measured
        );
    }
}

/// The environment variable `name` as a number; unset, unreadable or 0: `default`.
fn setting<T: std::str::FromStr + Default + PartialEq>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n != T::default())
        .unwrap_or(default)
}
