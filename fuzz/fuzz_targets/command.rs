//! `smtp::command::parse` on arbitrary bytes.
//!
//! Input: the raw command line (without its LF; it may contain one, which the
//! session never passes, but the parser must still not panic on it).
//!
//! Properties:
//! - never panics;
//! - an accepted `MAIL`/`RCPT` address has no NUL, CR, LF, other control
//!   byte or DEL, and is at most `MAX_ADDRESS` bytes (a NUL would forge
//!   entries in qmail-queue's envelope);
//! - an error is one of the parser's fixed replies (so it cannot carry client
//!   bytes), a 5xx, and renders as exactly one line ending in CRLF;
//! - a line accepted at all has no NUL or bare CR in it;
//! - an accepted `MAIL` address with a non-ASCII byte came with `SMTPUTF8`
//!   and is valid UTF-8 without control characters (RFC 6531), and the
//!   `RCPT` check (`check_rcpt_utf8`) agrees with the same rule;
//! - borrowed arguments (`HELO`/`EHLO`/`AUTH`) are sub-slices of the line,
//!   HELO/EHLO's non-empty and trimmed;
//! - trailing spaces and a single trailing CR do not change the result.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qmail_smtpd::smtp::command::{Command, MAX_ADDRESS, check_rcpt_utf8, parse};
use qmail_smtpd::smtp::reply::{self, Reply};

/// Every reply `parse` may return. A new error reply in the parser must be
/// added here deliberately: it is the proof that no reply reflects input.
const PARSER_REPLIES: &[Reply] = &[
    reply::NUL_IN_COMMAND,
    reply::NO_ARGUMENTS,
    reply::HELO_NEEDS_DOMAIN,
    reply::MAIL_SYNTAX,
    reply::RCPT_SYNTAX,
    reply::BAD_SENDER_ADDRESS,
    reply::BAD_RCPT_ADDRESS,
    reply::SENDER_TOO_LONG,
    reply::RCPT_TOO_LONG,
    reply::UNKNOWN_PARAMETER,
    reply::NON_ASCII_WITHOUT_SMTPUTF8,
];

/// RFC 6531's rule for an address that is accepted.
fn utf8_ok(addr: &[u8], smtputf8: bool) -> bool {
    addr.is_ascii()
        || (smtputf8 && std::str::from_utf8(addr).is_ok_and(|s| !s.chars().any(char::is_control)))
}

fn check_addr(addr: &[u8]) {
    assert!(addr.len() <= MAX_ADDRESS, "address of {} bytes", addr.len());
    assert!(
        !addr.iter().any(|&b| b < 0x20 || b == 0x7f),
        "control byte in address {addr:?}"
    );
}

/// `inner` lies within `outer` (the parser borrows, never invents).
fn is_subslice(inner: &[u8], outer: &[u8]) -> bool {
    let o = outer.as_ptr_range();
    let i = inner.as_ptr_range();
    inner.is_empty() || (o.start <= i.start && i.end <= o.end)
}

fn check_reply(r: &Reply) {
    assert!(PARSER_REPLIES.contains(r), "unexpected reply {r:?}");
    assert!((500..600).contains(&r.code), "parse error not 5xx: {r:?}");
    let mut v = Vec::new();
    r.render(&mut v);
    assert!(v.ends_with(b"\r\n"), "{v:?}");
    let body = &v[..v.len() - 2];
    assert!(
        body.iter().all(|&b| (0x20..0x7f).contains(&b)),
        "reply not one printable line: {v:?}"
    );
    assert!(body.len() > 4 && body[..3].iter().all(u8::is_ascii_digit) && body[3] == b' ');
}

fn check(line: &[u8]) -> Result<Command<'_>, Reply> {
    let got = parse(line);
    match &got {
        Err(r) => check_reply(r),
        Ok(cmd) => {
            let content = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(
                !content.iter().any(|&b| b == 0 || b == b'\r'),
                "accepted a line with NUL or bare CR: {line:?} -> {cmd:?}"
            );
            match cmd {
                Command::Mail { addr, smtputf8, .. } => {
                    check_addr(addr);
                    assert!(utf8_ok(addr, *smtputf8), "non-ASCII sender {addr:?}");
                }
                Command::Rcpt { addr } => {
                    check_addr(addr);
                    for utf8 in [false, true] {
                        match check_rcpt_utf8(addr, utf8) {
                            Ok(()) => assert!(utf8_ok(addr, utf8), "{addr:?}"),
                            Err(r) => {
                                check_reply(&r);
                                assert!(!utf8_ok(addr, utf8), "{addr:?}");
                            }
                        }
                    }
                }
                Command::Helo(a) | Command::Ehlo(a) => {
                    assert!(is_subslice(a, line));
                    assert!(!a.is_empty());
                    for edge in [a[0], a[a.len() - 1]] {
                        assert!(edge != b' ' && edge != b'\t', "untrimmed {a:?}");
                    }
                }
                Command::Auth(a) => assert!(is_subslice(a, line)),
                _ => {}
            }
        }
    }
    got
}

fuzz_target!(|line: &[u8]| {
    let got = check(line);
    if line.last() != Some(&b'\r') {
        let mut more = line.to_vec();
        more.extend_from_slice(b" \t ");
        assert_eq!(check(&more), got, "trailing spaces changed the result");
        more.truncate(line.len());
        more.push(b'\r');
        assert_eq!(check(&more), got, "a trailing CR changed the result");
    }
});
