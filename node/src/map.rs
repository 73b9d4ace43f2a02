//! The live map: `GET /map` (one self-contained page, `map.html`) and `GET /map/stream`
//! (Server-Sent Events: the world's layout once, then a frame of every local zone about
//! six times a second).
//!
//! Each stream runs on its own thread and opens a window on the node
//! ([`Node::map_watch`]): while any is open, the zones copy their map frames (density from
//! the spatial index, ghosts, avatars, handoffs, the entities inside each window that holds
//! few enough); this thread turns them into JSON. Nothing here runs on a zone core.
//!
//! `GET /map/stream?view=X0,Y0,X1,Y1` — the window in world metres (default: the world).
//! Events: `world` (bounds, margin, aura, every zone with its node; this node's zones are
//! `local`, its peers' are outlines), then `frame`: `{"zones": [...], "views": [...]}`,
//! per local zone its tick, tick p99, counts, density grid, ghosts, avatars (and those
//! the zone's game marks, e.g. tag's "it") and handoffs
//! (made once for all streams), and the entities inside this stream's window.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use meridian_core::world::Rect;
use meridian_io::runtime::map::{FRAME_EVERY, MapFrame};
use meridian_io::runtime::{Node, ZoneStats};
use serde_json::{Value, json};

use crate::world_file::{NodeSpec, WorldSpec};

/// The page, served as is: no external scripts, styles or fonts.
pub const PAGE: &str = include_str!("map.html");

/// The `world` event: the layout every frame is drawn on.
pub fn world_json(spec: &WorldSpec, node: &NodeSpec) -> String {
    let world = spec.world;
    let zones: Vec<Value> = world
        .zones()
        .map(|z| {
            let host = spec.nodes.iter().find(|n| n.zones.contains(&z));
            json!({
                "zone": z.0,
                "rect": rect_json(world.zone_rect(z)),
                "node": host.map_or("(none)", |n| n.name.as_str()),
                "local": node.zones.contains(&z),
            })
        })
        .collect();
    json!({
        "node": node.name,
        "bounds": rect_json(world.bounds()),
        "margin_m": world.margin_m(),
        "aura_m": world.aura_m(),
        "tick_hz": world.config().tick_rate_hz,
        "zones": zones,
    })
    .to_string()
}

fn rect_json(r: Rect) -> Value {
    json!([r.x_min, r.y_min, r.x_max, r.y_max])
}

/// Positions to a tenth of a metre, flattened `[x0, y0, x1, y1, …]`.
fn points(list: &[(f32, f32)]) -> Value {
    let dm = |v: f32| (f64::from(v) * 10.0).round() / 10.0;
    Value::Array(
        list.iter()
            .flat_map(|&(x, y)| [json!(dm(x)), json!(dm(y))])
            .collect(),
    )
}

/// The part of a `frame` event every stream shares: per local zone its tick, figures,
/// density grid, ghosts, avatars and handoffs. Made once per set of zone frames, however
/// many maps are open ([`SharedFrames`]). A tentative zone (`MapFrame::tentative`: its
/// run has let nothing out yet, and may be told it was taken over) says so and shows no
/// entities, as the admin endpoint's cuts list none of them: a node restarted while its
/// zone ran elsewhere would otherwise draw a second copy of it at its old positions.
pub fn zones_json(frames: &[MapFrame], stats: &[ZoneStats]) -> String {
    let zones: Vec<Value> = frames
        .iter()
        .zip(stats)
        .map(|(f, s)| {
            let none = f.tentative;
            let shown = |list: &[(f32, f32)]| if none { json!([]) } else { points(list) };
            let handoffs: Vec<Value> = f
                .handoffs
                .iter()
                .filter(|_| !none)
                .map(|h| json!([h.to.0, h.x, h.y, h.relinquished]))
                .collect();
            let counts: &[u32] = if none { &[] } else { &f.density };
            json!({
                "zone": f.zone,
                "tick": f.tick,
                "tick_p99_ms": s.tick_p99_us as f64 / 1000.0,
                "entities": s.entities,
                "ghosts": f.ghost_count,
                "sessions": s.sessions,
                "in_flight": s.in_flight,
                "tentative": f.tentative,
                "density": {
                    "columns": f.columns,
                    "x": f.origin.0,
                    "y": f.origin.1,
                    "cell_m": f.cell_m,
                    "counts": counts,
                },
                "ghost_points": shown(&f.ghosts),
                "avatar_points": shown(&f.avatars),
                "marked_points": shown(&f.marked),
                "handoffs": handoffs,
            })
        })
        .collect();
    Value::Array(zones).to_string()
}

