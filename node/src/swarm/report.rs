//! The swarm's final report.

use super::{DRAWN_EVERY, TagTally};

/// The final report.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub clients: usize,
    pub seconds: f64,
    pub connected: u64,
    pub refused: u64,
    pub timed_out: u64,
    pub inputs_sent: u64,
    pub snapshots: u64,
    pub redirects: u64,
    /// Bytes per second per client, received: p50 / p99 over clients.
    pub down_bps: (u64, u64),
    pub up_bps: (u64, u64),
    /// Input-to-snapshot latency, milliseconds: p50 / p99 over all samples.
    pub latency_ms: (f64, f64),
    /// How far each reconciliation moved a bot's predicted avatar, centimetres: p50 / p99.
    pub correction_cm: (f64, f64),
    /// Each bot's own round-trip estimate at the end (`Client::round_trip`), milliseconds:
    /// p50 / p99 over bots.
    pub round_trip_ms: (f64, f64),
    pub avatar_violations: u64,
    pub owner_violations: u64,
    pub teleport_violations: u64,
    pub pop_in_violations: u64,
    /// Entities shown in an older state than the snapshot before showed (`view`).
    pub going_back_violations: u64,
    pub handoff_pop_in_violations: u64,
    pub visibility_violations: u64,
    pub visibility_samples: u64,
    /// Drawn remote entities that moved farther between two frames than allowed, and the
    /// largest move seen as a share of its allowance.
    pub render_jump_violations: u64,
    pub render_worst_share: f32,
    pub owner_samples: u64,
    /// First snapshots after a redirect that were judged (the bot had enough snapshots
    /// for a median), and how many of them were full (against nothing).
    pub handoffs_judged: u64,
    pub handoffs_full: u64,
    /// Over the judged handoffs, p50: the first snapshot's bytes, and the median of the
    /// bot's last 32 snapshots before it.
    pub handoff_bytes_p50: u64,
    pub median_bytes_p50: u64,
    /// The largest first snapshot after a handoff as a multiple of its bot's median.
    pub handoff_ratio_max: f32,
    /// First snapshots after a takeover's REDIRECT (the zone the bot is in, run by its
    /// standby now) that were judged, and how many were full. Not handoffs: the new run
    /// holds nothing of the bot's view and sends against nothing; the library draws the
    /// scene before over them, judged for pop-in.
    pub takeovers: u64,
    pub takeovers_full: u64,
    /// The `tag` pattern's shots (see `TagTally`).
    pub tag: Option<TagTally>,
    /// How late the swarm ran its bots' ticks, milliseconds: p50 / p99 / max over ticks.
    pub late_ms: (f64, f64, f64),
    /// Own-avatar, teleport, pop-in and remote-jump violations of bots the swarm had
    /// served more than a tick late in the seconds before (included in the counts above):
    /// the swarm's own lateness may explain them.
    pub violations_behind: u64,
}

impl Report {
    pub fn violations(&self) -> u64 {
        self.avatar_violations
            + self.owner_violations
            + self.teleport_violations
            + self.pop_in_violations
            + self.going_back_violations
            + self.handoff_pop_in_violations
            + self.visibility_violations
            + self.render_jump_violations
    }

