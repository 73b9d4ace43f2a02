//! The simulated disk: each zone's write-ahead log as bytes, through the real on-disk
//! encoder (`crate::persist`), and the crash faults a disk adds.
//!
//! A crash is *clean* (between ticks: everything the zone logged is durable and everything
//! it sent is on the wire) or happens inside a tick, after the zone logged the tick's records
//! and before its datagrams left:
//!
//! - **synced, not sent**: the records are durable, the datagrams are lost;
//! - **lost tick**: the records never reached the disk (the sync did not complete), and
//!   the datagrams, which wait for it, never left;
//! - **torn tick**: the disk kept the tick's records but the last, cut in half: a torn tail
//!   that recovery truncates.
//!
//! Some crashes take a whole node: every zone on it at once.
//!
//! **Checkpoints** ([`ZoneDisk`]): most seeds checkpoint every 30–400 ticks the way the node
//! does — ownership captured at a tick boundary, the state columns over the next eight
//! ticks (`Zone::capture_continue`), the log switched to a new segment, two generations
//! kept; the rest run on the log alone. Every restart begins a new generation with a whole
//! checkpoint, as the node's does.
//!
//! **Bit flips**: some crashes also flip one bit somewhere in the zone's files (an old
//! record, a checkpoint section, a header). On restart the zone recovers with the node's
//! own decision (`persist::plan_recovery`): a torn tail is truncated, damage an older
//! generation avoids falls back to it, and damage nothing avoids refuses the start — the
//! simulator then plays the operator who restores the file from a backup, and counts it.
//! A refusal with no flip to explain it is a violation.
//!
//! For the transfer-fate invariants, a crash tick's events are replaced by what its
//! surviving records say happened.

use std::hash::Hash;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::Sim;
use crate::handoff::LogRecord;
use crate::persist::{
    Capture, FileIdentity, FileKind, RecoveryError, StoredFile, encode_checkpoint, encode_record,
    file_header, plan_recovery,
};
use crate::time::Instant;
use crate::world::ZoneID;
use crate::zone::Zone;

/// How a crash meets the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Fault {
    Clean,
    SyncedNotSent,
    LostTick,
    TornTick,
}

/// Draws each crash's fault, and turns some crashes into whole-node crashes, from its own
/// generator (so the scenario's other draws stay what they were).
pub(super) fn draw_faults(
    seed: u64,
    crashes: &mut Vec<(u64, u32, u64)>,
    node_of: &[u32],
) -> Vec<Fault> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x0d15_c0de_d15c_0de5);
    let mut faults = Vec::new();
    for k in 0..crashes.len() {
        let (at, zone, down) = crashes[k];
        faults.push(match rng.random_range(0..4) {
            0 => Fault::Clean,
            1 => Fault::SyncedNotSent,
            2 => Fault::LostTick,
            _ => Fault::TornTick,
        });
        if rng.random_bool(0.3) {
            // The whole node goes down with this zone.
            let node = node_of[zone as usize];
            for (other, &n) in node_of.iter().enumerate() {
                if n == node && other as u32 != zone {
                    crashes.push((at, other as u32, down));
                    faults.push(Fault::Clean);
                }
            }
        }
    }
    faults
}

/// Chance that a crash also flips one bit in one of the zone's files.
const BIT_FLIP_CHANCE: f64 = 0.2;

/// Ticks a checkpoint's state columns are spread over, as in the node.
const CAPTURE_TICKS: usize = 8;

fn identity(z: u32, generation: u64, incarnation: u32, tick: u64) -> FileIdentity {
    FileIdentity {
        run: 0,
        world_id: 0,
        zone: ZoneID(z),
        incarnation,
        tick,
        generation,
    }
}

/// A new, empty WAL segment image.
fn empty_wal(z: u32, generation: u64, incarnation: u32, tick: u64) -> Vec<u8> {
    let identity = identity(z, generation, incarnation, tick);
    bytemuck::bytes_of(&file_header(FileKind::Wal, &identity)).to_vec()
}

