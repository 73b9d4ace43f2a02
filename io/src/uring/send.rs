//! The send side: a fixed pool of slots, datagrams copied into free slots, runs of
//! equal-size datagrams to one destination grouped for segmentation offload, one
//! submission per group, slots freed when the group's completion is reaped.
//!
//! Single datagrams (a group of one: per-client traffic, each to its own address) go by
//! `sendmmsg` instead, up to 64 per system call at the next flush, their slots free as soon
//! as the call returns (the kernel has copied them). Measured (`--bench udp`): one io_uring
//! `SEND` per datagram, registered or not, runs at ~0.8× a `sendmmsg` loop, because every
//! operation pays io_uring's per-request cost on top of the same UDP stack; a segmentation
//! group is one operation for up to 64 datagrams, which is where io_uring wins. When the
//! socket's send buffer is full (`EAGAIN`), what is left goes by io_uring `SEND`s, which
//! wait for room instead of failing.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use io_uring::opcode;
use io_uring::types::Fd;

use super::{PAYLOAD_MAX, SendError, UdpRing};

/// Most datagrams in one GSO send (the kernel's `UDP_MAX_SEGMENTS` on older kernels).
const GSO_SEGMENTS_MAX: usize = 64;
/// Most bytes in one GSO send (one IPv4 UDP datagram's payload limit, with margin).
const GSO_BYTES_MAX: usize = 65_000;

/// One send slot: a datagram's bytes, and — when the slot leads a group — the group's
/// message header, destination, segment list and `UDP_SEGMENT` control message, all at a
/// fixed address until the group's completion.
#[repr(C)]
pub(super) struct SendSlot {
    pub(super) header: libc::msghdr,
    pub(super) name: libc::sockaddr_storage,
    /// CMSG_SPACE(sizeof(u16)) is 24 bytes; u64s keep the cmsghdr aligned.
    pub(super) control: [u64; 4],
    pub(super) iovs: [libc::iovec; GSO_SEGMENTS_MAX],
    /// Slots of the group's datagrams, this one first.
    pub(super) members: [u16; GSO_SEGMENTS_MAX],
    pub(super) count: usize,
    /// A single datagram's length and its destination's length in `name`.
    pub(super) single_len: usize,
    pub(super) single_name_len: libc::socklen_t,
    pub(super) bytes: [u8; PAYLOAD_MAX],
}

impl SendSlot {
    pub(super) fn new() -> SendSlot {
        SendSlot {
            // SAFETY: msghdr and sockaddr_storage are plain old data; all-zero is valid.
            header: unsafe { std::mem::zeroed() },
            // SAFETY: as above.
            name: unsafe { std::mem::zeroed() },
            control: [0; 4],
            iovs: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; GSO_SEGMENTS_MAX],
            members: [0; GSO_SEGMENTS_MAX],
            count: 0,
            single_len: 0,
            single_name_len: 0,
            bytes: [0; PAYLOAD_MAX],
        }
    }
}

/// The group still taking datagrams (not yet submitted).
#[derive(Clone, Copy, Debug)]
pub(super) struct OpenGroup {
    leader: u16,
    to: SocketAddr,
    /// Every datagram but the last must have this length (GSO's segment size).
    segment: usize,
    bytes: usize,
    /// A shorter datagram ended the group.
    closed: bool,
}

impl UdpRing {
    /// Queues one datagram to `to`; it leaves at the next [`UdpRing::flush`].
    ///
    /// Consecutive datagrams to one destination, all of one length but the last (which may
    /// be shorter), go out as **one** send with UDP segmentation offload (`UDP_SEGMENT`):
    /// one trip through the stack for up to 64 datagrams; the receiver still gets them one
    /// by one. Other datagrams go one `SEND` each — still one submission per flush.
    pub fn send_to(&mut self, bytes: &[u8], to: SocketAddr) -> Result<(), SendError> {
        let len = bytes.len();
        if len > PAYLOAD_MAX {
            return Err(SendError::TooLarge(len));
        }
        if self.free_send.is_empty() {
            self.close_group();
            self.flush_singles();
            self.reap(&mut |_, _| {});
        }
        let Some(index) = self.free_send.pop() else {
            self.counters.send_busy += 1;
            return Err(SendError::Busy);
        };
        self.send_slots[usize::from(index)].bytes[..len].copy_from_slice(bytes);
        let joins = self.open.is_some_and(|g| {
            self.gso
                && !g.closed
                && g.to == to
                && len <= g.segment
                && len > 0
                && self.send_slots[usize::from(g.leader)].count < GSO_SEGMENTS_MAX
                && g.bytes + len <= GSO_BYTES_MAX
        });
        if joins {
            let g = self.open.as_mut().expect("checked above");
            g.bytes += len;
            g.closed = len < g.segment;
            let leader = &mut self.send_slots[usize::from(g.leader)];
            leader.members[leader.count] = index;
            leader.count += 1;
        } else {
            self.close_group();
            let leader = &mut self.send_slots[usize::from(index)];
            leader.members[0] = index;
            leader.count = 1;
            self.open = Some(OpenGroup {
                leader: index,
                to,
                segment: len,
                bytes: len,
                closed: false,
            });
        }
        Ok(())
    }

