//! Datagrams in and out of a zone, in fixed pools.
//!
//! [`Inbox`] holds the datagrams that arrived since the last tick (copied in by
//! `handle_datagram`, processed by the tick). [`Outbox`] packs the packets a tick produces
//! into datagrams per destination — several packets share a datagram up to
//! [`DATAGRAM_SIZE_MAX`], each keeping its own header and length — and hands them to the
//! driver through `poll_transmit`. Both are allocated once; when a pool is full the
//! datagram or packet is dropped and counted (retransmission recovers handoff messages).

use core::net::SocketAddr;

use meridian_layouts::Header;

use crate::limits::DATAGRAM_SIZE_MAX;
use crate::world::ZoneID;

/// Who a datagram comes from or goes to. The driver maps a zone to a cross-core queue
/// (same node) or to a UDP address (another node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    Zone(ZoneID),
    Client(SocketAddr),
}

/// A datagram ready to send: `len` bytes were written to the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub len: usize,
}

/// Calls `f(kind_byte, packet)` for each packet in a datagram, in order. Stops at the first
/// packet whose header is truncated or whose length field does not fit; returns `false`
/// then (the rest of the datagram is ignored and the caller counts it as bad).
pub fn for_each_packet(datagram: &[u8], mut f: impl FnMut(u8, &[u8])) -> bool {
    let mut rest = datagram;
    while !rest.is_empty() {
        let Some(head) = rest.get(..Header::SIZE) else {
            return false;
        };
        let header: &Header = bytemuck::from_bytes(head);
        let length = usize::from(header.length.get());
        if length < Header::SIZE || length > rest.len() {
            return false;
        }
        let (packet, tail) = rest.split_at(length);
        f(header.kind, packet);
        rest = tail;
    }
    true
}

/// Datagrams received since the last tick.
#[derive(Debug)]
pub struct Inbox {
    bytes: Vec<u8>,
    entries: Vec<(Peer, usize)>,
    capacity: usize,
    /// Datagrams dropped because the inbox was full (cumulative).
    pub dropped: u64,
}

impl Inbox {
    pub fn new(capacity: usize) -> Inbox {
        Inbox {
            bytes: vec![0; capacity * DATAGRAM_SIZE_MAX],
            entries: Vec::with_capacity(capacity),
            capacity,
            dropped: 0,
        }
    }

