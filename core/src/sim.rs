//! The deterministic simulator (DESIGN §11): the real zones, a hostile network, one seed.
//!
//! A seed draws a world of 2–9 zones placed on 1–3 simulated nodes, a few hundred
//! entities — random walkers, *border dancers* that oscillate across a border at
//! margin ± ε, and a *flash crowd* that crosses one border all at once — and a network:
//! zones on one node talk through a perfect queue (as the node's cross-core queues are);
//! zones on different nodes through links that lose (0–30 %), duplicate (0–50 %), delay
//! and reorder (up to 10 ticks), and are cut by partitions that heal. Zones crash and
//! restart from their durable log alone. The last [`HEAL_TICKS`] run with no faults and
//! with every entity standing still, so every transfer can finish.
//!
//! After every step the invariants of DESIGN §5 are checked: at most one owner per entity;
//! no entity created; epochs only grow; no position jump beyond max speed × elapsed time
//! (except a crash's rollback to the last durable state); every transfer ends as exactly
//! one of committed or aborted, and a committed one arrives exactly once. At the end: every
//! entity is owned by exactly one zone and nothing is in flight. Every event feeds a trace
//! hash: the same seed gives the same hash.
//!
//! Everything is driven by one `SmallRng` per concern, seeded from the seed, and zones tick
//! in a fixed order, so a run is a pure function of (seed, ticks, options).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHasher;

use crate::entities::EntityID;
use crate::handoff::{Event, HandoffConfig, LogRecord};
use crate::limits::{DATAGRAM_SIZE_MAX, Limits};
use crate::net::Peer;
use crate::time::Instant;
use crate::world::{Rect, World, WorldConfig, ZoneID};
use crate::zone::{Bugs, Zone};

/// Ticks at the end of every run with no faults and no movement.
pub const HEAL_TICKS: u64 = 300;

/// Speed limit of simulated entities, metres per second.
const SPEED_MPS_MAX: f32 = 20.0;

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
    /// Ticks from crossing to DONE, for every completed transfer.
    pub handoff_ticks: Vec<u64>,
    pub messages_sent: u64,
    pub messages_lost: u64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

#[derive(Clone, Copy, Debug)]
enum Behaviour {
    Walker,
    /// Oscillates along x with the given speed and half-period.
    Dancer {
        speed: f32,
        half_period: u64,
    },
    /// Waits, then runs toward +x from `start` on.
    Crowd {
        start: u64,
    },
}

struct Network {
    loss: f64,
    duplication: f64,
    delay_max: u64,
    /// (from tick, to tick, node a, node b): traffic between a and b is dropped.
    partitions: Vec<(u64, u64, u32, u32)>,
}

/// Transfer bookkeeping for the "exactly one of committed or aborted" invariant.
#[derive(Default, Clone, Copy)]
struct TransferFate {
    offered: bool,
    aborted: bool,
    relinquished: bool,
    arrivals: u32,
    departed: bool,
}

struct Sim {
    bugs: Bugs,
    trace_entity: Option<u64>,
    ticks: u64,
    world: World,
    config: HandoffConfig,
    limits: Limits,
    zones: Vec<Option<Zone>>,
    node_of: Vec<u32>,
    durable: Vec<Vec<LogRecord>>,
    incarnation: Vec<u32>,
    /// (restart tick) for crashed zones.
    down_until: Vec<Option<u64>>,
    crashes: Vec<(u64, u32, u64)>,
    network: Network,
    /// Datagrams in flight across nodes, by delivery tick.
    in_flight: BTreeMap<u64, Vec<(ZoneID, ZoneID, Vec<u8>)>>,
    behaviour: HashMap<EntityID, Behaviour>,
    spawned: Vec<EntityID>,
    rng_net: SmallRng,
    rng_walk: SmallRng,
    last_epoch: HashMap<EntityID, u32>,
    last_seen: HashMap<EntityID, (f32, f32, u64)>,
    fates: HashMap<(u32, u64), TransferFate>,
    hasher: FxHasher,
    report: Report,
    buf: Vec<u8>,
}

