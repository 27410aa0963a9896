//! A benchmark client for qmail-smtpd (or any SMTP server) on loopback.
//!
//! ```text
//! smtp-bench [options] session N              N whole plain sessions, one after another
//! smtp-bench [options] pipeline N             N messages in one session, RFC 2920 groups
//! smtp-bench [options] data BYTES             one message of BYTES bytes: MiB/s through DATA
//! smtp-bench [options] tls-session N [1.2|1.3]  N STARTTLS sessions with one message each
//! smtp-bench [options] handshake N [1.2|1.3]    N connections doing only STARTTLS and QUIT
//! smtp-bench [options] tls-auth-session N [1.2|1.3]
//!                      N STARTTLS sessions, each authenticated (AUTH PLAIN with an
//!                      initial response) and relaying one message to --relay-to
//! smtp-bench [options] load N [1.2|1.3|plain]
//!                      N sessions at once, one thread each: all connect and do EHLO,
//!                      STARTTLS, the handshake and EHLO again (plain: EHLO only), then
//!                      are held while the caller looks at the server; then each sends
//!                      one message and QUIT. Prints `phase=held …` when all are held
//!                      (or failed), waits for end of file or a line on standard input
//!                      (at most --hold seconds), then prints `mode=load … ok=K`.
//!                      Everything ends by --deadline; exit 1 unless all N succeeded.
//!
//! options:
//!   --addr HOST:PORT   server (default 127.0.0.1:2525)
//!   --ca PATH          PEM certificate the server must present (TLS modes; see below)
//!   --sni NAME         TLS server name sent (default localhost)
//!   --kx GROUPS        TLS key exchange: default (rustls' order, X25519MLKEM768 first),
//!                      x25519, p256, or a comma list of those and x25519mlkem768
//!   --from ADDR        envelope sender (default bench@client.test)
//!   --to ADDR          envelope recipient (default rcpt@example.org)
//!   --helo NAME        EHLO name (default client.test)
//!   --user NAME        AUTH user name (default bench)
//!   --password PASS    AUTH password (default bench)
//!   --relay-to ADDR    tls-auth-session recipient, in a domain the server does not
//!                      accept without AUTH (default rcpt@elsewhere.test)
//!   --hold S           load: hold the sessions at most S seconds (default 30)
//!   --deadline S       load: the whole run, connecting included, ends within S
//!                      seconds of the start (default 60); what is not done by then fails
//!   --warmup W         untimed runs first (default 1; session modes only)
//!   --two-groups       pipeline: wait for the 250 after each message before sending
//!                      the next MAIL/RCPT/DATA group (two round trips per message)
//!   --nagle            leave Nagle's algorithm on (no TCP_NODELAY), as many clients
//!                      do (Python's smtplib, for one): shows a server whose replies
//!                      or handshake flights would stall on delayed ACKs
//!   --proxy v1|v2      play a load balancer: send a PROXY protocol header (this
//!                      connection's own addresses) before anything else
//! ```
//!
//! Every reply is read and its code checked; a wrong code, a missing
//! capability or an early close aborts with exit status 1 and the reply, so
//! a broken server cannot look fast. The client sets `TCP_NODELAY` (unless
//! `--nagle`) and sends each group of commands in one write: any Nagle or
//! delayed-ACK stall measured is the server's.
//!
//! Output is one line of `key=value` pairs (milliseconds, messages per
//! second, MiB/s), easy to read and to parse.
//!
//! BENCH ONLY: the TLS client does not check the certificate chain or the
//! name. It pins the certificate instead: the server must present exactly
//! the first certificate in `--ca` (the sandbox's self-signed
//! `servercert.pem`), and the handshake signatures are verified with it as
//! usual, so the client does all the work a real one does.

