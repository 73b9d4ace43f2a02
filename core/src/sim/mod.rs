//! The deterministic simulator (docs/architecture.md): the real zones, a hostile network, one seed.
//!
//! A seed draws a world of 2–9 zones placed on 1–3 simulated nodes, a few hundred
//! entities — random walkers, *border dancers* that oscillate across a border at
//! margin ± ε, and a *flash crowd* that crosses one border all at once — and a network:
//! zones on one node talk through a perfect queue (as the node's cross-core queues are);
//! zones on different nodes through links that lose (0–30 %), duplicate (0–50 %), delay
//! and reorder (up to 10 ticks), and are cut by partitions that heal. Zones crash and
//! restart from their durable log alone. In some seeds zones stream their log to warm
//! standbys on other nodes and a node dies for good: its zones fail over ([`standby`]). The epoch memory is short (150–600 ticks) and
//! about a third of the crashes, and some partitions, outlast it. The last [`HEAL_TICKS`] run with no faults and
//! with every entity standing still, so every transfer can finish.
//!
//! After every step the handoff invariants (docs/protocol.md) are checked: at most one owner per entity;
//! no entity created; epochs only grow; no position jump beyond max speed × elapsed time
//! (except a crash's rollback to the last durable state); every transfer ends as exactly
//! one of committed or aborted, and a committed one arrives exactly once; every zone runs a
//! game ([`game`]) whose per-entity state is never torn and never goes back except when
//! its zone restarts from its log. At the end: every
//! entity is owned by exactly one zone and nothing is in flight. Every event feeds a trace
//! hash: the same seed gives the same hash.
//!
//! Everything is driven by one `SmallRng` per concern, seeded from the seed, and zones tick
//! in a fixed order, so a run is a pure function of (seed, ticks, options).

mod comeback;
mod disk;
mod failback;
mod failover;
mod game;
mod invariants;
pub mod membership;
mod moves;
mod network;
mod population;
mod rejoin;
mod standby;
mod suspicion;
mod views;
mod votes;

use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHasher;

use crate::entities::EntityID;
use crate::ghosts::watch::WatchConfig;
use crate::handoff::{HandoffConfig, LogRecord};
use crate::limits::{DATAGRAM_SIZE_MAX, Limits};
use crate::net::Peer;
use crate::time::Instant;
use crate::world::{Rect, World, WorldConfig, ZoneID};
use crate::zone::{Bugs, Zone};
use invariants::TransferFate;
use network::Network;
use population::{Behaviour, Population};

/// Ticks at the end of every run with no faults and no movement.
pub const HEAL_TICKS: u64 = 300;

/// Speed limit of simulated entities, metres per second.
pub(super) const SPEED_MPS_MAX: f32 = 20.0;

/// What to simulate besides the seed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Deliberately broken protocol variants (the simulator must catch them).
    pub bugs: Bugs,
    /// Override the number of random walkers (default: drawn, 100–300).
    pub walkers: Option<usize>,
    /// Override the network: the same link everywhere, no partitions, no crashes.
    pub fixed_network: Option<FixedNetwork>,
    /// Override the zone split (columns, rows).
    pub zones: Option<(u32, u32)>,
    /// Print every event and crash concerning this entity id to stderr (debugging).
    pub trace_entity: Option<u64>,
    /// Warm standbys' stream and gate on every zone (`Some(true)`), on none, or drawn
    /// (`None`: half the multi-node seeds; none with a fixed network); see [`standby`].
    pub standbys: Option<bool>,
    /// A false suspicion — a node cut off long enough to be declared down, running on —
    /// in every standby seed without a node death (`Some(true)`), in none, or drawn
    /// (`None`: half of them); see [`suspicion`].
    pub suspicions: Option<bool>,
    /// A node that died for good comes back to its stale files after its zones failed
    /// over, in every such seed (`Some(true)`), in none, or drawn (`None`: half of them);
    /// see [`comeback`].
    pub comebacks: Option<bool>,
    /// Where a node came back and there is time for another failover, the returned node
    /// dies again (`Some(true)`: in every such seed), never (`Some(false)`), or drawn
    /// (`None`: in a quarter of them; another node dies in turn in half); see
    /// [`failback`].
    pub dies_again: Option<bool>,
    /// Every zone's game sends game messages to ghosts, and the games check what they are
    /// handed ([`game`]). Off by default: the messages change every seed's traffic, so
    /// the kept seeds would no longer replay.
    pub messages: bool,
    /// Every node death is a leave (a node stopped with SIGTERM: its zones stop as in a
    /// death, then it tells the others it is down), declared down 1–3 ticks after it
    /// instead of [`standby::DETECT_TICKS`]: the takeovers are asked while the dead
    /// zones' last datagrams are still on the way. Off by default, like `messages`.
    pub leaves: bool,
    /// In standby seeds without a node death or a false suspicion, one zone is moved to
    /// its standby on purpose and later back ([`moves`]). Off by default, like `messages`.
    pub moves: bool,
    /// In seeds whose node death leads to takeovers, the first standby whose takeover is
    /// agreed dies right then, before it learns of it; the zone waits for it, and it
    /// comes back 150 ticks later ([`failback`]; no other second death is drawn then).
    /// Off by default, like `messages`.
    pub takers_die: bool,
    /// Nodes see a death, a cut and a return up to [`views::SKEW_TICKS`] apart instead of
    /// at the same tick ([`views`]). Off by default, like `messages`.
    pub skewed_views: bool,
}

