//! `meridian node` processes of one world file on loopback, for the tests that kill and
//! restart them: node `k` is named `n{k}` in the world file, with its key in
//! `DIR/n{k}.key`, its data directory `DIR/data{k}` and its log (stderr) appended to
//! `DIR/n{k}.log` across restarts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::conservation::{ZoneCut, parse_cut};

pub(crate) struct Nodes {
    pub(crate) dir: PathBuf,
    world: PathBuf,
    pub(crate) admins: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
    /// Environment of every node process.
    env: Vec<(&'static str, String)>,
}

impl Nodes {
    /// A scratch directory for `name`'s nodes, emptied, and `count` fresh key pairs in it.
    pub(crate) fn prepare(name: &str, count: usize) -> (PathBuf, Vec<ed25519_dalek::VerifyingKey>) {
        let dir = std::env::temp_dir().join(format!("meridian-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let keys = (0..count)
            .map(|k| {
                let key = meridian_node::keyfile::generate().unwrap();
                meridian_node::keyfile::write(&dir.join(format!("n{k}.key")), &key, false).unwrap();
                key.verifying_key()
            })
            .collect();
        (dir, keys)
    }

    /// The nodes of the world file `world` (written into `dir`), none started yet.
    pub(crate) fn new(
        dir: PathBuf,
        world: &str,
        admins: Vec<SocketAddr>,
        env: &[(&'static str, &str)],
    ) -> Nodes {
        let path = dir.join("world.toml");
        std::fs::write(&path, world).unwrap();
        Nodes {
            dir,
            world: path,
            children: admins.iter().map(|_| None).collect(),
            admins,
            env: env.iter().map(|&(k, v)| (k, v.to_string())).collect(),
        }
    }

    pub(crate) fn data(&self, k: usize) -> PathBuf {
        self.dir.join(format!("data{k}"))
    }

    fn command(&self, k: usize) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_meridian"));
        c.arg("node")
            .arg("--world")
            .arg(&self.world)
            .args(["--name", &format!("n{k}")])
            .arg("--key")
            .arg(self.dir.join(format!("n{k}.key")))
            .arg("--data")
            .arg(self.data(k))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.log_path(k))
                    .unwrap(),
            ));
        c
    }

    fn log_path(&self, k: usize) -> PathBuf {
        self.dir.join(format!("n{k}.log"))
    }

    /// Starts node `k` and waits (up to 20 s) until its admin endpoint answers.
    pub(crate) fn start(&mut self, k: usize) {
        self.start_with(k, &[]);
    }

    /// As [`Nodes::start`], with `env` set for this run of node `k` only.
    pub(crate) fn start_with(&mut self, k: usize, env: &[(&str, &str)]) {
        let mut command = self.command(k);
        command.envs(env.iter().copied());
        self.children[k] = Some(command.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while meridian_node::swarm::http_get(self.admins[k], "/status").is_err() {
            if let Some(status) = self.children[k].as_mut().unwrap().try_wait().unwrap() {
                panic!("node {k} exited with {status}: {}", self.log(k));
            }
            assert!(
                Instant::now() < deadline,
                "node {k} did not come up: {}",
                self.log(k)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self, k: usize) {
        let mut child = self.children[k].take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// How node `k` exited, if it has.
    pub(crate) fn try_exit(&mut self, k: usize) -> Option<std::process::ExitStatus> {
        let status = self.children[k].as_mut()?.try_wait().unwrap()?;
        self.children[k] = None;
        Some(status)
    }

    /// Waits (up to `limit`) for node `k` to exit, and returns how.
    pub(crate) fn wait_exit(&mut self, k: usize, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        assert!(self.children[k].is_some(), "node {k} is not running");
        loop {
            if let Some(status) = self.try_exit(k) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node {k} did not exit within {limit:?}: {}",
                self.log(k)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends node `k` a signal by name (`STOP`, `CONT`: a node that stops answering
    /// without dying, as under a long pause or a cut).
    pub(crate) fn signal(&self, k: usize, signal: &str) {
        let pid = self.children[k].as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}: {status}");
    }

    pub(crate) fn log(&self, k: usize) -> String {
        std::fs::read_to_string(self.log_path(k)).unwrap_or_default()
    }

    /// Every node's log, each under its name.
    pub(crate) fn logs(&self) -> String {
        (0..self.admins.len())
            .map(|k| format!("--- n{k}:\n{}", self.log(k)))
            .collect()
    }

    pub(crate) fn status(&self, k: usize) -> String {
        meridian_node::swarm::http_get(self.admins[k], "/status").unwrap_or_default()
    }

    /// One consistent cut of the running nodes: freeze all, read, release all.
    pub(crate) fn cut(&self) -> Vec<ZoneCut> {
        let live: Vec<usize> = (0..self.children.len())
            .filter(|&k| self.children[k].is_some())
            .collect();
        let bodies: Vec<String> = live
            .iter()
            .map(|&k| meridian_node::swarm::http_get(self.admins[k], "/freeze").expect("freeze"))
            .collect();
        for &k in &live {
            meridian_node::swarm::http_get(self.admins[k], "/release").expect("release");
        }
        bodies.iter().flat_map(|b| parse_cut(b)).collect()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
