//! A live web dashboard and HTTP API of PBX line state.
//!
//! Work in progress: the page's assets are embedded from `assets/`.

/// The page's files, embedded in the binary (no CDN, no build step).
pub mod assets {
    /// `index.html`: the dashboard and the wallboard (`/?view=wall`).
    pub const INDEX_HTML: &str = include_str!("../assets/index.html");
    /// `app.js`: the page's only script (no inline script: the CSP forbids it).
    pub const APP_JS: &str = include_str!("../assets/app.js");
    /// `app.css`: the page's styles.
    pub const APP_CSS: &str = include_str!("../assets/app.css");
}
