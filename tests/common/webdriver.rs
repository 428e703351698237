//! A small W3C WebDriver client (https://www.w3.org/TR/webdriver2/) over `reqwest`, enough to
//! drive headless Chromium through `chromedriver` from an end-to-end test: sessions, navigation,
//! elements by CSS, clicks, keys, text, cookies, screenshots. Written here rather than pulled in
//! as a crate because the protocol needed is a dozen JSON calls.
//!
//! [`ChromeDriver::start`] runs `chromedriver` on a free loopback port in its own process
//! group; dropping it ends the browser session and kills that group, so a failing test leaves
//! no browser behind.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn which(name: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| std::path::Path::new(p).is_file())
}

/// A running `chromedriver`; killed (with its browser) on drop.
pub struct ChromeDriver {
    child: Child,
    port: u16,
    session: Arc<Mutex<Option<String>>>,
}

impl ChromeDriver {
    /// Start chromedriver on a free loopback port and wait until it is ready.
    pub async fn start() -> ChromeDriver {
        let driver = which("chromedriver").unwrap_or_else(|| {
            panic!("chromedriver is not installed: apt-get install chromium chromium-driver (.ci/run does)")
        });
        let port = super::free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so the browser it starts can be killed with it.
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let d = ChromeDriver {
            child,
            port,
            session: Arc::new(Mutex::new(None)),
        };
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = client
                .get(format!("http://127.0.0.1:{port}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(body) = ready
                && let Ok(v) = body.await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not become ready within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        d
    }

    /// A new headless Chromium session.
    pub async fn browser(&self) -> Browser {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut options = json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-proxy-server", "--lang=en-US",
                "--disable-extensions", "--no-first-run",
            ]
        });
        if let Some(bin) = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
            .iter()
            .find(|p| std::path::Path::new(p).is_file())
        {
            options["binary"] = json!(bin);
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": options,
        }}});
        let root = format!("http://127.0.0.1:{}", self.port);
        let resp = client
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .await
            .expect("WebDriver new session");
        let v: Value = resp.json().await.expect("WebDriver answer");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {v}"))
            .to_string();
        *self.session.lock().unwrap() = Some(id.clone());
        Browser {
            client,
            base: format!("{root}/session/{id}"),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // End the session (closes the browser), over a plain socket: no async in drop.
        if let Some(id) = self.session.lock().ok().and_then(|s| s.clone())
            && let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port))
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                s,
                "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            );
            let _ = std::io::Read::read(&mut s, &mut [0u8; 512]);
        }
        // Then the whole process group we started (chromedriver and anything left of Chromium).
        let pgid = self.child.id() as i32;
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// An element reference.
#[derive(Clone, Debug)]
pub struct Element(String);

/// One browser session.
pub struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.client.get(&url),
            "DELETE" => self.client.delete(&url),
            _ => self.client.post(&url).json(&body.unwrap_or(json!({}))),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{method} {path}: {} {}",
                v["value"]["error"], v["value"]["message"]
            ));
        }
        Ok(v["value"].clone())
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.ok("POST", "/url", Some(json!({"url": url}))).await;
    }

    pub async fn current_url(&self) -> String {
        self.ok("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub async fn find(&self, css: &str) -> Option<Element> {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .ok()?;
        v[ELEMENT].as_str().map(|id| Element(id.to_string()))
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .ok(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wait (bounded) for an element to appear.
    pub async fn wait(&self, css: &str, secs: u64) -> Element {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(e) = self.find(css).await {
                return e;
            }
            if tokio::time::Instant::now() >= deadline {
                let url = self.current_url().await;
                let text = self.body_text().await;
                panic!("no element {css} within {secs} s on {url}; page text:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait for the console page named `page` (its `<body data-page>`).
    pub async fn wait_page(&self, page: &str, secs: u64) {
        self.wait(&format!("body[data-page=\"{page}\"]"), secs)
            .await;
    }

    pub async fn click(&self, e: &Element) {
        self.ok("POST", &format!("/element/{}/click", e.0), None)
            .await;
    }

    pub async fn send_keys(&self, e: &Element, text: &str) {
        self.ok(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Press one key on whatever has focus (the page body after a click outside inputs), as a
    /// user pressing a shortcut would.
    pub async fn press(&self, key: &str) {
        let actions = json!({"actions": [{
            "type": "key", "id": "keyboard",
            "actions": [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
        }]});
        self.ok("POST", "/actions", Some(actions)).await;
        let _ = self.call("DELETE", "/actions", None).await;
    }

    pub async fn text(&self, e: &Element) -> String {
        self.ok("GET", &format!("/element/{}/text", e.0), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub async fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.ok("GET", &format!("/element/{}/attribute/{name}", e.0), None)
            .await
            .as_str()
            .map(str::to_string)
    }

    /// The visible text of the page.
    pub async fn body_text(&self) -> String {
        match self.find("body").await {
            Some(b) => self.text(&b).await,
            None => String::new(),
        }
    }

    pub async fn source(&self) -> String {
        self.ok("GET", "/source", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.ok(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// A cookie as the browser holds it (`httpOnly`, `sameSite`, `secure`, `value`, ...).
    pub async fn cookie(&self, name: &str) -> Option<Value> {
        self.call("GET", &format!("/cookie/{name}"), None)
            .await
            .ok()
    }

    /// Resize the browser window.
    pub async fn set_window(&self, width: u64, height: u64) {
        self.ok(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.ok("GET", "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .expect("screenshot is base64")
    }
}
