//! Reading the recorded transcripts (`### <time> <<` blocks are what the
//! server sent, `### <time> >>` what the client sent).

use std::path::Path;

/// The server's messages of a transcript, in order, in wire form: the banner
/// as `Asterisk Call Manager/11.0.0\r\n`, every other message as CRLF lines
/// closed by a blank line. Comment lines (`# ...`) end a block.
pub fn parse_transcript(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<(bool, Vec<&str>)> = None;
    let flush = |cur: Option<(bool, Vec<&str>)>, out: &mut Vec<String>| {
        let Some((banner, mut lines)) = cur else {
            return;
        };
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        if lines.is_empty() {
            return;
        }
        let mut wire = String::new();
        for l in &lines {
            wire.push_str(l);
            wire.push_str("\r\n");
        }
        if !banner {
            wire.push_str("\r\n");
        }
        out.push(wire);
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(current.take(), &mut out);
            if let Some(rest) = line.strip_prefix("### ") {
                if let Some(dir) = rest.split_whitespace().nth(1) {
                    if dir == "<<" {
                        current = Some((rest.contains("(banner)"), Vec::new()));
                    }
                }
            }
            continue;
        }
        if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    flush(current, &mut out);
    out
}

/// [`parse_transcript`] of a file.
pub fn read_transcript(path: impl AsRef<Path>) -> std::io::Result<Vec<String>> {
    Ok(parse_transcript(&std::fs::read_to_string(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let t = "# comment\n### 1 << (banner)\nAsterisk Call Manager/11.0.0\n\n### 2 >>\nAction: Ping\n\n### 3 <<\nResponse: Success\nRegServer: \n\n";
        assert_eq!(
            parse_transcript(t),
            [
                "Asterisk Call Manager/11.0.0\r\n",
                "Response: Success\r\nRegServer: \r\n\r\n"
            ]
        );
    }
}