fn stored(files: &[(u64, Vec<u8>)]) -> Vec<StoredFile<'_>> {
    files
        .iter()
        .map(|(generation, bytes)| StoredFile {
            generation: *generation,
            name: "simulated",
            bytes,
        })
        .collect()
}

/// One zone's files on the simulated disk: WAL segments and checkpoints by generation.
pub(super) struct ZoneDisk {
    zone: u32,
    /// (generation, bytes), ascending; the last segment is the one being appended to.
    checkpoints: Vec<(u64, Vec<u8>)>,
    segments: Vec<(u64, Vec<u8>)>,
    /// Ticks between checkpoints; `None`: this seed runs on the log alone.
    every: Option<u64>,
    /// A checkpoint being captured: generation, buffers, entities per step.
    capturing: Option<(u64, Box<Capture>, usize)>,
    /// The file a bit flip damaged at the last crash, and its bytes before: (checkpoint?,
    /// generation, bytes).
    flipped: Option<(bool, u64, Vec<u8>)>,
    /// The oldest generation a standby's copy still needs (see [`Mark`]): kept even when
    /// two newer ones exist.
    pub(super) pinned: Option<u64>,
}

/// Where the disk stood at a tick boundary: what a standby that acknowledged that tick's
/// records holds — the checkpoints up to `checkpoint`, the segments up to `segment`, the
/// last of them `bytes` long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mark {
    checkpoint: Option<u64>,
    segment: u64,
    bytes: usize,
}

impl Mark {
    /// The oldest generation recovering from here may read.
    pub(super) fn oldest_needed(self) -> u64 {
        self.checkpoint
            .map_or(0, |c| c.saturating_sub(1))
            .min(self.segment)
    }
}

impl ZoneDisk {
    /// Zone `z`'s disk at the start: one segment holding `records` (its spawns).
    pub(super) fn new(z: u32, every: Option<u64>, records: &[LogRecord]) -> ZoneDisk {
        let mut wal = empty_wal(z, 0, 0, 0);
        for r in records {
            encode_record(r, &mut wal);
        }
        ZoneDisk {
            zone: z,
            checkpoints: Vec::new(),
            segments: vec![(0, wal)],
            every,
            capturing: None,
            flipped: None,
            pinned: None,
        }
    }

    /// The zone these files restore, as a node restarting from them would run it (its
    /// recovery decision, the run after the files'), with nothing recorded anywhere: for a
    /// node that comes back to files the mesh has moved on from ([`super::comeback`]).
    pub(super) fn restore_alone(
        &self,
        world: &crate::world::World,
        limits: crate::limits::Limits,
        config: crate::handoff::HandoffConfig,
    ) -> Result<Zone, String> {
        let z = ZoneID(self.zone);
        let (checkpoints, segments) = (stored(&self.checkpoints), stored(&self.segments));
        let plan = plan_recovery(0, z, &checkpoints, &segments).map_err(|e| e.to_string())?;
        let view = plan.checkpoint.as_ref().map(|(_, view)| *view);
        Zone::restore_from(
            world,
            z,
            limits,
            config,
            Instant::ZERO,
            plan.incarnation,
            view.as_ref(),
            &plan.records,
        )
        .map_err(|e| format!("restore: {e}"))
    }

    /// Where the disk stands now.
    pub(super) fn mark(&self) -> Mark {
        let (segment, wal) = self.segments.last().expect("a disk always has a segment");
        Mark {
            checkpoint: self.checkpoints.last().map(|c| c.0),
            segment: *segment,
            bytes: wal.len(),
        }
    }

    /// Whether the files `mark` names are still here: its newest checkpoint and its last
    /// segment. (A copy at a mark whose files were retired is not what the standby holds:
    /// the pin's job, see `Sim::pin_copy`. The segment's length is not compared: a mark
    /// taken in a torn tick counts the torn half record, which the restart truncates.)
    pub(super) fn holds(&self, mark: Mark) -> bool {
        let checkpoint = mark
            .checkpoint
            .is_none_or(|g| self.checkpoints.iter().any(|c| c.0 == g));
        checkpoint && self.segments.iter().any(|s| s.0 == mark.segment)
    }

