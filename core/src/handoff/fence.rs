//! Incarnation fencing (docs/mesh.md): a zone drops what superseded runs of its peers
//! send. A run of a zone is superseded when the zone restarts (its own node) or its
//! standby takes it over (another node, after membership declared the primary down); an
//! old primary alive behind a partition must change nothing. The standby gate already
//! holds everything it sends that rests on records the new run lacks; the fence also
//! stops the rest (ghosts of its alternative history, resends), once the zone has heard of
//! the new run — from the mesh's announcement or from a datagram of that run.

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
        let newest = self.peer_incarnations.entry(from).or_insert(incarnation);
        if incarnation < *newest && !self.bugs.skip_incarnation_fence {
            self.counters.fenced += 1;
            return false;
        }
        *newest = (*newest).max(incarnation);
        self.handle_datagram(now, Peer::Zone(from), datagram);
        true
    }

    /// Zone `zone` runs as `incarnation` from now on (announced by the mesh when a standby
    /// took it over): anything its older runs still send is fenced off.
    pub fn fence(&mut self, zone: ZoneID, incarnation: u32) {
        let newest = self.peer_incarnations.entry(zone).or_insert(incarnation);
        *newest = (*newest).max(incarnation);
    }
}
