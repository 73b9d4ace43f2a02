//! Votes on a zone's standby (`meridian_core::mesh::votes`): the ledger's rules, its file,
//! and ballots over the in-memory mesh of `mesh.rs` — a drop waits for a majority that
//! sees the standby down, and a dropped standby cannot take its zone over afterwards,
//! not even from nodes that restarted.

use core::time::Duration;

use meridian_core::mesh::MeshEvent;
use meridian_core::mesh::votes::{Answer, Ask, Ledger, LedgerError, Promise, Tally};
use meridian_core::time::Instant;
use proptest::prelude::*;

use crate::mesh::{NODES, Net, addr, key, mesh};

const DROP: Ask = Ask::Drop {
    zone: 7,
    incarnation: 1,
    seq: 1,
    standby: 2,
};
const PROMOTE: Ask = Ask::Promote {
    zone: 7,
    incarnation: 2,
    standby: 2,
    primary: 0,
};
/// Node 2 acts on its promotion (`PROMOTE`), a majority having agreed to it.
const ACTED: Ask = Ask::Acted {
    zone: 7,
    incarnation: 2,
    standby: 2,
};
/// Zone 7's primary (run 1) asks the ledgers to let go of a promise to node 2.
const RELEASE: Ask = Ask::Release {
    zone: 7,
    incarnation: 1,
    standby: 2,
};
/// Node 2 will not act on its promotion (`PROMOTE`).
const WITHDRAW: Ask = withdrawal(2);

/// Node 2 withdraws its promotion of zone 7 to run `incarnation`.
const fn withdrawal(incarnation: u32) -> Ask {
    Ask::Withdraw {
        zone: 7,
        incarnation,
        standby: 2,
    }
}

