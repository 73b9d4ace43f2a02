//! The spatial index: a uniform grid of cells, each a bucket of entity slots.
//!
//! **Layout.** One `entries` array holds every bucket back to back; bucket `c` is
//! `entries[start[c] .. start[c] + len[c]]` with room up to `start[c] + cap[c]`. Per slot,
//! the grid remembers the cell it is filed under (`cell`, an `i32x8` column parallel to
//! the entity columns, `-1` when not filed) and where (`entry_of_slot`).
//!
//! **Per tick** ([`Grid::update`]) one SIMD pass computes every entity's cell and compares
//! it with the filed one. Entities rarely change cell between ticks (at 5 m/s, 30 Hz and
//! 32 m cells, about 1 in 400 does), so the few that did are moved between buckets in
//! O(1) each; nothing else is written. A full rebuild — a counting sort of cell ids that
//! sizes each bucket to its count plus slack — runs on the first update, when a bucket
//! overflows, or when more than [`FULL_REBUILD_FRACTION`] of the entities changed cell.
//!
//! **Queries** see the index as of the last update. Cells are clamped to the grid, so
//! points outside it land in edge cells and queries stay exact (they test the real
//! distance). The grid never allocates after [`Grid::new`].
//!
//! **Swap-remove.** When the entity store moves its last entity into a freed slot, the
//! zone calls [`Grid::swap_remove`] with the same slots so the grid follows in O(1).

use wide::{f32x8, i32x8};

use crate::limits::{GRID_BUCKET_SLACK_MIN, GRID_CELLS_MAX, LANES};
use crate::world::Rect;

/// Above this fraction of changed cells in one update, a full rebuild is cheaper than
/// moving entries one by one.
pub const FULL_REBUILD_FRACTION: usize = 8; // 1/8

const NONE: i32 = -1;

/// Where a point falls in a grid of cells: origin, cell size and shape. Shared by the
/// bucket grid and its packed copy, and written to match the SIMD pass in
/// [`Grid::update`] exactly (clamp, then truncate — equal to floor for the clamped,
/// non-negative values), so both place every point in the same cell.
#[derive(Clone, Copy, Debug, PartialEq)]
struct CellMap {
    origin_x: f32,
    origin_y: f32,
    cell_per_m: f32,
    columns: u32,
    rows: u32,
}

impl CellMap {
    fn column_of(&self, x: f32) -> u32 {
        ((x - self.origin_x) * self.cell_per_m)
            .max(0.0)
            .min((self.columns - 1) as f32) as u32
    }

    fn row_of(&self, y: f32) -> u32 {
        ((y - self.origin_y) * self.cell_per_m)
            .max(0.0)
            .min((self.rows - 1) as f32) as u32
    }

    fn cell_of(&self, x: f32, y: f32) -> u32 {
        self.row_of(y) * self.columns + self.column_of(x)
    }
}

/// A packed, cell-ordered copy of the indexed positions, for query-heavy stages.
///
/// The bucket grid is cheap to maintain but scatters a cell's entities across the entity
/// columns, so each candidate of a query costs three dependent loads. Stages that run many
/// queries per tick (interest management: one per client) call [`Packed::refresh`] once
/// per tick and then query a row of cells as one contiguous span, eight candidates per
/// SIMD step.
///
/// **Filled as queried.** The refresh only lays the cells out (where each cell's entries
/// go, from the buckets' lengths) and starts a new epoch; a query copies `x`, `y` and the
/// slot of each cell it spans the first time the epoch touches it. A zone of a million
/// entities whose clients' queries reach a few thousand cells copies those, not the
/// million (the copy was half of `replicate/meridian-dense/1000`). Queries are given the
/// grid and the position columns again: they must be the ones refreshed from, unchanged
/// since (the replicator queries between two zone ticks). Queries see positions as of the
/// first query of the epoch that touched their cells.
#[derive(Debug)]
pub struct Packed {
    map: CellMap,
    /// `cell_start[c] .. cell_start[c + 1]` are cell `c`'s entries.
    cell_start: Vec<u32>,
    /// The epoch each cell's entries were copied in; [`Packed::refresh`] starts a new one.
    filled: Vec<u32>,
    epoch: u32,
    /// This epoch was copied whole at its refresh: queries fill nothing.
    whole: bool,
    /// Entries queries copied this epoch, and how many the epoch laid out.
    copied: u32,
    laid_out: u32,
    x: Vec<f32>,
    y: Vec<f32>,
    slot: Vec<u32>,
}

