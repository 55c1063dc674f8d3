//! `.env` files, read as the original tool's loader (python-dotenv) reads
//! them, so that a file that worked there gives the same values here.
//!
//! - `NAME=value`, `export NAME=value`, `NAME = value`; `NAME=` is empty; a
//!   bare `NAME` (no `=`) sets nothing. Blank lines and `# comments` are skipped.
//! - An unquoted value runs to the end of the line with its inner spaces
//!   (`A=a b` is `a b`); whitespace then `#` starts a comment (`A=a #c` is `a`,
//!   `A=a#c` is `a#c`); quotes and backslashes inside it are plain characters.
//! - `'single'` keeps everything but `\\` and `\'`; `"double"` also reads
//!   `\n`, `\t`, `\"`…; both may span lines.
//! - `${NAME}` and `${NAME:-default}` are expanded in every value, from the
//!   environment, else from the lines above; `$NAME` without braces stays as is.
//! - A name given twice takes the last value; the environment wins over the file.
//!
//! Where python-dotenv warns and skips a line it cannot read, the line is
//! refused here: running with a setting silently missing is worse. The error
//! gives the line and the variable's name, never the value (often a secret).
//!
//! # Why not `dotenvy`
//!
//! It was used before, and users of the original tool tripped on it: its
//! parse error carries the whole offending line (a password went to the
//! journal) and a character index where a line number belongs; it refuses an
//! unquoted value with a space, and a backslash in one (`C:\certs\x.pem`),
//! which python-dotenv reads; it expands `$NAME` (changing passwords that
//! contain `$`); and a name given twice keeps its first value. Matching
//! python-dotenv's grammar is a few hundred lines, tested line by line
//! against it.

use std::collections::HashMap;

/// One `NAME=value` of the file, before `${…}` expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Binding {
    name: String,
    /// `None` for a bare `NAME` without `=`.
    value: Option<String>,
}

/// A line that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The 1-based line where the statement starts.
    pub line: usize,
    /// What is wrong and how to write it instead; names the variable, never
    /// shows its value.
    pub message: String,
}

/// Reads `text` (a `.env` file's content) into `vars`: a variable already in
/// `vars` (the process environment) is kept. Every unreadable line is reported.
pub fn load_into(text: &str, vars: &mut HashMap<String, String>) -> Result<(), Vec<LineError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (bindings, errors) = Parser::new(text).parse();
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut file: HashMap<String, String> = HashMap::new();
    for b in bindings {
        let Some(raw) = b.value else { continue };
        let value = expand(&raw, |name| vars.get(name).or_else(|| file.get(name)));
        file.insert(b.name, value);
    }
    for (k, v) in file {
        vars.entry(k).or_insert(v);
    }
    Ok(())
}

