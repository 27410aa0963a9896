//! RCPTCHECK, the external recipient check both combined patches share,
//! as a pure decision: what the program's exit and its fd-4 reply mean.
//! The program is run by the edge (src/io/rcptcheck.rs) with `SENDER`,
//! `RECIPIENT`, `HELO`, `USE_FD4=1` in its environment, stdin `/dev/null`
//! (never the client's socket), stdout to the log, a reply read from fd 4
//! and a timeout after which its process group is killed.
//!
//! | exit | meaning |
//! |---|---|
//! | 100 | refuse: the fd-4 reply, else `553 5.1.1 sorry, no mailbox here by that name` |
//! | 111 | temporary: the fd-4 reply if 4xx, else `451 4.3.0 unable to verify recipient` |
//! | 112 | accept (sagredo "ignore") |
//! | 113 | over a limit: the fd-4 reply, else `421 4.7.0 you have exceeded your messaging limits`; a 421 ends the session |
//! | 120, a signal, not runnable | `451 4.3.0 unable to execute recipient check` |
//! | timeout | `451 4.4.3 recipient check timed out` |
//! | anything else (0…) | accept |

use crate::smtp::reply::{self, Reply};

/// The longest fd-4 reply used (the patches' buffer).
pub const MAX_FD4_REPLY: usize = 1021;

/// Default time the program may take, seconds (`RCPTCHECK_TIMEOUT`).
pub const DEFAULT_TIMEOUT: u64 = 60;

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Exited(i32),
    Signaled,
    TimedOut,
    /// It could not be started.
    NotRun,
}

/// What the edge reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit: Exit,
    /// What it wrote on fd 4 (at most [`MAX_FD4_REPLY`] bytes kept).
    pub fd4: Vec<u8>,
}

/// What the session does with the recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `None`: accept. Otherwise the rendered reply (CRLF-terminated).
    pub reply: Option<Vec<u8>>,
    /// End the session after the reply.
    pub close: bool,
    /// For the log.
    pub why: String,
}

