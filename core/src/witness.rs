//! Witness: Ed25519 keys, per-tick batch verification, replay windows, connect tokens.
//!
//! **Keys.** A [`KeyRegistry`] holds the node keys and the auth key pinned by the world
//! config. Registration rejects encodings that are not points and *weak* keys (small
//! order: a signature by such a key can be valid for many messages).
//!
//! **Batch verification.** During ingest a zone pushes every signature of the tick into
//! one [`BatchVerifier`]; [`BatchVerifier::verify`] then runs
//! `ed25519_dalek::verify_batch` once over all of them. When the batch fails, the bad
//! items are found by bisection: a failing range is split in two and only one half is
//! verified as a batch — if that half passes, the other half is known to be bad and is
//! split without a check of its own. Large failing ranges are first cut into chunks of
//! [`BISECT_CHUNK`], because small batches are expensive per item. A range of one item is
//! settled by `verify_strict`. So one forged packet costs about 1.4 extra batches' worth
//! of work, not a single-verify pass over the whole tick.
//!
//! **Batch vs strict.** `verify_batch` is cofactorless like `verify_strict`, but it
//! decompresses R leniently and does not reject small-order R. Before an item enters the
//! batch it is prechecked with byte comparisons: `s` must be canonical, R's encoding must
//! be canonical and must not be one of the sixteen encodings of a small-order point. What
//! remains is a signature whose R has a torsion component, which only the key's owner can
//! make and which a random-coefficient batch accepts with probability ≤ 1/8 while
//! `verify_strict` rejects it. Items pushed with [`Policy::Strict`] — everything an
//! ownership decision rests on (docs/security.md) — are therefore also checked with
//! `verify_strict` after their batch passes. Client inputs use [`Policy::Batch`].
//!
//! **Allocation.** The verifier's own buffers are sized at construction and never grow.
//! `ed25519_dalek::verify_batch` itself allocates a handful of vectors per call (its
//! multiscalar multiplication needs scratch); that is one call per tick plus the
//! bisection's, and is the one allocation on the tick path we do not control.

use core::ops::Range;

use curve25519_dalek::Scalar;
use ed25519_dalek::{Signature, VerifyingKey};
use meridian_layouts::witness::{ConnectToken, SIGNATURE_SIZE};

/// Chunk size when bisecting a large range that failed; see `BatchVerifier::settle`.
pub const BISECT_CHUNK: usize = 16;

/// Why a public key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 public key (the bytes do not encode a curve point)")]
    Malformed,
    #[error("weak Ed25519 public key (small-order point); generate a new key")]
    Weak,
    #[error("key registry is full")]
    Full,
}

/// Parses a public key, rejecting malformed and weak (small-order) keys.
pub fn parse_key(bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::Malformed)?;
    if key.is_weak() {
        return Err(KeyError::Weak);
    }
    Ok(key)
}

/// Index of a key in a [`KeyRegistry`]; carried in envelopes as `signer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignerID(pub u32);

/// The keys a zone trusts: node keys by index, and the world's auth key.
#[derive(Debug)]
pub struct KeyRegistry {
    nodes: Vec<VerifyingKey>,
    capacity: usize,
    auth: Option<VerifyingKey>,
}

impl KeyRegistry {
    pub fn new(capacity: usize) -> KeyRegistry {
        KeyRegistry {
            nodes: Vec::with_capacity(capacity),
            capacity,
            auth: None,
        }
    }

    /// Pins a node key; returns its signer id.
    pub fn register(&mut self, bytes: &[u8; 32]) -> Result<SignerID, KeyError> {
        let key = parse_key(bytes)?;
        if self.nodes.len() == self.capacity {
            return Err(KeyError::Full);
        }
        self.nodes.push(key);
        Ok(SignerID(self.nodes.len() as u32 - 1))
    }

    /// Pins the auth key that signs connect tokens.
    pub fn set_auth(&mut self, bytes: &[u8; 32]) -> Result<(), KeyError> {
        self.auth = Some(parse_key(bytes)?);
        Ok(())
    }

    pub fn node(&self, signer: SignerID) -> Option<&VerifyingKey> {
        self.nodes.get(signer.0 as usize)
    }

    pub fn auth(&self) -> Option<&VerifyingKey> {
        self.auth.as_ref()
    }
}

/// How much a decision rests on an item's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Accepted when its batch verifies (client inputs).
    Batch,
    /// Also confirmed with `verify_strict` (ownership: handoff, redirects, tokens).
    Strict,
}

