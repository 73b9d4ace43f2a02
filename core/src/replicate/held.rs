//! What a client holds, as the server keeps it: records in 32 bytes, game fields apart.
//!
//! A [`Record`] is 48 bytes, a third of them the four game fields — zero in a world whose
//! game shows clients nothing, and zero for most entities of many that do. Every tick a
//! client's baseline is read and its new snapshot written (two lists of up to 128 records,
//! from and to the last-level cache: most of the bytes a snapshot costs), so the server
//! keeps them as [`Core`]s — the standard fields, 32 bytes — with the game fields in a
//! parallel column that stays empty while every record's game fields are zero. The wire
//! format and the client's codec keep [`Record`].

use meridian_protocol::delta::{GAME_FIELDS, Record};

/// A record's standard fields (see [`Record`]), and the tick of the sample they hold:
/// 32 bytes, aligned to 32 so that a record never spans two cache lines. (`follow` reads
/// each member's id and position, the first half, of the tick's table; the entry walk then
/// reads the whole record. At the allocator's 16-byte alignment every other record
/// spilled into a line `follow` had not touched: ~26 first-level misses a snapshot, and
/// 0.92–0.97× of `replicate_ticks` runs without them.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(align(32))]
pub(super) struct Core {
    pub(super) id: u64,
    pub(super) x: i32,
    pub(super) y: i32,
    pub(super) z: i16,
    pub(super) vx: i16,
    pub(super) vy: i16,
    pub(super) kind: u16,
    pub(super) flags: u16,
    /// The name of the state these values are: the tick of the entry that first sent it
    /// ([`super::samples`]), in 16 bits ([`super::samples::tick16`]); 0: not known
    /// (records carried from another zone, or not a client's). Not part of the record:
    /// [`Core::with`] leaves it out.
    pub(super) sent: u16,
}

// One cache line holds two records, and none spans two lines (a field more would make it
// 64 bytes).
const _: () = assert!(core::mem::size_of::<Core>() == 32 && core::mem::align_of::<Core>() == 32);

const NO_GAME: [i32; GAME_FIELDS] = [0; GAME_FIELDS];

impl Core {
    #[inline(always)]
    pub(super) fn of(r: &Record) -> Core {
        Core {
            id: r.id,
            x: r.x,
            y: r.y,
            z: r.z,
            vx: r.vx,
            vy: r.vy,
            kind: r.kind,
            flags: r.flags,
            sent: 0,
        }
    }

    /// The same values, as the sample of the snapshot of tick `sent` (16 bits).
    #[inline(always)]
    pub(super) fn sent_at(self, sent: u16) -> Core {
        Core { sent, ..self }
    }

    /// The record with these game fields.
    #[inline(always)]
    pub(super) fn with(self, game: [i32; GAME_FIELDS]) -> Record {
        Record {
            id: self.id,
            x: self.x,
            y: self.y,
            z: self.z,
            vx: self.vx,
            vy: self.vy,
            kind: self.kind,
            flags: self.flags,
            game,
        }
    }
}

/// A list of records sorted by id, kept as cores and (when any is nonzero) game fields:
/// `game` is empty or exactly as long as `core`.
#[derive(Clone, Debug, Default)]
pub(super) struct Held {
    core: Vec<Core>,
    game: Vec<[i32; GAME_FIELDS]>,
}

/// No records (a client with no baseline).
pub(super) static NOTHING: Held = Held {
    core: Vec::new(),
    game: Vec::new(),
};

impl Held {
    pub(super) fn with_capacity(n: usize) -> Held {
        Held {
            core: Vec::with_capacity(n),
            game: Vec::new(),
        }
    }

    pub(super) fn clear(&mut self) {
        self.core.clear();
        self.game.clear();
    }

    pub(super) fn len(&self) -> usize {
        self.core.len()
    }

    /// The cores, in id order.
    pub(super) fn cores(&self) -> &[Core] {
        &self.core
    }

    /// Record `i` whole.
    #[inline(always)]
    pub(super) fn record(&self, i: usize) -> Record {
        self.core[i].with(self.game(i))
    }

    /// Record `i`'s game fields.
    #[inline(always)]
    pub(super) fn game(&self, i: usize) -> [i32; GAME_FIELDS] {
        self.game.get(i).copied().unwrap_or(NO_GAME)
    }

    /// Appends a record (ids must keep increasing).
    #[inline(always)]
    pub(super) fn push(&mut self, r: &Record) {
        if !self.game.is_empty() || r.game != NO_GAME {
            self.game.resize(self.core.len(), NO_GAME);
            self.game.push(r.game);
        }
        self.core.push(Core::of(r));
    }

