//! Which durable state a zone restarts from, decided from the bytes of its files alone
//! (sans-IO: the node's data directory and the simulator's disk both use it).
//!
//! The candidates, newest first: each checkpoint whose every checksum holds, then "no
//! checkpoint" (the log from generation 0). A candidate needs every WAL segment from its
//! generation on, without a gap. A torn tail — the last record of the last segment cut
//! short — is truncated with a warning. A corrupt record anywhere, or a torn record in a
//! segment that is not the last, rules the candidate out (the older generation is tried);
//! if none is left, the zone refuses to start and says which file, which offset, and why.

use super::{CheckpointView, FileIdentity, WalEnd, read_checkpoint, scan_wal};
use crate::handoff::LogRecord;
use crate::world::ZoneID;

/// One file of a zone's durable state: its generation, a name for messages, its bytes.
#[derive(Clone, Copy, Debug)]
pub struct StoredFile<'a> {
    pub generation: u64,
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// What to restart from.
#[derive(Debug)]
pub struct RecoveryPlan<'a> {
    /// The checkpoint (index into the checkpoints given), verified, if any.
    pub checkpoint: Option<(usize, CheckpointView<'a>)>,
    /// The records after it, in order.
    pub records: Vec<LogRecord>,
    /// The incarnation this run must use (one more than any seen).
    pub incarnation: u32,
    /// The generation this run must begin (one more than any seen).
    pub generation: u64,
    /// The segment (index into the segments given) whose torn tail must be cut at this
    /// offset before the zone writes to its directory again.
    pub truncate: Option<(usize, u64)>,
    /// Nothing was found: a new zone.
    pub empty: bool,
    /// What an operator should know (torn tails, fallbacks taken).
    pub warnings: Vec<String>,
}

/// Why a zone cannot restart.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// A file of another world or zone: never read further, never fallen back from.
    #[error("{name}: belongs to world {} zone {}", identity.world_id, identity.zone.0)]
    Foreign {
        name: String,
        identity: FileIdentity,
    },
    /// No candidate is whole.
    #[error("{0}")]
    NothingValid(String),
}

/// Decides what zone `zone` of world `world_id` restarts from. `checkpoints` and `segments`
/// are sorted by generation, ascending.
pub fn plan_recovery<'a>(
    world_id: u64,
    zone: ZoneID,
    checkpoints: &[StoredFile<'a>],
    segments: &[StoredFile<'_>],
) -> Result<RecoveryPlan<'a>, RecoveryError> {
    let mut warnings = Vec::new();
    let newest = checkpoints
        .iter()
        .chain(segments)
        .map(|f| f.generation)
        .max();
    let Some(newest) = newest else {
        return Ok(RecoveryPlan {
            checkpoint: None,
            records: Vec::new(),
            incarnation: 1,
            generation: 1,
            truncate: None,
            empty: true,
            warnings,
        });
    };
    let foreign = |name: &str, identity: FileIdentity| ours(world_id, zone, name, identity);
    let mut reasons = Vec::new();
    let mut incarnation = 0u32;
    // Newest checkpoint first, then none at all (the log from generation 0).
    let candidates = checkpoints.iter().enumerate().rev().map(Some).chain([None]);
    for candidate in candidates {
        let (base, view) = match candidate {
            Some((index, file)) => match read_checkpoint(file.bytes) {
                Ok(view) => {
                    foreign(file.name, view.identity)?;
                    incarnation = incarnation.max(view.identity.incarnation);
                    (file.generation, Some((index, view)))
                }
                Err(e) => {
                    reasons.push(format!("{}: {e}", file.name));
                    warnings.push(format!(
                        "{}: {e}; falling back to the older generation",
                        file.name
                    ));
                    continue;
                }
            },
            None => (0, None),
        };
        match replay(segments, base, &mut warnings, &foreign)? {
            Ok(replayed) => {
                if view.is_none() && segments.first().is_none_or(|s| s.generation != 0) {
                    reasons.push(
                        "no valid checkpoint and no WAL from the beginning (generation 0)".into(),
                    );
                    break;
                }
                return Ok(RecoveryPlan {
                    checkpoint: view,
                    records: replayed.records,
                    incarnation: incarnation.max(replayed.incarnation) + 1,
                    generation: newest + 1,
                    truncate: replayed.truncate,
                    empty: false,
                    warnings,
                });
            }
            Err(reason) => {
                warnings.push(format!("{reason}; falling back to the older generation"));
                reasons.push(reason);
            }
        }
    }
    Err(RecoveryError::NothingValid(reasons.join("; ")))
}

/// `Err` if the file named `name` belongs to another world or zone.
fn ours(
    world_id: u64,
    zone: ZoneID,
    name: &str,
    identity: FileIdentity,
) -> Result<(), RecoveryError> {
    if identity.world_id != world_id || identity.zone != zone {
        return Err(RecoveryError::Foreign {
            name: name.to_owned(),
            identity,
        });
    }
    Ok(())
}

struct Replayed {
    records: Vec<LogRecord>,
    incarnation: u32,
    truncate: Option<(usize, u64)>,
}

/// Replays the segments from generation `base` on. `Ok(Err(reason))`: a corrupt record (or
/// a gap) makes this base unusable.
fn replay(
    segments: &[StoredFile<'_>],
    base: u64,
    warnings: &mut Vec<String>,
    foreign: &impl Fn(&str, FileIdentity) -> Result<(), RecoveryError>,
) -> Result<Result<Replayed, String>, RecoveryError> {
    let mut out = Replayed {
        records: Vec::new(),
        incarnation: 0,
        truncate: None,
    };
    let first = segments.iter().position(|s| s.generation >= base);
    let wanted = first.map_or(&segments[..0], |i| &segments[i..]);
    if wanted.first().is_none_or(|s| s.generation != base) {
        return Ok(Err(format!(
            "the WAL segment of generation {base} is missing"
        )));
    }
    for (i, segment) in wanted.iter().enumerate() {
        if segment.generation != base + i as u64 {
            return Ok(Err(format!(
                "WAL generation {} is missing",
                base + i as u64
            )));
        }
        let last = i + 1 == wanted.len();
        if last && segment.bytes.len() < meridian_layouts::persist::FileHeader::SIZE {
            // A crash between creating the newest segment and syncing its header: it
            // holds nothing.
            warnings.push(format!(
                "{}: {} bytes, no complete header (a crash while it was created); ignored",
                segment.name,
                segment.bytes.len()
            ));
            break;
        }
        let scan = match scan_wal(segment.bytes) {
            Ok(scan) => scan,
            Err(e) => return Ok(Err(format!("{}: {e}", segment.name))),
        };
        foreign(segment.name, scan.identity)?;
        out.incarnation = out.incarnation.max(scan.identity.incarnation);
        match scan.end {
            WalEnd::Clean => {}
            WalEnd::Torn { offset } if last => {
                warnings.push(format!(
                    "{}: torn tail at offset {offset} (an interrupted write), truncated",
                    segment.name
                ));
                out.truncate = Some((first.unwrap_or(0) + i, offset));
            }
            WalEnd::Torn { offset } | WalEnd::Corrupt { offset } => {
                return Ok(Err(format!(
                    "{}: corrupt record at offset {offset}",
                    segment.name
                )));
            }
        }
        for r in &scan.records {
            if let LogRecord::Incarnation { incarnation, .. } = r {
                out.incarnation = out.incarnation.max(*incarnation);
            }
        }
        out.records.extend(scan.records);
    }
    Ok(Ok(out))
}
