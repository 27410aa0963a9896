//! Whole sessions driven through the pure core, with an in-memory stand-in
//! for qmail-queue whose verdict each test chooses. The harness does what
//! `main.rs` does with real fds and processes.

use std::collections::HashSet;

use hmac::{Hmac, Mac};
use qmail_smtpd::core::policy::{AuthPolicy, Link, Policy, TlsPolicy};
use qmail_smtpd::smtp::auth::Mechanism;
use qmail_smtpd::smtp::session::{
    Action, AuthResult, Config, LookupError, Lookups, NameSet, Output, QueueExit, QueueOutcome,
    Session,
};

const NOW: u64 = 1_795_348_475; // 22 Nov 2026 11:54:35 UTC
const QP: u32 = 4242;

#[derive(Default)]
struct Fake {
    more: HashSet<Vec<u8>>,
    local: Vec<[u8; 4]>,
    broken_cdb: bool,
    tls: bool,
    /// (user, password) pairs the checkpassword stand-in accepts.
    users: Vec<(&'static str, &'static str)>,
    /// checkpassword's verdict regardless of the credentials.
    verdict: Option<AuthResult>,
    challenges: std::cell::Cell<u32>,
}

impl Fake {
    /// What checkpassword would say of the record `user\0secret\0timestamp\0`
    /// (CRAM-MD5: the secret is the hex HMAC-MD5 of the timestamp).
    fn check(&self, record: &[u8]) -> AuthResult {
        if let Some(v) = self.verdict {
            return v;
        }
        let f: Vec<&[u8]> = record.split(|&b| b == 0).collect();
        assert_eq!(f.len(), 4, "always three fields and a final NUL");
        let (user, secret, ts) = (f[0], f[1], f[2]);
        let ok = self.users.iter().any(|(u, p)| {
            u.as_bytes() == user
                && if ts.is_empty() {
                    p.as_bytes() == secret
                } else {
                    hex_hmac(p.as_bytes(), ts).as_bytes() == secret
                }
        });
        if ok {
            AuthResult::Accepted
        } else {
            AuthResult::Rejected
        }
    }
}

fn hex_hmac(key: &[u8], msg: &[u8]) -> String {
    let mut m = Hmac::<md5::Md5>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Lookups for Fake {
    fn more_rcpthosts(&self, domain: &[u8]) -> Result<bool, LookupError> {
        if self.broken_cdb {
            return Err(LookupError);
        }
        Ok(self.more.contains(domain))
    }
    fn is_local_ip(&self, ip: [u8; 4]) -> bool {
        self.local.contains(&ip)
    }
    fn tls_available(&self) -> bool {
        self.tls
    }
    fn cram_challenge(&self) -> Vec<u8> {
        let n = self.challenges.get() + 1;
        self.challenges.set(n);
        format!("<{n}.{NOW}@mx.example.org>").into_bytes()
    }
}

fn config() -> Config {
    let mut c = Config::new(b"mx.example.org");
    c.rcpthosts = Some(NameSet::new([
        b"example.org".to_vec(),
        b".wild.example".to_vec(),
    ]));
    c.remote_ip = b"192.0.2.7".to_vec();
    c.remote_host = b"client.example.net".to_vec();
    c.local_host = b"mx.example.org".to_vec();
    c
}

/// What a session produced.
#[derive(Debug, Default)]
struct Transcript {
    replies: String,
    /// (message bytes, envelope bytes) for each message handed to the queue
    /// and accepted by it.
    queued: Vec<(Vec<u8>, Vec<u8>)>,
    /// Messages whose queue run was aborted (nothing stored).
    aborted: usize,
    closed: bool,
    /// Bytes of input never consumed (after Close).
    unconsumed: usize,
    /// Plaintext bytes thrown away at STARTTLS.
    discarded: usize,
    /// checkpassword records seen, and the log lines.
    records: Vec<Vec<u8>>,
    log: Vec<String>,
    /// Milliseconds waited before replies.
    delays: Vec<u64>,
    /// qmail-queue's environment for each queued message.
    queue_env: Vec<Vec<(String, Option<Vec<u8>>)>>,
}

impl Transcript {
    fn lines(&self) -> Vec<&str> {
        self.replies.split_terminator("\r\n").collect()
    }
    fn codes(&self) -> Vec<u16> {
        self.lines()
            .iter()
            .filter(|l| l.as_bytes().get(3) == Some(&b' '))
            .map(|l| l[..3].parse().unwrap())
            .collect()
    }
}

/// Run a session over `chunks`; `queue_exit` is what qmail-queue exits with.
fn run_with(cfg: Config, fake: Fake, chunks: &[&[u8]], queue_exit: i32) -> Transcript {
    let mut s = Session::new(cfg, fake);
    let mut out = Output::default();
    let mut t = Transcript::default();
    let mut body = Vec::new();
    let mut open = false;
    s.greet(&mut out);
    'outer: for (ci, chunk) in chunks.iter().enumerate() {
        let mut pos = 0;
        while pos < chunk.len() {
            let (n, action) = s.feed(&chunk[pos..], &mut out);
            pos += n;
            body.append(&mut out.body);
            t.log.append(&mut out.log);
            if out.delay_ms > 0 {
                t.delays.push(std::mem::take(&mut out.delay_ms));
            }
            match action {
                Action::NeedInput => {}
                Action::OpenQueue => {
                    s.queue_opened(Ok(QP), NOW, &mut out);
                    body.clear();
                    body.append(&mut out.body);
                    open = true;
                }
                Action::FinishQueue => {
                    assert!(open);
                    let mut env = Vec::new();
                    s.envelope(&mut env);
                    let outcome = QueueOutcome {
                        exit: QueueExit::Exited(queue_exit),
                        write_failed: false,
                    };
                    if queue_exit == 0 {
                        t.queued.push((std::mem::take(&mut body), env));
                        t.queue_env.push(s.queue_env());
                    }
                    s.queue_closed(outcome, NOW, &mut out);
                    open = false;
                }
                Action::AbortQueue => {
                    t.aborted += 1;
                    body.clear();
                    open = false;
                }
                Action::StartTls => {
                    // The edge drops what was pipelined behind STARTTLS.
                    t.discarded += chunk.len() - pos;
                    pos = chunk.len();
                    s.tls_started("TLSv1.3 TLS13_AES_256_GCM_SHA384".into());
                }
                Action::RunHook(_) => unreachable!("no plugins configured"),
                Action::AskPolicy => unreachable!("no policy service configured"),
                Action::CheckPassword => {
                    let c = s.take_credentials().expect("credentials");
                    let mut record = Vec::new();
                    c.record(&mut record);
                    let verdict = s.lookups().check(&record);
                    t.records.push(record);
                    s.auth_checked(&c.user, c.mechanism, verdict, &mut out);
                }
                Action::RcptCheck => {
                    let ok = qmail_smtpd::core::rcptcheck::Outcome {
                        exit: qmail_smtpd::core::rcptcheck::Exit::Exited(0),
                        fd4: Vec::new(),
                    };
                    s.rcpt_checked(&ok, &mut out);
                }
                Action::Close => {
                    t.closed = true;
                    if open {
                        t.aborted += 1;
                    }
                    t.unconsumed =
                        chunk.len() - pos + chunks[ci + 1..].iter().map(|c| c.len()).sum::<usize>();
                    break 'outer;
                }
            }
        }
    }
    if !t.closed {
        assert_eq!(s.eof(), Action::Close);
        if open {
            t.aborted += 1;
        }
    }
    t.log.append(&mut out.log);
    if out.delay_ms > 0 {
        t.delays.push(out.delay_ms);
    }
    t.replies = String::from_utf8(out.replies).unwrap();
    t
}

