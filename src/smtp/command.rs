//! One command line → a typed [`Command`], or the exact error reply.
//!
//! The grammar is qmail's liberal one made safe: verbs are case-insensitive,
//! `MAIL FROM:` / `RCPT TO:` accept optional spaces and an address with or
//! without angle brackets, quotes and backslash escapes are stripped and a
//! source route (`@a,@b:user@c`) is dropped, as qmail's `addrparse()` does.
//! Unlike qmail, the parser refuses what qmail let through: NUL and bare CR
//! anywhere in the line, control characters in an address (a NUL would forge
//! entries in qmail-queue's envelope), unterminated `<`, and ESMTP parameters
//! we do not implement (RFC 5321 §4.1.1.11: 555).

use super::reply::{self, Reply};

/// Longest command line accepted, including its CRLF: RFC 5321 §4.5.3.1.4's
/// 512 octets plus the allowances extensions add to MAIL (SIZE, BODY,
/// AUTH=), with margin.
pub const MAX_COMMAND_LINE: usize = 2048;

/// Longest address kept (qmail-smtpd's limit; RFC 5321 paths are 256).
pub const MAX_ADDRESS: usize = 900;

/// RFC 6152 `BODY=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Helo(&'a [u8]),
    Ehlo(&'a [u8]),
    Mail {
        addr: Vec<u8>,
        size: Option<u64>,
        body: Option<Body>,
        /// RFC 6531 `SMTPUTF8`: UTF-8 addresses in this transaction.
        smtputf8: bool,
    },
    Rcpt {
        addr: Vec<u8>,
    },
    Data,
    Rset,
    Noop,
    Vrfy,
    Help,
    Quit,
    StartTls,
    /// `AUTH` and its arguments, left for the AUTH layer to parse.
    Auth(&'a [u8]),
    /// A verb we do not know. Its text is never echoed.
    Unknown,
}

/// Parse one command line. `line` excludes the terminating LF; one CR before
/// it, if present, is removed here.
pub fn parse(line: &[u8]) -> Result<Command<'_>, Reply> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().any(|&b| b == 0 || b == b'\r') {
        return Err(reply::NUL_IN_COMMAND);
    }
    let line = trim_end_spaces(line);
    let (verb, arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], trim_start_spaces(&line[i + 1..])),
        None => (line, &b""[..]),
    };
    let is = |name: &[u8]| verb.eq_ignore_ascii_case(name);
    let no_arg = |c: Command<'static>| {
        if arg.is_empty() {
            Ok(c)
        } else {
            Err(reply::NO_ARGUMENTS)
        }
    };

    if is(b"HELO") || is(b"EHLO") {
        if arg.is_empty() {
            return Err(reply::HELO_NEEDS_DOMAIN);
        }
        return Ok(if is(b"HELO") {
            Command::Helo(arg)
        } else {
            Command::Ehlo(arg)
        });
    }
    if is(b"MAIL") {
        return parse_mail(arg);
    }
    if is(b"RCPT") {
        return parse_rcpt(arg);
    }
    if is(b"DATA") {
        return no_arg(Command::Data);
    }
    if is(b"RSET") {
        return no_arg(Command::Rset);
    }
    if is(b"QUIT") {
        return no_arg(Command::Quit);
    }
    if is(b"STARTTLS") {
        return no_arg(Command::StartTls);
    }
    if is(b"NOOP") {
        return Ok(Command::Noop);
    }
    if is(b"VRFY") {
        return Ok(Command::Vrfy);
    }
    if is(b"HELP") {
        return Ok(Command::Help);
    }
    if is(b"AUTH") {
        return Ok(Command::Auth(arg));
    }
    Ok(Command::Unknown)
}

