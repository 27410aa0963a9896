//! Hostile input and faults end to end, through tcpserver: clients that
//! never read, drip bytes, send noise or HTTP, talk early or hang up at
//! every stage, and qmail-queues that fail, die or hang. Every test checks
//! the same invariants:
//!
//! - nothing acknowledged is ever lost: the summary line's `accepted=`
//!   equals what the queue stored, byte for byte where we know the bytes;
//! - nothing unacknowledged is ever queued;
//! - never a panic (no "panicked" in the log);
//! - a precise reply or a clean close, within about `timeoutsmtpd`.
//!
//! Every server runs with `timeoutsmtpd` 2 and every client wait is
//! bounded, so a hang fails the test instead of stalling it.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Server, Setup};

/// `timeoutsmtpd` for every server here, in seconds.
const TIMEOUT: u64 = 2;

fn setup(name: &str) -> Setup<'_> {
    Setup::new(name).control("timeoutsmtpd", &format!("{TIMEOUT}\n"))
}

/// Start the server and wait for the summary line of `Setup::start`'s
/// probe, so the lines that follow are ours, in order.
fn start(setup: Setup<'_>) -> Server {
    let srv = setup.start();
    srv.wait_end_lines(1, secs(10))
        .expect("the probe connection was logged");
    srv
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A small seeded PRNG (xorshift64*), so the noise is the same every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// How a raw read loop ended.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Ending {
    /// The server closed (FIN).
    Eof,
    /// The server closed with our bytes unread (RST): also a close.
    Reset,
    /// Nothing more within the limit: the server is still there.
    Open,
}

/// A raw SMTP client. Unlike `common::Client`, a read interrupted by a
/// signal (EINTR, which a socket with a read timeout gets even under
/// SA_RESTART) is retried, never taken for the server closing.
struct Peer {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    fn connect(srv: &Server) -> Peer {
        Peer::from(TcpStream::connect(srv.addr()).unwrap())
    }

    fn from(s: TcpStream) -> Peer {
        Peer { s, buf: Vec::new() }
    }

    fn send(&mut self, data: &[u8]) {
        (&self.s).write_all(data).unwrap();
    }

    /// Read more into the buffer before `deadline`, or say how the link
    /// ended.
    fn fill(&mut self, deadline: Instant) -> Result<(), Ending> {
        let mut tmp = [0u8; 16384];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Ending::Open);
            }
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match (&self.s).read(&mut tmp) {
                Ok(0) => return Err(Ending::Eof),
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(Ending::Open);
                }
                Err(_) => return Err(Ending::Reset),
            }
        }
    }

    /// One whole (possibly multi-line) reply within `limit`, or how the
    /// link ended first.
    fn reply_within(&mut self, limit: Duration) -> Result<String, Ending> {
        let deadline = Instant::now() + limit;
        loop {
            let mut at = 0;
            while let Some(i) = self.buf[at..].iter().position(|&b| b == b'\n') {
                let end = at + i + 1;
                if self.buf.get(at + 3) != Some(&b'-') {
                    let r: Vec<u8> = self.buf.drain(..end).collect();
                    return Ok(String::from_utf8_lossy(&r).into_owned());
                }
                at = end;
            }
            self.fill(deadline)?;
        }
    }

    /// One whole reply; the test fails if none comes within 20 s.
    fn reply(&mut self) -> String {
        self.reply_within(secs(20)).unwrap_or_else(|e| {
            panic!(
                "no reply ({e:?}), after {:?}",
                String::from_utf8_lossy(&self.buf)
            )
        })
    }

    /// Everything until the server closes or `limit` passes: the bytes, how
    /// it ended, and when.
    fn rest(&mut self, limit: Duration) -> (Vec<u8>, Ending, Duration) {
        let start = Instant::now();
        let ending = loop {
            if let Err(e) = self.fill(start + limit) {
                break e;
            }
        };
        (std::mem::take(&mut self.buf), ending, start.elapsed())
    }

    /// True once the server has closed (after anything still unread).
    fn closed(&mut self) -> bool {
        self.rest(secs(10)).1 != Ending::Open
    }
}

/// Reply lines, each checked to be a well-formed SMTP reply line of
/// printable ASCII.
fn reply_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8(bytes.to_vec())
        .unwrap_or_else(|_| panic!("replies are not UTF-8: {bytes:?}"));
    let lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    for l in &lines {
        let b = l.as_bytes();
        assert!(
            b.len() >= 6
                && l.ends_with("\r\n")
                && b[..3].iter().all(u8::is_ascii_digit)
                && (b[3] == b' ' || b[3] == b'-')
                && b[..b.len() - 2].iter().all(|&c| (b' '..=b'~').contains(&c)),
            "malformed reply line {l:?} in {text:?}"
        );
    }
    lines
}