/// The part of a `frame` event that is one stream's own: per local zone (in the order of
/// `zones`), the entities inside window `view`, or `crowded` when it holds too many (none
/// of a tentative zone, [`zones_json`]).
pub fn view_json(frames: &[MapFrame], view: u64) -> String {
    let views: Vec<Value> = frames
        .iter()
        .map(|f| {
            let (entities, crowded) = f
                .views
                .iter()
                .filter(|_| !f.tentative)
                .find(|v| v.id == view)
                .map_or((&[][..], false), |v| (&v.points[..], v.crowded));
            json!({ "entity_points": points(entities), "crowded": crowded })
        })
        .collect();
    Value::Array(views).to_string()
}

/// The shared part of the latest frames, made by the first stream that needs it.
#[derive(Debug, Default)]
pub struct SharedFrames {
    latest: Mutex<(Vec<u64>, Arc<String>)>,
}

impl SharedFrames {
    /// [`zones_json`] of `frames` (identified by their ticks).
    fn zones(&self, frames: &[MapFrame], node: &Node) -> Arc<String> {
        let ticks: Vec<u64> = frames.iter().map(|f| f.tick).collect();
        let mut latest = self.latest.lock().expect("map cache lock");
        if latest.0 != ticks {
            *latest = (ticks, Arc::new(zones_json(frames, &node.stats())));
        }
        latest.1.clone()
    }
}

/// The window a stream asks for: `view=X0,Y0,X1,Y1` in the query, else `default`.
pub fn parse_view(url: &str, default: Rect) -> Result<Rect, String> {
    let Some(query) = url.split_once('?').map(|(_, q)| q) else {
        return Ok(default);
    };
    let Some(value) = query.split('&').find_map(|kv| kv.strip_prefix("view=")) else {
        return Ok(default);
    };
    let numbers: Result<Vec<f32>, _> = value.split(',').map(str::parse::<f32>).collect();
    match numbers.as_deref() {
        Ok(&[x0, y0, x1, y1])
            if [x0, y0, x1, y1].iter().all(|v| v.is_finite()) && x0 < x1 && y0 < y1 =>
        {
            Ok(Rect::new(x0, y0, x1, y1))
        }
        _ => Err(format!(
            "view must be four finite numbers X0,Y0,X1,Y1 with X0 < X1 and Y0 < Y1 (got {value:?})"
        )),
    }
}

/// Serves one `/map/stream` request on a thread of its own, until the browser goes away
/// or `stop` is set. Refuses (503) when every window is taken.
pub fn stream(
    request: tiny_http::Request,
    node: Arc<Node>,
    (world, shared): (Arc<String>, Arc<SharedFrames>),
    bounds: Rect,
    stop: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let view = match parse_view(request.url(), bounds) {
        Ok(view) => view,
        Err(message) => {
            respond(request, 400, message);
            return None;
        }
    };
    let Some(watch) = node.map_watch(view) else {
        respond(request, 503, "too many live-map streams open\n".to_owned());
        return None;
    };
    let peer = request.remote_addr().copied();
    let spawned = std::thread::Builder::new()
        .name("map-stream".into())
        .spawn(move || {
            crate::run::background_priority();
            let mut out = request.into_writer();
            match run_stream(&mut *out, &node, (&world, &shared), watch.id(), &stop) {
                Ok(()) => {}
                Err(e) => tracing::debug!(?peer, "live-map stream ended: {e}"),
            }
            drop(watch);
        });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!("cannot start a live-map stream thread: {e}");
            None
        }
    }
}

fn respond(request: tiny_http::Request, status: u16, body: String) {
    let response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Err(e) = request.respond(response) {
        tracing::debug!("admin endpoint: {e}");
    }
}

fn run_stream(
    out: &mut dyn Write,
    node: &Node,
    (world, shared): (&str, &SharedFrames),
    view: u64,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
          Connection: close\r\nX-Accel-Buffering: no\r\n\r\n",
    )?;
    write!(out, "event: world\ndata: {world}\n\n")?;
    out.flush()?;
    let mut last_ticks: Vec<u64> = Vec::new();
    let mut last_sent = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(FRAME_EVERY / 4);
        // At most one event per FRAME_EVERY, and only when some zone made a new frame.
        if last_sent.elapsed() < FRAME_EVERY - FRAME_EVERY / 8 {
            continue;
        }
        let frames = node.map_frames();
        let ticks: Vec<u64> = frames.iter().map(|f| f.tick).collect();
        if ticks == last_ticks || frames.iter().all(|f| f.tick == 0) {
            continue;
        }
        (last_ticks, last_sent) = (ticks, Instant::now());
        let zones = shared.zones(&frames, node);
        let views = view_json(&frames, view);
        write!(
            out,
            "event: frame\ndata: {{\"zones\":{zones},\"views\":{views}}}\n\n"
        )?;
        out.flush()?;
    }
    Ok(())
}

