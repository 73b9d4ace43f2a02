//! `meridian sim`: the deterministic simulator from the command line, for long runs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use meridian_core::sim::{FixedNetwork, Options, Report, run as run_seed};

use crate::progress::Progress;

/// What `meridian sim` was asked to do: the command's options.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// The first seed (seeds run from here up).
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Ticks per seed, including the 300-tick healing phase.
    #[arg(long, default_value_t = 3000)]
    pub ticks: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Random walkers per seed (default: drawn from 100–300), plus the seed's border
    /// dancers and flash crowd.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub entities: Option<u32>,
    /// Measure instead of explore: two zones, this packet loss on every link, no
    /// other faults.
    #[arg(long, value_name = "P")]
    pub loss: Option<f64>,
    /// With --loss: put both zones on one node (a perfect queue; loss is ignored).
    #[arg(long, requires = "loss")]
    pub same_node: bool,
    /// Every zone streams its log to a warm standby on another node, and its datagrams
    /// wait until the standby holds their records; in half of those seeds a node dies for
    /// good and its zones fail over to their standbys (docs/mesh.md). Default: half the
    /// multi-node seeds; none with --loss.
    #[arg(long)]
    pub standbys: bool,
    /// With standbys: every seed without a node death cuts one node off from the others
    /// long enough for it to be declared down, while it runs on — a false suspicion. Its
    /// zones fail over; the old primaries must change nothing until they stand down after
    /// the cut heals. Default: half the standby seeds without a death.
    #[arg(long)]
    pub suspicions: bool,
    /// With standbys: every seed whose dead node's zones fail over has that node come
    /// back 40–200 ticks after the takeovers and resume its zones from its stale files;
    /// those runs must send nothing until they stand down. Default: half such seeds.
    #[arg(long)]
    pub comebacks: bool,
    /// Implies --comebacks. Every seed whose dead node came back with time left for another
    /// failover has that node die again 150–350 ticks later, as the standby of the zones
    /// it kept; their primaries must be able to drop it. Default: a quarter of such seeds
    /// (another node dies in turn in half of them).
    #[arg(long)]
    pub dies_again: bool,
    /// Every zone's game sends game messages to about one ghost in 31 each tick, and
    /// reports one handed to a game twice, by a zone that does not own its entity, never
    /// sent, or torn. Off by default: it changes every seed's traffic.
    #[arg(long)]
    pub messages: bool,
    /// Implies --standbys. Every node death is a leave, as a node stopped with SIGTERM
    /// does: its zones stop, then it tells the others it is down, and they declare it so
    /// 1–3 ticks later instead of 25 — the takeovers start while the stopped zones' last
    /// datagrams are still on the way. Off by default: it changes the seeds with a death.
    #[arg(long)]
    pub leaves: bool,
    /// Implies --standbys. In seeds without a node death or a false suspicion, one zone is
    /// moved to its standby on purpose while its node runs on (it stops after a final
    /// checkpoint, the standby takes it over once the mesh agrees) and later back; the
    /// checks then allow no position or game state to go back at the move. In worlds of
    /// three nodes or more, half the first moves lose the standby's node while under way,
    /// and half the others the node the zone left (half of either come back). Off by
    /// default: it changes those seeds.
    #[arg(long)]
    pub moves: bool,
    /// Implies --standbys. In seeds whose node death leads to takeovers, the first standby
    /// the mesh agrees may take a zone over dies right then, before it hears; the zone
    /// waits for it, and it comes back 150 ticks later, withdraws the promise it never
    /// acted on and takes the zone over again if its node is still down. Off by default:
    /// it changes those seeds.
    #[arg(long)]
    pub takers_die: bool,
    /// Implies --standbys. Nodes see a death, a cut off node and a node's return up to 8
    /// ticks apart (each node draws its own delay for each change) instead of all at once,
    /// as gossip spreads in a real mesh: a standby may ask to take a zone over before the
    /// others see its node down (they answer "wait"), a primary to drop a standby some
    /// still see alive; a refused takeover is asked once more a second later, as the node
    /// does. Off by default: it changes those seeds.
    #[arg(long)]
    pub skewed_views: bool,
    /// Run the membership simulator instead: 3–5 nodes' real membership (foca's gossip,
    /// signed datagrams, the deaths datagram, the stall rejoin) over a network with loss,
    /// duplication and delay, 50 s a seed in 5 ms steps, under drawn faults — nodes killed,
    /// leaving, coming back, stalled, cut from one node or all. Checks that a death in a
    /// calm window is seen by every node within 1 s in a mesh of three (100 ms more per
    /// further node), that no running node is declared down while nothing disturbs it,
    /// that a node starting while another is dead is told within 1 s, and that every
    /// view agrees after the quiet end. Takes --seeds, --first-seed and --threads;
    /// docs/mesh.md, "Membership in the simulator".
    #[arg(long, conflicts_with_all = ["ticks", "loss", "entities", "standbys", "suspicions", "comebacks", "dies_again", "messages", "leaves", "moves", "takers_die", "skewed_views", "trace_entity"])]
    pub membership: bool,
    /// With --membership: print each seed's network and faults and every membership event
    /// to stderr (use with --seeds 1, to see why a seed failed).
    #[arg(long, requires = "membership")]
    pub trace: bool,
    /// With --membership: half the cuts between two nodes drop traffic one way only (a
    /// firewall rule, a broken route). Off by default: it changes the seeds with such a cut.
    #[arg(long, requires = "membership")]
    pub one_way: bool,
    /// Print, to stderr, the run's mesh events (stops, deaths, votes and their answers,
    /// promotions) and every event of the entity with this id (0 for none): to see why
    /// a failed seed failed. Use with --seeds 1 and the replay flags it printed.
    #[arg(long, value_name = "ID")]
    pub trace_entity: Option<u64>,
}