proptest! {
    /// Node 0 (zone 7's primary, run 1) asks to drop its standby on node 2, and node 2
    /// asks to promote its copy as run 2. Each of the three ledgers hears the two asks in
    /// any order, or not at all: never do both get a majority.
    #[test]
    fn a_drop_and_a_promotion_of_the_same_copy_never_both_pass(
        order in prop::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), NODES),
    ) {
        let mut ledgers = vec![Ledger::new(); NODES];
        let (mut dropped, mut promoted) = (Tally::new(NODES, &DROP), Tally::new(NODES, &PROMOTE));
        for (k, &(drop_first, hears_drop, hears_promote)) in order.iter().enumerate() {
            let l = &mut ledgers[k];
            let mut drop = |l: &mut Ledger| dropped.count(k as u16, l.answer(0, 1, DROP, true));
            let mut promote = |l: &mut Ledger| promoted.count(k as u16, l.answer(2, 10, PROMOTE, true));
            if drop_first {
                if hears_drop { drop(l); }
                if hears_promote { promote(l); }
            } else {
                if hears_promote { promote(l); }
                if hears_drop { drop(l); }
            }
        }
        prop_assert!(
            !(dropped.outcome() == Some(true) && promoted.outcome() == Some(true)),
            "both passed: {order:?}"
        );
    }

    /// The same two asks, where the standby's ballot (10) may end before every answer is
    /// in: it acts only if it had a majority then, and otherwise withdraws (ballot 20) and
    /// may ask again (ballot 30), acting on that one once a majority agreed. Its
    /// withdrawal, late copies of its first ask and its second ask reach each ledger at any
    /// point after, in any order, or not at all; the primary's drop is asked (and resent)
    /// at any point. Never does the drop pass while the standby acted on either ballot;
    /// and once the standby withdrew what it did not act on everywhere (ballot 40), no
    /// promise is left behind (the drop, asked again, passes).
    #[test]
    fn a_withdrawn_promotion_never_lets_a_drop_pass_under_a_standby_that_acted(
        events in prop::collection::vec((0..NODES, 0..4u8), 0..32),
        decide_at in 0..32usize,
    ) {
        let mut ledgers = vec![Ledger::new(); NODES];
        let (mut dropped, mut first) = (Tally::new(NODES, &DROP), Tally::new(NODES, &PROMOTE));
        let mut second = Tally::new(NODES, &PROMOTE);
        let mut acted = None;
        for (at, &(k, what)) in events.iter().enumerate() {
            if at == decide_at {
                acted = Some(first.outcome() == Some(true));
            }
            let l = &mut ledgers[k];
            let withdrew = acted == Some(false);
            match what {
                0 => { dropped.count(k as u16, l.answer(0, 1, DROP, true)); }
                // Answers that come after the standby decided count for nothing.
                1 => {
                    let answer = l.answer(2, 10, PROMOTE, true);
                    if acted.is_none() { first.count(k as u16, answer); }
                }
                2 if withdrew => { l.answer(2, 20, WITHDRAW, false); }
                3 if withdrew => { second.count(k as u16, l.answer(2, 30, PROMOTE, true)); }
                _ => {}
            }
        }
        let acted = acted.unwrap_or(first.outcome() == Some(true));
        let acted_again = second.outcome() == Some(true);
        prop_assert!(
            !((acted || acted_again) && dropped.outcome() == Some(true)),
            "the standby acted and the drop passed: {events:?}, decided at {decide_at}"
        );
        if !acted && !acted_again {
            let again = Ask::Drop { zone: 7, incarnation: 1, seq: 2, standby: 2 };
            let mut tally = Tally::new(NODES, &again);
            for (k, l) in ledgers.iter_mut().enumerate() {
                l.answer(2, 40, WITHDRAW, false);
                tally.count(k as u16, l.answer(0, 1, again, true));
            }
            prop_assert_eq!(tally.outcome(), Some(true), "a promise stayed: {:?}", events);
        }
    }

    /// Node 2's takeover in its two phases: its promotion (ballot 10) and, once it knows a
    /// majority agreed, that it acts on it (ballot 11); it acts only if a majority held
    /// that when it decided (answers after count for nothing: it died, say). Zone 7's
    /// primary asks each ledger to release the promise and to drop node 2 at any point.
    /// Every answer reaches its ledger in any order, or never. Never does the drop pass
    /// while the standby acted — not even after every ledger took the release and the
    /// drop is asked again; and unless a majority came to hold that it acts, that drop
    /// then passes (a minority's acted promise is outvoted).
    #[test]
    fn a_released_promise_never_lets_a_drop_pass_under_a_standby_that_acted(
        events in prop::collection::vec((0..NODES, 0..4u8), 0..40),
        decide_at in 0..40usize,
    ) {
        let mut ledgers = vec![Ledger::new(); NODES];
        let mut dropped = Tally::new(NODES, &DROP);
        let (mut promoted, mut acting) = (Tally::new(NODES, &PROMOTE), Tally::new(NODES, &ACTED));
        let mut held_acted = Tally::new(NODES, &ACTED);
        let mut acted = None;
        for (at, &(k, what)) in events.iter().enumerate() {
            if at == decide_at {
                acted = Some(acting.outcome() == Some(true));
            }
            let l = &mut ledgers[k];
            match what {
                0 => { dropped.count(k as u16, l.answer(0, 1, DROP, true)); }
                1 => {
                    let answer = l.answer(2, 10, PROMOTE, true);
                    if acted.is_none() { promoted.count(k as u16, answer); }
                }
                2 if promoted.outcome() == Some(true) => {
                    let answer = l.answer(2, 11, ACTED, false);
                    held_acted.count(k as u16, answer);
                    if acted.is_none() { acting.count(k as u16, answer); }
                }
                3 => { l.answer(0, 2, RELEASE, true); }
                _ => {}
            }
        }
        let acted = acted.unwrap_or(acting.outcome() == Some(true));
        prop_assert!(
            !(acted && dropped.outcome() == Some(true)),
            "the standby acted and the drop passed: {events:?}, decided at {decide_at}"
        );
        let again = Ask::Drop { zone: 7, incarnation: 1, seq: 2, standby: 2 };
        let mut tally = Tally::new(NODES, &again);
        for (k, l) in ledgers.iter_mut().enumerate() {
            l.answer(0, 3, RELEASE, true);
            tally.count(k as u16, l.answer(0, 4, again, true));
        }
        if acted {
            prop_assert_ne!(tally.outcome(), Some(true), "dropped under a run: {:?}", events);
        } else if held_acted.outcome() != Some(true) {
            prop_assert_eq!(tally.outcome(), Some(true), "a promise stayed: {:?}", events);
        }
    }

    /// Whatever the bytes, reading a ledger file returns an error or a ledger.
    #[test]
    fn any_bytes_decode_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Ledger::decode(&bytes);
    }
}