/// The outcome for one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pushed, not yet verified.
    Pending,
    Accepted,
    /// Failed a precheck (non-canonical or small-order encoding) before batching.
    RejectedMalformed,
    /// The signature does not verify.
    RejectedSignature,
}

/// Why an item could not be pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// The batch already holds `capacity` items this tick.
    Full,
    /// The message is longer than `message_size_max`.
    TooLong,
}

/// Counters, cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyStats {
    pub items: u64,
    pub accepted: u64,
    pub rejected_malformed: u64,
    pub rejected_signature: u64,
    /// `verify_batch` calls, including the bisection's.
    pub batch_calls: u64,
    /// Items passed to `verify_batch`, summed over calls.
    pub batch_items: u64,
    /// `verify_strict` calls (singletons of a bisection, and `Policy::Strict` items).
    pub strict_calls: u64,
}

/// Collects a tick's signatures and verifies them together. See the module docs.
#[derive(Debug)]
pub struct BatchVerifier {
    capacity: usize,
    message_size_max: usize,
    bytes: Vec<u8>,
    ranges: Vec<Range<usize>>,
    signatures: Vec<Signature>,
    keys: Vec<VerifyingKey>,
    policies: Vec<Policy>,
    verdicts: Vec<Verdict>,
    /// Indices (into the arrays above) of the items that passed the prechecks, in push
    /// order: the batch is made of these, so its slices are contiguous.
    candidates: Vec<u32>,
    candidate_signatures: Vec<Signature>,
    candidate_keys: Vec<VerifyingKey>,
    /// Reused storage for the message slices handed to `verify_batch`.
    message_refs: Vec<&'static [u8]>,
    small_order: [[u8; 32]; 16],
    stats: VerifyStats,
}

impl BatchVerifier {
    /// A verifier for up to `capacity` items per tick of up to `message_size_max` bytes.
    pub fn new(capacity: usize, message_size_max: usize) -> BatchVerifier {
        let placeholder_key =
            VerifyingKey::from_bytes(&curve25519_dalek::constants::ED25519_BASEPOINT_COMPRESSED.0)
                .expect("the basepoint is a valid key");
        let mut small_order = [[0u8; 32]; 16];
        for (i, point) in curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .enumerate()
        {
            let encoding = point.compress().0;
            small_order[2 * i] = encoding;
            let mut flipped = encoding;
            flipped[31] ^= 0x80;
            small_order[2 * i + 1] = flipped;
        }
        BatchVerifier {
            capacity,
            message_size_max,
            bytes: vec![0; capacity * message_size_max],
            ranges: Vec::with_capacity(capacity),
            signatures: Vec::with_capacity(capacity),
            keys: Vec::with_capacity(capacity),
            policies: Vec::with_capacity(capacity),
            verdicts: Vec::with_capacity(capacity),
            candidates: Vec::with_capacity(capacity),
            candidate_signatures: vec![Signature::from_bytes(&[0; 64]); capacity],
            candidate_keys: vec![placeholder_key; capacity],
            message_refs: Vec::with_capacity(capacity),
            small_order,
            stats: VerifyStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.verdicts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.verdicts.is_empty()
    }

    pub fn stats(&self) -> VerifyStats {
        self.stats
    }

    /// Forgets this tick's items (keeps the buffers).
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.signatures.clear();
        self.keys.clear();
        self.policies.clear();
        self.verdicts.clear();
        self.candidates.clear();
    }

    /// Queues `signature` over `message` by `key`; returns the item's index.
    pub fn push(
        &mut self,
        key: &VerifyingKey,
        message: &[u8],
        signature: &[u8; SIGNATURE_SIZE],
        policy: Policy,
    ) -> Result<usize, PushError> {
        if self.verdicts.len() == self.capacity {
            return Err(PushError::Full);
        }
        if message.len() > self.message_size_max {
            return Err(PushError::TooLong);
        }
        let index = self.verdicts.len();
        let start = index * self.message_size_max;
        self.bytes[start..start + message.len()].copy_from_slice(message);
        self.ranges.push(start..start + message.len());
        self.signatures.push(Signature::from_bytes(signature));
        self.keys.push(*key);
        self.policies.push(policy);
        self.stats.items += 1;
        if self.precheck(signature) {
            self.verdicts.push(Verdict::Pending);
            self.candidates.push(index as u32);
        } else {
            self.verdicts.push(Verdict::RejectedMalformed);
            self.stats.rejected_malformed += 1;
        }
        Ok(index)
    }

