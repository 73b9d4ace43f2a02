//! A zone's state at start and on disk: opened new or restored from the node's data
//! directory ([`open_zone`]), and the driver's side of its persistence ([`Durable`]: the
//! writer threads, the append sequence, the checkpoint under way).

use meridian_core::limits::Limits;
use meridian_core::persist::Capture;
use meridian_core::time::Instant;
use meridian_core::zone::Zone;

use super::setup::spawn_npcs;
use super::{NodePlan, ZonePlan};
use crate::standby::Stream;
use crate::store::Writer;

meridian_core::counters! {
    /// What a zone's persistence did, cumulative (all zero without a data directory).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PersistCounters {
        /// Appends handed to the WAL thread: one per tick that logged anything.
        pub wal_appends: u64,
        /// Log records in those appends.
        pub wal_records: u64,
        /// Appends the disk confirmed (written and synced).
        pub wal_appends_durable: u64,
        /// Checkpoints written and synced.
        pub checkpoints: u64,
        /// Datagrams that waited for the disk before leaving: they depend on a record of
        /// their tick (a COMMIT on its relinquish, a DONE on its adoption).
        pub datagrams_held: u64,
        /// Appends the zone's standby acknowledged holding (0 without a standby).
        pub standby_appends_acked: u64,
        /// Bytes the zone's stream sent its standby (frames whole: headers, sealed
        /// payloads, signatures; resyncs included).
        pub standby_bytes_sent: u64,
    }
}

/// Where a zone's standby stands ([`Durable::standby_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StandbyState {
    None = 0,
    CatchingUp = 1,
    Current = 2,
}

impl StandbyState {
    pub(super) fn from_u8(v: u8) -> StandbyState {
        match v {
            1 => StandbyState::CatchingUp,
            2 => StandbyState::Current,
            _ => StandbyState::None,
        }
    }
}

/// A zone's persistence state in its driver.
pub(super) struct Durable {
    pub(super) writer: Writer,
    /// The last append queued, and the last the disk confirmed.
    pub(super) appended: u64,
    pub(super) synced: u64,
    pub(super) generation: u64,
    pub(super) checkpoint_every_ticks: u64,
    /// The capture buffers, while no checkpoint is being captured or written.
    pub(super) capture: Option<Box<Capture>>,
    /// A capture under way: begun at a checkpoint tick, its state columns copied
    /// `capture_step` entities per tick over the next [`CAPTURE_TICKS`] ticks.
    pub(super) capturing: Option<Box<Capture>>,
    pub(super) capture_step: usize,
    pub(super) failed: Option<String>,
    pub(super) counters: PersistCounters,
    /// The stream to the zone's standby, if it has one.
    pub(super) standby: Option<Stream>,
    /// A standby attached at run time counts in the gate once it acknowledged this
    /// append (what was durable when it was attached): until then the zone runs as it did
    /// without one. `None`: it counts (a standby from the start).
    pub(super) standby_from: Option<u64>,
    /// The zone's files.
    pub(super) store: crate::store::ZoneStore,
    /// Where its standby is (or was, once dropped): the standby node's control address.
    pub(super) standby_addr: Option<std::net::SocketAddr>,
}

impl Durable {
    /// Every append up to this one is durable on the disk and, with a standby, on the
    /// standby too: what the zone's held datagrams wait for.
    pub(super) fn safe(&self) -> u64 {
        match &self.standby {
            Some(stream) if self.standby_from.is_none() => self.synced.min(stream.acked()),
            _ => self.synced,
        }
    }

    /// Streams the zone's files to `target` from now on (the node that came back after
    /// this zone was taken over from it). The standby joins the gate once it holds what
    /// was durable now.
    pub(super) fn attach(
        &mut self,
        zone: meridian_core::world::ZoneID,
        incarnation: u32,
        key: &ed25519_dalek::SigningKey,
        target: crate::standby::StandbyTarget,
    ) {
        if self.standby.is_some() {
            return;
        }
        let (stream, feed) = Stream::start_from(
            self.store.clone(),
            zone.0,
            incarnation,
            key.clone(),
            target,
            self.synced,
        );
        self.writer.attach(feed);
        self.standby = Some(stream);
        self.standby_from = Some(self.synced);
        self.standby_addr = Some(target.addr);
        tracing::info!(%zone, standby = %target.addr, "streaming the zone's files to its new standby");
    }

