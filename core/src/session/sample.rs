//! The per-tick samples of what unproven senders ask for (CONNECTs to answer, RESPONSEs to
//! verify), fair across source IPs: [`Sample`].

/// A source whose offers this round are dropped (it is not in the sample).
const NONE: u32 = u32::MAX;

/// A sample of at most `capacity` of the items offered since the last [`Sample::take`],
/// fair across sources (IP buckets, [`super::gate::Gate::bucket`]) and, within a source,
/// across its items:
/// - every source that offered has the same chance to be in the sample, however many
///   items it offered and whenever in the tick (reservoir sampling over the sources);
/// - a source in the sample holds a uniform sample of at most `per_source` of its items;
/// - [`Sample::take`] hands the sources' items out round by round — every source's first,
///   then every source's second, … — until `capacity`.
///
/// So when more sources want in than there is room, each kept source gets one item: a
/// flood from N IPs leaves an honest IP a chance of `capacity / (N + 1)` a tick, whatever
/// rate the flood sends at; when fewer, each gets up to `per_source`. A uniform sample of
/// the items (the sampler before) gave each source a chance in proportion to what it sent:
/// an IP at its per-tick limit had that limit times an honest client's chance.
#[derive(Debug)]
pub(super) struct Sample<T> {
    groups: Vec<Group<T>>,
    /// Groups in use this round (the rest keep their allocations).
    live: usize,
    capacity: usize,
    per_source: usize,
    /// Sources that offered this round.
    sources: u64,
    round: u32,
    /// Per source: the round it last offered in, and its group then (or [`NONE`]).
    marks: Vec<(u32, u32)>,
    out: Vec<T>,
}

#[derive(Debug)]
struct Group<T> {
    source: usize,
    offered: u64,
    items: Vec<T>,
}

/// Items an offer (or a [`Sample::take`]) left out of the sample, by why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Dropped {
    /// Its source offered more than `per_source` this round: one of them was left out.
    pub(super) over_source: u64,
    /// No room: the source is not in the sample, lost its place to another, or its items
    /// came after `capacity` in the round-robin.
    pub(super) over_budget: u64,
}

impl<T: Copy> Sample<T> {
    /// A sample of at most `capacity` items, `per_source` (at least 1) of one source, over
    /// sources numbered below `sources`.
    pub(super) fn new(capacity: usize, per_source: usize, sources: usize) -> Sample<T> {
        Sample {
            groups: Vec::with_capacity(capacity),
            live: 0,
            capacity,
            per_source: per_source.max(1),
            sources: 0,
            round: 1,
            marks: vec![(0, NONE); sources],
            out: Vec::with_capacity(capacity),
        }
    }

    /// Offers `item` from `source` (below the `sources` given to [`Sample::new`]);
    /// `random` is a fresh random number.
    pub(super) fn offer(&mut self, source: usize, item: T, random: u64) -> Dropped {
        let source = source % self.marks.len();
        let (round, group) = self.marks[source];
        if round == self.round {
            if group == NONE {
                return Dropped {
                    over_budget: 1,
                    ..Dropped::default()
                };
            }
            // Another item of a source in the sample: a uniform sample of its items.
            let g = &mut self.groups[group as usize];
            g.offered += 1;
            if g.items.len() < self.per_source {
                g.items.push(item);
                return Dropped::default();
            }
            let j = (random % g.offered) as usize;
            if j < g.items.len() {
                g.items[j] = item;
            }
            return Dropped {
                over_source: 1,
                ..Dropped::default()
            };
        }
        // The source's first offer this round: a uniform sample of the sources.
        self.sources += 1;
        if self.live < self.capacity {
            let g = self.live;
            self.live += 1;
            if g == self.groups.len() {
                self.groups.push(Group {
                    source,
                    offered: 0,
                    items: Vec::with_capacity(self.per_source),
                });
            }
            self.start_group(g, source, item);
            return Dropped::default();
        }
        let j = (random % self.sources) as usize;
        if j >= self.capacity {
            self.marks[source] = (self.round, NONE);
            return Dropped {
                over_budget: 1,
                ..Dropped::default()
            };
        }
        // In, in the place of a source that was: its items are out.
        let evicted = &self.groups[j];
        self.marks[evicted.source] = (self.round, NONE);
        let over_budget = evicted.items.len() as u64;
        self.start_group(j, source, item);
        Dropped {
            over_budget,
            ..Dropped::default()
        }
    }

    fn start_group(&mut self, g: usize, source: usize, item: T) {
        let group = &mut self.groups[g];
        group.source = source;
        group.offered = 1;
        group.items.clear();
        group.items.push(item);
        self.marks[source] = (self.round, g as u32);
    }

