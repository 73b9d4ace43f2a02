//! The on-disk formats: a zone's write-ahead log and its checkpoints.
//!
//! Both files start with a 64-byte [`FileHeader`] (magic, format version, world, zone,
//! incarnation, a tick, a checksum over the header). After it:
//!
//! **WAL** — records back to back, each a 12-byte [`RecordHeader`] (payload length, kind,
//! a CRC32C over the header's first 8 bytes and the payload) and the payload:
//!
//! | kind | payload | bytes |
//! |---|---|---:|
//! | [`RecordKind::Incarnation`] | [`IncarnationRecord`]: the zone started as this incarnation | 16 |
//! | [`RecordKind::Spawn`] | [`PersistedEntity`]: created here at epoch 0 | 104 |
//! | [`RecordKind::Adopt`] | [`AdoptRecord`]: adopted on COMMIT | 120 |
//! | [`RecordKind::Relinquish`] | [`Commit`](crate::handoff::Commit): the COMMIT it sends and resends (its fixed layout) | 262 |
//! | [`RecordKind::Done`] | [`DoneRecord`]: the target confirmed; the tombstone is gone | 16 |
//! | [`RecordKind::Remove`] | [`RemoveRecord`]: destroyed without a transfer | 8 |
//! | [`RecordKind::SessionBind`] | [`SessionRecord`]: a client session bound to an avatar | 78 |
//! | [`RecordKind::PeerRun`] | [`PeerRunRecord`]: another zone runs as this incarnation (or a newer one) | 8 |
//!
//! **Checkpoint** — a section table (a [`SectionTableHead`] with a CRC32C of the entries,
//! then a [`SectionEntry`] per section, each with the CRC32C of its section) and the
//! sections, each starting at a multiple of [`SECTION_ALIGN`]: the zone's entity columns
//! (one little-endian array per field, as the zone stores them), the epoch memory, the
//! tombstones, the session bindings, the adoptions awaiting CONFIRM and the newest run
//! of each peer zone heard of. A reader casts them in place once every checksum has
//! verified.
//!
//! Checksums are CRC32C (Castagnoli). This crate defines the bytes and which bytes each
//! checksum covers ([`RecordHeader::covered`], [`FileHeader::covered`]); computing them is
//! the caller's (`meridian-core::persist`), so this crate stays dependency-free.
//!
//! Parsing never panics: every length is checked before a slice is taken.

use bytemuck::{Pod, Zeroable};

use crate::handoff::{EntityState, SessionBinding};
use crate::{ParseError, U16Le, U32Le, U64Le};

/// Magic of a write-ahead log.
pub const WAL_MAGIC: [u8; 8] = *b"MRDN-WAL";
/// Magic of a checkpoint.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"MRDN-CKP";
/// The format version this build writes (5: peers' runs, a WAL record kind and a
/// checkpoint section). It reads [`FORMAT_VERSION_OLDEST`] too: a version 4 file has
/// neither, which reads as no peer run heard of.
pub const FORMAT_VERSION: u32 = 5;
/// The oldest format version this build reads.
pub const FORMAT_VERSION_OLDEST: u32 = 4;
/// Checkpoint sections start at multiples of this.
pub const SECTION_ALIGN: u64 = 64;
/// Largest record payload.
pub const RECORD_PAYLOAD_MAX: usize = 512;

/// The first 64 bytes of every WAL and checkpoint file.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct FileHeader {
    /// [`WAL_MAGIC`] or [`CHECKPOINT_MAGIC`].
    pub magic: [u8; 8],
    pub format_version: U32Le,
    /// Always 64.
    pub header_size: U32Le,
    pub world_id: U64Le,
    pub zone: U32Le,
    /// The zone's incarnation when the file was begun.
    pub incarnation: U32Le,
    /// A checkpoint: the tick it was taken at. A WAL segment: the tick of the checkpoint
    /// it follows (0 for the first).
    pub tick: U64Le,
    /// A WAL segment: its generation (the checkpoint generation it follows). A checkpoint:
    /// its generation.
    pub generation: U64Le,
    pub reserved: [u8; 12],
    /// CRC32C of the 60 bytes before it.
    pub checksum: U32Le,
}

const _: () = assert!(core::mem::size_of::<FileHeader>() == 64);

impl FileHeader {
    pub const SIZE: usize = core::mem::size_of::<FileHeader>();

    /// The bytes the checksum covers.
    pub fn covered(&self) -> &[u8] {
        &bytemuck::bytes_of(self)[..Self::SIZE - 4]
    }

