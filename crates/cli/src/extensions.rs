//! The extension list: which PBX extension belongs to which Microsoft 365 user.
//!
//! `config/extensions.json` (`[{"extension": "1001", "email": "user1@contoso.com"}]`)
//! or, when that file is missing, the same path with `.csv` (`extension,email`,
//! header optional, column names case-insensitive). Optional fields: `object_id`
//! (skips the UPN lookup), `event` (`dialog`, the default, `presence`, or
//! `dialog+presence` alias `both`), `mapping` (a mapping file for this
//! extension only), and for the dashboard `name` (shown on the tile) and
//! `group` (a department: tiles are grouped by it).
//!
//! Every problem in the file is collected and reported at once, each with the
//! file and line, so that an operator fixes the whole file in one go.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::problems::{Problem, Problems};

/// The event package subscribed to for an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventPackage {
    /// `Event: dialog`, `application/dialog-info+xml` (RFC 4235): BLF.
    #[default]
    Dialog,
    /// `Event: presence`, `application/pidf+xml` (RFC 3863).
    Presence,
    /// Both subscriptions: the dialog event for calls, presence for a phone
    /// that is offline (over the dialog event alone it looks idle); combined
    /// by [`blf::LineState::from_dialog_and_presence`].
    #[serde(rename = "dialog+presence")]
    DialogAndPresence,
}

impl EventPackage {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "dialog" | "blf" => Some(Self::Dialog),
            "presence" | "pidf" => Some(Self::Presence),
            "dialog+presence" | "presence+dialog" | "both" => Some(Self::DialogAndPresence),
            _ => None,
        }
    }

    /// The SIP event packages subscribed to.
    pub fn packages(self) -> &'static [sip_ua::EventPackage] {
        match self {
            Self::Dialog => &[sip_ua::EventPackage::Dialog],
            Self::Presence => &[sip_ua::EventPackage::Presence],
            Self::DialogAndPresence => {
                &[sip_ua::EventPackage::Dialog, sip_ua::EventPackage::Presence]
            }
        }
    }
}

impl fmt::Display for EventPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dialog => "dialog",
            Self::Presence => "presence",
            Self::DialogAndPresence => "dialog+presence",
        })
    }
}

/// One line of the extension list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Extension {
    /// The PBX extension (SIP user part), e.g. `1001`.
    pub extension: String,
    /// The user's UPN (usually the e-mail address); empty when only an object id is given.
    pub email: String,
    /// The user's Entra object id, when known; saves the UPN lookup.
    pub object_id: Option<String>,
    /// The event package to subscribe to.
    pub event: EventPackage,
    /// A mapping file for this extension only.
    pub mapping: Option<PathBuf>,
    /// The name shown for it (the dashboard).
    pub name: Option<String>,
    /// The group (department) it is shown in (the dashboard).
    pub group: Option<String>,
    /// Where this entry was read (file:line), for messages.
    #[serde(skip)]
    pub origin: String,
}

impl Extension {
    /// The user as Graph should look it up: the object id when known, else the UPN.
    pub fn user(&self) -> &str {
        self.object_id.as_deref().unwrap_or(&self.email)
    }
}

/// Where the extension list comes from: the configured path, or the `.csv`
/// beside it when the configured `.json` does not exist (the original tool's
/// fallback).
pub fn resolve_path(configured: &Path) -> PathBuf {
    if configured.exists() {
        return configured.to_path_buf();
    }
    let csv = configured.with_extension("csv");
    if csv.exists() {
        csv
    } else {
        configured.to_path_buf()
    }
}

/// Loads and validates the extension list at `path` (JSON or CSV by extension,
/// falling back to `.csv` as [`resolve_path`] does).
pub fn load(path: &Path) -> Result<Vec<Extension>, Problems> {
    let path = resolve_path(path);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{e}; create it (see config/extensions.example.json) or set EXTENSIONS_JSON \
                 (a .csv beside it is used when the .json is missing)"
            )
        } else {
            e.to_string()
        };
        Problems::from(Problem::in_file(&path, None, hint))
    })?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        parse_csv(&path, &text)
    } else {
        parse_json(&path, &text)
    }
}