    /// Byte-level checks that make "the batch accepted it" close to "verify_strict
    /// accepts it" (see the module docs).
    fn precheck(&self, signature: &[u8; SIGNATURE_SIZE]) -> bool {
        let r: &[u8; 32] = signature[..32].try_into().expect("64 bytes");
        let s: [u8; 32] = signature[32..].try_into().expect("64 bytes");
        if bool::from(Scalar::from_canonical_bytes(s).is_none()) {
            return false;
        }
        // y ≥ p = 2^255 − 19 is a non-canonical field element.
        let y_high_all_ones = r[1..31].iter().all(|&b| b == 0xff) && (r[31] & 0x7f) == 0x7f;
        if y_high_all_ones && r[0] >= 0xed {
            return false;
        }
        !self.small_order.contains(r)
    }

    /// The verdict for item `index`.
    pub fn verdict(&self, index: usize) -> Verdict {
        self.verdicts[index]
    }

    /// All verdicts, in push order.
    pub fn verdicts(&self) -> &[Verdict] {
        &self.verdicts
    }

    /// Verifies every pending item. Afterwards no verdict is `Pending`.
    pub fn verify(&mut self) {
        let n = self.candidates.len();
        for (k, &index) in self.candidates.iter().enumerate() {
            self.candidate_signatures[k] = self.signatures[index as usize];
            self.candidate_keys[k] = self.keys[index as usize];
        }
        if n > 0 {
            self.settle(0..n, false);
        }
        self.candidates.clear();
        debug_assert!(self.verdicts.iter().all(|v| *v != Verdict::Pending));
    }

    /// Settles candidates `range`. `known_bad`: the range is known to hold a bad item, so
    /// skip its own batch check and split at once.
    ///
    /// A large bad range is split into chunks of [`BISECT_CHUNK`] verified in order (the
    /// last is inferred bad when all before it passed); a small one is halved. Chunks,
    /// because `verify_batch` costs much more per item below ~16 items (measured: 40 µs
    /// for one, 16 µs each for 16, 13 µs each for 256), so halving down from 256 spends
    /// most of its time in small failing batches.
    fn settle(&mut self, range: Range<usize>, known_bad: bool) {
        if range.len() == 1 {
            let k = range.start;
            let ok = self.strict(k);
            self.decide(k, ok);
            return;
        }
        if !known_bad && self.batch(range.clone()) {
            self.accept(range);
            return;
        }
        if range.len() > 2 * BISECT_CHUNK {
            let mut failed = false;
            let mut start = range.start;
            while start < range.end {
                let chunk = start..(start + BISECT_CHUNK).min(range.end);
                start = chunk.end;
                let last = start == range.end;
                if last && !failed {
                    self.settle(chunk, true);
                } else if chunk.len() == 1 {
                    self.settle(chunk, false);
                } else if self.batch(chunk.clone()) {
                    self.accept(chunk);
                } else {
                    failed = true;
                    self.settle(chunk, true);
                }
            }
            return;
        }
        let middle = range.start + range.len() / 2;
        let (left, right) = (range.start..middle, middle..range.end);
        if left.len() == 1 {
            // Settling one item costs one strict verify either way.
            let k = left.start;
            let ok = self.strict(k);
            self.decide(k, ok);
            self.settle(right, ok);
        } else if self.batch(left.clone()) {
            self.accept(left);
            self.settle(right, true);
        } else {
            self.settle(left, true);
            self.settle(right, false);
        }
    }

    /// Accepts a range whose batch verified (confirming `Policy::Strict` items).
    fn accept(&mut self, range: Range<usize>) {
        for k in range {
            let index = self.candidates[k] as usize;
            let ok = self.policies[index] == Policy::Batch || self.strict(k);
            self.decide(k, ok);
        }
    }

    fn decide(&mut self, k: usize, ok: bool) {
        let index = self.candidates[k] as usize;
        if ok {
            self.verdicts[index] = Verdict::Accepted;
            self.stats.accepted += 1;
        } else {
            self.verdicts[index] = Verdict::RejectedSignature;
            self.stats.rejected_signature += 1;
        }
    }

    fn strict(&mut self, k: usize) -> bool {
        self.stats.strict_calls += 1;
        let index = self.candidates[k] as usize;
        let message = &self.bytes[self.ranges[index].clone()];
        self.keys[index]
            .verify_strict(message, &self.signatures[index])
            .is_ok()
    }

    fn batch(&mut self, range: Range<usize>) -> bool {
        self.stats.batch_calls += 1;
        self.stats.batch_items += range.len() as u64;
        let mut refs: Vec<&[u8]> = core::mem::take(&mut self.message_refs);
        refs.clear();
        for &index in &self.candidates[range.clone()] {
            refs.push(&self.bytes[self.ranges[index as usize].clone()]);
        }
        let ok = ed25519_dalek::verify_batch(
            &refs,
            &self.candidate_signatures[range.clone()],
            &self.candidate_keys[range],
        )
        .is_ok();
        self.message_refs = recycle(refs);
        ok
    }
}