#[test]
fn the_ledger_follows_the_rules_and_survives_its_file() {
    let mut l = Ledger::new();
    // Not down in this node's view: ask again later.
    assert_eq!(l.answer(0, 1, DROP, false), Answer::Wait);
    assert!(!l.dirty());
    assert_eq!(l.answer(0, 1, DROP, true), Answer::Yes);
    assert_eq!(l.answer(0, 1, DROP, true), Answer::Yes, "a resend");
    assert_eq!(l.dropped(7), Some(2));
    assert!(l.dirty());
    // The file: round trip, a flipped byte, a short file.
    let file = l.encode();
    assert_eq!(Ledger::decode(&file).unwrap().dropped(7), Some(2));
    let mut damaged = file.clone();
    *damaged.last_mut().unwrap() ^= 1;
    assert_eq!(Ledger::decode(&damaged), Err(LedgerError::Checksum));
    assert_eq!(Ledger::decode(&file[..30]), Err(LedgerError::Format));
    // Dropped: no promotion of its copy.
    assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::No);
    // The standby caught up: current again, and an older drop cannot undo that.
    let current = Ask::Current {
        zone: 7,
        incarnation: 1,
        seq: 2,
        standby: 2,
    };
    assert_eq!(
        l.answer(0, 1, current, false),
        Answer::Yes,
        "rests on no one's death"
    );
    assert_eq!(
        l.answer(0, 1, DROP, true),
        Answer::No,
        "older than the current ask"
    );
    assert_eq!(l.dropped(7), None);
    // A copy of run 1 becomes run 2; from then on the old primary's asks are refused,
    // and the new primary's are taken.
    assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::Yes);
    let late_drop = Ask::Drop {
        zone: 7,
        incarnation: 1,
        seq: 3,
        standby: 2,
    };
    assert_eq!(l.answer(0, 1, late_drop, true), Answer::No, "the old run");
    let same_run_other_node = Ask::Drop {
        zone: 7,
        incarnation: 2,
        seq: 1,
        standby: 2,
    };
    assert_eq!(l.answer(0, 1, same_run_other_node, true), Answer::No);
    let new_primary_drops = Ask::Drop {
        zone: 7,
        incarnation: 2,
        seq: 1,
        standby: 0,
    };
    assert_eq!(l.answer(2, 1, new_primary_drops, true), Answer::Yes);
    // A copy older than a run that acted cannot be promoted.
    let stale = Ask::Promote {
        zone: 7,
        incarnation: 2,
        standby: 1,
        primary: 2,
    };
    assert_eq!(l.answer(1, 10, stale, true), Answer::No);
}

/// A standby's promotion that did not go ahead, withdrawn: it holds nothing against its
/// primary any more (seed 8227 of the simulator), only the standby itself can withdraw
/// it, and the standby may ask for it again. A withdrawn promise to run 2 still says run 1
/// existed; another node's promotion to the same run is taken over a withdrawn one.
#[test]
fn a_withdrawn_promotion_holds_nothing_against_the_primary() {
    let mut l = Ledger::new();
    assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::Yes);
    assert_eq!(l.answer(0, 1, DROP, true), Answer::No, "promised");
    assert_eq!(
        l.answer(1, 20, WITHDRAW, false),
        Answer::No,
        "not node 1's promise"
    );
    assert_eq!(l.answer(0, 1, DROP, true), Answer::No, "still promised");
    l.saved();
    assert_eq!(l.answer(2, 20, WITHDRAW, false), Answer::Yes);
    assert!(l.dirty(), "a withdrawal is saved before its answer leaves");
    // The file keeps it.
    let mut l = Ledger::decode(&l.encode()).unwrap();
    assert_eq!(
        l.answer(2, 20, withdrawal(1), false),
        Answer::Yes,
        "nothing to withdraw (an older run)"
    );
    assert_eq!(l.answer(0, 1, DROP, true), Answer::Yes, "withdrawn");
    assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::No, "dropped since");

    // Asked again after a withdrawal, in a later ballot: a promise again — and neither a
    // copy of the withdrawn ask nor the withdrawal, delayed, changes anything.
    let mut l = Ledger::new();
    assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::Yes);
    assert_eq!(l.answer(2, 20, WITHDRAW, false), Answer::Yes);
    assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::No, "a late copy");
    assert_eq!(l.answer(0, 1, DROP, true), Answer::Yes, "withdrawn");
    let mut l = Ledger::new();
    assert_eq!(
        l.answer(2, 20, WITHDRAW, false),
        Answer::Yes,
        "before the ask"
    );
    assert_eq!(
        l.answer(2, 10, PROMOTE, true),
        Answer::No,
        "the ask, delayed"
    );
    assert_eq!(l.answer(2, 30, PROMOTE, true), Answer::Yes, "asked again");
    assert_eq!(l.answer(2, 20, WITHDRAW, false), Answer::Yes);
    assert_eq!(l.answer(0, 1, DROP, true), Answer::No, "promised again");
    // Another standby's promotion to run 2 is taken over a withdrawn one, not over a
    // standing one.
    let by_node_1 = Ask::Promote {
        zone: 7,
        incarnation: 2,
        standby: 1,
        primary: 0,
    };
    assert_eq!(
        l.answer(1, 10, by_node_1, true),
        Answer::No,
        "node 2's stands"
    );
    assert_eq!(
        l.answer(2, 40, WITHDRAW, false),
        Answer::Yes,
        "withdrawn again"
    );
    assert_eq!(l.answer(1, 10, by_node_1, true), Answer::Yes);
    // A withdrawn promise to run 5 says run 4 existed: run 3's primary is superseded,
    // run 4's is not.
    let mut l = Ledger::new();
    let to_5 = Ask::Promote {
        zone: 7,
        incarnation: 5,
        standby: 2,
        primary: 0,
    };
    assert_eq!(l.answer(2, 10, to_5, true), Answer::Yes);
    assert_eq!(l.answer(2, 20, withdrawal(5), false), Answer::Yes);
    let drop_in = |incarnation| Ask::Drop {
        zone: 7,
        incarnation,
        seq: 1,
        standby: 2,
    };
    assert_eq!(l.answer(0, 1, drop_in(3), true), Answer::No);
    assert_eq!(l.answer(0, 1, drop_in(4), true), Answer::Yes);
}

