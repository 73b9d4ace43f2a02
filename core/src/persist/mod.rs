//! A zone's durable state as bytes: write-ahead-log records and checkpoint images, encoded
//! and decoded (formats in `meridian_layouts::persist`; documented in `docs/formats.md`).
//!
//! No file I/O here: the driver writes what [`encode_record`] and [`encode_checkpoint`]
//! produce and hands back what it read (a mapped file) to [`scan_wal`] and
//! [`read_checkpoint`]. Every checksum is verified before a byte is interpreted; nothing
//! here panics on hostile or damaged bytes.
//!
//! A checkpoint is a copy of the zone at a tick boundary ([`Capture`], filled by
//! [`Zone::capture`](crate::zone::Zone::capture) into buffers reused from one checkpoint
//! to the next), written off the tick. Restoring is the newest valid checkpoint, then the
//! WAL records after it ([`Zone::restore_from`](crate::zone::Zone::restore_from)).

#[cfg(target_endian = "big")]
compile_error!(
    "the checkpoint columns are written in native byte order, which must be little-endian"
);

mod capture;
mod recovery;

pub use recovery::{RecoveryError, RecoveryPlan, StoredFile, plan_recovery};

use meridian_layouts::handoff::{Commit, STATE_SIZE, Transfer};
use meridian_layouts::persist::{
    AdoptRecord, CHECKPOINT_MAGIC, DoneRecord, EpochEntry, FORMAT_VERSION, FileHeader,
    IncarnationRecord, PeerRunRecord, PersistedEntity, RECORD_PAYLOAD_MAX, RecordError,
    RecordHeader, RecordKind, RemoveRecord, SECTION_ALIGN, SectionEntry, SectionKind,
    SectionTableHead, SessionRecord, WAL_MAGIC, ZoneMeta, section_table, split_record,
};
use meridian_layouts::{F32Le, U16Le, U32Le, U64Le};

use crate::entities::{EntityID, EntityInit};
use crate::handoff::{LogRecord, state_of};
use crate::world::ZoneID;

/// CRC32C over `parts`, in order.
pub fn checksum(parts: &[&[u8]]) -> u32 {
    parts.iter().fold(0, |crc, p| crc32c::crc32c_append(crc, p))
}

/// Which file a header is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Wal,
    Checkpoint,
}

impl FileKind {
    fn magic(self) -> [u8; 8] {
        match self {
            FileKind::Wal => WAL_MAGIC,
            FileKind::Checkpoint => CHECKPOINT_MAGIC,
        }
    }
}

/// What a file says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    pub world_id: u64,
    pub zone: ZoneID,
    pub incarnation: u32,
    pub tick: u64,
    pub generation: u64,
    /// The run that wrote it: random per start of the zone (0: not said — files of
    /// builds before it), so two runs that reuse one incarnation are told apart. In the
    /// header's first eight reserved bytes.
    pub run: u64,
}

/// A file header with its checksum.
pub fn file_header(kind: FileKind, id: &FileIdentity) -> FileHeader {
    let mut h = FileHeader {
        magic: kind.magic(),
        format_version: U32Le::new(FORMAT_VERSION),
        header_size: U32Le::new(FileHeader::SIZE as u32),
        world_id: U64Le::new(id.world_id),
        zone: U32Le::new(id.zone.0),
        incarnation: U32Le::new(id.incarnation),
        tick: U64Le::new(id.tick),
        generation: U64Le::new(id.generation),
        reserved: [0; 12],
        checksum: U32Le::new(0),
    };
    h.reserved[..8].copy_from_slice(&id.run.to_le_bytes());
    h.checksum = U32Le::new(checksum(&[h.covered()]));
    h
}

/// Why a file cannot be used at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("shorter than its 64-byte header")]
    Truncated,
    #[error("not a Meridian {0} file (wrong magic)")]
    WrongKind(&'static str),
    #[error("format version or header size this build does not read")]
    BadVersion,
    #[error("header checksum mismatch")]
    BadChecksum,
}

