//! A headless Debian `chromium` driven over W3C WebDriver through `chromedriver` (Debian's
//! `chromium-driver`), with the `reqwest` client the other tests already use: the protocol
//! is a handful of JSON calls, so no WebDriver crate is compiled for it (see ARCHITECTURE.md).
//! The driver is started on a free port of 127.0.0.1 and killed when the [`Browser`] drops.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Every wait ends by this deadline.
const DEADLINE: Duration = Duration::from_secs(30);
/// The key of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session on its own driver.
pub(crate) struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

/// Where chromium and its driver are: Debian's paths, or `SSN_CHROMIUM` / `SSN_CHROMEDRIVER`.
fn program(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_string())
}

impl Browser {
    /// Starts chromedriver and a headless chromium at 1280×800 that logs its console.
    pub(crate) async fn start() -> Browser {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().unwrap().port()
        };
        let driver = Command::new(program("SSN_CHROMEDRIVER", "/usr/bin/chromedriver"))
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (apt-get install chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(answer) = ready
                && let Ok(status) = answer.json::<Value>().await
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "chromedriver not ready in {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            http,
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": program("SSN_CHROMIUM", "/usr/bin/chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,800", "--lang=id"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let created = browser.call("POST", "/session", capabilities).await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a session: {created}"))
            .to_string();
        browser
    }

    /// One WebDriver call; its `value`. A WebDriver error fails the test with its message.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|message| panic!("{method} {path}: {message}"))
    }

    /// One WebDriver call; its `value`, or the WebDriver error's message.
    async fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let answer: Value = request
            .timeout(DEADLINE)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let value = answer["value"].clone();
        match value.get("error") {
            Some(_) => Err(value["message"].to_string()),
            None => Ok(value),
        }
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// Opens `url` and waits for it to load (WebDriver's navigation waits).
    pub(crate) async fn open(&self, url: &str) {
        self.call("POST", &self.at("/url"), json!({ "url": url }))
            .await;
    }

    /// The URL shown.
    pub(crate) async fn url(&self) -> String {
        let value = self.call("GET", &self.at("/url"), Value::Null).await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// The element `css` selects; fails the test when there is none.
    async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                &self.at("/element"),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    /// How many elements `css` selects.
    pub(crate) async fn count(&self, css: &str) -> usize {
        let found = self
            .call(
                "POST",
                &self.at("/elements"),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found.as_array().map_or(0, Vec::len)
    }

    /// Types `text` into the field `css` selects (after clearing it).
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            "POST",
            &self.at(&format!("/element/{element}/clear")),
            json!({}),
        )
        .await;
        self.call(
            "POST",
            &self.at(&format!("/element/{element}/value")),
            json!({ "text": text }),
        )
        .await;
    }

    /// Chooses the file at `path` in the file input `css` selects (WebDriver sends a file
    /// input its path as typed text).
    pub(crate) async fn upload(&self, css: &str, path: &std::path::Path) {
        let element = self.find(css).await;
        self.call(
            "POST",
            &self.at(&format!("/element/{element}/value")),
            json!({ "text": path.to_str().expect("a UTF-8 path") }),
        )
        .await;
    }

    /// Chooses the option of value `value` in the `select` `css` selects.
    pub(crate) async fn choose(&self, css: &str, value: &str) {
        let option = format!(r#"{css} option[value="{value}"]"#);
        self.click(&option).await;
    }

    /// Clicks what `css` selects (a submit button waits for the next page).
    pub(crate) async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(
            "POST",
            &self.at(&format!("/element/{element}/click")),
            json!({}),
        )
        .await;
    }

    /// Clicks what `css` selects and waits, with the deadline, for the page it leads to
    /// (a click may return before a form's answer has replaced the page).
    pub(crate) async fn submit(&self, css: &str) {
        self.script("window.konsolOldPage = true; return null;")
            .await;
        self.click(css).await;
        let started = Instant::now();
        loop {
            let script = json!({"script": "return [window.konsolOldPage === true, document.readyState];", "args": []});
            // While the next page replaces this one, the script may find no page to run in.
            if let Ok(state) = self
                .try_call("POST", &self.at("/execute/sync"), script)
                .await
                && state[0] == false
                && state[1] == "complete"
            {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no new page after clicking {css}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of what `css` selects.
    pub(crate) async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let value = self
            .call(
                "GET",
                &self.at(&format!("/element/{element}/text")),
                Value::Null,
            )
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// Runs `script` in the page; what it returns.
    pub(crate) async fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Presses a key (a WebDriver key code such as `\u{E004}`, Tab).
    pub(crate) async fn press(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]});
        self.call("POST", &self.at("/actions"), actions).await;
    }

    /// Resizes the window (CSS pixels).
    pub(crate) async fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            &self.at("/window/rect"),
            json!({"width": width, "height": height}),
        )
        .await;
    }

    /// The browser console's warnings and errors since the last call (chromedriver's log).
    pub(crate) async fn console_errors(&self) -> Vec<String> {
        let entries = self
            .call("POST", &self.at("/se/log"), json!({"type": "browser"}))
            .await;
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// What `url` answers when fetched with this browser's cookies (a download, which a
    /// headless chromium would only save to disk).
    pub(crate) async fn download(&self, url: &str) -> String {
        let cookies = self.call("GET", &self.at("/cookie"), Value::Null).await;
        let header = cookies
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}={}",
                    c["name"].as_str().unwrap_or_default(),
                    c["value"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let answer = self
            .http
            .get(url)
            .header("cookie", header)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(answer.status(), 200, "{url}");
        let disposition = answer.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(disposition.starts_with("attachment"), "{disposition}");
        answer.text().await.unwrap()
    }

    /// A PNG of the window, written to `path`.
    pub(crate) async fn screenshot(&self, path: &std::path::Path) {
        let value = self.call("GET", &self.at("/screenshot"), Value::Null).await;
        let png = base64_decode(value.as_str().unwrap_or_default());
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

impl Browser {
    /// Ends the session, which ends its chromium (killing only the driver would leave it
    /// running); the driver goes when the browser drops.
    pub(crate) async fn quit(mut self) {
        let _ = self
            .try_call("DELETE", &format!("/session/{}", self.session), Value::Null)
            .await;
        self.session.clear();
    }
}

impl Drop for Browser {
    /// Ends the session first (a test that failed never reached [`Browser::quit`], and
    /// killing the driver alone would leave its chromium running), with a plain blocking
    /// request: Drop cannot await.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let address = self.base.trim_start_matches("http://").to_string();
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
                use std::io::{Read, Write};
                let _ = stream.set_read_timeout(Some(DEADLINE));
                let _ = stream.write_all(request.as_bytes());
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (the screenshot's encoding).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | d << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_with_and_without_padding() {
    assert_eq!(base64_decode("TWFu"), b"Man");
    assert_eq!(base64_decode("TWE="), b"Ma");
    assert_eq!(base64_decode("TQ=="), b"M");
}
