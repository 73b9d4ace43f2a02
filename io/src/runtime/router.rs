//! Where a zone's datagrams go, and where those from other zones go in: the zone or its
//! session layer.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use meridian_core::limits::DATAGRAM_SIZE_MAX;
use meridian_core::net::Peer;
use meridian_core::session::Sessions;
use meridian_core::time::Instant;
use meridian_core::world::ZoneID;
use meridian_core::zone::Zone;

use super::LocalDatagram;
use super::routes::Routes;
use crate::signing::{Outgress, SEALED_SIZE_MAX};
use crate::uring::UdpRing;

pub(super) type Queues = [(ZoneID, Arc<ArrayQueue<LocalDatagram>>)];

/// Where a zone's datagrams go: a zone of this node (its cross-core queue), a zone of
/// another node (UDP, sealed when the node has keys), or a client (UDP).
pub(super) struct Router<'a> {
    pub(super) id: ZoneID,
    /// What this zone's datagrams carry as its run (the envelope's epoch): its
    /// incarnation.
    pub(super) incarnation: u32,
    pub(super) queues: &'a Queues,
    pub(super) routes: &'a Routes,
    pub(super) outgress: Option<Outgress>,
    pub(super) sealed: [u8; SEALED_SIZE_MAX],
}

impl Router<'_> {
    /// Queues `bytes` for `to`; `false` if it was dropped (full queue, no route, refused).
    pub(super) fn route(&mut self, to: Peer, bytes: &[u8], udp: &mut UdpRing) -> bool {
        match to {
            Peer::Zone(to) => {
                let Some(home) = self.routes.home(to) else {
                    return false;
                };
                if home.node == self.routes.me() {
                    let Some((_, q)) = self.queues.iter().find(|q| q.0 == to) else {
                        return false;
                    };
                    let mut d = LocalDatagram {
                        from: self.id,
                        incarnation: self.incarnation,
                        len: bytes.len() as u16,
                        bytes: [0; DATAGRAM_SIZE_MAX],
                    };
                    d.bytes[..bytes.len()].copy_from_slice(bytes);
                    return q.push(d).is_ok();
                }
                let datagram = match self.outgress.as_mut() {
                    Some(out) => match out.seal(bytes, to, home.node, &mut self.sealed) {
                        Some(n) => &self.sealed[..n],
                        None => return false,
                    },
                    None => bytes,
                };
                match udp.send_to(datagram, home.addr) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::debug!(zone = %self.id, to = %home.addr, "UDP send refused: {e}");
                        false
                    }
                }
            }
            Peer::Client(addr) => udp.send_to(bytes, addr).is_ok(),
        }
    }
}

/// A datagram from run `incarnation` of another zone: a client input forwarded after a
/// handoff (sealed) and a client state carried with its avatar (VIEW) go to the session
/// layer, everything else to the zone, which fences off the runs older than the newest
/// it heard of.
pub(super) fn from_zone(
    zone: &mut Zone,
    sessions: Option<&mut Sessions>,
    now: Instant,
    (from, incarnation): (ZoneID, u32),
    bytes: &[u8],
) {
    match sessions {
        Some(s) if Sessions::is_session_datagram(bytes) => s.handle_zone_datagram(from, bytes),
        _ => {
            zone.handle_zone_datagram(now, from, incarnation, bytes);
        }
    }
}