/// Empties a vector of borrowed slices and returns its allocation with a `'static`
/// element type, so it can be kept between calls. No element survives, so no borrow is
/// extended; the in-place `collect` reuses the allocation (same element layout).
fn recycle(mut refs: Vec<&[u8]>) -> Vec<&'static [u8]> {
    refs.clear();
    refs.into_iter()
        .map(|_| -> &'static [u8] { unreachable!() })
        .collect()
}

pub use meridian_protocol::replay::ReplayWindow;

/// Why a connect token was refused before its signature was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is for another world")]
    WrongWorld,
    #[error("token has expired")]
    Expired,
    #[error("token was already used")]
    Replayed,
    #[error("the client key in the token is malformed or weak")]
    BadClientKey,
    #[error("no auth key is configured")]
    NoAuthKey,
}

/// Checks a token's world, expiry and client key, and queues its signature (by the auth
/// key, [`Policy::Strict`]) in `verifier`. Returns the verifier item index and the client
/// key; the token is valid once that item is accepted and [`TokenReplay::record`]
/// accepts its nonce.
pub fn precheck_token(
    token: &ConnectToken,
    world_id: u64,
    now_unix_ms: u64,
    keys: &KeyRegistry,
    verifier: &mut BatchVerifier,
) -> Result<Result<(usize, VerifyingKey), PushError>, TokenError> {
    if token.world_id.get() != world_id {
        return Err(TokenError::WrongWorld);
    }
    if token.expires_unix_ms.get() <= now_unix_ms {
        return Err(TokenError::Expired);
    }
    let client_key = parse_key(&token.client_key).map_err(|_| TokenError::BadClientKey)?;
    let auth = keys.auth().ok_or(TokenError::NoAuthKey)?;
    Ok(verifier
        .push(auth, token.signed_bytes(), &token.signature, Policy::Strict)
        .map(|index| (index, client_key)))
}

/// A [`TokenReplay`] shared by the zones of one node (locked once per accepted handshake).
pub type SharedTokens = std::sync::Arc<std::sync::Mutex<TokenReplay>>;

/// Remembers used tokens until they expire, so a token admits once wherever the table is
/// shared: every zone of a node shares one ([`SharedTokens`]); across nodes a token can open
/// one session per node (keep token lifetimes short). Bounded: when full of unexpired
/// tokens, new ones are refused (counted by the caller) rather than letting an old token
/// be replayed.
///
/// A hash map by (client id, nonce) for the replay check, and the same tokens in a queue
/// by expiry: each record first drops the tokens that have expired, from the front of the
/// queue, so recording costs O(log n) however many are held and however their expiries
/// are spread (a list scanned per handshake cost O(n): at a node's default capacity of
/// 16,512, 400 KB read per handshake under the node-wide lock).
#[derive(Debug)]
pub struct TokenReplay {
    /// (client id, nonce) → expiry (unix ms).
    used: std::collections::HashMap<(u64, u64), u64>,
    /// The same tokens, earliest expiry first.
    expiries: std::collections::BinaryHeap<std::cmp::Reverse<(u64, (u64, u64))>>,
    capacity: usize,
}

impl TokenReplay {
    pub fn new(capacity: usize) -> TokenReplay {
        TokenReplay {
            used: std::collections::HashMap::with_capacity(capacity),
            expiries: std::collections::BinaryHeap::with_capacity(capacity),
            capacity,
        }
    }

    /// Records a verified token's use. `Err(Replayed)` if it was used before; `Ok(false)`
    /// if the table is full of unexpired tokens (refuse the connect, retry later).
    pub fn record(&mut self, token: &ConnectToken, now_unix_ms: u64) -> Result<bool, TokenError> {
        while let Some(&std::cmp::Reverse((expires, key))) = self.expiries.peek()
            && expires <= now_unix_ms
        {
            self.expiries.pop();
            self.used.remove(&key);
        }
        let key = (token.client_id.get(), token.nonce.get());
        if self.used.contains_key(&key) {
            return Err(TokenError::Replayed);
        }
        if self.used.len() >= self.capacity {
            return Ok(false);
        }
        let expires = token.expires_unix_ms.get();
        self.used.insert(key, expires);
        self.expiries.push(std::cmp::Reverse((expires, key)));
        Ok(true)
    }

    /// How many tokens are held.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}
