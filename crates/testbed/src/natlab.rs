//! Network namespaces with a NAT between the service and the peers.

/// NAT lab (placeholder).
#[derive(Debug)]
pub struct NatLab {}
