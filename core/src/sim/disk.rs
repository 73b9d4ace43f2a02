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
//! Some crashes take a whole node: every zone on it at once. On restart the zone reads its
//! log back with `persist::scan_wal`, truncating a torn tail as the node does. For the
//! transfer-fate invariants, a crash tick's events are replaced by what its surviving
//! records say happened.

use std::hash::Hash;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::Sim;
use crate::handoff::LogRecord;
use crate::persist::{FileIdentity, FileKind, WalEnd, encode_record, file_header, scan_wal};
use crate::world::ZoneID;

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

/// A new, empty WAL image for zone `z`.
pub(super) fn empty_wal(z: u32) -> Vec<u8> {
    let identity = FileIdentity {
        world_id: 0,
        zone: ZoneID(z),
        incarnation: 0,
        tick: 0,
        generation: 0,
    };
    bytemuck::bytes_of(&file_header(FileKind::Wal, &identity)).to_vec()
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
        let disk = &mut self.disks[z];
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

    /// Zone `z`'s log as recovery reads it: a torn tail truncated (and counted).
    pub(super) fn read_log(&mut self, z: usize) -> Vec<LogRecord> {
        let scan = scan_wal(&self.disks[z]).expect("the simulated disk keeps its header");
        match scan.end {
            WalEnd::Clean => {}
            WalEnd::Torn { offset } => {
                self.disks[z].truncate(offset as usize);
                self.report.torn_tails += 1;
            }
            WalEnd::Corrupt { offset } => {
                self.report.violations.push(format!(
                    "zone {z}: corrupt WAL record at offset {offset} with no fault that could make one"
                ));
            }
        }
        scan.records
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
