//! `GET /metrics`: the node's figures in the Prometheus text format (0.0.4), encoded by
//! `prometheus-client` from the zones' latest published figures.
//!
//! The zones publish their counters and histograms once a second ([`ZoneStats`]); a scrape
//! reads those copies under a short lock each and never reaches a zone core. Every metric
//! has `node` and `zone` labels. Names: `meridian_` + subsystem + the counter's field name,
//! base units in the name (`_seconds`, `_bytes`), `_total` on counters.
//!
//! | family | from |
//! |---|---|
//! | `meridian_zone_*` gauges | entities, ghosts, sessions, handoffs in flight, tick |
//! | `meridian_handoff_*_total` | the handoff protocol's counters |
//! | `meridian_session_*_total` | the session layer's counters |
//! | `meridian_witness_*_total` | signed datagrams from other nodes, by verdict |
//! | `meridian_persist_*_total` | the WAL and checkpoints |
//! | `meridian_udp_*_total`, `meridian_io_*_total` | the UDP ring; packets and bytes in and out |
//! | histograms | tick seconds, handoff ticks and seconds, snapshot bytes, input age ticks |
//! | `meridian_mesh_*` | mesh membership, when the world runs one: every other node's state (`peer` label) and the gossip datagrams |
//! | `meridian_standby_connections_*_total` | the standby listener, on a node that keeps standbys: connections turned away |
//! | `meridian_failover_takeovers_total`, `meridian_zone_moves_*` | on a node with failover: zones taken over here (`cause`: a death, or a move), and moves of zones that ran here (`outcome`) and those under way |

use meridian_core::mesh::Liveness;
use meridian_core::metrics::Histogram;
use meridian_io::runtime::{ZoneHistograms, ZoneStats};
use meridian_io::standby::ListenerCounters;

use crate::mesh::MeshView;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The `Content-Type` of a scrape's answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What the failover thread has done: the zones it took over, and the moves.
pub type FailoverFigures = (Vec<crate::failover::Promotion>, crate::failover::MoveCounts);

