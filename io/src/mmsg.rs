//! Batched UDP with `sendmmsg(2)` / `recvmmsg(2)`: many datagrams per system call.
//!
//! This is the baseline the io_uring path is measured against (`udp/sendmmsg/*` in the
//! benches); nothing in the node uses it (there is no fallback driver for kernels without
//! io_uring). Blocking sockets; the caller owns threads and pinning.

#![allow(unsafe_code, reason = "sendmmsg/recvmmsg have no safe std wrapper")]

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Most datagrams per system call.
pub const BATCH_MAX: usize = 64;

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let sock: socket2::SockAddr = addr.into();
    let mut storage: libc::sockaddr_storage = unsafe {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        std::mem::zeroed()
    };
    let len = sock.len() as usize;
    // SAFETY: `sock.as_ptr()` points to `len` initialised bytes of a sockaddr, and
    // sockaddr_storage is large enough for any socket address.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sock.as_ptr().cast::<u8>(),
            (&raw mut storage).cast::<u8>(),
            len,
        );
    }
    (storage, len as libc::socklen_t)
}

/// Sends up to [`BATCH_MAX`] datagrams to `to` in one system call; returns how many left.
pub fn send_batch(
    socket: &UdpSocket,
    to: SocketAddr,
    datagrams: &[&[u8]],
) -> std::io::Result<usize> {
    let n = datagrams.len().min(BATCH_MAX);
    let (mut addr, addr_len) = sockaddr(to);
    let mut iovecs: [libc::iovec; BATCH_MAX] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH_MAX];
    // SAFETY: mmsghdr is plain old data; all-zero is valid (null pointers, zero lengths).
    let mut headers: [libc::mmsghdr; BATCH_MAX] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iovecs[i] = libc::iovec {
            iov_base: datagrams[i].as_ptr() as *mut libc::c_void,
            iov_len: datagrams[i].len(),
        };
        headers[i].msg_hdr.msg_name = (&raw mut addr).cast();
        headers[i].msg_hdr.msg_namelen = addr_len;
        headers[i].msg_hdr.msg_iov = &raw mut iovecs[i];
        headers[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `headers[..n]` point to `iovecs` and `addr`, which outlive the call; the
    // kernel only reads the datagram bytes (the `*mut` in iovec is the C API's).
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            n as libc::c_uint,
            0,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Receives up to `buffers.len()` (≤ [`BATCH_MAX`]) datagrams in one system call, blocking
/// for the first; writes each length into `lengths`; returns how many arrived.
pub fn recv_batch(
    socket: &UdpSocket,
    buffers: &mut [[u8; 1500]],
    lengths: &mut [usize],
) -> std::io::Result<usize> {
    let n = buffers.len().min(lengths.len()).min(BATCH_MAX);
    let mut iovecs: [libc::iovec; BATCH_MAX] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH_MAX];
    // SAFETY: mmsghdr is plain old data; all-zero is valid.
    let mut headers: [libc::mmsghdr; BATCH_MAX] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iovecs[i] = libc::iovec {
            iov_base: buffers[i].as_mut_ptr().cast(),
            iov_len: buffers[i].len(),
        };
        headers[i].msg_hdr.msg_iov = &raw mut iovecs[i];
        headers[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: each header points to a live, writable buffer of the stated length; we do
    // not ask for the sender's address (msg_name null).
    let received = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if received < 0 {
        return Err(std::io::Error::last_os_error());
    }
    for i in 0..received as usize {
        lengths[i] = headers[i].msg_len as usize;
    }
    Ok(received as usize)
}

/// Pins the calling thread to `core` (for baselines run on plain threads; zones are pinned
/// by glommio's `Placement::Fixed`).
pub fn pin_current_thread(core: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain old data; CPU_ZERO/CPU_SET write within it; the call reads
    // `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_over_loopback() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        assert_eq!(
            send_batch(&tx, rx.local_addr().unwrap(), &refs).unwrap(),
            10
        );
        let mut buffers = [[0u8; 1500]; 16];
        let mut lengths = [0usize; 16];
        let mut got = 0;
        while got < 10 {
            let n = recv_batch(&rx, &mut buffers[got..], &mut lengths[got..]).unwrap();
            got += n;
        }
        for i in 0..10 {
            assert_eq!(lengths[i], 100 + i);
            assert_eq!(buffers[i][0], i as u8);
        }
    }
}
