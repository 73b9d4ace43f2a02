//! Batched UDP through io_uring: one ring per socket, owned by the thread that ticks it.
//!
//! **Receive.** One multishot `RECVMSG` stays armed on the socket. The kernel takes a
//! buffer from a *provided buffer ring* (a pool of [`RECV_BUFFER_BYTES`] buffers registered
//! once) for each datagram and posts one completion; [`UdpRing::recv`] hands each datagram
//! to the caller straight from its pool buffer and gives the buffer back. There is no copy
//! into an intermediate queue and no system call per datagram. One armed request, not many:
//! several armed single-shot receives on one socket are all woken by every datagram.
//!
//! **Send.** [`UdpRing::send_to`] copies a datagram into a free slot of the send pool and
//! queues a `SENDMSG`; [`UdpRing::flush`] submits everything queued — a tick's whole output
//! and the receive re-arm — in one `io_uring_enter`. A slot is reused only after its
//! completion is reaped. When all slots are in flight `send_to` refuses
//! ([`SendError::Busy`]) rather than block: the caller counts a drop, like a full socket
//! buffer, and the protocol retransmits.
//!
//! **Memory.** All buffers, headers and the buffer ring are allocated once, in
//! [`UdpRing::new`], and never move; nothing allocates afterwards.
//!
//! **Completion queue bound.** Operations in flight are not the bound: the one multishot
//! receive posts a completion per datagram. But each of those holds a receive buffer that
//! returns to the kernel only when its completion is reaped, so at most `recv_buffers`
//! receive completions (plus the one that ends the receive) can be pending; sends add at
//! most `send_slots` (one per group, a group holds ≥ 1 slot) and the cancellation at drop
//! one. The completion queue is sized to that sum (rounded up to a power of two), so it
//! cannot overflow whatever the traffic.
//!
//! The ring is independent of glommio: a zone's executor polls it without blocking at each
//! tick ([`UdpRing::recv`] and [`UdpRing::flush`] never wait), a client or a bench can block
//! in [`UdpRing::wait`].
//!
//! Requires Linux ≥ 6.0 (multishot `RECVMSG`, provided buffer rings).

#![allow(
    unsafe_code,
    reason = "io_uring shares memory with the kernel: buffers and headers are lent by pointer"
)]

mod recv;
mod send;

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::net::{SocketAddr, UdpSocket};

use io_uring::types::{BufRingEntry, CancelBuilder};
use io_uring::{IoUring, opcode, squeue};

use send::{OpenGroup, SendSlot};

/// Bytes per receive buffer: the kernel's `io_uring_recvmsg_out` header (16), the sender's
/// address (a `sockaddr_storage`, 128) and a datagram of up to 1,500 bytes (a full
/// Ethernet MTU). Anything longer is reported truncated and dropped.
pub const RECV_BUFFER_BYTES: usize = 16 + 128 + PAYLOAD_MAX;
/// Longest datagram the ring sends or delivers.
pub const PAYLOAD_MAX: usize = 1500;
/// The provided-buffer group this ring registers (one group per ring).
const BUFFER_GROUP: u16 = 0;
/// `user_data` of the multishot receive; send slots use their index.
const RECV_USER_DATA: u64 = u64::MAX;
/// `user_data` of cancellations at drop.
const CANCEL_USER_DATA: u64 = u64::MAX - 1;

/// Sizes of a ring's pools.
#[derive(Clone, Copy, Debug)]
pub struct RingConfig {
    /// Receive buffers (a power of two, ≤ 32,768): how many datagrams can wait between two
    /// calls of [`UdpRing::recv`] before the kernel has no buffer left (it then stops the
    /// receive; [`UdpRing::recv`] re-arms it, and the socket buffer holds the rest).
    pub recv_buffers: u16,
    /// Send slots: datagrams in flight at once.
    pub send_slots: u16,
    /// Send runs of equal-size datagrams to one destination with segmentation offload.
    pub gso: bool,
    /// Send single datagrams (not in a segmentation group) by `sendmmsg`, 64 per call,
    /// rather than one io_uring `SEND` each (module `send`: ~1.2× the throughput here).
    pub sendmmsg_singles: bool,
}