    /// The files as they stood at `mark`, as a standby that acknowledged it holds them
    /// (a bit flipped on this disk since is not on the copy). Generations at or after the
    /// pin are kept, so every file the mark names is still here.
    pub(super) fn copy_at(&self, mark: Mark) -> ZoneDisk {
        let pristine = |checkpoint: bool, generation: u64, bytes: &[u8]| -> Vec<u8> {
            match &self.flipped {
                Some((c, g, before)) if *c == checkpoint && *g == generation => before.clone(),
                _ => bytes.to_vec(),
            }
        };
        let checkpoints = self
            .checkpoints
            .iter()
            .filter(|c| mark.checkpoint.is_some_and(|g| c.0 <= g))
            .map(|(g, bytes)| (*g, pristine(true, *g, bytes)))
            .collect();
        let segments = self
            .segments
            .iter()
            .filter(|s| s.0 <= mark.segment)
            .map(|(g, bytes)| {
                let mut copy = pristine(false, *g, bytes);
                if *g == mark.segment {
                    copy.truncate(mark.bytes);
                }
                (*g, copy)
            })
            .collect();
        ZoneDisk {
            zone: self.zone,
            checkpoints,
            segments,
            every: self.every,
            capturing: None,
            flipped: None,
            pinned: None,
        }
    }

    fn wal(&mut self) -> &mut Vec<u8> {
        &mut self
            .segments
            .last_mut()
            .expect("a disk always has a segment")
            .1
    }

    fn newest_generation(&self) -> u64 {
        let c = self.checkpoints.last().map_or(0, |c| c.0);
        c.max(self.segments.last().map_or(0, |s| s.0))
    }

    /// At a tick boundary, after the tick's records: begins a checkpoint when one is due
    /// (switching the log to its segment) or copies the next slice of the one under way;
    /// returns `true` when a checkpoint became durable.
    pub(super) fn after_tick(&mut self, zone: &Zone) -> bool {
        if let Some((generation, mut capture, step)) = self.capturing.take() {
            if !zone.capture_continue(&mut capture, step) {
                self.capturing = Some((generation, capture, step));
                return false;
            }
            self.write_checkpoint(generation, zone.incarnation(), &capture);
            return true;
        }
        let Some(every) = self.every else {
            return false;
        };
        if !zone.tick_count().is_multiple_of(every) {
            return false;
        }
        let mut capture = Box::<Capture>::default();
        zone.capture_begin(&mut capture);
        let step = capture.entity_count().div_ceil(CAPTURE_TICKS).max(1);
        let generation = self.newest_generation() + 1;
        let wal = empty_wal(self.zone, generation, zone.incarnation(), capture.tick);
        self.segments.push((generation, wal));
        self.capturing = Some((generation, capture, step));
        false
    }

    /// A zone stopping on purpose ([`super::moves`]): a checkpoint of its last tick, whole
    /// at once, in a new generation (a capture under way is dropped, as at a crash).
    pub(super) fn final_checkpoint(&mut self, zone: &Zone) {
        self.capturing = None;
        let mut capture = Box::<Capture>::default();
        zone.capture_begin(&mut capture);
        let whole = zone.capture_continue(&mut capture, usize::MAX);
        debug_assert!(whole, "a zone that does not tick is captured in one step");
        let generation = self.newest_generation() + 1;
        let wal = empty_wal(self.zone, generation, zone.incarnation(), capture.tick);
        self.segments.push((generation, wal));
        self.write_checkpoint(generation, zone.incarnation(), &capture);
    }