/// A network with the same behaviour on every link, for measurements.
#[derive(Clone, Copy, Debug)]
pub struct FixedNetwork {
    /// All zones on one node (perfect cross-core queues), or each on its own node.
    pub same_node: bool,
    pub loss: f64,
    pub duplication: f64,
    /// Cross-node delay is drawn from `1..=delay_max_ticks`.
    pub delay_max_ticks: u64,
}

/// The outcome of one seed.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub ticks: u64,
    pub trace_hash: u64,
    /// The first violations found (at most 8), each with its tick.
    pub violations: Vec<String>,
    pub zones: u32,
    pub nodes: u32,
    pub entities: usize,
    pub transfers_committed: u64,
    pub transfers_aborted: u64,
    pub crashes: u64,
    /// Transfers a restarted zone's log holds both the relinquish and the DONE of: the
    /// logged DONE is what keeps the restored zone from resending their COMMIT.
    pub restored_done: u64,
    /// Restarts whose log ended in a torn record, truncated.
    pub torn_tails: u64,
    /// Checkpoints that became durable (spread captures and restart checkpoints).
    pub checkpoints: u64,
    /// Crashes that flipped a bit in one of the zone's files.
    pub bit_flips: u64,
    /// Restarts that fell back to the older generation (damage the newer one could not
    /// get past).
    pub fallbacks: u64,
    /// Restarts refused for damage no generation avoids (then repaired, as an operator
    /// would from a backup).
    pub refusals: u64,
    /// Ticks from crossing to DONE, for every completed transfer.
    pub handoff_ticks: Vec<u64>,
    pub messages_sent: u64,
    pub messages_lost: u64,
    /// Game messages the zones' games sent, and those handed to a game
    /// ([`Options::messages`]).
    pub game_messages_sent: u64,
    pub game_messages_delivered: u64,
    /// The seed's zones streamed to standbys; datagrams that waited for one, and the
    /// ticks they waited in all.
    pub standbys: bool,
    pub gated: u64,
    pub gated_ticks: u64,
    /// The most ticks in a row a zone's datagrams waited for a standby whose node was
    /// dead: its detection and the drop's vote, or — where the ledgers hold a promise to
    /// that node it never withdrew — until the node is back.
    pub dead_standby_wait: u64,
    /// Zones promoted on their standbys after their node died or was cut off.
    pub promoted: u64,
    /// For each zone of the seed's dead node promoted on its standby: ticks from the
    /// death to the promotion (detection, the vote, the restore).
    pub takeover_ticks: Vec<u64>,
    /// A node was cut off long enough to be declared down (a false suspicion).
    pub isolated: bool,
    /// The node that died left ([`Options::leaves`]) where the others are a majority:
    /// its zones were taken over 1–3 ticks after they stopped.
    pub left: bool,
    /// Datagrams the superseded runs sent, those zones took (before they heard of the
    /// takeover), and those they held for a standby that would never acknowledge;
    /// datagrams zones fenced off (from any older run); superseded runs that stood down.
    pub superseded_sent: u64,
    pub superseded_taken: u64,
    pub superseded_held: u64,
    pub fenced: u64,
    pub stood_down: u64,
    /// Old runs that outlived the stand-down, the node that took their zone over dead
    /// before it told them ([`suspicion`]); their asks to go on without it, refused.
    pub superseded_waited: u64,
    pub superseded_drops_refused: u64,
    /// Zones a dead node that came back resumed from its stale files (superseded runs,
    /// counted in `stood_down` once they stand down).
    pub comebacks: u64,
    /// Zones whose standby the node that came back keeps once their stale run stood down.
    pub kept_here: u64,
    /// Zones of the node that came back that nobody had taken over yet: restarted on it
    /// from their own disks.
    pub restarted_on_return: u64,
    /// Takeovers agreed to a node that died before it heard (outside a move): the zone
    /// waits for that node; of them, takers killed as their takeover was agreed
    /// (`Options::takers_die`).
    pub waited_for_taker: u64,
    pub takers_died: u64,
    /// Dead nodes brought back because something waited for them (a zone of theirs
    /// nobody may take over, or such a takeover), and the takeovers the returned nodes
    /// then asked for again ([`comeback`]).
    pub returned_awaited: u64,
    pub takeovers_retried: u64,
    /// Takeovers refused and asked again a second later, the asker still seeing the
    /// primary down ([`Options::skewed_views`]).
    pub takeovers_asked_again: u64,
    /// Of them, those that then took the zone over.
    pub asked_again_took_over: u64,
    /// Answers "wait": the answering node did not see the node the ask concerns down (yet).
    pub answered_wait: u64,
    /// Of them, answers to an asker that did see it down: the two nodes' views apart.
    pub views_apart: u64,
    /// A node running zones the returned node keeps the standbys of died in turn
    /// ([`failback`]).
    pub failbacks: u64,
    /// Zones then taken back over by the returned node, from the copy it rebuilt.
    pub failed_back: u64,
    /// A node died or was cut off where the others were no majority (two nodes): nothing
    /// failed over; the zones waited for it to come back.
    pub no_majority: bool,
    /// Asks put to the mesh's vote ([`votes`]); standbys their primaries dropped once a
    /// majority agreed; promotions a node refused (the copy was dropped), and zones that
    /// waited for their own node to come back (refused, or no standby left).
    pub ballots: u64,
    pub dropped: u64,
    pub promotions_refused: u64,
    pub waited_for_node: u64,
    /// Promotions that did not go ahead, withdrawn by their standby.
    pub withdrawn: u64,
    /// Promises a node found in its own ledger when it restarted and had never acted on,
    /// withdrawn then.
    pub withdrawn_on_restart: u64,
    /// Withdrawals asked again because not every node held them yet.
    pub withdrawals_again: u64,
    /// Releases asked by primaries whose drop of a dead standby was refused (a ledger held
    /// a promise the standby never said it acts on).
    pub releases: u64,
    /// Promises withdrawn from a dead node's disk, brought back because a zone's release
    /// was refused for them (the node died asking to act on its takeover).
    pub withdrawn_from_disk: u64,
    /// Returned nodes that died again ([`failback`]).
    pub died_again: u64,
    /// Dropped standbys streamed to again once back, and those the mesh agreed were
    /// current again ([`rejoin`]).
    pub rejoined: u64,
    pub current_again: u64,
    /// Zones stopped to move to their standby ([`Options::moves`]); moves given up (the
    /// standby did not acknowledge the last records in time, was declared down, or did
    /// not take the zone over: the zone restarted on its node); for each move done, ticks
    /// from the stop to the zone running on the standby; moves whose standby's node died
    /// while they were under way, and those whose own node did.
    pub moves: u64,
    pub moves_given_up: u64,
    pub move_ticks: Vec<u64>,
    pub move_standby_deaths: u64,
    pub move_primary_deaths: u64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

