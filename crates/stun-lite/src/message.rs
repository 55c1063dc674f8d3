//! Binding requests and responses on the wire (RFC 8489 §5, §6, §14).
//!
//! Encoding and attribute decoding are done by [`stun_codec`]; this module adds
//! the checks a client needs before trusting a datagram (size, header, class,
//! method) and keeps `stun_codec`'s and `bytecodec`'s types out of the public API.

use std::fmt;
use std::net::SocketAddr;

use bytecodec::{DecodeExt, EncodeExt};
use rand::RngCore;
use stun_codec::rfc5389::attributes::{ErrorCode, Fingerprint, MappedAddress, XorMappedAddress};
use stun_codec::rfc5389::{methods::BINDING, Attribute};
use stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder};

/// The fixed magic cookie of RFC 5389/8489 messages (bytes 4..8).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Length of the STUN header.
pub const HEADER_LEN: usize = 20;

/// Largest datagram [`decode_response`] looks at. A Binding response is well
/// under 200 bytes; anything longer is refused without being parsed.
pub const MAX_MESSAGE_LEN: usize = 1280;

const BINDING_SUCCESS_RESPONSE: u16 = 0x0101;
const BINDING_ERROR_RESPONSE: u16 = 0x0111;
const FINGERPRINT_TYPE: u16 = 0x8028;

/// A 96-bit STUN transaction id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId([u8; 12]);

impl TransactionId {
    /// Wraps raw bytes.
    pub const fn new(bytes: [u8; 12]) -> Self {
        Self(bytes)
    }

    /// A fresh random id (RFC 8489 §6: uniformly random, from a
    /// cryptographically strong generator such as `rand::rngs::StdRng`).
    pub fn random(rng: &mut impl RngCore) -> Self {
        let mut bytes = [0u8; 12];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// Tells a STUN message apart from SIP (or anything else) on a shared socket
/// (RFC 7983 §7). One definition for both sides of the socket: the SIP stack's
/// demultiplexer in `sip-proto`.
pub use sip_proto::is_stun;

/// Encodes a Binding request with the given transaction id, ending with a
/// `FINGERPRINT` attribute (RFC 8489 §14.7), which helps the server tell STUN
/// from SIP when both share a port.
pub fn binding_request(transaction_id: TransactionId) -> Vec<u8> {
    let tid = stun_codec::TransactionId::new(transaction_id.0);
    let mut message = Message::<Attribute>::new(MessageClass::Request, BINDING, tid);
    if let Ok(fingerprint) = Fingerprint::new(&message) {
        message.add_attribute(fingerprint);
    }
    match MessageEncoder::new().encode_into_bytes(message) {
        Ok(bytes) => bytes,
        // Cannot happen for a request without variable-length attributes; a
        // bare header is still a valid Binding request.
        Err(_) => header_only_request(transaction_id),
    }
}

fn header_only_request(transaction_id: TransactionId) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    bytes.extend_from_slice(&0x0001u16.to_be_bytes());
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    bytes.extend_from_slice(&transaction_id.0);
    bytes
}

/// A validated Binding response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingResponse {
    /// Binding success response: the address the server saw the request from.
    Success {
        /// Transaction id of the response.
        transaction_id: TransactionId,
        /// `XOR-MAPPED-ADDRESS`, or `MAPPED-ADDRESS` from an RFC 3489 server.
        mapped: SocketAddr,
    },
    /// Binding error response.
    Error {
        /// Transaction id of the response.
        transaction_id: TransactionId,
        /// `ERROR-CODE` number (300..=699).
        code: u16,
        /// `ERROR-CODE` reason phrase.
        reason: String,
    },
}

impl BindingResponse {
    /// The transaction id, to match it with the request.
    pub fn transaction_id(&self) -> TransactionId {
        match self {
            Self::Success { transaction_id, .. } | Self::Error { transaction_id, .. } => {
                *transaction_id
            }
        }
    }
}

