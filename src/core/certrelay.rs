//! Pure: relaying for a client certificate, as the qmail-tls patch
//! configures it (`control/clientca.pem`, `control/tlsclients`). The TLS
//! edge reports what the handshake showed ([`ClientCert`]); [`decide`]
//! turns it into a grant or the reason for none, which the session uses
//! at RCPT time and in the Received header.

use crate::smtp::session::NameSet;

/// What the client showed when a certificate was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCert {
    /// It sent none.
    None,
    /// It sent one that does not verify against `clientca.pem` (unknown
    /// CA, expired, revoked, wrong key usage, bad signature): why.
    NotVerified(String),
    /// It sent one that verifies: the end-entity certificate, DER.
    Verified(Vec<u8>),
}

/// The session's answer to a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertRelay {
    /// A verified certificate names this address, listed in `tlsclients`:
    /// the client may relay for the rest of the session.
    Granted(Vec<u8>),
    /// No relay, and why (for the 553 reply and the log; never client
    /// text).
    Refused(&'static str, Option<String>),
}

impl CertRelay {
    /// The reason as the 553 reply and the log give it.
    pub fn reason(&self) -> String {
        match self {
            CertRelay::Granted(_) => String::new(),
            CertRelay::Refused(why, None) => (*why).to_string(),
            CertRelay::Refused(why, Some(detail)) => format!("{why}: {detail}"),
        }
    }
}

/// Longest address compared (the qmail-tls patch truncates at 255).
pub const MAX_EMAIL: usize = 255;

/// Decide on `cert` with the addresses of `tlsclients`: the first address
/// the certificate names (subject `emailAddress`, then `rfc822Name`
/// subjectAltNames) that is listed, compared ASCII case-insensitively.
pub fn decide(cert: &ClientCert, tlsclients: &NameSet) -> CertRelay {
    let leaf = match cert {
        ClientCert::None => return CertRelay::Refused("no certificate", None),
        ClientCert::NotVerified(why) => {
            return CertRelay::Refused("not verified", Some(sanitise(why)));
        }
        ClientCert::Verified(leaf) => leaf,
    };
    let emails: Vec<Vec<u8>> = crate::core::x509::emails(leaf)
        .into_iter()
        .filter(|e| e.len() <= MAX_EMAIL)
        .collect();
    if emails.is_empty() {
        return CertRelay::Refused("no email address in the certificate", None);
    }
    match emails.into_iter().find(|e| tlsclients.contains(e)) {
        Some(e) => CertRelay::Granted(e),
        None => CertRelay::Refused("email address not in tlsclients", None),
    }
}

/// A verifier's message for a reply line: printable ASCII only, bounded.
fn sanitise(why: &str) -> String {
    why.chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate whose subject has one emailAddress (no signature:
    /// the decision trusts the verifier).
    fn cert_with_email(email: &[u8]) -> Vec<u8> {
        fn el(tag: u8, c: &[u8]) -> Vec<u8> {
            let mut v = vec![tag, u8::try_from(c.len()).unwrap()];
            v.extend_from_slice(c);
            v
        }
        let oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
        let subject = el(0x31, &el(0x30, &[el(0x06, &oid), el(0x16, email)].concat()));
        let t = el(0x17, b"260101000000Z");
        let tbs = [
            el(0x02, &[1]),
            el(0x30, &[]),
            el(0x30, &[]),
            el(0x30, &[t.clone(), t].concat()),
            el(0x30, &subject),
            el(0x30, &[]),
        ]
        .concat();
        el(0x30, &el(0x30, &tbs))
    }

    #[test]
    fn decisions() {
        let list = NameSet::new([b"relay@example.org".to_vec()]);
        let listed = cert_with_email(b"Relay@Example.ORG");
        assert_eq!(
            decide(&ClientCert::Verified(listed.clone()), &list),
            CertRelay::Granted(b"Relay@Example.ORG".to_vec())
        );
        let other = cert_with_email(b"other@example.org");
        let cases = [
            (ClientCert::None, "no certificate"),
            (
                ClientCert::NotVerified("invalid peer certificate: UnknownIssuer\r\n".into()),
                "not verified: invalid peer certificate: UnknownIssuer??",
            ),
            (
                ClientCert::Verified(other),
                "email address not in tlsclients",
            ),
            (
                ClientCert::Verified(vec![0x30, 0x00]),
                "no email address in the certificate",
            ),
        ];
        for (cert, reason) in cases {
            let d = decide(&cert, &list);
            assert!(matches!(d, CertRelay::Refused(..)), "{cert:?}");
            assert_eq!(d.reason(), reason);
        }
        // An empty tlsclients grants nothing.
        assert!(matches!(
            decide(&ClientCert::Verified(listed), &NameSet::default()),
            CertRelay::Refused(..)
        ));
    }
}