/// An entry as written in the JSON file (all fields optional, so that a
/// missing one is reported with its line instead of failing the whole file).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJsonEntry {
    extension: Option<serde_json::Value>,
    #[serde(alias = "upn", alias = "user")]
    email: Option<String>,
    #[serde(alias = "objectId", alias = "object-id")]
    object_id: Option<String>,
    #[serde(alias = "package")]
    event: Option<String>,
    mapping: Option<PathBuf>,
    #[serde(alias = "display_name", alias = "displayName")]
    name: Option<String>,
    #[serde(alias = "department")]
    group: Option<String>,
}

/// Parses the JSON form: an array of objects.
pub fn parse_json(path: &Path, text: &str) -> Result<Vec<Extension>, Problems> {
    let entries: Vec<&serde_json::value::RawValue> = serde_json::from_str(text)
        .map_err(|e| {
            Problems::from(Problem::in_file(
                path,
                Some(e.line()),
                format!(
                    "{e}; expected an array like [{{\"extension\": \"1001\", \"email\": \"user1@contoso.com\"}}]"
                ),
            ))
        })?;
    let mut problems = Problems::default();
    let mut out = Vec::with_capacity(entries.len());
    for raw in &entries {
        let line = line_of(text, raw.get());
        match serde_json::from_str::<RawJsonEntry>(raw.get()) {
            Err(e) => problems.push(Problem::in_file(path, Some(line), e.to_string())),
            Ok(entry) => {
                let extension = match entry.extension {
                    Some(serde_json::Value::String(s)) => Some(s),
                    Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                    Some(other) => {
                        problems.push(Problem::in_file(
                            path,
                            Some(line),
                            format!("\"extension\" must be a string like \"1001\", not {other}"),
                        ));
                        continue;
                    }
                    None => None,
                };
                let fields = Fields {
                    extension,
                    email: entry.email,
                    object_id: entry.object_id,
                    event: entry.event,
                    mapping: entry.mapping,
                    name: entry.name,
                    group: entry.group,
                };
                match fields.validate(path, line) {
                    Ok(ext) => out.push(ext),
                    Err(p) => problems.extend(p),
                }
            }
        }
    }
    check_duplicates(&out, &mut problems);
    refuse_empty(
        path,
        &out,
        &mut problems,
        "[{\"extension\": \"1001\", \"email\": \"user1@contoso.com\"}]",
    );
    problems.into_result(out)
}

/// An empty list is a mistake, not a service with nothing to do: it would
/// run, watch nothing and say nothing.
fn refuse_empty(path: &Path, out: &[Extension], problems: &mut Problems, example: &str) {
    if out.is_empty() && problems.is_empty() {
        problems.push(Problem::in_file(
            path,
            None,
            format!(
                "lists no extension; add one entry per extension and its user, e.g. {example} \
                 (or set EXTENSIONS_JSON to the list in use)"
            ),
        ));
    }
}

