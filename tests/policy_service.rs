//! The Postfix policy delegation protocol end to end: real tcpserver, the
//! built qmail-smtpd, a policy server written here in Python that answers
//! each action, and the real postgrey (Debian package) greylisting a
//! client that speaks STARTTLS.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Daemon, Setup, free_port, need, postgrey, python, scratch, wait_listening};

/// The test policy server: the action is chosen by the recipient's local
/// part; every request is appended to `requests.log`, every new connection
/// to `connections.log`.
const SERVER: &str = r#"
import socket, sys, os, time
port, dirn = int(sys.argv[1]), sys.argv[2]
actions = {
    "ok": "OK", "dunno": "DUNNO", "reject": "REJECT", "rejecttext": "REJECT 5.7.9 not you",
    "defer": "DEFER", "dip": "DEFER_IF_PERMIT Greylisted for a while",
    "dir": "DEFER_IF_REJECT maybe", "code": "550 5.1.1 no such user",
    "code4": "421 4.7.0 go slow", "prepend": "PREPEND X-Policy: checked",
    "warn": "WARN odd client", "info": "INFO fine client", "unknown": "FROB",
    "hold": "HOLD", "evil": "REJECT a\rb",
}
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(16)
while True:
    c, _ = srv.accept()
    with open(os.path.join(dirn, "connections.log"), "a") as f: f.write("conn\n")
    if os.fork() != 0:
        c.close(); continue
    buf = b""
    while True:
        d = c.recv(4096)
        if not d: os._exit(0)
        buf += d
        while b"\n\n" in buf:
            req, buf = buf.split(b"\n\n", 1)
            attrs = dict(l.split("=", 1) for l in req.decode().split("\n"))
            with open(os.path.join(dirn, "requests.log"), "a") as f:
                f.write(repr(sorted(attrs.items())) + "\n")
            local = attrs.get("recipient", "").split("@")[0]
            if local == "garbage": c.sendall(b"nonsense\n\n"); continue
            if local == "close": c.close(); os._exit(0)
            if local == "slow": time.sleep(30)
            c.sendall(("action=%s\n\n" % actions.get(local, "DUNNO")).encode())
"#;

