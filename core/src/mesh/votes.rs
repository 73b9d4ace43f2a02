//! Votes on a zone's standby (docs/mesh.md, "Dropping a standby"). Two acts change what
//! a zone's standby copy is worth, and each needs the agreement of a majority of the
//! world's nodes first:
//!
//! - a primary whose standby's node was declared down **drops** it: its datagrams stop
//!   waiting for that standby's acknowledgements, so the standby's copy falls behind what
//!   the zone has sent;
//! - a standby **promotes** its copy when the primary's node was declared down.
//!
//! Every node keeps a [`Ledger`] of what it agreed to, on disk before its answer leaves.
//! A node agrees to a drop only if it sees the dropped standby down itself and no
//! promotion of the zone from that run was agreed to; it agrees to a promotion only if
//! it sees the primary down and the standby was not dropped. Two majorities share a
//! node, and that node agreed to the two in some order — so a drop and a promotion of
//! the same copy can never both pass. Gossip alone could not give this: a primary that
//! drops its standby and dies at once can die before the word spreads.
//!
//! A primary that has its standby back (it resynced and its datagrams wait for it
//! again) says the standby is **current**, so the standby may promote again later; a new
//! run of the zone says it once its standby holds the run's first state, which also
//! clears a drop an older run left behind. A takeover counts the node taken over from as
//! dropped: back, and keeping the zone's standby, that node holds a stale copy until the
//! new run says it is current (simulator seed 7233).
//!
//! A standby whose promotion did not go ahead (its ballot ran out of time or was
//! refused, or it failed to start the run) **withdraws** it: the ledgers that agreed to
//! it stop holding it against the primary's asks. Without this, a ballot that ran out of
//! time after a majority had said yes (their answers lost) left its promise behind, and
//! the primary — alive all along — could never drop that standby once it died: its
//! datagrams waited for ever (simulator seed 8227). Only the node promised to can
//! withdraw, and it withdraws only what it will not act on, so a withdrawn promise was
//! never acted on; what it still says is that its copy's run existed.
//!
//! A standby acts on a promotion a majority agreed to only once a majority also hold that
//! it **acted** ([`Ask::Acted`]): until then its run has not started. So a ledger holding
//! a promise the standby never said it acts on can tell that the standby may not have
//! acted — and when the standby's node is declared down and the zone's primary (alive
//! all along) cannot drop it for that promise, the primary asks the ledgers to
//! **release** it ([`Ask::Release`]): each lets go of such a promise unless it holds that
//! the standby acts on it. Two majorities share a node, so a majority that released a
//! promise and a majority that hold it acted never both exist; the drop that follows
//! needs a majority not holding the promise, which a standby that acted always has
//! against it. Without the second phase, a yes lost on its way to a standby that then
//! died for good kept its zone's primary from ever dropping it (simulator seed 1248,
//! its comeback turned off).
//!
//! [`Tally`] counts a ballot's answers: granted once a majority said yes, refused once
//! no majority can (a minority's refusal is outvoted: any majority that agreed shares a
//! node with any other, and the ledger rules make that node refuse the second of two
//! asks that exclude each other). Both are pure; the mesh carries them on the
//! control port (`super::Mesh::ask`), the simulator over its network.

use bytemuck::Zeroable;
use meridian_layouts::votes::{
    ACTED, LEDGER_ENTRY_V1_SIZE, LEDGER_MAGIC, LEDGER_VERSION, LedgerEntry, LedgerHeader, NO_NODE,
    WITHDRAWN,
};
use meridian_layouts::{U16Le, U32Le, U64Le};

pub use meridian_layouts::votes::VoteAnswer as Answer;