/// Expands `${NAME}` and `${NAME:-default}` (the default when NAME is unset).
fn expand<'a>(raw: &str, lookup: impl Fn(&str) -> Option<&'a String>) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let name_end = after.find(['}', ':']).unwrap_or(after.len());
        let name = &after[..name_end];
        let tail = &after[name_end..];
        let (default, consumed) = if let Some(d) = tail.strip_prefix(":-") {
            match d.find('}') {
                Some(end) => (Some(&d[..end]), name_end + 2 + end + 1),
                None => (None, 0),
            }
        } else if tail.starts_with('}') {
            (None, name_end + 1)
        } else {
            (None, 0)
        };
        if consumed == 0 {
            // Not a `${…}` form: the `$` is a plain character.
            out.push('$');
            rest = &rest[at + 1..];
            continue;
        }
        match lookup(name) {
            Some(v) => out.push_str(v),
            None => out.push_str(default.unwrap_or("")),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

/// Whitespace that does not end a line.
fn is_blank(c: char) -> bool {
    c.is_whitespace() && c != '\n' && c != '\r'
}

/// A name that looks like a variable (safe to show: not a pasted secret).
fn looks_like_a_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

/// Why a statement could not be read (the message is built with the line).
enum Failure {
    NoName,
    NoEquals {
        name: String,
    },
    Unclosed {
        name: String,
        quote: char,
    },
    AfterQuote {
        name: String,
        quote: char,
        ran_to: Option<usize>,
    },
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_while(&mut self, f: impl Fn(char) -> bool) {
        let rest = self.rest();
        self.pos += rest.find(|c| !f(c)).unwrap_or(rest.len());
    }

    /// The 1-based line of byte `at` (`\r\n`, `\n` and a lone `\r` end a line).
    fn line_at(&self, at: usize) -> usize {
        let before = &self.text[..at];
        1 + before.matches('\n').count() + before.matches('\r').count()
            - before.matches("\r\n").count()
    }

    /// Skips to the start of the next line.
    fn skip_line(&mut self) {
        self.skip_while(|c| c != '\n' && c != '\r');
        if self.rest().starts_with("\r\n") {
            self.pos += 2;
        } else if !self.rest().is_empty() {
            self.pos += 1;
        }
    }

    fn parse(mut self) -> (Vec<Binding>, Vec<LineError>) {
        let mut bindings = Vec::new();
        let mut errors = Vec::new();
        loop {
            self.skip_while(char::is_whitespace);
            if self.rest().is_empty() {
                break;
            }
            let start = self.pos;
            match self.statement() {
                Ok(Some(b)) => bindings.push(b),
                Ok(None) => {}
                Err(f) => {
                    let line = self.line_at(start);
                    errors.push(LineError {
                        line,
                        message: describe(f, line),
                    });
                    self.skip_line();
                }
            }
        }
        (bindings, errors)
    }

    /// One statement: a binding, a comment (`None`) or a failure.
    fn statement(&mut self) -> Result<Option<Binding>, Failure> {
        if let Some(after) = self.rest().strip_prefix("export") {
            if after.starts_with(is_blank) {
                self.pos += "export".len();
                self.skip_while(is_blank);
            }
        }
        let name = match self.rest().chars().next() {
            Some('#') => {
                self.skip_while(|c| c != '\n' && c != '\r');
                return Ok(None);
            }
            Some('\'') => {
                let inner = &self.rest()[1..];
                match inner.find('\'') {
                    Some(end) if end > 0 => {
                        self.pos += end + 2;
                        inner[..end].to_string()
                    }
                    _ => return Err(Failure::NoName),
                }
            }
            _ => {
                let rest = self.rest();
                let end = rest
                    .find(|c: char| c == '=' || c == '#' || c.is_whitespace())
                    .unwrap_or(rest.len());
                if end == 0 {
                    return Err(Failure::NoName);
                }
                self.pos += end;
                rest[..end].to_string()
            }
        };
        self.skip_while(is_blank);
        let mut quote = None;
        let mut value_line = 0;
        let value = if self.rest().starts_with('=') {
            self.pos += 1;
            self.skip_while(is_blank);
            value_line = self.line_at(self.pos);
            Some(match self.rest().chars().next() {
                Some(q @ ('\'' | '"')) => {
                    quote = Some(q);
                    let Some((inner, len)) = quoted(&self.rest()[1..], q) else {
                        return Err(Failure::Unclosed { name, quote: q });
                    };
                    self.pos += len + 2;
                    unescape(inner, q)
                }
                None | Some('\n' | '\r') => String::new(),
                Some(_) => {
                    let rest = self.rest();
                    let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
                    self.pos += end;
                    unquoted(&rest[..end])
                }
            })
        } else {
            None
        };
        // An optional comment, then the end of the line.
        self.skip_while(is_blank);
        if self.rest().starts_with('#') {
            self.skip_while(|c| c != '\n' && c != '\r');
        }
        match self.rest().chars().next() {
            None | Some('\n' | '\r') => Ok(Some(Binding { name, value })),
            // Only a quoted value or a missing `=` can leave text behind (an
            // unquoted value runs to the end of the line).
            Some(_) => Err(match quote {
                Some(quote) => {
                    let end_line = self.line_at(self.pos);
                    Failure::AfterQuote {
                        name,
                        quote,
                        ran_to: (end_line != value_line).then_some(end_line),
                    }
                }
                None => Failure::NoEquals { name },
            }),
        }
    }
}

/// The inside of a quoted value (`text` starts after the opening quote) and
/// its length, as python-dotenv's `'((?:\\'|[^'])*)'` matches it: `\'` does
/// not close, unless no later quote does (then its quote closes).
fn quoted(text: &str, q: char) -> Option<(&str, usize)> {
    let mut last_escaped_quote = None;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' && text[i + 1..].starts_with(q) {
            last_escaped_quote = Some(i + 1);
            chars.next();
        } else if c == q {
            return Some((&text[..i], i));
        }
    }
    last_escaped_quote.map(|i| (&text[..i], i))
}

