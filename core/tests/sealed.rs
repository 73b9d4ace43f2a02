//! Sealed sessions: the key exchange, ChaCha20-Poly1305 both ways, the two input
//! authentication modes, and path migration — clients against a zone's sessions, in
//! memory (the harness of `clients`).

use std::net::{Ipv6Addr, SocketAddr};

use ed25519_dalek::{Signer, SigningKey};
use meridian_core::session::SessionConfig;
use meridian_layouts::witness::SIGNATURE_SIZE;

use crate::clients::{
    Harness, UNIX_MS, WORLD_ID, client_addr, connected_with, is_sealed, one_connected, zone_addr,
};

/// A sealed packet changed in transit (or forged without the session key) does not open:
/// it is dropped and counted, applies nothing, and closes nothing (a failed tag costs a
/// microsecond, and anyone who saw the session id could send one).
#[test]
fn forged_sealed_packets_are_dropped_and_close_nothing() {
    let (mut h, mut clients) = one_connected();
    let applied_before = h.sessions[0].counters().inputs_applied;
    clients[0].1.set_intent(127, 0, 0);
    for _ in 0..20 {
        h.step(&mut clients, |_, bytes| {
            if is_sealed(bytes) {
                let last = bytes.len() - 1;
                bytes[last] ^= 1; // the tag
                bytes[30] ^= 0x40; // and the ciphertext
            }
        });
    }
    let c = h.sessions[0].counters();
    assert_eq!(
        c.inputs_applied, applied_before,
        "no forged input was applied"
    );
    assert_eq!(c.sealed_forged, 20, "{c:?}");
    assert_eq!(h.sessions[0].len(), 1, "a forgery closed the session");
    assert!(clients[0].1.authoritative().velocity == [0.0, 0.0]);
    // Untouched, the same client's inputs move the avatar.
    for _ in 0..5 {
        h.step(&mut clients, |_, _| {});
    }
    assert!(h.sessions[0].counters().inputs_applied > applied_before);
    assert!(clients[0].1.authoritative().velocity[0] > 0.0);
}

/// With `client_auth = Ed25519` every input is also signed. A sealed packet from the
/// session whose input signature is missing or made with another key is refused; each
/// cost a strict verification, so after `input_failures_max` the session is closed (the
/// client told) and its IP cooled down.
#[test]
fn mis_signed_inputs_close_the_session_in_ed25519_mode() {
    use meridian_core::session::ClientAuth;
    use meridian_layouts::client::{INPUTS_PER_PACKET, InputBody, InputEntry};
    use meridian_layouts::witness::{domain, write_envelope_unsigned};
    use meridian_layouts::{U16Le, U32Le};
    let config = SessionConfig {
        client_auth: ClientAuth::Ed25519,
        ..SessionConfig::default()
    };
    let (mut h, mut clients) = connected_with(config);
    // Signed inputs are accepted and applied.
    clients[0].1.set_intent(127, 0, 0);
    for _ in 0..5 {
        h.step(&mut clients, |_, _| {});
    }
    assert!(clients[0].1.authoritative().velocity[0] > 0.0);
    let applied_before = h.sessions[0].counters().inputs_applied;
    let intruder = SigningKey::from_bytes(&[200; 32]);
    let session = clients[0].1.session();
    for round in 0..4u32 {
        let mut body = InputBody {
            ack_tick: U32Le::new(0),
            ack_zone: U32Le::new(0),
            count: 1,
            view_back: 0,
            event_ack: U32Le::new(0),
            inputs: [InputEntry::default(); INPUTS_PER_PACKET],
        };
        body.inputs[0] = InputEntry {
            sequence: U32Le::new(1000 + round),
            move_x: -127,
            move_y: 0,
            buttons: U16Le::new(0),
            aim: U16Le::new(0),
        };
        let mut inner = [0u8; 200];
        let signed = write_envelope_unsigned(
            &mut inner,
            domain::INPUT,
            session,
            0,
            u64::from(1000 + round),
            bytemuck::bytes_of(&body),
        )
        .unwrap();
        if round % 2 == 1 {
            let signature = intruder.sign(&inner[..signed]).to_bytes();
            inner[signed..signed + SIGNATURE_SIZE].copy_from_slice(&signature);
        } // else unsigned: the signature bytes stay zero
        let mut sealed = [0u8; 1500];
        let n = clients[0]
            .1
            .seal_inner(&inner[..signed + SIGNATURE_SIZE], &mut sealed);
        h.sessions[0].handle_datagram(h.unix_ms, client_addr(1), &sealed[..n]);
        h.step(&mut [], |_, _| {});
    }
    let c = h.sessions[0].counters();
    assert_eq!(
        c.inputs_applied, applied_before,
        "no mis-signed input was applied"
    );
    assert_eq!(c.bad_signatures, 4, "{c:?}");
    assert_eq!(c.sessions_closed_bad_inputs, 1, "{c:?}");
    assert_eq!(h.sessions[0].len(), 0);
    let told = h
        .to_clients
        .iter()
        .rev()
        .take(3)
        .any(|(_, to, b)| *to == client_addr(1) && is_sealed(b));
    assert!(told, "the client was not told");
    // Another port of the same IP is refused while the IP cools down.
    let auth = h.auth.clone();
    let mut again = vec![(
        client_addr(2),
        h.client(2, WORLD_ID, UNIX_MS + 60_000, &auth),
    )];
    for _ in 0..5 {
        h.step(&mut again, |_, _| {});
    }
    assert!(!again[0].1.is_connected());
    assert!(h.sessions[0].counters().cooled_down > 0);
}

