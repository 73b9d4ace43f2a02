//! World files: TOML in, a checked [`World`] out.
//!
//! The file's schema mirrors [`WorldConfig`]. Unknown keys are errors (a typo must not
//! silently fall back to a default), and every error names the file and the field.

use std::path::{Path, PathBuf};

use std::net::SocketAddr;

use meridian_core::npc::Pattern;
use meridian_core::world::{Rect, World, WorldConfig, WorldError, ZoneID};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorldFile {
    world: WorldSection,
    zones: ZonesSection,
    #[serde(default)]
    nodes: Vec<NodeSection>,
    npcs: Option<NpcSection>,
    clients: Option<ClientsSection>,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    persistence: PersistenceSection,
    mesh: Option<MeshSection>,
    game: Option<GameSection>,
}

/// The `[game]` section: which of the games the node binary knows every zone plays.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GameSection {
    /// A name the binary registered (`meridian_node::games::Games`): the stock `meridian`
    /// knows "tag"; a studio's own binary adds its games.
    name: String,
    /// The game's own settings (`[game.settings]`), read by the game's plan.
    #[serde(default)]
    settings: toml::Table,
}

/// Longest game name a world file may give.
pub const GAME_NAME_MAX: usize = 64;

/// The `[mesh]` section (only with mesh membership: control addresses on every node).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeshSection {
    /// Seconds after its start before a node takes a member it has not heard from at all
    /// for down (default 5).
    start_grace_s: Option<f32>,
    /// Seconds a zone running away from its home node waits, once its standby there is
    /// current and that node alive, before it moves home on its own (default: never).
    move_home_after_s: Option<f32>,
}

/// [`MeshSpec::start_grace`] unless the world file says otherwise.
pub const START_GRACE_DEFAULT: std::time::Duration = std::time::Duration::from_secs(5);

/// Mesh membership's settings from the world file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeshSpec {
    /// How long after its start a node waits for a member it has not heard from at all
    /// before it takes that member for down (a node that started while another was dead
    /// learns of the death this way; a node that starts later than this after the others
    /// finds its zones taken over on their standbys).
    pub start_grace: std::time::Duration,
    /// How long a zone that runs on a node other than its home waits, once its standby
    /// on the home node is current and that node seen alive, before the node running it
    /// moves it home (as `/move` would); `None`: zones move home only when asked.
    pub move_home_after: Option<std::time::Duration>,
}