/// Checks the header at the front of `bytes`.
pub fn read_header(bytes: &[u8], kind: FileKind) -> Result<FileIdentity, FileError> {
    let header = FileHeader::parse(bytes, kind.magic()).map_err(|e| match e {
        meridian_layouts::ParseError::Truncated => FileError::Truncated,
        meridian_layouts::ParseError::BadMagic => FileError::WrongKind(match kind {
            FileKind::Wal => "WAL",
            FileKind::Checkpoint => "checkpoint",
        }),
        _ => FileError::BadVersion,
    })?;
    if header.checksum.get() != checksum(&[header.covered()]) {
        return Err(FileError::BadChecksum);
    }
    Ok(FileIdentity {
        world_id: header.world_id.get(),
        zone: ZoneID(header.zone.get()),
        incarnation: header.incarnation.get(),
        tick: header.tick.get(),
        generation: header.generation.get(),
        run: run_of(header),
    })
}

/// The run a file header names (0: not said).
pub fn run_of(header: &FileHeader) -> u64 {
    let mut run = [0u8; 8];
    run.copy_from_slice(&header.reserved[..8]);
    u64::from_le_bytes(run)
}

// ---- WAL records ---------------------------------------------------------------------

fn persisted(e: &EntityInit) -> PersistedEntity {
    PersistedEntity {
        id: U64Le::new(e.id.0),
        epoch: U32Le::new(e.epoch),
        state: state_of(e),
    }
}

fn entity_from(p: &PersistedEntity) -> EntityInit {
    let s = &p.state;
    EntityInit {
        id: EntityID(p.id.get()),
        epoch: p.epoch.get(),
        position: [
            s.position[0].get(),
            s.position[1].get(),
            s.position[2].get(),
        ],
        velocity: [s.velocity[0].get(), s.velocity[1].get()],
        speed_mps_max: s.speed_mps_max.get(),
        kind: s.kind.get(),
        flags: s.flags.get(),
        payload: s.payload,
    }
}

/// Appends `record`, framed and checksummed, to `out`.
pub fn encode_record(record: &LogRecord, out: &mut Vec<u8>) {
    let mut payload = [0u8; RECORD_PAYLOAD_MAX];
    let (kind, bytes): (RecordKind, &[u8]) = match record {
        LogRecord::Incarnation { incarnation, zone } => {
            let r = IncarnationRecord {
                incarnation: U32Le::new(*incarnation),
                zone: U32Le::new(zone.0),
                tick: U64Le::new(0),
            };
            (RecordKind::Incarnation, put(&mut payload, &r))
        }
        LogRecord::Spawn { entity } => (RecordKind::Spawn, put(&mut payload, &persisted(entity))),
        LogRecord::Adopt {
            entity,
            from,
            transfer_id,
        } => {
            let r = AdoptRecord {
                entity: persisted(entity),
                from_zone: U32Le::new(from.0),
                reserved: U32Le::new(0),
                transfer_id: U64Le::new(*transfer_id),
            };
            (RecordKind::Adopt, put(&mut payload, &r))
        }
        LogRecord::Relinquish { commit } => (RecordKind::Relinquish, put(&mut payload, commit)),
        LogRecord::Done { id, transfer_id } => {
            let r = DoneRecord {
                id: U64Le::new(id.0),
                transfer_id: U64Le::new(*transfer_id),
            };
            (RecordKind::Done, put(&mut payload, &r))
        }
        LogRecord::Remove { id } => {
            let r = RemoveRecord {
                id: U64Le::new(id.0),
            };
            (RecordKind::Remove, put(&mut payload, &r))
        }
        LogRecord::SessionBind { id, binding } => {
            let r = SessionRecord {
                id: U64Le::new(id.0),
                binding: *binding,
            };
            (RecordKind::SessionBind, put(&mut payload, &r))
        }
        LogRecord::PeerRun { zone, incarnation } => {
            let r = peer_run(*zone, *incarnation);
            (RecordKind::PeerRun, put(&mut payload, &r))
        }
    };
    debug_assert_eq!(bytes.len(), kind.payload_size());
    let mut header = RecordHeader {
        length: U32Le::new(bytes.len() as u32),
        kind: U16Le::new(kind as u16),
        reserved: U16Le::new(0),
        checksum: U32Le::new(0),
    };
    header.checksum = U32Le::new(checksum(&[header.covered(), bytes]));
    out.extend_from_slice(bytemuck::bytes_of(&header));
    out.extend_from_slice(bytes);
}

