//! The policy engine: from the environment tcpserver/tcprules set, decide
//! what the link is, what is offered and what is allowed. Pure: it sees the
//! variables as values, never the process environment, and the same
//! functions answer both "what does EHLO advertise" and "is this command
//! allowed", so the two cannot disagree.
//!
//! Every dialect operators carry over is read here (the table is
//! [`SWITCHES`]; the man page's table is checked against it). One
//! precedence, from strongest to weakest:
//!
//! 1. A contradiction refuses the connection (421) rather than guess:
//!    `FORCE_TLS` with `DENY_TLS`/`DISABLETLS`, `SSL` with `SMTPS`, AUTH
//!    required (`REQUIRE_AUTH`, `SMTPAUTH=!…`) while AUTH is off or could
//!    never be offered.
//! 2. AUTH is on when a checkpassword program is given on the command
//!    line; `SMTPAUTH=-` turns it off.
//! 3. Mechanisms: `SMTPAUTH`, when set, decides (`""` PLAIN LOGIN, `cram`
//!    CRAM-MD5 only, `+cram` all three); otherwise PLAIN LOGIN, plus
//!    CRAM-MD5 with `ALLOW_CRAM`.
//! 4. AUTH on an unencrypted link only with `ALLOW_INSECURE_AUTH` or
//!    `FORCETLS=0`; otherwise it is neither advertised nor accepted there.
//!
//! A value "> 0" is read as qmail reads numbers (`scan_ulong`): leading
//! digits, so `1` is on and `0`, empty or `yes` are off.

use crate::smtp::auth::Mechanism;
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
    v.and_then(scan_ulong).unwrap_or(0)
}

/// qmail's `scan_ulong`: the leading decimal digits (saturating); `None`
/// when there are none.
pub fn scan_ulong(s: &[u8]) -> Option<u64> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    (digits > 0).then(|| {
        s[..digits].iter().fold(0u64, |n, &d| {
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

/// Where a switch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Qmail,
    /// John Simpson's combined patch.
    Jms1,
    /// Roberto Puzzanghera's (sagredo) and Erwin Hoffmann's patches.
    Sagredo,
    /// This program.
    Ours,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Qmail => "qmail",
            Dialect::Jms1 => "jms1",
            Dialect::Sagredo => "sagredo",
            Dialect::Ours => "ours",
        }
    }
}

/// Every switch the policy reads: name, origin, meaning here.
pub const SWITCHES: &[(&str, Dialect, &str)] = &[
    (
        "SSL",
        Dialect::Jms1,
        "> 0: TLS was done upstream (sslserver, stunnel): the link is secure, no STARTTLS",
    ),
    (
        "SMTPS",
        Dialect::Sagredo,
        "set: TLS handshake before the greeting (port 465)",
    ),
    (
        "DENY_TLS",
        Dialect::Jms1,
        "> 0: no STARTTLS for this client",
    ),
    (
        "DISABLETLS",
        Dialect::Sagredo,
        "> 0: no STARTTLS for this client",
    ),
    (
        "FORCE_TLS",
        Dialect::Jms1,
        "> 0: MAIL refused until TLS is active",
    ),
    (
        "SMTPAUTH",
        Dialect::Sagredo,
        "- off; empty PLAIN LOGIN; cram CRAM-MD5 only; +cram all three; a leading ! requires AUTH before MAIL",
    ),
    (
        "REQUIRE_AUTH",
        Dialect::Jms1,
        "> 0: MAIL refused until AUTH",
    ),
    (
        "ALLOW_CRAM",
        Dialect::Jms1,
        "> 0: offer CRAM-MD5 too (when SMTPAUTH is not set)",
    ),
    (
        "ALLOW_INSECURE_AUTH",
        Dialect::Jms1,
        "> 0: AUTH allowed without TLS",
    ),
    (
        "FORCETLS",
        Dialect::Sagredo,
        "exactly 0: AUTH allowed without TLS (default: AUTH only under TLS)",
    ),
    (
        "FORCEAUTHMAILFROM",
        Dialect::Sagredo,
        "> 0: an authenticated client's MAIL FROM must be its user name",
    ),
    (
        "AUTH_SET_<VAR>",
        Dialect::Jms1,
        "after AUTH, set <VAR> to the value (e.g. AUTH_SET_DATABYTES)",
    ),
    ("AUTH_UNSET_<VAR>", Dialect::Jms1, "after AUTH, unset <VAR>"),
    (
        "RELAYCLIENT",
        Dialect::Qmail,
        "set: relaying allowed, the value appended to each recipient",
    ),
];

/// The AUTH policy for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthPolicy {
    /// A back-end is configured and `SMTPAUTH` is not `-`.
    pub enabled: bool,
    pub plain_login: bool,
    pub cram: bool,
    /// AUTH may run on an unencrypted link.
    pub insecure_ok: bool,
    /// MAIL is refused until AUTH succeeded.
    pub required: bool,
    /// An authenticated client's MAIL FROM must be its user name.
    pub force_mail_from: bool,
}