/// The `[persistence]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersistenceSection {
    /// Seconds between checkpoints (default 1).
    checkpoint_interval_s: Option<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsSection {
    /// The world's auth public key (hex): it signs connect tokens.
    auth_key: String,
    sessions_per_zone: Option<usize>,
    speed_mps: Option<f32>,
    /// "aead" (default): inputs authenticated by the session's AEAD; "ed25519": each
    /// input also signed by the client's session key.
    client_auth: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSection {
    name: String,
    zones: Vec<u32>,
    cores: Option<Vec<usize>>,
    udp: SocketAddr,
    admin: Option<SocketAddr>,
    /// The node's Ed25519 public key (hex). Either every node has one or none does.
    public_key: Option<String>,
    /// The node's control UDP address: mesh membership (gossip). Either every node has
    /// one or none does; it needs public keys (gossip is signed).
    control: Option<SocketAddr>,
    /// Zones of other nodes this node keeps the warm standby of: their primaries stream
    /// their files to it (TCP, on this node's control address). Needs the mesh.
    #[serde(default)]
    standby_for: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum PatternName {
    RandomWalk,
    BorderDancers,
    FlashCrowd,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NpcSection {
    pattern: PatternName,
    per_zone: u32,
    speed_mps: f32,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    entities_per_zone: Option<u32>,
}

/// A node of the world file: which zones it hosts, on which cores, where.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub zones: Vec<ZoneID>,
    /// The core each zone is pinned to, in `zones` order.
    pub cores: Vec<usize>,
    /// Zone `k` of this node listens on this address with the port + k.
    pub udp: SocketAddr,
    /// The admin HTTP address, if any.
    pub admin: Option<SocketAddr>,
    /// The token the admin endpoint requires of every request (never from the world
    /// file, which every node shares: `meridian node --admin-token FILE` sets it).
    pub admin_token: Option<crate::admin_token::AdminToken>,
    /// The node's pinned public key; traffic between nodes is signed when nodes have keys.
    pub public_key: Option<[u8; 32]>,
    /// The control UDP address mesh membership gossips on, if the world runs a mesh.
    pub control: Option<SocketAddr>,
    /// Zones of other nodes whose warm standby this node keeps (docs/mesh.md).
    pub standby_for: Vec<ZoneID>,
}

impl NodeSpec {
    /// The UDP address of the `k`-th zone of this node.
    pub fn zone_address(&self, k: usize) -> SocketAddr {
        let mut addr = self.udp;
        addr.set_port(self.udp.port() + k as u16);
        addr
    }

    /// The UDP address the `j`-th zone of `standby_for` runs at here once promoted: the
    /// ports after the node's own zones.
    pub fn standby_address(&self, j: usize) -> SocketAddr {
        self.zone_address(self.zones.len() + j)
    }
}

/// Server-driven NPCs per zone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NpcSpec {
    pub pattern: Pattern,
    pub per_zone: u32,
    pub speed_mps: f32,
}

/// Everything a world file says.
#[derive(Clone, Debug)]
pub struct WorldSpec {
    pub world: World,
    pub world_id: u64,
    pub nodes: Vec<NodeSpec>,
    pub npcs: Option<NpcSpec>,
    /// Client access; `None`: the world takes no clients.
    pub clients: Option<ClientsSpec>,
    pub entities_per_zone: u32,
    /// Ticks between checkpoints.
    pub checkpoint_every_ticks: u64,
    /// Mesh membership's settings (defaults when the world runs no mesh).
    pub mesh: MeshSpec,
    /// The game every zone plays (`[game]`); `None`: no game, the zones run NPCs and
    /// avatars alone.
    pub game: Option<GameSpec>,
}

/// The `[game]` section: which game every zone plays, by the name the node binary knows it
/// by (`crate::games`), and its settings (`[game.settings]`, the game's to read and check).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GameSpec {
    pub name: String,
    pub settings: toml::Table,
}

/// The `[clients]` section.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientsSpec {
    /// The world's auth public key; tokens signed by its secret half admit clients.
    pub auth_key: [u8; 32],
    pub sessions_per_zone: usize,
    /// Avatars' top speed, metres per second.
    pub speed_mps: f32,
    /// How inputs are authenticated after the handshake.
    pub client_auth: meridian_core::session::ClientAuth,
}

/// Default per-zone entity capacity.
pub const ENTITIES_PER_ZONE_DEFAULT: u32 = 524_288;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorldSection {
    /// The world's id, checked in connect tokens.
    #[serde(default = "default_world_id")]
    id: u64,
    bounds: Bounds,
    tick_rate_hz: u32,
    margin_m: f32,
    aura_m: f32,
    cell_size_m: f32,
}

fn default_world_id() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bounds {
    x_min: f32,
    y_min: f32,
    x_max: f32,
    y_max: f32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZonesSection {
    columns: u32,
    rows: u32,
}

/// Why a world file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WorldFileError {
    #[error("cannot read world file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("world file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("world file {path}: [world] {source}")]
    Invalid { path: PathBuf, source: WorldError },
    #[error("world file {path}: {what}")]
    Nodes { path: PathBuf, what: String },
}

/// Reads, parses and checks a world file's geometry.
pub fn load(path: &Path) -> Result<World, WorldFileError> {
    load_spec(path).map(|spec| spec.world)
}

/// Reads, parses and checks a whole world file: geometry, nodes, NPCs, limits.
pub fn load_spec(path: &Path) -> Result<WorldSpec, WorldFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| WorldFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|e| match e {
        ParseError::Toml(source) => WorldFileError::Parse {
            path: path.to_owned(),
            source,
        },
        ParseError::World(source) => WorldFileError::Invalid {
            path: path.to_owned(),
            source,
        },
        ParseError::Nodes(what) => WorldFileError::Nodes {
            path: path.to_owned(),
            what,
        },
    })
}

