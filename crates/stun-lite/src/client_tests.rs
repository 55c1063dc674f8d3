use std::time::Duration;

use bytecodec::EncodeExt;
use stun_codec::rfc5389::attributes::{ErrorCode, Fingerprint, XorMappedAddress};
use stun_codec::rfc5389::{methods::BINDING, Attribute};
use stun_codec::{Message, MessageClass, MessageEncoder};

use super::timers::MAX_WAIT;
use super::*;

fn tid_of(request: &[u8]) -> stun_codec::TransactionId {
    let mut id = [0u8; 12];
    id.copy_from_slice(&request[8..20]);
    stun_codec::TransactionId::new(id)
}

fn encode(m: Message<Attribute>) -> Vec<u8> {
    MessageEncoder::new().encode_into_bytes(m).unwrap()
}

/// A Binding success response to `request` reporting `mapped`.
pub(crate) fn success_response(request: &[u8], mapped: &str) -> Vec<u8> {
    let mut m = Message::<Attribute>::new(MessageClass::SuccessResponse, BINDING, tid_of(request));
    m.add_attribute(XorMappedAddress::new(mapped.parse().unwrap()));
    encode(m)
}

fn success_with_fingerprint(request: &[u8], mapped: &str) -> Vec<u8> {
    let mut m = Message::<Attribute>::new(MessageClass::SuccessResponse, BINDING, tid_of(request));
    m.add_attribute(XorMappedAddress::new(mapped.parse().unwrap()));
    let fp = Fingerprint::new(&m).unwrap();
    m.add_attribute(fp);
    encode(m)
}

