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

use super::{LocalDatagram, RemoteZone};
use crate::signing::{Outgress, SEALED_SIZE_MAX};
use crate::uring::UdpRing;

pub(super) type Queues = [(ZoneID, Arc<ArrayQueue<LocalDatagram>>)];

/// Where a zone's datagrams go: a zone of this node (its cross-core queue), a zone of
/// another node (UDP, sealed when the node has keys), or a client (UDP).
pub(super) struct Router<'a> {
    pub(super) id: ZoneID,
    pub(super) queues: &'a Queues,
    pub(super) remote: &'a [RemoteZone],
    pub(super) outgress: Option<Outgress>,
    pub(super) sealed: [u8; SEALED_SIZE_MAX],
}

impl Router<'_> {
    /// Queues `bytes` for `to`; `false` if it was dropped (full queue, no route, refused).
    pub(super) fn route(&mut self, to: Peer, bytes: &[u8], udp: &mut UdpRing) -> bool {
        match to {
            Peer::Zone(to) => {
                if let Some((_, q)) = self.queues.iter().find(|q| q.0 == to) {
                    let mut d = LocalDatagram {
                        from: self.id,
                        len: bytes.len() as u16,
                        bytes: [0; DATAGRAM_SIZE_MAX],
                    };
                    d.bytes[..bytes.len()].copy_from_slice(bytes);
                    q.push(d).is_ok()
                } else if let Some(r) = self.remote.iter().find(|r| r.zone == to) {
                    let datagram = match self.outgress.as_mut() {
                        Some(out) => match out.seal(bytes, to, r.signer, &mut self.sealed) {
                            Some(n) => &self.sealed[..n],
                            None => return false,
                        },
                        None => bytes,
                    };
                    match udp.send_to(datagram, r.addr) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::debug!(zone = %self.id, to = %r.addr, "UDP send refused: {e}");
                            false
                        }
                    }
                } else {
                    false
                }
            }
            Peer::Client(addr) => udp.send_to(bytes, addr).is_ok(),
        }
    }
}

/// A datagram from another zone: a client input forwarded after a handoff (sealed) and a
/// client state carried with its avatar (VIEW) go to the session layer, everything else
/// to the zone.
pub(super) fn from_zone(
    zone: &mut Zone,
    sessions: Option<&mut Sessions>,
    now: Instant,
    from: ZoneID,
    bytes: &[u8],
) {
    match sessions {
        Some(s) if Sessions::is_session_datagram(bytes) => s.handle_zone_datagram(from, bytes),
        _ => zone.handle_datagram(now, Peer::Zone(from), bytes),
    }
}
