//! The standby stream: what a zone's primary sends the node that keeps its warm standby,
//! over a TCP connection between their control addresses (docs/mesh.md).
//!
//! The stream mirrors the zone's files, not its records: the standby ends up with the
//! same bytes in the same files the primary's data directory holds (behind by what is
//! not acknowledged yet), so a promotion is a restart from that directory.
//!
//! Every frame is a [`FrameHeader`], `len` bytes of payload and an Ed25519 signature by
//! the sender's node key over [`DOMAIN`] ‖ the connection's challenge ‖ header ‖ payload.
//! The standby opens each connection with a [`FrameKind::Challenge`] of 32 random bytes,
//! so a frame recorded on one connection is refused on every other.
//!
//! | kind        | from    | fields used                            | payload           |
//! |-------------|---------|----------------------------------------|-------------------|
//! | `Challenge` | standby | —                                      | 32 random bytes (unsigned) |
//! | `Hello`     | primary | `zone`, `generation` = incarnation     | 32 random bytes, echoed in every `Ack` |
//! | `File`      | primary | `file`, `generation`, `offset` = bytes sent before in `Part`s | the whole file, or its rest after the parts |
//! | `Part`      | primary | `file` (a checkpoint), `generation`, `offset` | `len` bytes of the file at `offset` |
//! | `Append`    | primary | `generation`, `offset`, `seq`          | bytes at `offset` of WAL segment `generation` |
//! | `Retire`    | primary | —                                      | the (kind u8, generation u64le) pairs of the files the primary keeps |
//! | `Ack`       | standby | `seq`: every append up to it is durable; `generation`: the highest claim taken (below) | the hello's 32 bytes |
//! | `TakenOver` | standby | `seq` = the incarnation it runs the zone as | the hello's 32 bytes |
//! | `Synced`    | primary | `seq` = the newest append the resync's files hold; `generation` = 0, or 1 for a clean stop's claim | — |
//! | `Stale`     | standby | `seq` = the newest incarnation its copy holds | the hello's 32 bytes |
//!
//! After the hello every frame of the primary is sealed (ChaCha20-Poly1305, the header as
//! associated data) before it is signed. A frame's nonce is its index in its *lane*
//! (`lane` in the header): lane 0 counts the stream's own frames, lane 1 a checkpoint's
//! `Part`, `File` and `Retire` frames, which the primary seals on a thread of its own at a
//! low priority and sends between the appends; the standby keeps one count per lane. Lane
//! 2 is a stopped zone's final checkpoint (and any checkpoint still queued before it): a
//! zone's move waits for it, so the primary's stream seals it itself and the standby's
//! connection applies it itself, both at the zone's priority, where lane 1's frames go to
//! low-priority threads at both ends.
//!
//! A zone that stops on purpose ends its stream with a `Synced` frame whose `generation`
//! is 1 (a *claim*): the standby takes it once everything before it is in place — the
//! final checkpoint, in lane 2, included — and echoes the highest claim
//! taken in the `generation` of every `Ack` after it, so the primary can tell its copy is
//! whole (a move to the standby waits for that).

use bytemuck::{Pod, Zeroable};

use crate::{U32Le, U64Le};

/// The first bytes of every frame.
pub const MAGIC: [u8; 4] = *b"MRDS";
/// The stream's version; a peer with another is refused. 3: the final checkpoint's lane
/// (2). 2: the header's `lane`.
pub const VERSION: u8 = 3;
/// How many lanes a connection's sealed frames are counted in (`FrameHeader::lane`).
pub const LANES: u8 = 3;
/// The lane of a checkpoint's frames sealed on a low-priority thread of the primary and
/// written by one of the standby.
pub const LANE_CHECKPOINT: u8 = 1;
/// The lane of a stopped zone's final checkpoint: sealed by the primary's stream and
/// written by the standby's connection, at the zone's priority.
pub const LANE_FINAL: u8 = 2;
/// What the signatures of the stream mean (never accepted for anything else).
pub const DOMAIN: [u8; 8] = *b"MRDN-STB";
/// The random bytes a standby opens a connection with.
pub const CHALLENGE_SIZE: usize = 32;
/// The largest payload accepted: a checkpoint of a full zone fits (1 M entities of
/// 128-byte records and game state); anything longer is refused before it is read.
pub const PAYLOAD_MAX: u32 = 256 << 20;

