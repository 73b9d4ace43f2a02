//! The zone's UDP socket: how every zone binds it, and the don't-fragment bit it sends with.

use std::net::SocketAddr;

use super::SOCKET_BUFFER_BYTES;

/// A UDP socket with large buffers and address reuse, as every zone binds it. The zone's
/// executor hands it to its own io_uring ([`UdpRing`](crate::uring::UdpRing)); glommio's
/// socket types are not used.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    ask_recv_buffer(&socket, SOCKET_BUFFER_BYTES, &format!("zone socket {addr}"));
    // The kernel may cap it (net.core.wmem_max): best effort, not an error.
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    if addr.is_ipv4() {
        set_dont_fragment(&socket, true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Asks the kernel for a receive buffer of `bytes` and warns, naming the socket (`what`),
/// when it gave less: it caps the ask at `net.core.rmem_max` (208 KiB by default), and a
/// small buffer loses datagrams whenever the reading thread is off its core for a moment
/// under a burst. Best effort, not an error: the socket works with any buffer.
pub fn ask_recv_buffer(socket: &socket2::Socket, bytes: usize, what: &str) {
    let _ = socket.set_recv_buffer_size(bytes);
    // Linux reports twice what it granted (the other half is its bookkeeping).
    let granted = socket.recv_buffer_size().map_or(0, |b| b / 2);
    if granted < bytes {
        tracing::warn!(
            "{what}: the kernel gave a receive buffer of {} KiB, not the {} KiB asked \
             (net.core.rmem_max caps it): bursts may be dropped; raise it with `sysctl -w \
             net.core.rmem_max={bytes}`",
            granted >> 10,
            bytes >> 10
        );
    }
}

/// Sets (or, with `on` false, leaves to the kernel's default, `IP_PMTUDISC_WANT`) the IPv4
/// don't-fragment bit on every datagram the socket sends; [`bind_udp`] sets it, as QUIC stacks do: no datagram of Meridian's is over
/// 1,200 bytes, which fits any real path. It also spares the kernel its IP-ID generator,
/// which it runs for every datagram of an unconnected socket without the bit — a keyed
/// hash and an atomic add in a table shared by every core, contended when zones on two
/// cores send at once (`__ip_select_ident`: 2.8 % of a loaded node's CPU; the benches
/// `udp/two-zones-df` and `udp/two-zones-default`). The path MTU the kernel may have learnt is not applied
/// (`IP_PMTUDISC_PROBE`): a datagram is sent whatever it says, never refused.
#[allow(unsafe_code, reason = "IP_MTU_DISCOVER has no socket2 setter")]
pub fn set_dont_fragment(socket: &socket2::Socket, on: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let value: libc::c_int = if on {
        libc::IP_PMTUDISC_PROBE
    } else {
        libc::IP_PMTUDISC_WANT
    };
    // SAFETY: the descriptor is the open socket borrowed for the call; the value is a
    // c_int that outlives it, passed with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether the socket's IPv4 datagrams carry the don't-fragment bit whatever the route
/// (see [`set_dont_fragment`]).
#[allow(unsafe_code, reason = "IP_MTU_DISCOVER has no socket2 getter")]
pub fn dont_fragment(socket: &socket2::Socket) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: as in `set_dont_fragment`; the kernel writes at most `len` bytes into
    // `value` and the new length into `len`, both live for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value == libc::IP_PMTUDISC_PROBE || value == libc::IP_PMTUDISC_DO)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::{bind_udp, dont_fragment, set_dont_fragment};

    /// Every zone socket sends with the don't-fragment bit (and so without the kernel's
    /// shared IP-ID generator); the bench's peer can still turn it off.
    #[test]
    fn zone_sockets_set_dont_fragment() {
        let socket = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(dont_fragment(&socket).unwrap());
        set_dont_fragment(&socket, false).unwrap();
        assert!(!dont_fragment(&socket).unwrap());
    }
}