impl AuthPolicy {
    /// No AUTH at all (no back-end).
    pub const OFF: AuthPolicy = AuthPolicy {
        enabled: false,
        plain_login: false,
        cram: false,
        insecure_ok: false,
        required: false,
        force_mail_from: false,
    };

    /// Decide from the variables, given whether a checkpassword back-end is
    /// configured and what the TLS switches decided.
    pub fn from_env<'a>(
        get: impl Fn(&str) -> Option<&'a [u8]>,
        backend: bool,
        tls: &TlsPolicy,
    ) -> Result<AuthPolicy, Contradiction> {
        let on = |name: &str| number(get(name)) > 0;
        let smtpauth = get("SMTPAUTH");
        let (required_by_smtpauth, shape) = match smtpauth {
            Some(v) => match v.strip_prefix(b"!") {
                Some(rest) => (true, Some(rest)),
                None => (false, Some(v)),
            },
            None => (false, None),
        };
        let (enabled, plain_login, cram) = match shape {
            Some(b"-") => (false, false, false),
            Some(v) if v.eq_ignore_ascii_case(b"cram") => (backend, false, true),
            Some(v) if v.eq_ignore_ascii_case(b"+cram") => (backend, true, true),
            // sagredo: any other value means PLAIN LOGIN.
            Some(_) => (backend, true, false),
            None => (backend, true, on("ALLOW_CRAM")),
        };
        let required = on("REQUIRE_AUTH") || required_by_smtpauth;
        let insecure_ok = on("ALLOW_INSECURE_AUTH") || get("FORCETLS") == Some(b"0");
        let contradiction = |why: &str| {
            Err(Contradiction {
                why: why.into(),
                reply: reply::POLICY_CONTRADICTION,
            })
        };
        if required && !enabled {
            return contradiction(if backend {
                "AUTH is required (REQUIRE_AUTH or SMTPAUTH=!) but SMTPAUTH=- turns it off"
            } else {
                "AUTH is required (REQUIRE_AUTH or SMTPAUTH=!) but no checkpassword program is given"
            });
        }
        if required && tls.link == Link::Plain && !tls.starttls && !insecure_ok {
            return contradiction(
                "AUTH is required but could never be offered: STARTTLS is denied (DENY_TLS/DISABLETLS) and AUTH without TLS is not allowed",
            );
        }
        Ok(AuthPolicy {
            enabled,
            plain_login: enabled && plain_login,
            cram: enabled && cram,
            insecure_ok,
            required,
            force_mail_from: enabled && on("FORCEAUTHMAILFROM"),
        })
    }

    /// The mechanisms this policy allows, in the order EHLO lists them.
    pub fn mechanisms(&self) -> Vec<Mechanism> {
        let mut m = Vec::new();
        if self.plain_login {
            m.extend([Mechanism::Plain, Mechanism::Login]);
        }
        if self.cram {
            m.push(Mechanism::CramMd5);
        }
        m
    }
}

/// The facts of the moment that the decisions depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    /// Encrypted: after STARTTLS, under SMTPS, or upstream (`SSL`).
    pub secure: bool,
    /// STARTTLS is offered now (allowed for this client, a usable
    /// certificate, not yet in TLS).
    pub starttls: bool,
    pub authenticated: bool,
}

/// The decisions: one function per capability, used by both the EHLO
/// keyword list and the command checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub tls: TlsPolicy,
    pub auth: AuthPolicy,
}

impl Policy {
    /// Read both policies from the variables.
    pub fn from_env<'a>(
        get: impl Fn(&str) -> Option<&'a [u8]> + Copy,
        backend: bool,
    ) -> Result<Policy, Contradiction> {
        let tls = TlsPolicy::from_env(get)?;
        let auth = AuthPolicy::from_env(get, backend, &tls)?;
        Ok(Policy { tls, auth })
    }

    /// May AUTH run now? `Ok` with the mechanisms EHLO advertises (never
    /// empty), or the reply an AUTH command gets.
    pub fn auth(&self, st: LinkState) -> Result<Vec<Mechanism>, Reply> {
        let mechs = self.auth.mechanisms();
        if !self.auth.enabled || mechs.is_empty() {
            return Err(reply::AUTH_NOT_AVAILABLE);
        }
        if st.authenticated {
            return Err(reply::AUTH_ALREADY);
        }
        if !st.secure && !self.auth.insecure_ok {
            return Err(if st.starttls {
                reply::MUST_STARTTLS
            } else {
                reply::ENCRYPTION_REQUIRED
            });
        }
        Ok(mechs)
    }

    /// May MAIL be given now? (The sender check of `FORCEAUTHMAILFROM` is
    /// [`Policy::sender`].)
    pub fn mail(&self, st: LinkState) -> Result<(), Reply> {
        if self.tls.force_tls && !st.secure {
            return Err(reply::MUST_STARTTLS);
        }
        if self.auth.required && !st.authenticated {
            return Err(reply::AUTH_REQUIRED);
        }
        Ok(())
    }

    /// `FORCEAUTHMAILFROM`: an authenticated client may only send as its
    /// user name (compared case-insensitively).
    pub fn sender(&self, user: Option<&[u8]>, sender: &[u8]) -> Result<(), Reply> {
        match user {
            Some(u) if self.auth.force_mail_from && !u.eq_ignore_ascii_case(sender) => {
                Err(reply::SENDER_NOT_USER)
            }
            _ => Ok(()),
        }
    }
}

