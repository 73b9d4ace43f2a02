//! Continuity at handoff, the session side: the zone an avatar leaves sends the client's
//! replication state to the zone it moved to (VIEW, [`meridian_layouts::view`]); that
//! zone assembles the chunks and installs the state into the session when it arrives
//! with the avatar — whichever of the two comes first (`crate::replicate` has the
//! state itself) — and the inputs the old zone had received and not played, which the
//! session buffers to play at their ticks as soon as any chunk and the session are here.
//!
//! Assembly is bounded: [`views_pending`] streams at once, each for at most
//! [`VIEW_TTL_TICKS`]; a stream that does not complete, or finds no session, is dropped
//! and the client simply starts here with a full snapshot.

use meridian_layouts::view::{
    VIEW_CHUNK_MAX, VIEW_DRAWN_OVER, VIEW_INPUTS_MAX, VIEW_SEARCH_AGAIN, VIEW_STREAM_MAX,
    ViewHeader, parse_view, write_view,
};
use meridian_layouts::{F32Le, I32Le};

use super::*;
use crate::replicate::{Baseline, Carried};

// Every input a session buffers fits the VIEW that carries it on.
const _: () = assert!(INPUT_BUFFER <= VIEW_INPUTS_MAX);

/// Streams assembled at once, for a zone of `sessions_max` sessions: a sixteenth of them
/// (at least 16, at most 1,024). A stream waits a tick or two for its session's avatar,
/// and clients cross a border in crowds: 16 for every zone dropped 2–38 streams a run with
/// 1,000 bots crossing per zone, and each drop is a full first snapshot (its budget cut
/// shows as pop-ins). 256 at the default 4,096 sessions: 4.7 MB a zone.
pub(super) fn views_pending(sessions_max: usize) -> usize {
    (sessions_max / 16).clamp(16, 1024)
}

/// Ticks a stream may take to complete and to find its session.
pub(super) const VIEW_TTL_TICKS: u64 = 30;

/// One stream being assembled, or complete and waiting for its session.
#[derive(Debug)]
pub(super) struct PendingView {
    /// The zone the chunks came from; `None`: the entry is free.
    from: Option<ZoneID>,
    head: ViewHeader,
    /// Chunks received, one bit per chunk.
    received: u16,
    /// The header's inputs went to the session (see [`Sessions::install_view`]).
    inputs_taken: bool,
    started_tick: u64,
    stream: Vec<u8>,
}

impl PendingView {
    pub(super) fn new() -> PendingView {
        PendingView {
            from: None,
            head: bytemuck::Zeroable::zeroed(),
            received: 0,
            inputs_taken: false,
            started_tick: 0,
            stream: vec![0; VIEW_STREAM_MAX],
        }
    }

    fn complete(&self) -> bool {
        let len = usize::from(self.head.stream_len.get());
        self.from.is_some() && self.received.count_ones() as usize == len.div_ceil(VIEW_CHUNK_MAX)
    }

    fn carried(&self) -> Carried {
        Carried {
            baseline: Baseline {
                zone: self.head.baseline_zone.get(),
                tick: self.head.baseline_tick.get(),
            },
            budget_bytes: self.head.budget_bytes.get(),
            reach_m: self.head.reach_m.get(),
            searched_at: (self.head.search_x.get(), self.head.search_y.get()),
            drawn_over: self.head.flags & VIEW_DRAWN_OVER != 0,
            search_again: self.head.flags & VIEW_SEARCH_AGAIN != 0,
        }
    }

    /// Whether `head` is another chunk of this entry's stream.
    fn same_stream(&self, from: ZoneID, head: &ViewHeader) -> bool {
        let h = &self.head;
        self.from == Some(from)
            && h.session_id == head.session_id
            && h.session_secret == head.session_secret
            && h.baseline_tick == head.baseline_tick
            && h.baseline_zone == head.baseline_zone
            && h.stream_len == head.stream_len
    }
}

