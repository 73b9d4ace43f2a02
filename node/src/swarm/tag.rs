//! The `tag` pattern: bots play the tag game ([`crate::tag`]) against a node that runs it.
//!
//! The bot who is "it" runs at the nearest other player it draws until 6 m from it, then
//! circles it sideways at full speed; the others run from "it" when it comes within 20 m,
//! and wander otherwise (so targets move, which is what lag compensation is for). Every
//! bot fires at the nearest player in range twice a second, aimed at where it draws it
//! plus a random error (up to a metre at the target, most often less). Before each
//! shot it works out what its own view says the shot hits — the first player it draws
//! along the same ray the zone will rewind (players only: shots pass through NPCs) ([`crate::tag::shot_ray`]) — and keeps that by
//! the shot's input sequence until the zone's answer comes. The tally compares the two:
//! the share of shots the shooter's view says hit that the server confirms (same entity)
//! is the measure of lag compensation end to end.

use std::collections::HashMap;
use std::time::{Duration, Instant as WallInstant};

use meridian_client::Client;
use meridian_core::entities::EntityID;
use meridian_core::history::Hit;
use rand::Rng;
use rand::rngs::SmallRng;

use crate::tag::{self, FIRE, HIT, IT, MISS, PLAYER, RANGE_M, TagEvent};

/// Ticks between two shots of one bot.
const FIRE_EVERY: u32 = 15;
/// Closer than this a bot circles its target instead of running at it.
const CLOSE_M: f32 = 6.0;
/// Players closer than this to "it" run from it.
const FLEE_M: f32 = 20.0;
/// The aim's error at the target, metres: the sum of two uniform draws in ± half this.
const AIM_ERROR_M: f32 = 1.0;
/// A shot unanswered for this long at the end of the run counts as unanswered (younger
/// ones may still be on their way).
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// What a bot's shots came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagTally {
    pub shots: u64,
    /// Shots the shooter's own view said would hit an entity…
    pub predicted_hits: u64,
    /// … of which the server hit that same entity;
    pub confirmed: u64,
    /// … hit another one;
    pub hit_other: u64,
    /// … missed;
    pub missed: u64,
    /// … or refused to judge.
    pub refused: u64,
    /// Shots the shooter's view said would miss that the server said hit.
    pub surprise_hits: u64,
    /// Server answers, all shots: hits, misses, refusals.
    pub server_hits: u64,
    pub server_misses: u64,
    pub server_refused: u64,
    /// Shots with no answer a second after they were fired (their input lost on every
    /// copy, the answer lost to a full event backlog, or the avatar handed off as the shot
    /// was made), and answers to no shot the bot remembers.
    pub unanswered: u64,
    pub unknown_answers: u64,
    /// Times a bot heard it is "it" now.
    pub tagged: u64,
}

impl TagTally {
    pub fn add(&mut self, o: &TagTally) {
        self.shots += o.shots;
        self.predicted_hits += o.predicted_hits;
        self.confirmed += o.confirmed;
        self.hit_other += o.hit_other;
        self.missed += o.missed;
        self.refused += o.refused;
        self.surprise_hits += o.surprise_hits;
        self.server_hits += o.server_hits;
        self.server_misses += o.server_misses;
        self.server_refused += o.server_refused;
        self.unanswered += o.unanswered;
        self.unknown_answers += o.unknown_answers;
        self.tagged += o.tagged;
    }

    /// Of the shots the shooter's view said would hit (and answered or overdue), the share
    /// the server confirmed.
    pub fn confirmed_share(&self) -> f64 {
        self.confirmed as f64 / self.predicted_hits.max(1) as f64
    }
}

/// A shot waiting for its answer.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// What the shooter's view said it hits.
    predicted: Option<u64>,
    fired: WallInstant,
}

/// One bot's side of the game.
#[derive(Debug)]
pub(super) struct Shooter {
    ticks: u32,
    /// Circle clockwise or not.
    clockwise: bool,
    pending: HashMap<u32, Pending>,
    pub(super) tally: TagTally,
}

impl Shooter {
    pub(super) fn new(index: usize) -> Shooter {
        Shooter {
            ticks: index as u32,
            clockwise: index.is_multiple_of(2),
            pending: HashMap::new(),
            tally: TagTally::default(),
        }
    }

