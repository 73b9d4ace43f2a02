//! The swarm: simulated clients over real UDP, with invariant checks and a report.
//!
//! Each bot is a [`meridian_client::udp::UdpClient`] with its own socket and session key,
//! admitted by a token the swarm signs with the world's auth key. Worker threads own the
//! bots; each polls its bots' sockets four times per tick and ticks each bot (one INPUT)
//! at the world's tick rate times the bot's own input pace (`Client::input_pace`: the
//! zone's reports of how early its inputs arrive). Loss, latency and jitter are injected
//! on both directions at the bots.
//!
//! **Checks** (each failure is a counted violation, the first few are logged):
//! - *own avatar*: the server holds the avatar of every connected bot — in each sample of
//!   the nodes' admin `/avatars` (every second), the avatar of every bot connected before
//!   the sample and not closed since is owned by some zone or in flight between two; an
//!   avatar missing from two samples in a row is a violation (one sample may miss an
//!   avatar in flight between two nodes, which are sampled one after the other). A
//!   connected bot never goes more than [`SNAPSHOT_GAP_MAX`] without a snapshot, and a
//!   session the server closes is a violation;
//! - *one owner*: in the same samples, an avatar listed by two zones is a violation unless
//!   a handoff between the two samples explains it (the lower epoch was sampled first;
//!   zones of one node are sampled as one consistent cut, so there only a genuine double
//!   owner shows);
//! - *no teleport*: between two snapshots of one zone the own avatar moves at most top
//!   speed × the server time between them (their ticks) plus quantisation; across a
//!   handoff, top speed × the wall time between them plus two ticks;
//! - *pop-in*, *going back* (an NPC shown in a state it had before the snapshot before
//!   showed it) and *handoff pop-in* (the first snapshot after a handoff is full): what
//!   each bot is shown ([`view`]);
//! - *remote jump*: every eighth bot draws the others each tick (`Client::render_remote`);
//!   no entity moves farther between two frames than its bend allows (2.1 × top speed)
//!   (`view::Frames`);
//! - *visibility*: about once a second one bot's view against a brute-force search over
//!   the nodes' owned entities (admin `/positions`, the `visibility` module).
//!
//! Latency is from sending INPUT *n* to receiving the first snapshot whose last applied
//! input is ≥ *n* (measured at the bots' poll resolution, a quarter tick).
//!
//! **The swarm's own lateness.** Bots share the swarm's threads; when there are more than
//! they can serve, a bot's tick runs late, its snapshots wait in its socket, its inputs
//! reach the zone late — and the checks above see the result as the server's. So the
//! report gives how late the bots' ticks ran (p50 / p99 / max), and counts apart the
//! violations of bots that were run more than a tick late in the [`BEHIND_FOR`] before.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as WallInstant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{SigningKey, VerifyingKey};
use hdrhistogram::Histogram;
use meridian_client::token::issue_token;
use meridian_client::udp::UdpClient;
use meridian_core::world::{World, ZoneID};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod admin;
mod checks;
mod report;
mod tag;
mod view;
mod visibility;
use admin::missing_avatars_of;
pub use admin::{OwnerSample, http_get, http_get_with, sample_owners};
use checks::{VisibilityCounts, events, hold_one, render_jump};
pub use report::Report;
pub use tag::TagTally;
use view::{Frames, ViewCheck};

/// The longest a connected bot may go without a snapshot of its own avatar.
pub const SNAPSHOT_GAP_MAX: Duration = Duration::from_secs(1);

/// How bots move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pattern {
    /// A random direction, changed every 2–5 s.
    Random,
    /// Back and forth across the nearest border between zone columns.
    Cross,
    /// Everyone to the middle of the world, milling about within 20 m of it (crossing
    /// the borders there).
    Crowd,
    /// Play tag: run at the nearest player, circle it and shoot at it (the node must run
    /// the tag game, as `meridian demo` does; see the `tag` module).
    Tag,
}