use std::io::{self, BufRead, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

const USAGE: &str = "usage: smtp-bench [--addr HOST:PORT] [--ca CERT.pem] [--sni NAME] [--kx GROUPS]
                  [--from A] [--to A] [--helo N] [--warmup W] [--two-groups] [--nagle]
                  [--user U] [--password P] [--relay-to A] [--hold S] [--deadline S]
                  session N | pipeline N | data BYTES | tls-session N [1.2|1.3] | handshake N [1.2|1.3]
                  | tls-auth-session N [1.2|1.3] | load N [1.2|1.3|plain]";

/// Client-side I/O timeout: a stalled server fails the run, it does not hang it.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

type Res<T> = Result<T, String>;

struct Opts {
    addr: String,
    ca: Option<String>,
    sni: String,
    kx: String,
    from: String,
    to: String,
    helo: String,
    warmup: usize,
    two_groups: bool,
    user: String,
    password: String,
    relay_to: String,
    hold: Duration,
    deadline: Duration,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("smtp-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let mut o = Opts {
        addr: "127.0.0.1:2525".into(),
        ca: None,
        sni: "localhost".into(),
        kx: "default".into(),
        from: "bench@client.test".into(),
        to: "rcpt@example.org".into(),
        helo: "client.test".into(),
        warmup: 1,
        two_groups: false,
        user: "bench".into(),
        password: "bench".into(),
        relay_to: "rcpt@elsewhere.test".into(),
        hold: Duration::from_secs(30),
        deadline: Duration::from_secs(60),
    };
    let mut pos = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--addr" => o.addr = val("--addr")?,
            "--ca" => o.ca = Some(val("--ca")?),
            "--sni" => o.sni = val("--sni")?,
            "--kx" => o.kx = val("--kx")?,
            "--from" => o.from = val("--from")?,
            "--to" => o.to = val("--to")?,
            "--helo" => o.helo = val("--helo")?,
            "--warmup" => {
                let v = val("--warmup")?;
                o.warmup = v
                    .parse()
                    .map_err(|_| format!("--warmup: not a number: {v}"))?;
            }
            "--two-groups" => o.two_groups = true,
            "--nagle" => NAGLE.store(true, std::sync::atomic::Ordering::Relaxed),
            "--proxy" => {
                let v = val("--proxy")?;
                if v != "v1" && v != "v2" {
                    return Err(format!("--proxy: v1 or v2, not {v}"));
                }
                let _ = PROXY.set(v);
            }
            "--user" => o.user = val("--user")?,
            "--password" => o.password = val("--password")?,
            "--relay-to" => o.relay_to = val("--relay-to")?,
            "--hold" => o.hold = Duration::from_secs(number(&val("--hold")?)? as u64),
            "--deadline" => {
                o.deadline = Duration::from_secs(number(&val("--deadline")?)? as u64);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => pos.push(a),
        }
    }
    let pos: Vec<&str> = pos.iter().map(String::as_str).collect();
    match pos.as_slice() {
        ["session", n] => session(&o, number(n)?),
        ["pipeline", n] => pipeline(&o, number(n)?),
        ["data", bytes] => data(&o, number(bytes)?),
        ["tls-session", n, rest @ ..] if rest.len() <= 1 => {
            let tls = Tls::new(&o, rest.first().copied())?;
            tls_session(&o, &tls, number(n)?)
        }
        ["handshake", n, rest @ ..] if rest.len() <= 1 => {
            let tls = Tls::new(&o, rest.first().copied())?;
            handshake(&o, &tls, number(n)?)
        }
        ["tls-auth-session", n, rest @ ..] if rest.len() <= 1 => {
            let tls = Tls::new(&o, rest.first().copied())?;
            tls_auth_session(&o, &tls, number(n)?)
        }
        ["load", n, rest @ ..] if rest.len() <= 1 => {
            let tls = match rest.first().copied() {
                Some("plain") => None,
                v => Some(Tls::new(&o, v)?),
            };
            load(&o, tls.as_ref(), number(n)?)
        }
        _ => Err(USAGE.into()),
    }
}