/// Why the simulation run failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{failed} of {seeds} seeds violated invariants (replay commands above)")]
    Failed { failed: u64, seeds: u64 },
    #[error("--loss must be between 0 and 1 (got {0})")]
    Loss(f64),
}

/// Runs the seeds on worker threads, prints progress every second and a summary.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.membership {
        return crate::sim_membership::run(&args);
    }
    if let Some(loss) = args.loss
        && !(0.0..=1.0).contains(&loss)
    {
        return Err(SimError::Loss(loss).into());
    }
    let mut options = match args.loss {
        Some(loss) => Options {
            zones: Some((2, 1)),
            fixed_network: Some(FixedNetwork {
                same_node: args.same_node,
                loss,
                duplication: 0.0,
                delay_max_ticks: 1,
            }),
            ..Options::default()
        },
        None => Options::default(),
    };
    options.walkers = args.entities.map(|n| n as usize);
    options.standbys = match (
        args.standbys
            || args.suspicions
            || args.comebacks
            || args.dies_again
            || args.leaves
            || args.moves
            || args.takers_die
            || args.skewed_views,
        args.loss,
    ) {
        (true, _) => Some(true),
        (false, Some(_)) => Some(false),
        (false, None) => None,
    };
    options.suspicions = args.suspicions.then_some(true);
    options.comebacks = (args.comebacks || args.dies_again).then_some(true);
    options.dies_again = args.dies_again.then_some(true);
    options.messages = args.messages;
    options.leaves = args.leaves;
    options.moves = args.moves;
    options.takers_die = args.takers_die;
    options.skewed_views = args.skewed_views;
    options.trace_entity = args.trace_entity;
    // What a replay needs besides the seed to draw the same run.
    let mut replay_flags = String::new();
    if let Some(loss) = args.loss {
        replay_flags += &format!(" --loss {loss}");
        if args.same_node {
            replay_flags += " --same-node";
        }
    }
    if let Some(n) = args.entities {
        replay_flags += &format!(" --entities {n}");
    }
    for (on, flag) in [
        (args.standbys, " --standbys"),
        (args.suspicions, " --suspicions"),
        (args.comebacks, " --comebacks"),
        (args.dies_again, " --dies-again"),
        (args.messages, " --messages"),
        (args.leaves, " --leaves"),
        (args.moves, " --moves"),
        (args.takers_die, " --takers-die"),
        (args.skewed_views, " --skewed-views"),
    ] {
        if on {
            replay_flags += flag;
        }
    }
    let end = args.first_seed.saturating_add(args.seeds);
    eprintln!(
        "simulating seeds {}..{end} for {} ticks each on {} threads",
        args.first_seed,
        args.ticks,
        threads(args.threads)
    );
    let start = Instant::now();
    let reports = on_threads(args.first_seed, args.seeds, args.threads, |seed| {
        let report = run_seed(seed, args.ticks, &options);
        let failed = (!report.ok()).then(|| {
            let replay = format!("--ticks {}{replay_flags}", args.ticks);
            failure(seed, &report.violations, &replay)
        });
        (report, failed)
    });
    let mut summary = Summary::default();
    for report in &reports {
        summary.add(report);
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{} seeds × {} ticks in {elapsed:.1} s: {:.1} seeds/s, {} failed",
        args.seeds,
        args.ticks,
        args.seeds as f64 / elapsed,
        summary.failed
    );
    println!(
        "transfers: {} committed, {} aborted; {} zone crashes; {} of {} datagrams lost",
        summary.committed, summary.aborted, summary.crashes, summary.lost, summary.sent
    );
    if summary.standby_seeds > 0 {
        println!(
            "standbys: {} seeds; {} datagrams waited for one, {:.2} ticks on average; {} zones \
             promoted after their node died or was cut off",
            summary.standby_seeds,
            summary.gated,
            summary.gated_ticks as f64 / summary.gated.max(1) as f64,
            summary.promoted,
        );
    }
    let mut waits = summary.dead_waits.clone();
    waits.sort_unstable();
    if let Some(&(longest, seed)) = waits.last() {
        let q = |p: f64| waits[((waits.len() - 1) as f64 * p).round() as usize].0;
        println!(
            "dead standbys: in {} seeds a zone's datagrams waited for a standby on a dead node \
             (until the drop, or the node's return); the longest wait per seed p50 {} p99 {} \
             max {} ticks (seed {seed}); {} seeds over 100 ticks",
            waits.len(),
            q(0.5),
            q(0.99),
            longest,
            waits.iter().filter(|w| w.0 > 100).count()
        );
    }
    if summary.left > 0 {
        println!(
            "leaves: in {} seeds the node that died left the mesh: declared down 1–3 ticks \
             after its zones stopped, while their last datagrams were on the way",
            summary.left
        );
    }
    if summary.moves > 0 {
        let mut ticks = summary.move_ticks.clone();
        ticks.sort_unstable();
        let q = |p: f64| {
            ticks
                .get(((ticks.len() as f64 - 1.0) * p) as usize)
                .copied()
                .unwrap_or(0)
        };
        println!(
            "moves: {} zones stopped to move to their standby; {} running there, the stop to \
             the takeover p50 {} p99 {} max {} ticks; {} given up (the standby did not hold \
             the last records in time, was declared down or did not take over: restarted on \
             their node); in {} the standby's node died while the move was under way, in {} \
             the node the zone left",
            summary.moves,
            ticks.len(),
            q(0.5),
            q(0.99),
            ticks.last().copied().unwrap_or(0),
            summary.moves_given_up,
            summary.move_standby_deaths,
            summary.move_primary_deaths
        );
    }
    if summary.no_majority > 0 {
        println!(
            "no majority: {} seeds lost or cut off a node of two; nothing failed over, the \
             zones waited for it to come back",
            summary.no_majority
        );
    }
    if summary.isolated > 0 {
        println!(
            "false suspicions: {} seeds cut a node off until it was declared down; its old \
             primaries sent {} datagrams after the takeover ({} taken by zones that had not \
             heard of it) and held {} for a standby that would not answer; zones fenced off \
             {} datagrams of older runs; {} old primaries stood down ({} of them after \
             waiting for the dead node that took them over, their {} asks to go on without \
             it refused)",
            summary.isolated,
            summary.superseded_sent,
            summary.superseded_taken,
            summary.superseded_held,
            summary.fenced,
            summary.stood_down,
            summary.superseded_waited,
            summary.superseded_drops_refused
        );
    }
    if summary.comebacks + summary.restarted_on_return > 0 {
        println!(
            "comebacks: dead nodes came back to their files and resumed {} zones taken over \
             meanwhile, each superseded until the mesh's answer reached it and it stood down \
             ({} then kept as standbys there); {} zones nobody had taken over yet restarted \
             on them",
            summary.comebacks, summary.kept_here, summary.restarted_on_return
        );
    }
    if summary.returned_awaited > 0 {
        println!(
            "awaited returns: {} dead nodes restarted because a zone waited for them (its \
             own, or one agreed to them while dead: {} such takeovers, {} of them by a taker \
             killed as it was agreed); {} takeovers asked again on return",
            summary.returned_awaited,
            summary.waited_for_taker,
            summary.takers_died,
            summary.takeovers_retried
        );
    }
    if summary.game_messages_sent > 0 {
        println!(
            "game messages: {} sent to ghosts, {} handed to the game of the zone owning the \
             entity ({:.1} %), none twice",
            summary.game_messages_sent,
            summary.game_messages_delivered,
            100.0 * summary.game_messages_delivered as f64 / summary.game_messages_sent as f64
        );
    }
    if summary.failbacks > 0 {
        println!(
            "failbacks: in {} seeds a node running zones a returned node kept the standbys \
             of died in turn; {} zones went back to the returned node",
            summary.failbacks, summary.failed_back
        );
    }
    if summary.died_again > 0 {
        println!(
            "died again: in {} seeds the returned node died again; its withdrawals not \
             every node held yet were asked again {} times in all seeds",
            summary.died_again, summary.withdrawals_again
        );
    }
    if summary.ballots > 0 {
        println!(
            "votes: {} asks; {} standbys dropped once a majority agreed; {} promotions refused \
             (the copy was dropped), {} withdrawn by their standby (not gone ahead) and {} by \
             a restarted node (never acted on); {} releases asked by primaries refused a \
             drop, {} promises withdrawn from a dead node's disk brought back for them; {} \
             zones waited for their own node; {} dropped standbys streamed to again once \
             back, {} agreed current again",
            summary.ballots,
            summary.dropped,
            summary.promotions_refused,
            summary.withdrawn,
            summary.withdrawn_on_restart,
            summary.releases,
            summary.withdrawn_from_disk,
            summary.waited_for_node,
            summary.rejoined,
            summary.current_again
        );
    }
    if args.skewed_views || summary.answered_wait > 0 {
        println!(
            "membership views: {} answers to asks about a node said to wait (the answering \
             node did not see it down), {} of them to an asker that did; {} takeovers \
             refused were asked again a second later, {} of them then agreed",
            summary.answered_wait,
            summary.views_apart,
            summary.takeovers_asked_again,
            summary.asked_again_took_over
        );
    }
    let mut ticks = summary.handoff_ticks.clone();
    ticks.sort_unstable();
    if !ticks.is_empty() {
        let q = |p: f64| ticks[((ticks.len() - 1) as f64 * p).round() as usize];
        println!(
            "handoff completion (crossing → DONE), ticks: p50 {} p99 {} p99.9 {} max {} ({} handoffs)",
            q(0.5),
            q(0.99),
            q(0.999),
            ticks[ticks.len() - 1],
            ticks.len()
        );
    }
    if summary.failed > 0 {
        return Err(SimError::Failed {
            failed: summary.failed,
            seeds: args.seeds,
        }
        .into());
    }
    Ok(())
}

