//! Deliberately broken variants of the zone, each one a bug the zone once had or could
//! have: the simulator's tests turn one on and prove the invariants catch it.

/// Deliberately broken protocol variants, so tests can prove the simulator catches them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// The target takes ownership on OFFER instead of on COMMIT (double ownership).
    pub adopt_on_offer: bool,
    /// Epochs are not checked: stale OFFERs and COMMITs are applied.
    pub ignore_epochs: bool,
    /// A received DONE is not logged (the zone before the seed-12 fix): a zone restored
    /// from its log resends COMMITs whose transfers completed long ago.
    pub forget_done: bool,
    /// The target forgets an adoption as soon as it sends DONE instead of when the
    /// source CONFIRMs it (the protocol before CONFIRM): a COMMIT resent after the
    /// target's epoch memory expired (a long outage or partition) adopts the entity again.
    pub forget_adoptions: bool,
    /// The driver sends a tick's datagrams without waiting for its records to be durable
    /// (the simulator's driver honours it: a crash can then lose a relinquish whose
    /// COMMIT already left).
    pub send_before_sync: bool,
    /// COMMIT carries the entity without its game payload (game state lost in a handoff).
    pub commit_without_payload: bool,
    /// CONFIRM drops the transfer without remembering its epoch (the zone before the
    /// seed-361 fix): a resent COMMIT that CONFIRM overtook adopts the entity again.
    pub forget_epoch_on_confirm: bool,
    /// The simulator's driver holds a tick's datagrams for the standby only when that tick
    /// wrote records (its first version, seed 23): a COMMIT resent in a quiet tick leaves
    /// while the relinquish it depends on is not on the standby, and overtakes the held
    /// original by hundreds of ticks.
    pub gate_new_records_only: bool,
    /// The simulator's driver sends without waiting for the standby at all: a standby
    /// promoted after its primary's node died owns what the primary had handed away, or
    /// lacks what it adopted.
    pub skip_standby_gate: bool,
    /// A zone restarted from its own disk streams on from its first new record, sending
    /// what the restored state implies at once (seed 179): the restored state can rest on
    /// records its standby never got, and a promotion then owns what was handed away.
    pub restart_without_resync: bool,
    /// A zone moved to its standby on purpose stops without writing a checkpoint of its
    /// last tick: the standby restores the last periodic one and the log, and positions
    /// and game state go back (`sim::moves`).
    pub move_without_checkpoint: bool,
    /// A zone moved to its standby announces its end as it stops, before the standby
    /// holds its last records: the standby may take over from a copy without them
    /// (`sim::moves`).
    pub move_before_held: bool,
    /// Zones take datagrams from every run of a peer, older ones included.
    pub skip_incarnation_fence: bool,
    /// An old primary cut off behind a false suspicion sends what it makes even after
    /// writing records its (promoted) standby will never acknowledge. With
    /// `skip_incarnation_fence` as well, its adoptions reach its neighbours as ghosts from
    /// a future epoch; either defence alone holds the invariants.
    pub superseded_skips_gate: bool,
    /// A standby takes its zone over without asking the mesh to agree: a copy its primary
    /// dropped (and went on without) is promoted after the primary's node dies, and owns
    /// what the primary handed away since (`sim::votes`).
    pub promote_without_votes: bool,
    /// A primary asks the mesh to agree its dropped standby is current as soon as it
    /// streams to it again, before the standby holds what the primary did meanwhile: a
    /// promotion after that owns what the primary had handed away (`sim::rejoin`).
    pub current_before_caught_up: bool,
    /// A node that comes back after its zones failed over resumes them from its stale
    /// files and sends what they imply at once, before its standby (now the zone) holds
    /// the restart: a COMMIT whose relinquish the standby never got hands away what the
    /// zone's new run still owns (`sim::comeback`).
    pub comeback_sends_at_once: bool,
    /// A node that comes back restarts the zones nobody took over with their standbys
    /// still dropped, as the old process had them: the restarted run acts before its
    /// standby holds it, and a `Current` ask of the dead run answered late lets that
    /// standby take the zone over without it (`sim::comeback`, seed 27183).
    pub comeback_keeps_drops: bool,
    /// A node that comes back asks for no takeover again: a zone whose standby it keeps,
    /// agreed to it while it was dead (it withdrew that promise on its return) or whose
    /// primary died while it was down, runs nowhere for good (`sim::comeback`).
    pub no_takeover_retry: bool,
    /// A standby whose promotion did not go ahead leaves what the others agreed to
    /// behind (no withdrawal): a promise a majority held without the standby hearing of
    /// it keeps the zone's primary from ever dropping that standby (`sim::votes`).
    pub keep_promises: bool,
    /// A node that restarts leaves the promises of its own its ledger holds and it never
    /// acted on (the in-life withdrawals still happen): one agreed while its answers were
    /// lost, or whose withdrawal it died before every node held (`sim::votes`).
    pub restart_keeps_promises: bool,
    /// A primary whose drop of a dead standby is refused never asks the ledgers to
    /// release the promise it was refused for: a standby that died for good holding a
    /// promise it never said it acts on keeps its zone waiting for good (`sim::votes`).
    pub never_release: bool,
    /// The simulator's primaries ask to drop a standby only when its node is declared
    /// down, not again when the mesh agrees it current after that: the zone's datagrams
    /// wait for a dead standby for good (`sim::rejoin`, seed 4133 with `--moves`).
    pub drop_only_when_declared: bool,
    /// The simulator keeps on a primary's disk only the files its standby's acknowledged
    /// copy names, not those of the marks (a resync's included) still to be acknowledged:
    /// acknowledged after two checkpoints retired them, such a copy names files gone, and
    /// a promotion from it restores a zone without them (`sim::standby`, seed 28843 with
    /// `--comebacks`). A gap of the model: the node's resync sends the files, so its copy
    /// does not rest on the primary keeping them (its own resync gap, files retired while a
    /// long resync sends them, is another: docs/mesh.md, "A warm standby per zone").
    pub pin_acknowledged_copy_only: bool,
    /// A zone takes every game message that arrives, copies included (no names
    /// remembered): a copy the network made is handed to the game again, or sent on to
    /// the entity's next zone and handed to its game there (`game::messages`).
    pub take_message_copies: bool,
    /// A zone sends each game message to another zone once, keeps none for resending,
    /// acknowledges none and takes those sent to an older run of itself (the zone before
    /// acknowledged hops): a datagram lost on the way loses the message uncounted
    /// (`game::messages`).
    pub send_messages_once: bool,
    /// A zone takes game messages first sent to an older run of itself: a resend of one
    /// its old run took is taken again after a restart, which forgot the names
    /// (`game::messages`; simulator seeds 3230 and 3543).
    pub take_stale_hops: bool,
    /// A zone keeps what it heard of its peers' runs in memory only (the zone before the
    /// seed-1344 fix): restored from its files, it takes what an older run of a peer
    /// still sends, such as a COMMIT that peer's new run completed (`handoff::fence`).
    pub forget_peer_runs: bool,
}