fn put<'a, T: bytemuck::Pod>(buf: &'a mut [u8; RECORD_PAYLOAD_MAX], value: &T) -> &'a [u8] {
    let bytes = bytemuck::bytes_of(value);
    buf[..bytes.len()].copy_from_slice(bytes);
    &buf[..bytes.len()]
}

/// Decodes one verified payload.
fn decode_record(kind: RecordKind, payload: &[u8]) -> Option<LogRecord> {
    Some(match kind {
        RecordKind::Incarnation => {
            let r: &IncarnationRecord = bytemuck::try_from_bytes(payload).ok()?;
            LogRecord::Incarnation {
                incarnation: r.incarnation.get(),
                zone: ZoneID(r.zone.get()),
            }
        }
        RecordKind::Spawn => LogRecord::Spawn {
            entity: entity_from(bytemuck::try_from_bytes(payload).ok()?),
        },
        RecordKind::Adopt => {
            let r: &AdoptRecord = bytemuck::try_from_bytes(payload).ok()?;
            LogRecord::Adopt {
                entity: entity_from(&r.entity),
                from: ZoneID(r.from_zone.get()),
                transfer_id: r.transfer_id.get(),
            }
        }
        RecordKind::Relinquish => LogRecord::Relinquish {
            commit: *meridian_layouts::parse::<Commit>(payload).ok()?,
        },
        RecordKind::Done => {
            let r: &DoneRecord = bytemuck::try_from_bytes(payload).ok()?;
            LogRecord::Done {
                id: EntityID(r.id.get()),
                transfer_id: r.transfer_id.get(),
            }
        }
        RecordKind::Remove => {
            let r: &RemoveRecord = bytemuck::try_from_bytes(payload).ok()?;
            LogRecord::Remove {
                id: EntityID(r.id.get()),
            }
        }
        RecordKind::SessionBind => {
            let r: &SessionRecord = bytemuck::try_from_bytes(payload).ok()?;
            LogRecord::SessionBind {
                id: EntityID(r.id.get()),
                binding: r.binding,
            }
        }
        RecordKind::PeerRun => {
            let r: &PeerRunRecord = bytemuck::try_from_bytes(payload).ok()?;
            LogRecord::PeerRun {
                zone: ZoneID(r.zone.get()),
                incarnation: r.incarnation.get(),
            }
        }
    })
}

/// Zone `zone`'s newest run heard of, as the log and checkpoints keep it.
pub(crate) fn peer_run(zone: ZoneID, incarnation: u32) -> PeerRunRecord {
    PeerRunRecord {
        zone: U32Le::new(zone.0),
        incarnation: U32Le::new(incarnation),
    }
}

/// How a WAL ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalEnd {
    /// Every byte after the header is a whole, verified record.
    Clean,
    /// The last record is cut short (an interrupted write): everything from `offset` on is
    /// a torn tail, safe to truncate.
    Torn { offset: u64 },
    /// A whole record at `offset` fails its checksum or names no known kind: damage, not
    /// an interrupted write. The records before it are good; those after cannot be
    /// trusted.
    Corrupt { offset: u64 },
}

/// A WAL, read: its identity, its good records (in order), and how it ends.
#[derive(Clone, Debug, PartialEq)]
pub struct WalScan {
    pub identity: FileIdentity,
    pub records: Vec<LogRecord>,
    pub end: WalEnd,
    /// Bytes of header and good records.
    pub valid_len: u64,
}

/// Reads a WAL file's bytes.
pub fn scan_wal(bytes: &[u8]) -> Result<WalScan, FileError> {
    let identity = read_header(bytes, FileKind::Wal)?;
    let mut at = FileHeader::SIZE;
    let mut records = Vec::new();
    let end = loop {
        if at == bytes.len() {
            break WalEnd::Clean;
        }
        match split_record(&bytes[at..]) {
            Err(RecordError::Torn) => break WalEnd::Torn { offset: at as u64 },
            Err(RecordError::BadHeader) => break WalEnd::Corrupt { offset: at as u64 },
            Ok((header, payload)) => {
                let kind = RecordKind::from_u16(header.kind.get()).expect("split checked");
                let decoded = (header.checksum.get() == checksum(&[header.covered(), payload]))
                    .then(|| decode_record(kind, payload))
                    .flatten();
                match decoded {
                    Some(record) => records.push(record),
                    None => break WalEnd::Corrupt { offset: at as u64 },
                }
                at += RecordHeader::SIZE + payload.len();
            }
        }
    };
    Ok(WalScan {
        identity,
        records,
        end,
        valid_len: match end {
            WalEnd::Clean => bytes.len() as u64,
            WalEnd::Torn { offset } | WalEnd::Corrupt { offset } => offset,
        },
    })
}

