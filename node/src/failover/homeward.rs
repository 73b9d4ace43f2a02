//! When a zone running away from its home moves home on its own (`[mesh]
//! move_home_after_s`; docs/mesh.md, "Home on their own"). Pure: the failover thread
//! hands it what it sees of each zone and the time, and begins the moves it answers.
//!
//! A zone can move home once its home node came back as a newer generation (it restarted,
//! or rejoined after being declared down: the zone left because that node stopped), is
//! alive, and the zone's standby there is current; it moves once it could for the wait
//! without a break. A zone an operator moved away from a home that runs on (a drain)
//! keeps the generation it left with and stays until that node restarts.
//!
//! A home that is not steady — the zone comes back here within [`STEADY`] of going home,
//! because that node stopped or died again — doubles the wait, up to [`MOST_DOUBLINGS`]
//! times (and never past a day); a zone that stayed home that long starts from the set
//! wait again. Each round trip costs the zone's players a takeover, so a node that keeps
//! failing gets its zones back ever more slowly instead of once a wait.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use meridian_core::world::ZoneID;

/// A zone that stayed home this long went home to a steady node: its next wait is the
/// set one again.
pub(super) const STEADY: Duration = Duration::from_secs(3600);
/// A home that is not steady doubles the wait at most this many times in a row.
pub(super) const MOST_DOUBLINGS: u32 = 6;
/// No wait is longer than this (nor than the set wait, if that is longer).
const LONGEST: Duration = Duration::from_secs(86_400);

/// What the failover thread sees, at one look, of a zone whose home is another node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Look {
    pub zone: ZoneID,
    /// The home node's membership generation (0 while membership has not heard of it).
    pub generation: u32,
    /// The home node is seen alive.
    pub alive: bool,
    /// The zone runs here.
    pub runs_here: bool,
    /// It runs here and its standby there (on the home node) holds everything.
    pub current: bool,
}

/// A zone that came back from home sooner than [`STEADY`]: what the node logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Unsteady {
    pub zone: ZoneID,
    /// How long it was home.
    pub home_for: Duration,
    /// What it waits now before it goes home again.
    pub wait: Duration,
}

/// Where a zone running here away from its home stands (a `/status` line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Homing {
    /// Its clock runs: it moves home in this long.
    In(Duration),
    /// Its home node has not come back since the zone left (a drain, or a home still
    /// down).
    NotBack,
    /// Its home node is back, but the zone's standby there does not hold everything.
    NotCurrent,
}

/// What one look found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Looked {
    /// The zones that have been able to move home for their wait by now.
    pub due: Vec<ZoneID>,
    /// The zones that came back from an unsteady home since the last look.
    pub unsteady: Vec<Unsteady>,
    /// Every zone running here away from its home, and where it stands.
    pub away: Vec<(ZoneID, Homing)>,
}

/// The zones' clocks, kept by the failover thread between looks.
#[derive(Debug, Default)]
pub(super) struct Homeward {
    /// The home's generation when the zone was first seen running here.
    left: HashMap<ZoneID, u32>,
    /// The home's generation at the last look, for every zone whose home is another node.
    homes: HashMap<ZoneID, u32>,
    /// Since when it could move home without a break.
    since: HashMap<ZoneID, Instant>,
    /// When it last went home from here.
    went: HashMap<ZoneID, Instant>,
    /// How many times in a row it came back from an unsteady home.
    doublings: HashMap<ZoneID, u32>,
}

impl Homeward {
    /// The wait of `zone`: `after` doubled once for each time in a row its home was not
    /// steady.
    pub(super) fn wait(&self, zone: ZoneID, after: Duration) -> Duration {
        let doublings = self.doublings.get(&zone).copied().unwrap_or(0);
        after.saturating_mul(1 << doublings).min(LONGEST.max(after))
    }

    /// `zone` went home from here at `now` (a move to its home node is done).
    pub(super) fn went_home(&mut self, zone: ZoneID, now: Instant) {
        self.went.insert(zone, now);
    }

