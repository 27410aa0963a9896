//! A whole sans-I/O session (`smtp::session::Session`) driven the way the
//! real edge (the read/feed/act loop in src/main.rs) drives it, with
//! qmail-queue, TLS and the socket replaced by in-memory stand-ins whose
//! answers the input chooses.
//!
//! Input layout: `[cfg, auth, n, c_1 .. c_k, client bytes...]`
//! - `cfg` and `auth` bits switch configuration and look-up answers (see
//!   `setup`); `0, 0` is a permissive server offering STARTTLS and AUTH
//!   PLAIN LOGIN CRAM-MD5 even in clear;
//! - `k = n % 17` control bytes follow. They are read cyclically by two
//!   independent cursors: one gives the size of each "read" the client
//!   bytes arrive in (`c == 0`: the rest of the input), the other the
//!   answer to each queue or checkpassword request (see `open_answer`,
//!   `close_answer`, `password_answer`: bytes below 0xc0 mean success, so
//!   read sizes double as "all went well"). With `k == 0` the input is one
//!   read, qmail-queue always succeeds and every password is right. If the
//!   first control byte has its top bit set, the session ends in a timeout
//!   instead of the client hanging up;
//! - the rest is what the client sends.
//!
//! If `n` has its top bit set, every qmail-spp hook has a plugin and a
//! policy service is configured; the same answer cursor picks what each
//! plugin prints (see `PLUGIN_SAYS`) and each policy action
//! (`POLICY_SAYS`), so hooks, their verdicts and the policy service are
//! fuzzed with the rest (`n < 0x80`: no hooks, as before).
//!
//! Properties:
//! - never panics; `feed` makes progress (consumes bytes or asks for an
//!   action) and `NeedInput` means everything was consumed (else main.rs
//!   would spin);
//! - the queue protocol is followed: `OpenQueue` only with no qmail-queue
//!   running, `FinishQueue` / `AbortQueue` only with one running, message
//!   bytes only while one is running; an accepted message has a well-formed
//!   envelope (`F`sender NUL, at least one `T`rcpt NUL, NUL; no NUL or
//!   control byte inside an address) and a body of LF-terminated lines
//!   without CR;
//! - the acceptance reply `250 2.0.0 ok <now> qp <pid>` is produced by, and
//!   only by, a `FinishQueue` answered with exit 0, so the number of them
//!   equals the number of such answers;
//! - replies are CRLF lines of printable ASCII starting with a 3-digit
//!   code: no client byte (all of which the fuzzer controls) is reflected
//!   unless it is printable, and none ever breaks a line;
//! - replies are bounded: at most `REPLY_BYTES_PER_INPUT_BYTE` per consumed
//!   input byte plus `REPLY_SLACK` (see there for why);
//! - `CheckPassword` always has credentials, and their checkpassword record
//!   is `user NUL secret NUL timestamp NUL`, non-empty user, at most 512
//!   bytes (no NUL smuggled in); an accepted AUTH makes that user the
//!   session's;
//! - log lines are one line of printable ASCII (no log injection); the AUTH
//!   failure delay stays within `max_auth_failures` times the step;
//! - qmail-queue's extra environment has sane names and no NUL in values;
//! - `StartTls` comes at most once; after `Close` nothing is consumed and
//!   nothing is produced;
//! - credentials reach checkpassword only on an encrypted link (after
//!   `StartTls`, or `SSL`) unless the policy allows AUTH in clear;
//! - `RunHook` and `AskPolicy` come only when configured, and a policy
//!   request is well framed (no value can end it early).
//! - `RcptCheck` comes only with RCPTCHECK configured (`cfg` bit 64), with
//!   a `RECIPIENT` and no NUL in the program's variables; its answers (from
//!   the control bytes, including an fd-4 text that tries to inject a
//!   second reply line) keep every reply property above. `cfg` bit 128
//!   also turns on the combined patches' recipient checks (badhelo,
//!   BRTLIMIT, RELAYREJ, badrcptto, badmailfromnorelay, validrcptto).

