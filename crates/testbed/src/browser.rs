//! A WebDriver session with headless Chromium ([`crate::ChromeDriver`]),
//! through `fantoccini`, with the few calls the tests need.

use std::path::Path;
use std::time::Duration;

use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::chromium::{headless_capabilities_via, ChromeDriver, DEAD_PROXY};
use crate::{Error, Result};

/// How often [`Browser::wait_for`] and [`Browser::wait_for_alert`] look at
/// the page again.
const POLL: Duration = Duration::from_millis(25);

/// One headless Chromium, started by chromedriver for this session with a
/// profile of its own ([`crate::headless_capabilities`]).
///
/// [`Browser::close`] ends the session and the browser; a `Browser` that is
/// dropped instead leaves its browser running until the [`ChromeDriver`] stops.
///
/// ```no_run
/// use std::path::Path;
/// use std::time::Duration;
///
/// async fn look_at_the_page() -> Result<(), testbed::Error> {
///     let driver = testbed::ChromeDriver::start()?;
///     let browser = testbed::Browser::connect(&driver).await?;
///     browser.goto("http://127.0.0.1:8080/").await?;
///     let text = browser
///         .wait_for("#line-1001", Duration::from_secs(60), |t| t.contains("busy"))
///         .await?;
///     println!("line 1001: {text}");
///     assert_eq!(browser.alert_text().await?, None);
///     browser.screenshot(Path::new("page.png")).await?;
///     browser.close().await
/// }
/// ```
#[derive(Debug)]
pub struct Browser {
    client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens a session on `driver`: starts a headless Chromium that reaches
    /// nothing beyond loopback.
    pub async fn connect(driver: &ChromeDriver) -> Result<Browser> {
        Self::connect_via(driver, DEAD_PROXY).await
    }

    /// As [`Browser::connect`], with every request not bound for loopback sent
    /// to `proxy` (a test's own listener) instead of the dead proxy.
    pub async fn connect_via(
        driver: &ChromeDriver,
        proxy: std::net::SocketAddr,
    ) -> Result<Browser> {
        let profile = driver.new_profile()?;
        let caps = headless_capabilities_via(driver.chromium(), profile.path(), proxy);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url())
            .await
            .map_err(|e| Error::Session {
                driver: driver.url(),
                source: Box::new(e),
                tail: driver.log_tail(30),
            })?;
        Ok(Browser {
            client,
            _profile: profile,
        })
    }

    /// Loads `url` and waits until the page has loaded.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .map_err(|e| webdriver(format!("loading {url}"), e))
    }

    /// The rendered text of the first element that matches the CSS
    /// `selector` (as a person sees it: markup in it shows as text).
    pub async fn text_of(&self, selector: &str) -> Result<String> {
        let element = self
            .client
            .find(Locator::Css(selector))
            .await
            .map_err(|e| webdriver(format!("finding {selector}"), e))?;
        element
            .text()
            .await
            .map_err(|e| webdriver(format!("reading the text of {selector}"), e))
    }

    /// Looks at the page until the element that matches the CSS `selector`
    /// exists and its text satisfies `predicate`, for at most `timeout`;
    /// returns that text. The page is polled (every 25 ms) through the
    /// driver, so it sees what the page shows, however it got there.
    pub async fn wait_for(
        &self,
        selector: &str,
        timeout: Duration,
        mut predicate: impl FnMut(&str) -> bool,
    ) -> Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        loop {
            match self.text_of(selector).await {
                Ok(text) if predicate(&text) => return Ok(text),
                Ok(text) => last = Some(text),
                // not there yet, or replaced between finding and reading it:
                // worth waiting for; any other error is not
                Err(Error::WebDriver { source, .. })
                    if source.is_no_such_element() || source.is_stale_element_reference() => {}
                Err(e) => return Err(e),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: match last {
                        Some(text) => {
                            format!("{selector} to show the expected text (it shows {text:?})")
                        }
                        None => format!("{selector} to appear"),
                    },
                    timeout,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The text of the open `alert()`/`confirm()`/`prompt()` dialog, `None`
    /// when no dialog is open.
    pub async fn alert_text(&self) -> Result<Option<String>> {
        match self.client.get_alert_text().await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.is_no_such_alert() => Ok(None),
            Err(e) => Err(webdriver("reading the alert", e)),
        }
    }

    /// Waits up to `timeout` for a dialog to open and returns its text (the
    /// dialog stays open).
    pub async fn wait_for_alert(&self, timeout: Duration) -> Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(text) = self.alert_text().await? {
                return Ok(text);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "an alert to open".into(),
                    timeout,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Saves a PNG screenshot of the window to `path` (its directory must
    /// exist).
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|e| webdriver("taking a screenshot", e))?;
        std::fs::write(path, png).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    /// The underlying WebDriver client, for anything not covered here.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the session; chromedriver closes the browser.
    pub async fn close(self) -> Result<()> {
        self.client
            .close()
            .await
            .map_err(|e| webdriver("closing the session", e))
    }
}

fn webdriver(what: impl Into<String>, source: CmdError) -> Error {
    Error::WebDriver {
        what: what.into(),
        source: Box::new(source),
    }
}
