//! The PROXY protocol end to end: raw sockets playing the balancer in
//! front of the real `tcpserver`, tcprules CDBs for the balancer's and the
//! real clients' addresses, and the real `haproxy` (`send-proxy` and
//! `send-proxy-v2`) with clients on different loopback addresses, STARTTLS
//! and AUTH through it (swaks, Python).

mod common;

use std::io::Write;
use std::net::{Ipv6Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Server, Setup, fake_queue, need, python, text};

const V1: &[u8] = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n";

/// The directory `Setup::start` will use for a test named `name`.
fn dir_of(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("qsmtpd-e2e-{name}-{}", std::process::id()))
}

/// tcprules: the balancer (127.0.0.1, where these tests connect from)
/// sends PROXY headers and relays itself; the real clients' entries are in
/// the same CDB, read through PROXY_RULES.
fn rules(name: &str) -> String {
    format!(
        "127.0.0.1:allow,PROXY_PROTOCOL=\"1\",PROXY_RULES=\"{}/rules.cdb\",RELAYCLIENT=\"\"\n\
         192.0.2.7:allow,RELAYCLIENT=\"\",PROXIED=\"yes\"\n\
         198.51.100.66:deny\n\
         127.0.0.2:allow,RELAYCLIENT=\"\"\n\
         127.0.0.3:allow,DENY_TLS=\"1\"\n\
         :allow\n",
        dir_of(name).display()
    )
}