/// What the swarm connects to.
#[derive(Clone, Debug)]
pub struct Target {
    pub world: World,
    pub world_id: u64,
    /// Where clients reach each zone; bots connect to them in turn.
    pub zone_addrs: Vec<(ZoneID, SocketAddr)>,
    /// Admin endpoints to sample for the one-owner check (none: the check is skipped).
    pub admins: Vec<SocketAddr>,
    /// The token those endpoints require, if the nodes run with one.
    pub admin_token: Option<crate::admin_token::AdminToken>,
    /// Node keys REDIRECTs must be signed by (empty: unsigned nodes).
    pub node_keys: Vec<[u8; 32]>,
    /// The world's auth key pair: the swarm issues its bots' tokens.
    pub auth: SigningKey,
    /// Avatars' top speed.
    pub speed_mps: f32,
}

/// How many bots, how long, how they move.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub clients: usize,
    pub duration: Duration,
    pub pattern: Pattern,
    /// Probability of dropping each datagram, each way.
    pub loss: f64,
    /// Latency added to each datagram, each way, and up to this much more (uniform): a
    /// round trip of twice the latency and up.
    pub latency: Duration,
    pub jitter: Duration,
    pub threads: usize,
    pub seed: u64,
}

/// Figures while the swarm runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub connected: u64,
    pub inputs: u64,
    pub snapshots: u64,
    pub redirects: u64,
    pub violations: u64,
    /// The latest the swarm ran a bot's tick since the last progress call.
    pub late_max: Duration,
}

/// Counters shared by the workers, for the progress line.
#[derive(Debug, Default)]
struct Shared {
    connected: AtomicU64,
    inputs: AtomicU64,
    snapshots: AtomicU64,
    redirects: AtomicU64,
    violations: AtomicU64,
    /// The latest a bot's tick ran since the main thread last looked, microseconds.
    late_max_us: AtomicU64,
    /// Every bot's avatar id, with when it connected and when its session closed.
    avatars: Mutex<HashMap<u64, (WallInstant, Option<WallInstant>)>>,
    /// The main thread wants a bot's view for the visibility check; the first worker to
    /// see it puts one in `held`.
    want_held: AtomicBool,
    held: Mutex<Option<visibility::Held>>,
}

/// One bot's state beyond its client.
struct Bot {
    udp: UdpClient,
    index: usize,
    rng: SmallRng,
    direction: (i8, i8),
    next_turn: WallInstant,
    /// `cross`: heading east (true) or west.
    east: bool,
    /// `crowd`: where the bot is heading (none: pick one).
    goal: Option<[f32; 2]>,
    sent_at: Box<[Option<WallInstant>; 256]>,
    latency_seen: u32,
    last_snapshot: Option<WallInstant>,
    last_position: Option<[f32; 2]>,
    /// (zone, server tick) of the last snapshot.
    last_zone_tick: Option<(u32, u32)>,
    connected_at: Option<WallInstant>,
    redirects: u64,
    view: ViewCheck,
    /// When the bot's next tick is due.
    next_tick: WallInstant,
    /// Until when the bot counts as served late: a tick of it ran more than a tick period
    /// after it was due, less than [`BEHIND_FOR`] ago.
    behind_until: Option<WallInstant>,
    /// Every [`DRAWN_EVERY`]th bot draws the others each tick, checked frame to frame.
    frames: Option<Frames>,
    /// The `tag` pattern's side of the game.
    tag: Option<tag::Shooter>,
}

impl Bot {
    /// Whether the swarm ran this bot more than a tick late in the [`BEHIND_FOR`] before.
    fn behind(&self, wall: WallInstant) -> bool {
        self.behind_until.is_some_and(|until| wall < until)
    }
}

/// One bot in this many draws remote entities every tick (see [`Frames`]).
const DRAWN_EVERY: usize = 8;

