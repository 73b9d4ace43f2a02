//! `meridian inspect PATH`: what a WAL or checkpoint file holds, and whether it is intact.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use meridian_core::handoff::LogRecord;
use meridian_core::persist::{
    FileKind, WalEnd, checkpoint_sections, read_checkpoint, read_header, scan_wal,
};

/// Prints the report; an error (exit status 1) when anything is corrupt.
pub fn run(path: &Path) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let (text, problem) = report(&bytes);
    print!("{}: {text}", path.display());
    match problem {
        None => Ok(()),
        Some(p) => anyhow::bail!("{}: {p}", path.display()),
    }
}

/// The report, and the first problem if there is one.
pub fn report(bytes: &[u8]) -> (String, Option<String>) {
    let kind = if bytes.starts_with(b"MRDN-WAL") {
        FileKind::Wal
    } else if bytes.starts_with(b"MRDN-CKP") {
        FileKind::Checkpoint
    } else {
        return (
            format!("{} bytes, not a Meridian WAL or checkpoint\n", bytes.len()),
            Some("unknown file (bad magic at offset 0)".into()),
        );
    };
    let mut out = String::new();
    let identity = match read_header(bytes, kind) {
        Ok(id) => id,
        Err(e) => {
            return (
                format!("{kind:?}, {} bytes\n", bytes.len()),
                Some(format!("header: {e} (offset 0)")),
            );
        }
    };
    let _ = writeln!(
        out,
        "{kind:?}, {} bytes: world {} zone {} incarnation {} run {:016x} generation {} tick {} (header checksum ok)",
        bytes.len(),
        identity.world_id,
        identity.zone.0,
        identity.incarnation,
        identity.run,
        identity.generation,
        identity.tick
    );
    let problem = match kind {
        FileKind::Wal => wal(bytes, &mut out),
        FileKind::Checkpoint => checkpoint(bytes, &mut out),
    };
    (out, problem)
}

fn wal(bytes: &[u8], out: &mut String) -> Option<String> {
    let scan = match scan_wal(bytes) {
        Ok(scan) => scan,
        Err(e) => return Some(e.to_string()),
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &scan.records {
        let name = match r {
            LogRecord::Incarnation { .. } => "incarnation",
            LogRecord::Spawn { .. } => "spawn",
            LogRecord::Adopt { .. } => "adopt",
            LogRecord::Relinquish { .. } => "relinquish",
            LogRecord::Done { .. } => "done",
            LogRecord::Remove { .. } => "remove",
            LogRecord::SessionBind { .. } => "session_bind",
            LogRecord::PeerRun { .. } => "peer_run",
        };
        *counts.entry(name).or_default() += 1;
    }
    let _ = writeln!(out, "  {} records (checksums ok):", scan.records.len());
    for (name, n) in &counts {
        let _ = writeln!(out, "    {name:<14} {n}");
    }
    match scan.end {
        WalEnd::Clean => None,
        WalEnd::Torn { offset } => Some(format!(
            "torn tail: the last record is cut short at offset {offset} (an interrupted write; recovery truncates it)"
        )),
        WalEnd::Corrupt { offset } => Some(format!(
            "corrupt record at offset {offset} (checksum or header mismatch); {} good records before it",
            scan.records.len()
        )),
    }
}

fn checkpoint(bytes: &[u8], out: &mut String) -> Option<String> {
    let sections = match checkpoint_sections(bytes) {
        Ok(s) => s,
        Err(e) => return Some(e.to_string()),
    };
    let mut first_bad = None;
    let _ = writeln!(out, "  {} sections:", sections.len());
    for (kind, offset, count, ok) in &sections {
        let status = if *ok { "ok" } else { "CHECKSUM MISMATCH" };
        let name = format!("{kind:?}");
        let _ = writeln!(
            out,
            "    {name:<12} {count:>9} items at offset {offset:>10}  {status}"
        );
        if !ok && first_bad.is_none() {
            first_bad = Some(format!(
                "section {kind:?} at offset {offset}: checksum mismatch"
            ));
        }
    }
    if let Some(bad) = first_bad {
        return Some(bad);
    }
    match read_checkpoint(bytes) {
        Ok(view) => {
            let _ = writeln!(
                out,
                "  entities {}, remembered epochs {}, in flight {}, awaiting confirm {}, sessions {}, next entity counter {}",
                view.entity_count(),
                view.epoch_memory.len(),
                view.tombstones.len(),
                view.unconfirmed.len(),
                view.sessions.len(),
                view.meta.next_entity_counter.get()
            );
            None
        }
        Err(e) => Some(e.to_string()),
    }
}