/// What a failed seed prints: its violations, and the command that replays it (`flags`
/// after `--seeds 1`).
pub(crate) fn failure(seed: u64, violations: &[String], flags: &str) -> String {
    let mut lines = format!("seed {seed} FAILED:\n");
    for v in violations {
        lines += &format!("    {v}\n");
    }
    lines
        + &format!(
            "  replay: cargo run --release -p meridian-node -- sim --first-seed {seed} --seeds 1 {flags}"
        )
}

/// The worker threads for `--threads` (default: one per core).
pub(crate) fn threads(asked: Option<usize>) -> usize {
    asked
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// Runs seeds `first..first + seeds` on [`threads`] worker threads, `run` drawing one and
/// returning its outcome with, if it failed, the lines to print (printed above the
/// progress bar at once). Shows progress once a second; returns every outcome, in the
/// order they finished.
pub(crate) fn on_threads<R: Send>(
    first: u64,
    seeds: u64,
    threads_asked: Option<usize>,
    run: impl Fn(u64) -> (R, Option<String>) + Sync,
) -> Vec<R> {
    let next = AtomicU64::new(first);
    let end = first.saturating_add(seeds);
    let outcomes = Mutex::new((Vec::new(), 0u64));
    let progress = Progress::new(seeds, "seeds");
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads(threads_asked) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let (outcome, failed) = run(seed);
                    if let Some(lines) = &failed {
                        progress.println(lines);
                    }
                    let mut o = outcomes.lock().expect("no worker panics holding it");
                    o.0.push(outcome);
                    o.1 += u64::from(failed.is_some());
                }
            });
        }
        // Progress, once a second, until every seed is done.
        let mut last = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let (n, failed) = {
                let o = outcomes.lock().expect("no worker panics holding it");
                (o.0.len() as u64, o.1)
            };
            if n >= seeds {
                break;
            }
            if last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                let rate = n as f64 / start.elapsed().as_secs_f64();
                progress.update(
                    n,
                    &format!("  {n}/{seeds} seeds  {rate:.1} seeds/s  {failed} failed"),
                );
            }
        }
    });
    progress.finish();
    outcomes.into_inner().expect("workers finished").0
}