impl Default for RingConfig {
    fn default() -> Self {
        Self {
            recv_buffers: 1024,
            send_slots: 1024,
            gso: true,
            sendmmsg_singles: true,
        }
    }
}

/// Why a datagram was not queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// Longer than [`PAYLOAD_MAX`].
    #[error("datagram of {0} bytes exceeds {PAYLOAD_MAX}")]
    TooLarge(usize),
    /// Every send slot is in flight.
    #[error("all send slots are in flight")]
    Busy,
}

meridian_core::counters! {
    /// What a ring has done since it was made.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RingCounters {
        /// Datagrams delivered by [`UdpRing::recv`].
        pub received: u64,
        /// Datagrams longer than [`PAYLOAD_MAX`], dropped.
        pub truncated: u64,
        /// Receive completions with an error (other than running out of buffers).
        pub recv_errors: u64,
        /// Times the kernel ran out of receive buffers and the receive was re-armed.
        pub recv_rearmed: u64,
        /// Datagrams the kernel accepted.
        pub sent: u64,
        /// Of those, datagrams that went in a segmentation-offload group of two or more.
        pub sent_segmented: u64,
        /// Send completions with an error.
        pub send_errors: u64,
        /// `send_to` calls refused because every slot was in flight.
        pub send_busy: u64,
        /// `io_uring_enter` calls made.
        pub submits: u64,
    }
}

/// A UDP socket driven through its own io_uring. Not `Send`: it belongs to the thread
/// that made it, like a glommio socket.
pub struct UdpRing {
    ring: IoUring,
    socket: UdpSocket,
    /// The template header of the multishot receive (the kernel reads its name and control
    /// lengths once per datagram).
    recv_header: Box<libc::msghdr>,
    /// The receive pool, `recv_buffers × RECV_BUFFER_BYTES`.
    recv_pool: Box<[u8]>,
    /// The provided-buffer ring shared with the kernel, page-aligned.
    buf_ring: *mut BufRingEntry,
    buf_ring_layout: Layout,
    buf_ring_tail: u16,
    recv_buffers: u16,
    recv_armed: bool,
    send_slots: Box<[SendSlot]>,
    free_send: Vec<u16>,
    open: Option<OpenGroup>,
    /// Segmentation offload in use; turned off for good if the kernel refuses a group.
    gso: bool,
    sendmmsg_singles: bool,
    /// Slots of single datagrams waiting for the next `sendmmsg`.
    singles: Vec<u16>,
    /// Operations the kernel may still touch memory of.
    in_flight: usize,
    counters: RingCounters,
}