impl Packed {
    /// An empty copy shaped like `grid`, with room for all of its slots.
    pub fn new(grid: &Grid) -> Packed {
        let slots = grid.cell.len() * LANES;
        // LANES of padding so the last SIMD load of a span never reads past the end.
        Packed {
            map: grid.map,
            cell_start: vec![0; grid.cell_count() + 1],
            filled: vec![0; grid.cell_count()],
            epoch: 0,
            whole: false,
            copied: 0,
            laid_out: 0,
            x: vec![0.0; slots + LANES],
            y: vec![0.0; slots + LANES],
            slot: vec![0; slots + LANES],
        }
    }

    /// Starts a copy of the grid's current contents, in cell order: lays the cells out;
    /// queries fill them (see the type's docs). When the last epoch's queries filled at
    /// least half of what it laid out, this one is copied whole at once instead (one pass
    /// in cell order costs less than checking and filling cell by cell when most cells get
    /// filled anyway: 1.04–1.06× of `replicate/meridian/1000` always filling as queried).
    pub fn refresh(&mut self, grid: &Grid, (xs, ys): (&[f32], &[f32])) {
        assert_eq!(self.cell_start.len(), grid.cell_count() + 1);
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: no cell may look filled by a stale epoch.
            self.filled.fill(0);
            self.epoch = 1;
        }
        // A whole copy counts as all filled, so the epochs after it are copied whole too;
        // every 64th fills as queried, to measure the queries again.
        let most = self.laid_out > 0 && self.copied >= self.laid_out / 2;
        self.whole = most && !self.epoch.is_multiple_of(64);
        let mut next = 0usize;
        for c in 0..grid.cell_count() {
            self.cell_start[c] = next as u32;
            if self.whole {
                let start = grid.start[c] as usize;
                for &slot in &grid.entries[start..start + grid.len[c] as usize] {
                    self.x[next] = xs[slot as usize];
                    self.y[next] = ys[slot as usize];
                    self.slot[next] = slot;
                    next += 1;
                }
            } else {
                next += grid.len[c] as usize;
            }
        }
        self.cell_start[grid.cell_count()] = next as u32;
        self.laid_out = next as u32;
        self.copied = if self.whole { self.laid_out } else { 0 };
    }

    /// Copies cells `first..=last` (one row's span) unless this epoch did. `xs` and `ys`
    /// are the entity store's position columns.
    #[inline]
    fn fill(&mut self, grid: &Grid, (xs, ys): (&[f32], &[f32]), first: usize, last: usize) {
        if self.whole {
            return;
        }
        for c in first..=last {
            if self.filled[c] == self.epoch {
                continue;
            }
            self.filled[c] = self.epoch;
            let (to, end) = (self.cell_start[c] as usize, self.cell_start[c + 1] as usize);
            let start = grid.start[c] as usize;
            // The bucket as laid out at the refresh; a shorter one (the grid changed
            // since, against the contract) leaves NaN positions, which no query matches.
            let bucket = &grid.entries[start..start + (grid.len[c] as usize).min(end - to)];
            for (k, &slot) in bucket.iter().enumerate() {
                self.x[to + k] = xs[slot as usize];
                self.y[to + k] = ys[slot as usize];
                self.slot[to + k] = slot;
            }
            self.x[to + bucket.len()..end].fill(f32::NAN);
            self.y[to + bucket.len()..end].fill(f32::NAN);
            self.copied += (end - to) as u32;
        }
    }

    /// Calls `f(slot)` for every entity within `radius_m` of `(cx, cy)` (inclusive), as of
    /// the last refresh (`grid`, `xs` and `ys` as it was given them).
    #[inline]
    pub fn for_each_in_radius(
        &mut self,
        grid: &Grid,
        columns: (&[f32], &[f32]),
        (cx, cy, radius_m): (f32, f32, f32),
        mut f: impl FnMut(u32),
    ) {
        self.for_each_in_radius_with_distance(grid, columns, (cx, cy, radius_m), |slot, _| f(slot));
    }

    /// As [`Packed::for_each_in_radius`], also passing the squared distance (computed by
    /// the SIMD test anyway), so callers that rank by distance need no second lookup.
    #[inline]
    pub fn for_each_in_radius_with_distance(
        &mut self,
        grid: &Grid,
        columns: (&[f32], &[f32]),
        (cx, cy, radius_m): (f32, f32, f32),
        mut f: impl FnMut(u32, f32),
    ) {
        let r2 = f32x8::splat(radius_m * radius_m);
        let (vcx, vcy) = (f32x8::splat(cx), f32x8::splat(cy));
        let lane_index = f32x8::new([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        let (c0, c1) = (
            self.map.column_of(cx - radius_m),
            self.map.column_of(cx + radius_m),
        );
        let (r0, r1) = (
            self.map.row_of(cy - radius_m),
            self.map.row_of(cy + radius_m),
        );
        for row in r0..=r1 {
            // The cells c0..=c1 of one row are one contiguous span.
            let first = (row * self.map.columns + c0) as usize;
            let last = (row * self.map.columns + c1) as usize;
            self.fill(grid, columns, first, last);
            let (begin, end) = (
                self.cell_start[first] as usize,
                self.cell_start[last + 1] as usize,
            );
            let mut i = begin;
            while i < end {
                let x: [f32; LANES] = self.x[i..i + LANES].try_into().expect("padded");
                let y: [f32; LANES] = self.y[i..i + LANES].try_into().expect("padded");
                let dx = f32x8::new(x) - vcx;
                let dy = f32x8::new(y) - vcy;
                let distance2 = dx * dx + dy * dy;
                let inside = distance2.simd_le(r2);
                let in_span = lane_index.simd_lt(f32x8::splat((end - i) as f32));
                let mut bits = (inside & in_span).to_bitmask();
                if bits != 0 {
                    let distance2 = distance2.to_array();
                    while bits != 0 {
                        let k = bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        f(self.slot[i + k], distance2[k]);
                    }
                }
                i += LANES;
            }
        }
    }
}

/// Counters of the work the grid did, for benches and the status line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GridStats {
    /// Full counting-sort rebuilds.
    pub rebuilds: u64,
    /// Entities moved between buckets incrementally.
    pub moves: u64,
}

