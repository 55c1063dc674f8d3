//! The versioned schema, per backend. A migration is never edited once
//! released: a change is a new version at the end of both lists.

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version (1, 2, ...), recorded in `line_store_migrations`.
    pub version: i64,
    /// What it does.
    pub description: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// SQLite's migrations.
pub const SQLITE: &[Migration] = &[Migration {
    version: 1,
    description: "line_states and line_events",
    sql: "
CREATE TABLE line_states (
    extension    TEXT PRIMARY KEY NOT NULL,
    email        TEXT,
    name         TEXT,
    line_state   TEXT NOT NULL CHECK (line_state IN ('idle','ringing','busy','hold','offline','unknown')),
    dnd          INTEGER CHECK (dnd IN (0, 1)),
    counterparty TEXT,
    direction    TEXT CHECK (direction IN ('inbound','outbound')),
    source       TEXT NOT NULL,
    since        TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE TABLE line_events (
    id           INTEGER PRIMARY KEY,
    extension    TEXT NOT NULL,
    line_state   TEXT NOT NULL CHECK (line_state IN ('idle','ringing','busy','hold','offline','unknown')),
    dnd          INTEGER CHECK (dnd IN (0, 1)),
    counterparty TEXT,
    direction    TEXT CHECK (direction IN ('inbound','outbound')),
    source       TEXT NOT NULL,
    at           TEXT NOT NULL
);
CREATE INDEX line_events_at ON line_events (at);
CREATE INDEX line_events_extension_at ON line_events (extension, at);
",
}];

/// PostgreSQL's migrations.
pub const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    description: "line_states and line_events",
    sql: "
CREATE TABLE line_states (
    extension    text PRIMARY KEY,
    email        text,
    name         text,
    line_state   text NOT NULL CHECK (line_state IN ('idle','ringing','busy','hold','offline','unknown')),
    dnd          boolean,
    counterparty text,
    direction    text CHECK (direction IN ('inbound','outbound')),
    source       text NOT NULL,
    since        timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE TABLE line_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    extension    text NOT NULL,
    line_state   text NOT NULL CHECK (line_state IN ('idle','ringing','busy','hold','offline','unknown')),
    dnd          boolean,
    counterparty text,
    direction    text CHECK (direction IN ('inbound','outbound')),
    source       text NOT NULL,
    at           timestamptz NOT NULL
);
CREATE INDEX line_events_at ON line_events (at);
CREATE INDEX line_events_extension_at ON line_events (extension, at);
",
}];

/// The newest version of `list`.
pub fn latest(list: &[Migration]) -> i64 {
    list.iter().map(|m| m.version).max().unwrap_or(0)
}
