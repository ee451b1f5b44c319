//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, versions 1 and 2): the header an
//! L4 load balancer writes before the client's first byte to say whom the connection
//! is from. With it the proxy sees, and forwards in `X-Forwarded-For`, the client's
//! address rather than the load balancer's.
//!
//! Only a [trusted](crate::TrustedProxies) peer may send one; anyone else could claim
//! any address. A header from another peer closes the connection, as Traefik does: it
//! is no TLS ClientHello, and passing it on would only fail the handshake less clearly.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 signature, 12 bytes that cannot start a TLS record or an HTTP request.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// What every v1 header starts with.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest header read: a v1 header is at most 107 bytes; a v2 header's TLVs
/// (AWS and GCP add a few, e.g. a VPC endpoint id) stay far below this.
const MAX_HEADER: usize = 4096;
/// While a header has arrived only in part, look again this often.
const PARTIAL_RETRY: Duration = Duration::from_millis(5);

/// Why a connection's PROXY header was refused.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The peer is not a trusted proxy.
    Untrusted,
    /// Not a valid v1 or v2 header (or longer than [`MAX_HEADER`]).
    Malformed(String),
    /// Reading failed, or the peer closed before the header ended.
    Io(io::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Untrusted => f.write_str(
                "PROXY protocol header from a peer that is not a trusted proxy; connection closed",
            ),
            Self::Malformed(reason) => write!(f, "malformed PROXY protocol header: {reason}"),
            Self::Io(error) => write!(f, "reading the PROXY protocol header failed: {error}"),
        }
    }
}

