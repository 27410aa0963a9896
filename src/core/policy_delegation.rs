//! Pure core of the Postfix SMTP access policy delegation protocol
//! (SMTPD_POLICY_README): the request we send a policy service (postgrey,
//! policyd-spf, …) at RCPT, the reply it gives, and what its `action=`
//! means for the recipient (Postfix access(5) actions that make sense
//! before DATA). The edge (`io/policy_client.rs`) only moves the bytes.
//!
//! A request is `name=value` lines and an empty line; so is the reply, of
//! which only `action=` counts.

/// The largest reply we read (Postfix: `line_length_limit`, 2048, per line).
pub const MAX_REPLY: usize = 4096;

/// Postfix's `smtpd_policy_service_default_action`: what a service that
/// cannot be reached, times out or answers garbage means.
pub const DEFAULT_FAILURE_ACTION: &[u8] = b"451 4.3.5 Server configuration problem";

/// Build a request from attributes, in order. Values cannot break the
/// framing: control bytes (a LF would end the attribute, an empty line the
/// request) become `?`.
pub fn request(attrs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    for (name, value) in attrs {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend(
            value
                .iter()
                .map(|&b| if b < 0x20 || b == 0x7f { b'?' } else { b }),
        );
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// Where a reply stands while it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Not complete yet: read more.
    Partial,
    /// The value of `action=` (the last one, if several).
    Action(Vec<u8>),
    /// Complete without an `action=`, or over [`MAX_REPLY`]: garbage.
    Garbage(&'static str),
}

/// Look at what was read so far of a reply (`\n`-separated attributes
/// ending with an empty line; a `\r` before `\n` is tolerated).
pub fn parse_reply(buf: &[u8]) -> Reply {
    let mut action = None;
    let mut rest = buf;
    loop {
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            return if buf.len() > MAX_REPLY {
                Reply::Garbage("reply too long")
            } else {
                Reply::Partial
            };
        };
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        rest = &rest[nl + 1..];
        if line.is_empty() {
            if buf.len() - rest.len() > MAX_REPLY {
                return Reply::Garbage("reply too long");
            }
            return match action {
                Some(a) => Reply::Action(a),
                None => Reply::Garbage("no action= in the reply"),
            };
        }
        if let Some(v) = line.strip_prefix(b"action=") {
            action = Some(v.to_vec());
        }
    }
}

/// What an action means for the recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accept it (OK, DUNNO, DEFER_IF_REJECT, WARN, INFO…).
    Accept,
    /// Accept it and add this header line to the message (PREPEND).
    Prepend(Vec<u8>),
    /// Refuse it with this reply (`code`, enhanced code, text).
    Refuse(u16, String, Vec<u8>),
}

/// An action and what to log about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    /// A line for the log (WARN, INFO, an unknown action), if any.
    pub log: Option<String>,
}

fn printable(s: &[u8]) -> String {
    crate::smtp::session::printable(s)
}

/// Reply text from a policy service: one line of printable ASCII.
fn clean(text: &[u8]) -> Vec<u8> {
    text.iter()
        .map(|&b| if (0x20..0x7f).contains(&b) { b } else { b'?' })
        .collect()
}

/// `x.y.z` at the start of `text` with `x` the code's class: the
/// enhanced code and the rest.
fn enhanced(class: u8, text: &[u8]) -> Option<(String, &[u8])> {
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    let code = &text[..end];
    let parts: Vec<&[u8]> = code.split(|&b| b == b'.').collect();
    let ok = parts.len() == 3
        && parts[0] == [class]
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.iter().all(u8::is_ascii_digit));
    ok.then(|| {
        let rest = &text[end..];
        (
            String::from_utf8_lossy(code).into_owned(),
            rest.strip_prefix(b" ").unwrap_or(rest),
        )
    })
}

fn refuse(code: u16, text: &[u8], default_text: &[u8]) -> Decision {
    let class = b'0' + u8::try_from(code / 100).unwrap_or(4);
    let (enh, text) = match enhanced(class, text) {
        Some((e, t)) => (e, t),
        None => (format!("{}.7.1", class as char), text),
    };
    let text = if text.is_empty() { default_text } else { text };
    Decision::Refuse(code, enh, clean(text))
}

/// What an `action=` value means (access(5), case-insensitive verbs).
pub fn decide(action: &[u8]) -> Verdict {
    let action = action.trim_ascii();
    let split = action
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(action.len());
    let verb = action[..split].to_ascii_uppercase();
    let text = action[split..].trim_ascii();
    let plain = |decision| Verdict {
        decision,
        log: None,
    };
    match verb.as_slice() {
        b"OK" | b"DUNNO" | b"DEFER_IF_REJECT" => plain(Decision::Accept),
        b"REJECT" => plain(refuse(554, text, b"Access denied")),
        b"DEFER" => plain(refuse(450, text, b"Try again later")),
        b"DEFER_IF_PERMIT" => plain(refuse(450, text, b"Try again later")),
        b"PREPEND" if !text.is_empty() => plain(Decision::Prepend(clean(text))),
        b"WARN" => Verdict {
            decision: Decision::Accept,
            log: Some(format!("policy service: WARN {}", printable(text))),
        },
        b"INFO" => Verdict {
            decision: Decision::Accept,
            log: Some(format!("policy service: INFO {}", printable(text))),
        },
        v if v.len() == 3 && v.iter().all(u8::is_ascii_digit) && (v[0] == b'4' || v[0] == b'5') => {
            let code = v.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
            plain(refuse(code, text, b"Access denied"))
        }
        _ => Verdict {
            decision: refuse(451, b"4.3.5 Server configuration problem", b""),
            log: Some(format!(
                "policy service: unsupported action \"{}\": temporary failure",
                printable(action)
            )),
        },
    }
}

