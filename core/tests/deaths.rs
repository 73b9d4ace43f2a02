//! A node that starts while another is dead learns of the death (`meridian_core::mesh`,
//! its `deaths` module): told by the live nodes when it comes up, or — when none of them
//! knows — after `silent_to_down_after`.

use core::time::Duration;

use meridian_core::mesh::{Liveness, MeshConfig, MeshEvent, control_datagram};
use meridian_layouts::control::{ControlKind, Death};
use meridian_layouts::{U16Le, U32Le};

use crate::mesh::{Net, addr, key, mesh, reports as events};

fn downs(e: &MeshEvent) -> bool {
    matches!(e, MeshEvent::Down { .. } | MeshEvent::Told { .. })
}

/// Node 0 dies, the others declare it down, and node 2 restarts 3 s later — long after
/// node 1 stopped telling of the death in its gossip. foca suspects only members it has
/// heard of, and answers a newcomer with the live members only: node 2 saw node 0
/// "unknown" until `silent_to_down_after` (5 s), and in a node a zone resumed there waited
/// for node 0 as its standby all that while (the node test `failover::a_standby_killed_
/// just_after_its_takeover_runs_the_zone_again_on_restart` failed so in 1 of ~10 runs).
/// Node 1 tells node 2 when it comes up: node 0 is down at node 2 within 100 ms, as node 1
/// saw it go down (generation 1), from one deaths datagram. When node 0 comes back, every
/// node sees it alive again.
#[test]
fn a_node_that_starts_while_another_is_dead_is_told_of_the_death() {
    for seed in 0..10 {
        let mut net = Net::new(11 + seed, 0.0);
        net.run(Duration::from_secs(2));
        net.nodes[0] = None;
        net.run(Duration::from_secs(3));
        assert_eq!(net.sees(1, 0), Liveness::Down);
        net.nodes[2] = Some(mesh(2, 2, net.now, 99 + seed));
        let started = net.now;
        while net.sees(2, 0) != Liveness::Down {
            net.step();
            assert!(
                net.now.saturating_duration_since(started) < Duration::from_millis(100),
                "seed {seed}: node 2 was not told node 0 is down"
            );
        }
        assert_eq!(net.sees(2, 1), Liveness::Alive, "seed {seed}");
        let told = MeshEvent::Told {
            node: 0,
            generation: 1,
            by: 1,
        };
        assert_eq!(events(&mut net, 2, downs), [told], "seed {seed}");
        let c = net.nodes[2].as_ref().unwrap().counters();
        assert_eq!((c.deaths_heard, c.deaths_dropped), (1, 0), "seed {seed}");
        net.run(MeshConfig::default().silent_to_down_after);
        assert_eq!(events(&mut net, 2, downs), [], "seed {seed}: down once");
        // Node 0 comes back: alive to everyone.
        net.nodes[0] = Some(mesh(0, 3, net.now, 7));
        net.run(Duration::from_secs(3));
        net.assert_all_alive("");
    }
}

/// When no live node knows of the death — node 0 dies, and nodes 1 and 2 both restart
/// after it — nobody can tell: node 0 stays "unknown" (a late starter may be on its way)
/// until `silent_to_down_after`, then is down at both (found by the node test
/// `failover::a_standby_killed_between_the_vote_and_its_takeover_withdraws_the_promise_on_restart`,
/// where it stayed unknown for good before that wait existed). Back, it is alive to all.
#[test]
fn a_death_no_live_node_knows_of_is_declared_after_the_silence() {
    let mut net = Net::new(11, 0.0);
    net.run(Duration::from_secs(2));
    net.nodes[0] = None;
    net.run(Duration::from_secs(3));
    net.nodes[1] = Some(mesh(1, 2, net.now, 98));
    net.nodes[2] = Some(mesh(2, 2, net.now, 99));
    net.run(Duration::from_secs(1));
    assert_eq!(net.sees(2, 1), Liveness::Alive);
    for k in 1..3 {
        assert_eq!(net.sees(k, 0), Liveness::Unknown, "{k}: not yet");
    }
    net.run(MeshConfig::default().silent_to_down_after);
    for k in 1..3 {
        assert_eq!(net.sees(k, 0), Liveness::Down, "{k}");
        let silent = MeshEvent::Down {
            node: 0,
            generation: 0,
        };
        assert_eq!(events(&mut net, k, downs), [silent], "{k}");
    }
    net.nodes[0] = Some(mesh(0, 3, net.now, 7));
    net.run(Duration::from_secs(3));
    net.assert_all_alive("");
}

/// What a deaths datagram cannot do. Node 1 (genuine, signed) tells node 2 that node 0 —
/// alive, heard from — is down: node 2 keeps what it heard first-hand. The same from a
/// node that node 2 has not heard from (node 1 before it is up there) or with a torn
/// list is dropped and counted, and marks nobody down.
#[test]
fn a_deaths_datagram_never_overrules_what_a_node_heard_itself() {
    let deaths = |node: u16| {
        [Death {
            node: U16Le::new(node),
            generation: U32Le::new(1),
        }]
    };
    let from_1 = |payload: &[u8]| {
        let tag = meridian_core::mesh::tag_key(&key(1), &key(2).verifying_key()).unwrap();
        control_datagram(ControlKind::Deaths, (1, [0; 8]), payload, &key(1), &tag)
    };
    // Node 2 alone so far: node 1 is not alive to it.
    let mut net = Net::new(3, 0.0);
    let m2 = net.nodes[2].as_mut().unwrap();
    m2.handle_datagram(net.now, addr(1), &from_1(bytemuck::cast_slice(&deaths(0))));
    assert_eq!(m2.counters().deaths_dropped, 1);
    net.run(Duration::from_secs(1));
    net.assert_all_alive("");
    let now = net.now;
    let m2 = net.nodes[2].as_mut().unwrap();
    m2.handle_datagram(now, addr(1), &from_1(bytemuck::cast_slice(&deaths(0))));
    let torn = from_1(&bytemuck::cast_slice(&deaths(0))[..5]);
    m2.handle_datagram(now, addr(1), &torn);
    let c = m2.counters();
    assert_eq!(
        (c.deaths_heard, c.deaths_dropped, c.bad_signature),
        (1, 2, 0)
    );
    assert_eq!(net.sees(2, 0), Liveness::Alive, "heard first-hand");
    assert_eq!(events(&mut net, 2, downs), []);
    net.run(Duration::from_secs(1));
    net.assert_all_alive("");
}
