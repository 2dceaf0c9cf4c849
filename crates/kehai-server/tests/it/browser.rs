//! Headless Chromium, driven through Debian's chromedriver (WebDriver), for what only a browser
//! shows: the page script's rendering, tooltips and accessible names, dialogs.
//!
//! Without chromium and chromedriver the browser tests are skipped with a warning — unless
//! `CI=true`, where a missing browser fails them (scripts/test.sh installs both).

use std::{
    net::TcpListener,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A browser session; chromedriver and its Chromium stop when this drops, even after a failed test.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// A running chromedriver in a process group of its own, with the Chromium it started: the
/// whole group is killed on drop.
struct Driver {
    process: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.process.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Browser {
    /// A fresh headless Chromium in English, or `None` (with a warning) where none is installed
    /// and CI is not set.
    pub async fn start() -> Option<Browser> {
        Self::start_in("en").await
    }

    /// The same, asking for pages in `lang` (`Accept-Language`).
    pub async fn start_in(lang: &str) -> Option<Browser> {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
            );
            eprintln!("warning: no chromium/chromedriver: browser test skipped");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { process };
        let profile = tempfile::tempdir().unwrap();
        // This machine has no internet: without the background-networking flags Chromium keeps
        // trying Google's hosts.
        let options = json!({
            "binary": CHROMIUM,
            "prefs": { "intl.accept_languages": lang },
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--lang={lang}"),
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::rustls().unwrap().capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => return Some(Browser { client, _driver: driver, _profile: profile }),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last:?}");
    }

    /// Signs in through kehai's login page and lands on `next`.
    pub async fn login(&self, base: &str, email: &str, password: &str, next: &str) {
        self.client.goto(&format!("{base}/login?next={next}")).await.unwrap();
        self.find("#email").await.send_keys(email).await.unwrap();
        self.find("#password").await.send_keys(password).await.unwrap();
        self.find("form[action='/login'] button[type=submit]").await.click().await.unwrap();
    }

    /// The element for a CSS selector, waiting up to five seconds for it.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    /// Clicks the element for `css`, waiting up to five seconds for it to be there and
    /// interactable (revealed, not covered, done animating).
    pub async fn click(&self, css: &str) {
        let mut last = None;
        for _ in 0..100 {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cannot click {css}: {last:?}");
    }

    /// Types `text` into the element for `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.unwrap();
    }

    /// Switches to the window opened last (a popup), waiting for it; returns the one left.
    pub async fn switch_to_popup(&self) -> fantoccini::wd::WindowHandle {
        let main = self.client.window().await.unwrap();
        for _ in 0..100 {
            let windows = self.client.windows().await.unwrap();
            if let Some(popup) = windows.into_iter().find(|w| *w != main) {
                self.client.switch_to_window(popup).await.unwrap();
                return main;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no popup opened");
    }

    /// Waits until only `main` is left (the popup closed itself), and switches back to it.
    pub async fn back_to(&self, main: fantoccini::wd::WindowHandle) {
        for _ in 0..100 {
            if self.client.windows().await.unwrap().len() == 1 {
                self.client.switch_to_window(main).await.unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the popup did not close");
    }

    /// Saves a screenshot as `target/screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Whether an element matches `css` now.
    pub async fn has(&self, css: &str) -> bool {
        !self.client.find_all(Locator::Css(css)).await.unwrap().is_empty()
    }

    /// Polls `script` (which returns a value) until it returns `expected`, for five seconds; a
    /// script that throws counts as not there yet.
    pub async fn eventually(&self, script: &str, expected: serde_json::Value) {
        self.eventually_within(script, expected, Duration::from_secs(5)).await;
    }

    /// The same, for at most `within`.
    pub async fn eventually_within(&self, script: &str, expected: serde_json::Value, within: Duration) {
        let mut got = serde_json::Value::Null;
        let started = std::time::Instant::now();
        while started.elapsed() < within {
            // A script that throws (the page is still loading) counts as not yet.
            got = self.client.execute(script, vec![]).await.unwrap_or_else(|e| json!(format!("error: {e}")));
            if got == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        let text: serde_json::Value =
            self.client.execute("return document.body.innerText", vec![]).await.unwrap_or_default();
        panic!("{script} gave {got}, not {expected}, on {url}: {text}");
    }
}