    /// The zone goes on without its standby (a majority agreed its node is down): its
    /// datagrams stop waiting for it, and nothing more is streamed to it.
    pub(super) fn drop_standby(&mut self, zone: meridian_core::world::ZoneID) {
        if let Some(stream) = self.standby.take() {
            stream.abandon();
            self.writer.detach();
            self.standby_from = None;
            tracing::warn!(%zone, "the zone goes on without its standby: a majority of the nodes agreed it is down; its datagrams no longer wait for it");
        }
    }

    /// Where the zone's standby stands: none, catching up (its datagrams do not wait for
    /// it yet, or it holds nothing of this run yet), or current (it holds what this run
    /// began from, and every datagram waits for it).
    pub(super) fn standby_state(&self) -> StandbyState {
        match &self.standby {
            None => StandbyState::None,
            Some(stream) if self.standby_from.is_none() && stream.acked() >= 1 => {
                StandbyState::Current
            }
            Some(_) => StandbyState::CatchingUp,
        }
    }

    /// A standby attached at run time joins the gate once it has caught up.
    pub(super) fn update_gate(&mut self, zone: meridian_core::world::ZoneID) {
        if let (Some(from), Some(stream)) = (self.standby_from, &self.standby)
            && stream.acked() >= from
        {
            self.standby_from = None;
            tracing::info!(%zone, "the new standby holds the zone: its datagrams wait for it from now on");
        }
    }

    /// Begins a checkpoint when one is due, or copies the next slice of the one under way and
    /// hands it to the writer once complete.
    pub(super) fn checkpoint_step(&mut self, zone: &Zone) {
        if let Some(mut capture) = self.capturing.take() {
            if zone.capture_continue(&mut capture, self.capture_step) {
                let generation = self.generation;
                let incarnation = zone.incarnation();
                if let Err(e) = self.writer.checkpoint(generation, incarnation, capture) {
                    self.failed = Some(e);
                }
            } else {
                self.capturing = Some(capture);
            }
        } else if zone
            .tick_count()
            .is_multiple_of(self.checkpoint_every_ticks)
            && let Some(mut capture) = self.capture.take()
        {
            zone.capture_begin(&mut capture);
            self.capture_step = capture.entity_count().div_ceil(CAPTURE_TICKS).max(1);
            self.generation += 1;
            // Records after this tick go to the new generation's segment.
            let switched =
                self.writer
                    .switch(self.generation, zone.incarnation(), zone.tick_count());
            if let Err(e) = switched {
                self.failed = Some(e);
            }
            self.capturing = Some(capture);
        }
    }

    /// The end of the zone's writing; returns the stream to its standby, for the caller
    /// to end. With `clean` (a stop on purpose; not after a failure, and not by a run that
    /// stood down) it writes a final checkpoint first (a capture under way is completed
    /// and written before it): the zone whole as its last tick left it, so a restart — or
    /// the standby taking the zone over — begins where the zone stopped, not at the last
    /// periodic checkpoint: positions and game state up to a checkpoint interval newer.
    /// Ownership gains nothing (the log holds every record of it): what it adds is what
    /// the log does not carry. Both are written on this thread, the stopped zone's
    /// ([`Writer::finish_with_checkpoints`]).
    pub(super) fn finish(mut self, zone: &Zone, clean: bool) -> Option<Stream> {
        let standby = self.standby.take();
        if !clean || self.failed.is_some() {
            self.writer.finish();
            return standby;
        }
        let under_way = self.capturing.take().map(|mut capture| {
            // No limit: the rest in one call.
            let complete = zone.capture_continue(&mut capture, usize::MAX);
            debug_assert!(complete);
            (self.generation, capture)
        });
        let mut capture = self.capture.take().unwrap_or_default();
        zone.capture_begin(&mut capture);
        let complete = zone.capture_continue(&mut capture, usize::MAX);
        debug_assert!(complete);
        let (generation, incarnation, tick) =
            (self.generation + 1, zone.incarnation(), zone.tick_count());
        let checkpoints: Vec<(u64, &Capture)> = (under_way.iter())
            .map(|(g, c)| (*g, &**c))
            .chain([(generation, &*capture)])
            .collect();
        let at = (generation, incarnation, tick);
        match self.writer.finish_with_checkpoints(at, &checkpoints) {
            Ok(()) => {
                tracing::info!(zone = %zone.id(), generation, "final checkpoint at tick {tick}")
            }
            Err(e) => {
                tracing::error!(zone = %zone.id(), "the final checkpoint was not written: {e}")
            }
        }
        standby
    }
}