#[derive(Debug)]
enum ParseError {
    Toml(Box<toml::de::Error>),
    World(WorldError),
    Nodes(String),
}

/// Parses a world file's text (for worlds built into the binary); errors name the field.
pub fn parse_spec(text: &str) -> Result<WorldSpec, String> {
    parse(text).map_err(|e| match e {
        ParseError::Toml(e) => e.to_string(),
        ParseError::World(e) => format!("[world] {e}"),
        ParseError::Nodes(what) => what,
    })
}

fn parse(text: &str) -> Result<WorldSpec, ParseError> {
    let file: WorldFile = toml::from_str(text).map_err(|e| ParseError::Toml(Box::new(e)))?;
    let b = file.world.bounds;
    let world = World::new(WorldConfig {
        bounds: Rect::new(b.x_min, b.y_min, b.x_max, b.y_max),
        zones_x: file.zones.columns,
        zones_y: file.zones.rows,
        margin_m: file.world.margin_m,
        aura_m: file.world.aura_m,
        tick_rate_hz: file.world.tick_rate_hz,
        cell_size_m: file.world.cell_size_m,
    })
    .map_err(ParseError::World)?;
    let mut nodes = Vec::new();
    let mut hosted = vec![None::<String>; world.zone_count() as usize];
    for (i, n) in file.nodes.iter().enumerate() {
        if n.zones.is_empty() {
            return Err(ParseError::Nodes(format!(
                "nodes[{i}] ({}): zones is empty",
                n.name
            )));
        }
        for &z in &n.zones {
            let Some(slot) = hosted.get_mut(z as usize) else {
                return Err(ParseError::Nodes(format!(
                    "nodes[{i}] ({}): zone {z} does not exist (the world has zones 0..{})",
                    n.name,
                    world.zone_count()
                )));
            };
            if let Some(other) = slot {
                return Err(ParseError::Nodes(format!(
                    "zone {z} is hosted by both {other} and {}",
                    n.name
                )));
            }
            *slot = Some(n.name.clone());
        }
        let cores = match &n.cores {
            Some(cores) if cores.len() != n.zones.len() => {
                return Err(ParseError::Nodes(format!(
                    "nodes[{i}] ({}): cores has {} entries for {} zones",
                    n.name,
                    cores.len(),
                    n.zones.len()
                )));
            }
            Some(cores) => cores.clone(),
            None => {
                let available = std::thread::available_parallelism().map_or(1, |c| c.get());
                (0..n.zones.len()).map(|k| k % available).collect()
            }
        };
        if usize::from(n.udp.port()) + n.zones.len() > usize::from(u16::MAX) {
            return Err(ParseError::Nodes(format!(
                "nodes[{i}] ({}): udp port too high for its zones",
                n.name
            )));
        }
        let public_key = match &n.public_key {
            None => None,
            Some(text) => Some(crate::keyfile::decode_32(text).map_err(|e| {
                ParseError::Nodes(format!("nodes[{i}] ({}): public_key: {e}", n.name))
            })?),
        };
        nodes.push(NodeSpec {
            name: n.name.clone(),
            zones: n.zones.iter().map(|&z| ZoneID(z)).collect(),
            cores,
            udp: n.udp,
            admin: n.admin,
            admin_token: None,
            public_key,
            control: n.control,
            standby_for: n.standby_for.iter().map(|&z| ZoneID(z)).collect(),
        });
    }
    check_standbys(&nodes, world.zone_count())?;
    let controlled = nodes.iter().filter(|n| n.control.is_some()).count();
    if controlled != 0 && (controlled != nodes.len() || keyed_count(&nodes) != nodes.len()) {
        return Err(ParseError::Nodes(format!(
            "{controlled} of {} nodes have a control address and {} a public_key: mesh \
             membership needs both on every node (its gossip is signed by the node keys)",
            nodes.len(),
            keyed_count(&nodes)
        )));
    }
    let keyed = nodes.iter().filter(|n| n.public_key.is_some()).count();
    if keyed != 0 && keyed != nodes.len() {
        return Err(ParseError::Nodes(format!(
            "{keyed} of {} nodes have a public_key: give every node one (signed traffic) or none",
            nodes.len()
        )));
    }
    if !nodes.is_empty()
        && let Some(z) = hosted.iter().position(Option::is_none)
    {
        return Err(ParseError::Nodes(format!("zone {z} is hosted by no node")));
    }
    let npcs = match file.npcs {
        None => None,
        Some(n) => {
            if !n.speed_mps.is_finite() || n.speed_mps <= 0.0 {
                return Err(ParseError::Nodes(format!(
                    "[npcs] speed_mps: must be > 0 (got {})",
                    n.speed_mps
                )));
            }
            Some(NpcSpec {
                pattern: match n.pattern {
                    PatternName::RandomWalk => Pattern::RandomWalk,
                    PatternName::BorderDancers => Pattern::BorderDancers,
                    PatternName::FlashCrowd => Pattern::FlashCrowd,
                },
                per_zone: n.per_zone,
                speed_mps: n.speed_mps,
            })
        }
    };
    let entities_per_zone = file
        .limits
        .entities_per_zone
        .unwrap_or(ENTITIES_PER_ZONE_DEFAULT);
    if let Some(npcs) = npcs
        && npcs.per_zone > entities_per_zone / 2
    {
        return Err(ParseError::Nodes(format!(
            "[npcs] per_zone = {} needs [limits] entities_per_zone ≥ {} (room for arrivals)",
            npcs.per_zone,
            npcs.per_zone * 2
        )));
    }
    let clients = match file.clients {
        None => None,
        Some(c) => {
            let auth_key = crate::keyfile::decode_32(&c.auth_key)
                .map_err(|e| ParseError::Nodes(format!("[clients] auth_key: {e}")))?;
            let speed_mps = c.speed_mps.unwrap_or(6.0);
            if !speed_mps.is_finite() || speed_mps <= 0.0 || speed_mps > 300.0 {
                return Err(ParseError::Nodes(format!(
                    "[clients] speed_mps: must be in (0, 300] (got {speed_mps})"
                )));
            }
            let sessions_per_zone = c.sessions_per_zone.unwrap_or(4096);
            if sessions_per_zone == 0 || sessions_per_zone > 65_536 {
                return Err(ParseError::Nodes(format!(
                    "[clients] sessions_per_zone: must be in 1..=65536 (got {sessions_per_zone})"
                )));
            }
            let client_auth = match c.client_auth.as_deref() {
                None | Some("aead") => meridian_core::session::ClientAuth::Aead,
                Some("ed25519") => meridian_core::session::ClientAuth::Ed25519,
                Some(other) => {
                    return Err(ParseError::Nodes(format!(
                        "[clients] client_auth: must be \"aead\" or \"ed25519\" (got {other:?})"
                    )));
                }
            };
            Some(ClientsSpec {
                auth_key,
                sessions_per_zone,
                speed_mps,
                client_auth,
            })
        }
    };
    let interval_s = file.persistence.checkpoint_interval_s.unwrap_or(1.0);
    if !interval_s.is_finite() || !(0.1..=3600.0).contains(&interval_s) {
        return Err(ParseError::Nodes(format!(
            "[persistence] checkpoint_interval_s: must be in [0.1, 3600] seconds (got {interval_s})"
        )));
    }
    let mesh = mesh_spec(file.mesh.as_ref(), controlled)?;
    let game = match file.game {
        None => None,
        Some(g) => Some(GameSpec {
            name: game_name(g.name)?,
            settings: g.settings,
        }),
    };
    let tick_rate_hz = world.config().tick_rate_hz;
    Ok(WorldSpec {
        world,
        world_id: file.world.id,
        nodes,
        npcs,
        clients,
        entities_per_zone,
        checkpoint_every_ticks: ((interval_s * tick_rate_hz as f32).round() as u64).max(1),
        mesh,
        game,
    })
}