    /// This tick's intent (`None`: wander, the caller's choice) and buttons, drawing
    /// remote entities at `now`. `judged`: the zone can judge a shot now (the bot has a
    /// snapshot of the zone it is in).
    pub(super) fn play(
        &mut self,
        client: &mut Client,
        now: meridian_core::time::Instant,
        judged: bool,
        rng: &mut SmallRng,
        wall: WallInstant,
    ) -> (Option<(i8, i8)>, u16) {
        self.ticks = self.ticks.wrapping_add(1);
        let me = client.predicted();
        let it = client.authoritative().game[0] as u8 & IT != 0;
        // Every entity drawn, with its tag flags (game field 0).
        let mut drawn = Vec::new();
        client.render_remote(now, |id, p| drawn.push((id, p, 0u8)));
        let records = client.entities().1;
        for (id, _, flags) in &mut drawn {
            let k = records.binary_search_by_key(id, |r| r.id);
            *flags = k.map_or(0, |k| records[k].game[0] as u8);
        }
        let distance = |p: [f32; 2]| (p[0] - me[0]).hypot(p[1] - me[1]);
        let nearest = |mask: u8| {
            drawn
                .iter()
                .filter(|(_, _, flags)| flags & mask == mask)
                .map(|&(id, p, _)| (distance(p), (id, p)))
                .min_by(|a, b| a.0.total_cmp(&b.0))
        };
        let Some((d, target)) = nearest(PLAYER) else {
            return (None, 0);
        };
        let toward = |p: [f32; 2]| {
            let (dx, dy) = (p[0] - me[0], p[1] - me[1]);
            let d = dx.hypot(dy).max(1e-3);
            (dx / d, dy / d)
        };
        let intent = if it {
            let (ux, uy) = toward(target.1);
            Some(if d > CLOSE_M {
                (ux, uy)
            } else if self.clockwise {
                (uy, -ux)
            } else {
                (-uy, ux)
            })
        } else {
            nearest(PLAYER | IT)
                .filter(|(d, _)| *d < FLEE_M)
                .map(|(_, (_, p))| {
                    let (ux, uy) = toward(p);
                    (-ux, -uy)
                })
        };
        let intent = intent.map(|(x, y)| ((x * 127.0) as i8, (y * 127.0) as i8));
        let fire = judged && d <= RANGE_M && self.ticks.is_multiple_of(FIRE_EVERY);
        if !fire {
            return (intent, 0);
        }
        let (dx, dy) = (target.1[0] - me[0], target.1[1] - me[1]);
        let error = (rng.random::<f32>() + rng.random::<f32>() - 1.0) * AIM_ERROR_M;
        let aim = tag::quantised_aim(dy.atan2(dx) + (error / d).atan());
        client.set_aim(aim);
        let ray = tag::shot_ray(me, aim);
        // Shots hit players only (see the `tag` module).
        let mut first: Option<Hit> = None;
        for &(id, p, _) in drawn.iter().filter(|(_, _, flags)| flags & PLAYER != 0) {
            ray.keep_first(&mut first, EntityID(id), p);
        }
        let predicted = first.map(|h| h.id.0);
        // The input the next pump sends.
        let sequence = client.input_sequence().wrapping_add(1);
        self.pending.insert(
            sequence,
            Pending {
                predicted,
                fired: wall,
            },
        );
        self.tally.shots += 1;
        (intent, FIRE)
    }

    /// An event from the zone.
    pub(super) fn answer(&mut self, bytes: &[u8]) {
        let t = &mut self.tally;
        match tag::parse_event(bytes) {
            Some(TagEvent::Tagged) => t.tagged += 1,
            Some(TagEvent::Shot {
                kind,
                sequence,
                hit,
            }) => {
                match kind {
                    HIT => t.server_hits += 1,
                    MISS => t.server_misses += 1,
                    _ => t.server_refused += 1,
                }
                let Some(shot) = self.pending.remove(&sequence) else {
                    t.unknown_answers += 1;
                    return;
                };
                match (shot.predicted, hit) {
                    (Some(p), Some(h)) if p == h => {
                        t.predicted_hits += 1;
                        t.confirmed += 1;
                    }
                    (Some(_), Some(_)) => {
                        t.predicted_hits += 1;
                        t.hit_other += 1;
                    }
                    (Some(_), None) if kind == MISS => {
                        t.predicted_hits += 1;
                        t.missed += 1;
                    }
                    (Some(_), None) => {
                        t.predicted_hits += 1;
                        t.refused += 1;
                    }
                    (None, Some(_)) => t.surprise_hits += 1,
                    (None, None) => {}
                }
            }
            None => t.unknown_answers += 1,
        }
    }

    /// Closes the tally at the end of the run: shots unanswered for [`ANSWER_WAIT`] count
    /// (and, if the view said they hit, against the confirmed share); younger ones are
    /// dropped from it.
    pub(super) fn finish(&mut self, wall: WallInstant) -> TagTally {
        for shot in self.pending.values() {
            if wall.duration_since(shot.fired) >= ANSWER_WAIT {
                self.tally.unanswered += 1;
                self.tally.predicted_hits += u64::from(shot.predicted.is_some());
            } else {
                self.tally.shots -= 1;
            }
        }
        self.pending.clear();
        self.tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shooter_with(sequence: u32, predicted: Option<u64>, fired: WallInstant) -> Shooter {
        let mut s = Shooter::new(0);
        s.pending.insert(sequence, Pending { predicted, fired });
        s.tally.shots = 1;
        s
    }

    #[test]
    fn answers_are_matched_to_shots_by_sequence() {
        let at = WallInstant::now();
        let mut s = shooter_with(5, Some(9), at);
        s.answer(&tag::shot_event(HIT, 5, 9));
        assert_eq!((s.tally.predicted_hits, s.tally.confirmed), (1, 1));
        // Answered twice, or never fired: not a shot of ours.
        s.answer(&tag::shot_event(HIT, 5, 9));
        assert_eq!(s.tally.unknown_answers, 1);

        let mut s = shooter_with(6, Some(9), at);
        s.answer(&tag::shot_event(HIT, 6, 10));
        assert_eq!((s.tally.predicted_hits, s.tally.hit_other), (1, 1));
        let mut s = shooter_with(7, Some(9), at);
        s.answer(&tag::shot_event(MISS, 7, 0));
        assert_eq!((s.tally.missed, s.tally.confirmed), (1, 0));
        let mut s = shooter_with(8, None, at);
        s.answer(&tag::shot_event(HIT, 8, 3));
        assert_eq!((s.tally.predicted_hits, s.tally.surprise_hits), (0, 1));
    }

    #[test]
    fn an_overdue_shot_counts_against_the_share_and_a_young_one_not_at_all() {
        let at = WallInstant::now();
        let later = at + ANSWER_WAIT;
        let t = shooter_with(5, Some(9), at).finish(later);
        assert_eq!((t.shots, t.predicted_hits, t.unanswered), (1, 1, 1));
        assert_eq!(t.confirmed_share(), 0.0);
        let t = shooter_with(5, Some(9), later).finish(later);
        assert_eq!((t.shots, t.predicted_hits, t.unanswered), (0, 0, 0));
    }
}