#![no_main]

use libfuzzer_sys::fuzz_target;
use qmail_smtpd::core::policy::{AuthPolicy, Link, TlsPolicy};
use qmail_smtpd::core::policy_delegation::{decide, request};
use qmail_smtpd::core::rcpt_checks::{AddrList, RegexList};
use qmail_smtpd::core::rcptcheck::{Exit, Outcome};
use qmail_smtpd::core::spp::Exit as PluginExit;
use qmail_smtpd::core::spp::{self, Plugin};
use qmail_smtpd::smtp::auth::MAX_RECORD;
use qmail_smtpd::smtp::session::{
    Action, AuthResult, Config, LookupError, Lookups, NameSet, Output, QueueExit, QueueOutcome,
    Session,
};

/// The most reply bytes one input byte may cost. The biggest reply per byte
/// of command is the 7-line EHLO reply (~150 bytes with STARTTLS, AUTH and
/// a 3-digit SIZE) for the 7 bytes of `EHLO x\n`, about 22 per byte; `HELP\n`
/// gives ~15 per byte; a bare `\n` gives a 25-byte 502, about 25 per byte,
/// but only `max_errors` times before the 421 that closes. 32 covers all of
/// these with margin while still catching a reply that is repeated or grows
/// with the input.
const REPLY_BYTES_PER_INPUT_BYTE: usize = 32;
/// Greeting, one 421 (too many errors / unreadable control / timeout), one
/// 451 bare CR/LF reply, and the queue and checkpassword answers not tied
/// to an input byte.
const REPLY_SLACK: usize = 512;

const PID: u32 = 1234;
const NOW: u64 = 0;
const ACCEPTED: &[u8] = b"250 2.0.0 ok 0 qp 1234\r\n";

/// `FUZZ_TRACE=1`: print each run's replies (to read a reproducer).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

struct FakeLookups {
    tls: bool,
}

impl Lookups for FakeLookups {
    fn more_rcpthosts(&self, domain: &[u8]) -> Result<bool, LookupError> {
        match domain {
            b"broken.example" => Err(LookupError),
            b"more.example" | b".more.example" => Ok(true),
            _ => Ok(false),
        }
    }
    fn is_local_ip(&self, ip: [u8; 4]) -> bool {
        ip == [127, 0, 0, 1] || ip == [192, 0, 2, 25]
    }
    fn tls_available(&self) -> bool {
        self.tls
    }
    fn cram_challenge(&self) -> Vec<u8> {
        b"<1234.0@mx.test>".to_vec()
    }
}

