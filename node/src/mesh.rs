//! The node's side of mesh membership: `meridian_core::mesh` on the node's control UDP
//! port, in a thread of its own (never on a zone core). What it believes of every other
//! node is published for the status line, `/status` and `/metrics`; changes are logged.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use meridian_core::mesh::{Liveness, Mesh, MeshConfig, MeshCounters, MeshEvent};
use meridian_io::Clock;

use crate::world_file::WorldSpec;

/// One other node as this one sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerView {
    pub name: String,
    pub liveness: Liveness,
    pub generation: u32,
    /// How long it has been in that state.
    pub for_ms: u64,
}

/// What the mesh thread publishes.
#[derive(Clone, Debug, Default)]
pub struct MeshView {
    pub peers: Vec<PeerView>,
    pub counters: MeshCounters,
    /// This node's generation (bumped when it learns the others declared it down).
    pub generation: u32,
}

/// The running mesh thread.
#[derive(Debug)]
pub struct MeshHandle {
    view: Arc<Mutex<MeshView>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub control: SocketAddr,
}

impl MeshHandle {
    pub fn view(&self) -> MeshView {
        self.view.lock().expect("mesh view").clone()
    }

    /// The published view, for the admin thread.
    pub fn shared(&self) -> Arc<Mutex<MeshView>> {
        self.view.clone()
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MeshHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Starts membership for node `me` of `spec` (which has a control address and keys on
/// every node), signing with `key`.
pub fn start(spec: &WorldSpec, me: usize, key: &SigningKey) -> anyhow::Result<MeshHandle> {
    let node = &spec.nodes[me];
    let control = node
        .control
        .ok_or_else(|| anyhow::anyhow!("node {} has no control address", node.name))?;
    let socket = UdpSocket::bind(control)
        .map_err(|e| anyhow::anyhow!("cannot bind the control port {control}: {e}"))?;
    let mut peers = Vec::new();
    for (j, other) in spec.nodes.iter().enumerate() {
        if j != me {
            let addr = other
                .control
                .expect("every node has one (world file check)");
            let public = other
                .public_key
                .expect("every node has one (world file check)");
            peers.push((j as u16, addr, public));
        }
    }
    let names: Vec<String> = spec.nodes.iter().map(|n| n.name.clone()).collect();
    // A generation above any this node had before: the wall clock's seconds.
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32);
    let clock = Clock::new();
    let seed = u64::from(generation) ^ (me as u64) << 32;
    let mut mesh = Mesh::new(
        me as u16,
        generation,
        key.clone(),
        &peers,
        MeshConfig::default(),
        clock.now(),
        seed,
    )?;
    mesh.join(clock.now());
    let view = Arc::new(Mutex::new(MeshView::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (view, stop) = (view.clone(), stop.clone());
        std::thread::Builder::new()
            .name("mesh".into())
            .spawn(move || run(mesh, socket, clock, &names, &view, &stop))?
    };
    tracing::info!(
        "mesh membership on control port {control}: {} other nodes",
        peers.len()
    );
    Ok(MeshHandle {
        view,
        stop,
        thread: Some(thread),
        control,
    })
}

fn run(
    mut mesh: Mesh,
    socket: UdpSocket,
    clock: Clock,
    names: &[String],
    view: &Mutex<MeshView>,
    stop: &AtomicBool,
) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        let now = clock.now();
        let wait = mesh
            .next_timeout()
            .map_or(Duration::from_millis(50), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        let _ = socket.set_read_timeout(Some(wait));
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            mesh.handle_datagram(clock.now(), from, &buf[..len]);
        }
        mesh.handle_timeout(clock.now());
        while let Some((to, bytes)) = mesh.poll_transmit() {
            let _ = socket.send_to(&bytes, to);
        }
        while let Some(event) = mesh.poll_event() {
            let name = |node: u16| names.get(usize::from(node)).map_or("?", String::as_str);
            match event {
                MeshEvent::Up { node, generation } => {
                    tracing::info!("mesh: node {} is up (generation {generation})", name(node));
                }
                MeshEvent::Down { node, generation } => {
                    tracing::warn!(
                        "mesh: node {} is declared down (generation {generation})",
                        name(node)
                    );
                }
                MeshEvent::Rejoined { generation } => tracing::warn!(
                    "mesh: the other nodes had declared this node down; rejoined as generation {generation}"
                ),
                MeshEvent::Decided { .. } => {}
            }
        }
        let now = clock.now();
        let peers = mesh
            .peers()
            .iter()
            .map(|p| PeerView {
                name: names.get(usize::from(p.node)).cloned().unwrap_or_default(),
                liveness: p.liveness,
                generation: p.generation,
                for_ms: now.saturating_duration_since(p.since).as_millis() as u64,
            })
            .collect();
        *view.lock().expect("mesh view") = MeshView {
            peers,
            counters: mesh.counters(),
            generation: mesh.me().generation,
        };
    }
}

/// `/status` lines for membership: `peer NAME STATE generation G for_ms MS`.
pub fn status_text(view: &MeshView) -> String {
    view.peers
        .iter()
        .map(|p| {
            format!(
                "peer {} {} generation {} for_ms {}\n",
                p.name,
                p.liveness.as_str(),
                p.generation,
                p.for_ms
            )
        })
        .collect()
}

/// The status line's part: `mesh a alive, b suspect: NAME, c down: NAME`.
pub fn status_part(view: &MeshView) -> String {
    let of = |l: Liveness| -> Vec<&str> {
        view.peers
            .iter()
            .filter(|p| p.liveness == l)
            .map(|p| p.name.as_str())
            .collect()
    };
    let mut part = format!("mesh {} alive", of(Liveness::Alive).len());
    for (l, word) in [
        (Liveness::Suspect, "suspect"),
        (Liveness::Down, "down"),
        (Liveness::Unknown, "unknown"),
    ] {
        let names = of(l);
        if !names.is_empty() {
            part.push_str(&format!(", {} {word}: {}", names.len(), names.join(" ")));
        }
    }
    part
}