/// The invariants after `conns` connections of ours (the probe of
/// `Setup::start` is one more): every connection logged its summary line
/// within `within`, nothing panicked, and the queue holds exactly what the
/// summary lines say was accepted. Returns our summary lines.
fn settle(srv: &Server, conns: usize, within: Duration) -> Vec<String> {
    let Some(lines) = srv.wait_end_lines(conns + 1, within) else {
        panic!(
            "not every connection ended within {within:?} (server stuck?); log:\n{}",
            srv.stderr_log()
        );
    };
    let log = srv.stderr_log();
    assert!(!log.contains("panicked"), "panic in the log:\n{log}");
    let accepted: usize = lines
        .iter()
        .map(|l| {
            let n = l.split("accepted=").nth(1).expect(l);
            n[..n.find(' ').unwrap_or(n.len())]
                .parse::<usize>()
                .expect(l)
        })
        .sum();
    // The queue stores a message before the server answers 250, so once
    // the summary line is there, the queue is final.
    assert_eq!(
        srv.queued().len(),
        accepted,
        "queue and acknowledgements disagree; log:\n{log}"
    );
    lines[1..].to_vec()
}

/// `settle` for tests that must leave the queue empty.
fn settle_empty(srv: &Server, conns: usize, within: Duration) -> Vec<String> {
    let lines = settle(srv, conns, within);
    assert!(srv.queued().is_empty(), "{:?}", srv.queued());
    lines
}

/// The message as the client sent it, as the queue must store it: after
/// our `Received:` header (two lines), CRLF as LF, leading dots unstuffed.
fn stored_body(msg: &str) -> &str {
    let i = msg
        .find("\n  by mx.test with ")
        .unwrap_or_else(|| panic!("no Received header: {msg:?}"));
    let rest = &msg[i + 1..];
    &rest[rest.find('\n').unwrap() + 1..]
}