fn run(input: &[u8]) -> Transcript {
    run_with(config(), Fake::default(), &[input], 0)
}

const GREETING: &str = "220 mx.example.org ESMTP";

#[test]
fn whole_session_exact() {
    let t = run(b"EHLO c.example.net\r\n\
        MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME\r\n\
        RCPT TO:<bob@example.org>\r\n\
        RCPT TO:<carol@sub.wild.example>\r\n\
        DATA\r\n\
        Subject: hi\r\n\
        \r\n\
        ..dot line\r\n\
        .\r\n\
        QUIT\r\n");
    assert_eq!(
        t.lines(),
        vec![
            GREETING,
            "250-mx.example.org",
            "250-PIPELINING",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250 SIZE 0",
            "250 2.1.0 ok",
            "250 2.1.5 ok",
            "250 2.1.5 ok",
            "354 go ahead, end data with <CR><LF>.<CR><LF>",
            "250 2.0.0 ok 1795348475 qp 4242",
            "221 2.0.0 mx.example.org",
        ]
    );
    assert!(t.closed);
    assert_eq!(t.queued.len(), 1);
    let (msg, env) = &t.queued[0];
    assert_eq!(
        String::from_utf8_lossy(msg),
        "Received: from client.example.net (HELO c.example.net) (192.0.2.7)\n  \
         by mx.example.org with ESMTP; 22 Nov 2026 11:54:35 -0000\n\
         Subject: hi\n\n.dot line\n"
    );
    assert_eq!(
        env.as_slice(),
        b"Falice@example.net\0Tbob@example.org\0Tcarol@sub.wild.example\0\0"
    );
}

#[test]
fn helo_gives_smtp_and_plain_250() {
    let t = run(
        b"HELO client.example.net\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nDATA\r\nx\r\n.\r\n",
    );
    assert_eq!(t.lines()[1], "250 mx.example.org");
    let (msg, env) = &t.queued[0];
    // HELO equal to the remote host name is not repeated (qmail's fakehelo).
    assert!(msg.starts_with(
        b"Received: from client.example.net (192.0.2.7)\n  by mx.example.org with SMTP; "
    ));
    assert_eq!(env.as_slice(), b"F\0Tpostmaster\0\0");
}