/// `cfg` and `auth` bit by bit; `0, 0` is a plain, permissive server
/// offering STARTTLS and every AUTH mechanism.
fn setup(cfg: u8, auth: u8, hooks: bool) -> Session<FakeLookups> {
    let mut c = Config::new(b"mx.test");
    if hooks {
        c.spp = 0x7f;
        c.policy_service = true;
    }
    c.remote_ip = b"192.0.2.7".to_vec();
    c.remote_host = b"client.example".to_vec();
    c.local_host = b"mx.test".to_vec();
    c.rcpthosts = Some(NameSet::new([
        b"mx.test".to_vec(),
        b"example.org".to_vec(),
        b".wild.example".to_vec(),
    ]));
    if cfg & 1 != 0 {
        c.databytes = 64;
    }
    if cfg & 2 != 0 {
        c.rcpthosts = None;
    }
    if cfg & 4 != 0 {
        c.relayclient = Some(b"".to_vec());
    }
    if cfg & 8 != 0 {
        c.tls.force_tls = true;
    }
    if cfg & 16 != 0 {
        c.tls = TlsPolicy {
            link: Link::UpstreamTls,
            starttls: false,
            force_tls: c.tls.force_tls,
        };
    }
    if cfg & 64 != 0 {
        c.max_errors = 3;
        c.max_rcpts = 2;
        // RCPTCHECK, answered from the control bytes (`rcptcheck_answer`).
        c.rcpt_checks.rcptcheck = Some(b"/rcptcheck".to_vec());
    }
    if cfg & 128 != 0 {
        c.badmailfrom = AddrList::new(vec![
            b"bad@example.net".to_vec(),
            b"@bad.example".to_vec(),
            b"^bounce-.*@".to_vec(),
        ])
        .0;
        // The combined patches' recipient checks (src/core/rcpt_checks.rs).
        let (badhelo, _) = RegexList::compile(&[b"^evil".to_vec(), b"!\\.".to_vec()]);
        c.rcpt_checks.badhelo = Some(badhelo);
        c.rcpt_checks.brtlimit = 3;
        c.rcpt_checks.relayrej = true;
        c.rcpt_checks.badrcptto = AddrList::new(vec![
            b"trap@example.org".to_vec(),
            b".*@spam\\.example$".to_vec(),
        ])
        .0;
        c.rcpt_checks.badmailfrom_norelay = AddrList::new(vec![b"@norelay.example".to_vec()]).0;
        c.rcpt_checks.sagredo_list = Some(NameSet::new([
            b"-@example.org".to_vec(),
            b"bob@example.org".to_vec(),
        ]));
    }
    // Only consistent AUTH policies (AuthPolicy::from_env refuses the
    // others before a session exists).
    let enabled = auth & 1 == 0;
    c.auth = AuthPolicy {
        enabled,
        plain_login: enabled && auth & 2 == 0,
        cram: enabled && auth & 4 == 0,
        insecure_ok: auth & 8 == 0,
        required: enabled && auth & 16 != 0,
        force_mail_from: enabled && auth & 32 != 0,
    };
    if auth & 64 != 0 {
        c.max_auth_failures = 1;
    }
    if auth & 128 != 0 {
        c.auth_env = vec![
            ("DATABYTES".into(), Some(b"100".to_vec())),
            ("RELAYCLIENT".into(), Some(b"".to_vec())),
            ("QMAILQUEUE".into(), None),
        ];
    }
    Session::new(c, FakeLookups { tls: cfg & 32 == 0 })
}

/// What RCPTCHECK answered: an exit from the table, and on fd 4 nothing,
/// a good reply, or one trying to inject a second reply line.
fn rcptcheck_answer(c: Option<u8>) -> Outcome {
    let c = c.unwrap_or(0);
    let exit = match c % 8 {
        0 => Exit::Exited(0),
        1 => Exit::Exited(100),
        2 => Exit::Exited(111),
        3 => Exit::Exited(112),
        4 => Exit::Exited(113),
        5 => Exit::Exited(120),
        6 => Exit::Signaled,
        _ => Exit::TimedOut,
    };
    let fd4: &[u8] = match c / 8 % 4 {
        0 => b"",
        1 => b"550 5.1.1 no such user\n",
        2 => b"421 4.7.0 limit\r\n",
        _ => b"550 x\r\n250 2.0.0 injected\r\n\x00\x1b",
    };
    Outcome {
        exit,
        fd4: fd4.to_vec(),
    }
}

/// Cycles through the control bytes; `None` when there are none.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at % self.bytes.len().max(1))?;
        self.at += 1;
        Some(b)
    }
}

/// How starting qmail-queue went (main.rs: `Queue::spawn`): control bytes
/// below 0xe0 (and no control bytes at all) mean it started.
fn open_answer(c: Option<u8>) -> Result<u32, QueueOutcome> {
    let failed = |exit| {
        Err(QueueOutcome {
            exit,
            write_failed: false,
        })
    };
    match c.unwrap_or(0) {
        0xf0.. => failed(QueueExit::Exited(120)),
        0xe0.. => failed(QueueExit::Unknown),
        _ => Ok(PID),
    }
}

/// qmail-queue exit codes worth telling apart (qmail-queue(8)), plus odd ones.
const EXIT_CODES: &[i32] = &[
    1, 11, 31, 51, 52, 53, 54, 55, 56, 61, 62, 71, 72, 73, 74, 81, 91, 100, 120, 255, -1,
];