/// Ticks a checkpoint's copy of the entity state is spread over (after the tick that
/// captures ownership), so no tick pays for the whole copy: `persist/capture/250000`
/// costs 1.6 ms in one piece.
const CAPTURE_TICKS: usize = 8;

/// The zone, new or restored from the node's data directory, with its game if the node
/// runs one, and its persistence.
pub(super) fn open_zone(
    plan: &NodePlan,
    zone_plan: &ZonePlan,
    now: Instant,
    approve: Option<Approve<'_>>,
) -> Result<(Zone, Option<Durable>), String> {
    let id = zone_plan.zone;
    // The game first: its record length is what the zone's stores keep, from the first
    // entity a restore loads.
    let game = plan.game.as_ref().map(|g| (g.make)(id));
    let limits = Limits {
        state_bytes: game.as_ref().map_or(0, |g| g.state_layout().len() as u32),
        ..plan.limits
    };
    let (mut zone, durable) = open_zone_state(plan, limits, zone_plan, now, approve)?;
    if let (Some(plan), Some(game)) = (&plan.game, game) {
        zone.set_game(game);
        if let Some((ticks, max_rewind_ticks)) = plan.rewind {
            zone.enable_rewind(ticks, max_rewind_ticks);
        }
    }
    Ok((zone, durable))
}

/// Asked whether a zone may start as the incarnation given, once its files are read and
/// before anything is written (a promotion asks the mesh: `Node::promote`).
pub type Approve<'a> = &'a dyn Fn(u32) -> Result<(), String>;

