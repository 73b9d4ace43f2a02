//! The live map in a real browser: Debian's headless Chromium, driven over WebDriver by
//! Debian's `chromedriver` (both installed by `.ci/run`).

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::observe;

/// A Chromium session behind a `chromedriver` process; both end when dropped.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

/// One HTTP/1.1 exchange with chromedriver: the JSON answer.
fn exchange(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(addr).expect("chromedriver listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut reader = std::io::BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("content-length:") {
            length = n.trim().parse().unwrap();
        }
    }
    let mut payload = vec![0u8; length];
    reader.read_exact(&mut payload).unwrap();
    let payload = String::from_utf8_lossy(&payload);
    serde_json::from_str(&payload).unwrap_or_else(|e| panic!("{e}: {payload}"))
}

impl Browser {
    fn start() -> Browser {
        let port = crate::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver starts (Debian: apt-get install chromium chromium-driver; .ci/run does)",
            );
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        // As root, on a closed network: no sandbox, no background connections.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
        ];
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let answer = exchange(addr, "POST", "/session", Some(&capabilities));
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        Browser {
            driver,
            addr,
            session,
        }
    }

    fn command(&self, method: &str, what: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        let answer = exchange(self.addr, method, &path, body);
        answer["value"].clone()
    }

    fn open(&self, url: &str) {
        self.command("POST", "url", Some(&json!({ "url": url })));
    }

    /// Runs `script` in the page and returns what it returned.
    fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// The browser console's entries since the last call (level, message).
    fn console(&self) -> Vec<Value> {
        let log = self.command("POST", "se/log", Some(&json!({ "type": "browser" })));
        log.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(|| exchange(self.addr, "DELETE", &path, None));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// What the page says it drew (`window.meridian`).
fn drawn(browser: &Browser) -> Value {
    let state = browser.eval("return window.meridian ? JSON.stringify(window.meridian) : null");
    match state.as_str() {
        Some(s) => serde_json::from_str(s).unwrap(),
        None => Value::Null,
    }
}

#[test]
fn the_live_map_draws_both_zones_in_headless_chromium() {
    // A frame-rate claim: next to the multi-process failover tests it read 6 frames in
    // 3 s (the map's threads run at SCHED_IDLE), so the machine to itself.
    let _machine = crate::alone();
    // With an admin token, which the page hands on to its stream.
    let token = meridian_node::admin_token::AdminToken::generate().unwrap();
    let o = observe::start_guarded("map", Some(token.clone()));
    let admin = o.running.admin_address().unwrap();
    let browser = Browser::start();
    browser.open(&format!("http://{admin}/map?token={}", token.text()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let state = drawn(&browser);
        if state["frames"].as_u64().unwrap_or(0) >= 1 {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "no live frame drawn in 20 s: {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(3));
    let state = drawn(&browser);
    if let Ok(path) = std::env::var("MERIDIAN_MAP_SCREENSHOT") {
        // Base64 PNG, for the docs: `base64 -d < FILE > map.png`.
        let png = browser.command("GET", "screenshot", None);
        std::fs::write(path, png.as_str().unwrap()).unwrap();
    }
    let console = browser.console();
    drop(browser);
    o.running.stop().unwrap();
    std::fs::remove_dir_all(&o.dir).unwrap();

    assert_eq!(state["errors"], json!([]), "JavaScript errors: {state}");
    let severe: Vec<_> = console.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
    assert_eq!(state["zones_drawn"], json!([0, 1]), "{state}");
    // The density grid is the zones' spatial index: every NPC once (and entities past the
    // border by up to the margin, in the zone that owns them).
    let density = state["density_total"].as_f64().unwrap();
    assert!(
        (1900.0..=2100.0).contains(&density),
        "density total {density} for 2,000 NPCs: {state}"
    );
    // The whole world is in view and holds fewer than the listing cap: every NPC is drawn.
    let entities = state["entities_drawn"].as_f64().unwrap();
    assert!(
        (1900.0..=2100.0).contains(&entities),
        "{entities} entities drawn: {state}"
    );
    assert!(state["ghosts_drawn"].as_u64().unwrap() > 0, "{state}");
    let frames = state["frames"].as_u64().unwrap() - first["frames"].as_u64().unwrap();
    assert!(frames >= 15, "{frames} frames in 3 s: under 5 Hz ({state})");
}
