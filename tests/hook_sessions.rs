//! Whole sessions through the pure core with qmail-spp hooks and a policy
//! service answered in memory: each test says what "the plugins" of a hook
//! print and what the policy service's action is. The harness does what
//! `main.rs` does with real children and sockets.

use qmail_smtpd::core::policy_delegation::decide;
use qmail_smtpd::core::spp::{self, Exit, Hook, Plugin};
use qmail_smtpd::smtp::session::{
    Action, Config, LookupError, Lookups, NameSet, Output, QueueExit, QueueOutcome, Session,
};

struct Fake;

/// An environment as the session hands it out (`None` unsets).
type EnvList = Vec<(String, Option<Vec<u8>>)>;
/// What the plugin of a hook prints, given the environment it runs in.
type PluginFn<'a> = &'a dyn Fn(Hook, &[(String, Option<Vec<u8>>)]) -> String;

impl Lookups for Fake {
    fn more_rcpthosts(&self, _: &[u8]) -> Result<bool, LookupError> {
        Ok(false)
    }
    fn is_local_ip(&self, _: [u8; 4]) -> bool {
        false
    }
    fn tls_available(&self) -> bool {
        true
    }
    fn cram_challenge(&self) -> Vec<u8> {
        b"<1@x>".to_vec()
    }
}

/// What a run saw: the replies, the queued messages (body, envelope), the
/// hooks run with the environment each got, the policy requests.
#[derive(Default)]
struct Seen {
    replies: String,
    queued: Vec<(String, String)>,
    hooks: Vec<(Hook, EnvList)>,
    policy: Vec<Vec<(&'static str, Vec<u8>)>>,
    queue_env: Vec<EnvList>,
    closed: bool,
}

fn env_get(env: &[(String, Option<Vec<u8>>)], k: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(n, _)| n == k)
        .and_then(|(_, v)| v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()))
}

/// Run `input` (lines joined with CRLF); `plugin(hook, env)` gives what the
/// one plugin of each hook in `mask` prints; `policy(rcpt)` the action.
fn run(
    mask: &[Hook],
    policy: Option<&dyn Fn(&str) -> &'static str>,
    plugin: PluginFn,
    input: &[&str],
) -> Seen {
    let mut cfg = Config::new(b"mx.test");
    cfg.rcpthosts = Some(NameSet::new([b"example.org".to_vec()]));
    cfg.spp = mask.iter().fold(0, |m, h| m | h.bit());
    cfg.policy_service = policy.is_some();
    let mut s = Session::new(cfg, Fake);
    let mut out = Output::default();
    let mut seen = Seen::default();
    let mut body = Vec::new();
    let mut input = input.join("\r\n").into_bytes();
    input.extend_from_slice(b"\r\n");
    let mut pos = 0;
    let mut next = Some(s.connect(&mut out));
    loop {
        let action = match next.take() {
            Some(a) => a,
            None if pos < input.len() => {
                let (n, a) = s.feed(&input[pos..], &mut out);
                pos += n;
                a
            }
            None => break,
        };
        body.append(&mut out.body);
        match action {
            Action::NeedInput => {}
            Action::RunHook(hook) => {
                let env = s.hook_env();
                let printed = plugin(hook, &env);
                seen.hooks.push((hook, env));
                let p = Plugin {
                    line: b"plugins/test".to_vec(),
                };
                let r = spp::chain(hook, std::slice::from_ref(&p), |p, run| {
                    run.plugin(p, printed.as_bytes(), Exit::Code(0));
                    Exit::Code(0)
                });
                next = Some(s.hook_done(&r, &mut out));
            }
            Action::AskPolicy => {
                let req = s.policy_request();
                let rcpt = req
                    .iter()
                    .find(|(k, _)| *k == "recipient")
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap();
                seen.policy.push(req);
                let action = policy.expect("asked without a policy service")(&rcpt);
                next = Some(s.policy_answered(decide(action.as_bytes()), &mut out));
            }
            Action::OpenQueue => {
                next = Some(s.queue_opened(Ok(7), 1_795_348_475, &mut out));
                body.clear();
                body.append(&mut out.body);
            }
            Action::FinishQueue => {
                let mut env = Vec::new();
                s.envelope(&mut env);
                seen.queue_env.push(s.queue_env());
                seen.queued.push((
                    String::from_utf8_lossy(&std::mem::take(&mut body)).into_owned(),
                    String::from_utf8_lossy(&env).replace('\0', "|"),
                ));
                let ok = QueueOutcome {
                    exit: QueueExit::Exited(0),
                    write_failed: false,
                };
                next = Some(s.queue_closed(ok, 1_795_348_475, &mut out));
            }
            Action::AbortQueue => body.clear(),
            Action::RcptCheck => unreachable!("RCPTCHECK is not configured here"),
            Action::StartTls => {
                pos = input.len().min(pos);
                s.tls_started("TLSv1.3 X".into());
            }
            Action::CheckPassword => panic!("no AUTH in these tests"),
            Action::Close => {
                seen.closed = true;
                break;
            }
        }
    }
    seen.replies = String::from_utf8_lossy(&out.replies).into_owned();
    seen
}