    /// Makes the list `n` records long, to be written by position: returns the cores
    /// (stale: every one must be written) and the game column, emptied: give it the
    /// records' game fields with [`Held::put_game`] (it stays empty while all are zero).
    pub(super) fn sized(&mut self, n: usize) -> (&mut [Core], &mut Vec<[i32; GAME_FIELDS]>) {
        self.core.resize(n, Core::default());
        self.game.clear();
        (&mut self.core, &mut self.game)
    }

    /// Record `i`'s game fields, of `n` (see [`Held::sized`]): the column is made whole
    /// (zeros) the first time a record has any.
    #[inline(always)]
    pub(super) fn put_game(
        game: &mut Vec<[i32; GAME_FIELDS]>,
        n: usize,
        i: usize,
        fields: [i32; GAME_FIELDS],
    ) {
        if fields != NO_GAME || !game.is_empty() {
            game.resize(n, NO_GAME);
            game[i] = fields;
        }
    }

    /// The cores and game column as [`Held::sized`] left them, to go on writing.
    pub(super) fn written(&mut self) -> (&mut [Core], &mut Vec<[i32; GAME_FIELDS]>) {
        (&mut self.core, &mut self.game)
    }

    /// The game column: empty, or one entry per record.
    pub(super) fn games(&self) -> &[[i32; GAME_FIELDS]] {
        &self.game
    }

    /// Whether any record has nonzero game fields (the column is kept).
    pub(super) fn has_game(&self) -> bool {
        !self.game.is_empty()
    }

    /// Replaces the contents with a copy of `other`'s (one block copy per column: whole
    /// cache lines written, which need not be read first).
    pub(super) fn copy_from(&mut self, other: &Held) {
        self.core.clear();
        self.core.extend_from_slice(&other.core);
        self.game.clear();
        self.game.extend_from_slice(&other.game);
    }

    /// Replaces the contents with `records`.
    pub(super) fn assign(&mut self, records: &[Record]) {
        self.clear();
        for r in records {
            self.push(r);
        }
    }

    /// The records whole, into `out`.
    pub(super) fn to_records(&self, out: &mut Vec<Record>) {
        out.clear();
        out.extend((0..self.len()).map(|i| self.record(i)));
    }

    /// One load per cache line of the list, folded into one value (for
    /// [`super::Replicator::warm`]): cores are 32 bytes, game fields 16.
    pub(super) fn fold_lines(&self) -> u64 {
        let mut fold = 0;
        for c in self.core.iter().step_by(2) {
            fold ^= c.id;
        }
        for g in self.game.iter().step_by(4) {
            fold ^= g[0] as u64;
        }
        fold
    }

    /// The index of the record of `id`, if held.
    pub(super) fn find(&self, id: u64) -> Option<usize> {
        self.core.binary_search_by_key(&id, |c| c.id).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, game: [i32; GAME_FIELDS]) -> Record {
        Record {
            id,
            x: id as i32 * 3,
            y: -(id as i32),
            z: 7,
            vx: -2,
            vy: 5,
            kind: 9,
            flags: 0x101,
            game,
        }
    }

    /// Records go in and come out whole, game fields or not, whichever record is the first
    /// with nonzero ones; the game column stays empty while every record's are zero.
    #[test]
    fn records_come_back_whole() {
        for first_game in [0, 1, 4, 9] {
            let records: Vec<Record> = (0..10u64)
                .map(|k| {
                    let game = if k >= first_game && k % 2 == 1 {
                        [k as i32, 0, -1, 2]
                    } else {
                        NO_GAME
                    };
                    record(100 + k, game)
                })
                .collect();
            let mut held = Held::with_capacity(4);
            held.assign(&records);
            let mut back = Vec::new();
            held.to_records(&mut back);
            assert_eq!(back, records, "first game at {first_game}");
            assert!(held.game.is_empty() || held.game.len() == held.core.len());
            // Written by position, in any order (the one pass's two walks).
            let mut placed = Held::default();
            let (cores, games) = placed.sized(records.len());
            for (i, r) in records.iter().enumerate().rev() {
                cores[i] = Core::of(r);
                Held::put_game(games, records.len(), i, r.game);
            }
            placed.to_records(&mut back);
            assert_eq!(back, records);
            assert_eq!(held.find(105), Some(5));
            assert_eq!(held.find(99), None);
        }
        let mut plain = Held::default();
        plain.assign(&[record(1, NO_GAME), record(2, NO_GAME)]);
        assert!(plain.game.is_empty());
    }
}
