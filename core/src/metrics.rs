//! What a zone measures for its operator: counter structs that can list themselves, and
//! fixed-bucket histograms.
//!
//! Both are plain values owned by the zone's thread: recording is an add (a counter) or a
//! short search and an add (a histogram) — no atomics, no locks, no allocation. The node
//! copies them out once a second and exposes them (`/metrics`, Prometheus text format).

/// Defines a struct of `u64` counters and `for_each`, which lists every field with its name
/// and its doc comment (the help text a metrics exporter shows). Only doc comments may be
/// put on the fields.
///
/// ```
/// meridian_core::counters! {
///     #[derive(Clone, Copy, Debug, Default)]
///     pub struct Example {
///         /// Things that happened.
///         pub happened: u64,
///     }
/// }
/// let mut seen = Vec::new();
/// Example { happened: 3 }.for_each(|name, help, value| seen.push((name, help, value)));
/// assert_eq!(seen, [("happened", " Things that happened.\n", 3)]);
/// ```
#[macro_export]
macro_rules! counters {
    (
        $(#[$outer:meta])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])* pub $field:ident: u64, )*
        }
    ) => {
        $(#[$outer])*
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: u64, )*
        }

        impl $name {
            /// Every counter: its field name, its doc comment (may be empty) and its value.
            pub fn for_each(&self, mut f: impl FnMut(&'static str, &'static str, u64)) {
                $( f(stringify!($field), concat!($($doc, "\n",)* ""), self.$field); )*
            }
        }
    };
}

/// A cumulative histogram with fixed upper bounds (Prometheus's `le` buckets, plus `+Inf`).
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last is above every bound.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    /// A histogram with no bounds: every observation lands in `+Inf`.
    fn default() -> Histogram {
        Histogram::new(&[])
    }
}

impl Histogram {
    /// A histogram with these upper bounds, which must increase strictly.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "histogram bounds must increase"
        );
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Counts one observation.
    pub fn record(&mut self, value: f64) {
        let bucket = self.bounds.partition_point(|&b| b < value);
        self.counts[bucket] += 1;
        self.sum += value;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// `(upper bound, observations in that bucket alone)` for every bound, then `+Inf`.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = self.bounds.iter().copied().chain([f64::INFINITY]);
        bounds.zip(self.counts.iter().copied())
    }

    /// `(upper bound, observations at or below it)` for every bound, then `+Inf`.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = self.bounds.iter().copied().chain([f64::INFINITY]);
        bounds.zip(self.counts.iter().scan(0, |total, &c| {
            *total += c;
            Some(*total)
        }))
    }

    /// What was recorded after `earlier`, an older copy of this histogram (same bounds).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        if earlier.bounds != self.bounds {
            return self.clone();
        }
        let mut delta = self.clone();
        for (d, e) in delta.counts.iter_mut().zip(&earlier.counts) {
            *d = d.saturating_sub(*e);
        }
        delta.count = self.count.saturating_sub(earlier.count);
        delta.sum = (self.sum - earlier.sum).max(0.0);
        delta
    }

    /// The smallest bound at or below which a fraction `q` of the observations lie
    /// (`+Inf` past the last bound, 0 when empty): an upper estimate of the quantile.
    pub fn quantile_bound(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let wanted = (q * self.count as f64).ceil().max(1.0) as u64;
        self.cumulative()
            .find(|&(_, n)| n >= wanted)
            .map_or(f64::INFINITY, |(bound, _)| bound)
    }
}

/// Bounds for tick durations, seconds (a 30 Hz tick has 33 ms).
pub const TICK_SECONDS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.033, 0.066, 0.1, 0.25,
];
/// Bounds for handoff latency, ticks from the crossing to DONE.
pub const HANDOFF_TICKS: &[f64] = &[
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];
/// Bounds for handoff latency, seconds from the crossing to DONE.
pub const HANDOFF_SECONDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0,
];
/// Bounds for how long a tick's datagrams wait for the disk and the standby, seconds.
pub const GATE_SECONDS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.033, 0.066, 0.1, 0.25, 1.0,
];
/// Bounds for the size of a snapshot datagram, bytes (the cap is 1,200 plus the seal).
pub const SNAPSHOT_BYTES: &[f64] = &[64.0, 128.0, 256.0, 384.0, 512.0, 768.0, 1024.0, 1280.0];
/// Bounds for the age of an input when applied, ticks (see `Sessions::histograms`).
pub const INPUT_AGE_TICKS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 30.0, 60.0];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive() {
        let mut h = Histogram::new(&[1.0, 2.0, 5.0]);
        for v in [0.5, 1.0, 1.5, 2.0, 4.0, 9.0] {
            h.record(v);
        }
        let buckets: Vec<_> = h.cumulative().collect();
        assert_eq!(
            buckets,
            [(1.0, 2), (2.0, 4), (5.0, 5), (f64::INFINITY, 6)],
            "a value equal to a bound counts in that bound's bucket"
        );
        let alone: Vec<_> = h.buckets().map(|b| b.1).collect();
        assert_eq!(alone, [2, 2, 1, 1]);
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum(), 18.0);
        assert_eq!(h.quantile_bound(0.5), 2.0);
        assert_eq!(h.quantile_bound(0.99), f64::INFINITY);
        assert_eq!(Histogram::new(&[1.0]).quantile_bound(0.99), 0.0);
        let earlier = h.clone();
        h.record(1.5);
        let delta = h.since(&earlier);
        assert_eq!((delta.count(), delta.quantile_bound(1.0)), (1, 2.0));
    }

    #[test]
    #[should_panic(expected = "increase")]
    fn unordered_bounds_are_refused() {
        let _ = Histogram::new(&[2.0, 1.0]);
    }
}