pub(super) struct Sim {
    bugs: Bugs,
    trace_entity: Option<u64>,
    ticks: u64,
    world: World,
    config: HandoffConfig,
    limits: Limits,
    zones: Vec<Option<Zone>>,
    node_of: Vec<u32>,
    /// Each zone's WAL segments and checkpoints, as bytes (see [`disk`]).
    disks: Vec<disk::ZoneDisk>,
    rng_disk: SmallRng,
    /// Each crash's disk fault, parallel to `crashes`.
    faults: Vec<disk::Fault>,
    incarnation: Vec<u32>,
    /// (restart tick) for crashed zones.
    down_until: Vec<Option<u64>>,
    crashes: Vec<(u64, u32, u64)>,
    /// Per crash: stretched past the epoch memory (see `network::draw_long_outages`).
    stretched: Vec<bool>,
    network: Network,
    /// Datagrams in flight across nodes, by delivery tick.
    in_flight: BTreeMap<u64, Vec<network::Flight>>,
    behaviour: FxHashMap<EntityID, Behaviour>,
    spawned: Vec<EntityID>,
    rng_net: SmallRng,
    rng_walk: SmallRng,
    last_epoch: FxHashMap<EntityID, u32>,
    last_seen: FxHashMap<EntityID, (f32, f32, u64)>,
    /// Each entity's game counter when last checked ([`game`]), and what the zones'
    /// games found wrong since.
    game_counter: FxHashMap<EntityID, u64>,
    game_problems: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    game_mail: Option<std::sync::Arc<std::sync::Mutex<game::MailLog>>>,
    /// Game messages runs that stopped for a move counted lost ([`moves`]).
    retired_messages: u64,
    fates: FxHashMap<(u32, u64), TransferFate>,
    standbys: standby::Standbys,
    comeback: Option<comeback::Comeback>,
    /// Dead nodes something waits for, by the tick they are back ([`comeback`]).
    awaited: BTreeMap<u64, Vec<u32>>,
    takers_die: bool,
    /// The seed's skewed membership views, if skewed ([`views`]).
    views: Option<views::Views>,
    failback: Option<failback::Failback>,
    moves: Option<moves::Moves>,
    votes: votes::Votes,
    hasher: FxHasher,
    report: Report,
    buf: Vec<u8>,
}