    /// The round's sample — the sources' items round by round, starting at a source
    /// chosen by `random`, at most `capacity` — and what did not fit; the next round
    /// starts empty. Hand the vector back with [`Sample::give_back`] to keep its
    /// allocation.
    pub(super) fn take(&mut self, random: u64) -> (Vec<T>, Dropped) {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let live = self.live;
        let held: usize = self.groups[..live].iter().map(|g| g.items.len()).sum();
        let start = if live == 0 {
            0
        } else {
            (random % live as u64) as usize
        };
        'rounds: for i in 0..self.per_source {
            for k in 0..live {
                if out.len() == self.capacity {
                    break 'rounds;
                }
                if let Some(&item) = self.groups[(start + k) % live].items.get(i) {
                    out.push(item);
                }
            }
        }
        for g in &mut self.groups[..live] {
            g.items.clear();
        }
        self.live = 0;
        self.sources = 0;
        self.round = self.round.wrapping_add(1);
        if self.round == 0 {
            // Marks of 2³² rounds ago would read as this round's.
            self.marks.fill((0, NONE));
            self.round = 1;
        }
        let over_budget = (held - out.len()) as u64;
        (
            out,
            Dropped {
                over_budget,
                ..Dropped::default()
            },
        )
    }

    pub(super) fn give_back(&mut self, mut items: Vec<T>) {
        items.clear();
        if items.capacity() >= self.out.capacity() {
            self.out = items;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of random numbers (splitmix64).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    /// One round: `offers` (source, item) in order; the sample and what was dropped.
    fn round(s: &mut Sample<u32>, rng: &mut Rng, offers: &[(usize, u32)]) -> (Vec<u32>, Dropped) {
        let mut dropped = Dropped::default();
        for &(source, item) in offers {
            let d = s.offer(source, item, rng.next());
            dropped.over_source += d.over_source;
            dropped.over_budget += d.over_budget;
        }
        let (items, d) = s.take(rng.next());
        dropped.over_budget += d.over_budget;
        let kept = items.clone();
        s.give_back(items);
        (kept, dropped)
    }

    /// A flood of 64 sources at 8 items a tick each, sent before and after one honest
    /// item a tick: with more flooding sources than room (capacity 32), the honest source
    /// gets in about 32 / 65 of the rounds — with room for everyone (capacity 128), every
    /// round. A sample uniform over items gave it 32 / 513 and 128 / 513.
    #[test]
    fn a_source_that_sends_more_gets_no_larger_share() {
        for (capacity, least) in [(32, 0.40), (128, 1.0)] {
            let mut s = Sample::new(capacity, 4, 4096);
            let mut rng = Rng(7);
            let honest = 4000;
            let mut offers: Vec<(usize, u32)> = (0..512).map(|i| (i / 8, i as u32)).collect();
            offers.insert(300, (honest, u32::MAX));
            let rounds = 2_000;
            let mut kept = 0;
            for _ in 0..rounds {
                let (items, dropped) = round(&mut s, &mut rng, &offers);
                assert_eq!(items.len(), capacity);
                assert_eq!(
                    items.len() as u64 + dropped.over_source + dropped.over_budget,
                    offers.len() as u64,
                    "every item kept or counted"
                );
                kept += u32::from(items.contains(&u32::MAX));
            }
            let share = f64::from(kept) / f64::from(rounds);
            assert!(
                share >= least,
                "capacity {capacity}: the honest source got in {share}"
            );
            // And no flooding source holds more than one place while others wait.
            if capacity == 32 {
                let (items, _) = round(&mut s, &mut rng, &offers);
                let mut sources: Vec<u32> = items.iter().map(|i| i / 8).collect();
                sources.sort_unstable();
                sources.dedup();
                assert_eq!(sources.len(), items.len(), "{items:?}");
            }
        }
    }

    /// Room to spare: each source gets up to `per_source`, and nothing is dropped but its
    /// excess; the round-robin shares the last places among the sources.
    #[test]
    fn with_room_each_source_gets_up_to_its_share() {
        let mut s = Sample::new(32, 4, 4096);
        let mut rng = Rng(1);
        // 3 sources × 10 items: 4 each.
        let offers: Vec<(usize, u32)> = (0..30).map(|i| (i % 3, i as u32)).collect();
        let (items, dropped) = round(&mut s, &mut rng, &offers);
        assert_eq!(items.len(), 12);
        assert_eq!(dropped.over_source, 18);
        for source in 0..3 {
            assert_eq!(items.iter().filter(|&&i| i % 3 == source).count(), 4);
        }
        // 10 sources × 4 items into 32 places: 3 or 4 each, all 10 in.
        let offers: Vec<(usize, u32)> = (0..40).map(|i| (i % 10, i as u32)).collect();
        let (items, dropped) = round(&mut s, &mut rng, &offers);
        assert_eq!(items.len(), 32);
        assert_eq!(dropped.over_budget, 8);
        for source in 0..10 {
            let n = items.iter().filter(|&&i| i % 10 == source).count();
            assert!((3..=4).contains(&n), "source {source}: {n}");
        }
        // An empty round, then one item: the round before left nothing behind.
        assert_eq!(round(&mut s, &mut rng, &[]).0, Vec::<u32>::new());
        assert_eq!(round(&mut s, &mut rng, &[(5, 99)]).0, vec![99]);
    }

    /// Within a source, which item is kept does not depend on when it came: a source
    /// that sends 20 items a round (one place) has each kept about a twentieth of the
    /// time, the first as often as the last.
    #[test]
    fn within_a_source_every_item_has_the_same_chance() {
        let mut s = Sample::new(8, 1, 64);
        let mut rng = Rng(3);
        let offers: Vec<(usize, u32)> = (0..20).map(|i| (9, i)).collect();
        let mut times = [0u32; 20];
        let rounds = 20_000;
        for _ in 0..rounds {
            let (items, dropped) = round(&mut s, &mut rng, &offers);
            assert_eq!((items.len(), dropped.over_source), (1, 19));
            times[items[0] as usize] += 1;
        }
        for (i, &t) in times.iter().enumerate() {
            // Expected 1,000 each; a standard deviation is ~31.
            assert!(
                (850..=1_150).contains(&t),
                "item {i} kept {t} times: {times:?}"
            );
        }
    }
}