fn start_data(c: &mut Peer) {
    assert!(c.reply().starts_with("220 mx.test ESMTP"));
    c.send(b"EHLO hostile.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    assert!(c.reply().starts_with("250-mx.test"));
    assert_eq!(c.reply(), "250 2.1.0 ok\r\n");
    assert_eq!(c.reply(), "250 2.1.5 ok\r\n");
    assert!(c.reply().starts_with("354 "));
}

/// A message body of about `size` bytes, CRLF lines of 76 characters.
fn big_body(size: usize) -> Vec<u8> {
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    let line = [b'x'; 76];
    while body.len() < size {
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    body
}

/// Write `data` from another thread, each write bounded, stopping at the
/// first error or at `limit`; returns the bytes written.
fn send_in_background(
    s: &TcpStream,
    data: Vec<u8>,
    limit: Duration,
) -> std::thread::JoinHandle<usize> {
    let mut w = s.try_clone().unwrap();
    std::thread::spawn(move || {
        let start = Instant::now();
        w.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut sent = 0;
        while sent < data.len() && start.elapsed() < limit {
            match w.write(&data[sent..]) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => break,
            }
        }
        sent
    })
}

/// An executable script in a directory of its own (`Setup::start` wipes
/// the server's), removed on drop.
struct Script {
    dir: PathBuf,
    path: PathBuf,
}

impl Script {
    fn new(name: &str, body: &str) -> Script {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "qsmtpd-hostile-script-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Script { dir, path }
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- 1. a client that never reads -------------------------------------

#[test]
fn client_that_never_reads_is_dropped_after_the_write_timeout() {
    let srv = start(setup("noread"));
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Pipelined commands that are not errors (no error limit), each
    // answered with more bytes than it takes; never a reply read.
    let pattern = b"NOOP\r\nHELP\r\n";
    let chunk = pattern.repeat(64 * 1024 / pattern.len());
    // Far more than any socket buffers hold: a server that kept reading
    // and buffered its replies would take all of it.
    let cap: usize = 64 << 20;
    let start = Instant::now();
    let (mut sent, mut off) = (0usize, 0usize);
    let stop = loop {
        match s.write(&chunk[off..]) {
            Ok(n) => {
                sent += n;
                off = (off + n) % chunk.len();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break "blocked";
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break "closed by server",
        }
        if sent >= cap {
            break "cap";
        }
        assert!(
            start.elapsed() < secs(30),
            "still writing after 30 s ({sent} bytes)"
        );
    };
    let stalled = Instant::now();
    eprintln!(
        "never-reads: client wrote {sent} bytes in {:?}, then {stop}",
        start.elapsed()
    );
    assert_ne!(stop, "cap", "server took {sent} bytes without us reading");
    // The server is blocked writing; it must give up after timeoutsmtpd
    // (the socket stays open on our side, so only the timeout can end it).
    let lines = settle_empty(&srv, 1, secs(TIMEOUT + 5));
    eprintln!(
        "never-reads: summary line {:?} after the client stalled",
        stalled.elapsed()
    );
    let log = srv.stderr_log();
    assert!(
        log.contains("write to client failed: timeout"),
        "no write timeout logged:\n{log}"
    );
    assert!(lines[0].contains(" how=write_error"), "{}", lines[0]);
    // And the connection is gone: what was sent, then the close.
    let (got, ending, _) = Peer::from(s).rest(secs(5));
    eprintln!(
        "never-reads: then read {} bytes of replies, {ending:?}",
        got.len()
    );
    assert_ne!(ending, Ending::Open);
}

// ---- 2. slow drip -----------------------------------------------------

#[test]
fn slow_drip_session_delivers_the_exact_message() {
    let srv = start(setup("drip"));
    let s = TcpStream::connect(srv.addr()).unwrap();
    s.set_nodelay(true).unwrap();
    let mut c = Peer::from(s);
    let drip = |c: &mut Peer, data: &[u8]| {
        for b in data {
            c.send(&[*b]);
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    assert!(c.reply().starts_with("220 mx.test ESMTP"));
    drip(&mut c, b"EHLO drip.test\r\n");
    assert!(c.reply().starts_with("250-mx.test"));
    // A pause inside a command line, shorter than timeoutsmtpd: the timeout
    // is per read, not per line.
    drip(&mut c, b"MAIL FROM:<drip@");
    std::thread::sleep(Duration::from_millis(1000));
    drip(&mut c, b"sender.test>\r\n");
    assert_eq!(c.reply(), "250 2.1.0 ok\r\n");
    drip(&mut c, b"RCPT TO:<u@example.org>\r\n");
    assert_eq!(c.reply(), "250 2.1.5 ok\r\n");
    drip(&mut c, b"DATA\r\n");
    assert!(c.reply().starts_with("354 "));
    drip(
        &mut c,
        b"Subject: drip\r\n\r\n..leading dot\r\n..\r\n.not the end\r\nlast\r\n.\r\n",
    );
    assert!(c.reply().starts_with("250 2.0.0 ok "));
    drip(&mut c, b"QUIT\r\n");
    assert_eq!(c.reply(), "221 2.0.0 mx.test\r\n");
    assert!(c.closed());
    let lines = settle(&srv, 1, secs(5));
    assert!(lines[0].contains(" how=quit"), "{}", lines[0]);
    let q = srv.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(
        stored_body(&q[0].0),
        "Subject: drip\n\n.leading dot\n.\nnot the end\nlast\n"
    );
    assert_eq!(q[0].1, b"Fdrip@sender.test\0Tu@example.org\0\0");
}

// ---- 3. random bytes ----------------------------------------------------

/// No reply may carry text from the input: with random input, any 6-byte
/// piece of a reply found in it can only be reflection.
fn assert_no_reflection(replies: &[u8], input: &[u8]) {
    for line in replies.split(|&b| b == b'\n') {
        for w in line.windows(6) {
            assert!(
                memchr::memmem::find(input, w).is_none(),
                "reply {:?} reflects input {:?}",
                String::from_utf8_lossy(line),
                String::from_utf8_lossy(w)
            );
        }
    }
}

#[test]
fn random_bytes_get_errors_and_a_close() {
    let srv = start(setup("noise"));
    let noise = XorShift(0x9e37_79b9_7f4a_7c15).bytes(1 << 20);

    // As commands: protocol errors, then the error limit.
    let mut c = Peer::connect(&srv);
    let writer = send_in_background(&c.s, noise.clone(), secs(TIMEOUT + 5));
    let (got, ending, took) = c.rest(secs(TIMEOUT + 5));
    let sent = writer.join().unwrap();
    let lines = reply_lines(&got);
    eprintln!(
        "noise as commands: {sent} bytes sent, {} reply lines, {ending:?} after {took:?}",
        lines.len()
    );
    assert_ne!(ending, Ending::Open, "still open after {took:?}: {lines:?}");
    assert!(lines[0].starts_with("220 "), "{lines:?}");
    let last = lines.last().unwrap();
    assert!(
        last == "421 4.7.0 too many errors, closing connection\r\n"
            || last.starts_with("451 4.5.0 "),
        "{lines:?}"
    );
    for l in &lines[1..lines.len() - 1] {
        assert!(l.starts_with('5'), "{l:?} in {lines:?}");
    }
    assert_no_reflection(
        &got[got.iter().position(|&b| b == b'\n').unwrap() + 1..],
        &noise,
    );
    let ends = settle_empty(&srv, 1, secs(5));
    assert!(ends[0].contains(" how=too_many_errors"), "{}", ends[0]);

    // Inside DATA: the first bare CR or LF ends it with 451, nothing queued.
    let mut c = Peer::connect(&srv);
    start_data(&mut c);
    let writer = send_in_background(&c.s, noise.clone(), secs(TIMEOUT + 5));
    let (got, ending, took) = c.rest(secs(TIMEOUT + 5));
    writer.join().unwrap();
    let lines = reply_lines(&got);
    eprintln!("noise as DATA: {lines:?}, {ending:?} after {took:?}");
    assert_ne!(ending, Ending::Open, "still open after {took:?}: {lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("451 4.5.0 "), "{lines:?}");
    let ends = settle_empty(&srv, 2, secs(5));
    assert!(ends[1].contains(" how=bare_line_ending"), "{}", ends[1]);
}

// ---- 4. HTTP on the SMTP port -----------------------------------------

#[test]
fn http_request_is_not_reflected() {
    let srv = start(setup("http"));
    let mut c = Peer::connect(&srv);
    // As a browser does: the request at once, without waiting for a banner.
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut replies = String::new();
    for _ in 0..4 {
        replies.push_str(&c.reply());
    }
    c.send(b"QUIT\r\n");
    let (rest, ending, _) = c.rest(secs(5));
    replies.push_str(&String::from_utf8_lossy(&rest));
    reply_lines(replies.as_bytes());
    for word in ["GET", "HTTP", "Host"] {
        assert!(!replies.contains(word), "{word} reflected: {replies}");
    }
    assert_eq!(
        replies,
        "220 mx.test ESMTP\r\n\
         502 5.5.1 unimplemented\r\n\
         502 5.5.1 unimplemented\r\n\
         502 5.5.1 unimplemented\r\n\
         221 2.0.0 mx.test\r\n"
    );
    assert_eq!(ending, Ending::Eof);
    let lines = settle_empty(&srv, 1, secs(5));
    assert!(
        lines[0].contains(" rejected=502x3 ") && lines[0].contains(" how=quit"),
        "{}",
        lines[0]
    );
}

// ---- 5. the error limit -------------------------------------------------

#[test]
fn fifty_unknown_commands_hit_the_error_limit() {
    let srv = start(setup("errlimit"));
    let mut c = Peer::connect(&srv);
    assert!(c.reply().starts_with("220 "));
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.extend_from_slice(format!("XBOGUS{i} secret-arg-{i}\r\n").as_bytes());
    }
    c.send(&batch);
    let (got, ending, took) = c.rest(secs(TIMEOUT + 3));
    let lines = reply_lines(&got);
    assert_ne!(ending, Ending::Open, "still open after {took:?}");
    assert_eq!(lines.len(), 21, "{lines:?}");
    for l in &lines[..20] {
        assert_eq!(l, "502 5.5.1 unimplemented\r\n");
    }
    assert_eq!(
        lines[20],
        "421 4.7.0 too many errors, closing connection\r\n"
    );
    let ends = settle_empty(&srv, 1, secs(5));
    assert!(
        ends[0].contains(" rejected=421x1,502x20 ") && ends[0].contains(" how=too_many_errors"),
        "{}",
        ends[0]
    );
}

// ---- 6. early talker ----------------------------------------------------

/// qmail-smtpd 1.03 has no greeting delay: what a client sends before the
/// banner is simply read after it. So here: the banner first, then the
/// answers in order, and the session works.
#[test]
fn early_talker_is_answered_in_order() {
    let srv = start(setup("early"));
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.write_all(b"EHLO early.test\r\n").unwrap();
    let mut c = Peer::from(s);
    assert_eq!(c.reply(), "220 mx.test ESMTP\r\n");
    let ehlo = c.reply();
    assert!(ehlo.starts_with("250-mx.test\r\n"), "{ehlo}");
    assert!(ehlo.contains("250-PIPELINING\r\n"), "{ehlo}");
    c.send(b"MAIL FROM:<e@sender.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    assert_eq!(c.reply(), "250 2.1.0 ok\r\n");
    assert_eq!(c.reply(), "250 2.1.5 ok\r\n");
    assert!(c.reply().starts_with("354 "));
    c.send(b"Subject: early\r\n\r\nhi\r\n.\r\nQUIT\r\n");
    assert!(c.reply().starts_with("250 2.0.0 ok "));
    assert_eq!(c.reply(), "221 2.0.0 mx.test\r\n");
    assert!(c.closed());
    let lines = settle(&srv, 1, secs(5));
    assert!(lines[0].contains("helo=\"early.test\""), "{}", lines[0]);
    let q = srv.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(stored_body(&q[0].0), "Subject: early\n\nhi\n");
}

// ---- 7. qmail-queue faults ------------------------------------------------

/// A small and a large message against a failing queue: each gets `want`,
/// the session goes on, nothing is stored.
fn queue_fault(name: &str, mode: &str, want: &str) {
    let srv = start(setup(name).env("FAKEQ_MODE", mode));
    let mut c = Peer::connect(&srv);
    start_data(&mut c);
    c.send(b"Subject: small\r\n\r\nhello\r\n.\r\n");
    assert_eq!(c.reply(), want);
    c.send(b"RSET\r\n");
    assert_eq!(c.reply(), "250 2.0.0 flushed\r\n");
    // Larger than any pipe buffer: qmail-queue is gone (early) while we
    // still write, or reads it all and then dies (signal).
    c.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    assert_eq!(c.reply(), "250 2.1.0 ok\r\n");
    assert_eq!(c.reply(), "250 2.1.5 ok\r\n");
    assert!(c.reply().starts_with("354 "));
    let writer = send_in_background(&c.s, big_body(2 << 20), secs(TIMEOUT + 10));
    assert_eq!(writer.join().unwrap(), big_body(2 << 20).len());
    c.send(b".\r\nNOOP\r\n");
    assert_eq!(c.reply(), want);
    assert_eq!(c.reply(), "250 2.0.0 ok\r\n");
    c.send(b"QUIT\r\n");
    assert_eq!(c.reply(), "221 2.0.0 mx.test\r\n");
    let lines = settle_empty(&srv, 1, secs(5));
    assert!(
        lines[0].contains(" accepted=0 ") && lines[0].contains(" how=quit"),
        "{}",
        lines[0]
    );
}

#[test]
fn queue_exiting_early_gives_451_and_the_session_goes_on() {
    queue_fault(
        "qq-early",
        "early",
        "451 4.3.0 mail server temporarily rejected message\r\n",
    );
}

#[test]
fn queue_killed_by_a_signal_gives_451_and_the_session_goes_on() {
    queue_fault("qq-signal", "signal", "451 4.3.0 qq crashed\r\n");
}

/// What must follow a stuck qmail-queue: a 4xx within about timeoutsmtpd,
/// never a 250; then the session goes on or ends cleanly; nothing stored.
fn expect_4xx_after_stuck_queue(srv: &Server, c: &mut Peer, sent_at: Instant, what: &str) {
    let limit = secs(TIMEOUT + 10);
    let r = c.reply_within(limit);
    let took = sent_at.elapsed();
    eprintln!("{what}: reply {r:?} after {took:?}");
    let log = srv.stderr_log();
    let r = r.unwrap_or_else(|e| {
        panic!("{what}: no reply ({e:?}) within {limit:?} (server blocked on qmail-queue?); log:\n{log}")
    });
    assert!(r.starts_with('4'), "{what}: {r:?}");
    // Then RSET is answered, or the server has closed after a 421.
    if (&c.s).write_all(b"RSET\r\n").is_ok() {
        match c.reply_within(secs(5)) {
            Ok(r2) => assert_eq!(r2, "250 2.0.0 flushed\r\n", "{what}"),
            Err(_) => assert!(r.starts_with("421 "), "{what}: {r:?} then no answer"),
        }
    }
    let _ = c.s.shutdown(Shutdown::Both);
    settle_empty(srv, 1, secs(TIMEOUT + 5));
}

/// FAKEQ_MODE=hang: qmail-queue reads the whole message and the envelope,
/// then never exits.
#[test]
fn queue_hanging_after_reading_gives_4xx_within_the_timeout() {
    let srv = start(setup("qq-hang").env("FAKEQ_MODE", "hang"));
    let mut c = Peer::connect(&srv);
    start_data(&mut c);
    c.send(b"Subject: hang\r\n\r\nhello\r\n.\r\n");
    expect_4xx_after_stuck_queue(&srv, &mut c, Instant::now(), "hang after reading");
}

/// A qmail-queue that never reads its fd 0 (nor exits), with a 5 MB
/// message: far more than the pipe holds.
#[test]
fn queue_never_reading_a_big_message_gives_4xx_within_the_timeout() {
    let qq = Script::new("stuck-qmail-queue", "#!/bin/sh\nexec sleep 3600\n");
    let srv = start(setup("qq-noread").env("QMAILQUEUE", qq.path().to_str().unwrap()));
    let mut c = Peer::connect(&srv);
    start_data(&mut c);
    let mut msg = big_body(5 << 20);
    msg.extend_from_slice(b".\r\n");
    let total = msg.len();
    let started = Instant::now();
    let writer = send_in_background(&c.s, msg, secs(TIMEOUT + 10));
    let r = c.reply_within(secs(TIMEOUT + 10));
    let sent = writer.join().unwrap();
    eprintln!(
        "never-reading queue: client wrote {sent} of {total} bytes; reply {r:?} after {:?}",
        started.elapsed()
    );
    let log = srv.stderr_log();
    let r = r.unwrap_or_else(|e| {
        panic!(
            "no reply ({e:?}) within {}s: client could write {sent} of {total} bytes \
             (server blocked writing to qmail-queue's pipe?); log:\n{log}",
            TIMEOUT + 10
        )
    });
    assert!(r.starts_with('4'), "{r:?}");
    let _ = c.s.shutdown(Shutdown::Both);
    settle_empty(&srv, 1, secs(TIMEOUT + 5));
}

/// The client hangs up while qmail-queue is stuck (never reads, never
/// exits): the server must still end the connection within about
/// timeoutsmtpd per step, leaving nothing stored.
#[test]
fn client_hangs_up_while_the_queue_is_stuck() {
    let qq = Script::new("stuck-qmail-queue-2", "#!/bin/sh\nexec sleep 3600\n");
    let srv = start(setup("qq-stuck-hangup").env("QMAILQUEUE", qq.path().to_str().unwrap()));
    // Mid-message, with more written than the pipe holds.
    let mut c = Peer::connect(&srv);
    start_data(&mut c);
    let writer = send_in_background(&c.s, big_body(1 << 20), secs(TIMEOUT + 5));
    writer.join().unwrap();
    let _ = c.s.shutdown(Shutdown::Both);
    drop(c);
    let lines = settle_empty(&srv, 1, secs(2 * TIMEOUT + 5));
    assert!(lines[0].contains(" how=eof"), "{}", lines[0]);
    // The whole message and the final dot, then gone before the verdict.
    let mut c = Peer::connect(&srv);
    start_data(&mut c);
    c.send(b"Subject: stuck\r\n\r\nhello\r\n.\r\n");
    let _ = c.s.shutdown(Shutdown::Both);
    drop(c);
    let lines = settle_empty(&srv, 2, secs(2 * TIMEOUT + 5));
    assert!(lines[1].contains(" accepted=0 "), "{}", lines[1]);
}

// ---- 8. the client hangs up at every stage ----------------------------------

/// Run `stage` on a fresh connection, hang up, and check the invariants.
/// `n` is the number of connections so far, this one included.
fn hang_up(srv: &Server, n: usize, name: &str, how: &str, stage: impl FnOnce(&mut Peer)) {
    let mut c = Peer::connect(srv);
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stage(&mut c)));
    if let Err(e) = ran {
        eprintln!("stage {name:?} failed; server log:\n{}", srv.stderr_log());
        std::panic::resume_unwind(e);
    }
    let _ = c.s.shutdown(Shutdown::Both);
    drop(c);
    let lines = settle_empty(srv, n, secs(TIMEOUT + 3));
    let line = &lines[n - 1];
    assert!(line.contains(&format!(" how={how}")), "{name}: {line}");
}

#[test]
fn client_hangs_up_at_every_stage_of_a_plain_session() {
    let srv = start(setup("hangups"));
    let ehlo = |c: &mut Peer| {
        assert!(c.reply().starts_with("220 "));
        c.send(b"EHLO hangup.test\r\n");
        assert!(c.reply().starts_with("250-"));
    };
    let mail = move |c: &mut Peer| {
        ehlo(c);
        c.send(b"MAIL FROM:<a@b.test>\r\n");
        assert_eq!(c.reply(), "250 2.1.0 ok\r\n");
    };
    let rcpt = move |c: &mut Peer| {
        mail(c);
        c.send(b"RCPT TO:<u@example.org>\r\n");
        assert_eq!(c.reply(), "250 2.1.5 ok\r\n");
    };
    let mut n = 0;
    let mut stage = |name: &str, how: &str, f: &dyn Fn(&mut Peer)| {
        n += 1;
        hang_up(&srv, n, name, how, f);
    };
    stage("at once", "eof", &|_| {});
    stage("after greeting", "eof", &|c| {
        assert!(c.reply().starts_with("220 "));
    });
    stage("after EHLO", "eof", &ehlo);
    stage("mid command line", "eof", &|c| {
        ehlo(c);
        c.send(b"MAIL FROM:<a@b.te");
    });
    stage("after MAIL", "eof", &mail);
    stage("after RCPT", "eof", &rcpt);
    stage("after 354", "eof", &|c| start_data(c));
    stage("mid message", "eof", &|c| {
        start_data(c);
        c.send(b"Subject: half\r\n\r\nhalf a mes");
    });
    stage("after a line of the message", "eof", &|c| {
        start_data(c);
        c.send(b"Subject: half\r\n\r\nhalf a message\r\n");
    });
    stage("after CRLF dot", "eof", &|c| {
        start_data(c);
        c.send(b"Subject: almost\r\n\r\nalmost\r\n.");
    });
    stage("after CRLF dot CR", "eof", &|c| {
        start_data(c);
        c.send(b"Subject: almost\r\n\r\nalmost\r\n.\r");
    });
    stage("mid message, 1 MB in", "eof", &|c| {
        start_data(c);
        c.send(&big_body(1 << 20));
    });
}

/// Right after the final `.\r\n`, before reading the 250: the server may
/// already have queued the message (it acknowledged it, even if nobody
/// read that); then it must be there, complete and exact. Repeated, since
/// it is a race.
#[test]
fn client_hangs_up_right_after_the_final_dot() {
    let srv = start(setup("hangup-dot"));
    let mut queued = 0;
    for i in 1..=5 {
        let mut c = Peer::connect(&srv);
        start_data(&mut c);
        let body = format!("Subject: race {i}\r\n\r\n..dot {i}\r\nend {i}\r\n");
        let mut all = body.clone().into_bytes();
        all.extend_from_slice(b".\r\n");
        c.send(&all);
        let _ = c.s.shutdown(Shutdown::Both);
        drop(c);
        let lines = settle(&srv, i, secs(TIMEOUT + 3));
        let line = &lines[i - 1];
        let q = srv.queued();
        if line.contains(" accepted=1 ") {
            queued += 1;
            let want = format!("Subject: race {i}\n\n.dot {i}\nend {i}\n");
            assert_eq!(stored_body(&q[queued - 1].0), want);
            assert_eq!(q[queued - 1].1, b"Fa@b.test\0Tu@example.org\0\0");
        }
        assert_eq!(q.len(), queued, "{line}");
    }
    eprintln!("hang-up after the final dot: {queued} of 5 queued (acknowledged)");
}

#[test]
fn client_hangs_up_or_stalls_during_the_starttls_handshake() {
    let srv = start(setup("hangup-tls").cert());
    let starttls = |c: &mut Peer| {
        assert!(c.reply().starts_with("220 "));
        c.send(b"EHLO tls.test\r\n");
        assert!(c.reply().contains("250 STARTTLS\r\n"));
        c.send(b"STARTTLS\r\n");
        assert_eq!(c.reply(), "220 2.0.0 Ready to start TLS\r\n");
    };
    hang_up(&srv, 1, "right after 220", "tls_failed", |c| starttls(c));
    // A TLS record header and the start of a ClientHello, then nothing.
    hang_up(&srv, 2, "mid ClientHello", "tls_failed", |c| {
        starttls(c);
        c.send(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ]);
    });
    // The same, but staying connected: the handshake's reads time out.
    let mut c = Peer::connect(&srv);
    starttls(&mut c);
    c.send(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
    let stalled = Instant::now();
    let (_, ending, took) = c.rest(secs(TIMEOUT + 5));
    assert_ne!(
        ending,
        Ending::Open,
        "handshake still waiting after {took:?}"
    );
    let lines = settle_empty(&srv, 3, secs(TIMEOUT + 3));
    assert!(
        stalled.elapsed() < secs(TIMEOUT + 3),
        "{:?}",
        stalled.elapsed()
    );
    assert!(lines[2].contains(" how=tls_failed"), "{}", lines[2]);
    assert!(
        srv.stderr_log().contains("TLS handshake failed: timeout"),
        "{}",
        srv.stderr_log()
    );
}

#[test]
fn client_hangs_up_during_the_auth_exchange() {
    let srv = start(setup("hangup-auth").auth().env("ALLOW_INSECURE_AUTH", "1"));
    let ehlo = |c: &mut Peer| {
        assert!(c.reply().starts_with("220 "));
        c.send(b"EHLO auth.test\r\n");
        assert!(c.reply().contains("250 AUTH PLAIN LOGIN\r\n"));
    };
    hang_up(&srv, 1, "after AUTH LOGIN's first 334", "eof", |c| {
        ehlo(c);
        c.send(b"AUTH LOGIN\r\n");
        assert_eq!(c.reply(), "334 VXNlcm5hbWU6\r\n");
    });
    hang_up(&srv, 2, "after the user name", "eof", |c| {
        ehlo(c);
        c.send(b"AUTH LOGIN\r\n");
        assert_eq!(c.reply(), "334 VXNlcm5hbWU6\r\n");
        c.send(b"YWxpY2U=\r\n");
        assert_eq!(c.reply(), "334 UGFzc3dvcmQ6\r\n");
    });
    hang_up(&srv, 3, "mid password line", "eof", |c| {
        ehlo(c);
        c.send(b"AUTH LOGIN YWxpY2U=\r\n");
        assert_eq!(c.reply(), "334 UGFzc3dvcmQ6\r\n");
        c.send(b"d29uZGVy");
    });
    hang_up(&srv, 4, "after AUTH PLAIN's empty 334", "eof", |c| {
        ehlo(c);
        c.send(b"AUTH PLAIN\r\n");
        assert!(c.reply().starts_with("334"));
    });
    // With the credentials sent and the answer not read: AUTH succeeds,
    // then EOF; nothing queued, no secret in the log.
    hang_up(&srv, 5, "right after the credentials", "eof", |c| {
        ehlo(c);
        c.send(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n");
    });
    let log = srv.stderr_log();
    assert!(!log.contains("wonderland"), "{log}");
}

/// A queue wrapper that does not `exec` leaves its child running: the
/// timeout kills the whole process group, so nothing is left behind.
#[test]
fn queue_timeout_kills_the_queue_programs_children_too() {
    let marker = format!("{}", 3_000_000 + std::process::id() % 100_000);
    let qq = Script::new(
        "stuck-qmail-queue-wrapper",
        &format!("#!/bin/sh\nsleep {marker}\n"),
    );
    let srv = start(setup("qq-orphans").env("QMAILQUEUE", qq.path().to_str().unwrap()));
    let mut c = Peer::connect(&srv);
    start_data(&mut c);
    c.s.write_all(b"Subject: x\r\n\r\nhi\r\n.\r\n").unwrap();
    let r = c.reply_within(secs(TIMEOUT + 10)).unwrap();
    assert!(r.starts_with("451 4.3.0 qq timeout"), "{r:?}");
    std::thread::sleep(Duration::from_millis(200));
    let left = std::process::Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left behind: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    let _ = c.s.shutdown(Shutdown::Both);
    settle_empty(&srv, 1, secs(TIMEOUT + 5));
}

/// Many connections logging at once into one pipe (as under multilog):
/// every line is whole, with one `qmail-smtpd: pid N: ` prefix. Each line
/// used to take several writes, and the load test saw them interleave.
#[test]
fn concurrent_connections_never_interleave_log_lines() {
    let srv = start(setup("log-lines").env("SMTPD_TRANSCRIPT", "1"));
    let clients: Vec<_> = (0..40)
        .map(|_| {
            let addr = srv.addr();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(secs(10))).unwrap();
                s.write_all(b"EHLO a.test\r\nNOOP\r\nHELP\r\nVRFY x\r\nQUIT\r\n")
                    .unwrap();
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    srv.wait_end_lines(41, secs(20))
        .expect("every connection logged its end");
    let log = srv.stderr_log();
    let mut lines = 0;
    for line in log.lines() {
        lines += 1;
        let rest = line
            .strip_prefix("qmail-smtpd: pid ")
            .unwrap_or_else(|| panic!("not a whole line: {line:?}"));
        let (pid, text) = rest.split_once(": ").unwrap_or_else(|| panic!("{line:?}"));
        assert!(pid.bytes().all(|b| b.is_ascii_digit()), "{line:?}");
        assert!(
            !text.contains("qmail-smtpd: pid "),
            "two lines in one: {line:?}"
        );
    }
    assert!(lines > 40 * 10, "{lines} lines");
}

// ---- 10. qmail-smtpd itself is killed while a child hangs --------------

/// The pid a stuck child wrote to `file`, once it has.
fn pid_from(file: &Path, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(s) = std::fs::read_to_string(file) {
            if let Ok(pid) = s.trim().parse() {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The parent of `pid` (from /proc/PID/stat; the name may hold spaces).
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Whether `pid` is gone (or a zombie nobody reaps yet).
fn gone_within(pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) if stat[stat.rfind(')').unwrap() + 2..].starts_with('Z') => return true,
            Ok(_) if Instant::now() >= deadline => return false,
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A child (in a process group of its own, out of reach of a signal to
/// qmail-smtpd) that hangs, and qmail-smtpd is sent SIGTERM meanwhile:
/// the child's group goes with it. Before, the child was left running.
fn killed_while_child_hangs<'a>(
    name: &'a str,
    child: &str,
    setup_with: impl FnOnce(Setup<'a>, &Path) -> Setup<'a>,
    drive: impl FnOnce(&mut Peer),
    before_pid: &str,
) {
    let pidfile = std::env::temp_dir().join(format!("qsmtpd-{name}-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&pidfile);
    let script = Script::new(
        child,
        &format!(
            "#!/bin/sh\n{before_pid}echo $$ > '{}'\nexec sleep 3600\n",
            pidfile.display()
        ),
    );
    // timeoutsmtpd and CHECKPASSWORD_TIMEOUT far beyond the test: only
    // the signal ends the wait.
    let srv = start(setup_with(
        Setup::new(name).control("timeoutsmtpd", "600\n"),
        script.path(),
    ));
    let mut c = Peer::connect(&srv);
    drive(&mut c);
    let stuck = pid_from(&pidfile, secs(10));
    let smtpd = parent_of(stuck);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(smtpd),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(
        gone_within(smtpd, secs(5)),
        "qmail-smtpd {smtpd} survived SIGTERM"
    );
    assert!(
        gone_within(stuck, secs(5)),
        "{child} {stuck} was left running"
    );
    assert!(c.closed());
    let log = srv.stderr_log();
    assert!(log.contains("SIGTERM while waiting on child"), "{log}");
    let _ = std::fs::remove_file(&pidfile);
}

#[test]
fn killed_while_qmail_queue_hangs_takes_it_along() {
    killed_while_child_hangs(
        "kill-qq",
        "hung-qmail-queue",
        |s, path| s.env("QMAILQUEUE", path.to_str().unwrap()),
        |c| {
            start_data(c);
            c.send(b"Subject: stuck\r\n\r\nhello\r\n.\r\n");
        },
        // Reads the message to its end (qmail-smtpd closes it at the final
        // dot, then waits), and only then says its pid and hangs.
        "cat >/dev/null; ",
    );
}

#[test]
fn killed_while_checkpassword_hangs_takes_it_along() {
    killed_while_child_hangs(
        "kill-cp",
        "hung-checkpassword",
        |s, path| {
            s.args(&[path.to_str().unwrap(), "/bin/true"])
                .env("ALLOW_INSECURE_AUTH", "1")
                .env("CHECKPASSWORD_TIMEOUT", "600")
        },
        |c| {
            assert!(c.reply().starts_with("220 "));
            // PLAIN, "\0alice\0wonderland".
            c.send(b"EHLO k.test\r\n");
            assert!(c.reply().starts_with("250-"));
            c.send(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n");
        },
        "",
    );
}