/// The grid. See the module docs.
#[derive(Debug)]
pub struct Grid {
    map: CellMap,
    cell_size_m: f32,
    start: Vec<u32>,
    len: Vec<u32>,
    cap: Vec<u32>,
    entries: Vec<u32>,
    cell: Vec<i32x8>,
    entry_of_slot: Vec<u32>,
    slot_count: usize,
    stats: GridStats,
}

impl Grid {
    /// A grid of `columns × rows` cells of `cell_size_m`, lower-left corner at the origin,
    /// able to index `capacity` slots.
    pub fn new(
        origin_x: f32,
        origin_y: f32,
        cell_size_m: f32,
        columns: u32,
        rows: u32,
        capacity: usize,
    ) -> Grid {
        assert!(cell_size_m > 0.0 && cell_size_m.is_finite());
        assert!(columns >= 1 && rows >= 1);
        let cells = columns as usize * rows as usize;
        assert!(cells <= GRID_CELLS_MAX);
        let lanes = capacity.div_ceil(LANES);
        let slots = lanes * LANES;
        // Enough for every bucket's count, a quarter of it again, and the minimum slack.
        let entries = slots + slots / 4 + cells * GRID_BUCKET_SLACK_MIN;
        let mut grid = Grid {
            map: CellMap {
                origin_x,
                origin_y,
                cell_per_m: 1.0 / cell_size_m,
                columns,
                rows,
            },
            cell_size_m,
            start: vec![0; cells],
            len: vec![0; cells],
            cap: vec![0; cells],
            entries: vec![0; entries],
            cell: vec![i32x8::splat(NONE); lanes],
            entry_of_slot: vec![0; slots],
            slot_count: 0,
            stats: GridStats::default(),
        };
        grid.rebuild();
        grid
    }