/// The man page's list of switches, from [`SWITCHES`] (roff; checked by
/// `tests/manpage.rs`, so the page cannot drift from the code).
pub fn man_switches() -> String {
    let mut out = String::new();
    for (name, dialect, meaning) in SWITCHES {
        out.push_str(&format!(
            ".TP\n.B {}\n[{}] {}\n",
            roff_escape(name),
            dialect.name(),
            roff_escape(meaning)
        ));
    }
    out
}

/// The man page's policy matrix, computed by the engine itself: for each
/// setting, what EHLO advertises, what AUTH gets and whether MAIL is
/// accepted before AUTH, on each kind of link.
pub fn man_matrix() -> String {
    /// (title, variables, checkpassword given)
    type Setting<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let settings: &[Setting] = &[
        ("checkpassword given, no switches (the default)", &[], true),
        ("no checkpassword argument", &[], false),
        ("SMTPAUTH=-", &[("SMTPAUTH", "-")], true),
        (
            "ALLOW_INSECURE_AUTH=1 or FORCETLS=0",
            &[("ALLOW_INSECURE_AUTH", "1")],
            true,
        ),
        ("ALLOW_CRAM=1", &[("ALLOW_CRAM", "1")], true),
        ("SMTPAUTH=cram", &[("SMTPAUTH", "cram")], true),
        ("SMTPAUTH=+cram", &[("SMTPAUTH", "+cram")], true),
        (
            "REQUIRE_AUTH=1 or SMTPAUTH=!",
            &[("REQUIRE_AUTH", "1")],
            true,
        ),
        ("FORCE_TLS=1", &[("FORCE_TLS", "1")], true),
        (
            "FORCE_TLS=1 and REQUIRE_AUTH=1 (submission)",
            &[("FORCE_TLS", "1"), ("REQUIRE_AUTH", "1")],
            true,
        ),
    ];
    let links: &[(&str, LinkState)] = &[
        (
            "unencrypted, STARTTLS offered",
            LinkState {
                secure: false,
                starttls: true,
                authenticated: false,
            },
        ),
        (
            "unencrypted, no STARTTLS (DENY_TLS, DISABLETLS or no usable certificate)",
            LinkState {
                secure: false,
                starttls: false,
                authenticated: false,
            },
        ),
        (
            "encrypted (after STARTTLS, SMTPS or SSL)",
            LinkState {
                secure: true,
                starttls: false,
                authenticated: false,
            },
        ),
    ];
    let mut out = String::new();
    for (title, vars, backend) in settings {
        let get = |n: &str| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_bytes())
        };
        out.push_str(&format!(".TP\n.B {}\n", roff_escape(title)));
        let policy = match Policy::from_env(get, *backend) {
            Ok(p) => p,
            Err(c) => {
                out.push_str(&format!("421 at connect: {}\n", roff_escape(&c.why)));
                continue;
            }
        };
        for (i, (link, st)) in links.iter().enumerate() {
            if i > 0 {
                out.push_str(".br\n");
            }
            let auth = match policy.auth(*st) {
                Ok(m) => {
                    let names: Vec<&str> = m.iter().map(|m| m.name()).collect();
                    format!("EHLO offers AUTH {}", names.join(" "))
                }
                Err(r) => format!(
                    "no AUTH in EHLO; AUTH gets {} {}",
                    r.code,
                    r.enhanced.unwrap_or("")
                ),
            };
            let mail = match policy.mail(*st) {
                Ok(()) => "MAIL accepted without AUTH".to_string(),
                Err(r) => format!(
                    "MAIL gets {} {} {}",
                    r.code,
                    r.enhanced.unwrap_or(""),
                    r.text
                ),
            };
            out.push_str(&format!(
                "{}: {}; {}.\n",
                roff_escape(link),
                roff_escape(&auth),
                roff_escape(&mail)
            ));
        }
    }
    out
}

