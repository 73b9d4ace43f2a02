//! Replay windows: a receiver's record of which sequence numbers it has accepted, so a
//! captured datagram sent again is refused. Used for signed envelopes between zones and
//! for sealed session packets both ways.

/// Rejects replayed envelopes: per signer, the highest (epoch, sequence) seen and a
/// 64-wide bitmap of the sequences below it (as in IPsec and WireGuard).
///
/// Check before verifying ([`ReplayWindow::check`]), record only after the signature
/// verified ([`ReplayWindow::record`]) — otherwise a forged datagram with a huge sequence
/// would shut out the real signer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    epoch: u32,
    highest: u64,
    seen: u64,
    any: bool,
}

impl ReplayWindow {
    const WIDTH: u64 = 64;

    /// A window that has seen everything up to (epoch, sequence): what a session carries to
    /// the zone its avatar moves to, so inputs the old zone applied are replays there too.
    pub fn after(epoch: u32, sequence: u64) -> ReplayWindow {
        if sequence == 0 {
            return ReplayWindow::default();
        }
        ReplayWindow {
            epoch,
            highest: sequence,
            seen: u64::MAX,
            any: true,
        }
    }

    /// The highest sequence recorded (0 before any).
    pub fn highest(&self) -> u64 {
        if self.any { self.highest } else { 0 }
    }

    /// Would (epoch, sequence) be fresh?
    pub fn check(&self, epoch: u32, sequence: u64) -> bool {
        if !self.any || epoch > self.epoch {
            return true;
        }
        if epoch < self.epoch {
            return false;
        }
        if sequence > self.highest {
            return true;
        }
        let age = self.highest - sequence;
        age < Self::WIDTH && self.seen & (1 << age) == 0
    }

    /// Records (epoch, sequence); `false` if it was not fresh (a replay within one batch).
    pub fn record(&mut self, epoch: u32, sequence: u64) -> bool {
        if !self.check(epoch, sequence) {
            return false;
        }
        if !self.any || epoch > self.epoch {
            *self = ReplayWindow {
                epoch,
                highest: sequence,
                seen: 1,
                any: true,
            };
            return true;
        }
        if sequence > self.highest {
            let shift = sequence - self.highest;
            self.seen = if shift >= Self::WIDTH {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = sequence;
        } else {
            self.seen |= 1 << (self.highest - sequence);
        }
        true
    }
}