#[test]
fn every_split_gives_the_same_session() {
    let input: &[u8] = b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n\
        Received: x\r\n\r\n.hello\r\n..\r\n.\r\nNOOP\r\nRSET\r\nQUIT\r\n";
    let whole = run(input);
    assert_eq!(whole.codes().len(), 9);
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        let t = run_with(config(), Fake::default(), &[a, b], 0);
        assert_eq!(t.replies, whole.replies, "split at {i}");
        assert_eq!(t.queued, whole.queued, "split at {i}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let t = run_with(config(), Fake::default(), &bytes, 0);
    assert_eq!(t.replies, whole.replies);
    assert_eq!(t.queued, whole.queued);
}

#[test]
fn pipelined_replies_in_order() {
    let mut input = Vec::new();
    input.extend_from_slice(b"EHLO a\r\n");
    for i in 0..50 {
        input.extend_from_slice(
            format!("MAIL FROM:<s{i}@a>\r\nRCPT TO:<r{i}@example.org>\r\nRCPT TO:<r@elsewhere.example>\r\nDATA\r\nmsg {i}\r\n.\r\n").as_bytes(),
        );
    }
    input.extend_from_slice(b"QUIT\r\n");
    let t = run(&input);
    assert_eq!(t.queued.len(), 50);
    let codes = t.codes();
    assert_eq!(codes[0], 220);
    assert_eq!(codes[1], 250);
    for i in 0..50 {
        assert_eq!(&codes[2 + i * 5..7 + i * 5], &[250, 250, 553, 354, 250]);
        assert!(t.queued[i].0.ends_with(format!("msg {i}\n").as_bytes()));
    }
    assert_eq!(*codes.last().unwrap(), 221);
}

#[test]
fn relay_rules() {
    let rcpt = |cfg: Config, fake: Fake, addr: &str| -> String {
        let input = format!("MAIL FROM:<a@b>\r\nRCPT TO:{addr}\r\n");
        let t = run_with(cfg, fake, &[input.as_bytes()], 0);
        t.lines()[2].to_string()
    };
    let ok = "250 2.1.5 ok";
    let denied = "553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts";
    let routing =
        "553 5.7.1 sorry, sender-specified routing (%, ! or @ in the local part) is not allowed";
    let f = Fake::default;
    assert_eq!(rcpt(config(), f(), "<u@example.org>"), ok);
    assert_eq!(rcpt(config(), f(), "<u@EXAMPLE.Org>"), ok);
    assert_eq!(
        rcpt(config(), f(), "<u@wild.example>"),
        denied,
        ".wild matches subdomains only"
    );
    assert_eq!(rcpt(config(), f(), "<u@a.b.wild.example>"), ok);
    assert_eq!(rcpt(config(), f(), "<u@example.org.evil.example>"), denied);
    assert_eq!(rcpt(config(), f(), "<u@evil.example>"), denied);
    assert_eq!(rcpt(config(), f(), "<u@example.org.>"), denied);
    assert_eq!(rcpt(config(), f(), "<postmaster>"), ok);
    // Source routes are stripped before the check: the real target counts.
    assert_eq!(rcpt(config(), f(), "<@example.org:u@evil.example>"), denied);
    assert_eq!(rcpt(config(), f(), "<@evil.example:u@example.org>"), ok);
    // Routing through us is refused.
    assert_eq!(rcpt(config(), f(), "<u%evil.example@example.org>"), routing);
    assert_eq!(rcpt(config(), f(), "<evil.example!u@example.org>"), routing);
    assert_eq!(
        rcpt(config(), f(), "<\"u@evil.example\"@example.org>"),
        routing
    );
    assert_eq!(rcpt(config(), f(), "<u%evil.example>"), routing);
    assert_eq!(
        rcpt(config(), f(), "<\"u@example.org\"@evil.example>"),
        denied
    );
    assert_eq!(
        rcpt(config(), f(), "<>"),
        "501 5.1.3 empty recipient address"
    );

    // morercpthosts.cdb, including its suffix rule.
    let more = || Fake {
        more: HashSet::from([b"more.example".to_vec(), b".deep.example".to_vec()]),
        ..Fake::default()
    };
    assert_eq!(rcpt(config(), more(), "<u@More.Example>"), ok);
    assert_eq!(rcpt(config(), more(), "<u@x.deep.example>"), ok);
    assert_eq!(rcpt(config(), more(), "<u@x.more.example>"), denied);

    // A cdb that cannot be read ends the session as qmail does.
    let broken = Fake {
        broken_cdb: true,
        ..Fake::default()
    };
    assert_eq!(
        rcpt(config(), broken, "<u@evil.example>"),
        "421 4.3.0 unable to read controls"
    );

    // Missing rcpthosts: fail closed, temporarily.
    let mut c = config();
    c.rcpthosts = None;
    assert_eq!(
        rcpt(c, f(), "<u@example.org>"),
        "451 4.3.5 sorry, this server has no rcpthosts and accepts no mail"
    );
}

#[test]
fn relayclient_appends_and_skips_rcpthosts() {
    let mut c = config();
    c.relayclient = Some(b"".to_vec());
    let t = run_with(
        c.clone(),
        Fake::default(),
        &[b"MAIL FROM:<a@b>\r\nRCPT TO:<u@elsewhere.example>\r\nDATA\r\nx\r\n.\r\n"],
        0,
    );
    assert_eq!(t.queued[0].1, b"Fa@b\0Tu@elsewhere.example\0\0");
    c.relayclient = Some(b".relay".to_vec());
    let t = run_with(
        c,
        Fake::default(),
        &[b"MAIL FROM:<a@b>\r\nRCPT TO:<u@elsewhere.example>\r\nDATA\r\nx\r\n.\r\n"],
        0,
    );
    assert_eq!(t.queued[0].1, b"Fa@b\0Tu@elsewhere.example.relay\0\0");
}

#[test]
fn local_ip_literal_rewritten_to_localiphost() {
    let mut c = config();
    c.localiphost = Some(b"example.org".to_vec());
    let fake = Fake {
        local: vec![[192, 0, 2, 1]],
        ..Fake::default()
    };
    let t = run_with(
        c,
        fake,
        &[b"MAIL FROM:<a@b>\r\nRCPT TO:<u@[192.0.2.1]>\r\nRCPT TO:<u@[192.0.2.99]>\r\nDATA\r\nx\r\n.\r\n"],
        0,
    );
    assert_eq!(t.codes()[1..4], [250, 250, 553]);
    assert_eq!(t.queued[0].1, b"Fa@b\0Tu@example.org\0\0");
}

#[test]
fn sequence_errors() {
    let t = run(b"RCPT TO:<u@example.org>\r\nDATA\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<c@d>\r\nDATA\r\nRCPT TO:<u@evil.example>\r\nDATA\r\nRSET\r\nDATA\r\n");
    assert_eq!(
        t.lines()[1..],
        [
            "503 5.5.1 MAIL first",
            "503 5.5.1 MAIL first",
            "250 2.1.0 ok",
            "503 5.5.1 MAIL already given; RSET first",
            "503 5.5.1 RCPT first",
            "553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts",
            "554 5.5.1 no valid recipients",
            "250 2.0.0 flushed",
            "503 5.5.1 MAIL first",
        ]
    );
    assert!(t.queued.is_empty());
}

#[test]
fn ehlo_resets_transaction() {
    let t = run(b"MAIL FROM:<a@b>\r\nEHLO x\r\nRCPT TO:<u@example.org>\r\n");
    assert_eq!(*t.codes().last().unwrap(), 503);
}

#[test]
fn badmailfrom() {
    let mut c = config();
    c.badmailfrom = qmail_smtpd::core::rcpt_checks::AddrList::new(vec![
        b"spam@bad.example".to_vec(),
        b"@worse.example".to_vec(),
    ])
    .0;
    for sender in ["SPAM@bad.example", "x@Worse.Example"] {
        let input = format!("MAIL FROM:<{sender}>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
        let t = run_with(c.clone(), Fake::default(), &[input.as_bytes()], 0);
        assert_eq!(
            t.lines()[1..],
            [
                "250 2.1.0 ok",
                "553 5.7.1 sorry, your envelope sender is in my badmailfrom list",
                "554 5.5.1 no valid recipients"
            ]
        );
    }
    let t = run_with(
        c,
        Fake::default(),
        &[b"MAIL FROM:<ok@bad.example>\r\nRCPT TO:<u@example.org>\r\n"],
        0,
    );
    assert_eq!(t.codes()[2], 250);
}

#[test]
fn databytes() {
    let mut c = config();
    c.databytes = 10;
    let t = run_with(
        c.clone(),
        Fake::default(),
        &[b"EHLO a\r\nMAIL FROM:<a@b> SIZE=11\r\nMAIL FROM:<a@b> SIZE=10\r\n"],
        0,
    );
    assert!(t.lines().contains(&"250 SIZE 10"));
    assert_eq!(
        t.lines()[7..],
        [
            "552 5.3.4 sorry, that message size exceeds my databytes limit",
            "250 2.1.0 ok"
        ]
    );
    // Stored size is counted as qmail does: LF endings, Received excluded.
    let ok = b"MAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n123456789\r\n.\r\n";
    let t = run_with(c.clone(), Fake::default(), &[ok], 0);
    assert_eq!(t.queued.len(), 1);
    let big = b"MAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n1234567890\r\n.\r\nNOOP\r\n";
    let t = run_with(c, Fake::default(), &[big], 0);
    assert!(t.queued.is_empty());
    assert_eq!(t.aborted, 1);
    assert_eq!(
        t.lines()[4..],
        [
            "552 5.3.4 sorry, that message size exceeds my databytes limit",
            "250 2.0.0 ok"
        ]
    );
}

#[test]
fn hop_count() {
    let msg = |hops: usize| {
        let mut m = b"MAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n".to_vec();
        for i in 0..hops {
            let h = if i % 2 == 0 {
                "Received: x\r\n"
            } else {
                "delivered-to: y\r\n"
            };
            m.extend_from_slice(h.as_bytes());
        }
        m.extend_from_slice(b"\r\nbody\r\n.\r\n");
        m
    };
    let t = run(&msg(99));
    assert_eq!(t.queued.len(), 1);
    let t = run(&msg(100));
    assert!(t.queued.is_empty());
    assert_eq!(t.aborted, 1);
    assert_eq!(
        *t.lines().last().unwrap(),
        "554 5.4.6 too many hops, this message is looping"
    );
}

#[test]
fn bare_lf_and_bare_cr_end_the_session_and_queue_nothing() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"line\n.\nRSET\r\n",
            "451 4.5.0 See https://cr.yp.to/docs/smtplf.html.",
        ),
        (
            b"line\r\n.\nMAIL FROM:<x@y>\r\n",
            "451 4.5.0 See https://cr.yp.to/docs/smtplf.html.",
        ),
        (b"a\r\n.\r\rRSET\r\n.\r\n", "451 4.5.0 bare CR"),
        (b"a\rb\r\n.\r\n", "451 4.5.0 bare CR"),
    ];
    for (data, want) in cases {
        let mut input = b"MAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n".to_vec();
        input.extend_from_slice(data);
        let t = run(&input);
        assert!(t.closed);
        assert!(t.queued.is_empty(), "{:?}", String::from_utf8_lossy(data));
        assert_eq!(t.aborted, 1);
        let last = *t.lines().last().unwrap();
        assert!(last.starts_with(want), "{last}");
        assert!(t.unconsumed > 0, "the rest is never executed");
    }
}