/// Escape text for a roff line: backslashes and hyphens, and a leading
/// `.` or `'` that would read as a request.
fn roff_escape(s: &str) -> String {
    let mut out = s.replace('\\', "\\e").replace('-', "\\-");
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
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

#[cfg(test)]
mod matrix_tests {
    use super::*;

    /// Every combination of the switches, with `None` for unset.
    fn combinations() -> Vec<Vec<(&'static str, &'static str)>> {
        let axes: &[(&str, &[&str])] = &[
            ("SSL", &["1"]),
            ("SMTPS", &["1"]),
            ("DENY_TLS", &["1"]),
            ("DISABLETLS", &["1"]),
            ("FORCE_TLS", &["1"]),
            (
                "SMTPAUTH",
                &["-", "", "cram", "+cram", "!", "!cram", "!-", "junk"],
            ),
            ("REQUIRE_AUTH", &["1", "0"]),
            ("ALLOW_CRAM", &["1"]),
            ("ALLOW_INSECURE_AUTH", &["1"]),
            ("FORCETLS", &["0", "1"]),
            ("FORCEAUTHMAILFROM", &["1"]),
        ];
        let mut all = vec![Vec::new()];
        for (name, values) in axes {
            let mut next = Vec::new();
            for combo in &all {
                next.push(combo.clone());
                for v in *values {
                    let mut c = combo.clone();
                    c.push((*name, *v));
                    next.push(c);
                }
            }
            all = next;
        }
        all
    }

    #[test]
    fn whole_matrix_holds_the_invariants() {
        let mut checked = 0u32;
        for vars in combinations() {
            let get = |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.as_bytes())
            };
            let is = |n: &str, v: &str| get(n) == Some(v.as_bytes());
            let on = |n: &str| number(get(n)) > 0;
            let smtpauth = get("SMTPAUTH").map(|v| v.strip_prefix(b"!").unwrap_or(v));
            for backend in [false, true] {
                let result = Policy::from_env(get, backend);
                let deny = on("DENY_TLS") || on("DISABLETLS");
                let required =
                    on("REQUIRE_AUTH") || get("SMTPAUTH").is_some_and(|v| v.starts_with(b"!"));
                let enabled = backend && smtpauth != Some(b"-");
                let insecure_ok = on("ALLOW_INSECURE_AUTH") || is("FORCETLS", "0");
                let plain_link = !on("SSL") && get("SMTPS").is_none();
                let contradiction = (on("SSL") && get("SMTPS").is_some())
                    || (on("FORCE_TLS") && deny && plain_link)
                    || (required && !enabled)
                    || (required && plain_link && deny && !insecure_ok);
                let p = match result {
                    Err(c) => {
                        assert!(contradiction, "{vars:?} backend={backend}: {}", c.why);
                        assert_eq!(c.reply.code, 421);
                        continue;
                    }
                    Ok(p) => {
                        assert!(!contradiction, "{vars:?} backend={backend}");
                        p
                    }
                };
                let cram_wanted = match smtpauth {
                    Some(v) => v.eq_ignore_ascii_case(b"cram") || v.eq_ignore_ascii_case(b"+cram"),
                    None => on("ALLOW_CRAM"),
                };
                for secure in [false, true] {
                    for starttls in [false, true] {
                        for authenticated in [false, true] {
                            let st = LinkState {
                                secure,
                                starttls,
                                authenticated,
                            };
                            checked += 1;
                            match p.auth(st) {
                                Ok(mechs) => {
                                    assert!(enabled && !authenticated, "{vars:?}");
                                    assert!(secure || insecure_ok, "AUTH in clear: {vars:?}");
                                    assert!(!mechs.is_empty());
                                    assert_eq!(
                                        mechs.contains(&Mechanism::CramMd5),
                                        cram_wanted,
                                        "{vars:?}"
                                    );
                                }
                                Err(r) => {
                                    let want = if !enabled || authenticated {
                                        503
                                    } else if starttls {
                                        530
                                    } else {
                                        538
                                    };
                                    assert_eq!(r.code, want, "{vars:?} {st:?}");
                                    if want == 538 {
                                        assert!(!secure && !insecure_ok);
                                    }
                                }
                            }
                            let mail_ok =
                                (!on("FORCE_TLS") || secure) && (!required || authenticated);
                            assert_eq!(p.mail(st).is_ok(), mail_ok, "{vars:?} {st:?}");
                            let forced = enabled && on("FORCEAUTHMAILFROM");
                            assert_eq!(
                                p.sender(Some(b"alice"), b"bob").is_err(),
                                forced,
                                "{vars:?}"
                            );
                            assert!(p.sender(None, b"bob").is_ok());
                        }
                    }
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }
}