/// python-dotenv's escapes: `\\` `\'` in single quotes; in double quotes also
/// `\"` and `\a \b \f \n \r \t \v`. Any other backslash is kept.
fn unescape(inner: &str, q: char) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match (q, chars.peek()) {
            (_, Some('\\')) => Some('\\'),
            (_, Some('\'')) => Some('\''),
            ('"', Some('"')) => Some('"'),
            ('"', Some('a')) => Some('\u{7}'),
            ('"', Some('b')) => Some('\u{8}'),
            ('"', Some('f')) => Some('\u{c}'),
            ('"', Some('n')) => Some('\n'),
            ('"', Some('r')) => Some('\r'),
            ('"', Some('t')) => Some('\t'),
            ('"', Some('v')) => Some('\u{b}'),
            _ => None,
        };
        match decoded {
            Some(d) => {
                out.push(d);
                chars.next();
            }
            None => out.push('\\'),
        }
    }
    out
}

/// An unquoted value: up to a `#` that follows whitespace, trailing blanks trimmed.
fn unquoted(line: &str) -> String {
    let mut end = line.len();
    let mut prev_blank = false;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_blank {
            end = i;
            break;
        }
        prev_blank = c.is_whitespace();
    }
    line[..end].trim_end().to_string()
}

fn quote_name(q: char) -> &'static str {
    if q == '"' {
        "double quote (\")"
    } else {
        "single quote (')"
    }
}

