//! The membership simulator's properties (see the module docs).

use core::time::Duration;

use super::{CALM_BEFORE, Run, Start, TOLD_WITHIN, Watch, detect_within};
use crate::mesh::{Liveness, MeshEvent};
use crate::time::Instant;

/// How long a node must have run before its death, or an observer before it, for the
/// detection to be checked: every node has met it.
const UP_BEFORE: Duration = Duration::from_secs(3);

impl Run {
    /// What node `k` sees of node `of` now (`None`: `k` is dead).
    fn view(&self, k: usize, of: usize) -> Option<(Liveness, u32)> {
        let mesh = self.nodes[k].mesh.as_ref()?;
        let peer = mesh.peers().iter().find(|p| usize::from(p.node) == of)?;
        Some((peer.liveness, peer.generation))
    }

    /// Node `k`'s current generation, if it runs.
    fn generation(&self, k: usize) -> Option<u32> {
        self.nodes[k].mesh.as_ref().map(|m| m.me().generation)
    }

    /// Node `k`'s membership events: false deaths are violations; views never go back.
    pub(super) fn read_events(&mut self, k: usize) {
        let mut events = Vec::new();
        if let Some(mesh) = self.nodes[k].mesh.as_mut() {
            events.extend(std::iter::from_fn(|| mesh.poll_event()));
        }
        for event in events {
            self.trace(("node", k, format!("{event:?}")));
            match event {
                MeshEvent::Down { node, generation } => {
                    self.report.downs += 1;
                    self.false_death(k, usize::from(node), generation);
                }
                MeshEvent::Told { .. } => self.report.told += 1,
                MeshEvent::Rejoined { .. } => self.report.rejoins += 1,
                _ => {}
            }
        }
        for j in (0..self.schedule.nodes).filter(|&j| j != k) {
            let Some((_, generation)) = self.view(k, j) else {
                return;
            };
            let before = self.nodes[k].seen[j];
            if generation < before {
                self.violation(format!(
                    "node {k}'s view of node {j} went back from generation {before} to {generation}"
                ));
            }
            self.nodes[k].seen[j] = generation;
        }
    }

    /// Node `k` declared node `j`'s life `generation` down: a violation if `j` runs in
    /// that life and nothing disturbed the network or the two nodes for [`CALM_BEFORE`].
    fn false_death(&mut self, k: usize, j: usize, generation: u32) {
        let since = self.now.saturating_sub(CALM_BEFORE);
        let settled = |run: &Run, n: usize| run.schedule.life_start(n, run.now) <= since;
        if self.generation(j) == Some(generation)
            && self.schedule.calm_between(since, self.now)
            && settled(self, k)
            && settled(self, j)
        {
            self.violation(format!(
                "node {k} declared node {j} (generation {generation}) down, though it runs and \
                 nothing disturbed the network or either node for {CALM_BEFORE:?} (loss {})",
                self.schedule.loss
            ));
        }
    }

    /// Node `k` just died (or left): every node up for [`UP_BEFORE`] must see it down
    /// within [`detect_within`], if the window is calm (checked then).
    pub(super) fn watch_death(&mut self, k: usize, leave: bool) {
        let since = self.now.saturating_sub(UP_BEFORE);
        if self.schedule.life_start(k, self.now) > since {
            return;
        }
        let observers: Vec<(usize, Instant)> = (0..self.schedule.nodes)
            .filter(|&j| j != k && self.nodes[j].mesh.is_some())
            .map(|j| (j, self.schedule.life_start(j, self.now)))
            .filter(|&(_, start)| start <= since)
            .collect();
        let seen = vec![None; observers.len()];
        self.watches.push(Watch {
            node: k,
            at: self.now,
            leave,
            observers,
            seen,
        });
    }

    /// Records who sees each watched death by now; at each watch's deadline, checks it.
    pub(super) fn check_watches(&mut self) {
        let (now, within) = (self.now, detect_within(self.schedule.nodes));
        let mut watches = std::mem::take(&mut self.watches);
        for w in &mut watches {
            for (i, &(j, _)) in w.observers.iter().enumerate() {
                let down = self.view(j, w.node).is_some_and(|v| v.0 == Liveness::Down);
                if down && w.seen[i].is_none() {
                    w.seen[i] = Some(now);
                }
            }
        }
        let (due, waiting): (Vec<Watch>, Vec<Watch>) =
            watches.into_iter().partition(|w| now >= w.at + within);
        self.watches = waiting;
        for w in due {
            self.judge_watch(&w);
        }
    }