fn codes(replies: &str) -> Vec<&str> {
    replies.lines().map(|l| &l[..4.min(l.len())]).collect()
}

#[test]
fn no_hooks_no_actions() {
    let seen = run(
        &[],
        None,
        &|_, _| panic!("no plugin runs"),
        &[
            "HELO c",
            "MAIL FROM:<a@b>",
            "RCPT TO:<u@example.org>",
            "QUIT",
        ],
    );
    assert!(seen.hooks.is_empty());
    assert_eq!(
        codes(&seen.replies),
        ["220 ", "250 ", "250 ", "250 ", "221 "]
    );
}

#[test]
fn each_hook_at_its_place_with_its_variables() {
    let all = [
        Hook::Connection,
        Hook::Helo,
        Hook::Mail,
        Hook::Rcpt,
        Hook::Pass,
        Hook::Data,
    ];
    let seen = run(
        &all,
        None,
        &|hook, _| match hook {
            Hook::Connection => "HX-Conn: 1\n".into(),
            _ => "\n".into(),
        },
        &[
            "EHLO client.test",
            "MAIL FROM:<a@b.test>",
            "RCPT TO:<u@example.org>",
            "RCPT TO:<v@example.org>",
            "DATA",
            "hi",
            ".",
            "QUIT",
        ],
    );
    let order: Vec<Hook> = seen.hooks.iter().map(|(h, _)| *h).collect();
    assert_eq!(
        order,
        [
            Hook::Connection,
            Hook::Helo,
            Hook::Mail,
            Hook::Rcpt,
            Hook::Pass,
            Hook::Rcpt,
            Hook::Pass,
            Hook::Data
        ]
    );
    let env = |i: usize, k: &str| env_get(&seen.hooks[i].1, k);
    assert_eq!(env(1, "SMTPHELOHOST").as_deref(), Some("client.test"));
    assert_eq!(env(2, "SMTPMAILFROM").as_deref(), Some("a@b.test"));
    assert_eq!(env(5, "SMTPRCPTTO").as_deref(), Some("v@example.org"));
    assert_eq!(env(5, "SMTPRCPTCOUNT").as_deref(), Some("1"));
    assert_eq!(env(5, "SMTPRCPTCOUNTALL").as_deref(), Some("2"));
    assert_eq!(env(5, "SMTPRCPTHOSTSOK").as_deref(), Some("1"));
    assert_eq!(
        env(6, "SMTPRCPTCOUNT").as_deref(),
        Some("2"),
        "[pass] counts the current one"
    );
    assert_eq!(seen.queued.len(), 1);
    assert!(
        seen.queued[0].0.starts_with("Received: from ")
            && seen.queued[0].0.contains("\nX-Conn: 1\nhi\n"),
        "{}",
        seen.queued[0].0
    );
    assert_eq!(
        env_get(&seen.queue_env[0], "SMTPRCPTTO").as_deref(),
        Some("v@example.org"),
        "qmail-queue sees spp's variables"
    );
}

#[test]
fn starttls_forgets_what_plugins_learned_in_clear() {
    let seen = run(
        &[Hook::Connection, Hook::Helo, Hook::Rcpt],
        None,
        &|hook, env| match hook {
            Hook::Connection => "SCONN=1\n".into(),
            Hook::Helo if env_get(env, "SMTPHELOHOST").as_deref() == Some("clear") => {
                "HX-Clear: 1\nLR450 queued in clear\nSFROMCLEAR=1\n".into()
            }
            Hook::Rcpt => {
                assert_eq!(env_get(env, "CONN").as_deref(), Some("1"));
                assert_eq!(env_get(env, "FROMCLEAR"), None);
                "\n".into()
            }
            _ => "\n".into(),
        },
        &[
            "EHLO clear",
            "STARTTLS",
            "EHLO tls",
            "MAIL FROM:<a@b>",
            "RCPT TO:<u@example.org>",
            "DATA",
            "hi",
            ".",
        ],
    );
    let helos: Vec<String> = seen
        .hooks
        .iter()
        .filter(|(h, _)| *h == Hook::Helo)
        .map(|(_, e)| env_get(e, "SMTPHELOHOST").unwrap())
        .collect();
    assert_eq!(helos, ["clear", "tls"]);
    assert_eq!(seen.queued.len(), 1, "{}", seen.replies);
    assert!(
        !seen.queued[0].0.contains("X-Clear"),
        "{}",
        seen.queued[0].0
    );
}