#[test]
fn smuggled_commands_stay_in_the_message() {
    // `\n.\r\n` is not an end of data: the "commands" after it are text.
    let input = b"MAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nx\r\n\r\n.\r\r\n";
    let t = run(input);
    assert!(t.queued.is_empty());
    let input = b"MAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nx\r\n..\r\nMAIL FROM:<evil@x>\r\n.\r\n";
    let t = run(input);
    assert_eq!(t.queued.len(), 1);
    assert!(t.queued[0].0.ends_with(b"x\n.\nMAIL FROM:<evil@x>\n"));
}

#[test]
fn long_lines_nul_and_no_reflection() {
    let mut input = vec![b'A'; 100_000];
    input.extend_from_slice(
        b"\r\nNOOP\0\r\nGET /secret-token HTTP/1.1\r\nHost: secret-host\r\nNOOP\r\n",
    );
    // Fed in small pieces: the long line must not be buffered.
    let chunks: Vec<&[u8]> = input.chunks(1000).collect();
    let t = run_with(config(), Fake::default(), &chunks, 0);
    assert_eq!(
        t.lines()[1..],
        [
            "500 5.5.2 line too long",
            "500 5.5.2 NUL or bare CR in command line",
            "502 5.5.1 unimplemented",
            "502 5.5.1 unimplemented",
            "250 2.0.0 ok",
        ]
    );
    assert!(!t.replies.contains("secret"));
    // Exactly at the limit is fine.
    let mut line = b"NOOP ".to_vec();
    line.resize(2046, b'x');
    line.extend_from_slice(b"\r\n");
    assert_eq!(run(&line).codes()[1], 250);
    line.insert(10, b'x');
    assert_eq!(run(&line).codes()[1], 500);
}

#[test]
fn error_limit_closes_with_421() {
    let input = b"FOO\r\n".repeat(50);
    let t = run(&input);
    let codes = t.codes();
    assert_eq!(codes.len(), 1 + 20 + 1);
    assert!(codes[1..21].iter().all(|&c| c == 502));
    assert_eq!(
        *t.lines().last().unwrap(),
        "421 4.7.0 too many errors, closing connection"
    );
    assert!(t.closed);
    assert_eq!(t.unconsumed, 30 * 5);
}

#[test]
fn queue_failures_never_say_250() {
    let input = b"MAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nx\r\n.\r\n";
    for code in [
        11, 31, 51, 52, 53, 54, 55, 56, 61, 62, 66, 71, 72, 73, 74, 81, 91, 120, 1, 99,
    ] {
        let t = run_with(config(), Fake::default(), &[input], code);
        let last = *t.lines().last().unwrap();
        assert!(
            last.starts_with("451 4.") || last.starts_with("554 5."),
            "exit {code}: {last}"
        );
    }
}

#[test]
fn eof_mid_data_queues_nothing() {
    let t = run(b"MAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nhalf a message\r\n");
    assert!(t.queued.is_empty());
    assert_eq!(t.aborted, 1);
}

#[test]
fn quit_stops_processing() {
    let t = run(b"QUIT\r\nNOOP\r\n");
    assert_eq!(t.lines(), [GREETING, "221 2.0.0 mx.example.org"]);
    assert_eq!(t.unconsumed, 6);
}

#[test]
fn misc_commands() {
    let t = run(b"NOOP\r\nVRFY root\r\nHELP\r\nRSET\r\nSTARTTLS\r\nAUTH PLAIN\r\nDATA x\r\n");
    assert_eq!(t.codes()[1..], [250, 252, 214, 250, 454, 503, 501]);
}

#[test]
fn recipient_limit() {
    let mut c = config();
    c.max_rcpts = 3;
    let mut input = b"MAIL FROM:<a@b>\r\n".to_vec();
    for i in 0..5 {
        input.extend_from_slice(format!("RCPT TO:<u{i}@example.org>\r\n").as_bytes());
    }
    let t = run_with(c, Fake::default(), &[&input], 0);
    assert_eq!(t.codes()[2..], [250, 250, 250, 452, 452]);
}

