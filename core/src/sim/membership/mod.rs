//! The membership simulator (`meridian sim --membership`): the real gossip, not a rule.
//!
//! The zone simulator ([`super::run`]) decides membership by rule: every node learns a
//! death a fixed number of ticks after it (or up to 8 ticks apart with skewed views).
//! This one runs the node's own membership — 3–5 [`Mesh`]es, foca's SWIM with
//! suspicion, every datagram tagged and signed, the deaths datagram and the stall rejoin
//! — over a simulated network with loss (0–10 %), duplication and delay, driven by one
//! seed in 5 ms steps, under drawn faults: nodes killed or leaving (most come back as a
//! new generation, as the node does with the wall clock's seconds), stalled (SIGSTOP, a
//! VM pause: what reaches them waits), cut from one node or from all (with
//! [`MembershipOptions::one_way`], half the cuts between two nodes one way only). A third of the
//! seeds draw only deaths and returns, spaced apart, so that the timing properties have
//! calm windows to hold in. The properties, checked every step:
//! - **detection**: a node killed in a calm window (no cut, stall or isolation, loss at
//!   most 5 %) — it and every observer up for 3 s — is down at every observer that runs
//!   throughout within [`detect_within`] (1 s for three nodes); one that leaves, too;
//! - **no false death**: no node declares down a node that runs, while nothing has
//!   disturbed the network or either node's timing for the last [`CALM_BEFORE`];
//! - **told at start**: a node that (re)starts while another is dead — down at a node
//!   alive then — sees it down within [`TOLD_WITHIN`] if the window is calm and without
//!   loss, instead of after the start grace (5 s);
//! - **convergence**: after the quiet end of the run ([`QUIET`]), every live node sees
//!   every other live node alive in its current generation, and every dead node down;
//! - a node's view of another's generation never goes back.

mod schedule;

use core::net::SocketAddr;
use core::time::Duration;
use std::hash::{Hash, Hasher};

use ed25519_dalek::SigningKey;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHasher;

use crate::mesh::{Mesh, MeshConfig};
use crate::time::Instant;
use schedule::{FAULTS_UNTIL, Kind, Schedule, ms};

/// The simulated time step: the node calls its mesh at least every 20 ms, and at once
/// for each datagram.
pub const STEP: Duration = Duration::from_millis(5);
/// The quiet end of every run: no fault starts in it.
pub const QUIET: Duration = Duration::from_secs(20);
/// How soon every observer sees a node killed in a calm window down in a mesh of three
/// (the node's target: 1 s; 575–795 ms measured over loopback); a probe period more for
/// each further node ([`detect_within`]).
pub const DETECT_WITHIN: Duration = Duration::from_secs(1);

/// How soon every observer sees a death in a calm window, in a mesh of `nodes`: each node
/// probes one member a probe period (100 ms), so a round of probes takes longer in a
/// larger mesh (seed 422, five nodes: 1,115 ms).
pub fn detect_within(nodes: usize) -> Duration {
    DETECT_WITHIN + Duration::from_millis(100) * nodes.saturating_sub(3) as u32
}
/// How long nothing may have disturbed the network or two nodes' timing for a death
/// declared between them to be a false one.
pub const CALM_BEFORE: Duration = Duration::from_secs(3);
/// How soon a node that starts while another is dead sees it down, told by a live node.
pub const TOLD_WITHIN: Duration = Duration::from_secs(1);

/// The outcome of one seed.
#[derive(Clone, Debug, Default)]
pub struct MembershipReport {
    pub seed: u64,
    pub nodes: usize,
    pub loss: f64,
    pub trace_hash: u64,
    /// The first violations found (at most 8), each with its time.
    pub violations: Vec<String>,
    pub kills: u32,
    pub leaves: u32,
    pub restarts: u32,
    pub stalls: u32,
    pub cuts: u32,
    /// Of the cuts, those one way only ([`MembershipOptions::one_way`]).
    pub one_way: u32,
    /// Milliseconds from each checked death (calm, killed) to the last observer seeing it
    /// down; the same for leaves.
    pub detections_ms: Vec<u64>,
    pub leave_detections_ms: Vec<u64>,
    /// Milliseconds from each checked start to the node seeing every dead node down.
    pub told_ms: Vec<u64>,
    /// Down events, `Told` events and stall rejoins, over all nodes.
    pub downs: u64,
    pub told: u64,
    pub rejoins: u64,
    pub datagrams: u64,
    pub lost: u64,
}