/// The zone, new or restored from the node's data directory, and its persistence.
fn open_zone_state(
    plan: &NodePlan,
    limits: Limits,
    zone_plan: &ZonePlan,
    now: Instant,
    approve: Option<Approve<'_>>,
) -> Result<(Zone, Option<Durable>), String> {
    let id = zone_plan.zone;
    if zone_plan.standby.is_some() && (plan.store.is_none() || plan.keys.is_none()) {
        return Err(format!(
            "zone {id} has a standby: its node needs a data directory (--data) and its key \
             to stream the zone's files to it"
        ));
    }
    let Some(sp) = &plan.store else {
        let mut zone = Zone::new(&plan.world, id, limits, now).map_err(|e| e.to_string())?;
        if let Some(npcs) = plan.npcs {
            spawn_npcs(&mut zone, &npcs)?;
        }
        return Ok((zone, None));
    };
    // Every file this run writes names it, and its stream's hello too: a standby tells
    // two runs that reuse one incarnation apart (a stale restore).
    let mut run = [0u8; 8];
    getrandom::fill(&mut run).map_err(|e| format!("no randomness for the run id: {e}"))?;
    let store = sp
        .dir
        .zone(sp.world_id, id)
        .with_run(u64::from_le_bytes(run).max(1));
    if sp.fresh
        && let Some(aside) = store.discard().map_err(|e| e.to_string())?
    {
        tracing::warn!(zone = %id, "--fresh: moved the zone's old files to {}", aside.display());
    }
    let mut recovered = store.recover().map_err(|e| e.to_string())?;
    for warning in &recovered.warnings {
        tracing::warn!(zone = %id, "{warning}");
    }
    if recovered.incarnation < sp.incarnation_floor {
        tracing::warn!(zone = %id, "the zone's files hold no run of incarnation {}, which its runs-here marker names (the node stopped before that run's first checkpoint reached the disk): running as incarnation {} rather than {}", sp.incarnation_floor - 1, sp.incarnation_floor, recovered.incarnation);
        recovered.incarnation = sp.incarnation_floor;
    }
    let incarnation = recovered.incarnation;
    let mut zone = zone_from(plan, limits, id, now, &recovered, sp)?;
    if let Some(approve) = approve {
        approve(incarnation)?;
    }
    // The start checkpoint covers everything so far (spawns included): the log begins
    // empty, with the incarnation.
    for _ in zone.drain_log() {}
    zone.log_incarnation();
    let mut capture = Box::new(Capture::default());
    zone.capture(&mut capture);
    let wal = store
        .begin(recovered.generation, incarnation, &capture)
        .map_err(|e| e.to_string())?;
    let (standby, feed) = start_stream(plan, zone_plan, &store, incarnation).unzip();
    let durable = Durable {
        writer: Writer::start(store.clone(), wal, recovered.generation, feed),
        appended: 0,
        synced: 0,
        generation: recovered.generation,
        checkpoint_every_ticks: sp.checkpoint_every_ticks.max(1),
        capture: Some(capture),
        capturing: None,
        capture_step: 1,
        failed: None,
        counters: PersistCounters::default(),
        standby,
        standby_from: None,
        store: store.clone(),
        standby_addr: zone_plan.standby.map(|t| t.addr),
    };
    Ok((zone, Some(durable)))
}

/// The zone's stream to its standby, if it has one.
fn start_stream(
    plan: &NodePlan,
    zone_plan: &ZonePlan,
    store: &crate::store::ZoneStore,
    incarnation: u32,
) -> Option<(Stream, crate::standby::StreamFeed)> {
    let (target, keys) = (zone_plan.standby?, plan.keys.as_ref()?);
    let id = zone_plan.zone;
    tracing::info!(zone = %id, standby = %target.addr, "streaming the zone's files to its standby");
    Some(Stream::start(
        store.clone(),
        id.0,
        incarnation,
        keys.key.clone(),
        target,
    ))
}

/// The zone as the data directory left it: new (with its NPCs) if it held nothing,
/// restored otherwise.
fn zone_from(
    plan: &NodePlan,
    limits: Limits,
    id: meridian_core::world::ZoneID,
    now: Instant,
    recovered: &crate::store::Recovered,
    sp: &super::StorePlan,
) -> Result<Zone, String> {
    let config = meridian_core::handoff::HandoffConfig::default();
    let incarnation = recovered.incarnation;
    if recovered.empty && sp.restore_only {
        return Err(format!(
            "zone {id}: {} holds nothing of it: a standby that never received the zone's \
             files cannot take it over",
            sp.dir.path().display()
        ));
    }
    let zone = if recovered.empty {
        let mut zone = Zone::with_config(&plan.world, id, limits, config, now, incarnation)
            .map_err(|e| e.to_string())?;
        if let Some(npcs) = plan.npcs {
            spawn_npcs(&mut zone, &npcs)?;
        }
        zone
    } else {
        let view = recovered.view();
        let checkpoint_tick = view.as_ref().map_or(0, |v| v.meta.tick.get());
        let zone = Zone::restore_from(
            &plan.world,
            id,
            limits,
            config,
            now,
            incarnation,
            view.as_ref(),
            &recovered.records,
        )
        .map_err(|e| format!("zone {id}: cannot restore: {e}"))?;
        tracing::info!(
            zone = %id,
            incarnation,
            entities = zone.entities().len(),
            in_flight = zone.tombstone_count(),
            records = recovered.records.len(),
            "restored from {}: the checkpoint of tick {checkpoint_tick} and the records after it",
            sp.dir.path().display()
        );
        zone
    };
    Ok(zone)
}