fn parse_mail(arg: &[u8]) -> Result<Command<'static>, Reply> {
    let rest = strip_prefix_ci(arg, b"FROM:").ok_or(reply::MAIL_SYNTAX)?;
    let (addr, params) = parse_path(trim_start_spaces(rest), Role::Sender)?;
    let mut size = None;
    let mut body = None;
    let mut smtputf8 = false;
    for p in params.split(|&b| b == b' ').filter(|p| !p.is_empty()) {
        let (key, value) = match p.iter().position(|&b| b == b'=') {
            Some(i) => (&p[..i], Some(&p[i + 1..])),
            None => (p, None),
        };
        if key.eq_ignore_ascii_case(b"SIZE") && size.is_none() {
            size = Some(parse_size(value.ok_or(reply::UNKNOWN_PARAMETER)?)?);
        } else if key.eq_ignore_ascii_case(b"AUTH") && value.is_some() {
            // RFC 4954 §5: a server that offers AUTH must accept AUTH=;
            // we trust no client's claim about the original submitter,
            // so it is accepted and ignored.
        } else if key.eq_ignore_ascii_case(b"SMTPUTF8") && value.is_none() && !smtputf8 {
            smtputf8 = true;
        } else if key.eq_ignore_ascii_case(b"BODY") && body.is_none() {
            body = Some(match value {
                Some(v) if v.eq_ignore_ascii_case(b"7BIT") => Body::SevenBit,
                Some(v) if v.eq_ignore_ascii_case(b"8BITMIME") => Body::EightBitMime,
                _ => return Err(reply::UNKNOWN_PARAMETER),
            });
        } else {
            return Err(reply::UNKNOWN_PARAMETER);
        }
    }
    utf8_address(&addr, smtputf8, Role::Sender)?;
    Ok(Command::Mail {
        addr,
        size,
        body,
        smtputf8,
    })
}

/// RFC 6531: an address with non-ASCII bytes needs `SMTPUTF8` on the
/// transaction's MAIL (else `553 5.6.7`) and must be valid UTF-8 (else
/// the role's bad-syntax reply). The session asks this for each RCPT.
pub fn check_rcpt_utf8(addr: &[u8], smtputf8: bool) -> Result<(), Reply> {
    utf8_address(addr, smtputf8, Role::Recipient)
}

fn utf8_address(addr: &[u8], smtputf8: bool, role: Role) -> Result<(), Reply> {
    if addr.is_ascii() {
        return Ok(());
    }
    if !smtputf8 {
        return Err(reply::NON_ASCII_WITHOUT_SMTPUTF8);
    }
    // UTF-8, and no C1 control characters (U+0080..U+009F).
    match std::str::from_utf8(addr) {
        Ok(s) if !s.chars().any(|c| c.is_control()) => Ok(()),
        _ => Err(match role {
            Role::Sender => reply::BAD_SENDER_ADDRESS,
            Role::Recipient => reply::BAD_RCPT_ADDRESS,
        }),
    }
}

fn parse_rcpt(arg: &[u8]) -> Result<Command<'static>, Reply> {
    let rest = strip_prefix_ci(arg, b"TO:").ok_or(reply::RCPT_SYNTAX)?;
    let (addr, params) = parse_path(trim_start_spaces(rest), Role::Recipient)?;
    if !params.is_empty() {
        return Err(reply::UNKNOWN_PARAMETER);
    }
    Ok(Command::Rcpt { addr })
}