/// The 1-based line on which `part` (a slice of `text`) starts.
fn line_of(text: &str, part: &str) -> usize {
    let offset = (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    let offset = offset.min(text.len());
    text.as_bytes()
        .get(..offset)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}

/// The 1-based line of the first non-blank character at or after `byte`
/// (the CSV reader reports a record's position before the blank lines it skips).
fn line_at_byte(text: &str, byte: usize) -> usize {
    let bytes = text.as_bytes();
    let mut at = byte.min(bytes.len());
    while bytes.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    bytes
        .get(..at)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}

/// Parses the CSV form: `extension,email[,object_id][,event][,mapping]`
/// (and `name`, `group` when a header names them), with
/// an optional header naming the columns (in any order, any case).
pub fn parse_csv(path: &Path, text: &str) -> Result<Vec<Extension>, Problems> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut problems = Problems::default();
    let mut out = Vec::new();
    let mut columns: Vec<Column> = vec![Column::Extension, Column::Email, Column::ObjectId];
    let mut first = true;
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize);
                problems.push(Problem::in_file(path, line, e.to_string()));
                continue;
            }
        };
        let line = record
            .position()
            .map_or(0, |p| line_at_byte(text, p.byte() as usize));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if first {
            first = false;
            let is_header = record
                .iter()
                .any(|f| matches!(Column::parse(f), Some(Column::Extension | Column::Email)));
            if is_header {
                columns.clear();
                for name in record.iter() {
                    match Column::parse(name) {
                        Some(c) => columns.push(c),
                        None => {
                            problems.push(Problem::in_file(
                                path,
                                Some(line),
                                format!(
                                    "unknown column {name:?}; known columns: extension, email, object_id, event, mapping, name, group"
                                ),
                            ));
                            columns.push(Column::Ignored);
                        }
                    }
                }
                continue;
            }
        }
        let mut fields = Fields::default();
        for (i, value) in record.iter().enumerate() {
            let value = (!value.is_empty()).then(|| value.to_string());
            match columns.get(i) {
                Some(Column::Extension) => fields.extension = value,
                Some(Column::Email) => fields.email = value,
                Some(Column::ObjectId) => fields.object_id = value,
                Some(Column::Event) => fields.event = value,
                Some(Column::Mapping) => fields.mapping = value.map(PathBuf::from),
                Some(Column::Name) => fields.name = value,
                Some(Column::Group) => fields.group = value,
                Some(Column::Ignored) => {}
                None => {
                    if value.is_some() {
                        problems.push(Problem::in_file(
                            path,
                            Some(line),
                            format!(
                                "{} fields, but only {} columns are known; name extra columns in a header line",
                                record.len(),
                                columns.len()
                            ),
                        ));
                    }
                    break;
                }
            }
        }
        match fields.validate(path, line) {
            Ok(ext) => out.push(ext),
            Err(p) => problems.extend(p),
        }
    }
    check_duplicates(&out, &mut problems);
    refuse_empty(path, &out, &mut problems, "a line 1001,user1@contoso.com");
    problems.into_result(out)
}

#[derive(Clone, Copy)]
enum Column {
    Extension,
    Email,
    ObjectId,
    Event,
    Mapping,
    Name,
    Group,
    Ignored,
}