    /// The report as an aligned table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("clients", self.clients.to_string()),
            ("seconds", format!("{:.1}", self.seconds)),
            ("connected", self.connected.to_string()),
            (
                "refused / timed out",
                format!("{} / {}", self.refused, self.timed_out),
            ),
            ("inputs sent", self.inputs_sent.to_string()),
            ("snapshots received", self.snapshots.to_string()),
            ("redirects followed", self.redirects.to_string()),
            (
                "down per client p50 / p99",
                format!("{} / {} B/s", self.down_bps.0, self.down_bps.1),
            ),
            (
                "up per client p50 / p99",
                format!("{} / {} B/s", self.up_bps.0, self.up_bps.1),
            ),
            (
                "input→snapshot p50 / p99",
                format!("{:.1} / {:.1} ms", self.latency_ms.0, self.latency_ms.1),
            ),
            (
                "round trip, bots' estimate p50 / p99",
                format!(
                    "{:.1} / {:.1} ms",
                    self.round_trip_ms.0, self.round_trip_ms.1
                ),
            ),
            (
                "bots' ticks run late p50 / p99 / max",
                format!(
                    "{:.1} / {:.1} / {:.1} ms",
                    self.late_ms.0, self.late_ms.1, self.late_ms.2
                ),
            ),
            (
                "own-avatar correction p50 / p99",
                format!(
                    "{:.2} / {:.2} cm",
                    self.correction_cm.0, self.correction_cm.1
                ),
            ),
            ("violations: own avatar", self.avatar_violations.to_string()),
            (
                "violations: two owners",
                format!(
                    "{} (in {} admin samples)",
                    self.owner_violations, self.owner_samples
                ),
            ),
            ("violations: teleport", self.teleport_violations.to_string()),
            ("violations: pop-in", self.pop_in_violations.to_string()),
            (
                "violations: going back",
                self.going_back_violations.to_string(),
            ),
            (
                "violations: remote jump",
                format!(
                    "{} (every {}th bot draws each tick; largest move {:.0} % of allowed)",
                    self.render_jump_violations,
                    DRAWN_EVERY,
                    100.0 * self.render_worst_share
                ),
            ),
            (
                "violations: visibility",
                format!(
                    "{} (in {} sampled views)",
                    self.visibility_violations, self.visibility_samples
                ),
            ),
            (
                "violations: handoff pop-in",
                format!(
                    "{} (of {} handoffs judged)",
                    self.handoff_pop_in_violations, self.handoffs_judged
                ),
            ),
            (
                "first snapshot after handoff",
                format!(
                    "p50 {} B against a recent median of {} B (largest {:.1}×); {} full",
                    self.handoff_bytes_p50,
                    self.median_bytes_p50,
                    self.handoff_ratio_max,
                    self.handoffs_full
                ),
            ),
        ];
        if self.violations_behind > 0 {
            let after = rows
                .iter()
                .position(|r| r.0 == "violations: handoff pop-in")
                .map_or(rows.len(), |i| i + 1);
            let why = "own avatar, teleport, pop-in, remote jump of bots run over a tick late \
                       in the 3 s before: the swarm's own lateness may explain them";
            let row = format!("{} ({why})", self.violations_behind);
            rows.insert(after, ("  of them while the swarm ran late", row));
        }
        if self.takeovers > 0 {
            rows.push((
                "first snapshot after takeover",
                format!(
                    "{} full of {} (the scene before is drawn on: see pop-in)",
                    self.takeovers_full, self.takeovers
                ),
            ));
        }
        if let Some(t) = &self.tag {
            rows.extend(tag_rows(t));
        }
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("  {k:<width$}  {v}\n"))
            .collect()
    }
}

/// The tag game's rows of the report.
fn tag_rows(t: &TagTally) -> Vec<(&'static str, String)> {
    vec![
        (
            "tag: shots (server hits / misses / refused)",
            format!(
                "{} ({} / {} / {}); {} unanswered",
                t.shots, t.server_hits, t.server_misses, t.server_refused, t.unanswered
            ),
        ),
        (
            "tag: hits the shooter saw, server confirmed",
            format!(
                "{} of {} ({:.1} %): {} hit another, {} missed, {} refused",
                t.confirmed,
                t.predicted_hits,
                100.0 * t.confirmed_share(),
                t.hit_other,
                t.missed,
                t.refused
            ),
        ),
        (
            "tag: misses the shooter saw that hit",
            t.surprise_hits.to_string(),
        ),
        ("tag: times \"it\" passed on", t.tagged.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::Report;

    /// The swarm's lateness is always in the table; violations it may explain are named
    /// right under the last violation row, and only when there are some.
    #[test]
    fn violations_while_the_swarm_ran_late_are_named_under_the_violations() {
        let mut report = Report {
            late_ms: (0.2, 3.5, 41.0),
            handoff_pop_in_violations: 2,
            ..Report::default()
        };
        let table = report.table();
        assert!(table.contains("0.2 / 3.5 / 41.0 ms"), "{table}");
        assert!(!table.contains("while the swarm ran late"), "{table}");
        report.violations_behind = 2;
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains("violations: handoff pop-in"))
            .unwrap();
        assert!(
            lines[at + 1].contains("of them while the swarm ran late"),
            "{table}"
        );
        assert!(lines[at + 1].contains(" 2 ("), "{table}");
    }
}