/// A ledger written by a build before withdrawals (version 1: 24-byte entries, no
/// ballot) is read, and what it agreed to still holds.
#[test]
fn a_version_1_ledger_is_still_read() {
    let mut entry = vec![0u8; 24];
    entry[..4].copy_from_slice(&7u32.to_le_bytes()); // zone
    entry[4..8].copy_from_slice(&1u32.to_le_bytes()); // run 1 asked
    entry[8..12].copy_from_slice(&1u32.to_le_bytes()); // its first ask
    entry[12..14].copy_from_slice(&2u16.to_le_bytes()); // dropped node 2
    entry[14..16].copy_from_slice(&u16::MAX.to_le_bytes()); // promoted by nobody
    let mut file = b"MRDNVOTE".to_vec();
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&crc32c::crc32c(&entry).to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(&entry);
    let mut l = Ledger::decode(&file).expect("a version 1 ledger");
    assert_eq!(l.dropped(7), Some(2));
    assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::No, "dropped");
    // Written back as version 3, it reads the same.
    let encoded = l.encode();
    assert_eq!(encoded[8], 3, "written as version 3");
    assert_eq!(Ledger::decode(&encoded).unwrap().dropped(7), Some(2));
    file[8] = 4;
    assert_eq!(Ledger::decode(&file), Err(LedgerError::Format), "version 4");
}

/// Node 2's takeover in its two phases (`PROMOTE`, then `ACTED`) against zone 7's primary
/// (node 0, run 1) asking to release the promise and to drop node 2: a ledger lets go of
/// a promise the standby never said it acts on — then the drop passes — and holds one it
/// said it acts on, across a resent promotion and the ledger's file. Only the promised
/// node says it acts, and only on a promise the ledger holds.
#[test]
fn a_promise_is_released_unless_its_standby_said_it_acts_on_it() {
    let drop_again = Ask::Drop {
        zone: 7,
        incarnation: 1,
        seq: 2,
        standby: 2,
    };
    let mut l = Ledger::new();
    assert_eq!(
        l.answer(2, 11, ACTED, false),
        Answer::No,
        "nothing promised"
    );
    assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::Yes);
    assert_eq!(l.answer(0, 1, DROP, true), Answer::No, "promised");
    assert_eq!(l.answer(0, 2, RELEASE, false), Answer::Wait, "node 2 is up");
    assert_eq!(l.answer(0, 2, RELEASE, true), Answer::Yes);
    assert_eq!(l.answer(0, 3, drop_again, true), Answer::Yes, "released");
    assert_eq!(
        l.answer(2, 11, ACTED, false),
        Answer::No,
        "released: not to act on"
    );
    assert_eq!(
        l.answer(2, 10, PROMOTE, true),
        Answer::No,
        "a late copy of the ask"
    );

    let mut l = Ledger::new();
    assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::Yes);
    assert_eq!(
        l.answer(1, 11, ACTED, false),
        Answer::No,
        "only node 2 acts on it"
    );
    assert_eq!(l.answer(2, 11, ACTED, false), Answer::Yes);
    assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::Yes, "resent");
    let mut l = Ledger::decode(&l.encode()).expect("its own file");
    assert_eq!(l.answer(0, 2, RELEASE, true), Answer::No, "acted on");
    assert_eq!(l.answer(0, 1, DROP, true), Answer::No);
    // The standby withdraws what it did not act on after all (its run never started).
    assert_eq!(l.answer(2, 20, WITHDRAW, false), Answer::Yes);
    assert_eq!(l.answer(0, 1, DROP, true), Answer::Yes);

    // Nothing promised: nothing to release, and a release leaves nothing behind.
    let mut l = Ledger::new();
    assert_eq!(l.answer(0, 2, RELEASE, true), Answer::Yes);
    assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::Yes);
    assert_eq!(l.answer(2, 11, ACTED, false), Answer::Yes);
}

