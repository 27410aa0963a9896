//! SMTP AUTH end to end: tcpserver + the built binary + fake-checkpassword
//! (examples/, speaking the real fd-3 interface and dropping root as a real
//! checkpassword does), driven by swaks and raw sockets.

mod common;

use std::time::Duration;

use common::{Client, Setup, fake_checkpassword, text};

fn swaks_auth<'a>(mech: &'a str, user: &'a str, pass: &'a str) -> Vec<&'a str> {
    vec![
        "--auth",
        mech,
        "--auth-user",
        user,
        "--auth-password",
        pass,
        "--from",
        "alice@example.org",
        "--to",
        "x@elsewhere.test",
    ]
}

#[test]
fn every_mechanism_over_starttls_relays_and_is_recorded() {
    let srv = Setup::new("auth-mechs")
        .cert()
        .auth()
        .env("ALLOW_CRAM", "1")
        .record_env()
        .start();
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5"] {
        let mut args = swaks_auth(mech, "alice", "wonderland");
        args.push("--tls");
        let o = srv.swaks(&args);
        let t = text(&o);
        assert!(o.status.success(), "{mech}: {t}");
        assert!(
            t.contains("235 2.7.0 Authentication successful"),
            "{mech}: {t}"
        );
        assert!(t.contains("250 AUTH PLAIN LOGIN CRAM-MD5"), "{mech}: {t}");
    }
    let q = srv.queued();
    assert_eq!(q.len(), 3);
    for (msg, env) in &q {
        assert!(
            msg.starts_with("Received: from unknown (HELO client.test) (alice@127.0.0.1)\n  by mx.test with ESMTPSA (TLSv1.3 "),
            "{msg}"
        );
        assert_eq!(env.as_slice(), b"Falice@example.org\0Tx@elsewhere.test\0\0");
    }
    let env = std::fs::read_to_string(srv.dir.join("queue/tls-env")).unwrap();
    for want in [
        "SMTPAUTHUSER=alice\n",
        "SMTP_AUTH_USER=alice\n",
        "TCPREMOTEINFO=alice\n",
        "SMTPAUTHMETHOD=CRAM-MD5\n",
        "SMTPAUTHMETHOD=LOGIN\n",
    ] {
        assert!(env.contains(want), "{want}: {env}");
    }
    let log = srv.stderr_log();
    assert_eq!(log.matches("AUTH ok: remote=127.0.0.1").count(), 3, "{log}");
    assert!(!log.contains("wonderland"), "{log}");
}

#[test]
fn no_auth_in_clear_unless_allowed_per_ip_by_tcprules() {
    let srv = Setup::new("auth-clear")
        .cert()
        .auth()
        .rules(
            "127.0.0.2:allow,ALLOW_INSECURE_AUTH=\"1\"\n127.0.0.3:allow,DENY_TLS=\"1\"\n:allow\n",
        )
        .start();
    // Default: not advertised in clear, and refused with 530.
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"EHLO c.test\r\n");
    let ehlo = c.reply();
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    c.send(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n");
    assert_eq!(
        c.reply(),
        "530 5.7.0 Must issue a STARTTLS command first\r\n"
    );
    // No STARTTLS for this client: 538.
    let o = srv.swaks(&["--quit-after", "EHLO", "--local-interface", "127.0.0.3"]);
    assert!(!text(&o).contains("AUTH"), "{}", text(&o));
    // ALLOW_INSECURE_AUTH for 127.0.0.2 only.
    let mut args = swaks_auth("PLAIN", "alice", "wonderland");
    args.extend(["--local-interface", "127.0.0.2"]);
    let o = srv.swaks(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        srv.queued()[0].0.contains(" with ESMTPA; "),
        "{}",
        srv.queued()[0].0
    );
}