/// How qmail-queue ended (main.rs: `Queue::finish`): control bytes below
/// 0xc0 mean success, the others pick a failure.
fn close_answer(c: Option<u8>) -> QueueOutcome {
    let c = c.unwrap_or(0);
    let (exit, write_failed) = match c {
        0..0xc0 => (QueueExit::Exited(0), false),
        _ => match c & 0x3f {
            0 => (QueueExit::Exited(0), true),
            1 => (QueueExit::Signaled, false),
            2 => (QueueExit::Unknown, false),
            x => (
                QueueExit::Exited(EXIT_CODES[usize::from(x) % EXIT_CODES.len()]),
                false,
            ),
        },
    };
    QueueOutcome { exit, write_failed }
}

/// What checkpassword said: control bytes below 0xc0 mean accepted.
fn password_answer(c: Option<u8>) -> AuthResult {
    match c.unwrap_or(0) {
        0..0xc0 => AuthResult::Accepted,
        c if c & 1 == 0 => AuthResult::TempFail,
        _ => AuthResult::Rejected,
    }
}

/// Drain and check what the session asked the edge to log or wait
/// (main.rs `side_effects`).
fn side_effects(out: &mut Output, max_delay: u64) {
    for l in out.log.drain(..) {
        assert!(
            l.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "log line not one printable line: {l:?}"
        );
    }
    assert!(out.delay_ms <= max_delay, "delay {} ms", out.delay_ms);
    out.delay_ms = 0;
}

/// qmail-queue's extra environment (main.rs: `tls_env` + `queue_env`).
fn check_queue_env(env: &[(String, Option<Vec<u8>>)]) {
    for (k, v) in env {
        assert!(
            !k.is_empty() && !k.contains(['=', '\0']),
            "bad environment name {k:?}"
        );
        assert!(
            v.as_ref().is_none_or(|v| !v.contains(&0)),
            "NUL in the value of {k}"
        );
    }
}

/// `F`sender NUL (`T`rcpt NUL)+ NUL, no NUL or control byte in an address.
fn check_envelope(env: &[u8]) {
    // Each field ends in NUL; the envelope ends with an empty field.
    let body = env
        .strip_suffix(b"\0\0")
        .unwrap_or_else(|| panic!("unterminated envelope {env:?}"));
    let mut fields = body.split(|&b| b == 0);
    let sender = fields.next().unwrap();
    assert_eq!(sender.first(), Some(&b'F'), "envelope {env:?}");
    let mut rcpts = 0;
    for f in fields {
        assert!(
            f.len() > 1 && f[0] == b'T',
            "bad or empty recipient field in {env:?}"
        );
        rcpts += 1;
    }
    assert!(rcpts > 0, "message queued without recipients");
    assert!(
        !body.iter().any(|&b| (b < 0x20 && b != 0) || b == 0x7f),
        "control byte in an envelope address: {env:?}"
    );
}

/// The reply bytes one call appended. `may_accept`: this call is
/// `queue_closed` with exit 0 (then it must be exactly the acceptance).
fn check_segment(seg: &[u8], may_accept: bool) {
    if may_accept {
        assert_eq!(seg, ACCEPTED, "queue success not answered with 250 ok");
        return;
    }
    for line in seg.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "reply line without CRLF: {line:?}");
        let text = &line[..line.len() - 2];
        assert!(
            text.iter().all(|&b| (0x20..0x7f).contains(&b)),
            "reply line not printable ASCII: {line:?}"
        );
        assert!(
            text.len() >= 4
                && text[..3].iter().all(u8::is_ascii_digit)
                && (text[3] == b' ' || text[3] == b'-'),
            "malformed reply line {line:?}"
        );
        assert!(
            !text.starts_with(b"250 2.0.0 ok "),
            "queue acceptance outside FinishQueue: {line:?}"
        );
    }
}