    /// Sends the queued single datagrams by `sendmmsg`, 64 per call, without blocking;
    /// frees their slots. What the socket has no room for goes by io_uring `SEND`.
    pub(super) fn flush_singles(&mut self) {
        let fd = self.socket.as_raw_fd();
        let mut start = 0;
        while start < self.singles.len() {
            let n = (self.singles.len() - start).min(GSO_SEGMENTS_MAX);
            // SAFETY: mmsghdr and iovec are plain old data; all-zero is valid.
            let mut headers: [libc::mmsghdr; GSO_SEGMENTS_MAX] = unsafe { std::mem::zeroed() };
            let mut iovs = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; GSO_SEGMENTS_MAX];
            for k in 0..n {
                let slot = &mut self.send_slots[usize::from(self.singles[start + k])];
                iovs[k] = libc::iovec {
                    iov_base: slot.bytes.as_mut_ptr().cast(),
                    iov_len: slot.single_len,
                };
                headers[k].msg_hdr.msg_name = (&raw mut slot.name).cast();
                headers[k].msg_hdr.msg_namelen = slot.single_name_len;
                headers[k].msg_hdr.msg_iov = &raw mut iovs[k];
                headers[k].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: the headers point at `iovs` and at slot memory, all alive and unmoved
            // for the call; the kernel only reads the datagrams.
            let sent =
                unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT) };
            if sent > 0 {
                let sent = sent as usize;
                self.counters.sent += sent as u64;
                let done = &self.singles[start..start + sent];
                self.free_send.extend_from_slice(done);
                start += sent;
                continue;
            }
            let error = std::io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EAGAIN | libc::ENOBUFS) => {
                    // No room now: the rest wait for it in io_uring.
                    for k in start..self.singles.len() {
                        let index = self.singles[k];
                        let entry = self.single_entry(index);
                        self.push(&entry.user_data(u64::from(index)));
                    }
                    break;
                }
                Some(libc::EINTR) => {}
                _ => {
                    // The first datagram failed (an unreachable destination, say): it is
                    // dropped and counted; the rest go on.
                    self.counters.send_errors += 1;
                    self.free_send.push(self.singles[start]);
                    start += 1;
                }
            }
        }
        self.singles.clear();
    }

    /// The io_uring `SEND` of the single datagram in slot `index` (`sendto`: no message
    /// header for the kernel to copy and parse, unlike `SENDMSG`).
    fn single_entry(&mut self, index: u16) -> io_uring::squeue::Entry {
        let fd = Fd(self.socket.as_raw_fd());
        let slot = &mut self.send_slots[usize::from(index)];
        slot.members[0] = index;
        slot.count = 1;
        opcode::Send::new(fd, slot.bytes.as_ptr(), slot.single_len as u32)
            .dest_addr((&raw const slot.name).cast())
            .dest_addr_len(slot.single_name_len)
            .build()
    }

    /// Queues the open group's submission: a single datagram for the next `sendmmsg`
    /// (or, when that path is off, a plain `SEND`), a `SENDMSG` with a `UDP_SEGMENT`
    /// control message for several.
    pub(super) fn close_group(&mut self) {
        let Some(g) = self.open.take() else {
            return;
        };
        let fd = Fd(self.socket.as_raw_fd());
        let addr = socket2::SockAddr::from(g.to);
        let leader = usize::from(g.leader);
        let count = self.send_slots[leader].count;
        // Point the leader's segment list at every member's bytes.
        for i in 0..count {
            let member = usize::from(self.send_slots[leader].members[i]);
            let len = if i + 1 < count {
                g.segment
            } else {
                g.bytes - g.segment * (count - 1)
            };
            let base = self.send_slots[member].bytes.as_mut_ptr();
            self.send_slots[leader].iovs[i] = libc::iovec {
                iov_base: base.cast(),
                iov_len: len,
            };
        }
        let slot = &mut self.send_slots[leader];
        // SAFETY: `addr.as_ptr()` points to `addr.len()` initialised bytes, which fit in a
        // sockaddr_storage.
        unsafe {
            std::ptr::copy_nonoverlapping(
                addr.as_ptr().cast::<u8>(),
                (&raw mut slot.name).cast::<u8>(),
                addr.len() as usize,
            );
        }
        let entry = if count == 1 {
            slot.single_len = g.bytes;
            slot.single_name_len = addr.len();
            if self.sendmmsg_singles {
                self.singles.push(g.leader);
                return;
            }
            self.single_entry(g.leader)
        } else {
            slot.header.msg_name = (&raw mut slot.name).cast();
            slot.header.msg_namelen = addr.len();
            slot.header.msg_iov = slot.iovs.as_mut_ptr();
            slot.header.msg_iovlen = count;
            slot.header.msg_control = slot.control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE is a size computation.
            slot.header.msg_controllen =
                unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
            // SAFETY: the control buffer is 32 bytes, 8-aligned, at least CMSG_SPACE(2) = 24
            // long, and named by the header: the first cmsghdr and its u16 fit in it.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&raw const slot.header);
                (*cmsg).cmsg_level = libc::SOL_UDP;
                (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
                libc::CMSG_DATA(cmsg)
                    .cast::<u16>()
                    .write_unaligned(g.segment as u16);
            }
            opcode::SendMsg::new(fd, &raw const slot.header).build()
        };
        self.push(&entry.user_data(u64::from(g.leader)));
    }
}