impl UdpRing {
    /// Takes over `socket` (switched to blocking mode: io_uring never blocks the thread,
    /// and a non-blocking socket would make an armed receive fail instead of wait).
    pub fn new(socket: UdpSocket, config: RingConfig) -> std::io::Result<Self> {
        let recv_buffers = config.recv_buffers;
        if !recv_buffers.is_power_of_two() || recv_buffers > 1 << 15 || config.send_slots == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "recv_buffers must be a power of two ≤ 32768 and send_slots ≥ 1",
            ));
        }
        socket.set_nonblocking(false)?;
        let entries = (u32::from(config.send_slots) + 2).next_power_of_two();
        // See "Completion queue bound" in the module docs.
        let completions =
            (u32::from(recv_buffers) + u32::from(config.send_slots) + 2).next_power_of_two();
        // Completions are posted when this thread next enters the kernel rather than by
        // interrupting it (cooperative task running); the flag tells `recv` when to enter.
        let ring = IoUring::builder()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_single_issuer()
            .setup_cqsize(completions.max(2 * entries))
            .build(entries)?;

        let (buf_ring, buf_ring_layout) = register_buf_ring(&ring, recv_buffers)?;

        // SAFETY: msghdr and sockaddr_storage are plain old data; all-zero is valid.
        let mut recv_header: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let send_slots = (0..config.send_slots)
            .map(|_| SendSlot::new())
            .collect::<Box<[_]>>();
        let mut me = Self {
            ring,
            socket,
            recv_header,
            recv_pool: vec![0u8; usize::from(recv_buffers) * RECV_BUFFER_BYTES].into(),
            buf_ring,
            buf_ring_layout,
            buf_ring_tail: 0,
            recv_buffers,
            recv_armed: false,
            free_send: (0..config.send_slots).rev().collect(),
            send_slots,
            open: None,
            gso: config.gso,
            sendmmsg_singles: config.sendmmsg_singles,
            singles: Vec::with_capacity(usize::from(config.send_slots)),
            in_flight: 0,
            counters: RingCounters::default(),
        };
        for bid in 0..recv_buffers {
            me.provide(bid);
        }
        me.publish();
        me.arm_recv();
        me.flush()?;
        Ok(me)
    }

    /// The socket's local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// What the ring has done so far.
    pub fn counters(&self) -> RingCounters {
        self.counters
    }

    /// Submits everything queued (sends, a receive re-arm) in one system call, if anything
    /// is queued. Never waits.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.close_group();
        self.flush_singles();
        if self.ring.submission().is_empty() {
            return Ok(());
        }
        self.counters.submits += 1;
        self.ring.submit()?;
        Ok(())
    }

    /// Submits what is queued and blocks until at least one completion is ready (for
    /// clients and benches; a zone never waits here, it sleeps on its tick timer).
    pub fn wait(&mut self) -> std::io::Result<()> {
        self.close_group();
        self.flush_singles();
        self.counters.submits += 1;
        match self.ring.submit_and_wait(1) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Queues one submission, submitting first if the queue is full.
    fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: every entry points into memory this ring owns and keeps at a fixed
            // address until the entry's completion is reaped (or the ring is torn down in
            // `drop`, which waits for all of them).
            let pushed = unsafe { self.ring.submission().push(entry) };
            if pushed.is_ok() {
                self.in_flight += 1;
                return;
            }
            self.counters.submits += 1;
            // The submission queue is larger than everything that can be in flight, so
            // it is only full of entries not yet submitted: submitting empties it.
            let _ = self.ring.submit();
        }
    }
}

impl std::fmt::Debug for UdpRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpRing")
            .field("socket", &self.socket)
            .field("recv_buffers", &self.recv_buffers)
            .field("send_slots", &self.send_slots.len())
            .field("in_flight", &self.in_flight)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Drop for UdpRing {
    fn drop(&mut self) {
        // The kernel may still write into the receive pool or read send slots: cancel what
        // is armed and wait for every completion before any memory is freed.
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::any())
            .build()
            .user_data(CANCEL_USER_DATA);
        self.push(&cancel);
        let mut rounds = 0;
        while self.in_flight > 0 && rounds < 1000 {
            rounds += 1;
            if self.ring.submit_and_wait(1).is_err() {
                break;
            }
            self.reap_up_to(usize::MAX, &mut |_, _| {});
        }
        if self.in_flight > 0 {
            // Should not happen; leaking is the only safe answer if it does.
            tracing::error!(
                in_flight = self.in_flight,
                "io_uring did not drain; leaking its buffers"
            );
            std::mem::forget(std::mem::take(&mut self.recv_pool));
            std::mem::forget(std::mem::take(&mut self.send_slots));
            return;
        }
        let _ = self.ring.submitter().unregister_buf_ring(BUFFER_GROUP);
        // SAFETY: allocated in `new` with this layout; the kernel no longer references it.
        unsafe { dealloc(self.buf_ring.cast(), self.buf_ring_layout) };
    }
}