/// A queue wrapper that records the environment qmail-queue gets.
fn recording_queue(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qsmtpd-proxyq-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrapper = dir.join("queue");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nenv | grep -E '^(TCP|PROTO|RELAYCLIENT|PROXIED|PROXY_)' | sort > \"$FAKEQ_DIR/proxy-env\"\nexec {}\n",
            fake_queue().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

fn start(name: &'static str, rules_text: &'static str) -> Server {
    Setup::new(name)
        .rules(rules_text)
        .env("QMAILQUEUE", recording_queue(name).to_str().unwrap())
        .start()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn queue_env(srv: &Server) -> String {
    std::fs::read_to_string(srv.dir.join("queue/proxy-env")).unwrap_or_default()
}

/// Send one message after `header` (in the same write as EHLO when
/// `pipelined`); return the replies seen.
fn deliver(srv: &Server, header: &[u8], rcpt: &str) -> Vec<String> {
    let mut c = Client::connect(srv);
    let mut first = header.to_vec();
    first.extend_from_slice(b"EHLO client.test\r\n");
    c.send(&first);
    let mut seen = vec![c.reply(), c.reply()];
    c.send(b"MAIL FROM:<a@sender.test>\r\n");
    seen.push(c.reply());
    c.send(format!("RCPT TO:<{rcpt}>\r\n").as_bytes());
    let r = c.reply();
    let ok = r.starts_with("250");
    seen.push(r);
    if ok {
        c.send(b"DATA\r\n");
        seen.push(c.reply());
        c.send(b"Subject: p\r\n\r\nhello\r\n.\r\n");
        seen.push(c.reply());
    }
    c.send(b"QUIT\r\n");
    seen.push(c.reply());
    seen
}

/// The connection is closed without a single byte from the server.
fn closed_silently(srv: &Server, bytes: &[u8], then_close: bool) {
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    if then_close {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut c = Client::from(s);
    assert_eq!(c.line(), None, "{bytes:?} got a reply");
}

#[test]
fn v1_header_gives_the_real_client_everywhere() {
    let name = "proxy-v1";
    let srv = start(name, leak(rules(name)));
    let seen = deliver(&srv, V1, "x@elsewhere.test");
    assert!(seen[0].starts_with("220 "), "{seen:?}");
    assert!(
        seen.iter().any(|r| r.starts_with("250 2.0.0 ok")),
        "{seen:?}"
    );
    let q = srv.queued();
    assert!(
        q[0].0
            .starts_with("Received: from unknown (HELO client.test) (192.0.2.7)\n"),
        "{}",
        q[0].0
    );
    let env = queue_env(&srv);
    for want in [
        "TCPREMOTEIP=192.0.2.7\n",
        "TCPREMOTEPORT=40000\n",
        "TCPLOCALIP=198.51.100.1\n",
        "TCPLOCALPORT=25\n",
        "PROTO=TCP\n",
        "PROXIED=yes\n",
        "RELAYCLIENT=\n",
    ] {
        assert!(env.contains(want), "{want:?} not in {env}");
    }
    // tcpserver -R -H set no TCPREMOTEHOST/INFO; none may describe the
    // balancer, and the balancer's own rule is undone.
    assert!(!env.contains("PROXY_PROTOCOL="), "{env}");
    // (Setup's probe sent no header: no summary line for it.)
    let ends = srv.wait_end_lines(1, Duration::from_secs(10)).unwrap();
    assert!(
        ends.iter()
            .any(|l| l.contains("end remote=192.0.2.7 ") && l.contains(" via=127.0.0.1 ")),
        "{ends:?}"
    );
}

#[test]
fn the_balancers_own_rule_does_not_reach_the_client() {
    // 127.0.0.1's rule sets RELAYCLIENT (a classic `127.:allow,RELAYCLIENT`
    // entry covering the balancer); a client without its own rule must not
    // inherit it.
    let name = "proxy-undo";
    let srv = start(name, leak(rules(name)));
    let header = b"PROXY TCP4 203.0.113.9 198.51.100.1 1234 25\r\n";
    let seen = deliver(&srv, header, "x@elsewhere.test");
    assert!(seen[3].starts_with("553 "), "{seen:?}");
    // ... while a local domain is still accepted.
    let seen = deliver(&srv, header, "bob@example.org");
    assert!(
        seen.iter().any(|r| r.starts_with("250 2.0.0 ok")),
        "{seen:?}"
    );
    let env = queue_env(&srv);
    assert!(env.contains("TCPREMOTEIP=203.0.113.9\n"), "{env}");
    assert!(!env.contains("RELAYCLIENT"), "{env}");
}

#[test]
fn without_proxy_rules_only_the_addresses_change() {
    let srv = start(
        "proxy-norules",
        "127.0.0.1:allow,PROXY_PROTOCOL=\"1\"\n:allow\n",
    );
    let seen = deliver(&srv, V1, "x@elsewhere.test");
    assert!(seen[3].starts_with("553 "), "{seen:?}");
    let seen = deliver(&srv, V1, "bob@example.org");
    assert!(
        seen.iter().any(|r| r.starts_with("250 2.0.0 ok")),
        "{seen:?}"
    );
    let env = queue_env(&srv);
    assert!(env.contains("TCPREMOTEIP=192.0.2.7\n"), "{env}");
    assert!(env.contains("PROXY_PROTOCOL=1\n"), "{env}");
}

#[test]
fn a_deny_rule_for_the_real_client_closes_silently() {
    let name = "proxy-deny";
    let srv = start(name, leak(rules(name)));
    closed_silently(
        &srv,
        b"PROXY TCP4 198.51.100.66 198.51.100.1 1234 25\r\n",
        false,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !srv
        .stderr_log()
        .contains("remote=198.51.100.66 via=127.0.0.1: denied")
    {
        assert!(Instant::now() < deadline, "{}", srv.stderr_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next connection is served.
    let seen = deliver(&srv, V1, "bob@example.org");
    assert!(
        seen.iter().any(|r| r.starts_with("250 2.0.0 ok")),
        "{seen:?}"
    );
}

fn v2(cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | cmd);
    h.push(fam);
    h.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    h.extend_from_slice(payload);
    h
}

#[test]
fn v2_ipv4_ipv6_local_and_v1_unknown() {
    let name = "proxy-v2";
    let srv = start(name, leak(rules(name)));

    let mut p4 = vec![192, 0, 2, 7, 198, 51, 100, 1];
    p4.extend_from_slice(&[0x9c, 0x41, 0, 25]);
    // A TLV the balancer adds (PP2_TYPE_AUTHORITY) is skipped.
    p4.extend_from_slice(&[0x02, 0, 7]);
    p4.extend_from_slice(b"mx.test");
    let seen = deliver(&srv, &v2(1, 0x11, &p4), "x@elsewhere.test");
    assert!(
        seen.iter().any(|r| r.starts_with("250 2.0.0 ok")),
        "{seen:?}"
    );
    let env = queue_env(&srv);
    assert!(
        env.contains("TCPREMOTEIP=192.0.2.7\nTCPREMOTEPORT=40001\n"),
        "{env}"
    );

    let mut p6 = Vec::new();
    p6.extend_from_slice(&"2001:db8::1:0:0:7".parse::<Ipv6Addr>().unwrap().octets());
    p6.extend_from_slice(&"2001:db8::25".parse::<Ipv6Addr>().unwrap().octets());
    p6.extend_from_slice(&[0x9c, 0x40, 0, 25]);
    // (Debian's tcprules takes no IPv6 rules; the IPv6 prefix look-up is
    // table-tested in src/core/tcprules.rs.) The default rule: no relaying.
    let seen = deliver(&srv, &v2(1, 0x21, &p6), "x@elsewhere.test");
    assert!(seen[3].starts_with("553 "), "{seen:?}");
    let seen = deliver(&srv, &v2(1, 0x21, &p6), "bob@example.org");
    assert!(
        seen.iter().any(|r| r.starts_with("250 2.0.0 ok")),
        "{seen:?}"
    );
    let env = queue_env(&srv);
    assert!(env.contains("TCPREMOTEIP=2001:db8::1:0:0:7\n"), "{env}");
    assert!(env.contains("TCP6REMOTEIP=2001:db8::1:0:0:7\n"), "{env}");
    assert!(env.contains("TCPLOCALIP=2001:db8::25\n"), "{env}");
    assert!(env.contains("PROTO=TCP6\n"), "{env}");
    let q = srv.queued();
    assert!(q[1].0.contains("(2001:db8::1:0:0:7)\n"), "{}", q[1].0);

    // LOCAL (a health check) and UNKNOWN: the balancer's own addresses
    // and rule stand (which relays, here).
    for header in [v2(0, 0x00, &[]), b"PROXY UNKNOWN\r\n".to_vec()] {
        let seen = deliver(&srv, &header, "x@elsewhere.test");
        assert!(
            seen.iter().any(|r| r.starts_with("250 2.0.0 ok")),
            "{seen:?}"
        );
        let env = queue_env(&srv);
        assert!(env.contains("TCPREMOTEIP=127.0.0.1\n"), "{env}");
        assert!(env.contains("PROXY_PROTOCOL=1\n"), "{env}");
    }
}

#[test]
fn header_one_byte_at_a_time_then_pipelined_smtp() {
    let name = "proxy-drip";
    let srv = start(name, leak(rules(name)));
    let mut c = Client::connect(&srv);
    c.s.set_nodelay(true).unwrap();
    for b in V1 {
        c.send(&[*b]);
        std::thread::sleep(Duration::from_millis(5));
    }
    c.send(b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<x@elsewhere.test>\r\n");
    assert!(c.reply().starts_with("220 "));
    assert!(c.reply().starts_with("250-"));
    assert!(c.reply().starts_with("250 "));
    assert!(c.reply().starts_with("250 "));
    c.send(b"QUIT\r\n");
    assert!(c.reply().starts_with("221 "));
}

#[test]
fn bad_headers_close_without_a_greeting() {
    let name = "proxy-bad";
    let srv = start(name, leak(rules(name)));
    let mut huge = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff".to_vec();
    huge.extend_from_slice(&[0u8; 600]);
    let cases: Vec<(Vec<u8>, bool)> = vec![
        (b"EHLO client.test\r\n".to_vec(), false),
        (
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n".to_vec(),
            false,
        ),
        (
            b"PROXY TCP4 192.0.2.07 198.51.100.1 1 2\r\n".to_vec(),
            false,
        ),
        (b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n".to_vec(), false),
        ([b"PROXY UNKNOWN ".as_slice(), &[b'x'; 200]].concat(), false),
        (v2(1, 0x12, &[0; 12]), false),
        (v2(1, 0x11, &[0; 5]), false),
        (huge, false),
        // Truncated, then the balancer hangs up.
        (V1[..20].to_vec(), true),
        (v2(1, 0x11, &[0; 12])[..20].to_vec(), true),
        // A TLS ClientHello where the header should be.
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
            false,
        ),
    ];
    for (bytes, close) in &cases {
        closed_silently(&srv, bytes, *close);
    }
    let log = srv.stderr_log();
    assert!(
        log.matches("no valid header").count() >= cases.len(),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    let seen = deliver(&srv, V1, "bob@example.org");
    assert!(
        seen.iter().any(|r| r.starts_with("250 2.0.0 ok")),
        "{seen:?}"
    );
}

#[test]
fn a_header_slower_than_timeoutsmtpd_is_cut() {
    let name = "proxy-slow";
    let srv = Setup::new(name)
        .rules(leak(rules(name)))
        .control("timeoutsmtpd", "2\n")
        .start();
    let t = Instant::now();
    closed_silently(&srv, &V1[..12], false);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(
        srv.stderr_log()
            .contains("no whole header in time (12 bytes came)"),
        "{}",
        srv.stderr_log()
    );
}

#[test]
fn without_proxy_protocol_a_proxy_line_is_just_an_unknown_command() {
    let srv = start("proxy-off", "127.0.0.1:allow\n");
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220 "));
    c.send(V1);
    let r = c.reply();
    assert!(r.starts_with("502 "), "{r}");
    c.send(b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<x@elsewhere.test>\r\n");
    c.reply();
    c.reply();
    let r = c.reply();
    assert!(r.starts_with("553 "), "{r}");
    c.send(b"QUIT\r\n");
    c.reply();
    let ends = srv.wait_end_lines(2, Duration::from_secs(10)).unwrap();
    assert!(ends[1].contains("end remote=127.0.0.1 "), "{ends:?}");
}

#[test]
fn smtps_header_comes_before_the_tls_handshake() {
    let name = "proxy-smtps";
    let srv = Setup::new(name)
        .rules(leak(rules(name)))
        .cert()
        .env("SMTPS", "1")
        .env("QMAILQUEUE", recording_queue(name).to_str().unwrap())
        .start();
    let out = python(&format!(
        r#"
import socket, ssl, smtplib
raw = socket.create_connection(("127.0.0.1", {port}), timeout=20)
raw.sendall(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 465\r\n")
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
tls = ctx.wrap_socket(raw)
class S(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        return tls
s = S()
s.sock = tls
s.file = None
code, msg = s.getreply()
print("greeting", code)
s.ehlo("py.test")
s.sendmail("a@sender.test", ["x@elsewhere.test"], "Subject: s\r\n\r\nhi\r\n")
print("sent", tls.version())
s.quit()
"#,
        port = srv.port
    ));
    assert!(out.contains("greeting 220"), "{out}");
    assert!(out.contains("sent TLSv1.3"), "{out}");
    let q = srv.queued();
    assert!(q[0].0.contains("(192.0.2.7)\n"), "{}", q[0].0);
    let env = queue_env(&srv);
    assert!(env.contains("TCPLOCALPORT=465\n"), "{env}");
}

// ---- The real haproxy in front ----

struct Haproxy {
    child: Child,
    dir: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// haproxy in the foreground: a `send-proxy` and a `send-proxy-v2`
/// front end, both to `srv`. Returns the two front-end ports.
fn haproxy(srv: &Server, name: &str) -> (Haproxy, u16, u16) {
    need("haproxy");
    let dir = std::env::temp_dir().join(format!("qsmtpd-haproxy-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (p1, p2) = (common::free_port(), common::free_port());
    let cfg = format!(
        "global\n  maxconn 64\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend smtp_v1\n  bind 127.0.0.1:{p1}\n  default_backend nodes_v1\n\
         backend nodes_v1\n  server node1 127.0.0.1:{port} send-proxy\n\
         frontend smtp_v2\n  bind 127.0.0.1:{p2}\n  default_backend nodes_v2\n\
         backend nodes_v2\n  server node1 127.0.0.1:{port} send-proxy-v2\n\
         backend health\n  option smtpchk HELO balancer.invalid\n  \
         server node1 127.0.0.1:{port} send-proxy-v2 check check-send-proxy inter 300ms\n",
        port = srv.port
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
        .spawn()
        .expect("start haproxy");
    let h = Haproxy { child, dir };
    common::wait_listening(&format!("127.0.0.1:{p2}"), "haproxy");
    // That probe reached qmail-smtpd through haproxy; let it end.
    std::thread::sleep(Duration::from_millis(100));
    (h, p1, p2)
}

#[test]
fn haproxy_send_proxy_v1_and_v2_apply_the_real_clients_rules() {
    let name = "proxy-haproxy";
    let srv = Setup::new(name)
        .rules(leak(rules(name)))
        .cert()
        .auth()
        .env("QMAILQUEUE", recording_queue(name).to_str().unwrap())
        .start();
    let (_h, p1, p2) = haproxy(&srv, name);
    // swaks through the balancer's front end on `port`, from `local`.
    let swaks = |port: u16, local: &str, args: &[&str]| {
        Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{port}"), "--timeout", "20"])
            .args(["--helo", "client.test", "--local-interface", local])
            .args(args)
            .output()
            .unwrap()
    };
    let relay = ["--from", "a@sender.test", "--to", "x@elsewhere.test"];
    for port in [p1, p2] {
        // 127.0.0.2 relays by its own rule, over STARTTLS.
        let o = swaks(port, "127.0.0.2", &[&["--tls"][..], &relay].concat());
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(t.contains("<~  250 2.0.0 ok"), "{t}");
        let env = queue_env(&srv);
        assert!(env.contains("TCPREMOTEIP=127.0.0.2\n"), "{env}");
        assert!(!env.contains("PROXY_PROTOCOL"), "{env}");

        // 127.0.0.3: no relaying of its own, and its rule sets DENY_TLS, so
        // no STARTTLS (and no AUTH, which needs TLS) either.
        let t = text(&swaks(port, "127.0.0.3", &["--quit-after", "EHLO"]));
        assert!(!t.contains("STARTTLS"), "{t}");
        let t = text(&swaks(port, "127.0.0.3", &relay));
        assert!(t.contains("<** 553 "), "{t}");
    }
    // 127.0.0.4 (default rule): STARTTLS and AUTH through the balancer; a
    // failed AUTH is logged with the real client for fail2ban.
    let auth = |password: &str| {
        let args = [
            &["--tls", "--auth", "PLAIN", "--auth-user", "alice"][..],
            &["--auth-password", password],
            &relay,
        ]
        .concat();
        swaks(p2, "127.0.0.4", &args)
    };
    assert!(!auth("wrong").status.success());
    let o = auth("wonderland");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let q = srv.queued();
    let last = &q.last().unwrap().0;
    assert!(
        last.starts_with(
            "Received: from unknown (HELO client.test) (alice@127.0.0.4)\n  by mx.test with ESMTPSA"
        ),
        "{last}"
    );
    let log = srv.stderr_log();
    assert!(
        log.contains("AUTH failed: remote=127.0.0.4 mech=PLAIN user=\"alice\""),
        "{log}"
    );
    assert!(log.contains("end remote=127.0.0.4 "), "{log}");

    // haproxy's SMTP health checks come with a v2 LOCAL header: served as
    // the balancer itself, without a via= (the addresses did not change).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = srv.stderr_log();
        if let Some(l) = log
            .lines()
            .find(|l| l.contains("helo=\"balancer.invalid\""))
        {
            assert!(l.contains("end remote=127.0.0.1 "), "{l}");
            assert!(!l.contains("via="), "{l}");
            break;
        }
        assert!(Instant::now() < deadline, "no health check seen: {log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
