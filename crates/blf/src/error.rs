//! Typed parse errors with 1-based line/column positions, and the input limits.

use std::fmt;

/// Default maximum body size accepted by the parsers: 64 KiB.
///
/// Real BLF bodies are well under 2 KiB per dialog; a PBX with many parallel calls on one
/// extension still stays far below this.
pub const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024;

/// Default maximum element nesting depth.
///
/// A dialog-info document needs 5 levels (`dialog-info/dialog/local/target/param`); PIDF with
/// RPID about the same. 32 leaves room for extensions while stopping "billion nested tags" input.
pub const DEFAULT_MAX_DEPTH: usize = 32;

/// Input limits applied before and while parsing: [`Limits::default`], adjusted with
/// [`with_max_body_size`](Limits::with_max_body_size) and
/// [`with_max_depth`](Limits::with_max_depth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest body accepted, in bytes.
    pub max_body_size: usize,
    /// Deepest element nesting accepted (values above 256 act as 256).
    pub max_depth: usize,
}

impl Limits {
    /// These limits with the largest body accepted set to `bytes`.
    #[must_use]
    pub fn with_max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// These limits with the deepest nesting accepted set to `depth` (above 256 acts as 256).
    #[must_use]
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// What went wrong while parsing a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The body is larger than [`Limits::max_body_size`].
    TooLarge,
    /// The body is not valid UTF-8.
    InvalidUtf8,
    /// The body is not well-formed XML (includes truncated documents).
    MalformedXml,
    /// Elements are nested deeper than [`Limits::max_depth`].
    TooDeep,
    /// The root element is not the one the content type announces (or not a known one).
    UnexpectedRoot,
    /// The content type is neither dialog-info nor PIDF.
    UnsupportedContentType,
    /// A known attribute or element holds a value that cannot be understood
    /// (e.g. `version="abc"`, `state="half"`).
    InvalidValue,
}

impl ParseErrorKind {
    /// Short human-readable name of the kind, e.g. `"malformed XML"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "body too large",
            Self::InvalidUtf8 => "invalid UTF-8",
            Self::MalformedXml => "malformed XML",
            Self::TooDeep => "nesting too deep",
            Self::UnexpectedRoot => "unexpected root element",
            Self::UnsupportedContentType => "unsupported content type",
            Self::InvalidValue => "invalid value",
        }
    }
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A body could not be parsed. Displays as
/// `"malformed XML at line 3, column 17: <detail>"`; `line` and `column` are 1-based and
/// count characters (not bytes) within the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{kind} at line {line}, column {column}: {detail}")]
#[non_exhaustive]
pub struct ParseError {
    /// What kind of problem.
    pub kind: ParseErrorKind,
    /// 1-based line of the problem in the body.
    pub line: u32,
    /// 1-based column (in characters) of the problem in the body.
    pub column: u32,
    /// Details for logs.
    pub detail: String,
}

impl ParseError {
    /// Builds an error at byte `offset` of `body`.
    pub(crate) fn at(
        kind: ParseErrorKind,
        body: &[u8],
        offset: usize,
        detail: impl Into<String>,
    ) -> Self {
        let (line, column) = line_column(body, offset);
        Self {
            kind,
            line,
            column,
            detail: detail.into(),
        }
    }
}

/// 1-based line and column (in characters; UTF-8 continuation bytes are not counted) of byte
/// `offset` in `body`. Offsets past the end point just after the last byte.
///
/// Public so that programs reporting errors in other text (a mapping file,
/// a configuration) point at places the same way.
///
/// ```
/// assert_eq!(blf::line_column(b"abc\ndef", 5), (2, 2));
/// ```
pub fn line_column(body: &[u8], offset: usize) -> (u32, u32) {
    let end = offset.min(body.len());
    let before = body.get(..end).unwrap_or(body);
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before
        .get(line_start..)
        .unwrap_or_default()
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80)
        .count()
        + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_is_one_based_and_counts_characters() {
        assert_eq!(line_column(b"abc", 0), (1, 1));
        assert_eq!(line_column(b"abc\ndef", 5), (2, 2));
        assert_eq!(line_column("é\nxéy".as_bytes(), 6), (2, 3));
        assert_eq!(line_column(b"ab", 99), (1, 3));
    }

    #[test]
    fn display_names_kind_line_and_column() {
        let e = ParseError::at(ParseErrorKind::MalformedXml, b"a\nbc", 3, "oops");
        assert_eq!(e.to_string(), "malformed XML at line 2, column 2: oops");
    }
}