/// A ballot passes once a majority said yes, whatever a minority said; it is refused
/// once no majority can say yes. A withdrawal needs every node.
#[test]
fn a_tally_needs_a_majority_and_a_withdrawal_everyone() {
    let mut t = Tally::new(5, &DROP);
    assert_eq!(t.count(0, Answer::Yes), None);
    assert_eq!(t.count(1, Answer::No), None, "one no is outvoted");
    assert!(t.refused());
    assert_eq!(t.count(2, Answer::Wait), None);
    assert_eq!(t.count(1, Answer::Yes), None, "asked again, it said yes");
    assert_eq!(t.count(3, Answer::Yes), Some(true));
    let mut t = Tally::new(5, &DROP);
    for k in 0..2 {
        assert_eq!(t.count(k, Answer::No), None);
    }
    assert_eq!(
        t.count(2, Answer::No),
        Some(false),
        "two nodes left of five"
    );
    let mut t = Tally::new(3, &WITHDRAW);
    assert_eq!(t.count(0, Answer::Yes), None);
    assert_eq!(t.count(1, Answer::Yes), None, "a majority is not enough");
    assert_eq!(t.count(2, Answer::Yes), Some(true));
}

/// Node 0 drops its standby on node 2 as soon as node 2 dies — before the others see it
/// down: the ask waits until a majority does, then passes.
#[test]
fn a_drop_waits_for_a_majority_that_sees_the_standby_down() {
    let mut net = Net::new(21, 0.0).voting();
    net.run(Duration::from_secs(1));
    net.nodes[2] = None;
    let asked = net.now;
    let ballot = net.nodes[0].as_mut().unwrap().ask(asked, DROP);
    let (granted, at) = net.decision(0, ballot, Duration::from_secs(4));
    assert!(granted, "the drop passes once node 2 is declared down");
    let waited = at.saturating_duration_since(asked);
    assert!(
        waited > Duration::from_millis(300),
        "decided {waited:?} after the death: before membership declared node 2 down"
    );
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
}

/// Node 2 is cut off from every other node, declared down, and dropped by zone 7's
/// primary on node 0. The cut heals and node 0 dies: node 2 sees a majority and node 0
/// down, but its copy is stale — its promotion is refused, even after node 1 restarts
/// from its saved ledger. Without the drop, the same promotion passes.
#[test]
fn a_dropped_standby_cannot_take_its_zone_over() {
    for drop in [true, false] {
        let mut net = Net::new(22, 0.0).voting();
        net.run(Duration::from_secs(1));
        net.isolated = Some(2);
        net.run(Duration::from_secs(2));
        if drop {
            let ballot = net.nodes[0].as_mut().unwrap().ask(net.now, DROP);
            assert!(net.decision(0, ballot, Duration::from_secs(2)).0);
        }
        net.isolated = None;
        net.run(Duration::from_secs(3));
        net.nodes[0] = None;
        // Node 1 restarts from its ledger file (as a new generation).
        let saved = Ledger::decode(&net.saved[1]).unwrap_or_default();
        net.nodes[1] = Some(mesh(1, 2, net.now, 5).with_ledger(saved));
        net.run(Duration::from_secs(3));
        let ballot = net.nodes[2].as_mut().unwrap().ask(net.now, PROMOTE);
        let (granted, _) = net.decision(2, ballot, Duration::from_secs(4));
        assert_eq!(granted, !drop, "dropped: {drop}");
    }
}

/// A takeover marks the node taken over from dropped: that node, back and keeping the
/// zone's standby, holds its stale files and then a resync the new run's datagrams do not
/// wait for, so its promotion is refused until the new run's primary says it is current
/// (simulator seed 7233, `--comebacks`: the returned node promoted a copy that lacked a
/// handoff of the new run's, and the entity had two owners). Fails without the mark.
#[test]
fn the_node_taken_over_from_may_promote_again_only_once_said_current() {
    let mut l = Ledger::new();
    // Node 1 takes zone 7 over from node 0 as run 2, and acts on it.
    let takeover = Ask::Promote {
        zone: 7,
        incarnation: 2,
        standby: 1,
        primary: 0,
    };
    assert_eq!(l.answer(1, 10, takeover, true), Answer::Yes);
    let acted = Ask::Acted {
        zone: 7,
        incarnation: 2,
        standby: 1,
    };
    assert_eq!(l.answer(1, 11, acted, false), Answer::Yes);
    assert_eq!(l.dropped(7), Some(0));
    // Node 0 came back and keeps the standby; node 1 dies before node 0 caught up.
    let back = Ask::Promote {
        zone: 7,
        incarnation: 3,
        standby: 0,
        primary: 1,
    };
    assert_eq!(l.answer(0, 12, back, true), Answer::No, "not said current");
    // Run 2's primary says node 0 holds everything: from then on it may.
    let current = Ask::Current {
        zone: 7,
        incarnation: 2,
        seq: 1,
        standby: 0,
    };
    assert_eq!(l.answer(1, 13, current, false), Answer::Yes);
    assert_eq!(l.dropped(7), None);
    assert_eq!(l.answer(0, 14, back, true), Answer::Yes);
}

