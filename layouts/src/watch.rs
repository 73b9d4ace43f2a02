//! WATCH: where a zone's clients are, sent to every zone their view reaches
//! (docs/protocol.md, "Seamless interest").
//!
//! A client's interest reaches past its zone's border farther than the ghost aura. The
//! client's zone therefore tells each zone within `radius` of a client where that client
//! stands; the receiver answers with ghosts of its `nearest` owned entities within
//! `radius` of each point, refreshed like aura ghosts for as long as the points are renewed.
//!
//! | part               | bytes      |
//! |--------------------|------------|
//! | [`Header`]         | 8          |
//! | [`WatchHeader`]    | 22         |
//! | [`WatchPoint`] × n | 12 × n     |
//!
//! One tick's points may span several datagrams with the same `tick`; a datagram with a
//! newer tick replaces the points of older ones. Zero points: the sender watches nothing
//! here any more.

use bytemuck::{Pod, Zeroable};

use crate::{F32Le, Header, Kind, ParseError, U16Le, U32Le, U64Le};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct WatchHeader {
    /// The watching zone.
    pub source_zone: U32Le,
    /// The watching zone's tick when the points were taken.
    pub tick: U64Le,
    /// The largest radius of any point, in metres (finite, ≥ 0).
    pub radius: F32Le,
    /// How many of the receiver's entities nearest each point the watcher wants.
    pub nearest: U16Le,
    /// The first `own_count` points are avatars the watcher owns; the rest it watches for
    /// a neighbour's avatars that may be handed to it soon (never forwarded again).
    pub own_count: U16Le,
    /// Number of [`WatchPoint`]s that follow.
    pub point_count: U16Le,
}

const _: () = assert!(core::mem::size_of::<WatchHeader>() == 22);

/// A watched position (a client's avatar) and how far from it the client can see
/// anything it could be shown, in world metres.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct WatchPoint {
    pub x: F32Le,
    pub y: F32Le,
    /// At most the header's `radius` (the receiver clamps it); finite, ≥ 0.
    pub radius: F32Le,
}

const _: () = assert!(core::mem::size_of::<WatchPoint>() == 12);

/// Fixed bytes before the points.
pub const WATCH_FIXED_SIZE: usize = Header::SIZE + core::mem::size_of::<WatchHeader>();

/// The most points one WATCH datagram of at most `datagram_size` bytes holds.
pub const fn points_per_datagram(datagram_size: usize) -> usize {
    (datagram_size - WATCH_FIXED_SIZE) / core::mem::size_of::<WatchPoint>()
}

const _: () = assert!(points_per_datagram(1200) == 97);

/// Parses a WATCH datagram. A non-finite or negative radius, or a non-finite point, is an
/// error for the whole datagram.
pub fn parse_watch(bytes: &[u8]) -> Result<(&WatchHeader, &[WatchPoint]), ParseError> {
    let kind = Header::parse(bytes)?;
    if kind != Kind::Watch {
        return Err(ParseError::WrongKind);
    }
    let Some(head) = bytes.get(Header::SIZE..WATCH_FIXED_SIZE) else {
        return Err(ParseError::Truncated);
    };
    let head: &WatchHeader = bytemuck::from_bytes(head);
    let body = &bytes[WATCH_FIXED_SIZE..];
    if body.len() != usize::from(head.point_count.get()) * core::mem::size_of::<WatchPoint>() {
        return Err(ParseError::BadCount);
    }
    if head.own_count.get() > head.point_count.get() {
        return Err(ParseError::BadCount);
    }
    let radius = head.radius.get();
    if !radius.is_finite() || radius < 0.0 {
        return Err(ParseError::BadField);
    }
    let points: &[WatchPoint] = bytemuck::try_cast_slice(body).map_err(|_| ParseError::BadCount)?;
    let bad = |p: &WatchPoint| {
        let r = p.radius.get();
        !p.x.get().is_finite() || !p.y.get().is_finite() || !r.is_finite() || r < 0.0
    };
    if points.iter().any(bad) {
        return Err(ParseError::BadField);
    }
    Ok((head, points))
}