/// What a node asks the others to agree to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// The primary of `zone`, running as `incarnation`, goes on without its standby on
    /// node `standby` (`seq`: its asks about the zone in that run, from 1).
    Drop {
        zone: u32,
        incarnation: u32,
        seq: u32,
        standby: u16,
    },
    /// The primary's standby on node `standby` holds everything the zone sent again.
    Current {
        zone: u32,
        incarnation: u32,
        seq: u32,
        standby: u16,
    },
    /// The standby on node `standby` takes `zone` over from node `primary`, as
    /// `incarnation` (one above the run its copy is of).
    Promote {
        zone: u32,
        incarnation: u32,
        standby: u16,
        primary: u16,
    },
    /// The standby on node `standby` — the asker — will not act on its promotion of
    /// `zone` to `incarnation`, agreed or not.
    Withdraw {
        zone: u32,
        incarnation: u32,
        standby: u16,
    },
    /// The standby on node `standby` — the asker — learnt that a majority agreed to its
    /// promotion of `zone` to `incarnation`, and acts on it once a majority hold that it
    /// does (only then does its run start).
    Acted {
        zone: u32,
        incarnation: u32,
        standby: u16,
    },
    /// The primary of `zone`, running as `incarnation`, asks each ledger to let go of a
    /// promotion of the zone to that run or a later one by node `standby` — declared down
    /// — that the node never said it acts on: its drop of that standby was refused for it.
    Release {
        zone: u32,
        incarnation: u32,
        standby: u16,
    },
    /// The primary of `zone` on node `primary` — the asker — stopped its run
    /// `incarnation` for good to move the zone to its standby, which holds everything the
    /// run wrote (docs/mesh.md, "Moving a zone on purpose"). Every node agrees and keeps
    /// it in memory (the mesh's, not the ledger): a promotion of a copy of that run then
    /// rests on it as on the primary's node being down. Only the primary can say it — an
    /// `Ended` whose `primary` is not its sender is dropped.
    Ended {
        zone: u32,
        incarnation: u32,
        primary: u16,
    },
}

impl Ask {
    pub fn zone(&self) -> u32 {
        match *self {
            Ask::Drop { zone, .. }
            | Ask::Current { zone, .. }
            | Ask::Promote { zone, .. }
            | Ask::Withdraw { zone, .. }
            | Ask::Acted { zone, .. }
            | Ask::Release { zone, .. }
            | Ask::Ended { zone, .. } => zone,
        }
    }

    /// The node whose being down the ask rests on: the dropped standby (or the one whose
    /// promise is released), or the primary taken over from (`None`: a standby said
    /// current again, a withdrawal, an acted promotion rest on nothing).
    pub fn concerns(&self) -> Option<u16> {
        match *self {
            Ask::Drop { standby, .. } | Ask::Release { standby, .. } => Some(standby),
            Ask::Promote { primary, .. } => Some(primary),
            Ask::Current { .. } | Ask::Withdraw { .. } | Ask::Acted { .. } | Ask::Ended { .. } => {
                None
            }
        }
    }
}

/// A promotion a ledger records ([`Ledger::promises_to`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promise {
    pub zone: u32,
    /// The run the standby was to start.
    pub run: u32,
    /// The ballot that asked it, or that withdrew it.
    pub ballot: u64,
    pub withdrawn: bool,
}

/// Why a ledger file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("not a vote ledger (bad magic, version or length)")]
    Format,
    #[error("the vote ledger's checksum does not match: the file is damaged")]
    Checksum,
}

