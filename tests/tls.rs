//! STARTTLS and implicit TLS end to end: tcpserver + the built binary,
//! driven by swaks, openssl s_client and Python's ssl module.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Client, Setup, need, python, text};

fn tls_server(name: &str) -> Setup<'_> {
    Setup::new(name).cert()
}

/// `openssl s_client` with `args`, feeding `input`; returns all it printed.
fn s_client(args: &[&str], input: &str) -> (bool, String) {
    need("openssl");
    let mut child = Command::new("openssl")
        .arg("s_client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input.as_bytes());
        // Give the session time to run before stdin's EOF ends s_client.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let o = child.wait_with_output().unwrap();
    (o.status.success(), text(&o))
}

#[test]
fn swaks_starttls_delivers_and_records_the_session() {
    let srv = tls_server("starttls").record_env().start();
    let o = srv.swaks(&["--tls", "--to", "u@example.org", "--from", "a@sender.test"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("<-  250 STARTTLS") || t.contains("250 STARTTLS"),
        "{t}"
    );
    assert!(t.contains("220 2.0.0 Ready to start TLS"), "{t}");
    let q = srv.queued();
    assert_eq!(q.len(), 1);
    assert!(
        q[0].0.contains("  by mx.test with ESMTPS (TLSv1.3 TLS13_"),
        "{}",
        q[0].0
    );
    let env = std::fs::read_to_string(srv.dir.join("queue/tls-env")).unwrap();
    assert!(env.contains("TLS_PROTOCOL=TLSv1.3\n"), "{env}");
    assert!(env.contains("TLS_CIPHER=TLS13_"), "{env}");
}

#[test]
fn smtps_handshake_before_greeting() {
    let srv = tls_server("smtps").env("SMTPS", "1").start();
    let o = srv.swaks(&["--tls-on-connect", "--to", "u@example.org"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        !t.contains("STARTTLS"),
        "not offered inside implicit TLS: {t}"
    );
    let q = srv.queued();
    assert!(q[0].0.contains(" with ESMTPS (TLSv1.3 "), "{}", q[0].0);

    let (ok, out) = s_client(
        &["-connect", &srv.addr(), "-tls1_2", "-ign_eof"],
        "EHLO s.test\r\nQUIT\r\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains("220 mx.test ESMTP"), "{out}");
    assert!(
        out.contains("Protocol  : TLSv1.2") || out.contains("TLSv1.2"),
        "{out}"
    );
}

#[test]
fn tls12_and_tls13_negotiated_old_versions_refused() {
    let srv = tls_server("versions").start();
    for (flag, want) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let (ok, out) = s_client(
            &[
                "-starttls",
                "smtp",
                "-connect",
                &srv.addr(),
                flag,
                "-ign_eof",
            ],
            "EHLO v.test\r\nQUIT\r\n",
        );
        assert!(ok, "{flag}: {out}");
        assert!(
            out.contains(&format!("Protocol  : {want}")) || out.contains(&format!("New, {want}")),
            "{flag}: {out}"
        );
        assert!(out.contains("221 2.0.0 mx.test"), "{flag}: {out}");
    }
    for flag in ["-tls1_1", "-tls1"] {
        let (ok, out) = s_client(
            &[
                "-starttls",
                "smtp",
                "-connect",
                &srv.addr(),
                flag,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ],
            "QUIT\r\n",
        );
        assert!(!ok, "{flag} must be refused: {out}");
        assert!(!out.contains("221 2.0.0"), "{flag}: {out}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        srv.stderr_log().contains("TLS handshake failed"),
        "{}",
        srv.stderr_log()
    );
}

#[test]
fn commands_injected_behind_starttls_never_run_and_state_is_reset() {
    let srv = tls_server("inject").start();
    let out = python(&format!(
        r#"
import socket, ssl
s = socket.create_connection(("127.0.0.1", {port}), timeout=20)
f = s.makefile("rb")
def reply(f):
    lines = []
    while True:
        l = f.readline().decode()
        lines.append(l)
        if l[3:4] != "-":
            return "".join(lines)
print(reply(f), end="")
# EHLO and MAIL in clear, then STARTTLS with a command smuggled in the same write.
s.sendall(b"EHLO in.test\r\nMAIL FROM:<a@b.test>\r\nSTARTTLS\r\nRCPT TO:<u@example.org>\r\n")
print(reply(f), end="")
print(reply(f), end="")
r = reply(f)
print(r, end="")
assert r.startswith("220 2.0.0"), r
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s)
g = t.makefile("rb")
t.sendall(b"NOOP\r\n")
r = reply(g)
print("TLS1:" + r, end="")
assert r == "250 2.0.0 ok\r\n", "the smuggled RCPT must not have run: " + r
t.sendall(b"RCPT TO:<u@example.org>\r\n")
r = reply(g)
print("TLS2:" + r, end="")
t.sendall(b"EHLO in.test\r\n")
r = reply(g)
print("TLS3:" + r, end="")
t.sendall(b"STARTTLS\r\n")
print("TLS4:" + reply(g), end="")
"#,
        port = srv.port
    ));
    assert!(
        out.contains("TLS2:503 5.5.1 MAIL first"),
        "envelope forgotten: {out}"
    );
    let ehlo = out.split("TLS3:").nth(1).unwrap();
    assert!(
        !ehlo.split("TLS4:").next().unwrap().contains("STARTTLS"),
        "{out}"
    );
    assert!(out.contains("TLS4:503 5.5.1 TLS already active"), "{out}");
    assert!(
        srv.stderr_log()
            .contains("discarded 25 bytes sent in clear after STARTTLS")
    );
}

#[test]
fn deny_tls_and_disabletls_per_ip_from_a_tcprules_cdb() {
    let srv = tls_server("deny")
        .rules("127.0.0.2:allow,DENY_TLS=\"1\"\n127.0.0.3:allow,DISABLETLS=\"1\"\n:allow\n")
        .start();
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let o = srv.swaks(&["--quit-after", "EHLO", "--local-interface", ip]);
        let t = text(&o);
        assert!(!t.contains("STARTTLS"), "{ip}: {t}");
        let o = srv.swaks(&["--tls", "--to", "u@example.org", "--local-interface", ip]);
        let t = text(&o);
        assert!(!o.status.success(), "{ip}: {t}");
    }
    let o = srv.swaks(&["--quit-after", "EHLO", "--local-interface", "127.0.0.4"]);
    assert!(text(&o).contains("250 STARTTLS"), "{}", text(&o));
}

#[test]
fn force_tls_refuses_mail_until_starttls() {
    let srv = tls_server("force").env("FORCE_TLS", "1").start();
    let o = srv.swaks(&["--to", "u@example.org"]);
    let t = text(&o);
    assert!(
        t.contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{t}"
    );
    let o = srv.swaks(&["--tls", "--to", "u@example.org"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(srv.queued().len(), 1);
}

#[test]
fn smtps_startup_failure_is_said_inside_tls_or_not_at_all() {
    // An unreadable control file: the 421 comes after the handshake, so
    // the TLS client reads it instead of a garbled record.
    let srv = tls_server("smtps421").env("SMTPS", "1").start();
    std::fs::create_dir(srv.dir.join("control/badmailfrom")).unwrap();
    let (_, out) = s_client(&["-connect", &srv.addr(), "-ign_eof"], "");
    assert!(out.contains("421 4.3.0 unable to read controls"), "{out}");
    assert!(out.contains("TLSv1.3"), "{out}");

    // No certificate either: nothing can be said, and no clear text is
    // sent to a client that expects a ServerHello.
    let srv = Setup::new("smtps421nocert").env("SMTPS", "1").start();
    std::fs::create_dir(srv.dir.join("control/badmailfrom")).unwrap();
    let mut c = Client::connect(&srv);
    assert!(c.closed());
    assert_eq!(c.line(), None, "no bytes at all");
    let log = srv.stderr_log();
    assert!(log.contains("closing without a reply"), "{log}");
}

#[test]
fn force_tls_with_deny_tls_is_refused_at_connect() {
    let srv = tls_server("contradiction")
        .env("FORCE_TLS", "1")
        .env("DENY_TLS", "1")
        .start();
    let mut c = Client::connect(&srv);
    let r = c.reply();
    assert!(r.starts_with("421 4.3.5 "), "{r}");
    assert!(c.closed());
    assert!(
        srv.stderr_log().contains("FORCE_TLS"),
        "{}",
        srv.stderr_log()
    );
}

#[test]
fn ssl_upstream_means_secure_without_starttls() {
    let srv = Setup::new("ssl")
        .env("SSL", "1")
        .env("FORCE_TLS", "1")
        .start();
    let o = srv.swaks(&["--to", "u@example.org"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.contains("STARTTLS"), "{t}");
    assert!(srv.queued()[0].0.contains(" with ESMTPS; "));
}

#[test]
fn missing_or_garbled_certificate_means_no_starttls() {
    for (name, pem) in [
        ("nocert", None),
        (
            "garbled",
            Some("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"),
        ),
    ] {
        let mut setup = Setup::new(name);
        if let Some(p) = pem {
            setup = setup.control("servercert.pem", p);
        }
        let srv = setup.start();
        let mut c = Client::connect(&srv);
        assert!(c.reply().starts_with("220"));
        c.send(b"EHLO x.test\r\n");
        let ehlo = c.reply();
        assert!(!ehlo.contains("STARTTLS"), "{name}: {ehlo}");
        c.send(b"STARTTLS\r\nMAIL FROM:<a@b.test>\r\n");
        assert_eq!(
            c.reply(),
            "454 4.7.0 TLS not available due to local problem\r\n"
        );
        assert_eq!(
            c.reply(),
            "250 2.1.0 ok\r\n",
            "{name}: the session goes on in clear"
        );
        let log = srv.stderr_log();
        assert!(log.contains("TLS not available"), "{name}: {log}");
        assert!(!log.contains("not base64"), "no PEM text in the log: {log}");
    }
}

#[test]
fn broken_handshakes_end_cleanly() {
    let srv = tls_server("broken").start();
    // Garbage instead of a ClientHello.
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"STARTTLS\r\n");
    assert!(c.reply().starts_with("220 2.0.0"));
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    assert!(c.closed());
    // A client that hangs up mid-handshake.
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"STARTTLS\r\n");
    assert!(c.reply().starts_with("220 2.0.0"));
    c.send(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    let log = srv.stderr_log();
    assert_eq!(log.matches("TLS handshake failed").count(), 2, "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// STARTTLS is offered (EHLO only looks at the PEM), but the key fails to
/// load when it is asked for: 454, and the session goes on in clear.
fn starttls_offered_then_454(srv: &common::Server) {
    let mut c = Client::connect(srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"EHLO x.test\r\n");
    assert!(c.reply().contains("250 STARTTLS"));
    c.send(b"STARTTLS\r\nNOOP\r\n");
    assert_eq!(
        c.reply(),
        "454 4.7.0 TLS not available due to local problem\r\n"
    );
    assert_eq!(
        c.reply(),
        "250 2.0.0 ok\r\n",
        "the session goes on in clear"
    );
}

#[test]
fn a_key_that_does_not_match_is_found_at_starttls_and_answered_454() {
    // EHLO only looks at the PEM (loading an RSA key is most of a plain
    // session's work); the key is loaded when STARTTLS comes, before 220.
    let dir = std::env::temp_dir().join(format!("qsmtpd-mismatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.pem"), dir.join("b.pem"));
    common::make_cert(&a);
    common::make_cert(&b);
    let a = std::fs::read_to_string(&a).unwrap();
    let b = std::fs::read_to_string(&b).unwrap();
    let key_at = |s: &str| s.find("-----BEGIN PRIVATE KEY").unwrap();
    let mixed = format!("{}{}", &a[..key_at(&a)], &b[key_at(&b)..]);
    let _ = std::fs::remove_dir_all(&dir);
    let srv = Setup::new("mismatch")
        .control("servercert.pem", &mixed)
        .start();
    starttls_offered_then_454(&srv);
    let log = srv.stderr_log();
    assert!(
        log.contains("TLS not available") && log.contains("certificate or key"),
        "{log}"
    );
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}

#[test]
fn a_pem_without_a_key_means_no_starttls_and_a_garbled_key_454() {
    let dir = std::env::temp_dir().join(format!("qsmtpd-nokey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    common::make_cert(&dir.join("a.pem"));
    let pem = std::fs::read_to_string(dir.join("a.pem")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let key_at = pem.find("-----BEGIN PRIVATE KEY").unwrap();
    let body_at = key_at + pem[key_at..].find('\n').unwrap() + 1;

    // Certificate only: nothing to offer.
    let srv = Setup::new("nokey")
        .control("servercert.pem", &pem[..key_at])
        .start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"EHLO x.test\r\n");
    assert!(!c.reply().contains("STARTTLS"));
    let log = srv.stderr_log();
    assert!(log.contains("no private key found"), "{log}");

    // A key section with bytes that are not base64 at all: EHLO's look at
    // the PEM (no decoding) already sees there is no usable key.
    let garbled = format!("{}!!!!{}", &pem[..body_at], &pem[body_at + 4..]);
    let srv = Setup::new("badkey")
        .control("servercert.pem", &garbled)
        .start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"EHLO x.test\r\n");
    assert!(!c.reply().contains("STARTTLS"));
    assert!(srv.stderr_log().contains("no private key found"));

    // Base64 that decodes to a broken key: EHLO does not decode the key,
    // so STARTTLS is offered; the load at STARTTLS finds it: 454.
    let broken = format!("{}AAAA{}", &pem[..body_at], &pem[body_at + 4..]);
    let srv = Setup::new("brokenkey")
        .control("servercert.pem", &broken)
        .start();
    starttls_offered_then_454(&srv);
    let log = srv.stderr_log();
    assert!(log.contains("TLS not available"), "{log}");
}

/// The key layouts qmail-tls installations have: the key before the
/// certificate, as PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY");
/// and an RSA key with public exponent 3, which ring (our RSA signer)
/// refuses and aws-lc loads instead. Each gets a whole STARTTLS delivery.
#[test]
fn key_first_pkcs1_sec1_and_exponent_3_keys_all_serve_starttls() {
    need("openssl");
    let dir = std::env::temp_dir().join(format!("qsmtpd-keyforms-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
    };
    let mut cases = Vec::new();
    for (name, keygen) in [
        (
            "pkcs1",
            &["genrsa", "-traditional", "-out", "k.pem", "2048"][..],
        ),
        (
            "sec1",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "k.pem",
            ][..],
        ),
        (
            "e3",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-pkeyopt",
                "rsa_keygen_pubexp:3",
                "-out",
                "k.pem",
            ][..],
        ),
    ] {
        openssl(keygen);
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "k.pem",
            "-subj",
            "/CN=mx.test",
            "-days",
            "2",
            "-out",
            "c.pem",
        ]);
        let key = std::fs::read_to_string(dir.join("k.pem")).unwrap();
        let cert = std::fs::read_to_string(dir.join("c.pem")).unwrap();
        cases.push((name, key, cert));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(cases[0].1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(cases[1].1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    for (name, key, cert) in cases {
        let srv = Setup::new(name)
            .control("servercert.pem", &format!("{key}{cert}"))
            .start();
        let o = srv.swaks(&["--tls", "--to", "u@example.org", "--from", "a@sender.test"]);
        let t = text(&o);
        assert!(o.status.success(), "{name}: {t}");
        assert!(t.contains("220 2.0.0 Ready to start TLS"), "{name}: {t}");
        assert_eq!(srv.queued().len(), 1, "{name}");
        assert!(!srv.stderr_log().contains("TLS not available"), "{name}");
    }
}