fn tls_fake() -> Fake {
    Fake {
        tls: true,
        ..Fake::default()
    }
}

fn with_tls(policy: TlsPolicy) -> Config {
    let mut c = config();
    c.tls = policy;
    c
}

const PLAIN: TlsPolicy = TlsPolicy {
    link: Link::Plain,
    starttls: true,
    force_tls: false,
};

#[test]
fn starttls_advertised_only_when_usable() {
    let t = run_with(config(), tls_fake(), &[b"EHLO a\r\n"], 0);
    assert_eq!(t.lines().last(), Some(&"250 STARTTLS"));
    // No usable certificate: not advertised.
    let t = run_with(config(), Fake::default(), &[b"EHLO a\r\n"], 0);
    assert!(!t.replies.contains("STARTTLS"));
    // DENY_TLS / DISABLETLS: not advertised, and refused.
    let denied = TlsPolicy {
        starttls: false,
        ..PLAIN
    };
    let t = run_with(
        with_tls(denied),
        tls_fake(),
        &[b"EHLO a\r\nSTARTTLS\r\n"],
        0,
    );
    assert!(!t.replies.contains("250 STARTTLS"));
    assert_eq!(
        t.lines().last(),
        Some(&"502 5.5.1 STARTTLS not offered to this client")
    );
    // SSL=1: the link is already secure.
    let upstream = TlsPolicy {
        link: Link::UpstreamTls,
        starttls: false,
        force_tls: true,
    };
    let t = run_with(
        with_tls(upstream),
        tls_fake(),
        &[b"EHLO a\r\nSTARTTLS\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nx\r\n.\r\n"],
        0,
    );
    assert!(!t.replies.contains("250 STARTTLS"));
    assert!(t.replies.contains("503 5.5.1 TLS already active"));
    assert!(String::from_utf8_lossy(&t.queued[0].0).contains(" with ESMTPS; "));
}

#[test]
fn starttls_forgets_everything_and_drops_injected_commands() {
    // CVE-2011-0411: commands pipelined behind STARTTLS in the same write
    // are never executed; the session restarts from scratch (RFC 3207).
    let t = run_with(
        config(),
        tls_fake(),
        &[
            b"EHLO a\r\nMAIL FROM:<a@b>\r\nSTARTTLS\r\nRCPT TO:<u@example.org>\r\n",
            b"RCPT TO:<u@example.org>\r\nEHLO b\r\nSTARTTLS\r\n",
        ],
        0,
    );
    assert_eq!(t.discarded, b"RCPT TO:<u@example.org>\r\n".len());
    let lines = t.lines();
    let i = lines
        .iter()
        .position(|l| l.starts_with("220 2.0.0"))
        .unwrap();
    assert_eq!(lines[i], "220 2.0.0 Ready to start TLS");
    assert_eq!(lines[i + 1], "503 5.5.1 MAIL first", "envelope forgotten");
    assert_eq!(lines[i + 2], "250-mx.example.org");
    assert!(
        !lines[i + 2..].contains(&"250 STARTTLS"),
        "not offered again"
    );
    assert_eq!(*lines.last().unwrap(), "503 5.5.1 TLS already active");
}

#[test]
fn tls_session_recorded_in_received() {
    let t = run_with(
        config(),
        tls_fake(),
        &[
            b"EHLO a\r\nSTARTTLS\r\n",
            b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nx\r\n.\r\n",
        ],
        0,
    );
    let msg = String::from_utf8_lossy(&t.queued[0].0).into_owned();
    assert!(
        msg.contains("  by mx.example.org with ESMTPS (TLSv1.3 TLS13_AES_256_GCM_SHA384); "),
        "{msg}"
    );
}

#[test]
fn force_tls_refuses_mail_in_clear() {
    let force = TlsPolicy {
        force_tls: true,
        ..PLAIN
    };
    let t = run_with(
        with_tls(force),
        tls_fake(),
        &[
            b"EHLO a\r\nMAIL FROM:<a@b>\r\nSTARTTLS\r\n",
            b"EHLO a\r\nMAIL FROM:<a@b>\r\n",
        ],
        0,
    );
    assert!(
        t.lines()
            .contains(&"530 5.7.0 Must issue a STARTTLS command first")
    );
    assert_eq!(*t.lines().last().unwrap(), "250 2.1.0 ok");
}

// ---- AUTH ------------------------------------------------------------------

fn auth_config(vars: &[(&str, &str)]) -> Config {
    let mut c = config();
    let p = Policy::from_env(
        |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_bytes())
        },
        true,
    )
    .unwrap();
    c.tls = p.tls;
    c.auth = p.auth;
    c
}

fn auth_fake() -> Fake {
    Fake {
        tls: true,
        users: vec![("alice", "wonderland")],
        ..Fake::default()
    }
}