/// Why a datagram is not an acceptable Binding response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No STUN header (see [`is_stun`]).
    #[error("not a STUN message")]
    NotStun,
    /// Longer than [`MAX_MESSAGE_LEN`].
    #[error("STUN message too long ({len} bytes)")]
    TooLong {
        /// Datagram length.
        len: usize,
    },
    /// The header's length field does not match the datagram.
    #[error("STUN length field {declared} does not match the {actual} bytes after the header")]
    LengthMismatch {
        /// Length field of the header.
        declared: usize,
        /// Bytes actually following the header.
        actual: usize,
    },
    /// A request, an indication, or another method than Binding.
    #[error("not a Binding response (message type 0x{message_type:04x})")]
    NotBindingResponse {
        /// The message type field.
        message_type: u16,
    },
    /// `FINGERPRINT` present but wrong.
    #[error("FINGERPRINT mismatch")]
    FingerprintMismatch,
    /// Attributes that cannot be decoded.
    #[error("malformed STUN attributes")]
    Malformed,
    /// A success response without `XOR-MAPPED-ADDRESS` or `MAPPED-ADDRESS`.
    #[error("Binding success response without a mapped address")]
    NoMappedAddress,
    /// An error response without `ERROR-CODE`.
    #[error("Binding error response without ERROR-CODE")]
    NoErrorCode,
}

/// Decodes and validates a Binding response. Never panics, whatever the bytes.
///
/// Checks the header (two zero bits, magic cookie, length field equal to the
/// datagram, multiple of 4), the class (success or error response) and the
/// method (Binding), `FINGERPRINT` when present, and takes the mapped address from
/// `XOR-MAPPED-ADDRESS`, falling back to `MAPPED-ADDRESS`. The transaction id is
/// returned for the caller to match.
pub fn decode_response(datagram: &[u8]) -> Result<BindingResponse, DecodeError> {
    if !is_stun(datagram) {
        return Err(DecodeError::NotStun);
    }
    if datagram.len() > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLong {
            len: datagram.len(),
        });
    }
    let (header, body) = datagram.split_at(HEADER_LEN);
    let message_type = u16::from_be_bytes([header[0], header[1]]);
    let declared = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if declared != body.len() || declared % 4 != 0 {
        return Err(DecodeError::LengthMismatch {
            declared,
            actual: body.len(),
        });
    }
    if message_type != BINDING_SUCCESS_RESPONSE && message_type != BINDING_ERROR_RESPONSE {
        return Err(DecodeError::NotBindingResponse { message_type });
    }
    let message = match decode_message(datagram) {
        Some(Ok(message)) => message,
        Some(Err(())) if fingerprint_is_the_problem(datagram) => {
            return Err(DecodeError::FingerprintMismatch)
        }
        _ => return Err(DecodeError::Malformed),
    };
    let transaction_id = TransactionId(*message.transaction_id().as_bytes());
    match message.class() {
        MessageClass::SuccessResponse => {
            let mapped = message
                .get_attribute::<XorMappedAddress>()
                .map(XorMappedAddress::address)
                .or_else(|| {
                    message
                        .get_attribute::<MappedAddress>()
                        .map(MappedAddress::address)
                })
                .ok_or(DecodeError::NoMappedAddress)?;
            Ok(BindingResponse::Success {
                transaction_id,
                mapped,
            })
        }
        MessageClass::ErrorResponse => {
            let error = message
                .get_attribute::<ErrorCode>()
                .ok_or(DecodeError::NoErrorCode)?;
            Ok(BindingResponse::Error {
                transaction_id,
                code: error.code(),
                reason: error.reason_phrase().to_owned(),
            })
        }
        _ => Err(DecodeError::NotBindingResponse { message_type }),
    }
}

/// `None`: the header or the attribute framing is broken. `Some(Err)`: framing is
/// fine but an attribute check failed (e.g. FINGERPRINT).
fn decode_message(bytes: &[u8]) -> Option<Result<Message<Attribute>, ()>> {
    match MessageDecoder::<Attribute>::new().decode_from_bytes(bytes) {
        Ok(Ok(message)) => Some(Ok(message)),
        Ok(Err(_broken)) => Some(Err(())),
        Err(_) => None,
    }
}