/// Runs one seed for `ticks` ticks (including the healing phase) and reports.
pub fn run(seed: u64, ticks: u64, options: &Options) -> Report {
    let mut sim = Sim::new(seed, ticks.max(HEAL_TICKS + 100), options);
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
        let mut rng = SmallRng::seed_from_u64(seed);
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
        let zone_count = world.zone_count();

        let (network, node_of, crashes) = match options.fixed_network {
            Some(fixed) => (
                Network {
                    loss: fixed.loss,
                    duplication: fixed.duplication,
                    delay_max: fixed.delay_max_ticks,
                    partitions: Vec::new(),
                },
                (0..zone_count)
                    .map(|z| if fixed.same_node { 0 } else { z })
                    .collect(),
                Vec::new(),
            ),
            None => {
                let nodes = if rng.random_bool(0.1) {
                    1
                } else {
                    rng.random_range(2..=3u32)
                };
                let node_of: Vec<u32> = (0..zone_count)
                    .map(|_| rng.random_range(0..nodes))
                    .collect();
                let fault_end = ticks - HEAL_TICKS;
                let mut partitions = Vec::new();
                for _ in 0..rng.random_range(0..=3) {
                    let start = rng.random_range(0..fault_end);
                    let length = rng.random_range(20..200);
                    let (a, b) = (rng.random_range(0..nodes), rng.random_range(0..nodes));
                    partitions.push((start, (start + length).min(fault_end), a, b));
                }
                let mut crashes = Vec::new();
                for _ in 0..rng.random_range(0..=2) {
                    let at = rng.random_range(10..fault_end.saturating_sub(100).max(11));
                    crashes.push((
                        at,
                        rng.random_range(0..zone_count),
                        rng.random_range(5..60u64),
                    ));
                }
                (
                    Network {
                        loss: rng.random_range(0.0..0.3),
                        duplication: rng.random_range(0.0..0.5),
                        delay_max: rng.random_range(0..=10),
                        partitions,
                    },
                    node_of,
                    crashes,
                )
            }
        };

        let walkers = options
            .walkers
            .unwrap_or_else(|| rng.random_range(100..300));
        let dancers = rng.random_range(10..30);
        let crowd = rng.random_range(20..60);
        let total = walkers + dancers + crowd;
        let limits = Limits::for_entities((total as u32).max(64));
        let config = HandoffConfig::default();
        let mut zones: Vec<Option<Zone>> = world
            .zones()
            .map(|z| {
                let mut zone =
                    Zone::with_config(&world, z, limits, config, Instant::ZERO, 0).expect("limits");
                zone.set_bugs(options.bugs);
                Some(zone)
            })
            .collect();

        let mut behaviour = HashMap::new();
        let mut spawned = Vec::new();
        let bounds = world.bounds();
        let mut spawn =
            |zones: &mut Vec<Option<Zone>>, x: f32, y: f32, b: Behaviour, rng: &mut SmallRng| {
                let z = world.zone_at(x, y);
                let zone = zones[z.0 as usize].as_mut().expect("all zones up at start");
                let angle = rng.random_range(0.0..core::f32::consts::TAU);
                let speed = rng.random_range(0.0..SPEED_MPS_MAX);
                let velocity = match b {
                    Behaviour::Walker => [speed * angle.cos(), speed * angle.sin()],
                    _ => [0.0, 0.0],
                };
                let id = zone
                    .spawn([x, y, 0.0], velocity, SPEED_MPS_MAX, 0)
                    .expect("room");
                behaviour.insert(id, b);
                spawned.push(id);
            };
        for _ in 0..walkers {
            let (x, y) = (
                rng.random_range(bounds.x_min..bounds.x_max),
                rng.random_range(bounds.y_min..bounds.y_max),
            );
            spawn(&mut zones, x, y, Behaviour::Walker, &mut rng);
        }
        // Dancers straddle an internal x border (if any), swinging to margin ± ε past it.
        for _ in 0..dancers {
            let column = rng.random_range(0..zones_x.max(2) - 1) + 1;
            let border = (column.min(zones_x - 1).max(1)) as f32 * zone_m;
            let reach = margin_m + rng.random_range(-1.0..1.0f32);
            let speed = rng.random_range(2.0..SPEED_MPS_MAX);
            let half_period = ((2.0 * reach / speed) * 30.0).round().max(2.0) as u64;
            let x = (border - reach).clamp(bounds.x_min, bounds.x_max - 1.0);
            let y = rng.random_range(bounds.y_min..bounds.y_max);
            spawn(
                &mut zones,
                x,
                y,
                Behaviour::Dancer { speed, half_period },
                &mut rng,
            );
        }
        // The flash crowd lines up just inside the first zone's +x border.
        let start = rng.random_range(50..(ticks - HEAL_TICKS).max(51));
        for k in 0..crowd {
            let x = zone_m - margin_m * 0.5 - (k % 4) as f32 * 0.1;
            let y = 5.0 + (k as f32 * 150.0 / crowd as f32);
            spawn(
                &mut zones,
                x.min(bounds.x_max - 1.0),
                y.min(bounds.y_max - 1.0),
                Behaviour::Crowd { start },
                &mut rng,
            );
        }

        let durable = zones
            .iter_mut()
            .map(|z| z.as_mut().expect("up").drain_log().collect())
            .collect();
        Sim {
            bugs: options.bugs,
            trace_entity: options.trace_entity,
            ticks,
            world,
            config,
            limits,
            node_of,
            durable,
            incarnation: vec![0; zone_count as usize],
            down_until: vec![None; zone_count as usize],
            crashes,
            network,
            in_flight: BTreeMap::new(),
            behaviour,
            rng_net: SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            rng_walk: SmallRng::seed_from_u64(seed ^ 0x5851_f42d_4c95_7f2d),
            last_epoch: HashMap::new(),
            last_seen: HashMap::new(),
            fates: HashMap::new(),
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

    fn violation(&mut self, tick: u64, what: String) {
        if self.report.violations.len() < 8 {
            self.report.violations.push(format!("tick {tick}: {what}"));
        }
    }

    fn step(&mut self, tick: u64) {
        self.crash_and_restart(tick);
        self.deliver(tick);
        self.steer(tick);
        let now = Instant::from_nanos(tick * self.world.tick_duration().as_nanos() as u64);
        for z in 0..self.zones.len() {
            let Some(zone) = self.zones[z].as_mut() else {
                continue;
            };
            zone.tick(now);
            // Durable before anything leaves: the driver's contract.
            self.durable[z].extend(zone.drain_log());
            let mut events = Vec::new();
            while let Some(event) = zone.poll_event() {
                events.push(event);
            }
            for event in events {
                self.record(tick, z as u32, event);
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
                self.route(tick, ZoneID(z as u32), to, bytes);
            }
        }
        self.check(tick);
    }

    fn crash_and_restart(&mut self, tick: u64) {
        for k in 0..self.crashes.len() {
            let (at, z, down) = self.crashes[k];
            if at == tick && self.zones[z as usize].is_some() {
                self.zones[z as usize] = None;
                self.down_until[z as usize] = Some(tick + down);
                self.report.crashes += 1;
                if self.trace_entity.is_some() {
                    eprintln!("tick {tick}: zone {z} crashes for {down} ticks");
                }
                tick.hash(&mut self.hasher);
                ("crash", z).hash(&mut self.hasher);
            }
        }
        for z in 0..self.zones.len() {
            if self.down_until[z] == Some(tick) {
                self.down_until[z] = None;
                self.incarnation[z] += 1;
                let mut zone = Zone::restore(
                    &self.world,
                    ZoneID(z as u32),
                    self.limits,
                    self.config,
                    Instant::ZERO,
                    self.incarnation[z],
                    &self.durable[z],
                )
                .expect("limits");
                zone.set_bugs(self.bugs);
                // A restore rolls positions back to the last durable state: not a teleport.
                for &id in zone.entities().ids() {
                    self.last_seen.remove(&id);
                }
                self.zones[z] = Some(zone);
                ("restart", z).hash(&mut self.hasher);
            }
        }
    }

    fn route(&mut self, tick: u64, from: ZoneID, to: ZoneID, bytes: Vec<u8>) {
        self.report.messages_sent += 1;
        let (a, b) = (self.node_of[from.0 as usize], self.node_of[to.0 as usize]);
        if a == b {
            // One node: the cross-core queue. Reliable, in order, available at once.
            if let Some(zone) = self.zones[to.0 as usize].as_mut() {
                zone.handle_datagram(Instant::ZERO, Peer::Zone(from), &bytes);
            }
            return;
        }
        if self.healing(tick) {
            self.in_flight
                .entry(tick + 1)
                .or_default()
                .push((from, to, bytes));
            return;
        }
        let cut =
            self.network.partitions.iter().any(|&(s, e, x, y)| {
                tick >= s && tick < e && ((x, y) == (a, b) || (x, y) == (b, a))
            });
        let copies = 1 + usize::from(self.rng_net.random_bool(self.network.duplication));
        for _ in 0..copies {
            if cut || self.rng_net.random_bool(self.network.loss) {
                self.report.messages_lost += 1;
                continue;
            }
            let delay = self.rng_net.random_range(1..=self.network.delay_max.max(1));
            self.in_flight
                .entry(tick + delay)
                .or_default()
                .push((from, to, bytes.clone()));
        }
    }

    fn deliver(&mut self, tick: u64) {
        let due: Vec<u64> = self.in_flight.range(..=tick).map(|(t, _)| *t).collect();
        for t in due {
            for (from, to, bytes) in self.in_flight.remove(&t).unwrap_or_default() {
                if let Some(zone) = self.zones[to.0 as usize].as_mut() {
                    zone.handle_datagram(Instant::ZERO, Peer::Zone(from), &bytes);
                }
            }
        }
    }

    /// Sets every owned entity's velocity from its behaviour.
    fn steer(&mut self, tick: u64) {
        let healing = self.healing(tick);
        for zone in self.zones.iter_mut().flatten() {
            for slot in 0..zone.entities().len() {
                let id = zone.entities().ids()[slot];
                let velocity = if healing {
                    [0.0, 0.0]
                } else {
                    match self.behaviour[&id] {
                        Behaviour::Walker => {
                            if self.rng_walk.random_bool(0.02) {
                                let angle = self.rng_walk.random_range(0.0..core::f32::consts::TAU);
                                let speed = self.rng_walk.random_range(0.0..SPEED_MPS_MAX);
                                [speed * angle.cos(), speed * angle.sin()]
                            } else {
                                continue;
                            }
                        }
                        Behaviour::Dancer { speed, half_period } => {
                            let sign = if (tick / half_period).is_multiple_of(2) {
                                1.0
                            } else {
                                -1.0
                            };
                            [sign * speed, 0.0]
                        }
                        Behaviour::Crowd { start } => {
                            if tick < start {
                                [0.0, 0.0]
                            } else if tick < start + 30 {
                                [SPEED_MPS_MAX, 0.0]
                            } else {
                                continue;
                            }
                        }
                    }
                };
                zone.set_velocity(id, velocity[0], velocity[1]);
            }
        }
    }

    fn record(&mut self, tick: u64, zone: u32, event: Event) {
        (tick, zone, event).hash(&mut self.hasher);
        if let Some(traced) = self.trace_entity {
            let id = match event {
                Event::Offered { id, .. }
                | Event::Aborted { id, .. }
                | Event::Relinquished { id, .. }
                | Event::Arrived { id, .. }
                | Event::Departed { id, .. } => id,
            };
            if id.0 == traced {
                eprintln!("tick {tick} zone {zone}: {event:?}");
            }
        }
        let key = |source: u32, transfer_id: u64| (source, transfer_id);
        match event {
            Event::Offered { transfer_id, .. } => {
                self.fates
                    .entry(key(zone, transfer_id))
                    .or_default()
                    .offered = true
            }
            Event::Aborted {
                transfer_id, id, ..
            } => {
                let fate = self.fates.entry(key(zone, transfer_id)).or_default();
                fate.aborted = true;
                if fate.relinquished {
                    self.violation(
                        tick,
                        format!("transfer {transfer_id} of entity {id} aborted after COMMIT"),
                    );
                }
                self.report.transfers_aborted += 1;
            }
            Event::Relinquished {
                transfer_id, id, ..
            } => {
                let fate = self.fates.entry(key(zone, transfer_id)).or_default();
                fate.relinquished = true;
                if fate.aborted {
                    self.violation(
                        tick,
                        format!("transfer {transfer_id} of entity {id} committed after abort"),
                    );
                }
                self.report.transfers_committed += 1;
            }
            Event::Arrived {
                transfer_id,
                from,
                id,
                ..
            } => {
                let fate = self.fates.entry(key(from.0, transfer_id)).or_default();
                fate.arrivals += 1;
                let (arrivals, relinquished) = (fate.arrivals, fate.relinquished);
                if arrivals > 1 {
                    self.violation(
                        tick,
                        format!("transfer {transfer_id} of entity {id} arrived twice"),
                    );
                }
                if !relinquished {
                    self.violation(
                        tick,
                        format!("entity {id} arrived without a COMMIT (transfer {transfer_id})"),
                    );
                }
            }
            Event::Departed {
                transfer_id,
                ticks,
                superseded,
                ..
            } => {
                self.fates
                    .entry(key(zone, transfer_id))
                    .or_default()
                    .departed = true;
                if !superseded {
                    self.report.handoff_ticks.push(ticks);
                }
            }
        }
    }

    /// The invariants, after every step.
    fn check(&mut self, tick: u64) {
        let dt = self.world.tick_duration().as_secs_f32();
        let mut owner: HashMap<EntityID, u32> = HashMap::with_capacity(self.spawned.len());
        let mut problems = Vec::new();
        for (z, zone) in self.zones.iter().enumerate() {
            let Some(zone) = zone else { continue };
            let e = zone.entities();
            for slot in 0..e.len() {
                let id = e.ids()[slot];
                let epoch = e.epochs()[slot];
                if let Some(other) = owner.insert(id, z as u32) {
                    problems.push(format!("entity {id} owned by zones {other} and {z}"));
                }
                if !self.behaviour.contains_key(&id) {
                    problems.push(format!("entity {id} in zone {z} was never created"));
                }
                let last = self.last_epoch.entry(id).or_insert(epoch);
                if epoch < *last {
                    problems.push(format!(
                        "entity {id} epoch went back from {last} to {epoch} in zone {z}"
                    ));
                }
                *last = epoch.max(*last);
                let (x, y) = (e.xs()[slot], e.ys()[slot]);
                if let Some(&(px, py, pt)) = self.last_seen.get(&id) {
                    let allowed = SPEED_MPS_MAX * dt * (tick - pt) as f32 + 1e-3;
                    let moved = ((x - px).powi(2) + (y - py).powi(2)).sqrt();
                    if moved > allowed {
                        problems.push(format!(
                            "entity {id} jumped {moved:.3} m in {} ticks (zone {z})",
                            tick - pt
                        ));
                    }
                }
                self.last_seen.insert(id, (x, y, tick));
            }
        }
        for p in problems {
            self.violation(tick, p);
        }
    }

    fn finish(&mut self) {
        let tick = self.ticks;
        self.report.nodes = self.node_of.iter().max().map_or(1, |m| m + 1);
        let mut owned: HashMap<EntityID, u32> = HashMap::new();
        let mut problems = Vec::new();
        for (z, zone) in self.zones.iter().enumerate() {
            let Some(zone) = zone else {
                problems.push(format!("zone {z} is still down after healing"));
                continue;
            };
            for &id in zone.entities().ids() {
                *owned.entry(id).or_default() += 1;
            }
            if zone.tombstone_count() > 0 {
                problems.push(format!(
                    "zone {z} still has {} tombstones after healing",
                    zone.tombstone_count()
                ));
            }
            if zone.pending_offer_count() > 0 {
                problems.push(format!(
                    "zone {z} still has {} pending offers after healing",
                    zone.pending_offer_count()
                ));
            }
            let mut ids: Vec<u64> = zone.entities().ids().iter().map(|id| id.0).collect();
            ids.sort_unstable();
            (z, ids).hash(&mut self.hasher);
        }
        for id in &self.spawned {
            match owned.get(id) {
                Some(1) => {}
                Some(n) => problems.push(format!("entity {id} owned {n} times after healing")),
                None => problems.push(format!("entity {id} lost: owned by no zone after healing")),
            }
        }
        for (&(source, transfer_id), fate) in &self.fates {
            if fate.relinquished && (fate.arrivals != 1 || !fate.departed) {
                problems.push(format!(
                    "transfer {transfer_id} from zone {source}: committed but arrived {} times, departed {}",
                    fate.arrivals, fate.departed
                ));
            }
        }
        problems.sort();
        for p in problems {
            self.violation(tick, p);
        }
        self.report.trace_hash = self.hasher.finish();
    }
}