#[test]
fn encryption_required_reply_when_starttls_is_denied() {
    let srv = Setup::new("auth-538")
        .cert()
        .auth()
        .env("DENY_TLS", "1")
        .start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"EHLO c.test\r\nAUTH LOGIN\r\n");
    let ehlo = c.reply();
    assert!(
        !ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert_eq!(
        c.reply(),
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
}

#[test]
fn failures_limited_logged_without_passwords() {
    let srv = Setup::new("auth-fail")
        .auth()
        .env("ALLOW_INSECURE_AUTH", "1")
        .start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"EHLO c.test\r\n");
    c.reply();
    for (i, pass) in ["guess1", "guess2", "guess3"].iter().enumerate() {
        let b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{pass}"))
        };
        c.send(format!("AUTH PLAIN {b64}\r\n").as_bytes());
        assert_eq!(
            c.reply(),
            "535 5.7.8 Authentication credentials invalid\r\n",
            "{i}"
        );
    }
    assert_eq!(
        c.reply(),
        "421 4.7.0 too many authentication failures, closing connection\r\n"
    );
    assert!(c.closed());
    std::thread::sleep(Duration::from_millis(200));
    let log = srv.stderr_log();
    assert_eq!(
        log.matches("AUTH failed: remote=127.0.0.1 mech=PLAIN user=\"alice\" reason=rejected")
            .count(),
        3,
        "{log}"
    );
    assert!(!log.contains("guess"), "{log}");
}

#[test]
fn misbehaving_checkpassword_never_reaches_the_client() {
    let srv = Setup::new("auth-modes")
        .auth()
        .env("ALLOW_INSECURE_AUTH", "1")
        .env("CHECKPASSWORD_TIMEOUT", "2")
        .rules(
            "127.0.0.2:allow,FAKECP_MODE=\"temp\"\n127.0.0.3:allow,FAKECP_MODE=\"hang\"\n\
             127.0.0.4:allow,FAKECP_MODE=\"crash\"\n127.0.0.5:allow,FAKECP_MODE=\"print\"\n\
             127.0.0.6:allow,FAKECP_MODE=\"root\"\n:allow\n",
        )
        .start();
    let cases = [
        ("127.0.0.2", "454 4.7.0 Temporary authentication failure"),
        ("127.0.0.3", "454 4.7.0 Temporary authentication failure"),
        ("127.0.0.4", "454 4.7.0 Temporary authentication failure"),
        ("127.0.0.5", "235 2.7.0 Authentication successful"),
        ("127.0.0.6", "535 5.7.8 Authentication credentials invalid"),
    ];
    for (ip, want) in cases {
        let local: std::net::SocketAddr = format!("{ip}:0").parse().unwrap();
        let sock = nix_connect(local, srv.port);
        let mut c = Client::from(sock);
        assert!(c.reply().starts_with("220"), "{ip}");
        c.send(b"EHLO c.test\r\nAUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\nNOOP\r\n");
        c.reply();
        assert_eq!(c.reply(), format!("{want}\r\n"), "{ip}");
        assert_eq!(
            c.reply(),
            "250 2.0.0 ok\r\n",
            "{ip}: the session goes on, uncorrupted"
        );
    }
    let log = srv.stderr_log();
    assert!(log.contains("timed out after 2s: killed"), "{log}");
    assert!(log.contains("login as uid 0 refused"), "{log}");
    assert!(!log.contains("wonderland"), "{log}");
}

/// A TCP connection from a chosen loopback address.
fn nix_connect(local: std::net::SocketAddr, port: u16) -> std::net::TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    let std::net::SocketAddr::V4(l) = local else {
        panic!()
    };
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(l)).unwrap();
    let remote = SockaddrIn::new(127, 0, 0, 1, port);
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &remote).unwrap();
    std::net::TcpStream::from(fd)
}

