//! The greeting delay of the combined patches: jms1's `GREETDELAY` and
//! `DROP_PRE_GREET`, sagredo's `SMTPD_GREETDELAY`. A client that speaks
//! before the `220` is not following the protocol (RFC 5321 §3.1: the
//! client waits for the greeting), which is typical of spam software.
//!
//! [`from_env`] is the pure decision; [`crate::io::greetdelay::run`] is
//! the small edge that waits on the link (after the TLS handshake under
//! SMTPS, so the `554` goes inside TLS).

use std::time::Duration;

use crate::core::policy::number;

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