/// What one node agreed to, per zone (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Sorted by zone.
    entries: Vec<LedgerEntry>,
    /// Changed since the last [`Ledger::saved`].
    dirty: bool,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Answers `ask`, node `asker`'s ballot `ballot`; `down` says whether this node sees
    /// the node the ask concerns ([`Ask::concerns`]) declared down. A `Yes` may change the
    /// ledger: save it ([`Ledger::encode`]) before the answer leaves.
    pub fn answer(&mut self, asker: u16, ballot: u64, ask: Ask, down: bool) -> Answer {
        if ask.concerns().is_some() && !down {
            return Answer::Wait;
        }
        if let Ask::Ended { .. } = ask {
            // Nothing to record: what an end allows is checked when a takeover is asked.
            return Answer::Yes;
        }
        let at = match self
            .entries
            .binary_search_by_key(&ask.zone(), |e| e.zone.get())
        {
            Ok(at) => at,
            Err(at) => {
                let mut e = LedgerEntry::zeroed();
                e.zone = U32Le::new(ask.zone());
                e.dropped = U16Le::new(NO_NODE);
                e.promoted_by = U16Le::new(NO_NODE);
                self.entries.insert(at, e);
                at
            }
        };
        let e = &mut self.entries[at];
        let before = *e;
        let answer = match ask {
            Ask::Drop {
                incarnation,
                seq,
                standby,
                ..
            } => primary_ask(e, asker, incarnation, seq, standby),
            Ask::Current {
                incarnation, seq, ..
            } => primary_ask(e, asker, incarnation, seq, NO_NODE),
            Ask::Promote {
                incarnation,
                standby,
                primary,
                ..
            } => promote(e, ballot, incarnation, (standby, primary)),
            Ask::Withdraw {
                incarnation,
                standby,
                ..
            } => withdraw(e, (asker, ballot), incarnation, standby),
            Ask::Acted {
                incarnation,
                standby,
                ..
            } => acted(e, asker, incarnation, standby),
            Ask::Release {
                incarnation,
                standby,
                ..
            } => release(e, incarnation, standby),
            Ask::Ended { .. } => Answer::Yes,
        };
        self.dirty |= *e != before;
        answer
    }

    /// Whether the ledger changed since it was last saved.
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// The ledger was saved: answers given so far may leave.
    pub fn saved(&mut self) {
        self.dirty = false;
    }

    /// A save failed: the ledger counts as changed again.
    pub fn unsaved(&mut self) {
        self.dirty = true;
    }

    /// The ledger as a file.
    pub fn encode(&self) -> Vec<u8> {
        let entries: &[u8] = bytemuck::cast_slice(&self.entries);
        let header = LedgerHeader {
            magic: LEDGER_MAGIC,
            version: U32Le::new(LEDGER_VERSION),
            count: U32Le::new(self.entries.len() as u32),
            crc: U32Le::new(crc32c::crc32c(entries)),
            reserved: U32Le::new(0),
        };
        let mut out = bytemuck::bytes_of(&header).to_vec();
        out.extend_from_slice(entries);
        out
    }

    /// Reads a ledger file; never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Ledger, LedgerError> {
        let size = core::mem::size_of::<LedgerHeader>();
        let header: LedgerHeader = bytes
            .get(..size)
            .map(bytemuck::pod_read_unaligned)
            .ok_or(LedgerError::Format)?;
        let count = header.count.get() as usize;
        let body = &bytes[size..];
        let entry = match header.version.get() {
            1 => LEDGER_ENTRY_V1_SIZE,
            // Version 2 entries are version 3 ones whose flags are only ever WITHDRAWN.
            2 | LEDGER_VERSION => core::mem::size_of::<LedgerEntry>(),
            _ => return Err(LedgerError::Format),
        };
        if header.magic != LEDGER_MAGIC || Some(body.len()) != count.checked_mul(entry) {
            return Err(LedgerError::Format);
        }
        if crc32c::crc32c(body) != header.crc.get() {
            return Err(LedgerError::Checksum);
        }
        let mut entries: Vec<LedgerEntry> = body
            .chunks_exact(entry)
            .map(|bytes| {
                // A version 1 entry is a version 2 one without its ballot.
                let mut whole = [0u8; core::mem::size_of::<LedgerEntry>()];
                whole[..entry].copy_from_slice(bytes);
                bytemuck::pod_read_unaligned(&whole)
            })
            .collect();
        entries.sort_by_key(|e| e.zone.get());
        entries.dedup_by_key(|e| e.zone.get());
        Ok(Ledger {
            entries,
            dirty: false,
        })
    }

    /// The promotions to node `node` this ledger records, withdrawn or not: on its own
    /// ledger, what a restart finds it asked for. Those it never acted on it withdraws
    /// (again): a promise it did not know a majority held (its answers lost) or whose
    /// withdrawal it died before every node held would keep the zone's primary from ever
    /// dropping it once it dies again — and its own ledger holds a withdrawal from the
    /// moment it asked, not from when every node held it.
    pub fn promises_to(&self, node: u16) -> impl Iterator<Item = Promise> + '_ {
        self.entries
            .iter()
            .filter(move |e| e.promoted_by.get() == node && e.promoted.get() != 0)
            .map(|e| Promise {
                zone: e.zone.get(),
                run: e.promoted.get(),
                ballot: e.ballot.get(),
                withdrawn: withdrawn(e),
            })
    }

    /// The standby `zone`'s ledger entry says is dropped, if any (for status and tests).
    pub fn dropped(&self, zone: u32) -> Option<u16> {
        let at = self
            .entries
            .binary_search_by_key(&zone, |e| e.zone.get())
            .ok()?;
        let node = self.entries[at].dropped.get();
        (node != NO_NODE).then_some(node)
    }
}

