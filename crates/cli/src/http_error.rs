//! reqwest's errors as one line, for logs and `check`.

/// `e`'s message followed by each of its causes (`a: b: c`): reqwest's own
/// message alone ("error sending request") hides what went wrong. Its
/// message names the URL: call [`reqwest::Error::without_url`] first where
/// the URL may carry a secret.
pub(crate) fn with_causes(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