impl Column {
    fn parse(name: &str) -> Option<Self> {
        match name
            .trim()
            .to_ascii_lowercase()
            .replace(['-', ' '], "_")
            .as_str()
        {
            "extension" | "ext" => Some(Self::Extension),
            "email" | "upn" | "user" | "mail" => Some(Self::Email),
            "object_id" | "objectid" | "id" => Some(Self::ObjectId),
            "event" | "package" => Some(Self::Event),
            "mapping" => Some(Self::Mapping),
            "name" | "display_name" => Some(Self::Name),
            "group" | "department" => Some(Self::Group),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Fields {
    extension: Option<String>,
    email: Option<String>,
    object_id: Option<String>,
    event: Option<String>,
    mapping: Option<PathBuf>,
    name: Option<String>,
    group: Option<String>,
}

impl Fields {
    fn validate(self, path: &Path, line: usize) -> Result<Extension, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut bad = |msg: String| problems.push(Problem::in_file(path, Some(line), msg));
        let extension = self
            .extension
            .map(|e| e.trim().to_string())
            .unwrap_or_default();
        if extension.is_empty() {
            bad("missing \"extension\"".into());
        } else if !extension.chars().all(is_sip_user_char) {
            bad(format!(
                "extension {extension:?} is not a valid SIP user part (letters, digits and -_.!~*'()&=+$,;?/ only)"
            ));
        }
        let email = self.email.map(|e| e.trim().to_string()).unwrap_or_default();
        let object_id = self
            .object_id
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty());
        if email.is_empty() && object_id.is_none() {
            bad(format!(
                "extension {extension:?} has no \"email\" (the user's UPN) and no \"object_id\""
            ));
        } else if !email.is_empty()
            && (!email.contains('@') || email.chars().any(char::is_whitespace))
        {
            bad(format!(
                "{email:?} is not a user principal name (expected user@domain)"
            ));
        }
        if let Some(id) = &object_id {
            if !is_guid(id) {
                bad(format!(
                    "object_id {id:?} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
                ));
            }
        }
        let event = match self.event.as_deref().map(EventPackage::parse) {
            None => EventPackage::Dialog,
            Some(Some(e)) => e,
            Some(None) => {
                bad(format!(
                    "event {:?} is not known; use \"dialog\" (BLF), \"presence\" or \"dialog+presence\"",
                    self.event.unwrap_or_default()
                ));
                EventPackage::Dialog
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Extension {
            extension,
            email,
            object_id,
            event,
            mapping: self.mapping,
            name: trimmed(self.name),
            group: trimmed(self.group),
            origin: format!("{}:{line}", path.display()),
        })
    }
}

/// A free-text field: trimmed, and absent when empty.
fn trimmed(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn is_sip_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(c)
}

/// `8-4-4-4-12` hex digits.
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn check_duplicates(entries: &[Extension], problems: &mut Problems) {
    let mut seen: HashMap<&str, &Extension> = HashMap::new();
    for e in entries {
        if let Some(first) = seen.get(e.extension.as_str()) {
            problems.push(Problem::plain(format!(
                "{}: extension {} is listed twice (first at {})",
                e.origin, e.extension, first.origin
            )));
        } else {
            seen.insert(&e.extension, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("config/extensions.json")
    }

    #[test]
    fn json_original_format() {
        let text = r#"[
  { "extension": "1001", "email": "user1@contoso.com" },
  { "extension": 1002, "email": "user2@contoso.com", "event": "presence",
    "object_id": "0b8f8e3a-5c4d-4e6f-9a1b-2c3d4e5f6a7b" }
]"#;
        let list = parse_json(&p(), text).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].extension, "1001");
        assert_eq!(list[0].user(), "user1@contoso.com");
        assert_eq!(list[0].event, EventPackage::Dialog);
        assert_eq!(list[0].origin, "config/extensions.json:2");
        assert_eq!(list[1].extension, "1002");
        assert_eq!(list[1].event, EventPackage::Presence);
        assert_eq!(list[1].user(), "0b8f8e3a-5c4d-4e6f-9a1b-2c3d4e5f6a7b");
        assert_eq!(list[1].origin, "config/extensions.json:3");
    }

    #[test]
    fn json_reports_every_problem_with_its_line() {
        let text = "[\n {\"extension\": \"1001\", \"email\": \"a@b.c\"},\n {\"extension\": \"1002\"},\n {\"extension\": \"1 3\", \"email\": \"nope\"},\n {\"extension\": \"1001\", \"email\": \"x@y.z\", \"colour\": 1},\n {\"extension\": \"1001\", \"email\": \"x@y.z\", \"event\": \"bogus\"}\n]";
        let err = parse_json(&p(), text).unwrap_err().to_string();
        assert!(
            err.contains("extensions.json:3: extension \"1002\" has no \"email\""),
            "{err}"
        );
        assert!(
            err.contains("extensions.json:4: extension \"1 3\" is not a valid SIP user part"),
            "{err}"
        );
        assert!(
            err.contains("extensions.json:4: \"nope\" is not a user principal name"),
            "{err}"
        );
        assert!(
            err.contains("extensions.json:5: unknown field `colour`"),
            "{err}"
        );
        assert!(
            err.contains("extensions.json:6: event \"bogus\" is not known"),
            "{err}"
        );
    }

    #[test]
    fn json_syntax_error_names_the_line() {
        let err = parse_json(&p(), "[\n {\"extension\": \"1001\",\n]")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config/extensions.json:3:"), "{err}");
    }

    #[test]
    fn duplicates_are_reported_with_both_places() {
        let text = "[{\"extension\":\"7\",\"email\":\"a@b.c\"},\n{\"extension\":\"7\",\"email\":\"d@e.f\"}]";
        let err = parse_json(&p(), text).unwrap_err().to_string();
        assert!(
            err.contains("extensions.json:2: extension 7 is listed twice (first at config/extensions.json:1)"),
            "{err}"
        );
    }

    #[test]
    fn csv_without_header() {
        let text = "1001,user1@contoso.com\n\n1002, user2@contoso.com \n";
        let list = parse_csv(Path::new("x.csv"), text).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].email, "user2@contoso.com");
        assert_eq!(list[1].origin, "x.csv:3");
    }

    #[test]
    fn csv_with_header_any_case_and_order() {
        let text = "Email,EXTENSION,Event\nuser1@contoso.com,1001,presence\n";
        let list = parse_csv(Path::new("x.csv"), text).unwrap();
        assert_eq!(list[0].extension, "1001");
        assert_eq!(list[0].email, "user1@contoso.com");
        assert_eq!(list[0].event, EventPackage::Presence);
    }

    #[test]
    fn both_packages_by_either_name() {
        let text = "extension,email,event\n1001,a@contoso.com,dialog+presence\n\
                    1002,b@contoso.com,Both\n1003,c@contoso.com,dialog\n";
        let list = parse_csv(Path::new("x.csv"), text).unwrap();
        assert_eq!(list[0].event, EventPackage::DialogAndPresence);
        assert_eq!(list[1].event, EventPackage::DialogAndPresence);
        assert_eq!(list[0].event.to_string(), "dialog+presence");
        assert_eq!(
            list[0].event.packages(),
            [sip_ua::EventPackage::Dialog, sip_ua::EventPackage::Presence]
        );
        assert_eq!(list[2].event.packages(), [sip_ua::EventPackage::Dialog]);
        assert_eq!(
            serde_json::to_value(list[1].event).unwrap(),
            "dialog+presence"
        );
    }

    #[test]
    fn csv_header_starting_with_extension() {
        let text = "extension,email\n1001,user1@contoso.com\n";
        let list = parse_csv(Path::new("x.csv"), text).unwrap();
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn csv_problems_name_lines() {
        let text =
            "extension,email\n1001,user1@contoso.com\n,user2@contoso.com\n1003,not-an-email\n";
        let err = parse_csv(Path::new("x.csv"), text).unwrap_err().to_string();
        assert!(err.contains("x.csv:3: missing \"extension\""), "{err}");
        assert!(
            err.contains("x.csv:4: \"not-an-email\" is not a user principal name"),
            "{err}"
        );
    }

    #[test]
    fn csv_fallback_when_json_missing() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("extensions.json");
        std::fs::write(dir.path().join("extensions.csv"), "1001,a@b.c\n").unwrap();
        let list = load(&json).unwrap();
        assert_eq!(list[0].extension, "1001");
        std::fs::write(&json, "[{\"extension\":\"2002\",\"email\":\"x@y.z\"}]").unwrap();
        assert_eq!(load(&json).unwrap()[0].extension, "2002");
    }

    #[test]
    fn missing_file_says_what_to_do() {
        let err = load(Path::new("/nonexistent/extensions.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("EXTENSIONS_JSON"), "{err}");
    }

    #[test]
    fn an_empty_list_is_refused_in_either_form() {
        for text in ["[]", " [ ]\n"] {
            let err = parse_json(&p(), text).unwrap_err().to_string();
            assert!(
                err.starts_with("config/extensions.json: lists no extension; add one entry"),
                "{err}"
            );
        }
        for text in [
            "extension,email\n",
            "",
            "# only a comment\n\n",
            "Email,Extension\n\n",
        ] {
            let err = parse_csv(Path::new("x.csv"), text).unwrap_err().to_string();
            assert!(
                err.starts_with("x.csv: lists no extension"),
                "{text:?}: {err}"
            );
            assert!(err.contains("1001,user1@contoso.com"), "{err}");
        }
        // A list whose every entry is wrong says what is wrong with them instead.
        let err = parse_csv(Path::new("x.csv"), "extension,email\n1001,\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("lists no extension"), "{err}");
    }

    #[test]
    fn name_and_group_are_read_from_either_form() {
        let json = r#"[{"extension": "1001", "email": "a@b.c", "name": " Alice Smith ", "group": "Sales"},
                       {"extension": "1002", "email": "d@b.c", "group": ""}]"#;
        let list = parse_json(&p(), json).unwrap();
        assert_eq!(list[0].name.as_deref(), Some("Alice Smith"));
        assert_eq!(list[0].group.as_deref(), Some("Sales"));
        assert_eq!(
            (list[1].name.as_deref(), list[1].group.as_deref()),
            (None, None)
        );
        let csv = "extension,email,name,department\n1001,a@b.c,Alice Smith,Sales\n";
        let list = parse_csv(Path::new("x.csv"), csv).unwrap();
        assert_eq!(list[0].name.as_deref(), Some("Alice Smith"));
        assert_eq!(list[0].group.as_deref(), Some("Sales"));
    }

    #[test]
    fn guid_check() {
        assert!(is_guid("0b8f8e3a-5c4d-4e6f-9a1b-2c3d4e5f6a7b"));
        assert!(!is_guid("0b8f8e3a-5c4d-4e6f-9a1b"));
        assert!(!is_guid("zb8f8e3a-5c4d-4e6f-9a1b-2c3d4e5f6a7b"));
    }
}
