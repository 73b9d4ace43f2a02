//! Zones changing hands on a running node: a standby's copy promoted, a standby attached
//! or dropped at run time, the zones that stood down — and a zone stopped on purpose to
//! move it to its standby (docs/mesh.md, "Moving a zone on purpose").

use std::sync::Arc;
use std::sync::atomic::Ordering;

use meridian_core::world::ZoneID;

use super::persistence::{self, Approve, StandbyState};
use super::{Node, RuntimeError, StandbyChange, ZonePlan, bind_udp};

/// How a zone stopped to move to its standby ended ([`Node::stop_for_move`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoppedForMove {
    pub zone: ZoneID,
    /// The run that stopped.
    pub incarnation: u32,
    /// The standby acknowledged everything the run wrote, its final checkpoint included.
    pub held: bool,
}

impl Node {
    /// Promotes this node's standby of `zone`: restores it from `store` (the standby's
    /// mirror of the primary's files, which must hold it) as the next incarnation, binds
    /// its address here, starts its executor, and routes every zone of this node to it.
    /// The caller has stopped the mirror from writing these files. With `standby`, the
    /// zone streams to it from the start and its datagrams wait for it, as a primary's
    /// do for the world file's standby (so its answer to the stream's hello — `TakenOver`,
    /// `Stale` — comes before anything leaves); without, it runs without one until
    /// [`Node::attach_standby`]. The run is `incarnation_floor` at least, whatever the
    /// files say (0: as they say). Returns the new incarnation.
    pub fn promote(
        &self,
        zone: ZoneID,
        store: Arc<crate::store::DataDir>,
        approve: Approve<'_>,
        standby: Option<crate::standby::StandbyTarget>,
        incarnation_floor: u32,
    ) -> Result<u32, RuntimeError> {
        let err = |message: String| RuntimeError::Zone { zone, message };
        // A standby slot, or the slot of a zone of this node that stood down (this node
        // came back as its standby, and now takes it back).
        let index = self
            .plan
            .zones
            .iter()
            .chain(&self.plan.standby_slots)
            .position(|s| s.zone == zone)
            .ok_or_else(|| err("this node keeps no standby of it".into()))?;
        if self.shared.active[index].load(Ordering::SeqCst) {
            return Err(err("it runs here already".into()));
        }
        let z = ZonePlan {
            standby,
            ..self.slot(index)
        };
        let mut plan = self.plan.clone();
        let Some(sp) = plan.store.as_mut() else {
            return Err(err("a standby needs a data directory".into()));
        };
        sp.dir = store;
        sp.fresh = false;
        sp.restore_only = true;
        sp.incarnation_floor = incarnation_floor;
        self.run_in_slot(index, z, plan, Some(approve))
    }

    /// Starts zone `z` in slot `index` (free) from the files `plan` names: its address
    /// bound, the zone opened (restored) as its next run, its executor started, and every
    /// zone of this node routing to it. Returns the new incarnation.
    fn run_in_slot(
        &self,
        index: usize,
        z: ZonePlan,
        plan: super::NodePlan,
        approve: Option<Approve<'_>>,
    ) -> Result<u32, RuntimeError> {
        let zone = z.zone;
        let socket = bind_udp(z.bind).map_err(|source| RuntimeError::Bind {
            zone,
            addr: z.bind,
            source,
        })?;
        let now = self.shared.clock.now();
        let opened = persistence::open_zone(&plan, &z, now, approve)
            .map_err(|message| RuntimeError::Zone { zone, message })?;
        let incarnation = opened.0.incarnation();
        // What the slot's last run left says nothing of this one.
        self.shared.standby_word[index].store(0, Ordering::Release);
        *self.shared.standby_addr[index]
            .lock()
            .expect("standby addr") = None;
        self.shared.moving[index].store(false, Ordering::SeqCst);
        self.spawn(index, z, opened, socket, plan)?;
        self.shared.active[index].store(true, Ordering::SeqCst);
        self.shared.routes.promoted(zone, incarnation);
        Ok(incarnation)
    }

    fn slot(&self, index: usize) -> ZonePlan {
        let own = self.plan.zones.len();
        if index < own {
            self.plan.zones[index]
        } else {
            self.plan.standby_slots[index - own]
        }
    }