/// RFC 1870 size value: 1 to 20 digits; larger values saturate.
fn parse_size(v: &[u8]) -> Result<u64, Reply> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return Err(reply::UNKNOWN_PARAMETER);
    }
    Ok(v.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Whose address a path is: the replies differ (RFC 3463 X.1.7 / X.1.3).
#[derive(Clone, Copy)]
enum Role {
    Sender,
    Recipient,
}

/// Parse `<path>` or a bare address; returns the cleaned address and the
/// rest of the line (the ESMTP parameters, leading spaces removed).
fn parse_path(s: &[u8], role: Role) -> Result<(Vec<u8>, &[u8]), Reply> {
    let (syntax, bad, too_long) = match role {
        Role::Sender => (
            reply::MAIL_SYNTAX,
            reply::BAD_SENDER_ADDRESS,
            reply::SENDER_TOO_LONG,
        ),
        Role::Recipient => (
            reply::RCPT_SYNTAX,
            reply::BAD_RCPT_ADDRESS,
            reply::RCPT_TOO_LONG,
        ),
    };
    let (raw, rest) = if let Some(inner) = s.strip_prefix(b"<") {
        let end = find_unquoted(inner, b'>').ok_or(syntax)?;
        let rest = &inner[end + 1..];
        if !rest.is_empty() && rest[0] != b' ' {
            return Err(syntax);
        }
        (&inner[..end], trim_start_spaces(rest))
    } else {
        // qmail's liberal form: `MAIL FROM:user@host` ends at a space.
        let end = find_unquoted(s, b' ').unwrap_or(s.len());
        let raw = &s[..end];
        if raw.is_empty() || raw.contains(&b'<') || raw.contains(&b'>') {
            return Err(syntax);
        }
        (raw, trim_start_spaces(&s[end..]))
    };
    let raw = strip_source_route(raw).ok_or(syntax)?;
    let addr = unquote(raw).ok_or(syntax)?;
    if addr.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(bad);
    }
    if addr.len() > MAX_ADDRESS {
        return Err(too_long);
    }
    Ok((addr, rest))
}

/// Position of the first `stop` byte outside quotes and escapes.
fn find_unquoted(s: &[u8], stop: u8) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == stop && !quoted {
            return Some(i);
        }
    }
    None
}

/// `@a,@b:user@c` → `user@c`. A route without its `:` is a syntax error.
fn strip_source_route(s: &[u8]) -> Option<&[u8]> {
    if s.first() == Some(&b'@') {
        let colon = s.iter().position(|&b| b == b':')?;
        Some(&s[colon + 1..])
    } else {
        Some(s)
    }
}