/// The `/metrics` body for the zones' figures `stats` of node `node`, with its mesh
/// membership, standby listener and failover if it has them, and the admin endpoint's
/// refusals if it runs with an admin token.
pub fn render(
    node: &str,
    stats: Vec<ZoneStats>,
    (mesh, standby, failover): (
        Option<MeshView>,
        Option<ListenerCounters>,
        Option<FailoverFigures>,
    ),
    admin_refused: Option<u64>,
) -> String {
    let mut registry = Registry::default();
    if let Some(refused) = admin_refused {
        registry.register_collector(Box::new(AdminRefused {
            node: node.to_owned(),
            refused,
        }));
    }
    registry.register_collector(Box::new(Zones {
        node: node.to_owned(),
        stats,
    }));
    if let Some(view) = mesh {
        registry.register_collector(Box::new(Membership {
            node: node.to_owned(),
            view,
        }));
    }
    if let Some(counters) = standby {
        registry.register_collector(Box::new(Listener {
            node: node.to_owned(),
            counters,
        }));
    }
    if let Some((promotions, moves)) = failover {
        registry.register_collector(Box::new(Failover {
            node: node.to_owned(),
            promotions,
            moves,
        }));
    }
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

/// One scrape's figures.
#[derive(Debug)]
struct Zones {
    node: String,
    stats: Vec<ZoneStats>,
}

type Labels = [(&'static str, String); 2];

impl Zones {
    fn labels(&self, s: &ZoneStats) -> Labels {
        [("node", self.node.clone()), ("zone", s.zone.to_string())]
    }

    /// One family: a descriptor, then one sample per zone.
    fn family<M: EncodeMetric>(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        metric_type: MetricType,
        value: impl Fn(&ZoneStats) -> M,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
        for s in &self.stats {
            let labels = self.labels(s);
            value(s).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn gauge(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&ZoneStats) -> u64,
    ) -> Result<(), std::fmt::Error> {
        let value = |s: &ZoneStats| ConstGauge::new(value(s) as i64);
        self.family(encoder, name, help, MetricType::Gauge, value)
    }

    /// A counter family; `name` without `_total` (the encoder appends it).
    fn counter(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&ZoneStats) -> u64,
    ) -> Result<(), std::fmt::Error> {
        let value = |s: &ZoneStats| ConstCounter::new(value(s));
        self.family(encoder, name, help, MetricType::Counter, value)
    }

    /// Every field of a counter struct as its own family, `prefix` + the field name.
    fn counter_struct(
        &self,
        encoder: &mut DescriptorEncoder,
        prefix: &str,
        each: impl Fn(&ZoneStats, &mut dyn FnMut(&'static str, &'static str, u64)),
    ) -> Result<(), std::fmt::Error> {
        let Some(first) = self.stats.first() else {
            return Ok(());
        };
        let mut fields = Vec::new();
        each(first, &mut |name, help, _| fields.push((name, help)));
        // Every zone's values, read once per scrape (not once per field).
        let values: Vec<Vec<u64>> = self
            .stats
            .iter()
            .map(|s| {
                let mut v = Vec::with_capacity(fields.len());
                each(s, &mut |_, _, value| v.push(value));
                v
            })
            .collect();
        for (k, (name, help)) in fields.into_iter().enumerate() {
            let help = match help.trim() {
                "" => name.replace('_', " "),
                h => h.split_whitespace().collect::<Vec<_>>().join(" "),
            };
            let name = format!("{prefix}{name}");
            let mut family = encoder.encode_descriptor(&name, &help, None, MetricType::Counter)?;
            for (s, v) in self.stats.iter().zip(&values) {
                let labels = self.labels(s);
                ConstCounter::new(v[k]).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    fn histogram(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        pick: impl Fn(&ZoneStats) -> &Histogram,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
        for s in &self.stats {
            let labels = self.labels(s);
            let h = pick(s);
            // Per-bucket counts: the encoder accumulates them.
            let buckets: Vec<(f64, u64)> = h.buckets().collect();
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(h.sum(), h.count(), &buckets, None)?;
        }
        Ok(())
    }

    fn encode_gauges(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.gauge(
            e,
            "meridian_zone_entities",
            "Entities the zone owns.",
            |s| s.entities as u64,
        )?;
        let help = "Ghosts: neighbours' entities mirrored inside the aura.";
        self.gauge(e, "meridian_zone_ghosts", help, |s| s.ghosts as u64)?;
        self.gauge(
            e,
            "meridian_zone_sessions",
            "Client sessions the zone serves (not those redirected away, in their grace period).",
            |s| s.sessions as u64,
        )?;
        let help = "Handoffs in flight: entities relinquished, awaiting DONE.";
        self.gauge(e, "meridian_zone_handoffs_in_flight", help, |s| {
            s.in_flight as u64
        })?;
        self.gauge(e, "meridian_zone_tick", "Ticks the zone has run.", |s| {
            s.tick
        })?;
        let help = "1 while the zone's run is tentative: it has let nothing out, waiting for its standby's first answer (staying 1: a standby that does not answer).";
        self.gauge(e, "meridian_zone_tentative", help, |s| {
            u64::from(s.tentative)
        })?;
        let help = "How far the zone's next tick was due from its phase of the Unix clock, before the once-a-second correction (neighbours tick a quarter period apart or more).";
        self.family(
            e,
            "meridian_zone_tick_phase_error_seconds",
            help,
            MetricType::Gauge,
            |s| ConstGauge::new(s.tick_phase_error_ns as f64 / 1e9),
        )?;
        let help =
            "Datagrams dropped by the zone or its driver (queues full, truncated, send refused).";
        self.counter(e, "meridian_zone_datagrams_dropped", help, |s| s.drops)
    }

    fn encode_io(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let help = "Datagrams received (UDP and the cross-core queue).";
        self.counter(e, "meridian_io_packets_received", help, |s| s.packets_in)?;
        let help = "Datagrams sent (UDP and the cross-core queue).";
        self.counter(e, "meridian_io_packets_sent", help, |s| s.packets_out)?;
        let help = "Bytes received (UDP and the cross-core queue).";
        self.counter(e, "meridian_io_received_bytes", help, |s| s.bytes_in)?;
        let help = "Bytes sent (UDP and the cross-core queue).";
        self.counter(e, "meridian_io_sent_bytes", help, |s| s.bytes_out)
    }

    fn encode_histograms(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, pick) in HISTOGRAMS {
            self.histogram(e, name, help, |s| pick(&s.histograms))?;
        }
        Ok(())
    }
}

type Pick = fn(&ZoneHistograms) -> &Histogram;

/// Every histogram family: name, help, where its values are.
const HISTOGRAMS: [(&str, &str, Pick); 8] = [
    (
        "meridian_tick_duration_seconds",
        "The tick's work: steering, sessions, zone tick, snapshots, checkpoint copies, map frames.",
        |h| &h.tick_seconds,
    ),
    (
        "meridian_tick_busy_seconds",
        "The whole tick on the zone's core: its work and the ingest and transmit around it (neighbours' signed datagrams verified, this zone's signed), not the wait for the disk.",
        |h| &h.tick_busy_seconds,
    ),
    (
        "meridian_handoff_latency_ticks",
        "Handoffs from this zone, crossing (OFFER) to DONE, in ticks.",
        |h| &h.handoff_ticks,
    ),
    (
        "meridian_handoff_latency_seconds",
        "Handoffs from this zone, crossing (OFFER) to DONE, in seconds.",
        |h| &h.handoff_seconds,
    ),
    (
        "meridian_snapshot_size_bytes",
        "Snapshot datagrams to clients, sealed size.",
        |h| &h.snapshot_bytes,
    ),
    (
        "meridian_input_age_ticks",
        "Inputs applied: ticks since the snapshot the input acknowledged (the client's round trip plus the wait for the tick).",
        |h| &h.input_age_ticks,
    ),
    (
        "meridian_persist_gate_disk_seconds",
        "Ticks whose datagrams waited for their records: from the append to the WAL's fdatasync.",
        |h| &h.gate_disk_seconds,
    ),
    (
        "meridian_persist_gate_seconds",
        "Ticks whose datagrams waited for their records: from the append until they left (the disk and the standby's acknowledgement).",
        |h| &h.gate_seconds,
    ),
];

impl prometheus_client::collector::Collector for Zones {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_gauges(&mut e)?;
        self.encode_io(&mut e)?;
        self.counter_struct(&mut e, "meridian_handoff_", |s, f| s.counters.for_each(f))?;
        self.counter_struct(&mut e, "meridian_session_", |s, f| s.clients.for_each(f))?;
        self.counter_struct(&mut e, "meridian_replicate_", |s, f| {
            s.replicate.for_each(f)
        })?;
        self.counter_struct(&mut e, "meridian_witness_", |s, f| s.witness.for_each(f))?;
        self.counter_struct(&mut e, "meridian_persist_", |s, f| s.persist.for_each(f))?;
        self.counter_struct(&mut e, "meridian_udp_", |s, f| s.ring.for_each(f))?;
        self.counter_struct(&mut e, "meridian_rewind_", |s, f| s.rewind.for_each(f))?;
        self.encode_histograms(&mut e)
    }
}

/// Mesh membership's figures: what this node believes of every other.
#[derive(Debug)]
struct Membership {
    node: String,
    view: MeshView,
}

impl prometheus_client::collector::Collector for Membership {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        type State = (&'static str, &'static str, fn(Liveness) -> bool);
        let states: [State; 3] = [
            (
                "meridian_mesh_peer_alive",
                "1 while this node believes the peer alive (suspected included), else 0.",
                |l| matches!(l, Liveness::Alive | Liveness::Suspect),
            ),
            (
                "meridian_mesh_peer_suspect",
                "1 while some member suspects the peer (not yet declared down).",
                |l| l == Liveness::Suspect,
            ),
            (
                "meridian_mesh_peer_down",
                "1 once the peer is declared down (until it comes back as a new generation).",
                |l| l == Liveness::Down,
            ),
        ];
        for (name, help, pick) in states {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for p in &self.view.peers {
                let labels = [("node", self.node.clone()), ("peer", p.name.clone())];
                ConstGauge::new(i64::from(pick(p.liveness)))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let c = self.view.counters;
        let kinds = [
            ("sent", c.sent),
            ("received", c.received),
            ("malformed", c.malformed),
            ("other_version", c.other_version),
            ("other_world", c.other_world),
            ("unknown_node", c.unknown_node),
            ("wrong_source", c.wrong_source),
            ("bad_tag", c.bad_tag),
            ("over_budget", c.over_budget),
            ("bad_signature", c.bad_signature),
            ("refused", c.refused),
            ("votes", c.votes),
            ("votes_dropped", c.votes_dropped),
            ("deaths_heard", c.deaths_heard),
            ("deaths_dropped", c.deaths_dropped),
            ("undead_told", c.undead_told),
        ];
        let help = "Datagrams on the control port (gossip, votes, deaths): sent, received, \
                    votes and deaths taken, and those dropped by reason (other_version: a node of another \
                    build; other_world: a node started with another world file); undead_told: \
                    nodes told they are down here, their datagrams from a life this node holds \
                    down (a cut healed).";
        let mut family =
            e.encode_descriptor("meridian_mesh_datagrams", help, None, MetricType::Counter)?;
        for (kind, value) in kinds {
            let labels = [("node", self.node.clone()), ("kind", kind.to_owned())];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The admin endpoint's own counter, on a node run with an admin token.
#[derive(Debug)]
struct AdminRefused {
    node: String,
    refused: u64,
}

impl prometheus_client::collector::Collector for AdminRefused {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = e.encode_descriptor(
            "meridian_admin_refused",
            "Admin endpoint requests refused (401) for lack of the admin token (`meridian node --admin-token`).",
            None,
            MetricType::Counter,
        )?;
        let labels = [("node", self.node.clone())];
        ConstCounter::new(self.refused).encode(family.encode_family(&labels)?)
    }
}

/// The standby listener's refusals, on a node that keeps standbys.
#[derive(Debug)]
struct Listener {
    node: String,
    counters: ListenerCounters,
}

impl prometheus_client::collector::Collector for Listener {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let families = [
            (
                "meridian_standby_connections_refused",
                "Connections to the standby listener closed at once: its caps (64 open, 4 of one IP before their hello) were reached.",
                self.counters.refused,
            ),
            (
                "meridian_standby_connections_unproven",
                "Connections to the standby listener that ended before a valid hello (none, malformed, a zone not kept here, a bad signature, or the 5 s timeout): a host that is not a primary, or a primary whose pinned key is wrong.",
                self.counters.unproven,
            ),
        ];
        for (name, help, value) in families {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            let labels = [("node", self.node.clone())];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The failover thread's figures, on a node with failover.
#[derive(Debug)]
struct Failover {
    node: String,
    promotions: Vec<crate::failover::Promotion>,
    moves: crate::failover::MoveCounts,
}

impl prometheus_client::collector::Collector for Failover {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let moved = self.promotions.iter().filter(|p| p.moved).count() as u64;
        let causes = [
            ("death", self.promotions.len() as u64 - moved),
            ("move", moved),
        ];
        let mut family = e.encode_descriptor(
            "meridian_failover_takeovers",
            "Zones this node took over from their standby copy here since it started: after their node was declared down (death), or moved here on purpose (move).",
            None,
            MetricType::Counter,
        )?;
        for (cause, value) in causes {
            let labels = [("node", self.node.clone()), ("cause", cause.to_owned())];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        let m = self.moves;
        let outcomes = [
            ("begun", m.begun),
            ("begun_home", m.home),
            ("refused", m.refused),
            ("done", m.done),
            ("given_up", m.given_up),
        ];
        let mut family = e.encode_descriptor(
            "meridian_zone_moves",
            "Moves of zones that ran here to their standby since the node started: begun (asked through /move, or home on the node's own: begun_home, counted in begun too), refused (/move answered 409), done (the zone runs on the standby's node), given_up (it runs here again).",
            None,
            MetricType::Counter,
        )?;
        for (outcome, value) in outcomes {
            let labels = [("node", self.node.clone()), ("outcome", outcome.to_owned())];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        let mut family = e.encode_descriptor(
            "meridian_zone_moves_under_way",
            "Moves of zones that ran here under way now (stopping, or announced and not yet taken over).",
            None,
            MetricType::Gauge,
        )?;
        let labels = [("node", self.node.clone())];
        ConstGauge::new(m.under_way as i64).encode(family.encode_family(&labels)?)
    }
}
