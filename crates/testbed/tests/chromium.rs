//! Headless Chromium as a test peer: pages served from loopback, text that
//! looks like markup shown as text, an update pushed by server-sent events
//! without a reload, and no request leaving the machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use testbed::{Browser, ChromeDriver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

const TIMEOUT: Duration = Duration::from_secs(60);
/// Shown as text it is harmless; parsed as HTML it runs `alert(1)`.
const PAYLOAD: &str = "<img src=x onerror=alert(1)>";
/// The update pushed over SSE: markup too, so it must show literally as well.
const UPDATE: &str = "busy <b>since</b> 10:00";

/// Sets the text as text, then takes updates from `/events`.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>line 1001</title>
<style>body { font: 20px sans-serif; margin: 40px } #state { border: 1px solid #888; padding: 8px }</style>
</head><body>
<h1>Line 1001</h1>
<p id="state"></p>
<script>
document.getElementById("state").textContent = "<img src=x onerror=alert(1)>";
const events = new EventSource("/events");
events.onmessage = (e) => { document.getElementById("state").textContent = e.data; };
</script>
</body></html>
"#;

/// The mistake the smoke test guards against: the same text set as HTML.
const UNSAFE_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>unsafe</title></head><body>
<p id="state"></p>
<script>document.getElementById("state").innerHTML = "<img src=x onerror=alert(1)>";</script>
</body></html>
"#;

/// A tiny HTTP server on 127.0.0.1: `/` (counted), `/unsafe`, and `/events`
/// (SSE: each message put into `push` is sent to every open stream).
struct Site {
    addr: SocketAddr,
    page_loads: Arc<AtomicUsize>,
    /// One `()` each time a browser opens `/events`.
    events_opened: mpsc::UnboundedReceiver<()>,
    push: watch::Sender<Option<String>>,
}