/// Nothing a session sends is readable on the wire: the inner datagram's header (every
/// inner datagram starts with the magic) and the client's input bytes never appear in
/// clear, either way.
#[test]
fn session_traffic_is_encrypted_both_ways() {
    let (mut h, mut clients) = one_connected();
    let mut from_client = Vec::new();
    clients[0].1.set_intent(50, 20, 3);
    for _ in 0..30 {
        h.step(&mut clients, |_, bytes| from_client.push(bytes.clone()));
    }
    let sent: Vec<&Vec<u8>> = h.to_clients.iter().map(|(_, _, b)| b).collect();
    assert!(sent.len() > 30);
    // Every packet after the CHALLENGE is sealed.
    assert!(sent.iter().skip(1).all(|b| is_sealed(b)));
    assert!(from_client.iter().all(|b| is_sealed(b)));
    for b in sent.iter().skip(1).copied().chain(&from_client) {
        let magics = b.windows(4).filter(|w| w == b"MRDN").count();
        assert_eq!(magics, 1, "an inner header in clear");
    }
    for b in &from_client {
        assert!(
            !b.windows(4).any(|w| w == [50, 20, 3, 0]),
            "an input in clear"
        );
    }
    // The inputs did arrive: the avatar moves as asked.
    assert!(clients[0].1.authoritative().velocity[0] > 0.0);
}

/// The handshake binds the session key to the zone's node key: a client that pins node
/// keys goes on only with a zone whose key it pins; a CHALLENGE whose ephemeral was
/// replaced on the way (a man in the middle) yields a RESPONSE the zone refuses.
#[test]
fn the_handshake_is_bound_to_the_node_key_and_the_zone_ephemeral() {
    let node = SigningKey::from_bytes(&[31; 32]);
    let mut h = Harness::new();
    h.sessions[0].set_node_key(node.clone(), 0);
    let auth = h.auth.clone();
    // Pinning another key: the client never answers the CHALLENGE.
    let mut wrong = h.client(1, WORLD_ID, UNIX_MS + 60_000, &auth);
    wrong.trust_node_key(SigningKey::from_bytes(&[32; 32]).verifying_key());
    let mut clients = vec![(client_addr(1), wrong)];
    for _ in 0..5 {
        h.step(&mut clients, |_, _| {});
    }
    assert!(!clients[0].1.is_connected());
    assert!(clients[0].1.counters().untrusted_node > 0);
    assert_eq!(h.sessions[0].counters().responses, 0);
    // Pinning the right key: connected.
    let mut right = h.client(2, WORLD_ID, UNIX_MS + 60_000, &auth);
    right.trust_node_key(node.verifying_key());
    let mut clients = vec![(client_addr(2), right)];
    for _ in 0..5 {
        h.step(&mut clients, |_, _| {});
    }
    assert!(clients[0].1.is_connected());
    // A man in the middle swaps the zone's ephemeral for its own in the CHALLENGE the
    // client sees (the harness delivers zone → client datagrams unchanged, so the swap is
    // made by handing the client a rewritten copy).
    let mut victim = h.client(3, WORLD_ID, UNIX_MS + 60_000, &auth);
    victim.tick(h.now);
    let mut buf = [0u8; 1500];
    let (_, len) = victim.poll_transmit(&mut buf).unwrap();
    h.sessions[0].handle_datagram(h.unix_ms, client_addr(3), &buf[..len]);
    h.step(&mut [], |_, _| {}); // CHALLENGEs go out at the tick
    let (_, _, challenge) = h
        .to_clients
        .iter()
        .rfind(|d| d.1 == client_addr(3))
        .unwrap();
    let mut challenge = challenge.clone();
    challenge[28..60].copy_from_slice(&[9u8; 32]); // the server_ephemeral field
    victim.handle_datagram(h.now, zone_addr(0), &challenge);
    let (_, len) = victim.poll_transmit(&mut buf).unwrap();
    let before = h.sessions[0].counters().handshakes_bad_keys;
    h.sessions[0].handle_datagram(h.unix_ms, client_addr(3), &buf[..len]);
    assert_eq!(h.sessions[0].counters().handshakes_bad_keys, before + 1);
    let mut clients = vec![(client_addr(3), victim)];
    for _ in 0..3 {
        h.step(&mut clients, |_, _| {});
    }
    assert!(!clients[0].1.is_connected());
}

