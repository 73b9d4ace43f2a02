//! Warm standbys in the node (docs/mesh.md): which node keeps each zone's standby (the
//! world file's `standby_for`), and this node's side of the ones it keeps — a TCP
//! listener on its control address that mirrors each kept zone's files into
//! `<data>/standby`.

use std::net::TcpListener;
use std::sync::Arc;

use ed25519_dalek::{SigningKey, VerifyingKey};
use meridian_core::world::ZoneID;
use meridian_io::runtime::routes::{Home, ZoneRoute};
use meridian_io::standby::{Kept, StandbyServer, StandbyTarget, serve};
use meridian_io::store::{DataDir, StoreError};

use crate::world_file::{NodeSpec, WorldSpec};

/// Where zone `zone`'s standby is, if the world file names one.
pub fn target(spec: &WorldSpec, zone: ZoneID) -> anyhow::Result<Option<StandbyTarget>> {
    let Some(keeper) = spec.nodes.iter().find(|n| n.standby_for.contains(&zone)) else {
        return Ok(None);
    };
    // The world file checked both exist when a node keeps standbys.
    let (Some(addr), Some(key)) = (keeper.control, keeper.public_key) else {
        anyhow::bail!(
            "node {} keeps standbys without a control address and a key",
            keeper.name
        );
    };
    let key = VerifyingKey::from_bytes(&key)
        .map_err(|e| anyhow::anyhow!("node {}: public_key: {e}", keeper.name))?;
    Ok(Some(StandbyTarget { addr, key }))
}

/// Every zone's homes: the node that hosts it, and the one that keeps its standby.
pub fn routes(spec: &WorldSpec) -> Vec<ZoneRoute> {
    let mut routes = Vec::new();
    for (i, n) in spec.nodes.iter().enumerate() {
        for (k, &zone) in n.zones.iter().enumerate() {
            let standby = spec.nodes.iter().enumerate().find_map(|(s, keeper)| {
                let j = keeper.standby_for.iter().position(|&z| z == zone)?;
                Some(Home {
                    node: s as u32,
                    addr: keeper.standby_address(j),
                })
            });
            routes.push(ZoneRoute {
                zone,
                primary: Home {
                    node: i as u32,
                    addr: n.zone_address(k),
                },
                standby,
            });
        }
    }
    routes
}

/// The standbys a node keeps: the server, and the directory it mirrors into (locked
/// while they run).
pub type KeptStandbys = (Arc<StandbyServer>, Arc<DataDir>);

/// Serves the standbys `node` keeps, mirroring into `<data>/standby`; `None` if it keeps
/// none.
pub fn serve_kept(
    spec: &WorldSpec,
    node: &NodeSpec,
    data: Option<&std::path::Path>,
    key: Option<&SigningKey>,
) -> anyhow::Result<Option<KeptStandbys>> {
    // A node of a mesh with a data directory listens even if it keeps no standby yet: it
    // keeps those of its zones taken over while it was away, when it comes back.
    if node.standby_for.is_empty() && (data.is_none() || key.is_none() || node.control.is_none()) {
        return Ok(None);
    }
    let (Some(data), Some(key), Some(control)) = (data, key, node.control) else {
        anyhow::bail!(
            "node {} keeps the standby of zones {:?}: it needs a data directory (--data), its \\
             key and a control address",
            node.name,
            node.standby_for.iter().map(|z| z.0).collect::<Vec<_>>()
        );
    };
    let dir = DataDir::open(&data.join("standby"))?;
    let mut kept = Vec::new();
    for &zone in &node.standby_for {
        let primary = spec
            .nodes
            .iter()
            .find(|n| n.zones.contains(&zone))
            .and_then(|n| n.public_key)
            .ok_or_else(|| anyhow::anyhow!("zone {zone}: its node has no public_key"))?;
        kept.push(Kept {
            zone: zone.0,
            store: dir.zone(spec.world_id, zone),
            primary: VerifyingKey::from_bytes(&primary)
                .map_err(|e| anyhow::anyhow!("zone {zone}'s node: public_key: {e}"))?,
        });
    }
    let listener = TcpListener::bind(control).map_err(|e| {
        anyhow::anyhow!("cannot listen for standby streams on {control} (TCP): {e}")
    })?;
    if node.standby_for.is_empty() {
        tracing::info!(
            "standby streams accepted on {control} (TCP) for zones taken over from this node \
             while it was away (none kept yet), mirrored into {}",
            dir.path().display()
        );
    } else {
        tracing::info!(
            "keeping the standby of zones {:?}: streams accepted on {control} (TCP), mirrored into {}",
            node.standby_for.iter().map(|z| z.0).collect::<Vec<_>>(),
            dir.path().display()
        );
    }
    let server = serve(listener, key.clone(), kept)?;
    Ok(Some((Arc::new(server), Arc::new(dir))))
}

