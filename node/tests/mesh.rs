//! Mesh membership in real nodes: three nodes of one world, each on its own control port,
//! gossiping signed datagrams over loopback; one stops; the others declare it down.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use meridian_core::mesh::Liveness;
use meridian_node::{run, world_file};

fn key(k: usize) -> SigningKey {
    SigningKey::from_bytes(&[k as u8 + 21; 32])
}

/// Three 64 m zones in a row, one per node; each node with a zone port, a control port,
/// an admin port and a pinned key.
fn world() -> String {
    let mut text = String::from(
        "[world]\nid = 5\nbounds = { x_min = 0.0, y_min = 0.0, x_max = 192.0, y_max = 64.0 }\n\
         tick_rate_hz = 30\nmargin_m = 2.0\naura_m = 8.0\ncell_size_m = 8.0\n\n\
         [zones]\ncolumns = 3\nrows = 1\n\n\
         [npcs]\npattern = \"random_walk\"\nper_zone = 100\nspeed_mps = 4.0\n",
    );
    for k in 0..3 {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"n{k}\"\nzones = [{k}]\ncores = [{}]\nudp = \"127.0.0.1:{}\"\n\
             control = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:0\"\npublic_key = \"{}\"\n",
            k % 2,
            crate::free_port(),
            crate::free_port(),
            hex::encode(key(k).verifying_key().as_bytes())
        ));
    }
    text
}

fn liveness(r: &run::Running, peer: &str) -> Liveness {
    let view = r.mesh().expect("a mesh");
    // Before the mesh thread's first round its view is empty.
    let found = view.peers.iter().find(|p| p.name == peer);
    found.map_or(Liveness::Unknown, |p| p.liveness)
}

#[test]
fn three_nodes_see_each_other_and_declare_a_stopped_one_down() {
    let _machine = crate::alone();
    let spec = world_file::parse_spec(&world()).unwrap();
    let mut nodes: Vec<Option<run::Running>> = (0..3)
        .map(|k| Some(run::start(&spec, &spec.nodes[k], None, Some(&key(k))).unwrap()))
        .collect();
    let started = Instant::now();
    let all_alive = |nodes: &[Option<run::Running>]| {
        (0..3).all(|k| {
            (0..3)
                .filter(|&j| j != k)
                .all(|j| liveness(nodes[k].as_ref().unwrap(), &format!("n{j}")) == Liveness::Alive)
        })
    };
    while !all_alive(&nodes) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never all alive"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // What an operator sees: /status lines and /metrics families.
    let admin = nodes[1].as_ref().unwrap().admin_address().unwrap();
    let status = meridian_node::swarm::http_get(admin, "/status").unwrap();
    assert!(
        status.contains("peer n0 alive") && status.contains("peer n2 alive"),
        "{status}"
    );
    let metrics = meridian_node::swarm::http_get(admin, "/metrics").unwrap();
    assert!(
        metrics.contains("meridian_mesh_peer_alive{node=\"n1\",peer=\"n0\"} 1"),
        "{metrics}"
    );
    // n0 stops (no farewell: to the others it is as good as dead).
    std::thread::sleep(Duration::from_secs(1));
    nodes[0].take().unwrap().stop().unwrap();
    let stopped = Instant::now();
    let mut detected = [None; 3];
    while detected[1..].iter().any(Option::is_none) {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "never declared down"
        );
        std::thread::sleep(Duration::from_millis(5));
        for (k, d) in detected.iter_mut().enumerate().skip(1) {
            if d.is_none() && liveness(nodes[k].as_ref().unwrap(), "n0") == Liveness::Down {
                *d = Some(stopped.elapsed());
            }
        }
    }
    eprintln!(
        "n0 declared down by n1 after {:?}, by n2 after {:?}",
        detected[1], detected[2]
    );
    // The membership target is a second; a loaded CI machine gets some slack here.
    for d in &detected[1..] {
        assert!(d.unwrap() < Duration::from_millis(1_500), "{detected:?}");
    }
    assert_eq!(liveness(nodes[1].as_ref().unwrap(), "n2"), Liveness::Alive);
    let metrics = meridian_node::swarm::http_get(admin, "/metrics").unwrap();
    assert!(
        metrics.contains("meridian_mesh_peer_down{node=\"n1\",peer=\"n0\"} 1"),
        "{metrics}"
    );
    for n in nodes.into_iter().flatten() {
        n.stop().unwrap();
    }
}

/// A control address needs keys on every node (gossip is signed), and every node needs one.
#[test]
fn a_mesh_without_keys_or_with_a_node_missing_its_control_port_is_refused() {
    let text = world();
    let unkeyed: String = text
        .lines()
        .filter(|l| !l.starts_with("public_key"))
        .map(|l| format!("{l}\n"))
        .collect();
    let e = world_file::parse_spec(&unkeyed).unwrap_err().to_string();
    assert!(e.contains("control") && e.contains("public_key"), "{e}");
    let mut seen = false;
    let one_missing: String = text
        .lines()
        .filter(|l| {
            let drop = l.starts_with("control") && !seen;
            seen |= drop;
            !drop
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let e = world_file::parse_spec(&one_missing)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 of 3 nodes have a control address"), "{e}");
}
