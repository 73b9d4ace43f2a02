//! What a zone's driver is set up with: its session layer (told of a takeover when the
//! zone was promoted here) and its NPCs.

use meridian_core::npc::{NPC_KIND, Pattern};
use meridian_core::session::Sessions;
use meridian_core::world::ZoneID;
use meridian_core::zone::Zone;

use super::{NodePlan, NpcPlan, Shared, ZonePlan};

/// A zone promoted here (a standby slot) tells the clients of the sessions it restored
/// that it runs at this address now.
pub(super) fn promoted_sessions(
    sessions: Option<Sessions>,
    promoted: bool,
    zone_plan: &ZonePlan,
) -> Option<Sessions> {
    let mut sessions = sessions?;
    if promoted {
        sessions.set_zone_address(zone_plan.zone, zone_plan.bind);
        sessions.announce_takeover();
    }
    Some(sessions)
}

/// The zone's session layer, if the world takes clients.
pub(super) fn client_sessions(
    plan: &NodePlan,
    shared: &Shared,
    id: ZoneID,
) -> Result<Option<Sessions>, String> {
    let Some(c) = &plan.clients else {
        return Ok(None);
    };
    let mut entropy = [0u8; 32];
    getrandom::fill(&mut entropy).map_err(|e| format!("no randomness: {e}"))?;
    let mut s = Sessions::new(c.config, id, c.world_id, &c.auth_key, entropy)
        .map_err(|e| format!("auth key: {e}"))?;
    for &(zone, addr) in &c.zone_addrs {
        s.set_zone_address(zone, addr);
    }
    s.share_tokens(shared.tokens.clone());
    if let Some(keys) = &plan.keys {
        s.set_node_key(keys.key.clone(), keys.signer);
    }
    Ok(Some(s))
}

/// Spawns the plan's NPCs in `zone`, spread deterministically over the zone (random walk)
/// or lined up at its border with a neighbour (dancers, flash crowd).
pub(super) fn spawn_npcs(zone: &mut Zone, npcs: &NpcPlan) -> Result<(), String> {
    let world = *zone.world();
    let rect = zone.rect();
    let neighbour_east = world
        .neighbours(zone.id())
        .as_slice()
        .iter()
        .any(|&n| world.zone_rect(n).x_min >= rect.x_max);
    let border_x = if neighbour_east {
        rect.x_max
    } else {
        rect.x_min
    };
    let n = npcs.per_zone.max(1);
    for i in 0..npcs.per_zone {
        // A low-discrepancy spread (golden ratio), deterministic per zone.
        let u = (f64::from(i) * 0.618_033_988_749_895).fract() as f32;
        let v = (i as f32 + 0.5) / n as f32;
        let (x, y) = match npcs.pattern {
            Pattern::RandomWalk => (
                rect.x_min + u * rect.width(),
                rect.y_min + v * rect.height(),
            ),
            Pattern::BorderDancers => (border_x - 0.5, rect.y_min + v * rect.height()),
            Pattern::FlashCrowd => (border_x - 1.0 - u * 4.0, rect.y_min + v * rect.height()),
        };
        let x = x.clamp(rect.x_min, rect.x_max - 0.01);
        zone.spawn([x, y, 0.0], [0.0, 0.0], npcs.speed_mps * 1.5, NPC_KIND)
            .map_err(|e| format!("cannot spawn NPC {i}: {e} (raise the entity limit)"))?;
        // Spawns are logged; the log is bounded, so drain it as we go (no persistence yet).
        for _ in zone.drain_log() {}
    }
    Ok(())
}

/// The boot epoch of signed envelopes: the zone's persisted incarnation, bumped at every
/// start, so peers' replay windows take a restarted zone's datagrams at once. Without
/// persistence, the wall clock in seconds (a restart within the same second, or after the
/// clock stepped back, reuses it, and peers then refuse the new run's datagrams until
/// their sequences pass the old ones).
pub(super) fn boot_epoch(zone: &Zone, durable: bool) -> u32 {
    if durable {
        return zone.incarnation();
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}