// ---- checkpoints -------------------------------------------------------------------------

/// A zone copied at a tick boundary: its entity columns, epoch memory, tombstones and
/// session bindings. Buffers are reused from one capture to the next.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    pub tick: u64,
    pub next_entity_counter: u64,
    pub incarnation: u32,
    pub ids: Vec<u64>,
    pub epochs: Vec<u32>,
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub z: Vec<f32>,
    pub vx: Vec<f32>,
    pub vy: Vec<f32>,
    pub speeds: Vec<f32>,
    pub kinds: Vec<u16>,
    pub flags: Vec<u16>,
    /// The game's state records, `state_len` bytes per entity (the leading bytes of each
    /// state slot; the rest of a slot is not kept).
    pub payloads: Vec<u8>,
    pub state_len: usize,
    pub epoch_memory: Vec<EpochEntry>,
    pub tombstones: Vec<Commit>,
    pub sessions: Vec<SessionRecord>,
    pub unconfirmed: Vec<Transfer>,
    pub peer_runs: Vec<PeerRunRecord>,
}

impl Capture {
    pub fn entity_count(&self) -> usize {
        self.ids.len()
    }

    /// The sections in file order: kind, item count, bytes.
    fn sections<'a>(&'a self, meta: &'a ZoneMeta) -> [(SectionKind, usize, &'a [u8]); 17] {
        fn b<T: bytemuck::Pod>(v: &[T]) -> &[u8] {
            bytemuck::cast_slice(v)
        }
        let n = self.ids.len();
        [
            (SectionKind::Meta, 1, bytemuck::bytes_of(meta)),
            (SectionKind::Ids, n, b(&self.ids)),
            (SectionKind::Epochs, n, b(&self.epochs)),
            (SectionKind::X, n, b(&self.x)),
            (SectionKind::Y, n, b(&self.y)),
            (SectionKind::Z, n, b(&self.z)),
            (SectionKind::Vx, n, b(&self.vx)),
            (SectionKind::Vy, n, b(&self.vy)),
            (SectionKind::Speeds, n, b(&self.speeds)),
            (SectionKind::Kinds, n, b(&self.kinds)),
            (SectionKind::Flags, n, b(&self.flags)),
            (SectionKind::Payloads, self.payloads.len(), &self.payloads),
            (
                SectionKind::EpochMemory,
                self.epoch_memory.len(),
                b(&self.epoch_memory),
            ),
            (
                SectionKind::Tombstones,
                self.tombstones.len(),
                b(&self.tombstones),
            ),
            (
                SectionKind::Sessions,
                self.sessions.len(),
                b(&self.sessions),
            ),
            (
                SectionKind::Unconfirmed,
                self.unconfirmed.len(),
                b(&self.unconfirmed),
            ),
            (
                SectionKind::PeerRuns,
                self.peer_runs.len(),
                b(&self.peer_runs),
            ),
        ]
    }
}