fn policy_server(name: &str) -> (Daemon, String) {
    need("python3");
    let dir = scratch(name);
    let port = free_port();
    let child = Command::new("python3")
        .args(["-c", SERVER, &port.to_string()])
        .arg(&dir)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon { child, dir };
    wait_listening(&addr, "policy server");
    (d, addr)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

fn chat(c: &mut Client, line: &str) -> String {
    c.send(format!("{line}\r\n").as_bytes());
    c.reply()
}

#[test]
fn every_action_over_one_reused_connection() {
    let (policy, addr) = policy_server("actions");
    let s = Setup::new("policy-actions")
        .env("POLICY_SERVICE", &format!("inet:{addr}"))
        .start();
    let before = read(&policy.dir, "connections.log").lines().count();
    let mut c = Client::connect(&s);
    c.reply();
    chat(&mut c, "EHLO client.test");
    assert!(chat(&mut c, "MAIL FROM:<a@sender.test> SIZE=1234").starts_with("250"));
    let t: &[(&str, &str)] = &[
        ("ok", "250 2.1.5 ok\r\n"),
        ("dunno", "250 2.1.5 ok\r\n"),
        ("reject", "554 5.7.1 Access denied\r\n"),
        ("rejecttext", "554 5.7.9 not you\r\n"),
        ("defer", "450 4.7.1 Try again later\r\n"),
        ("dip", "450 4.7.1 Greylisted for a while\r\n"),
        ("dir", "250 2.1.5 ok\r\n"),
        ("code", "550 5.1.1 no such user\r\n"),
        ("code4", "421 4.7.0 go slow\r\n"),
        ("prepend", "250 2.1.5 ok\r\n"),
        ("warn", "250 2.1.5 ok\r\n"),
        ("info", "250 2.1.5 ok\r\n"),
        ("unknown", "451 4.3.5 Server configuration problem\r\n"),
        ("hold", "451 4.3.5 Server configuration problem\r\n"),
        ("evil", "554 5.7.1 a?b\r\n"),
    ];
    for (local, want) in t {
        assert_eq!(
            &chat(&mut c, &format!("RCPT TO:<{local}@example.org>")),
            want,
            "{local}"
        );
    }
    // Our own checks come first: the service is not asked about these.
    assert!(chat(&mut c, "RCPT TO:<x@elsewhere.test>").starts_with("553"));
    assert!(chat(&mut c, "DATA").starts_with("354"));
    c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    chat(&mut c, "QUIT");
    let q = s.queued();
    assert_eq!(q.len(), 1);
    assert!(q[0].0.contains("\nX-Policy: checked\n"), "{}", q[0].0);
    assert!(q[0].0.starts_with("Received: "));
    let reqs = read(&policy.dir, "requests.log");
    assert_eq!(reqs.lines().count(), t.len(), "{reqs}");
    let first = reqs.lines().next().unwrap();
    for attr in [
        "('request', 'smtpd_access_policy')",
        "('protocol_state', 'RCPT')",
        "('protocol_name', 'ESMTP')",
        "('helo_name', 'client.test')",
        "('sender', 'a@sender.test')",
        "('recipient', 'ok@example.org')",
        "('recipient_count', '0')",
        "('client_address', '127.0.0.1')",
        "('size', '1234')",
        "('sasl_username', '')",
    ] {
        assert!(first.contains(attr), "{attr} missing in {first}");
    }
    let second = reqs.lines().nth(1).unwrap();
    assert!(second.contains("('recipient_count', '1')"), "{second}");
    let instance = |l: &str| {
        l.split("('instance', '")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        instance(first),
        instance(second),
        "one instance per transaction"
    );
    let conns = read(&policy.dir, "connections.log").lines().count() - before;
    assert_eq!(conns, 1, "one connection for the whole session");
    let log = s.stderr_log();
    assert!(log.contains("policy service: WARN odd client"), "{log}");
    assert!(log.contains("policy service: INFO fine client"), "{log}");
    assert!(log.contains("unsupported action \"FROB\""), "{log}");
}

#[test]
fn unreachable_or_garbage_is_451_unless_the_default_action_says_otherwise() {
    let port = free_port();
    let s = Setup::new("policy-down")
        .env("POLICY_SERVICE", &format!("inet:127.0.0.1:{port}"))
        .start();
    let mut c = Client::connect(&s);
    c.reply();
    chat(&mut c, "HELO client.test");
    chat(&mut c, "MAIL FROM:<a@sender.test>");
    assert_eq!(
        chat(&mut c, "RCPT TO:<u@example.org>"),
        "451 4.3.5 Server configuration problem\r\n"
    );
    assert!(
        s.stderr_log().contains("policy service: connect to"),
        "{}",
        s.stderr_log()
    );
    drop(c);
    drop(s);

    let s = Setup::new("policy-bad-spec")
        .env("POLICY_SERVICE", "postgrey")
        .start();
    let mut c = Client::connect(&s);
    c.reply();
    chat(&mut c, "HELO client.test");
    chat(&mut c, "MAIL FROM:<a@sender.test>");
    assert!(chat(&mut c, "RCPT TO:<u@example.org>").starts_with("451 4.3.5"));
    drop(c);
    drop(s);

    let s = Setup::new("policy-down-dunno")
        .env("POLICY_SERVICE", &format!("inet:127.0.0.1:{port}"))
        .env("POLICY_SERVICE_DEFAULT_ACTION", "DUNNO")
        .start();
    let mut c = Client::connect(&s);
    c.reply();
    chat(&mut c, "HELO client.test");
    chat(&mut c, "MAIL FROM:<a@sender.test>");
    assert!(chat(&mut c, "RCPT TO:<u@example.org>").starts_with("250"));
    drop(c);
    drop(s);

    let (policy, addr) = policy_server("garbage");
    let s = Setup::new("policy-garbage")
        .env("POLICY_SERVICE", &format!("inet:{addr}"))
        .env("POLICY_SERVICE_TIMEOUT", "2")
        .start();
    let mut c = Client::connect(&s);
    c.reply();
    chat(&mut c, "HELO client.test");
    chat(&mut c, "MAIL FROM:<a@sender.test>");
    assert!(chat(&mut c, "RCPT TO:<garbage@example.org>").starts_with("451 4.3.5"));
    // A new connection is made after garbage, and used.
    assert!(chat(&mut c, "RCPT TO:<ok@example.org>").starts_with("250"));
    assert!(chat(&mut c, "RCPT TO:<close@example.org>").starts_with("451 4.3.5"));
    assert!(chat(&mut c, "RCPT TO:<ok2@example.org>").starts_with("250"));
    let t = Instant::now();
    assert!(chat(&mut c, "RCPT TO:<slow@example.org>").starts_with("451 4.3.5"));
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "no timeout: {:?}",
        t.elapsed()
    );
    assert!(chat(&mut c, "NOOP").starts_with("250"));
    let log = s.stderr_log();
    assert!(log.contains("no action= in the reply"), "{log}");
    assert!(log.contains("timed out"), "{log}");
    drop(policy);
}