/// Allocates the provided-buffer ring (page-aligned, zeroed, `recv_buffers` entries) and
/// registers it with `ring` as [`BUFFER_GROUP`].
fn register_buf_ring(
    ring: &IoUring,
    recv_buffers: u16,
) -> std::io::Result<(*mut BufRingEntry, Layout)> {
    let buf_ring_layout =
        Layout::from_size_align(usize::from(recv_buffers) * size_of::<BufRingEntry>(), 4096)
            .map_err(std::io::Error::other)?;
    // SAFETY: the layout has non-zero size (recv_buffers ≥ 1).
    let buf_ring = unsafe { alloc_zeroed(buf_ring_layout) }.cast::<BufRingEntry>();
    if buf_ring.is_null() {
        return Err(std::io::Error::other("out of memory for the buffer ring"));
    }
    // SAFETY: `buf_ring` is page-aligned, zeroed, `recv_buffers` entries long, and lives
    // until drop, after the ring has been unregistered and closed.
    let registered = unsafe {
        ring.submitter().register_buf_ring_with_flags(
            buf_ring as u64,
            recv_buffers,
            BUFFER_GROUP,
            0,
        )
    };
    if let Err(e) = registered {
        // SAFETY: allocated above with this layout, never shared.
        unsafe { dealloc(buf_ring.cast(), buf_ring_layout) };
        return Err(e);
    }

    Ok((buf_ring, buf_ring_layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UdpRing, UdpRing) {
        pair_with(true)
    }

    fn pair_with(sendmmsg_singles: bool) -> (UdpRing, UdpRing) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let config = RingConfig {
            recv_buffers: 64,
            send_slots: 32,
            gso: true,
            sendmmsg_singles,
        };
        (
            UdpRing::new(a, config).unwrap(),
            UdpRing::new(b, config).unwrap(),
        )
    }

    fn receive(ring: &mut UdpRing, want: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < want && std::time::Instant::now() < deadline {
            ring.recv(usize::MAX, |from, bytes| got.push((from, bytes.to_vec())))
                .unwrap();
            if got.len() < want {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        got
    }

    #[test]
    fn datagrams_round_trip_with_their_sender() {
        let (mut a, mut b) = pair();
        let to = b.local_addr().unwrap();
        for i in 0..20u8 {
            a.send_to(&vec![i; 10 + usize::from(i) * 70], to).unwrap();
        }
        a.flush().unwrap();
        let got = receive(&mut b, 20);
        assert_eq!(got.len(), 20);
        for (from, bytes) in &got {
            assert_eq!(*from, a.local_addr().unwrap());
            let i = bytes[0];
            assert_eq!(bytes.len(), 10 + usize::from(i) * 70);
            assert!(bytes.iter().all(|&x| x == i));
        }
        assert_eq!(b.counters().received, 20);
    }

    /// Single datagrams (each a different length: no segmentation group) arrive whole and
    /// in full either way — by `sendmmsg` from the slots, or one io_uring `SEND` each —
    /// including more of them than there are slots (a full pool flushes and reuses them).
    #[test]
    fn single_datagrams_go_by_sendmmsg_or_io_uring_alike() {
        for sendmmsg in [true, false] {
            let (mut a, mut b) = pair_with(sendmmsg);
            let to = b.local_addr().unwrap();
            let mut got = Vec::new();
            for i in 0..200u16 {
                let len = 1 + usize::from(i) * 5;
                loop {
                    match a.send_to(&vec![i as u8; len], to) {
                        Ok(()) => break,
                        Err(SendError::Busy) => {
                            a.flush().unwrap();
                            a.wait().unwrap();
                            a.recv(usize::MAX, |_, _| {}).unwrap();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                if i % 50 == 49 {
                    a.flush().unwrap();
                    got.extend(receive(&mut b, 50));
                }
            }
            assert_eq!(got.len(), 200, "sendmmsg {sendmmsg}");
            for (k, (_, bytes)) in got.iter().enumerate() {
                assert_eq!(bytes.len(), 1 + k * 5, "sendmmsg {sendmmsg}");
                assert!(bytes.iter().all(|&x| x == k as u8));
            }
            while a.counters().sent < 200 {
                a.wait().unwrap();
                a.recv(usize::MAX, |_, _| {}).unwrap();
            }
            assert_eq!(a.counters().send_errors, 0);
            assert_eq!(a.counters().sent_segmented, 0);
        }
    }

    #[test]
    fn equal_datagrams_to_one_destination_go_segmented_and_arrive_one_by_one() {
        let (mut a, mut b) = pair();
        let to = b.local_addr().unwrap();
        // 20 of 1,200 bytes and a shorter tail: one group. Then one to another address
        // and a longer one: new groups.
        for i in 0..20u8 {
            a.send_to(&[i; 1200], to).unwrap();
        }
        a.send_to(&[20; 300], to).unwrap();
        a.send_to(&[21; 1200], to).unwrap();
        a.flush().unwrap();
        let got = receive(&mut b, 22);
        assert_eq!(got.len(), 22);
        let mut seen: Vec<(u8, usize)> = got.iter().map(|(_, d)| (d[0], d.len())).collect();
        seen.sort_unstable();
        for (i, (first, len)) in seen.into_iter().enumerate() {
            assert_eq!(first, i as u8);
            assert_eq!(len, if i == 20 { 300 } else { 1200 });
        }
        while a.counters().sent < 22 {
            a.wait().unwrap();
            a.recv(usize::MAX, |_, _| {}).unwrap();
        }
        assert_eq!(a.counters().sent_segmented, 21, "{:?}", a.counters());
    }

    #[test]
    fn more_datagrams_than_buffers_are_all_received_across_calls() {
        // 64 receive buffers, 500 datagrams sent in bursts of 100: each burst exhausts the
        // buffers, the kernel ends the receive, and `recv` re-arms it (the socket buffer
        // holds the rest meanwhile).
        let (mut a, mut b) = pair();
        let to = b.local_addr().unwrap();
        let mut got = Vec::new();
        for burst in 0..5u32 {
            for i in 0..100 {
                a.send_to(&(burst * 100 + i).to_le_bytes(), to)
                    .unwrap_or_else(|_| {
                        a.flush().unwrap();
                        a.wait().unwrap();
                        a.send_to(&(burst * 100 + i).to_le_bytes(), to).unwrap();
                    });
            }
            a.flush().unwrap();
            got.extend(receive(&mut b, 100));
        }
        assert!(b.counters().recv_rearmed > 0, "{:?}", b.counters());
        let mut seen: Vec<u32> = got
            .iter()
            .map(|(_, b)| u32::from_le_bytes(b[..4].try_into().unwrap()))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 500, "counters {:?}", b.counters());
    }

    #[test]
    fn a_budget_leaves_the_rest_for_the_next_call() {
        let (mut a, mut b) = pair();
        let to = b.local_addr().unwrap();
        for i in 0..10u8 {
            a.send_to(&[i], to).unwrap();
        }
        a.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut first = 0;
        b.recv(4, |_, _| first += 1).unwrap();
        assert_eq!(first, 4);
        assert_eq!(receive(&mut b, 6).len(), 6);
    }

    #[test]
    fn oversized_datagrams_are_refused_and_truncated_ones_dropped() {
        let (mut a, mut b) = pair();
        assert_eq!(
            a.send_to(&[0; PAYLOAD_MAX + 1], b.local_addr().unwrap()),
            Err(SendError::TooLarge(PAYLOAD_MAX + 1))
        );
        // A plain socket can send what the ring may not deliver.
        let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
        plain
            .send_to(&[1; PAYLOAD_MAX + 100], b.local_addr().unwrap())
            .unwrap();
        plain.send_to(&[2; 8], b.local_addr().unwrap()).unwrap();
        let got = receive(&mut b, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, vec![2; 8]);
        assert_eq!(b.counters().truncated, 1);
    }

    #[test]
    fn every_send_slot_in_flight_is_refused_not_blocked() {
        let (mut a, b) = pair();
        let to = b.local_addr().unwrap();
        // Queue without flushing: the slots stay taken.
        for _ in 0..32 {
            a.send_to(&[0; 16], to).unwrap();
        }
        assert_eq!(a.send_to(&[0; 16], to), Err(SendError::Busy));
        a.flush().unwrap();
        a.wait().unwrap();
        // A full pool reaps completions before it refuses.
        assert!(a.send_to(&[0; 16], to).is_ok());
    }
}