/// The marker of a zone this node runs from its standby directory (it took the zone over,
/// or back): the file `zone-N.runs-here` there. A restart runs the zone from there again —
/// not a standby of it, not the stale files of the node's own directory — and it is
/// removed when the zone stands down (another node runs it now).
fn marker(zone: ZoneID) -> String {
    format!("zone-{}.runs-here", zone.0)
}

/// Marks `zone` as running here from the standby directory `dir`, as `incarnation`
/// (durably: [`DataDir::put_file`]).
pub fn mark_running(dir: &DataDir, zone: ZoneID, incarnation: u32) -> Result<(), StoreError> {
    dir.put_file(
        &marker(zone),
        format!("incarnation {incarnation}\n").as_bytes(),
    )
}

/// `zone` no longer runs here from the standby directory `dir` (it stood down).
pub fn unmark_running(dir: &DataDir, zone: ZoneID) -> Result<(), StoreError> {
    dir.remove_file(&marker(zone))
}

/// Whether `zone` last ran here from the standby directory `dir` (the marker is there).
pub fn marked_running(dir: &DataDir, zone: ZoneID) -> bool {
    dir.has_file(&marker(zone))
}

/// The marker of one of this node's own zones that stood down (another node runs it now)
/// and whose standby this node keeps: `zone-N.kept-here` in the standby directory. A
/// restart keeps the standby again at once, rather than restoring the stale files of the
/// node's own directory only to be told the zone runs elsewhere and stand down.
fn kept_marker(zone: ZoneID) -> String {
    format!("zone-{}.kept-here", zone.0)
}

/// Marks this node's own `zone` as stood down, its standby kept here (durably).
pub fn mark_kept(dir: &DataDir, zone: ZoneID) -> Result<(), StoreError> {
    dir.put_file(
        &kept_marker(zone),
        b"stood down: its standby is kept here\n",
    )
}

/// `zone` runs here again (or `--fresh` forgets it): the kept-here marker goes.
pub fn unmark_kept(dir: &DataDir, zone: ZoneID) -> Result<(), StoreError> {
    dir.remove_file(&kept_marker(zone))
}

/// Whether this node's own `zone` stood down and its standby is kept here.
pub fn marked_kept(dir: &DataDir, zone: ZoneID) -> bool {
    dir.has_file(&kept_marker(zone))
}

/// The record of the newest run of `zone` this node took over (acted on a promotion the
/// mesh agreed to): `zone-N.acted` in the standby directory. Written durably before the
/// run starts, with the runs-here marker, and never removed — the marker goes when the
/// run stands down, this stays — so a restart can tell a promise of its own it acted on
/// from one it never did (only those it withdraws: `crate::failover`).
fn acted_record(zone: ZoneID) -> String {
    format!("zone-{}.acted", zone.0)
}

/// Records that this node takes `zone` over as `incarnation` (durably), unless it already
/// recorded a newer run of it.
pub fn mark_acted(dir: &DataDir, zone: ZoneID, incarnation: u32) -> Result<(), String> {
    if acted_incarnation(dir, zone)?.is_some_and(|newest| newest >= incarnation) {
        return Ok(());
    }
    dir.put_file(
        &acted_record(zone),
        format!("incarnation {incarnation}\n").as_bytes(),
    )
    .map_err(|e| e.to_string())
}