/// The `[game]` name checked: 1 to [`GAME_NAME_MAX`] letters, digits, `-` or `_` (it goes
/// into the mesh's world digest and the data directory's record, one term a line).
fn game_name(name: String) -> Result<String, ParseError> {
    let fits = (1..=GAME_NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !fits {
        return Err(ParseError::Nodes(format!(
            "[game] name: must be 1 to {GAME_NAME_MAX} letters, digits, '-' or '_' (got {name:?})"
        )));
    }
    Ok(name)
}

/// The `[mesh]` section checked: only in a world that runs a mesh (`controlled` nodes
/// have a control address), the grace in [1, 3600] seconds.
fn mesh_spec(section: Option<&MeshSection>, controlled: usize) -> Result<MeshSpec, ParseError> {
    let Some(section) = section else {
        return Ok(MeshSpec {
            start_grace: START_GRACE_DEFAULT,
            move_home_after: None,
        });
    };
    if controlled == 0 {
        return Err(ParseError::Nodes(
            "[mesh]: this world runs no mesh (no node has a control address): remove the \
             section or give every node a control address and a public_key"
                .to_owned(),
        ));
    }
    let grace_s = section
        .start_grace_s
        .unwrap_or(START_GRACE_DEFAULT.as_secs_f32());
    if !grace_s.is_finite() || !(1.0..=3600.0).contains(&grace_s) {
        return Err(ParseError::Nodes(format!(
            "[mesh] start_grace_s: must be in [1, 3600] seconds (got {grace_s})"
        )));
    }
    let move_home_after = match section.move_home_after_s {
        None => None,
        Some(s) if s.is_finite() && (1.0..=86_400.0).contains(&s) => {
            Some(std::time::Duration::from_secs_f32(s))
        }
        Some(s) => {
            return Err(ParseError::Nodes(format!(
                "[mesh] move_home_after_s: must be in [1, 86400] seconds (got {s}); leave it \
                 out for zones that move home only when asked"
            )));
        }
    };
    Ok(MeshSpec {
        start_grace: std::time::Duration::from_secs_f32(grace_s),
        move_home_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../worlds/default.toml");

    #[test]
    fn shipped_worlds_load() {
        let spec = parse(DEFAULT).unwrap();
        assert_eq!(spec.world.zone_count(), 2);
        assert_eq!(spec.nodes.len(), 1);
        assert_eq!(
            spec.nodes[0].zone_address(1).port(),
            spec.nodes[0].udp.port() + 1
        );
        let grid = parse(include_str!("../worlds/grid-2x2.toml")).unwrap();
        assert_eq!(grid.world.zone_count(), 4);
        let mesh = parse(include_str!("../worlds/mesh-3.toml")).unwrap();
        assert_eq!(mesh.nodes.len(), 3);
        assert_eq!(mesh.nodes[2].standby_address(1).port(), 7522);
    }

    #[test]
    fn the_mesh_section_sets_the_start_grace_within_bounds() {
        let shipped = include_str!("../worlds/mesh-3.toml");
        assert_eq!(
            parse(shipped).unwrap().mesh.start_grace,
            START_GRACE_DEFAULT
        );
        // The same world without its [mesh] section: the default.
        let mesh = shipped.split("\n[mesh]").next().unwrap();
        assert_eq!(parse(mesh).unwrap().mesh.start_grace, START_GRACE_DEFAULT);
        let set = parse(&format!("{mesh}\n[mesh]\nstart_grace_s = 30\n")).unwrap();
        assert_eq!(set.mesh.start_grace, std::time::Duration::from_secs(30));
        for bad in ["0.5", "4000", "nan", "-3"] {
            let text = format!("{mesh}\n[mesh]\nstart_grace_s = {bad}\n");
            let Err(ParseError::Nodes(e)) = parse(&text) else {
                panic!("start_grace_s = {bad} accepted")
            };
            assert!(
                e.contains("[mesh] start_grace_s: must be in [1, 3600]"),
                "{e}"
            );
        }
        let Err(ParseError::Toml(e)) = parse(&format!("{mesh}\n[mesh]\ngrace = 3\n")) else {
            panic!("an unknown key accepted")
        };
        assert!(e.to_string().contains("grace"), "{e}");
        // A world without a mesh has no use for it: said, not ignored.
        let Err(ParseError::Nodes(e)) = parse(&format!("{DEFAULT}\n[mesh]\nstart_grace_s = 9\n"))
        else {
            panic!("[mesh] accepted without a mesh")
        };
        assert!(e.contains("runs no mesh"), "{e}");
    }

    #[test]
    fn the_mesh_section_sets_when_zones_move_home_within_bounds() {
        let shipped = include_str!("../worlds/mesh-3.toml");
        assert_eq!(parse(shipped).unwrap().mesh.move_home_after, None);
        let mesh = shipped.split("\n[mesh]").next().unwrap();
        let set = parse(&format!("{mesh}\n[mesh]\nmove_home_after_s = 30\n")).unwrap();
        assert_eq!(
            set.mesh.move_home_after,
            Some(std::time::Duration::from_secs(30))
        );
        for bad in ["0.5", "100000", "nan", "-3", "inf"] {
            let text = format!("{mesh}\n[mesh]\nmove_home_after_s = {bad}\n");
            let Err(ParseError::Nodes(e)) = parse(&text) else {
                panic!("move_home_after_s = {bad} accepted")
            };
            assert!(
                e.contains("[mesh] move_home_after_s: must be in [1, 86400]"),
                "{e}"
            );
        }
    }

    /// `[game] name` is optional; a name that could not be one term of a line (empty,
    /// spaces, a newline, too long) and an unknown key are refused, naming the field.
    #[test]
    fn the_game_section_names_a_game() {
        assert_eq!(parse(DEFAULT).unwrap().game, None);
        let named = parse(&format!("{DEFAULT}\n[game]\nname = \"tag\"\n")).unwrap();
        let game = named.game.expect("a game");
        assert_eq!((game.name.as_str(), game.settings.len()), ("tag", 0));
        let long = "g".repeat(GAME_NAME_MAX);
        let named = parse(&format!("{DEFAULT}\n[game]\nname = \"{long}\"\n")).unwrap();
        assert_eq!(named.game.map(|g| g.name), Some(long.clone()));
        // The settings are the game's: kept as written, whatever they hold.
        let set = "[game]\nname = \"tag\"\n[game.settings]\nit_every = 4\nmode = \"x\"\n";
        let named = parse(&format!("{DEFAULT}\n{set}")).unwrap();
        let settings = named.game.expect("a game").settings;
        assert_eq!(
            settings.get("it_every").and_then(|v| v.as_integer()),
            Some(4)
        );
        assert_eq!(settings.get("mode").and_then(|v| v.as_str()), Some("x"));
        for bad in ["", "two words", "tag\\nnode x", &format!("{long}g")] {
            let text = format!("{DEFAULT}\n[game]\nname = \"{bad}\"\n");
            let Err(ParseError::Nodes(e)) = parse(&text) else {
                panic!("name = {bad:?} accepted")
            };
            assert!(e.starts_with("[game] name: must be 1 to 64"), "{e}");
        }
        let Err(ParseError::Toml(e)) = parse(&format!("{DEFAULT}\n[game]\ngame = \"tag\"\n"))
        else {
            panic!("[game] without a name accepted")
        };
        assert!(e.to_string().contains("game"), "{e}");
    }

    #[test]
    fn a_standby_port_taken_by_another_node_is_refused() {
        let text = include_str!("../worlds/mesh-3.toml").replace("7520", "7509");
        let Err(ParseError::Nodes(e)) = parse(&text) else {
            panic!("accepted overlapping ports")
        };
        assert!(e.contains("127.0.0.1:7510"), "{e}");
    }

    #[test]
    fn typo_is_an_error_that_names_the_key() {
        let text = DEFAULT.replace("aura_m", "aura");
        let Err(ParseError::Toml(e)) = parse(&text) else {
            panic!("accepted a misspelt key")
        };
        assert!(e.to_string().contains("aura"), "{e}");
    }

    #[test]
    fn bad_value_names_the_field() {
        let text = DEFAULT.replace("aura_m = 32.0", "aura_m = 4.0");
        let Err(ParseError::World(e)) = parse(&text) else {
            panic!("accepted an aura smaller than the margin")
        };
        assert!(e.to_string().starts_with("aura_m"), "{e}");
    }

    #[test]
    fn missing_file_says_which() {
        let err = load(Path::new("/nonexistent/world.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/world.toml"), "{err}");
    }
}

#[cfg(test)]
mod node_tests {
    use super::*;

    const DEFAULT: &str = include_str!("../worlds/default.toml");

    fn error(text: &str) -> String {
        match parse(text) {
            Err(ParseError::Nodes(what)) => what,
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn node_errors_name_the_problem() {
        assert!(
            error(&DEFAULT.replace("zones = [0, 1]", "zones = [0, 7]"))
                .contains("zone 7 does not exist")
        );
        assert!(
            error(
                &DEFAULT
                    .replace("zones = [0, 1]", "zones = [0]")
                    .replace("cores = [0, 1]", "cores = [0]")
            )
            .contains("zone 1 is hosted by no node")
        );
        assert!(
            error(&DEFAULT.replace("cores = [0, 1]", "cores = [0]"))
                .contains("cores has 1 entries for 2 zones")
        );
        assert!(
            error(&DEFAULT.replace("speed_mps = 5.0", "speed_mps = -1.0")).contains("speed_mps")
        );
    }
}

/// Every `standby_for` names a zone of the world hosted by another node, no zone has two
/// standbys, and standbys run on a mesh (their streams are signed with the node keys and
/// go to the control addresses).
fn check_standbys(nodes: &[NodeSpec], zone_count: u32) -> Result<(), ParseError> {
    let mut kept_by = vec![None::<&str>; zone_count as usize];
    for (i, n) in nodes.iter().enumerate() {
        let name = &n.name;
        if !n.standby_for.is_empty() && (n.control.is_none() || n.public_key.is_none()) {
            return Err(ParseError::Nodes(format!(
                "nodes[{i}] ({name}): standby_for needs the mesh: a control address and a \
                 public_key on every node"
            )));
        }
        for &z in &n.standby_for {
            let Some(slot) = kept_by.get_mut(z.0 as usize) else {
                return Err(ParseError::Nodes(format!(
                    "nodes[{i}] ({name}): standby_for: zone {z} does not exist (the world has \
                     zones 0..{zone_count})"
                )));
            };
            if n.zones.contains(&z) {
                return Err(ParseError::Nodes(format!(
                    "nodes[{i}] ({name}): standby_for: zone {z} is hosted by this node; a \
                     standby must be on another node to survive it"
                )));
            }
            match slot {
                Some(other) if *other == name.as_str() => {
                    return Err(ParseError::Nodes(format!(
                        "nodes[{i}] ({name}): standby_for lists zone {z} twice"
                    )));
                }
                Some(other) => {
                    return Err(ParseError::Nodes(format!(
                        "zone {z} has two standbys, {other} and {name}: one per zone"
                    )));
                }
                None => *slot = Some(name),
            }
        }
    }
    // A promoted zone runs on the port after its keeper's own zones: none may be taken.
    let mut used = std::collections::HashMap::new();
    for n in nodes {
        let ports = n.zones.len() + n.standby_for.len();
        for k in 0..ports {
            let addr = n.zone_address(k);
            if let Some(other) = used.insert(addr, &n.name) {
                return Err(ParseError::Nodes(format!(
                    "UDP {addr} is used by nodes {other} and {}: a node's zones take the ports \
                     from its udp address on, then one per zone in standby_for",
                    n.name
                )));
            }
        }
    }
    Ok(())
}

fn keyed_count(nodes: &[NodeSpec]) -> usize {
    nodes.iter().filter(|n| n.public_key.is_some()).count()
}
