//! Relaying by client certificate through the pure session core: what a
//! grant or a refusal changes at RCPT and in the Received header.

use qmail_smtpd::core::certrelay::CertRelay;
use qmail_smtpd::smtp::session::{Action, Config, LookupError, Lookups, NameSet, Output, Session};

struct Fake;

impl Lookups for Fake {
    fn more_rcpthosts(&self, _: &[u8]) -> Result<bool, LookupError> {
        Ok(false)
    }
    fn is_local_ip(&self, _: [u8; 4]) -> bool {
        false
    }
    fn tls_available(&self) -> bool {
        true
    }
    fn cram_challenge(&self) -> Vec<u8> {
        b"<1@mx.test>".to_vec()
    }
}

/// A session after a TLS handshake whose certificate earned `relay`
/// (`None`: no certificate was asked for); returns the replies to `input`
/// and, if DATA was reached, the Received header.
fn run(relay: Option<CertRelay>, input: &str) -> (String, String) {
    let mut cfg = Config::new(b"mx.test");
    cfg.rcpthosts = Some(NameSet::new([b"example.org".to_vec()]));
    cfg.remote_ip = b"192.0.2.7".to_vec();
    cfg.remote_host = b"client.test".to_vec();
    cfg.local_host = b"mx.test".to_vec();
    let mut s = Session::new(cfg, Fake);
    s.tls_started("TLSv1.3 TLS13_AES_256_GCM_SHA384".into());
    if let Some(r) = relay {
        s.client_certificate(r);
    }
    let mut out = Output::default();
    let (_, action) = s.feed(input.as_bytes(), &mut out);
    if action == Action::OpenQueue {
        s.queue_opened(Ok(7), 1_795_348_475, &mut out);
    }
    (
        String::from_utf8(out.replies).unwrap(),
        String::from_utf8(out.body).unwrap(),
    )
}

const FAR: &str = "EHLO c.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<x@far.test>\r\nDATA\r\n";

#[test]
fn a_granted_certificate_relays_and_is_named_in_received() {
    let (replies, body) = run(Some(CertRelay::Granted(b"relay@example.org".to_vec())), FAR);
    assert!(replies.contains("250 2.1.5 ok\r\n"), "{replies}");
    assert!(replies.contains("354 "), "{replies}");
    assert!(
        body.contains(
            "  by mx.test with ESMTPS (TLSv1.3 TLS13_AES_256_GCM_SHA384)\n  (cert relay@example.org); 22 Nov 2026"
        ),
        "{body}"
    );
}

#[test]
fn a_refused_certificate_says_why_and_no_certificate_asked_says_nothing() {
    let (replies, body) = run(
        Some(CertRelay::Refused("email address not in tlsclients", None)),
        FAR,
    );
    assert!(
        replies.contains("553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts; no valid cert for gatewaying: email address not in tlsclients\r\n"),
        "{replies}"
    );
    assert!(body.is_empty());
    let (replies, _) = run(None, FAR);
    assert!(
        replies.contains("553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts\r\n"),
        "{replies}"
    );
    // Our own domains, and no "(cert" without a grant.
    let local = "EHLO c.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n";
    let (replies, body) = run(Some(CertRelay::Refused("no certificate", None)), local);
    assert!(replies.contains("250 2.1.5 ok\r\n"), "{replies}");
    assert!(
        body.contains("(TLSv1.3 TLS13_AES_256_GCM_SHA384); 22 Nov"),
        "{body}"
    );
    assert!(!body.contains("(cert"), "{body}");
}
