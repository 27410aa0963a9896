//! The policy engine: from the environment tcpserver/tcprules set, decide
//! what the link is and what is offered. Pure: it sees the variables as
//! values, never the process environment.
//!
//! Every dialect operators carry over is read here, with one precedence:
//!
//! | variable     | origin  | meaning here                                          |
//! |--------------|---------|-------------------------------------------------------|
//! | `SSL`        | jms1    | > 0: TLS was done upstream (sslserver, stunnel): the link is secure, no STARTTLS |
//! | `SMTPS`      | sagredo | set: TLS handshake before the greeting (port 465)     |
//! | `DENY_TLS`   | jms1    | > 0: no STARTTLS for this client                      |
//! | `DISABLETLS` | sagredo | > 0: no STARTTLS for this client                      |
//! | `FORCE_TLS`  | jms1    | > 0: MAIL refused until TLS is active                 |
//!
//! A value "> 0" is read as qmail reads numbers (`scan_ulong`): leading
//! digits, so `1` is on and `0`, empty or `yes` are off.
//!
//! Contradictions refuse the connection (421) rather than guess:
//! `FORCE_TLS` with `DENY_TLS`/`DISABLETLS` (mail could never be sent), and
//! `SMTPS` with `SSL` (TLS would be stacked twice).

use crate::smtp::reply::{self, Reply};

/// How the link to the client is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Plain TCP; STARTTLS may upgrade it.
    Plain,
    /// TLS handshake before the greeting (`SMTPS`), done by us.
    ImplicitTls,
    /// TLS terminated upstream (`SSL`): we see plaintext, the wire is secure.
    UpstreamTls,
}

/// The TLS policy for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsPolicy {
    pub link: Link,
    /// STARTTLS may be offered (if a certificate is usable).
    pub starttls: bool,
    /// MAIL needs an encrypted link.
    pub force_tls: bool,
}

/// A setting mix that cannot be served: the connection gets `reply` and
/// the log gets `why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contradiction {
    pub why: String,
    pub reply: Reply,
}

/// qmail's `scan_ulong` applied to an environment value: leading digits.
pub fn number(v: Option<&[u8]>) -> u64 {
    v.map_or(0, |v| {
        v.iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u64, |n, &d| {
                n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            })
    })
}

impl TlsPolicy {
    /// Decide from the variables; `get` returns a variable's value if set.
    pub fn from_env<'a>(
        get: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Result<TlsPolicy, Contradiction> {
        let on = |name: &str| number(get(name)) > 0;
        let ssl = on("SSL");
        let smtps = get("SMTPS").is_some();
        let deny = on("DENY_TLS") || on("DISABLETLS");
        let force = on("FORCE_TLS");
        if ssl && smtps {
            return Err(Contradiction {
                why: "SSL (TLS done upstream) and SMTPS (TLS done here) are both set".into(),
                reply: reply::POLICY_CONTRADICTION,
            });
        }
        let link = if ssl {
            Link::UpstreamTls
        } else if smtps {
            Link::ImplicitTls
        } else {
            Link::Plain
        };
        if force && deny && link == Link::Plain {
            return Err(Contradiction {
                why: "FORCE_TLS is set but DENY_TLS/DISABLETLS forbid STARTTLS: no mail could be accepted".into(),
                reply: reply::POLICY_CONTRADICTION,
            });
        }
        Ok(TlsPolicy {
            link,
            starttls: link == Link::Plain && !deny,
            force_tls: force,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(vars: &[(&str, &str)]) -> Result<TlsPolicy, Contradiction> {
        TlsPolicy::from_env(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_bytes())
        })
    }

    #[test]
    fn numbers_as_qmail_reads_them() {
        assert_eq!(number(None), 0);
        assert_eq!(number(Some(b"")), 0);
        assert_eq!(number(Some(b"1")), 1);
        assert_eq!(number(Some(b"12abc")), 12);
        assert_eq!(number(Some(b"yes")), 0);
    }

    #[test]
    fn matrix() {
        use Link::*;
        let ok = |link, starttls, force_tls| {
            Ok(TlsPolicy {
                link,
                starttls,
                force_tls,
            })
        };
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<TlsPolicy, ()>);
        let cases: &[Case] = &[
            (&[], ok(Plain, true, false)),
            (&[("DENY_TLS", "1")], ok(Plain, false, false)),
            (&[("DENY_TLS", "0")], ok(Plain, true, false)),
            (&[("DISABLETLS", "1")], ok(Plain, false, false)),
            (&[("FORCE_TLS", "1")], ok(Plain, true, true)),
            (&[("FORCE_TLS", "1"), ("DENY_TLS", "1")], Err(())),
            (&[("FORCE_TLS", "1"), ("DISABLETLS", "1")], Err(())),
            (&[("SSL", "1")], ok(UpstreamTls, false, false)),
            (
                &[("SSL", "1"), ("FORCE_TLS", "1")],
                ok(UpstreamTls, false, true),
            ),
            (
                &[("SSL", "1"), ("FORCE_TLS", "1"), ("DENY_TLS", "1")],
                ok(UpstreamTls, false, true),
            ),
            (&[("SSL", "0")], ok(Plain, true, false)),
            (&[("SMTPS", "")], ok(ImplicitTls, false, false)),
            (
                &[("SMTPS", "1"), ("FORCE_TLS", "1")],
                ok(ImplicitTls, false, true),
            ),
            (&[("SMTPS", "1"), ("SSL", "1")], Err(())),
        ];
        for (vars, want) in cases {
            let got = policy(vars).map_err(|_| ());
            assert_eq!(&got, want, "{vars:?}");
        }
    }
}
