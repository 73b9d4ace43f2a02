//! What a datagram on the control port costs before it is known to be a node's: the pair
//! tag, a keyed hash any datagram of a listed node carries, checked before the Ed25519
//! signature; and a per-peer budget of signature checks.
//!
//! A UDP source address is easy to forge, so a sender that knows only a node's control
//! address can send from it. Before the tag, each such datagram cost its receiver an
//! Ed25519 verification (~45 µs): one host flooding from a listed node's address kept the
//! mesh thread busy, the socket's buffer full, and two live nodes declared each other
//! down within a second (`mesh::a_spoofed_flood_from_a_nodes_address_declares_no_one_down`
//! in the node's tests, without the tag). The tag's key comes from the X25519 secret the
//! two nodes' pinned keys share, so only they can make it, and a forged datagram costs a
//! hash. What is left is a sender on the path that replays genuine datagrams: the budget
//! bounds what it can make this node verify to [`VERIFY_PER_WINDOW`] a
//! [`VERIFY_WINDOW`] per peer, and it can only crowd out that peer's own datagrams —
//! which such a sender could drop anyway.

use core::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use meridian_protocol::seal::{
    PAIR_TAG_SIZE as TAG_SIZE, StaticSecret, control_tag_key, pair_tag, pair_tag_holds,
    x25519_public,
};

use crate::time::Instant;

/// Signature checks one peer's datagrams may cost per [`VERIFY_WINDOW`]: 1,000 a second,
/// far above what gossip and votes send (a few a second; a burst of asks in a takeover of
/// many zones, tens), and at most ~5 % of a core at ~45 µs each.
pub const VERIFY_PER_WINDOW: u32 = 100;
/// The window of [`VERIFY_PER_WINDOW`].
pub const VERIFY_WINDOW: Duration = Duration::from_millis(100);

/// The key of the tags between this node and one peer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct TagKey([u8; 32]);

impl core::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TagKey(..)")
    }
}

impl TagKey {
    /// The key `own` and `peer` share; `None` if `peer` is a key of small order (no
    /// secret is shared with it).
    pub(super) fn between(own: &SigningKey, peer: &VerifyingKey) -> Option<TagKey> {
        let secret = StaticSecret::from(own.to_scalar_bytes());
        let shared = secret.diffie_hellman(&x25519_public(peer.to_montgomery().to_bytes()));
        shared
            .was_contributory()
            .then(|| TagKey(control_tag_key(&shared)))
    }

    pub(super) fn from_bytes(key: [u8; 32]) -> TagKey {
        TagKey(key)
    }

    /// The tag of `bytes` (a datagram's head and payload).
    pub(super) fn tag(&self, bytes: &[u8]) -> [u8; TAG_SIZE] {
        pair_tag(&self.0, bytes)
    }

    /// Whether `tag` is the tag of `bytes` (in constant time).
    pub(super) fn holds(&self, bytes: &[u8], tag: &[u8; TAG_SIZE]) -> bool {
        pair_tag_holds(&self.0, bytes, tag)
    }
}

/// The signature checks a peer's datagrams may still cost in the current window.
#[derive(Clone, Copy, Debug)]
pub(super) struct Budget {
    window: Instant,
    used: u32,
}

impl Budget {
    pub(super) fn new(now: Instant) -> Budget {
        Budget {
            window: now,
            used: 0,
        }
    }

    /// Takes one check at `now`; `false` once the window's are spent.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window) >= VERIFY_WINDOW {
            (self.window, self.used) = (now, 0);
        }
        if self.used >= VERIFY_PER_WINDOW {
            return false;
        }
        self.used += 1;
        true
    }
}

/// The tag key of `own` and `peer`, for a sender that builds datagrams itself (tests,
/// fuzzing, tools): `None` as for a peer of small order.
pub fn tag_key(own: &SigningKey, peer: &VerifyingKey) -> Option<[u8; 32]> {
    TagKey::between(own, peer).map(|k| k.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_nodes_of_a_pair_hold_one_key_and_no_third_does() {
        let (a, b, c) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
            SigningKey::from_bytes(&[3; 32]),
        );
        let ab = TagKey::between(&a, &b.verifying_key()).unwrap();
        let ba = TagKey::between(&b, &a.verifying_key()).unwrap();
        let cb = TagKey::between(&c, &b.verifying_key()).unwrap();
        assert_eq!(ab, ba);
        assert_ne!(ab, cb);
        let tag = ab.tag(b"head and payload");
        assert!(ba.holds(b"head and payload", &tag));
        assert!(!ba.holds(b"head and payloaD", &tag));
        assert!(!cb.holds(b"head and payload", &tag));
        assert_eq!(format!("{ab:?}"), "TagKey(..)");
    }

    #[test]
    fn a_peer_of_small_order_shares_no_key() {
        // The identity point (small order): a valid Ed25519 encoding, no shared secret.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let peer = VerifyingKey::from_bytes(&identity).unwrap();
        assert!(TagKey::between(&SigningKey::from_bytes(&[1; 32]), &peer).is_none());
    }

    #[test]
    fn the_budget_refills_each_window() {
        let t0 = Instant::from_nanos(1_000);
        let mut b = Budget::new(t0);
        for _ in 0..VERIFY_PER_WINDOW {
            assert!(b.take(t0));
        }
        assert!(!b.take(t0 + VERIFY_WINDOW / 2));
        assert!(b.take(t0 + VERIFY_WINDOW));
    }
}