#[derive(Default)]
struct Summary {
    failed: u64,
    committed: u64,
    aborted: u64,
    crashes: u64,
    sent: u64,
    lost: u64,
    handoff_ticks: Vec<u64>,
    standby_seeds: u64,
    gated: u64,
    gated_ticks: u64,
    /// Per seed with one: the longest wait for a dead standby, and the seed.
    dead_waits: Vec<(u64, u64)>,
    promoted: u64,
    left: u64,
    isolated: u64,
    superseded_sent: u64,
    superseded_taken: u64,
    superseded_held: u64,
    fenced: u64,
    stood_down: u64,
    superseded_waited: u64,
    superseded_drops_refused: u64,
    comebacks: u64,
    kept_here: u64,
    restarted_on_return: u64,
    returned_awaited: u64,
    waited_for_taker: u64,
    takers_died: u64,
    takeovers_retried: u64,
    takeovers_asked_again: u64,
    asked_again_took_over: u64,
    answered_wait: u64,
    views_apart: u64,
    failbacks: u64,
    failed_back: u64,
    ballots: u64,
    dropped: u64,
    promotions_refused: u64,
    withdrawn: u64,
    withdrawn_on_restart: u64,
    releases: u64,
    withdrawn_from_disk: u64,
    withdrawals_again: u64,
    died_again: u64,
    waited_for_node: u64,
    rejoined: u64,
    current_again: u64,
    no_majority: u64,
    game_messages_sent: u64,
    game_messages_delivered: u64,
    moves: u64,
    moves_given_up: u64,
    move_ticks: Vec<u64>,
    move_standby_deaths: u64,
    move_primary_deaths: u64,
}

