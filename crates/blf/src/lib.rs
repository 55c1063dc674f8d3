//! Turn BLF NOTIFY bodies into one line state you can trust.
//!
//! Parses `application/dialog-info+xml` (RFC 4235) and `application/pidf+xml` (RFC 3863), aggregates every dialog into one line state, tracks versions per subscription, and maps line states to presence actions.
