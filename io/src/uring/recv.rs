//! The receive side: one multishot `RECVMSG` into the provided buffer ring, completions
//! reaped up to a budget, each datagram handed over straight from its pool buffer, the
//! buffer given back, the receive re-armed when the kernel ran out of buffers.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::cqueue;
use io_uring::opcode;
use io_uring::types::{BufRingEntry, Fd, RecvMsgOut};

use super::{BUFFER_GROUP, CANCEL_USER_DATA, RECV_BUFFER_BYTES, RECV_USER_DATA, UdpRing};

impl UdpRing {
    /// Delivers up to `budget` received datagrams to `deliver(from, bytes)`, in arrival
    /// order, and reaps send completions; never waits. Returns how many were delivered.
    /// Datagrams beyond the budget stay in the completion queue for the next call.
    pub fn recv(
        &mut self,
        budget: usize,
        mut deliver: impl FnMut(SocketAddr, &[u8]),
    ) -> std::io::Result<usize> {
        let mut delivered = 0;
        // A re-armed receive completes at once with what the socket holds, so re-arming
        // twice per call is enough; the bound keeps a failing socket from spinning here.
        let mut rearms = 0;
        if self.ring.submission().taskrun() {
            self.counters.submits += 1;
            self.ring.submit()?;
        }
        while delivered < budget {
            let before = delivered;
            let mut f = |from: SocketAddr, bytes: &[u8]| {
                delivered += 1;
                deliver(from, bytes);
            };
            self.reap_up_to(budget - before, &mut f);
            self.publish();
            if !self.recv_armed && rearms < 2 {
                rearms += 1;
                self.arm_recv();
                self.flush()?;
            } else if delivered == before {
                break;
            }
        }
        Ok(delivered)
    }

    pub(super) fn reap(&mut self, deliver: &mut dyn FnMut(SocketAddr, &[u8])) {
        self.reap_up_to(usize::MAX, deliver);
        self.publish();
    }

    /// Processes completions until `budget` datagrams were delivered or the queue is empty.
    pub(super) fn reap_up_to(&mut self, budget: usize, deliver: &mut dyn FnMut(SocketAddr, &[u8])) {
        let mut delivered = 0;
        while delivered < budget {
            let Some(cqe) = self.ring.completion().next() else {
                break;
            };
            let (user_data, result, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
            match user_data {
                RECV_USER_DATA => {
                    if !cqueue::more(flags) {
                        self.recv_armed = false;
                        self.in_flight -= 1;
                    }
                    let Some(bid) = cqueue::buffer_select(flags) else {
                        if result == -libc::ENOBUFS {
                            self.counters.recv_rearmed += 1;
                        } else if result < 0 && result != -libc::ECANCELED {
                            self.counters.recv_errors += 1;
                        }
                        continue;
                    };
                    if result >= 0 {
                        let start = usize::from(bid) * RECV_BUFFER_BYTES;
                        let buffer = &self.recv_pool[start..start + result as usize];
                        match RecvMsgOut::parse(buffer, &self.recv_header) {
                            Ok(msg) if !msg.is_payload_truncated() => {
                                match sockaddr(msg.name_data()) {
                                    Some(from) => {
                                        self.counters.received += 1;
                                        delivered += 1;
                                        deliver(from, msg.payload_data());
                                    }
                                    None => self.counters.recv_errors += 1,
                                }
                            }
                            _ => self.counters.truncated += 1,
                        }
                    } else {
                        self.counters.recv_errors += 1;
                    }
                    self.provide(bid);
                }
                CANCEL_USER_DATA => self.in_flight -= 1,
                leader => {
                    self.in_flight -= 1;
                    let slot = &self.send_slots[leader as usize];
                    let count = slot.count as u64;
                    self.free_send
                        .extend_from_slice(&slot.members[..slot.count]);
                    if result >= 0 {
                        self.counters.sent += count;
                        if count > 1 {
                            self.counters.sent_segmented += count;
                        }
                    } else {
                        self.counters.send_errors += count;
                        if count > 1 && self.gso {
                            // Some devices cannot segment (no checksum offload: EIO) or the
                            // path MTU is too small (EINVAL): send one by one from now on.
                            self.gso = false;
                            tracing::warn!(error = %std::io::Error::from_raw_os_error(-result), "UDP segmentation offload refused; sending datagrams one by one");
                        }
                    }
                }
            }
        }
    }

    pub(super) fn arm_recv(&mut self) {
        let entry = opcode::RecvMsgMulti::new(
            Fd(self.socket.as_raw_fd()),
            &raw const *self.recv_header,
            BUFFER_GROUP,
        )
        .build()
        .user_data(RECV_USER_DATA);
        self.push(&entry);
        self.recv_armed = true;
    }

    /// Gives receive buffer `bid` (back) to the kernel; visible after [`Self::publish`].
    pub(super) fn provide(&mut self, bid: u16) {
        let mask = self.recv_buffers - 1;
        // SAFETY: the entry index is masked into the ring; the kernel reads entries only
        // up to the published tail, and this one is past it until `publish`.
        let entry = unsafe { &mut *self.buf_ring.add(usize::from(self.buf_ring_tail & mask)) };
        let start = usize::from(bid) * RECV_BUFFER_BYTES;
        entry.set_addr(self.recv_pool[start..].as_ptr() as u64);
        entry.set_len(RECV_BUFFER_BYTES as u32);
        entry.set_bid(bid);
        self.buf_ring_tail = self.buf_ring_tail.wrapping_add(1);
    }

    /// Makes provided buffers visible to the kernel.
    pub(super) fn publish(&mut self) {
        // SAFETY: the tail field lives inside the first entry of the ring we own; the kernel
        // reads it atomically, so we store it atomically with release ordering (entries
        // written before are visible first).
        unsafe {
            let tail = BufRingEntry::tail(self.buf_ring).cast_mut();
            AtomicU16::from_ptr(tail).store(self.buf_ring_tail, Ordering::Release);
        }
    }
}

/// A socket address from the kernel's bytes of one (IPv4 or IPv6).
fn sockaddr(name: &[u8]) -> Option<SocketAddr> {
    if name.len() > size_of::<libc::sockaddr_storage>() {
        return None;
    }
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: `name.len()` ≤ size of `storage`, checked above.
    unsafe {
        std::ptr::copy_nonoverlapping(name.as_ptr(), (&raw mut storage).cast::<u8>(), name.len());
    }
    // SAFETY: `storage` holds `name.len()` bytes of a socket address as the kernel wrote it.
    let addr = unsafe { socket2::SockAddr::new(storage, name.len() as libc::socklen_t) };
    addr.as_socket()
}