/// A primary's ask (a drop, or `dropped` = [`NO_NODE`]: its standby is current): agreed
/// unless a promotion from its run (or a later one) was agreed to, or a newer ask of a
/// primary was. A withdrawn promotion to run `k` was never acted on: it holds only runs
/// older than its copy's (`k - 1`) against the asker.
fn primary_ask(
    e: &mut LedgerEntry,
    asker: u16,
    incarnation: u32,
    seq: u32,
    dropped: u16,
) -> Answer {
    let (promoted, promoted_by) = (e.promoted.get(), e.promoted_by.get());
    let superseded = if withdrawn(e) {
        promoted.saturating_sub(1) > incarnation
    } else {
        promoted > incarnation
            || (promoted == incarnation && promoted_by != NO_NODE && promoted_by != asker)
    };
    if superseded {
        return Answer::No;
    }
    let version = (e.incarnation.get(), e.seq.get());
    if (incarnation, seq) < version {
        return Answer::No;
    }
    if (incarnation, seq) == version {
        // A resend: the same answer as before (the ask is the same one).
        return if e.dropped.get() == dropped {
            Answer::Yes
        } else {
            Answer::No
        };
    }
    e.incarnation = U32Le::new(incarnation);
    e.seq = U32Le::new(seq);
    e.dropped = U16Le::new(dropped);
    Answer::Yes
}

/// A standby's promotion (its ballot `ballot`): refused if it was dropped, if a primary of
/// its new run or a later one asked anything (its copy is older than a run that acted),
/// or if another node's promotion to that run (not withdrawn) or a later one was agreed
/// to. The standby may ask again for a promotion it withdrew — in a later ballot: a copy
/// of the withdrawn ask, delayed in the network, is refused.
///
/// Agreed, it also marks the node taken over from (`primary`) dropped: the new run starts
/// without a standby, and that node — when it comes back and keeps the zone's standby —
/// holds its own stale files, then a resync that its datagrams do not wait for; it may
/// promote the zone again only once the new run's primary says it is current (simulator
/// seed 7233, `--comebacks`: without the mark, the returned node promoted a copy that
/// lacked a handoff the new run had made, and the entity had two owners).
fn promote(e: &mut LedgerEntry, ballot: u64, incarnation: u32, nodes: (u16, u16)) -> Answer {
    let (standby, primary) = nodes;
    if e.dropped.get() == standby || e.incarnation.get() >= incarnation {
        return Answer::No;
    }
    let promoted = e.promoted.get();
    let withdrawn = withdrawn(e);
    let held = !withdrawn && e.promoted_by.get() != standby;
    if promoted > incarnation || (promoted == incarnation && held) {
        return Answer::No;
    }
    let ours = promoted == incarnation && e.promoted_by.get() == standby;
    if ours && withdrawn && ballot <= e.ballot.get() {
        return Answer::No;
    }
    if !(ours && !withdrawn && ballot < e.ballot.get()) {
        e.ballot = U64Le::new(ballot);
    }
    if !ours || withdrawn {
        // A new promise. (The same one asked again keeps what it holds: a copy of the
        // ask arriving after the standby said it acts must not forget that it does.)
        e.withdrawn = U32Le::new(0);
    }
    e.promoted = U32Le::new(incarnation);
    e.promoted_by = U16Le::new(standby);
    e.dropped = U16Le::new(primary);
    Answer::Yes
}

/// Whether `e`'s promise is withdrawn (or released): it holds nothing.
fn withdrawn(e: &LedgerEntry) -> bool {
    e.withdrawn.get() & WITHDRAWN != 0
}

/// The promised standby (the asker) acts on its promotion to `incarnation`: agreed while
/// this ledger holds that promise — not withdrawn, not released — and then held for good
/// against a release. Two majorities share a node: once a majority holds it acted, no
/// majority can have released it, and the other way round.
fn acted(e: &mut LedgerEntry, asker: u16, incarnation: u32, standby: u16) -> Answer {
    let held = e.promoted.get() == incarnation && e.promoted_by.get() == standby;
    if asker != standby || !held || withdrawn(e) {
        return Answer::No;
    }
    e.withdrawn = U32Le::new(e.withdrawn.get() | ACTED);
    Answer::Yes
}

