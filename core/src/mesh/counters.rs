//! What a node's membership dropped, and what it did.

/// What the mesh dropped, and what it did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeshCounters {
    pub sent: u64,
    pub received: u64,
    /// Dropped: shorter than a header and signature, or not a control datagram.
    pub malformed: u64,
    /// Dropped: from a node's address, in another mesh protocol than this build's.
    pub other_version: u64,
    /// Dropped before the signature: made by that node (its tag held) with another world
    /// digest: the node was started with another world file.
    pub other_world: u64,
    /// Dropped: from a node index the world file does not list (or this node's own).
    pub unknown_node: u64,
    /// Dropped: not from the claimed node's control address.
    pub wrong_source: u64,
    /// Dropped before the signature: the pair tag does not hold (not made by that node:
    /// a forged source address, or damaged).
    pub bad_tag: u64,
    /// Dropped before the signature: the claimed node's datagrams used up their
    /// signature checks for the window ([`super::VERIFY_PER_WINDOW`]; genuine ones replayed).
    pub over_budget: u64,
    pub bad_signature: u64,
    /// Authenticated, but foca refused it (undecodable, too big, stale).
    pub refused: u64,
    /// Vote datagrams taken (asks answered, answers counted).
    pub votes: u64,
    /// Rejoins as a new life after this node did not run for longer than a suspicion
    /// takes to become a death ([`super::Mesh::woke`]).
    pub stall_rejoins: u64,
    /// Vote datagrams dropped after their signature checked: malformed, an answer to no
    /// ballot under way, or an ask to a node that keeps no ledger.
    pub votes_dropped: u64,
    /// Deaths datagrams taken: a node that came up told which nodes another sees down
    /// (`deaths` in [`super::Mesh`]'s module).
    pub deaths_heard: u64,
    /// Deaths datagrams dropped after their signature checked: malformed, or from a node
    /// this one does not see alive.
    pub deaths_dropped: u64,
    /// Nodes told they were declared down here (their datagrams came from a life this
    /// node holds down: a cut healed; `rejoin` in [`super::Mesh`]'s module).
    pub undead_told: u64,
}