/// The key size of a TLS cipher suite, from its name (for
/// `encryption_keysize`); 0 when unknown.
pub fn cipher_keysize(cipher: &str) -> u32 {
    if cipher.contains("AES_256") || cipher.contains("CHACHA20") {
        256
    } else if cipher.contains("AES_128") {
        128
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16, enh: &str, text: &str) -> Decision {
        Decision::Refuse(code, enh.into(), text.as_bytes().to_vec())
    }

    #[test]
    fn actions() {
        let t: &[(&str, Decision, bool)] = &[
            ("OK", Decision::Accept, false),
            ("ok", Decision::Accept, false),
            ("DUNNO", Decision::Accept, false),
            ("  dunno  ", Decision::Accept, false),
            ("DEFER_IF_REJECT spam", Decision::Accept, false),
            ("REJECT", refused(554, "5.7.1", "Access denied"), false),
            ("REJECT go away", refused(554, "5.7.1", "go away"), false),
            (
                "reject 5.7.9 go away",
                refused(554, "5.7.9", "go away"),
                false,
            ),
            ("DEFER", refused(450, "4.7.1", "Try again later"), false),
            ("DEFER later", refused(450, "4.7.1", "later"), false),
            (
                "DEFER_IF_PERMIT Greylisted, see http://postgrey.schweikert.ch/help/example.org.html",
                refused(
                    450,
                    "4.7.1",
                    "Greylisted, see http://postgrey.schweikert.ch/help/example.org.html",
                ),
                false,
            ),
            ("450 4.2.0 busy", refused(450, "4.2.0", "busy"), false),
            (
                "550 5.1.1 no such user",
                refused(550, "5.1.1", "no such user"),
                false,
            ),
            (
                "550 no such user",
                refused(550, "5.7.1", "no such user"),
                false,
            ),
            (
                "550 4.1.1 mismatched class",
                refused(550, "5.7.1", "4.1.1 mismatched class"),
                false,
            ),
            ("421", refused(421, "4.7.1", "Access denied"), false),
            (
                "PREPEND X-Greylist: delayed 2 seconds",
                Decision::Prepend(b"X-Greylist: delayed 2 seconds".to_vec()),
                false,
            ),
            ("WARN odd", Decision::Accept, true),
            ("INFO fine", Decision::Accept, true),
            (
                "250 ok",
                refused(451, "4.3.5", "Server configuration problem"),
                true,
            ),
            (
                "DISCARD",
                refused(451, "4.3.5", "Server configuration problem"),
                true,
            ),
            (
                "PREPEND",
                refused(451, "4.3.5", "Server configuration problem"),
                true,
            ),
            (
                "",
                refused(451, "4.3.5", "Server configuration problem"),
                true,
            ),
            (
                "FROB x",
                refused(451, "4.3.5", "Server configuration problem"),
                true,
            ),
            ("REJECT a\x01b", refused(554, "5.7.1", "a?b"), false),
        ];
        for (action, want, logged) in t {
            let v = decide(action.as_bytes());
            assert_eq!(&v.decision, want, "{action:?}");
            assert_eq!(v.log.is_some(), *logged, "{action:?}");
        }
        assert_eq!(
            decide(DEFAULT_FAILURE_ACTION).decision,
            refused(451, "4.3.5", "Server configuration problem")
        );
    }

    #[test]
    fn replies() {
        assert_eq!(parse_reply(b""), Reply::Partial);
        assert_eq!(parse_reply(b"action=DUNNO\n"), Reply::Partial);
        assert_eq!(
            parse_reply(b"action=DUNNO\n\n"),
            Reply::Action(b"DUNNO".to_vec())
        );
        assert_eq!(
            parse_reply(b"foo=bar\r\naction=OK\r\n\r\n"),
            Reply::Action(b"OK".to_vec())
        );
        assert_eq!(
            parse_reply(b"action=A\naction=B\n\n"),
            Reply::Action(b"B".to_vec())
        );
        assert!(matches!(parse_reply(b"\n"), Reply::Garbage(_)));
        assert!(matches!(
            parse_reply(b"HTTP/1.0 200 OK\n\n"),
            Reply::Garbage(_)
        ));
        assert!(matches!(
            parse_reply(&[b'x'; MAX_REPLY + 1]),
            Reply::Garbage(_)
        ));
        let mut long = b"action=".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_REPLY));
        long.extend_from_slice(b"\n\n");
        assert!(matches!(parse_reply(&long), Reply::Garbage(_)));
    }

    #[test]
    fn requests() {
        assert_eq!(
            request(&[
                ("request", b"smtpd_access_policy"),
                ("helo_name", b"evil\n\nx=y"),
            ]),
            b"request=smtpd_access_policy\nhelo_name=evil??x=y\n\n"
        );
        assert_eq!(cipher_keysize("TLS13_AES_256_GCM_SHA384"), 256);
        assert_eq!(cipher_keysize("TLS13_AES_128_GCM_SHA256"), 128);
        assert_eq!(cipher_keysize("TLS13_CHACHA20_POLY1305_SHA256"), 256);
        assert_eq!(cipher_keysize("X"), 0);
    }
}