/// Remove quotes and backslash escapes as qmail does; an unbalanced quote
/// or a trailing backslash is a syntax error.
fn unquote(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut quoted = false;
    let mut escaped = false;
    for &b in s {
        if escaped {
            out.push(b);
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else {
            out.push(b);
        }
    }
    (!quoted && !escaped).then_some(out)
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

fn trim_start_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

fn trim_end_spaces(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rev()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    &s[..s.len() - n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(addr: &str) -> Command<'static> {
        Command::Mail {
            addr: addr.as_bytes().to_vec(),
            size: None,
            body: None,
            smtputf8: false,
        }
    }

    fn mail_utf8(addr: &str) -> Command<'static> {
        Command::Mail {
            addr: addr.as_bytes().to_vec(),
            size: None,
            body: None,
            smtputf8: true,
        }
    }

    fn rcpt(addr: &str) -> Command<'static> {
        Command::Rcpt {
            addr: addr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn table() {
        let cases: &[(&[u8], Result<Command<'static>, Reply>)] = &[
            (b"HELO a.example", Ok(Command::Helo(b"a.example"))),
            (b"helo a.example\r", Ok(Command::Helo(b"a.example"))),
            (b"EHLO  [192.0.2.1]  ", Ok(Command::Ehlo(b"[192.0.2.1]"))),
            (b"EHLO", Err(reply::HELO_NEEDS_DOMAIN)),
            (b"HELO   ", Err(reply::HELO_NEEDS_DOMAIN)),
            (b"MAIL FROM:<a@b.example>", Ok(mail("a@b.example"))),
            (b"mail from: <a@b.example>", Ok(mail("a@b.example"))),
            (b"MAIL FROM:a@b.example", Ok(mail("a@b.example"))),
            (b"MAIL FROM:<>", Ok(mail(""))),
            (b"MAIL FROM:<@r1,@r2:a@b.example>", Ok(mail("a@b.example"))),
            (b"MAIL FROM:<@r1,@r2>", Err(reply::MAIL_SYNTAX)),
            (b"MAIL FROM:<\"a b\"@c.example>", Ok(mail("a b@c.example"))),
            (b"MAIL FROM:<\"a>b\"@c.example>", Ok(mail("a>b@c.example"))),
            (b"MAIL FROM:<a\\>b@c>", Ok(mail("a>b@c"))),
            (b"MAIL FROM:<\"unterminated@c>", Err(reply::MAIL_SYNTAX)),
            (b"MAIL FROM:<a@b", Err(reply::MAIL_SYNTAX)),
            (b"MAIL FROM:<a@b>x", Err(reply::MAIL_SYNTAX)),
            (b"MAIL FROM:", Err(reply::MAIL_SYNTAX)),
            (b"MAIL TO:<a@b>", Err(reply::MAIL_SYNTAX)),
            (b"MAIL", Err(reply::MAIL_SYNTAX)),
            (b"MAIL FROM:x<a@b>", Err(reply::MAIL_SYNTAX)),
            (
                b"MAIL FROM:<a@b> SIZE=1000 BODY=8BITMIME",
                Ok(Command::Mail {
                    addr: b"a@b".to_vec(),
                    size: Some(1000),
                    body: Some(Body::EightBitMime),
                    smtputf8: false,
                }),
            ),
            (
                b"MAIL FROM:<a@b> size=99999999999999999999 body=7bit",
                Ok(Command::Mail {
                    addr: b"a@b".to_vec(),
                    size: Some(u64::MAX),
                    body: Some(Body::SevenBit),
                    smtputf8: false,
                }),
            ),
            (b"MAIL FROM:<a@b> SIZE=", Err(reply::UNKNOWN_PARAMETER)),
            (b"MAIL FROM:<a@b> SIZE", Err(reply::UNKNOWN_PARAMETER)),
            (b"MAIL FROM:<a@b> SIZE=12a", Err(reply::UNKNOWN_PARAMETER)),
            (
                b"MAIL FROM:<a@b> SIZE=1 SIZE=2",
                Err(reply::UNKNOWN_PARAMETER),
            ),
            (
                b"MAIL FROM:<a@b> BODY=BINARYMIME",
                Err(reply::UNKNOWN_PARAMETER),
            ),
            (b"MAIL FROM:<a@b> SMTPUTF8", Ok(mail_utf8("a@b"))),
            (b"MAIL FROM:<a@b> smtputf8", Ok(mail_utf8("a@b"))),
            (
                "MAIL FROM:<j\u{f6}rg@b\u{fc}cher.example> SMTPUTF8".as_bytes(),
                Ok(mail_utf8("j\u{f6}rg@b\u{fc}cher.example")),
            ),
            (
                "MAIL FROM:<\u{7528}\u{6237}@\u{4f8b}\u{5b50}.\u{6d4b}\u{8bd5}> SMTPUTF8 SIZE=1"
                    .as_bytes(),
                Ok(Command::Mail {
                    addr: "\u{7528}\u{6237}@\u{4f8b}\u{5b50}.\u{6d4b}\u{8bd5}"
                        .as_bytes()
                        .to_vec(),
                    size: Some(1),
                    body: None,
                    smtputf8: true,
                }),
            ),
            (
                "MAIL FROM:<j\u{f6}rg@b.example>".as_bytes(),
                Err(reply::NON_ASCII_WITHOUT_SMTPUTF8),
            ),
            (
                b"MAIL FROM:<j\xf6rg@b.example> SMTPUTF8",
                Err(reply::BAD_SENDER_ADDRESS),
            ),
            (
                "MAIL FROM:<a\u{85}b@c> SMTPUTF8".as_bytes(),
                Err(reply::BAD_SENDER_ADDRESS),
            ),
            (
                b"MAIL FROM:<a@b> SMTPUTF8 SMTPUTF8",
                Err(reply::UNKNOWN_PARAMETER),
            ),
            (b"MAIL FROM:<a@b> SMTPUTF8=1", Err(reply::UNKNOWN_PARAMETER)),
            (b"MAIL FROM:<a@b> SMTPUTF8X", Err(reply::UNKNOWN_PARAMETER)),
            (b"MAIL FROM:<a@b> RET=HDRS", Err(reply::UNKNOWN_PARAMETER)),
            (b"MAIL FROM:<a\x01b@c>", Err(reply::BAD_SENDER_ADDRESS)),
            (b"MAIL FROM:<a\x7fb@c>", Err(reply::BAD_SENDER_ADDRESS)),
            (b"MAIL FROM:<a\tb@c>", Err(reply::BAD_SENDER_ADDRESS)),
            (b"RCPT TO:<a\x01b@c>", Err(reply::BAD_RCPT_ADDRESS)),
            (b"RCPT TO:<c@d.example>", Ok(rcpt("c@d.example"))),
            (b"rcpt to:c@d.example", Ok(rcpt("c@d.example"))),
            (b"RCPT TO:<postmaster>", Ok(rcpt("postmaster"))),
            (b"RCPT TO:<c@d> NOTIFY=NEVER", Err(reply::UNKNOWN_PARAMETER)),
            (b"RCPT FROM:<c@d>", Err(reply::RCPT_SYNTAX)),
            (b"RCPT TO:", Err(reply::RCPT_SYNTAX)),
            (b"DATA", Ok(Command::Data)),
            (b"data  ", Ok(Command::Data)),
            (b"DATA x", Err(reply::NO_ARGUMENTS)),
            (b"RSET", Ok(Command::Rset)),
            (b"RSET now", Err(reply::NO_ARGUMENTS)),
            (b"QUIT", Ok(Command::Quit)),
            (b"STARTTLS", Ok(Command::StartTls)),
            (b"STARTTLS x", Err(reply::NO_ARGUMENTS)),
            (b"NOOP anything", Ok(Command::Noop)),
            (b"VRFY root", Ok(Command::Vrfy)),
            (b"HELP", Ok(Command::Help)),
            (b"AUTH PLAIN AGFAYgBj", Ok(Command::Auth(b"PLAIN AGFAYgBj"))),
            (b"GET / HTTP/1.1", Ok(Command::Unknown)),
            (b"", Ok(Command::Unknown)),
            (b"MAILX FROM:<a@b>", Ok(Command::Unknown)),
            (b"NOOP\0", Err(reply::NUL_IN_COMMAND)),
            (b"MAIL FROM:<a\0b@c>", Err(reply::NUL_IN_COMMAND)),
            (b"NOOP\rRSET", Err(reply::NUL_IN_COMMAND)),
            (b"NOOP\r\r", Err(reply::NUL_IN_COMMAND)),
        ];
        for (line, want) in cases {
            assert_eq!(
                &parse(line),
                want,
                "line {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn rcpt_utf8() {
        assert_eq!(check_rcpt_utf8(b"a@b", false), Ok(()));
        assert_eq!(check_rcpt_utf8("\u{e9}@b".as_bytes(), true), Ok(()));
        assert_eq!(
            check_rcpt_utf8("\u{e9}@b".as_bytes(), false),
            Err(reply::NON_ASCII_WITHOUT_SMTPUTF8)
        );
        assert_eq!(
            check_rcpt_utf8(b"\xe9@b", true),
            Err(reply::BAD_RCPT_ADDRESS)
        );
        assert_eq!(
            check_rcpt_utf8(b"\xed\xa0\x80@b", true),
            Err(reply::BAD_RCPT_ADDRESS),
            "a surrogate is not UTF-8"
        );
    }

    #[test]
    fn address_length_limit() {
        let mut line = b"MAIL FROM:<".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_ADDRESS));
        line.push(b'>');
        assert!(parse(&line).is_ok());
        line.insert(12, b'a');
        assert_eq!(parse(&line), Err(reply::SENDER_TOO_LONG));
        let mut line = b"RCPT TO:<".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_ADDRESS + 1));
        line.push(b'>');
        assert_eq!(parse(&line), Err(reply::RCPT_TOO_LONG));
    }

    #[test]
    fn never_panics_on_short_garbage() {
        let alphabet = b"<>\"\\@: =\r\0aMAILFROMRCPTTOSIZE";
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..20_000 {
            let mut line = Vec::new();
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                line.push(alphabet[(x as usize) % alphabet.len()]);
            }
            let _ = parse(&line);
        }
    }
}