fn error_response(request: &[u8], code: u16, reason: &str) -> Vec<u8> {
    let mut m = Message::<Attribute>::new(MessageClass::ErrorResponse, BINDING, tid_of(request));
    m.add_attribute(ErrorCode::new(code, reason.to_owned()).unwrap());
    encode(m)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const S1: &str = "192.0.2.1:3478";
const S2: &str = "192.0.2.2:3478";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Runs the timers up to `until` (inclusive), returning (time, destination)
/// of every request sent, like a driver that sleeps until `poll_timeout`.
fn run_until(
    client: &mut BindingClient,
    from: Instant,
    until: Instant,
) -> Vec<(Duration, SocketAddr)> {
    let mut sent = Vec::new();
    let mut now = from;
    loop {
        while let Some(t) = client.poll_transmit(now) {
            sent.push((now - from, t.destination));
        }
        match client.poll_timeout() {
            Some(next) if next <= until => {
                assert!(next >= now, "timer in the past");
                now = next;
                client.handle_timeout(now);
            }
            _ => return sent,
        }
    }
}

#[test]
fn retransmission_schedule_follows_rfc8489() {
    let t0 = Instant::now();
    let mut c = BindingClient::with_seed(vec![addr(S1)], ClientConfig::one_shot(), t0, 7);
    let first = c.poll_transmit(t0).unwrap();
    assert_eq!(c.poll_timeout(), Some(t0 + ms(500)));
    let mut sent = vec![Duration::ZERO];
    let mut now = t0;
    while let Some(next) = c.poll_timeout() {
        now = next;
        c.handle_timeout(now);
        if let Some(t) = c.poll_transmit(now) {
            assert_eq!(
                t.payload, first.payload,
                "a retransmission is the same request"
            );
            sent.push(now - t0);
        }
    }
    assert_eq!(
        sent,
        [0, 500, 1500, 3500, 7500, 15500, 31500].map(ms).to_vec()
    );
    // Given up 16 × RTO after the last request.
    assert_eq!(now - t0, ms(39_500));
    assert_eq!(
        c.poll_event(),
        Some(Event::Failed {
            failures: vec![Failure::Timeout { server: addr(S1) }]
        })
    );
    assert_eq!(c.poll_event(), None);
    assert!(!c.is_querying());
}

#[test]
fn falls_back_to_the_next_server_after_the_schedule() {
    let t0 = Instant::now();
    let mut c = BindingClient::with_seed(vec![addr(S1), addr(S2)], ClientConfig::default(), t0, 1);
    let sent = run_until(&mut c, t0, t0 + ms(39_500));
    assert_eq!(sent.len(), 8);
    assert!(sent[..7].iter().all(|(_, to)| *to == addr(S1)));
    assert_eq!(sent[7], (ms(39_500), addr(S2)));
    assert_eq!(c.poll_event(), None, "no event while servers remain");
    // The second server's schedule starts afresh.
    assert_eq!(c.poll_timeout(), Some(t0 + ms(40_000)));
    let request = c.poll_transmit(t0 + ms(40_000)).unwrap();
    assert_eq!(request.destination, addr(S2));
    let answer = success_response(&request.payload, "203.0.113.1:5060");
    assert_eq!(
        c.handle_datagram(addr(S2), &answer, t0 + ms(40_010)),
        Handled::Mapped(addr("203.0.113.1:5060"))
    );
    assert_eq!(
        c.poll_event(),
        Some(Event::Discovered(Discovery {
            public: addr("203.0.113.1:5060"),
            server: addr(S2)
        }))
    );
    assert_eq!(c.discovery().map(|d| d.server), Some(addr(S2)));
}

#[test]
fn lost_responses_are_recovered_by_retransmission() {
    let t0 = Instant::now();
    let mut c = BindingClient::with_seed(vec![addr(S1)], ClientConfig::one_shot(), t0, 2);
    // Two requests lost, the third answered.
    let sent = run_until(&mut c, t0, t0 + ms(1_500));
    assert_eq!(sent.len(), 3);
    let request = binding_request_in_flight(&c);
    let answer = success_response(&request, "198.51.100.20:4000");
    assert_eq!(
        c.handle_datagram(addr(S1), &answer, t0 + ms(1_600)),
        Handled::Mapped(addr("198.51.100.20:4000"))
    );
    assert!(c.poll_transmit(t0 + ms(10_000)).is_none());
    assert_eq!(c.poll_timeout(), None, "one-shot: nothing more to do");
    // A duplicate answer (retransmitted request answered twice) is ignored.
    assert_eq!(
        c.handle_datagram(addr(S1), &answer, t0 + ms(1_700)),
        Handled::Ignored(Ignored::UnknownTransaction)
    );
}

fn binding_request_in_flight(c: &BindingClient) -> Vec<u8> {
    match &c.state {
        State::Querying { transaction, .. } => transaction.request.clone(),
        State::Idle { .. } => panic!("no request in flight"),
    }
}

#[test]
fn wrong_transaction_id_is_ignored_and_retries_go_on() {
    let t0 = Instant::now();
    let mut c = BindingClient::with_seed(vec![addr(S1)], ClientConfig::one_shot(), t0, 3);
    let request = c.poll_transmit(t0).unwrap().payload;
    let mut other = request.clone();
    other[19] ^= 0xff;
    let forged = success_response(&other, "6.6.6.6:666");
    assert_eq!(
        c.handle_datagram(addr(S1), &forged, t0 + ms(10)),
        Handled::Ignored(Ignored::UnknownTransaction)
    );
    assert_eq!(c.public_addr(), None);
    assert_eq!(c.poll_timeout(), Some(t0 + ms(500)), "schedule unchanged");
    let again = c.poll_transmit(t0 + ms(500)).unwrap();
    assert_eq!(again.payload, request);
    let answer = success_response(&request, "203.0.113.1:5060");
    assert_eq!(
        c.handle_datagram(addr(S1), &answer, t0 + ms(600)),
        Handled::Mapped(addr("203.0.113.1:5060"))
    );
}

#[test]
fn garbage_and_sip_are_not_taken_for_answers() {
    let t0 = Instant::now();
    let mut c = BindingClient::with_seed(vec![addr(S1)], ClientConfig::one_shot(), t0, 4);
    let request = c.poll_transmit(t0).unwrap().payload;
    let sip = b"NOTIFY sip:blf@198.51.100.10:5060 SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(c.handle_datagram(addr(S1), sip, t0), Handled::NotStun);
    assert_eq!(
        c.handle_datagram(addr(S1), b"\r\n\r\n", t0),
        Handled::NotStun
    );
    assert_eq!(c.handle_datagram(addr(S1), &[], t0), Handled::NotStun);
    // STUN-looking garbage: cookie right, rest random.
    let mut garbage = request.clone();
    garbage[1] = 0x01;
    garbage[0] = 0x01; // success response type
    garbage.truncate(27);
    assert!(matches!(
        c.handle_datagram(addr(S1), &garbage, t0),
        Handled::Ignored(Ignored::Invalid(_))
    ));
    // Our own request echoed back (e.g. a loop): not a response.
    assert_eq!(
        c.handle_datagram(addr(S1), &request, t0),
        Handled::Ignored(Ignored::Invalid(DecodeError::NotBindingResponse {
            message_type: 0x0001
        }))
    );
    assert!(c.is_querying());
    assert_eq!(c.poll_timeout(), Some(t0 + ms(500)));
    assert_eq!(c.poll_event(), None);
}

#[test]
fn error_response_moves_to_the_next_server_at_once() {
    let t0 = Instant::now();
    let mut c = BindingClient::with_seed(vec![addr(S1), addr(S2)], ClientConfig::one_shot(), t0, 5);
    let request = c.poll_transmit(t0).unwrap().payload;
    let refusal = error_response(&request, 500, "Server Error");
    assert_eq!(
        c.handle_datagram(addr(S1), &refusal, t0 + ms(5)),
        Handled::ErrorResponse {
            code: 500,
            reason: "Server Error".to_owned()
        }
    );
    let next = c.poll_transmit(t0 + ms(5)).unwrap();
    assert_eq!(next.destination, addr(S2));
    assert_ne!(next.payload[8..20], request[8..20], "new transaction id");
    assert_eq!(c.poll_timeout(), Some(t0 + ms(505)));
    // The first server's late answer belongs to a finished transaction.
    let late = success_response(&request, "203.0.113.1:1");
    assert_eq!(
        c.handle_datagram(addr(S1), &late, t0 + ms(6)),
        Handled::Ignored(Ignored::UnknownTransaction)
    );
    let sent = run_until(&mut c, t0 + ms(5), t0 + ms(60_000));
    assert_eq!(
        sent.len(),
        6,
        "remaining retransmissions to the second server"
    );
    assert_eq!(
        c.poll_event(),
        Some(Event::Failed {
            failures: vec![
                Failure::ErrorResponse {
                    server: addr(S1),
                    code: 500,
                    reason: "Server Error".to_owned()
                },
                Failure::Timeout { server: addr(S2) },
            ]
        })
    );
}

#[test]
fn ipv6_server_and_mapping() {
    let t0 = Instant::now();
    let server = addr("[2001:db8::3478]:3478");
    let mut c = BindingClient::with_seed(vec![server], ClientConfig::one_shot(), t0, 6);
    let request = c.poll_transmit(t0).unwrap();
    assert_eq!(request.destination, server);
    let answer = success_response(
        &request.payload,
        "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
    );
    assert_eq!(
        c.handle_datagram(server, &answer, t0 + ms(1)),
        Handled::Mapped(addr("[2001:db8:1234:5678:11:2233:4455:6677]:32853"))
    );
}

#[test]
fn fingerprint_checked_when_present() {
    let t0 = Instant::now();
    let mut c = BindingClient::with_seed(vec![addr(S1)], ClientConfig::one_shot(), t0, 8);
    let request = c.poll_transmit(t0).unwrap().payload;
    let mut bad = success_with_fingerprint(&request, "203.0.113.1:5060");
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    assert_eq!(
        c.handle_datagram(addr(S1), &bad, t0 + ms(1)),
        Handled::Ignored(Ignored::Invalid(DecodeError::FingerprintMismatch))
    );
    assert_eq!(c.public_addr(), None);
    let good = success_with_fingerprint(&request, "203.0.113.1:5060");
    assert_eq!(
        c.handle_datagram(addr(S1), &good, t0 + ms(2)),
        Handled::Mapped(addr("203.0.113.1:5060"))
    );
}

#[test]
fn rediscovery_reports_a_changed_mapping_once() {
    let t0 = Instant::now();
    let config = ClientConfig::default().with_refresh_interval(Some(Duration::from_secs(30)));
    let mut c = BindingClient::with_seed(vec![addr(S1)], config, t0, 9);
    let r1 = c.poll_transmit(t0).unwrap().payload;
    c.handle_datagram(
        addr(S1),
        &success_response(&r1, "203.0.113.1:5060"),
        t0 + ms(10),
    );
    assert!(matches!(c.poll_event(), Some(Event::Discovered(_))));
    let t1 = t0 + ms(10) + Duration::from_secs(30);
    assert_eq!(c.poll_timeout(), Some(t1));
    assert!(
        c.poll_transmit(t1 - ms(1)).is_none(),
        "not before the interval"
    );
    // Same mapping: no event.
    let r2 = c.poll_transmit(t1).unwrap().payload;
    assert_ne!(r2[8..20], r1[8..20]);
    c.handle_datagram(addr(S1), &success_response(&r2, "203.0.113.1:5060"), t1);
    assert_eq!(c.poll_event(), None);
    // The NAT rebinds: a new port.
    let t2 = t1 + Duration::from_secs(30);
    let r3 = c.poll_transmit(t2).unwrap().payload;
    assert_eq!(
        c.handle_datagram(addr(S1), &success_response(&r3, "203.0.113.1:6000"), t2),
        Handled::Mapped(addr("203.0.113.1:6000"))
    );
    assert_eq!(
        c.poll_event(),
        Some(Event::Changed {
            old: addr("203.0.113.1:5060"),
            new: addr("203.0.113.1:6000"),
            server: addr(S1)
        })
    );
    assert_eq!(c.public_addr(), Some(addr("203.0.113.1:6000")));
}

#[test]
fn failed_round_keeps_the_address_and_retries_later() {
    let t0 = Instant::now();
    let config = ClientConfig::default()
        .with_refresh_interval(Some(Duration::from_secs(60)))
        .with_retry_interval(Some(Duration::from_secs(10)))
        .with_transaction_timeout(Some(Duration::from_secs(2)));
    let mut c = BindingClient::with_seed(vec![addr(S1)], config, t0, 10);
    let r1 = c.poll_transmit(t0).unwrap().payload;
    c.handle_datagram(addr(S1), &success_response(&r1, "203.0.113.1:5060"), t0);
    c.poll_event();
    // Refresh round gets no answer: capped at 2 s by the transaction timeout.
    let t1 = t0 + Duration::from_secs(60);
    let sent = run_until(&mut c, t0, t1 + Duration::from_secs(2));
    assert_eq!(
        sent.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        [60_000, 60_500, 61_500].map(ms).to_vec()
    );
    assert_eq!(
        c.poll_event(),
        Some(Event::Failed {
            failures: vec![Failure::Timeout { server: addr(S1) }]
        })
    );
    assert_eq!(c.public_addr(), Some(addr("203.0.113.1:5060")));
    assert_eq!(c.poll_timeout(), Some(t1 + Duration::from_secs(12)));
}

#[test]
fn send_failure_skips_the_server() {
    let t0 = Instant::now();
    let mut c = BindingClient::with_seed(
        vec![addr("[::1]:3478"), addr(S1)],
        ClientConfig::one_shot(),
        t0,
        11,
    );
    let first = c.poll_transmit(t0).unwrap();
    c.handle_send_failure(addr(S2), "unrelated".to_owned(), t0);
    assert_eq!(
        c.poll_timeout(),
        Some(t0 + ms(500)),
        "other destinations do not count"
    );
    c.handle_send_failure(
        first.destination,
        "Address family not supported".to_owned(),
        t0,
    );
    assert_eq!(c.poll_transmit(t0).unwrap().destination, addr(S1));
}

#[test]
fn new_servers_apply_from_the_next_round() {
    let t0 = Instant::now();
    let config = ClientConfig::default().with_refresh_interval(Some(Duration::from_secs(1)));
    let mut c = BindingClient::with_seed(vec![addr(S1)], config, t0, 15);
    let r1 = c.poll_transmit(t0).unwrap();
    c.set_servers(vec![addr(S2)]);
    assert_eq!(c.servers(), &[addr(S1)], "not during a round");
    assert_eq!(c.poll_transmit(t0 + ms(500)).unwrap().destination, addr(S1));
    c.handle_datagram(
        addr(S1),
        &success_response(&r1.payload, "203.0.113.1:5060"),
        t0 + ms(600),
    );
    let r2 = c.poll_transmit(t0 + ms(1600)).unwrap();
    assert_eq!(r2.destination, addr(S2));
    assert_eq!(c.servers(), &[addr(S2)]);
}

#[test]
fn no_servers_fails_at_once() {
    let t0 = Instant::now();
    let mut c = BindingClient::with_seed(Vec::new(), ClientConfig::one_shot(), t0, 12);
    assert!(c.poll_transmit(t0).is_none());
    assert_eq!(
        c.poll_event(),
        Some(Event::Failed {
            failures: Vec::new()
        })
    );
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn unpolled_events_are_bounded() {
    let t0 = Instant::now();
    let config = ClientConfig::default().with_retry_interval(Some(Duration::from_secs(1)));
    let mut c = BindingClient::with_seed(Vec::new(), config, t0, 13);
    for _ in 0..100 {
        let now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
    }
    assert_eq!(c.events.len(), MAX_QUEUED_EVENTS);
}

#[test]
fn extreme_configuration_does_not_overflow() {
    let t0 = Instant::now();
    let config = ClientConfig::one_shot()
        .with_rto(Duration::from_secs(u64::MAX / 4))
        .with_max_transmissions(u32::MAX);
    let mut c = BindingClient::with_seed(vec![addr(S1)], config, t0, 14);
    assert!(c.poll_transmit(t0).is_some());
    assert_eq!(c.poll_timeout(), Some(t0 + MAX_WAIT));
    assert_eq!(
        wait_after(&ClientConfig::default().with_max_transmissions(100), 60),
        MAX_WAIT
    );
    // "Never" as Duration::MAX is a day, not a timer in the past.
    let config = ClientConfig::default()
        .with_refresh_interval(Some(Duration::MAX))
        .with_transaction_timeout(Some(Duration::MAX));
    let mut c = BindingClient::with_seed(vec![addr(S1)], config, t0, 15);
    let r = c.poll_transmit(t0).unwrap();
    assert_eq!(c.poll_timeout(), Some(t0 + ms(500)));
    c.handle_datagram(addr(S1), &success_response(&r.payload, "203.0.113.1:1"), t0);
    assert_eq!(c.poll_timeout(), Some(t0 + MAX_WAIT));
}

#[test]
fn transaction_ids_differ_between_clients_and_rounds() {
    let t0 = Instant::now();
    let a = BindingClient::new(vec![addr(S1)], ClientConfig::one_shot(), t0)
        .poll_transmit(t0)
        .unwrap();
    let b = BindingClient::new(vec![addr(S1)], ClientConfig::one_shot(), t0)
        .poll_transmit(t0)
        .unwrap();
    assert_ne!(a.payload[8..20], b.payload[8..20]);
}
