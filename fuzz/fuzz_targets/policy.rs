//! The Postfix policy service reply (`policy_delegation::parse_reply`)
//! and the meaning of its action (`decide`), on arbitrary bytes.
//!
//! Input: what a policy service wrote on the connection.
//!
//! Properties:
//! - never panics;
//! - a reply is complete at its first empty line: any prefix that ends
//!   before it is `Partial` (or `Garbage` when over the size limit);
//! - a refusal is a 4xx/5xx code with an enhanced code of the same class,
//!   and its text, like a PREPEND header, is one line of printable ASCII
//!   (nothing the service says can break the SMTP reply or the message);
//! - the action applied twice gives the same verdict.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qmail_smtpd::core::policy_delegation::{Decision, Reply, decide, parse_reply};

fn printable(t: &[u8]) -> bool {
    t.iter().all(|b| (0x20..0x7f).contains(b))
}

fn check_action(a: &[u8]) {
    let v = decide(a);
    match &v.decision {
        Decision::Accept => {}
        Decision::Prepend(h) => assert!(!h.is_empty() && printable(h)),
        Decision::Refuse(code, enh, text) => {
            assert!((400..600).contains(code), "{code}");
            let class = char::from(b'0' + (code / 100) as u8);
            assert!(
                enh.starts_with(class) && enh.split('.').count() == 3,
                "{enh}"
            );
            assert!(!text.is_empty() && printable(text), "{text:?}");
        }
    }
    assert_eq!(decide(a), v);
}

fuzz_target!(|data: &[u8]| {
    let whole = parse_reply(data);
    if let Reply::Action(a) = &whole {
        check_action(a);
    }
    // The action text alone, as an operator's default action.
    check_action(data);
    for cut in [0, data.len() / 2, data.len().saturating_sub(1)] {
        let part = parse_reply(&data[..cut]);
        if matches!(whole, Reply::Partial) {
            assert!(
                !matches!(part, Reply::Action(_)),
                "a prefix completed a partial reply"
            );
        }
    }
});