impl Sessions {
    /// The session in `slot` moved to zone `to` with its avatar: its replication state
    /// goes there too (as many VIEW datagrams as its stream takes).
    pub(super) fn send_view(&mut self, slot: u32, to: ZoneID) {
        let session = self.slots[slot as usize].as_mut().expect("live slot");
        // An acknowledgement not yet given to the view (it is applied when a snapshot
        // is built) names a newer baseline.
        session.view.acknowledge(session.ack_tick);
        let carried = self
            .replicator
            .carry(&session.view, self.zone.0, &mut self.view_stream);
        let Ok((carried, len)) = carried else {
            self.counters.views_not_carried += 1;
            return;
        };
        let mut head = ViewHeader {
            session_id: U64Le::new(u64::from(session.id)),
            session_secret: U64Le::new(session.secret),
            baseline_tick: U32Le::new(carried.baseline.tick),
            baseline_zone: U32Le::new(carried.baseline.zone),
            budget_bytes: I32Le::new(carried.budget_bytes),
            reach_m: F32Le::new(carried.reach_m),
            search_x: F32Le::new(carried.searched_at.0),
            search_y: F32Le::new(carried.searched_at.1),
            stream_len: U16Le::new(0),
            offset: U16Le::new(0),
            input_count: session.buffered.len() as u8,
            flags: (u8::from(carried.drawn_over) * VIEW_DRAWN_OVER)
                | (u8::from(carried.search_again) * VIEW_SEARCH_AGAIN),
            reserved: [0; 2],
            inputs: bytemuck::Zeroable::zeroed(),
        };
        let buffered = session.buffered.as_slice();
        head.inputs[..buffered.len()].copy_from_slice(buffered);
        for offset in (0..len).step_by(VIEW_CHUNK_MAX) {
            let mut out = Outgoing {
                to: Peer::Zone(to),
                len: 0,
                bytes: [0; CLIENT_DATAGRAM_MAX],
            };
            let n = write_view(&mut out.bytes, &head, &self.view_stream[..len], offset)
                .expect("a chunk of a stream that fits");
            out.len = n as u16;
            if self.outbox.len() >= self.outbox_max {
                self.counters.overflow += 1;
                return;
            }
            self.outbox.push_back(out);
            self.counters.views_sent += 1;
        }
    }

    /// A VIEW datagram from zone `from`: a chunk of a client state carried here. Once its
    /// stream is complete, it is installed into its session if the session is here
    /// already; otherwise it waits for it (see [`Sessions::install_view`]).
    pub fn handle_view(&mut self, from: ZoneID, bytes: &[u8]) {
        let Ok((head, chunk)) = parse_view(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        let head = *head;
        let tick = self.tick;
        let entry = match self.views.iter().position(|v| v.same_stream(from, &head)) {
            Some(i) => i,
            None => {
                // A free entry, or one past its time.
                let free = self
                    .views
                    .iter()
                    .position(|v| v.from.is_none() || tick > v.started_tick + VIEW_TTL_TICKS);
                let Some(i) = free else {
                    self.counters.views_dropped += 1;
                    return;
                };
                let v = &mut self.views[i];
                if v.from.is_some() {
                    self.counters.views_dropped += 1;
                }
                (v.from, v.head, v.received, v.started_tick) = (Some(from), head, 0, tick);
                v.inputs_taken = false;
                i
            }
        };
        let v = &mut self.views[entry];
        let offset = usize::from(head.offset.get());
        v.stream[offset..offset + chunk.len()].copy_from_slice(chunk);
        v.received |= 1 << (offset / VIEW_CHUNK_MAX);
        let id = head.session_id.get();
        let here = u32::try_from(id)
            .ok()
            .and_then(|id| self.by_id.get(&id).copied())
            .filter(|&slot| {
                self.slots[slot as usize]
                    .as_ref()
                    .is_some_and(|s| s.moved.is_none())
            });
        if let Some(slot) = here {
            self.install_view(slot);
        }
    }

    /// For the session in `slot` (which just arrived with its avatar, or a chunk of whose
    /// stream just came): buffers the inputs its streams carry, then installs its complete
    /// stream, if there is one.
    pub(super) fn install_view(&mut self, slot: u32) {
        let session = self.slots[slot as usize].as_mut().expect("live slot");
        let mut complete = None;
        for (i, v) in self.views.iter_mut().enumerate() {
            if v.from.is_none()
                || v.head.session_id.get() != u64::from(session.id)
                || v.head.session_secret.get() != session.secret
            {
                continue;
            }
            if !std::mem::replace(&mut v.inputs_taken, true) {
                // Only inputs after the one the binding says was played: an older stream's
                // (the client was here before) are in the past.
                let count = usize::from(v.head.input_count);
                for entry in &v.head.inputs[..count] {
                    if entry.sequence.get() > session.applied_sequence
                        && session.buffered.offer(entry)
                    {
                        self.counters.inputs_carried += 1;
                    }
                }
            }
            if complete.is_none() && v.complete() {
                complete = Some(i);
            }
        }
        let Some(v) = complete.map(|i| &mut self.views[i]) else {
            return;
        };
        let len = usize::from(v.head.stream_len.get());
        let result = self
            .replicator
            .install(&mut session.view, &v.carried(), &v.stream[..len]);
        v.from = None;
        match result {
            Ok(()) => self.counters.views_installed += 1,
            Err(_) => self.counters.views_dropped += 1,
        }
    }

    /// Frees the streams that did not complete, or found no session, in time.
    pub(super) fn expire_views(&mut self) {
        let tick = self.tick;
        for v in &mut self.views {
            if v.from.is_some() && tick > v.started_tick + VIEW_TTL_TICKS {
                v.from = None;
                self.counters.views_dropped += 1;
            }
        }
    }
}
