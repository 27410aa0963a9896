//! `qmail-smtpd --explain`: what a client in this environment sees, and
//! which setting decided each line. It reads the same environment and
//! control files a connection would (after applying the tcprules entry
//! tcpserver would pick, with `--rules`), and runs the real session core on
//! a simulated EHLO, before and after TLS, so the answer cannot differ from
//! what a connection gets.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::core::policy::{Dialect, Link, LinkState, Policy, SWITCHES};
use crate::core::tcprules::{self, Rule};
use crate::io::checkpassword::Invocation;
use crate::io::control::{self, Env};
use crate::smtp::reply::Reply;
use crate::smtp::session::{Lookups, Output, Session};

/// Options of `--explain`.
#[derive(Debug, Default)]
pub struct Options {
    pub rules: Option<std::path::PathBuf>,
    pub ip: Option<String>,
    pub host: Option<String>,
    /// `--via`: the client reaches us through the load balancer at this
    /// address, which sends a PROXY header.
    pub via: Option<String>,
    pub json: bool,
    /// `--rcpt ADDR`: which check decides this recipient.
    pub rcpt: Option<String>,
    /// `--helo NAME` and `--from ADDR` for the `--rcpt` dialogue.
    pub helo: Option<String>,
    pub from: Option<String>,
}

/// One answered question: a topic, the answer, and what decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub topic: &'static str,
    pub answer: String,
    pub decided_by: Vec<String>,
}

/// The whole explanation.
#[derive(Debug, Default)]
pub struct Report {
    pub client: Option<String>,
    pub lines: Vec<Line>,
    /// Replies as the client would see them: greeting, EHLO before and
    /// after TLS.
    pub dialogue: BTreeMap<&'static str, Vec<String>>,
}

impl Report {
    fn line(&mut self, topic: &'static str, answer: impl Into<String>, decided_by: Vec<String>) {
        self.lines.push(Line {
            topic,
            answer: answer.into(),
            decided_by,
        });
    }

    /// For a person.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.client {
            s.push_str(&format!("client: {c}\n"));
        }
        for (name, replies) in &self.dialogue {
            s.push_str(&format!("{name}:\n"));
            for r in replies {
                s.push_str(&format!("    {r}\n"));
            }
        }
        for l in &self.lines {
            s.push_str(&format!("{}: {}\n", l.topic, l.answer));
            let by = if l.decided_by.is_empty() {
                "the defaults".to_string()
            } else {
                l.decided_by.join(", ")
            };
            s.push_str(&format!("    decided by: {by}\n"));
        }
        s
    }

    /// For scripts: one JSON object.
    pub fn json(&self) -> String {
        let mut s = String::from("{");
        s.push_str(&format!(
            "\"client\":{},",
            self.client.as_deref().map_or("null".into(), json_str)
        ));
        s.push_str("\"dialogue\":{");
        let d: Vec<String> = self
            .dialogue
            .iter()
            .map(|(k, v)| {
                let items: Vec<String> = v.iter().map(|r| json_str(r)).collect();
                format!("{}:[{}]", json_str(k), items.join(","))
            })
            .collect();
        s.push_str(&d.join(","));
        s.push_str("},\"decisions\":[");
        let l: Vec<String> = self
            .lines
            .iter()
            .map(|l| {
                let by: Vec<String> = l.decided_by.iter().map(|b| json_str(b)).collect();
                format!(
                    "{{\"topic\":{},\"answer\":{},\"decided_by\":[{}]}}",
                    json_str(l.topic),
                    json_str(&l.answer),
                    by.join(",")
                )
            })
            .collect();
        s.push_str(&l.join(","));
        s.push_str("]}\n");
        s
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The switches set in `env` that belong to `names`, as `NAME=value
/// [dialect]`.
fn set_switches(env: &Env, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| {
            let v = env.get(n)?;
            let dialect = SWITCHES
                .iter()
                .find(|(s, _, _)| s == n)
                .map_or(Dialect::Ours, |(_, d, _)| *d);
            Some(format!(
                "{n}={} [{}]",
                String::from_utf8_lossy(v),
                dialect.name()
            ))
        })
        .collect()
}