/// The protocol's configuration in the simulator: watching exercised as a protocol
/// (points, forwarding, watched ghosts under every fault), at a size that keeps a seed
/// cheap: a zone wide, 16 a point.
fn handoff_config(zone_m: f32) -> HandoffConfig {
    HandoffConfig {
        watch: WatchConfig {
            radius_m: zone_m,
            nearest: 16,
            cap: 8,
            every_ticks: 3,
        },
        ..HandoffConfig::default()
    }
}

/// The seed's standbys (a fixed network measures the protocol alone unless they are asked
/// for), and the cut a false suspicion makes in the network.
fn draw_standbys(
    seed: u64,
    node_of: &[u32],
    options: &Options,
    ticks: u64,
    network: &mut Network,
) -> standby::Standbys {
    let forced = options.standbys.or(options.fixed_network.map(|_| false));
    let mut standbys = standby::Standbys::draw(
        seed,
        node_of,
        forced,
        options.suspicions,
        ticks - HEAL_TICKS,
    );
    // A leave is declared within the network's delay: 1–3 ticks (from a generator of its
    // own, so that every other draw stays as it was).
    if options.leaves && standbys.death.is_some() {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x57a9_d8b1_0000_0006);
        standbys.leave_ticks = Some(rng.random_range(1..=3));
    }
    if let Some(iso) = standbys.isolation {
        let nodes = node_of.iter().max().map_or(1, |n| n + 1);
        network.isolate(iso.node, nodes, iso.at, iso.heal);
    }
    standbys
}

/// Each zone's disk, holding its spawns' records, with a checkpoint interval drawn for the
/// seed (none in a quarter of them).
fn draw_disks(rng_disk: &mut SmallRng, zones: &mut [Option<Zone>]) -> Vec<disk::ZoneDisk> {
    let every = (!rng_disk.random_bool(0.25)).then(|| rng_disk.random_range(30..400u64));
    zones
        .iter_mut()
        .enumerate()
        .map(|(k, z)| {
            let records: Vec<LogRecord> = z.as_mut().expect("up").drain_log().collect();
            disk::ZoneDisk::new(k as u32, every, &records)
        })
        .collect()
}

/// Every zone runs the simulator's game ([`game`]).
type Shared<T> = std::sync::Arc<std::sync::Mutex<T>>;

fn install_game(
    zone: &mut Zone,
    (problems, mail): (&Shared<Vec<String>>, &Option<Shared<game::MailLog>>),
    superseded: bool,
) {
    let run = mail.as_ref().map_or(0, |m| {
        (m.lock().expect("not poisoned")).new_run(zone.id().0, superseded)
    });
    zone.set_game(Box::new(game::CounterGame {
        problems: std::sync::Arc::clone(problems),
        mail: mail.clone(),
        run,
    }));
}

