//! The AUTH mechanism exchanges (`qmail_smtpd::smtp::auth`) on arbitrary input.
//!
//! Input: byte 0 picks the mechanism (PLAIN, LOGIN, CRAM-MD5) and whether
//! the first line is an initial response; the rest is split at `\n` into the
//! client's lines (base64 or not, `*`, `=`), fed one by one while the
//! exchange asks for more.
//!
//! Properties:
//! - never panics;
//! - credentials that come out always make a checkpassword record of
//!   exactly three NUL-terminated fields, at most 512 bytes, with a
//!   non-empty user and secret: no input can forge the record;
//! - PLAIN credentials name the authcid, and an authzid, if any, equals it;
//! - CRAM-MD5 credentials carry 32 lower-case hex digits and the challenge;
//! - an exchange takes at most two challenges (LOGIN) before it ends;
//! - the `Debug` form of credentials never contains the secret.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qmail_smtpd::smtp::auth::{Failure, MAX_RECORD, Mechanism, Step, respond, start};

const CHALLENGE: &[u8] = b"<123.1.0123456789abcdef.1795348475@mx.example.org>";

fuzz_target!(|data: &[u8]| {
    let Some((&select, rest)) = data.split_first() else {
        return;
    };
    let mechanism = match select % 3 {
        0 => Mechanism::Plain,
        1 => Mechanism::Login,
        _ => Mechanism::CramMd5,
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let initial = if select & 4 != 0 { lines.next() } else { None };
    let mut step = start(mechanism, initial, || CHALLENGE.to_vec());
    let mut challenges = 0;
    loop {
        match step {
            Step::Challenge(c, exchange) => {
                challenges += 1;
                assert!(challenges <= 2, "{mechanism:?} asked {challenges} times");
                if mechanism == Mechanism::CramMd5 {
                    assert_eq!(c, CHALLENGE);
                }
                let Some(line) = lines.next() else {
                    return;
                };
                step = respond(exchange, line);
            }
            Step::Done(creds) => {
                assert_eq!(creds.mechanism, mechanism);
                let mut record = Vec::new();
                creds.record(&mut record);
                assert!(record.len() <= MAX_RECORD, "{} bytes", record.len());
                assert_eq!(record.iter().filter(|&&b| b == 0).count(), 3);
                assert_eq!(record.last(), Some(&0));
                let fields: Vec<&[u8]> = record.split(|&b| b == 0).collect();
                assert!(!fields[0].is_empty() && !fields[1].is_empty());
                assert_eq!(fields[0], creds.user.as_slice());
                match mechanism {
                    Mechanism::CramMd5 => {
                        assert_eq!(fields[1].len(), 32);
                        assert!(
                            fields[1]
                                .iter()
                                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
                        );
                        assert_eq!(fields[2], CHALLENGE);
                    }
                    _ => assert!(fields[2].is_empty()),
                }
                // Debug shows the mechanism and the user, never the secret.
                let shown = format!("{creds:?}");
                let expected = format!(
                    "Credentials {{ mechanism: {mechanism:?}, user: {:?}, secret: \"<redacted>\" }}",
                    String::from_utf8_lossy(fields[0])
                );
                assert_eq!(shown, expected);
                return;
            }
            Step::Failed(
                Failure::Cancelled
                | Failure::Malformed
                | Failure::ClientFirst
                | Failure::Invalid { .. },
            ) => {
                return;
            }
        }
    }
});
