//! Where zones last ran: the runs this node resumes from its standby directory at start
//! (confirmed, or stood down when the node they stream to runs the zone now), the
//! standbys it keeps of zones that stood down here, and the standbys it gives again to
//! zones it took over once their old node is back.

use std::sync::Arc;
use std::time::Duration;

use meridian_core::mesh::Liveness;
use meridian_core::world::ZoneID;
use meridian_io::runtime::{Node, StandbyState};
use meridian_io::standby::StandbyServer;
use meridian_io::store::DataDir;

use super::{Layout, Retry, Watched};
use crate::mesh::MeshView;

/// The zones this node ran from its standby directory when it stopped (it took them over
/// or back) run from there again, as the next incarnation. No vote: this is a restart of
/// this node's own run, like a primary restarting from its own directory — and, like it,
/// it streams from the start to the node the zone runs on otherwise ([`Layout::other`]),
/// and nothing it sends leaves before that node's answer: if that node runs the zone now
/// (it took it over or back meanwhile), `TakenOver` stands this run down ([`rejoin`]).
/// Until the run is confirmed ([`confirm`]) this node answers `TakenOver` only to a run
/// older than its own: two nodes that each resumed a run (each ran the zone when it
/// stopped: one took it over or back from the other, which was down) would otherwise each
/// wait for the other, or each stand the other down; the newer run is the one the mesh
/// agreed to last. Returns the runs resumed, as (zone, incarnation).
pub(super) fn resume(
    resumed: &[ZoneID],
    layout: &Layout,
    watched: &mut Vec<Watched>,
    (server, dir): &(Arc<StandbyServer>, Arc<DataDir>),
    node: &Node,
) -> Vec<(ZoneID, u32)> {
    let mut runs = Vec::new();
    for &zone in resumed {
        let Some((other, target)) = layout.other_target(zone) else {
            tracing::error!(%zone, "zone {zone} ran here when this node stopped, but the world file names no other node for it: not resumed");
            continue;
        };
        if !server.release(zone.0, Duration::from_secs(2)) {
            tracing::error!(%zone, "zone {zone} ran here when this node stopped, but its standby streams did not end: not resumed");
            continue;
        }
        // One past the run the marker names: its first files may never have reached the
        // disk (killed between the vote and its first checkpoint), and a resumed run must
        // not carry the number of the run it resumes — an older run of the zone resumed
        // elsewhere with that number would be answered by neither.
        let floor = match crate::standby::marked_incarnation(dir, zone) {
            Ok(marked) => marked.map_or(0, |m| m + 1),
            Err(e) => {
                tracing::error!(%zone, "cannot read the marker that zone {zone} ran here: {e}; resuming as its files say");
                0
            }
        };
        // The marker names the resumed run before it starts, as a takeover's does.
        let mark = |incarnation: u32| -> Result<(), String> {
            if let Err(e) = crate::standby::mark_running(dir, zone, incarnation) {
                tracing::error!(%zone, "cannot write the marker that zone {zone} runs here as incarnation {incarnation}: {e}");
            }
            Ok(())
        };
        match node.promote(zone, dir.clone(), &mark, Some(target), floor) {
            Ok(incarnation) => {
                runs.push((zone, incarnation));
                server.resumed(zone.0, incarnation);
                let name = &layout.nodes[other].0;
                tracing::warn!(%zone, incarnation, "zone {zone} ran here from {} when this node stopped: running it from there again as incarnation {incarnation}, streaming to node {name} (it sends nothing until {name} answers)", dir.path().display());
                watched.retain(|w| w.zone != zone);
                watched.push(Watched {
                    zone,
                    primary: name.clone(),
                    promoted: true,
                    attached: true,
                    retry: Retry::default(),
                });
            }
            Err(e) => {
                server.unrelease(zone.0);
                tracing::error!(%zone, "zone {zone} ran here when this node stopped, but cannot run from {} again: {e}", dir.path().display());
            }
        }
    }
    runs
}

/// A resumed run is confirmed once the node it streams to holds it (that node does not
/// run the zone) or the mesh agreed it goes on without that node (declared down): from
/// then on a node that says hello for the zone is told this node took it over. A run
/// that stood down is dropped from the list. Until the zone's driver has said how its
/// standby stands (its first tick after the promotion) the run waits: dropping it then
/// left it unconfirmed for good, and a node coming back with an older run of the zone
/// was never told to stand down.
pub(super) fn confirm(unconfirmed: &mut Vec<(ZoneID, u32)>, server: &StandbyServer, node: &Node) {
    let stood_down = node.stood_down();
    unconfirmed.retain(|&(zone, incarnation)| {
        if stood_down.iter().any(|&(z, _)| z == zone) {
            return false;
        }
        match node.standby_state(zone) {
            Some((now, state, _)) if now == incarnation && state != StandbyState::CatchingUp => {
                server.taken_over(zone.0, incarnation);
                tracing::info!(%zone, incarnation, "zone {zone}'s resumed run is confirmed ({state:?}): this node answers for it now");
                false
            }
            _ => true,
        }
    });
}