/// A bot served more than a tick late counts as behind for this long after: what goes
/// wrong for it meanwhile may be the swarm's own doing (a snapshot not read, an input not
/// sent in time), so its violations are also counted apart.
const BEHIND_FOR: Duration = Duration::from_secs(3);

/// What a worker hands back.
#[derive(Default)]
struct WorkerResult {
    latency: Option<Histogram<u64>>,
    /// Mispredictions, hundredths of a millimetre.
    corrections: Option<Histogram<u64>>,
    /// How late each bot tick ran after it was due, microseconds (+1).
    late: Option<Histogram<u64>>,
    /// Violations of a bot that was behind (see [`BEHIND_FOR`]).
    violations_behind: u64,
    down: Vec<u64>,
    up: Vec<u64>,
    /// Each bot's round-trip estimate at the end, microseconds.
    round_trips: Vec<u64>,
    render_jump_violations: u64,
    /// The largest frame-to-frame move of a drawn entity, as a share of its allowance.
    render_worst_share: f32,
    connected: u64,
    refused: u64,
    timed_out: u64,
    inputs: u64,
    snapshots: u64,
    redirects: u64,
    avatar_violations: u64,
    teleport_violations: u64,
    pop_in_violations: u64,
    going_back_violations: u64,
    handoff_pop_in_violations: u64,
    handoffs_full: u64,
    /// Takeovers' first snapshots seen (not handoffs: see `view`), and the full ones.
    takeovers: u64,
    takeovers_full: u64,
    /// Judged handoffs: (first snapshot's bytes, the bot's median).
    handoffs: Vec<(u64, u64)>,
    tag: TagTally,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the swarm until `config.duration` passes or `stop` is set; calls `progress` about
/// once a second.
pub fn run(
    target: &Target,
    config: &Config,
    stop: &AtomicBool,
    mut progress: impl FnMut(&Progress),
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        !target.zone_addrs.is_empty(),
        "the world has no zones to connect to"
    );
    anyhow::ensure!(
        (0.0..1.0).contains(&config.loss),
        "--loss must be in [0, 1) (got {})",
        config.loss
    );
    let threads = config.threads.clamp(1, config.clients.max(1));
    let shared = Arc::new(Shared::default());
    let started = WallInstant::now();
    let deadline = started + config.duration;
    let workers_stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..threads {
        let indices: Vec<usize> = (w..config.clients).step_by(threads).collect();
        let (target, config) = (target.clone(), *config);
        let (shared, stop) = (shared.clone(), workers_stop.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("swarm-{w}"))
                .spawn(move || worker(&target, &config, &indices, started, &shared, &stop))?,
        );
    }
    let mut owner_violations = 0;
    let mut owner_samples = 0;
    let mut missing_before: HashSet<u64> = HashSet::new();
    let mut unreachable_before: Vec<SocketAddr> = Vec::new();
    let mut missing_avatars = 0;
    let mut visibility = VisibilityCounts::default();
    let mut next = started + Duration::from_secs(1);
    while WallInstant::now() < deadline && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
        let held = shared.held.lock().expect("held lock").take();
        if let Some(held) = held {
            visibility.judge(target, &shared, &held);
        }
        if WallInstant::now() < next {
            continue;
        }
        next += Duration::from_secs(1);
        if !target.admins.is_empty() {
            shared.want_held.store(true, Ordering::SeqCst);
        }
        if !target.admins.is_empty() {
            let asked = WallInstant::now();
            match sample_owners(&target.admins, target.admin_token.as_ref()) {
                Ok(sample) => {
                    if sample.unreachable != unreachable_before {
                        for admin in &sample.unreachable {
                            tracing::warn!(
                                "admin {admin} does not answer: its zones' avatars count as missing until another node runs them"
                            );
                        }
                        unreachable_before = sample.unreachable.clone();
                    }
                    owner_samples += 1;
                    owner_violations += sample.owner_violations;
                    let missing = missing_avatars_of(&shared, &sample.present, asked);
                    let lasting = missing.intersection(&missing_before).count() as u64;
                    if lasting > 0 {
                        tracing::warn!(
                            "{lasting} connected bots' avatars missing from the servers in two samples in a row"
                        );
                    }
                    missing_avatars += lasting;
                    missing_before = missing;
                    shared
                        .violations
                        .fetch_add(sample.owner_violations + lasting, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!("admin sample failed: {e}"),
            }
        }
        progress(&Progress {
            elapsed: started.elapsed(),
            connected: shared.connected.load(Ordering::Relaxed),
            inputs: shared.inputs.load(Ordering::Relaxed),
            snapshots: shared.snapshots.load(Ordering::Relaxed),
            redirects: shared.redirects.load(Ordering::Relaxed),
            violations: shared.violations.load(Ordering::Relaxed),
            late_max: Duration::from_micros(shared.late_max_us.swap(0, Ordering::Relaxed)),
        });
    }
    workers_stop.store(true, Ordering::SeqCst);
    let seconds = started.elapsed().as_secs_f64();
    let mut report = Report {
        clients: config.clients,
        seconds,
        owner_violations,
        owner_samples,
        avatar_violations: missing_avatars,
        visibility_violations: visibility.violations,
        visibility_samples: visibility.samples,
        ..Report::default()
    };
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut corrections = Histogram::<u64>::new_with_bounds(1, 100_000_000, 3)?;
    let mut late = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut down, mut up, mut round_trips) = (Vec::new(), Vec::new(), Vec::new());
    let mut handoffs = Vec::new();
    for h in handles {
        let r = h
            .join()
            .map_err(|_| anyhow::anyhow!("a swarm worker panicked"))??;
        if let Some(l) = &r.latency {
            latency.add(l)?;
        }
        if let Some(c) = &r.corrections {
            corrections.add(c)?;
        }
        if let Some(l) = &r.late {
            late.add(l)?;
        }
        report.violations_behind += r.violations_behind;
        down.extend(r.down);
        up.extend(r.up);
        round_trips.extend(r.round_trips);
        report.connected += r.connected;
        report.refused += r.refused;
        report.timed_out += r.timed_out;
        report.inputs_sent += r.inputs;
        report.snapshots += r.snapshots;
        report.redirects += r.redirects;
        report.avatar_violations += r.avatar_violations;
        report.teleport_violations += r.teleport_violations;
        report.pop_in_violations += r.pop_in_violations;
        report.going_back_violations += r.going_back_violations;
        report.handoff_pop_in_violations += r.handoff_pop_in_violations;
        report.handoffs_full += r.handoffs_full;
        report.takeovers += r.takeovers;
        report.takeovers_full += r.takeovers_full;
        report.render_jump_violations += r.render_jump_violations;
        report.render_worst_share = report.render_worst_share.max(r.render_worst_share);
        if config.pattern == Pattern::Tag {
            report.tag.get_or_insert_default().add(&r.tag);
        }
        handoffs.extend(r.handoffs);
    }
    report.handoffs_judged = handoffs.len() as u64;
    report.handoff_ratio_max = handoffs
        .iter()
        .map(|&(first, median)| first as f32 / median.max(1) as f32)
        .fold(0.0, f32::max);
    let (mut firsts, mut medians): (Vec<u64>, Vec<u64>) = handoffs.into_iter().unzip();
    report.handoff_bytes_p50 = percentiles(&mut firsts).0;
    report.median_bytes_p50 = percentiles(&mut medians).0;
    report.down_bps = percentiles(&mut down);
    report.up_bps = percentiles(&mut up);
    let (rt50, rt99) = percentiles(&mut round_trips);
    report.round_trip_ms = (rt50 as f64 / 1000.0, rt99 as f64 / 1000.0);
    report.latency_ms = (
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
    );
    // Recorded +1 (a histogram holds no zero): hundredths of a millimetre → cm.
    let cm = |q: f64| corrections.value_at_quantile(q).saturating_sub(1) as f64 / 1000.0;
    report.correction_cm = (cm(0.5), cm(0.99));
    let ms = |v: u64| v.saturating_sub(1) as f64 / 1000.0;
    report.late_ms = (
        ms(late.value_at_quantile(0.5)),
        ms(late.value_at_quantile(0.99)),
        ms(late.max()),
    );
    Ok(report)
}