/// What a hook's plugin prints, by answer byte (`None`: the first).
const PLUGIN_SAYS: &[&[u8]] = &[
    b"",
    b"\n",
    b"N\n",
    b"O\n",
    b"A\n",
    b"E550 5.7.1 spp says no\n",
    b"P451-4.7.1 first\nE451 4.7.1 then\n",
    b"R421 4.7.0 bye\n",
    b"D\n",
    b"HX-Spp: yes\nSSPPVAR=1\nUSPPGONE\n",
    b"Cspp@example.org\n",
    b"LM451 4.7.1 m\nLR452 4.7.1 r\nLD453 4.7.1 d\n",
    b"crash",
    b"E550 no newline",
];

/// A policy service's action, by answer byte.
const POLICY_SAYS: &[&str] = &[
    "DUNNO",
    "OK",
    "REJECT",
    "DEFER_IF_PERMIT Greylisted",
    "PREPEND X-Policy: yes",
    "WARN odd",
    "550 5.1.1 no such user",
    "FROB",
    "451 4.3.5 Server configuration problem",
];

/// Answer `RunHook` / `AskPolicy` as main.rs does (with the plugin output
/// or action the answer byte picks); other actions are returned as they are.
fn answer_hooks(
    s: &mut Session<FakeLookups>,
    mut action: Action,
    answers: &mut Cursor<'_>,
    out: &mut Output,
) -> Action {
    loop {
        match action {
            Action::RunHook(hook) => {
                assert!(s.config().spp & hook.bit() != 0, "{hook:?} without plugins");
                let says =
                    PLUGIN_SAYS[usize::from(answers.next().unwrap_or(0)) % PLUGIN_SAYS.len()];
                let p = Plugin {
                    line: b"plugins/fuzz".to_vec(),
                };
                let run = spp::chain(hook, std::slice::from_ref(&p), |p, run| {
                    if says == b"crash" {
                        return PluginExit::Signal;
                    }
                    run.plugin(p, says, PluginExit::Code(0));
                    PluginExit::Code(0)
                });
                check_queue_env(&s.hook_env());
                action = s.hook_done(&run, out);
            }
            Action::AskPolicy => {
                assert!(s.config().policy_service, "AskPolicy without a service");
                let attrs = s.policy_request();
                let pairs: Vec<(&str, &[u8])> =
                    attrs.iter().map(|(k, v)| (*k, v.as_slice())).collect();
                let req = request(&pairs);
                assert_eq!(
                    req.iter().filter(|&&b| b == b'\n').count(),
                    pairs.len() + 1,
                    "policy request framing broken: {req:?}"
                );
                assert!(
                    req.ends_with(b"\n\n")
                        && !req[..req.len() - 1].windows(2).any(|w| w == b"\n\n")
                );
                let says =
                    POLICY_SAYS[usize::from(answers.next().unwrap_or(0)) % POLICY_SAYS.len()];
                action = s.policy_answered(decide(says.as_bytes()), out);
            }
            other => return other,
        }
    }
}

/// Which queue state the edge is in.
#[derive(Debug, PartialEq, Eq)]
enum Queue {
    None,
    Running,
}

