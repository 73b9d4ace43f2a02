//! `meridian sim --membership`: the membership simulator (real gossip under drawn faults)
//! from the command line, seeds spread over worker threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use meridian_core::sim::membership::{
    MembershipOptions, MembershipReport, detect_within, run_membership,
};

use crate::progress::Progress;
use crate::sim::{Args, SimError};

/// What the seeds added up to.
#[derive(Default)]
struct Summary {
    failed: u64,
    reports: Vec<MembershipReport>,
}

/// Runs `args.seeds` seeds of the membership simulator and prints a summary.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let end = args.first_seed.saturating_add(args.seeds);
    eprintln!(
        "membership: seeds {}..{end}, each 50 s of 3–5 meshes in 5 ms steps, on {threads} threads",
        args.first_seed
    );
    let options = MembershipOptions {
        trace: args.trace,
        one_way: args.one_way,
    };
    let next = Arc::new(AtomicU64::new(args.first_seed));
    let summary = Arc::new(Mutex::new(Summary::default()));
    let progress = Progress::new(args.seeds, "seeds");
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (next, summary, progress) = (next.clone(), summary.clone(), progress.clone());
            scope.spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let report = run_membership(seed, &options);
                    if !report.ok() {
                        let mut lines = format!("seed {seed} FAILED:\n");
                        for v in &report.violations {
                            lines += &format!("    {v}\n");
                        }
                        lines += &format!(
                            "  replay: cargo run --release -p meridian-node -- sim --membership --first-seed {seed} --seeds 1 --trace{}",
                            if args.one_way { " --one-way" } else { "" }
                        );
                        progress.println(&lines);
                    }
                    let mut s = summary.lock().expect("no worker panics holding it");
                    s.failed += u64::from(!report.ok());
                    s.reports.push(report);
                    let n = s.reports.len() as u64;
                    progress.update(n, &format!("  {n}/{} seeds  {} failed", args.seeds, s.failed));
                }
            });
        }
    });
    progress.finish();
    let summary = summary.lock().expect("workers finished");
    print_summary(&summary, args.seeds, start.elapsed().as_secs_f64());
    if summary.failed > 0 {
        return Err(SimError::Failed {
            failed: summary.failed,
            seeds: args.seeds,
        }
        .into());
    }
    Ok(())
}

fn print_summary(summary: &Summary, seeds: u64, elapsed: f64) {
    let r = &summary.reports;
    let sum = |f: fn(&MembershipReport) -> u64| r.iter().map(f).sum::<u64>();
    println!(
        "{seeds} seeds in {elapsed:.1} s: {:.1} seeds/s, {} failed",
        seeds as f64 / elapsed,
        summary.failed
    );
    println!(
        "faults: {} kills, {} leaves, {} restarts, {} stalls, {} cuts ({} one way); {} of {} datagrams lost",
        sum(|r| r.kills.into()),
        sum(|r| r.leaves.into()),
        sum(|r| r.restarts.into()),
        sum(|r| r.stalls.into()),
        sum(|r| r.cuts.into()),
        sum(|r| r.one_way.into()),
        sum(|r| r.lost),
        sum(|r| r.datagrams)
    );
    println!(
        "views: {} declared down, {} told of a death at start, {} stall rejoins",
        sum(|r| r.downs),
        sum(|r| r.told),
        sum(|r| r.rejoins)
    );
    let spread = |pick: fn(&MembershipReport) -> &Vec<u64>| {
        let mut all: Vec<u64> = r.iter().flat_map(|r| pick(r).iter().copied()).collect();
        all.sort_unstable();
        match (all.first(), all.get(all.len() / 2), all.last()) {
            (Some(lo), Some(mid), Some(hi)) => {
                format!("{} checked: {lo}–{hi} ms, median {mid}", all.len())
            }
            _ => "none checked".into(),
        }
    };
    for nodes in 3..=5 {
        let of_size: Vec<&MembershipReport> = r.iter().filter(|r| r.nodes == nodes).collect();
        let mut killed: Vec<u64> = of_size
            .iter()
            .flat_map(|r| r.detections_ms.iter().copied())
            .collect();
        killed.sort_unstable();
        if let (Some(mid), Some(hi)) = (killed.get(killed.len() / 2), killed.last()) {
            println!(
                "  {nodes} nodes ({} seeds): {} calm kills, seen down by all within {hi} ms (median {mid}; bound {} ms)",
                of_size.len(),
                killed.len(),
                detect_within(nodes).as_millis()
            );
        }
    }
    println!(
        "calm deaths seen down by every node: killed {}; left {}",
        spread(|r| &r.detections_ms),
        spread(|r| &r.leave_detections_ms)
    );
    println!(
        "nodes started while another was dead, seeing it down: {}",
        spread(|r| &r.told_ms)
    );
}