/// Zones running here stood down (their standbys, or the nodes they were taken from,
/// run them now): this node keeps their standbys now, mirroring from the nodes that run
/// them, and watches those nodes to take the zones back if they die. A zone that stood
/// down a run resumed from the standby directory ([`resume`]) had written that run's
/// first files there: they are moved aside (`discarded-*`), as the copy starts anew
/// from the running node's stream — left, the copy would name a run the mesh never
/// knew, and refuse the real one as stale.
pub(super) fn rejoin(
    layout: &Layout,
    (handled, resumed): (&mut usize, &[ZoneID]),
    watched: &mut Vec<Watched>,
    (server, dir): &(Arc<StandbyServer>, Arc<DataDir>),
    node: &Node,
) {
    let stood_down = node.stood_down();
    for &(zone, incarnation) in &stood_down[*handled..] {
        if let Err(e) = crate::standby::unmark_running(dir, zone) {
            tracing::error!(%zone, "cannot remove the marker that zone {zone} runs here: {e}");
        }
        let store = dir.zone(layout.world_id, zone);
        if resumed.contains(&zone) {
            match store.discard() {
                Ok(aside) => {
                    tracing::warn!(%zone, "zone {zone}'s run resumed here stood down: its files moved to {}", aside.map_or("(none)".into(), |p| p.display().to_string()))
                }
                Err(e) => {
                    tracing::error!(%zone, "zone {zone}'s run resumed here stood down, but its files cannot be moved aside ({e}): not keeping its standby");
                    continue;
                }
            }
        }
        if keep_standby(zone, layout, watched, (server, dir), Some(incarnation))
            && layout.home_of(zone) == Some(layout.me)
            && let Err(e) = crate::standby::mark_kept(dir, zone)
        {
            tracing::error!(%zone, "cannot write the marker that zone {zone}'s standby is kept here (a restart restores its stale files first): {e}");
        }
    }
    *handled = stood_down.len();
}

/// Keeps the standby of `zone`, which runs on its other node ([`Layout::other`]) —
/// `incarnation` there when known — and watches that node to take the zone back if it
/// dies. Whether the standby server took it.
pub(super) fn keep_standby(
    zone: ZoneID,
    layout: &Layout,
    watched: &mut Vec<Watched>,
    (server, dir): (&Arc<StandbyServer>, &Arc<DataDir>),
    incarnation: Option<u32>,
) -> bool {
    let Some(host) = layout.other(zone) else {
        return false;
    };
    let (name, _, key) = &layout.nodes[host];
    let kept = meridian_io::standby::Kept {
        zone: zone.0,
        store: dir.zone(layout.world_id, zone),
        primary: *key,
    };
    if !server.keep(kept) {
        return false;
    }
    match incarnation {
        Some(i) => {
            tracing::warn!(%zone, "zone {zone} runs on node {name} now (incarnation {i}): keeping its standby")
        }
        None => {
            tracing::warn!(%zone, "zone {zone} stood down when this node last ran (node {name} runs it): keeping its standby, not restoring this node's stale files of it")
        }
    }
    watched.retain(|w| w.zone != zone);
    watched.push(Watched {
        zone,
        primary: name.clone(),
        promoted: false,
        attached: false,
        retry: Retry::default(),
    });
    true
}

/// A zone this node took over gets a standby again: the node it took it from, once that
/// node is alive (it keeps the zone's standby when it comes back: [`rejoin`]).
pub(super) fn attach(view: &MeshView, layout: &Layout, watched: &mut [Watched], node: &Node) {
    for w in watched.iter_mut().filter(|w| w.promoted && !w.attached) {
        let alive = view
            .peers
            .iter()
            .any(|p| p.name == w.primary && p.liveness == Liveness::Alive);
        let Some((_, addr, key)) = layout.nodes.iter().find(|n| n.0 == w.primary) else {
            continue;
        };
        if alive {
            let target = meridian_io::standby::StandbyTarget {
                addr: *addr,
                key: *key,
            };
            if node.attach_standby(w.zone, target) {
                tracing::warn!(zone = %w.zone, "node {} is back: streaming zone {} to it as its standby", w.primary, w.zone);
                w.attached = true;
            }
        }
    }
}
