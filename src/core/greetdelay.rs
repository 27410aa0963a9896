//! The greeting delay of the combined patches: jms1's `GREETDELAY` and
//! `DROP_PRE_GREET`, sagredo's `SMTPD_GREETDELAY`. A client that speaks
//! before the `220` is not following the protocol (RFC 5321 §3.1: the
//! client waits for the greeting), which is typical of spam software.
//!
//! [`from_env`] is the pure decision; [`run`] is the small edge that waits
//! on the link (after the TLS handshake under SMTPS, so the `554` goes
//! inside TLS).

use std::time::{Duration, Instant};

use crate::core::policy::number;
use crate::io::fd::IoError;
use crate::io::log;
use crate::io::transport::Transport;
use crate::smtp::reply;

/// How to wait before the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreetDelay {
    /// How long the client must stay silent.
    pub wait: Duration,
    /// `DROP_PRE_GREET`: an early talker gets `554` and is dropped;
    /// otherwise what it sent is thrown away and the wait goes on.
    pub drop: bool,
}

/// Decide from the variables. jms1: `GREETDELAY` seconds, for every
/// client (relay clients too); `DROP_PRE_GREET` alone waits 1 second.
/// sagredo: `SMTPD_GREETDELAY` seconds, only without `RELAYCLIENT`.
/// `None`: greet at once.
pub fn from_env<'a>(get: impl Fn(&str) -> Option<&'a [u8]>) -> Option<GreetDelay> {
    let jms1 = number(get("GREETDELAY"));
    let sagredo = if get("RELAYCLIENT").is_some() {
        0
    } else {
        number(get("SMTPD_GREETDELAY"))
    };
    let drop = number(get("DROP_PRE_GREET")) > 0;
    let secs = if jms1 > 0 { jms1 } else { sagredo };
    if secs == 0 && !drop {
        return None;
    }
    Some(GreetDelay {
        wait: Duration::from_secs(secs.max(1)),
        drop,
    })
}

/// What happened during the wait.
#[derive(Debug)]
pub enum Outcome {
    /// The client stayed silent: greet it.
    Greet,
    /// It spoke first, `n` bytes thrown away; greet it (no `DROP_PRE_GREET`).
    Discarded(usize),
    /// It spoke first under `DROP_PRE_GREET`.
    EarlyTalker(usize),
    /// It closed the connection, or the link failed.
    Gone(String),
}

/// Wait on the link as `delay` says.
pub fn wait(link: &mut Transport, delay: &GreetDelay) -> Outcome {
    link.set_read_deadline(Some(Instant::now() + delay.wait));
    let mut buf = [0u8; 4096];
    let mut early = 0usize;
    let outcome = loop {
        match link.read(&mut buf) {
            Err(IoError::Timeout) if early > 0 => break Outcome::Discarded(early),
            Err(IoError::Timeout) => break Outcome::Greet,
            Ok(0) => break Outcome::Gone("client disconnected before the greeting".into()),
            Ok(n) if delay.drop => break Outcome::EarlyTalker(n),
            Ok(n) => early = early.saturating_add(n),
            Err(IoError::Io(e)) => break Outcome::Gone(format!("read error: {e}")),
        }
    };
    link.set_read_deadline(None);
    outcome
}

/// Wait; `Some(exit code)` when the connection is over (logged, with a
/// summary line like a served session's, `how=early_talker` or
/// `how=eof`).
pub fn run(delay: &GreetDelay, link: &mut Transport, summary: &str) -> Option<i32> {
    let started = Instant::now();
    let end = |how: &str, rejected: &str| {
        log::line(&format!(
            "end {summary}{rejected} duration={:.3}s how={how}",
            started.elapsed().as_secs_f64()
        ));
    };
    match wait(link, delay) {
        Outcome::Greet => None,
        Outcome::Discarded(n) => {
            log::line(&format!(
                "greeting delay: discarded {n} bytes sent before the greeting"
            ));
            None
        }
        Outcome::EarlyTalker(n) => {
            log::line(&format!(
                "greeting delay: client sent {n} bytes before the greeting: dropped (DROP_PRE_GREET)"
            ));
            let mut out = Vec::new();
            reply::PROTOCOL_VIOLATION.render(&mut out);
            let _ = link.write_all(&out);
            link.close();
            end("early_talker", " rejected=554x1");
            Some(1)
        }
        Outcome::Gone(why) => {
            log::line(&format!("greeting delay: {why}"));
            end("eof", "");
            Some(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(vars: &[(&str, &str)]) -> Option<(u64, bool)> {
        from_env(|n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_bytes())
        })
        .map(|d| (d.wait.as_secs(), d.drop))
    }

    #[test]
    fn switches() {
        assert_eq!(decide(&[]), None);
        assert_eq!(decide(&[("GREETDELAY", "0")]), None);
        assert_eq!(decide(&[("GREETDELAY", "5")]), Some((5, false)));
        assert_eq!(
            decide(&[("GREETDELAY", "5"), ("RELAYCLIENT", "")]),
            Some((5, false)),
            "jms1: relay clients wait too"
        );
        assert_eq!(decide(&[("DROP_PRE_GREET", "1")]), Some((1, true)));
        assert_eq!(decide(&[("DROP_PRE_GREET", "0")]), None);
        assert_eq!(decide(&[("SMTPD_GREETDELAY", "3")]), Some((3, false)));
        assert_eq!(
            decide(&[("SMTPD_GREETDELAY", "3"), ("RELAYCLIENT", "")]),
            None,
            "sagredo: not for relay clients"
        );
        assert_eq!(
            decide(&[("SMTPD_GREETDELAY", "3"), ("DROP_PRE_GREET", "1")]),
            Some((3, true))
        );
        assert_eq!(
            decide(&[("GREETDELAY", "2"), ("SMTPD_GREETDELAY", "9")]),
            Some((2, false)),
            "GREETDELAY wins"
        );
    }
}