impl MembershipReport {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// One simulated node.
struct Node {
    mesh: Option<Mesh>,
    /// Its generation in this life (the mesh renews it on a stall rejoin).
    generation: u32,
    /// The generation it last saw of each other node, to check views never go back.
    seen: Vec<u32>,
}

/// A datagram on the way: when it arrives, from, to, bytes.
type Flight = (Instant, usize, usize, Vec<u8>);

/// A death being watched: the node, when, whether it left, and the observers that must
/// see it down (node, the start of its life then).
struct Watch {
    node: usize,
    at: Instant,
    leave: bool,
    observers: Vec<(usize, Instant)>,
    seen: Vec<Option<Instant>>,
}

/// A start being watched: the node, when, and the nodes dead then that it must be told of.
struct Start {
    node: usize,
    at: Instant,
    dead: Vec<usize>,
    /// When it first saw all of them down.
    told: Option<Instant>,
}

struct Run {
    seed: u64,
    schedule: Schedule,
    nodes: Vec<Node>,
    in_flight: Vec<Flight>,
    now: Instant,
    rng: SmallRng,
    watches: Vec<Watch>,
    starts: Vec<Start>,
    hasher: FxHasher,
    /// Print every traced event to stderr.
    tracing: bool,
    report: MembershipReport,
}

/// What to simulate besides the seed.
#[derive(Clone, Copy, Debug, Default)]
pub struct MembershipOptions {
    /// Print the seed's network, its faults and every membership event to stderr.
    pub trace: bool,
    /// Half the cuts between two nodes drop traffic one way only. Off by default: it
    /// changes the seeds with such a cut.
    pub one_way: bool,
}

/// Runs one seed and reports.
pub fn run_membership(seed: u64, options: &MembershipOptions) -> MembershipReport {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6d65_6d62_0000_0011);
    let schedule = Schedule::draw(&mut rng, options.one_way);
    let trace = options.trace;
    if trace {
        eprintln!(
            "seed {seed}: {} nodes, loss {}, duplication {}, delay 1–{} ms{}",
            schedule.nodes,
            schedule.loss,
            schedule.duplication,
            schedule.delay_max_ms,
            if schedule.calm { ", calm" } else { "" }
        );
        for f in &schedule.faults {
            eprintln!(
                "  fault: node {} {:?} {}–{} ms",
                f.node,
                f.kind,
                f.from.as_nanos() / 1_000_000,
                (f.to.as_nanos() / 1_000_000).min(99_999_999)
            );
        }
    }
    let mut run = Run::new(seed, schedule, rng);
    run.tracing = trace;
    let end = Instant::ZERO + FAULTS_UNTIL + QUIET;
    while run.now < end && run.report.violations.len() < 8 {
        run.step();
    }
    run.converged();
    run.report.trace_hash = run.hasher.finish();
    run.report
}

pub(super) fn addr(k: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, k as u8 + 1], 7600))
}

fn key(k: usize) -> SigningKey {
    SigningKey::from_bytes(&[k as u8 + 1; 32])
}

impl Run {
    fn new(seed: u64, schedule: Schedule, rng: SmallRng) -> Run {
        let n = schedule.nodes;
        let report = MembershipReport {
            seed,
            nodes: n,
            loss: schedule.loss,
            ..MembershipReport::default()
        };
        let mut run = Run {
            seed,
            nodes: (0..n)
                .map(|_| Node {
                    mesh: None,
                    generation: 0,
                    seen: vec![0; n],
                })
                .collect(),
            schedule,
            in_flight: Vec::new(),
            now: Instant::ZERO,
            rng,
            watches: Vec::new(),
            starts: Vec::new(),
            hasher: FxHasher::default(),
            tracing: false,
            report,
        };
        for k in 0..n {
            run.start(k, 1_000);
        }
        run
    }

    /// Node `k` starts (again) as `generation`, and joins.
    fn start(&mut self, k: usize, generation: u32) {
        let n = self.schedule.nodes;
        let peers: Vec<(u16, SocketAddr, [u8; 32])> = (0..n)
            .filter(|&j| j != k)
            .map(|j| (j as u16, addr(j), key(j).verifying_key().to_bytes()))
            .collect();
        let seed = self.seed.rotate_left(8) ^ (u64::from(generation) << 8) ^ k as u64;
        let mut mesh = Mesh::new(
            k as u16,
            generation,
            key(k),
            &peers,
            MeshConfig::default(),
            self.now,
            seed,
        )
        .expect("the simulator's keys and peers are valid");
        mesh.join(self.now);
        let node = &mut self.nodes[k];
        (node.mesh, node.generation) = (Some(mesh), generation);
        node.seen = vec![0; n];
        self.trace(("start", k, generation));
    }