/// How the admin endpoint tells operators where the map is.
pub fn url(admin: SocketAddr) -> String {
    format!("http://{admin}/map")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_is_four_ordered_finite_numbers() {
        let world = Rect::new(0.0, 0.0, 100.0, 50.0);
        assert_eq!(parse_view("/map/stream", world), Ok(world));
        assert_eq!(
            parse_view("/map/stream?x=1&view=1,2,30.5,40", world),
            Ok(Rect::new(1.0, 2.0, 30.5, 40.0))
        );
        for bad in [
            "1,2,3",
            "5,0,1,10",
            "0,0,NaN,1",
            "0,0,inf,1",
            "a,b,c,d",
            "1,2,3,4,5",
        ] {
            let url = format!("/map/stream?view={bad}");
            assert!(parse_view(&url, world).is_err(), "{bad} accepted");
        }
    }

    /// A tentative zone's frame says so and shows none of its entities, in the shared
    /// part and in each stream's window alike; the same frame not tentative shows them.
    #[test]
    fn a_tentative_zone_shows_no_entities_on_the_map() {
        use meridian_core::world::ZoneID;
        use meridian_io::runtime::map::{MapHandoff, ViewEntities};
        let mut frame = MapFrame {
            zone: 0,
            tick: 9,
            density: vec![0, 3, 1, 0],
            columns: 2,
            ghosts: vec![(1.0, 2.0)],
            ghost_count: 1,
            avatars: vec![(3.0, 4.0)],
            marked: vec![(3.0, 4.0)],
            handoffs: vec![MapHandoff {
                to: ZoneID(1),
                x: 9.0,
                y: 9.0,
                relinquished: true,
            }],
            views: vec![ViewEntities {
                id: 7,
                points: vec![(5.0, 6.0), (7.0, 8.0)],
                crowded: false,
            }],
            ..MapFrame::default()
        };
        let shown = |frame: &MapFrame| {
            let zones: Value = serde_json::from_str(&zones_json(
                std::slice::from_ref(frame),
                &[ZoneStats::default()],
            ))
            .unwrap();
            let views: Value =
                serde_json::from_str(&view_json(std::slice::from_ref(frame), 7)).unwrap();
            let z = &zones[0];
            let listed = ["ghost_points", "avatar_points", "marked_points", "handoffs"]
                .map(|k| z[k].as_array().unwrap().len());
            let counts = z["density"]["counts"].as_array().unwrap().len();
            let entities = views[0]["entity_points"].as_array().unwrap().len();
            (z["tentative"].clone(), listed, counts, entities)
        };
        assert_eq!(shown(&frame), (json!(false), [2, 2, 2, 1], 4, 4));
        frame.tentative = true;
        assert_eq!(shown(&frame), (json!(true), [0, 0, 0, 0], 0, 0));
    }

    #[test]
    fn each_node_sees_its_own_zones_live_and_its_peers_as_outlines() {
        let spec = crate::world_file::parse_spec(
            r#"
[world]
id = 1
bounds = { x_min = 0.0, y_min = 0.0, x_max = 256.0, y_max = 128.0 }
tick_rate_hz = 30
margin_m = 4.0
aura_m = 16.0
cell_size_m = 16.0
[zones]
columns = 2
rows = 1
[[nodes]]
name = "a"
zones = [0]
cores = [0]
udp = "127.0.0.1:7000"
[[nodes]]
name = "b"
zones = [1]
cores = [1]
udp = "127.0.0.1:7010"
[limits]
entities_per_zone = 1024
"#,
        )
        .unwrap();
        let world: Value = serde_json::from_str(&world_json(&spec, &spec.nodes[1])).unwrap();
        assert_eq!(world["node"], "b");
        let zones = world["zones"].as_array().unwrap();
        let of = |z: usize| (zones[z]["node"].clone(), zones[z]["local"].clone());
        assert_eq!(of(0), (json!("a"), json!(false)));
        assert_eq!(of(1), (json!("b"), json!(true)));
        assert_eq!(zones[1]["rect"], json!([128.0, 0.0, 256.0, 128.0]));
    }
}
