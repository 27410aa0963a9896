//! The PROXY protocol header a load balancer (HAProxy `send-proxy` /
//! `send-proxy-v2`, nginx `proxy_protocol`, AWS NLB…) puts before the
//! client's first byte, versions 1 (text) and 2 (binary), as HAProxy's
//! `proxy-protocol.txt` defines them, and what it changes in the
//! environment tcpserver set.
//!
//! Pure: bytes in, a header or a typed error out. [`parse`] never claims a
//! byte past the header, and while the header is incomplete every byte it
//! has seen belongs to the header (so the edge may consume them all without
//! eating SMTP or a TLS ClientHello that follows).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v1 line, `PROXY … CRLF`, is at most this long (the specification's
/// worst case, `TCP6` with two full addresses).
pub const V1_MAX: usize = 107;
/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part of a v2 header: signature, version/command, family,
/// length.
pub const V2_FIXED: usize = 16;
/// The longest v2 header accepted, TLVs included. The specification lets a
/// sender announce up to 64 KiB; real ones send addresses and a few short
/// TLVs (ALPN, authority, unique id, SSL facts), far below this.
pub const MAX_HEADER: usize = 4096;

/// The two ends of the client's connection to the balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// The real client.
    pub client: SocketAddr,
    /// The address the client connected to (the balancer's front end).
    pub server: SocketAddr,
}

/// A complete header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2.
    pub version: u8,
    /// Its length in bytes: what follows belongs to SMTP or TLS.
    pub len: usize,
    /// `None` for v1 `UNKNOWN`, v2 `LOCAL` (health checks) and v2 `PROXY`
    /// with an unspecified family: the connection's own addresses stand.
    pub endpoints: Option<Endpoints>,
}

/// Why a header is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Neither `PROXY ` nor the v2 signature.
    NotProxy,
    /// No CRLF within 107 bytes.
    V1TooLong,
    /// A v1 line that is not `PROXY TCP4|TCP6|UNKNOWN src dst sport dport`.
    V1Syntax(&'static str),
    /// A v2 version other than 2, or a command other than LOCAL/PROXY.
    V2Version,
    /// A family or transport we do not serve (UNIX, DGRAM…).
    V2Family,
    /// The length is too short for the addresses, or TLVs overrun it.
    V2Length,
    /// Longer than [`MAX_HEADER`].
    Oversized,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::NotProxy => f.write_str("not a PROXY protocol header"),
            HeaderError::V1TooLong => write!(f, "v1 header without CRLF in {V1_MAX} bytes"),
            HeaderError::V1Syntax(why) => write!(f, "malformed v1 header: {why}"),
            HeaderError::V2Version => f.write_str("v2 header with an unknown version or command"),
            HeaderError::V2Family => {
                f.write_str("v2 header for a family or transport other than TCP over IPv4/IPv6")
            }
            HeaderError::V2Length => {
                f.write_str("v2 header length does not fit its addresses or TLVs")
            }
            HeaderError::Oversized => write!(f, "v2 header over {MAX_HEADER} bytes"),
        }
    }
}

/// Parse the start of the connection. `Ok(None)`: a valid beginning, read
/// more (every byte of `buf` is part of the header); `Ok(Some(h))`: the
/// header is `buf[..h.len]`.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, HeaderError> {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(HeaderError::NotProxy),
    }
}

/// How many more bytes the header has at least, given the incomplete
/// `buf`: an edge that cannot peek reads no more than this, so it never
/// reads past the header.
pub fn at_least_more(buf: &[u8]) -> usize {
    if buf.first() == Some(&b'\r') && buf.len() >= V2_FIXED {
        let total = V2_FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        return total.saturating_sub(buf.len()).max(1);
    }
    if buf.first() == Some(&b'\r') {
        return V2_FIXED - buf.len();
    }
    // v1: the shortest line is "PROXY UNKNOWN\r\n"; past that, the end
    // can be any byte.
    15usize.saturating_sub(buf.len()).max(1)
}

