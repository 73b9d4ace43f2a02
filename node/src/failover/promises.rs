//! Withdrawals of this node's own promises: a takeover that did not go ahead (withdrawn at
//! once), and the promises a restart finds unacted on (docs/mesh.md, "Votes"): a
//! takeover the others agreed to while this node never heard (its ballot ran out of time
//! with the answers lost) and then died, or whose withdrawal it died before every node
//! held. Left in the ledgers, such a promise keeps the zone's primary from ever dropping
//! this standby once its node dies again — the zone's datagrams would wait for it for
//! good. A restart withdraws each one it never acted on, asking again until every node
//! holds the withdrawal, or until this node asks to take that zone over itself (a later
//! ballot, which the withdrawal cannot touch).
//!
//! "Never acted on" is the durable record of the runs this node took over
//! (`crate::standby::mark_acted`: written before a run starts, never removed), not the
//! runs-here marker, which goes when the run stands down. Promises asked before the node
//! kept records (`crate::standby::acted_records_since`) are left alone: one of them may
//! have been acted on without a trace.

use std::sync::mpsc::{Receiver, TryRecvError};

use meridian_core::mesh::votes::{Ask, Promise};
use meridian_core::world::ZoneID;
use meridian_io::store::DataDir;

use super::Retry;
use crate::mesh::VoteBox;

/// A promise of this node's own to withdraw.
pub(super) struct Unacted {
    pub(super) zone: ZoneID,
    incarnation: u32,
    asked: Option<Receiver<bool>>,
    retry: Retry,
}

impl Unacted {
    /// The promise that this node takes `zone` over as `incarnation`, to withdraw now.
    pub(super) fn new(zone: ZoneID, incarnation: u32) -> Unacted {
        Unacted {
            zone,
            incarnation,
            asked: None,
            retry: Retry::default(),
        }
    }
}

/// Of `promises` — this node's own in its ledger at start, withdrawn or not — those to
/// withdraw: asked (or withdrawn) since the node keeps records (`since`, a generation: a
/// ballot id's high half) and of a run newer than any of the zone it took over. One its
/// ledger holds withdrawn is withdrawn again: the ledger holds a withdrawal from when this
/// node asked it, and it may have died before every node held it.
pub(super) fn unacted(promises: &[Promise], dir: &DataDir, since: u32) -> Vec<Unacted> {
    let mut out = Vec::new();
    for p in promises {
        let (zone, incarnation) = (ZoneID(p.zone), p.run);
        if ((p.ballot >> 32) as u32) < since {
            tracing::info!(%zone, incarnation, "this node's ledger holds the promise that it takes zone {zone} over as incarnation {incarnation}, asked before it recorded the runs it took over: left as it is");
            continue;
        }
        match crate::standby::acted_incarnation(dir, zone) {
            Ok(Some(acted)) if acted >= incarnation => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(%zone, "cannot read the record of the runs of zone {zone} this node took over ({e}): its promise to run {incarnation} is left as it is");
                continue;
            }
        }
        if p.withdrawn {
            tracing::info!(%zone, incarnation, "this node withdrew the promise that it takes zone {zone} over as incarnation {incarnation}, perhaps before every node held the withdrawal: withdrawing it again");
        } else {
            tracing::warn!(%zone, incarnation, "this node's ledger holds the promise that it takes zone {zone} over as incarnation {incarnation}, which it never did: withdrawing it");
        }
        out.push(Unacted::new(zone, incarnation));
    }
    out
}

/// Asks the withdrawals due and collects their outcomes: one every node holds is done;
/// one that did not get there is asked again later.
pub(super) fn withdraw(pending: &mut Vec<Unacted>, votes: &VoteBox, me: usize) {
    pending.retain_mut(|u| {
        if let Some(asked) = &u.asked {
            match asked.try_recv() {
                Err(TryRecvError::Empty) => return true,
                Ok(true) => {
                    tracing::info!(zone = %u.zone, "the promise that this node takes zone {} over as incarnation {} is withdrawn: every node holds it", u.zone, u.incarnation);
                    return false;
                }
                Ok(false) | Err(TryRecvError::Disconnected) => {
                    u.asked = None;
                    let wait = u.retry.failed();
                    tracing::warn!(zone = %u.zone, "not every node answered the withdrawal of this node's promise to take zone {} over as incarnation {} (those that did hold it); asking again in {wait:?}", u.zone, u.incarnation);
                    return true;
                }
            }
        }
        if u.retry.due() {
            u.asked = Some(votes.ask(Ask::Withdraw {
                zone: u.zone.0,
                incarnation: u.incarnation,
                standby: me as u16,
            }));
        }
        true
    });
}

