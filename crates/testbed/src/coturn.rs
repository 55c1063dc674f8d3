//! coturn as a STUN-only server.

/// A STUN-only coturn (placeholder).
#[derive(Debug)]
pub struct Coturn {}
