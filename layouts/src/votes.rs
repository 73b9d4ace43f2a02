//! Votes on a zone's standby: what a node asks the other nodes of the mesh to agree to
//! before a primary goes on without its standby, or before a standby takes a zone over
//! (docs/mesh.md, "Dropping a standby"), and the file where each node keeps what it
//! agreed to.
//!
//! A vote travels in a control-port datagram ([`crate::control`]) signed like gossip, with
//! its own kind byte and signing domain:
//!
//! ```text
//! datagram := kind:u8 (0x76) version:u8 node:u16le VoteMessage signature:64
//! signed   := "meridian/votes/v1" ‖ version:u8 ‖ node:u16le ‖ VoteMessage
//! ```
//!
//! The ledger file is a [`LedgerHeader`] and `count` [`LedgerEntry`]s, sorted by zone; the
//! header's CRC-32C covers the entries.

use bytemuck::{Pod, Zeroable};

use crate::{U16Le, U32Le, U64Le};

/// What a node signs before its index and the message.
pub const VOTE_DOMAIN: &[u8] = b"meridian/votes/v1";
/// `node` fields that name no node.
pub const NO_NODE: u16 = u16::MAX;

/// An ask or an answer.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteKind {
    Ask = 1,
    Answer = 2,
}

/// What is asked.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteOp {
    /// The zone's primary goes on without its standby on node `standby`.
    Drop = 1,
    /// The zone's standby on node `standby` holds everything its primary sent again.
    Current = 2,
    /// The standby on node `standby` takes the zone over from node `primary` as
    /// `incarnation`.
    Promote = 3,
    /// The standby on node `standby` (the asker) will not act on its promotion to
    /// `incarnation`, agreed or not.
    Withdraw = 4,
    /// The standby on node `standby` (the asker), its promotion to `incarnation` agreed
    /// by a majority, acts on it once a majority hold that it does.
    Acted = 5,
    /// The zone's primary, running as `incarnation`, asks the ledgers to let go of a
    /// promotion to a later run that node `standby` (declared down) never said it acts
    /// on.
    Release = 6,
    /// The zone's primary on node `primary` (the asker) stopped its run `incarnation` for
    /// good to move the zone, and its standby holds everything the run wrote: a takeover
    /// of that copy rests on this instead of on the primary's node being down.
    Ended = 7,
}

/// An answer.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteAnswer {
    Yes = 1,
    /// Not now (this node does not see the node concerned down): ask again.
    Wait = 2,
    /// Never, for this ask.
    No = 3,
}

/// The message a vote datagram carries.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct VoteMessage {
    /// A [`VoteKind`].
    pub kind: u8,
    /// A [`VoteOp`].
    pub op: u8,
    /// A [`VoteAnswer`] (answers), else 0.
    pub answer: u8,
    pub reserved: u8,
    /// The asker's ballot: answers echo it.
    pub ballot: U64Le,
    pub zone: U32Le,
    /// The asking primary's run (`Drop`, `Current`, `Release`, `Ended`), or the run a
    /// promotion starts (`Promote`, `Withdraw`, `Acted`).
    pub incarnation: U32Le,
    /// The primary's asks about the zone in that run, counted from 1 (`Drop`, `Current`).
    pub seq: U32Le,
    pub standby: U16Le,
    /// The node the zone is taken from (`Promote`), the asker (`Ended`), else [`NO_NODE`].
    pub primary: U16Le,
}

const _: () = assert!(core::mem::size_of::<VoteMessage>() == 28);

impl VoteMessage {
    pub const SIZE: usize = core::mem::size_of::<VoteMessage>();

    /// The message's kind, op and answer, if they are ones this build speaks.
    pub fn check(&self) -> Result<(VoteKind, VoteOp, Option<VoteAnswer>), crate::ParseError> {
        let kind = match self.kind {
            1 => VoteKind::Ask,
            2 => VoteKind::Answer,
            _ => return Err(crate::ParseError::UnknownKind),
        };
        let op = match self.op {
            1 => VoteOp::Drop,
            2 => VoteOp::Current,
            3 => VoteOp::Promote,
            4 => VoteOp::Withdraw,
            5 => VoteOp::Acted,
            6 => VoteOp::Release,
            7 => VoteOp::Ended,
            _ => return Err(crate::ParseError::UnknownKind),
        };
        let answer = match (kind, self.answer) {
            (VoteKind::Ask, 0) => None,
            (VoteKind::Answer, 1) => Some(VoteAnswer::Yes),
            (VoteKind::Answer, 2) => Some(VoteAnswer::Wait),
            (VoteKind::Answer, 3) => Some(VoteAnswer::No),
            _ => return Err(crate::ParseError::BadField),
        };
        Ok((kind, op, answer))
    }
}

/// The ledger file's magic.
pub const LEDGER_MAGIC: [u8; 8] = *b"MRDNVOTE";
/// The ledger file's version (3: an entry's `withdrawn` is flags, [`ACTED`] among them —
/// a build that reads version 2 would take an acted promise for a withdrawn one, so it
/// refuses the file instead; 2: entries carry the promise's ballot. Versions 1 (24-byte
/// entries without it) and 2 are still read).
pub const LEDGER_VERSION: u32 = 3;

/// The front of the ledger file.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct LedgerHeader {
    pub magic: [u8; 8],
    pub version: U32Le,
    pub count: U32Le,
    /// CRC-32C of the entries.
    pub crc: U32Le,
    pub reserved: U32Le,
}

const _: () = assert!(core::mem::size_of::<LedgerHeader>() == 24);

/// What a node agreed to about one zone.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct LedgerEntry {
    pub zone: U32Le,
    /// The newest primary ask agreed to: its run and its number in that run.
    pub incarnation: U32Le,
    pub seq: U32Le,
    /// The standby that ask dropped ([`NO_NODE`]: none, or it is current again).
    pub dropped: U16Le,
    /// The node a promotion was agreed to ([`NO_NODE`]: none yet).
    pub promoted_by: U16Le,
    /// That promotion's run.
    pub promoted: U32Le,
    /// Flags: [`WITHDRAWN`] if the node it was agreed to withdrew it (it will not act on
    /// it) or the primary had it released; [`ACTED`] if that node said it acts on it.
    pub withdrawn: U32Le,
    /// The promoter's ballot that last set the promise: its promotion ask, or its
    /// withdrawal. A node's ballot ids only grow (generation, then count), so a copy of a
    /// promotion ask older than its withdrawal is told from an ask made after it.
    pub ballot: U64Le,
}

const _: () = assert!(core::mem::size_of::<LedgerEntry>() == 32);

/// [`LedgerEntry::withdrawn`]'s flag: the promise holds nothing (withdrawn or released).
pub const WITHDRAWN: u32 = 1;
/// [`LedgerEntry::withdrawn`]'s flag: the promised node acts on the promise (version 3).
pub const ACTED: u32 = 2;

/// The entry of a version 1 ledger file (no ballot, `withdrawn` always 0).
pub const LEDGER_ENTRY_V1_SIZE: usize = 24;