    fn trace(&mut self, event: impl Hash + core::fmt::Debug) {
        if self.tracing {
            eprintln!("{:>6} ms  {event:?}", self.now.as_nanos() / 1_000_000);
        }
        (self.now.as_nanos(), event).hash(&mut self.hasher);
    }

    fn violation(&mut self, what: String) {
        let at = self.now.as_nanos() / 1_000_000;
        self.report.violations.push(format!("at {at} ms: {what}"));
    }

    fn step(&mut self) {
        self.now = self.now + STEP;
        self.faults_begin_and_end();
        for k in 0..self.schedule.nodes {
            self.run_node(k);
        }
        self.deliver();
        for k in 0..self.schedule.nodes {
            self.read_events(k);
        }
        self.check_watches();
        self.check_starts();
    }

    /// Deaths, leaves and restarts that fall in this step.
    fn faults_begin_and_end(&mut self) {
        let (before, now) = (self.now.saturating_sub(STEP), self.now);
        let faults = self.schedule.faults.clone();
        for f in faults.iter().filter(|f| before < f.from && f.from <= now) {
            match f.kind {
                Kind::Kill | Kind::Leave => self.die(f.node, f.kind == Kind::Leave),
                Kind::Stall => self.report.stalls += 1,
                Kind::Cut(_) | Kind::Isolate => self.report.cuts += 1,
                Kind::OneWay(_) => {
                    self.report.cuts += 1;
                    self.report.one_way += 1;
                }
            }
        }
        for f in faults
            .iter()
            .filter(|f| f.is_death() && before < f.to && f.to <= now)
        {
            let k = f.node;
            // Above any generation it had (the node uses the wall clock's seconds).
            let generation = self.nodes[k].generation + 1 + self.rng.random_range(0..50);
            self.report.restarts += 1;
            self.start(k, generation);
            self.watch_start(k);
        }
    }

    /// Node `k` dies (or leaves, then dies): its mesh is gone, what it sent goes on.
    fn die(&mut self, k: usize, leave: bool) {
        let Some(mut mesh) = self.nodes[k].mesh.take() else {
            return;
        };
        self.nodes[k].generation = mesh.me().generation;
        if leave {
            self.report.leaves += 1;
            mesh.leave(self.now);
            self.send_from(k, &mut mesh);
        } else {
            self.report.kills += 1;
        }
        self.trace(("death", k, leave));
        self.watch_death(k, leave);
    }

    /// Node `k`'s timers, unless it is dead or stalled; then what it sends.
    fn run_node(&mut self, k: usize) {
        if self.schedule.stalled(k, self.now) {
            return;
        }
        let Some(mut mesh) = self.nodes[k].mesh.take() else {
            return;
        };
        mesh.handle_timeout(self.now);
        self.send_from(k, &mut mesh);
        self.nodes[k].mesh = Some(mesh);
    }

    /// Puts what node `k`'s mesh queued on the network: lost, cut, duplicated, delayed.
    fn send_from(&mut self, k: usize, mesh: &mut Mesh) {
        while let Some((to, bytes)) = mesh.poll_transmit() {
            let Some(j) = (0..self.schedule.nodes).find(|&j| addr(j) == to) else {
                continue;
            };
            self.report.datagrams += 1;
            if self.schedule.cut(self.now, k, j) || self.rng.random_bool(self.schedule.loss) {
                self.report.lost += 1;
                continue;
            }
            let copies = if self.rng.random_bool(self.schedule.duplication) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = ms(self.rng.random_range(1..=self.schedule.delay_max_ms));
                self.in_flight.push((self.now + delay, k, j, bytes.clone()));
            }
        }
    }

    /// Hands every datagram due to its node, if it runs (a stalled node's wait in its
    /// socket; a dead node's are gone), then what the nodes answered.
    fn deliver(&mut self) {
        let (now, schedule) = (self.now, &self.schedule);
        let due: Vec<Flight> = self
            .in_flight
            .extract_if(.., |d| d.0 <= now && !schedule.stalled(d.2, now))
            .collect();
        let mut woke = Vec::new();
        for (_, from, to, bytes) in due {
            if let Some(mesh) = self.nodes[to].mesh.as_mut() {
                mesh.handle_datagram(now, addr(from), &bytes);
                woke.push(to);
            }
        }
        woke.dedup();
        for k in woke {
            if let Some(mut mesh) = self.nodes[k].mesh.take() {
                self.send_from(k, &mut mesh);
                self.nodes[k].mesh = Some(mesh);
            }
        }
    }
}

mod checks;
