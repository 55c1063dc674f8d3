//! The dashboard in a real headless Chromium, with `sip-blf-sync run`
//! between a real Kamailio and SIPp phones: a call shows live on both tiles
//! (the callee rings, the caller dials, both talk, both are idle again)
//! without a reload; a hostile display name stays text; search, the state
//! filter and the wallboard show the right tiles; the page says it is
//! disconnected while the service restarts and comes back by itself; off
//! loopback a token is required, in the browser and on the API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::{lines_of, status_addr, wait_for_all, PATIENCE};
use fantoccini::Locator;
use testbed::{Browser, ChromeDriver, Kamailio, KamailioOptions, SippCallee, SippCaller};

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// How long the callee rings: long enough to be seen ringing on a loaded machine.
const RING: Duration = Duration::from_secs(6);

struct Service {
    child: Child,
    /// Kept: its reader thread stops once it is dropped, and a full pipe
    /// would block the service.
    _err: Receiver<String>,
    log: Vec<String>,
    /// `host:port` of the dashboard.
    http: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(pbx: &Kamailio, dir: &Path, listen: &str, token: Option<&str>) -> Service {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"));
    cmd.args(["run", "--dry-run"])
        .current_dir(dir)
        .env("SIP_SERVER", pbx.sip_addr().to_string())
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "blfsecret")
        .env("SIP_LISTEN", "127.0.0.1:0")
        .env("EXTENSIONS_JSON", dir.join("extensions.json"))
        .env("PRESENCE_STATE_JSON", dir.join("presence-state.json"))
        .env("HTTP_LISTEN", listen)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        cmd.env("HTTP_TOKEN", token);
    }
    let mut child = cmd.spawn().unwrap();
    let err = lines_of(child.stderr.take().unwrap());
    let mut log = Vec::new();
    let seen = wait_for_all(
        &err,
        &mut log,
        &[
            "dashboard on http://",
            "subscribed to 1001 ",
            "subscribed to 1002 ",
        ],
    );
    let http = status_addr(&seen[0]);
    Service {
        child,
        _err: err,
        log,
        http,
    }
}

fn list(dir: &Path) {
    let list = serde_json::json!([
        { "extension": "1001", "email": "user1@contoso.com", "name": HOSTILE, "group": "Sales" },
        { "extension": "1002", "email": "user2@contoso.com", "name": "Bob", "group": "Sales" },
    ]);
    std::fs::write(dir.join("extensions.json"), list.to_string()).unwrap();
}

fn tile(extension: &str, state: &str) -> String {
    format!("[data-extension=\"{extension}\"][data-state=\"{state}\"]")
}