/// The primary of run `incarnation` asks to release a promise to its own run or a later
/// one held for node `standby` (which the asker and this node see down): released — as
/// if withdrawn — unless the node said it acts on it. A node acts only once a majority
/// hold that it does, so a promise it never said that of was never acted on anywhere a
/// majority released it. Nothing held: nothing to do. (A promise to the asker's own run:
/// the primary restarted from its files after the promise — a move given up when its
/// standby died between the vote and acting on it — and its new run took the number the
/// standby was promised. Released only past it, that promise kept the restarted run from
/// ever dropping the dead standby.)
fn release(e: &mut LedgerEntry, incarnation: u32, standby: u16) -> Answer {
    let held = e.promoted.get() >= incarnation && e.promoted_by.get() == standby;
    if !held || withdrawn(e) {
        return Answer::Yes;
    }
    if e.withdrawn.get() & ACTED != 0 {
        return Answer::No;
    }
    e.withdrawn = U32Le::new(WITHDRAWN);
    Answer::Yes
}

/// A standby withdraws its promotion to `incarnation` (`by`: the asker and its ballot):
/// only its own, and only promotions asked in earlier ballots than the withdrawal (a
/// withdrawal delayed in the network leaves the promise of a later ask alone). Where no
/// promise to that run or a later one is held, it leaves a withdrawn one, so that a copy
/// of the ask arriving after it is refused.
fn withdraw(e: &mut LedgerEntry, by: (u16, u64), incarnation: u32, standby: u16) -> Answer {
    let (asker, ballot) = by;
    if asker != standby {
        return Answer::No;
    }
    let promoted = e.promoted.get();
    let ours = promoted == incarnation && e.promoted_by.get() == standby;
    if (ours && e.ballot.get() < ballot) || promoted < incarnation {
        e.promoted = U32Le::new(incarnation);
        e.promoted_by = U16Le::new(standby);
        e.withdrawn = U32Le::new(WITHDRAWN);
        e.ballot = U64Le::new(ballot);
    }
    Answer::Yes
}

/// The answers to one ballot, from a world of `nodes` nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    nodes: usize,
    /// The yeses that grant it: a majority, or every node for a withdrawal.
    need: usize,
    /// The nodes that said yes, and those that said no (by index: a world file lists at
    /// most 64 nodes here).
    yes: u64,
    no: u64,
}

impl Tally {
    /// The tally of `ask` in a world of `nodes` nodes. A withdrawal goes on until every
    /// node holds it (a majority that agreed to the promotion may not be the one that
    /// took the withdrawal); the others need a majority.
    pub fn new(nodes: usize, ask: &Ask) -> Tally {
        let need = match ask {
            Ask::Withdraw { .. } => nodes,
            _ => nodes / 2 + 1,
        };
        Tally {
            nodes,
            need,
            yes: 0,
            no: 0,
        }
    }

    /// Counts node `from`'s answer; returns the outcome once there is one: `true` when
    /// enough said yes, `false` when so many said no that enough never can. A
    /// node that said no and, asked again, yes (what it held against the ask was
    /// withdrawn meanwhile) counts as yes.
    pub fn count(&mut self, from: u16, answer: Answer) -> Option<bool> {
        if from < 64 {
            let bit = 1u64 << from;
            match answer {
                Answer::Yes => {
                    self.yes |= bit;
                    self.no &= !bit;
                }
                Answer::No if self.yes & bit == 0 => self.no |= bit,
                _ => {}
            }
        }
        self.outcome()
    }

    pub fn outcome(&self) -> Option<bool> {
        if self.yes.count_ones() as usize >= self.need {
            Some(true)
        } else if self.nodes.saturating_sub(self.no.count_ones() as usize) < self.need {
            Some(false)
        } else {
            None
        }
    }

    /// Whether some node refused (a ballot out of time with a refusal was refused: the
    /// nodes that never answered — dead, say — may never).
    pub fn refused(&self) -> bool {
        self.no != 0
    }

    /// Whether node `node` said yes already (no need to ask it again).
    pub fn agreed(&self, node: u16) -> bool {
        node < 64 && self.yes & (1 << node) != 0
    }
}