/// Encodes a checkpoint file into `out` (cleared first): header, section table, sections.
pub fn encode_checkpoint(identity: &FileIdentity, capture: &Capture, out: &mut Vec<u8>) {
    out.clear();
    let meta = ZoneMeta {
        tick: U64Le::new(capture.tick),
        next_entity_counter: U64Le::new(capture.next_entity_counter),
        entity_count: U32Le::new(capture.entity_count() as u32),
        incarnation: U32Le::new(capture.incarnation),
    };
    let sections = capture.sections(&meta);
    let table_end = FileHeader::SIZE
        + size_of::<SectionTableHead>()
        + sections.len() * size_of::<SectionEntry>();
    let align = |at: u64| at.div_ceil(SECTION_ALIGN) * SECTION_ALIGN;
    let mut entries = Vec::with_capacity(sections.len());
    let mut at = align(table_end as u64);
    for (kind, count, bytes) in &sections {
        let length = bytes.len();
        debug_assert_eq!(length, count * kind.item_size());
        entries.push(SectionEntry {
            kind: U16Le::new(*kind as u16),
            reserved: U16Le::new(0),
            count: U32Le::new(*count as u32),
            offset: U64Le::new(at),
            length: U64Le::new(length as u64),
            checksum: U32Le::new(checksum(&[bytes])),
            reserved2: U32Le::new(0),
        });
        at = align(at + length as u64);
    }
    let head = SectionTableHead {
        count: U32Le::new(entries.len() as u32),
        checksum: U32Le::new(checksum(&[bytemuck::cast_slice(&entries)])),
    };
    out.reserve(at as usize);
    out.extend_from_slice(bytemuck::bytes_of(&file_header(
        FileKind::Checkpoint,
        identity,
    )));
    out.extend_from_slice(bytemuck::bytes_of(&head));
    out.extend_from_slice(bytemuck::cast_slice(&entries));
    for (entry, (_, _, bytes)) in entries.iter().zip(&sections) {
        out.resize(entry.offset.get() as usize, 0);
        out.extend_from_slice(bytes);
    }
}

/// Why a checkpoint cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0}")]
    File(#[from] FileError),
    #[error("section table cut short or malformed")]
    BadTable,
    #[error("section table checksum mismatch")]
    TableChecksum,
    #[error("section {kind:?} at offset {offset}: checksum mismatch")]
    SectionChecksum { kind: SectionKind, offset: u64 },
    #[error("section {0:?} missing")]
    Missing(SectionKind),
    #[error("entity columns disagree with the entity count")]
    Inconsistent,
}

/// A verified checkpoint, its sections borrowed from the file's bytes.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointView<'a> {
    pub identity: FileIdentity,
    pub meta: &'a ZoneMeta,
    pub ids: &'a [U64Le],
    pub epochs: &'a [U32Le],
    pub x: &'a [F32Le],
    pub y: &'a [F32Le],
    pub z: &'a [F32Le],
    pub vx: &'a [F32Le],
    pub vy: &'a [F32Le],
    pub speeds: &'a [F32Le],
    pub kinds: &'a [U16Le],
    pub flags: &'a [U16Le],
    /// The game's state records: [`CheckpointView::state_len`] bytes per entity.
    pub payloads: &'a [u8],
    pub epoch_memory: &'a [EpochEntry],
    pub tombstones: &'a [Commit],
    pub sessions: &'a [SessionRecord],
    pub unconfirmed: &'a [Transfer],
    /// The newest run of each peer zone heard of (none in version 4 files).
    pub peer_runs: &'a [PeerRunRecord],
}

impl CheckpointView<'_> {
    pub fn entity_count(&self) -> usize {
        self.ids.len()
    }

    /// Bytes of game state per entity (0 without a game; checked ≤ `STATE_SIZE`).
    pub fn state_len(&self) -> usize {
        self.payloads.len().checked_div(self.ids.len()).unwrap_or(0)
    }
}

/// The checksummed sections of a checkpoint, each verified: `(kind, offset, bytes, ok)`.
/// For `meridian inspect`, which reports every section even when one is bad.
pub fn checkpoint_sections(
    bytes: &[u8],
) -> Result<Vec<(SectionKind, u64, u32, bool)>, CheckpointError> {
    let (_, sections) = sections(bytes)?;
    Ok(sections
        .map(|(kind, entry, section)| {
            let ok = checksum(&[section]) == entry.checksum.get();
            (kind, entry.offset.get(), entry.count.get(), ok)
        })
        .collect())
}

/// A checkpoint's identity and its sections `(kind, table entry, bytes)`, once the header,
/// the table's shape and the table's checksum have verified (the sections' own checksums
/// are the caller's to check).
#[allow(clippy::type_complexity)]
fn sections(
    bytes: &[u8],
) -> Result<
    (
        FileIdentity,
        impl Iterator<Item = (SectionKind, &SectionEntry, &[u8])>,
    ),
    CheckpointError,