    /// Gives `zone`, running here, a standby at `target` (the node that came back after
    /// this node took the zone over): its files stream there from its next tick, and its
    /// datagrams wait for that standby once it caught up. `false` if the zone does not run
    /// here.
    pub fn attach_standby(&self, zone: ZoneID, target: crate::standby::StandbyTarget) -> bool {
        let Some(index) = self.active().find(|&k| self.slot(k).zone == zone) else {
            return false;
        };
        self.change_standby(index, StandbyChange::Attach(target));
        true
    }

    /// `zone`, running here, goes on without its standby from its next loop (the mesh
    /// agreed the standby's node is down). `false` if the zone does not run here.
    pub fn drop_standby(&self, zone: ZoneID) -> bool {
        let Some(index) = self.active().find(|&k| self.slot(k).zone == zone) else {
            return false;
        };
        self.change_standby(index, StandbyChange::Drop);
        true
    }

    fn change_standby(&self, index: usize, change: StandbyChange) {
        let (waiting, slot) = &self.shared.attach[index];
        *slot.lock().expect("attach lock") = Some(change);
        waiting.store(true, Ordering::Release);
    }

    /// Whether `zone` runs here: from the moment its run started, before its first tick
    /// (unlike [`Node::standby_state`], which its driver publishes at each tick).
    pub fn runs(&self, zone: ZoneID) -> bool {
        self.active().any(|k| self.slot(k).zone == zone)
    }

    /// `zone`'s incarnation, where its standby stands, and the standby's address (kept
    /// once dropped), if the zone runs here.
    pub fn standby_state(
        &self,
        zone: ZoneID,
    ) -> Option<(u32, StandbyState, Option<std::net::SocketAddr>)> {
        let index = self.active().find(|&k| self.slot(k).zone == zone)?;
        let word = self.shared.standby_word[index].load(Ordering::Acquire);
        let incarnation = (word >> 8) as u32;
        let addr = *self.shared.standby_addr[index]
            .lock()
            .expect("standby addr");
        (incarnation > 0).then(|| (incarnation, StandbyState::from_u8(word as u8), addr))
    }

    /// The zones of this node that stood down because their standby took them over while
    /// the node was away, with the incarnation they run as there.
    pub fn stood_down(&self) -> Vec<(ZoneID, u32)> {
        self.shared
            .stood_down
            .lock()
            .expect("stood down lock")
            .clone()
    }

    /// Stops `zone`, running here, after its next tick to move it to its standby: it
    /// writes a final checkpoint and ends its stream once the standby holds all of it (a
    /// second at most); [`Node::stopped_for_move`] then says how it went. Nothing of the
    /// run leaves after that. `false` if the zone does not run here.
    pub fn stop_for_move(&self, zone: ZoneID) -> bool {
        let Some(index) = self.active().find(|&k| self.slot(k).zone == zone) else {
            return false;
        };
        self.shared.moving[index].store(true, Ordering::SeqCst);
        true
    }

    /// The zones stopped to move since the node started, in order.
    pub fn stopped_for_move(&self) -> Vec<StoppedForMove> {
        self.shared.stopped.lock().expect("stopped lock").clone()
    }

    /// Runs again `zone`, one of this node's own that stopped to move and did not (its
    /// standby did not acknowledge it whole, or never took it over): restored from this
    /// node's own files as the next run, streaming to its standby as at start. Returns
    /// the new run.
    pub fn restart_own(&self, zone: ZoneID) -> Result<u32, RuntimeError> {
        let err = |message: String| RuntimeError::Zone { zone, message };
        let index = (self.plan.zones.iter())
            .position(|s| s.zone == zone)
            .ok_or_else(|| err("not a zone of this node's own".into()))?;
        if self.shared.active[index].load(Ordering::SeqCst) {
            return Err(err("it runs here already".into()));
        }
        // Its files as they are: never made anew, whatever the node started with.
        let mut plan = self.plan.clone();
        if let Some(sp) = plan.store.as_mut() {
            sp.fresh = false;
        }
        self.run_in_slot(index, self.slot(index), plan, None)
    }
}