/// A NAT rebinding: the client's packets start coming from a new address. The zone uses
/// them (they open under the session's key), probes the new address, and moves the
/// session there when the probe is answered; snapshots follow.
#[test]
fn a_session_follows_its_client_to_a_new_address_after_the_probe() {
    let (mut h, mut clients) = one_connected();
    clients[0].1.set_intent(127, 0, 0);
    for _ in 0..3 {
        h.step(&mut clients, |_, _| {});
    }
    let moved = client_addr(77);
    clients[0].0 = moved;
    let snapshots = clients[0].1.counters().snapshots;
    for _ in 0..10 {
        h.step(&mut clients, |_, _| {});
    }
    let c = h.sessions[0].counters();
    assert!(c.path_probes >= 1, "{c:?}");
    assert_eq!(c.path_migrations, 1, "{c:?}");
    assert!(clients[0].1.counters().path_responses >= 1);
    assert!(
        clients[0].1.counters().snapshots > snapshots + 5,
        "snapshots follow"
    );
    assert!(clients[0].1.is_connected());
    let last = h.to_clients.last().unwrap();
    assert_eq!(last.1, moved);
}

/// An attacker who captured a packet and races it from its own address gets one small
/// probe it cannot answer; the session stays where it is and keeps its snapshots. A
/// replay of an older packet from elsewhere does not even earn a probe.
#[test]
fn a_raced_or_replayed_packet_cannot_move_a_session() {
    let (mut h, mut clients) = one_connected();
    let attacker = SocketAddr::from(([198, 51, 100, 7], 4444));
    let mut captured = Vec::new();
    // The attacker's copy arrives first; the client's own copy is lost on the way.
    h.step(&mut clients, |_, bytes| {
        captured = bytes.clone();
        bytes[30] ^= 1;
    });
    h.sessions[0].handle_datagram(h.unix_ms, attacker, &captured);
    for _ in 0..10 {
        h.step(&mut clients, |_, _| {});
    }
    let probes: Vec<_> = h
        .to_clients
        .iter()
        .filter(|(_, to, _)| *to == attacker)
        .collect();
    assert_eq!(probes.len(), 1, "one probe, nothing else");
    assert!(probes[0].2.len() <= captured.len(), "no amplification");
    let c = h.sessions[0].counters();
    assert_eq!(c.path_migrations, 0, "{c:?}");
    assert_eq!(h.to_clients.last().unwrap().1, client_addr(1));
    assert!(clients[0].1.is_connected());
    // A replay of an older packet from another address: refused before any probe.
    h.sessions[0].handle_datagram(
        h.unix_ms,
        SocketAddr::from(([198, 51, 100, 8], 1)),
        &captured,
    );
    assert_eq!(h.sessions[0].counters().path_probes, c.path_probes);
    assert_eq!(
        h.sessions[0].counters().inputs_replayed,
        c.inputs_replayed + 1
    );
}