    /// A grid covering `rect` with cells of `cell_size_m`.
    pub fn covering(rect: Rect, cell_size_m: f32, capacity: usize) -> Grid {
        let columns = (rect.width() / cell_size_m).ceil().max(1.0) as u32;
        let rows = (rect.height() / cell_size_m).ceil().max(1.0) as u32;
        Grid::new(rect.x_min, rect.y_min, cell_size_m, columns, rows, capacity)
    }

    pub fn stats(&self) -> GridStats {
        self.stats
    }

    pub fn cell_size_m(&self) -> f32 {
        self.cell_size_m
    }

    pub fn cell_count(&self) -> usize {
        self.start.len()
    }

    /// How many entities each cell holds (row by row from the lower-left corner), with the
    /// grid's shape: `(counts, columns, lower-left corner x, y)`. As of the last update.
    pub fn cell_counts(&self) -> (&[u32], u32, f32, f32) {
        (
            &self.len,
            self.map.columns,
            self.map.origin_x,
            self.map.origin_y,
        )
    }

    /// How many entities the cells within `k` cells of `(x, y)`'s cell hold, and the
    /// farthest any point of those cells is from `(x, y)`: an upper bound on the distance
    /// of the `count`-th nearest entity, for entities inside the grid's area (edge cells
    /// also file the ones outside it). As of the last update.
    pub fn block_around(&self, x: f32, y: f32, k: u32) -> (u32, f32) {
        let m = &self.map;
        let (c, r) = (m.column_of(x), m.row_of(y));
        let (c0, c1) = (c.saturating_sub(k), (c + k).min(m.columns - 1));
        let (r0, r1) = (r.saturating_sub(k), (r + k).min(m.rows - 1));
        let mut count = 0;
        for row in r0..=r1 {
            let first = (row * m.columns + c0) as usize;
            count += self.len[first..=first + (c1 - c0) as usize]
                .iter()
                .sum::<u32>();
        }
        let size = 1.0 / m.cell_per_m;
        let (x0, x1) = (
            m.origin_x + c0 as f32 * size,
            m.origin_x + (c1 + 1) as f32 * size,
        );
        let (y0, y1) = (
            m.origin_y + r0 as f32 * size,
            m.origin_y + (r1 + 1) as f32 * size,
        );
        let dx = (x - x0).abs().max((x1 - x).abs());
        let dy = (y - y0).abs().max((y1 - y).abs());
        (count, (dx * dx + dy * dy).sqrt())
    }

    /// The cell id of a point: the same arithmetic as the SIMD pass.
    pub fn cell_of(&self, x: f32, y: f32) -> u32 {
        self.map.cell_of(x, y)
    }