impl Summary {
    fn add(&mut self, r: &Report) {
        self.failed += u64::from(!r.ok());
        self.committed += r.transfers_committed;
        self.aborted += r.transfers_aborted;
        self.crashes += r.crashes;
        self.sent += r.messages_sent;
        self.lost += r.messages_lost;
        self.handoff_ticks.extend_from_slice(&r.handoff_ticks);
        self.standby_seeds += u64::from(r.standbys);
        self.gated += r.gated;
        self.gated_ticks += r.gated_ticks;
        if r.dead_standby_wait > 0 {
            self.dead_waits.push((r.dead_standby_wait, r.seed));
        }
        self.promoted += r.promoted;
        self.left += u64::from(r.left);
        self.moves += r.moves;
        self.moves_given_up += r.moves_given_up;
        self.move_standby_deaths += r.move_standby_deaths;
        self.move_primary_deaths += r.move_primary_deaths;
        self.move_ticks.extend_from_slice(&r.move_ticks);
        self.isolated += u64::from(r.isolated);
        self.superseded_sent += r.superseded_sent;
        self.superseded_taken += r.superseded_taken;
        self.superseded_held += r.superseded_held;
        self.fenced += r.fenced;
        self.stood_down += r.stood_down;
        self.superseded_waited += r.superseded_waited;
        self.superseded_drops_refused += r.superseded_drops_refused;
        self.comebacks += r.comebacks;
        self.kept_here += r.kept_here;
        self.restarted_on_return += r.restarted_on_return;
        self.returned_awaited += r.returned_awaited;
        self.waited_for_taker += r.waited_for_taker;
        self.takers_died += r.takers_died;
        self.takeovers_retried += r.takeovers_retried;
        self.takeovers_asked_again += r.takeovers_asked_again;
        self.asked_again_took_over += r.asked_again_took_over;
        self.answered_wait += r.answered_wait;
        self.views_apart += r.views_apart;
        self.failbacks += r.failbacks;
        self.failed_back += r.failed_back;
        self.ballots += r.ballots;
        self.dropped += r.dropped;
        self.promotions_refused += r.promotions_refused;
        self.withdrawn += r.withdrawn;
        self.withdrawn_on_restart += r.withdrawn_on_restart;
        self.releases += r.releases;
        self.withdrawn_from_disk += r.withdrawn_from_disk;
        self.withdrawals_again += r.withdrawals_again;
        self.died_again += r.died_again;
        self.waited_for_node += r.waited_for_node;
        self.rejoined += r.rejoined;
        self.current_again += r.current_again;
        self.no_majority += u64::from(r.no_majority);
        self.game_messages_sent += r.game_messages_sent;
        self.game_messages_delivered += r.game_messages_delivered;
    }
}