    fn write_checkpoint(&mut self, generation: u64, incarnation: u32, capture: &Capture) {
        let mut bytes = Vec::new();
        let identity = identity(self.zone, generation, incarnation, capture.tick);
        encode_checkpoint(&identity, capture, &mut bytes);
        self.checkpoints.push((generation, bytes));
        // Two generations kept (and whatever a standby's copy still needs).
        let keep = generation
            .saturating_sub(1)
            .min(self.pinned.unwrap_or(u64::MAX));
        self.checkpoints.retain(|c| c.0 >= keep);
        self.segments.retain(|s| s.0 >= keep);
        if self.flipped.as_ref().is_some_and(|f| f.1 < keep) {
            self.flipped = None;
        }
    }

    /// A crash: the capture under way is lost; sometimes a bit of a durable file flips.
    pub(super) fn crash(&mut self, rng: &mut SmallRng) -> bool {
        self.capturing = None;
        if self.flipped.is_some() || !rng.random_bool(BIT_FLIP_CHANCE) {
            return false;
        }
        let files = self.checkpoints.len() + self.segments.len();
        let pick = rng.random_range(0..files);
        let (checkpoint, (generation, bytes)) = if pick < self.checkpoints.len() {
            (true, &mut self.checkpoints[pick])
        } else {
            (false, &mut self.segments[pick - self.checkpoints.len()])
        };
        let pristine = bytes.clone();
        let at = rng.random_range(0..bytes.len());
        bytes[at] ^= 1 << rng.random_range(0..8);
        self.flipped = Some((checkpoint, *generation, pristine));
        true
    }

    /// The operator's repair after a refused start: the damaged file from a backup.
    fn repair(&mut self) -> bool {
        let Some((checkpoint, generation, pristine)) = self.flipped.take() else {
            return false;
        };
        let files = if checkpoint {
            &mut self.checkpoints
        } else {
            &mut self.segments
        };
        if let Some(file) = files.iter_mut().find(|f| f.0 == generation) {
            file.1 = pristine;
        }
        true
    }
}

impl Sim {
    /// The mid-tick fault of a crash of zone `z` scheduled at `tick`, if there is one.
    pub(super) fn mid_tick_fault(&self, tick: u64, z: usize) -> Option<Fault> {
        self.crashes
            .iter()
            .zip(&self.faults)
            .find(|((at, zone, _), fault)| {
                *at == tick && *zone as usize == z && **fault != Fault::Clean
            })
            .map(|(_, fault)| *fault)
    }

    /// Writes a tick's records to zone `z`'s disk as `fault` allows; returns the records
    /// that survived.
    pub(super) fn write_tick(
        &mut self,
        z: usize,
        records: &[LogRecord],
        fault: Option<Fault>,
    ) -> usize {
        let disk = self.disks[z].wal();
        match fault {
            None | Some(Fault::Clean) | Some(Fault::SyncedNotSent) => {
                for r in records {
                    encode_record(r, disk);
                }
                records.len()
            }
            Some(Fault::LostTick) => 0,
            Some(Fault::TornTick) => {
                let Some((last, whole)) = records.split_last() else {
                    return 0;
                };
                for r in whole {
                    encode_record(r, disk);
                }
                let mut tail = Vec::new();
                encode_record(last, &mut tail);
                disk.extend_from_slice(&tail[..tail.len() / 2]);
                whole.len()
            }
        }
    }

    /// Zone `z`'s disk meets its crash (the capture under way is lost; a bit may flip).
    pub(super) fn crash_disk(&mut self, z: usize) {
        if self.disks[z].crash(&mut self.rng_disk) {
            self.report.bit_flips += 1;
        }
    }

    /// Zone `z` restarted from its disk exactly as the node restarts one: the node's own
    /// recovery decision, then a new generation begun with a whole checkpoint. A refused
    /// start is repaired (the damaged file restored, as an operator would from a backup)
    /// and counted; a refusal no flip explains is a violation.
    pub(super) fn restore_zone(&mut self, tick: u64, z: usize) -> Zone {
        loop {
            match self.try_restore(tick, z, false) {
                Ok(zone) => return zone,
                Err(reason) => {
                    if self.disks[z].repair() {
                        self.report.refusals += 1;
                        continue;
                    }
                    self.violation(
                        tick,
                        format!("zone {z} refused to start with no damage to explain it: {reason}"),
                    );
                    return Zone::with_config(
                        &self.world,
                        ZoneID(z as u32),
                        self.limits,
                        self.config,
                        Instant::ZERO,
                        self.incarnation[z],
                    )
                    .expect("limits");
                }
            }
        }
    }