    /// Parses the header at the front of `bytes` and checks its magic, size and version;
    /// the checksum is the caller's to verify.
    pub fn parse(bytes: &[u8], magic: [u8; 8]) -> Result<&FileHeader, ParseError> {
        let head = bytes.get(..Self::SIZE).ok_or(ParseError::Truncated)?;
        let header: &FileHeader = bytemuck::from_bytes(head);
        if header.magic != magic {
            return Err(ParseError::BadMagic);
        }
        if !(FORMAT_VERSION_OLDEST..=FORMAT_VERSION).contains(&header.format_version.get()) {
            return Err(ParseError::BadVersion);
        }
        if header.header_size.get() as usize != Self::SIZE {
            return Err(ParseError::BadLength);
        }
        Ok(header)
    }
}

/// What a WAL record says.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Incarnation = 1,
    Spawn = 2,
    Adopt = 3,
    Relinquish = 4,
    Done = 5,
    Remove = 6,
    SessionBind = 7,
    PeerRun = 8,
}

impl RecordKind {
    pub const ALL: [RecordKind; 8] = [
        RecordKind::Incarnation,
        RecordKind::Spawn,
        RecordKind::Adopt,
        RecordKind::Relinquish,
        RecordKind::Done,
        RecordKind::Remove,
        RecordKind::SessionBind,
        RecordKind::PeerRun,
    ];

    pub const fn from_u16(value: u16) -> Option<RecordKind> {
        match value {
            1 => Some(RecordKind::Incarnation),
            2 => Some(RecordKind::Spawn),
            3 => Some(RecordKind::Adopt),
            4 => Some(RecordKind::Relinquish),
            5 => Some(RecordKind::Done),
            6 => Some(RecordKind::Remove),
            7 => Some(RecordKind::SessionBind),
            8 => Some(RecordKind::PeerRun),
            _ => None,
        }
    }

    /// The payload size of this kind (every kind has a fixed size).
    pub const fn payload_size(self) -> usize {
        match self {
            RecordKind::Incarnation => core::mem::size_of::<IncarnationRecord>(),
            RecordKind::Spawn => core::mem::size_of::<PersistedEntity>(),
            RecordKind::Adopt => core::mem::size_of::<AdoptRecord>(),
            RecordKind::Relinquish => core::mem::size_of::<crate::handoff::Commit>(),
            RecordKind::Done => core::mem::size_of::<DoneRecord>(),
            RecordKind::Remove => core::mem::size_of::<RemoveRecord>(),
            RecordKind::SessionBind => core::mem::size_of::<SessionRecord>(),
            RecordKind::PeerRun => core::mem::size_of::<PeerRunRecord>(),
        }
    }
}

/// The 12 bytes before every WAL record's payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct RecordHeader {
    /// Payload bytes.
    pub length: U32Le,
    /// A [`RecordKind`].
    pub kind: U16Le,
    pub reserved: U16Le,
    /// CRC32C of the 8 header bytes before it, then the payload.
    pub checksum: U32Le,
}

const _: () = assert!(core::mem::size_of::<RecordHeader>() == 12);

impl RecordHeader {
    pub const SIZE: usize = core::mem::size_of::<RecordHeader>();

    /// The header bytes the checksum covers (the payload follows them in the checksum).
    pub fn covered(&self) -> &[u8] {
        &bytemuck::bytes_of(self)[..8]
    }
}

/// Why the bytes at an offset of a WAL are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than a header, or than the header says: the tail of an interrupted
    /// write (or a cut file).
    Torn,
    /// The header names no known kind, or a length that is not the kind's.
    BadHeader,
}

/// Splits the record at the front of `bytes`: its header and payload. The checksum is
/// not verified here.
pub fn split_record(bytes: &[u8]) -> Result<(&RecordHeader, &[u8]), RecordError> {
    let head = bytes.get(..RecordHeader::SIZE).ok_or(RecordError::Torn)?;
    let header: &RecordHeader = bytemuck::from_bytes(head);
    let kind = RecordKind::from_u16(header.kind.get()).ok_or(RecordError::BadHeader)?;
    let length = header.length.get() as usize;
    if length != kind.payload_size() || header.reserved.get() != 0 {
        return Err(RecordError::BadHeader);
    }
    let payload = bytes
        .get(RecordHeader::SIZE..RecordHeader::SIZE + length)
        .ok_or(RecordError::Torn)?;
    Ok((header, payload))
}

/// An entity as the log and checkpoints keep it: id, epoch, full-precision state.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PersistedEntity {
    pub id: U64Le,
    pub epoch: U32Le,
    pub state: EntityState,
}

