//! SIPp phones.

/// placeholder
#[derive(Debug)]
pub struct SippCall {}
/// placeholder
#[derive(Debug)]
pub struct SippCaller {}
/// placeholder
#[derive(Debug)]
pub struct SippCallee {}
