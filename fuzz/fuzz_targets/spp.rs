//! qmail-spp plugin output (`spp::Run`) and `smtpplugins` parsing on
//! arbitrary bytes.
//!
//! Input: what a plugin wrote on stdout (it is also read as an
//! `smtpplugins` file, one line per LF).
//!
//! Properties:
//! - never panics;
//! - at most one verdict, and after it no later line has any effect
//!   (feeding the output line by line, as the edge does, stopping at the
//!   verdict, gives the same result);
//! - every message for the client ends in CRLF, and nothing the session
//!   sends or stores (messages, headers, variables) contains a NUL, which
//!   spp's C strings could never carry;
//! - variable names are non-empty and have no `=`;
//! - `C` counts only at MAIL/RCPT/pass.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qmail_smtpd::core::spp::{Exit, Hook, Plugin, Plugins, Run, chain};

fn check(run: &Run) {
    for part in [
        &run.print,
        &run.message,
        &run.later[0],
        &run.later[1],
        &run.later[2],
    ] {
        assert!(part.is_empty() || part.ends_with(b"\r\n"), "{part:?}");
        assert!(!part.contains(&0));
    }
    assert!(!run.headers.contains(&0));
    for (k, v) in &run.env {
        assert!(!k.is_empty() && !k.contains(&b'=') && !k.contains(&0));
        assert!(!v.as_ref().is_some_and(|v| v.contains(&0)));
    }
    if run.hook.and_then(Hook::address_var).is_none() {
        assert!(run.address.is_none());
    }
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let plugins = Plugins::parse(&lines);
    let _ = plugins.mask();
    let p = Plugin {
        line: b"plugins/fuzz".to_vec(),
    };
    for hook in Hook::ALL {
        let whole = chain(hook, std::slice::from_ref(&p), |p, run| {
            run.plugin(p, data, Exit::Code(0));
            Exit::Code(0)
        });
        check(&whole);
        // Line by line, as the edge reads it, stopping at a verdict.
        let mut run = Run::new(hook);
        for raw in data.split_inclusive(|&b| b == b'\n') {
            if run.line(raw) {
                break;
            }
        }
        assert_eq!(run, whole);
    }
});