const _: () = assert!(core::mem::size_of::<PersistedEntity>() == 104);

/// The zone started as `incarnation` at `tick`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct IncarnationRecord {
    pub incarnation: U32Le,
    pub zone: U32Le,
    pub tick: U64Le,
}

const _: () = assert!(core::mem::size_of::<IncarnationRecord>() == 16);

/// Adopted on COMMIT from `from_zone`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct AdoptRecord {
    pub entity: PersistedEntity,
    pub from_zone: U32Le,
    pub reserved: U32Le,
    pub transfer_id: U64Le,
}

const _: () = assert!(core::mem::size_of::<AdoptRecord>() == 120);

/// The target confirmed transfer `transfer_id` of `id`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct DoneRecord {
    pub id: U64Le,
    pub transfer_id: U64Le,
}

const _: () = assert!(core::mem::size_of::<DoneRecord>() == 16);

/// `id` was destroyed without a transfer (a client left, the game removed it).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct RemoveRecord {
    pub id: U64Le,
}

const _: () = assert!(core::mem::size_of::<RemoveRecord>() == 8);

/// Zone `zone` runs as `incarnation` or a newer one (a checkpoint's peer-run section holds
/// these too): what an older run of it sends is fenced off, after a restart as before.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PeerRunRecord {
    pub zone: U32Le,
    pub incarnation: U32Le,
}

const _: () = assert!(core::mem::size_of::<PeerRunRecord>() == 8);

/// A client session bound to avatar `id` (a checkpoint's session section holds these too).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SessionRecord {
    pub id: U64Le,
    pub binding: SessionBinding,
}

const _: () = assert!(core::mem::size_of::<SessionRecord>() == 134);

/// What a checkpoint section holds. The entity columns (ids … payloads) all have one item
/// per owned entity, in the same order.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// One [`ZoneMeta`].
    Meta = 1,
    /// Entity ids, `u64`.
    Ids = 2,
    /// Ownership epochs, `u32`.
    Epochs = 3,
    /// Positions x, y, z and velocities x, y, `f32` metres and m/s.
    X = 4,
    Y = 5,
    Z = 6,
    Vx = 7,
    Vy = 8,
    /// Top speeds, `f32` m/s.
    Speeds = 9,
    /// Kinds, `u16`.
    Kinds = 10,
    /// Flags, `u16`.
    Flags = 11,
    /// Opaque game payloads, 16 bytes each.
    Payloads = 12,
    /// [`EpochEntry`] per remembered epoch.
    EpochMemory = 13,
    /// [`Commit`](crate::handoff::Commit) per tombstone (relinquished, awaiting DONE).
    Tombstones = 14,
    /// [`SessionRecord`] per bound session.
    Sessions = 15,
    /// [`Transfer`](crate::handoff::Transfer) per adoption whose CONFIRM has not come
    /// (the zone resends DONE for it and recognises its COMMIT).
    Unconfirmed = 16,
    /// [`PeerRunRecord`] per peer zone: the newest run of it heard of (version 5; absent
    /// from version 4 files, which reads as none).
    PeerRuns = 17,
}

impl SectionKind {
    pub const ALL: [SectionKind; 17] = [
        SectionKind::Meta,
        SectionKind::Ids,
        SectionKind::Epochs,
        SectionKind::X,
        SectionKind::Y,
        SectionKind::Z,
        SectionKind::Vx,
        SectionKind::Vy,
        SectionKind::Speeds,
        SectionKind::Kinds,
        SectionKind::Flags,
        SectionKind::Payloads,
        SectionKind::EpochMemory,
        SectionKind::Tombstones,
        SectionKind::Sessions,
        SectionKind::Unconfirmed,
        SectionKind::PeerRuns,
    ];

    pub const fn from_u16(value: u16) -> Option<SectionKind> {
        if value >= 1 && value as usize <= Self::ALL.len() {
            Some(Self::ALL[value as usize - 1])
        } else {
            None
        }
    }

    /// The size of one item of this section.
    pub const fn item_size(self) -> usize {
        match self {
            SectionKind::Meta => core::mem::size_of::<ZoneMeta>(),
            SectionKind::Ids => 8,
            SectionKind::Epochs
            | SectionKind::X
            | SectionKind::Y
            | SectionKind::Z
            | SectionKind::Vx
            | SectionKind::Vy
            | SectionKind::Speeds => 4,
            SectionKind::Kinds | SectionKind::Flags => 2,
            // Bytes: entity count × the game's record length (≤ `STATE_SIZE`).
            SectionKind::Payloads => 1,
            SectionKind::EpochMemory => core::mem::size_of::<EpochEntry>(),
            SectionKind::Tombstones => core::mem::size_of::<crate::handoff::Commit>(),
            SectionKind::Sessions => core::mem::size_of::<SessionRecord>(),
            SectionKind::Unconfirmed => core::mem::size_of::<crate::handoff::Transfer>(),
            SectionKind::PeerRuns => core::mem::size_of::<PeerRunRecord>(),
        }
    }