fn percentiles(values: &mut [u64]) -> (u64, u64) {
    if values.is_empty() {
        return (0, 0);
    }
    values.sort_unstable();
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn worker(
    target: &Target,
    config: &Config,
    indices: &[usize],
    started: WallInstant,
    shared: &Shared,
    stop: &AtomicBool,
) -> anyhow::Result<WorkerResult> {
    let clock = meridian_io::Clock::new();
    let tick = target.world.tick_duration();
    let poll = tick / 4;
    let mut rng =
        SmallRng::seed_from_u64(config.seed ^ indices.first().copied().unwrap_or(0) as u64);
    let node_keys: Vec<VerifyingKey> = target
        .node_keys
        .iter()
        .filter_map(|k| VerifyingKey::from_bytes(k).ok())
        .collect();
    let mut bots = Vec::with_capacity(indices.len());
    let expires = unix_ms() + config.duration.as_millis() as u64 + 3_600_000;
    for &i in indices {
        let key = SigningKey::from_bytes(&rng.random::<[u8; 32]>());
        let token = issue_token(
            &target.auth,
            *key.verifying_key().as_bytes(),
            target.world_id,
            i as u64 + 1,
            expires,
            rng.random(),
        );
        let (_, server) = target.zone_addrs[i % target.zone_addrs.len()];
        let mut udp = match bot_address(server, i) {
            Some(local) => UdpClient::connect_from(local, server, token, key, clock.now())?,
            None => UdpClient::connect(server, token, key, clock.now())?,
        };
        for k in &node_keys {
            udp.client_mut().trust_node_key(*k);
        }
        udp.set_delay(config.latency, config.jitter, config.seed ^ (i as u64 + 1));
        bots.push(Bot {
            udp,
            index: i,
            rng: SmallRng::seed_from_u64(config.seed.wrapping_add(i as u64)),
            direction: (0, 0),
            next_turn: started,
            east: i % 2 == 0,
            goal: None,
            sent_at: Box::new([None; 256]),
            latency_seen: 0,
            last_snapshot: None,
            last_position: None,
            last_zone_tick: None,
            connected_at: None,
            redirects: 0,
            view: ViewCheck::new(&meridian_core::replicate::InterestConfig::default()),
            next_tick: started,
            behind_until: None,
            frames: (i % DRAWN_EVERY == 0).then(Frames::default),
            tag: (config.pattern == Pattern::Tag).then(|| tag::Shooter::new(i)),
        });
    }
    let mut result = WorkerResult {
        latency: Some(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?),
        corrections: Some(Histogram::<u64>::new_with_bounds(1, 100_000_000, 3)?),
        late: Some(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?),
        ..WorkerResult::default()
    };
    let loss = config.loss;
    let mut next_poll = WallInstant::now();
    let (mut logged, mut sampled) = (0, 0);
    while !stop.load(Ordering::SeqCst) {
        let wall = WallInstant::now();
        // Every bot is read every `poll`; a bot whose tick is due ticks (and reads) now.
        let polling = wall >= next_poll;
        if polling {
            next_poll = wall + poll;
        }
        let mut wake = next_poll;
        for bot in &mut bots {
            let now = clock.now();
            if wall >= bot.next_tick {
                // Each bot ticks at its own pace: the zone's reports of how early its
                // inputs arrive make it a little faster or slower than the zone's tick.
                let late = wall.saturating_duration_since(bot.next_tick);
                let late_us = late.as_micros() as u64;
                if let Some(h) = result.late.as_mut() {
                    h.saturating_record(late_us + 1);
                }
                if late_us > shared.late_max_us.load(Ordering::Relaxed) {
                    shared.late_max_us.fetch_max(late_us, Ordering::Relaxed);
                }
                if late > tick {
                    bot.behind_until = Some(wall + BEHIND_FOR);
                }
                let period = tick.mul_f32(bot.udp.client().input_pace());
                bot.next_tick += period;
                if bot.next_tick < wall {
                    bot.next_tick = wall + period;
                }
                steer(bot, target, config.pattern, wall, now);
                let before = bot.udp.client().input_sequence();
                bot.udp.pump(now, || !rng.random_bool(loss))?;
                let after = bot.udp.client().input_sequence();
                if after != before {
                    bot.sent_at[(after % 256) as usize] = Some(wall);
                    shared.inputs.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(frames) = bot.frames.as_mut() {
                    let speed = target.speed_mps.max(visibility::NPC_SPEED_MPS);
                    if let Some(j) = frames.frame(bot.udp.client_mut(), now, speed) {
                        result.violations_behind += u64::from(bot.behind(wall));
                        render_jump(bot.index, j, &mut result, shared, &mut logged);
                    }
                }
            } else if polling {
                bot.udp.receive(now, || !rng.random_bool(loss))?;
            } else {
                wake = wake.min(bot.next_tick);
                continue;
            }
            events(bot, target, &mut result, shared, wall, &mut logged);
            wake = wake.min(bot.next_tick);
        }
        if shared
            .want_held
            .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            let held = hold_one(&bots, &mut sampled, wall);
            *shared.held.lock().expect("held lock") = held;
        }
        if let Some(d) = wake.checked_duration_since(WallInstant::now()) {
            std::thread::sleep(d);
        }
    }
    // Say goodbye, so the zones free the sessions at once.
    let seconds = started.elapsed().as_secs_f64().max(1e-3);
    for bot in &mut bots {
        let c = bot.udp.client().counters();
        result.down.push((c.bytes_in as f64 / seconds) as u64);
        result.up.push((c.bytes_out as f64 / seconds) as u64);
        result.inputs += c.inputs_sent;
        result.snapshots += c.snapshots;
        result.redirects += bot.redirects;
        if let Some(f) = &bot.frames {
            result.render_worst_share = result.render_worst_share.max(f.worst_share);
        }
        if let Some(shooter) = bot.tag.as_mut() {
            result.tag.add(&shooter.finish(WallInstant::now()));
        }
        if let Some(rt) = bot.udp.client().round_trip() {
            result.round_trips.push(rt.as_micros() as u64);
        }
        if bot.udp.client().is_connected() {
            bot.udp.client_mut().disconnect();
            let _ = bot.udp.flush(|| true);
        }
    }
    Ok(result)
}

/// Sets the bot's intent for this tick.
fn steer(
    bot: &mut Bot,
    target: &Target,
    pattern: Pattern,
    wall: WallInstant,
    now: meridian_core::time::Instant,
) {
    if !bot.udp.client().is_connected() {
        return;
    }
    // Tag: chase or flee, and shoot (see the `tag` module); otherwise, or with no player
    // in view, move as the pattern says.
    let mut buttons = 0;
    if let Some(shooter) = bot.tag.as_mut() {
        // A shot is judged at the view time of the zone the avatar is in: the bot holds
        // a snapshot of it.
        let zone = bot.udp.client().zone();
        let judged = bot.last_zone_tick.is_some_and(|(z, _)| z == zone);
        let client = bot.udp.client_mut();
        let (intent, pressed) = shooter.play(client, now, judged, &mut bot.rng, wall);
        buttons = pressed;
        if let Some((x, y)) = intent {
            client.set_intent(x, y, buttons);
            return;
        }
    }
    let client = bot.udp.client();
    let at = client.authoritative().position;
    let bounds = target.world.config().bounds;
    let intent = match pattern {
        // No player in view: wander.
        Pattern::Random | Pattern::Tag => {
            if wall >= bot.next_turn {
                let angle = bot.rng.random_range(0.0..std::f32::consts::TAU);
                bot.direction = ((angle.cos() * 127.0) as i8, (angle.sin() * 127.0) as i8);
                bot.next_turn = wall + Duration::from_millis(bot.rng.random_range(2000..5000));
            }
            // Turn back from the world's edge.
            let mut d = bot.direction;
            if (at[0] < bounds.x_min + 10.0 && d.0 < 0) || (at[0] > bounds.x_max - 10.0 && d.0 > 0)
            {
                d.0 = -d.0;
            }
            if (at[1] < bounds.y_min + 10.0 && d.1 < 0) || (at[1] > bounds.y_max - 10.0 && d.1 > 0)
            {
                d.1 = -d.1;
            }
            bot.direction = d;
            d
        }
        Pattern::Cross => {
            // The border between zone columns nearest to the avatar.
            let columns = target.world.config().zones_x.max(1);
            let width = (bounds.x_max - bounds.x_min) / columns as f32;
            let nearest = ((at[0] - bounds.x_min) / width)
                .round()
                .clamp(1.0, (columns.max(2) - 1) as f32);
            let border = bounds.x_min + nearest * width;
            if columns < 2 {
                (0, 0)
            } else {
                let goal = if bot.east {
                    border + 30.0
                } else {
                    border - 30.0
                };
                if (bot.east && at[0] >= goal) || (!bot.east && at[0] <= goal) {
                    bot.east = !bot.east;
                }
                (if bot.east { 127 } else { -127 }, 0)
            }
        }
        Pattern::Crowd => {
            // A point near the middle, a new one whenever the avatar got there: the
            // crowd mills about the middle — a border, or a corner of four zones — and
            // keeps crossing it.
            let centre = [
                (bounds.x_min + bounds.x_max) / 2.0,
                (bounds.y_min + bounds.y_max) / 2.0,
            ];
            let goal = *bot
                .goal
                .get_or_insert_with(|| crowd_goal(centre, &mut bot.rng));
            let (dx, dy) = (goal[0] - at[0], goal[1] - at[1]);
            let d = (dx * dx + dy * dy).sqrt();
            if d < CROWD_ARRIVED_M {
                bot.goal = None;
                (0, 0)
            } else {
                ((dx / d * 127.0) as i8, (dy / d * 127.0) as i8)
            }
        }
    };
    bot.udp.client_mut().set_intent(intent.0, intent.1, buttons);
}

/// `crowd`: how far from the middle of the world a bot's goal may lie, and how near it
/// counts as there.
const CROWD_RADIUS_M: f32 = 20.0;
const CROWD_ARRIVED_M: f32 = 2.0;

/// A `crowd` bot's next goal: a point within [`CROWD_RADIUS_M`] of `centre`, uniform
/// over the disc.
fn crowd_goal(centre: [f32; 2], rng: &mut SmallRng) -> [f32; 2] {
    let r = CROWD_RADIUS_M * rng.random_range(0.0f32..1.0).sqrt();
    let angle = rng.random_range(0.0..std::f32::consts::TAU);
    [centre[0] + r * angle.cos(), centre[1] + r * angle.sin()]
}

/// Bot `i`'s local address against a loopback server: its own `127.x.y.z` (Linux routes
/// all of 127/8 to the loopback device), so a zone's per-IP limits see one host per bot,
/// as they would see players. `None` (any address) against any other server.
fn bot_address(server: SocketAddr, i: usize) -> Option<SocketAddr> {
    match server.ip() {
        std::net::IpAddr::V4(ip) if ip.is_loopback() => {
            let n = i as u32 + 1;
            let ip = std::net::Ipv4Addr::new(127, 1 + (n >> 16) as u8, (n >> 8) as u8, n as u8);
            Some(SocketAddr::new(ip.into(), 0))
        }
        _ => None,
    }
}