/// The world a seed draws: 2–9 zones of 160 m, margin, aura and cell size.
fn draw_world(rng: &mut SmallRng, options: &Options) -> (World, f32) {
    let (zones_x, zones_y) = loop {
        let shape = (rng.random_range(1..=3u32), rng.random_range(1..=3u32));
        if shape.0 * shape.1 >= 2 {
            break options.zones.unwrap_or(shape);
        }
    };
    let zone_m = 160.0;
    let margin_m = rng.random_range(1.0..6.0f32);
    let world = World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, zone_m * zones_x as f32, zone_m * zones_y as f32),
        zones_x,
        zones_y,
        margin_m,
        aura_m: margin_m + rng.random_range(4.0..20.0f32),
        tick_rate_hz: 30,
        cell_size_m: rng.random_range(8.0..40.0f32),
    })
    .expect("simulated worlds are valid");
    (world, zone_m)
}

/// Runs one seed for `ticks` ticks (including the healing phase) and reports.
pub fn run(seed: u64, ticks: u64, options: &Options) -> Report {
    let mut sim = Sim::new(seed, ticks.max(HEAL_TICKS + 100), options);
    sim.standbys_start();
    for tick in 1..=sim.ticks {
        sim.step(tick);
        if sim.report.violations.len() >= 8 {
            break;
        }
    }
    sim.finish();
    sim.report
}

impl Sim {
    fn new(seed: u64, ticks: u64, options: &Options) -> Sim {
        // One generator draws the whole scenario, in this order (world, network,
        // population): a seed names the same scenario as long as the order holds.
        let mut rng = SmallRng::seed_from_u64(seed);
        let (world, zone_m) = draw_world(&mut rng, options);
        let zone_count = world.zone_count();
        let (mut network, node_of, mut crashes) =
            network::draw(&mut rng, options, zone_count, ticks);
        let mut config = handoff_config(zone_m);
        let mut stretched = Vec::new();
        if options.fixed_network.is_none() {
            let nodes = node_of.iter().max().map_or(1, |n| n + 1);
            let (memory, long) =
                network::draw_long_outages(seed, &mut network, nodes, &mut crashes, ticks);
            config.epoch_memory_ticks = memory;
            stretched = long;
        }
        let faults = disk::draw_faults(seed, &mut crashes, &node_of);
        // Whole-node copies of a crash keep their own schedule.
        stretched.resize(crashes.len(), false);
        let Population {
            mut zones,
            limits,
            behaviour,
            spawned,
        } = population::populate(&mut rng, &world, zone_m, ticks, config, options);
        let total = spawned.len();
        let game_problems = std::sync::Arc::default();
        let game_mail = options.messages.then(std::sync::Arc::default);
        for zone in zones.iter_mut().flatten() {
            install_game(zone, (&game_problems, &game_mail), false);
        }
        let mut rng_disk = SmallRng::seed_from_u64(seed ^ 0x00c4_ec4b_0147_0001);
        let disks = draw_disks(&mut rng_disk, &mut zones);
        let standbys = draw_standbys(seed, &node_of, options, ticks, &mut network);
        let comeback = comeback::Comeback::draw(seed, &standbys, options.comebacks);
        let back_at = comeback.as_ref().map(comeback::Comeback::at);
        let failback = (!options.takers_die)
            .then(|| {
                failback::Failback::draw(seed, back_at, ticks - HEAL_TICKS, options.dies_again)
            })
            .flatten();
        let moves = moves::Moves::draw(
            seed,
            options.moves,
            &standbys,
            zone_count as usize,
            ticks - HEAL_TICKS,
        );
        let nodes = node_of.iter().max().map_or(1, |n| n + 1);
        let votes = votes::Votes::new(seed, nodes, zone_count as usize);
        Sim {
            bugs: options.bugs,
            trace_entity: options.trace_entity,
            ticks,
            world,
            config,
            limits,
            node_of,
            disks,
            rng_disk,
            faults,
            incarnation: vec![0; zone_count as usize],
            down_until: vec![None; zone_count as usize],
            crashes,
            stretched,
            network,
            in_flight: BTreeMap::new(),
            behaviour,
            rng_net: SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            rng_walk: SmallRng::seed_from_u64(seed ^ 0x5851_f42d_4c95_7f2d),
            last_epoch: FxHashMap::default(),
            last_seen: FxHashMap::default(),
            game_counter: FxHashMap::default(),
            game_problems,
            game_mail,
            retired_messages: 0,
            fates: FxHashMap::default(),
            standbys,
            comeback,
            awaited: BTreeMap::new(),
            takers_die: options.takers_die,
            views: options.skewed_views.then(|| views::Views::new(seed)),
            failback,
            moves,
            votes,
            hasher: FxHasher::default(),
            report: Report {
                seed,
                ticks,
                zones: zone_count,
                nodes: 0,
                entities: total,
                ..Report::default()
            },
            zones,
            spawned,
            buf: vec![0; DATAGRAM_SIZE_MAX],
        }
    }

