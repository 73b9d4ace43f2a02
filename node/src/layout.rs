//! `meridian check`'s account of a world file's deployment: which node runs which zones
//! on which cores and addresses, what is signed, which node takes each zone over when its
//! own dies, and what the world runs besides — so a world file meant for several machines
//! can be read back before it is copied to them.

use std::fmt::Write as _;

use crate::world_file::WorldSpec;

/// The deployment part of `meridian check`'s output (after the zone geometry).
pub fn describe(spec: &WorldSpec) -> String {
    let mut out = String::new();
    if spec.nodes.is_empty() {
        out.push_str(
            "nodes: none ([[nodes]] lists who runs the zones; `meridian demo` needs none)\n",
        );
    } else {
        describe_nodes(spec, &mut out);
    }
    match &spec.clients {
        None => out.push_str("clients: none (no [clients] section: the node takes no clients)\n"),
        Some(c) => {
            let auth = match c.client_auth {
                meridian_core::session::ClientAuth::Aead => "sealed (ChaCha20-Poly1305)",
                meridian_core::session::ClientAuth::Ed25519 => "sealed and Ed25519-signed",
            };
            let _ = writeln!(
                out,
                "clients: up to {} sessions per zone, inputs {auth}, avatars at up to {} m/s",
                c.sessions_per_zone, c.speed_mps
            );
        }
    }
    match &spec.npcs {
        None => out.push_str("npcs: none\n"),
        Some(n) => {
            let pattern = match n.pattern {
                meridian_core::npc::Pattern::RandomWalk => "random_walk",
                meridian_core::npc::Pattern::BorderDancers => "border_dancers",
                meridian_core::npc::Pattern::FlashCrowd => "flash_crowd",
            };
            let _ = writeln!(
                out,
                "npcs: {} per zone, {pattern}, {} m/s",
                n.per_zone, n.speed_mps
            );
        }
    }
    let _ = writeln!(
        out,
        "limits: {} entities per zone; a checkpoint every {} ticks (with --data)",
        spec.entities_per_zone, spec.checkpoint_every_ticks
    );
    out
}

fn describe_nodes(spec: &WorldSpec, out: &mut String) {
    let signed = spec.nodes.iter().all(|n| n.public_key.is_some());
    let mesh = spec.nodes.iter().all(|n| n.control.is_some());
    let _ = writeln!(
        out,
        "nodes: {}; traffic between nodes {}; mesh membership {}",
        spec.nodes.len(),
        match (spec.nodes.len(), signed) {
            (1, _) => "none (one node)",
            (_, true) => "signed (every node pins a public_key)",
            (_, false) => {
                "NOT signed (no public_key): only on a network every host of which is trusted"
            }
        },
        if mesh {
            let home = match spec.mesh.move_home_after {
                Some(after) => format!(
                    "a zone away from its home node moves home {} s after its standby there is \
                     current (doubled each time it comes back within an hour)",
                    after.as_secs_f32()
                ),
                None => "zones move home only when asked (/move)".to_owned(),
            };
            format!(
                "on (start grace {} s: start every node within it; {home})",
                spec.mesh.start_grace.as_secs_f32()
            )
        } else {
            "off (no control addresses): no failover".to_owned()
        }
    );
    for n in &spec.nodes {
        let zones: Vec<String> = (0..n.zones.len())
            .map(|k| {
                format!(
                    "zone {} at {} (core {})",
                    n.zones[k],
                    n.zone_address(k),
                    n.cores[k]
                )
            })
            .collect();
        let _ = write!(out, "  node {}: {}", n.name, zones.join(", "));
        if let Some(control) = n.control {
            let _ = write!(out, "; control {control} (UDP and TCP)");
        }
        if let Some(admin) = n.admin {
            let _ = write!(out, "; admin http://{admin}");
        }
        out.push('\n');
        for (j, z) in n.standby_for.iter().enumerate() {
            let _ = writeln!(
                out,
                "    keeps zone {z}'s standby; runs it at {} if it takes it over",
                n.standby_address(j)
            );
        }
    }
    if !mesh {
        return;
    }
    let mut orphans = Vec::new();
    let mut map = Vec::new();
    for z in spec.world.zones() {
        match spec.nodes.iter().find(|n| n.standby_for.contains(&z)) {
            Some(n) => map.push(format!("zone {z} → {}", n.name)),
            None => orphans.push(z.to_string()),
        }
    }
    if !map.is_empty() {
        let _ = writeln!(out, "failover: {}", map.join(", "));
    }
    if !orphans.is_empty() {
        let _ = writeln!(
            out,
            "  no standby for zone{} {}: down while {} node is down",
            if orphans.len() == 1 { "" } else { "s" },
            orphans.join(", "),
            if orphans.len() == 1 { "its" } else { "their" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world_file::parse_spec;

    #[test]
    fn the_three_node_world_reads_back_with_its_failover_map() {
        let spec = parse_spec(include_str!("../worlds/mesh-3.toml")).unwrap();
        let text = describe(&spec);
        for line in [
            "nodes: 3; traffic between nodes signed (every node pins a public_key); mesh membership on (start grace 5 s",
            "  node n0: zone 0 at 127.0.0.1:7500 (core 0); control 127.0.0.1:7600 (UDP and TCP); admin http://127.0.0.1:7700\n",
            "    keeps zone 2's standby; runs it at 127.0.0.1:7511 if it takes it over\n",
            "    keeps zone 1's standby; runs it at 127.0.0.1:7522 if it takes it over\n",
            "failover: zone 0 → n2, zone 1 → n2, zone 2 → n1\n",
            "npcs: 20000 per zone, random_walk, 5 m/s\n",
            "clients: none",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        assert!(!text.contains("no standby"), "{text}");
        assert!(
            text.contains("zones move home only when asked (/move)"),
            "{text}"
        );
        let home = include_str!("../worlds/mesh-3.toml")
            .replace("# move_home_after_s = 30", "move_home_after_s = 30");
        let text = describe(&parse_spec(&home).unwrap());
        assert!(
            text.contains(
                "a zone away from its home node moves home 30 s after its standby there is current"
            ),
            "{text}"
        );
    }

    #[test]
    fn zones_that_cannot_fail_over_and_unsigned_nodes_are_said() {
        let text = include_str!("../worlds/mesh-3.toml").replace("standby_for = [2]\n", "");
        let text = describe(&parse_spec(&text).unwrap());
        assert!(
            text.contains("failover: zone 0 → n2, zone 1 → n2\n"),
            "{text}"
        );
        assert!(
            text.contains("  no standby for zone 2: down while its node is down\n"),
            "{text}"
        );
        let single = describe(&parse_spec(include_str!("../worlds/default.toml")).unwrap());
        assert!(
            single.contains("traffic between nodes none (one node)"),
            "{single}"
        );
        assert!(single.contains("mesh membership off"), "{single}");
        assert!(!single.contains("failover:"), "{single}");
        let unsigned = include_str!("../worlds/mesh-3.toml")
            .lines()
            .filter(|l| !l.starts_with("public_key") && !l.starts_with("control"))
            .filter(|l| !l.starts_with("standby_for") && !l.starts_with("start_grace"))
            .filter(|&l| l != "[mesh]")
            .collect::<Vec<_>>()
            .join("\n");
        let unsigned = describe(&parse_spec(&unsigned).unwrap());
        assert!(
            unsigned.contains("NOT signed (no public_key)"),
            "{unsigned}"
        );
    }
}