/// The message for a failure; names the variable, never shows its value.
fn describe(f: Failure, line: usize) -> String {
    match f {
        Failure::NoName => "no variable name before '=': write NAME=value".into(),
        Failure::NoEquals { name } if looks_like_a_name(&name) => format!(
            "{name} has no '=': write {name}=value (quote a value with spaces: {name}=\"...\")"
        ),
        Failure::NoEquals { .. } => {
            "not NAME=value: write each setting as NAME=value, one per line".into()
        }
        Failure::Unclosed { name, quote } => format!(
            "{name}: the value's opening {} is never closed; close it on the same line, \
             e.g. {name}={quote}...{quote}",
            quote_name(quote)
        ),
        Failure::AfterQuote {
            name,
            quote,
            ran_to,
        } => {
            let ran = ran_to
                .map(|to| {
                    format!(" (the quoted value opened on line {line} only ends on line {to})")
                })
                .unwrap_or_default();
            let inner = if quote == '"' { "\\\"" } else { "\\'" };
            format!(
                "{name}: text follows the closing {}{ran}; put the whole value between the quotes, \
                 e.g. {name}={quote}...{quote}, and write a {quote} inside it as {inner}",
                quote_name(quote)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> HashMap<String, String> {
        let mut vars = HashMap::new();
        load_into(text, &mut vars).unwrap();
        vars
    }

    fn errors(text: &str) -> Vec<LineError> {
        load_into(text, &mut HashMap::new()).unwrap_err()
    }

    /// The values python-dotenv 1.2 gives for the same lines (`dotenv_values`).
    #[test]
    fn values_as_python_dotenv_reads_them() {
        let text = "\u{feff}# a comment\n\
            \n\
            A=a b c\n\
            B=ab$cd\n\
            C=ab\\cd\n\
            D='x y'\n\
            E=\"x y\"\n\
            export F=1\n\
            G=v # comment\n\
            H=v#nocomment\n\
            I=\n\
            J\n\
            K=\"a\\nb\"\n\
            L='a\\nb'\n\
            M=\"multi\n\
            line\"\n\
            N=${A}\n\
            O='${A}'\n\
            P=\"${UNSET:-dflt}\"\n\
            Q=C:\\certs\\x.pem\n\
            V = spaced \n\
            X= lead\n\
            \x20 Y=indented\n\
            Z=$A\n\
            ZZ='a\\'b'\n\
            E2=\"a\" # after a quote\n\
            DUP=first\n\
            DUP=last\n\
            CRLF=1\r\n\
            LAST=x ";
        let v = read(text);
        let expect = [
            ("A", "a b c"),
            ("B", "ab$cd"),
            ("C", "ab\\cd"),
            ("D", "x y"),
            ("E", "x y"),
            ("F", "1"),
            ("G", "v"),
            ("H", "v#nocomment"),
            ("I", ""),
            ("K", "a\nb"),
            ("L", "a\\nb"),
            ("M", "multi\nline"),
            ("N", "a b c"),
            ("O", "a b c"),
            ("P", "dflt"),
            ("Q", "C:\\certs\\x.pem"),
            ("V", "spaced"),
            ("X", "lead"),
            ("Y", "indented"),
            ("Z", "$A"),
            ("ZZ", "a'b"),
            ("E2", "a"),
            ("DUP", "last"),
            ("CRLF", "1"),
            ("LAST", "x"),
        ];
        for (k, want) in expect {
            assert_eq!(v.get(k).map(String::as_str), Some(want), "{k}");
        }
        assert!(!v.contains_key("J"), "a bare name sets nothing");
        assert_eq!(v.len(), expect.len(), "{:?}", v.keys());
    }

    #[test]
    fn the_environment_wins_and_feeds_expansion() {
        let mut vars = HashMap::from([("A".to_string(), "env".to_string())]);
        load_into("A=file\nB=${A}-x\n", &mut vars).unwrap();
        assert_eq!(vars["A"], "env");
        assert_eq!(vars["B"], "env-x");
    }

    #[test]
    fn errors_give_the_line_and_name_but_never_the_value() {
        let text = "GOOD=1\n\
            M=\"two\n\
            lines\"\n\
            SIP_PASSWORD=\"hunter2 s3cret\n\
            AZURE_CLIENT_SECRET='Xy9~Q8 s3cret' trailing\n\
            hunter2isnotaname s3cret\n\
            =s3cret\n";
        let errs = errors(text);
        let all = format!("{errs:?}");
        assert!(!all.contains("s3cret") && !all.contains("hunter2"), "{all}");
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        // No double quote follows: the opening one is never closed.
        assert_eq!(lines[0], 4, "{errs:?}");
        assert!(errs[0].message.starts_with("SIP_PASSWORD: "), "{errs:?}");
        assert!(errs[0].message.contains("SIP_PASSWORD=\"...\""), "{errs:?}");
        let secret = errs.iter().find(|e| e.line == 5).expect("line 5");
        assert!(
            secret
                .message
                .starts_with("AZURE_CLIENT_SECRET: text follows the closing single quote"),
            "{errs:?}"
        );
        assert!(errs
            .iter()
            .any(|e| e.line == 6 && e.message.starts_with("not NAME=value")));
        assert!(errs
            .iter()
            .any(|e| e.line == 7 && e.message.starts_with("no variable name")));
    }

    #[test]
    fn an_unclosed_quote_is_reported_on_its_line() {
        let errs = errors("A=1\n\nSIP_PASSWORD='abc def\nB=2\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, 3);
        assert!(
            errs[0]
                .message
                .contains("opening single quote (') is never closed"),
            "{errs:?}"
        );
        let errs = errors("A=1\nP=\"abc\nB=2\nC=\"x\" y\n");
        assert_eq!(errs[0].line, 2, "{errs:?}");
        assert!(
            errs[0]
                .message
                .contains("opened on line 2 only ends on line 4"),
            "{errs:?}"
        );
    }

    #[test]
    fn a_missing_equals_names_only_a_variable_like_name() {
        let errs = errors("SIP_PASSWORD hunter2\n");
        assert_eq!(errs[0].line, 1);
        assert!(
            errs[0].message.starts_with("SIP_PASSWORD has no '='"),
            "{errs:?}"
        );
        assert!(!errs[0].message.contains("hunter2"));
    }

    /// Every short text of the characters that matter reads without a panic.
    #[test]
    fn no_text_panics() {
        let alphabet = [
            'A', '=', '"', '\'', '\\', '#', ' ', '\n', '\r', '$', '{', '}', ':', '-', 'é',
        ];
        let n = alphabet.len();
        for len in 1..=4u32 {
            for mut i in 0..n.pow(len) {
                let mut text = String::from("K=");
                for _ in 0..len {
                    text.push(alphabet[i % n]);
                    i /= n;
                }
                let _ = load_into(&text, &mut HashMap::new());
                let _ = load_into(&text[2..], &mut HashMap::new());
            }
        }
    }

    #[test]
    fn expansion_forms() {
        let a = String::from("1");
        let look = |n: &str| (n == "A").then_some(&a);
        assert_eq!(expand("${A}${B}${B:-d}", look), "1d");
        assert_eq!(expand("$A ${A ${A:x} $", look), "$A ${A ${A:x} $");
        assert_eq!(expand("x${A:-d}y", look), "x1y");
    }
}