impl Site {
    async fn start() -> Site {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let page_loads = Arc::new(AtomicUsize::new(0));
        let (opened_tx, events_opened) = mpsc::unbounded_channel();
        let (push, updates) = watch::channel(None);
        let loads = page_loads.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(
                    stream,
                    loads.clone(),
                    opened_tx.clone(),
                    updates.clone(),
                ));
            }
        });
        Site {
            addr,
            page_loads,
            events_opened,
            push,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn serve(
    mut stream: TcpStream,
    page_loads: Arc<AtomicUsize>,
    opened: mpsc::UnboundedSender<()>,
    mut updates: watch::Receiver<Option<String>>,
) {
    let Some(path) = read_request_path(&mut stream).await else {
        return;
    };
    let page = |body: &str| {
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\nCache-Control: no-store\r\n\r\n{body}",
            body.len()
        )
    };
    let response = match path.as_str() {
        "/" => {
            page_loads.fetch_add(1, Ordering::SeqCst);
            page(PAGE)
        }
        "/unsafe" => page(UNSAFE_PAGE),
        "/events" => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                        Cache-Control: no-store\r\nConnection: close\r\n\r\n: open\n\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let _ = opened.send(());
            loop {
                let message = updates.borrow_and_update().clone();
                if let Some(m) = message {
                    let event = format!("data: {m}\n\n");
                    if stream.write_all(event.as_bytes()).await.is_err() {
                        return;
                    }
                }
                if updates.changed().await.is_err() {
                    return;
                }
            }
        }
        _ => "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The target of a request (the path, or the absolute URL a proxy is sent),
/// read up to the end of its head (at most 16 KiB).
async fn read_request_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// `<target dir>/test-artifacts`, created: the test binary lives in
/// `<target dir>/<profile>/deps/`.
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.ancestors().nth(3).unwrap().join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
#[ignore = "real peer: chromium (scripts/install-peers.sh); run by scripts/test-all"]
async fn text_shows_literally_and_an_update_arrives_without_reload() {
    let started = Instant::now();
    let driver = ChromeDriver::start().unwrap();
    let mut site = Site::start().await;
    let browser = Browser::connect(&driver).await.unwrap();
    let connected = started.elapsed();

    browser.goto(&site.url("/")).await.unwrap();
    let shown = browser
        .wait_for("#state", TIMEOUT, |t| !t.is_empty())
        .await
        .unwrap();
    assert_eq!(shown, PAYLOAD, "the markup shows as text");
    let parsed = browser
        .client()
        .find_all(Locator::Css("#state *"))
        .await
        .unwrap();
    assert!(parsed.is_empty(), "no element was made from the text");
    let err = browser.client().get_alert_text().await.unwrap_err();
    assert!(err.is_no_such_alert(), "no dialog is open: {err}");

    // the update comes over the open SSE stream, not through a reload
    tokio::time::timeout(TIMEOUT, site.events_opened.recv())
        .await
        .expect("the page opens /events")
        .unwrap();
    site.push.send_replace(Some(UPDATE.to_owned()));
    let updated = browser
        .wait_for("#state", TIMEOUT, |t| t != PAYLOAD)
        .await
        .unwrap();
    assert_eq!(updated, UPDATE);
    assert_eq!(browser.text_of("h1").await.unwrap(), "Line 1001");
    assert_eq!(site.page_loads.load(Ordering::SeqCst), 1, "no reload");
    assert_eq!(browser.alert_text().await.unwrap(), None);

    let png = artifacts_dir().join("chromium-smoke.png");
    browser.screenshot(&png).await.unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    // IHDR: width and height of the 1400x900 window
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    // the viewport: the window's width, its height less the browser's frame
    assert_eq!(width, testbed::WINDOW_SIZE.0);
    assert!(height > 0 && height <= testbed::WINDOW_SIZE.1, "{height}");

    browser.close().await.unwrap();
    eprintln!(
        "chromium smoke: driver and browser up in {connected:?}, all done in {:?}; screenshot {}",
        started.elapsed(),
        png.display()
    );
}

#[tokio::test]
#[ignore = "real peer: chromium (scripts/install-peers.sh); run by scripts/test-all"]
async fn markup_set_as_html_opens_the_dialog_the_smoke_test_looks_for() {
    let driver = ChromeDriver::start().unwrap();
    let site = Site::start().await;
    let browser = Browser::connect(&driver).await.unwrap();
    // the load finishes with the dialog open: goto may report it or not
    let _ = browser.goto(&site.url("/unsafe")).await;
    assert_eq!(browser.wait_for_alert(TIMEOUT).await.unwrap(), "1");
    browser.client().accept_alert().await.unwrap();
    assert_eq!(browser.alert_text().await.unwrap(), None);
    browser.close().await.unwrap();
}

#[tokio::test]
#[ignore = "real peer: chromium (scripts/install-peers.sh); run by scripts/test-all"]
async fn a_request_beyond_loopback_goes_to_the_proxy_and_no_further() {
    let driver = ChromeDriver::start().unwrap();
    // a proxy of our own in place of the dead one, to see what arrives there
    let proxy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let browser = Browser::connect_via(&driver, proxy.local_addr().unwrap())
        .await
        .unwrap();
    // the browser's own background requests may come here too: every
    // request is answered, each target reported
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = proxy.accept().await {
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let Some(target) = read_request_path(&mut stream).await else {
                    return;
                };
                let body = "<p id=where>from the proxy</p>";
                let response = if target == "http://outside.example/" {
                    format!(
                        "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\
                         Content-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.0 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".to_owned()
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
                let _ = seen_tx.send(target);
            });
        }
    });
    browser.goto("http://outside.example/").await.unwrap();
    assert_eq!(browser.text_of("#where").await.unwrap(), "from the proxy");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let target = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .expect("the request reaches the proxy")
            .unwrap();
        if target == "http://outside.example/" {
            break;
        }
        // the browser's own requests (a search engine's preconnect, a time
        // query) are proxied just the same, and so with the dead proxy go nowhere
        eprintln!("also proxied: {target}");
    }
    browser.close().await.unwrap();

    // with the dead proxy (the default) the same load fails on this machine
    let offline = Browser::connect(&driver).await.unwrap();
    let err = offline.goto("http://outside.example/").await.unwrap_err();
    assert!(
        err.to_string().contains("ERR_PROXY_CONNECTION_FAILED"),
        "{err}"
    );
    offline.close().await.unwrap();
}

#[test]
#[ignore = "real peer: chromium (scripts/install-peers.sh); run by scripts/test-all"]
fn chromedriver_listens_on_loopback_only_and_stops_by_pid() {
    let mut driver = ChromeDriver::start().unwrap();
    let addr = driver.addr();
    assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
    assert_eq!(driver.url(), format!("http://127.0.0.1:{}", addr.port()));
    let listening = listening_addresses(addr.port());
    assert!(!listening.is_empty(), "nothing listens on {addr}");
    for local in &listening {
        assert!(
            local == "0100007F" || local == "00000000000000000000000001000000",
            "chromedriver listens on {local} (hex, /proc/net/tcp*), not only on loopback"
        );
    }
    let pid = driver.pid().unwrap();
    driver.stop();
    assert!(driver.pid().is_none());
    let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
    assert!(gone, "chromedriver {pid} still running");
    assert!(listening_addresses(addr.port()).is_empty());
}

/// The local addresses (hex, as `/proc/net/tcp` and `tcp6` write them) of the
/// sockets listening on `port`.
fn listening_addresses(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some((ip, p)) = local.split_once(':') else {
                continue;
            };
            if *state == "0A" && u16::from_str_radix(p, 16) == Ok(port) {
                found.push(ip.to_owned());
            }
        }
    }
    found
}