    fn judge_watch(&mut self, w: &Watch) {
        let within = detect_within(self.schedule.nodes);
        let deadline = w.at + within;
        let back = self.schedule.life_start(w.node, deadline) > w.at;
        let calm = self
            .schedule
            .calm_between(w.at.saturating_sub(UP_BEFORE), deadline);
        if back || !calm {
            return;
        }
        let mut last = w.at;
        for (i, &(j, start)) in w.observers.iter().enumerate() {
            let ran_throughout =
                self.nodes[j].mesh.is_some() && self.schedule.life_start(j, deadline) == start;
            match w.seen[i] {
                Some(at) => last = last.max(at),
                None if ran_throughout => {
                    let view = self.view(j, w.node);
                    self.violation(format!(
                        "node {} {} at {} ms in a calm window; node {j} still sees it {view:?} \
                         after {within:?}",
                        w.node,
                        if w.leave { "left" } else { "was killed" },
                        w.at.as_nanos() / 1_000_000
                    ));
                }
                None => {}
            }
        }
        if w.seen.iter().all(Option::is_none) {
            return;
        }
        let took = last.saturating_duration_since(w.at).as_millis() as u64;
        if w.leave {
            self.report.leave_detections_ms.push(took);
        } else {
            self.report.detections_ms.push(took);
        }
    }

    /// Node `k` just (re)started: the nodes dead now that a live node sees down, it must
    /// see down within [`TOLD_WITHIN`] (checked then, if the window allows it).
    pub(super) fn watch_start(&mut self, k: usize) {
        let now = self.now;
        let dead: Vec<usize> = (0..self.schedule.nodes)
            .filter(|&d| d != k && self.nodes[d].mesh.is_none())
            .filter(|&d| {
                (0..self.schedule.nodes).any(|i| {
                    i != k && i != d && self.view(i, d).is_some_and(|v| v.0 == Liveness::Down)
                })
            })
            .collect();
        if !dead.is_empty() {
            self.starts.push(Start {
                node: k,
                at: now,
                dead,
                told: None,
            });
        }
    }

    /// At each watched start's deadline: the dead nodes must be down at the new node —
    /// if the window was calm and lossless (the deaths datagram goes once), nobody died
    /// or came back in it, and the node ran throughout.
    pub(super) fn check_starts(&mut self) {
        let now = self.now;
        let mut starts = std::mem::take(&mut self.starts);
        for s in starts.iter_mut().filter(|s| s.told.is_none()) {
            let all = s
                .dead
                .iter()
                .all(|&d| self.view(s.node, d).is_some_and(|v| v.0 == Liveness::Down));
            if all {
                s.told = Some(now);
            }
        }
        let (due, waiting): (Vec<Start>, Vec<Start>) =
            starts.into_iter().partition(|s| now >= s.at + TOLD_WITHIN);
        self.starts = waiting;
        for s in due {
            let deadline = s.at + TOLD_WITHIN;
            let changes = self.schedule.faults.iter().any(|f| {
                f.is_death()
                    && ((s.at < f.from && f.from <= deadline) || (s.at < f.to && f.to <= deadline))
            });
            let quiet = self.schedule.loss == 0.0 && self.schedule.calm_between(s.at, deadline);
            let ran = self.schedule.life_start(s.node, deadline) == s.at;
            if changes || !quiet || !ran || self.nodes[s.node].mesh.is_none() {
                continue;
            }
            let mut missed = Vec::new();
            for &d in &s.dead {
                let view = self.view(s.node, d);
                if view.is_none_or(|v| v.0 != Liveness::Down) {
                    missed.push((d, view));
                }
            }
            if missed.is_empty() {
                let took = s
                    .told
                    .unwrap_or(now)
                    .saturating_duration_since(s.at)
                    .as_millis() as u64;
                self.report.told_ms.push(took);
            } else {
                self.violation(format!(
                    "node {} started at {} ms while {missed:?} were dead and down elsewhere; \
                     {TOLD_WITHIN:?} later it does not see them down",
                    s.node,
                    s.at.as_nanos() / 1_000_000
                ));
            }
        }
    }

    /// After the quiet end: every live node sees every other live node alive (or
    /// suspect, for a lost probe or two) in its current generation, every dead one down.
    pub(super) fn converged(&mut self) {
        let n = self.schedule.nodes;
        let live: Vec<usize> = (0..n).filter(|&k| self.nodes[k].mesh.is_some()).collect();
        for k in live {
            for j in (0..n).filter(|&j| j != k) {
                let view = self.view(k, j);
                let ok = match self.generation(j) {
                    Some(g) => view.is_some_and(|(l, gen_)| {
                        gen_ == g && matches!(l, Liveness::Alive | Liveness::Suspect)
                    }),
                    None => view.is_some_and(|(l, _)| l == Liveness::Down),
                };
                if !ok {
                    let truth = self
                        .generation(j)
                        .map_or("dead".into(), |g| format!("alive as generation {g}"));
                    self.violation(format!(
                        "after the quiet end node {k} sees node {j} as {view:?}; it is {truth}"
                    ));
                }
            }
        }
    }
}
