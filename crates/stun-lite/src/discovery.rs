//! `impl sip_ua::AddressDiscovery for BindingClient` (feature `sip-ua`).

use std::net::SocketAddr;
use std::time::Instant;

use sip_ua::{AddressDiscovery, DiscoveryTransmit};

use crate::client::{BindingClient, Handled};

impl AddressDiscovery for BindingClient {
    fn poll_transmit(&mut self, now: Instant) -> Option<DiscoveryTransmit> {
        BindingClient::poll_transmit(self, now).map(|t| DiscoveryTransmit {
            destination: t.destination,
            payload: t.payload,
        })
    }

    fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) -> bool {
        !matches!(
            BindingClient::handle_datagram(self, from, data, now),
            Handled::NotStun
        )
    }

    fn poll_timeout(&self) -> Option<Instant> {
        BindingClient::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        BindingClient::handle_timeout(self, now);
    }

    fn public_addr(&self) -> Option<SocketAddr> {
        BindingClient::public_addr(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::client::ClientConfig;

    #[test]
    fn trait_object_drives_the_client() {
        let server: SocketAddr = "192.0.2.9:3478".parse().unwrap();
        let t0 = Instant::now();
        let mut d: Box<dyn AddressDiscovery> = Box::new(BindingClient::with_seed(
            vec![server],
            ClientConfig::default(),
            t0,
            1,
        ));
        let tx = d.poll_transmit(t0).unwrap();
        assert_eq!(tx.destination, server);
        assert!(!d.handle_datagram(server, b"SIP/2.0 200 OK\r\n\r\n", t0));
        let response = crate::client::tests::success_response(&tx.payload, "203.0.113.1:5060");
        assert!(d.handle_datagram(server, &response, t0));
        assert_eq!(d.public_addr(), Some("203.0.113.1:5060".parse().unwrap()));
        assert_eq!(d.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    }
}
