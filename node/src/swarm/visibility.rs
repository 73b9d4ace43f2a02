//! The *visibility* check: what a bot is shown, against a brute-force search over every
//! zone's owned entities.
//!
//! About once a second one bot (in turn) hands over what it holds — its zone and the tick
//! of its newest snapshot, its avatar's position, the ids of the entities in that snapshot
//! — and the swarm asks every node's admin `/positions` for the owned entities around it
//! (a consistent cut of each node, taken a few ticks later). The interest rules (docs:
//! protocol.md, "Delta snapshots") allow a little either way, so the check is two-sided
//! with slack:
//! - *missing*: an entity nearer than `min(0.85 × d₁₂₈, far)` that the bot does not hold,
//!   where d₁₂₈ is the brute force's 128th-nearest distance (hysteresis lets a member stay
//!   until it is 1/0.85 as far as the one that would replace it, so only what lies well
//!   inside the cap must be there);
//! - *too far*: an entity the bot holds farther than `min(d₁₂₈, far) / 0.85`.
//!
//! Both bounds are widened by what the entities and the avatar can have moved since the
//! interest set was last searched — up to `search_every_ticks − 1` ticks before the
//! snapshot (in between, members are followed, not re-ranked) — until the cut's tick,
//! plus 2 m for ghosts a few ticks old. Entities the cut does not list (in flight between
//! zones at that instant) are not judged.

use meridian_core::replicate::{InterestConfig, STAY};

/// What one bot held when it was asked.
#[derive(Clone, Debug)]
pub(super) struct Held {
    pub bot: usize,
    pub zone: u32,
    pub tick: u32,
    pub at: [f32; 2],
    pub avatar: u64,
    /// Ids in its newest snapshot, sorted.
    pub shown: Vec<u64>,
}

/// What the nodes' cut says around a bot: each zone's tick, and every owned entity found.
#[derive(Clone, Debug, Default)]
pub(super) struct Cut {
    pub ticks: Vec<(u32, u64)>,
    pub entities: Vec<(u64, [f32; 2])>,
}

/// A judged sample: the entities missing and shown too far (ids, at most a few each).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Verdict {
    pub missing: Vec<(u64, f32)>,
    pub too_far: Vec<(u64, f32)>,
    /// The brute force's cut-off distances, for the log: inside, outside.
    pub bounds: (f32, f32),
    /// Ticks from the snapshot to the cut, for the log.
    pub cut_after: u64,
}

impl Verdict {
    pub(super) fn is_violation(&self) -> bool {
        !self.missing.is_empty() || !self.too_far.is_empty()
    }
}

/// Ghosts lag their owners by a few ticks; quantisation adds a centimetre.
const GHOST_SLACK_M: f32 = 2.0;

/// Judges `held` against `cut`. `speed_mps`: the most anything moves (avatar and entity
/// together count twice); `tick_hz`: the zones' tick rate. `None` when the cut lacks the
/// bot's zone (another node did not answer).
pub(super) fn judge(
    held: &Held,
    cut: &Cut,
    interest: &InterestConfig,
    speed_mps: f32,
    tick_hz: f32,
) -> Option<Verdict> {
    let (_, cut_tick) = cut.ticks.iter().find(|(z, _)| *z == held.zone)?;
    // The interest set is searched anew every `search_every_ticks` ticks; in between its
    // members are followed, not re-ranked, so it can be that many ticks old, less one.
    let stale = u64::from(interest.search_every_ticks.saturating_sub(1));
    let cut_after = cut_tick.saturating_sub(u64::from(held.tick));
    let ticks = (cut_after + stale) as f32;
    let slack = 2.0 * speed_mps * ticks / tick_hz + GHOST_SLACK_M;
    let mut brute: Vec<(u64, f32)> = cut
        .entities
        .iter()
        .filter(|(id, _)| *id != held.avatar)
        .map(|(id, p)| {
            let (dx, dy) = (p[0] - held.at[0], p[1] - held.at[1]);
            (*id, (dx * dx + dy * dy).sqrt())
        })
        .collect();
    brute.sort_unstable_by(|a, b| a.1.total_cmp(&b.1));
    let cap = interest.entities_max;
    let d_cap = brute.get(cap - 1).map_or(f32::INFINITY, |e| e.1);
    let inside = (STAY * d_cap).min(interest.far_m) - slack;
    let outside = d_cap.min(interest.far_m) / STAY + slack;
    let shown = |id: u64| held.shown.binary_search(&id).is_ok();
    let mut verdict = Verdict {
        bounds: (inside, outside),
        cut_after,
        ..Verdict::default()
    };
    for &(id, d) in &brute {
        if d < inside && !shown(id) {
            verdict.missing.push((id, d));
        }
        if d > outside && shown(id) {
            verdict.too_far.push((id, d));
        }
    }
    Some(verdict)
}