/// The program's reply, if it is a well-formed SMTP reply with a code in
/// `codes`: every line `ddd` + space or `-` + printable ASCII, the same
/// code throughout; re-rendered with proper separators and CRLFs.
pub fn fd4_reply(text: &[u8], codes: std::ops::RangeInclusive<u16>) -> Option<(u16, Vec<u8>)> {
    let text = &text[..text.len().min(MAX_FD4_REPLY)];
    let mut end = text.len();
    while end > 0 && matches!(text[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    let lines: Vec<&[u8]> = text[..end]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    let code_of = |l: &[u8]| -> Option<u16> {
        let digits = l.get(..3)?;
        if !digits.iter().all(u8::is_ascii_digit) || !matches!(l.get(3), None | Some(b' ' | b'-')) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let code = code_of(lines.first()?)?;
    if !codes.contains(&code) {
        return None;
    }
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if code_of(l) != Some(code) || !l.iter().all(|&b| (0x20..0x7f).contains(&b)) {
            return None;
        }
        out.extend_from_slice(&l[..3]);
        out.push(if i + 1 < lines.len() { b'-' } else { b' ' });
        out.extend_from_slice(l.get(4..).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
    }
    Some((code, out))
}

fn rendered(r: Reply) -> Vec<u8> {
    let mut v = Vec::new();
    r.render(&mut v);
    v
}

/// Decide from the program's outcome.
pub fn decide(o: &Outcome) -> Decision {
    let refuse = |reply: Vec<u8>, close: bool, why: String| Decision {
        reply: Some(reply),
        close,
        why,
    };
    let accept = |why: String| Decision {
        reply: None,
        close: false,
        why,
    };
    match o.exit {
        Exit::Exited(100) => match fd4_reply(&o.fd4, 400..=599) {
            Some((_, r)) => refuse(r, false, "exit 100 with its own reply".into()),
            None => refuse(
                rendered(reply::RCPTCHECK_NO_MAILBOX),
                false,
                "exit 100".into(),
            ),
        },
        Exit::Exited(111) => match fd4_reply(&o.fd4, 400..=499) {
            Some((code, r)) => refuse(r, code == 421, "exit 111 with its own reply".into()),
            None => refuse(rendered(reply::RCPTCHECK_TEMP), false, "exit 111".into()),
        },
        Exit::Exited(112) => accept("exit 112: ignore".into()),
        Exit::Exited(113) => match fd4_reply(&o.fd4, 400..=599) {
            Some((code, r)) => refuse(r, code == 421, "exit 113 with its own reply".into()),
            None => refuse(
                rendered(reply::RCPTCHECK_OVERLIMIT),
                true,
                "exit 113".into(),
            ),
        },
        Exit::Exited(120) => refuse(rendered(reply::RCPTCHECK_FAILED), false, "exit 120".into()),
        Exit::Signaled => refuse(
            rendered(reply::RCPTCHECK_FAILED),
            false,
            "killed by a signal".into(),
        ),
        Exit::NotRun => refuse(
            rendered(reply::RCPTCHECK_FAILED),
            false,
            "could not be run".into(),
        ),
        Exit::TimedOut => refuse(
            rendered(reply::RCPTCHECK_TIMEOUT),
            false,
            "timed out: process group killed".into(),
        ),
        Exit::Exited(c) => accept(format!("exit {c}: accept")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(exit: Exit, fd4: &str) -> Decision {
        decide(&Outcome {
            exit,
            fd4: fd4.as_bytes().to_vec(),
        })
    }

    fn text(d: &Decision) -> String {
        String::from_utf8(d.reply.clone().unwrap()).unwrap()
    }

    #[test]
    fn exits() {
        use Exit::*;
        assert_eq!(d(Exited(0), "").reply, None);
        assert_eq!(d(Exited(1), "550 ignored").reply, None);
        assert_eq!(d(Exited(112), "").reply, None);
        assert_eq!(
            text(&d(Exited(100), "")),
            "553 5.1.1 sorry, no mailbox here by that name\r\n"
        );
        assert_eq!(
            text(&d(Exited(100), "550 5.1.1 <x> unknown user\n")),
            "550 5.1.1 <x> unknown user\r\n"
        );
        assert_eq!(
            text(&d(Exited(100), "hello, no code")),
            "553 5.1.1 sorry, no mailbox here by that name\r\n",
            "an invalid fd-4 reply falls back"
        );
        assert_eq!(
            text(&d(Exited(111), "")),
            "451 4.3.0 unable to verify recipient\r\n"
        );
        assert!(!d(Exited(111), "").close);
        assert_eq!(
            text(&d(Exited(111), "550 not a temporary code")),
            "451 4.3.0 unable to verify recipient\r\n"
        );
        let over = d(Exited(113), "");
        assert!(over.close);
        assert!(text(&over).starts_with("421 4.7.0 "));
        let over = d(Exited(113), "452 4.5.3 slow down\r\n");
        assert!(!over.close);
        assert_eq!(text(&over), "452 4.5.3 slow down\r\n");
        for e in [Exited(120), Signaled, NotRun] {
            assert_eq!(
                text(&d(e, "550 x")),
                "451 4.3.0 unable to execute recipient check\r\n"
            );
        }
        assert!(text(&d(TimedOut, "")).starts_with("451 4.4.3 "));
    }

    #[test]
    fn fd4_replies_are_checked() {
        let r = |s: &str| {
            fd4_reply(s.as_bytes(), 400..=599).map(|(_, v)| String::from_utf8(v).unwrap())
        };
        assert_eq!(r("550 a\n550 b\n").as_deref(), Some("550-a\r\n550 b\r\n"));
        assert_eq!(r("550-a\r\n550 b").as_deref(), Some("550-a\r\n550 b\r\n"));
        assert_eq!(r("550"), Some("550 \r\n".into()));
        assert_eq!(r("550 a\n551 b"), None, "one code");
        assert_eq!(r("250 ok"), None);
        assert_eq!(r("55x bad"), None);
        assert_eq!(r("550 tab\there"), None);
        assert_eq!(r("550 caf\u{e9}"), None);
        assert_eq!(r("550x"), None);
        assert_eq!(r(""), None);
        let long = format!("550 {}", "a".repeat(2000));
        assert_eq!(
            r(&long).unwrap().len(),
            MAX_FD4_REPLY + 2,
            "cut at the buffer size"
        );
    }
}
