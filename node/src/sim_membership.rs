//! `meridian sim --membership`: the membership simulator (real gossip under drawn faults)
//! from the command line, seeds spread over worker threads.

use std::time::Instant;

use meridian_core::sim::membership::{
    MembershipOptions, MembershipReport, detect_within, run_membership,
};

use crate::sim::{Args, SimError, failure, on_threads, threads};

/// Runs `args.seeds` seeds of the membership simulator and prints a summary.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let end = args.first_seed.saturating_add(args.seeds);
    eprintln!(
        "membership: seeds {}..{end}, each 50 s of 3–5 meshes in 5 ms steps, on {} threads",
        args.first_seed,
        threads(args.threads)
    );
    let options = MembershipOptions {
        trace: args.trace,
        one_way: args.one_way,
    };
    let start = Instant::now();
    let reports = on_threads(args.first_seed, args.seeds, args.threads, |seed| {
        let report = run_membership(seed, &options);
        let failed = (!report.ok()).then(|| {
            let flags = if args.one_way {
                "--membership --trace --one-way"
            } else {
                "--membership --trace"
            };
            failure(seed, &report.violations, flags)
        });
        (report, failed)
    });
    let failed = reports.iter().filter(|r| !r.ok()).count() as u64;
    print_summary(&reports, failed, start.elapsed().as_secs_f64());
    if failed > 0 {
        return Err(SimError::Failed {
            failed,
            seeds: args.seeds,
        }
        .into());
    }
    Ok(())
}

fn print_summary(r: &[MembershipReport], failed: u64, elapsed: f64) {
    let seeds = r.len() as u64;
    let sum = |f: fn(&MembershipReport) -> u64| r.iter().map(f).sum::<u64>();
    println!(
        "{seeds} seeds in {elapsed:.1} s: {:.1} seeds/s, {} failed",
        seeds as f64 / elapsed,
        failed
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
