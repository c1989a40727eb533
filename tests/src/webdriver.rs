//! Headless Chromium driven over the W3C WebDriver protocol through `chromedriver`, for the
//! console's browser tests. Only the commands those tests use: navigate, find, click, type,
//! read, prompts, cookies and screenshots (decision 0039 says why no WebDriver crate).
//!
//! Protocol: https://www.w3.org/TR/webdriver2/ (endpoints of section 6.5, element reference
//! key of section 12.1). Chromium runs with a fresh profile and no network services of its
//! own, as the machine's network is closed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// The key W3C WebDriver names element references with.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Debian's packages.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";
/// The WebDriver key code of Enter (W3C WebDriver, section 17.4.2).
pub const ENTER: &str = "\u{E007}";
/// The WebDriver key code of Tab (W3C WebDriver, section 17.4.2).
pub const TAB: &str = "\u{E004}";

pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
    pub downloads: PathBuf,
    shots: PathBuf,
}

/// A found element.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Screenshots go to `shots`.
    pub async fn start(shots: &Path) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: apt-get install -y chromium chromium-driver (scripts/test.sh does)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install -y chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["value"]["ready"].as_bool()),
                Err(_) => None,
            };
            if ready == Some(true) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        std::fs::create_dir_all(shots).unwrap();
        let mut b = Browser {
            driver,
            base,
            http,
            downloads: downloads.clone(),
            shots: shots.to_owned(),
            _profile: profile,
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // Prompts stay open until the test answers them.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", b._profile.path().join("profile").display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
        }}});
        let v = b.raw("POST", "/session", caps).await;
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        b.base = format!("{}/session/{id}", b.base);
        // Headless Chromium ignores the download preferences: allow downloads into our
        // folder through chromedriver's DevTools passthrough.
        b.cmd(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": "Browser.setDownloadBehavior", "params": {
                "behavior": "allow",
                "downloadPath": downloads.display().to_string(),
            }}),
        )
        .await;
        b
    }

    async fn raw(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let resp = req.send().await.expect("chromedriver");
        let status = resp.status();
        let v: Value = resp.json().await.expect("chromedriver JSON");
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        self.raw(method, path, body).await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({"url": url})).await;
    }

    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn source(&self) -> String {
        self.cmd("GET", "/source", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The elements matching a CSS selector, now.
    pub async fn all(&self, css: &str) -> Vec<Element<'_>> {
        let v = self
            .cmd(
                "POST",
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| Element {
                browser: self,
                id: e[ELEMENT_KEY]
                    .as_str()
                    .unwrap_or_else(|| panic!("element {e} for {css}"))
                    .to_owned(),
            })
            .collect()
    }

    /// The first element matching `css`, waiting up to `within` for it to appear (pages that
    /// refresh themselves, redirects after a form).
    pub async fn wait_for(&self, css: &str, within: Duration) -> Element<'_> {
        let started = Instant::now();
        loop {
            if let Some(e) = self.all(css).await.into_iter().next() {
                return e;
            }
            assert!(
                started.elapsed() < within,
                "{css} did not appear within {within:?} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the first element matching `css` once `ok` accepts it, waiting up to 5 s.
    /// A click that loads a page returns before the page is replaced, so the old page's
    /// element can be read first, or go stale while it is read: both are read again.
    pub async fn text_when(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        let mut last = None;
        loop {
            if let Some(e) = self.all(css).await.into_iter().next() {
                let url = format!("{}{}", self.base, e.path("/text"));
                if let Ok(resp) = self.http.get(url).send().await {
                    if resp.status().is_success() {
                        if let Ok(v) = resp.json::<Value>().await {
                            let text = v["value"].as_str().unwrap_or_default().to_owned();
                            if ok(&text) {
                                return text;
                            }
                            last = Some(text);
                        }
                    }
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{css} never had the expected text (last: {last:?}) on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of `css` once it is `expected` (see [`Browser::text_when`]).
    pub async fn wait_text(&self, css: &str, expected: &str) {
        self.text_when(css, |t| t == expected).await;
    }

    pub async fn find(&self, css: &str) -> Element<'_> {
        self.wait_for(css, Duration::from_secs(5)).await
    }

    /// Text of the open `confirm()` prompt, then accepts it.
    pub async fn accept_prompt(&self) -> String {
        let started = Instant::now();
        loop {
            let resp = self
                .http
                .get(format!("{}/alert/text", self.base))
                .send()
                .await
                .unwrap();
            if resp.status().is_success() {
                let v: Value = resp.json().await.unwrap();
                self.cmd("POST", "/alert/accept", json!({})).await;
                return v["value"].as_str().unwrap_or_default().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no prompt opened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The browser's cookies for the current page: (name, value, httpOnly).
    pub async fn cookies(&self) -> Vec<(String, String, bool)> {
        self.cmd("GET", "/cookie", Value::Null)
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["value"].as_str().unwrap().to_owned(),
                    c["httpOnly"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }

    /// The handle of the current window (W3C WebDriver 11.1).
    pub async fn window(&self) -> String {
        self.cmd("GET", "/window", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The handles of every open window (W3C WebDriver 11.4).
    pub async fn windows(&self) -> Vec<String> {
        self.cmd("GET", "/window/handles", Value::Null)
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_owned())
            .collect()
    }

    /// Switches to the window `handle` (W3C WebDriver 11.3).
    pub async fn switch_to(&self, handle: &str) {
        self.cmd("POST", "/window", json!({"handle": handle})).await;
    }

    /// Waits for a window other than `known` to open (a popup) and switches to it.
    pub async fn switch_to_new_window(&self, known: &[String], within: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(h) = self
                .windows()
                .await
                .into_iter()
                .find(|h| !known.contains(h))
            {
                self.switch_to(&h).await;
                return h;
            }
            assert!(
                started.elapsed() < within,
                "no new window within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until only the windows in `left` remain open (a popup closed itself).
    pub async fn wait_windows(&self, left: usize, within: Duration) {
        let started = Instant::now();
        while self.windows().await.len() != left {
            assert!(
                started.elapsed() < within,
                "windows still open after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` in the page (W3C WebDriver 13.2.1, Execute Script); its return value.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Presses and releases each key of `keys` (characters or key codes such as [`TAB`])
    /// at whatever has the focus, as a keyboard would: the Perform Actions command (W3C
    /// WebDriver 15.7) with one key input source. Unlike typing into a found element, this
    /// moves no focus of its own.
    pub async fn press(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|k| {
                [
                    json!({"type": "keyDown", "value": k.to_string()}),
                    json!({"type": "keyUp", "value": k.to_string()}),
                ]
            })
            .collect();
        self.cmd(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
    }

    /// Presses Tab until the focused element matches `css` (at most 80 times, from wherever
    /// the focus is): the control is reachable by keyboard. The number of presses.
    pub async fn tab_to(&self, css: &str) -> usize {
        for presses in 0..80 {
            let focused = self
                .execute(
                    "return document.activeElement !== null && document.activeElement.matches(arguments[0]);",
                    json!([css]),
                )
                .await;
            if focused == Value::Bool(true) {
                return presses;
            }
            self.press(TAB).await;
        }
        panic!("{css} never had the focus in 80 presses of Tab")
    }

    /// Saves a PNG of the viewport as `<name>.png` in the screenshots folder.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.cmd("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The file the browser downloaded whose name ends with `suffix`, once it is complete.
    pub async fn downloaded(&self, suffix: &str, within: Duration) -> Vec<u8> {
        let started = Instant::now();
        loop {
            let files: Vec<PathBuf> = std::fs::read_dir(&self.downloads)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            let partial = files
                .iter()
                .any(|p| p.extension().is_some_and(|x| x == "crdownload"));
            let done = files.iter().find(|p| p.to_string_lossy().ends_with(suffix));
            if let (Some(path), false) = (done, partial) {
                return std::fs::read(path).unwrap();
            }
            if started.elapsed() > within {
                let found: Vec<_> = std::fs::read_dir(&self.downloads)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                panic!(
                    "{suffix} was not downloaded within {within:?} (found {found:?}, page {})",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn quit(mut self) {
        let _ = self.http.delete(self.base.clone()).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test must not leave chromedriver (and its Chromium) running.
        let _ = self.driver.kill();
    }
}

impl Element<'_> {
    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    pub async fn click(&self) {
        self.browser
            .cmd("POST", &self.path("/click"), json!({}))
            .await;
    }

    pub async fn clear(&self) {
        self.browser
            .cmd("POST", &self.path("/clear"), json!({}))
            .await;
    }

    pub async fn type_text(&self, text: &str) {
        self.browser
            .cmd("POST", &self.path("/value"), json!({"text": text}))
            .await;
    }

    pub async fn text(&self) -> String {
        self.browser
            .cmd("GET", &self.path("/text"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn attr(&self, name: &str) -> Option<String> {
        self.browser
            .cmd(
                "GET",
                &self.path(&format!("/attribute/{name}")),
                Value::Null,
            )
            .await
            .as_str()
            .map(str::to_owned)
    }

    pub async fn enabled(&self) -> bool {
        self.browser
            .cmd("GET", &self.path("/enabled"), Value::Null)
            .await
            .as_bool()
            .unwrap()
    }
}