    fn healing(&self, tick: u64) -> bool {
        tick > self.ticks - HEAL_TICKS
    }

    /// A mesh event: into the trace hash, and on stderr when a run is traced.
    fn event(&mut self, tick: u64, what: impl std::hash::Hash + std::fmt::Debug) {
        std::hash::Hash::hash(&(tick, &what), &mut self.hasher);
        if self.trace_entity.is_some() {
            eprintln!("tick {tick}: {what:?}");
        }
    }

    fn violation(&mut self, tick: u64, what: String) {
        if self.report.violations.len() < 8 {
            self.report.violations.push(format!("tick {tick}: {what}"));
        }
    }

    fn step(&mut self, tick: u64) {
        self.crash_and_restart(tick);
        self.node_death(tick);
        self.moves_step(tick);
        self.isolation_step(tick);
        self.comeback_step(tick);
        self.failback_step(tick);
        self.deliver(tick);
        self.stream_tick(tick);
        self.votes_tick(tick);
        self.takeovers_again(tick);
        self.rejoin_tick(tick);
        self.steer(tick);
        let now = Instant::from_nanos(tick * self.world.tick_duration().as_nanos() as u64);
        for z in 0..self.zones.len() {
            let Some(zone) = self.zones[z].as_mut() else {
                continue;
            };
            zone.tick(now);
            // Durable before anything leaves: the driver's contract.
            let records: Vec<LogRecord> = zone.drain_log().collect();
            let mut events = Vec::new();
            while let Some(event) = zone.poll_event() {
                events.push(event);
            }
            let fault = self.mid_tick_fault(tick, z);
            let survived = self.write_tick(z, &records, fault);
            let incarnation = self.zones[z].as_ref().expect("up").incarnation();
            // With a standby, the tick's datagrams wait until it holds every record so far
            // (its durable records go to the stream even when the zone dies mid-tick).
            let gate = self.stream_wrote(tick, z, incarnation, survived as u64);
            self.stream_records_of(z, &records[..survived]);
            let sent_anyway = self.bugs.send_before_sync;
            if let Some(fault) = fault
                && !sent_anyway
            {
                // A crash inside this tick: its datagrams never leave; its events are what
                // its durable records say.
                if fault == disk::Fault::SyncedNotSent {
                    for event in events {
                        self.record(tick, z as u32, event);
                    }
                } else {
                    self.record_survivors(tick, z, &records[..survived]);
                }
                self.crash(tick, z as u32);
                continue;
            }
            for event in events {
                self.record(tick, z as u32, event);
            }
            if self.disks[z].after_tick(self.zones[z].as_ref().expect("up")) {
                self.report.checkpoints += 1;
            }
            while let Some(transmit) = self.zones[z]
                .as_mut()
                .expect("up")
                .poll_transmit(&mut self.buf)
            {
                let Peer::Zone(to) = transmit.to else {
                    continue;
                };
                let bytes = self.buf[..transmit.len].to_vec();
                match gate {
                    Some(needs) => self.gate(z, needs, to, bytes),
                    None => self.route(tick, ZoneID(z as u32), to, bytes),
                }
            }
            if fault.is_some() {
                // BROKEN ON PURPOSE (`send_before_sync`): the datagrams left, the records
                // may not have.
                self.crash(tick, z as u32);
            }
        }
        self.superseded_tick(tick, now);
        self.check(tick);
    }
}