/// Since which generation of this node (see `crate::mesh`) the records of runs taken
/// over are kept: `acted-records` in the standby directory, written at the first start
/// that keeps them (`generation`: that start's). A promise asked before then may have
/// been acted on without a record (and its run stood down since): a restart leaves it.
pub fn acted_records_since(dir: &DataDir, generation: u32) -> Result<u32, String> {
    const NAME: &str = "acted-records";
    let bytes = dir.read_file(NAME).map_err(|e| e.to_string())?;
    if let Some(bytes) = bytes {
        return std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.trim().strip_prefix("since generation "))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                format!(
                    "{} does not say `since generation N`: {:?}",
                    dir.path().join(NAME).display(),
                    String::from_utf8_lossy(&bytes)
                )
            });
    }
    dir.put_file(NAME, format!("since generation {generation}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(generation)
}

/// The newest run of `zone` this node ever took over, by its record; `None` if it never
/// took `zone` over (or took it over before records were kept: see `crate::failover`).
pub fn acted_incarnation(dir: &DataDir, zone: ZoneID) -> Result<Option<u32>, String> {
    read_incarnation(dir, &acted_record(zone))
}

/// The incarnation the marker of `zone` in `dir` names: the run the mesh agreed to (or
/// the last resumed), which a restart must run past even when that run's first files
/// never reached the disk. `None` without a marker.
pub fn marked_incarnation(dir: &DataDir, zone: ZoneID) -> Result<Option<u32>, String> {
    read_incarnation(dir, &marker(zone))
}

/// The `incarnation N` file `name` in `dir` says; `None` without the file.
fn read_incarnation(dir: &DataDir, name: &str) -> Result<Option<u32>, String> {
    let Some(bytes) = dir.read_file(name).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.trim().strip_prefix("incarnation "))
        .and_then(|n| n.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            format!(
                "{} does not say `incarnation N`: {:?}",
                dir.path().join(name).display(),
                String::from_utf8_lossy(&bytes)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marker names its run; no marker is no run; a marker that does not say
    /// `incarnation N` is an error that names the file, not a number made up.
    #[test]
    fn a_marker_names_the_incarnation_it_was_written_with() {
        let path = std::env::temp_dir().join(format!("meridian-marker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let dir = DataDir::open(&path).expect("data dir");
        assert_eq!(marked_incarnation(&dir, ZoneID(3)), Ok(None));
        mark_running(&dir, ZoneID(3), 7).expect("marked");
        assert!(marked_running(&dir, ZoneID(3)));
        assert_eq!(marked_incarnation(&dir, ZoneID(3)), Ok(Some(7)));
        assert_eq!(marked_incarnation(&dir, ZoneID(4)), Ok(None));
        dir.put_file(&marker(ZoneID(4)), b"seven").expect("written");
        let e = marked_incarnation(&dir, ZoneID(4)).expect_err("not a number");
        assert!(e.contains("zone-4.runs-here") && e.contains("seven"), "{e}");
        unmark_running(&dir, ZoneID(3)).expect("unmarked");
        assert_eq!(marked_incarnation(&dir, ZoneID(3)), Ok(None));
        // The kept-here marker is its own file.
        assert!(!marked_kept(&dir, ZoneID(3)));
        mark_kept(&dir, ZoneID(3)).expect("marked kept");
        assert!(marked_kept(&dir, ZoneID(3)) && !marked_running(&dir, ZoneID(3)));
        unmark_kept(&dir, ZoneID(3)).expect("unmarked kept");
        assert!(!marked_kept(&dir, ZoneID(3)));
        // The record of runs taken over keeps the newest, and outlives the marker.
        assert_eq!(acted_incarnation(&dir, ZoneID(3)), Ok(None));
        mark_acted(&dir, ZoneID(3), 7).expect("recorded");
        mark_acted(&dir, ZoneID(3), 5).expect("an older run: nothing to record");
        assert_eq!(acted_incarnation(&dir, ZoneID(3)), Ok(Some(7)));
        mark_acted(&dir, ZoneID(3), 9).expect("recorded");
        assert_eq!(acted_incarnation(&dir, ZoneID(3)), Ok(Some(9)));
        // The generation records are kept since is the first start's.
        assert_eq!(acted_records_since(&dir, 100), Ok(100));
        assert_eq!(acted_records_since(&dir, 200), Ok(100));
        drop(dir);
        let _ = std::fs::remove_dir_all(&path);
    }
}