> {
    let identity = read_header(bytes, FileKind::Checkpoint)?;
    let (head, entries) = section_table(bytes).map_err(|_| CheckpointError::BadTable)?;
    if head.checksum.get() != checksum(&[bytemuck::cast_slice(entries)]) {
        return Err(CheckpointError::TableChecksum);
    }
    Ok((
        identity,
        entries.iter().map(move |e| {
            let kind = SectionKind::from_u16(e.kind.get()).expect("table checked");
            let (offset, length) = (e.offset.get() as usize, e.length.get() as usize);
            (kind, e, &bytes[offset..offset + length])
        }),
    ))
}

/// Reads a checkpoint: header, table and every section checksum first, then casts.
pub fn read_checkpoint(bytes: &[u8]) -> Result<CheckpointView<'_>, CheckpointError> {
    let (identity, sections) = sections(bytes)?;
    let mut found: [Option<&[u8]>; SectionKind::ALL.len()] = [None; SectionKind::ALL.len()];
    for (kind, entry, section) in sections {
        if checksum(&[section]) != entry.checksum.get() {
            return Err(CheckpointError::SectionChecksum {
                kind,
                offset: entry.offset.get(),
            });
        }
        found[kind as usize - 1] = Some(section);
    }
    let cast = |kind: SectionKind| found[kind as usize - 1].ok_or(CheckpointError::Missing(kind));
    let meta: &ZoneMeta = bytemuck::try_from_bytes(cast(SectionKind::Meta)?)
        .map_err(|_| CheckpointError::Inconsistent)?;
    let view = CheckpointView {
        identity,
        meta,
        ids: bytemuck::cast_slice(cast(SectionKind::Ids)?),
        epochs: bytemuck::cast_slice(cast(SectionKind::Epochs)?),
        x: bytemuck::cast_slice(cast(SectionKind::X)?),
        y: bytemuck::cast_slice(cast(SectionKind::Y)?),
        z: bytemuck::cast_slice(cast(SectionKind::Z)?),
        vx: bytemuck::cast_slice(cast(SectionKind::Vx)?),
        vy: bytemuck::cast_slice(cast(SectionKind::Vy)?),
        speeds: bytemuck::cast_slice(cast(SectionKind::Speeds)?),
        kinds: bytemuck::cast_slice(cast(SectionKind::Kinds)?),
        flags: bytemuck::cast_slice(cast(SectionKind::Flags)?),
        payloads: cast(SectionKind::Payloads)?,
        epoch_memory: bytemuck::cast_slice(cast(SectionKind::EpochMemory)?),
        tombstones: bytemuck::cast_slice(cast(SectionKind::Tombstones)?),
        sessions: bytemuck::cast_slice(cast(SectionKind::Sessions)?),
        unconfirmed: bytemuck::cast_slice(cast(SectionKind::Unconfirmed)?),
        // Absent from version 4 files: no peer run heard of.
        peer_runs: bytemuck::cast_slice(cast(SectionKind::PeerRuns).unwrap_or(&[])),
    };
    let n = meta.entity_count.get() as usize;
    let columns = [
        view.ids.len(),
        view.epochs.len(),
        view.x.len(),
        view.y.len(),
        view.z.len(),
        view.vx.len(),
        view.vy.len(),
        view.speeds.len(),
        view.kinds.len(),
        view.flags.len(),
    ];
    if columns.iter().any(|&c| c != n) {
        return Err(CheckpointError::Inconsistent);
    }
    // The state records: the same length for every entity, at most a slot.
    let records = view.payloads.len();
    if view.state_len() > STATE_SIZE || records != n * view.state_len() {
        return Err(CheckpointError::Inconsistent);
    }
    // Every tombstone must be a valid COMMIT (its own header and field checks).
    for t in view.tombstones {
        if meridian_layouts::parse::<Commit>(bytemuck::bytes_of(t)).is_err() {
            return Err(CheckpointError::Inconsistent);
        }
    }
    if view.unconfirmed.iter().any(|t| t.validate().is_err()) {
        return Err(CheckpointError::Inconsistent);
    }
    Ok(view)
}