fn b64(s: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn plain(user: &str, pass: &str) -> String {
    b64(format!("\0{user}\0{pass}").as_bytes())
}

#[test]
fn auth_only_after_starttls_then_relays_with_esmtpsa() {
    let cmd = format!(
        "EHLO c\r\nAUTH PLAIN {}\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<x@elsewhere.test>\r\nDATA\r\nhi\r\n.\r\n",
        plain("alice", "wonderland")
    );
    let t = run_with(
        auth_config(&[]),
        auth_fake(),
        &[
            b"EHLO c\r\nAUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\nSTARTTLS\r\n",
            cmd.as_bytes(),
        ],
        0,
    );
    let l = t.lines();
    assert!(
        !l[1..6].iter().any(|x| x.contains("AUTH")),
        "not in clear: {l:?}"
    );
    assert!(l.contains(&"250 STARTTLS"), "{l:?}");
    assert!(
        l.contains(&"530 5.7.0 Must issue a STARTTLS command first"),
        "{l:?}"
    );
    assert!(l.contains(&"250 AUTH PLAIN LOGIN"), "{l:?}");
    assert!(l.contains(&"235 2.7.0 Authentication successful"), "{l:?}");
    let starttls = l.iter().filter(|x| x.ends_with("STARTTLS")).count();
    assert_eq!(starttls, 1, "never advertised again inside TLS: {l:?}");
    assert_eq!(t.records, [b"alice\0wonderland\0\0".to_vec()]);
    assert_eq!(t.queued.len(), 1, "{l:?}");
    let msg = String::from_utf8_lossy(&t.queued[0].0);
    assert!(
        msg.starts_with("Received: from client.example.net (HELO c) (alice@192.0.2.7)\n  by mx.example.org with ESMTPSA (TLSv1.3 TLS13_AES_256_GCM_SHA384); "),
        "{msg}"
    );
    assert_eq!(t.queued[0].1, b"Falice@example.org\0Tx@elsewhere.test\0\0");
    let env = &t.queue_env[0];
    for k in ["SMTPAUTHUSER", "SMTP_AUTH_USER", "TCPREMOTEINFO"] {
        assert!(
            env.contains(&(k.into(), Some(b"alice".to_vec()))),
            "{k}: {env:?}"
        );
    }
    assert!(env.contains(&("SMTPAUTHMETHOD".into(), Some(b"PLAIN".to_vec()))));
    assert!(
        t.log
            .iter()
            .any(|l| l.contains("AUTH ok") && l.contains("user=\"alice\""))
    );
    assert!(!t.log.iter().any(|l| l.contains("wonderland")));
}

#[test]
fn encryption_required_when_no_starttls_is_possible() {
    let fake = Fake {
        tls: false,
        ..auth_fake()
    };
    let t = run_with(auth_config(&[]), fake, &[b"EHLO c\r\nAUTH LOGIN\r\n"], 0);
    let l = t.lines();
    assert!(!l.iter().any(|x| x.contains("AUTH ")), "{l:?}");
    assert_eq!(
        l.last().unwrap(),
        &"538 5.7.11 Encryption required for requested authentication mechanism"
    );
    assert!(t.records.is_empty());
}

#[test]
fn insecure_auth_switches_from_both_dialects() {
    for vars in [&[("ALLOW_INSECURE_AUTH", "1")][..], &[("FORCETLS", "0")]] {
        let input = format!("EHLO c\r\nAUTH PLAIN {}\r\n", plain("alice", "wonderland"));
        let t = run_with(auth_config(vars), auth_fake(), &[input.as_bytes()], 0);
        let l = t.lines();
        assert!(l.contains(&"250 AUTH PLAIN LOGIN"), "{vars:?}: {l:?}");
        assert_eq!(l.last().unwrap(), &"235 2.7.0 Authentication successful");
    }
    // FORCETLS=1 or anything but exactly 0 keeps AUTH under TLS.
    let t = run_with(
        auth_config(&[("FORCETLS", "00")]),
        auth_fake(),
        &[b"EHLO c\r\nAUTH PLAIN\r\n"],
        0,
    );
    assert_eq!(t.codes().last(), Some(&530));
}

#[test]
fn login_and_cram_md5_exchanges() {
    let login = format!(
        "EHLO c\r\nAUTH LOGIN\r\n{}\r\n{}\r\nQUIT\r\n",
        b64(b"alice"),
        b64(b"wonderland")
    );
    let vars = [("ALLOW_INSECURE_AUTH", "1"), ("ALLOW_CRAM", "1")];
    let t = run_with(auth_config(&vars), auth_fake(), &[login.as_bytes()], 0);
    let l = t.lines();
    assert!(l.contains(&"250 AUTH PLAIN LOGIN CRAM-MD5"), "{l:?}");
    assert!(l.contains(&"334 VXNlcm5hbWU6"), "{l:?}");
    assert!(l.contains(&"334 UGFzc3dvcmQ6"), "{l:?}");
    assert!(l.contains(&"235 2.7.0 Authentication successful"), "{l:?}");

    // CRAM-MD5: the challenge comes from the edge, the digest goes to
    // checkpassword with the challenge as the timestamp.
    let challenge = format!("<1.{NOW}@mx.example.org>");
    let answer = b64(format!("alice {}", hex_hmac(b"wonderland", challenge.as_bytes())).as_bytes());
    let input = format!("EHLO c\r\nAUTH CRAM-MD5\r\n{answer}\r\n");
    let t = run_with(auth_config(&vars), auth_fake(), &[input.as_bytes()], 0);
    let l = t.lines();
    assert!(
        l.contains(&format!("334 {}", b64(challenge.as_bytes())).as_str()),
        "{l:?}"
    );
    assert_eq!(l.last().unwrap(), &"235 2.7.0 Authentication successful");
    assert!(t.records[0].ends_with(format!("\0{challenge}\0").as_bytes()));

    // Challenges never repeat, even within one session.
    let f = auth_fake();
    assert_ne!(f.cram_challenge(), f.cram_challenge());
}

#[test]
fn smtpauth_shapes_the_mechanisms() {
    let cases: &[(&str, &str)] = &[
        ("", "250 AUTH PLAIN LOGIN"),
        ("cram", "250 AUTH CRAM-MD5"),
        ("+cram", "250 AUTH PLAIN LOGIN CRAM-MD5"),
        ("!+cram", "250 AUTH PLAIN LOGIN CRAM-MD5"),
    ];
    for (v, want) in cases {
        let cfg = auth_config(&[("SMTPAUTH", v), ("FORCETLS", "0")]);
        let t = run_with(cfg, auth_fake(), &[b"EHLO c\r\n"], 0);
        assert!(t.lines().contains(want), "{v}: {:?}", t.lines());
    }
    let cfg = auth_config(&[("SMTPAUTH", "-"), ("FORCETLS", "0")]);
    let t = run_with(cfg, auth_fake(), &[b"EHLO c\r\nAUTH PLAIN\r\n"], 0);
    assert!(!t.replies.contains("AUTH P"));
    assert_eq!(t.lines().last().unwrap(), &"503 5.5.1 AUTH not available");
}

#[test]
fn auth_errors_and_state_rules() {
    let vars = [("ALLOW_INSECURE_AUTH", "1")];
    let input = format!(
        "AUTH PLAIN {p}\r\nEHLO c\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN !!!\r\nAUTH DIGEST-MD5\r\nAUTH PLAIN a b\r\n\
         MAIL FROM:<a@b>\r\nAUTH PLAIN {p}\r\nRSET\r\nAUTH PLAIN {p}\r\nRSET\r\nAUTH PLAIN {p}\r\n\
         MAIL FROM:<a@b>\r\nRCPT TO:<u@elsewhere.test>\r\n",
        p = plain("alice", "wonderland")
    );
    let t = run_with(auth_config(&vars), auth_fake(), &[input.as_bytes()], 0);
    let l = t.lines();
    let tail: Vec<&str> = l
        .iter()
        .copied()
        .filter(|x| !x.starts_with("250-"))
        .collect();
    assert_eq!(
        &tail[1..],
        [
            "503 5.5.1 EHLO first",
            "250 AUTH PLAIN LOGIN",
            "334 ",
            "501 5.0.0 AUTH cancelled",
            "501 5.5.2 Cannot decode AUTH response",
            "504 5.5.4 Unrecognized authentication type",
            "501 5.5.4 syntax: AUTH mechanism [initial-response]",
            "250 2.1.0 ok",
            "503 5.5.1 AUTH not allowed during a mail transaction",
            "250 2.0.0 flushed",
            "235 2.7.0 Authentication successful",
            "250 2.0.0 flushed",
            "503 5.5.1 already authenticated",
            "250 2.1.0 ok",
            "250 2.1.5 ok",
        ]
    );
}

#[test]
fn failures_are_delayed_logged_and_limited() {
    let vars = [("ALLOW_INSECURE_AUTH", "1")];
    let input = format!(
        "EHLO c\r\nAUTH PLAIN {}\r\nAUTH LOGIN {}\r\n{}\r\nAUTH PLAIN {}\r\nNOOP\r\n",
        plain("alice", "guess1"),
        b64(b"bob"),
        b64(b"guess2"),
        plain("alice", "guess3"),
    );
    let t = run_with(auth_config(&vars), auth_fake(), &[input.as_bytes()], 0);
    let l = t.lines();
    assert_eq!(
        l.iter().filter(|x| x.starts_with("535 5.7.8")).count(),
        3,
        "{l:?}"
    );
    assert_eq!(
        l.last().unwrap(),
        &"421 4.7.0 too many authentication failures, closing connection"
    );
    assert!(t.closed);
    assert_eq!(t.delays, [1000, 2000, 3000]);
    let failed: Vec<&String> = t
        .log
        .iter()
        .filter(|l| l.starts_with("AUTH failed"))
        .collect();
    assert_eq!(failed.len(), 3, "{:?}", t.log);
    assert!(
        failed[1].contains("remote=192.0.2.7 mech=LOGIN user=\"bob\""),
        "{}",
        failed[1]
    );
    assert!(
        !t.log.iter().any(|l| l.contains("guess")),
        "no password in the log"
    );
    assert!(t.unconsumed > 0, "NOOP never ran");
}

#[test]
fn forged_records_never_reach_checkpassword() {
    let vars = [("ALLOW_INSECURE_AUTH", "1")];
    // The LOGIN user name `alice\0wonderland` with an empty password.
    let input = format!(
        "EHLO c\r\nAUTH LOGIN {}\r\nAUTH PLAIN {}\r\n",
        b64(b"alice\0wonderland"),
        b64(format!("\0alice\0{}", "x".repeat(600)).as_bytes())
    );
    let fake = Fake {
        verdict: Some(AuthResult::Accepted),
        ..auth_fake()
    };
    let t = run_with(auth_config(&vars), fake, &[input.as_bytes()], 0);
    assert!(t.records.is_empty(), "{:?}", t.records);
    assert_eq!(t.codes()[2..], [535, 535], "{:?}", t.lines());
    // Issue 12: a user field with a NUL is never logged (it may hold a
    // password).
    assert!(t.log[0].contains(" user=<invalid> "), "{:?}", t.log);
    assert!(
        !t.log.iter().any(|l| l.contains("wonderland")),
        "{:?}",
        t.log
    );
}

#[test]
fn required_auth_and_forced_sender() {
    let t = run_with(
        auth_config(&[("REQUIRE_AUTH", "1"), ("ALLOW_INSECURE_AUTH", "1")]),
        auth_fake(),
        &[b"EHLO c\r\nMAIL FROM:<a@b>\r\n"],
        0,
    );
    assert_eq!(
        t.lines().last().unwrap(),
        &"530 5.7.0 Authentication required"
    );
    let input = format!(
        "EHLO c\r\nAUTH PLAIN {}\r\nMAIL FROM:<bob@example.org>\r\nMAIL FROM:<Alice>\r\n",
        plain("alice", "wonderland")
    );
    let t = run_with(
        auth_config(&[
            ("SMTPAUTH", "!"),
            ("FORCETLS", "0"),
            ("FORCEAUTHMAILFROM", "1"),
        ]),
        auth_fake(),
        &[input.as_bytes()],
        0,
    );
    let l = t.lines();
    assert_eq!(
        l[l.len() - 2..],
        [
            "553 5.7.1 sorry, the envelope sender must be the authenticated user",
            "250 2.1.0 ok"
        ]
    );
}

#[test]
fn temporary_failure_is_454_and_not_counted() {
    let vars = [("ALLOW_INSECURE_AUTH", "1")];
    let p = plain("alice", "wonderland");
    let input = format!(
        "EHLO c\r\nAUTH PLAIN {p}\r\nAUTH PLAIN {p}\r\nAUTH PLAIN {p}\r\nAUTH PLAIN {p}\r\n"
    );
    let fake = Fake {
        verdict: Some(AuthResult::TempFail),
        ..auth_fake()
    };
    let t = run_with(auth_config(&vars), fake, &[input.as_bytes()], 0);
    assert_eq!(t.codes()[2..], [454, 454, 454, 454]);
    assert!(!t.closed);
}

#[test]
fn starttls_forgets_auth_and_auth_set_applies() {
    let mut cfg = auth_config(&[("ALLOW_INSECURE_AUTH", "1")]);
    cfg.databytes = 10;
    cfg.auth_env = vec![
        ("DATABYTES".into(), Some(b"0".to_vec())),
        ("QMAILQUEUE".into(), None),
        ("RELAYCLIENT".into(), Some(Vec::new())),
    ];
    let auth = format!("EHLO c\r\nAUTH PLAIN {}\r\n", plain("alice", "wonderland"));
    let t = run_with(
        cfg.clone(),
        auth_fake(),
        &[
            auth.as_bytes(),
            b"MAIL FROM:<a@b> SIZE=100\r\nRCPT TO:<x@elsewhere.test>\r\nDATA\r\n01234567890123456789\r\n.\r\n",
        ],
        0,
    );
    assert_eq!(t.queued.len(), 1, "{:?}", t.lines());
    assert!(t.queue_env[0].contains(&("QMAILQUEUE".into(), None)));
    assert!(t.queue_env[0].contains(&("DATABYTES".into(), Some(b"0".to_vec()))));

    let t = run_with(
        cfg,
        auth_fake(),
        &[
            auth.as_bytes(),
            b"STARTTLS\r\n",
            b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@elsewhere.test>\r\n",
        ],
        0,
    );
    assert_eq!(
        t.lines().last().unwrap(),
        &"553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts",
        "AUTH given in clear is forgotten after STARTTLS, and so is the RELAYCLIENT it set"
    );
}

#[test]
fn no_backend_means_no_auth() {
    let mut c = config();
    c.auth = AuthPolicy::OFF;
    let t = run_with(c, auth_fake(), &[b"EHLO c\r\nAUTH PLAIN\r\n"], 0);
    assert!(!t.replies.contains("AUTH P"));
    assert_eq!(t.lines().last().unwrap(), &"503 5.5.1 AUTH not available");
    let _ = Mechanism::Plain;
}

#[test]
fn transcript_redacts_every_auth_secret() {
    let mut cfg = auth_config(&[("ALLOW_INSECURE_AUTH", "1"), ("ALLOW_CRAM", "1")]);
    cfg.transcript = true;
    let secrets = [
        plain("alice", "wonderland"),
        b64(b"alice"),
        b64(b"wonderland"),
        b64(b"bob"),
        b64(b"hunter2"),
    ];
    let challenge = format!("<1.{NOW}@mx.example.org>");
    let cram = b64(format!("alice {}", hex_hmac(b"wonderland", challenge.as_bytes())).as_bytes());
    let input = format!(
        "EHLO c\r\nAUTH LOGIN {}\r\n{}\r\nAUTH PLAIN\r\n{}\r\nAUTH CRAM-MD5\r\n{cram}\r\nAUTH PLAIN {}\r\nRSET\r\nQUIT\r\n",
        secrets[3],
        secrets[4],
        plain("bob", "x"),
        secrets[0],
    );
    let t = run_with(cfg, auth_fake(), &[input.as_bytes()], 0);
    let log = t.log.join("\n");
    for s in secrets.iter().chain([&cram]) {
        assert!(!log.contains(s.as_str()), "{s} leaked: {log}");
    }
    assert!(
        !log.contains("wonderland") && !log.contains("hunter2"),
        "{log}"
    );
    assert!(log.contains("< EHLO c\n"), "{log}");
    assert!(
        log.contains("< AUTH LOGIN <redacted>\n< <redacted>\n"),
        "{log}"
    );
    assert!(log.contains("< AUTH PLAIN\n< <redacted>\n"), "{log}");
    assert!(log.contains("< AUTH CRAM-MD5\n< <redacted>\n"), "{log}");
    assert!(log.contains("< RSET\n< QUIT"), "{log}");
}

#[test]
fn summary_names_the_session() {
    let mut cfg = auth_config(&[("FORCETLS", "0")]);
    cfg.remote_ip = b"192.0.2.7".to_vec();
    let input = format!(
        "EHLO c\"x\r\nAUTH PLAIN {}\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n",
        plain("alice", "wonderland")
    );
    let mut s = Session::new(cfg, auth_fake());
    let mut out = Output::default();
    let mut pos = 0;
    let input = input.as_bytes();
    while pos < input.len() {
        let (n, action) = s.feed(&input[pos..], &mut out);
        pos += n;
        match action {
            Action::RunHook(_) => unreachable!("no plugins configured"),
            Action::AskPolicy => unreachable!("no policy service configured"),
            Action::CheckPassword => {
                let c = s.take_credentials().unwrap();
                s.auth_checked(&c.user, c.mechanism, AuthResult::Accepted, &mut out);
            }
            Action::OpenQueue => {
                s.queue_opened(Ok(77), NOW, &mut out);
            }
            Action::FinishQueue => {
                let ok = QueueOutcome {
                    exit: QueueExit::Exited(0),
                    write_failed: false,
                };
                s.queue_closed(ok, NOW, &mut out);
            }
            _ => {}
        }
    }
    assert_eq!(
        s.summary(),
        "remote=192.0.2.7 helo=\"c\\x22x\" auth=PLAIN user=\"alice\" accepted=1 messages=77:6"
    );
    assert_eq!(s.end().map(|e| e.name()), Some("quit"));
}

#[test]
fn auth_leftovers_rfc4954_mail_parameter_and_long_responses() {
    // MAIL ... AUTH=<> is accepted (RFC 4954 §5).
    let t = run(b"EHLO c\r\nMAIL FROM:<a@b> AUTH=<> SIZE=10\r\n");
    assert_eq!(t.lines().last().unwrap(), &"250 2.1.0 ok");

    // A response line over the limit ends the exchange: the next line is a
    // command again.
    let input = format!("EHLO c\r\nAUTH LOGIN\r\n{}\r\nNOOP\r\n", "A".repeat(3000));
    let t = run_with(
        auth_config(&[("ALLOW_INSECURE_AUTH", "1")]),
        auth_fake(),
        &[input.as_bytes()],
        0,
    );
    let l = t.lines();
    assert_eq!(
        l[l.len() - 2..],
        [
            "500 5.5.6 Authentication Exchange line is too long",
            "250 2.0.0 ok"
        ]
    );
    assert!(t.records.is_empty());

    // CRAM-MD5: the server speaks first, so an initial response is a
    // client-initiated exchange (RFC 4954 §4): 501 5.7.0.
    let t = run_with(
        auth_config(&[("ALLOW_INSECURE_AUTH", "1"), ("ALLOW_CRAM", "1")]),
        auth_fake(),
        &[b"EHLO c\r\nAUTH CRAM-MD5 eA==\r\nNOOP\r\n"],
        0,
    );
    let l = t.lines();
    assert_eq!(
        l[l.len() - 2..],
        [
            "501 5.7.0 Client initiated Authentication Exchange",
            "250 2.0.0 ok"
        ]
    );
    assert!(t.records.is_empty());

    // RFC 3463: a sender's bad address is X.1.7, a recipient's X.1.3.
    let t = run(b"EHLO c\r\nMAIL FROM:<a\x01@b>\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c\x01@d>\r\n");
    let l = t.lines();
    assert_eq!(
        l[l.len() - 3..],
        [
            "501 5.1.7 bad address syntax",
            "250 2.1.0 ok",
            "501 5.1.3 bad address syntax"
        ]
    );
}