/// What a frame is.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Challenge = 1,
    Hello = 2,
    File = 3,
    Append = 4,
    Retire = 5,
    Ack = 6,
    /// The standby's answer to a hello for a zone it took over: `seq` is the incarnation
    /// it runs the zone as, the payload the hello's nonce. The primary stands down.
    TakenOver = 7,
    /// The end of a resync: `seq` is the newest append the files sent before it hold. The
    /// standby acknowledges it only once everything before it is in place — the
    /// checkpoints its worker writes included.
    Synced = 8,
    /// The standby's answer to a hello of an older run than its copy holds: `seq` is the
    /// newest incarnation in its files, the payload the hello's nonce. The primary's files
    /// are stale (the zone ran elsewhere since, from a copy): it does not run the zone.
    Stale = 9,
    /// A piece of a checkpoint sent in parts: the bytes at `offset` of checkpoint
    /// `generation`. The `File` frame that ends it carries the rest, its `offset` the bytes
    /// sent in parts before it. A checkpoint of megabytes goes in parts so that the
    /// appends fed behind it are sent (and acknowledged) between them, not after it.
    Part = 10,
}

impl FrameKind {
    pub fn from_u8(v: u8) -> Option<FrameKind> {
        Some(match v {
            1 => FrameKind::Challenge,
            2 => FrameKind::Hello,
            3 => FrameKind::File,
            4 => FrameKind::Append,
            5 => FrameKind::Retire,
            6 => FrameKind::Ack,
            7 => FrameKind::TakenOver,
            8 => FrameKind::Synced,
            9 => FrameKind::Stale,
            10 => FrameKind::Part,
            _ => return None,
        })
    }
}

/// Which of a zone's files a `File` frame carries.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A WAL segment, whole as it stood when read.
    Wal = 1,
    /// A checkpoint.
    Checkpoint = 2,
}

impl FileKind {
    pub fn from_u8(v: u8) -> Option<FileKind> {
        match v {
            1 => Some(FileKind::Wal),
            2 => Some(FileKind::Checkpoint),
            _ => None,
        }
    }
}

/// The fixed front of every frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct FrameHeader {
    pub magic: [u8; 4],
    pub version: u8,
    /// A [`FrameKind`].
    pub kind: u8,
    /// A [`FileKind`] (`File` frames), else 0.
    pub file: u8,
    /// Which count of the connection's sealed frames this one's nonce is taken from: 0
    /// for the stream's own frames, [`LANE_CHECKPOINT`] for a checkpoint's (sealed on a
    /// thread of their own and sent between the appends), [`LANE_FINAL`] for a stopped
    /// zone's last ones. Below [`LANES`].
    pub lane: u8,
    pub zone: U32Le,
    pub generation: U64Le,
    pub seq: U64Le,
    pub offset: U64Le,
    /// Payload bytes after the header.
    pub len: U32Le,
}

const _: () = assert!(core::mem::size_of::<FrameHeader>() == 40);

impl FrameHeader {
    pub const SIZE: usize = core::mem::size_of::<FrameHeader>();

    pub fn new(kind: FrameKind, zone: u32) -> FrameHeader {
        FrameHeader {
            magic: MAGIC,
            version: VERSION,
            kind: kind as u8,
            zone: U32Le::new(zone),
            ..FrameHeader::zeroed()
        }
    }

    /// The frame's kind, if the magic, version and kind are ones this build speaks and
    /// the payload is within [`PAYLOAD_MAX`].
    pub fn check(&self) -> Result<FrameKind, crate::ParseError> {
        if self.magic != MAGIC {
            return Err(crate::ParseError::BadMagic);
        }
        if self.version != VERSION {
            return Err(crate::ParseError::BadVersion);
        }
        if self.len.get() > PAYLOAD_MAX {
            return Err(crate::ParseError::BadLength);
        }
        if self.lane >= LANES {
            return Err(crate::ParseError::BadField);
        }
        FrameKind::from_u8(self.kind).ok_or(crate::ParseError::UnknownKind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame names a lane the standby counts (its nonce is taken from that count), and
    /// a build of the stream before lanes, or before the final checkpoint's, is refused by
    /// its version.
    #[test]
    fn a_frame_outside_the_lanes_or_of_the_version_before_them_is_refused() {
        let mut h = FrameHeader::new(FrameKind::Part, 3);
        assert_eq!(h.check(), Ok(FrameKind::Part));
        h.lane = LANES - 1;
        assert_eq!(h.check(), Ok(FrameKind::Part));
        h.lane = LANES;
        assert_eq!(h.check(), Err(crate::ParseError::BadField));
        for version in [1, 2] {
            let mut old = FrameHeader::new(FrameKind::Append, 3);
            old.version = version;
            assert_eq!(old.check(), Err(crate::ParseError::BadVersion));
        }
    }
}
