//! Test hooks: a pause, once, at a named point of the stream from one data directory
//! (tests run in parallel: only that one's), and whether it is pausing there now.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Where a stream may pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Point {
    /// After the first file of a resync.
    ResyncFile,
    /// After a checkpoint from the feed, before the list of files to keep.
    CheckpointFile,
    /// On the sealer's thread, before it seals a checkpoint from the feed.
    Sealing,
}

/// (directory, point, pause, pausing now).
type Pauses = Vec<(PathBuf, Point, Duration, bool)>;
static PAUSES: Mutex<Pauses> = Mutex::new(Vec::new());

fn pauses() -> std::sync::MutexGuard<'static, Pauses> {
    PAUSES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
pub(crate) fn pause_once(dir: &Path, point: Point, pause: Duration) {
    pauses().push((dir.to_path_buf(), point, pause, false));
}

/// Ends a pause at `dir` early (or cancels one not begun).
#[cfg(test)]
pub(crate) fn resume(dir: &Path) {
    pauses().retain(|p| p.0 != dir);
}

#[cfg(test)]
pub(crate) fn pausing(dir: &Path) -> bool {
    pauses().iter().any(|p| p.0 == dir && p.3)
}

/// Pauses if a test asked for a pause at `point` of the stream from `dir`.
pub(in crate::standby) fn at(dir: &Path, point: Point) {
    let pause = {
        let mut pauses = pauses();
        let Some(p) = pauses
            .iter_mut()
            .find(|p| dir.starts_with(&p.0) && p.1 == point && !p.3)
        else {
            return;
        };
        p.3 = true;
        p.2
    };
    // In steps, so that `resume` can end it.
    let started = std::time::Instant::now();
    let paused = || {
        pauses()
            .iter()
            .any(|p| dir.starts_with(&p.0) && p.1 == point && p.3)
    };
    while started.elapsed() < pause && paused() {
        std::thread::sleep(Duration::from_millis(5));
    }
    pauses().retain(|p| !(dir.starts_with(&p.0) && p.1 == point && p.3));
}
