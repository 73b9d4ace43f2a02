//! What the session layer counts and measures, cumulative.

use crate::metrics::Histogram;

crate::counters! {
    /// Counters, cumulative. Every dropped datagram lands in exactly one of them.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SessionCounters {
        pub connects: u64,
        pub challenges: u64,
        pub responses: u64,
        pub accepted: u64,
        pub refused: u64,
        /// RESPONSEs whose cookie did not match (wrong address, window or token): silence.
        pub bad_cookies: u64,
        pub tokens_wrong_world: u64,
        pub tokens_expired: u64,
        pub tokens_bad_key: u64,
        pub tokens_replayed: u64,
        pub bad_signatures: u64,
        pub inputs: u64,
        pub inputs_applied: u64,
        /// Inputs with a sequence already seen or older than the replay window.
        pub inputs_replayed: u64,
        /// Inputs for no session, or from another address than the session's.
        pub inputs_unknown: u64,
        /// Datagrams over their IP's (unproven) or session's per-tick allowance.
        pub rate_limited: u64,
        /// Datagrams from an IP cooling down after a session of it misbehaved.
        pub cooled_down: u64,
        /// RESPONSEs over their IP's share of the tick's handshake sample.
        pub handshakes_rate_limited: u64,
        /// RESPONSEs left out of the tick's handshake sample: no room for their IP.
        pub handshakes_deferred: u64,
        /// RESPONSEs whose token or whole self already failed verification (negative cache).
        pub handshakes_known_bad: u64,
        /// Sessions closed for failing input verification `input_failures_max` times.
        pub sessions_closed_bad_inputs: u64,
        /// CONNECTs not answered: left out of the tick's CHALLENGE sample (no room for
        /// their IP, or over its share).
        pub challenges_over_budget: u64,
        /// Sessions closed because a session arriving with its avatar had the same id or
        /// address (ids are random per zone).
        pub session_collisions: u64,
        /// Snapshots not sent: the session arrived with its avatar and its client has not yet
        /// proven its address here (no input from it verified yet).
        pub snapshots_withheld: u64,
        /// Snapshots owed but not sent: the tick's output did not fit (which sessions go
        /// without rotates from tick to tick).
        pub snapshots_dropped: u64,
        /// Sealed packets whose tag did not verify (dropped; they close nothing).
        pub sealed_forged: u64,
        /// RESPONSEs whose ephemeral or node key is not the zone's (a stale CHALLENGE, or a
        /// man in the middle), or whose key exchange was degenerate: refused.
        pub handshakes_bad_keys: u64,
        /// PATH_CHALLENGEs sent to a new address a session's packets came from.
        pub path_probes: u64,
        /// Sessions moved to a new address after it answered a probe.
        pub path_migrations: u64,
        /// Probes answered from an address another session holds: no move.
        pub path_conflicts: u64,
        pub malformed: u64,
        /// The verify batch, the session table or the outbox was full.
        pub overflow: u64,
        pub timeouts: u64,
        pub disconnects: u64,
        pub snapshots: u64,
        pub snapshot_bytes: u64,
        /// Sessions that arrived with their avatar from another zone.
        pub sessions_arrived: u64,
        /// Sessions whose avatar moved to another zone (REDIRECTed).
        pub sessions_left: u64,
        pub redirects_sent: u64,
        /// Inputs forwarded to the zone the avatar moved to.
        pub inputs_forwarded: u64,
        /// Ticks a session's input was due and none had arrived: the playout guessed it
        /// (`inputs_guessed`) or waited a tick (its inputs play one tick later from then
        /// on).
        pub inputs_underrun: u64,
        /// Underruns played as a guess: the last input's motion, under the due sequence.
        pub inputs_guessed: u64,
        /// Guessed inputs that arrived afterwards (not played; their button presses went
        /// to the game as actions of their own): the client's inputs arrive too late for
        /// its path.
        pub inputs_late: u64,
        /// Inputs skipped because more waited than the jitter needed (the newest of them
        /// played, the others' button presses handed to the game as actions of their own).
        pub inputs_skipped: u64,
        /// Inputs that never arrived while later ones did: the next played in their place.
        pub inputs_lost: u64,
        /// VIEW datagrams sent: client states carried to the zone their avatar moved to.
        pub views_sent: u64,
        /// Carried states installed: those sessions' first snapshots here were deltas.
        pub views_installed: u64,
        /// VIEW datagrams or states not used: no room to assemble, never completed, for
        /// no session here, older than the session's own baseline, or a stream that did
        /// not parse or fit. Those clients got a full snapshot instead.
        pub views_dropped: u64,
        /// Inputs the zone an avatar left had received and not played, carried here in
        /// its VIEW and buffered to play at their ticks (the client's next packets may
        /// not reach back to them).
        pub inputs_carried: u64,
        /// Moved sessions whose state was not carried: the client held no baseline, or
        /// the state did not fit a VIEW.
        pub views_not_carried: u64,
    }
}

/// What the session layer measures, cumulative.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionHistograms {
    /// Size of every snapshot datagram sent, bytes, seal included.
    pub snapshot_bytes: Histogram,
    /// Age of every input applied, in ticks: the zone tick applying it minus the snapshot
    /// tick the input acknowledged (the newest state its client had seen when it sent the
    /// input). That is the client's round trip plus the wait for the tick: how far in the
    /// past the player acted, which lag compensation has to undo.
    pub input_age_ticks: Histogram,
}

impl Default for SessionHistograms {
    fn default() -> SessionHistograms {
        SessionHistograms {
            snapshot_bytes: Histogram::new(crate::metrics::SNAPSHOT_BYTES),
            input_age_ticks: Histogram::new(crate::metrics::INPUT_AGE_TICKS),
        }
    }
}
