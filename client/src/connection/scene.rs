//! What the client shows of remote entities: the newest snapshot's records, and — after a
//! snapshot sent against nothing that could not carry the whole view — what it showed
//! before, until the client holds the whole view again.
//!
//! A zone sends a snapshot against nothing when it holds no replication state for the
//! client: a zone's new run (a standby took it over, or it restarted from its files) or a
//! baseline the client acknowledged too late. Such a snapshot carries the nearest members
//! first, as many as the byte budget allows, and says so (`DELTA_PARTIAL`); the rest
//! follow in the next snapshots once the client acknowledges one. Shown as they come, the
//! scene would empty and refill — every entity the first snapshots left out popping out
//! and back in. Instead the entities shown before and missing from the newest stay
//! (*stale*, at their last state) until a snapshot without the flag, until the snapshots
//! bring them back, or for [`STALE_FOR`] at most.

use super::*;

/// The longest the entities of the scene before are kept.
pub(super) const STALE_FOR: Duration = Duration::from_secs(1);

/// The scene before a partial snapshot sent against nothing (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Stale {
    /// Records shown before that the newest snapshot lacks (sorted by id).
    records: Vec<Record>,
    /// The newest snapshot's records with `records`, merged (sorted by id).
    shown: Vec<Record>,
    /// When the scene before was kept; `None`: nothing is.
    since: Option<Instant>,
}

impl Stale {
    /// What to draw while the scene before is kept; `None`: the newest snapshot's records.
    pub(super) fn shown(&self) -> Option<&[Record]> {
        self.since.map(|_| self.shown.as_slice())
    }
}

/// The records of snapshot `id` among those held (tick 0: none).
fn held_records(history: &[Held], id: SnapshotId) -> Option<&[Record]> {
    if id.tick == 0 {
        return None;
    }
    let held = history.iter().find(|h| h.id == id)?;
    Some(held.records.as_slice())
}

/// Snapshot `id` among those held (tick 0: none).
fn held_of(history: &[Held], id: SnapshotId) -> Option<&Held> {
    if id.tick == 0 {
        return None;
    }
    history.iter().find(|h| h.id == id)
}

impl Client {
    /// The newest snapshot's tick, and its entities (sorted by id; the own avatar is not
    /// among them), each at its newest *sample*: the newest state the server sent of it,
    /// which need not be the newest snapshot's record — a snapshot is a delta against one
    /// the client acknowledged, ticks old over a real network, and an entity sent since
    /// and not due now keeps the older one's value there (see "Samples" in
    /// `meridian_protocol::delta`). [`Client::shown`] is what to draw.
    pub fn entities(&self) -> (u32, &[Record]) {
        (self.latest.tick, &self.drawn)
    }

    /// The newest snapshot's tick and the entities to draw (sorted by id): its records,
    /// plus — for up to [`STALE_FOR`] after a zone sent a snapshot against nothing that
    /// left members out — those shown before that it lacks (see the module docs).
    pub fn shown(&self) -> (u32, &[Record]) {
        match self.stale.shown() {
            Some(records) => (self.latest.tick, records),
            None => self.entities(),
        }
    }

    /// A snapshot the client holds (tick 0: none): its records as decoded.
    pub(super) fn records(&self, id: SnapshotId) -> Option<&[Record]> {
        held_records(&self.history, id)
    }

    /// A snapshot the client holds (tick 0: none), with its records' samples.
    pub(super) fn held(&self, id: SnapshotId) -> Option<&Held> {
        held_of(&self.history, id)
    }

    /// Keeps what is shown now as the scene before (unless one is kept already): the
    /// zone's newest snapshot is about to be dropped (a new run), or the next is sent
    /// against nothing and partial.
    pub(super) fn keep_shown(&mut self, now: Instant) {
        if self.stale.since.is_some() {
            return;
        }
        let mut records = std::mem::take(&mut self.stale.records);
        records.clear();
        records.extend_from_slice(self.shown().1);
        self.stale.records = records;
        self.stale.since = Some(now);
    }

    /// After a new newest snapshot (`partial`: its flag): the scene before is let go when
    /// the snapshot is whole or the scene is [`STALE_FOR`] old; else what the snapshot
    /// brought back leaves it, and the rest is drawn with the snapshot's records.
    pub(super) fn refresh_stale(&mut self, now: Instant, partial: bool) {
        let Some(since) = self.stale.since else {
            return;
        };
        let newest = &self.drawn;
        let stale = &mut self.stale;
        stale
            .records
            .retain(|r| newest.binary_search_by_key(&r.id, |n| n.id).is_err());
        if !partial || stale.records.is_empty() || now.saturating_duration_since(since) >= STALE_FOR
        {
            stale.records.clear();
            stale.shown.clear();
            stale.since = None;
            return;
        }
        stale.shown.clear();
        let (mut a, mut b) = (newest.iter().peekable(), stale.records.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.id < y.id => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            stale.shown.extend(next.copied());
        }
    }

    /// Remote entities drawn `fraction` (0…1) of the way from what the newest snapshot
    /// before drew to what the newest draws (each entity at its newest sample):
    /// `(id, position)`. Entities new in the newest snapshot appear at their position
    /// there; those [`Client::shown`] keeps from before stay where they were.
    pub fn interpolated(&self, fraction: f32, mut f: impl FnMut(u64, [f32; 2])) {
        let t = fraction.clamp(0.0, 1.0);
        let newest = self.shown().1;
        let older = &self.drawn_before;
        let mut o = 0;
        for r in newest {
            while o < older.len() && older[o].id < r.id {
                o += 1;
            }
            let to = [dequantise_position(r.x), dequantise_position(r.y)];
            let at = if o < older.len() && older[o].id == r.id {
                let from = [
                    dequantise_position(older[o].x),
                    dequantise_position(older[o].y),
                ];
                [
                    from[0] + (to[0] - from[0]) * t,
                    from[1] + (to[1] - from[1]) * t,
                ]
            } else {
                to
            };
            f(r.id, at);
        }
    }
}