/// This node asks to take `zone` over: its withdrawals of that zone stop (an ask for
/// the zone from now on is a later ballot than any withdrawal sent before it, and must
/// not meet one sent after it).
pub(super) fn forget(pending: &mut Vec<Unacted>, zone: ZoneID) {
    pending.retain(|u| u.zone != zone);
}

#[cfg(test)]
mod tests {
    use super::*;

    const GEN: u64 = 100 << 32;

    /// Withdrawn: promises asked since records are kept, of runs newer than any taken over,
    /// withdrawn before or not. Left: those acted on (recorded), and those asked before
    /// records were kept.
    #[test]
    fn a_restart_withdraws_only_promises_it_never_acted_on() {
        let path = std::env::temp_dir().join(format!("meridian-unacted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let dir = DataDir::open(&path).expect("data dir");
        crate::standby::mark_acted(&dir, ZoneID(1), 5).expect("recorded");
        crate::standby::mark_acted(&dir, ZoneID(4), 5).expect("recorded");
        let promise = |zone, run, ballot, withdrawn| Promise {
            zone,
            run,
            ballot,
            withdrawn,
        };
        let promises = [
            promise(1, 5, GEN + 3, false), // acted on, its run since stood down
            promise(2, 3, GEN + 4, false), // never acted on
            promise(3, 4, (50 << 32) + 9, false), // asked before records were kept
            promise(4, 6, GEN + 5, false), // a newer run than the one taken over
            promise(5, 2, GEN + 6, true),  // withdrawn: perhaps not everywhere
            promise(1, 4, GEN + 7, true),  // withdrawn, an older run than acted on
        ];
        let since = crate::standby::acted_records_since(&dir, 100).expect("since");
        let pending = unacted(&promises, &dir, since);
        let got: Vec<_> = pending.iter().map(|u| (u.zone, u.incarnation)).collect();
        assert_eq!(got, vec![(ZoneID(2), 3), (ZoneID(4), 6), (ZoneID(5), 2)]);
        drop(dir);
        let _ = std::fs::remove_dir_all(&path);
    }

    /// Each withdrawal is asked; one every node holds is done; one that did not get there
    /// is asked again after a back-off, not at once; a zone this node asks to take over
    /// is withdrawn no more.
    #[test]
    fn withdrawals_are_asked_until_every_node_holds_them() {
        let (votes, asks) = VoteBox::for_tests();
        let one = |zone: u32, incarnation: u32| Unacted::new(ZoneID(zone), incarnation);
        let mut pending = vec![one(2, 3), one(4, 6), one(7, 1)];
        withdraw(&mut pending, &votes, 5);
        let mut answers = Vec::new();
        while let Ok((ask, answer)) = asks.try_recv() {
            let Ask::Withdraw {
                zone,
                incarnation,
                standby,
            } = ask
            else {
                panic!("not a withdrawal: {ask:?}");
            };
            assert_eq!(standby, 5);
            answers.push(((zone, incarnation), answer));
        }
        let asked: Vec<_> = answers.iter().map(|(a, _)| *a).collect();
        assert_eq!(asked, vec![(2, 3), (4, 6), (7, 1)]);
        answers[0].1.send(true).expect("answered");
        answers[1].1.send(false).expect("answered");
        withdraw(&mut pending, &votes, 5);
        let left: Vec<_> = pending.iter().map(|u| u.zone.0).collect();
        assert_eq!(
            left,
            vec![4, 7],
            "zone 2's withdrawal is held by every node"
        );
        assert!(asks.try_recv().is_err(), "not asked again at once");
        forget(&mut pending, ZoneID(7));
        std::thread::sleep(super::super::RETRY + std::time::Duration::from_millis(50));
        withdraw(&mut pending, &votes, 5);
        let (again, _) = asks.try_recv().expect("asked again after the back-off");
        assert_eq!(
            again,
            Ask::Withdraw {
                zone: 4,
                incarnation: 6,
                standby: 5
            }
        );
        assert!(asks.try_recv().is_err(), "zone 7 is forgotten");
    }
}