/// `stun_codec` reports a failed FINGERPRINT check like any other broken
/// attribute. It is the culprit when the message ends with a FINGERPRINT and
/// decodes cleanly without it.
fn fingerprint_is_the_problem(datagram: &[u8]) -> bool {
    let Some(split) = datagram.len().checked_sub(8) else {
        return false;
    };
    let (rest, last) = datagram.split_at(split);
    if last.get(..4) != Some(&[(FINGERPRINT_TYPE >> 8) as u8, FINGERPRINT_TYPE as u8, 0, 4][..]) {
        return false;
    }
    let Some(body_len) = rest.len().checked_sub(HEADER_LEN) else {
        return false;
    };
    let Ok(body_len) = u16::try_from(body_len) else {
        return false;
    };
    let mut stripped = rest.to_vec();
    if let Some(len_field) = stripped.get_mut(2..4) {
        len_field.copy_from_slice(&body_len.to_be_bytes());
    }
    matches!(decode_message(&stripped), Some(Ok(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.2: IPv4 response, with MESSAGE-INTEGRITY and FINGERPRINT.
    pub(crate) const RFC5769_IPV4_RESPONSE: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    /// RFC 5769 §2.3: IPv6 response.
    const RFC5769_IPV6_RESPONSE: [u8; 92] = [
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
        0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
        0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
        0x0b, 0x4c,
    ];

    const RFC5769_TID: TransactionId = TransactionId([
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);

    #[test]
    fn rfc5769_ipv4_response_decodes() {
        assert_eq!(
            decode_response(&RFC5769_IPV4_RESPONSE),
            Ok(BindingResponse::Success {
                transaction_id: RFC5769_TID,
                mapped: "192.0.2.1:32853".parse().unwrap(),
            })
        );
    }

    #[test]
    fn rfc5769_ipv6_response_decodes() {
        assert_eq!(
            decode_response(&RFC5769_IPV6_RESPONSE),
            Ok(BindingResponse::Success {
                transaction_id: RFC5769_TID,
                mapped: "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                    .parse()
                    .unwrap(),
            })
        );
    }

    #[test]
    fn fingerprint_mismatch_is_rejected() {
        let mut bytes = RFC5769_IPV4_RESPONSE;
        bytes[79] ^= 0x01;
        assert_eq!(
            decode_response(&bytes),
            Err(DecodeError::FingerprintMismatch)
        );
        // A changed byte before the FINGERPRINT is caught by it too.
        let mut bytes = RFC5769_IPV4_RESPONSE;
        bytes[27] ^= 0x20; // inside SOFTWARE
        assert_eq!(
            decode_response(&bytes),
            Err(DecodeError::FingerprintMismatch)
        );
    }

    #[test]
    fn request_round_trips_through_the_decoder_and_has_a_fingerprint() {
        let tid = TransactionId::new([7; 12]);
        let bytes = binding_request(tid);
        assert!(is_stun(&bytes));
        assert_eq!(bytes.len(), HEADER_LEN + 8);
        assert_eq!(&bytes[0..2], &[0x00, 0x01]);
        assert_eq!(&bytes[8..20], tid.as_bytes());
        assert_eq!(&bytes[20..24], &[0x80, 0x28, 0x00, 0x04]);
        // Not a response:
        assert_eq!(
            decode_response(&bytes),
            Err(DecodeError::NotBindingResponse {
                message_type: 0x0001
            })
        );
        // But a well-formed message whose fingerprint stun_codec accepts.
        assert!(matches!(decode_message(&bytes), Some(Ok(_))));
    }

    #[test]
    fn mapped_address_fallback_for_rfc3489_servers() {
        let tid = stun_codec::TransactionId::new([1; 12]);
        let mut m = Message::<Attribute>::new(MessageClass::SuccessResponse, BINDING, tid);
        m.add_attribute(MappedAddress::new("198.51.100.7:4000".parse().unwrap()));
        let bytes = MessageEncoder::new().encode_into_bytes(m).unwrap();
        assert_eq!(
            decode_response(&bytes),
            Ok(BindingResponse::Success {
                transaction_id: TransactionId([1; 12]),
                mapped: "198.51.100.7:4000".parse().unwrap(),
            })
        );
    }

    #[test]
    fn xor_mapped_address_wins_over_mapped_address() {
        let tid = stun_codec::TransactionId::new([2; 12]);
        let mut m = Message::<Attribute>::new(MessageClass::SuccessResponse, BINDING, tid);
        m.add_attribute(MappedAddress::new("10.0.0.1:1".parse().unwrap()));
        m.add_attribute(XorMappedAddress::new("203.0.113.1:5060".parse().unwrap()));
        let bytes = MessageEncoder::new().encode_into_bytes(m).unwrap();
        let BindingResponse::Success { mapped, .. } = decode_response(&bytes).unwrap() else {
            panic!("not a success")
        };
        assert_eq!(mapped, "203.0.113.1:5060".parse().unwrap());
    }

    #[test]
    fn success_without_address_and_error_without_code_are_refused() {
        let tid = stun_codec::TransactionId::new([3; 12]);
        let m = Message::<Attribute>::new(MessageClass::SuccessResponse, BINDING, tid);
        let bytes = MessageEncoder::new().encode_into_bytes(m).unwrap();
        assert_eq!(decode_response(&bytes), Err(DecodeError::NoMappedAddress));
        let m = Message::<Attribute>::new(MessageClass::ErrorResponse, BINDING, tid);
        let bytes = MessageEncoder::new().encode_into_bytes(m).unwrap();
        assert_eq!(decode_response(&bytes), Err(DecodeError::NoErrorCode));
    }

    #[test]
    fn error_response_decodes() {
        let tid = stun_codec::TransactionId::new([4; 12]);
        let mut m = Message::<Attribute>::new(MessageClass::ErrorResponse, BINDING, tid);
        m.add_attribute(ErrorCode::new(420, "Unknown Attribute".to_owned()).unwrap());
        let bytes = MessageEncoder::new().encode_into_bytes(m).unwrap();
        assert_eq!(
            decode_response(&bytes),
            Ok(BindingResponse::Error {
                transaction_id: TransactionId([4; 12]),
                code: 420,
                reason: "Unknown Attribute".to_owned(),
            })
        );
    }

    #[test]
    fn header_checks() {
        assert!(!is_stun(b"SIP/2.0 200 OK\r\n\r\n\r\n\r\n"));
        assert!(!is_stun(b"\r\n\r\n"));
        assert!(!is_stun(&[]));
        assert!(is_stun(&RFC5769_IPV4_RESPONSE));
        // Too short for a header even with the cookie.
        assert!(!is_stun(&RFC5769_IPV4_RESPONSE[..19]));
        let mut bytes = RFC5769_IPV4_RESPONSE;
        bytes[0] |= 0x40;
        assert!(!is_stun(&bytes));
        assert_eq!(decode_response(&bytes), Err(DecodeError::NotStun));
        // Truncated: the length field no longer matches.
        assert_eq!(
            decode_response(&RFC5769_IPV4_RESPONSE[..76]),
            Err(DecodeError::LengthMismatch {
                declared: 60,
                actual: 56
            })
        );
        let mut long = RFC5769_IPV4_RESPONSE.to_vec();
        long.resize(MAX_MESSAGE_LEN + 4, 0);
        assert!(matches!(
            decode_response(&long),
            Err(DecodeError::TooLong { .. })
        ));
        // A Binding indication is not a response.
        let mut bytes = RFC5769_IPV4_RESPONSE;
        bytes[1] = 0x11;
        bytes[0] = 0x00;
        assert_eq!(
            decode_response(&bytes),
            Err(DecodeError::NotBindingResponse {
                message_type: 0x0011
            })
        );
    }

    #[test]
    fn broken_attribute_framing_is_malformed() {
        let mut bytes = RFC5769_IPV4_RESPONSE;
        // SOFTWARE claims more bytes than the message has.
        bytes[22] = 0x01;
        assert_eq!(decode_response(&bytes), Err(DecodeError::Malformed));
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        for i in 0..20_000 {
            let mut bytes = if i % 2 == 0 {
                RFC5769_IPV4_RESPONSE.to_vec()
            } else {
                RFC5769_IPV6_RESPONSE.to_vec()
            };
            let flips = rng.random_range(1..6);
            for _ in 0..flips {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            if i % 7 == 0 {
                let len = rng.random_range(0..bytes.len());
                bytes.truncate(len);
            }
            let _ = decode_response(&bytes);
            let len = rng.random_range(0..200);
            let mut noise = vec![0u8; len];
            rng.fill_bytes(&mut noise);
            if noise.len() >= 8 {
                noise[0] &= 0x3f;
                noise[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            }
            let _ = decode_response(&noise);
        }
    }
}
