//! Every capacity in a zone, in one place.
//!
//! A zone allocates all of its tables once, from a [`Limits`], when it is built; the tick
//! never grows a collection. When a table is full the new item is dropped and counted —
//! overload shows up as a counter, not as a latency spike or an out-of-memory kill.
//!
//! Fixed constants (lane width, neighbour count, cell count) are `const`s with their
//! relationships asserted at compile time. Per-zone capacities vary by deployment (a
//! bench zone holds a million entities, a test zone a hundred), so they are a value,
//! checked by [`Limits::validate`].

use crate::world::NEIGHBOURS_MAX;

/// SIMD lane width of every column kernel (`wide::f32x8`).
pub const LANES: usize = 8;

/// The most zones one world may have.
pub const ZONES_MAX: usize = 1 << 16;

/// The most grid cells one zone's spatial index may have (cell ids are exact in `f32`).
pub const GRID_CELLS_MAX: usize = 1 << 22;

/// Largest datagram any zone sends (fits an IPv6 minimum-MTU path with room for headers).
pub const DATAGRAM_SIZE_MAX: usize = 1200;

/// Every grid bucket gets at least this many free entries when the grid is (re)built,
/// so an entity moving into an empty cell does not force a rebuild.
pub const GRID_BUCKET_SLACK_MIN: usize = 4;

const _: () = assert!(LANES == 8, "the kernels are written for wide::f32x8");
const _: () = assert!(GRID_CELLS_MAX < (1 << 24), "cell ids must be exact in f32");
const _: () = assert!(NEIGHBOURS_MAX == 8, "a grid zone has at most 8 neighbours");
const _: () = assert!(ZONES_MAX <= (1 << crate::entities::ID_ZONE_BITS));

/// Default cap of each in-flight table (offers, tombstones, staged arrivals).
pub const IN_FLIGHT_DEFAULT_MAX: u32 = 16_384;

const fn clamp(v: u32, lo: u32, hi: u32) -> u32 {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// Per-zone capacities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Entities a zone may own at once.
    pub entity_count_max: u32,
    /// Crossings (entities past a border by more than the margin) reported per tick.
    pub crossing_count_max: u32,
    /// Entities reported inside one neighbour's aura per tick.
    pub aura_count_max: u32,
    /// OFFERs awaiting an answer (source side).
    pub offer_count_max: u32,
    /// Relinquished entities awaiting DONE (source side).
    pub tombstone_count_max: u32,
    /// ACKed OFFERs awaiting COMMIT (target side); they reserve entity slots.
    pub staged_count_max: u32,
    /// Ghosts of neighbours' entities.
    pub ghost_count_max: u32,
    /// Remembered epochs of entities that left.
    pub epoch_memory_count_max: u32,
    /// Adoptions awaiting the source's CONFIRM (target side).
    pub unconfirmed_count_max: u32,
    /// Datagrams received between two ticks.
    pub inbox_datagram_count_max: u32,
    /// Datagrams one tick may send.
    pub outbox_datagram_count_max: u32,
    /// Events buffered for the driver between two drains.
    pub event_count_max: u32,
    /// Log records buffered for the driver between two drains.
    pub log_record_count_max: u32,
    /// Bytes of game state kept per entity (and ghost): the game's record length,
    /// ≤ 64 (`StateLayout::len`; a zone whose game declares another length changes it
    /// when the game is installed). 0: no game state.
    pub state_bytes: u32,
}

/// Why a [`Limits`] value cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("entity_count_max must be at least 1")]
    NoEntities,
    #[error("entity_count_max {0} exceeds the 2^31 slots a zone can index")]
    TooManyEntities(u32),
    #[error("crossing_count_max and aura_count_max must not exceed entity_count_max")]
    PerTickAboveTotal,
    #[error("every protocol table needs room for at least one entry")]
    EmptyTable,
    #[error("state_bytes {0} exceeds the 64-byte state slot")]
    StateTooLarge(u32),
}

impl Limits {
    /// Limits for a zone of up to `entity_count_max` entities, with per-tick tables able
    /// to report every entity (no drops below the entity limit).
    ///
    /// Protocol tables hold up to 16,384 transfers in flight (a flash crowd of that many
    /// crosses in one tick; a larger one spills into the next ticks, counted): they are
    /// scanned every tick, so their size is a per-tick cost, not just memory. The epoch
    /// memory keeps up to 131,072 departed entities (a minute at ~2,000 handoffs/s); the
    /// ghost store a quarter of the entity limit, up to 131,072 (ghosts live in a band
    /// `aura` wide along the borders).
    /// Datagram pools hold a quarter as many datagrams as entities, clamped to
    /// 256..=4096: about thirty handoff packets share a datagram.
    pub const fn for_entities(entity_count_max: u32) -> Limits {
        let datagrams = clamp(entity_count_max / 4, 256, 4096);
        let in_flight = clamp(entity_count_max, 1, IN_FLIGHT_DEFAULT_MAX);
        Limits {
            entity_count_max,
            crossing_count_max: entity_count_max,
            aura_count_max: entity_count_max,
            offer_count_max: in_flight,
            tombstone_count_max: in_flight,
            staged_count_max: in_flight,
            ghost_count_max: clamp(entity_count_max / 4, 1, 131_072),
            epoch_memory_count_max: clamp(entity_count_max.saturating_mul(2), 1024, 131_072),
            unconfirmed_count_max: in_flight,
            inbox_datagram_count_max: datagrams,
            outbox_datagram_count_max: datagrams,
            event_count_max: clamp(entity_count_max.saturating_mul(4), 1024, 65_536),
            log_record_count_max: clamp(entity_count_max.saturating_mul(2), 1024, 65_536),
            state_bytes: 0,
        }
    }

    /// Checks the relationships between the limits.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.entity_count_max == 0 {
            return Err(LimitsError::NoEntities);
        }
        if self.entity_count_max > (1 << 31) {
            return Err(LimitsError::TooManyEntities(self.entity_count_max));
        }
        if self.crossing_count_max > self.entity_count_max
            || self.aura_count_max > self.entity_count_max
        {
            return Err(LimitsError::PerTickAboveTotal);
        }
        if self.state_bytes as usize > meridian_layouts::handoff::STATE_SIZE {
            return Err(LimitsError::StateTooLarge(self.state_bytes));
        }
        Ok(())
    }

    /// Entity capacity rounded up to whole SIMD lanes.
    pub const fn entity_slots(&self) -> usize {
        (self.entity_count_max as usize).div_ceil(LANES) * LANES
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::for_entities(262_144)
    }
}
