//! Telling SIP from STUN on a shared socket (RFC 7983 §7).
//!
//! A SIP user agent that learns its public address with STUN on its own
//! socket must hand STUN datagrams to the STUN client and everything else to
//! the SIP parser. The test lives here, once, for both `sip-ua` and
//! `stun-lite`.

/// The STUN magic cookie (RFC 8489 §5).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// The length of a STUN header.
const STUN_HEADER_LEN: usize = 20;

/// True when `datagram` is a STUN message rather than SIP (or anything else).
///
/// It is at least a STUN header long, its first two bits are zero (first byte
/// 0..=3 per RFC 7983; SIP starts with an ASCII letter, a CRLF keep-alive is
/// shorter than a header) and bytes 4..8 are the magic cookie.
///
/// ```
/// use sip_proto::is_stun;
///
/// assert!(!is_stun(b"SIP/2.0 200 OK\r\n\r\n\r\n\r\n"));
/// assert!(!is_stun(b"\r\n\r\n"));
/// let binding = [0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
/// assert!(is_stun(&binding));
/// ```
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= STUN_HEADER_LEN
        && datagram.first().is_some_and(|b| b & 0xC0 == 0)
        && datagram.get(4..8) == Some(&MAGIC_COOKIE[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bits_and_cookie() {
        let mut d = [0u8; 20];
        d[4..8].copy_from_slice(&MAGIC_COOKIE);
        assert!(is_stun(&d));
        d[0] = 0x40;
        assert!(!is_stun(&d));
        d[0] = 0x01;
        assert!(!is_stun(&d[..19]));
        d[5] = 0;
        assert!(!is_stun(&d));
    }
}