    /// `promoted`: a standby restores the zone from its copy, as the incarnation after any
    /// the zone ran as (its copy may end before the primary's last restart).
    pub(super) fn try_restore(
        &mut self,
        tick: u64,
        z: usize,
        promoted: bool,
    ) -> Result<Zone, String> {
        let expected = self.incarnation[z] + 1;
        let (zone, generation, truncate, done, fell_back) = {
            let disk = &self.disks[z];
            let (checkpoints, segments) = (stored(&disk.checkpoints), stored(&disk.segments));
            let plan = match plan_recovery(0, ZoneID(z as u32), &checkpoints, &segments) {
                Ok(plan) => plan,
                Err(RecoveryError::NothingValid(reason)) => return Err(reason),
                Err(e @ RecoveryError::Foreign { .. }) => return Err(e.to_string()),
            };
            // As the node's start (`restore_only`): a standby that holds none of the
            // zone's files cannot take it over — a new, empty zone would lose every entity.
            if promoted && plan.empty {
                return Err("the copy holds none of the zone's files".into());
            }
            let view = plan.checkpoint.as_ref().map(|(_, view)| *view);
            let zone = Zone::restore_from(
                &self.world,
                ZoneID(z as u32),
                self.limits,
                self.config,
                Instant::ZERO,
                if promoted { expected } else { plan.incarnation },
                view.as_ref(),
                &plan.records,
            )
            .map_err(|e| format!("restore: {e}"))?;
            let fell_back = plan.warnings.iter().any(|w| w.contains("falling back"));
            let done = super::network::completed_transfers(&plan.records);
            (zone, plan.generation, plan.truncate, done, fell_back)
        };
        if zone.incarnation() != expected {
            let found = zone.incarnation();
            self.violation(
                tick,
                format!("zone {z} restarts as incarnation {found}, not {expected}"),
            );
        }
        self.incarnation[z] = zone.incarnation();
        self.report.restored_done += done;
        self.report.fallbacks += u64::from(fell_back);
        let disk = &mut self.disks[z];
        if let Some((segment, offset)) = truncate {
            disk.segments[segment].1.truncate(offset as usize);
            self.report.torn_tails += 1;
        }
        // As the node's start: a new segment and a whole checkpoint of the restored zone.
        let wal = empty_wal(z as u32, generation, zone.incarnation(), zone.tick_count());
        disk.segments.push((generation, wal));
        if disk.every.is_some() {
            let mut capture = Capture::default();
            zone.capture(&mut capture);
            disk.write_checkpoint(generation, zone.incarnation(), &capture);
            self.report.checkpoints += 1;
        }
        Ok(zone)
    }

    /// The fate bookkeeping for a crash tick: what its durable records say happened.
    pub(super) fn record_survivors(&mut self, tick: u64, z: usize, survivors: &[LogRecord]) {
        for r in survivors {
            match r {
                LogRecord::Relinquish { commit } => {
                    let key = (z as u32, commit.transfer.transfer_id.get());
                    let fate = self.fates.entry(key).or_default();
                    if !fate.relinquished {
                        fate.relinquished = true;
                        self.report.transfers_committed += 1;
                    }
                }
                LogRecord::Adopt {
                    from, transfer_id, ..
                } => {
                    self.fates
                        .entry((from.0, *transfer_id))
                        .or_default()
                        .arrivals += 1;
                }
                LogRecord::Done { transfer_id, .. } => {
                    self.fates
                        .entry((z as u32, *transfer_id))
                        .or_default()
                        .departed = true;
                }
                _ => {}
            }
        }
        (tick, z, "crash tick", survivors.len()).hash(&mut self.hasher);
    }
}