fuzz_target!(|input: &[u8]| {
    let [cfg, auth, n, rest @ ..] = input else {
        return;
    };
    let k = usize::from(n % 17).min(rest.len());
    let (ctl, stream) = rest.split_at(k);
    let mut reads = Cursor { bytes: ctl, at: 0 };
    let mut answers = Cursor { bytes: ctl, at: 0 };

    let hooks = n & 0x80 != 0;
    let mut s = setup(*cfg, *auth, hooks);
    let max_delay = s
        .config()
        .auth_failure_delay_ms
        .saturating_mul(u64::from(s.config().max_auth_failures));
    let mut out = Output::default();
    let greeted = s.connect(&mut out);
    let greeted = answer_hooks(&mut s, greeted, &mut answers, &mut out);
    check_segment(&out.replies, false);
    side_effects(&mut out, max_delay);

    let mut queue = Queue::None;
    let mut message = Vec::new();
    let mut consumed = 0usize;
    let mut finished_ok = 0u32;
    let mut tls_started = false;
    // Set at Close: the input the session was never given.
    let mut closed: Option<Vec<u8>> = None;
    let mut rest = stream;
    if greeted == Action::Close {
        closed = Some(stream.to_vec());
        rest = &[];
    } else {
        assert_eq!(greeted, Action::NeedInput);
    }

    'reads: while !rest.is_empty() {
        // One read(): the next chunk of what the client sent.
        let len = match reads.next() {
            None | Some(0) => rest.len(),
            Some(c) => usize::from(c).min(rest.len()),
        };
        let (mut buf, after) = rest.split_at(len);
        rest = after;

        while !buf.is_empty() {
            let mark = out.replies.len();
            let (n, action) = s.feed(buf, &mut out);
            assert!(n <= buf.len());
            assert!(
                n > 0 || action != Action::NeedInput,
                "feed made no progress"
            );
            if action == Action::NeedInput {
                assert_eq!(n, buf.len(), "NeedInput with input left");
            }
            buf = &buf[n..];
            consumed += n;
            check_segment(&out.replies[mark..], false);
            side_effects(&mut out, max_delay);
            // main.rs: message bytes go to qmail-queue as they come.
            if !out.body.is_empty() {
                assert_eq!(queue, Queue::Running, "message bytes with no queue");
                message.append(&mut out.body);
            }

            let mark = out.replies.len();
            let mut accepting = false;
            let action = answer_hooks(&mut s, action, &mut answers, &mut out);
            match action {
                Action::NeedInput => {}
                Action::OpenQueue => {
                    assert_eq!(queue, Queue::None, "OpenQueue with a queue running");
                    check_queue_env(&s.queue_env());
                    let answer = open_answer(answers.next());
                    let a = s.queue_opened(answer, NOW, &mut out);
                    assert_eq!(a, Action::NeedInput);
                    if answer.is_ok() {
                        queue = Queue::Running;
                        message = std::mem::take(&mut out.body);
                        assert!(message.starts_with(b"Received: "));
                    } else {
                        assert!(out.body.is_empty(), "a Received header with no queue");
                    }
                }
                Action::FinishQueue => {
                    assert_eq!(queue, Queue::Running, "FinishQueue with no queue");
                    queue = Queue::None;
                    let mut env = Vec::new();
                    s.envelope(&mut env);
                    check_envelope(&env);
                    assert!(message.ends_with(b"\n"), "message ends mid-line");
                    assert!(!message.contains(&b'\r'), "CR stored in the message");
                    message.clear();
                    let outcome = close_answer(answers.next());
                    accepting = outcome.exit == QueueExit::Exited(0) && !outcome.write_failed;
                    finished_ok += u32::from(accepting);
                    let a = s.queue_closed(outcome, NOW, &mut out);
                    assert_eq!(a, Action::NeedInput);
                }
                Action::AbortQueue => {
                    assert_eq!(queue, Queue::Running, "AbortQueue with no queue");
                    queue = Queue::None;
                    message.clear();
                }
                Action::StartTls => {
                    assert!(!tls_started, "a second StartTls");
                    tls_started = true;
                    // CVE-2011-0411: the rest of this read is thrown away.
                    buf = &[];
                    s.tls_started("TLSv1.3 X".into());
                }
                Action::RunHook(_) | Action::AskPolicy => unreachable!("answered above"),
                Action::CheckPassword => {
                    // Credentials reach the back-end only on an encrypted
                    // link, unless the policy allows AUTH in clear.
                    let secure = tls_started || s.config().tls.link != Link::Plain;
                    assert!(
                        secure || s.config().auth.insecure_ok,
                        "AUTH in clear without ALLOW_INSECURE_AUTH/FORCETLS=0"
                    );
                    let creds = s
                        .take_credentials()
                        .expect("CheckPassword without credentials");
                    assert!(s.take_credentials().is_none(), "credentials taken twice");
                    let mut record = Vec::new();
                    creds.record(&mut record);
                    assert!(
                        record.len() <= MAX_RECORD,
                        "record of {} bytes",
                        record.len()
                    );
                    assert_eq!(
                        record.iter().filter(|&&b| b == 0).count(),
                        3,
                        "checkpassword record with a NUL inside a field"
                    );
                    assert!(!creds.user.is_empty() && record[0] != 0, "empty user");
                    let result = password_answer(answers.next());
                    let a = s.auth_checked(&creds.user, creds.mechanism, result, &mut out);
                    let a = answer_hooks(&mut s, a, &mut answers, &mut out);
                    if result == AuthResult::Accepted && !hooks {
                        // (With hooks, an [auth] plugin may refuse it.)
                        assert_eq!(s.auth_user(), Some(&creds.user[..]));
                    }
                    if a == Action::Close {
                        check_segment(&out.replies[mark..], false);
                        side_effects(&mut out, max_delay);
                        let mut left = buf.to_vec();
                        left.extend_from_slice(rest);
                        closed = Some(left);
                        break 'reads;
                    }
                    assert_eq!(a, Action::NeedInput);
                }
                Action::RcptCheck => {
                    assert!(
                        s.config().rcpt_checks.rcptcheck.is_some(),
                        "RcptCheck with no RCPTCHECK configured"
                    );
                    let env = s.rcptcheck_env();
                    assert!(env.iter().any(|(k, _)| k == "RECIPIENT"), "{env:?}");
                    assert!(env.iter().all(|(_, v)| !v.contains(&0)), "{env:?}");
                    let a = s.rcpt_checked(&rcptcheck_answer(answers.next()), &mut out);
                    // An accepted recipient goes on to [pass] and the policy service.
                    let a = answer_hooks(&mut s, a, &mut answers, &mut out);
                    if a == Action::Close {
                        check_segment(&out.replies[mark..], false);
                        side_effects(&mut out, max_delay);
                        let mut left = buf.to_vec();
                        left.extend_from_slice(rest);
                        closed = Some(left);
                        break 'reads;
                    }
                    assert_eq!(a, Action::NeedInput);
                }
                Action::Close => {
                    let mut left = buf.to_vec();
                    left.extend_from_slice(rest);
                    closed = Some(left);
                    break 'reads;
                }
            }
            check_segment(&out.replies[mark..], accepting);
            side_effects(&mut out, max_delay);
            assert!(out.body.is_empty(), "body left after an action");
        }
    }

    if let Some(left) = closed {
        // Nothing after Close is processed.
        let mark = out.replies.len();
        if !left.is_empty() {
            let (n, action) = s.feed(&left, &mut out);
            assert_eq!((n, action), (0, Action::Close), "input taken after Close");
        }
        assert_eq!(out.replies.len(), mark, "replies after Close");
        assert!(out.body.is_empty(), "message bytes after Close");
    } else {
        // End of input: the client hung up, or (first control byte) timed out.
        let mark = out.replies.len();
        let a = if ctl.first().is_some_and(|c| c & 0x80 != 0) {
            s.timeout(&mut out)
        } else {
            s.eof()
        };
        assert_eq!(a, Action::Close);
        check_segment(&out.replies[mark..], false);
        let (n, a) = s.feed(b"NOOP\r\n", &mut out);
        assert_eq!((n, a), (0, Action::Close), "input taken after Close");
    }

    if trace() {
        eprintln!(
            "cfg={cfg:#04x} auth={auth:#04x} control={ctl:?} consumed={consumed}/{} \
             queued={finished_ok}\n{}",
            stream.len(),
            String::from_utf8_lossy(&out.replies)
        );
    }

    let accepted = out
        .replies
        .windows(ACCEPTED.len())
        .filter(|w| *w == ACCEPTED)
        .count();
    assert_eq!(
        accepted, finished_ok as usize,
        "acceptances != successful queue runs"
    );
    assert!(
        out.replies.len() <= REPLY_SLACK + REPLY_BYTES_PER_INPUT_BYTE * consumed,
        "{} reply bytes for {consumed} input bytes",
        out.replies.len()
    );
});