#[test]
fn jms1_invocation_form_names_the_cram_host_and_login_is_refused_with_forged_user() {
    let cp = fake_checkpassword();
    let srv = Setup::new("auth-jms1")
        .args(&["auth.example.net", cp.to_str().unwrap(), "/bin/true"])
        .env("FAKECP_USERS", "alice:wonderland")
        .env("FAKECP_RECORD", "/dev/null")
        .env("AUTH_FAILURE_DELAY", "0")
        .env("SMTPAUTH", "+cram")
        .env("FORCETLS", "0")
        .start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"EHLO c.test\r\nAUTH CRAM-MD5\r\n");
    assert!(c.reply().contains("250 AUTH PLAIN LOGIN CRAM-MD5"));
    let challenge = c.reply();
    let decoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(challenge.trim_end().strip_prefix("334 ").unwrap())
            .unwrap()
    };
    let decoded = String::from_utf8(decoded).unwrap();
    assert!(
        decoded.starts_with('<') && decoded.ends_with("@auth.example.net>"),
        "{decoded}"
    );
    c.send(b"*\r\n");
    assert_eq!(c.reply(), "501 5.0.0 AUTH cancelled\r\n");
    // LOGIN with `alice\0wonderland` as user name and an empty password.
    c.send(b"AUTH LOGIN YWxpY2UAd29uZGVybGFuZA==\r\n");
    assert_eq!(
        c.reply(),
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
}

#[test]
fn submission_port_requires_tls_then_auth() {
    let srv = Setup::new("auth-587")
        .cert()
        .auth()
        .env("FORCE_TLS", "1")
        .env("REQUIRE_AUTH", "1")
        .start();
    let o = srv.swaks(&["--to", "x@example.org"]);
    assert!(
        text(&o).contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{}",
        text(&o)
    );
    let o = srv.swaks(&["--tls", "--to", "x@example.org"]);
    assert!(
        text(&o).contains("530 5.7.0 Authentication required"),
        "{}",
        text(&o)
    );
    let mut args = swaks_auth("LOGIN", "bob", "secret");
    args.push("--tls");
    let o = srv.swaks(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(srv.queued().len(), 1);
}

#[test]
fn require_auth_without_backend_is_refused_at_connect() {
    let srv = Setup::new("auth-nobackend")
        .env("REQUIRE_AUTH", "1")
        .start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("421 4.3.5 "));
    assert!(
        srv.stderr_log()
            .contains("no checkpassword program is given")
    );
}

#[test]
fn transcript_and_summary_line_in_the_log() {
    let srv = Setup::new("auth-transcript")
        .cert()
        .auth()
        .env("SMTPD_TRANSCRIPT", "1")
        .start();
    let mut args = swaks_auth("LOGIN", "alice", "wonderland");
    args.push("--tls");
    let o = srv.swaks(&args);
    assert!(o.status.success(), "{}", text(&o));
    let o = srv.swaks(&["--to", "x@elsewhere.test"]);
    assert!(!o.status.success());
    std::thread::sleep(Duration::from_millis(200));
    let log = srv.stderr_log();
    for want in [
        "< EHLO client.test",
        "> 250 STARTTLS",
        "< STARTTLS",
        "> 220 2.0.0 Ready to start TLS",
        "< AUTH LOGIN\n",
        "> 334 VXNlcm5hbWU6",
        "< <redacted>",
        "> 235 2.7.0 Authentication successful",
        "< QUIT",
    ] {
        assert!(log.contains(want), "{want:?} missing: {log}");
    }
    // Neither the password nor its base64 ever reaches the log.
    for secret in ["wonderland", "d29uZGVybGFuZA==", "YWxpY2U="] {
        assert!(!log.contains(secret), "{secret} leaked: {log}");
    }
    let ends: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(": end remote="))
        .collect();
    assert_eq!(ends.len(), 3, "probe, TLS+AUTH and refused sessions: {log}");
    let tls = ends.iter().find(|l| l.contains("auth=LOGIN")).expect(&log);
    assert!(
        tls.contains("remote=127.0.0.1 helo=\"client.test\" tls=\"TLSv1.3 TLS13_")
            && tls.contains("user=\"alice\" accepted=1 messages=")
            && tls.contains(" how=quit"),
        "{tls}"
    );
    let refused = ends.iter().find(|l| l.contains("rejected=")).expect(&log);
    assert!(refused.contains("accepted=0 rejected=553x1 "), "{refused}");
}