    /// Whether this section is an entity column (one item per owned entity).
    pub const fn is_entity_column(self) -> bool {
        !matches!(
            self,
            SectionKind::Meta
                | SectionKind::EpochMemory
                | SectionKind::Tombstones
                | SectionKind::Sessions
                | SectionKind::Unconfirmed
        )
    }
}

/// One entry of a checkpoint's section table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SectionEntry {
    /// A [`SectionKind`].
    pub kind: U16Le,
    pub reserved: U16Le,
    /// Items in the section.
    pub count: U32Le,
    /// Byte offset from the file's start (a multiple of [`SECTION_ALIGN`]).
    pub offset: U64Le,
    /// Bytes: `count × item size`.
    pub length: U64Le,
    /// CRC32C of the section's bytes.
    pub checksum: U32Le,
    pub reserved2: U32Le,
}

const _: () = assert!(core::mem::size_of::<SectionEntry>() == 32);

/// The section table that follows a checkpoint's header: a count, then the entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SectionTableHead {
    pub count: U32Le,
    /// CRC32C of the entries.
    pub checksum: U32Le,
}

const _: () = assert!(core::mem::size_of::<SectionTableHead>() == 8);

/// A zone's counters at the checkpoint's tick.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ZoneMeta {
    pub tick: U64Le,
    /// The next entity id counter the zone mints from.
    pub next_entity_counter: U64Le,
    /// Owned entities: the item count of every entity column.
    pub entity_count: U32Le,
    pub incarnation: U32Le,
}

const _: () = assert!(core::mem::size_of::<ZoneMeta>() == 24);

/// A remembered epoch: the highest epoch known for `id`, `age_ticks` before the
/// checkpoint's tick.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct EpochEntry {
    pub id: U64Le,
    pub epoch: U32Le,
    pub age_ticks: U32Le,
}

const _: () = assert!(core::mem::size_of::<EpochEntry>() == 16);

/// Why a checkpoint's section table is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionError {
    /// The file ends before the table or a section it names.
    Truncated,
    /// An unknown or repeated kind, a length that is not `count × item size`, an
    /// unaligned offset, or sections that overlap the header or the table.
    BadEntry,
}

/// The section table of a checkpoint file (`bytes` is the whole file): its head and
/// entries, each checked for kind, size, alignment and bounds. Checksums are the caller's.
pub fn section_table(bytes: &[u8]) -> Result<(&SectionTableHead, &[SectionEntry]), SectionError> {
    let head_at = FileHeader::SIZE;
    let head_bytes = bytes
        .get(head_at..head_at + core::mem::size_of::<SectionTableHead>())
        .ok_or(SectionError::Truncated)?;
    let head: &SectionTableHead = bytemuck::from_bytes(head_bytes);
    let count = head.count.get() as usize;
    if count > SectionKind::ALL.len() {
        return Err(SectionError::BadEntry);
    }
    let entries_at = head_at + core::mem::size_of::<SectionTableHead>();
    let entries_bytes = bytes
        .get(entries_at..entries_at + count * core::mem::size_of::<SectionEntry>())
        .ok_or(SectionError::Truncated)?;
    let entries: &[SectionEntry] =
        bytemuck::try_cast_slice(entries_bytes).map_err(|_| SectionError::BadEntry)?;
    let table_end = (entries_at + entries_bytes.len()) as u64;
    let mut seen = 0u32;
    for e in entries {
        let kind = SectionKind::from_u16(e.kind.get()).ok_or(SectionError::BadEntry)?;
        let bit = 1u32 << (kind as u16);
        if seen & bit != 0 {
            return Err(SectionError::BadEntry);
        }
        seen |= bit;
        let expected = u64::from(e.count.get()) * kind.item_size() as u64;
        let (offset, length) = (e.offset.get(), e.length.get());
        if length != expected || offset % SECTION_ALIGN != 0 || offset < table_end {
            return Err(SectionError::BadEntry);
        }
        let end = offset.checked_add(length).ok_or(SectionError::BadEntry)?;
        if end > bytes.len() as u64 {
            return Err(SectionError::Truncated);
        }
    }
    Ok((head, entries))
}