    /// Refiles every slot in `0..len` whose cell changed since the last update.
    ///
    /// `x` and `y` are the entity store's lanes covering `len` slots. Slots at or above the
    /// previous count are new (the store appended them) and are filed here.
    pub fn update(&mut self, x: &[f32x8], y: &[f32x8], len: usize) {
        let lanes = len.div_ceil(LANES);
        assert!(x.len() >= lanes && y.len() >= lanes);
        assert!(
            lanes <= self.cell.len(),
            "more slots than the grid was built for"
        );
        assert!(
            len >= self.slot_count,
            "removals must go through Grid::swap_remove"
        );
        self.slot_count = len;

        let origin_x = f32x8::splat(self.map.origin_x);
        let origin_y = f32x8::splat(self.map.origin_y);
        let per_m = f32x8::splat(self.map.cell_per_m);
        let zero = f32x8::splat(0.0);
        let column_max = f32x8::splat((self.map.columns - 1) as f32);
        let row_max = f32x8::splat((self.map.rows - 1) as f32);
        let columns = i32x8::splat(self.map.columns as i32);
        let move_budget = len / FULL_REBUILD_FRACTION;
        let mut moves = 0usize;
        let mut overflow = false;
        for lane in 0..lanes {
            // Clamp, then truncate: equal to floor for the non-negative clamped values, and
            // one instruction each (floor is not, below SSE4.1).
            let column = ((x[lane] - origin_x) * per_m)
                .max(zero)
                .min(column_max)
                .fast_trunc_int();
            let row = ((y[lane] - origin_y) * per_m)
                .max(zero)
                .min(row_max)
                .fast_trunc_int();
            let mut new = row * columns + column;
            let live = len - lane * LANES;
            if live < LANES {
                // Padding slots stay unfiled, so a later insert there is seen as new.
                let keep: [i32; LANES] = core::array::from_fn(|i| if i < live { -1 } else { 0 });
                new = i32x8::new(keep).select(new, i32x8::splat(NONE));
            }
            let old = self.cell[lane];
            let changed = !new.simd_eq(old).to_bitmask() & 0xff;
            if changed == 0 {
                continue;
            }
            let olds = old.to_array();
            let news = new.to_array();
            self.cell[lane] = new;
            let mut bits = changed;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                moves += 1;
                if overflow || moves > move_budget {
                    // A rebuild will file everything from the cell column; only unfile.
                    overflow = true;
                    continue;
                }
                let slot = (lane * LANES + i) as u32;
                if olds[i] != NONE {
                    self.unfile(slot, olds[i] as u32);
                }
                if !self.file(slot, news[i] as u32) {
                    overflow = true;
                }
            }
        }
        if overflow {
            self.rebuild();
        } else {
            self.stats.moves += moves as u64;
        }
        #[cfg(feature = "verify")]
        self.verify(x, y);
    }

    /// Unfiles every slot, so the next [`Grid::update`] files all of them with a full
    /// counting sort. For benches and for restoring a zone from a checkpoint.
    pub fn clear(&mut self) {
        self.cell.fill(i32x8::splat(NONE));
        self.slot_count = 0;
        self.rebuild();
    }

    /// Removes `slot` from its bucket.
    fn unfile(&mut self, slot: u32, cell: u32) {
        let c = cell as usize;
        let position = self.entry_of_slot[slot as usize];
        let last = self.start[c] + self.len[c] - 1;
        debug_assert_eq!(self.entries[position as usize], slot);
        let moved = self.entries[last as usize];
        self.entries[position as usize] = moved;
        self.entry_of_slot[moved as usize] = position;
        self.len[c] -= 1;
    }

    /// Appends `slot` to bucket `cell`; `false` if the bucket is full.
    fn file(&mut self, slot: u32, cell: u32) -> bool {
        let c = cell as usize;
        if self.len[c] == self.cap[c] {
            return false;
        }
        let position = self.start[c] + self.len[c];
        self.entries[position as usize] = slot;
        self.entry_of_slot[slot as usize] = position;
        self.len[c] += 1;
        true
    }

    /// Counting sort of every slot's cell into freshly sized buckets.
    fn rebuild(&mut self) {
        self.stats.rebuilds += 1;
        self.len.fill(0);
        let cells: &[i32] = bytemuck::cast_slice(&self.cell);
        for &c in &cells[..self.slot_count] {
            if c != NONE {
                self.len[c as usize] += 1;
            }
        }
        let mut next = 0u32;
        for c in 0..self.start.len() {
            let count = self.len[c];
            self.start[c] = next;
            self.cap[c] = count + count / 4 + GRID_BUCKET_SLACK_MIN as u32;
            next += self.cap[c];
            self.len[c] = 0;
        }
        assert!(next as usize <= self.entries.len());
        for (slot, &c) in cells[..self.slot_count].iter().enumerate() {
            if c != NONE {
                let c = c as usize;
                let position = self.start[c] + self.len[c];
                self.entries[position as usize] = slot as u32;
                self.entry_of_slot[slot] = position;
                self.len[c] += 1;
            }
        }
    }

    /// Follows the entity store's swap-remove: `slot` was removed and, if `moved_from` is
    /// `Some(last)`, the entity at `last` now lives in `slot`.
    ///
    /// Slots the store appended since the last [`Grid::update`] are not filed yet; they
    /// may be removed or moved here too (they carry no cell, and stay unfiled).
    pub fn swap_remove(&mut self, slot: u32, moved_from: Option<u32>) {
        // The store's length after the removal: the moved entity came from the end.
        let new_len = moved_from.unwrap_or(slot) as usize;
        assert!((slot as usize) <= new_len);
        assert!(new_len < self.cell.len() * LANES);
        let cells: &mut [i32] = bytemuck::cast_slice_mut(&mut self.cell);
        let old = cells[slot as usize];
        if old != NONE {
            self.unfile(slot, old as u32);
        }
        let cells: &mut [i32] = bytemuck::cast_slice_mut(&mut self.cell);
        if let Some(last) = moved_from {
            let c = cells[last as usize];
            cells[slot as usize] = c;
            cells[last as usize] = NONE;
            if c != NONE {
                let position = self.entry_of_slot[last as usize];
                self.entries[position as usize] = slot;
                self.entry_of_slot[slot as usize] = position;
            }
        } else {
            cells[slot as usize] = NONE;
        }
        self.slot_count = self.slot_count.min(new_len);
    }

    /// Calls `f(slot)` for every indexed entity within `radius_m` of `(cx, cy)` (inclusive).
    #[inline]
    pub fn for_each_in_radius(
        &self,
        xs: &[f32],
        ys: &[f32],
        cx: f32,
        cy: f32,
        radius_m: f32,
        mut f: impl FnMut(u32),
    ) {
        let r2 = radius_m * radius_m;
        let (c0, c1) = (
            self.map.column_of(cx - radius_m),
            self.map.column_of(cx + radius_m),
        );
        let (r0, r1) = (
            self.map.row_of(cy - radius_m),
            self.map.row_of(cy + radius_m),
        );
        for row in r0..=r1 {
            for column in c0..=c1 {
                let c = (row * self.map.columns + column) as usize;
                let start = self.start[c] as usize;
                for &slot in &self.entries[start..start + self.len[c] as usize] {
                    let dx = xs[slot as usize] - cx;
                    let dy = ys[slot as usize] - cy;
                    if dx * dx + dy * dy <= r2 {
                        f(slot);
                    }
                }
            }
        }
    }

    /// Calls `f(slot)` for every indexed entity inside `rect` (half-open).
    pub fn for_each_in_rect(&self, xs: &[f32], ys: &[f32], rect: Rect, mut f: impl FnMut(u32)) {
        let (c0, c1) = (
            self.map.column_of(rect.x_min),
            self.map.column_of(rect.x_max),
        );
        let (r0, r1) = (self.map.row_of(rect.y_min), self.map.row_of(rect.y_max));
        for row in r0..=r1 {
            for column in c0..=c1 {
                let c = (row * self.map.columns + column) as usize;
                let start = self.start[c] as usize;
                for &slot in &self.entries[start..start + self.len[c] as usize] {
                    if rect.contains(xs[slot as usize], ys[slot as usize]) {
                        f(slot);
                    }
                }
            }
        }
    }

    /// O(n) check: every slot is filed exactly once, in the cell its position maps to.
    pub fn verify(&self, x: &[f32x8], y: &[f32x8]) {
        let xs: &[f32] = bytemuck::cast_slice(x);
        let ys: &[f32] = bytemuck::cast_slice(y);
        let cells: &[i32] = bytemuck::cast_slice(&self.cell);
        let mut filed = 0usize;
        for c in 0..self.start.len() {
            assert!(self.len[c] <= self.cap[c]);
            let start = self.start[c] as usize;
            for (k, &slot) in self.entries[start..start + self.len[c] as usize]
                .iter()
                .enumerate()
            {
                assert!((slot as usize) < self.slot_count);
                assert_eq!(cells[slot as usize], c as i32);
                assert_eq!(self.entry_of_slot[slot as usize] as usize, start + k);
                filed += 1;
            }
        }
        assert_eq!(filed, self.slot_count);
        for (slot, &c) in cells[..self.slot_count].iter().enumerate() {
            assert_eq!(c, self.cell_of(xs[slot], ys[slot]) as i32);
        }
        for &c in &cells[self.slot_count..] {
            assert_eq!(c, NONE);
        }
    }
}
