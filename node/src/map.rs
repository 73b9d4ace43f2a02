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
//! `local`, its peers' are outlines), then `frame` (per local zone: tick, tick p99,
//! counts, the density grid, ghosts, avatars, handoffs, and the window's entities).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// A `frame` event: every local zone's latest frame with its figures, and the entities
/// inside window `view`.
pub fn frame_json(frames: &[MapFrame], stats: &[ZoneStats], view: u64) -> String {
    let zones: Vec<Value> = frames
        .iter()
        .zip(stats)
        .map(|(f, s)| {
            let (entities, crowded) = f
                .views
                .iter()
                .find(|v| v.id == view)
                .map_or((&[][..], false), |v| (&v.points[..], v.crowded));
            let handoffs: Vec<Value> = f
                .handoffs
                .iter()
                .map(|h| json!([h.to.0, h.x, h.y, h.relinquished]))
                .collect();
            json!({
                "zone": s.zone,
                "tick": f.tick,
                "tick_p99_ms": s.tick_p99_us as f64 / 1000.0,
                "entities": s.entities,
                "ghosts": f.ghost_count,
                "sessions": s.sessions,
                "in_flight": s.in_flight,
                "density": {
                    "columns": f.columns,
                    "x": f.origin.0,
                    "y": f.origin.1,
                    "cell_m": f.cell_m,
                    "counts": f.density,
                },
                "ghost_points": points(&f.ghosts),
                "avatar_points": points(&f.avatars),
                "handoffs": handoffs,
                "entity_points": points(entities),
                "crowded": crowded,
            })
        })
        .collect();
    json!({ "zones": zones }).to_string()
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
    world: Arc<String>,
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
            let mut out = request.into_writer();
            match run_stream(&mut *out, &node, &world, watch.id(), &stop) {
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
    world: &str,
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
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(FRAME_EVERY / 2);
        let frames = node.map_frames();
        let ticks: Vec<u64> = frames.iter().map(|f| f.tick).collect();
        // A frame only when some zone made a new one (zones renew theirs every FRAME_EVERY).
        if ticks == last_ticks || frames.iter().all(|f| f.tick == 0) {
            continue;
        }
        last_ticks = ticks;
        let body = frame_json(&frames, &node.stats(), view);
        write!(out, "event: frame\ndata: {body}\n\n")?;
        out.flush()?;
    }
    Ok(())
}

/// How the admin endpoint tells operators where the map is.
pub fn url(admin: SocketAddr) -> String {
    format!("http://{admin}/map")
}