/// Waits until `selector` is on the page.
async fn shows(browser: &Browser, selector: &str) {
    browser
        .wait_for(selector, PATIENCE, |_| true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until exactly `n` elements match `selector` (tiles come and go
/// as a search or a filter changes).
async fn count_becomes(browser: &Browser, selector: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let found = browser
            .client()
            .find_all(Locator::Css(selector))
            .await
            .unwrap()
            .len();
        if found == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{selector}: {found} elements, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn artefact(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio, sipp and chromium (scripts/install-peers.sh); run by scripts/test-all"]
async fn a_call_shows_live_and_the_page_survives_a_restart() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    list(dir.path());
    let mut service = start(&pbx, dir.path(), "127.0.0.1:0", None);
    let driver = ChromeDriver::start().unwrap();
    let browser = Browser::connect(&driver).await.unwrap();
    browser
        .goto(&format!("http://{}/", service.http))
        .await
        .unwrap();
    shows(&browser, &tile("1001", "idle")).await;
    shows(&browser, &tile("1002", "idle")).await;
    shows(&browser, "#health [data-name=\"sip\"][data-ok=\"true\"]").await;

    // 1001 calls 1002, which rings, then answers (RFC 4235: the callee's
    // early dialog rings, the caller's is already busy).
    let callee = SippCallee::start(&pbx, "1002", 1, RING).unwrap();
    let caller = SippCaller::start_held(&pbx, "1001", "1002").unwrap();
    shows(&browser, &tile("1002", "ringing")).await;
    shows(&browser, &tile("1001", "busy")).await;
    shows(&browser, &tile("1002", "busy")).await;
    let text = browser
        .text_of("[data-extension=\"1001\"] .t-name")
        .await
        .unwrap();
    assert_eq!(text, HOSTILE, "a display name is shown as text");
    let cp = browser
        .text_of("[data-extension=\"1002\"] .t-cp")
        .await
        .unwrap();
    assert!(cp.contains("1001"), "the other party of 1002: {cp:?}");
    assert_eq!(browser.alert_text().await.unwrap(), None, "no script ran");
    browser
        .screenshot(&artefact("dashboard.png"))
        .await
        .unwrap();

    caller.hang_up().unwrap();
    caller.wait(PATIENCE).unwrap();
    callee.wait(PATIENCE).unwrap();
    shows(&browser, &tile("1001", "idle")).await;
    shows(&browser, &tile("1002", "idle")).await;

    // Search by name, filter by state, the wallboard.
    let client = browser.client();
    let search = client.find(Locator::Css("#search")).await.unwrap();
    search.send_keys("bob").await.unwrap();
    count_becomes(&browser, "[data-extension]", 1).await;
    shows(&browser, &tile("1002", "idle")).await;
    search.clear().await.unwrap();
    search.send_keys("100").await.unwrap();
    count_becomes(&browser, "[data-extension]", 2).await;
    let filter = client.find(Locator::Css("#state-filter")).await.unwrap();
    filter.select_by_value("busy").await.unwrap();
    count_becomes(&browser, "[data-extension]", 0).await;
    filter.select_by_value("idle").await.unwrap();
    count_becomes(&browser, "[data-extension]", 2).await;
    browser
        .goto(&format!("http://{}/?view=wall", service.http))
        .await
        .unwrap();
    shows(&browser, "html.wall").await;
    shows(&browser, &tile("1001", "idle")).await;

    // A restart on the same address: the page says it lost the service, then
    // comes back by itself, with no reload.
    let listen = service.http.clone();
    Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .unwrap();
    let stopped = service.child.wait().unwrap();
    assert!(stopped.success(), "a clean stop: {stopped}");
    shows(&browser, "#disconnected:not([hidden])").await;
    let service = start(&pbx, dir.path(), &listen, None);
    shows(&browser, "#disconnected[hidden]").await;
    shows(&browser, &tile("1001", "idle")).await;
    assert_eq!(browser.alert_text().await.unwrap(), None);
    browser.close().await.unwrap();
    drop(service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio and chromium (scripts/install-peers.sh); run by scripts/test-all"]
async fn off_loopback_a_token_is_required() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    list(dir.path());

    // No token: refused at start, saying what to do.
    let out = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .args(["run", "--dry-run"])
        .current_dir(dir.path())
        .env("SIP_SERVER", pbx.sip_addr().to_string())
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "blfsecret")
        .env("EXTENSIONS_JSON", dir.path().join("extensions.json"))
        .env("HTTP_LISTEN", "0.0.0.0:0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("HTTP_LISTEN") && err.contains("set HTTP_TOKEN"),
        "{err}"
    );

    let token = "dashboard-token-4f1c";
    let service = start(&pbx, dir.path(), "0.0.0.0:0", Some(token));
    let port = service.http.rsplit(':').next().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for path in ["/api/v1/extensions", "/status", "/metrics"] {
        let answer = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 401, "{path} without a token");
        let answer = http
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path} with the token");
    }
    let open = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(open.status(), 200, "/healthz stays open");
    assert!(
        !service.log.iter().any(|l| l.contains(token)),
        "the token is never logged"
    );

    // The browser is sent to the login form, and in with the token.
    let driver = ChromeDriver::start().unwrap();
    let browser = Browser::connect(&driver).await.unwrap();
    browser.goto(&format!("{base}/")).await.unwrap();
    let client = browser.client();
    let field = client
        .wait()
        .for_element(Locator::Css("input[name=\"token\"]"))
        .await
        .unwrap();
    assert!(client
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/login"));
    field.send_keys(token).await.unwrap();
    client
        .find(Locator::Css("button[type=\"submit\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    shows(&browser, &tile("1001", "idle")).await;
    browser.close().await.unwrap();
}