/// Node 0 is cut off and declared down; its standby on node 2 is agreed to take zone 7
/// over but does not act on it (here: it chose not to; in the simulator's seed 8227 its
/// ballot ran out of time with a majority's yes lost). The cut heals, and node 2 dies:
/// node 0 asks to go on without it. Withdrawn over the wire first (every node holds the
/// withdrawal), the drop passes; the promise left standing refuses it.
#[test]
fn a_withdrawn_takeover_lets_the_primary_drop_that_standby_later() {
    for withdraw in [true, false] {
        let mut net = Net::new(24, 0.0).voting();
        net.run(Duration::from_secs(1));
        net.isolated = Some(0);
        net.run(Duration::from_secs(2));
        let ballot = net.nodes[2].as_mut().unwrap().ask(net.now, PROMOTE);
        assert!(net.decision(2, ballot, Duration::from_secs(2)).0);
        net.isolated = None;
        net.run(Duration::from_secs(3));
        if withdraw {
            let ballot = net.nodes[2].as_mut().unwrap().ask(net.now, WITHDRAW);
            assert!(net.decision(2, ballot, Duration::from_secs(2)).0);
        }
        net.nodes[2] = None;
        net.run(Duration::from_secs(3));
        let ballot = net.nodes[0].as_mut().unwrap().ask(net.now, DROP);
        let (granted, _) = net.decision(0, ballot, Duration::from_secs(4));
        assert_eq!(granted, withdraw, "withdrawn: {withdraw}");
    }
}

/// Node 2's takeover of zone 7 was agreed by every node while its answers were lost; it
/// timed out and withdrew, and died when the withdrawal had reached only itself and node
/// 0. Its own ledger holds the withdrawal from the moment it asked, so a restart that
/// looked only for promises not withdrawn there would ask nothing — and node 1, holding
/// the promise, would refuse node 0's drop of that standby for good once node 2 dies
/// again. The restart finds the promise (the ledger's file read back), withdraws it
/// again, and the drop passes.
#[test]
fn a_withdrawal_a_death_cut_short_is_asked_again_on_restart() {
    let mut ledgers = vec![Ledger::new(); NODES];
    for l in &mut ledgers {
        assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::Yes);
    }
    for k in [2, 0] {
        assert_eq!(ledgers[k].answer(2, 20, WITHDRAW, false), Answer::Yes);
    }
    let drop_passes = |ledgers: &mut [Ledger], seq| {
        let ask = Ask::Drop {
            zone: 7,
            incarnation: 1,
            seq,
            standby: 2,
        };
        let mut tally = Tally::new(NODES, &ask);
        for (k, l) in ledgers.iter_mut().enumerate().take(2) {
            tally.count(k as u16, l.answer(0, 1, ask, true));
        }
        tally.outcome() == Some(true)
    };
    assert!(!drop_passes(&mut ledgers, 1), "node 1 holds the promise");
    let own = Ledger::decode(&ledgers[2].encode()).expect("node 2's ledger file");
    let again: Vec<Promise> = own.promises_to(2).collect();
    let withdrawn = Promise {
        zone: 7,
        run: 2,
        ballot: 20,
        withdrawn: true,
    };
    assert_eq!(again, vec![withdrawn], "to withdraw again");
    for p in again {
        let ask = Ask::Withdraw {
            zone: p.zone,
            incarnation: p.run,
            standby: 2,
        };
        for l in &mut ledgers {
            assert_eq!(l.answer(2, 30, ask, false), Answer::Yes);
        }
    }
    assert!(drop_passes(&mut ledgers, 2), "withdrawn everywhere");
}