fn parse_v1(buf: &[u8]) -> Result<Option<Header>, HeaderError> {
    let signature = b"PROXY ";
    let n = buf.len().min(signature.len());
    if buf[..n] != signature[..n] {
        return Err(HeaderError::NotProxy);
    }
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = memchr::memchr(b'\n', window) else {
        if buf.len() >= V1_MAX {
            return Err(HeaderError::V1TooLong);
        }
        // A CR may only stand right before the LF.
        if window[..window.len() - 1].contains(&b'\r') {
            return Err(HeaderError::V1Syntax("CR without LF"));
        }
        return Ok(None);
    };
    let Some(line) = window[..lf].strip_suffix(b"\r") else {
        return Err(HeaderError::V1Syntax("line ends in LF without CR"));
    };
    if line.contains(&b'\r') {
        return Err(HeaderError::V1Syntax("CR without LF"));
    }
    let line = std::str::from_utf8(&line[signature.len()..])
        .map_err(|_| HeaderError::V1Syntax("not ASCII"))?;
    let len = lf + 1;
    let mut fields = line.split(' ');
    let proto = fields.next().unwrap_or("");
    if proto == "UNKNOWN" {
        // The specification: ignore whatever follows up to the CRLF.
        return Ok(Some(Header {
            version: 1,
            len,
            endpoints: None,
        }));
    }
    let v6 = match proto {
        "TCP4" => false,
        "TCP6" => true,
        _ => {
            return Err(HeaderError::V1Syntax(
                "protocol is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    let rest: Vec<&str> = fields.collect();
    let [src, dst, sport, dport] = rest[..] else {
        return Err(HeaderError::V1Syntax(
            "needs exactly source, destination and two ports, one space apart",
        ));
    };
    let ip = |s: &str| -> Result<IpAddr, HeaderError> {
        if v6 {
            s.parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| HeaderError::V1Syntax("bad IPv6 address"))
        } else {
            // Rust's parser takes exactly four decimal octets without
            // leading zeros, as the specification asks.
            s.parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| HeaderError::V1Syntax("bad IPv4 address"))
        }
    };
    Ok(Some(Header {
        version: 1,
        len,
        endpoints: Some(Endpoints {
            client: SocketAddr::new(ip(src)?, port(sport)?),
            server: SocketAddr::new(ip(dst)?, port(dport)?),
        }),
    }))
}

/// A decimal port, 0 to 65535, without sign or leading zeros.
fn port(s: &str) -> Result<u16, HeaderError> {
    let bad = HeaderError::V1Syntax("bad port");
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(bad);
    }
    s.parse().map_err(|_| bad)
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, HeaderError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(HeaderError::NotProxy);
    }
    if buf.len() < V2_FIXED {
        // Check what we can already: the version.
        if buf.len() > 12 && buf[12] >> 4 != 2 {
            return Err(HeaderError::V2Version);
        }
        return Ok(None);
    }
    let (ver_cmd, fam) = (buf[12], buf[13]);
    let len = V2_FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if ver_cmd >> 4 != 2 || ver_cmd & 0x0f > 1 {
        return Err(HeaderError::V2Version);
    }
    if len > MAX_HEADER {
        return Err(HeaderError::Oversized);
    }
    if buf.len() < len {
        return Ok(None);
    }
    let payload = &buf[V2_FIXED..len];
    let local = ver_cmd & 0x0f == 0;
    let (endpoints, addr_len) = if local {
        // LOCAL: the balancer speaking for itself (a health check); the
        // address block, whatever the family says, is ignored.
        (None, payload.len())
    } else {
        match fam {
            // UNSPEC: the specification lets the receiver use the real
            // addresses.
            0x00 => (None, payload.len()),
            0x11 => {
                let a = payload.get(..12).ok_or(HeaderError::V2Length)?;
                let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(a[o], a[o + 1], a[o + 2], a[o + 3]));
                let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
                let e = Endpoints {
                    client: SocketAddr::new(ip(0), port(8)),
                    server: SocketAddr::new(ip(4), port(10)),
                };
                (Some(e), 12)
            }
            0x21 => {
                let a = payload.get(..36).ok_or(HeaderError::V2Length)?;
                let ip = |o: usize| {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&a[o..o + 16]);
                    IpAddr::V6(Ipv6Addr::from(b))
                };
                let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
                let e = Endpoints {
                    client: SocketAddr::new(ip(0), port(32)),
                    server: SocketAddr::new(ip(16), port(34)),
                };
                (Some(e), 36)
            }
            _ => return Err(HeaderError::V2Family),
        }
    };
    // TLVs we do not use are skipped, but they must fit the length exactly.
    let mut tlvs = &payload[addr_len..];
    while !tlvs.is_empty() {
        let [_, hi, lo, ..] = *tlvs else {
            return Err(HeaderError::V2Length);
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        tlvs = tlvs.get(end..).ok_or(HeaderError::V2Length)?;
    }
    Ok(Some(Header {
        version: 2,
        len,
        endpoints,
    }))
}

