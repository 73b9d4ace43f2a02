//! Where every zone of the world runs now, shared by the zones of a node (docs/mesh.md,
//! "Failover"). A zone has one or two homes: the node that hosts it and, if it has a
//! warm standby, the node that keeps it. It runs at its standby's home once the standby
//! promoted it — and every node learns that from the zone itself: the first datagram of
//! the promoted run (signed by the standby's node, its envelope epoch the new, higher
//! incarnation) moves the route, for every zone of the node at once. What an older run
//! still sends is fenced off by the zone (`Zone::handle_zone_datagram`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use meridian_core::world::ZoneID;

/// One place a zone may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Home {
    /// The node, by its index in the world file (its signer index when traffic is signed).
    pub node: u32,
    /// The zone's UDP address there.
    pub addr: SocketAddr,
}

/// A zone's homes: where it is hosted, and where its standby would run it.
#[derive(Clone, Copy, Debug)]
pub struct ZoneRoute {
    pub zone: ZoneID,
    pub primary: Home,
    pub standby: Option<Home>,
}

impl ZoneRoute {
    fn home(&self, k: u64) -> Home {
        match (k, self.standby) {
            (1, Some(h)) => h,
            _ => self.primary,
        }
    }

    fn home_of(&self, node: u32) -> Option<u64> {
        if self.primary.node == node {
            Some(0)
        } else {
            self.standby.filter(|h| h.node == node).map(|_| 1)
        }
    }
}

/// Every zone's homes and which one it runs at: the newest incarnation heard of it (high
/// 32 bits) and the home that run is at (low bits), in one word so both change together.
#[derive(Debug)]
pub struct Routes {
    me: u32,
    entries: Vec<(ZoneRoute, AtomicU64)>,
    /// Bumped whenever a zone moves: the drivers refresh what they derive (the client
    /// addresses REDIRECTs name).
    version: AtomicU64,
}

/// A change of home: the zone, the node it runs on now, the incarnation.
pub type Moved = (ZoneID, u32, u32);

impl Routes {
    /// `me`: this node's index. Every zone starts at its primary's home.
    pub fn new(me: u32, routes: Vec<ZoneRoute>) -> Routes {
        Routes {
            me,
            entries: routes.into_iter().map(|r| (r, AtomicU64::new(0))).collect(),
            version: AtomicU64::new(0),
        }
    }

