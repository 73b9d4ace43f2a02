//! The send side: a fixed pool of slots, datagrams copied into free slots, runs of
//! equal-size datagrams to one destination grouped for segmentation offload, one
//! submission per group, slots freed when the group's completion is reaped.

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

    /// Queues the open group's submission: a plain `SEND` for one datagram, a `SENDMSG`
    /// with a `UDP_SEGMENT` control message for several.
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
            // SEND with a destination address (`sendto`): no message header for the kernel
            // to copy and parse, unlike SENDMSG.
            opcode::Send::new(fd, slot.bytes.as_ptr(), g.bytes as u32)
                .dest_addr((&raw const slot.name).cast())
                .dest_addr_len(addr.len())
                .build()
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
