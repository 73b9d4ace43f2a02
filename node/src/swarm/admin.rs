//! The swarm's view of the nodes' admin endpoints: owner samples and plain GETs.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant as WallInstant};

use super::Shared;
use crate::admin_token::AdminToken;

/// One sample of every node's `/avatars`.
#[derive(Debug, Default)]
pub struct OwnerSample {
    /// Avatars owned by two zones that no handoff between the two samples explains.
    pub owner_violations: u64,
    /// Every avatar owned by a zone or in flight between two.
    pub present: HashSet<u64>,
    /// Admin endpoints that did not answer (a node down: the avatars of its zones count
    /// as missing until another node runs them).
    pub unreachable: Vec<SocketAddr>,
}

/// Samples every admin endpoint's `/avatars`; an error only when none answered.
pub fn sample_owners(
    admins: &[SocketAddr],
    token: Option<&AdminToken>,
) -> anyhow::Result<OwnerSample> {
    let mut owners: HashMap<u64, Vec<(u32, u64)>> = Default::default();
    let mut present = HashSet::new();
    let mut unreachable = Vec::new();
    let mut failed = None;
    for admin in admins {
        let body = match http_get_with(*admin, "/avatars", token) {
            Ok(body) => body,
            Err(e) => {
                unreachable.push(*admin);
                failed = Some(e);
                continue;
            }
        };
        let mut zone_time = 0u64;
        for line in body.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                // A tentative run's line lists none of its avatars.
                ["zone", _, "tick", _, "taken_at_ns", t, ..] => zone_time = t.parse()?,
                ["avatar", id, epoch] => {
                    let id = id.parse()?;
                    present.insert(id);
                    owners
                        .entry(id)
                        .or_default()
                        .push((epoch.parse()?, zone_time));
                }
                ["avatar_in_flight", id, _] => {
                    present.insert(id.parse()?);
                }
                _ => anyhow::bail!("unexpected /avatars line {line:?}"),
            }
        }
    }
    if let Some(e) = failed.filter(|_| unreachable.len() == admins.len()) {
        return Err(e);
    }
    let mut owner_violations = 0;
    for list in owners.values() {
        let explained = match list.as_slice() {
            [_] => true,
            [(ea, ta), (eb, tb)] => (ea < eb && ta < tb) || (eb < ea && tb < ta),
            _ => false,
        };
        if !explained {
            owner_violations += 1;
        }
    }
    Ok(OwnerSample {
        owner_violations,
        present,
        unreachable,
    })
}

/// Avatars of bots connected before `asked` and still open that `present` lacks.
pub(super) fn missing_avatars_of(
    shared: &Shared,
    present: &HashSet<u64>,
    asked: WallInstant,
) -> HashSet<u64> {
    shared
        .avatars
        .lock()
        .expect("avatars lock")
        .iter()
        .filter(|(id, (connected, closed))| {
            *connected < asked && closed.is_none() && !present.contains(id)
        })
        .map(|(id, _)| *id)
        .collect()
}

/// A minimal HTTP/1.0 GET of an admin endpoint that needs no token (plain HTTP on a
/// trusted address).
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    http_get_with(addr, path, None)
}

/// [`http_get`] with the node's admin token, if it has one.
pub fn http_get_with(
    addr: SocketAddr,
    path: &str,
    token: Option<&AdminToken>,
) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let authorization = token.map_or(String::new(), |t| {
        format!("Authorization: Bearer {}\r\n", t.text())
    });
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{authorization}\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("malformed HTTP response from {addr}"))?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{addr}{path}: {}",
        head.lines().next().unwrap_or("")
    );
    Ok(body.to_owned())
}
