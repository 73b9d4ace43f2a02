//! The live map's zone side: while someone watches, each zone copies what the map shows
//! into a frame about six times a second. The node's admin thread turns frames into JSON and
//! streams them (off the zone cores); a zone never waits for it.
//!
//! A frame costs the zone O(cells + shown entities), never O(entities): the density comes
//! from the spatial index's cell counts, and individual entities only for viewer windows
//! whose density says they hold at most [`VIEW_ENTITIES_MAX`].

use std::time::Duration;

use meridian_core::session::Sessions;
use meridian_core::world::{Rect, ZoneID};
use meridian_core::zone::Zone;

/// How often a watched zone renews its frame.
pub const FRAME_EVERY: Duration = Duration::from_millis(150);
/// Most entities listed for one viewer window; a window holding more shows density only.
pub const VIEW_ENTITIES_MAX: usize = 8_192;
/// Most avatars and handoffs listed per frame (the rest are counted).
pub const LISTED_MAX: usize = 4_096;
/// Most ghosts listed per frame: an even sample of them (the rest are counted). Ghosts line
/// a border; a thousand draw it as well as all of them, and cost a stream less.
pub const GHOSTS_LISTED_MAX: usize = 1_024;
/// Most viewer windows at once (one per live-map stream).
pub const VIEWS_MAX: usize = 8;

/// A viewer's window on the world, in metres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapView {
    pub id: u64,
    pub rect: Rect,
}

/// One handoff under way, as the map shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapHandoff {
    pub to: ZoneID,
    pub x: f32,
    pub y: f32,
    /// COMMIT sent, awaiting DONE (else: OFFER sent, awaiting ACK).
    pub relinquished: bool,
}

/// What one zone shows on the live map, as of one tick.
#[derive(Clone, Debug, Default)]
pub struct MapFrame {
    pub zone: u32,
    pub tick: u64,
    /// Owned entities per cell of the zone's spatial index (the zone and its aura), row by
    /// row from the lower-left corner `origin`; `columns` cells a row, `cell_m` a side.
    pub density: Vec<u32>,
    pub columns: u32,
    pub origin: (f32, f32),
    pub cell_m: f32,
    /// Ghost positions (an even sample of at most [`GHOSTS_LISTED_MAX`]), and how many
    /// ghosts there are.
    pub ghosts: Vec<(f32, f32)>,
    pub ghost_count: usize,
    /// Client avatars' positions.
    pub avatars: Vec<(f32, f32)>,
    /// The avatars the zone's game marks (`Game::marked`: tag's "it").
    pub marked: Vec<(f32, f32)>,
    pub handoffs: Vec<MapHandoff>,
    /// The owned entities inside each viewer window.
    pub views: Vec<ViewEntities>,
    /// The zone's run is tentative ([`Snapshot::tentative`](super::Snapshot::tentative)):
    /// nothing it did is the world's yet, and the map shows none of its entities.
    pub tentative: bool,
}

/// The owned entities inside one viewer window.
#[derive(Clone, Debug, Default)]
pub struct ViewEntities {
    /// The window ([`MapView::id`]).
    pub id: u64,
    pub points: Vec<(f32, f32)>,
    /// The window held more than [`VIEW_ENTITIES_MAX`]: none listed.
    pub crowded: bool,
}

impl MapFrame {
    /// Refills the frame from the zone, reusing its buffers.
    pub(super) fn fill(&mut self, zone: &Zone, sessions: Option<&Sessions>, views: &[MapView]) {
        self.zone = zone.id().0;
        self.tick = zone.tick_count();
        let grid = zone.grid();
        let (counts, columns, x0, y0) = grid.cell_counts();
        self.density.clear();
        self.density.extend_from_slice(counts);
        (self.columns, self.origin, self.cell_m) = (columns, (x0, y0), grid.cell_size_m());
        let ghosts = zone.ghosts().entities();
        self.ghost_count = ghosts.len();
        let stride = ghosts.len().div_ceil(GHOSTS_LISTED_MAX).max(1);
        self.ghosts.clear();
        self.ghosts.extend(
            (0..ghosts.len())
                .step_by(stride)
                .map(|i| (ghosts.xs()[i], ghosts.ys()[i])),
        );
        let entities = zone.entities();
        self.avatars.clear();
        self.marked.clear();
        if let Some(sessions) = sessions {
            let at = |slot: u32| (entities.xs()[slot as usize], entities.ys()[slot as usize]);
            let slots = sessions.avatars().filter_map(|a| entities.slot_of(a));
            for slot in slots.take(LISTED_MAX) {
                self.avatars.push(at(slot));
                if zone.marked(slot) {
                    self.marked.push(at(slot));
                }
            }
        }
        self.handoffs.clear();
        let handoffs = zone.handoffs().take(LISTED_MAX);
        self.handoffs
            .extend(handoffs.map(|(to, x, y, relinquished)| MapHandoff {
                to,
                x,
                y,
                relinquished,
            }));
        self.fill_views(zone, views);
    }

    /// The owned entities inside each viewer window that holds few enough of them.
    fn fill_views(&mut self, zone: &Zone, views: &[MapView]) {
        // One entry per window, each keeping its buffer from frame to frame.
        self.views.resize_with(views.len(), ViewEntities::default);
        let entities = zone.entities();
        let area = zone.rect().expand(zone.world().aura_m());
        for (k, view) in views.iter().enumerate() {
            let seen = view.rect.intersects(&area);
            let crowded = seen && self.density_in(view.rect) > VIEW_ENTITIES_MAX;
            let listed = &mut self.views[k];
            (listed.id, listed.crowded) = (view.id, crowded);
            listed.points.clear();
            if seen && !crowded {
                let (xs, ys) = (entities.xs(), entities.ys());
                zone.grid().for_each_in_rect(xs, ys, view.rect, |slot| {
                    if listed.points.len() < VIEW_ENTITIES_MAX {
                        listed.points.push((xs[slot as usize], ys[slot as usize]));
                    }
                });
            }
        }
    }

    /// An upper bound on the entities inside `rect`: the counts of every cell it touches.
    fn density_in(&self, rect: Rect) -> usize {
        if self.columns == 0 {
            return 0;
        }
        let rows = self.density.len() as u32 / self.columns;
        let index = |v: f32, origin: f32, n: u32| {
            ((v - origin) / self.cell_m).clamp(0.0, (n - 1) as f32) as u32
        };
        let (c0, c1) = (
            index(rect.x_min, self.origin.0, self.columns),
            index(rect.x_max, self.origin.0, self.columns),
        );
        let (r0, r1) = (
            index(rect.y_min, self.origin.1, rows),
            index(rect.y_max, self.origin.1, rows),
        );
        let mut total = 0usize;
        for row in r0..=r1 {
            let start = (row * self.columns) as usize;
            let cells = &self.density[start + c0 as usize..=start + c1 as usize];
            total += cells.iter().map(|&c| c as usize).sum::<usize>();
        }
        total
    }
}
