//! The world's geometry: bounds, the grid of zone rectangles, neighbours, margin, aura.
//!
//! A [`World`] is built from a plain [`WorldConfig`] (the node fills it from a TOML world
//! file) and checked once; afterwards every lookup is arithmetic on a uniform grid of
//! zones, so [`World::zone_at`] is O(1) and cannot fail: points outside the bounds clamp
//! to the nearest zone.
//!
//! Zone rectangles are half-open, `[min, max)`, so every point of the plane belongs to
//! exactly one zone. Neighbours are the up-to-8 zones sharing an edge or a corner: an
//! entity can leave through a corner.

use core::time::Duration;

use crate::limits::ZONES_MAX;

/// The most neighbours a zone can have in a grid split.
pub const NEIGHBOURS_MAX: usize = 8;

/// A zone's identifier: its index in the world's zone grid, row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ZoneID(pub u32);

impl core::fmt::Display for ZoneID {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An axis-aligned rectangle in metres, half-open: `[x_min, x_max) × [y_min, y_max)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x_min: f32,
    pub y_min: f32,
    pub x_max: f32,
    pub y_max: f32,
}

impl Rect {
    pub const fn new(x_min: f32, y_min: f32, x_max: f32, y_max: f32) -> Rect {
        Rect {
            x_min,
            y_min,
            x_max,
            y_max,
        }
    }

    pub fn width(&self) -> f32 {
        self.x_max - self.x_min
    }

    pub fn height(&self) -> f32 {
        self.y_max - self.y_min
    }

    /// Half-open containment.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        x >= self.x_min && x < self.x_max && y >= self.y_min && y < self.y_max
    }

    /// Whether the two rectangles share any area.
    pub fn intersects(&self, other: &Rect) -> bool {
        self.x_min < other.x_max
            && other.x_min < self.x_max
            && self.y_min < other.y_max
            && other.y_min < self.y_max
    }

    /// How far `(x, y)` is from the rectangle (0 inside).
    pub fn distance_to(&self, x: f32, y: f32) -> f32 {
        let dx = (self.x_min - x).max(x - self.x_max).max(0.0);
        let dy = (self.y_min - y).max(y - self.y_max).max(0.0);
        (dx * dx + dy * dy).sqrt()
    }

    /// The shortest distance between a point of this rectangle and one of `other` (0 if
    /// they touch or overlap).
    pub fn distance_to_rect(&self, other: &Rect) -> f32 {
        let dx = (self.x_min - other.x_max)
            .max(other.x_min - self.x_max)
            .max(0.0);
        let dy = (self.y_min - other.y_max)
            .max(other.y_min - self.y_max)
            .max(0.0);
        (dx * dx + dy * dy).sqrt()
    }

    /// The part of this rectangle inside `other` (empty rectangles have `x_min ≥ x_max`).
    pub fn clip(&self, other: &Rect) -> Rect {
        Rect::new(
            self.x_min.max(other.x_min),
            self.y_min.max(other.y_min),
            self.x_max.min(other.x_max),
            self.y_max.min(other.y_max),
        )
    }

    /// The rectangle grown by `by` metres on every side (shrunk if negative).
    pub fn expand(&self, by: f32) -> Rect {
        Rect::new(
            self.x_min - by,
            self.y_min - by,
            self.x_max + by,
            self.y_max + by,
        )
    }
}

/// What a world file says about geometry and timing. Plain data; [`World::new`] checks it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorldConfig {
    /// The playable area. Entities are clamped inside it.
    pub bounds: Rect,
    /// Zone columns (split along x).
    pub zones_x: u32,
    /// Zone rows (split along y).
    pub zones_y: u32,
    /// Hysteresis: an entity must be this far past a border before it is handed off.
    pub margin_m: f32,
    /// Ghost radius: entities this close to a neighbour are mirrored to it. > margin.
    pub aura_m: f32,
    /// Fixed simulation rate.
    pub tick_rate_hz: u32,
    /// Edge of one spatial-index cell.
    pub cell_size_m: f32,
}

impl Default for WorldConfig {
    /// Two zones side by side on a 4 km × 2 km plane, 30 Hz: the default for a 2-core node.
    fn default() -> WorldConfig {
        WorldConfig {
            bounds: Rect::new(0.0, 0.0, 4096.0, 2048.0),
            zones_x: 2,
            zones_y: 1,
            margin_m: 8.0,
            aura_m: 32.0,
            tick_rate_hz: 30,
            cell_size_m: 32.0,
        }
    }
}

/// Why a [`WorldConfig`] was refused. Each names the field and what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum WorldError {
    #[error("bounds: must be finite with min < max on both axes (got {0:?})")]
    Bounds(Rect),
    #[error("zones_x × zones_y: must be between 1 and {max} zones (got {x} × {y})", max = ZONES_MAX)]
    ZoneCount { x: u32, y: u32 },
    #[error("margin_m: must be finite and ≥ 0 (got {0})")]
    Margin(f32),
    #[error("aura_m: must be finite and greater than margin_m = {margin} (got {aura})")]
    Aura { aura: f32, margin: f32 },
    #[error(
        "aura_m: zones are {width} × {height} m, too small for an aura of {aura} m on both sides; \
         use fewer zones or a smaller aura"
    )]
    ZoneTooSmall { width: f32, height: f32, aura: f32 },
    #[error("tick_rate_hz: must be between 1 and 1000 (got {0})")]
    TickRate(u32),
    #[error("cell_size_m: must be finite and ≥ 1 m (got {0})")]
    CellSize(f32),
    #[error("cell_size_m: {cells} cells per zone exceeds the limit of {max}; use larger cells", max = crate::limits::GRID_CELLS_MAX)]
    TooManyCells { cells: u64 },
}

/// A checked world: geometry lookups that cannot fail.
#[derive(Clone, Copy, Debug)]
pub struct World {
    config: WorldConfig,
    zone_width_m: f32,
    zone_height_m: f32,
}

impl World {
    /// Checks `config` and builds the world.
    pub fn new(config: WorldConfig) -> Result<World, WorldError> {
        let b = config.bounds;
        let finite = [b.x_min, b.y_min, b.x_max, b.y_max]
            .iter()
            .all(|v| v.is_finite());
        if !finite || b.x_min >= b.x_max || b.y_min >= b.y_max {
            return Err(WorldError::Bounds(b));
        }
        let zone_count = u64::from(config.zones_x) * u64::from(config.zones_y);
        if zone_count == 0 || zone_count > ZONES_MAX as u64 {
            return Err(WorldError::ZoneCount {
                x: config.zones_x,
                y: config.zones_y,
            });
        }
        if !config.margin_m.is_finite() || config.margin_m < 0.0 {
            return Err(WorldError::Margin(config.margin_m));
        }
        if !config.aura_m.is_finite() || config.aura_m <= config.margin_m {
            return Err(WorldError::Aura {
                aura: config.aura_m,
                margin: config.margin_m,
            });
        }
        let zone_width_m = b.width() / config.zones_x as f32;
        let zone_height_m = b.height() / config.zones_y as f32;
        if zone_width_m <= 2.0 * config.aura_m || zone_height_m <= 2.0 * config.aura_m {
            return Err(WorldError::ZoneTooSmall {
                width: zone_width_m,
                height: zone_height_m,
                aura: config.aura_m,
            });
        }
        if config.tick_rate_hz == 0 || config.tick_rate_hz > 1000 {
            return Err(WorldError::TickRate(config.tick_rate_hz));
        }
        if !config.cell_size_m.is_finite() || config.cell_size_m < 1.0 {
            return Err(WorldError::CellSize(config.cell_size_m));
        }
        let world = World {
            config,
            zone_width_m,
            zone_height_m,
        };
        let (columns, rows) = world.grid_shape();
        let cells = u64::from(columns) * u64::from(rows);
        if cells > crate::limits::GRID_CELLS_MAX as u64 {
            return Err(WorldError::TooManyCells { cells });
        }
        Ok(world)
    }

    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    pub fn bounds(&self) -> Rect {
        self.config.bounds
    }

    pub fn zone_count(&self) -> u32 {
        self.config.zones_x * self.config.zones_y
    }

    /// Every zone id, row-major.
    pub fn zones(&self) -> impl Iterator<Item = ZoneID> + use<> {
        (0..self.zone_count()).map(ZoneID)
    }

    pub fn tick_duration(&self) -> Duration {
        crate::time::tick_duration(self.config.tick_rate_hz)
    }

    /// The rectangle of `zone`. The last row and column end exactly at the bounds.
    pub fn zone_rect(&self, zone: ZoneID) -> Rect {
        assert!(zone.0 < self.zone_count());
        let column = zone.0 % self.config.zones_x;
        let row = zone.0 / self.config.zones_x;
        let b = self.config.bounds;
        let x_min = b.x_min + column as f32 * self.zone_width_m;
        let y_min = b.y_min + row as f32 * self.zone_height_m;
        let x_max = if column + 1 == self.config.zones_x {
            b.x_max
        } else {
            b.x_min + (column + 1) as f32 * self.zone_width_m
        };
        let y_max = if row + 1 == self.config.zones_y {
            b.y_max
        } else {
            b.y_min + (row + 1) as f32 * self.zone_height_m
        };
        Rect::new(x_min, y_min, x_max, y_max)
    }

    /// The zone containing `(x, y)`; points outside the bounds clamp to the nearest zone.
    ///
    /// Consistent with [`World::zone_rect`]: `zone_rect(zone_at(x, y)).contains(x, y)` for
    /// every point inside the bounds.
    pub fn zone_at(&self, x: f32, y: f32) -> ZoneID {
        let column = self.axis_index(
            x,
            self.config.bounds.x_min,
            self.zone_width_m,
            self.config.zones_x,
            |z| self.zone_rect(ZoneID(z)).x_min,
        );
        let row = self.axis_index(
            y,
            self.config.bounds.y_min,
            self.zone_height_m,
            self.config.zones_y,
            |r| self.zone_rect(ZoneID(r * self.config.zones_x)).y_min,
        );
        ZoneID(row * self.config.zones_x + column)
    }

    /// Index along one axis, corrected by one step against the exact rectangle edges so
    /// that float rounding in the division never disagrees with `zone_rect`.
    fn axis_index(
        &self,
        v: f32,
        origin: f32,
        step: f32,
        count: u32,
        edge: impl Fn(u32) -> f32,
    ) -> u32 {
        let guess = ((v - origin) / step).floor();
        // NaN and negatives go to 0, huge values to the last index.
        let mut index = if guess >= 0.0 {
            (guess as u32).min(count - 1)
        } else {
            0
        };
        if index > 0 && v < edge(index) {
            index -= 1;
        } else if index + 1 < count && v >= edge(index + 1) {
            index += 1;
        }
        index
    }

    /// The zones sharing an edge or a corner with `zone`, in row-major order.
    pub fn neighbours(&self, zone: ZoneID) -> Neighbours {
        assert!(zone.0 < self.zone_count());
        let columns = i64::from(self.config.zones_x);
        let rows = i64::from(self.config.zones_y);
        let column = i64::from(zone.0) % columns;
        let row = i64::from(zone.0) / columns;
        let mut out = Neighbours {
            ids: [ZoneID(0); NEIGHBOURS_MAX],
            count: 0,
        };
        for dy in -1..=1 {
            for dx in -1..=1 {
                let (c, r) = (column + dx, row + dy);
                if (dx, dy) == (0, 0) || c < 0 || r < 0 || c >= columns || r >= rows {
                    continue;
                }
                out.ids[out.count] = ZoneID((r * columns + c) as u32);
                out.count += 1;
            }
        }
        out
    }

    /// Columns and rows of the spatial-index grid over one zone plus its aura.
    pub fn grid_shape(&self) -> (u32, u32) {
        let cell = self.config.cell_size_m;
        let span_x = self.zone_width_m + 2.0 * self.config.aura_m;
        let span_y = self.zone_height_m + 2.0 * self.config.aura_m;
        let columns = (span_x / cell).ceil().clamp(1.0, u32::MAX as f32) as u32;
        let rows = (span_y / cell).ceil().clamp(1.0, u32::MAX as f32) as u32;
        (columns, rows)
    }

    pub fn margin_m(&self) -> f32 {
        self.config.margin_m
    }

    pub fn aura_m(&self) -> f32 {
        self.config.aura_m
    }
}

/// Up to [`NEIGHBOURS_MAX`] zone ids, without allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbours {
    ids: [ZoneID; NEIGHBOURS_MAX],
    count: usize,
}

impl Neighbours {
    pub fn as_slice(&self) -> &[ZoneID] {
        &self.ids[..self.count]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(zones_x: u32, zones_y: u32) -> World {
        World::new(WorldConfig {
            bounds: Rect::new(-100.0, 0.0, 1100.0, 900.0),
            zones_x,
            zones_y,
            ..WorldConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn every_point_belongs_to_the_zone_whose_rect_contains_it() {
        let world = grid(3, 3);
        let mut x = -100.0f32;
        while x < 1100.0 {
            let mut y = 0.0f32;
            while y < 900.0 {
                let zone = world.zone_at(x, y);
                assert!(
                    world.zone_rect(zone).contains(x, y),
                    "({x}, {y}) -> {zone:?}"
                );
                y += 7.3;
            }
            x += 3.7;
        }
        // Exactly on an internal edge belongs to the zone on the max side.
        assert_eq!(world.zone_at(300.0, 0.0), ZoneID(1));
        // Outside clamps.
        assert_eq!(world.zone_at(-1e9, -1e9), ZoneID(0));
        assert_eq!(world.zone_at(1e9, 1e9), ZoneID(8));
        assert_eq!(world.zone_at(f32::NAN, 0.0), ZoneID(0));
    }

    #[test]
    fn neighbours_include_corners() {
        let world = grid(3, 3);
        assert_eq!(world.neighbours(ZoneID(4)).as_slice().len(), 8);
        assert_eq!(
            world.neighbours(ZoneID(0)).as_slice(),
            &[ZoneID(1), ZoneID(3), ZoneID(4)]
        );
        assert_eq!(grid(1, 1).neighbours(ZoneID(0)).as_slice(), &[]);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let ok = WorldConfig::default();
        let cases = [
            WorldConfig {
                bounds: Rect::new(0.0, 0.0, 0.0, 1.0),
                ..ok
            },
            WorldConfig { zones_x: 0, ..ok },
            WorldConfig {
                margin_m: -1.0,
                ..ok
            },
            WorldConfig { aura_m: 8.0, ..ok },
            WorldConfig {
                zones_x: 1000,
                ..ok
            },
            WorldConfig {
                tick_rate_hz: 0,
                ..ok
            },
            WorldConfig {
                cell_size_m: f32::NAN,
                ..ok
            },
            WorldConfig {
                cell_size_m: 1.0,
                bounds: Rect::new(0.0, 0.0, 1e6, 1e6),
                ..ok
            },
        ];
        let fields = [
            "bounds",
            "zones_x",
            "margin_m",
            "aura_m",
            "aura_m",
            "tick_rate_hz",
            "cell_size_m",
            "cell_size_m",
        ];
        for (config, field) in cases.iter().zip(fields) {
            let message = World::new(*config).unwrap_err().to_string();
            assert!(message.starts_with(field), "{message}");
        }
    }
}