/// Packets with made-up key ids (anyone can send them, from any address) do not push the
/// zone's key and replay window out of the client: a genuine packet replayed after a burst
/// of them is still refused as a replay.
#[test]
fn made_up_key_ids_do_not_reset_the_clients_replay_window() {
    let (mut h, mut clients) = one_connected();
    for _ in 0..3 {
        h.step(&mut clients, |_, _| {});
    }
    let genuine = h.to_clients.last().unwrap().2.clone();
    let before = clients[0].1.counters();
    for key_id in 1..=5u32 {
        let mut junk = genuine.clone();
        junk[12..16].copy_from_slice(&(key_id * 7919).to_le_bytes());
        clients[0].1.handle_datagram(h.now, zone_addr(0), &junk);
    }
    clients[0].1.handle_datagram(h.now, zone_addr(0), &genuine);
    let after = clients[0].1.counters();
    assert_eq!(
        after.sealed_rejected,
        before.sealed_rejected + 6,
        "{after:?}"
    );
    assert_eq!(after.snapshots, before.snapshots);
    // The session goes on.
    for _ in 0..3 {
        h.step(&mut clients, |_, _| {});
    }
    assert!(clients[0].1.counters().snapshots > before.snapshots);
}

/// A sealed datagram counts against its session's per-tick allowance only when it comes
/// from the session's address; naming a session from elsewhere is charged to the sender's
/// IP. A flood that names a victim's session id from another address uses up its own
/// allowance, never the victim's: the victim's input of that tick still gets in. From the
/// session's own address, past `session_datagrams_per_tick` the rest are dropped, counted.
#[test]
fn a_datagram_naming_a_session_is_charged_to_its_sender() {
    let (mut h, mut clients) = one_connected();
    for _ in 0..3 {
        h.step(&mut clients, |_, _| {});
    }
    let mut captured = Vec::new();
    h.step(&mut clients, |_, bytes| {
        if is_sealed(bytes) {
            captured = bytes.clone();
        }
    });
    let config = SessionConfig::default();
    let attacker = SocketAddr::from(([198, 51, 100, 9], 5555));
    let before = h.sessions[0].counters();
    // Fifty copies naming the victim's session, from the attacker, in one tick; then the
    // victim's own input of that tick.
    for _ in 0..50 {
        h.sessions[0].handle_datagram(h.unix_ms, attacker, &captured);
    }
    h.step(&mut clients, |_, _| {});
    let c = h.sessions[0].counters();
    let allowed = u64::from(config.datagrams_per_tick);
    assert_eq!(c.rate_limited - before.rate_limited, 50 - allowed, "{c:?}");
    assert_eq!(c.inputs_replayed - before.inputs_replayed, allowed, "{c:?}");
    assert_eq!(
        c.inputs - before.inputs,
        1,
        "the victim's own input got in: {c:?}"
    );
    // From the session's own address: its allowance, then drops.
    let own = clients[0].0;
    let before = c;
    for _ in 0..20 {
        h.sessions[0].handle_datagram(h.unix_ms, own, &captured);
    }
    let c = h.sessions[0].counters();
    let allowed = u64::from(config.session_datagrams_per_tick);
    assert_eq!(c.rate_limited - before.rate_limited, 20 - allowed, "{c:?}");
    assert_eq!(c.inputs_replayed - before.inputs_replayed, allowed, "{c:?}");
    assert!(clients[0].1.is_connected());
}

/// An IPv6 sender has a whole /64 to send from: spread over it, its CONNECTs still share
/// one IP's allowance a tick. From as many /64s, each gets its own.
#[test]
fn an_ipv6_sender_spread_over_its_64_gets_one_allowance() {
    let mut h = Harness::new();
    let auth = h.auth.clone();
    let mut client = h.client(1, WORLD_ID, UNIX_MS + 60_000, &auth);
    client.tick(h.now);
    let mut buf = [0u8; 1500];
    let (_, len) = client.poll_transmit(&mut buf).expect("a CONNECT");
    let connect = buf[..len].to_vec();
    let allowed = u64::from(SessionConfig::default().datagrams_per_tick);
    let mut limited = Vec::new();
    for prefix in [[0x2001, 0xdb8, 1, 2], [0x2001, 0xdb8, 0, 0]] {
        let before = h.sessions[0].counters().rate_limited;
        for i in 0..100u16 {
            // The same /64, another interface id — or another /64, the same interface id.
            let [a, b, c, d] = prefix;
            let ip = if d == 2 {
                Ipv6Addr::new(a, b, c, d, i, 7, 1, i)
            } else {
                Ipv6Addr::new(a, b, i, d, 0, 0, 0, 1)
            };
            h.sessions[0].handle_datagram(h.unix_ms, SocketAddr::from((ip, 4_000 + i)), &connect);
        }
        limited.push(h.sessions[0].counters().rate_limited - before);
        h.step(&mut [], |_, _| {});
    }
    assert_eq!(limited, [100 - allowed, 0]);
}