/// Asks every node's admin `/positions` around `held` and judges it: `Some(None)` when
/// it passed, `Some(Some(detail))` when it did not, `None` when the cut lacks its zone.
pub(super) fn check(target: &super::Target, held: &Held) -> anyhow::Result<Option<Option<String>>> {
    let interest = InterestConfig::default();
    let r = interest.far_m / STAY + 40.0;
    let view = format!(
        "/positions?view={},{},{},{}",
        held.at[0] - r,
        held.at[1] - r,
        held.at[0] + r,
        held.at[1] + r
    );
    // A node that does not answer (down) leaves its zones out of the cut: the check then
    // judges less — what the cut lacks is never called missing — but never wrongly.
    let mut cut = Cut::default();
    let mut failed = None;
    for admin in &target.admins {
        match super::http_get_with(*admin, &view, target.admin_token.as_ref()) {
            Ok(body) => parse_positions(&body, &mut cut)?,
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed.filter(|_| cut.ticks.is_empty()) {
        return Err(e);
    }
    let hz = target.world.config().tick_rate_hz as f32;
    let Some(v) = judge(
        held,
        &cut,
        &interest,
        target.speed_mps.max(NPC_SPEED_MPS),
        hz,
    ) else {
        return Ok(None);
    };
    Ok(Some(v.is_violation().then(|| {
        format!(
            "zone {} tick {} (cut {} ticks later): {} entities within {:.1} m not shown (first {:?}), {} shown past {:.1} m (first {:?})",
            held.zone,
            held.tick,
            v.cut_after,
            v.missing.len(),
            v.bounds.0,
            &v.missing[..v.missing.len().min(6)],
            v.too_far.len(),
            v.bounds.1,
            v.too_far.first()
        )
    })))
}

/// The fastest an NPC of the demo worlds moves (the slack assumes the fastest of bots
/// and NPCs for both ends).
pub(super) const NPC_SPEED_MPS: f32 = 7.5;

/// Parses the admin `/positions` body into `cut`.
pub(super) fn parse_positions(body: &str, cut: &mut Cut) -> anyhow::Result<()> {
    for line in body.lines() {
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            // A tentative run (a restart its standby has not answered yet) lists nothing,
            // and its tick says nothing of the zone's.
            ["zone", .., "tentative"] => {}
            ["zone", zone, "tick", tick, ..] => cut.ticks.push((zone.parse()?, tick.parse()?)),
            ["at", id, x, y] => cut.entities.push((id.parse()?, [x.parse()?, y.parse()?])),
            _ => anyhow::bail!("unexpected /positions line {line:?}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 300 entities on a line east of the bot, one a metre; the bot at the origin.
    fn line() -> Cut {
        Cut {
            ticks: vec![(0, 100)],
            entities: (1..=300u64).map(|i| (i, [i as f32, 0.0])).collect(),
        }
    }

    fn held(shown: impl Iterator<Item = u64>) -> Held {
        Held {
            bot: 0,
            zone: 0,
            tick: 100,
            at: [0.0, 0.0],
            avatar: 9_999,
            shown: shown.collect(),
        }
    }

    #[test]
    fn the_nearest_128_pass_and_gaps_or_strays_do_not() {
        let config = InterestConfig::default();
        let judge = |h: &Held| judge(h, &line(), &config, 7.5, 30.0).unwrap();
        assert!(!judge(&held(1..=128)).is_violation());
        // Hysteresis: members kept to 128 / 0.85 ≈ 150 m are fine, and so is a gap past
        // 0.85 × 128 ≈ 109 m (a member there may have been replaced by one farther).
        assert!(!judge(&held((1..=106).chain(140..=150))).is_violation());
        // A gap well inside the cap is missing...
        let v = judge(&held((1..=128).filter(|&i| i != 50)));
        assert_eq!(v.missing, vec![(50, 50.0)]);
        // ...and one far past it is too far.
        let v = judge(&held((1..=127).chain([290])));
        assert_eq!(v.too_far, vec![(290, 290.0)]);
        // The own avatar is never expected.
        let mut cut = line();
        cut.entities.push((9_999, [0.5, 0.0]));
        assert!(
            !super::judge(&held(1..=128), &cut, &config, 7.5, 30.0)
                .unwrap()
                .is_violation()
        );
    }

    #[test]
    fn the_slack_grows_with_the_ticks_between_snapshot_and_cut() {
        let config = InterestConfig::default();
        let mut cut = line();
        // Entity 100 is missing; 30 ticks later (1 s at 30 Hz, 15 m of motion both ways)
        // the bounds no longer catch it, at the same tick they do.
        let h = held((1..=128).filter(|&i| i != 100));
        assert!(judge(&h, &cut, &config, 7.5, 30.0).unwrap().is_violation());
        cut.ticks = vec![(0, 130)];
        assert!(!judge(&h, &cut, &config, 7.5, 30.0).unwrap().is_violation());
        // A cut without the bot's zone judges nothing.
        cut.ticks = vec![(1, 100)];
        assert_eq!(judge(&h, &cut, &config, 7.5, 30.0), None);
    }

    /// Between searches the set is followed, not re-ranked: at 20 m/s, a member 5 ticks
    /// past its last search may be 6.7 m farther than the cap allows, but not more.
    #[test]
    fn a_set_searched_a_few_ticks_ago_is_not_judged_stale() {
        let config = InterestConfig::default();
        assert_eq!(config.search_every_ticks, 6, "the figures below assume it");
        let judge = |h: &Held| judge(h, &line(), &config, 20.0, 30.0).unwrap();
        // Outside is 128 / 0.85 ≈ 150.6 m, plus 2 m, plus 5 ticks of both moving at 20 m/s.
        assert!(!judge(&held((1..=127).chain([158]))).is_violation());
        assert!(judge(&held((1..=127).chain([161]))).is_violation());
        // Inside, the same: 108.8 m less 8.7 m.
        assert!(!judge(&held((1..=128).filter(|&i| i != 101))).is_violation());
        assert!(judge(&held((1..=128).filter(|&i| i != 99))).is_violation());
    }

    #[test]
    fn positions_parse() {
        let mut cut = Cut::default();
        parse_positions("zone 2 tick 77 taken_at_ns 5\nat 12 1.5 -3\n", &mut cut).unwrap();
        assert_eq!(cut.ticks, vec![(2, 77)]);
        assert_eq!(cut.entities, vec![(12, [1.5, -3.0])]);
        assert!(parse_positions("bogus\n", &mut cut).is_err());
    }
}
