//! `proxy::parse` (the PROXY protocol v1/v2 header) on arbitrary bytes.
//!
//! Input: the first bytes of a connection, as a load balancer would send
//! them (header, then whatever follows).
//!
//! Properties:
//! - never panics;
//! - a complete header claims at least one byte and no more than the
//!   input, at most 107 bytes for v1 and `MAX_HEADER` for v2, and parses
//!   the same from its own bytes alone (nothing after it was needed);
//! - every proper prefix of a complete header is "incomplete" (so an edge
//!   that consumes an incomplete header's bytes never eats SMTP or TLS),
//!   and `at_least_more` never asks past the header's end;
//! - an error stays an error however many bytes follow (no later byte can
//!   turn a bad header good);
//! - the addresses, when given, render in tcpserver's form without
//!   panicking, and `env_changes` names only variables with no `=` or NUL.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qmail_smtpd::core::proxy::{MAX_HEADER, V1_MAX, at_least_more, env_changes, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Some(h)) => {
            assert!(h.len >= 1 && h.len <= data.len());
            assert!(h.len <= if h.version == 1 { V1_MAX } else { MAX_HEADER });
            assert_eq!(parse(&data[..h.len]), Ok(Some(h)));
            for cut in 0..h.len {
                assert_eq!(parse(&data[..cut]), Ok(None), "prefix {cut}");
                assert!(cut + at_least_more(&data[..cut]) <= h.len);
            }
            if let Some(e) = h.endpoints {
                let rules = [("A".to_string(), "1".to_string())];
                for (k, v) in env_changes(e, true, &rules, Some(&rules)) {
                    assert!(!k.is_empty() && !k.contains(['=', '\0']));
                    assert!(v.is_none_or(|v| !v.contains('\0')));
                }
            }
        }
        Ok(None) => {
            assert!(data.len() < MAX_HEADER);
            assert!(at_least_more(data) >= 1);
        }
        Err(e) => {
            let mut longer = data.to_vec();
            longer.extend_from_slice(b"\r\nEHLO x\r\n");
            assert!(parse(&longer).is_err(), "{e:?} became good");
        }
    }
});
