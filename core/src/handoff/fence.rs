//! Incarnation fencing (docs/mesh.md): a zone drops what superseded runs of its peers
//! send. A run of a zone is superseded when the zone restarts (its own node) or its
//! standby takes it over (another node, after membership declared the primary down); an
//! old primary alive behind a partition must change nothing. The standby gate already
//! holds everything it sends that rests on records the new run lacks; the fence also
//! stops the rest (ghosts of its alternative history, resends), once the zone has heard of
//! the new run — from the mesh's announcement or from a datagram of that run.
//!
//! **Durable.** What a zone has heard of its peers' runs is logged (a `PeerRun` record
//! when a peer's newest run rises) and kept in every checkpoint, and a restored zone
//! fences from its first tick. It used to live in memory only: a zone restarted from its
//! files took an old run's resent COMMIT — one whose transfer the new run had completed
//! and confirmed, so the target's epoch memory had long let the entity go — and the
//! entity had two owners (simulator seed 1344, `--comebacks --messages`).

use crate::handoff::LogRecord;
use crate::net::Peer;
use crate::time::Instant;
use crate::world::ZoneID;
use crate::zone::Zone;

impl Zone {
    /// A datagram from run `incarnation` of zone `from` (the sender's
    /// [`Zone::incarnation`], carried beside the datagram). One from an incarnation older
    /// than the newest this zone has heard of — in a datagram or from [`Zone::fence`] — is
    /// dropped and counted (`fenced`): a superseded run of a zone, such as an old primary
    /// alive behind a partition after its standby took over, changes nothing here.
    /// Returns whether the datagram was taken.
    pub fn handle_zone_datagram(
        &mut self,
        now: Instant,
        from: ZoneID,
        incarnation: u32,
        datagram: &[u8],
    ) -> bool {
        let newest = self.peer_incarnations.get(&from).copied();
        if newest.is_some_and(|n| incarnation < n) && !self.bugs.skip_incarnation_fence {
            self.counters.fenced += 1;
            return false;
        }
        if newest.is_none_or(|n| incarnation > n) {
            self.fence(from, incarnation);
        }
        self.handle_datagram(now, Peer::Zone(from), datagram);
        true
    }

    /// Zone `zone` runs as `incarnation` from now on (announced by the mesh when a standby
    /// took it over): anything its older runs still send is fenced off. Logged when it is
    /// news (a newer run than any heard of, past the first), so a restored zone knows it.
    /// A full log leaves it to the next checkpoint, which holds every peer's newest run.
    pub fn fence(&mut self, zone: ZoneID, incarnation: u32) {
        let newest = self.peer_incarnations.get(&zone).copied();
        if newest.is_some_and(|n| n >= incarnation) {
            return;
        }
        self.peer_incarnations.insert(zone, incarnation);
        // A run past the first one heard of (the world's start is no news).
        if newest.is_some() || incarnation > 0 {
            self.watch.new_run(zone, self.tick);
            // COMMITs it has not answered go to the new run now, not at their next
            // backoff (up to 8 ticks): until it has one, its entity is shown by no zone.
            let tick = self.tick;
            for tomb in self.tombstones.values_mut() {
                if tomb.commit.transfer.target_zone.get() == zone.0 {
                    tomb.next_retransmit_tick = tomb.next_retransmit_tick.min(tick);
                }
            }
        }
        if incarnation == 0 || self.bugs.forget_peer_runs {
            // Run 0 fences nothing. BROKEN ON PURPOSE when `forget_peer_runs`.
            return;
        }
        if self.log.len() < self.log.capacity() {
            self.log.push(LogRecord::PeerRun { zone, incarnation });
        } else {
            self.counters.log_full += 1;
        }
    }

    /// A restored zone's knowledge of `zone`'s newest run (from its checkpoint or log):
    /// fenced as before the restart, not logged again.
    pub(crate) fn restore_peer_run(&mut self, zone: ZoneID, incarnation: u32) {
        let newest = self.peer_incarnations.entry(zone).or_insert(incarnation);
        *newest = (*newest).max(incarnation);
    }
}