/// A vote signed by another node's key is dropped before it counts; an answer replayed
/// to a later ballot of the same ask is dropped and counted, and decides nothing.
#[test]
fn forged_and_replayed_votes_are_dropped() {
    let mut net = Net::new(23, 0.0).voting();
    net.run(Duration::from_secs(1));
    let now = net.now;
    let current = Ask::Current {
        zone: 1,
        incarnation: 1,
        seq: 1,
        standby: 1,
    };
    let m0 = net.nodes[0].as_mut().unwrap();
    let first = m0.ask(now, current);
    let ask = std::iter::from_fn(|| m0.poll_transmit()).next().unwrap().1;
    // Node 1's genuine answer.
    let m1 = net.nodes[1].as_mut().unwrap();
    m1.handle_datagram(now, addr(0), &ask);
    m1.save_ledger(|_| Ok(())).unwrap();
    let answer = std::iter::from_fn(|| m1.poll_transmit()).next().unwrap().1;
    // The same answer signed by node 2's key but claiming node 1.
    let mut forged = answer.clone();
    let body = forged.len() - 64;
    let mut signed = b"meridian/votes/v1".to_vec();
    signed.extend_from_slice(&forged[1..body]);
    use ed25519_dalek::Signer;
    forged[body..].copy_from_slice(&key(2).sign(&signed).to_bytes());
    let m0 = net.nodes[0].as_mut().unwrap();
    let before = m0.counters();
    m0.handle_datagram(now, addr(1), &forged);
    assert_eq!(m0.counters().bad_signature - before.bad_signature, 1);
    assert_eq!(decided(m0), None, "a forged yes counts for nothing");
    m0.handle_datagram(now, addr(1), &answer);
    assert_eq!(decided(m0), Some((first, true)), "the genuine one decides");
    // A later ballot of the same ask: the old answer is not an answer to it.
    let second = m0.ask(now, current);
    while m0.poll_transmit().is_some() {}
    let before = m0.counters();
    m0.handle_datagram(now, addr(1), &answer);
    assert_eq!(m0.counters().votes_dropped - before.votes_dropped, 1);
    assert_eq!(decided(m0), None, "replayed");
    assert_ne!(first, second);
}

/// The ballot node `m` decided, once its ledger is saved.
fn decided(m: &mut meridian_core::mesh::Mesh) -> Option<(u64, bool)> {
    m.save_ledger(|_| Ok(())).unwrap();
    std::iter::from_fn(|| m.poll_event()).find_map(|e| match e {
        MeshEvent::Decided {
            ballot, granted, ..
        } => Some((ballot, granted)),
        _ => None,
    })
}

impl Net {
    /// Every node keeps a ledger and votes.
    fn voting(mut self) -> Net {
        for m in &mut self.nodes {
            *m = m.take().map(|m| m.with_ledger(Ledger::new()));
        }
        self
    }

    /// Steps until node `k`'s `ballot` is decided: the outcome and when.
    fn decision(&mut self, k: usize, ballot: u64, within: Duration) -> (bool, Instant) {
        let until = self.now + within;
        while self.now < until {
            self.step();
            let m = self.nodes[k].as_mut().unwrap();
            while let Some(e) = m.poll_event() {
                if let MeshEvent::Decided {
                    ballot: b, granted, ..
                } = e
                    && b == ballot
                {
                    return (granted, self.now);
                }
            }
        }
        panic!("ballot {ballot} of node {k} not decided within {within:?}");
    }
}

/// Zone 7's primary on node 0, alive, stops its run 1 to move the zone to its standby on
/// node 2 and announces the end (`Ask::Ended`): every node agrees, and node 2's takeover
/// of its copy of run 1 (`PROMOTE`, as run 2) passes with node 0 alive. Before that it
/// times out (nobody sees node 0 down), and an end said by another node for node 0, or
/// the end of another run, changes nothing. Fails if the answers ignore the end, or
/// trust it from any node.
#[test]
fn a_takeover_of_a_run_its_primary_ended_needs_no_death() {
    use meridian_core::mesh::VOTE_TIMEOUT;
    let mut net = Net::new(23, 0.0).voting();
    net.run(Duration::from_secs(1));
    let within = VOTE_TIMEOUT + Duration::from_secs(1);
    let promote = |net: &mut Net| {
        let ballot = net.nodes[2].as_mut().unwrap().ask(net.now, PROMOTE);
        net.decision(2, ballot, within).0
    };
    assert!(!promote(&mut net), "node 0 is alive and said nothing");
    let ended = |run: u32| Ask::Ended {
        zone: 7,
        incarnation: run,
        primary: 0,
    };
    // Node 1 says it for node 0; node 0 ends another run.
    for (k, ask) in [(1, ended(1)), (0, ended(3))] {
        let ballot = net.nodes[k].as_mut().unwrap().ask(net.now, ask);
        assert!(net.decision(k, ballot, within).0, "an end is agreed to");
        assert!(!promote(&mut net), "{ask:?} from node {k}");
    }
    let ballot = net.nodes[0].as_mut().unwrap().ask(net.now, ended(1));
    assert!(net.decision(0, ballot, within).0);
    let heard = net.nodes[2].as_ref().unwrap().ended().to_vec();
    assert!(heard.contains(&(7, 1, 0)), "{heard:?}");
    assert!(promote(&mut net), "the copy's run ended");
}