/// Writes a WATCH datagram into `out`; returns its length, or `None` if it does not fit.
/// `head.own_count` must not exceed `points.len()`.
pub fn write_watch(out: &mut [u8], head: &WatchHeader, points: &[WatchPoint]) -> Option<usize> {
    let length = WATCH_FIXED_SIZE + core::mem::size_of_val(points);
    let length_u16 = u16::try_from(length).ok()?;
    let count = u16::try_from(points.len()).ok()?;
    if head.own_count.get() > count {
        return None;
    }
    let out = out.get_mut(..length)?;
    out[..Header::SIZE].copy_from_slice(bytemuck::bytes_of(&Header::new(Kind::Watch, length_u16)));
    let mut head = *head;
    head.point_count = U16Le::new(count);
    out[Header::SIZE..WATCH_FIXED_SIZE].copy_from_slice(bytemuck::bytes_of(&head));
    out[WATCH_FIXED_SIZE..].copy_from_slice(bytemuck::cast_slice(points));
    Some(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(radius: f32) -> WatchHeader {
        WatchHeader {
            source_zone: U32Le::new(3),
            tick: U64Le::new(42),
            radius: F32Le::new(radius),
            nearest: U16Le::new(192),
            own_count: U16Le::new(0),
            point_count: U16Le::new(0),
        }
    }

    fn point(x: f32, y: f32) -> WatchPoint {
        WatchPoint {
            x: F32Le::new(x),
            y: F32Le::new(y),
            radius: F32Le::new(50.0),
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 1200];
        let points = [point(1.0, 2.0), point(3.5, -4.0)];
        let len = write_watch(&mut buf, &head(300.0), &points).unwrap();
        let (h, p) = parse_watch(&buf[..len]).unwrap();
        assert_eq!(h.source_zone.get(), 3);
        assert_eq!(h.point_count.get(), 2);
        assert_eq!(p, &points);
    }

    #[test]
    fn rejects_bad_fields_and_counts() {
        let mut buf = [0u8; 1200];
        for radius in [f32::NAN, -1.0, f32::INFINITY] {
            let len = write_watch(&mut buf, &head(radius), &[]).unwrap();
            assert_eq!(parse_watch(&buf[..len]), Err(ParseError::BadField));
        }
        let len = write_watch(&mut buf, &head(10.0), &[point(f32::NAN, 0.0)]).unwrap();
        assert_eq!(parse_watch(&buf[..len]), Err(ParseError::BadField));
        for radius in [f32::NAN, -0.5, f32::INFINITY] {
            let p = WatchPoint {
                radius: F32Le::new(radius),
                ..point(1.0, 1.0)
            };
            let len = write_watch(&mut buf, &head(10.0), &[p]).unwrap();
            assert_eq!(parse_watch(&buf[..len]), Err(ParseError::BadField));
        }
        let len = write_watch(&mut buf, &head(10.0), &[point(0.0, 0.0)]).unwrap();
        // One byte short of the declared point: the header's length disagrees.
        assert!(parse_watch(&buf[..len - 1]).is_err());
        // A count that claims more points than follow.
        buf[Header::SIZE + 20] = 2;
        assert_eq!(parse_watch(&buf[..len]), Err(ParseError::BadCount));
        // More own points than points.
        buf[Header::SIZE + 20] = 1;
        buf[Header::SIZE + 18] = 2;
        assert_eq!(parse_watch(&buf[..len]), Err(ParseError::BadCount));
    }

    #[test]
    fn full_datagram_fits() {
        let mut buf = [0u8; 1200];
        let points = [point(0.0, 0.0); points_per_datagram(1200)];
        assert!(write_watch(&mut buf, &head(1.0), &points).is_some_and(|n| n <= 1200));
    }
}
