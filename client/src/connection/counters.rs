//! What a client counts.

/// Counters, cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCounters {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    pub inputs_sent: u64,
    pub snapshots: u64,
    /// Snapshots older than one already applied (still decoded, for the history).
    pub snapshots_late: u64,
    pub redirects: u64,
    /// REDIRECTs of a takeover followed: the zone's standby runs it now and said so from
    /// its own address (signed by a pinned node key).
    pub takeovers: u64,
    /// New runs of the zone the client is in (a restart, a takeover): its snapshots start
    /// again from the run's own ticks, and what the client held of the old run was
    /// dropped.
    pub zone_runs: u64,
    /// Snapshots flagged `PARTIAL`: the client's state after them lacked members of its
    /// view (the zone's byte budget or the datagram left them for later snapshots).
    pub snapshots_partial: u64,
    /// Snapshots decoded against a baseline another zone sent: the first ones after a
    /// zone change, until the new zone hears the client acknowledge one of its own.
    pub snapshots_carried: u64,
    /// REDIRECTs ignored: not from the zone the client talks to, or older than its newest
    /// snapshot from it (replays).
    pub redirects_stale: u64,
    /// Datagrams dropped: malformed, wrong secret, unknown baseline, bad signature.
    pub dropped: u64,
    /// Sealed packets that did not open (wrong key, changed in transit) or were replays.
    pub sealed_rejected: u64,
    /// CHALLENGEs ignored: their node key is not one the client pins (or none, when it
    /// pins any).
    pub untrusted_node: u64,
    /// PATH_CHALLENGEs answered (the zone saw this client at a new address).
    pub path_responses: u64,
    pub decode_errors: u64,
}
