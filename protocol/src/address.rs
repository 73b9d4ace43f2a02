//! Socket addresses as wire fields.
//!
//! REDIRECT names an address as `(addr: [u8; 16], port, family)` with `family` 4 (the
//! first four bytes hold the IPv4 address) or 6. Session bindings and cookies use one
//! form for both families: IPv4 as an IPv4-mapped IPv6 address.

use core::net::SocketAddr;

use meridian_layouts::client::RedirectBody;

/// The address a REDIRECT names, or `None` for an unknown family.
pub fn redirect_addr(body: &RedirectBody) -> Option<SocketAddr> {
    let port = body.port.get();
    match body.family {
        4 => {
            let ip: [u8; 4] = body.addr[..4].try_into().ok()?;
            Some(SocketAddr::from((ip, port)))
        }
        6 => Some(SocketAddr::from((body.addr, port))),
        _ => None,
    }
}

/// The REDIRECT fields `(addr, port, family)` for `addr`.
pub fn redirect_fields(addr: SocketAddr) -> ([u8; 16], u16, u8) {
    match addr {
        SocketAddr::V4(a) => {
            let mut ip = [0u8; 16];
            ip[..4].copy_from_slice(&a.ip().octets());
            (ip, a.port(), 4)
        }
        SocketAddr::V6(a) => (a.ip().octets(), a.port(), 6),
    }
}

/// `addr` as 16 address bytes (IPv4 mapped into IPv6) and a port.
pub fn mapped_ip_port(addr: SocketAddr) -> ([u8; 16], u16) {
    match addr {
        SocketAddr::V4(a) => (a.ip().to_ipv6_mapped().octets(), a.port()),
        SocketAddr::V6(a) => (a.ip().octets(), a.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_layouts::{U16Le, U32Le, U64Le};

    #[test]
    fn redirect_fields_round_trip_both_families() {
        for addr in ["127.0.0.1:7000", "[::1]:7001", "[2001:db8::5]:65535"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let (ip, port, family) = redirect_fields(addr);
            let body = RedirectBody {
                session: U32Le::new(1),
                session_secret: U64Le::new(2),
                zone: U32Le::new(3),
                addr: ip,
                port: U16Le::new(port),
                family,
                padding: 0,
                tick: U32Le::new(0),
            };
            assert_eq!(redirect_addr(&body), Some(addr));
        }
    }
}