#[test]
fn verdicts_per_hook() {
    // E at [helo]: no 250 and no HELO name; MAIL still needs nothing more.
    let seen = run(
        &[Hook::Helo],
        None,
        &|_, _| "E554 5.7.1 bad helo\n".into(),
        &["HELO x", "NOOP"],
    );
    assert_eq!(codes(&seen.replies), ["220 ", "554 ", "250 "]);
    // R at [mail] ends the session after its text.
    let seen = run(
        &[Hook::Mail],
        None,
        &|_, _| "P421-one\nR421 bye\n".into(),
        &["HELO x", "MAIL FROM:<a@b>", "NOOP"],
    );
    assert!(
        seen.replies
            .ends_with("250 mx.test\r\n421-one\r\n421 bye\r\n"),
        "{}",
        seen.replies
    );
    assert!(seen.closed);
    // O at [mail] skips badmailfrom; C changes the envelope; N at [rcpt]
    // leaves rcpthosts in force, O lifts it.
    let seen = run(
        &[Hook::Mail, Hook::Rcpt],
        None,
        &|hook, env| match hook {
            Hook::Mail => "Cnew@b.test\nN\n".into(),
            _ if env_get(env, "SMTPRCPTTO").as_deref() == Some("x@relay.test") => "O\n".into(),
            _ => "N\n".into(),
        },
        &[
            "HELO x",
            "MAIL FROM:<a@b>",
            "RCPT TO:<x@relay.test>",
            "RCPT TO:<y@other.test>",
            "DATA",
            "hi",
            ".",
        ],
    );
    assert_eq!(
        codes(&seen.replies),
        ["220 ", "250 ", "250 ", "250 ", "553 ", "354 ", "250 "]
    );
    assert_eq!(seen.queued[0].1, "Fnew@b.test|Tx@relay.test||");
    // A turns every later hook off.
    let seen = run(
        &[Hook::Helo, Hook::Mail],
        None,
        &|hook, _| {
            if hook == Hook::Helo {
                "A\n".into()
            } else {
                "E550 no\n".into()
            }
        },
        &["HELO x", "MAIL FROM:<a@b>"],
    );
    assert_eq!(seen.hooks.len(), 1);
    assert_eq!(codes(&seen.replies), ["220 ", "250 ", "250 "]);
}

#[test]
fn policy_service_after_our_checks_and_after_pass() {
    let seen = run(
        &[Hook::Pass],
        Some(&|rcpt: &str| match rcpt {
            "grey@example.org" => "DEFER_IF_PERMIT Greylisted",
            "tag@example.org" => "PREPEND X-Tag: yes",
            _ => "DUNNO",
        }),
        &|_, env| {
            if env_get(env, "SMTPRCPTTO").as_deref() == Some("pass@example.org") {
                "E550 stopped at pass\n".into()
            } else {
                "\n".into()
            }
        },
        &[
            "EHLO x",
            "MAIL FROM:<a@b> SIZE=99",
            "RCPT TO:<u@elsewhere.test>",
            "RCPT TO:<pass@example.org>",
            "RCPT TO:<grey@example.org>",
            "RCPT TO:<tag@example.org>",
            "DATA",
            "hi",
            ".",
        ],
    );
    let rcpts: Vec<String> = seen
        .policy
        .iter()
        .map(|r| {
            let get = |k: &str| {
                r.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap()
            };
            format!(
                "{}/{}/{}",
                get("recipient"),
                get("recipient_count"),
                get("size")
            )
        })
        .collect();
    assert_eq!(rcpts, ["grey@example.org/0/99", "tag@example.org/0/99"]);
    assert!(
        seen.replies.contains("450 4.7.1 Greylisted\r\n"),
        "{}",
        seen.replies
    );
    assert!(
        seen.replies.contains("550 stopped at pass\r\n"),
        "{}",
        seen.replies
    );
    assert_eq!(seen.queued.len(), 1);
    assert!(
        seen.queued[0].0.contains("\nX-Tag: yes\nhi\n"),
        "{}",
        seen.queued[0].0
    );
    assert_eq!(seen.queued[0].1, "Fa@b|Ttag@example.org||");
}

/// A verified client certificate's commonName reaches the policy service
/// as Postfix's `ccert_subject`; without one the attribute is absent.
#[test]
fn policy_request_names_the_client_certificate() {
    for subject in [None, Some(&b"client.example.net"[..])] {
        let mut cfg = Config::new(b"mx.test");
        cfg.rcpthosts = Some(NameSet::new([b"example.org".to_vec()]));
        cfg.policy_service = true;
        let mut s = Session::new(cfg, Fake);
        let mut out = Output::default();
        let (_, a) = s.feed(b"EHLO c.test\r\nSTARTTLS\r\n", &mut out);
        assert_eq!(a, Action::StartTls);
        s.tls_started("TLSv1.3 TLS13_AES_128_GCM_SHA256".into());
        if let Some(cn) = subject {
            s.client_certificate_subject(cn.to_vec());
        }
        let input = b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.org>\r\n";
        let (_, a) = s.feed(input, &mut out);
        assert_eq!(a, Action::AskPolicy);
        let req = s.policy_request();
        let got = req.iter().find(|(k, _)| *k == "ccert_subject");
        assert_eq!(got.map(|(_, v)| &v[..]), subject);
    }
}
