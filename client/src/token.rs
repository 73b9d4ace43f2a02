//! Connect tokens, issued: what a world's auth service does after it has authenticated a
//! player by its own means (the `meridian token` command, tests and the swarm use it).

use ed25519_dalek::{Signer, SigningKey};
use meridian_layouts::U64Le;
use meridian_layouts::witness::{ConnectToken, SIGNATURE_SIZE, domain};

/// A connect token for `client_id` in world `world_id`, naming the client's session key
/// `client_key`, valid until `expires_unix_ms`, signed by the world's `auth` key. `nonce`
/// must differ between tokens: a zone admits a token once.
pub fn issue_token(
    auth: &SigningKey,
    client_key: [u8; 32],
    world_id: u64,
    client_id: u64,
    expires_unix_ms: u64,
    nonce: u64,
) -> ConnectToken {
    let mut token = ConnectToken {
        domain: domain::TOKEN,
        world_id: U64Le::new(world_id),
        client_id: U64Le::new(client_id),
        client_key,
        expires_unix_ms: U64Le::new(expires_unix_ms),
        nonce: U64Le::new(nonce),
        signature: [0; SIGNATURE_SIZE],
    };
    token.signature = auth.sign(token.signed_bytes()).to_bytes();
    token
}
