//! Configuration problems, collected so that all of them are reported at once.

use std::fmt;
use std::path::Path;

/// One thing wrong with the configuration, with where it is when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `file:line` or `file` or a variable name; empty when not tied to a place.
    pub place: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem in a file, on a line when known.
    pub fn in_file(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        let place = match line {
            Some(l) => format!("{}:{l}", path.display()),
            None => path.display().to_string(),
        };
        Self {
            place,
            message: message.into(),
        }
    }

    /// A problem with an environment variable.
    pub fn in_var(name: &str, message: impl Into<String>) -> Self {
        Self {
            place: name.to_string(),
            message: message.into(),
        }
    }

    /// A problem with no particular place (the message says it).
    pub fn plain(message: impl Into<String>) -> Self {
        Self {
            place: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.place, self.message)
        }
    }
}

/// Every problem found, one per line when displayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Adds one problem.
    pub fn push(&mut self, p: Problem) {
        self.0.push(p);
    }

    /// Adds several problems.
    pub fn extend(&mut self, ps: impl IntoIterator<Item = Problem>) {
        self.0.extend(ps);
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing is wrong, else these problems.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<Problem> for Problems {
    fn from(p: Problem) -> Self {
        Self(vec![p])
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}