/// A primary that restarted from its files after its standby was promised the next run
/// (zone 7's run 1 stopped to move, node 2 promised run 2, then dead before acting; node
/// 0 runs the zone again as run 2) has that promise released by its own run's number, and
/// then drops the dead standby. Had node 2 said it acts on it, neither passes. With a
/// release only past the asker's run, the restarted run could never drop node 2.
#[test]
fn a_primary_restarted_as_the_run_promised_to_its_dead_standby_releases_it() {
    let (drop_2, release_2) = (
        Ask::Drop {
            zone: 7,
            incarnation: 2,
            seq: 1,
            standby: 2,
        },
        Ask::Release {
            zone: 7,
            incarnation: 2,
            standby: 2,
        },
    );
    for acted in [false, true] {
        let mut l = Ledger::new();
        assert_eq!(l.answer(2, 10, PROMOTE, true), Answer::Yes);
        if acted {
            assert_eq!(l.answer(2, 11, ACTED, false), Answer::Yes);
        }
        assert_eq!(l.answer(0, 1, drop_2, true), Answer::No, "promised run 2");
        let released = l.answer(0, 2, release_2, true);
        assert_eq!(released == Answer::Yes, !acted, "acted: {acted}");
        let dropped = l.answer(0, 3, drop_2, true);
        assert_eq!(dropped == Answer::Yes, !acted, "acted: {acted}");
    }
}

/// An answer leaves only once the ledger it rests on is reported on disk — saved by the
/// node on a thread of its own (`Mesh::ledger_to_save`), so the mesh goes on meanwhile.
/// Two asks answered before either save is reported: each answer leaves with its own
/// save (a later save's report lets out what waits on earlier ones too). A failed save
/// holds its answer until the ledger, handed out again, is saved. An answer that changes
/// nothing while a save is under way waits for that save.
#[test]
fn an_answer_leaves_only_once_the_ledger_it_rests_on_is_saved() {
    let mut net = Net::new(29, 0.0).voting();
    net.run(Duration::from_secs(1));
    let now = net.now;
    let asks: Vec<Vec<u8>> = (1..=3)
        .map(|zone| {
            let m0 = net.nodes[0].as_mut().unwrap();
            let current = Ask::Current {
                zone,
                incarnation: 1,
                seq: 1,
                standby: 1,
            };
            m0.ask(now, current);
            let to_1 = std::iter::from_fn(|| m0.poll_transmit()).find(|(to, _)| *to == addr(1));
            to_1.unwrap().1
        })
        .collect();
    let m1 = net.nodes[1].as_mut().unwrap();
    let answers = |m: &mut meridian_core::mesh::Mesh| {
        std::iter::from_fn(|| m.poll_transmit())
            .filter(|(to, _)| *to == addr(0))
            .count()
    };
    m1.handle_datagram(now, addr(0), &asks[0]);
    let first = m1
        .ledger_to_save()
        .expect("zone 1's answer changed the ledger");
    m1.handle_datagram(now, addr(0), &asks[1]);
    let second = m1.ledger_to_save().expect("zone 2's too");
    assert_eq!(m1.ledger_to_save(), None, "nothing new");
    assert_eq!(answers(m1), 0, "neither save reported");
    m1.ledger_saved(first.version);
    assert_eq!(answers(m1), 1, "zone 1's answer");
    m1.ledger_saved(second.version);
    assert_eq!(answers(m1), 1, "zone 2's answer");
    // A failed save: handed out again, and the answer waits for that one.
    m1.handle_datagram(now, addr(0), &asks[2]);
    let failed = m1.ledger_to_save().unwrap();
    m1.ledger_save_failed();
    assert_eq!(answers(m1), 0);
    let again = m1.ledger_to_save().expect("handed out again");
    assert_eq!(again.bytes, failed.bytes);
    assert!(again.version > failed.version);
    assert_eq!(answers(m1), 0);
    // The same ask again changes nothing, but rests on the save under way.
    m1.handle_datagram(now, addr(0), &asks[2]);
    assert_eq!(m1.ledger_to_save(), None);
    assert_eq!(answers(m1), 0);
    m1.ledger_saved(again.version);
    assert_eq!(answers(m1), 2, "zone 3's answer, twice");
    assert_eq!(Ledger::decode(&again.bytes).unwrap(), *m1.ledger().unwrap());
}
