//! The pure readers of peer-supplied certificate data: `x509` (e-mail
//! addresses, names, validity, CRL nextUpdate), the SNI name check, and
//! the client-certificate relay decision, on arbitrary bytes.
//!
//! Input: a DER certificate or CRL as a client could send it (the relay
//! decision only reads certificates webpki verified, but the readers must
//! hold on anything), and the same bytes as an SNI name.
//!
//! Properties:
//! - never panics;
//! - every e-mail address found is 1 or more bytes of printable ASCII
//!   without spaces, and a part of the input;
//! - an SNI directory name is a lower-case host name of at most 253
//!   bytes: no `/`, no empty label (so never `.` or `..`), no NUL;
//! - a granted relay names one of the certificate's addresses that is in
//!   the list.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qmail_smtpd::core::certrelay::{CertRelay, ClientCert, decide};
use qmail_smtpd::core::{sni, x509};
use qmail_smtpd::smtp::session::NameSet;

fuzz_target!(|data: &[u8]| {
    let emails = x509::emails(data);
    for e in &emails {
        assert!(!e.is_empty());
        assert!(e.iter().all(|b| (0x21..0x7f).contains(b)), "{e:?}");
        assert!(data.windows(e.len()).any(|w| w == e.as_slice()));
    }
    let _ = x509::issuer_subject(data);
    let _ = x509::validity(data);
    let _ = x509::crl_next_update(data);
    let _ = x509::pkcs8_kind(data);

    if let Some(dir) = sni::dir_name(data) {
        assert!(!dir.is_empty() && dir.len() <= sni::MAX_NAME);
        assert!(
            dir.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
            "{dir:?}"
        );
        assert!(dir.split('.').all(|l| !l.is_empty()), "{dir:?}");
        assert!(dir.eq_ignore_ascii_case(&String::from_utf8_lossy(data)));
    }

    let list = NameSet::new(emails.iter().skip(1).cloned());
    match decide(&ClientCert::Verified(data.to_vec()), &list) {
        CertRelay::Granted(e) => {
            assert!(emails.contains(&e) && list.contains(&e));
        }
        CertRelay::Refused(..) => {
            assert!(!emails.iter().any(|e| e.len() <= 255 && list.contains(e)));
        }
    }
});