    /// One look at `now`: `looks` holds every zone whose home is another node (any other
    /// zone forgets its clocks). The zones due have their clocks started over: a move
    /// that does not happen is tried again after the same wait.
    pub(super) fn due(&mut self, now: Instant, after: Duration, looks: &[Look]) -> Looked {
        // Each look's zones once (a world may have hundreds, looked at every 20 ms).
        let looked_at: HashMap<ZoneID, bool> =
            looks.iter().map(|a| (a.zone, a.runs_here)).collect();
        self.left.retain(|z, _| looked_at.get(z) == Some(&true));
        self.since.retain(|z, _| looked_at.get(z) == Some(&true));
        self.homes.retain(|z, _| looked_at.contains_key(z));
        let mut looked = Looked::default();
        for a in looks {
            let before = self.homes.insert(a.zone, a.generation);
            if !a.runs_here {
                continue;
            }
            let mut arrived = false;
            let left = *self.left.entry(a.zone).or_insert_with(|| {
                arrived = true;
                // The home's generation at the look before: a home that stopped and came
                // back between two looks (the zone taken over, the node restarted at once)
                // is back, not a drain.
                match before {
                    Some(b) if b != 0 => b.min(a.generation),
                    _ => a.generation,
                }
            });
            if arrived && let Some(u) = self.came_back(a.zone, now, after) {
                looked.unsteady.push(u);
            }
            let back = a.alive && a.generation > left;
            if !(back && a.current) {
                self.since.remove(&a.zone);
                let homing = if back {
                    Homing::NotCurrent
                } else {
                    Homing::NotBack
                };
                looked.away.push((a.zone, homing));
                continue;
            }
            let wait = self.wait(a.zone, after);
            let since = self.since.entry(a.zone).or_insert(now);
            let waited = now.duration_since(*since);
            if waited >= wait {
                *since = now;
                looked.due.push(a.zone);
            }
            looked
                .away
                .push((a.zone, Homing::In(wait.saturating_sub(waited))));
        }
        looked
    }