/// Reads a PROXY header, if the connection starts with one, and returns the client
/// address to use: the header's source for a proxied TCP connection, else `peer`
/// (no header, a v2 `LOCAL` health check, v1 `UNKNOWN`, a UNIX-socket source).
///
/// The header's bytes are consumed and nothing after them: the TLS handshake reads on
/// from the ClientHello. A connection that starts with anything else (a client talking
/// TLS directly) is left untouched. `trusted` says whether `peer` may send a header.
pub(crate) async fn read_client_address(
    stream: &mut TcpStream,
    peer: SocketAddr,
    trusted: bool,
) -> Result<SocketAddr, Refused> {
    let mut buf = vec![0u8; MAX_HEADER];
    loop {
        let seen = stream.peek(&mut buf).await.map_err(Refused::Io)?;
        if seen == 0 {
            return Err(Refused::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        let start = &buf[..seen];
        match starts_header(start) {
            Start::No => return Ok(peer),
            Start::Unsure => {}
            Start::Yes if !trusted => return Err(Refused::Untrusted),
            Start::Yes => {
                if let Some((len, client)) = parse(start, peer)? {
                    // Consume exactly the header: the TLS handshake reads the rest.
                    stream
                        .read_exact(&mut buf[..len])
                        .await
                        .map_err(Refused::Io)?;
                    return Ok(client);
                }
                if seen == MAX_HEADER {
                    return Err(Refused::Malformed(format!(
                        "longer than {MAX_HEADER} bytes"
                    )));
                }
            }
        }
        // Only part of it has arrived (rare: load balancers write the header in one
        // segment). `peek` would return the same bytes at once, so wait a moment; the
        // caller's handshake timeout bounds the whole.
        tokio::time::sleep(PARTIAL_RETRY).await;
    }
}

enum Start {
    /// Starts with a v1 or v2 signature.
    Yes,
    /// Too short to tell.
    Unsure,
    No,
}

fn starts_header(bytes: &[u8]) -> Start {
    for signature in [V2_SIGNATURE, V1_PREFIX] {
        let n = bytes.len().min(signature.len());
        if bytes[..n] == signature[..n] {
            return if n == signature.len() {
                Start::Yes
            } else {
                Start::Unsure
            };
        }
    }
    Start::No
}

/// The header's length and the client address it names, or `None` while incomplete.
fn parse(bytes: &[u8], peer: SocketAddr) -> Result<Option<(usize, SocketAddr)>, Refused> {
    let header = HeaderResult::parse(bytes);
    if header.is_incomplete() {
        return Ok(None);
    }
    let found = match header {
        HeaderResult::V1(Ok(header)) => {
            let client = match header.addresses {
                v1::Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Unknown => peer,
            };
            (header.header.len(), client)
        }
        HeaderResult::V2(Ok(header)) => {
            let client = match (header.command, header.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    SocketAddr::from((a.source_address, a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    SocketAddr::from((a.source_address, a.source_port))
                }
                _ => peer,
            };
            (header.len(), client)
        }
        HeaderResult::V1(Err(error)) => return Err(Refused::Malformed(format!("v1: {error}"))),
        HeaderResult::V2(Err(error)) => return Err(Refused::Malformed(format!("v2: {error}"))),
    };
    Ok(Some(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "10.0.0.2:40000".parse().unwrap()
    }

    #[test]
    fn v1_and_v2_headers_give_the_source_address_and_their_length() {
        let v1 = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\r\n\x16\x03\x01";
        let (len, client) = parse(v1, peer()).unwrap().unwrap();
        assert_eq!(len, v1.len() - 3);
        assert_eq!(client, "192.0.2.7:51234".parse().unwrap());

        let v1 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 443\r\n";
        let (_, client) = parse(v1, peer()).unwrap().unwrap();
        assert_eq!(client, "[2001:db8::7]:51234".parse().unwrap());

        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(parse(unknown, peer()).unwrap().unwrap(), (15, peer()));

        let mut v2 = V2_SIGNATURE.to_vec();
        // Version 2, PROXY; TCP over IPv4; 12 address bytes.
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 7, 10, 0, 0, 1, 0xc8, 0x22, 1, 0xbb,
        ]);
        let whole = v2.len();
        v2.extend_from_slice(b"\x16\x03\x01");
        let (len, client) = parse(&v2, peer()).unwrap().unwrap();
        assert_eq!(len, whole);
        assert_eq!(client, "192.0.2.7:51234".parse().unwrap());

        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local, peer()).unwrap().unwrap(), (16, peer()));
    }

    #[test]
    fn partial_headers_wait_and_broken_ones_are_refused() {
        assert!(
            parse(b"PROXY TCP4 192.0.2.7 10.0", peer())
                .unwrap()
                .is_none()
        );
        assert!(parse(&V2_SIGNATURE[..12], peer()).unwrap().is_none());
        for broken in [
            &b"PROXY TCP4 999.0.2.7 10.0.0.1 51234 443\r\n"[..],
            b"PROXY SCTP 192.0.2.7 10.0.0.1 51234 443\r\n",
        ] {
            let error = parse(broken, peer()).unwrap_err();
            assert!(matches!(error, Refused::Malformed(_)), "{error}");
        }
    }

    fn valid_header() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            Just(b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\r\n".to_vec()),
            Just(b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 443\r\n".to_vec()),
            Just(b"PROXY UNKNOWN\r\n".to_vec()),
            Just(
                [
                    V2_SIGNATURE,
                    &[
                        0x21, 0x11, 0, 12, 192, 0, 2, 7, 10, 0, 0, 1, 0xc8, 0x22, 1, 0xbb
                    ],
                ]
                .concat()
            ),
        ]
    }

    proptest::proptest! {
        #![proptest_config(berth_tests::fuzz::config(2000))]

        // What a peer sends is outside input: no byte string may panic the parser, and
        // a header it accepts never claims more bytes than arrived.
        #[test]
        fn hostile_headers_never_panic(bytes in berth_tests::fuzz::mutated(valid_header())) {
            let _ = starts_header(&bytes);
            if let Ok(Some((len, _))) = parse(&bytes, peer()) {
                proptest::prop_assert!(len <= bytes.len());
            }
        }
    }

    #[test]
    fn tls_and_http_do_not_look_like_a_header() {
        assert!(matches!(starts_header(b"\x16\x03\x01\x02\x00"), Start::No));
        assert!(matches!(starts_header(b"GET / HTTP/1.1\r\n"), Start::No));
        assert!(matches!(starts_header(b"PRO"), Start::Unsure));
        assert!(matches!(starts_header(b"\r\n\r\n"), Start::Unsure));
        assert!(matches!(starts_header(b"PROXY TCP4"), Start::Yes));
        assert!(matches!(starts_header(V2_SIGNATURE), Start::Yes));
    }
}