fn reply_text(r: &Reply) -> String {
    format!("{} {} {}", r.code, r.enhanced.unwrap_or(""), r.text)
}

/// Run a few command lines through the real session and return its
/// replies, one string per line.
fn replies<L: Lookups>(session: &mut Session<L>, input: &[u8]) -> Vec<String> {
    let mut out = Output::default();
    let _ = session.feed(input, &mut out);
    String::from_utf8_lossy(&out.replies)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Explain what a connection with this environment and command line gets.
pub fn explain(mut env: Env, invocation: &Invocation, opts: &Options) -> Report {
    let mut report = Report::default();
    let tls_names = ["SSL", "SMTPS", "DENY_TLS", "DISABLETLS", "FORCE_TLS"];
    let auth_names = [
        "SMTPAUTH",
        "ALLOW_INSECURE_AUTH",
        "FORCETLS",
        "ALLOW_CRAM",
        "REQUIRE_AUTH",
        "FORCEAUTHMAILFROM",
    ];

    if let (Some(rules), Some(ip), Some(via)) = (&opts.rules, &opts.ip, &opts.via) {
        if let Err(stop) = through_balancer(&mut env, &mut report, rules, ip, via) {
            report.line("connection", stop, vec![]);
            return report;
        }
    } else if let (Some(rules), Some(ip)) = (&opts.rules, &opts.ip) {
        let rule = match cdb::CDB::open(rules) {
            Ok(db) => tcprules::lookup(
                |k| db.get(k).and_then(Result::ok),
                ip,
                opts.host.as_deref(),
                None,
            ),
            Err(e) => {
                report.line(
                    "tcprules",
                    format!("cannot open {}: {e}", rules.display()),
                    vec![],
                );
                return report;
            }
        };
        let described = describe_rule(rule.as_ref());
        report.client = Some(format!("{ip}: {described} ({})", rules.display()));
        env.set("TCPREMOTEIP", ip);
        if let Some(h) = &opts.host {
            env.set("TCPREMOTEHOST", h);
        }
        match rule {
            Some(r) if !r.allow => {
                report.line(
                    "connection",
                    "refused by tcpserver (deny rule): qmail-smtpd never runs",
                    vec![format!("tcprules key {:?}", r.key)],
                );
                return report;
            }
            Some(r) => {
                for (k, v) in &r.env {
                    env.set(k, v);
                }
            }
            None => {}
        }
    } else if let Some(ip) = &opts.ip {
        env.set("TCPREMOTEIP", ip);
        report.client = Some(ip.clone());
    }

    let mut settings = match control::load(&env, invocation) {
        Ok(s) => s,
        Err(e) => {
            let mut decided = set_switches(&env, &tls_names);
            decided.extend(set_switches(&env, &auth_names));
            report.line(
                "connection",
                format!("{} ({e})", reply_text(&e.reply())),
                decided,
            );
            return report;
        }
    };
    for w in &settings.warnings {
        report.line("warning", w.clone(), vec![]);
    }
    let backend = settings.backend.clone();
    let link = settings.config.tls.link;
    let policy = Policy {
        tls: settings.config.tls,
        auth: settings.config.auth,
    };
    let relayclient = settings.config.relayclient.clone();
    let rcpthosts = settings.config.rcpthosts.clone();
    let rcptcheck = settings.config.rcpt_checks.rcptcheck.clone();
    // --rcpt: the validrcptto look-ups say which key decided.
    settings.config.rcpt_checks.log = 2;
    let mut session = Session::new(settings.config, settings.lookups);
    // The certificate matters only where this program does TLS.
    let tls_ok = (link == Link::ImplicitTls || (link == Link::Plain && policy.tls.starttls))
        && session.lookups().tls_ready();

    let mut greet = Output::default();
    session.greet(&mut greet);
    let greeting: Vec<String> = String::from_utf8_lossy(&greet.replies)
        .lines()
        .map(str::to_string)
        .collect();
    let tls_decided = set_switches(&env, &tls_names);
    let mut auth_decided = set_switches(&env, &auth_names);
    auth_decided.insert(
        0,
        match &backend {
            Some(b) => format!("checkpassword {} [command line]", b.program.display()),
            None => "no checkpassword argument [command line]".into(),
        },
    );

    let encrypted_from_start = link != Link::Plain;
    if link == Link::ImplicitTls {
        if !tls_ok {
            report.line(
                "connection",
                "SMTPS is set but no usable certificate: the connection is closed before the greeting",
                tls_decided,
            );
            return report;
        }
        session.tls_started("TLS".into());
    }
    report.dialogue.insert("1 greeting", greeting);
    let first = if encrypted_from_start {
        "2 EHLO (encrypted link)"
    } else {
        "2 EHLO before TLS"
    };
    let ehlo = replies(&mut session, b"EHLO explain.invalid\r\n");
    let starttls = ehlo.iter().any(|l| l.ends_with("STARTTLS"));
    report.dialogue.insert(first, ehlo);

    let state = |secure: bool, starttls: bool| LinkState {
        secure,
        starttls,
        authenticated: false,
    };
    let before = state(encrypted_from_start, starttls);
    let starttls_answer = match (link, policy.tls.starttls, tls_ok) {
        (Link::UpstreamTls, _, _) => "not offered: TLS was done upstream (SSL)".to_string(),
        (Link::ImplicitTls, _, _) => "not offered: TLS from the first byte (SMTPS)".into(),
        (_, false, _) => "not offered to this client".into(),
        (_, true, false) => {
            "not offered: no usable certificate (see the warning on stderr); STARTTLS gets 454"
                .into()
        }
        (_, true, true) => "offered".into(),
    };
    let mut cert_decided = tls_decided.clone();
    if policy.tls.starttls && link == Link::Plain {
        cert_decided.push(format!(
            "certificate {} [{}]",
            env.get("TLS_SERVER_CERT").map_or_else(
                || "control/servercert.pem".into(),
                |v| String::from_utf8_lossy(v).into_owned()
            ),
            if tls_ok { "usable" } else { "unusable" }
        ));
    }
    report.line("STARTTLS", starttls_answer, cert_decided);

    let describe_auth = |st: LinkState| match policy.auth(st) {
        Ok(m) => {
            let names: Vec<&str> = m.iter().map(|m| m.name()).collect();
            format!("offered: {}", names.join(" "))
        }
        Err(r) => format!("not offered; AUTH gets {}", reply_text(&r)),
    };
    let describe_mail = |st: LinkState| match policy.mail(st) {
        Ok(()) => "accepted without AUTH".to_string(),
        Err(r) => format!("refused without AUTH: {}", reply_text(&r)),
    };
    let mut mail_decided = set_switches(&env, &["FORCE_TLS", "REQUIRE_AUTH", "SMTPAUTH"]);
    if backend.is_none() {
        mail_decided.push("no checkpassword argument [command line]".into());
    }
    let prefix = if encrypted_from_start {
        ""
    } else {
        "before TLS: "
    };
    report.line(
        "AUTH",
        format!("{prefix}{}", describe_auth(before)),
        auth_decided.clone(),
    );
    report.line(
        "MAIL",
        format!("{prefix}{}", describe_mail(before)),
        mail_decided.clone(),
    );
    if starttls {
        session.tls_started("TLS".into());
        let ehlo = replies(&mut session, b"EHLO explain.invalid\r\n");
        report.dialogue.insert("3 EHLO after STARTTLS", ehlo);
        let after = state(true, false);
        report.line(
            "AUTH",
            format!("after STARTTLS: {}", describe_auth(after)),
            auth_decided,
        );
        report.line(
            "MAIL",
            format!("after STARTTLS: {}", describe_mail(after)),
            mail_decided,
        );
    }

    let relay = match (&relayclient, &rcpthosts) {
        (Some(v), _) => format!(
            "every recipient accepted (RELAYCLIENT is set; {:?} is appended to each)",
            String::from_utf8_lossy(v)
        ),
        (None, None) => "no recipient accepted: control/rcpthosts is missing (451 4.3.5)".into(),
        (None, Some(_)) => {
            let after_auth = if policy.auth.enabled {
                "; after AUTH every recipient"
            } else {
                ""
            };
            format!("only domains in control/rcpthosts and morercpthosts.cdb{after_auth}")
        }
    };
    let mut relay_decided = set_switches(&env, &["RELAYCLIENT"]);
    relay_decided.push("control/rcpthosts [qmail]".into());
    report.line("relaying", relay, relay_decided);
    explain_checks(&env, &mut report);
    if tls_ok {
        let [clients, ca, crl] =
            control::client_relay_paths(&control::qmailhome(&env).join("control"));
        let mut decided: Vec<String> = [&ca, &clients, &crl]
            .iter()
            .filter(|p| p.exists())
            .map(|p| format!("{} [qmail-tls]", p.display()))
            .collect();
        let answer = match session.lookups().client_relay() {
            Some(r) => format!(
                "asked for (optional) in the TLS handshake, naming the CAs of {}{}; a verified certificate whose e-mail address is one of the {} in {} may relay, as with RELAYCLIENT=\"\"; any other certificate, or none, changes nothing",
                ca.display(),
                if crl.exists() {
                    format!(", revocation checked against {}", crl.display())
                } else {
                    String::new()
                },
                r.tlsclients.len(),
                clients.display()
            ),
            None if ca.exists() && clients.exists() => {
                "not asked for: the files are unusable (see the warning on stderr)".into()
            }
            None => {
                decided.clear();
                format!(
                    "not asked for: {} and {} do not both exist",
                    clients.display(),
                    ca.display()
                )
            }
        };
        report.line("client certificate", answer, decided);
    }
    if let Some(rcpt) = &opts.rcpt {
        let (answer, decided) = explain_rcpt(&mut session, opts, rcpt, rcptcheck.as_deref());
        report.line("RCPT", answer, decided);
    }
    report
}

/// `--via`: tcpserver sees the balancer at `via` and applies its rule;
/// qmail-smtpd then reads the PROXY header for `ip` exactly as a
/// connection does (the same environment changes, the same `PROXY_RULES`
/// look-up). `Err`: the connection would not be served, and why.
fn through_balancer(
    env: &mut Env,
    report: &mut Report,
    rules: &std::path::Path,
    ip: &str,
    via: &str,
) -> Result<(), String> {
    let db = cdb::CDB::open(rules).map_err(|e| format!("cannot open {}: {e}", rules.display()))?;
    let rule = tcprules::lookup(|k| db.get(k).and_then(Result::ok), via, None, None);
    let balancer = describe_rule(rule.as_ref());
    env.set("TCPREMOTEIP", via);
    match &rule {
        Some(r) if !r.allow => {
            return Err(format!(
                "the balancer {via} is refused by tcpserver ({balancer}): qmail-smtpd never runs"
            ));
        }
        Some(r) => {
            for (k, v) in &r.env {
                env.set(k, v);
            }
        }
        None => {}
    }
    let mut decided = vec![format!("balancer {via}: {balancer} ({})", rules.display())];
    if crate::core::policy::number(env.get("PROXY_PROTOCOL")) == 0 {
        report.client = Some(format!("{ip} via {via}: seen as {via}"));
        report.line(
            "PROXY",
            format!(
                "not read: the balancer's rule does not set PROXY_PROTOCOL, so every client through it is {via} here"
            ),
            decided,
        );
        return Ok(());
    }
    let client: std::net::IpAddr = ip
        .parse()
        .map_err(|_| format!("--ip {ip:?} is not an IP address"))?;
    let local = env
        .get("TCPLOCALIP")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let header = crate::core::proxy::Header {
        version: 2,
        len: 0,
        endpoints: Some(crate::core::proxy::Endpoints {
            client: std::net::SocketAddr::new(client, 0),
            server: std::net::SocketAddr::new(local, 25),
        }),
    };
    let real = crate::core::proxy::tcpserver_ip(client);
    let proxy_rules = env
        .get("PROXY_RULES")
        .filter(|v| !v.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let answer = match crate::io::proxy::changes(&header, env) {
        Ok(changes) => {
            env.apply(&changes.env);
            match proxy_rules {
                Some(path) => {
                    decided.push(format!("PROXY_RULES {path}"));
                    format!(
                        "read; the real client {real} gets {}; the balancer's rule is undone",
                        describe_rule(changes.client_rule.as_ref())
                    )
                }
                None => format!(
                    "read; the real client {real} keeps the balancer's rule (no PROXY_RULES): only the addresses change"
                ),
            }
        }
        Err(crate::io::proxy::Refusal::Deny { key, .. }) => {
            return Err(format!(
                "the real client {real} is denied by PROXY_RULES (rule {key:?}): closed without a word"
            ));
        }
        Err(crate::io::proxy::Refusal::RulesUnreadable(why)) => {
            return Err(format!("PROXY_RULES cannot be read ({why}): 421"));
        }
    };
    report.client = Some(format!("{real} via {via}"));
    report.line("PROXY", answer, decided);
    Ok(())
}

/// qmail-spp plugins per hook, and the policy service.
fn explain_checks(env: &Env, report: &mut Report) {
    let home = control::qmailhome(env);
    let file = crate::io::plugins::file(env, &home);
    let mut decided = set_switches(env, &["NOSPP", "SPPCONFFILE", "SPP_TIMEOUT"]);
    decided.push(format!("{} [qmail-spp]", file.display()));
    let answer = match crate::io::plugins::load(env, &home) {
        Err(e) => format!("unreadable, every connection gets 421 ({e})"),
        Ok(None) if env.get("NOSPP").is_some() => "off (NOSPP is set)".into(),
        Ok(None) => format!("off ({} does not exist)", file.display()),
        Ok(Some(h)) => {
            let hooks: Vec<String> = crate::core::spp::Hook::ALL
                .iter()
                .filter(|k| !h.plugins.get(**k).is_empty())
                .map(|k| {
                    let names: Vec<String> = h
                        .plugins
                        .get(*k)
                        .iter()
                        .map(|p| String::from_utf8_lossy(&p.line).into_owned())
                        .collect();
                    format!("[{}] {}", k.name(), names.join(", "))
                })
                .collect();
            if hooks.is_empty() {
                "on, but no plugins in any section".into()
            } else {
                format!(
                    "{}; each run at most {}s",
                    hooks.join("; "),
                    h.timeout.as_secs()
                )
            }
        }
    };
    report.line("qmail-spp plugins", answer, decided);
    let decided = set_switches(
        env,
        &[
            "POLICY_SERVICE",
            "POLICY_SERVICE_TIMEOUT",
            "POLICY_SERVICE_DEFAULT_ACTION",
        ],
    );
    let answer = match env.get("POLICY_SERVICE").filter(|v| !v.is_empty()) {
        None => "none".to_string(),
        Some(spec) => {
            let failure = env
                .get("POLICY_SERVICE_DEFAULT_ACTION")
                .filter(|v| !v.is_empty())
                .unwrap_or(crate::core::policy_delegation::DEFAULT_FAILURE_ACTION);
            match crate::io::policy_client::parse_target(spec) {
                Ok(_) => format!(
                    "{} asked about every recipient our own checks accepted; unreachable or garbage means \"{}\"",
                    String::from_utf8_lossy(spec),
                    String::from_utf8_lossy(failure)
                ),
                Err(e) => format!(
                    "misconfigured ({e}): every recipient gets \"{}\"",
                    String::from_utf8_lossy(failure)
                ),
            }
        }
    };
    report.line("policy service", answer, decided);
}

/// Run `EHLO`, `MAIL`, `RCPT` through the real session and say which check
/// gave the answer (each check's reply text is its own).
fn explain_rcpt<L: Lookups>(
    session: &mut Session<L>,
    opts: &Options,
    rcpt: &str,
    rcptcheck: Option<&[u8]>,
) -> (String, Vec<String>) {
    use crate::smtp::reply as r;
    let helo = opts.helo.as_deref().unwrap_or("explain.invalid");
    let from = opts.from.as_deref().unwrap_or("explain@explain.invalid");
    let mut out = Output::default();
    let input = format!("EHLO {helo}\r\nMAIL FROM:<{from}>\r\nRCPT TO:<{rcpt}>\r\n");
    let (_, action) = session.feed(input.as_bytes(), &mut out);
    let replies = String::from_utf8_lossy(&out.replies).into_owned();
    let last = replies.lines().last().unwrap_or_default().to_string();
    let mut decided: Vec<String> = out.log.clone();
    if action == crate::smtp::session::Action::RcptCheck {
        decided.push(format!(
            "RCPTCHECK {} [jms1, sagredo]",
            String::from_utf8_lossy(rcptcheck.unwrap_or_default())
        ));
        return (
            "every other check accepts it; the RCPTCHECK program decides (not run by --explain)"
                .into(),
            decided,
        );
    }
    let checks: &[(crate::smtp::reply::Reply, &str)] = &[
        (r::RCPT_OK, "accepted by every check"),
        (
            r::BADMAILFROM,
            "control/badmailfrom or badmailfromnorelay (the sender)",
        ),
        (
            r::TOO_MANY_RCPTS,
            "MAXRCPT / control/maxrcpt (or the built-in 1000)",
        ),
        (r::TOO_MANY_INVALID_RCPTS, "BRTLIMIT / VALIDRCPTTO_LIMIT"),
        (r::RELAYREJ, "RELAYREJ / control/rejectrelaytest"),
        (
            r::BAD_HELO,
            "control/badhelo or badhelonorelay (the HELO name)",
        ),
        (r::BAD_RCPT, "control/badrcptto or badrcpttonorelay"),
        (r::NO_RCPTHOSTS, "control/rcpthosts is missing"),
        (
            r::NOT_IN_RCPTHOSTS,
            "control/rcpthosts and morercpthosts.cdb",
        ),
        (
            r::SENDER_ROUTING,
            "sender-specified routing in the local part",
        ),
        (
            r::NOT_IN_VALIDRCPTTO,
            "VALIDRCPTTO_CDB or control/validrcptto / morevalidrcptto.cdb",
        ),
        (
            r::NON_ASCII_WITHOUT_SMTPUTF8,
            "SMTPUTF8 (a non-ASCII address)",
        ),
    ];
    let by = checks
        .iter()
        .find(|(reply, _)| {
            let mut v = Vec::new();
            reply.render(&mut v);
            String::from_utf8_lossy(&v).trim_end() == last
        })
        .map_or("the command (see the reply)", |(_, name)| name);
    decided.insert(0, format!("decided by: {by}"));
    (format!("{last} (EHLO {helo}, MAIL FROM:<{from}>)"), decided)
}

fn describe_rule(rule: Option<&Rule>) -> String {
    match rule {
        None => "no rule matches: tcpserver allows, sets nothing".into(),
        Some(r) => {
            let key = if r.key.is_empty() {
                "the default rule".to_string()
            } else {
                format!("rule {:?}", r.key)
            };
            if !r.allow {
                return format!("{key}: deny");
            }
            let sets: Vec<String> = r.env.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            if sets.is_empty() {
                format!("{key}: allow")
            } else {
                format!("{key}: allow, sets {}", sets.join(" "))
            }
        }
    }
}

/// Parse `--explain`'s options; the rest is the usual invocation.
pub fn parse_args(args: &[OsString]) -> Result<(Options, Vec<OsString>), String> {
    let mut opts = Options::default();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        let mut value = |name: &str| {
            it.next()
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or(format!("{name} needs a value"))
        };
        match s.as_ref() {
            "--rules" => opts.rules = Some(value("--rules")?.into()),
            "--ip" => opts.ip = Some(value("--ip")?),
            "--host" => opts.host = Some(value("--host")?),
            "--via" => opts.via = Some(value("--via")?),
            "--rcpt" => opts.rcpt = Some(value("--rcpt")?),
            "--helo" => opts.helo = Some(value("--helo")?),
            "--from" => opts.from = Some(value("--from")?),
            "--format=json" => opts.json = true,
            "--format=text" => opts.json = false,
            "--" => {
                rest.extend(it.cloned());
                break;
            }
            o if o.starts_with("--") => return Err(format!("unknown option {o}")),
            _ => rest.push(a.clone()),
        }
    }
    if opts.rules.is_some() && opts.ip.is_none() {
        return Err("--rules needs --ip".into());
    }
    if opts.via.is_some() && opts.rules.is_none() {
        return Err("--via needs --rules and --ip".into());
    }
    Ok((opts, rest))
}