    /// `zone` runs here again: one that went home from here less than [`STEADY`] ago
    /// doubles its wait; one that stayed home longer starts from `after` again.
    fn came_back(&mut self, zone: ZoneID, now: Instant, after: Duration) -> Option<Unsteady> {
        let home_for = now.duration_since(self.went.remove(&zone)?);
        if home_for >= STEADY {
            self.doublings.remove(&zone);
            return None;
        }
        let doublings = self.doublings.entry(zone).or_insert(0);
        *doublings = (*doublings + 1).min(MOST_DOUBLINGS);
        Some(Unsteady {
            zone,
            home_for,
            wait: self.wait(zone, after),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(30);
    const Z: ZoneID = ZoneID(0);

    fn away(generation: u32, alive: bool, current: bool) -> Look {
        Look {
            zone: Z,
            generation,
            alive,
            runs_here: true,
            current,
        }
    }

    fn home(generation: u32, alive: bool) -> Look {
        Look {
            zone: Z,
            generation,
            alive,
            runs_here: false,
            current: false,
        }
    }

    /// Looks every second from `from` for `secs` seconds: the second (from `from`) of the
    /// first look that answers the zone due.
    fn first_due(h: &mut Homeward, from: Instant, secs: u64, seen: Look) -> Option<u64> {
        (0..=secs).find(|&s| {
            let looked = h.due(from + Duration::from_secs(s), AFTER, &[seen]);
            looked.due.contains(&Z)
        })
    }

    /// The zone arrives here (its home died: generation 1 at the time), the home comes
    /// back as generation 2 with the standby current: the zone is due after `wait`.
    fn arrives_and_waits(h: &mut Homeward, at: Instant) -> Option<u64> {
        let looked = h.due(at, AFTER, &[away(1, false, false)]);
        assert_eq!(looked.away, [(Z, Homing::NotBack)]);
        first_due(h, at + Duration::from_secs(1), 20_000, away(2, true, true)).map(|s| s + 1)
    }

    #[test]
    fn a_zone_moves_home_after_the_wait_once_its_node_is_back() {
        let mut h = Homeward::default();
        let t0 = Instant::now();
        assert_eq!(arrives_and_waits(&mut h, t0), Some(31));
        // A drain: the home runs on as the generation the zone left with.
        let mut h = Homeward::default();
        let looked = h.due(t0, AFTER, &[away(2, true, true)]);
        assert_eq!(looked.away, [(Z, Homing::NotBack)]);
        assert_eq!(first_due(&mut h, t0, 600, away(2, true, true)), None);
        // A standby that falls behind restarts the clock.
        let mut h = Homeward::default();
        h.due(t0, AFTER, &[away(1, true, true)]);
        h.due(t0 + Duration::from_secs(1), AFTER, &[away(2, true, true)]);
        let looked = h.due(t0 + Duration::from_secs(20), AFTER, &[away(2, true, false)]);
        assert_eq!(looked.away, [(Z, Homing::NotCurrent)]);
        let looked = h.due(t0 + Duration::from_secs(21), AFTER, &[away(2, true, true)]);
        assert_eq!(looked.away, [(Z, Homing::In(AFTER))]);
        let looked = h.due(t0 + Duration::from_secs(41), AFTER, &[away(2, true, true)]);
        assert_eq!(looked.away, [(Z, Homing::In(Duration::from_secs(10)))]);
        // Due 30 s after the clock started again at 21 s: at 51 s.
        let later = first_due(
            &mut h,
            t0 + Duration::from_secs(42),
            100,
            away(2, true, true),
        );
        assert_eq!(later, Some(9));
        let looked = h.due(t0 + Duration::from_secs(51), AFTER, &[away(2, true, true)]);
        assert_eq!(
            looked.away,
            [(Z, Homing::In(AFTER))],
            "the clock starts over"
        );
    }

    #[test]
    fn a_home_that_fails_again_soon_doubles_the_wait_and_a_steady_one_resets_it() {
        let mut h = Homeward::default();
        let mut t = Instant::now();
        let mut waits = Vec::new();
        // Home for 2 minutes each time, then back here: 30, 60, 120, ... up to 64 x 30 s.
        for _ in 0..9 {
            let due = arrives_and_waits(&mut h, t).expect("due");
            waits.push(due - 1);
            t += Duration::from_secs(due);
            h.went_home(Z, t);
            h.due(t, AFTER, &[home(2, true)]);
            t += Duration::from_secs(120);
        }
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 1920, 1920]);
        // Coming back is reported with the wait it now has.
        let looked = h.due(t, AFTER, &[away(1, false, false)]);
        assert_eq!(
            looked.unsteady,
            [Unsteady {
                zone: Z,
                home_for: Duration::from_secs(120),
                wait: Duration::from_secs(1920),
            }]
        );
        // Home for an hour: the next wait is the set one again.
        let mut h2 = Homeward::default();
        h2.doublings.insert(Z, 3);
        let t = Instant::now();
        h2.went_home(Z, t);
        let back = t + STEADY;
        let looked = h2.due(back, AFTER, &[away(1, false, false)]);
        assert!(looked.unsteady.is_empty());
        assert_eq!(h2.wait(Z, AFTER), AFTER);
    }

    /// A move home that did not happen (given up: the zone runs here again) is no coming
    /// back, and the zone goes home after the same wait — as long as the zone counted as
    /// running here while it was stopped for the move, as the failover thread counts it.
    #[test]
    fn a_move_home_given_up_is_tried_again_after_the_same_wait() {
        let mut h = Homeward::default();
        let t = Instant::now();
        assert_eq!(arrives_and_waits(&mut h, t), Some(31));
        // Stopped for the move: here, its standby not current.
        let stopped = h.due(t + Duration::from_secs(32), AFTER, &[away(2, true, false)]);
        assert_eq!(stopped.away, [(Z, Homing::NotCurrent)]);
        let again = first_due(
            &mut h,
            t + Duration::from_secs(33),
            100,
            away(2, true, true),
        );
        assert_eq!(again, Some(30));
        // Had the stopped zone counted as gone, it would come back as after a drain.
        let mut h = Homeward::default();
        assert_eq!(arrives_and_waits(&mut h, t), Some(31));
        h.due(t + Duration::from_secs(32), AFTER, &[home(2, true)]);
        let never = first_due(
            &mut h,
            t + Duration::from_secs(33),
            600,
            away(2, true, true),
        );
        assert_eq!(never, None);
    }

    /// Seen at the failover thread's pace: the zone runs at home (generation 1); between
    /// two looks its home stops, the zone is taken over here and the home starts again
    /// (generation 2). The first look that sees the zone here already sees the new
    /// generation; it is still a home that came back, not a drain.
    #[test]
    fn a_home_back_before_the_zone_is_first_seen_here_is_back() {
        let mut h = Homeward::default();
        let t0 = Instant::now();
        h.due(t0, AFTER, &[home(1, true)]);
        let t1 = t0 + Duration::from_millis(20);
        assert_eq!(first_due(&mut h, t1, 100, away(2, true, true)), Some(30));
        // Its home seen down in between: the same.
        let mut h = Homeward::default();
        h.due(t0, AFTER, &[home(1, true)]);
        h.due(t0, AFTER, &[home(1, false)]);
        assert_eq!(first_due(&mut h, t1, 100, away(2, true, true)), Some(30));
        // A drain seen at that pace stays: the home's generation did not change.
        let mut h = Homeward::default();
        h.due(t0, AFTER, &[home(2, true)]);
        assert_eq!(first_due(&mut h, t1, 600, away(2, true, true)), None);
    }

    #[test]
    fn no_wait_is_longer_than_a_day_unless_set_so() {
        let mut h = Homeward::default();
        h.doublings.insert(Z, MOST_DOUBLINGS);
        assert_eq!(h.wait(Z, Duration::from_secs(3600)), LONGEST);
        assert_eq!(h.wait(Z, LONGEST), LONGEST);
        assert_eq!(h.wait(Z, Duration::from_secs(1)), Duration::from_secs(64));
    }
}