/// An address as tcpserver writes it in `TCPREMOTEIP`: IPv4 dotted, an
/// IPv4-mapped IPv6 address as plain IPv4 (as tcpserver6 does for IPv4
/// clients), other IPv6 addresses as tcpserver6 formats them.
pub fn tcpserver_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => tcpserver_ipv6(v6),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// tcpserver6's IPv6 form, which tcprules keys must match: lower-case hex
/// groups, the longest run of zero groups (the first of equal runs)
/// written `::`, even a run of one (`2001:db8::1:1:1:1:1`, where RFC 5952
/// and Rust's `Display` keep the lone `0`).
fn tcpserver_ipv6(ip: Ipv6Addr) -> String {
    let g = ip.segments();
    let (mut best, mut run) = ((0, 0), (0, 0));
    for (i, &x) in g.iter().enumerate() {
        if x == 0 {
            if run.1 == 0 {
                run.0 = i;
            }
            run.1 += 1;
            if run.1 > best.1 {
                best = run;
            }
        } else {
            run.1 = 0;
        }
    }
    let hex = |r: &[u16]| {
        r.iter()
            .map(|x| format!("{x:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best.1 == 0 {
        return hex(&g);
    }
    format!("{}::{}", hex(&g[..best.0]), hex(&g[best.0 + best.1..]))
}

/// Whether `ip` (as [`tcpserver_ip`] writes it) is IPv6.
fn is_v6(ip: &str) -> bool {
    ip.contains(':')
}

/// The tcpserver6 form of an address in `TCP6REMOTEIP`: IPv4 as
/// `::ffff:a.b.c.d`.
fn tcp6_ip(ip: &str) -> String {
    if is_v6(ip) {
        ip.to_string()
    } else {
        format!("::ffff:{ip}")
    }
}

/// One change to the environment: set to a value, or unset (`None`).
pub type EnvChange = (String, Option<String>);

/// What tcpserver would have set had the real client connected to it
/// directly: `TCPREMOTEIP`/`PORT` and `TCPLOCALIP`/`PORT` from the header,
/// `TCPREMOTEHOST`/`INFO` dropped (they described the balancer), `PROTO`
/// and, where tcpserver6 is in front (`had_tcp6`) or the client is IPv6,
/// the `TCP6*` variables. Then, with `PROXY_RULES`: the variables the
/// balancer's own rule set are removed, and the real client's rule applied
/// (`client_rule`, its `(name, value)` pairs).
pub fn env_changes(
    endpoints: Endpoints,
    had_tcp6: bool,
    balancer_rule: &[(String, String)],
    client_rule: Option<&[(String, String)]>,
) -> Vec<EnvChange> {
    let remote = tcpserver_ip(endpoints.client.ip());
    let local = tcpserver_ip(endpoints.server.ip());
    let set = |k: &str, v: String| (k.to_string(), Some(v));
    let mut changes = vec![
        set("TCPREMOTEIP", remote.clone()),
        set("TCPREMOTEPORT", endpoints.client.port().to_string()),
        set("TCPLOCALIP", local.clone()),
        set("TCPLOCALPORT", endpoints.server.port().to_string()),
        ("TCPREMOTEHOST".into(), None),
        ("TCPREMOTEINFO".into(), None),
        set("PROTO", if is_v6(&remote) { "TCP6" } else { "TCP" }.into()),
    ];
    if had_tcp6 || is_v6(&remote) || is_v6(&local) {
        changes.extend([
            set("TCP6REMOTEIP", tcp6_ip(&remote)),
            set("TCP6REMOTEPORT", endpoints.client.port().to_string()),
            set("TCP6LOCALIP", tcp6_ip(&local)),
            set("TCP6LOCALPORT", endpoints.server.port().to_string()),
            ("TCP6REMOTEHOST".into(), None),
            ("TCP6REMOTEINFO".into(), None),
        ]);
    }
    if let Some(client) = client_rule {
        for (k, _) in balancer_rule {
            changes.push((k.clone(), None));
        }
        for (k, v) in client {
            changes.push((k.clone(), Some(v.clone())));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    fn v4_block() -> Vec<u8> {
        let mut p = vec![192, 0, 2, 7, 198, 51, 100, 1];
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&25u16.to_be_bytes());
        p
    }

    fn ends(client: &str, server: &str) -> Option<Endpoints> {
        Some(Endpoints {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
        })
    }

    #[test]
    fn v1_table() {
        let ok: &[(&[u8], Option<Endpoints>)] = &[
            (
                b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n",
                ends("192.0.2.7:40000", "198.51.100.1:25"),
            ),
            (
                b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n",
                ends("[2001:db8::7]:65535", "[2001:db8::1]:0"),
            ),
            (
                b"PROXY TCP6 ::ffff:192.0.2.7 ::1 1 25\r\n",
                ends("[::ffff:192.0.2.7]:1", "[::1]:25"),
            ),
            (b"PROXY UNKNOWN\r\n", None),
            (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", None),
        ];
        for (input, endpoints) in ok {
            let h = parse(input).unwrap().unwrap();
            assert_eq!((h.version, h.len), (1, input.len()), "{input:?}");
            assert_eq!(h.endpoints, *endpoints, "{input:?}");
        }
        let bad: &[&[u8]] = &[
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25 9\r\n",
            b"PROXY TCP4  192.0.2.7 198.51.100.1 40000 25\r\n",
            b"PROXY TCP4 192.0.2.07 198.51.100.1 40000 25\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 040000 25\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 -1 25\r\n",
            b"PROXY TCP4 2001:db8::7 198.51.100.1 1 25\r\n",
            b"PROXY TCP6 192.0.2.7 2001:db8::1 1 25\r\n",
            b"PROXY UDP4 192.0.2.7 198.51.100.1 1 25\r\n",
            b"PROXY TCP4 192.0.2.7\r198.51.100.1 1 25\r\n",
            b"PROXY \xff\r\n",
            b"PROXY UNKNOWN a\rb\r\n",
        ];
        for input in bad {
            assert!(
                matches!(parse(input), Err(HeaderError::V1Syntax(_))),
                "{input:?}: {:?}",
                parse(input)
            );
        }
        assert_eq!(parse(b"EHLO x\r\n"), Err(HeaderError::NotProxy));
        assert_eq!(parse(b"PROXZ"), Err(HeaderError::NotProxy));
        assert_eq!(parse(b"PROXY\r\n"), Err(HeaderError::NotProxy));
        assert_eq!(parse(b"\x16\x03\x01"), Err(HeaderError::NotProxy));
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 100]].concat();
        assert_eq!(parse(&long), Err(HeaderError::V1TooLong));
    }

    #[test]
    fn v2_table() {
        let h = parse(&v2(1, 0x11, &v4_block())).unwrap().unwrap();
        assert_eq!(h.len, 28);
        assert_eq!(h.endpoints, ends("192.0.2.7:40000", "198.51.100.1:25"));

        let mut p6 = Vec::new();
        p6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        p6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p6.extend_from_slice(&[0x9c, 0x40, 0, 25]);
        let h = parse(&v2(1, 0x21, &p6)).unwrap().unwrap();
        assert_eq!(h.endpoints, ends("[2001:db8::7]:40000", "[2001:db8::1]:25"));

        // LOCAL and UNSPEC keep the connection's addresses.
        assert_eq!(parse(&v2(0, 0x00, &[])).unwrap().unwrap().endpoints, None);
        assert_eq!(
            parse(&v2(0, 0x11, &v4_block())).unwrap().unwrap().endpoints,
            None
        );
        assert_eq!(parse(&v2(1, 0x00, &[])).unwrap().unwrap().endpoints, None);

        // TLVs after the addresses are skipped when they fit.
        let mut with_tlvs = v4_block();
        with_tlvs.extend_from_slice(&[0x04, 0, 3, 1, 2, 3, 0x01, 0, 0]);
        let bytes = v2(1, 0x11, &with_tlvs);
        let h = parse(&bytes).unwrap().unwrap();
        assert_eq!((h.len, h.endpoints.is_some()), (bytes.len(), true));
        // ... and refused when they overrun it.
        let mut overrun = v4_block();
        overrun.extend_from_slice(&[0x04, 0, 9, 1]);
        assert_eq!(parse(&v2(1, 0x11, &overrun)), Err(HeaderError::V2Length));
        let mut stub = v4_block();
        stub.extend_from_slice(&[0x04, 0]);
        assert_eq!(parse(&v2(1, 0x11, &stub)), Err(HeaderError::V2Length));

        assert_eq!(parse(&v2(1, 0x11, &[1, 2, 3])), Err(HeaderError::V2Length));
        assert_eq!(parse(&v2(1, 0x21, &v4_block())), Err(HeaderError::V2Length));
        assert_eq!(parse(&v2(1, 0x12, &v4_block())), Err(HeaderError::V2Family));
        assert_eq!(parse(&v2(1, 0x31, &[0; 216])), Err(HeaderError::V2Family));
        assert_eq!(
            parse(&v2(2, 0x11, &v4_block())),
            Err(HeaderError::V2Version)
        );
        let mut v3 = v2(1, 0x11, &v4_block());
        v3[12] = 0x31;
        assert_eq!(parse(&v3[..13]), Err(HeaderError::V2Version));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&huge), Err(HeaderError::Oversized));
        let mut sig = V2_SIGNATURE;
        sig[5] = b'x';
        assert_eq!(parse(&sig), Err(HeaderError::NotProxy));
    }

    /// Every proper prefix of a header is "incomplete", never an answer,
    /// and at_least_more never asks past the header's end.
    #[test]
    fn prefixes_are_incomplete_and_bounded() {
        let mut with_tlvs = v4_block();
        with_tlvs.extend_from_slice(&[0x04, 0, 2, 1, 2]);
        let headers = [
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2(1, 0x11, &with_tlvs),
            v2(0, 0x00, &[]),
        ];
        for h in &headers {
            for cut in 0..h.len() {
                assert_eq!(parse(&h[..cut]), Ok(None), "{h:?} cut at {cut}");
                assert!(cut + at_least_more(&h[..cut]) <= h.len(), "{h:?} at {cut}");
            }
            // What follows the header is not part of it.
            let mut more = h.clone();
            more.extend_from_slice(b"EHLO x\r\n");
            assert_eq!(parse(&more).unwrap().unwrap().len, h.len());
        }
    }

    #[test]
    fn environment_as_tcpserver_would_set_it() {
        let e = ends("192.0.2.7:40000", "198.51.100.1:25").unwrap();
        let c = env_changes(e, false, &[], None);
        let get =
            |c: &[EnvChange], k: &str| c.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get(&c, "TCPREMOTEIP"), Some(Some("192.0.2.7".into())));
        assert_eq!(get(&c, "TCPREMOTEPORT"), Some(Some("40000".into())));
        assert_eq!(get(&c, "TCPLOCALIP"), Some(Some("198.51.100.1".into())));
        assert_eq!(get(&c, "TCPREMOTEHOST"), Some(None));
        assert_eq!(get(&c, "TCPREMOTEINFO"), Some(None));
        assert_eq!(get(&c, "PROTO"), Some(Some("TCP".into())));
        assert_eq!(get(&c, "TCP6REMOTEIP"), None);
        // tcpserver6 in front: the TCP6 variables follow, in its form.
        let c = env_changes(e, true, &[], None);
        assert_eq!(
            get(&c, "TCP6REMOTEIP"),
            Some(Some("::ffff:192.0.2.7".into()))
        );
        // An IPv4-mapped client is an IPv4 client, as tcpserver6 says.
        let m = ends("[::ffff:192.0.2.7]:1", "[::1]:25").unwrap();
        let c = env_changes(m, false, &[], None);
        assert_eq!(get(&c, "TCPREMOTEIP"), Some(Some("192.0.2.7".into())));
        assert_eq!(get(&c, "PROTO"), Some(Some("TCP".into())));
        assert_eq!(get(&c, "TCP6LOCALIP"), Some(Some("::1".into())));
        let six = ends("[2001:db8:0:0:1:0:0:7]:1", "[2001:db8::1]:25").unwrap();
        let c = env_changes(six, false, &[], None);
        assert_eq!(
            get(&c, "TCPREMOTEIP"),
            Some(Some("2001:db8::1:0:0:7".into()))
        );
        assert_eq!(get(&c, "PROTO"), Some(Some("TCP6".into())));
        // tcpserver6's own forms, seen from its TCPREMOTEIP.
        for (addr, form) in [
            ("2001:db8:1:0:0:1:0:0", "2001:db8:1::1:0:0"),
            ("2001:0:0:1:0:0:0:7", "2001:0:0:1::7"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8::1:1:1:1:1"),
            ("::1", "::1"),
            ("::", "::"),
            ("fe80::", "fe80::"),
            ("2001:DB8:a:b:c:d:e:f", "2001:db8:a:b:c:d:e:f"),
        ] {
            assert_eq!(tcpserver_ip(addr.parse().unwrap()), form);
        }

        // The balancer's rule is undone, then the client's applied.
        let balancer = [
            ("PROXY_PROTOCOL".to_string(), "1".to_string()),
            ("RELAYCLIENT".to_string(), String::new()),
        ];
        let client = [("SMTPAUTH".to_string(), "!".to_string())];
        let c = env_changes(e, false, &balancer, Some(&client));
        assert_eq!(get(&c, "RELAYCLIENT"), Some(None));
        assert_eq!(get(&c, "PROXY_PROTOCOL"), Some(None));
        assert_eq!(get(&c, "SMTPAUTH"), Some(Some("!".into())));
        // A variable both rules set keeps the client's value.
        let c = env_changes(e, false, &balancer, Some(&balancer[1..]));
        assert_eq!(get(&c, "RELAYCLIENT"), Some(Some(String::new())));
        // Without PROXY_RULES only the addresses change.
        let c = env_changes(e, false, &balancer, None);
        assert_eq!(get(&c, "RELAYCLIENT"), None);
    }
}