    /// Copies a datagram in; `false` if it was dropped (inbox full or oversized).
    pub fn push(&mut self, from: Peer, datagram: &[u8]) -> bool {
        if self.entries.len() == self.capacity || datagram.len() > DATAGRAM_SIZE_MAX {
            self.dropped += 1;
            return false;
        }
        let start = self.entries.len() * DATAGRAM_SIZE_MAX;
        self.bytes[start..start + datagram.len()].copy_from_slice(datagram);
        self.entries.push((from, datagram.len()));
        true
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `index`-th datagram and its sender.
    pub fn get(&self, index: usize) -> (Peer, &[u8]) {
        let (from, len) = self.entries[index];
        let start = index * DATAGRAM_SIZE_MAX;
        (from, &self.bytes[start..start + len])
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Most destinations a tick can have a datagram open to at once (neighbours, and later
/// clients are packed one per datagram).
const OPEN_MAX: usize = 16;

/// Datagrams produced by a tick, waiting for `poll_transmit`.
#[derive(Debug)]
pub struct Outbox {
    bytes: Vec<u8>,
    /// (destination, length) per buffer in use, in the order they were opened.
    entries: Vec<(Peer, usize)>,
    capacity: usize,
    /// Buffers still accepting packets: (destination, entry index).
    open: [(Peer, usize); OPEN_MAX],
    open_count: usize,
    /// Next entry `poll` returns.
    next: usize,
    /// Packets dropped because every buffer was in use (cumulative).
    pub dropped: u64,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            bytes: vec![0; capacity * DATAGRAM_SIZE_MAX],
            entries: Vec::with_capacity(capacity),
            capacity,
            open: [(Peer::Zone(ZoneID(0)), 0); OPEN_MAX],
            open_count: 0,
            next: 0,
            dropped: 0,
        }
    }

    /// Appends one packet for `to`, sharing a datagram with earlier packets to the same
    /// destination when it fits. `false` if dropped.
    pub fn push(&mut self, to: Peer, packet: &[u8]) -> bool {
        assert!(packet.len() <= DATAGRAM_SIZE_MAX);
        if let Some(k) = self.open[..self.open_count].iter().position(|o| o.0 == to) {
            let entry = self.open[k].1;
            let len = self.entries[entry].1;
            if len + packet.len() <= DATAGRAM_SIZE_MAX {
                let start = entry * DATAGRAM_SIZE_MAX + len;
                self.bytes[start..start + packet.len()].copy_from_slice(packet);
                self.entries[entry].1 += packet.len();
                return true;
            }
            // Full: close it; a new buffer opens below.
            self.open[k] = self.open[self.open_count - 1];
            self.open_count -= 1;
        }
        if self.entries.len() == self.capacity {
            self.dropped += 1;
            return false;
        }
        let entry = self.entries.len();
        let start = entry * DATAGRAM_SIZE_MAX;
        self.bytes[start..start + packet.len()].copy_from_slice(packet);
        self.entries.push((to, packet.len()));
        if self.open_count == OPEN_MAX {
            // Too many destinations at once: stop packing into the oldest.
            self.open.copy_within(1..OPEN_MAX, 0);
            self.open_count -= 1;
        }
        self.open[self.open_count] = (to, entry);
        self.open_count += 1;
        true
    }

    /// Stops packing: later packets start new datagrams. Called at the end of a tick.
    pub fn close(&mut self) {
        self.open_count = 0;
    }

    /// Copies the next datagram into `buf` (at least [`DATAGRAM_SIZE_MAX`] bytes).
    pub fn poll(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        if self.next == self.entries.len() {
            if !self.entries.is_empty() && self.open_count == 0 {
                self.entries.clear();
                self.next = 0;
            }
            return None;
        }
        let (to, len) = self.entries[self.next];
        let start = self.next * DATAGRAM_SIZE_MAX;
        buf[..len].copy_from_slice(&self.bytes[start..start + len]);
        self.next += 1;
        if self.next == self.entries.len() && self.open_count == 0 {
            self.entries.clear();
            self.next = 0;
        }
        Some(Transmit { to, len })
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.entries.len() - self.next
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_layouts::Kind;

    fn packet(kind: Kind, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[..8].copy_from_slice(bytemuck::bytes_of(&Header::new(kind, len as u16)));
        p
    }

    #[test]
    fn packs_per_destination_and_splits_at_the_mtu() {
        let mut out = Outbox::new(8);
        let a = Peer::Zone(ZoneID(1));
        let b = Peer::Zone(ZoneID(2));
        for _ in 0..40 {
            assert!(out.push(a, &packet(Kind::Ack, 36)));
        }
        assert!(out.push(b, &packet(Kind::Done, 36)));
        out.close();
        let mut buf = [0u8; DATAGRAM_SIZE_MAX];
        let first = out.poll(&mut buf).unwrap();
        assert_eq!(
            first,
            Transmit {
                to: a,
                len: 33 * 36
            }
        );
        let mut kinds = 0;
        assert!(for_each_packet(&buf[..first.len], |k, p| {
            assert_eq!(k, Kind::Ack as u8);
            assert_eq!(p.len(), 36);
            kinds += 1;
        }));
        assert_eq!(kinds, 33);
        assert_eq!(out.poll(&mut buf).unwrap(), Transmit { to: a, len: 7 * 36 });
        assert_eq!(out.poll(&mut buf).unwrap(), Transmit { to: b, len: 36 });
        assert_eq!(out.poll(&mut buf), None);
        assert!(out.is_empty());
    }

    #[test]
    fn bad_length_stops_the_walk() {
        let mut d = packet(Kind::Ack, 36);
        d.extend_from_slice(&[1, 2, 3]);
        let mut n = 0;
        assert!(!for_each_packet(&d, |_, _| n += 1));
        assert_eq!(n, 1);
    }

    #[test]
    fn full_pools_drop_and_count() {
        let mut out = Outbox::new(1);
        let a = Peer::Zone(ZoneID(1));
        assert!(out.push(a, &packet(Kind::Ack, 1000)));
        assert!(!out.push(a, &packet(Kind::Ack, 1000)));
        assert_eq!(out.dropped, 1);
        let mut inbox = Inbox::new(1);
        assert!(inbox.push(a, &[0; 10]));
        assert!(!inbox.push(a, &[0; 10]));
        assert!(!Inbox::new(4).push(a, &[0; DATAGRAM_SIZE_MAX + 1]));
    }
}