    /// Changes with every move.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Every zone and where it runs now.
    pub fn homes(&self) -> impl Iterator<Item = (ZoneID, Home)> + '_ {
        self.entries
            .iter()
            .map(|(r, now)| (r.zone, r.home(now.load(Ordering::Acquire) & 1)))
    }

    fn entry(&self, zone: ZoneID) -> Option<&(ZoneRoute, AtomicU64)> {
        self.entries.iter().find(|e| e.0.zone == zone)
    }

    /// Where zone `zone` runs now; `None` for a zone the world does not have.
    pub fn home(&self, zone: ZoneID) -> Option<Home> {
        let (route, now) = self.entry(zone)?;
        Some(route.home(now.load(Ordering::Acquire) & 1))
    }

    /// This node's index.
    pub fn me(&self) -> u32 {
        self.me
    }

    /// Whether `zone` runs on this node now.
    pub fn is_local(&self, zone: ZoneID) -> bool {
        self.home(zone).is_some_and(|h| h.node == self.me)
    }

    /// The zone and home a datagram from `addr` (another node's zone address) comes from.
    pub fn by_addr(&self, addr: SocketAddr) -> Option<(ZoneID, Home)> {
        self.entries.iter().find_map(|(r, _)| {
            [Some(r.primary), r.standby]
                .into_iter()
                .flatten()
                .find(|h| h.addr == addr && h.node != self.me)
                .map(|h| (r.zone, h))
        })
    }

    /// A datagram of `zone`'s run `incarnation` came from node `node`: a newer run than
    /// any heard of moves the zone's route to that node. Returns the move, if it was one.
    pub fn heard(&self, zone: ZoneID, node: u32, incarnation: u32) -> Option<Moved> {
        let (route, now) = self.entry(zone)?;
        let home = route.home_of(node)?;
        let word = (u64::from(incarnation) << 32) | home;
        let mut old = now.load(Ordering::Acquire);
        loop {
            if (old >> 32) >= u64::from(incarnation) {
                return None;
            }
            match now.compare_exchange_weak(old, word, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(seen) => old = seen,
            }
        }
        if old & 1 == home {
            return None;
        }
        self.version.fetch_add(1, Ordering::AcqRel);
        Some((zone, node, incarnation))
    }

    /// `zone`'s standby took it over as `incarnation` (its run here stood down).
    pub fn taken_over(&self, zone: ZoneID, incarnation: u32) {
        if let Some((route, now)) = self.entry(zone)
            && route.standby.is_some()
        {
            now.fetch_max((u64::from(incarnation) << 32) | 1, Ordering::AcqRel);
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// This node promoted `zone` as `incarnation`: it runs here from now on.
    pub fn promoted(&self, zone: ZoneID, incarnation: u32) -> Option<Moved> {
        let (route, now) = self.entry(zone)?;
        let home = route.home_of(self.me)?;
        now.fetch_max((u64::from(incarnation) << 32) | home, Ordering::AcqRel);
        self.version.fetch_add(1, Ordering::AcqRel);
        Some((zone, self.me, incarnation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(me: u32) -> Routes {
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        Routes::new(
            me,
            vec![
                ZoneRoute {
                    zone: ZoneID(0),
                    primary: Home {
                        node: 0,
                        addr: addr(7000),
                    },
                    standby: Some(Home {
                        node: 2,
                        addr: addr(7201),
                    }),
                },
                ZoneRoute {
                    zone: ZoneID(1),
                    primary: Home {
                        node: 1,
                        addr: addr(7100),
                    },
                    standby: None,
                },
            ],
        )
    }

    #[test]
    fn a_newer_run_from_the_standby_moves_the_route_and_an_older_one_never_does() {
        let r = routes(1);
        assert_eq!(r.home(ZoneID(0)).map(|h| h.node), Some(0));
        assert_eq!(r.heard(ZoneID(0), 0, 3), None, "the first run heard");
        assert_eq!(r.heard(ZoneID(0), 2, 3), None, "not newer");
        assert_eq!(r.home(ZoneID(0)).map(|h| h.node), Some(0));
        assert_eq!(r.heard(ZoneID(0), 2, 4), Some((ZoneID(0), 2, 4)));
        assert_eq!(r.home(ZoneID(0)).map(|h| h.node), Some(2));
        // The old primary, still running behind a cut, or restarted with its old number.
        assert_eq!(r.heard(ZoneID(0), 0, 4), None);
        assert_eq!(r.home(ZoneID(0)).map(|h| h.node), Some(2));
        // A node that is neither home cannot move it.
        assert_eq!(r.heard(ZoneID(1), 2, 9), None);
        assert_eq!(r.home(ZoneID(1)).map(|h| h.node), Some(1));
    }

    #[test]
    fn a_promotion_here_makes_the_zone_local() {
        let r = routes(2);
        assert!(!r.is_local(ZoneID(0)));
        r.heard(ZoneID(0), 0, 3);
        assert_eq!(r.promoted(ZoneID(0), 4), Some((ZoneID(0), 2, 4)));
        assert!(r.is_local(ZoneID(0)));
        assert_eq!(
            r.by_addr(SocketAddr::from(([127, 0, 0, 1], 7000))),
            Some((
                ZoneID(0),
                Home {
                    node: 0,
                    addr: SocketAddr::from(([127, 0, 0, 1], 7000))
                }
            ))
        );
        assert_eq!(r.by_addr(SocketAddr::from(([127, 0, 0, 1], 7201))), None);
    }
}