#[test]
fn unix_socket_tls_and_authenticated_user() {
    let (policy, addr) = policy_server("unix");
    // A relay from a unix socket to the test server, with socat-free Python.
    let sock = policy.dir.join("policy.sock");
    let relay = Command::new("python3")
        .args([
            "-c",
            r#"
import socket, sys, os, threading
path, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket(socket.AF_UNIX); srv.bind(path); srv.listen(4)
def pipe(a, b):
    try:
        while True:
            d = a.recv(4096)
            if not d: break
            b.sendall(d)
    except OSError:
        pass
    try: b.shutdown(socket.SHUT_WR)
    except OSError: pass
while True:
    c, _ = srv.accept()
    u = socket.create_connection(("127.0.0.1", port))
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
"#,
            sock.to_str().unwrap(),
            addr.rsplit(':').next().unwrap(),
        ])
        .spawn()
        .unwrap();
    let _relay = Daemon {
        child: relay,
        dir: scratch("unix-relay"),
    };
    wait_listening(&format!("unix:{}", sock.display()), "unix relay");
    let s = Setup::new("policy-unix")
        .auth()
        .cert()
        .env("POLICY_SERVICE", &format!("unix:{}", sock.display()))
        .start();
    let out = python(&format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", {port})
s.ehlo("client.test"); s.starttls(context=ctx); s.ehlo("client.test")
s.login("alice", "wonderland")
s.mail("a@sender.test")
print(s.rcpt("reject@elsewhere.test"))
print(s.rcpt("ok@elsewhere.test"))
s.quit()
"#,
        port = s.port
    ));
    assert!(out.contains("(554, b'5.7.1 Access denied')"), "{out}");
    assert!(out.contains("(250, b'2.1.5 ok')"), "{out}");
    let reqs = read(&policy.dir, "requests.log");
    assert!(reqs.contains("('sasl_username', 'alice')"), "{reqs}");
    assert!(reqs.contains("('sasl_method', "), "{reqs}");
    assert!(
        reqs.contains("('encryption_protocol', 'TLSv1.3')"),
        "{reqs}"
    );
    assert!(reqs.contains("('encryption_keysize', '256')"), "{reqs}");
    assert!(reqs.contains("('encryption_cipher', 'TLS13_"), "{reqs}");
}

#[test]
fn postgrey_greylists_a_starttls_client_then_accepts_with_x_greylist() {
    let (_postgrey, port) = postgrey(2);
    let s = Setup::new("policy-postgrey")
        .cert()
        .env("POLICY_SERVICE", &format!("inet:127.0.0.1:{port}"))
        .start();
    let send = || {
        python(&format!(
            r#"
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", {port}, local_hostname="client.test")
s.starttls(context=ctx); s.ehlo("client.test")
s.mail("sender@sender.test")
code, text = s.rcpt("user@example.org")
print(code, text.decode())
if code == 250:
    s.data(b"Subject: greylisting\r\n\r\nhello\r\n")
s.quit()
"#,
            port = s.port
        ))
    };
    let first = send();
    assert!(first.starts_with("450 4.7.1 Greylisted"), "{first}");
    assert!(s.queued().is_empty());
    std::thread::sleep(Duration::from_secs(3));
    let second = send();
    assert!(second.starts_with("250"), "{second}");
    let q = s.queued();
    assert_eq!(q.len(), 1);
    assert!(q[0].0.contains("\nX-Greylist: delayed "), "{}", q[0].0);
    assert!(q[0].0.contains(" by postgrey-"), "{}", q[0].0);
    assert!(q[0].0.contains("with ESMTPS"), "{}", q[0].0);
}