/// `--nagle`: leave Nagle's algorithm on.
static NAGLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--proxy`: the PROXY protocol version to send, if any.
static PROXY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// A PROXY header for IPv4 connection `s`, as a balancer would send it.
fn proxy_header(version: &str, s: &TcpStream) -> Res<Vec<u8>> {
    let (client, server) = match (s.local_addr(), s.peer_addr()) {
        (Ok(std::net::SocketAddr::V4(c)), Ok(std::net::SocketAddr::V4(p))) => (c, p),
        _ => return Err("--proxy: IPv4 connections only".into()),
    };
    if version == "v1" {
        return Ok(format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            client.ip(),
            server.ip(),
            client.port(),
            server.port()
        )
        .into_bytes());
    }
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&client.ip().octets());
    h.extend_from_slice(&server.ip().octets());
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&server.port().to_be_bytes());
    Ok(h)
}

fn number(s: &str) -> Res<usize> {
    let s = s.replace('_', "");
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1024),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (&s[..], 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .map(|n| n * mult)
        .ok_or(format!("not a positive number: {s}"))
}

// ---------------------------------------------------------------- the link

enum Link {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<ClientConnection, TcpStream>>),
    Gone,
}

/// One SMTP connection: a link and the bytes read but not yet consumed.
struct Smtp {
    link: Link,
    buf: Vec<u8>,
    start: usize,
}

impl Smtp {
    fn connect(addr: &str) -> Res<Smtp> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        Smtp::with_socket(s, IO_TIMEOUT)
    }

    /// Connect, with every step (connecting included) bounded by `deadline`.
    fn connect_until(addr: &str, deadline: Instant) -> Res<Smtp> {
        let sa = addr
            .to_socket_addrs()
            .map_err(|e| format!("{addr}: {e}"))?
            .next()
            .ok_or(format!("{addr}: no address"))?;
        let left = time_left(deadline)?;
        let s =
            TcpStream::connect_timeout(&sa, left).map_err(|e| format!("connect {addr}: {e}"))?;
        Smtp::with_socket(s, time_left(deadline)?.min(IO_TIMEOUT))
    }

    fn with_socket(s: TcpStream, timeout: Duration) -> Res<Smtp> {
        if !NAGLE.load(std::sync::atomic::Ordering::Relaxed) {
            s.set_nodelay(true)
                .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        }
        if let Some(version) = PROXY.get() {
            let header = proxy_header(version, &s)?;
            (&s).write_all(&header)
                .map_err(|e| format!("PROXY header: {e}"))?;
        }
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        Ok(Smtp {
            link: Link::Plain(s),
            buf: Vec::with_capacity(8192),
            start: 0,
        })
    }

    /// Bound every further read and write by `deadline`.
    fn set_deadline(&mut self, deadline: Instant) -> Res<()> {
        let left = Some(time_left(deadline)?.min(IO_TIMEOUT));
        let sock = match &self.link {
            Link::Plain(s) => s,
            Link::Tls(s) => s.get_ref(),
            Link::Gone => return Err("deadline on a closed link".into()),
        };
        sock.set_read_timeout(left)
            .and_then(|()| sock.set_write_timeout(left))
            .map_err(|e| format!("socket timeouts: {e}"))
    }

    fn send(&mut self, data: &[u8]) -> Res<()> {
        let r = match &mut self.link {
            Link::Plain(s) => s.write_all(data),
            // StreamOwned encrypts the batch and writes the records with
            // one vectored write.
            Link::Tls(s) => s.write_all(data).and_then(|()| s.flush()),
            Link::Gone => return Err("send on a closed link".into()),
        };
        r.map_err(|e| format!("write to server: {e}"))
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut tmp = [0u8; 16384];
        let n = match &mut self.link {
            Link::Plain(s) => s.read(&mut tmp)?,
            Link::Tls(s) => match s.read(&mut tmp) {
                // Closed without close_notify: for us, just the end.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                r => r?,
            },
            Link::Gone => 0,
        };
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// One whole reply (all its lines); `what` names the step for errors.
    fn reply(&mut self, what: &str) -> Res<(u16, String)> {
        let mut text = String::new();
        loop {
            let line = loop {
                if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..]) {
                    let l = &self.buf[self.start..self.start + i + 1];
                    self.start += i + 1;
                    break String::from_utf8_lossy(l).into_owned();
                }
                match self.fill() {
                    Ok(0) => {
                        return Err(format!(
                            "{what}: server closed the connection (reply so far: {text:?})"
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(format!("{what}: reading reply: {e}")),
                }
            };
            let b = line.as_bytes();
            if b.len() < 5 || !b[..3].iter().all(u8::is_ascii_digit) || !line.ends_with("\r\n") {
                return Err(format!("{what}: malformed reply line {line:?}"));
            }
            text.push_str(&line);
            if b[3] != b'-' {
                let code = line[..3].parse().unwrap_or(0);
                return Ok((code, text));
            }
        }
    }

    /// A reply that must have code `want`.
    fn expect(&mut self, want: u16, what: &str) -> Res<String> {
        let (code, text) = self.reply(what)?;
        if code != want {
            return Err(format!(
                "{what}: expected {want}, got: {}",
                text.trim_end().replace("\r\n", " | ")
            ));
        }
        Ok(text)
    }

    /// After QUIT: the server must close the connection, with nothing more said.
    fn expect_close(&mut self, what: &str) -> Res<()> {
        loop {
            if self.start < self.buf.len() {
                return Err(format!(
                    "{what}: unexpected bytes before close: {:?}",
                    String::from_utf8_lossy(&self.buf[self.start..])
                ));
            }
            match self.fill() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => return Err(format!("{what}: waiting for close: {e}")),
            }
        }
        self.link = Link::Gone;
        Ok(())
    }

    /// After `220 Ready to start TLS`: the handshake, to completion.
    fn start_tls(&mut self, tls: &Tls) -> Res<()> {
        if self.start < self.buf.len() {
            return Err(format!(
                "STARTTLS: server sent {} bytes after its 220 (injection?)",
                self.buf.len() - self.start
            ));
        }
        self.buf.clear();
        self.start = 0;
        let Link::Plain(mut sock) = std::mem::replace(&mut self.link, Link::Gone) else {
            return Err("STARTTLS on a link that is not plain".into());
        };
        let mut conn = ClientConnection::new(tls.config.clone(), tls.name.clone())
            .map_err(|e| format!("TLS client: {e}"))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        if conn.protocol_version() != Some(tls.version) {
            return Err(format!(
                "TLS handshake: negotiated {:?}, wanted {:?}",
                conn.protocol_version(),
                tls.version
            ));
        }
        self.link = Link::Tls(Box::new(rustls::StreamOwned::new(conn, sock)));
        Ok(())
    }

    /// Connect and read the greeting.
    fn open(addr: &str) -> Res<Smtp> {
        let mut s = Smtp::connect(addr)?;
        s.expect(220, "greeting")?;
        Ok(s)
    }

    /// Connect and read the greeting, by `deadline`.
    fn open_until(addr: &str, deadline: Instant) -> Res<Smtp> {
        let mut s = Smtp::connect_until(addr, deadline)?;
        s.expect(220, "greeting")?;
        Ok(s)
    }

    /// EHLO; every keyword in `need` must be offered. Returns the reply.
    fn ehlo(&mut self, helo: &str, need: &[&str]) -> Res<String> {
        self.send(format!("EHLO {helo}\r\n").as_bytes())?;
        let text = self.expect(250, "EHLO")?;
        for cap in need {
            let offered = text.lines().skip(1).any(|l| {
                l.get(4..)
                    .and_then(|k| k.split_ascii_whitespace().next())
                    .is_some_and(|k| k.eq_ignore_ascii_case(cap))
            });
            if !offered {
                return Err(format!("EHLO: {cap} not offered: {text:?}"));
            }
        }
        Ok(text)
    }

    /// EHLO, STARTTLS, the handshake, and EHLO again inside TLS (whose
    /// reply is returned).
    fn starttls_ehlo(&mut self, o: &Opts, tls: &Tls) -> Res<String> {
        self.ehlo(&o.helo, &["STARTTLS"])?;
        self.send(b"STARTTLS\r\n")?;
        self.expect(220, "STARTTLS")?;
        self.start_tls(tls)?;
        self.ehlo(&o.helo, &[])
    }

    /// AUTH PLAIN with an initial response (RFC 4616, RFC 4954), which must
    /// have been offered in `ehlo`.
    fn auth_plain(&mut self, o: &Opts, ehlo: &str) -> Res<()> {
        let plain = ehlo.lines().skip(1).any(|l| {
            let mut words = l.get(4..).unwrap_or("").split_ascii_whitespace();
            words.next().is_some_and(|k| k.eq_ignore_ascii_case("AUTH"))
                && words.any(|m| m.eq_ignore_ascii_case("PLAIN"))
        });
        if !plain {
            return Err(format!("EHLO: AUTH PLAIN not offered: {ehlo:?}"));
        }
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{}\0{}", o.user, o.password));
        self.send(format!("AUTH PLAIN {token}\r\n").as_bytes())?;
        self.expect(235, "AUTH PLAIN")?;
        Ok(())
    }

    /// MAIL, RCPT (to `to`), DATA, message, each waited for (no pipelining).
    fn message_lockstep(&mut self, o: &Opts, to: &str, msg: &[u8]) -> Res<()> {
        self.send(format!("MAIL FROM:<{}>\r\n", o.from).as_bytes())?;
        self.expect(250, "MAIL")?;
        self.send(format!("RCPT TO:<{to}>\r\n").as_bytes())?;
        self.expect(250, "RCPT")?;
        self.send(b"DATA\r\n")?;
        self.expect(354, "DATA")?;
        self.send(msg)?;
        self.expect(250, "end of DATA")?;
        Ok(())
    }

    fn quit(&mut self) -> Res<()> {
        self.send(b"QUIT\r\n")?;
        self.expect(221, "QUIT")?;
        self.expect_close("after QUIT")
    }
}

// ---------------------------------------------------------------- messages

/// A small message, dot-terminated.
fn small_message(o: &Opts, i: usize) -> Vec<u8> {
    format!(
        "From: Bench <{from}>\r\nTo: <{to}>\r\nSubject: bench message {i}\r\n\
         Message-ID: <bench.{i}.{pid}@client.test>\r\n\r\n\
         A small message, a few lines long, as most mail is.\r\n\
         It says nothing much: the envelope and the replies are what is measured.\r\n\
         -- \r\nsmtp-bench\r\n.\r\n",
        from = o.from,
        to = o.to,
        pid = std::process::id()
    )
    .into_bytes()
}

/// Headers, then 78-character text lines (plus CRLF) up to `bytes` in all,
/// dot-terminated. No line starts with a dot, so nothing is stuffed.
fn big_message(o: &Opts, bytes: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Bench <{}>\r\nTo: <{}>\r\nSubject: {} bytes\r\n\r\n",
        o.from, o.to, bytes
    )
    .into_bytes();
    const WORDS: &[&str] = &[
        "the",
        "queue",
        "mail",
        "server",
        "message",
        "of",
        "and",
        "a",
        "delivery",
        "to",
        "recipient",
        "envelope",
        "header",
        "line",
        "is",
        "with",
        "transfer",
        "protocol",
        "in",
        "qmail",
        "data",
        "for",
        "remote",
        "local",
    ];
    let mut w = 0usize;
    let mut line = String::with_capacity(80);
    while m.len() < bytes {
        line.clear();
        while line.len() < 78 {
            let word = WORDS[w % WORDS.len()];
            w = w.wrapping_mul(31).wrapping_add(7) % 9973;
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        line.truncate(78);
        m.extend_from_slice(line.as_bytes());
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b".\r\n");
    m
}

// ---------------------------------------------------------------- stats

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `median_ms=… p90_ms=… mean_ms=… min_ms=… max_ms=…` over `times`.
fn summary(times: &mut [f64]) -> String {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median = if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    };
    let p90 = times[((n * 9).div_ceil(10)).max(1) - 1];
    let mean = times.iter().sum::<f64>() / n as f64;
    format!(
        "median_ms={median:.3} p90_ms={p90:.3} mean_ms={mean:.3} min_ms={:.3} max_ms={:.3}",
        times[0],
        times[n - 1]
    )
}

/// Run `one` `warmup` times untimed, then `n` times timed.
fn repeat(o: &Opts, n: usize, mut one: impl FnMut(usize) -> Res<()>) -> Res<(Vec<f64>, Duration)> {
    for i in 0..o.warmup {
        one(i).map_err(|e| format!("warm-up run {}: {e}", i + 1))?;
    }
    let mut times = Vec::with_capacity(n);
    let all = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        one(i).map_err(|e| format!("run {}: {e}", i + 1))?;
        times.push(ms(t.elapsed()));
    }
    Ok((times, all.elapsed()))
}

// ---------------------------------------------------------------- modes

/// N whole plain sessions, each waited for to the server's close.
fn session(o: &Opts, n: usize) -> Res<()> {
    let (mut times, _) = repeat(o, n, |i| {
        let mut s = Smtp::open(&o.addr)?;
        s.ehlo(&o.helo, &[])?;
        s.message_lockstep(o, &o.to, &small_message(o, i))?;
        s.quit()
    })?;
    println!("mode=session n={n} {}", summary(&mut times));
    Ok(())
}

/// N messages in one session. Default: one RFC 2920 group per message, the
/// previous message's content first (allowed as the first "command" of a
/// group), then MAIL, RCPT and DATA: `. MAIL RCPT DATA` in one write, then
/// four replies. `--two-groups`: MAIL RCPT DATA, three replies; content,
/// one reply.
fn pipeline(o: &Opts, n: usize) -> Res<()> {
    let mut s = Smtp::open(&o.addr)?;
    s.ehlo(&o.helo, &["PIPELINING"])?;
    let envelope = format!("MAIL FROM:<{}>\r\nRCPT TO:<{}>\r\nDATA\r\n", o.from, o.to);
    let msgs: Vec<Vec<u8>> = (0..n).map(|i| small_message(o, i)).collect();
    let t = Instant::now();
    let mut batch = Vec::with_capacity(4096);
    if o.two_groups {
        for (i, msg) in msgs.iter().enumerate() {
            s.send(envelope.as_bytes())?;
            s.expect(250, &format!("message {}: MAIL", i + 1))?;
            s.expect(250, &format!("message {}: RCPT", i + 1))?;
            s.expect(354, &format!("message {}: DATA", i + 1))?;
            s.send(msg)?;
            s.expect(250, &format!("message {}: end of DATA", i + 1))?;
        }
    } else {
        s.send(envelope.as_bytes())?;
        for (i, msg) in msgs.iter().enumerate() {
            let m = i + 1;
            s.expect(250, &format!("message {m}: MAIL"))?;
            s.expect(250, &format!("message {m}: RCPT"))?;
            s.expect(354, &format!("message {m}: DATA"))?;
            batch.clear();
            batch.extend_from_slice(msg);
            if m < n {
                batch.extend_from_slice(envelope.as_bytes());
            }
            s.send(&batch)?;
            s.expect(250, &format!("message {m}: end of DATA"))?;
        }
    }
    let elapsed = t.elapsed();
    s.quit()?;
    let secs = elapsed.as_secs_f64();
    println!(
        "mode=pipeline n={n} groups_per_msg={} total_ms={:.1} ms_per_msg={:.3} msgs_per_s={:.1}",
        if o.two_groups { 2 } else { 1 },
        secs * 1000.0,
        secs * 1000.0 / n as f64,
        n as f64 / secs
    );
    Ok(())
}

/// One message of `bytes` bytes; the clock runs from the 354 to the 250.
fn data(o: &Opts, bytes: usize) -> Res<()> {
    let msg = big_message(o, bytes);
    let mut s = Smtp::open(&o.addr)?;
    s.ehlo(&o.helo, &[])?;
    s.send(format!("MAIL FROM:<{}>\r\n", o.from).as_bytes())?;
    s.expect(250, "MAIL")?;
    s.send(format!("RCPT TO:<{}>\r\n", o.to).as_bytes())?;
    s.expect(250, "RCPT")?;
    s.send(b"DATA\r\n")?;
    s.expect(354, "DATA")?;
    let t = Instant::now();
    for chunk in msg.chunks(256 * 1024) {
        s.send(chunk)?;
    }
    s.expect(250, "end of DATA")?;
    let secs = t.elapsed().as_secs_f64();
    s.quit()?;
    println!(
        "mode=data bytes={} ms={:.1} mib_per_s={:.1}",
        msg.len(),
        secs * 1000.0,
        msg.len() as f64 / secs / (1024.0 * 1024.0)
    );
    Ok(())
}

fn tls_session(o: &Opts, tls: &Tls, n: usize) -> Res<()> {
    let (mut times, _) = repeat(o, n, |i| {
        let mut s = Smtp::open(&o.addr)?;
        s.starttls_ehlo(o, tls)?;
        s.message_lockstep(o, &o.to, &small_message(o, i))?;
        s.quit()
    })?;
    println!(
        "mode=tls-session tls={} n={n} {}",
        tls.label,
        summary(&mut times)
    );
    Ok(())
}

/// N STARTTLS sessions that authenticate, then relay one message.
fn tls_auth_session(o: &Opts, tls: &Tls, n: usize) -> Res<()> {
    let (mut times, _) = repeat(o, n, |i| {
        let mut s = Smtp::open(&o.addr)?;
        let ehlo = s.starttls_ehlo(o, tls)?;
        s.auth_plain(o, &ehlo)?;
        s.message_lockstep(o, &o.relay_to, &small_message(o, i))?;
        s.quit()
    })?;
    println!(
        "mode=tls-auth-session tls={} n={n} {}",
        tls.label,
        summary(&mut times)
    );
    Ok(())
}

fn handshake(o: &Opts, tls: &Tls, n: usize) -> Res<()> {
    let (mut times, all) = repeat(o, n, |_| {
        let mut s = Smtp::open(&o.addr)?;
        s.ehlo(&o.helo, &["STARTTLS"])?;
        s.send(b"STARTTLS\r\n")?;
        s.expect(220, "STARTTLS")?;
        s.start_tls(tls)?;
        s.quit()
    })?;
    println!(
        "mode=handshake tls={} n={n} per_s={:.1} {}",
        tls.label,
        n as f64 / all.as_secs_f64(),
        summary(&mut times)
    );
    Ok(())
}

/// What is left until `deadline`, or an error if it has passed.
fn time_left(deadline: Instant) -> Res<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err("deadline reached".into());
    }
    Ok(left)
}

/// `median_ms=… p90_ms=… max_ms=…` with a prefix, or nothing when empty.
fn short_summary(prefix: &str, times: &mut [f64]) -> String {
    if times.is_empty() {
        return String::new();
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    format!(
        " {prefix}median_ms={:.1} {prefix}p90_ms={:.1} {prefix}max_ms={:.1}",
        times[n / 2],
        times[((n * 9).div_ceil(10)).max(1) - 1],
        times[n - 1]
    )
}

/// The gate the held sessions wait at: opened once, by the main thread.
struct Gate {
    open: Mutex<bool>,
    cond: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cond.notify_all();
    }

    /// Wait until the gate opens, or fail at `deadline`.
    fn wait(&self, deadline: Instant) -> Res<()> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            let left = time_left(deadline).map_err(|_| "deadline reached while held")?;
            open = self
                .cond
                .wait_timeout(open, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }
}

/// N concurrent sessions, one client thread each (see the top of the file).
fn load(o: &Opts, tls: Option<&Tls>, n: usize) -> Res<()> {
    let t0 = Instant::now();
    let deadline = t0 + o.deadline;
    let label = tls.map_or("plain", |t| t.label);
    let gate = Gate {
        open: Mutex::new(false),
        cond: Condvar::new(),
    };
    // Phase one's outcome per session: the time to be held, or why not.
    let (tx, rx) = mpsc::channel::<Res<f64>>();
    let (results, held, ready_ms, released_ms) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(n);
        let mut spawn_failed = Vec::new();
        for i in 0..n {
            let (tx, gate) = (tx.clone(), &gate);
            let session = move || -> Res<()> {
                let t = Instant::now();
                let ready = (|| -> Res<Smtp> {
                    let mut s = Smtp::open_until(&o.addr, deadline)?;
                    match tls {
                        Some(tls) => s.starttls_ehlo(o, tls)?,
                        None => s.ehlo(&o.helo, &[])?,
                    };
                    Ok(s)
                })();
                let mut s = match ready {
                    Ok(s) => {
                        let _ = tx.send(Ok(ms(t.elapsed())));
                        s
                    }
                    Err(e) => {
                        let e = format!("session {}: {e}", i + 1);
                        let _ = tx.send(Err(e.clone()));
                        return Err(e);
                    }
                };
                drop(tx);
                let r = (|| -> Res<()> {
                    gate.wait(deadline)?;
                    s.set_deadline(deadline)?;
                    s.message_lockstep(o, &o.to, &small_message(o, i))?;
                    s.quit()
                })();
                r.map_err(|e| format!("session {}: {e}", i + 1))
            };
            match std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(scope, session)
            {
                Ok(h) => handles.push(h),
                Err(e) => spawn_failed.push(format!("session {}: thread: {e}", i + 1)),
            }
        }
        drop(tx);
        // Phase one: every session held or failed, or the deadline.
        let mut held_ms = Vec::with_capacity(n);
        let mut seen = spawn_failed.len();
        while seen < n {
            let Ok(left) = time_left(deadline) else { break };
            match rx.recv_timeout(left) {
                Ok(Ok(t)) => held_ms.push(t),
                Ok(Err(_)) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
            seen += 1;
        }
        let ready_ms = ms(t0.elapsed());
        let held = held_ms.len();
        println!(
            "phase=held tls={label} n={n} held={held} failed={} ready_ms={ready_ms:.1}{}",
            n - held,
            short_summary("setup_", &mut held_ms)
        );
        let _ = io::stdout().flush();
        // Hold: until a line or end of file on stdin, --hold, or the deadline.
        let (line_tx, line_rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = io::stdin().lock().read_line(&mut line);
            let _ = line_tx.send(());
        });
        let hold = o
            .hold
            .min(deadline.saturating_duration_since(Instant::now()));
        let _ = line_rx.recv_timeout(hold);
        let released_ms = ms(t0.elapsed());
        gate.open();
        let mut results: Vec<Res<()>> = spawn_failed.into_iter().map(Err).collect();
        for h in handles {
            results.push(
                h.join()
                    .unwrap_or_else(|_| Err("a session thread panicked".into())),
            );
        }
        (results, held, ready_ms, released_ms)
    });
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let total_ms = ms(t0.elapsed());
    println!(
        "mode=load tls={label} n={n} ok={ok} failed={} held={held} ready_ms={ready_ms:.1} released_ms={released_ms:.1} total_ms={total_ms:.1} finish_ms={:.1}",
        n - ok,
        total_ms - released_ms
    );
    let mut errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    errors.truncate(5);
    for e in &errors {
        eprintln!("smtp-bench: {e}");
    }
    if ok < n {
        return Err(format!("load: {} of {n} sessions failed", n - ok));
    }
    Ok(())
}

// ---------------------------------------------------------------- TLS client

struct Tls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    version: rustls::ProtocolVersion,
    label: &'static str,
}

impl Tls {
    fn new(o: &Opts, version: Option<&str>) -> Res<Tls> {
        let (v, version, label) = match version.unwrap_or("1.3") {
            "1.3" => (
                &rustls::version::TLS13,
                rustls::ProtocolVersion::TLSv1_3,
                "1.3",
            ),
            "1.2" => (
                &rustls::version::TLS12,
                rustls::ProtocolVersion::TLSv1_2,
                "1.2",
            ),
            other => return Err(format!("TLS version must be 1.2 or 1.3, not {other}")),
        };
        let ca =
            o.ca.as_deref()
                .ok_or("TLS modes need --ca PATH (the server's certificate)")?;
        let pinned = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("{ca}: {e}"))?
            .next()
            .ok_or(format!("{ca}: no certificate"))?
            .map_err(|e| format!("{ca}: {e}"))?
            .into_owned();
        // aws-lc is built without its static initialiser (.cargo/config.toml).
        ::aws_lc_rs::init();
        let mut provider = aws_lc_rs::default_provider();
        if o.kx != "default" {
            let mut groups = Vec::new();
            for g in o.kx.split(',') {
                groups.push(match g {
                    "x25519" => aws_lc_rs::kx_group::X25519,
                    "p256" => aws_lc_rs::kx_group::SECP256R1,
                    "x25519mlkem768" => aws_lc_rs::kx_group::X25519MLKEM768,
                    other => return Err(format!("--kx: unknown group {other}")),
                });
            }
            provider.kx_groups = groups;
        }
        let provider = Arc::new(provider);
        let verifier = Arc::new(PinnedCert {
            cert: pinned,
            provider: provider.clone(),
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[v])
            .map_err(|e| format!("TLS client config: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // Every connection is a full handshake, as with a new client.
        config.resumption = Resumption::disabled();
        let name =
            ServerName::try_from(o.sni.clone()).map_err(|e| format!("--sni {}: {e}", o.sni))?;
        Ok(Tls {
            config: Arc::new(config),
            name,
            version,
            label,
        })
    }
}

/// BENCH ONLY: accepts exactly one certificate, byte for byte, whatever its
/// issuer, validity or names; handshake signatures are still verified.
#[derive(Debug)]
struct PinnedCert {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "server certificate is not the one given with --ca".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
